//! Parity of the RCAN, HAN, Residual Attention Network and Attention U-Net blocks against the
//! PyTorch references of the official code (tests/reference/attn_sr_reference.py, fixtures from
//! tests/reference/gen_attn_sr_fixtures.py): strict loading of the official key names, max abs
//! diff ≤ 1e-4, and the parameter counts of the reference modules.
//!
//! Burn's `num_params` also counts BatchNorm's `running_mean` / `running_var`, so the expected
//! counts are written `PyTorch parameters() + running statistics`.

use crate::common::{assert_close, fixture, load_fixture, take_tensor};
use burn::module::Module;
use burn::prelude::*;
use gaze::blocks::{
    AttentionUNetGateConfig, ChannelSpatialAttentionConfig, GridAttentionGateConfig,
    LayerAttentionConfig, RcabConfig, RcanChannelAttentionConfig, ResidualAttentionConfig,
};
use gaze::weights::{apply_checkpoint, Checkpoint, KeyMap};

const TOL: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

#[test]
fn rcan_channel_attention_matches_reference() {
    let f = load_fixture("attn/rcan_ca.safetensors", &device());
    let ca = apply_checkpoint(
        RcanChannelAttentionConfig::new(16)
            .with_reduction(4)
            .init(&device()),
        f.checkpoint,
        &gaze::blocks::rcan_ca::key_map(),
    )
    .unwrap();
    assert_eq!(ca.num_params(), 148);
    assert_close("RCAN CALayer", ca.forward(f.input), f.output, TOL);
}

#[test]
fn rcab_matches_reference() {
    let f = load_fixture("attn/rcan_rcab.safetensors", &device());
    let block = apply_checkpoint(
        RcabConfig::new(8).with_reduction(2).init(&device()),
        f.checkpoint,
        &gaze::blocks::rcan_ca::rcab_key_map(),
    )
    .unwrap();
    assert_eq!(block.num_params(), 1244);
    assert_close("RCAB", block.forward(f.input), f.output, TOL);
}

#[test]
fn han_layer_attention_matches_reference() {
    let mut checkpoint = Checkpoint::open(fixture("attn/han_lam.safetensors")).unwrap();
    let input: Tensor<5> = take_tensor(&mut checkpoint, "input", &device());
    let output: Tensor<4> = take_tensor(&mut checkpoint, "output", &device());
    let lam = apply_checkpoint(
        LayerAttentionConfig::new(8).init(&device()),
        checkpoint,
        &KeyMap::identity(),
    )
    .unwrap();
    assert_eq!(lam.num_params(), 1);
    let attention = lam.attention_map(input.clone());
    assert_eq!(attention.dims(), [1, 4, 4]);
    let row_sums = attention
        .sum_dim(2)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(row_sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
    assert_close("HAN LAM", lam.forward(input), output, TOL);
}

#[test]
fn han_channel_spatial_attention_matches_reference() {
    let f = load_fixture("attn/han_csam.safetensors", &device());
    let csam = apply_checkpoint(
        ChannelSpatialAttentionConfig::new(8).init(&device()),
        f.checkpoint,
        &KeyMap::identity(),
    )
    .unwrap();
    assert_eq!(csam.num_params(), 27 + 1 + 1);
    assert_close("HAN CSAM", csam.forward(f.input), f.output, TOL);
}

#[test]
fn residual_attention_stages_match_reference() {
    // (fixture, config, reference parameter count); channels 8, any input size.
    for (file, config, params) in [
        (
            "attn/ran_stage1_19x21.safetensors",
            ResidualAttentionConfig::stage1(8),
            2032 + 320,
        ),
        (
            "attn/ran_stage2_15x13.safetensors",
            ResidualAttentionConfig::stage2(8),
            1564 + 248,
        ),
        (
            "attn/ran_stage3_9x7.safetensors",
            ResidualAttentionConfig::stage3(8),
            1096 + 176,
        ),
    ] {
        let f = load_fixture(file, &device());
        let depth = config.depth;
        let module = apply_checkpoint(
            config.init(&device()),
            f.checkpoint,
            &gaze::blocks::residual_attention::key_map(depth),
        )
        .unwrap();
        assert_eq!(module.depth(), depth);
        assert_eq!(module.num_params(), params, "{file}");
        assert_close(file, module.forward(f.input), f.output, TOL);
    }
}

#[test]
fn grid_attention_gate_matches_reference() {
    // (fixture, in, gating channels, align_corners, reference parameter count)
    for (file, c, cg, align_corners, params) in [
        ("attn/ag_grid.safetensors", 16, 32, false, 1089 + 32),
        ("attn/ag_grid_odd.safetensors", 8, 16, false, 289 + 16),
        ("attn/ag_grid_odd_ac.safetensors", 8, 16, true, 289 + 16),
    ] {
        let mut f = load_fixture(file, &device());
        let gate: Tensor<4> = take_tensor(&mut f.checkpoint, "gate", &device());
        let attention: Tensor<4> = take_tensor(&mut f.checkpoint, "attention", &device());
        let module = apply_checkpoint(
            GridAttentionGateConfig::new(c, cg)
                .with_align_corners(align_corners)
                .init(&device()),
            f.checkpoint,
            &gaze::blocks::attention_gate::key_map(),
        )
        .unwrap();
        assert_eq!(module.num_params(), params, "{file}");
        let (out, att) = module.forward_with_attention(f.input.clone(), gate.clone());
        assert_close(&format!("{file} attention"), att, attention, TOL);
        assert_close(
            &format!("{file} forward == forward_with_attention"),
            module.forward(f.input, gate),
            out.clone(),
            0.0,
        );
        assert_close(file, out, f.output, TOL);
    }
}

#[test]
fn attention_unet_gate_matches_reference() {
    let mut f = load_fixture("attn/ag_unet.safetensors", &device());
    let gate: Tensor<4> = take_tensor(&mut f.checkpoint, "gate", &device());
    let module = apply_checkpoint(
        AttentionUNetGateConfig::new(8, 12, 4).init(&device()),
        f.checkpoint,
        &gaze::blocks::attention_gate::key_map(),
    )
    .unwrap();
    assert_eq!(module.num_params(), 111 + 18);
    assert_close(
        "AttU-Net Attention_block",
        module.forward(f.input, gate),
        f.output,
        TOL,
    );
}
