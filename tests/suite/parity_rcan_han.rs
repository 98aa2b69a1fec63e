//! RCAN and HAN parity: the whole networks against the OFFICIAL code (github.com/yulunzhang/RCAN
//! @ f722e5d0, `RCAN_TestCode/code/model/rcan.py`; github.com/wwlCape/HAN @ 0595e23a,
//! `src/model/han.py`; fixtures from tests/reference/gen_rcan_han_fixtures.py, the official
//! forward on `x · 255` divided by 255), max abs diff ≤ 1e-4; the full-size parameter counts
//! are the official ones.

use crate::common::{assert_registered_param_counts, check_backbone, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::han::{Han, HanConfig};
use gaze::backbones::rcan::{Rcan, RcanConfig, DIV2K_RGB_MEAN};

fn device() -> Device {
    Device::flex()
}

/// The fixtures' sizes: 12x12 and 11x13, x8 at 6x6 and 5x7 (64 output pixels per input pixel).
fn sizes(scale: usize) -> &'static [[usize; 2]] {
    if scale == 8 {
        &[[6, 6], [5, 7]]
    } else {
        &[[12, 12], [11, 13]]
    }
}

#[test]
fn whole_rcan_matches_official_x2_x3_x4_x8() {
    for scale in [2, 3, 4, 8] {
        // 2 residual groups of 2 RCABs: `body.{g}.body.2` closes a group, `body.2` the trunk.
        let config = RcanConfig::new(scale)
            .with_n_resgroups(2)
            .with_n_resblocks(2)
            .with_n_feats(8)
            .with_reduction(2);
        check_backbone(
            BackboneCheck {
                fixture: &format!("rcan/rcan_x{scale}"),
                sizes: sizes(scale),
                in_chans: 3,
                forward: &|m: &Rcan, x: Tensor<4>| m.forward(x),
                features: &|m: &Rcan, x: Tensor<4>| vec![m.forward_features(x)],
            },
            || config.init(&device()),
            &gaze::backbones::rcan::key_map(&config),
        );
    }
}

#[test]
fn whole_han_matches_official_x2_x3_x4() {
    for scale in [2, 3, 4] {
        // The official `last_conv` takes n_feats · 11 channels: 10 groups (of 1 RCAB here).
        let config = HanConfig::new(
            RcanConfig::new(scale)
                .with_n_resgroups(10)
                .with_n_resblocks(1)
                .with_n_feats(6)
                .with_reduction(2),
        );
        let net = check_backbone(
            BackboneCheck {
                fixture: &format!("han/han_x{scale}"),
                sizes: sizes(scale),
                in_chans: 3,
                forward: &|m: &Han, x: Tensor<4>| m.forward(x),
                features: &|m: &Han, x: Tensor<4>| vec![m.forward_features(x)],
            },
            || config.init(&device()),
            &gaze::backbones::han::key_map(&config),
        );
        assert_eq!(net.last_conv.weight.val().dims(), [6, 66, 3, 3]);
    }
}

#[test]
fn mean_shifts_start_as_the_official_div2k_shift() {
    let net = RcanConfig::new(2)
        .with_n_resgroups(1)
        .with_n_resblocks(1)
        .with_n_feats(16)
        .init(&device());
    for (conv, sign) in [(&net.sub_mean, -1.0), (&net.add_mean, 1.0)] {
        let weight: Vec<f32> = conv.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(weight, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        let bias: Vec<f32> = conv
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (b, m) in bias.iter().zip(DIV2K_RGB_MEAN) {
            assert!((*b as f64 - sign * 255.0 * m).abs() < 1e-4, "{b} vs {m}");
        }
    }
    // `sub_mean` then `add_mean` is the identity (on any input range).
    let x = crate::common::deterministic_input([1, 3, 5, 4], &device());
    let y = net.add_mean.forward(net.sub_mean.forward(x.clone()));
    crate::common::assert_close("add_mean(sub_mean(x))", y, x, 1e-4);
}

#[test]
fn rcan_registered_models_have_the_official_parameter_counts() {
    assert_registered_param_counts("rcan/param_counts.json", &["rcan"]);
}

#[test]
fn han_registered_models_have_the_official_parameter_counts() {
    assert_registered_param_counts("han/param_counts.json", &["han"]);
}

#[test]
fn han_is_rcan_plus_its_attention_modules() {
    // LAM's γ (1), CSAM's γ and 3×3×3 conv (1 + 27 + 1), `last_conv` (11·64 → 64, 3×3) and
    // `last` (2·64 → 64, 3×3).
    let extra = 1 + 29 + (11 * 64 * 9 * 64 + 64) + (2 * 64 * 9 * 64 + 64);
    for (scale, rcan, han) in [
        (2, 15_444_667, 15_924_057),
        (3, 15_629_307, 16_108_697),
        (4, 15_592_379, 16_071_769),
        (8, 15_740_091, 16_219_481),
    ] {
        assert_eq!(han - rcan, extra, "x{scale}");
    }
    let han = HanConfig::new(
        RcanConfig::new(2)
            .with_n_resgroups(3)
            .with_n_resblocks(2)
            .with_n_feats(4)
            .with_reduction(2),
    )
    .init(&device());
    assert_eq!(han.rcan.body.len(), 3);
    assert_eq!(han.last_conv.weight.val().dims(), [4, 16, 3, 3]);
    // Round trip of the official names, e.g. a group's closing conv and the trunk conv.
    let keys = gaze::backbones::han::key_map(&HanConfig::published(4));
    for (official, ours) in [
        ("body.3.body.20.weight", "rcan.body.3.conv.weight"),
        ("body.10.bias", "rcan.body_conv.bias"),
        (
            "body.0.body.19.body.3.conv_du.2.weight",
            "rcan.body.0.body.19.ca.conv_up.weight",
        ),
        (
            "body.9.body.2.body.2.weight",
            "rcan.body.9.body.2.conv2.weight",
        ),
        ("head.0.weight", "rcan.head.weight"),
        ("tail.0.2.weight", "rcan.upsampler.convs.1.weight"),
        ("tail.1.bias", "rcan.tail_conv.bias"),
        ("sub_mean.weight", "rcan.sub_mean.weight"),
        ("csa.conv.weight", "csa.conv.weight"),
        ("la.gamma", "la.gamma"),
        ("last_conv.weight", "last_conv.weight"),
        ("last.bias", "last.bias"),
    ] {
        assert_eq!(keys.map(official), ours);
        assert_eq!(keys.unmap(ours), official);
    }
}
