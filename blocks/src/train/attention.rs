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

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::prelude::*;
use rayon::prelude::*;

use crate::cpu_kernels::{matmul, SendPtr, SoftmaxRows, Strided};

use super::{autodiff_primitive, flex_tensor, host, record, vectorised};

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
    let bias = match bias {
        Some(bias) => Some(autodiff_primitive(bias.clone())?),
        None => None,
    };
    let sizes = Sizes {
        batch,
        heads,
        n_q,
        n_k,
        d,
        d_v,
        bias_batches: bias
            .as_ref()
            .map_or(0, |b| b.primitive().layout().shape()[0]),
        scale: scale as f32,
    };
    let (qv, kv, vv) = (
        host(q.primitive()),
        host(k.primitive()),
        host(v.primitive()),
    );
    let bias_values = bias.as_ref().map(|b| host(b.primitive()));
    let mut probs = vec![0.0f32; batch * heads * n_q * n_k];
    let mut out = vec![0.0f32; batch * heads * n_q * d_v];
    probs
        .par_chunks_mut(n_q * n_k)
        .zip(out.par_chunks_mut(n_q * d_v))
        .enumerate()
        .for_each(|(bh, (p, o))| {
            let (b, h) = (bh / heads, bh % heads);
            let bias = bias_values.as_ref().map(|bias| {
                let plane = (b % sizes.bias_batches) * heads + h;
                &bias.values()[plane * n_q * n_k..][..n_q * n_k]
            });
            let q = &qv.values()[bh * n_q * d..][..n_q * d];
            let k = &kv.values()[bh * n_k * d..][..n_k * d];
            let v = &vv.values()[bh * n_k * d_v..][..n_k * d_v];
            // SAFETY (both products): row-major operands and destinations of the stated
            // sizes, inside their slices.
            unsafe {
                matmul(
                    [n_q, n_k, d],
                    p.as_mut_ptr(),
                    n_k,
                    false,
                    rows(q, d),
                    rows(k, d).transposed(),
                    false,
                );
            }
            // The inference kernel's softmax, compiled for the CPU's vector width (a struct, so
            // that pulp inlines it: called from this closure the row softmax stayed baseline
            // code whose fused multiply-adds were libm `fmaf` calls, 8% of a ViT-Tiny step).
            pulp::Arch::new().dispatch(SoftmaxRows {
                rows: p,
                n: n_k,
                scale: sizes.scale,
                bias,
                first_row: 0,
            });
            unsafe {
                matmul(
                    [n_q, d_v, n_k],
                    o.as_mut_ptr(),
                    d_v,
                    false,
                    rows(p, n_k),
                    rows(v, d_v),
                    false,
                );
            }
        });
    let state = AttentionState {
        q: q.primitive().clone(),
        k: k.primitive().clone(),
        v: v.primitive().clone(),
        probs,
        sizes,
    };
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

/// A row-major matrix of `width` columns.
fn rows(values: &[f32], width: usize) -> Strided {
    Strided {
        ptr: values.as_ptr(),
        rs: width as isize,
        cs: 1,
    }
}

/// What the backward needs: the inputs and the attention weights.
#[derive(Clone, Debug)]
struct AttentionState {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    probs: Vec<f32>,
    sizes: Sizes,
}

/// The backward step; parents `[q, k, v]` or `[q, k, v, bias]`.
#[derive(Debug)]
struct AttentionBackward;

impl<const N: usize> Backward<Flex, N> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<AttentionState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let AttentionState {
            q,
            k,
            v,
            probs,
            sizes,
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
        let (dout, q, k, v) = (host(&grad), host(&q), host(&k), host(&v));
        let bias_grad = ops.parents.get(3).is_some_and(Option::is_some);
        let mut dq = vec![0.0f32; batch * heads * n_q * d];
        let mut dk = vec![0.0f32; batch * heads * n_k * d];
        let mut dv = vec![0.0f32; batch * heads * n_k * d_v];
        // The score gradients, kept only where the bias needs them.
        let mut dscores = vec![0.0f32; if bias_grad { probs.len() } else { 0 }];
        let dscores_ptr = SendPtr(dscores.as_mut_ptr());
        dq.par_chunks_mut(n_q * d)
            .zip(dk.par_chunks_mut(n_k * d))
            .zip(dv.par_chunks_mut(n_k * d_v))
            .enumerate()
            .for_each_init(
                || vec![0.0f32; n_q * n_k],
                |ds, (bh, ((dq, dk), dv))| {
                    let p = &probs[bh * n_q * n_k..][..n_q * n_k];
                    let q = &q.values()[bh * n_q * d..][..n_q * d];
                    let k = &k.values()[bh * n_k * d..][..n_k * d];
                    let v = &v.values()[bh * n_k * d_v..][..n_k * d_v];
                    let dout = &dout.values()[bh * n_q * d_v..][..n_q * d_v];
                    // SAFETY (every product): row-major operands and destinations of the
                    // stated sizes, inside their slices.
                    unsafe {
                        // dV = Pᵀ dO, dP = dO Vᵀ.
                        matmul(
                            [n_k, d_v, n_q],
                            dv.as_mut_ptr(),
                            d_v,
                            false,
                            rows(p, n_k).transposed(),
                            rows(dout, d_v),
                            false,
                        );
                        matmul(
                            [n_q, n_k, d_v],
                            ds.as_mut_ptr(),
                            n_k,
                            false,
                            rows(dout, d_v),
                            rows(v, d_v).transposed(),
                            false,
                        );
                    }
                    // dS = P ⊙ (dP − rowsum(dP ⊙ P)).
                    vectorised(|| {
                        for (ds, p) in ds.chunks_mut(n_k).zip(p.chunks(n_k)) {
                            let dot: f32 = ds.iter().zip(p).map(|(g, p)| g * p).sum();
                            for (g, p) in ds.iter_mut().zip(p) {
                                *g = p * (*g - dot);
                            }
                        }
                    });
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
                            dq.as_mut_ptr(),
                            d,
                            false,
                            rows(ds, n_k),
                            rows(k, d),
                            false,
                        );
                        matmul(
                            [n_k, d, n_q],
                            dk.as_mut_ptr(),
                            d,
                            false,
                            rows(ds, n_k).transposed(),
                            rows(q, d),
                            false,
                        );
                    }
                },
            );
        let [node_q, node_k, node_v] = [0, 1, 2].map(|i| &ops.parents[i]);
        for (node, values, width) in [(node_q, dq, d), (node_k, dk, d), (node_v, dv, d_v)] {
            if let Some(node) = node {
                let n = values.len() / (batch * heads * width);
                grads.register::<Flex>(node.id, flex_tensor(values, vec![batch, heads, n, width]));
            }
        }
        if let Some(Some(node)) = ops.parents.get(3) {
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
}
