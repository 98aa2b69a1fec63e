//! The linear layer every gaze model uses: Burn's `Linear` (same fields `weight`
//! `[d_input, d_output]` and `bias`, same config and defaults, same record), whose forward on
//! the flex CPU device runs one `gemm` call on the tensors' own buffers, split over the thread
//! pool from about a million multiply-adds.
//!
//! Why: flex splits a matrix product over threads only from 192³ multiply-adds, so the token
//! MLPs and projections of small transformers (LeViT-128S: 196 tokens × 128 → 256, 6.4·10⁶)
//! ran on one of the two cores; `gemm` measured here on two threads against one: 196×128·128→256
//! 0.22 against 0.36 ms, 49×256·256→384 0.18 against 0.28 ms. On the autodiff flex device the
//! same product runs with a backward of its own (`train::linear`); GPU tensors keep Burn's
//! `linear`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, LinearLayout};
use burn::prelude::*;

use crate::cpu_kernels::{
    as_unwritten, assume_init, matmul, on_plain_flex, unwritten, HostView, Init, SendPtr, Strided,
};
use std::mem::MaybeUninit;

/// Configuration of [`Linear`]: Burn's `LinearConfig`, field for field.
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether the layer has a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initialisation (Burn's default, gain `1/√3`).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258,fan_out_only:false}")]
    pub initializer: Initializer,
    /// Layout in which the weight is created.
    #[config(default = "LinearLayout::Row")]
    pub layout: LinearLayout,
}

impl LinearConfig {
    /// The layer, initialised as Burn initialises its own.
    pub fn init(&self, device: &Device) -> Linear {
        let burn_linear = burn::nn::LinearConfig::new(self.d_input, self.d_output)
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone())
            .with_layout(self.layout.clone())
            .init(device);
        Linear {
            weight: burn_linear.weight,
            bias: burn_linear.bias,
        }
    }
}

/// `y = x W + b` over the last axis: Burn's `Linear` with a threaded GEMM behind `forward`
/// (module docs).
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_input, d_output]`.
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
}

/// Smallest product (`m·n·k`) split over the thread pool.
pub(crate) const PARALLEL_MIN_WORK: usize = 1 << 20;

impl Linear {
    /// `[…, d_input] → […, d_output]`, as Burn's `Linear::forward`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let weight = self.weight.val();
        let bias = self.bias.as_ref().map(|b| b.val());
        if on_plain_flex(&input) {
            return gemm_linear(input, weight, bias);
        }
        crate::train::linear::forward(self, input)
            .unwrap_or_else(|input| burn::tensor::module::linear(input, weight, bias))
    }
}

impl Linear {
    /// The layer over the channels of a map, `[N, C_in, H, W] → [N, C_out, H, W]`: PyTorch's
    /// `linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)` (BSRN-S writes its 1×1 layers so).
    /// On the flex CPU device each image is one `gemm`, `Wᵀ · X` on its `[C_in, H·W]` plane,
    /// read and written in NCHW: no channels-last copies (the two permutes cost BSRN-S more
    /// than its products).
    pub fn forward_channels(&self, input: Tensor<4>) -> Tensor<4> {
        if !on_plain_flex(&input) {
            return self
                .forward(input.permute([0, 2, 3, 1]))
                .permute([0, 3, 1, 2]);
        }
        let device = input.device();
        let [n, c, h, w] = input.dims();
        let d_output = self.weight.dims()[1];
        let input = HostView::new(input).expect("flex f32 (checked above)");
        let bias = self.bias.as_ref().map(|b| b.val());
        let out = gemm_linear_values(
            input.values(),
            [n * h * w, c],
            self.weight.val(),
            bias,
            Planes::Both(h * w),
        );
        Tensor::from_data(TensorData::new(out, [n, d_output, h, w]), &device)
    }

    /// [`forward`](Self::forward)'s output on the flex CPU device transposed in groups of
    /// `group` consecutive input rows: `[rows / group, d_output, group]` row-major, so that
    /// every output feature of a group is one run of `group` values (for a map `[B, H, W, C]`
    /// and `group = W`: each map row as channel rows, what a kernel vectorised across the
    /// tokens of a row reads). One `gemm` per group, `Wᵀ · xᵀ`, no transposing copy. `None`
    /// off plain flex.
    ///
    /// # Panics
    /// If `group` does not divide the number of rows.
    pub(crate) fn forward_planes<const D: usize>(
        &self,
        input: Tensor<D>,
        group: usize,
    ) -> Option<Vec<f32>> {
        if !on_plain_flex(&input) {
            return None;
        }
        let dims = input.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let input = HostView::new(input).expect("flex f32 (checked above)");
        let bias = self.bias.as_ref().map(|b| b.val());
        Some(gemm_linear_values(
            input.values(),
            [rows, dims[D - 1]],
            self.weight.val(),
            bias,
            Planes::Output(group),
        ))
    }

    /// [`forward`](Self::forward) of an input given in the layout
    /// [`forward_planes`](Self::forward_planes) writes (`[rows / group, d_input, group]`), as
    /// rows `[rows, d_output]` on the flex device: a kernel's channel-row output goes through
    /// the layer without a transposing copy.
    ///
    /// # Panics
    /// If `planes` does not hold `rows · d_input` values or `group` does not divide `rows`.
    pub(crate) fn forward_from_planes(
        &self,
        planes: &[f32],
        rows: usize,
        group: usize,
        device: &Device,
    ) -> Tensor<2> {
        let [d_input, d_output] = self.weight.dims();
        assert_eq!(planes.len(), rows * d_input, "Linear: planes size");
        let bias = self.bias.as_ref().map(|b| b.val());
        let out = gemm_linear_values(
            planes,
            [rows, d_input],
            self.weight.val(),
            bias,
            Planes::Input(group),
        );
        Tensor::from_data(TensorData::new(out, [rows, d_output]), device)
    }
}

/// Which side of a product is laid out as planes of `group` rows (see
/// [`Linear::forward_planes`]).
#[derive(Clone, Copy)]
enum Planes {
    None,
    Input(usize),
    Output(usize),
    /// Both: `[rows / group, d, group]` in and out (an NCHW map, `group = H·W`).
    Both(usize),
}

/// [`Linear::forward`] on flex's buffers: the input made contiguous (a free view when it is).
pub(crate) fn gemm_linear<const D: usize>(
    input: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    let device = input.device();
    let mut shape = input.dims();
    let rows = shape[..D - 1].iter().product::<usize>();
    let d_input = shape[D - 1];
    shape[D - 1] = weight.dims()[1];
    let input = HostView::new(input).expect("flex f32 (checked by the caller)");
    let out = gemm_linear_values(input.values(), [rows, d_input], weight, bias, Planes::None);
    Tensor::from_data(TensorData::new(out, shape), &device)
}

/// `x W + b` for `rows` rows of `d_input` values in `input` (row-major, or planes), as values
/// (row-major, or planes): the weight read with its own strides (a checkpoint's transposed
/// view is not copied).
fn gemm_linear_values(
    input: &[f32],
    [rows, d_input]: [usize; 2],
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    planes: Planes,
) -> Vec<f32> {
    let [weight_input, d_output] = weight.dims();
    assert_eq!(
        d_input, weight_input,
        "Linear: input features {d_input} for a {weight_input} → {d_output} layer"
    );
    assert_eq!(input.len(), rows * d_input, "Linear: input size");
    let group = match planes {
        Planes::None => None,
        Planes::Input(group) | Planes::Output(group) | Planes::Both(group) => {
            assert!(
                group > 0 && rows % group == 0,
                "Linear: {rows} rows in groups of {group}"
            );
            Some(group)
        }
    };
    let bias = bias.map(|b| HostView::new(b).expect("flex f32 like the input"));
    let weight = weight
        .try_into_primitive::<burn::backend::Flex>()
        .expect("flex like the input");
    let layout = weight.layout();
    let strides = layout.strides();
    // Every value is written: by the product (plus the bias), or for an empty product, which
    // writes nothing, the bias or zeros.
    let mut out = unwritten(rows * d_output);
    let multiplies = rows > 0 && d_output > 0 && d_input > 0;
    if !multiplies {
        match &bias {
            Some(bias) if d_output > 0 => {
                for row in out.chunks_mut(d_output) {
                    row.copy_from_slice(as_unwritten(bias.values()));
                }
            }
            _ => out.fill(MaybeUninit::new(0.0)),
        }
    }
    // The bias per row of the product's output (planes: `[d_output, group]`) or per column.
    let init = match (&bias, planes) {
        (None, _) => Init::Overwrite,
        (Some(bias), Planes::Output(_) | Planes::Both(_)) => Init::RowBias(bias.values()),
        (Some(bias), Planes::None | Planes::Input(_)) => Init::ColumnBias(bias.values()),
    };
    if multiplies {
        let storage = weight.storage::<f32>();
        let (rs, cs) = (strides[0], strides[1]);
        // The last element the strided weight reads lies inside the buffer.
        let last = layout.start_offset() as isize
            + (d_input as isize - 1) * rs
            + (d_output as isize - 1) * cs;
        assert!(
            rs >= 0 && cs >= 0 && (last as usize) < storage.len(),
            "Linear: weight layout {strides:?} outside its buffer"
        );
        // SAFETY: within the weight's buffer (checked above).
        let w = Strided {
            ptr: unsafe { storage.as_ptr().add(layout.start_offset()) },
            rs,
            cs,
        };
        let threaded = rows * d_input * d_output >= PARALLEL_MIN_WORK;
        let out_ptr = SendPtr(out.as_mut_ptr().cast());
        // One group's product (planes: a group's block of the input or the output, read with
        // swapped strides where transposed).
        let product = |g: usize, group: usize, threaded: bool| {
            let x = input[g * group * d_input..].as_ptr();
            let rows_of = |rs: usize| Strided {
                ptr: x,
                rs: rs as isize,
                cs: 1,
            };
            // SAFETY: group g's rows of the input and of out (written by this call only), the
            // weight inside its buffer (checked above).
            unsafe {
                let dst = out_ptr.get().add(g * group * d_output);
                // The group's input as rows `[group, d_input]`: row-major, or its plane block
                // read column-wise.
                let x = match planes {
                    Planes::Input(_) | Planes::Both(_) => rows_of(group).transposed(),
                    Planes::None | Planes::Output(_) => rows_of(d_input),
                };
                if matches!(planes, Planes::Output(_) | Planes::Both(_)) {
                    // Output planes `[d_output, group]`: `Wᵀ · xᵀ`.
                    matmul(
                        [d_output, group, d_input],
                        dst,
                        group,
                        init,
                        w.transposed(),
                        x.transposed(),
                        threaded,
                    )
                } else {
                    matmul(
                        [group, d_output, d_input],
                        dst,
                        d_output,
                        init,
                        x,
                        w,
                        threaded,
                    )
                }
            }
        };
        match group {
            None => product(0, rows, threaded),
            // Groups in parallel when there are enough of them to fill the pool, else each
            // group's product threaded (an NCHW map of one image is one group).
            Some(group) if threaded && rows / group >= rayon::current_num_threads() => {
                use rayon::prelude::*;
                (0..rows / group)
                    .into_par_iter()
                    .for_each(|g| product(g, group, false));
            }
            Some(group) => (0..rows / group).for_each(|g| product(g, group, threaded)),
        }
    }
    // SAFETY: every value was written above.
    unsafe { assume_init(out) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_kernels::{max_abs_diff, to_planes};

    #[test]
    fn equals_burns_linear_with_both_weight_layouts() {
        let device = Device::flex();
        for (layout, bias, rows) in [
            (LinearLayout::Row, true, 7),
            (LinearLayout::Col, false, 300),
            (LinearLayout::Col, true, 1),
        ] {
            let layer = LinearConfig::new(37, 29)
                .with_bias(bias)
                .with_layout(layout)
                .init(&device);
            let burn_layer = burn::nn::Linear {
                weight: layer.weight.clone(),
                bias: layer.bias.clone(),
            };
            let x =
                Tensor::<3>::random([2, rows, 37], burn::tensor::Distribution::Default, &device);
            let d = (layer.forward(x.clone()) - burn_layer.forward(x))
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(d < 1e-5, "rows {rows}: max diff {d}");
        }
    }

    /// `forward_planes` is `forward` transposed per group of rows, and `forward_from_planes`
    /// takes that layout back to `forward`'s rows (both weight layouts, with and without bias,
    /// single-threaded and split over the pool).
    #[test]
    fn planes_in_and_out_equal_forward() {
        let device = Device::flex();
        for (layout, bias, groups, group) in [
            (LinearLayout::Row, true, 3, 5),
            (LinearLayout::Col, false, 2, 7),
            (LinearLayout::Row, true, 40, 56),
        ] {
            let layer = LinearConfig::new(96, 48)
                .with_bias(bias)
                .with_layout(layout)
                .init(&device);
            let rows = groups * group;
            let x = Tensor::<3>::random(
                [groups, group, 96],
                burn::tensor::Distribution::Default,
                &device,
            );
            let want: Vec<f32> = layer
                .forward(x.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let planes = layer.forward_planes(x.clone(), group).unwrap();
            let d = max_abs_diff(&planes, &to_planes(&want, 48, group));
            assert!(d < 1e-5, "planes out: max diff {d}");
            // The input as planes `[groups, 96, group]`.
            let xs: Vec<f32> = x.clone().into_data().try_to_vec::<f32>().unwrap();
            let x_planes = to_planes(&xs, 96, group);
            let got: Vec<f32> = layer
                .forward_from_planes(&x_planes, rows, group, &device)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-5, "planes in: max diff {d}");
        }
    }

    /// `forward_channels` is the permute–forward–permute it replaces (both weight layouts,
    /// with and without bias; one image with a threaded product, batches over the pool, a
    /// product too small to thread, a non-contiguous input).
    #[test]
    fn forward_channels_is_linear_over_the_channel_axis() {
        let device = Device::flex();
        for (layout, bias, [n, c, h, w], transposed) in [
            (LinearLayout::Row, true, [1, 48, 40, 36], false),
            (LinearLayout::Col, false, [3, 48, 17, 20], false),
            (LinearLayout::Col, true, [2, 5, 3, 4], false),
            (LinearLayout::Row, true, [2, 12, 9, 11], true),
        ] {
            let layer = LinearConfig::new(c, 29)
                .with_bias(bias)
                .with_layout(layout)
                .init(&device);
            let x = if transposed {
                Tensor::<4>::random([n, c, w, h], burn::tensor::Distribution::Default, &device)
                    .swap_dims(2, 3)
            } else {
                Tensor::<4>::random([n, c, h, w], burn::tensor::Distribution::Default, &device)
            };
            let want = layer
                .forward(x.clone().permute([0, 2, 3, 1]))
                .permute([0, 3, 1, 2]);
            let got = layer.forward_channels(x);
            assert_eq!(got.dims(), [n, 29, h, w]);
            let d = (got - want).abs().max().into_scalar::<f32>();
            assert!(d < 1e-5, "{n}×{c}×{h}×{w}: max diff {d}");
        }
    }
}
