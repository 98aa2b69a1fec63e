//! ResNet family parity with timm: tiny variants of every code path (stems, shortcuts, block
//! types, every pluggable attention kind) built by timm's own `ResNet` class with random weights
//! (tests/reference/gen_resnet_fixtures.py) give the same logits at 224×224 and at a non-square
//! size, and the same five feature maps; every registered full-size model has timm's parameter
//! count.

use crate::common::{check_backbone, fixture, logits4, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::resnet::{BlockType, ResNetConfig, StemType};
use gaze::backbones::Family;
use gaze::blocks::attention::AttentionKind;
use gaze::weights::{apply_checkpoint, Checkpoint};

fn tiny(
    block: BlockType,
    layers: [usize; 4],
    stem: Option<StemType>,
    attn: Option<AttentionKind>,
) -> ResNetConfig {
    let mut c = ResNetConfig::new(block, layers.to_vec())
        .with_channels(vec![8, 8, 16, 16])
        .with_num_classes(10)
        .with_attn_layer(attn);
    if let Some(stem) = stem {
        c = c
            .with_stem_type(stem)
            .with_stem_width(8)
            .with_avg_down(true);
    }
    c
}

fn check(name: &str, config: ResNetConfig) {
    let device = Device::flex();
    let info = config.feature_info();
    check_backbone(
        BackboneCheck {
            fixture: &format!("resnet/{name}"),
            sizes: &[[56, 56], [29, 23]],
            in_chans: 3,
            forward: &|m: &gaze::backbones::resnet::ResNet, x: Tensor<4>| logits4(m.forward(x)),
            features: &|m: &gaze::backbones::resnet::ResNet, x: Tensor<4>| {
                let maps = m.forward_intermediates(x);
                for (map, level) in maps.iter().zip(&info) {
                    assert_eq!(map.dims()[1], level.channels, "feature channels");
                }
                maps
            },
        },
        || config.init(&device),
        &config.key_map(),
    );
}

#[test]
fn basic_block_plain_stem() {
    check(
        "basic_plain",
        tiny(BlockType::Basic, [2, 1, 1, 1], None, None),
    );
}

#[test]
fn bottleneck_with_se() {
    check(
        "bottleneck_plain_se",
        tiny(
            BlockType::Bottleneck,
            [1, 2, 1, 1],
            None,
            Some(AttentionKind::Se),
        ),
    );
}

#[test]
fn bottleneck_deep_stem_avg_down_with_eca() {
    check(
        "bottleneck_d_eca",
        tiny(
            BlockType::Bottleneck,
            [1, 1, 1, 1],
            Some(StemType::Deep),
            Some(AttentionKind::Eca),
        ),
    );
}

#[test]
fn bottleneck_tiered_stem_with_cbam() {
    check(
        "bottleneck_t_cbam",
        tiny(
            BlockType::Bottleneck,
            [1, 1, 1, 1],
            Some(StemType::DeepTiered),
            Some(AttentionKind::Cbam),
        ),
    );
}

#[test]
fn resnest_split_attention() {
    check(
        "resnest_d",
        tiny(BlockType::ResNest, [1, 2, 1, 1], Some(StemType::Deep), None),
    );
}

#[test]
fn every_other_attention_kind_plugs_into_resnet() {
    for kind in [
        AttentionKind::Fca,
        AttentionKind::Triplet,
        AttentionKind::PsaP,
        AttentionKind::PsaS,
        AttentionKind::Ca,
        AttentionKind::Pa,
        AttentionKind::Csam,
    ] {
        let mut config = tiny(
            BlockType::Basic,
            [1, 1, 1, 1],
            Some(StemType::Deep),
            Some(kind),
        );
        if matches!(kind, AttentionKind::Fca | AttentionKind::Ca) {
            config = config.with_channels(vec![16; 4]);
        }
        check(&format!("basic_d_{}", kind.name()), config);
    }
}

#[test]
fn registered_models_have_timm_parameter_counts() {
    crate::common::assert_registered_param_counts(
        "resnet/param_counts.json",
        &["resnet", "resnest"],
    );
}

#[test]
fn wrong_depth_checkpoint_lists_keys_and_shapes() {
    // The basic_plain fixture (layer1 has two blocks) into a one-block-per-stage config.
    let device = Device::flex();
    let mut checkpoint = Checkpoint::open(fixture("resnet/basic_plain.safetensors")).unwrap();
    let outputs: Vec<String> = checkpoint
        .tensors
        .keys()
        .filter(|k| k.starts_with("logits_") || k.starts_with("feature"))
        .cloned()
        .collect();
    for key in outputs {
        checkpoint.tensors.remove(&key);
    }
    let config = tiny(BlockType::Basic, [1, 1, 1, 1], None, None).with_channels(vec![8, 8, 16, 32]);
    let report = apply_checkpoint(config.init(&device), checkpoint, &config.key_map()).unwrap_err();
    assert!(
        report.unexpected.iter().any(|k| k.starts_with("layer1.1.")),
        "{report}"
    );
    assert!(
        report.mismatched.iter().any(|m| m.key == "fc.weight"),
        "{report}"
    );
}
