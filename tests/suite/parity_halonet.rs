//! HaloNet parity with timm 1.0.31: two tiny models built by timm's own `ByobNet` from reduced
//! copies of the `halonet26t` (ReLU) and `halonet50ts` (SiLU, block-level `self_attn_kwargs`
//! override) cfgs with random weights (tests/reference/gen_halonet_fixtures.py) load strictly
//! and give the same logits at 64×64, at a non-square 128×64, and at 70×50 (not a multiple of
//! the 64 the tiny models need: zero-padded to 128×64 on both sides), and the same five
//! feature maps; the full-size models have timm's parameter counts.

use crate::common::{assert_close, check_backbone, deterministic_input, logits4, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::halonet::{
    interleave_blocks, ByoBlockType, ByoStageConfig, HaloKwargs, HaloNetConfig,
};
use gaze::backbones::Family;
use gaze::blocks::Activation;

/// timm's tiny26t cfg of gen_halonet_fixtures.py.
fn tiny26t() -> HaloNetConfig {
    use ByoBlockType::*;
    HaloNetConfig::new(vec![
        ByoStageConfig::repeat(Bottle, 1, 8, 1),
        ByoStageConfig::repeat(Bottle, 1, 32, 2),
        interleave_blocks([Bottle, SelfAttn], 2, 1, false, 64, 2),
        ByoStageConfig::repeat(SelfAttn, 1, 128, 2),
    ])
    .with_stem_chs(8)
    .with_self_attn_kwargs(
        HaloKwargs::new()
            .with_block_size(4)
            .with_halo_size(1)
            .with_num_heads(2),
    )
    .with_num_classes(10)
}

/// timm's tiny50ts cfg of gen_halonet_fixtures.py.
fn tiny50ts() -> HaloNetConfig {
    use ByoBlockType::*;
    HaloNetConfig::new(vec![
        ByoStageConfig::repeat(Bottle, 1, 8, 1),
        interleave_blocks([Bottle, SelfAttn], 2, 1, false, 32, 2).with_self_attn_kwargs(
            HaloKwargs::new()
                .with_block_size(4)
                .with_halo_size(2)
                .with_num_heads(4),
        ),
        interleave_blocks([Bottle, SelfAttn], 2, 1, false, 64, 2),
        interleave_blocks([Bottle, SelfAttn], 2, 1, false, 128, 2),
    ])
    .with_stem_chs(8)
    .with_act_layer(Activation::Silu)
    .with_self_attn_kwargs(
        HaloKwargs::new()
            .with_block_size(2)
            .with_halo_size(1)
            .with_num_heads(2),
    )
    .with_num_classes(10)
}

fn check_tiny(tag: &str, config: HaloNetConfig) {
    let device = Device::flex();
    assert_eq!(config.input_multiple(), 64);
    let info = config.feature_info();
    let net = check_backbone(
        BackboneCheck {
            fixture: &format!("halonet/{tag}"),
            // 70×50 is zero-padded to 128×64 on both sides (logits only).
            sizes: &[[64, 64], [128, 64], [70, 50]],
            in_chans: 3,
            forward: &|m: &gaze::backbones::halonet::HaloNet, x: Tensor<4>| logits4(m.forward(x)),
            features: &|m: &gaze::backbones::halonet::HaloNet, x: Tensor<4>| {
                let h = x.dims()[2];
                let maps = m.forward_intermediates(x);
                for (map, level) in maps.iter().zip(&info) {
                    assert_eq!(map.dims()[1], level.channels, "{tag} channels");
                    assert_eq!(
                        map.dims()[2],
                        h.div_ceil(64) * 64 / level.reduction,
                        "{tag} stride"
                    );
                }
                maps
            },
        },
        || config.init(&device),
        &config.key_map(),
    );
    let x = deterministic_input([2, 3, 128, 64], &device);
    let feats = net.forward_features(x.clone());
    assert_eq!(feats.dims(), [2, 128, 4, 2]);
    assert_close(
        &format!("{tag} forward_head(forward_features)"),
        net.forward_head(feats),
        net.forward(x),
        1e-6,
    );
}

#[test]
fn tiny_halonet26t_matches_timm() {
    check_tiny("tiny26t", tiny26t());
}

#[test]
fn tiny_halonet50ts_matches_timm() {
    check_tiny("tiny50ts", tiny50ts());
}

#[test]
fn full_size_feature_info_and_input_multiple() {
    for c in [HaloNetConfig::halonet26t(), HaloNetConfig::halonet50ts()] {
        assert_eq!(c.input_multiple(), 256);
        assert_eq!(c.num_features(), 2048);
        assert_eq!(
            c.feature_info()
                .iter()
                .map(|f| (f.channels, f.reduction, f.module))
                .collect::<Vec<_>>(),
            vec![
                (64, 2, "stem.conv3"),
                (256, 4, "stages.0"),
                (512, 8, "stages.1"),
                (1024, 16, "stages.2"),
                (2048, 32, "final_conv")
            ]
        );
    }
    // timm's interleave_blocks: halonet50ts stage 1 has its attention last, stage 2 at 1, 3, 5.
    let c = HaloNetConfig::halonet50ts();
    let kinds = |s: usize| {
        c.stages[s]
            .blocks
            .iter()
            .map(|b| b.block_type == ByoBlockType::SelfAttn)
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(1), [false, false, false, true]);
    assert_eq!(kinds(2), [false, true, false, true, false, true]);
    assert_eq!(kinds(3), [false, true, false]);
}

#[test]
fn full_size_parameter_counts_match_timm() {
    crate::common::assert_registered_param_counts("halonet/param_counts.json", &["halonet"]);
}
