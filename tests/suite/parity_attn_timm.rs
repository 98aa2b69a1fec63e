//! timm channel-attention parity: SE, ECA, CBAM and split attention against
//! `timm.layers` 1.0.x (fixtures from tests/reference/gen_attn_timm_fixtures.py), loaded with
//! the identity key map (timm's own names, `num_batches_tracked` included), max abs diff ≤ 1e-4.
//! Parameter counts: Burn's `num_params()` counts BatchNorm's `running_mean`/`running_var` too,
//! so it must equal timm's `sum(p.numel() for p in m.parameters())` plus those buffers' sizes
//! (both printed by the script as `params=` and `bn_stats=`).

use burn::prelude::*;
use gaze::blocks::{Activation, CbamConfig, EcaConfig, SeConfig, SplitAttnConfig};
use gaze::weights::KeyMap;

fn device() -> Device {
    Device::flex()
}

/// Loads `attn/<name>.safetensors` strictly into `block`, checks the parameter count
/// (timm's `params` plus `bn_stats` running-statistics entries), and compares
/// `forward(input)` with timm's output.
macro_rules! check {
    ($name:expr, $block:expr, params = $params:expr, bn_stats = $stats:expr) => {
        crate::common::check_fixture(
            &format!("attn/{}.safetensors", $name),
            $block,
            &KeyMap::identity(),
            $params + $stats,
            |b, x: Tensor<4>| b.forward(x),
        )
    };
}

#[test]
fn se_default_matches_timm() {
    // SEModule(24): rd = make_divisible(1.5, 8, round_limit=0) = 8.
    check!(
        "se",
        SeConfig::new(24).init(&device()),
        params = 416,
        bn_stats = 0
    );
}

#[test]
fn se_rd_ratio_quarter_matches_timm() {
    check!(
        "se_rd025",
        SeConfig::new(64).with_rd_ratio(0.25).init(&device()),
        params = 2128,
        bn_stats = 0
    );
}

#[test]
fn se_with_bn_silu_hard_sigmoid_maxpool_matches_timm() {
    let config = SeConfig::new(24)
        .with_rd_channels(Some(6))
        .with_add_maxpool(true)
        .with_use_norm(true)
        .with_act_layer(Activation::Silu)
        .with_gate_layer(Activation::HardSigmoid);
    check!(
        "se_bn_silu_hsig",
        config.init(&device()),
        params = 330,
        bn_stats = 12
    );
}

#[test]
fn eca_24_channels_k3_matches_timm() {
    let config = EcaConfig::new(24);
    assert_eq!(config.resolved_kernel_size(), 3);
    check!("eca_c24", config.init(&device()), params = 3, bn_stats = 0);
}

#[test]
fn eca_128_channels_k5_matches_timm() {
    let config = EcaConfig::new(128);
    assert_eq!(config.resolved_kernel_size(), 5);
    check!("eca_c128", config.init(&device()), params = 5, bn_stats = 0);
}

#[test]
fn cbam_matches_timm() {
    check!(
        "cbam",
        CbamConfig::new(24).init(&device()),
        params = 196,
        bn_stats = 2
    );
}

#[test]
fn split_attn_radix2_matches_timm() {
    check!(
        "splat_r2",
        SplitAttnConfig::new(16, 16).init(&device()),
        params = 4032,
        bn_stats = 128
    );
}

#[test]
fn split_attn_radix2_groups2_stride2_matches_timm() {
    let config = SplitAttnConfig::new(16, 24).with_stride(2).with_groups(2);
    check!(
        "splat_r2_g2_s2",
        config.init(&device()),
        params = 3120,
        bn_stats = 160
    );
}

#[test]
fn split_attn_radix4_dilated_matches_timm() {
    let config = SplitAttnConfig::new(16, 8)
        .with_radix(4)
        .with_dilation(2)
        .with_padding(Some(2))
        .with_rd_ratio(0.75);
    check!(
        "splat_r4_d2",
        config.init(&device()),
        params = 3312,
        bn_stats = 160
    );
}

#[test]
fn split_attn_radix1_without_norm_matches_timm() {
    let config = SplitAttnConfig::new(16, 16)
        .with_radix(1)
        .with_use_norm(false);
    check!(
        "splat_r1_nonorm",
        config.init(&device()),
        params = 3376,
        bn_stats = 0
    );
}
