//! VapSR parity: the attention branch, the VAB block and the whole network (×2, ×3, ×4 and
//! VapSR-S's grouped structure) against the OFFICIAL code (fixtures from
//! tests/reference/gen_vapsr_fixtures.py, float64 references), max abs diff ≤ 1e-4; the
//! published sizes; the published checkpoints load strictly (with ../shared).

use crate::common::{
    assert_registered_param_counts, check_backbone, check_fixture, shared_dir, BackboneCheck,
};
use burn::module::Module;
use burn::prelude::*;
use gaze::backbones::vapsr::{key_map, Vapsr, VapsrConfig};
use gaze::blocks::vab::{VabConfig, VastAttentionConfig};
use gaze::create_model;
use gaze::weights::KeyMap;

fn device() -> Device {
    Device::flex()
}

#[test]
fn vast_attention_matches_official() {
    // pointwise 12·12 + 12, two depthwise 12·25 + 12.
    check_fixture(
        "vapsr/vab_attention.safetensors",
        VastAttentionConfig::new(12).init(&device()),
        &KeyMap::identity(),
        780,
        |m, x: Tensor<4>| m.forward(x),
    );
}

#[test]
fn vab_matches_official() {
    // proj_1 8→12, the attention branch (780), proj_2 12→8, the pixel norm's γ and β.
    check_fixture(
        "vapsr/vab.safetensors",
        VabConfig::new(8, 12).init(&device()),
        &KeyMap::identity(),
        108 + 780 + 104 + 16,
        |m, x: Tensor<4>| m.forward(x),
    );
}

#[test]
fn whole_vapsr_matches_official_x2_x3_x4_and_s() {
    for (fixture, config) in [
        ("vapsr/vapsr_x2", VapsrConfig::new(2)),
        ("vapsr/vapsr_x3", VapsrConfig::new(3)),
        ("vapsr/vapsr_x4", VapsrConfig::new(4)),
        ("vapsr/vapsr_s_x4", VapsrConfig::new(4).with_conv_groups(2)),
    ] {
        let config = config.with_num_feat(8).with_d_atten(12).with_num_block(2);
        check_backbone(
            BackboneCheck {
                fixture,
                sizes: &[[12, 12], [11, 13]],
                in_chans: 3,
                forward: &|m: &Vapsr, x: Tensor<4>| m.forward(x),
                features: &|m: &Vapsr, x: Tensor<4>| vec![m.forward_features(x)],
            },
            || config.init(&device()),
            &key_map(config.scale),
        );
    }
}

#[test]
fn full_size_param_counts_match_the_official_models() {
    assert_eq!(
        VapsrConfig::new(2)
            .with_num_block(20)
            .init(&device())
            .num_params(),
        329_236
    );
    assert_eq!(
        VapsrConfig::new(3)
            .with_num_block(20)
            .init(&device())
            .num_params(),
        336_811
    );
    assert_eq!(VapsrConfig::new(4).init(&device()).num_params(), 342_220);
    assert_eq!(
        VapsrConfig::new(4)
            .with_num_feat(32)
            .with_num_block(11)
            .with_conv_groups(2)
            .init(&device())
            .num_params(),
        154_956
    );
    assert_registered_param_counts("vapsr/param_counts.json", &["vapsr"]);
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn official_checkpoints_load_strictly_with_published_sizes() {
    let Some(shared) = shared_dir() else { return };
    let device = device();
    for (name, file, params) in [
        ("vapsr_x2", "VapSR_X2.pth", 329_236),
        ("vapsr_x3", "VapSR_X3.pth", 336_811),
        ("vapsr_x4", "VapSR_X4.pth", 342_220),
        ("vapsr_s_x4", "VapSR-S.pth", 154_956),
    ] {
        let model = create_model(name, &device)
            .unwrap()
            .load_weights(shared.join("weights/sr/vapsr").join(file))
            .unwrap_or_else(|e| panic!("{name} ({file}): {e}"));
        assert_eq!(model.num_params(), params, "{name}");
    }
}
