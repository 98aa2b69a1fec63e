//! Token-mixing attention parity with timm 1.0.31: ViT `Attention` / `Block` (with LayerScale,
//! QK-norm and Context Broadcasting) and Swin `WindowAttention` / `SwinTransformerBlock`
//! (fixtures from tests/reference/gen_token_vit_swin_fixtures.py), loaded strictly with timm's
//! own key names, max abs diff ≤ 1e-4. No BatchNorm here, so Burn's `num_params()` equals
//! timm's `sum(p.numel() for p in m.parameters())` (LayerNorm weight and bias are parameters in
//! both).

use crate::common::{assert_close, fixture, take_tensor};
use burn::module::Module;
use burn::prelude::*;
use gaze::blocks::window_attention::swin_attn_mask;
use gaze::blocks::{SwinBlockConfig, VitAttentionConfig, VitBlockConfig, WindowAttentionConfig};
use gaze::weights::{apply_checkpoint, Checkpoint, KeyMap};

const TOL: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

/// Opens `token/<name>.safetensors` and takes out the `input` / `output` tensors (rank `D`).
fn open<const D: usize>(name: &str) -> (Checkpoint, Tensor<D>, Tensor<D>) {
    let mut checkpoint =
        Checkpoint::open(fixture(&format!("token/{name}.safetensors"))).expect("fixture opens");
    let input = take_tensor(&mut checkpoint, "input", &device());
    let output = take_tensor(&mut checkpoint, "output", &device());
    (checkpoint, input, output)
}

/// Strictly loads the fixture's state dict into `$block`, checks the parameter count and
/// compares `$forward(block, input)` with timm's output; evaluates to the loaded block.
macro_rules! check {
    ($name:expr, rank = $rank:literal, $block:expr, $keys:expr, params = $params:expr,
     |$b:ident, $x:ident| $forward:expr) => {
        crate::common::check_fixture(
            &format!("token/{}.safetensors", $name),
            $block,
            &$keys,
            $params,
            |$b, $x: Tensor<$rank>| $forward,
        )
    };
}

#[test]
fn mhsa_matches_timm_and_returns_attention() {
    let config = VitAttentionConfig::new(24)
        .with_num_heads(4)
        .with_qkv_bias(true);
    // qkv 24·72 + 72, proj 24·24 + 24.
    let (mut checkpoint, x, output) = open::<3>("mhsa");
    let attn_ref: Tensor<4> = take_tensor(&mut checkpoint, "attn", &device());
    let block = apply_checkpoint(config.init(&device()), checkpoint, &KeyMap::identity())
        .unwrap_or_else(|report| panic!("mhsa: {report:?}"));
    assert_eq!(block.num_params(), 2400);
    assert_close("mhsa", block.forward(x.clone()), output.clone(), TOL);
    let (y, attn) = block.forward_with_attention(x);
    assert_eq!(attn.dims(), [2, 4, 13, 13]);
    assert_close("mhsa (explicit)", y, output, TOL);
    assert_close("mhsa attention weights", attn, attn_ref, TOL);
}

#[test]
fn mhsa_qk_norm_matches_timm() {
    let config = VitAttentionConfig::new(24)
        .with_num_heads(4)
        .with_qk_norm(true);
    // qkv 24·72 (no bias), q_norm/k_norm 2·(6 + 6), proj 600.
    check!(
        "mhsa_qknorm",
        rank = 3,
        config.init(&device()),
        KeyMap::identity(),
        params = 2352,
        |b, x| b.forward(x)
    );
}

#[test]
fn vit_block_layer_scale_qk_norm_matches_timm() {
    let config = VitBlockConfig::new(24, 4)
        .with_qkv_bias(true)
        .with_qk_norm(true)
        .with_init_values(Some(1e-5));
    // norms 2·48, attn 1800 + 24 + 600, ls 2·24, mlp 24·96 + 96 + 96·24 + 24.
    let block = check!(
        "vit_block_ls",
        rank = 3,
        config.init(&device()),
        KeyMap::identity(),
        params = 7296,
        |b, x| b.forward(x)
    );
    assert!(block.ls1.is_some() && block.attn.q_norm.is_some());
}

#[test]
fn vit_block_context_broadcast_matches_reference() {
    let config = VitBlockConfig::new(24, 4)
        .with_mlp_ratio(3.0)
        .with_context_broadcast(true);
    // CB adds no parameters: norms 96, attn 1728 + 600, mlp 24·72 + 72 + 72·24 + 24.
    let (checkpoint, x, output) = open::<3>("vit_block_cb");
    let block = apply_checkpoint(config.init(&device()), checkpoint, &KeyMap::identity())
        .unwrap_or_else(|report| panic!("vit_block_cb: {report:?}"));
    assert_eq!(block.num_params(), 5976);
    assert_close(
        "vit_block_cb",
        block.forward(x.clone()),
        output.clone(),
        TOL,
    );
    let (y, attn) = block.forward_with_attention(x.clone());
    assert_eq!(attn.dims(), [2, 4, 13, 13]);
    assert_close("vit_block_cb (explicit)", y, output.clone(), TOL);
    // Without CB the same weights give a visibly different output.
    let mut plain = block;
    plain.context_broadcast = false;
    let d = (plain.forward(x) - output).abs().max().into_scalar::<f32>();
    assert!(d > 1e-2, "CB made no difference ({d})");
}

#[test]
fn vit_block_context_broadcast_with_layer_scale_matches_reference() {
    let config = VitBlockConfig::new(24, 4)
        .with_qkv_bias(true)
        .with_init_values(Some(1e-5))
        .with_context_broadcast(true);
    check!(
        "vit_block_cb_ls",
        rank = 3,
        config.init(&device()),
        KeyMap::identity(),
        params = 7272,
        |b, x| b.forward(x)
    );
}

// Swin block parameters: norms 2·48, qkv 24·72 + 72, bias table 7·7·3, proj 600,
// mlp 24·96 + 96 + 96·24 + 24.
const SWIN_W4_PARAMS: usize = 96 + 1800 + 147 + 600 + 2400 + 2328;

#[test]
fn swin_block_window4_no_shift_padded_matches_timm() {
    let config = SwinBlockConfig::new(24, [9, 11])
        .with_num_heads(3)
        .with_window_size([4, 4]);
    let block = check!(
        "swin_w4_s0",
        rank = 4,
        config.init(&device()),
        gaze::backbones::swin::key_map(),
        params = SWIN_W4_PARAMS,
        |b, x| b.forward(x)
    );
    assert!(block.attn_mask(9, 11, &device()).is_none());
}

#[test]
fn swin_block_window4_shift2_padded_matches_timm() {
    let config = SwinBlockConfig::new(24, [9, 11])
        .with_num_heads(3)
        .with_window_size([4, 4])
        .with_shift_size([2, 2]);
    // The fixture carries the official checkpoints' buffers: gaze holds the relative position
    // index too (built at init, so it takes the checkpoint's equal values), but not the mask,
    // which only swin::key_map() ignores.
    let (checkpoint, _, _) = open::<4>("swin_w4_s2");
    let report = apply_checkpoint(config.init(&device()), checkpoint, &KeyMap::identity())
        .expect_err("identity map must reject the buffers");
    let mut unexpected = report.unexpected.clone();
    unexpected.sort();
    assert_eq!(unexpected, ["attn_mask"]);
    check!(
        "swin_w4_s2",
        rank = 4,
        config.init(&device()),
        gaze::backbones::swin::key_map(),
        params = SWIN_W4_PARAMS,
        |b, x| b.forward(x)
    );
}

#[test]
fn swin_mask_equals_timm_buffer() {
    let mut checkpoint =
        Checkpoint::open(fixture("token/swin_w4_s2.safetensors")).expect("fixture opens");
    let timm_mask: Tensor<3> = take_tensor(&mut checkpoint, "attn_mask", &device());
    assert_eq!(timm_mask.dims(), [9, 16, 16]);
    let ours = Tensor::<3>::from_data(
        TensorData::new(swin_attn_mask(12, 12, [4, 4], [2, 2]), [9, 16, 16]),
        &device(),
    );
    assert_close("swin attn_mask", ours, timm_mask, 0.0);
}

#[test]
fn swin_block_window3x4_shift1x2_matches_timm() {
    let config = SwinBlockConfig::new(24, [9, 11])
        .with_num_heads(3)
        .with_window_size([3, 4])
        .with_shift_size([1, 2])
        .with_mlp_ratio(2.0);
    // norms 96, qkv 1800, table 5·7·3, proj 600, mlp 24·48 + 48 + 48·24 + 24.
    check!(
        "swin_w3x4_s1x2",
        rank = 4,
        config.init(&device()),
        gaze::backbones::swin::key_map(),
        params = 96 + 1800 + 105 + 600 + 1200 + 1176,
        |b, x| b.forward(x)
    );
}

#[test]
fn window_attention_with_mask_matches_timm() {
    let config = WindowAttentionConfig::new(24, 3).with_window_size([4, 4]);
    let (mut checkpoint, x, output) = open::<3>("window_attn_mask");
    let mask: Tensor<3> = take_tensor(&mut checkpoint, "mask", &device());
    let attn = apply_checkpoint(
        config.init(&device()),
        checkpoint,
        &gaze::backbones::swin::key_map(),
    )
    .unwrap_or_else(|report| panic!("window_attn_mask: {report:?}"));
    assert_eq!(attn.num_params(), 1800 + 147 + 600);
    assert_close(
        "window_attn_mask",
        attn.forward(x.clone(), Some(mask.clone())),
        output.clone(),
        TOL,
    );
    let (y, weights) = attn.forward_with_attention(x, Some(mask));
    assert_eq!(weights.dims(), [18, 3, 16, 16]);
    assert_close("window_attn_mask (explicit)", y, output, TOL);
}
