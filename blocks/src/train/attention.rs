//! Scaled dot-product attention with its gradients on the autodiff flex device, per (image,
//! head) in parallel, each a few single-threaded GEMMs:
//!
//! - forward: `S = s · Q Kᵀ + bias`, `P = softmax(S)` (kept for the backward), `O = P V`;
//! - backward: `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`,
//!   `dQ = s · dS K`, `dK = s · dSᵀ Q`, `dbias = Σ_images dS` (the images sharing a bias).
//!
//! Burn's autodiff attention composes a matmul, a scale, the bias add, softmax (libm `expf`
//! per score, then a division), a second matmul, and the backward of each: a dozen tensors of
//! `[B, H, N, N]` per layer.
//!
//! Two entry points: [`forward`] on separate `q`, `k`, `v` (`[B, H, N, d]`), and
//! [`forward_qkv`] on the fused projection `[B, N, 3·H·d]` with the heads merged in its output
//! `[B, N, H·d]`, as ViT and Swin use it. The second reads `q`, `k` and `v` where the
//! projection wrote them and writes its output and the projection's gradient in place: with
//! separate tensors each was copied out of the projection's output, the output's head merge
//! copied, and on the way back each gradient copied into a zeroed tensor of the projection's
//! size and the three summed (about a tenth of a ViT-Tiny training step).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use rayon::prelude::*;

use crate::cpu_kernels::{matmul, Init, SendPtr, SoftmaxRows, Strided};

use burn::backend::tensor::FloatTensor;

use super::{autodiff_primitive, flex_tensor, host, record, vectorised, AutodiffFlex};

/// Sizes of one attention.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    batch: usize,
    heads: usize,
    n_q: usize,
    n_k: usize,
    d: usize,
    d_v: usize,
    /// Images of the bias (`0`: no bias); image `b` takes bias `b % bias_batches`.
    bias_batches: usize,
    scale: f32,
}

/// Where the row-major matrix of (image `b`, head `h`) starts in a buffer, and its row stride.
#[derive(Clone, Copy, Debug)]
struct Heads {
    start: usize,
    image: usize,
    head: usize,
    row: usize,
}

impl Heads {
    /// `[B, H, N, width]`, contiguous.
    fn separate(heads: usize, n: usize, width: usize) -> Self {
        Heads {
            start: 0,
            image: heads * n * width,
            head: n * width,
            row: width,
        }
    }

    /// Part `part` of `parts` of `[B, N, parts·H·width]` (the fused projection: `q | k | v`,
    /// each head-major), or with `parts = 1` the merged heads `[B, N, H·width]`.
    fn fused(part: usize, parts: usize, heads: usize, n: usize, width: usize) -> Self {
        Heads {
            start: part * heads * width,
            image: n * parts * heads * width,
            head: width,
            row: parts * heads * width,
        }
    }

    fn offset(&self, b: usize, h: usize) -> usize {
        self.start + b * self.image + h * self.head
    }

    /// The matrix of (`b`, `h`) in `values`.
    fn matrix(&self, values: &[f32], b: usize, h: usize) -> Strided {
        Strided {
            ptr: values[self.offset(b, h)..].as_ptr(),
            rs: self.row as isize,
            cs: 1,
        }
    }
}

/// The layouts of one recorded attention: `q`, `k` and `v` in their buffers, and the output.
#[derive(Clone, Copy, Debug)]
struct Layouts {
    q: Heads,
    k: Heads,
    v: Heads,
    out: Heads,
}

/// `softmax(scale · q kᵀ + bias) v` recorded with [`AttentionBackward`] when every tensor is
/// f32 on the autodiff flex device (shapes checked by the caller); `None` otherwise.
pub(crate) fn forward(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    bias: Option<&Tensor<4>>,
    scale: f64,
) -> Option<Tensor<4>> {
    let [batch, heads, n_q, d] = q.dims();
    let [_, _, n_k, d_v] = v.dims();
    if n_k == 0 {
        return None;
    }
    let (q, k, v) = (
        autodiff_primitive(q.clone())?,
        autodiff_primitive(k.clone())?,
        autodiff_primitive(v.clone())?,
    );
    let bias = bias_primitive(bias)?;
    let sizes = Sizes {
        batch,
        heads,
        n_q,
        n_k,
        d,
        d_v,
        bias_batches: bias_batches(bias.as_ref()),
        scale: scale as f32,
    };
    let layouts = Layouts {
        q: Heads::separate(heads, n_q, d),
        k: Heads::separate(heads, n_k, d),
        v: Heads::separate(heads, n_k, d_v),
        out: Heads::separate(heads, n_q, d_v),
    };
    let inputs = vec![
        q.primitive().clone(),
        k.primitive().clone(),
        v.primitive().clone(),
    ];
    let (out, state) = attend(inputs, bias.as_ref().map(|b| b.primitive()), sizes, layouts);
    let output = flex_tensor(out, vec![batch, heads, n_q, d_v]);
    Some(match bias {
        Some(bias) => record(
            AttentionBackward,
            [q.node(), k.node(), v.node(), bias.node()],
            state,
            output,
        ),
        None => record(
            AttentionBackward,
            [q.node(), k.node(), v.node()],
            state,
            output,
        ),
    })
}

/// Multi-head attention of a fused projection `qkv` `[B, N, 3·H·d]` (channels `q | k | v`,
/// each head-major) → `[B, N, H·d]` with the heads merged, recorded with
/// [`AttentionBackward`] (one parent for the projection) when the tensors are f32 on the
/// autodiff flex device (shapes checked by the caller); `None` otherwise.
pub(crate) fn forward_qkv(
    qkv: &Tensor<3>,
    heads: usize,
    bias: Option<&Tensor<4>>,
    scale: f64,
) -> Option<Tensor<3>> {
    let [batch, n, channels] = qkv.dims();
    let d = channels / (3 * heads);
    if n == 0 {
        return None;
    }
    let qkv = autodiff_primitive(qkv.clone())?;
    let bias = bias_primitive(bias)?;
    let sizes = Sizes {
        batch,
        heads,
        n_q: n,
        n_k: n,
        d,
        d_v: d,
        bias_batches: bias_batches(bias.as_ref()),
        scale: scale as f32,
    };
    let part = |p: usize| Heads::fused(p, 3, heads, n, d);
    let layouts = Layouts {
        q: part(0),
        k: part(1),
        v: part(2),
        out: Heads::fused(0, 1, heads, n, d),
    };
    let inputs = vec![qkv.primitive().clone()];
    let (out, state) = attend(inputs, bias.as_ref().map(|b| b.primitive()), sizes, layouts);
    let output = flex_tensor(out, vec![batch, n, heads * d]);
    Some(match bias {
        Some(bias) => record(AttentionBackward, [qkv.node(), bias.node()], state, output),
        None => record(AttentionBackward, [qkv.node()], state, output),
    })
}

/// The bias's autodiff primitive (`Some(None)` without a bias), or `None` where the bias is
/// not an f32 tensor of the autodiff flex device.
fn bias_primitive(bias: Option<&Tensor<4>>) -> Option<Option<FloatTensor<AutodiffFlex>>> {
    match bias {
        Some(bias) => autodiff_primitive(bias.clone()).map(Some),
        None => Some(None),
    }
}

/// The images of a bias (its first dimension; 0 without a bias).
fn bias_batches(bias: Option<&FloatTensor<AutodiffFlex>>) -> usize {
    bias.map_or(0, |b| b.primitive().layout().shape()[0])
}

/// The forward of every (image, head), and the state of its backward. `inputs` holds `q`, `k`
/// and `v` (three buffers) or the fused projection (one).
fn attend(
    inputs: Vec<FlexTensor>,
    bias: Option<&FlexTensor>,
    sizes: Sizes,
    layouts: Layouts,
) -> (Vec<f32>, AttentionState) {
    let Sizes {
        batch,
        heads,
        n_q,
        n_k,
        d,
        d_v,
        bias_batches,
        scale,
    } = sizes;
    let views: Vec<_> = inputs.iter().map(host).collect();
    let [q, k, v] = source_values(&views);
    let bias_values = bias.map(host);
    let mut probs = vec![0.0f32; batch * heads * n_q * n_k];
    // Every value is written: each (image, head) writes its output rows.
    let mut out = vec![0.0f32; batch * heads * n_q * d_v];
    let out_ptr = SendPtr(out.as_mut_ptr());
    probs
        .par_chunks_mut(n_q * n_k)
        .enumerate()
        .for_each(|(bh, p)| {
            let (b, h) = (bh / heads, bh % heads);
            let bias = bias_values.as_ref().map(|bias| {
                let plane = (b % bias_batches) * heads + h;
                &bias.values()[plane * n_q * n_k..][..n_q * n_k]
            });
            // SAFETY (both products): the operands are `[n_q × d]`, `[n_k × d]`, `[n_q × n_k]`
            // and `[n_k × d_v]` matrices inside their buffers (the layouts match the shapes);
            // the output matrices of distinct (image, head) pairs are disjoint.
            unsafe {
                matmul(
                    [n_q, n_k, d],
                    p.as_mut_ptr(),
                    n_k,
                    Init::Overwrite,
                    layouts.q.matrix(q, b, h),
                    layouts.k.matrix(k, b, h).transposed(),
                    false,
                );
            }
            // The inference kernel's softmax, compiled for the CPU's vector width (a struct, so
            // that pulp inlines it: called from this closure the row softmax stayed baseline
            // code whose fused multiply-adds were libm `fmaf` calls, 8% of a ViT-Tiny step).
            pulp::Arch::new().dispatch(SoftmaxRows {
                rows: p,
                n: n_k,
                scale,
                bias,
                first_row: 0,
            });
            unsafe {
                matmul(
                    [n_q, d_v, n_k],
                    out_ptr.get().add(layouts.out.offset(b, h)),
                    layouts.out.row,
                    Init::Overwrite,
                    rows(p, n_k),
                    layouts.v.matrix(v, b, h),
                    false,
                );
            }
        });
    let state = AttentionState {
        inputs,
        probs,
        sizes,
        layouts,
    };
    (out, state)
}

/// The buffers of `q`, `k` and `v`: three views, or one fused projection read three times.
fn source_values(views: &[crate::cpu_kernels::HostView]) -> [&[f32]; 3] {
    match views {
        [qkv] => [qkv.values(); 3],
        [q, k, v] => [q.values(), k.values(), v.values()],
        _ => unreachable!("one fused or three separate inputs"),
    }
}

/// A row-major matrix of `width` columns.
fn rows(values: &[f32], width: usize) -> Strided {
    Strided {
        ptr: values.as_ptr(),
        rs: width as isize,
        cs: 1,
    }
}

/// What the backward needs: the inputs (`q`, `k`, `v` or the fused projection), the attention
/// weights and where everything lies.
#[derive(Clone, Debug)]
struct AttentionState {
    inputs: Vec<FlexTensor>,
    probs: Vec<f32>,
    sizes: Sizes,
    layouts: Layouts,
}

/// The backward step; parents `[q, k, v]`, `[q, k, v, bias]`, `[qkv]` or `[qkv, bias]`.
#[derive(Debug)]
struct AttentionBackward;

impl<const N: usize> Backward<Flex, N> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<AttentionState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let AttentionState {
            inputs,
            probs,
            sizes,
            layouts,
        } = ops.state;
        let Sizes {
            batch,
            heads,
            n_q,
            n_k,
            d,
            d_v,
            bias_batches,
            scale,
        } = sizes;
        let dout = host(&grad);
        let dout = dout.values();
        let views: Vec<_> = inputs.iter().map(host).collect();
        let [q, k, v] = source_values(&views);
        let fused = inputs.len() == 1;
        // The bias follows the projection, or q, k and v.
        let bias_node = ops
            .parents
            .get(if fused { 1 } else { 3 })
            .cloned()
            .flatten();
        // The input gradients in the inputs' layouts: every value is written (each (image,
        // head) writes its rows of dQ, dK and dV).
        // Fused: one buffer, the projection's gradient `[B, N, 3·H·d]`, in `dq`.
        let (mut dq, mut dk, mut dv) = if fused {
            (
                vec![0.0f32; 3 * batch * heads * n_q * d],
                Vec::new(),
                Vec::new(),
            )
        } else {
            (
                vec![0.0f32; batch * heads * n_q * d],
                vec![0.0f32; batch * heads * n_k * d],
                vec![0.0f32; batch * heads * n_k * d_v],
            )
        };
        let [dq_ptr, dk_ptr, dv_ptr] = if fused {
            [SendPtr(dq.as_mut_ptr()); 3]
        } else {
            [
                SendPtr(dq.as_mut_ptr()),
                SendPtr(dk.as_mut_ptr()),
                SendPtr(dv.as_mut_ptr()),
            ]
        };
        // The score gradients, kept only where the bias needs them.
        let bias_grad = bias_node.is_some();
        let mut dscores = vec![0.0f32; if bias_grad { probs.len() } else { 0 }];
        let dscores_ptr = SendPtr(dscores.as_mut_ptr());
        (0..batch * heads).into_par_iter().for_each_init(
            || vec![0.0f32; n_q * n_k],
            |ds, bh| {
                let (b, h) = (bh / heads, bh % heads);
                let p = &probs[bh * n_q * n_k..][..n_q * n_k];
                let dout = layouts.out.matrix(dout, b, h);
                // SAFETY (every product): the operands are matrices of the stated sizes inside
                // their buffers; the destinations of distinct (image, head) pairs are disjoint.
                unsafe {
                    // dV = Pᵀ dO, dP = dO Vᵀ.
                    matmul(
                        [n_k, d_v, n_q],
                        dv_ptr.get().add(layouts.v.offset(b, h)),
                        layouts.v.row,
                        Init::Overwrite,
                        rows(p, n_k).transposed(),
                        dout,
                        false,
                    );
                    matmul(
                        [n_q, n_k, d_v],
                        ds.as_mut_ptr(),
                        n_k,
                        Init::Overwrite,
                        dout,
                        layouts.v.matrix(v, b, h).transposed(),
                        false,
                    );
                }
                // dS = P ⊙ (dP − rowsum(dP ⊙ P)).
                vectorised(
                    #[inline(always)]
                    || {
                        for (ds, p) in ds.chunks_mut(n_k).zip(p.chunks(n_k)) {
                            let dot: f32 = ds.iter().zip(p).map(|(g, p)| g * p).sum();
                            for (g, p) in ds.iter_mut().zip(p) {
                                *g = p * (*g - dot);
                            }
                        }
                    },
                );
                if bias_grad {
                    // SAFETY: each task writes its own (image, head) plane of `dscores`,
                    // which outlives the loop.
                    let plane = unsafe {
                        std::slice::from_raw_parts_mut(
                            dscores_ptr.get().add(bh * n_q * n_k),
                            n_q * n_k,
                        )
                    };
                    plane.copy_from_slice(ds);
                }
                for g in ds.iter_mut() {
                    *g *= scale;
                }
                unsafe {
                    // dQ = s·dS K, dK = s·dSᵀ Q.
                    matmul(
                        [n_q, d, n_k],
                        dq_ptr.get().add(layouts.q.offset(b, h)),
                        layouts.q.row,
                        Init::Overwrite,
                        rows(ds, n_k),
                        layouts.k.matrix(k, b, h),
                        false,
                    );
                    matmul(
                        [n_k, d, n_q],
                        dk_ptr.get().add(layouts.k.offset(b, h)),
                        layouts.k.row,
                        Init::Overwrite,
                        rows(ds, n_k).transposed(),
                        layouts.q.matrix(q, b, h),
                        false,
                    );
                }
            },
        );
        if fused {
            if let Some(node) = &ops.parents[0] {
                let shape = vec![batch, n_q, 3 * heads * d];
                grads.register::<Flex>(node.id, flex_tensor(dq, shape));
            }
        } else {
            let [node_q, node_k, node_v] = [0, 1, 2].map(|i| &ops.parents[i]);
            for (node, values, (n, width)) in [
                (node_q, dq, (n_q, d)),
                (node_k, dk, (n_k, d)),
                (node_v, dv, (n_k, d_v)),
            ] {
                if let Some(node) = node {
                    grads.register::<Flex>(
                        node.id,
                        flex_tensor(values, vec![batch, heads, n, width]),
                    );
                }
            }
        }
        if let Some(node) = bias_node {
            // Σ over the images that share each bias plane, in image order.
            let plane = heads * n_q * n_k;
            let mut dbias = vec![0.0f32; bias_batches * plane];
            dbias
                .par_chunks_mut(plane)
                .enumerate()
                .for_each(|(bb, dbias)| {
                    for b in (bb..batch).step_by(bias_batches) {
                        for (g, s) in dbias.iter_mut().zip(&dscores[b * plane..][..plane]) {
                            *g += s;
                        }
                    }
                });
            grads.register::<Flex>(
                node.id,
                flex_tensor(dbias, vec![bias_batches, heads, n_q, n_k]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::random;
    use crate::train::max_diff;

    /// Output and gradients of `Σ attention(q, k, v, bias) · r` for q, k, v and the bias equal
    /// Burn's attention: without a bias, with one bias for every image, and with a bias per
    /// group of images (Swin's windows); more keys than queries and a wider value.
    #[test]
    fn gradients_equal_burns_attention() {
        let device = Device::flex().autodiff();
        let [b, h, n_q, n_k, d, d_v] = [4, 3, 5, 7, 8, 6];
        for (i, bias_batches) in [0, 1, 2].into_iter().enumerate() {
            let seed = 60 + 10 * i as u64;
            let q = random([b, h, n_q, d], seed, &device)
                .mul_scalar(2.0)
                .require_grad();
            let k = random([b, h, n_k, d], seed + 1, &device)
                .mul_scalar(2.0)
                .require_grad();
            let v = random([b, h, n_k, d_v], seed + 2, &device).require_grad();
            let bias = (bias_batches > 0)
                .then(|| random([bias_batches, h, n_q, n_k], seed + 3, &device).require_grad());
            let r = random([b, h, n_q, d_v], seed + 4, &device);
            let scale = (d as f64).powf(-0.5);
            let run = |ours: bool| {
                let y = if ours {
                    forward(&q, &k, &v, bias.as_ref(), scale).expect("the path applies")
                } else {
                    let options = burn::tensor::ops::AttentionModuleOptions {
                        scale: Some(scale),
                        softcap: None,
                        is_causal: false,
                    };
                    // Burn's op broadcasts a bias of one image only: repeat it per image.
                    let bias = bias
                        .clone()
                        .map(|bias| Tensor::cat(vec![bias; b / bias_batches], 0));
                    burn::tensor::module::attention(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        None,
                        bias,
                        options,
                    )
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                let grad = |t: &Tensor<4>| t.grad(&grads).expect("gradient");
                (
                    y.inner(),
                    grad(&q),
                    grad(&k),
                    grad(&v),
                    bias.as_ref().map(grad),
                )
            };
            let (y, dq, dk, dv, dbias) = run(true);
            let (y_ref, dq_ref, dk_ref, dv_ref, dbias_ref) = run(false);
            for (name, a, b) in [
                ("output", y, y_ref),
                ("q gradient", dq, dq_ref),
                ("k gradient", dk, dk_ref),
                ("v gradient", dv, dv_ref),
            ] {
                let diff = max_diff(a, b);
                assert!(diff < 1e-5, "case {i}: {name} differs by {diff}");
            }
            if let (Some(a), Some(b)) = (dbias, dbias_ref) {
                let diff = max_diff(a, b);
                assert!(diff < 1e-5, "case {i}: bias gradient differs by {diff}");
            }
        }
        let plain = random([1, 1, 2, 4], 1, &Device::flex());
        assert!(forward(&plain, &plain, &plain, None, 0.5).is_none());
    }

    /// The fused projection's path: output and gradients of `Σ attention_qkv(qkv, bias) · r`
    /// for the projection and the bias equal Burn's ops on the split heads (split, Burn's
    /// attention, merge), without a bias and with biases shared by one and by two images.
    #[test]
    fn fused_projection_gradients_equal_burns_attention_on_split_heads() {
        let device = Device::flex().autodiff();
        let [b, h, n, d] = [4, 3, 6, 5];
        for (i, bias_batches) in [0, 1, 2].into_iter().enumerate() {
            let seed = 90 + 10 * i as u64;
            let qkv = random([b, n, 3 * h * d, 1], seed, &device)
                .reshape([b, n, 3 * h * d])
                .mul_scalar(2.0)
                .require_grad();
            let bias = (bias_batches > 0)
                .then(|| random([bias_batches, h, n, n], seed + 1, &device).require_grad());
            let r = random([b, n, h * d, 1], seed + 2, &device).reshape([b, n, h * d]);
            let scale = (d as f64).powf(-0.5);
            let run = |ours: bool| {
                let y = if ours {
                    forward_qkv(&qkv, h, bias.as_ref(), scale).expect("the path applies")
                } else {
                    let [q, k, v] = crate::layers::split_qkv(qkv.clone(), h, d);
                    let options = burn::tensor::ops::AttentionModuleOptions {
                        scale: Some(scale),
                        softcap: None,
                        is_causal: false,
                    };
                    let bias = bias
                        .clone()
                        .map(|bias| Tensor::cat(vec![bias; b / bias_batches], 0));
                    let y = burn::tensor::module::attention(q, k, v, None, bias, options);
                    crate::layers::merge_heads(y)
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                (
                    y.inner(),
                    qkv.grad(&grads).expect("gradient"),
                    bias.as_ref()
                        .map(|bias| bias.grad(&grads).expect("gradient")),
                )
            };
            let (y, dqkv, dbias) = run(true);
            let (y_ref, dqkv_ref, dbias_ref) = run(false);
            let diff = max_diff(y, y_ref);
            assert!(diff < 1e-5, "case {i}: output differs by {diff}");
            let diff = max_diff(dqkv, dqkv_ref);
            assert!(
                diff < 1e-5,
                "case {i}: projection gradient differs by {diff}"
            );
            if let (Some(a), Some(b)) = (dbias, dbias_ref) {
                let diff = max_diff(a, b);
                assert!(diff < 1e-5, "case {i}: bias gradient differs by {diff}");
            }
        }
        let plain = random([1, 2, 6, 1], 1, &Device::flex()).reshape([1, 2, 6]);
        assert!(forward_qkv(&plain, 1, None, 0.5).is_none());
    }
}
