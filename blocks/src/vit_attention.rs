//! Vision Transformer token mixing: multi-head self-attention and the pre-norm transformer
//! block, exactly timm 1.0.x's `timm.layers.Attention` (re-exported by
//! `timm.models.vision_transformer`) and `timm.models.vision_transformer.Block`, with timm's
//! parameter names; plus Context Broadcasting (Hyeon-Woo et al., "Scratching Visual
//! Transformer's Back with Uniform Attention", ICCV 2023) as a block option.
//!
//! Tokens are `[B, N, C]`. Multi-head self-attention (Vaswani et al. 2017; ViT, Dosovitskiy et
//! al. 2021), with `H` heads of width `d = C / H`:
//!
//! `[q, k, v] = x W_qkv (+ b_qkv)`, split into heads; optional QK-norm `q ← LN(q)`,
//! `k ← LN(k)` (a LayerNorm over `d`, shared by the heads);
//! `A = softmax(q kᵀ · d^-½)`, `y = concat_h(A v) W_proj + b_proj`.
//!
//! The block is pre-norm with optional LayerScale (CaiT, Touvron et al. 2021):
//!
//! `x ← x + γ₁ ⊙ Attn(LN₁(x))`, `x ← x + γ₂ ⊙ CB(MLP(LN₂(x)))`,
//! `MLP(x) = fc2(GELU(fc1(x)))` (exact erf GELU, hidden width `⌊C · mlp_ratio⌋`).
//!
//! `CB` is the identity unless `context_broadcast` is set; then it is the official
//! naver-ai/cb default, a parameter-free uniform attention added to the MLP's output:
//! `CB(m) = (m + mean_N(m)) / 2` (the mean over the tokens, class token included, broadcast
//! back to every token). It sits at the end of the MLP, inside the residual branch, so it acts
//! before LayerScale `γ₂` and the residual add.
//!
//! timm specifics kept here:
//! * timm's `Block` default norm is `timm.layers.LayerNorm`, whose `eps` is **1e-6** (not
//!   PyTorch's 1e-5), and `Block` passes it to the attention for the QK-norm too. `Attention`
//!   used alone has no default norm (`qk_norm` needs one); [`VitAttentionConfig`] defaults to
//!   the same 1e-6 LayerNorm.
//! * `Block`'s `qkv_bias` default is `False` (`VisionTransformer` passes `True`).
//! * `forward` uses the fused [`burn::tensor::module::attention`]; `forward_with_attention`
//!   computes `softmax(q kᵀ · d^-½)` explicitly and returns it for visualisation.
//!
//! Not carried over: dropout / drop-path (identity in eval), timm's `scale_norm`, `gated`,
//! `dim_out`, `attn_mask` / `is_causal` arguments, and the dimension-scaled CB_S variant.

use crate::layer_norm::{LayerNorm, LayerNormConfig};
use crate::linear::{Linear, LinearConfig};
use burn::module::Param;
use burn::prelude::*;

use crate::cpu_kernels;
use crate::layers::{merge_heads, split_qkv};

use crate::cpu_kernels::gelu;
use burn::tensor::activation::softmax;

/// Configuration of [`VitAttention`] (the arguments of timm's `Attention`).
#[derive(Config, Debug)]
pub struct VitAttentionConfig {
    /// Token width `C` (input and output).
    pub dim: usize,
    /// Number of heads `H`.
    #[config(default = 8)]
    pub num_heads: usize,
    /// Width per head; `dim / num_heads` when unset (timm's `attn_head_dim`).
    pub head_dim: Option<usize>,
    /// Whether `qkv` has a bias.
    #[config(default = false)]
    pub qkv_bias: bool,
    /// LayerNorm on q and k per head (`q_norm`, `k_norm`).
    #[config(default = false)]
    pub qk_norm: bool,
    /// Whether `proj` has a bias.
    #[config(default = true)]
    pub proj_bias: bool,
    /// Epsilon of the QK-norm LayerNorms (timm `LayerNorm`: 1e-6).
    #[config(default = 1e-6)]
    pub norm_eps: f64,
}

impl VitAttentionConfig {
    /// The per-head width.
    pub fn resolved_head_dim(&self) -> usize {
        match self.head_dim {
            Some(d) if d > 0 => d,
            _ => {
                assert!(
                    self.dim % self.num_heads == 0,
                    "dim {} must be divisible by num_heads {}",
                    self.dim,
                    self.num_heads
                );
                self.dim / self.num_heads
            }
        }
    }

    /// Builds the module with randomly initialised weights.
    pub fn init(&self, device: &Device) -> VitAttention {
        let head_dim = self.resolved_head_dim();
        let attn_dim = head_dim * self.num_heads;
        let norm = || {
            self.qk_norm.then(|| {
                LayerNormConfig::new(head_dim)
                    .with_epsilon(self.norm_eps)
                    .init(device)
            })
        };
        VitAttention {
            qkv: LinearConfig::new(self.dim, 3 * attn_dim)
                .with_bias(self.qkv_bias)
                .init(device),
            q_norm: norm(),
            k_norm: norm(),
            proj: LinearConfig::new(attn_dim, self.dim)
                .with_bias(self.proj_bias)
                .init(device),
            num_heads: self.num_heads,
            head_dim,
        }
    }
}

/// Multi-head self-attention. timm keys: `qkv.{weight,bias}`, `q_norm.{weight,bias}`,
/// `k_norm.{weight,bias}` (with `qk_norm`), `proj.{weight,bias}`.
#[derive(Module, Debug)]
pub struct VitAttention {
    /// Fused projection `C → 3 · H · d`, laid out `[q | k | v]`, each head-major.
    pub qkv: Linear,
    /// QK-norm on queries (LayerNorm over `d`).
    pub q_norm: Option<LayerNorm>,
    /// QK-norm on keys.
    pub k_norm: Option<LayerNorm>,
    /// Output projection `H · d → C`.
    pub proj: Linear,
    /// Number of heads.
    pub num_heads: usize,
    /// Width per head.
    pub head_dim: usize,
}

impl VitAttention {
    /// The attention scale `d^-½`.
    pub fn scale(&self) -> f64 {
        (self.head_dim as f64).powf(-0.5)
    }

    /// `q, k, v`, each `[B, H, N, d]`, with the QK-norm applied.
    fn qkv_heads(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let (h, d) = (self.num_heads, self.head_dim);
        let [mut q, mut k, v] = split_qkv(self.qkv.forward(x), h, d);
        if let Some(norm) = &self.q_norm {
            q = norm.forward(q);
        }
        if let Some(norm) = &self.k_norm {
            k = norm.forward(k);
        }
        (q, k, v)
    }

    /// Merges the heads `[B, H, N, d] → [B, N, H · d]` and projects.
    fn merge(&self, y: Tensor<4>) -> Tensor<3> {
        self.proj.forward(merge_heads(y))
    }

    /// `[B, N, C] → [B, N, C]`, with the fused attention kernel.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        if self.q_norm.is_none() && self.k_norm.is_none() {
            let qkv = self.qkv.forward(x);
            let y = cpu_kernels::attention_qkv(qkv, self.num_heads, None, self.scale());
            return self.proj.forward(y);
        }
        let (q, k, v) = self.qkv_heads(x);
        self.merge(cpu_kernels::attention(q, k, v, None, self.scale()))
    }

    /// Like [`forward`](Self::forward), computing the attention explicitly; also returns the
    /// weights `softmax(q kᵀ · d^-½)`, `[B, H, N, N]` (rows sum to 1), for visualisation.
    pub fn forward_with_attention(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let (q, k, v) = self.qkv_heads(x);
        let scores = q.mul_scalar(self.scale()).matmul(k.swap_dims(2, 3));
        let attn = softmax(scores, 3);
        (self.merge(attn.clone().matmul(v)), attn)
    }
}

/// LayerScale (CaiT): a learnable per-channel scale `x ⊙ γ` on `[…, C]` tensors. timm key:
/// `gamma`.
#[derive(Module, Debug)]
pub struct LayerScale {
    /// Per-channel scale `[C]`, initialised to `init_values`.
    pub gamma: Param<Tensor<1>>,
}

impl LayerScale {
    /// A LayerScale of `dim` channels, `γ = init_values`.
    pub fn new(dim: usize, init_values: f64, device: &Device) -> Self {
        LayerScale {
            gamma: Param::from_tensor(Tensor::full([dim], init_values, device)),
        }
    }

    /// `x ⊙ γ` (broadcast over the leading dimensions).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        x * self.gamma.val().unsqueeze()
    }
}

/// Configuration of [`TokenMlp`] (timm's `Mlp` on tokens, `act_layer=nn.GELU`).
#[derive(Config, Debug)]
pub struct TokenMlpConfig {
    /// Input and output width.
    pub dim: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Whether `fc1` and `fc2` have biases.
    #[config(default = true)]
    pub bias: bool,
}

impl TokenMlpConfig {
    /// Builds the MLP with randomly initialised weights.
    pub fn init(&self, device: &Device) -> TokenMlp {
        TokenMlp {
            fc1: LinearConfig::new(self.dim, self.hidden)
                .with_bias(self.bias)
                .init(device),
            fc2: LinearConfig::new(self.hidden, self.dim)
                .with_bias(self.bias)
                .init(device),
        }
    }
}

/// timm's `Mlp`: `fc2(GELU(fc1(x)))` with the exact (erf) GELU. timm keys: `fc1.*`, `fc2.*`.
#[derive(Module, Debug)]
pub struct TokenMlp {
    /// `C → hidden`.
    pub fc1: Linear,
    /// `hidden → C`.
    pub fc2: Linear,
}

impl TokenMlp {
    /// `[…, C] → […, C]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

/// Context Broadcasting (naver-ai/cb default): `(x + mean_N(x)) / 2` on `[B, N, C]` tokens.
pub fn context_broadcast(x: Tensor<3>) -> Tensor<3> {
    let mean = x.clone().mean_dim(1);
    (x + mean).mul_scalar(0.5)
}

/// Configuration of [`VitBlock`] (the arguments of timm's ViT `Block`, same defaults).
#[derive(Config, Debug)]
pub struct VitBlockConfig {
    /// Token width `C`.
    pub dim: usize,
    /// Number of heads.
    pub num_heads: usize,
    /// MLP hidden width ratio: hidden = `⌊dim · mlp_ratio⌋`.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Whether `attn.qkv` has a bias (timm `Block`: false; `VisionTransformer`: true).
    #[config(default = false)]
    pub qkv_bias: bool,
    /// QK-norm in the attention.
    #[config(default = false)]
    pub qk_norm: bool,
    /// Bias of `attn.proj`, `mlp.fc1` and `mlp.fc2`.
    #[config(default = true)]
    pub proj_bias: bool,
    /// LayerScale initial value; `None` (timm `init_values=None`) means no `ls1` / `ls2`.
    pub init_values: Option<f64>,
    /// Epsilon of every LayerNorm (timm `LayerNorm`: 1e-6).
    #[config(default = 1e-6)]
    pub norm_eps: f64,
    /// Context Broadcasting on the MLP output (Hyeon-Woo et al., ICCV 2023).
    #[config(default = false)]
    pub context_broadcast: bool,
}

impl VitBlockConfig {
    /// The MLP hidden width timm would use (`int(dim * mlp_ratio)`).
    pub fn mlp_hidden(&self) -> usize {
        (self.dim as f64 * self.mlp_ratio) as usize
    }

    /// Builds the block with randomly initialised weights.
    pub fn init(&self, device: &Device) -> VitBlock {
        let norm = || {
            LayerNormConfig::new(self.dim)
                .with_epsilon(self.norm_eps)
                .init(device)
        };
        let ls = || {
            self.init_values
                .filter(|v| *v != 0.0)
                .map(|v| LayerScale::new(self.dim, v, device))
        };
        VitBlock {
            norm1: norm(),
            attn: VitAttentionConfig::new(self.dim)
                .with_num_heads(self.num_heads)
                .with_qkv_bias(self.qkv_bias)
                .with_qk_norm(self.qk_norm)
                .with_proj_bias(self.proj_bias)
                .with_norm_eps(self.norm_eps)
                .init(device),
            ls1: ls(),
            norm2: norm(),
            mlp: TokenMlpConfig::new(self.dim, self.mlp_hidden())
                .with_bias(self.proj_bias)
                .init(device),
            ls2: ls(),
            context_broadcast: self.context_broadcast,
        }
    }
}

/// Pre-norm transformer block. timm keys: `norm1.*`, `attn.*`, `ls1.gamma`, `norm2.*`,
/// `mlp.fc1.*`, `mlp.fc2.*`, `ls2.gamma`.
#[derive(Module, Debug)]
pub struct VitBlock {
    /// LayerNorm before the attention.
    pub norm1: LayerNorm,
    /// Multi-head self-attention.
    pub attn: VitAttention,
    /// LayerScale on the attention branch.
    pub ls1: Option<LayerScale>,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: TokenMlp,
    /// LayerScale on the MLP branch.
    pub ls2: Option<LayerScale>,
    /// Context Broadcasting on the MLP output.
    pub context_broadcast: bool,
}

impl VitBlock {
    fn scale(ls: &Option<LayerScale>, x: Tensor<3>) -> Tensor<3> {
        match ls {
            Some(ls) => ls.forward(x),
            None => x,
        }
    }

    fn mlp_branch(&self, x: Tensor<3>) -> Tensor<3> {
        let mut m = self.mlp.forward(self.norm2.forward(x));
        if self.context_broadcast {
            m = context_broadcast(m);
        }
        Self::scale(&self.ls2, m)
    }

    /// `[B, N, C] → [B, N, C]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let a = self.attn.forward(self.norm1.forward(x.clone()));
        let x = x + Self::scale(&self.ls1, a);
        x.clone() + self.mlp_branch(x)
    }

    /// Like [`forward`](Self::forward), also returning the attention weights `[B, H, N, N]`.
    pub fn forward_with_attention(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let (a, attn) = self
            .attn
            .forward_with_attention(self.norm1.forward(x.clone()));
        let x = x + Self::scale(&self.ls1, a);
        (x.clone() + self.mlp_branch(x), attn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_and_explicit_attention_agree() {
        let device = Device::flex();
        let attn = VitAttentionConfig::new(24)
            .with_num_heads(4)
            .with_qk_norm(true)
            .init(&device);
        let x = Tensor::<3>::random(
            [2, 7, 24],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let fused = attn.forward(x.clone());
        let (explicit, weights) = attn.forward_with_attention(x);
        assert_eq!(weights.dims(), [2, 4, 7, 7]);
        let d = (fused - explicit).abs().max().into_scalar::<f32>();
        assert!(d < 1e-5, "{d}");
        let rows = weights.sum_dim(3).sub_scalar(1.0).abs().max();
        assert!(rows.into_scalar::<f32>() < 1e-5);
    }

    #[test]
    fn mlp_hidden_follows_timm() {
        assert_eq!(VitBlockConfig::new(24, 4).mlp_hidden(), 96);
        assert_eq!(
            VitBlockConfig::new(24, 4).with_mlp_ratio(3.0).mlp_hidden(),
            72
        );
        assert_eq!(
            VitBlockConfig::new(384, 6)
                .with_mlp_ratio(2.6667)
                .mlp_hidden(),
            1024
        );
    }

    #[test]
    fn context_broadcast_averages_with_the_token_mean() {
        let device = Device::flex();
        let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 3.0], [1, 2, 1]), &device);
        let y = context_broadcast(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(y, vec![1.5, 2.5]);
    }
}
