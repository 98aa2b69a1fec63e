//! Residual Attention Network parity with our reference of the PyTorch port
//! (tests/reference/attn_sr_reference.py `ResidualAttentionModel`, checked against the port's
//! own classes): tiny variants of the ImageNet layout (Attention-56) and of the CIFAR layout
//! (Attention-92, `ResidualAttentionModel_92_32input_update`) with random weights in the port's
//! key names (tests/reference/gen_ran_fixtures.py) load strictly through the model's key map
//! and give the same logits at the port's input size and at a non-square size, and the same
//! four stage feature maps; the registered full-size models have the reference's parameter
//! counts.

use crate::common::{check_backbone, logits4, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::residual_attention_net::{RanLayout, ResidualAttentionNetConfig};
use gaze::backbones::Family;

/// The fixtures' width: stem 8, stages 16/16/24/32, 10 classes.
fn tiny(depth: usize, layout: RanLayout) -> ResidualAttentionNetConfig {
    ResidualAttentionNetConfig::new(depth)
        .with_layout(layout)
        .with_stem_channels(8)
        .with_channels(vec![16, 16, 24, 32])
        .with_num_classes(10)
}

fn check(name: &str, config: ResidualAttentionNetConfig, main: [usize; 2], odd: [usize; 2]) {
    let device = Device::flex();
    let info = config.feature_info();
    check_backbone(
        BackboneCheck {
            fixture: &format!("ran/{name}"),
            sizes: &[main, odd],
            in_chans: 3,
            forward: &|m: &gaze::backbones::residual_attention_net::ResidualAttentionNet,
                       x: Tensor<4>| logits4(m.forward(x)),
            features: &|m: &gaze::backbones::residual_attention_net::ResidualAttentionNet,
                        x: Tensor<4>| {
                let [_, _, h, _] = x.dims();
                let maps = m.forward_intermediates(x);
                assert_eq!(maps.len(), info.len());
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
}

#[test]
fn attention56_imagenet_layout() {
    check(
        "attention56_imagenet",
        tiny(56, RanLayout::ImageNet),
        [224, 224],
        [29, 23],
    );
}

#[test]
fn attention92_cifar_layout() {
    check(
        "attention92_cifar",
        tiny(92, RanLayout::Cifar),
        [32, 32],
        [19, 13],
    );
}

#[test]
fn registered_models_have_reference_parameter_counts() {
    crate::common::assert_registered_param_counts("ran/param_counts.json", &["residual_attention"]);
}
