//! A2N parity: the attention-in-attention block (A2N and A2N-M branch kernels) and the whole
//! network at ×2, ×3, ×4 against the OFFICIAL code (github.com/haoyuc/A2N @ 210b38cb; fixtures
//! from tests/reference/gen_a2n_fixtures.py), max abs diff ≤ 1e-4. The whole-network fixtures
//! are the official forward on `x · 255` divided by 255, i.e. gaze's [0, 1] convention; the
//! full-size parameter counts are the official ones.

use crate::common::{check_backbone, check_fixture, shared_dir, BackboneCheck};
use burn::module::Module;
use burn::prelude::*;
use gaze::backbones::a2n::{key_map, A2n, A2nConfig};
use gaze::blocks::aab::AabConfig;
use gaze::blocks::layers::LRELU_SLOPE;

fn device() -> Device {
    Device::flex()
}

#[test]
fn aab_matches_official() {
    // AAB(8): 1×1 first/last (2·64), ADM 8→2→2 (16 + 4), attention branch 3·576 + 64 + 8,
    // 3×3 non-attention branch 576.
    let block = check_fixture(
        "a2n/aab.safetensors",
        AabConfig::new(8).init(&device()),
        &gaze::blocks::aab::key_map(),
        2524,
        |m, x: Tensor<4>| m.forward(x),
    );
    assert_eq!(block.temperature, 30.0);
}

#[test]
fn aab_with_a2n_m_branch_matches_official() {
    // The A2N-M variant: a 1×1 non-attention branch (64 instead of 576 weights).
    check_fixture(
        "a2n/aab_m.safetensors",
        AabConfig::new(8)
            .with_non_attention_kernel(1)
            .init(&device()),
        &gaze::blocks::aab::key_map(),
        2012,
        |m, x: Tensor<4>| m.forward(x),
    );
}

#[test]
fn whole_a2n_matches_official_x2_x3_x4() {
    for scale in [2, 3, 4] {
        // nf 8, unf 6, two AABs (ADM width 2), inputs in [0, 1].
        let config = A2nConfig::new(scale)
            .with_nf(8)
            .with_unf(6)
            .with_num_blocks(2);
        check_backbone(
            BackboneCheck {
                fixture: &format!("a2n/a2n_x{scale}"),
                sizes: &[[12, 12], [11, 13]],
                in_chans: 3,
                forward: &|m: &A2n, x: Tensor<4>| m.forward(x),
                features: &|m: &A2n, x: Tensor<4>| vec![m.forward_features(x)],
            },
            || config.init(&device()),
            &key_map(),
        );
    }
}

#[test]
fn every_leaky_relu_of_the_reference_has_gaze_slope() {
    let constants = crate::common::constants("a2n");
    let mut seen = 0;
    for section in ["fixtures", "registered"] {
        for (name, c) in constants[section].as_object().unwrap() {
            let slopes = c["leaky_relu_slope"].as_object().unwrap();
            for slope in slopes.keys() {
                assert_eq!(slope.parse::<f64>().unwrap(), LRELU_SLOPE, "{name}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 6);
}

#[test]
fn full_size_param_counts_are_the_official_ones() {
    for (scale, params) in [(2, 1_036_443), (3, 1_036_443), (4, 1_047_459)] {
        assert_eq!(
            A2nConfig::new(scale).init(&device()).num_params(),
            params,
            "x{scale}"
        );
    }
    crate::common::assert_registered_param_counts("a2n/param_counts.json", &["a2n"]);
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn official_checkpoints_load_strictly() {
    let Some(shared) = shared_dir() else { return };
    let device = device();
    // Legacy (pre-1.6) pickles of a plain dict state dict; the official repository has no ×4.
    for (name, file) in [("a2n_x2", "aan_x2.pt"), ("a2n_x3", "aan_x3.pt")] {
        let model = gaze::create_model(name, &device)
            .unwrap()
            .load_weights(shared.join("weights/sr/a2n").join(file))
            .unwrap();
        assert_eq!(model.num_params(), 1_036_443, "{name}");
    }
}
