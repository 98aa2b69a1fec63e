//! PAN parity: every block and the whole network against the PyTorch reference of the
//! official code (fixtures from tests/reference/gen_pan_fixtures.py), max abs diff ≤ 1e-4.

use crate::common::{assert_close, load_fixture};
use burn::module::Module;
use burn::prelude::*;
use gaze::backbones::PanConfig;
use gaze::blocks::{PixelAttentionConfig, ScpaConfig, UpaConfig};
use gaze::weights::{apply_checkpoint, KeyMap};

const TOL: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

#[test]
fn pixel_attention_matches_reference() {
    let f = load_fixture("pan/pa.safetensors", &device());
    let pa = apply_checkpoint(
        PixelAttentionConfig::new(6).init(&device()),
        f.checkpoint,
        &KeyMap::identity(),
    )
    .unwrap();
    assert_eq!(pa.num_params(), 6 * 6 + 6);
    assert_close("PA", pa.forward(f.input), f.output, TOL);
}

#[test]
fn scpa_matches_reference() {
    let f = load_fixture("pan/scpa.safetensors", &device());
    let block = apply_checkpoint(
        ScpaConfig::new(8).init(&device()),
        f.checkpoint,
        &gaze::backbones::pan::key_map(),
    )
    .unwrap();
    assert_close("SC-PA", block.forward(f.input), f.output, TOL);
}

#[test]
fn upa_matches_reference_x2_and_x3() {
    let keys = KeyMap::new(&[("^HRconv", "hr_conv")]);
    for (file, factor) in [("pan/upa.safetensors", 2), ("pan/upa_x3.safetensors", 3)] {
        let f = load_fixture(file, &device());
        let stage = apply_checkpoint(
            UpaConfig::new(8, 6, factor).init(&device()),
            f.checkpoint,
            &keys,
        )
        .unwrap();
        assert_close(file, stage.forward(f.input), f.output, TOL);
    }
}

#[test]
fn whole_pan_matches_reference_x2_x3_x4() {
    for scale in [2, 3, 4] {
        let config = PanConfig::new(scale)
            .with_nf(8)
            .with_unf(6)
            .with_num_blocks(2);
        crate::common::check_backbone(
            crate::common::BackboneCheck {
                fixture: &format!("pan/pan_x{scale}"),
                sizes: &[[12, 12], [11, 13]],
                in_chans: 3,
                forward: &|m: &gaze::backbones::Pan, x: Tensor<4>| m.forward(x),
                features: &|m: &gaze::backbones::Pan, x: Tensor<4>| vec![m.forward_features(x)],
            },
            || config.init(&device()),
            &gaze::backbones::pan::key_map(),
        );
    }
}

#[test]
fn full_size_param_counts_match_the_paper() {
    assert_eq!(PanConfig::new(2).init(&device()).num_params(), 261_403);
    assert_eq!(PanConfig::new(3).init(&device()).num_params(), 261_403);
    assert_eq!(PanConfig::new(4).init(&device()).num_params(), 272_419);
}
