//! Swin Transformer parity with timm 1.0.31: a tiny model built by timm's own
//! `SwinTransformer` class with random weights (tests/reference/gen_swin_fixtures.py) loads
//! strictly and gives the same logits at 64×64 (its configured size), at a non-square 96×56
//! (window padding, odd-size patch merging, a clipped last-stage window) and at 66×50 (not a
//! multiple of the patch: padded like timm's `dynamic_img_pad`), and the same four stage
//! outputs; the full-size models have timm's parameter counts.

use crate::common::{assert_close, check_backbone, deterministic_input, logits4, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::swin::SwinConfig;
use gaze::backbones::Family;

fn tiny() -> SwinConfig {
    SwinConfig::new()
        .with_img_size([64, 64])
        .with_embed_dim(6)
        .with_depths(vec![2, 2, 2, 2])
        .with_num_heads(vec![1, 2, 2, 4])
        .with_window_size(4)
        .with_num_classes(10)
}

#[test]
fn tiny_swin_matches_timm() {
    let device = Device::flex();
    let config = tiny();
    let info = config.feature_info();
    let net = check_backbone(
        BackboneCheck {
            fixture: "swin/tiny",
            sizes: &[[64, 64], [96, 56], [66, 50]],
            in_chans: 3,
            forward: &|m: &gaze::backbones::swin::Swin, x: Tensor<4>| logits4(m.forward(x)),
            features: &|m: &gaze::backbones::swin::Swin, x: Tensor<4>| {
                let [_, _, h, _] = x.dims();
                let maps = m.forward_intermediates(x);
                for (map, level) in maps.iter().zip(&info) {
                    assert_eq!(map.dims()[1], level.channels, "channels");
                    assert_eq!(map.dims()[2], h.div_ceil(level.reduction), "stride");
                }
                maps
            },
        },
        || config.init(&device),
        &config.key_map(),
    );
    // forward = forward_head ∘ forward_features, on NCHW features after the final norm.
    let x = deterministic_input([2, 3, 96, 56], &device);
    let feats = net.forward_features(x.clone());
    assert_eq!(feats.dims(), [2, 48, 3, 2]);
    assert_close(
        "forward_head(forward_features)",
        net.forward_head(feats),
        net.forward(x),
        1e-6,
    );
}

#[test]
fn full_size_stages_and_feature_info() {
    let c = SwinConfig::swin_tiny_patch4_window7_224();
    assert_eq!(c.stage_resolution(0), [56, 56]);
    assert_eq!(c.stage_resolution(3), [7, 7]);
    let info = c.feature_info();
    assert_eq!(
        info.iter()
            .map(|f| (f.channels, f.reduction, f.module))
            .collect::<Vec<_>>(),
        vec![
            (96, 4, "layers.0"),
            (192, 8, "layers.1"),
            (384, 16, "layers.2"),
            (768, 32, "layers.3")
        ]
    );
    assert_eq!(c.num_features(), 768);
}

#[test]
fn full_size_parameter_counts_match_timm() {
    crate::common::assert_registered_param_counts("swin/param_counts.json", &["swin"]);
}
