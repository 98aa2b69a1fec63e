//! IMDN parity: the contrast-aware channel attention, the distillation block and the whole
//! network against the OFFICIAL code (github.com/Zheng222/IMDN @ 8f158e6a; fixtures from
//! tests/reference/gen_imdn_fixtures.py), max abs diff ≤ 1e-4; the full-size parameter counts
//! are the official ones.

use crate::common::{check_backbone, check_fixture, shared_dir, BackboneCheck};
use burn::module::Module;
use burn::prelude::*;
use gaze::backbones::imdn::{key_map, Imdn, ImdnConfig};
use gaze::blocks::cca::CcaLayerConfig;
use gaze::blocks::imdb::{ImdModuleConfig, IMDN_LRELU_SLOPE};

fn device() -> Device {
    Device::flex()
}

#[test]
fn cca_matches_official() {
    // CCALayer(32), reduction 16: a 2-channel bottleneck; 32·2 + 2 + 2·32 + 32 parameters.
    check_fixture(
        "imdn/cca.safetensors",
        CcaLayerConfig::new(32).init(&device()),
        &gaze::blocks::cca::key_map(),
        162,
        |m, x: Tensor<4>| m.forward(x),
    );
}

#[test]
fn imdb_matches_official() {
    // IMDModule(16): distilled 4, remaining 12, CCA on 16 channels (1-channel bottleneck).
    let block = check_fixture(
        "imdn/imdb.safetensors",
        ImdModuleConfig::new(16).init(&device()),
        &gaze::blocks::imdb::key_map(),
        6565,
        |m, x: Tensor<4>| m.forward(x),
    );
    assert_eq!(block.distilled, 4);
}

#[test]
fn whole_imdn_matches_official_x2_x3_x4() {
    for scale in [2, 3, 4] {
        // nf 8 (distilled 2 + remaining 6), the official six blocks, CCA reduction 4.
        let config = ImdnConfig::new(scale).with_nf(8).with_cca_reduction(4);
        check_backbone(
            BackboneCheck {
                fixture: &format!("imdn/imdn_x{scale}"),
                sizes: &[[12, 12], [11, 13]],
                in_chans: 3,
                forward: &|m: &Imdn, x: Tensor<4>| m.forward(x),
                features: &|m: &Imdn, x: Tensor<4>| vec![m.forward_features(x)],
            },
            || config.init(&device()),
            &key_map(config.num_modules),
        );
    }
}

#[test]
fn every_leaky_relu_of_the_reference_has_imdn_slope() {
    let constants = crate::common::constants("imdn");
    let mut seen = 0;
    for section in ["fixtures", "registered"] {
        for (name, c) in constants[section].as_object().unwrap() {
            let slopes = c["leaky_relu_slope"].as_object().unwrap();
            for slope in slopes.keys() {
                assert_eq!(slope.parse::<f64>().unwrap(), IMDN_LRELU_SLOPE, "{name}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 6);
}

#[test]
fn full_size_param_counts_are_the_official_ones() {
    for (scale, params) in [(2, 694_404), (3, 703_059), (4, 715_176)] {
        assert_eq!(
            ImdnConfig::new(scale).init(&device()).num_params(),
            params,
            "x{scale}"
        );
    }
    crate::common::assert_registered_param_counts("imdn/param_counts.json", &["imdn"]);
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn official_checkpoints_load_strictly() {
    let Some(shared) = shared_dir() else { return };
    let device = device();
    for (name, file, params) in [
        ("imdn_x2", "IMDN_x2.pth", 694_404),
        ("imdn_x3", "IMDN_x3.pth", 703_059),
        ("imdn_x4", "IMDN_x4.pth", 715_176),
    ] {
        let model = gaze::create_model(name, &device)
            .unwrap()
            .load_weights(shared.join("weights/sr/imdn").join(file))
            .unwrap();
        assert_eq!(model.num_params(), params, "{name}");
    }
}
