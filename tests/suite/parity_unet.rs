//! U-Net and Attention U-Net parity with LeeJunHyun/Image_Segmentation's official modules (and
//! Oktay's official grid gate) wired for any width and depth (tests/reference/
//! gen_unet_fixtures.py, which first asserts that wiring equals the official `U_Net` and
//! `AttU_Net`): tiny configurations load strictly through the key map, give the same logits at
//! a multiple-of-2^(depth-1) size and at an odd size (padded internally and cropped back), the
//! same encoder maps, and save back to the official keys; the registered full-size models have
//! the reference's parameter counts.

use crate::common::check_segmenter;
use burn::prelude::*;
use gaze::backbones::unet::{SkipGate, UNetConfig};

fn check(name: &str, config: UNetConfig, sizes: [[usize; 2]; 2]) {
    let device = Device::flex();
    check_segmenter(
        &format!("unet/{name}"),
        &sizes,
        config.in_chans,
        config.num_classes,
        &config.feature_info(),
        || config.init(&device),
        &config.key_map(),
    );
}

#[test]
fn unet_plain_depth5() {
    check(
        "unet_w4_d5",
        UNetConfig::new().with_base_width(4),
        [[32, 48], [37, 29]],
    );
}

#[test]
fn attention_unet_additive_gates_two_classes() {
    check(
        "attention_unet_w4_d5",
        UNetConfig::new()
            .with_base_width(4)
            .with_num_classes(2)
            .with_gate(SkipGate::Additive),
        [[32, 48], [37, 29]],
    );
}

#[test]
fn attention_unet_oktay_grid_gates_depth4() {
    check(
        "attention_unet_grid_w4_d4",
        UNetConfig::new()
            .with_base_width(4)
            .with_depth(4)
            .with_gate(SkipGate::Grid),
        [[24, 40], [29, 21]],
    );
}

#[test]
fn unet_gray_three_classes_depth3() {
    check(
        "unet_w4_d3_gray",
        UNetConfig::new()
            .with_base_width(4)
            .with_depth(3)
            .with_in_chans(1)
            .with_num_classes(3),
        [[16, 16], [13, 11]],
    );
}

#[test]
fn registered_models_have_reference_parameter_counts() {
    crate::common::assert_registered_param_counts("unet/param_counts.json", &["unet"]);
}

#[test]
fn registered_unet_segments_any_size_through_the_model_api() {
    let device = Device::flex();
    let model = gaze::create_model("unet_small", &device).unwrap();
    assert_eq!(
        model.task(),
        gaze::backbones::Task::Segmentation { num_classes: 1 }
    );
    let mask = model
        .forward(Tensor::<4>::zeros([1, 3, 45, 33], &device))
        .unwrap()
        .into_mask()
        .unwrap();
    assert_eq!(mask.dims(), [1, 1, 45, 33]);
}
