//! HAT parity: the overlapping cross-attention block, the hybrid attention block and the whole
//! network against the OFFICIAL code (github.com/XPixelGroup/HAT @ 1638a9a8; fixtures from
//! tests/reference/gen_hat_fixtures.py), max abs diff ≤ 1e-4, odd sizes reflect-padded as the
//! official inference does; the relative position indices are the official buffers; the
//! full-size parameter counts are the official ones.

use crate::common::{check_backbone, check_fixture, fixture, BackboneCheck};
use burn::module::Module;
use burn::prelude::*;
use gaze::backbones::hat::{key_map, Hat, HatConfig, HAT_LRELU_SLOPE};
use gaze::blocks::hab::{Hab, HabConfig};
use gaze::blocks::ocab::{ocab_relative_position_index, OcabConfig};
use gaze::blocks::window_attention::relative_position_index;
use gaze::weights::Checkpoint;

fn device() -> Device {
    Device::flex()
}

/// The whole-network fixtures' configuration: embed 12, 2 groups of 2 HABs, 2 heads, window 4
/// (OCAB windows 6), CAB compress 3 / squeeze 2, a 16-channel tail.
fn tiny(scale: usize) -> HatConfig {
    HatConfig::new()
        .with_upscale(scale)
        .with_embed_dim(12)
        .with_depths(vec![2, 2])
        .with_num_heads(vec![2, 2])
        .with_window_size(4)
        .with_compress_ratio(3)
        .with_squeeze_factor(2)
        .with_num_feat(16)
}

#[test]
fn ocab_matches_official() {
    // OCAB(12, window 4, overlap 0.5, 2 heads, mlp_ratio 2) on [2, 8, 12, 12] (channels-last).
    let block = check_fixture(
        "hat/ocab.safetensors",
        OcabConfig::new(12, 2, 4).init(&device()),
        &gaze::blocks::ocab::key_map(),
        1446,
        |m, x: Tensor<4>| m.forward(x),
    );
    assert_eq!(block.overlap_win_size, 6);
}

#[test]
fn shifted_hab_matches_official() {
    // HAB(12, 2 heads, window 4, shift 2, compress 3, squeeze 2, conv_scale 1, mlp_ratio 2).
    check_fixture(
        "hat/hab.safetensors",
        HabConfig::new(12, 2, 4)
            .with_shift_size(2)
            .with_squeeze_factor(2)
            .with_conv_scale(1.0)
            .with_mlp_ratio(2.0)
            .init(&device()),
        &gaze::blocks::hab::key_map(),
        2424,
        |m: &Hab, x: Tensor<4>| {
            let [_, h, w, _] = x.dims();
            let mask = m.attn_mask(h, w, &x.device());
            m.forward(x, mask)
        },
    );
}

#[test]
fn whole_hat_matches_official_x2_x3() {
    for scale in [2, 3] {
        check_backbone(
            BackboneCheck {
                fixture: &format!("hat/hat_x{scale}"),
                // 13x11 is reflect-padded to 16x12 and the output cropped back.
                sizes: &[[16, 16], [13, 11]],
                in_chans: 3,
                forward: &|m: &Hat, x: Tensor<4>| m.forward(x),
                features: &|m: &Hat, x: Tensor<4>| vec![m.forward_features(x)],
            },
            || tiny(scale).init(&device()),
            &key_map(scale),
        );
    }
}

fn int_buffer(checkpoint: &mut Checkpoint, key: &str) -> (Vec<usize>, Vec<i64>) {
    let t = checkpoint
        .tensors
        .remove(key)
        .unwrap_or_else(|| panic!("no '{key}'"));
    let data = burn::store::bridge::into_data(t).unwrap();
    let shape = data.shape().to_vec();
    (shape, data.convert::<i64>().try_to_vec::<i64>().unwrap())
}

#[test]
fn relative_position_indices_are_the_official_buffers() {
    // The official model's int64 buffers, saved in the fixture's .pth (gaze recomputes them;
    // the key map ignores them when loading).
    let mut checkpoint = Checkpoint::open(fixture("hat/hat_x2.pth")).unwrap();
    let (shape, sa) = int_buffer(&mut checkpoint, "relative_position_index_SA");
    assert_eq!(shape, [16, 16]);
    assert_eq!(sa, relative_position_index(4, 4));
    let (shape, oca) = int_buffer(&mut checkpoint, "relative_position_index_OCA");
    assert_eq!(shape, [16, 36]);
    assert_eq!(oca, ocab_relative_position_index(4, 6));
    assert!(
        oca.iter().any(|&i| i < 0),
        "the official OCA index has negative entries"
    );
    assert!(key_map(2).is_ignored("relative_position_index_OCA"));
}

#[test]
fn every_leaky_relu_of_the_reference_has_hats_slope() {
    let constants = crate::common::constants("hat");
    let mut seen = 0;
    for section in ["fixtures", "registered"] {
        for (name, c) in constants[section].as_object().unwrap() {
            let slopes = c["leaky_relu_slope"].as_object().unwrap();
            for slope in slopes.keys() {
                assert_eq!(slope.parse::<f64>().unwrap(), HAT_LRELU_SLOPE, "{name}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 8);
}

#[test]
fn full_size_param_counts_are_the_official_ones() {
    for (config, params) in [
        (HatConfig::hat(2), 20_624_795),
        (HatConfig::hat(3), 20_809_435),
        (HatConfig::hat(4), 20_772_507),
        (HatConfig::hat_s(2), 9_473_471),
        (HatConfig::hat_s(3), 9_658_111),
        (HatConfig::hat_s(4), 9_621_183),
    ] {
        assert_eq!(config.init(&device()).num_params(), params, "{config:?}");
    }
    assert_eq!(HatConfig::new().upscale, 4, "the defaults are HAT x4");
    crate::common::assert_registered_param_counts("hat/param_counts.json", &["hat"]);
}
