//! NAT and BiFormer parity with our PyTorch references of the official code
//! (tests/reference/token_official_reference.py `NAT` / `BiFormer`, cross-checked against the
//! official classification/nat.py and models/biformer.py by
//! tests/reference/gen_nat_biformer_fixtures.py --crosscheck): tiny variants with random
//! weights, loaded strictly under their official key names, give the same logits at two input
//! sizes (one non-square) and the same level feature maps; the full-size registered configs have
//! the reference parameter counts.

use crate::common::{check_backbone, deterministic_input, logits4, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::biformer::BiFormerConfig;
use gaze::backbones::nat::NatConfig;
use gaze::backbones::{Family, FamilyNet, FeatureInfo};
use gaze::blocks::bi_routing_attention::KvDownsampleMode;
use gaze::weights::KeyMap;

/// The level maps must have `feature_info`'s channels and strides (4, 8, 16, 32).
fn checked_levels(maps: Vec<Tensor<4>>, h: usize, info: &[FeatureInfo]) -> Vec<Tensor<4>> {
    assert_eq!(maps.len(), 4);
    assert_eq!(info.len(), 4);
    for (i, (map, level)) in maps.iter().zip(info).enumerate() {
        assert_eq!(map.dims()[1], level.channels, "feature {i} channels");
        assert_eq!(level.reduction, 4 << i);
        assert_eq!(map.dims()[2], h.div_ceil(level.reduction), "feature {i}");
    }
    maps
}

/// Logits at both sizes and the four level maps, through the family's uniform API.
fn check<C: Family>(name: &str, config: C, size_a: [usize; 2], size_b: [usize; 2])
where
    C::Net: burn::module::ModuleDisplay,
{
    let device = Device::flex();
    let info = config.feature_info();
    check_backbone(
        BackboneCheck {
            fixture: &format!("nat_biformer/{name}"),
            sizes: &[size_a, size_b],
            in_chans: 3,
            forward: &|m: &C::Net, x: Tensor<4>| {
                logits4(FamilyNet::forward(m, x).into_logits().unwrap())
            },
            features: &|m: &C::Net, x: Tensor<4>| {
                let h = x.dims()[2];
                checked_levels(FamilyNet::forward_intermediates(m, x), h, &info)
            },
        },
        || config.init(&device),
        &config.key_map(),
    );
}

fn nat(name: &str, config: NatConfig, size_a: [usize; 2], size_b: [usize; 2]) {
    check(name, config, size_a, size_b);
}

fn biformer(name: &str, config: BiFormerConfig, size_a: [usize; 2], size_b: [usize; 2]) {
    check(name, config, size_a, size_b);
}

#[test]
fn nat_tiny_variant_matches_reference() {
    nat(
        "nat_plain",
        NatConfig::new(4, 3.0, vec![1, 1, 2, 1], vec![1, 2, 2, 4])
            .with_kernel_size(3)
            .with_num_classes(10),
        [96, 96],
        [112, 80],
    );
}

#[test]
fn nat_layer_scale_and_legacy_padding_match_reference() {
    nat(
        "nat_layer_scale_legacy_pad",
        NatConfig::new(4, 2.0, vec![1, 1, 1, 1], vec![2, 2, 4, 4])
            .with_kernel_size(3)
            .with_num_classes(10)
            .with_layer_scale(Some(1e-5))
            .with_legacy_pad(true),
        [64, 64],
        [48, 40],
    );
}

#[test]
fn biformer_tiny_variant_matches_reference() {
    biformer(
        "biformer_plain",
        BiFormerConfig::new(
            vec![1, 1, 1, 1],
            vec![8, 16, 16, 24],
            vec![3.0; 4],
            vec![8, 16, 16, 24],
        )
        .with_n_win(2)
        .with_topks(vec![1, 2, 2, -2])
        .with_head_dim(8)
        .with_num_classes(10),
        [64, 64],
        [64, 96],
    );
}

#[test]
fn biformer_auto_pad_pooled_kv_layer_scale_match_reference() {
    biformer(
        "biformer_auto_pad",
        BiFormerConfig::new(
            vec![1, 1, 2, 1],
            vec![8, 16, 16, 24],
            vec![2.0; 4],
            vec![16, 16, 16, 24],
        )
        .with_n_win(3)
        .with_kv_downsample_mode(KvDownsampleMode::AdaAvgPool)
        .with_kv_per_wins(vec![2, 2, 1, 1])
        .with_topks(vec![2, 3, 4, -1])
        .with_side_dwconv(3)
        .with_layer_scale_init_value(Some(0.5))
        .with_head_dim(8)
        .with_auto_pad(true)
        .with_num_classes(10),
        [96, 96],
        [70, 110],
    );
}

#[test]
#[should_panic(expected = "kernel_size")]
fn nat_rejects_inputs_below_the_minimum_size() {
    let device = Device::flex();
    let config = NatConfig::new(4, 2.0, vec![1, 1, 1, 1], vec![1, 1, 1, 1]).with_kernel_size(3);
    assert_eq!(config.min_input_size(), 65);
    assert_eq!(NatConfig::nat_mini().min_input_size(), 193);
    let net = config.init(&device);
    net.forward(deterministic_input([1, 3, 64, 64], &device));
}

#[test]
fn full_size_models_have_reference_parameter_counts() {
    crate::common::assert_registered_param_counts(
        "nat_biformer/param_counts.json",
        &["nat", "biformer"],
    );
}

#[test]
fn key_maps_are_exported() {
    // The NAT map is the identity; BiFormer's renames the Sequential indices.
    let _: KeyMap = gaze::backbones::nat::key_map();
    assert_eq!(
        gaze::backbones::biformer::key_map().map("downsample_layers.0.0.bias"),
        "downsample_layers.0.conv1.bias"
    );
}
