//! CPU fast paths for the element-wise math that Burn's flex backend evaluates one element at a
//! time through libm (GELU's `erf` above all: 2.2 ms for a ViT-Tiny MLP's 197×768 activations
//! against PyTorch's 0.13 ms; the sigmoid of attention gates). Each kernel runs on the flex
//! device without autodiff — the GPU keeps Burn's own op, training Burn's op or, for GELU,
//! BatchNorm in training mode and attention, the paths of `train` — and keeps PyTorch's values
//! (≤ 1e-6).
//!
//! The loops are plain, branch-free Rust over slices, compiled once per instruction set
//! through `pulp`'s run-time dispatch (AVX-512, AVX2+FMA, …), so the compiler vectorises them
//! for the CPU the binary runs on (`mul_add` becomes one FMA instruction there; only a CPU
//! without FMA takes the slow software path).

use burn::prelude::*;
use burn::tensor::activation;
use std::mem::MaybeUninit;

/// Whether `x` is an f32 tensor on the plain flex device (no autodiff graph to record).
pub(crate) fn on_plain_flex<const D: usize>(x: &Tensor<D>) -> bool {
    let device = x.device();
    !device.is_autodiff() && device == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

/// How long a helper of [`on_worker`] waits awake for work before it goes to sleep: longer
/// than the single-threaded stretches between a forward pass's parallel ops.
const SPIN_IDLE: std::time::Duration = std::time::Duration::from_millis(2);
/// How long [`on_worker`] waits for its helpers to start (a sleeping worker wakes within tens
/// of microseconds; one busy with other work is not waited for).
const HELPERS_START: std::time::Duration = std::time::Duration::from_micros(100);

/// What a forward pass of [`on_worker`] and its helpers share.
#[derive(Default)]
struct Helpers {
    /// The pass has started: a helper arriving later returns at once.
    started: std::sync::atomic::AtomicBool,
    /// The pass has returned: the helpers return.
    done: std::sync::atomic::AtomicBool,
    /// Helpers waiting awake.
    ready: std::sync::atomic::AtomicUsize,
}

/// Runs `f` (a whole inference forward pass on `x`) on a worker of the rayon pool when `x` is
/// on the plain flex device: every parallel op inside then splits its work on that worker and
/// lets the other workers steal it, instead of handing it from the calling thread to the pool
/// and parking that thread on a futex until the pool is done (10–16% of a ViT-Tiny forward in
/// kernel wake-ups). Meanwhile the other workers stay awake: each runs the pool's pending work
/// as it appears until `f` returns, as OpenMP's threads spin between PyTorch's ops, where
/// rayon would put them to sleep after a few microseconds without work and wake them with a
/// futex for the next op. Autodiff and WGPU tensors run `f` where they are.
pub fn on_worker<R: Send, const D: usize>(
    x: Tensor<D>,
    f: impl FnOnce(Tensor<D>) -> R + Send,
) -> R {
    if !on_plain_flex(&x) {
        return f(x);
    }
    on_pool(|| f(x))
}

/// Runs `f` on a worker of the rayon pool with the other workers awake for its parallel work
/// (see [`on_worker`]); where the caller already is a worker, runs it there. Not for training:
/// a training step run this way (15% faster for ViT-Tiny) no longer gave bit-identical weights
/// from run to run (the exact-resume tests failed): some of Burn's autodiff ops split their
/// reductions by work stealing.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;
    use std::time::Instant;
    if rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| {
        let helpers = Arc::new(Helpers::default());
        let forward_thread = rayon::current_thread_index();
        let shared = helpers.clone();
        rayon::spawn_broadcast(move |context| {
            // Only a worker that is free before the pass starts helps: the pass's own thread,
            // or one meeting this job later while inside a task of the pass (waiting in a
            // nested join), would wait for a pass that waits for it.
            if Some(context.index()) == forward_thread || shared.started.load(SeqCst) {
                return;
            }
            shared.ready.fetch_add(1, SeqCst);
            // Bounded all the same: after SPIN_IDLE without work rayon's sleep takes over.
            let mut idle_since = Instant::now();
            while !shared.done.load(SeqCst) {
                if rayon::yield_now() == Some(rayon::Yield::Executed) {
                    idle_since = Instant::now();
                } else if idle_since.elapsed() > SPIN_IDLE {
                    return;
                } else {
                    // Lets another thread have the core where there are more threads than
                    // cores; returns at once otherwise.
                    std::thread::yield_now();
                }
            }
        });
        let others = rayon::current_num_threads().saturating_sub(1);
        let since = Instant::now();
        while helpers.ready.load(SeqCst) < others && since.elapsed() < HELPERS_START {
            std::hint::spin_loop();
        }
        helpers.started.store(true, SeqCst);
        let out = f();
        helpers.done.store(true, SeqCst);
        out
    })
}

/// The values of a float tensor on the flex device, borrowed from its buffer: no copy when the
/// tensor is contiguous, even when it is shared (a parameter, a residual input). `into_data`
/// copies a shared buffer: ResNet-50's 100 MB of convolution weights on every forward, 5% of
/// its time. Through Burn's backend-extension API (`Tensor::try_into_primitive`).
pub(crate) struct HostView(burn::backend::flex::FlexTensor);

impl HostView {
    /// `None` when `x` is not an f32 tensor of the flex backend (autodiff, GPU, other dtypes).
    pub(crate) fn new<const D: usize>(x: Tensor<D>) -> Option<Self> {
        Self::of_flex(x.try_into_primitive::<burn::backend::Flex>().ok()?)
    }

    /// `None` when `tensor` is not f32.
    pub(crate) fn of_flex(tensor: burn::backend::flex::FlexTensor) -> Option<Self> {
        if tensor.dtype() != burn::tensor::DType::F32 {
            return None;
        }
        Some(Self(if tensor.layout().contiguous_offsets().is_some() {
            tensor
        } else {
            tensor.to_contiguous()
        }))
    }

    /// The values in row-major order of the shape.
    pub(crate) fn values(&self) -> &[f32] {
        let (start, end) = self
            .0
            .layout()
            .contiguous_offsets()
            .expect("made contiguous in new()");
        &self.0.storage::<f32>()[start..end]
    }
}

/// Values per task of the element-wise kernels: a map of at least two of them is split over
/// the pool (ViT-Tiny's MLP activations, 197 × 768, ran on one core while the other waited).
const ELEMENTWISE_CHUNK: usize = 1 << 15;

/// Runs `f` over the tensor's values in place on the host and returns the result on the same
/// device.
fn map_in_place<const D: usize>(x: Tensor<D>, f: impl FnOnce(&mut [f32])) -> Tensor<D> {
    let device = x.device();
    let shape = x.shape();
    let mut values = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("float tensors on flex are f32");
    f(&mut values);
    Tensor::from_data(TensorData::new(values, shape), &device)
}

/// `relu(a + b)`, a residual block's end, in one pass on the flex CPU device (Burn's `add` then
/// `relu`, two passes, elsewhere). NaN stays NaN, as in PyTorch.
pub fn add_relu<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    use rayon::prelude::*;
    if !(on_plain_flex(&a) && on_plain_flex(&b)) || a.dims() != b.dims() {
        return activation::relu(a + b);
    }
    let device = a.device();
    let shape = a.shape();
    let a = HostView::new(a).expect("flex f32 (checked above)");
    let b = HostView::new(b).expect("flex f32 (checked above)");
    let (a, b) = (a.values(), b.values());
    let mut out = unwritten(a.len());
    let add_relu = |((out, a), b): ((&mut [MaybeUninit<f32>], &[f32]), &[f32])| {
        pulp::Arch::new().dispatch(AddRelu { out, a, b })
    };
    if a.len() >= 2 * ELEMENTWISE_CHUNK {
        out.par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(a.par_chunks(ELEMENTWISE_CHUNK))
            .zip(b.par_chunks(ELEMENTWISE_CHUNK))
            .for_each(add_relu);
    } else {
        add_relu(((&mut out, a), b));
    }
    // SAFETY: the zip over equal lengths wrote every value.
    let out = unsafe { assume_init(out) };
    Tensor::from_data(TensorData::new(out, shape), &device)
}

/// [`add_relu`]'s loop over one chunk: a struct, whose `call` `pulp` inlines into its function
/// for each instruction set (an unmarked closure's body stayed a function of the baseline
/// build, SSE2's four lanes: 3% of ResNet-50's time; see `train::vectorised`).
struct AddRelu<'a> {
    out: &'a mut [MaybeUninit<f32>],
    a: &'a [f32],
    b: &'a [f32],
}

impl pulp::NullaryFnOnce for AddRelu<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        for ((o, a), b) in self.out.iter_mut().zip(self.a).zip(self.b) {
            let v = a + b;
            // (NaN stays NaN.)
            o.write(if v < 0.0 { 0.0 } else { v });
        }
    }
}

/// `values ← values · scale + shift`, then ReLU when `relu`, in the CPU's widest vectors: a
/// struct, whose `call` `pulp` inlines into its function for each instruction set (an
/// unmarked closure's body stayed a function of the baseline build, SSE2's four lanes). A
/// BatchNorm's channel, a convolution's epilogue.
pub(crate) struct ScaleShift<'a> {
    pub(crate) values: &'a mut [f32],
    pub(crate) scale: f32,
    pub(crate) shift: f32,
    pub(crate) relu: bool,
}

impl pulp::NullaryFnOnce for ScaleShift<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let (a, b) = (self.scale, self.shift);
        if self.relu {
            for v in self.values {
                *v = (*v * a + b).max(0.0);
            }
        } else {
            for v in self.values {
                *v = *v * a + b;
            }
        }
    }
}

/// `e^v` for `v ≤ 0` (Cody–Waite range reduction, degree-7 polynomial, exponent bits): within
/// 2 ulp of libm's `expf`; inputs below −87 give a tiny normal number instead of 0.
#[inline(always)]
pub(crate) fn exp_nonpositive(v: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by the 1.5·2²³ trick (`f32::round` is a libm call that stops the
    // vectoriser).
    const ROUND: f32 = 12_582_912.0;
    let v = v.max(-87.0);
    let shifted = v * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = v - n * LN2_HI - n * LN2_LO;
    // e^r on [-ln2/2, ln2/2] (Taylor to r⁷: truncation error < 4e-9).
    let p = (1.0f32 / 5040.0).mul_add(r, 1.0 / 720.0);
    let p = p.mul_add(r, 1.0 / 120.0);
    let p = p.mul_add(r, 1.0 / 24.0);
    let p = p.mul_add(r, 1.0 / 6.0);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r, 1.0);
    let p = p.mul_add(r, 1.0);
    // 2ⁿ from n's bits in `shifted` (its low mantissa bits hold n + 2²²): no float-to-int
    // conversion, which would not vectorise.
    let scale = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(ROUND.to_bits())
            .wrapping_add(127)
            << 23,
    );
    p * scale
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26, the form PyTorch's vectorised CPU `erf` uses:
/// `1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵)·e^(−x²)` with `t = 1 / (1 + p|x|)`; absolute error
/// ≤ 1.5e-7.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_72;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = A5
        .mul_add(t, A4)
        .mul_add(t, A3)
        .mul_add(t, A2)
        .mul_add(t, A1)
        * t;
    let y = 1.0 - poly * exp_nonpositive(-a * a);
    y.copysign(x)
}

/// Exact GELU in place: `x · ½ · (1 + erf(x / √2))`.
pub fn gelu_slice(values: &mut [f32]) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                let x = *v;
                *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            }
        },
    )
}

/// GELU's gradient in place: `dx = dy · (Φ(x) + x · φ(x))` with `Φ(x) = ½ (1 + erf(x / √2))`
/// and `φ(x) = e^(−x²/2) / √(2π)`; `grad` holds `dy` on entry.
pub(crate) fn gelu_grad_slice(grad: &mut [f32], x: &[f32]) {
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (g, &x) in grad.iter_mut().zip(x) {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = FRAC_1_SQRT_2PI * exp_nonpositive(-0.5 * x * x);
                *g *= x.mul_add(pdf, cdf);
            }
        },
    )
}

/// Exact (erf) GELU, PyTorch's `nn.GELU()`: a vectorised kernel on the flex CPU device (with
/// its gradient on the autodiff flex device, `train::activation`), Burn's `gelu` elsewhere
/// (GPU).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise(x, gelu_slice, |x| {
        crate::train::activation::gelu(x).unwrap_or_else(activation::gelu)
    })
}

/// `kernel` over the values in place on the flex CPU device (chunks in parallel), Burn's
/// `fallback` elsewhere.
fn elementwise<const D: usize>(
    x: Tensor<D>,
    kernel: fn(&mut [f32]),
    fallback: fn(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    if on_plain_flex(&x) {
        map_in_place(x, |values| {
            use rayon::prelude::*;
            if values.len() >= 2 * ELEMENTWISE_CHUNK {
                values.par_chunks_mut(ELEMENTWISE_CHUNK).for_each(kernel);
            } else {
                kernel(values);
            }
        })
    } else {
        fallback(x)
    }
}

/// The logistic sigmoid in place: `1 / (1 + e^(−x))`, through `e^(−|x|)` so that the
/// exponential never overflows.
pub fn sigmoid_slice(values: &mut [f32]) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                *v = logistic(*v);
            }
        },
    )
}

/// `1 / (1 + e^(−x))` through `e^(−|x|)`, which never overflows.
#[inline(always)]
fn logistic(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let positive = 1.0 / (1.0 + e);
    if x >= 0.0 {
        positive
    } else {
        e * positive
    }
}

/// The logistic sigmoid (`torch.sigmoid`): a vectorised kernel on the flex CPU device (with
/// its gradient on the autodiff flex device, `train::activation`), Burn's `sigmoid` elsewhere.
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise(x, sigmoid_slice, |x| {
        crate::train::activation::sigmoid(x).unwrap_or_else(activation::sigmoid)
    })
}

/// `grad ← grad · σ(x)(1 − σ(x))`, the sigmoid's gradient from its input.
pub(crate) fn sigmoid_grad_slice(grad: &mut [f32], x: &[f32]) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (g, &x) in grad.iter_mut().zip(x) {
                let s = logistic(x);
                *g *= s * (1.0 - s);
            }
        },
    )
}

/// `grad ← grad · σ(x)(1 + x(1 − σ(x)))`, SiLU's gradient from its input.
pub(crate) fn silu_grad_slice(grad: &mut [f32], x: &[f32]) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (g, &x) in grad.iter_mut().zip(x) {
                let s = logistic(x);
                *g *= s * (1.0 + x * (1.0 - s));
            }
        },
    )
}

/// `nn.SiLU` (swish) in place: `x · sigmoid(x)`.
pub fn silu_slice(values: &mut [f32]) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                *v *= logistic(*v);
            }
        },
    )
}

/// SiLU (`nn.SiLU`): one vectorised pass on the flex CPU device (with its gradient on the
/// autodiff flex device), Burn's `silu` elsewhere (flex
/// evaluates `expf` per element: a third of HaloNet-50ts's time).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise(x, silu_slice, |x| {
        crate::train::activation::silu(x).unwrap_or_else(activation::silu)
    })
}

/// LeakyReLU in place: `x` from 0 up, `slope · x` below (Burn's and PyTorch's forward).
pub fn leaky_relu_slice(values: &mut [f32], slope: f32) {
    // A select, not a conditional store: it vectorises (a branch per value mispredicts on
    // activations of random sign; PAN's forward ran 20% slower).
    for v in values.iter_mut() {
        *v = if *v < 0.0 { *v * slope } else { *v };
    }
}

/// `grad ← grad · slope` where `x < 0` (LeakyReLU's gradient, 1 from 0 up as Burn's).
pub(crate) fn leaky_relu_grad_slice(grad: &mut [f32], x: &[f32], slope: f32) {
    for (g, &x) in grad.iter_mut().zip(x) {
        *g = if x < 0.0 { *g * slope } else { *g };
    }
}

/// LeakyReLU (`nn.LeakyReLU(slope)`): one pass in place on the flex CPU device, one recorded
/// operation with its gradient on the autodiff flex device (`train::activation`), Burn's
/// `leaky_relu` elsewhere.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    if on_plain_flex(&x) {
        return map_in_place(x, |values| {
            use rayon::prelude::*;
            values
                .par_chunks_mut(ELEMENTWISE_CHUNK)
                .for_each(|values| leaky_relu_slice(values, slope as f32));
        });
    }
    crate::train::activation::leaky_relu(x, slope)
        .unwrap_or_else(|x| activation::leaky_relu(x, slope))
}

/// `nn.Hardswish` in place: `x · clamp(x + 3, 0, 6) / 6` (one pass; Burn composes five ops).
pub fn hard_swish_slice(values: &mut [f32]) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                let x = *v;
                *v = x * (x + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0);
            }
        },
    )
}

/// Hard swish (`nn.Hardswish`): one vectorised pass on the flex CPU device, Burn's
/// `hard_swish` elsewhere.
pub fn hard_swish<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise(x, hard_swish_slice, activation::hard_swish)
}

/// Softmax of one row after `v ← scale·v + bias` (three passes over the row: scale, bias and
/// maximum; exponentials and their sum; normalisation). Eight-lane partial maxima and sums so
/// that the compiler vectorises the reductions.
#[inline(always)]
pub(crate) fn softmax_row(row: &mut [f32], scale: f32, bias: Option<&[f32]>) {
    const LANES: usize = 8;
    match bias {
        Some(bias) => {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = v.mul_add(scale, *b);
            }
        }
        None => {
            for v in row.iter_mut() {
                *v *= scale;
            }
        }
    }
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, v) in maxima.iter_mut().zip(chunk) {
            *m = m.max(*v);
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &v in chunks.remainder().iter().chain(&maxima) {
        max = max.max(v);
    }
    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, v) in sums.iter_mut().zip(chunk) {
            *v = exp_nonpositive(*v - max);
            *s += *v;
        }
    }
    let mut sum: f32 = 0.0;
    for v in chunks.into_remainder() {
        *v = exp_nonpositive(*v - max);
        sum += *v;
    }
    let inv = 1.0 / (sum + sums.iter().sum::<f32>());
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// `softmax(scale · x + bias)` along the last axis, the attention weights of a transformer:
/// one fused kernel on the flex CPU device (rows in parallel), Burn's ops elsewhere. `bias`
/// has `x`'s trailing shape with leading axes of 1 (or fewer elements that repeat over the
/// leading axes: `[1, H, N, N]` against `[B, H, N, N]`), e.g. a relative-position bias.
/// Rows must hold finite values (no `−∞` masks).
pub fn softmax_last<const D: usize>(
    x: Tensor<D>,
    scale: f32,
    bias: Option<Tensor<D>>,
) -> Tensor<D> {
    if !on_plain_flex(&x) {
        let x = if scale == 1.0 { x } else { x.mul_scalar(scale) };
        let x = match bias {
            Some(bias) => x + bias,
            None => x,
        };
        return activation::softmax(x, D - 1);
    }
    let dims = x.dims();
    let n = dims[D - 1];
    let total: usize = dims.iter().product();
    let bias: Option<Vec<f32>> = bias.map(|b| {
        let bias_dims = b.dims();
        let size: usize = bias_dims.iter().product();
        assert!(
            bias_dims[D - 1] == n && size > 0 && total % size == 0,
            "softmax_last: bias {bias_dims:?} does not broadcast to {dims:?}"
        );
        b.into_data()
            .try_into_vec::<f32>()
            .expect("float tensors on flex are f32")
    });
    if n == 0 || total == 0 {
        return x;
    }
    map_in_place(x, |values| {
        use rayon::prelude::*;
        let rows_per_task = (16384 / n).max(1);
        values
            .par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each(|(task, rows)| {
                pulp::Arch::new().dispatch(SoftmaxRows {
                    rows,
                    n,
                    scale,
                    bias: bias.as_deref(),
                    first_row: task * rows_per_task,
                })
            });
    })
}

/// Rows of [`softmax_last`]'s kernel: a struct rather than a closure so that `pulp` inlines the
/// body into its instruction-set-specific function (a closure body stays a separate function
/// compiled for the baseline CPU, where `mul_add` is a call to libm's `fmaf`).
pub(crate) struct SoftmaxRows<'a> {
    pub(crate) rows: &'a mut [f32],
    pub(crate) n: usize,
    pub(crate) scale: f32,
    pub(crate) bias: Option<&'a [f32]>,
    /// Index of the first row in the whole tensor (where the bias rows repeat from).
    pub(crate) first_row: usize,
}

impl pulp::NullaryFnOnce for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let n = self.n;
        for (r, row) in self.rows.chunks_mut(n).enumerate() {
            let bias_row = match self.bias {
                Some(b) => {
                    let start = ((self.first_row + r) * n) % b.len();
                    Some(&b[start..start + n])
                }
                None => None,
            };
            softmax_row(row, self.scale, bias_row);
        }
    }
}

/// `softmax(q kᵀ · scale + bias) v` per batch and head, `q` `[B, H, N_q, d]`, `k` `[B, H, N_k, d]`,
/// `v` `[B, H, N_k, d_v]` → `[B, H, N_q, d_v]`: Burn's `attention` module op with a bias and no
/// mask. `bias` is `[B_b, H, N_q, N_k]` with `B_b` dividing `B`; batch `b` takes
/// `bias[b % B_b]` (one relative-position bias for every image, or Swin's per-window bias
/// and shift mask for every image's windows). The scores must stay finite (Swin's `−100`
/// mask, not `−∞`).
///
/// On the flex CPU device, tasks of (batch, head, block of query rows) each run `gemm` for
/// the scores, the vectorised softmax and `gemm` for the output, reading `q`, `k` and `v`
/// through their strides (the head split of a fused qkv projection is a strided view: no
/// copy). flex's own op runs one task per head (ViT-Tiny's 3 heads on 2 threads) and calls
/// libm's `expf` per score. On the autodiff flex device the same math with its gradients
/// (`train::attention`); elsewhere Burn's `attention`.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<4>>,
    scale: f64,
) -> Tensor<4> {
    let [b, h, n_q, d] = q.dims();
    let [_, _, n_k, d_v] = v.dims();
    assert_eq!(k.dims(), [b, h, n_k, d], "attention: key shape");
    assert_eq!(v.dims()[..2], [b, h], "attention: value shape");
    if let Some(bias) = &bias {
        let [bb, bh, bq, bk] = bias.dims();
        assert!(
            bb > 0 && b % bb == 0 && [bh, bq, bk] == [h, n_q, n_k],
            "attention: bias {:?} for scores [{b}, {h}, {n_q}, {n_k}]",
            bias.dims()
        );
    }
    if !(on_plain_flex(&q) && on_plain_flex(&k) && on_plain_flex(&v)) || n_k == 0 {
        if let Some(out) = crate::train::attention::forward(&q, &k, &v, bias.as_ref(), scale) {
            return out;
        }
        let options = burn::tensor::ops::AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: false,
        };
        return burn::tensor::module::attention(q, k, v, None, bias, options);
    }
    let device = q.device();
    let strided = |t: Tensor<4>| StridedHost::new(t).expect("flex f32 (checked above)");
    let (q, k, v) = (strided(q), strided(k), strided(v));
    let bias = bias.map(|b| HostView::new(b).expect("flex f32 like q"));
    let bias_batches = bias
        .as_ref()
        .map_or(1, |b| b.values().len() / (h * n_q * n_k));
    // Every value is written by its task's second product (n_k > 0).
    let mut out = unwritten(b * h * n_q * d_v);
    // Blocks of query rows: enough tasks to balance the pool, each long enough for `gemm`,
    // and a score block of at most ATTENTION_SCORE_BUDGET values (memory stays linear in the
    // tokens, as Burn's flash path: global attention over 112² tokens holds 2 × 1 MiB).
    let tasks_per_head = (4 * rayon::current_num_threads())
        .div_ceil(b * h)
        .clamp(1, n_q.div_ceil(16).max(1));
    let rows_per_task = n_q
        .div_ceil(tasks_per_head)
        .min(ATTENTION_SCORE_BUDGET / n_k)
        .max(1);
    let tasks_per_head = n_q.div_ceil(rows_per_task);
    let out_ptr = SendPtr(out.as_mut_ptr().cast());
    {
        use rayon::prelude::*;
        (0..b * h * tasks_per_head)
            .into_par_iter()
            .for_each(|task| {
                let (head, block) = (task / tasks_per_head, task % tasks_per_head);
                let (bi, hi) = (head / h, head % h);
                let rows = block * rows_per_task..((block + 1) * rows_per_task).min(n_q);
                if rows.is_empty() {
                    return;
                }
                let m = rows.len();
                // The first product writes every score (zeros for empty rows, d = 0).
                let mut scores = unwritten(m * n_k);
                if d == 0 {
                    scores.fill(MaybeUninit::new(0.0));
                }
                // SAFETY: every pointer addresses `[rows × d]`, `[n_k × d]`, `[n_k × d_v]`
                // inside the tensors' buffers (StridedHost checks the extents); `out` rows of
                // distinct tasks are disjoint.
                unsafe {
                    let (q_ptr, q_rs, q_cs) = q.matrix(bi, hi, rows.start);
                    let (k_ptr, k_rs, k_cs) = k.matrix(bi, hi, 0);
                    matmul(
                        [m, n_k, d],
                        scores.as_mut_ptr().cast(),
                        n_k,
                        Init::Overwrite,
                        Strided {
                            ptr: q_ptr,
                            rs: q_rs,
                            cs: q_cs,
                        },
                        // kᵀ: its rows are k's columns.
                        Strided {
                            ptr: k_ptr,
                            rs: k_cs,
                            cs: k_rs,
                        },
                        false,
                    );
                    let bias_rows = bias.as_ref().map(|bias| {
                        let start = (((bi % bias_batches) * h + hi) * n_q + rows.start) * n_k;
                        &bias.values()[start..start + m * n_k]
                    });
                    // The first product wrote every score.
                    pulp::Arch::new().dispatch(SoftmaxRows {
                        rows: assume_init_mut(&mut scores),
                        n: n_k,
                        scale: scale as f32,
                        bias: bias_rows,
                        first_row: 0,
                    });
                    let (v_ptr, v_rs, v_cs) = v.matrix(bi, hi, 0);
                    // Token-major output: row `i` of head `hi` at `[bi, i, hi, ·]`.
                    let dst = out_ptr.get().add(((bi * n_q + rows.start) * h + hi) * d_v);
                    matmul(
                        [m, d_v, n_k],
                        dst,
                        h * d_v,
                        Init::Overwrite,
                        Strided {
                            ptr: scores.as_ptr().cast(),
                            rs: n_k as isize,
                            cs: 1,
                        },
                        Strided {
                            ptr: v_ptr,
                            rs: v_rs,
                            cs: v_cs,
                        },
                        false,
                    );
                }
            });
    }
    // SAFETY: every task wrote its rows of every head.
    let out = unsafe { assume_init(out) };
    // Stored `[B, N, H, d]` and seen as `[B, H, N, d]`: the callers' head merge
    // (`swap_dims(1, 2)` then `reshape`) is then free instead of a transposing copy.
    Tensor::from_data(TensorData::new(out, [b, n_q, h, d_v]), &device).swap_dims(1, 2)
}

/// Multi-head [`attention`] of a fused projection: `qkv` `[B, N, 3·H·d]` (channels `q | k | v`,
/// each head-major: timm's `qkv` Linear) → `[B, N, H·d]` with the heads merged; `bias` as for
/// [`attention`]. The same as [`split_qkv`](crate::layers::split_qkv), [`attention`] and
/// [`merge_heads`](crate::layers::merge_heads); on the autodiff flex device one recorded
/// operation whose gradient is the projection's (`train::attention::forward_qkv`: no copies
/// of `q`, `k`, `v` or of their gradients).
///
/// # Panics
/// If the channels are not `3 · heads · d` for some `d`.
pub fn attention_qkv(
    qkv: Tensor<3>,
    heads: usize,
    bias: Option<Tensor<4>>,
    scale: f64,
) -> Tensor<3> {
    let [_, n, channels] = qkv.dims();
    assert!(
        heads > 0 && channels % (3 * heads) == 0,
        "attention_qkv: {channels} channels are not q, k and v of {heads} heads"
    );
    let d = channels / (3 * heads);
    if let Some(bias) = &bias {
        let [bb, bh, bq, bk] = bias.dims();
        assert!(
            bb > 0 && qkv.dims()[0] % bb == 0 && [bh, bq, bk] == [heads, n, n],
            "attention_qkv: bias {:?} for scores [{}, {heads}, {n}, {n}]",
            bias.dims(),
            qkv.dims()[0]
        );
    }
    if let Some(out) = crate::train::attention::forward_qkv(&qkv, heads, bias.as_ref(), scale) {
        return out;
    }
    let [q, k, v] = crate::layers::split_qkv(qkv, heads, d);
    crate::layers::merge_heads(attention(q, k, v, bias, scale))
}

/// Most scores one task of [`attention`] holds (1 MiB).
const ATTENTION_SCORE_BUDGET: usize = 1 << 18;

/// A matrix in memory: its first element and its row and column strides (elements).
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl Strided {
    /// The transposed matrix: the same buffer read with swapped strides.
    pub(crate) fn transposed(self) -> Self {
        Strided {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

// SAFETY: a read-only view; its users' contracts keep the buffer alive and unwritten while
// tasks read it.
unsafe impl Send for Strided {}
unsafe impl Sync for Strided {}

/// What [`matmul`] does with `dst`'s values.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init<'a> {
    /// Writes the product over them (they need not be initialised).
    Overwrite,
    /// Adds the product to them.
    Accumulate,
    /// Writes the product plus `bias[i]` over every value of row `i` (`m` values): a linear
    /// layer's output planes, a convolution's channels.
    RowBias(&'a [f32]),
    /// Writes the product plus `bias[j]` over every value of column `j` (`n` values): a
    /// linear layer's rows.
    ColumnBias(&'a [f32]),
}

impl Init<'_> {
    /// The product's overwrite or accumulation (`Overwrite` for `false`).
    pub(crate) fn accumulating(accumulate: bool) -> Self {
        if accumulate {
            Init::Accumulate
        } else {
            Init::Overwrite
        }
    }
}

/// `dst ← lhs · rhs` (`m × k` by `k × n`), `dst ← dst + lhs · rhs` or the product plus a bias,
/// as `init` says: one `gemm` call writing `dst` row-major with row stride `dst_rs`, or with
/// `threaded` one single-threaded call per thread on a block of rows or columns
/// ([`split_product`]). Every CPU kernel of gaze multiplies matrices through it.
///
/// A bias is added to each block right after its product, while the block is in cache: the
/// bias written first and accumulated into took 30% of a [3136 × 96]·[96 × 288] linear layer
/// on one thread (1.85 ms against 1.30 without a bias), the whole output written twice.
///
/// # Safety
/// Each pointer with its strides addresses its whole matrix inside a live buffer, and nothing
/// else reads or writes `dst`'s matrix meanwhile.
pub(crate) unsafe fn matmul(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    init: Init,
    lhs: Strided,
    rhs: Strided,
    threaded: bool,
) {
    match init {
        Init::RowBias(bias) => assert_eq!(bias.len(), m, "matmul: row bias length"),
        Init::ColumnBias(bias) => assert_eq!(bias.len(), n, "matmul: column bias length"),
        Init::Overwrite | Init::Accumulate => {}
    }
    if let Some(split) = threaded.then(|| split_product(m, n)).flatten() {
        use rayon::prelude::*;
        let dst = SendPtr(dst);
        (0..split.pieces).into_par_iter().for_each(|piece| {
            let (start, len) = split.block(piece);
            // SAFETY: the caller's contract, for block `piece` of its matrices: its rows of
            // dst and lhs, or its columns of dst and rhs (disjoint between pieces).
            unsafe {
                if split.rows {
                    let lhs = Strided {
                        ptr: lhs.ptr.offset(start as isize * lhs.rs),
                        ..lhs
                    };
                    let dst = dst.get().add(start * dst_rs);
                    let init = match init {
                        Init::RowBias(bias) => Init::RowBias(&bias[start..start + len]),
                        init => init,
                    };
                    matmul([len, n, k], dst, dst_rs, init, lhs, rhs, false)
                } else {
                    let rhs = Strided {
                        ptr: rhs.ptr.offset(start as isize * rhs.cs),
                        ..rhs
                    };
                    let dst = dst.get().add(start);
                    let init = match init {
                        Init::ColumnBias(bias) => Init::ColumnBias(&bias[start..start + len]),
                        init => init,
                    };
                    matmul([m, len, k], dst, dst_rs, init, lhs, rhs, false)
                }
            }
        });
        return;
    }
    let parallelism = if threaded {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            matches!(init, Init::Accumulate),
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        add_bias([m, n], dst, dst_rs, init);
    }
}

/// `init`'s bias added to the `m × n` matrix at `dst` (row stride `dst_rs`), vectorised for the
/// CPU; nothing for the other kinds of [`Init`].
///
/// # Safety
/// `dst` addresses the whole matrix, initialised, and nothing else uses it meanwhile.
unsafe fn add_bias([m, n]: [usize; 2], dst: *mut f32, dst_rs: usize, init: Init) {
    if !matches!(init, Init::RowBias(_) | Init::ColumnBias(_)) {
        return;
    }
    pulp::Arch::new().dispatch(AddBias {
        m,
        n,
        dst,
        dst_rs,
        init,
    });
}

/// [`add_bias`]'s loops: a struct, whose `call` `pulp` inlines into its function for each
/// instruction set (an unmarked closure's body stays a function of the baseline build when the
/// compiler does not inline it).
struct AddBias<'a> {
    m: usize,
    n: usize,
    dst: *mut f32,
    dst_rs: usize,
    init: Init<'a>,
}

impl pulp::NullaryFnOnce for AddBias<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        for i in 0..self.m {
            // SAFETY: row `i` of `add_bias`' matrix (its caller's contract).
            let row =
                unsafe { std::slice::from_raw_parts_mut(self.dst.add(i * self.dst_rs), self.n) };
            match self.init {
                Init::RowBias(bias) => {
                    let b = bias[i];
                    for v in row.iter_mut() {
                        *v += b;
                    }
                }
                Init::ColumnBias(bias) => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v += b;
                    }
                }
                Init::Overwrite | Init::Accumulate => {}
            }
        }
    }
}

/// How a threaded product is split over the pool: `pieces` blocks of `len` rows of `dst` (and
/// `lhs`), or of `len` columns (of `dst` and `rhs`), each one single-threaded `gemm` call.
///
/// `gemm`'s own split (`Parallelism::Rayon`) made two threads only 1.3–1.5× one on the products
/// of a batch-1 forward pass (MKL: 1.75×): [196 × 384]·[384 × 768] 0.42 ms against 0.59 on one
/// thread, ResNet's 7² stage 3×3 conv as [512 × 4608]·[4608 × 49] 1.31 ms. Whole blocks per
/// thread: 0.36 and 0.90 ms; levit_384 40 → 31 ms, swin_tiny 64 → 57, resnet34 37 → 34.
struct Split {
    rows: bool,
    /// The rows (or columns) split.
    along: usize,
    len: usize,
    pieces: usize,
}

/// The split of an `m × n` product: along its longer side, in blocks that keep `gemm`'s
/// microkernels whole (16-float vectors across columns); `None` when that side is too short
/// for two blocks.
fn split_product(m: usize, n: usize) -> Option<Split> {
    /// The shortest block worth a thread of its own.
    const MIN_BLOCK: usize = 32;
    let rows = m >= n;
    let (along, unit) = if rows { (m, 8) } else { (n, 16) };
    let pieces = rayon::current_num_threads().min(along / MIN_BLOCK);
    if pieces < 2 {
        return None;
    }
    let len = along.div_ceil(pieces).next_multiple_of(unit);
    Some(Split {
        rows,
        along,
        len,
        pieces: along.div_ceil(len),
    })
}

impl Split {
    /// Block `piece`: its first row or column and its length.
    fn block(&self, piece: usize) -> (usize, usize) {
        let start = piece * self.len;
        (start, self.len.min(self.along - start))
    }
}

/// A buffer of `len` values left unwritten, for a kernel that writes every value before
/// anything reads it (a product's output, a column buffer): zeroing them first was 3–5% of a
/// ResNet-18 forward pass, on one thread while the other waited. [`assume_init`] turns it into
/// the output once written.
pub(crate) fn unwritten(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut buffer = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` values need no initialisation; the capacity is `len`.
    unsafe { buffer.set_len(len) };
    buffer
}

/// The values of a buffer from [`unwritten`].
///
/// # Safety
/// Every value has been written.
pub(crate) unsafe fn assume_init(buffer: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut buffer = std::mem::ManuallyDrop::new(buffer);
    // SAFETY: same allocation, layout and length; the values are written (caller).
    unsafe { Vec::from_raw_parts(buffer.as_mut_ptr().cast(), buffer.len(), buffer.capacity()) }
}

/// A part of a buffer from [`unwritten`] as values.
///
/// # Safety
/// Every value of `part` has been written.
pub(crate) unsafe fn assume_init_mut(part: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout; the values are written (caller).
    unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Values to copy into an [`unwritten`] buffer.
pub(crate) fn as_unwritten(values: &[f32]) -> &[MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout and accepts every value; shared borrow.
    unsafe { &*(values as *const [f32] as *const [MaybeUninit<f32>]) }
}

/// A raw pointer shared by tasks that write disjoint parts of one allocation.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: see the users: tasks write disjoint ranges of a live buffer.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

/// A 4-D f32 flex tensor read through its strides (views from `narrow`/`swap_dims` of a
/// fused projection are not copied); negative strides are made contiguous.
struct StridedHost {
    tensor: burn::backend::flex::FlexTensor,
    strides: [isize; 4],
    offset: usize,
}

// SAFETY: read-only access to an immutable buffer from several tasks.
unsafe impl Sync for StridedHost {}

impl StridedHost {
    fn new(x: Tensor<4>) -> Option<Self> {
        let tensor = x.try_into_primitive::<burn::backend::Flex>().ok()?;
        if tensor.dtype() != burn::tensor::DType::F32 {
            return None;
        }
        let tensor = if tensor.layout().strides().iter().all(|&s| s >= 0) {
            tensor
        } else {
            tensor.to_contiguous()
        };
        let layout = tensor.layout();
        let strides: [isize; 4] = layout.strides().try_into().ok()?;
        let offset = layout.start_offset();
        let dims = layout.shape().to_vec();
        // The last element the strides reach lies inside the buffer.
        let last = offset as isize
            + dims
                .iter()
                .zip(&strides)
                .map(|(&n, &s)| (n.max(1) as isize - 1) * s)
                .sum::<isize>();
        assert!((last as usize) < tensor.storage::<f32>().len().max(1));
        Some(Self {
            tensor,
            strides,
            offset,
        })
    }

    /// The `[rows, cols]` matrix of batch `b`, head `h` from row `row`: pointer, row stride,
    /// column stride.
    fn matrix(&self, b: usize, h: usize, row: usize) -> (*const f32, isize, isize) {
        let [sb, sh, sr, sc] = self.strides;
        let start = self.offset as isize + b as isize * sb + h as isize * sh + row as isize * sr;
        // SAFETY: `start` is the offset of an element inside the buffer (checked in new()).
        let ptr = unsafe { self.tensor.storage::<f32>().as_ptr().offset(start) };
        (ptr, sr, sc)
    }
}

/// The inference BatchNorm as a per-channel affine map `y = a·x + b`: `a = γ / √(var + ε)`,
/// `b = β − mean·a`.
pub(crate) fn batch_norm_affine(bn: &burn::nn::BatchNorm) -> (Vec<f32>, Vec<f32>) {
    let host = |t: Tensor<1>| {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32")
    };
    let (gamma, beta) = (host(bn.gamma.val()), host(bn.beta.val()));
    let (mean, var) = (host(bn.running_mean.value()), host(bn.running_var.value()));
    let eps = bn.epsilon as f32;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), a)| b - m * a)
        .collect();
    (scale, shift)
}

/// BatchNorm with its running statistics (inference): one pass `y = a·x + b` per channel,
/// `a = γ / √(var + ε)`, `b = β − mean·a`, on the flex CPU device; in training mode on the
/// autodiff flex device batch statistics with their gradients (`train::batch_norm`); Burn's
/// `BatchNorm::forward` elsewhere (a frozen layer on the autodiff device, GPU). Burn's inference op is four
/// full passes over the map (subtract, divide, multiply, add): 5% of ResNet-50's time.
pub fn batch_norm<const D: usize>(bn: &burn::nn::BatchNorm, x: Tensor<D>) -> Tensor<D> {
    if !on_plain_flex(&x) {
        return crate::train::batch_norm::forward(bn, x).unwrap_or_else(|x| bn.forward(x));
    }
    let dims = x.dims();
    let channels = dims[1];
    let inner: usize = dims[2..].iter().product();
    let (scale, shift) = batch_norm_affine(bn);
    assert_eq!(
        scale.len(),
        channels,
        "BatchNorm of {} channels",
        scale.len()
    );
    map_in_place(x, |values| {
        use rayon::prelude::*;
        if inner == 1 {
            // [N, C] (BatchNorm1d on features): the channel is the last axis.
            let rows_per_task = (4096 / channels.max(1)).max(1);
            values
                .par_chunks_mut(rows_per_task * channels)
                .for_each(|rows| {
                    for row in rows.chunks_mut(channels) {
                        for ((v, a), b) in row.iter_mut().zip(&scale).zip(&shift) {
                            *v = *v * a + b;
                        }
                    }
                });
        } else {
            values
                .par_chunks_mut(inner)
                .with_min_len((4096 / inner).max(1))
                .enumerate()
                .for_each(|(i, plane)| {
                    pulp::Arch::new().dispatch(ScaleShift {
                        values: plane,
                        scale: scale[i % channels],
                        shift: shift[i % channels],
                        relu: false,
                    })
                });
        }
    })
}

/// Max pooling with Burn's signature (`burn::tensor::module::max_pool2d`): on the flex device
/// without autodiff, with symmetric padding and no dilation, planes in parallel (flex's op was
/// 10–15% of ResNeSt-14d's time in a profile); otherwise Burn's op. PyTorch semantics: padding
/// never wins, NaN propagates.
///
/// Separable, as the maximum is exact: per output row the maximum of its window's input rows,
/// column by column in vectors, then per output value the maximum of its window's columns of
/// that (ResNet's stem pool, 3×3 stride 2 over 64 × 112², took 1.18 ms on two threads with
/// every window read value by value).
pub fn max_pool2d(x: Tensor<4>, options: burn::tensor::ops::MaxPoolOptions<2>) -> Tensor<4> {
    let window = PoolWindow {
        kernel: options.kernel_size,
        stride: options.stride,
        padding: options.padding,
        ceil_mode: options.ceil_mode,
    };
    if options.dilation != [1, 1] || !window.fits(&x) {
        return burn::tensor::module::max_pool2d(x, options);
    }
    window.run_max(x)
}

/// The larger of `max` and `v`, NaN if either is (PyTorch's max pooling).
#[inline(always)]
fn nan_max(max: f32, v: f32) -> f32 {
    if v > max || v.is_nan() {
        v
    } else {
        max
    }
}

/// Average pooling with Burn's signature (`burn::tensor::module::avg_pool2d`), on the host
/// like [`max_pool2d`]. The divisor is PyTorch's: the window clipped to the padded map with
/// `count_include_pad`, to the map without.
pub fn avg_pool2d(x: Tensor<4>, options: burn::tensor::ops::AvgPoolOptions<2>) -> Tensor<4> {
    let window = PoolWindow {
        kernel: options.kernel_size,
        stride: options.stride,
        padding: options.padding,
        ceil_mode: options.ceil_mode,
    };
    if !window.fits(&x) {
        return burn::tensor::module::avg_pool2d(x, options);
    }
    let include_pad = options.count_include_pad;
    window.run(x, |rows, cols, padded_area| {
        let mut sum = 0.0;
        let mut count = 0;
        for row in rows {
            sum += row[cols.clone()].iter().sum::<f32>();
            count += cols.len();
        }
        sum / if include_pad { padded_area } else { count } as f32
    })
}

/// One plane of [`max_pool2d`]: a struct, whose `call` `pulp` inlines into its function for
/// each instruction set (an unmarked closure's body stays a function of the baseline build).
struct MaxPlane<'a> {
    plane: &'a [f32],
    out: &'a mut [MaybeUninit<f32>],
    width: usize,
    /// Per output row (column), the input rows (columns) of its window.
    row_spans: &'a [PoolSpan],
    col_spans: &'a [PoolSpan],
}

impl pulp::NullaryFnOnce for MaxPlane<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let w = self.width;
        let out_w = self.col_spans.len();
        let mut column_max = vec![f32::NEG_INFINITY; w];
        for ((rows, _), out) in self.row_spans.iter().zip(self.out.chunks_mut(out_w)) {
            column_max.fill(f32::NEG_INFINITY);
            for row in self.plane[rows.start * w..rows.end * w].chunks(w) {
                for (max, &v) in column_max.iter_mut().zip(row) {
                    *max = nan_max(*max, v);
                }
            }
            for ((cols, _), out) in self.col_spans.iter().zip(out.iter_mut()) {
                let mut max = f32::NEG_INFINITY;
                for &v in &column_max[cols.clone()] {
                    max = nan_max(max, v);
                }
                out.write(max);
            }
        }
    }
}

/// The geometry of a 2-D pooling window (symmetric padding, no dilation).
struct PoolWindow {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    ceil_mode: bool,
}

impl PoolWindow {
    /// Whether the host kernel takes `x` (otherwise Burn's op runs and reports bad options).
    fn fits(&self, x: &Tensor<4>) -> bool {
        let [_, _, h, w] = x.dims();
        let [(ph, ph_end), (pw, pw_end)] = self.padding;
        // An empty map has no planes to cut into (Burn's op handles it).
        h * w > 0
            && ph == ph_end
            && pw == pw_end
            && self.kernel.iter().all(|&k| k > 0)
            && self.stride.iter().all(|&s| s > 0)
            && h + 2 * ph >= self.kernel[0]
            && w + 2 * pw >= self.kernel[1]
            && 2 * ph <= self.kernel[0]
            && 2 * pw <= self.kernel[1]
            && on_plain_flex(x)
    }

    /// For each output index along `axis`: the input range its window covers and the window's
    /// length clipped to the padded map (PyTorch's average divisor). The output length is
    /// PyTorch's (Burn's `calculate_pool_output_size`).
    fn spans(&self, axis: usize, len: usize) -> Vec<PoolSpan> {
        let (k, s, p) = (self.kernel[axis], self.stride[axis], self.padding[axis].0);
        let padded = len + 2 * p;
        let out = if self.ceil_mode {
            let out = (padded + s - 1 - k) / s + 1;
            // The last window must start inside the map or its leading padding.
            if (out - 1) * s >= len + p {
                out - 1
            } else {
                out
            }
        } else {
            (padded - k) / s + 1
        };
        (0..out)
            .map(|o| {
                let start = (o * s) as isize - p as isize;
                let end = (start + k as isize).min((len + p) as isize);
                let clipped = start.max(0) as usize..end.clamp(0, len as isize) as usize;
                (clipped, (end - start) as usize)
            })
            .collect()
    }

    /// [`max_pool2d`]'s separable maximum.
    fn run_max(&self, x: Tensor<4>) -> Tensor<4> {
        self.each_plane(x, |plane, width, out, row_spans, col_spans| {
            pulp::Arch::new().dispatch(MaxPlane {
                plane,
                out,
                width,
                row_spans,
                col_spans,
            })
        })
    }

    /// `out[b, c, y, x] = pool(rows of the window, its column range, padded area)`.
    fn run<P>(&self, x: Tensor<4>, pool: P) -> Tensor<4>
    where
        P: Fn(&mut dyn Iterator<Item = &[f32]>, std::ops::Range<usize>, usize) -> f32 + Sync,
    {
        self.each_plane(x, |plane, w, out, row_spans, col_spans| {
            let out_w = col_spans.len();
            for ((rows, row_area), out) in row_spans.iter().zip(out.chunks_mut(out_w)) {
                for ((cols, col_area), v) in col_spans.iter().zip(out.iter_mut()) {
                    let mut window = plane[rows.start * w..rows.end * w].chunks(w);
                    v.write(pool(&mut window, cols.clone(), row_area * col_area));
                }
            }
        })
    }

    /// The pooled map, planes in parallel: `per_plane(plane, width, out, row_spans,
    /// col_spans)` writes every value of a plane's output from its input plane, given each
    /// output row's (column's) input rows (columns) and window length ([`spans`](Self::spans)).
    fn each_plane<F>(&self, x: Tensor<4>, per_plane: F) -> Tensor<4>
    where
        F: Fn(&[f32], usize, &mut [MaybeUninit<f32>], &[PoolSpan], &[PoolSpan]) + Sync,
    {
        use rayon::prelude::*;
        let [b, c, h, w] = x.dims();
        let device = x.device();
        let (row_spans, col_spans) = (self.spans(0, h), self.spans(1, w));
        let (out_h, out_w) = (row_spans.len(), col_spans.len());
        let view = HostView::new(x).expect("checked by fits()");
        let input = view.values();
        // Every value is written: `per_plane` writes each plane's.
        let mut out = unwritten(b * c * out_h * out_w);
        out.par_chunks_mut((out_h * out_w).max(1))
            .with_min_len((4096 / (out_h * out_w).max(1)).max(1))
            .zip(input.par_chunks(h * w))
            .for_each(|(out, plane)| per_plane(plane, w, out, &row_spans, &col_spans));
        // SAFETY: every plane's task wrote all of its values.
        let out = unsafe { assume_init(out) };
        Tensor::from_data(TensorData::new(out, [b, c, out_h, out_w]), &device)
    }
}

/// The input rows (or columns) of one output row's (column's) pooling window, clipped to the
/// map, and the window's length clipped to the padded map.
type PoolSpan = (std::ops::Range<usize>, usize);

/// Rows of `channels` values (row-major `[rows, channels]`) as the planes of
/// `Linear::forward_planes`: per block of `group` rows, each channel's `group` values in a
/// row (`[rows / group, channels, group]`; the kernels' unit tests).
#[cfg(test)]
pub(crate) fn to_planes(values: &[f32], channels: usize, group: usize) -> Vec<f32> {
    let mut planes = vec![0f32; values.len()];
    for (t, row) in values.chunks_exact(channels).enumerate() {
        let (block, j) = (t / group, t % group);
        for (ch, &v) in row.iter().enumerate() {
            planes[(block * channels + ch) * group + j] = v;
        }
    }
    planes
}

/// Largest `|a − b|` over two equally long slices (the kernels' unit tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths");
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

/// The vector operations of gaze's hand-vectorised kernels (direct convolution, neighborhood
/// attention), for AVX2 (`__m256`, 8 lanes) and AVX-512 (`__m512`, 16 lanes): one kernel body,
/// generic over `V: Lanes`, compiled for both. Only called inside `pulp`'s `vectorize` of the
/// matching level (the intrinsics inline into the function compiled for it).
#[cfg(target_arch = "x86_64")]
pub(crate) mod lanes {
    use core::arch::x86_64::*;

    pub(crate) trait Lanes: Copy {
        const LANES: usize;
        /// Lane offsets for [`gather`](Self::gather).
        type Index: Copy;
        unsafe fn zero() -> Self;
        unsafe fn splat(v: f32) -> Self;
        unsafe fn load(p: *const f32) -> Self;
        unsafe fn store(self, p: *mut f32);
        /// `a·b + c`.
        unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self;
        /// `LANES` offsets from `p`.
        unsafe fn load_index(p: *const i32) -> Self::Index;
        /// Lane `l` is `base[index[l]]`.
        unsafe fn gather(base: *const f32, index: Self::Index) -> Self;
        /// The first `n ≤ LANES` values at `p`, zeros after (nothing past them is read).
        unsafe fn load_first(p: *const f32, n: usize) -> Self;
        /// Stores the first `n ≤ LANES` lanes at `p` (nothing past them is written).
        unsafe fn store_first(self, p: *mut f32, n: usize);
        /// Lane `l` is lane `index[l]` of `a` followed by `b` (`index[l] < 2·LANES`).
        unsafe fn permute2(a: Self, b: Self, index: Self::Index) -> Self;
        unsafe fn add(a: Self, b: Self) -> Self;
        unsafe fn sub(a: Self, b: Self) -> Self;
        unsafe fn mul(a: Self, b: Self) -> Self;
        unsafe fn div(a: Self, b: Self) -> Self;
        unsafe fn max(a: Self, b: Self) -> Self;
        /// `2ⁿ` from `shifted = n + 1.5·2²³` (integer `n` in its low mantissa bits), as
        /// [`super::exp_nonpositive`] builds it.
        unsafe fn pow2_of_shifted(shifted: Self) -> Self;
    }

    /// A kernel body written once for any vector type, run by [`run_vectorised`].
    pub(crate) trait InVectors {
        /// The body in vectors `V` (implementations are `#[inline(always)]`, so that it is
        /// compiled inside `pulp`'s function for `V`'s instruction set).
        fn run<V: Lanes>(self);
    }

    /// `T` run in vectors `V`, as the `pulp` operation of `V`'s level.
    struct AtLevel<T, V>(T, core::marker::PhantomData<V>);

    impl<T: InVectors, V: Lanes> pulp::NullaryFnOnce for AtLevel<T, V> {
        type Output = ();

        #[inline(always)]
        fn call(self) {
            self.0.run::<V>()
        }
    }

    fn avx512_level(allowed: bool) -> Option<pulp::x86::V4> {
        pulp::x86::V4::try_new().filter(|_| allowed)
    }

    /// The lanes of the vectors [`run_vectorised`] will use.
    pub(crate) fn lanes_of_run(avx512: bool) -> usize {
        if avx512_level(avx512).is_some() {
            16
        } else {
            8
        }
    }

    /// Runs `task` in AVX-512 vectors where the CPU has them and `avx512` allows (the tests
    /// run both paths), else in AVX2.
    ///
    /// # Panics
    /// Without AVX2 + FMA (the kernels' `available()` checks first).
    pub(crate) fn run_vectorised<T: InVectors>(task: T, avx512: bool) {
        if let Some(v4) = avx512_level(avx512) {
            v4.vectorize(AtLevel::<T, __m512>(task, core::marker::PhantomData));
        } else {
            let v3 = pulp::x86::V3::try_new().expect("AVX2 + FMA (checked by available())");
            v3.vectorize(AtLevel::<T, __m256>(task, core::marker::PhantomData));
        }
    }

    /// [`super::exp_nonpositive`] lane by lane (same steps; the range reduction fused).
    #[inline(always)]
    pub(crate) unsafe fn exp_nonpositive<V: Lanes>(v: V) -> V {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        const ROUND: f32 = 12_582_912.0;
        // SAFETY: register arithmetic (the caller runs in `V`'s instruction set).
        unsafe {
            let v = V::max(v, V::splat(-87.0));
            let shifted = V::mul_add(v, V::splat(LOG2E), V::splat(ROUND));
            let n = V::sub(shifted, V::splat(ROUND));
            let r = V::mul_add(n, V::splat(-LN2_HI), v);
            let r = V::mul_add(n, V::splat(-LN2_LO), r);
            let mut p = V::splat(1.0 / 5040.0);
            for c in [
                1.0 / 720.0,
                1.0 / 120.0,
                1.0 / 24.0,
                1.0 / 6.0,
                0.5,
                1.0,
                1.0,
            ] {
                p = V::mul_add(p, r, V::splat(c));
            }
            V::mul(p, V::pow2_of_shifted(shifted))
        }
    }

    /// `Lanes` for a vector type through its intrinsics (the two impls differ only in names).
    macro_rules! lanes {
        (
            $vector:ty, $index:ty, $lanes:literal, $zero:ident, $splat:ident, $load:ident,
            $store:ident, $fma:ident, $load_index:ident, $gather:ident, $load_first:ident,
            $store_first:ident, $permute2:ident, $add:ident, $sub:ident, $mul:ident, $div:ident, $max:ident,
            $pow2:ident
        ) => {
            impl Lanes for $vector {
                const LANES: usize = $lanes;
                type Index = $index;
                #[inline(always)]
                unsafe fn zero() -> Self {
                    unsafe { $zero() }
                }
                #[inline(always)]
                unsafe fn splat(v: f32) -> Self {
                    unsafe { $splat(v) }
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> Self {
                    unsafe { $load(p) }
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut f32) {
                    unsafe { $store(p, self) }
                }
                #[inline(always)]
                unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
                    unsafe { $fma(a, b, c) }
                }
                #[inline(always)]
                unsafe fn load_index(p: *const i32) -> $index {
                    unsafe { $load_index(p.cast()) }
                }
                #[inline(always)]
                unsafe fn gather(base: *const f32, index: $index) -> Self {
                    unsafe { $gather(base, index) }
                }
                #[inline(always)]
                unsafe fn load_first(p: *const f32, n: usize) -> Self {
                    unsafe { $load_first(p, n) }
                }
                #[inline(always)]
                unsafe fn store_first(self, p: *mut f32, n: usize) {
                    unsafe { $store_first(p, n, self) }
                }
                #[inline(always)]
                unsafe fn permute2(a: Self, b: Self, index: $index) -> Self {
                    unsafe { $permute2(a, b, index) }
                }
                #[inline(always)]
                unsafe fn add(a: Self, b: Self) -> Self {
                    unsafe { $add(a, b) }
                }
                #[inline(always)]
                unsafe fn sub(a: Self, b: Self) -> Self {
                    unsafe { $sub(a, b) }
                }
                #[inline(always)]
                unsafe fn mul(a: Self, b: Self) -> Self {
                    unsafe { $mul(a, b) }
                }
                #[inline(always)]
                unsafe fn div(a: Self, b: Self) -> Self {
                    unsafe { $div(a, b) }
                }
                #[inline(always)]
                unsafe fn max(a: Self, b: Self) -> Self {
                    unsafe { $max(a, b) }
                }
                #[inline(always)]
                unsafe fn pow2_of_shifted(shifted: Self) -> Self {
                    unsafe { $pow2(shifted) }
                }
            }
        };
    }

    // The gathers with one argument order (the intrinsics differ).
    #[inline(always)]
    unsafe fn gather256(base: *const f32, index: __m256i) -> __m256 {
        unsafe { _mm256_i32gather_ps::<4>(base, index) }
    }
    #[inline(always)]
    unsafe fn gather512(base: *const f32, index: __m512i) -> __m512 {
        unsafe { _mm512_i32gather_ps::<4>(index, base) }
    }

    // Masked loads (the masked-off lanes are not read, so no fault past a buffer's end).
    #[inline(always)]
    unsafe fn load_first256(p: *const f32, n: usize) -> __m256 {
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
            _mm256_maskload_ps(p, mask)
        }
    }
    #[inline(always)]
    unsafe fn load_first512(p: *const f32, n: usize) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p) }
    }
    #[inline(always)]
    unsafe fn store_first256(p: *mut f32, n: usize, v: __m256) {
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
            _mm256_maskstore_ps(p, mask, v)
        }
    }
    #[inline(always)]
    unsafe fn store_first512(p: *mut f32, n: usize, v: __m512) {
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v) }
    }

    // Two-register permutes: AVX-512 has one instruction; AVX2 permutes both halves by the low
    // three bits and blends on bit 3.
    #[inline(always)]
    unsafe fn permute2_256(a: __m256, b: __m256, index: __m256i) -> __m256 {
        unsafe {
            let from_a = _mm256_permutevar8x32_ps(a, index);
            let from_b = _mm256_permutevar8x32_ps(b, index);
            let take_b = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(index));
            _mm256_blendv_ps(from_a, from_b, take_b)
        }
    }
    #[inline(always)]
    unsafe fn permute2_512(a: __m512, b: __m512, index: __m512i) -> __m512 {
        unsafe { _mm512_permutex2var_ps(a, index, b) }
    }

    /// The bits of 1.5·2²³ less the exponent bias: `shifted`'s bits minus this, shifted into
    /// the exponent field, are `2ⁿ`.
    const POW2_OFFSET: i32 = 12_582_912f32.to_bits() as i32 - 127;
    #[inline(always)]
    unsafe fn pow2_256(shifted: __m256) -> __m256 {
        unsafe {
            let bits = _mm256_castps_si256(shifted);
            let n = _mm256_sub_epi32(bits, _mm256_set1_epi32(POW2_OFFSET));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(n))
        }
    }
    #[inline(always)]
    unsafe fn pow2_512(shifted: __m512) -> __m512 {
        unsafe {
            let bits = _mm512_castps_si512(shifted);
            let n = _mm512_sub_epi32(bits, _mm512_set1_epi32(POW2_OFFSET));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(n))
        }
    }

    lanes!(
        __m256,
        __m256i,
        8,
        _mm256_setzero_ps,
        _mm256_set1_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_fmadd_ps,
        _mm256_loadu_si256,
        gather256,
        load_first256,
        store_first256,
        permute2_256,
        _mm256_add_ps,
        _mm256_sub_ps,
        _mm256_mul_ps,
        _mm256_div_ps,
        _mm256_max_ps,
        pow2_256
    );
    lanes!(
        __m512,
        __m512i,
        16,
        _mm512_setzero_ps,
        _mm512_set1_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_fmadd_ps,
        _mm512_loadu_si512,
        gather512,
        load_first512,
        store_first512,
        permute2_512,
        _mm512_add_ps,
        _mm512_sub_ps,
        _mm512_mul_ps,
        _mm512_div_ps,
        _mm512_max_ps,
        pow2_512
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn pooling_equals_burns() {
        use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
        let device = Device::flex();
        // Odd and even sides, a NaN (max pooling propagates it), negative values (padding
        // must not win a max).
        let mut values: Vec<f32> = (0..2 * 3 * 9 * 8)
            .map(|i| ((i * 37 % 101) as f32 - 60.0) / 7.0)
            .collect();
        values[5] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(values, [2, 3, 9, 8]), &device);
        // (kernel, stride, padding, ceil_mode): ResNet's stem pool, ResNeSt's avd and
        // avg_down pools, HaloNet's 2×2, ceil mode with a partial last window.
        let cases = [
            (3, 2, 1, false),
            (3, 2, 1, true),
            (2, 2, 0, true),
            (2, 2, 0, false),
            (3, 1, 1, false),
            (5, 3, 2, true),
        ];
        let same = |a: Tensor<4>, b: Tensor<4>, what: &str| {
            assert_eq!(a.dims(), b.dims(), "{what}: shape");
            let (a, b) = (
                a.into_data().try_to_vec::<f32>().unwrap(),
                b.into_data().try_to_vec::<f32>().unwrap(),
            );
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-6,
                    "{what} at {i}: {p} vs {q}"
                );
            }
        };
        for (k, s, p, ceil_mode) in cases {
            let max = MaxPoolOptions {
                kernel_size: [k, k],
                stride: [s, s],
                padding: [(p, p); 2],
                dilation: [1, 1],
                ceil_mode,
            };
            same(
                max_pool2d(x.clone(), max.clone()),
                burn::tensor::module::max_pool2d(x.clone(), max),
                &format!("max {k} {s} {p} {ceil_mode}"),
            );
            for count_include_pad in [true, false] {
                let avg = AvgPoolOptions {
                    kernel_size: [k, k],
                    stride: [s, s],
                    padding: [(p, p); 2],
                    count_include_pad,
                    ceil_mode,
                };
                let finite = x.clone().mask_fill(x.clone().is_nan(), 0.5);
                same(
                    avg_pool2d(finite.clone(), avg.clone()),
                    burn::tensor::module::avg_pool2d(finite, avg),
                    &format!("avg {k} {s} {p} {ceil_mode} {count_include_pad}"),
                );
            }
        }
    }

    /// `matmul` equals the naive product for each kind of `Init`, on one thread and split over
    /// the pool by rows (tall) and by columns (wide): each block gets its own slice of a row or
    /// column bias.
    #[test]
    fn matmul_writes_accumulates_and_adds_biases() {
        let value = |i: usize, salt: usize| ((i * 7 + salt * 13) % 23) as f32 / 11.0 - 1.0;
        // (m, n, k): tall (rows split), wide (columns split), too small to split.
        for [m, n, k] in [[300, 40, 30], [40, 300, 30], [5, 7, 3]] {
            let lhs: Vec<f32> = (0..m * k).map(|i| value(i, 1)).collect();
            let rhs: Vec<f32> = (0..k * n).map(|i| value(i, 2)).collect();
            let row_bias: Vec<f32> = (0..m).map(|i| value(i, 3)).collect();
            let column_bias: Vec<f32> = (0..n).map(|i| value(i, 4)).collect();
            let before: Vec<f32> = (0..m * n).map(|i| value(i, 5)).collect();
            let product =
                |i: usize, j: usize| (0..k).map(|t| lhs[i * k + t] * rhs[t * n + j]).sum::<f32>();
            let cases: [(Init, fn(f32, f32, f32) -> f32); 4] = [
                (Init::Overwrite, |p, _, _| p),
                (Init::Accumulate, |p, old, _| old + p),
                (Init::RowBias(&row_bias), |p, _, b| p + b),
                (Init::ColumnBias(&column_bias), |p, _, b| p + b),
            ];
            for (init, want) in cases {
                for threaded in [false, true] {
                    let mut dst = before.clone();
                    // SAFETY: row-major matrices of the sizes given, in live buffers.
                    unsafe {
                        matmul(
                            [m, n, k],
                            dst.as_mut_ptr(),
                            n,
                            init,
                            Strided {
                                ptr: lhs.as_ptr(),
                                rs: k as isize,
                                cs: 1,
                            },
                            Strided {
                                ptr: rhs.as_ptr(),
                                rs: n as isize,
                                cs: 1,
                            },
                            threaded,
                        );
                    }
                    for i in 0..m {
                        for j in 0..n {
                            let bias = match init {
                                Init::RowBias(_) => row_bias[i],
                                Init::ColumnBias(_) => column_bias[j],
                                _ => 0.0,
                            };
                            let expected = want(product(i, j), before[i * n + j], bias);
                            let got = dst[i * n + j];
                            assert!(
                                (got - expected).abs() <= 1e-4,
                                "{init:?} {m}×{n}×{k} threaded {threaded} at ({i}, {j}): {got} vs {expected}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batch_norm_equals_burns() {
        let device = Device::flex();
        let mut bn = burn::nn::BatchNormConfig::new(5).init(&device);
        let ramp = |offset: f32, step: f32| {
            Tensor::<1>::from_floats(
                [0.0, 1.0, 2.0, 3.0, 4.0].map(|i| offset + step * i),
                &device,
            )
        };
        bn.gamma = burn::module::Param::from_tensor(ramp(0.5, 0.3));
        bn.beta = burn::module::Param::from_tensor(ramp(-0.2, 0.1));
        bn.running_mean = burn::module::RunningState::new(ramp(0.1, -0.05));
        bn.running_var = burn::module::RunningState::new(ramp(0.6, 0.4));
        let x4 = Tensor::<4>::random([2, 5, 7, 3], burn::tensor::Distribution::Default, &device);
        let d4 = (batch_norm(&bn, x4.clone()) - bn.forward(x4)).abs().max();
        let x2 = Tensor::<2>::random([9, 5], burn::tensor::Distribution::Default, &device);
        let d2 = (batch_norm(&bn, x2.clone()) - bn.forward(x2)).abs().max();
        assert!(d4.into_scalar::<f32>() < 1e-6);
        assert!(d2.into_scalar::<f32>() < 1e-6);
    }

    #[test]
    fn softmax_last_equals_burns() {
        let device = Device::flex();
        // Rows of 1, 7 (shorter than the 8 lanes), 13 and 197 (ViT's) values; a bias that
        // repeats over the batch axis; large logits that would overflow a naive exp.
        for n in [1, 7, 13, 197] {
            let x = Tensor::<4>::random(
                [2, 3, 5, n],
                burn::tensor::Distribution::Normal(0.0, 4.0),
                &device,
            );
            let bias = Tensor::<4>::random(
                [1, 3, 5, n],
                burn::tensor::Distribution::Normal(0.0, 2.0),
                &device,
            );
            let want = activation::softmax(x.clone().mul_scalar(0.25) + bias.clone(), 3);
            let got = softmax_last(x.clone(), 0.25, Some(bias));
            let d = (got - want).abs().max().into_scalar::<f32>();
            assert!(d < 1e-6, "n = {n}: max diff {d}");
            let big = x.mul_scalar(100.0);
            let want = activation::softmax(big.clone(), 3);
            let got = softmax_last(big, 1.0, None);
            let d = (got - want).abs().max().into_scalar::<f32>();
            assert!(d < 1e-6, "n = {n}, no bias: max diff {d}");
        }
    }

    #[test]
    fn attention_equals_burns_on_strided_heads() {
        let device = Device::flex();
        // q, k, v as the head split of one fused projection (strided views), a bias that
        // repeats over the batch, a value width different from the key width, and a head
        // count that does not divide the thread pool.
        for (b, h, n, d, dv, bias_batches) in
            [(2, 3, 37, 8, 8, 1), (4, 2, 9, 4, 6, 2), (1, 1, 1, 3, 2, 1)]
        {
            let qkv = Tensor::<4>::random(
                [b, n, h, 2 * d + dv],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let q = qkv.clone().narrow(3, 0, d).swap_dims(1, 2);
            let k = qkv.clone().narrow(3, d, d).swap_dims(1, 2);
            let v = qkv.narrow(3, 2 * d, dv).swap_dims(1, 2);
            let bias = Tensor::<4>::random(
                [bias_batches, h, n, n],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let expanded: Tensor<5> = bias.clone().unsqueeze_dim::<5>(0).expand([
                b / bias_batches,
                bias_batches,
                h,
                n,
                n,
            ]);
            let expanded: Tensor<4> = expanded.reshape([b, h, n, n]);
            let options = burn::tensor::ops::AttentionModuleOptions {
                scale: Some(0.3),
                softcap: None,
                is_causal: false,
            };
            let want = burn::tensor::module::attention(
                q.clone(),
                k.clone(),
                v.clone(),
                None,
                Some(expanded),
                options,
            );
            let got = attention(q, k, v, Some(bias), 0.3);
            assert_eq!(got.dims(), [b, h, n, dv]);
            let diff = (got - want).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-5, "({b}, {h}, {n}): max diff {diff}");
        }
    }

    #[test]
    fn hard_swish_equals_burns() {
        let device = Device::flex();
        let x = Tensor::<2>::random(
            [37, 11],
            burn::tensor::Distribution::Uniform(-5.0, 5.0),
            &device,
        );
        let d = (hard_swish(x.clone()) - activation::hard_swish(x))
            .abs()
            .max();
        assert!(d.into_scalar::<f32>() < 1e-6);
    }

    #[test]
    fn add_relu_equals_burns_and_keeps_nan() {
        let device = Device::flex();
        // Below and above the parallel threshold (2 chunks), with a ragged last chunk.
        for len in [1000, 2 * ELEMENTWISE_CHUNK + 123] {
            let a = Tensor::<2>::random([len / 5, 5], Distribution::Uniform(-1.0, 1.0), &device);
            let b = Tensor::<2>::random([len / 5, 5], Distribution::Uniform(-1.0, 1.0), &device);
            let want = activation::relu(a.clone() + b.clone());
            let d = (add_relu(a, b) - want).abs().max().into_scalar::<f32>();
            assert_eq!(d, 0.0, "{len} values");
        }
        let nan = Tensor::<1>::from_floats([f32::NAN, -1.0, 2.0], &device);
        let zero = Tensor::<1>::zeros([3], &device);
        let out = add_relu(nan, zero)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(out[0].is_nan() && out[1] == 0.0 && out[2] == 2.0, "{out:?}");
    }

    #[test]
    fn elementwise_kernels_run_in_chunks_like_one_pass() {
        let device = Device::flex();
        let x = Tensor::<2>::random(
            [197, 3 * ELEMENTWISE_CHUNK / 197 + 1],
            Distribution::Uniform(-4.0, 4.0),
            &device,
        );
        let mut want = x.clone().into_data().try_into_vec::<f32>().unwrap();
        gelu_slice(&mut want);
        let got = gelu(x).into_data().try_into_vec::<f32>().unwrap();
        assert!(got == want, "chunked GELU differs from one pass");
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        // Against f64 erf (through libm's erf on f64 via the series in `erf64`).
        fn erf64(x: f64) -> f64 {
            // erf by its Maclaurin series for |x| < 3, continued fraction tail beyond.
            if x.abs() < 3.0 {
                let mut sum = 0.0f64;
                let mut term = x;
                let mut n = 0.0;
                while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 5.0 {
                    sum += term / (2.0 * n + 1.0);
                    n += 1.0;
                    term *= -x * x / n;
                }
                sum * 2.0 / std::f64::consts::PI.sqrt()
            } else {
                let a = x.abs();
                // erfc continued fraction (Lentz), enough for |x| ≥ 3.
                let mut f = a;
                for k in (1..60).rev() {
                    f = a + (k as f64 / 2.0) / f;
                }
                let erfc = (-a * a).exp() / (f * std::f64::consts::PI.sqrt());
                (1.0 - erfc).copysign(x)
            }
        }
        let xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.0025).collect();
        let mut ys = xs.clone();
        gelu_slice(&mut ys);
        let mut worst = 0.0f64;
        for (&x, &y) in xs.iter().zip(&ys) {
            let x64 = x as f64;
            let want = 0.5 * x64 * (1.0 + erf64(x64 / std::f64::consts::SQRT_2));
            worst = worst.max((y as f64 - want).abs());
        }
        assert!(worst <= 1e-6, "max |gelu - exact| = {worst:e}");
        // Extremes: no NaN, the right limits.
        let mut ext = [-1e30f32, -100.0, -10.0, 0.0, 10.0, 100.0, 1e30];
        gelu_slice(&mut ext);
        assert_eq!(ext[0], 0.0);
        assert_eq!(ext[3], 0.0);
        assert_eq!(ext[4], 10.0);
        assert_eq!(ext[6], 1e30);
        assert!(ext.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn sigmoid_matches_f64() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.05).collect();
        let mut ys = xs.clone();
        sigmoid_slice(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!(
                (y as f64 - want).abs() <= 2e-7,
                "sigmoid({x}) = {y}, want {want}"
            );
        }
        let mut ext = [f32::NEG_INFINITY, -1e30, 1e30, f32::INFINITY];
        sigmoid_slice(&mut ext);
        assert!(
            ext[0] < 1e-37 && ext[1] < 1e-37 && ext[2] == 1.0 && ext[3] == 1.0,
            "{ext:?}"
        );
    }

    #[test]
    fn silu_matches_f64_and_burns() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.05).collect();
        let mut ys = xs.clone();
        silu_slice(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let x64 = x as f64;
            let want = x64 / (1.0 + (-x64).exp());
            assert!(
                (y as f64 - want).abs() <= 2e-7 * want.abs().max(1.0),
                "silu({x}) = {y}, want {want}"
            );
        }
        let device = Device::flex();
        let x = Tensor::<2>::random([300, 700], Distribution::Uniform(-9.0, 9.0), &device);
        let d = (silu(x.clone()) - activation::silu(x))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(d <= 1e-5, "silu against Burn's: {d}");
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        for i in 0..=87_000 {
            let v = (-(i as f32) * 0.001).max(-87.0);
            let (got, want) = (exp_nonpositive(v), v.exp());
            let ulp = (want.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({v}) = {got}, libm {want} ({ulp} ulp)");
        }
    }
}
