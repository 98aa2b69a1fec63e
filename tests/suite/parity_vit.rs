//! ViT/DeiT parity with timm's `VisionTransformer` (`dynamic_img_size=True`): a tiny variant
//! with random weights (tests/reference/gen_vit_fixtures.py) gives the same logits at its
//! training size and at a non-square size (position embeddings resampled with anti-aliased
//! bicubic, one axis up and one down), and the same block outputs; registered models have
//! timm's parameter counts.

use crate::common::{check_backbone, logits4, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::vit::VitConfig;
use gaze::backbones::Family;

fn check(name: &str, config: VitConfig) {
    let device = Device::flex();
    check_backbone(
        BackboneCheck {
            fixture: &format!("vit/{name}"),
            sizes: &[[64, 64], [80, 48]],
            in_chans: 3,
            forward: &|m: &gaze::backbones::vit::VisionTransformer, x: Tensor<4>| {
                logits4(m.forward(x))
            },
            features: &|m: &gaze::backbones::vit::VisionTransformer, x: Tensor<4>| {
                m.forward_intermediates(x)
            },
        },
        || config.init(&device),
        &config.key_map(),
    );
}

fn tiny() -> VitConfig {
    VitConfig::new(32, 4, 2)
        .with_img_size(64)
        .with_num_classes(10)
}

#[test]
fn tiny_vit_matches_timm_at_two_sizes() {
    check("tiny", tiny());
}

#[test]
fn qk_norm_and_layer_scale_match_timm() {
    check(
        "tiny_qknorm_ls",
        tiny().with_qk_norm(true).with_init_values(Some(0.5)),
    );
}

#[test]
fn registered_vits_have_timm_parameter_counts() {
    crate::common::assert_registered_param_counts("vit/param_counts.json", &["vit"]);
}
