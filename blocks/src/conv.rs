//! The 2-D convolution every gaze model uses: Burn's `Conv2d` (same fields, same parameter
//! names `weight`/`bias`, same config and defaults), whose forward on the flex CPU device takes
//! a direct kernel for the stride-1 "same" convolutions that dominate super-resolution nets and
//! the early stages of CNNs, and im2col + one threaded GEMM for the others; `forward_bn` applies
//! an inference BatchNorm (and ReLU) inside both.
//!
//! The im2col path (module `im2col`) reads the NCHW map and writes the NCHW output directly:
//! per image, group and band of output rows, the column buffer `[C_in·kh·kw, pixels]` (row
//! copies at stride 1, none at all for 1×1 stride-1 convolutions) and one `gemm` call with the
//! weight as stored, split over the thread pool. flex converts the map to NHWC, tiles the output
//! by 512 pixels and runs one single-threaded GEMM per tile, so a ResNet's 14×14 and 7×7 stages
//! ran on one core. Every path reads the input, weight and bias through flex's buffers
//! (`cpu_kernels::HostView`): `into_data` copied each shared parameter on every forward (100 MB
//! for ResNet-50). Together: ResNet-50 238 → 173 ms on two cores.
//!
//! Why: flex lowers every convolution to im2col + `gemm`. At the small channel counts of SR nets
//! (PAN's 24 channels at 512², 20 at 128²) the GEMM is tall and thin (`K = 9·C`, `N = C`) and
//! reaches 15–35 GFLOP/s on two AVX2 cores (this machine's peak: about 75), below PyTorch's
//! oneDNN. A direct convolution keeps a 4-output-channel × 16-pixel tile of the output in 8
//! AVX2 registers and adds `w[co, ci, kh, kw] · x[ci, y + kh, x + kw ..]` for every input
//! channel and kernel offset (four broadcasts and two unaligned loads per 8 FMAs), with no
//! im2col buffer and no packing of the weights. Each task, a range of output rows, keeps the
//! `k` zero-padded input rows of every input channel in a rolling window (no padded copy of
//! the map). Measured against flex on 2 cores (GFLOP/s, direct / flex): 24→24 at 512² 45 / 19,
//! 40→40 at 128² 64 / 36, 48→48 at 128² 71 / 37, 3→40 at 128² 58 / 10, 64→64 at 56² 47 / 46,
//! 128→128 at 28² 52 / 55; 1×1 convolutions 18–33 / 25–56 (one GEMM without im2col). So the
//! direct kernel takes `k` of 3, 5 or 7 with at most 48 input channels in AVX2. In AVX-512
//! (a `8-channel × 32-pixel` tile in 16 of the 32 `zmm` registers) it stays ahead of im2col up
//! to 256 input channels (`direct::max_in_channels`).
//!
//! The kernel runs on the flex device (in training too: `train::conv` records it on the
//! autodiff graph with a backward of its own; WGPU keeps Burn's `conv2d`), with an AVX2+FMA CPU (it is compiled for that instruction set and chosen at run
//! time; other CPUs keep Burn's path), for groups 1, stride 1, dilation 1, a square kernel of
//! 3, 5 or 7 with zero padding `k / 2` on every side (PyTorch's `padding=k//2`), on maps at
//! least 8 wide. The parity tests of every model run through it; `conv::tests` checks it
//! against Burn's `conv2d` on odd sizes, several batches and channel counts not divisible by
//! the tile.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{BatchNorm, Initializer, PaddingConfig2d};
use burn::prelude::*;

use crate::cpu_kernels::HostView;

/// Configuration of [`Conv2d`]: Burn's `Conv2dConfig`, field for field.
#[derive(Config, Debug)]
pub struct Conv2dConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Stride.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Spacing between kernel elements.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Groups of input and output channels.
    #[config(default = "1")]
    pub groups: usize,
    /// Padding.
    #[config(default = "PaddingConfig2d::Valid")]
    pub padding: PaddingConfig2d,
    /// Whether the convolution has a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initialisation of the weight and bias (Burn's default, gain `1/√3`).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258,fan_out_only:false}")]
    pub initializer: Initializer,
}

impl Conv2dConfig {
    /// The convolution, initialised as Burn initialises its own.
    pub fn init(&self, device: &Device) -> Conv2d {
        let burn_conv = burn::nn::conv::Conv2dConfig::new(self.channels, self.kernel_size)
            .with_stride(self.stride)
            .with_dilation(self.dilation)
            .with_groups(self.groups)
            .with_padding(self.padding.clone())
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone())
            .init(device);
        Conv2d {
            weight: burn_conv.weight,
            bias: burn_conv.bias,
            stride: burn_conv.stride,
            kernel_size: burn_conv.kernel_size,
            dilation: burn_conv.dilation,
            groups: burn_conv.groups,
            padding: burn_conv.padding,
        }
    }
}

/// A 2-D convolution: Burn's `Conv2d` with a direct CPU kernel behind `forward` (module docs).
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[channels_out, channels_in / groups, kh, kw]`.
    pub weight: Param<Tensor<4>>,
    /// `[channels_out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride.
    pub stride: [usize; 2],
    /// Kernel size.
    pub kernel_size: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
    /// Padding.
    #[module(skip)]
    pub padding: PaddingConfig2d,
}

impl Conv2d {
    /// `[B, C_in, H, W] → [B, C_out, H', W']`, as Burn's `Conv2d::forward`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_fused(input, None)
            .or_else(|input| crate::train::conv::forward(self, input))
            .unwrap_or_else(|input| self.as_burn().forward(input))
    }

    /// `bn(conv(x))`, then ReLU when `relu`: with BatchNorm's running statistics (inference)
    /// and the ReLU applied to each band of the output as the CPU kernels write it (no pass of
    /// their own over the map, PyTorch's `fuse_conv_bn_eval` without changing the weights) on
    /// the flex device without autodiff; elsewhere Burn's `BatchNorm::forward` (batch
    /// statistics in training mode) and `relu` after the convolution.
    pub fn forward_bn(&self, input: Tensor<4>, bn: &BatchNorm, relu: bool) -> Tensor<4> {
        let cout = self.weight.dims()[0];
        let input = if crate::cpu_kernels::on_plain_flex(&input) && bn.gamma.dims() == [cout] {
            let (scale, shift) = crate::cpu_kernels::batch_norm_affine(bn);
            let epilogue = Epilogue { scale, shift, relu };
            match self.forward_fused(input, Some(&epilogue)) {
                Ok(output) => return output,
                Err(input) => input,
            }
        } else {
            input
        };
        let output = crate::cpu_kernels::batch_norm(bn, self.forward(input));
        if relu {
            burn::tensor::activation::relu(output)
        } else {
            output
        }
    }

    /// The convolution through the direct kernel or im2col + GEMM with `epilogue` applied, or
    /// the input back when neither takes it.
    fn forward_fused(
        &self,
        input: Tensor<4>,
        epilogue: Option<&Epilogue>,
    ) -> Result<Tensor<4>, Tensor<4>> {
        if !crate::cpu_kernels::on_plain_flex(&input) {
            return Err(input);
        }
        let bias = self.bias.as_ref().map(|b| b.val());
        self.forward_with(input, self.weight.val(), bias, epilogue)
    }

    /// The convolution of plain flex tensors with this layer's geometry and the given
    /// parameters, through the direct kernel or im2col + GEMM, or the input back when neither
    /// takes it (the training path runs its forward here on the parameters' values).
    pub(crate) fn forward_with(
        &self,
        input: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        epilogue: Option<&Epilogue>,
    ) -> Result<Tensor<4>, Tensor<4>> {
        if self.takes_direct_kernel(&input) {
            return Ok(direct_conv(input, weight, bias, epilogue));
        }
        if let Some(geometry) = self.depthwise_geometry(&input) {
            return Ok(geometry_conv(
                depthwise::conv,
                input,
                weight,
                bias,
                geometry,
                epilogue,
            ));
        }
        match self.im2col_geometry(&input) {
            Some(geometry) => Ok(geometry_conv(
                im2col::conv,
                input,
                weight,
                bias,
                geometry,
                epilogue,
            )),
            None => Err(input),
        }
    }

    /// The geometry of the im2col + GEMM path for `input` (1×1 stride-1 unpadded
    /// convolutions included: their GEMM reads the map itself, no column buffer), or `None`
    /// where GEMMs would be too thin (thin groups: flex's loops; depthwise convolutions: the
    /// `depthwise` kernel) or where the path does not run (`Same` padding). The callers check
    /// the device.
    pub(crate) fn im2col_geometry(&self, input: &Tensor<4>) -> Option<im2col::Geometry> {
        self.geometry(input)
            .filter(|g| g.groups == 1 || g.cin / g.groups >= IM2COL_MIN_GROUP_CHANNELS)
    }

    /// The geometry of a depthwise convolution (one filter per channel: `groups = C_in =
    /// C_out > 1`) for the `depthwise` kernel, or `None`. The callers check the device.
    pub(crate) fn depthwise_geometry(&self, input: &Tensor<4>) -> Option<im2col::Geometry> {
        self.geometry(input).filter(im2col::Geometry::depthwise)
    }

    /// The sizes of the convolution of `input`, or `None` with `Same` padding (the CPU paths
    /// take explicit padding) or a map smaller than the kernel's span.
    fn geometry(&self, input: &Tensor<4>) -> Option<im2col::Geometry> {
        let [batch, cin, height, width] = input.dims();
        let [cout, _, kh, kw] = self.weight.dims();
        let [top, left, bottom, right] = match self.padding {
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            PaddingConfig2d::Same => return None,
        };
        let out_size = |size: usize, pad: usize, k: usize, stride: usize, dilation: usize| {
            let span = dilation * (k - 1) + 1;
            (size + pad >= span).then(|| (size + pad - span) / stride + 1)
        };
        let out_height = out_size(height, top + bottom, kh, self.stride[0], self.dilation[0])?;
        let out_width = out_size(width, left + right, kw, self.stride[1], self.dilation[1])?;
        Some(im2col::Geometry {
            batch,
            cin,
            height,
            width,
            cout,
            groups: self.groups,
            kernel: [kh, kw],
            stride: self.stride,
            dilation: self.dilation,
            pad: [top, left],
            out: [out_height, out_width],
        })
    }

    /// Whether `forward` runs the direct kernel on `input` (module docs).
    fn takes_direct_kernel(&self, input: &Tensor<4>) -> bool {
        let [k, kw] = self.kernel_size;
        let p = k / 2;
        let same_padding = match self.padding {
            PaddingConfig2d::Same => true,
            PaddingConfig2d::Explicit(top, left, bottom, right) => {
                [top, left, bottom, right] == [p; 4]
            }
            PaddingConfig2d::Valid => false,
        };
        k == kw
            && (3..=7).contains(&k)
            && k % 2 == 1
            && same_padding
            && self.stride == [1, 1]
            && self.dilation == [1, 1]
            && self.groups == 1
            && input.dims()[3] >= direct::min_width()
            && input.dims()[1] <= direct::max_in_channels()
            && crate::cpu_kernels::on_plain_flex(input)
            && direct::available()
    }

    /// The same convolution as Burn's module (shares the parameters).
    pub(crate) fn as_burn(&self) -> burn::nn::conv::Conv2d {
        burn::nn::conv::Conv2d {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            stride: self.stride,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            groups: self.groups,
            padding: self.padding.clone(),
        }
    }
}

/// Runs [`direct::conv_same`] on the tensors' host buffers (the input is borrowed without a
/// copy when the tensor is not shared).
fn direct_conv(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    epilogue: Option<&Epilogue>,
) -> Tensor<4> {
    let device = x.device();
    let [batch, cin, height, width] = x.dims();
    let [cout, _, k, _] = weight.dims();
    let (x, weight, bias) = host_views(x, weight, bias);
    let shape = direct::Shape {
        batch,
        cin,
        cout,
        height,
        width,
        k,
    };
    let mut out = direct::conv_same(
        x.values(),
        weight.values(),
        bias.as_ref().map(HostView::values),
        shape,
    );
    if let Some(epilogue) = epilogue {
        use rayon::prelude::*;
        let plane = height * width;
        out.par_chunks_mut(plane.max(1))
            .enumerate()
            .for_each(|(i, values)| epilogue.apply(i % cout, values));
    }
    Tensor::from_data(TensorData::new(out, [batch, cout, height, width]), &device)
}

/// The buffers of a convolution's tensors, borrowed (the callers checked the flex device).
fn host_views(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
) -> (HostView, HostView, Option<HostView>) {
    let view = |t: Option<HostView>| t.expect("flex f32 tensors (checked by the caller)");
    (
        view(HostView::new(x)),
        view(HostView::new(weight)),
        bias.map(|b| view(HostView::new(b))),
    )
}

/// The output of a CPU kernel of the `im2col::Geometry` family (`im2col::conv`,
/// `depthwise::conv`) run on the tensors' host buffers.
type GeometryKernel =
    fn(&[f32], &[f32], Option<&[f32]>, im2col::Geometry, Option<&Epilogue>) -> Vec<f32>;

/// Runs `kernel` on the tensors' host buffers.
fn geometry_conv(
    kernel: GeometryKernel,
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: im2col::Geometry,
    epilogue: Option<&Epilogue>,
) -> Tensor<4> {
    let device = x.device();
    let (x, weight, bias) = host_views(x, weight, bias);
    let out = kernel(
        x.values(),
        weight.values(),
        bias.as_ref().map(HostView::values),
        geometry,
        epilogue,
    );
    let [out_height, out_width] = geometry.out;
    let shape = [geometry.batch, geometry.cout, out_height, out_width];
    Tensor::from_data(TensorData::new(out, shape), &device)
}

pub(crate) mod depthwise;

/// Sizes of one direct convolution: `k × k` kernel, padding `k / 2`, stride 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectShape {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub height: usize,
    pub width: usize,
    pub k: usize,
}

/// The direct kernel on host slices (NCHW, f32).
#[cfg(target_arch = "x86_64")]
pub(crate) mod direct {
    use rayon::prelude::*;

    use core::marker::PhantomData;

    /// Output channels per tile.
    const CO: usize = 4;
    /// Most vectors of a tile row: the tile is `CO × 2` vectors (8 accumulators, 2 input
    /// vectors and a broadcast weight fit the 16 AVX2 registers; a `4 × 3` tile needs all 16
    /// and the compiler spills, measured 30% slower).
    const XV_MAX: usize = 2;
    /// The widest vector's lanes (AVX-512).
    const MAX_LANES: usize = 16;

    pub(crate) use super::DirectShape as Shape;

    /// Whether this CPU has an instruction set the kernel is compiled for (AVX2 + FMA; AVX-512
    /// where present).
    pub fn available() -> bool {
        pulp::x86::V3::try_new().is_some()
    }

    /// Narrowest map for the direct kernel: half the pixels of its tile (16 of 32 in AVX-512,
    /// 8 of 16 in AVX2). A narrower row leaves more than half of each vector empty: ResNet's
    /// 256-channel stage at 14 × 14 ran 3–5% faster at batch 8 through im2col (resnet34
    /// 26.4–28.9 → 28.1–29.8 img/s in alternating runs; batch-1 latency unchanged).
    pub fn min_width() -> usize {
        if pulp::x86::V4::try_new().is_some() {
            16
        } else {
            8
        }
    }

    /// Most input channels for the direct kernel. In AVX2 48: with more, im2col's GEMM
    /// (`K = 9·C_in`) is long enough for `gemm` to run near full speed and the direct kernel
    /// wins nothing (module docs). In AVX-512 the direct kernel stays ahead up to 256 (U-Net
    /// 865 → 615 ms, unet_small 68–75 → 50, resnet18 22–24 → 20–22; ResNet-50 unchanged).
    pub fn max_in_channels() -> usize {
        if pulp::x86::V4::try_new().is_some() {
            256
        } else {
            48
        }
    }

    use crate::cpu_kernels::lanes::{run_vectorised, InVectors, Lanes};

    // The output pointer shared by the row-range tasks, each of which writes its own rows
    // (disjoint (batch, row range) parts of one live allocation).
    use crate::cpu_kernels::SendPtr as OutPtr;

    /// `out[b, co, y, x] = bias[co] + Σ w[co, ci, i, j] · x[b, ci, y + i − p, x + j − p]`, zero
    /// outside the map, `p = k / 2`.
    ///
    /// Tasks are ranges of output rows. Each keeps the `k` zero-padded input rows of every
    /// input channel its current output row reads in a rolling window (one new row per channel
    /// per output row: no padded copy of the whole map), and computes every output channel
    /// from it while it sits in the L2 cache.
    pub fn conv_same(x: &[f32], w: &[f32], bias: Option<&[f32]>, s: Shape) -> Vec<f32> {
        conv_same_with(x, w, bias, s, true)
    }

    /// [`conv_same`], with AVX-512 only when `avx512` (the tests run both paths).
    pub(crate) fn conv_same_with(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        s: Shape,
        avx512: bool,
    ) -> Vec<f32> {
        let Shape {
            batch,
            cin,
            cout,
            height,
            width,
            k,
        } = s;
        assert_eq!(x.len(), batch * cin * height * width, "input size");
        assert_eq!(w.len(), cout * cin * k * k, "weight size");
        // Every value is written: each task stores every channel's tiles of its rows.
        let mut out = crate::cpu_kernels::unwritten(batch * cout * height * width);
        let out_ptr = OutPtr(out.as_mut_ptr().cast());
        let rows_per_task = rows_per_task(batch, height, rayon::current_num_threads());
        let tasks_per_batch = height.div_ceil(rows_per_task);
        (0..batch * tasks_per_batch)
            .into_par_iter()
            .for_each(|task| {
                let b = task / tasks_per_batch;
                let y0 = (task % tasks_per_batch) * rows_per_task;
                let rows = y0..(y0 + rows_per_task).min(height);
                let input = &x[b * cin * height * width..][..cin * height * width];
                let out_base = b * cout * height * width;
                let task = RowRange {
                    input,
                    weight: w,
                    bias,
                    s,
                    rows,
                    out: out_ptr,
                    out_base,
                };
                // AVX-512 where the CPU has it (twice the pixels per instruction), else AVX2.
                run_vectorised(task, avx512);
            });
        // SAFETY: the tasks cover every image's rows; each row's tiles cover its width.
        unsafe { crate::cpu_kernels::assume_init(out) }
    }

    /// Output rows per task: up to 4 tasks per thread for balance, each at least 4 rows long so
    /// that refilling its window (k − 1 rows) stays small, and of the counts allowed the one
    /// whose busiest thread has the fewest rows: 28 rows on 2 threads went as 7 tasks of 4 (one
    /// thread idle for 4 of 16 rows), now 4 of 7.
    pub(crate) fn rows_per_task(batch: usize, height: usize, threads: usize) -> usize {
        let most = (4 * threads)
            .div_ceil(batch)
            .clamp(1, height.div_ceil(4).max(1));
        // Rows of the busiest thread, tasks of `rows` rows dealt round-robin (fewer tasks win
        // ties only when they are not more rows).
        let busiest = |rows: usize| (batch * height.div_ceil(rows)).div_ceil(threads) * rows;
        (1..=most)
            .rev()
            .map(|per_batch| height.div_ceil(per_batch))
            .min_by_key(|&rows| busiest(rows))
            .unwrap_or(height.max(1))
    }

    /// Output rows `rows` of one image, every output channel.
    struct RowRange<'a> {
        input: &'a [f32],
        weight: &'a [f32],
        bias: Option<&'a [f32]>,
        s: Shape,
        rows: std::ops::Range<usize>,
        out: OutPtr,
        out_base: usize,
    }

    impl InVectors for RowRange<'_> {
        #[inline(always)]
        fn run<V: Lanes>(self) {
            let Shape {
                cin,
                height,
                width,
                k,
                ..
            } = self.s;
            let p = k / 2;
            // Window row `(ci, slot)` holds padded input row `y + i − p` in slot `(y + i) % k`;
            // `wp` leaves room for the widest tile past the row's end.
            let wp = (width + 2 * p).next_multiple_of(V::LANES) + XV_MAX * V::LANES;
            let mut window = vec![0f32; cin * k * wp];
            let fill = |window: &mut [f32], r: usize| {
                // Padded row r (input row r − p) into slot r % k of every channel.
                for ci in 0..cin {
                    let dst = &mut window[(ci * k + r % k) * wp..][..wp];
                    if r >= p && r - p < height {
                        let src = &self.input[(ci * height + r - p) * width..][..width];
                        dst[p..p + width].copy_from_slice(src);
                    } else {
                        dst[p..p + width].fill(0.0);
                    }
                }
            };
            let (y0, y1) = (self.rows.start, self.rows.end);
            for r in y0..y0 + k - 1 {
                fill(&mut window, r);
            }
            for y in y0..y1 {
                fill(&mut window, y + k - 1);
                let slots: [usize; 7] = core::array::from_fn(|i| (y + i) % k);
                // AVX-512 has 32 registers: 8 channels × 2 vectors of accumulators fit.
                if V::LANES == 16 {
                    self.channel_tiles::<V, 8>(&window, wp, slots, y);
                } else {
                    self.channel_tiles::<V, CO>(&window, wp, slots, y);
                }
            }
        }
    }

    impl RowRange<'_> {
        /// Output row `y`, `C` channels at a time.
        #[inline(always)]
        fn channel_tiles<V: Lanes, const C: usize>(
            &self,
            window: &[f32],
            wp: usize,
            slots: [usize; 7],
            y: usize,
        ) {
            let Shape { cout, k, .. } = self.s;
            let mut co = 0;
            while co < cout {
                let n = C.min(cout - co);
                let channels: [usize; C] = core::array::from_fn(|c| co + c.min(n - 1));
                let tile = Tile::<V, C> {
                    lanes: PhantomData,
                    window,
                    wp,
                    slots,
                    weight: self.weight,
                    bias: self.bias,
                    channels,
                    n,
                    s: self.s,
                    y,
                    out: self.out,
                    out_base: self.out_base,
                };
                match k {
                    3 => tile.row::<3>(),
                    5 => tile.row::<5>(),
                    _ => tile.row::<7>(),
                }
                co += C;
            }
        }
    }

    /// Up to `C` output channels of output row `y`, in vectors `V`.
    struct Tile<'a, V, const C: usize> {
        lanes: PhantomData<V>,
        window: &'a [f32],
        wp: usize,
        slots: [usize; 7],
        weight: &'a [f32],
        bias: Option<&'a [f32]>,
        /// The tile's output channels; only the first `n` are stored (the others repeat the
        /// last one).
        channels: [usize; C],
        n: usize,
        s: Shape,
        y: usize,
        out: OutPtr,
        out_base: usize,
    }

    impl<V: Lanes, const C: usize> Tile<'_, V, C> {
        /// The tiles of one output row, `XV_MAX` vectors wide, then the remainder.
        #[inline(always)]
        fn row<const K: usize>(&self) {
            let width = self.s.width;
            let mut x0 = 0;
            while x0 + XV_MAX * V::LANES <= width {
                self.run::<XV_MAX, K>(x0);
                x0 += XV_MAX * V::LANES;
            }
            match (width - x0).div_ceil(V::LANES) {
                0 => {}
                1 => self.run::<1, K>(x0),
                _ => self.run::<2, K>(x0),
            }
        }

        /// The `CO × XV·LANES` tile at column `x0`: `XV` vectors of pixels per output channel,
        /// kept in registers through the sum over input channels and kernel offsets.
        #[inline(always)]
        fn run<const XV: usize, const K: usize>(&self, x0: usize) {
            let lanes = V::LANES;
            let Shape {
                cin, width, height, ..
            } = self.s;
            let k = K;
            debug_assert_eq!(k, self.s.k);
            let kk = k * k;
            let wrow: [&[f32]; C] =
                core::array::from_fn(|c| &self.weight[self.channels[c] * cin * kk..][..cin * kk]);
            assert!(
                x0 + k - 1 + XV * lanes <= self.wp,
                "window rows cover the tile"
            );
            assert_eq!(self.window.len(), cin * k * self.wp);
            // SAFETY: only called inside the `vectorize` of `V`'s level; window reads
            // stay in row (ci, slot) (asserted above), weight reads below cin·k² in rows of
            // that length, stores in this task's output row.
            unsafe {
                let mut acc = [[V::zero(); XV]; C];
                if let Some(bias) = self.bias {
                    for c in 0..C {
                        acc[c] = [V::splat(bias[self.channels[c]]); XV];
                    }
                }
                let window = self.window.as_ptr();
                for ci in 0..cin {
                    for i in 0..k {
                        let row = window.add((ci * k + self.slots[i]) * self.wp + x0);
                        let wo = (ci * k + i) * k;
                        for j in 0..k {
                            let v: [V; XV] =
                                core::array::from_fn(|q| V::load(row.add(j + q * lanes)));
                            for c in 0..C {
                                let wv = V::splat(*wrow[c].get_unchecked(wo + j));
                                for q in 0..XV {
                                    acc[c][q] = V::mul_add(wv, v[q], acc[c][q]);
                                }
                            }
                        }
                    }
                }
                let valid = (width - x0).min(XV * lanes);
                for (c, &co) in self.channels[..self.n].iter().enumerate() {
                    let dst = self
                        .out
                        .0
                        .add(self.out_base + (co * height + self.y) * width + x0);
                    if valid == XV * lanes {
                        for q in 0..XV {
                            acc[c][q].store(dst.add(q * lanes));
                        }
                    } else {
                        let mut buf = [0f32; XV_MAX * MAX_LANES];
                        for q in 0..XV {
                            acc[c][q].store(buf.as_mut_ptr().add(q * lanes));
                        }
                        core::ptr::copy_nonoverlapping(buf.as_ptr(), dst, valid);
                    }
                }
            }
        }
    }
}

/// What [`Conv2d::forward_bn`] applies to each output channel as the kernels write it: the
/// inference BatchNorm `a·x + b`, then ReLU.
pub(crate) struct Epilogue {
    scale: Vec<f32>,
    shift: Vec<f32>,
    relu: bool,
}

impl Epilogue {
    /// Applies the map to values of output channel `channel`, in the CPU's widest vectors
    /// (the baseline build's are SSE2's four lanes).
    fn apply(&self, channel: usize, values: &mut [f32]) {
        pulp::Arch::new().dispatch(crate::cpu_kernels::ScaleShift {
            values,
            scale: self.scale[channel],
            shift: self.shift[channel],
            relu: self.relu,
        })
    }
}

/// Fewest input channels per group for the im2col path: thinner groups make GEMMs too small to
/// pay for the column buffer (flex loops over them directly; depthwise ones take `depthwise`).
const IM2COL_MIN_GROUP_CHANNELS: usize = 16;

/// Convolution as im2col + GEMM straight from and into NCHW (module docs).
pub(crate) mod im2col {
    use crate::cpu_kernels::{assume_init, assume_init_mut, matmul, unwritten, Init, Strided};
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// Most values in one column buffer (1 MiB): large maps go through in bands of output
    /// rows, so the buffer stays small (PyTorch's oneDNN needs none). With 4 MiB, levit_256's
    /// later passes grew by 6–7 MiB (PyTorch 4–5), 3.6 of them its stem's columns; with 1 MiB
    /// 3–4, first passes 10.6 → 7.6 MiB (resnet18 12.5 → 8.5), batch-1 latency unchanged within
    /// this machine's noise (since products split into whole blocks per thread, a band's
    /// product costs no more synchronisation than one `gemm` call).
    pub(crate) const COLUMN_BUDGET: usize = 1 << 18;
    /// Smallest GEMM (`m·n·k`) that is split over the thread pool.
    pub(crate) const PARALLEL_MIN_WORK: usize = 64 * 64 * 64;

    /// Sizes of one convolution.
    #[derive(Clone, Copy, Debug)]
    pub struct Geometry {
        pub batch: usize,
        pub cin: usize,
        pub height: usize,
        pub width: usize,
        pub cout: usize,
        pub groups: usize,
        /// `[kh, kw]`.
        pub kernel: [usize; 2],
        pub stride: [usize; 2],
        pub dilation: [usize; 2],
        /// Zero padding at the top and on the left (the bottom and right padding only shows
        /// in `out`).
        pub pad: [usize; 2],
        /// Output `[height, width]`.
        pub out: [usize; 2],
    }

    /// `out[b, co, y, x] = bias[co] + Σ w[co, ci, i, j] · x[b, g·C + ci, y·s + i·d − p, …]`.
    ///
    /// For each image, group and band of output rows: the column buffer
    /// `col[(ci, i, j), (y, x)]` (row-major; with stride 1 every run of `x` is one copy of an
    /// input row segment), then one GEMM `out[co, (y, x)] = w[co, (ci, i, j)] · col` written
    /// straight into the NCHW output, split by `gemm` over the thread pool. The weight is used
    /// as it is stored (`[C_out, C_in·kh·kw]` row-major) and the output needs no transpose:
    /// flex converts the input to NHWC, builds 512-pixel tiles and runs one single-threaded
    /// GEMM per tile, so the 14×14 and 7×7 maps of a ResNet's last stages ran on one core.
    pub fn conv(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: Geometry,
        epilogue: Option<&super::Epilogue>,
    ) -> Vec<f32> {
        let Geometry {
            batch,
            cin,
            height,
            width,
            cout,
            groups,
            kernel: [kh, kw],
            out: [out_h, out_w],
            ..
        } = g;
        let (cig, cog) = (cin / groups, cout / groups);
        let depth = cig * kh * kw;
        let plane = out_h * out_w;
        assert_eq!(x.len(), batch * cin * height * width, "input size");
        assert_eq!(w.len(), cout * depth, "weight size");
        // Every value is written by its band's product (plus the bias).
        let mut out = unwritten(batch * cout * plane);
        let pointwise = g.pointwise();
        let band_rows = g.band_rows(depth);
        let col_len = if pointwise {
            0
        } else {
            depth * band_rows * out_w
        };
        // One image: per group and band, its columns, one GEMM (split over the pool when
        // `threaded`) and the epilogue.
        let image = |b: usize,
                     out: &mut [MaybeUninit<f32>],
                     col: &mut [MaybeUninit<f32>],
                     threaded: bool| {
            for group in 0..groups {
                let input = &x[(b * cin + group * cig) * height * width..][..cig * height * width];
                let weight = &w[group * cog * depth..][..cog * depth];
                for y0 in (0..out_h).step_by(band_rows) {
                    let rows = band_rows.min(out_h - y0);
                    let n = rows * out_w;
                    // The band's columns: the map itself (row stride H·W) or the buffer.
                    let (rhs, rhs_rs) = if pointwise {
                        (input.as_ptr(), plane)
                    } else {
                        let col = &mut col[..depth * n];
                        fill_columns(col, input, &g, y0..y0 + rows, threaded);
                        (col.as_ptr().cast::<f32>(), n)
                    };
                    let dst = &mut out[group * cog * plane + y0 * out_w..];
                    let init = bias.map_or(Init::Overwrite, |bias| {
                        Init::RowBias(&bias[group * cog..][..cog])
                    });
                    // SAFETY: dst holds `cog` rows of stride `plane` with `n` values each from
                    // its start (the band lies inside every channel's plane); lhs is
                    // `cog × depth` row-major, rhs `depth × n` with row stride `rhs_rs` (the
                    // group's map, `depth × plane`, or the column buffer), all in bounds.
                    unsafe {
                        matmul(
                            [cog, n, depth],
                            dst.as_mut_ptr().cast(),
                            plane,
                            init,
                            Strided {
                                ptr: weight.as_ptr(),
                                rs: depth as isize,
                                cs: 1,
                            },
                            Strided {
                                ptr: rhs,
                                rs: rhs_rs as isize,
                                cs: 1,
                            },
                            threaded && cog * n * depth >= PARALLEL_MIN_WORK,
                        );
                    }
                    if let Some(epilogue) = epilogue {
                        let apply = |(co, row): (usize, &mut [MaybeUninit<f32>])| {
                            // SAFETY: the product above wrote the band's `n` values.
                            let band = unsafe { assume_init_mut(&mut row[..n]) };
                            epilogue.apply(group * cog + co, band)
                        };
                        if threaded {
                            dst.par_chunks_mut(plane)
                                .take(cog)
                                .enumerate()
                                .for_each(apply);
                        } else {
                            dst.chunks_mut(plane).take(cog).enumerate().for_each(apply);
                        }
                    }
                }
            }
        };
        // A batch that fills the pool runs images in parallel, each GEMM on one thread (no
        // synchronisation inside small GEMMs: batch-8 throughput); otherwise one image at a
        // time with its GEMMs split over the pool.
        let threads = rayon::current_num_threads();
        let image_size = (cout * plane).max(1);
        if batch > 1 && (batch % threads == 0 || batch >= 4 * threads) {
            out.par_chunks_mut(image_size).enumerate().for_each_init(
                || unwritten(col_len),
                |col, (b, out)| image(b, out, col, false),
            );
        } else {
            let mut col = unwritten(col_len);
            for (b, out) in out.chunks_mut(image_size).enumerate() {
                image(b, out, &mut col, true);
            }
        }
        // SAFETY: every group's band of every image was written above.
        unsafe { assume_init(out) }
    }

    impl Geometry {
        /// Whether the convolution is depthwise: one filter per channel (`groups = C_in =
        /// C_out > 1`).
        pub(crate) fn depthwise(&self) -> bool {
            self.groups > 1 && self.groups == self.cin && self.cout == self.cin
        }

        /// Whether the convolution multiplies the map itself (1×1, stride 1, no padding): its
        /// columns are the map, no buffer.
        pub(crate) fn pointwise(&self) -> bool {
            self.kernel == [1, 1]
                && self.stride == [1, 1]
                && self.pad == [0, 0]
                && self.out == [self.height, self.width]
        }

        /// Output rows per band: a band's column buffer (`depth` rows) holds at most
        /// `COLUMN_BUDGET` values; a pointwise convolution takes the map in one band.
        pub(crate) fn band_rows(&self, depth: usize) -> usize {
            if self.pointwise() {
                self.out[0]
            } else {
                (COLUMN_BUDGET / (depth * self.out[1]).max(1)).clamp(1, self.out[0])
            }
        }

        /// For kernel column `j`: the output columns `first..last` whose input column
        /// `x·sw + j·dw − pw` lies inside the map, and the input column of `first` (meaningful
        /// when `first < last`).
        pub(crate) fn inside_columns(&self, j: usize) -> (usize, usize, usize) {
            let [sw, dw, pw] = [self.stride[1], self.dilation[1], self.pad[1]];
            let (width, out_w) = (self.width, self.out[1]);
            let offset = j * dw;
            let first = pw.saturating_sub(offset).div_ceil(sw).min(out_w);
            let last = if width + pw > offset {
                ((width + pw - offset - 1) / sw + 1).min(out_w)
            } else {
                0
            }
            .max(first);
            (first, last, (first * sw + offset).saturating_sub(pw))
        }
    }

    /// `col[(ci, i, j), (y − y0, x)] = input[ci, y·s + i·d − p, x·s + j·d − p]` (0 outside the
    /// map) for the output rows `rows`, rows of `col` in parallel.
    pub(crate) fn fill_columns(
        col: &mut [MaybeUninit<f32>],
        input: &[f32],
        g: &Geometry,
        rows: std::ops::Range<usize>,
        threaded: bool,
    ) {
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let (dh, ph) = (g.dilation[0], g.pad[0]);
        let (height, width, out_w) = (g.height, g.width, g.out[1]);
        let n = rows.len() * out_w;
        let fill_row = |(r, dst): (usize, &mut [MaybeUninit<f32>])| {
            let (ci, i, j) = (r / (kh * kw), r / kw % kh, r % kw);
            let (first, last, x0) = g.inside_columns(j);
            pulp::Arch::new().dispatch(ColumnRow {
                dst,
                channel: &input[ci * height * width..][..height * width],
                first_row: (rows.start * sh + i * dh) as isize - ph as isize,
                row_step: sh,
                height,
                width,
                out_w,
                inside: first..last,
                x0,
                sw,
            })
        };
        if threaded {
            col.par_chunks_mut(n)
                .with_min_len((16384 / n.max(1)).max(1))
                .enumerate()
                .for_each(fill_row);
        } else {
            col.chunks_mut(n).enumerate().for_each(fill_row);
        }
    }

    /// One row of the column buffer, [`fill_columns`]' loop: a struct, whose `call` `pulp`
    /// inlines into its function for each instruction set (an unmarked closure's body stayed a
    /// function of the baseline build, whose SSE2 shuffles moved four values at a time).
    struct ColumnRow<'a> {
        /// The row: `out_w` values per output row of the band.
        dst: &'a mut [MaybeUninit<f32>],
        /// The input channel, `height × width`.
        channel: &'a [f32],
        /// Input row of the band's first output row (negative or past the map: zeros), and the
        /// step to the next.
        first_row: isize,
        row_step: usize,
        height: usize,
        width: usize,
        out_w: usize,
        /// Output columns inside the map, and the input column of the first.
        inside: std::ops::Range<usize>,
        x0: usize,
        /// Column stride.
        sw: usize,
    }

    impl pulp::NullaryFnOnce for ColumnRow<'_> {
        type Output = ();

        #[inline(always)]
        fn call(self) {
            let zero = MaybeUninit::new(0.0);
            let (first, last, x0, sw) = (self.inside.start, self.inside.end, self.x0, self.sw);
            let width = self.width;
            for (y, dst) in self.dst.chunks_mut(self.out_w).enumerate() {
                let iy = self.first_row + (y * self.row_step) as isize;
                if iy < 0 || iy >= self.height as isize {
                    dst.fill(zero);
                    continue;
                }
                let src = &self.channel[iy as usize * width..][..width];
                dst[..first].fill(zero);
                dst[last..].fill(zero);
                if first == last {
                    continue;
                }
                // Inline loops, not `copy_from_slice`: the runs are short (a ResNet's 56, 28,
                // 14 or 7 pixels) and a `memmove` call per run was 5% of a batch's time.
                let dst = &mut dst[first..last];
                if sw == 1 {
                    for (d, s) in dst.iter_mut().zip(&src[x0..]) {
                        *d = MaybeUninit::new(*s);
                    }
                } else if sw == 2 {
                    // Pairs, the first of each: a constant stride the compiler vectorises as
                    // shuffles (ResNet stems and downsampling convolutions).
                    let run = &src[x0..x0 + 2 * dst.len() - 1];
                    let (last, body) = dst.split_last_mut().expect("first < last");
                    for (d, pair) in body.iter_mut().zip(run.chunks_exact(2)) {
                        *d = MaybeUninit::new(pair[0]);
                    }
                    *last = MaybeUninit::new(run[run.len() - 1]);
                } else {
                    for (d, s) in dst.iter_mut().zip(src[x0..].iter().step_by(sw)) {
                        *d = MaybeUninit::new(*s);
                    }
                }
            }
        }
    }
}

/// Other architectures keep Burn's convolution.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) mod direct {
    pub(crate) use super::DirectShape as Shape;

    pub fn available() -> bool {
        false
    }

    pub fn max_in_channels() -> usize {
        0
    }

    pub fn min_width() -> usize {
        usize::MAX
    }

    pub fn conv_same(_: &[f32], _: &[f32], _: Option<&[f32]>, _: Shape) -> Vec<f32> {
        unreachable!("available() is false")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Values in `[-0.5, 0.5)` from a fixed linear congruential sequence.
    pub(crate) fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let n: usize = shape.iter().product();
        let mut state = seed;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// A square `k × k` convolution `(cin, cout, groups, k, stride, dilation, padding
    /// [top, left, bottom, right], bias)` with Burn's initialisation.
    #[allow(clippy::type_complexity)]
    pub(crate) fn conv_of(
        (cin, cout, groups, k, s, d, [t, l, b, r], bias): (
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            [usize; 4],
            bool,
        ),
        device: &Device,
    ) -> Conv2d {
        Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([s, s])
            .with_dilation([d, d])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
            .with_bias(bias)
            .init(device)
    }

    /// `conv.forward(x)` equals Burn's `Conv2d` on the same parameters (≤ 1e-5).
    fn assert_equals_burns(conv: &Conv2d, x: Tensor<4>, case: usize) {
        let ours = conv.forward(x.clone());
        let reference = conv.as_burn().forward(x);
        assert_eq!(ours.dims(), reference.dims(), "case {case}");
        let diff = (ours - reference).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "case {case}: max abs diff {diff}");
    }

    #[test]
    fn im2col_path_equals_burns_conv2d() {
        let device = Device::flex();
        // (batch, cin, cout, groups, h, w, k, stride, dilation, padding [t, l, b, r], bias):
        // ResNet's stem and downsampling shapes, more input channels at stride 1 than the
        // direct kernel takes (`direct::max_in_channels`),
        // asymmetric and over-wide padding, dilation, grouped (ResNeSt's radix) convolutions,
        // and a band split (a map larger than the column budget).
        let cases = [
            (1, 3, 8, 1, 23, 30, 7, 2, 1, [3, 3, 3, 3], false),
            (2, 300, 16, 1, 9, 11, 3, 1, 1, [1, 1, 1, 1], true),
            (1, 20, 12, 1, 12, 13, 3, 2, 1, [1, 1, 1, 1], true),
            (1, 32, 8, 1, 10, 17, 1, 2, 1, [0, 0, 0, 0], false),
            (1, 50, 6, 1, 15, 14, 3, 1, 2, [2, 2, 2, 2], false),
            (2, 64, 32, 2, 8, 9, 3, 1, 1, [1, 1, 1, 1], true),
            (1, 18, 5, 1, 7, 8, 4, 3, 1, [0, 2, 1, 0], true),
            (1, 16, 4, 1, 5, 6, 3, 1, 1, [4, 4, 4, 4], false),
            (1, 300, 4, 1, 40, 80, 3, 1, 1, [1, 1, 1, 1], true),
            (2, 24, 40, 1, 7, 9, 1, 1, 1, [0, 0, 0, 0], true),
            (1, 64, 32, 2, 6, 5, 1, 1, 1, [0, 0, 0, 0], false),
        ];
        for (i, (b, cin, cout, groups, h, w, k, s, d, padding, bias)) in
            cases.into_iter().enumerate()
        {
            let conv = conv_of((cin, cout, groups, k, s, d, padding, bias), &device);
            let x = random([b, cin, h, w], 100 + i as u64, &device);
            assert!(
                conv.im2col_geometry(&x).is_some() && !conv.takes_direct_kernel(&x),
                "case {i} takes the path"
            );
            assert_equals_burns(&conv, x, i);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn direct_row_tasks_cover_the_map_and_balance_the_threads() {
        for threads in 1..=8 {
            for batch in 1..=9 {
                for height in 1..=130 {
                    let rows = direct::rows_per_task(batch, height, threads);
                    let tasks = batch * height.div_ceil(rows);
                    // Every row in a task, no task empty.
                    assert!(rows >= 1 && rows <= height, "{batch}×{height} on {threads}");
                    assert!(
                        height.div_ceil(rows) * rows - height < rows,
                        "{batch}×{height} on {threads}: an empty task"
                    );
                    // At most 4 tasks per thread (rounded up to whole images), and the
                    // busiest thread no busier than with the most tasks allowed.
                    assert!(
                        tasks <= batch * (4 * threads).div_ceil(batch),
                        "{batch}×{height} on {threads}: {tasks} tasks"
                    );
                    let busiest =
                        |rows: usize| (batch * height.div_ceil(rows)).div_ceil(threads) * rows;
                    let most = (4 * threads)
                        .div_ceil(batch)
                        .clamp(1, height.div_ceil(4).max(1));
                    assert!(busiest(rows) <= busiest(height.div_ceil(most)));
                }
            }
        }
        // ResNet's 28-row stage on two threads: 4 tasks of 7 rows, not 7 of 4.
        assert_eq!(direct::rows_per_task(1, 28, 2), 7);
        assert_eq!(direct::rows_per_task(1, 56, 2), 7);
    }

    #[test]
    fn depthwise_kernel_equals_burns_conv2d() {
        let device = Device::flex();
        // (batch, channels, h, w, k, stride, dilation, padding [t, l, b, r], bias): BiFormer's
        // 3×3 and 5×5, VapSR's 7×7 at dilation 3, stride 2, asymmetric and over-wide padding,
        // a 1-pixel-wide map, no padding, maps smaller than the kernel's span.
        let cases = [
            (2, 8, 14, 14, 3, 1, 1, [1, 1, 1, 1], true),
            (1, 5, 11, 9, 5, 1, 1, [2, 2, 2, 2], true),
            (1, 4, 20, 17, 7, 1, 3, [9, 9, 9, 9], false),
            (2, 6, 13, 12, 3, 2, 1, [1, 1, 1, 1], false),
            (1, 3, 9, 10, 4, 3, 1, [0, 2, 1, 0], true),
            (1, 2, 6, 1, 3, 1, 1, [1, 1, 1, 1], true),
            (1, 3, 7, 8, 3, 1, 2, [0, 0, 0, 0], false),
            (1, 2, 3, 4, 5, 1, 1, [4, 4, 4, 4], true),
        ];
        for (i, (b, c, h, w, k, s, d, padding, bias)) in cases.into_iter().enumerate() {
            let conv = conv_of((c, c, c, k, s, d, padding, bias), &device);
            let x = random([b, c, h, w], 300 + i as u64, &device);
            assert!(
                conv.depthwise_geometry(&x).is_some(),
                "case {i} takes the path"
            );
            assert_equals_burns(&conv, x, i);
        }
        // Channel multipliers (C_out = 2·C_in) and grouped convolutions keep flex's path.
        let x = random([1, 4, 6, 6], 7, &device);
        for (cin, cout, groups) in [(4, 8, 4), (4, 4, 2)] {
            let conv = conv_of((cin, cout, groups, 3, 1, 1, [1; 4], true), &device);
            assert!(
                conv.depthwise_geometry(&x).is_none(),
                "{cin}→{cout} in {groups} groups"
            );
        }
    }

    #[test]
    fn forward_bn_equals_conv_then_batch_norm_then_relu() {
        let device = Device::flex();
        // The direct kernel (3×3, 8 channels), im2col (stride 2), a 1×1 convolution, and the
        // depthwise kernel (6 groups).
        let cases = [(8, 3, 1, 1), (20, 3, 2, 1), (32, 1, 1, 1), (6, 3, 1, 6)];
        for (i, (cin, k, stride, groups)) in cases.into_iter().enumerate() {
            let cout = 6;
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .init(&device);
            let mut bn = burn::nn::BatchNormConfig::new(cout).init(&device);
            let ramp = |offset: f32, step: f32| {
                Tensor::<1>::from_floats(
                    [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0].map(|c| offset + step * c),
                    &device,
                )
            };
            bn.gamma = Param::from_tensor(ramp(0.5, -0.2));
            bn.beta = Param::from_tensor(ramp(-0.1, 0.05));
            bn.running_mean = burn::module::RunningState::new(ramp(0.2, -0.1));
            bn.running_var = burn::module::RunningState::new(ramp(0.5, 0.3));
            let x = random([2, cin, 11, 13], 200 + i as u64, &device);
            for relu in [false, true] {
                let want = bn.forward(conv.as_burn().forward(x.clone()));
                let want = if relu {
                    burn::tensor::activation::relu(want)
                } else {
                    want
                };
                let got = conv.forward_bn(x.clone(), &bn, relu);
                assert_eq!(got.dims(), want.dims());
                let diff = (got - want).abs().max().into_scalar::<f32>();
                assert!(diff < 1e-5, "case {i}, relu {relu}: max abs diff {diff}");
            }
        }
    }

    #[test]
    fn direct_kernel_avx2_and_avx512_paths_equal_burns_conv2d() {
        let device = Device::flex();
        if !direct::available() {
            eprintln!("skip: this CPU lacks AVX2+FMA, the direct kernel is not used");
            return;
        }
        if pulp::x86::V4::try_new().is_none() {
            eprintln!("note: no AVX-512 on this CPU, both runs take the AVX2 path");
        }
        // Widths around the 16- and 32-pixel tiles, channel counts off the 4- and 8-channel
        // tiles, more input channels than AVX2's limit.
        for (i, (b, cin, cout, h, w, k)) in [
            (1, 3, 9, 5, 33, 3),
            (2, 6, 13, 7, 47, 5),
            (1, 12, 8, 9, 16, 7),
            (1, 5, 17, 4, 70, 3),
            (1, 70, 10, 6, 21, 3),
        ]
        .into_iter()
        .enumerate()
        {
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .init(&device);
            let x = random([b, cin, h, w], 50 + i as u64, &device);
            let want = conv.as_burn().forward(x.clone()).into_data();
            let want = want.try_into_vec::<f32>().unwrap();
            let xs = x.into_data().try_into_vec::<f32>().unwrap();
            let ws = conv.weight.val().into_data().try_into_vec::<f32>().unwrap();
            let bs = conv
                .bias
                .as_ref()
                .map(|b| b.val().into_data().try_into_vec::<f32>().unwrap());
            let shape = direct::Shape {
                batch: b,
                cin,
                cout,
                height: h,
                width: w,
                k,
            };
            for avx512 in [false, true] {
                let got = direct::conv_same_with(&xs, &ws, bs.as_deref(), shape, avx512);
                let diff = crate::cpu_kernels::max_abs_diff(&got, &want);
                assert!(
                    diff < 1e-5,
                    "case {i}, avx512 {avx512}: max abs diff {diff}"
                );
            }
        }
    }

    #[test]
    fn direct_kernel_equals_burns_conv2d() {
        let device = Device::flex();
        if !direct::available() {
            eprintln!("skip: this CPU lacks AVX2+FMA, the direct kernel is not used");
            return;
        }
        // (batch, cin, cout, h, w, k, bias): widths around the 8- and 16-pixel tiles, channel
        // counts not divisible by the 4-channel tile, kernels 3, 5, 7.
        let cases = [
            (1, 3, 5, 9, 8, 3, true),
            (2, 7, 6, 13, 29, 3, false),
            (1, 16, 3, 11, 50, 5, true),
            (3, 5, 9, 6, 24, 7, true),
            (1, 24, 24, 17, 57, 3, true),
        ];
        for (i, (b, cin, cout, h, w, k, bias)) in cases.into_iter().enumerate() {
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .with_bias(bias)
                .init(&device);
            let x = random([b, cin, h, w], i as u64, &device);
            let ours = conv.forward(x.clone());
            let reference = conv.as_burn().forward(x);
            assert_eq!(ours.dims(), [b, cout, h, w]);
            let diff = (ours - reference).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-5, "case {i}: max abs diff {diff}");
        }
    }
}
