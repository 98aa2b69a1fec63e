//! timm token-mixing attention parity: HaloNet's `HaloAttn` (`timm.layers.halo_attn`) and LeViT's
//! `Attention` / `AttentionDownsample` / `ConvNorm` (`timm.models.levit`, linear token mode)
//! against timm 1.0.31 (fixtures from tests/reference/gen_token_halo_levit_fixtures.py), loaded
//! strictly with the `levit()` key map (timm's own names; `num_batches_tracked` and
//! `attention_bias_idxs` ignored), max abs diff ≤ 1e-4.
//! Parameter counts: Burn's `num_params()` counts BatchNorm's `running_mean`/`running_var` too,
//! so it must equal timm's `sum(p.numel() for p in m.parameters())` plus those buffers' sizes
//! (both printed by the script as `params=` and `bn_stats=`).
//! Plus: halo attention's memory is linear in the map size (no `HW × HW` matrix).

use crate::common::{fixture, take_tensor};
use burn::prelude::*;
use gaze::blocks::{
    Activation, ConvNormConfig, HaloAttnConfig, LevitAttentionConfig,
    LevitAttentionDownsampleConfig,
};
use gaze::weights::{apply_checkpoint, Checkpoint, KeyMap};

fn device() -> Device {
    Device::flex()
}

/// Loads the NCHW fixture `token/<name>.safetensors` strictly into `block`, checks the
/// parameter count (timm's `params` plus `bn_stats`), and compares `forward(input)` with timm.
macro_rules! check4 {
    ($name:expr, $block:expr, $keys:expr, params = $params:expr, bn_stats = $stats:expr) => {
        crate::common::check_fixture(
            &format!("token/{}.safetensors", $name),
            $block,
            &$keys,
            $params + $stats,
            |b, x: Tensor<4>| b.forward(x),
        )
    };
}

/// [`check4`] for the `[B, N, C]` token fixtures.
macro_rules! check3 {
    ($name:expr, $block:expr, params = $params:expr, bn_stats = $stats:expr) => {
        crate::common::check_fixture(
            &format!("token/{}.safetensors", $name),
            $block,
            &gaze::backbones::levit::key_map(),
            $params + $stats,
            |b, x: Tensor<3>| b.forward(x),
        )
    };
}

#[test]
fn halo_block4_halo1_matches_timm() {
    // HaloAttn(16, num_heads=2, block_size=4, halo_size=1) on 8×12: 2×3 blocks, 6×6 windows.
    let config = HaloAttnConfig::new(16)
        .with_num_heads(2)
        .with_block_size(4)
        .with_halo_size(1);
    check4!(
        "halo_b4h1",
        config.init(&device()),
        KeyMap::identity(),
        params = 944,
        bn_stats = 0
    );
}

#[test]
fn halo_block4_halo2_stride2_matches_timm() {
    // Strided queries (block_stride 2): 2×2 query blocks against 8×8 windows; 8×8 → 4×4.
    let config = HaloAttnConfig::new(16)
        .with_num_heads(2)
        .with_block_size(4)
        .with_halo_size(2)
        .with_stride(2);
    let block = config.init(&device());
    assert_eq!((block.block_stride, block.block_size_ds), (2, 2));
    check4!(
        "halo_b4h2_s2",
        block,
        KeyMap::identity(),
        params = 1008,
        bn_stats = 0
    );
}

#[test]
fn halo_avg_down_qk_ratio_bias_scaled_pos_matches_timm() {
    // stride 2 by a 2×2 average pool (avg_down), dim_out 24, d_qk = make_divisible(36, 8)/2 = 20,
    // qkv biases, scale_pos_embed.
    let config = HaloAttnConfig::new(16)
        .with_dim_out(Some(24))
        .with_stride(2)
        .with_num_heads(2)
        .with_block_size(4)
        .with_halo_size(1)
        .with_qk_ratio(1.5)
        .with_qkv_bias(true)
        .with_avg_down(true)
        .with_scale_pos_embed(true);
    let block = config.init(&device());
    assert!(block.use_avg_pool);
    assert_eq!((block.dim_head_qk, block.dim_head_v), (20, 12));
    check4!(
        "halo_avgdown",
        block,
        KeyMap::identity(),
        params = 2208,
        bn_stats = 0
    );
}

#[test]
fn levit_attention_matches_timm() {
    // Attention(32, key_dim=8, num_heads=2, attn_ratio=2, resolution=5), hard-swish.
    let config = LevitAttentionConfig::new(32, 8)
        .with_num_heads(2)
        .with_attn_ratio(2.0)
        .with_resolution([5, 5]);
    check3!(
        "levit_attn",
        config.init(&device()),
        params = 3314,
        bn_stats = 192
    );
}

#[test]
fn levit_attention_rectangular_silu_matches_timm() {
    // Attention(24, key_dim=4, num_heads=3, attn_ratio=1.5, resolution=(3, 4)), SiLU.
    let config = LevitAttentionConfig::new(24, 4)
        .with_num_heads(3)
        .with_attn_ratio(1.5)
        .with_resolution([3, 4])
        .with_act_layer(Activation::Silu);
    assert_eq!(config.val_dim(), 6);
    check3!(
        "levit_attn_rect_silu",
        config.init(&device()),
        params = 1608,
        bn_stats = 132
    );
}

#[test]
fn levit_attention_downsample_matches_timm() {
    // AttentionDownsample(32, 48, key_dim=8, num_heads=4, attn_ratio=4, stride=2,
    // resolution=6): 36 tokens → 9.
    let config = LevitAttentionDownsampleConfig::new(32, 48, 8)
        .with_num_heads(4)
        .with_attn_ratio(4.0)
        .with_stride(2)
        .with_resolution([6, 6]);
    assert_eq!(config.resolution_out(), [3, 3]);
    check3!(
        "levit_attn_down",
        config.init(&device()),
        params = 12912,
        bn_stats = 480
    );
}

#[test]
fn levit_attention_downsample_pool_odd_resolution_matches_timm() {
    // AttentionDownsample(16, 24, key_dim=4, num_heads=2, resolution=5, use_pool=True): 5 → 3.
    let config = LevitAttentionDownsampleConfig::new(16, 24, 4)
        .with_num_heads(2)
        .with_resolution([5, 5])
        .with_use_pool(true);
    assert_eq!(config.resolution_out(), [3, 3]);
    check3!(
        "levit_attn_down_pool",
        config.init(&device()),
        params = 1058,
        bn_stats = 112
    );
}

#[test]
fn levit_conv_norm_matches_timm() {
    // ConvNorm(8, 16, 3, stride=2, padding=1).
    let config = ConvNormConfig::new(8, 16)
        .with_kernel_size(3)
        .with_stride(2)
        .with_padding(1);
    check4!(
        "levit_convnorm",
        config.init(&device()),
        gaze::backbones::levit::key_map(),
        params = 1184,
        bn_stats = 32
    );
}

#[test]
fn levit_keymap_ignores_attention_bias_idxs() {
    // Older timm checkpoints saved the index buffer; a strict load must still succeed.
    let dev = device();
    let mut ckpt = Checkpoint::open(fixture("token/levit_attn.safetensors")).expect("opens");
    let _: Tensor<3> = take_tensor(&mut ckpt, "input", &dev);
    let _: Tensor<3> = take_tensor(&mut ckpt, "output", &dev);
    let mut with_idxs = Checkpoint::open(fixture("token/levit_attn.safetensors")).expect("opens");
    let mut idx = with_idxs
        .tensors
        .remove("attention_biases")
        .expect("biases");
    idx.name = "attention_bias_idxs".into();
    ckpt.tensors.insert("attention_bias_idxs".into(), idx);
    let config = LevitAttentionConfig::new(32, 8)
        .with_num_heads(2)
        .with_attn_ratio(2.0)
        .with_resolution([5, 5]);
    apply_checkpoint(config.init(&dev), ckpt, &gaze::backbones::levit::key_map())
        .unwrap_or_else(|report| panic!("{report:?}"));
}

#[test]
fn halo_attention_memory_is_linear_in_map_size() {
    // timm's HaloAttn defaults: block 8, halo 3, so 14×14 key windows per 8×8 query block.
    let dev = device();
    let heads = 2;
    let halo = HaloAttnConfig::new(8).with_num_heads(heads).init(&dev);
    let win = halo.win_size;
    assert_eq!(win, 14);
    let run = |side: usize| {
        let x = Tensor::<4>::ones([1, 8, side, side], &dev);
        let (y, stats) = halo.forward_with_stats(x);
        assert_eq!(y.dims(), [1, 8, side, side]);
        stats
    };
    let s56 = run(56);
    let s112 = run(112);
    eprintln!("halo stats 56×56: {s56:?}, 112×112: {s112:?}");

    // The attention tensor holds heads · H·W · win² logits, exactly what the formula says.
    assert_eq!(s112.attn_elems, halo.attention_matrix_elems(112, 112));
    assert_eq!(s112.attn_elems, heads * 112 * 112 * win * win);
    // Twice the side, four times the pixels: four times the memory (linear, not quadratic).
    assert_eq!(s112.attn_elems, 4 * s56.attn_elems);
    assert_eq!(
        halo.attention_matrix_elems(112, 112),
        4 * halo.attention_matrix_elems(56, 56)
    );
    assert!(s112.max_tensor_elems <= 4 * s56.max_tensor_elems);
    // Far below one global (H·W)² matrix per head: 112² / 14² = 64× smaller per head.
    let global = heads * (112 * 112) * (112 * 112);
    assert!(
        s112.max_tensor_elems * 60 < global,
        "{} vs global {global}",
        s112.max_tensor_elems
    );
}
