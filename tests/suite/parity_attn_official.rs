//! Parity of the blocks ported from official repositories (FcaNet, triplet attention,
//! polarized self-attention) against our PyTorch references of that code (fixtures from
//! tests/reference/gen_attn_official_fixtures.py, which also cross-checks the references
//! against the official modules), max abs diff ≤ 1e-4; checkpoints load strictly.

use crate::common::{assert_close, load_fixture, max_abs_diff};
use burn::module::Module;
use burn::prelude::*;
use gaze::blocks::{
    FcaConfig, FrequencySelection, PolarizedConfig, PolarizedMode, TripletAttentionConfig,
};
use gaze::weights::apply_checkpoint;

const TOL: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

/// Loads `attn/<name>.safetensors` into an FcaNet layer, checking the computed DCT filter
/// against the official buffer (which the key map then ignores).
fn check_fca(name: &str, config: FcaConfig, params: usize) {
    let dev = device();
    let f = load_fixture(&format!("attn/{name}.safetensors"), &dev);
    let buffer = f
        .checkpoint
        .tensors
        .get("dct_layer.weight")
        .cloned()
        .expect("fixture has the DCT buffer");
    let buffer: Tensor<3> =
        Tensor::from_data(burn::store::bridge::into_data(buffer).unwrap(), &dev);
    let block = apply_checkpoint(
        config.init(&dev),
        f.checkpoint,
        &gaze::blocks::fca::key_map(),
    )
    .unwrap();
    let d = max_abs_diff(block.dct_filter(), buffer);
    eprintln!("{name}: DCT filter max abs diff {d:e}");
    assert!(d <= 1e-6, "{name}: DCT filter differs by {d}");
    assert_eq!(block.num_params(), params);
    assert_close(name, block.forward(f.input), f.output, TOL);
}

#[test]
fn fca_top16_pools_13x17_to_7x7() {
    check_fca("fca_top16_13x17", FcaConfig::new(16).with_reduction(4), 128);
}

#[test]
fn fca_low16_at_dct_size() {
    let config = FcaConfig::new(16).with_reduction(4).with_method("low16");
    assert_eq!(config.freq_sel, FrequencySelection::Low);
    check_fca("fca_low16_7x7", config, 128);
}

#[test]
fn fca_bot16_dct14_scales_indices() {
    let config = FcaConfig::new(16)
        .with_dct_h(14)
        .with_dct_w(14)
        .with_reduction(4)
        .with_method("bot16");
    check_fca("fca_bot16_14x14", config, 128);
}

#[test]
fn fca_top8_non_square_dct() {
    let config = FcaConfig::new(8)
        .with_dct_h(14)
        .with_dct_w(7)
        .with_reduction(2)
        .with_method("top8");
    check_fca("fca_top8_dct14x7", config, 64);
}

#[test]
fn fca_method_names() {
    assert_eq!(
        FrequencySelection::parse("top16"),
        Some((FrequencySelection::Top, 16))
    );
    assert_eq!(
        FrequencySelection::parse("bot32"),
        Some((FrequencySelection::Bot, 32))
    );
    assert_eq!(FrequencySelection::parse("top33"), None);
    assert_eq!(FrequencySelection::parse("mid4"), None);
}

#[test]
fn triplet_matches_reference() {
    let dev = device();
    let f = load_fixture("attn/triplet.safetensors", &dev);
    let block = apply_checkpoint(
        TripletAttentionConfig::new().init(&dev),
        f.checkpoint,
        &gaze::blocks::triplet::key_map(),
    )
    .unwrap();
    // 300 PyTorch parameters (3 × (98 conv + 2 BN affine)); Burn's num_params also counts the
    // BatchNorm running mean and variance (2 per gate), which PyTorch keeps as buffers.
    assert_eq!(block.num_params(), 300 + 3 * 2);
    assert_close("triplet", block.forward(f.input), f.output, TOL);
}

#[test]
fn triplet_no_spatial_matches_reference_root_names() {
    // This fixture uses the root triplet_attention.py names (cw / hc).
    let dev = device();
    let f = load_fixture("attn/triplet_no_spatial.safetensors", &dev);
    let block = apply_checkpoint(
        TripletAttentionConfig::new()
            .with_no_spatial(true)
            .init(&dev),
        f.checkpoint,
        &gaze::blocks::triplet::key_map(),
    )
    .unwrap();
    // 200 PyTorch parameters plus the two gates' BatchNorm running statistics.
    assert_eq!(block.num_params(), 200 + 2 * 2);
    assert_close(
        "triplet (no spatial)",
        block.forward(f.input),
        f.output,
        TOL,
    );
}

#[test]
fn psa_parallel_matches_reference() {
    let dev = device();
    let f = load_fixture("attn/psa_p.safetensors", &dev);
    let block = apply_checkpoint(
        PolarizedConfig::new(16).init(&dev),
        f.checkpoint,
        &gaze::blocks::polarized::key_map(),
    )
    .unwrap();
    assert_eq!(block.mode(), PolarizedMode::Parallel);
    assert_eq!(block.num_params(), 528);
    assert_close("PSA-p", block.forward(f.input), f.output, TOL);
}

#[test]
fn psa_sequential_matches_reference() {
    let dev = device();
    let f = load_fixture("attn/psa_s.safetensors", &dev);
    let block = apply_checkpoint(
        PolarizedConfig::new(16)
            .with_mode(PolarizedMode::Sequential)
            .init(&dev),
        f.checkpoint,
        &gaze::blocks::polarized::key_map(),
    )
    .unwrap();
    assert_eq!(block.num_params(), 470);
    assert_close("PSA-s", block.forward(f.input), f.output, TOL);
}
