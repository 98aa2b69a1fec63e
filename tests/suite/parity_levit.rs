//! LeViT parity with timm 1.0.31: tiny variants built by timm's own `LevitDistilled` / `Levit`
//! classes with random weights (tests/reference/gen_levit_fixtures.py) load strictly through
//! `gaze::backbones::levit::key_map()` and give timm's logits and stage maps; the registered full-size configs
//! have timm's parameter counts; inputs the fixed attention-bias resolution cannot take are
//! refused.

use crate::common::{assert_close, check_backbone, deterministic_input, logits4, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::levit::{LevitConfig, LevitStemType};
use gaze::backbones::Family;
use gaze::blocks::Activation;

fn tiny() -> LevitConfig {
    LevitConfig::new(vec![16, 24, 32], 8, vec![1, 1, 1], vec![2, 2, 2])
        .with_img_size([64, 64])
        .with_num_classes(10)
}

fn tiny_rect_s8() -> LevitConfig {
    LevitConfig::new(vec![16, 24, 32], 8, vec![1, 2, 1], vec![2, 3, 2])
        .with_img_size([80, 48])
        .with_num_classes(10)
        .with_attn_ratio(vec![2.0, 1.5, 2.0])
        .with_mlp_ratio(vec![2.0, 3.0, 2.0])
        .with_stem_type(LevitStemType::S8)
        .with_act_layer(Activation::Silu)
        .with_distilled(false)
}

fn check(name: &str, config: LevitConfig, sizes: &[[usize; 2]]) {
    let device = Device::flex();
    let info = config.feature_info();
    let net = check_backbone(
        BackboneCheck {
            fixture: &format!("levit/{name}"),
            sizes,
            in_chans: 3,
            forward: &|m: &gaze::backbones::levit::Levit, x: Tensor<4>| logits4(m.forward(x)),
            features: &|m: &gaze::backbones::levit::Levit, x: Tensor<4>| {
                let [_, _, h, _] = x.dims();
                let maps = m.forward_intermediates(x);
                assert_eq!(maps.len(), 3);
                for (map, level) in maps.iter().zip(&info) {
                    assert_eq!(map.dims()[1], level.channels, "{name} channels");
                    assert_eq!(map.dims()[2], h.div_ceil(level.reduction), "{name} stride");
                }
                maps
            },
        },
        || config.init(&device),
        &config.key_map(),
    );
    // forward_features is the last stage map, forward_head(forward_features) is forward.
    let [h, w] = sizes[0];
    let x = deterministic_input([2, 3, h, w], &device);
    let last = net.forward_features(x.clone());
    let maps = net.forward_intermediates(x.clone());
    assert_close(
        &format!("{name} forward_features"),
        last.clone(),
        maps[2].clone(),
        1e-6,
    );
    assert_close(
        &format!("{name} forward_head"),
        net.forward_head(last),
        net.forward(x),
        1e-6,
    );
}

#[test]
fn tiny_distilled_matches_timm() {
    check("tiny_distilled", tiny(), &[[64, 64], [61, 57]]);
}

#[test]
fn tiny_rect_s8_silu_single_head_matches_timm() {
    // 77×47 maps to the same 10×6 token map as the configured 80×48, so timm (and gaze)
    // accept it.
    check("tiny_rect_s8", tiny_rect_s8(), &[[80, 48], [77, 47]]);
}

#[test]
#[should_panic(expected = "fixed input size")]
fn other_resolutions_are_refused() {
    let device = Device::flex();
    tiny()
        .init(&device)
        .forward(deterministic_input([1, 3, 96, 96], &device));
}

#[test]
fn registered_configs_have_timm_parameter_counts() {
    crate::common::assert_registered_param_counts("levit/param_counts.json", &["levit"]);
}
