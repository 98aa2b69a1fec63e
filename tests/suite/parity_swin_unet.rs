//! Swin-UNet parity with the official `SwinTransformerSys` of HuCaoFighting/Swin-Unet, and
//! Att-SwinU-Net's with the official `SwinAttentionUnet` of NITR098/AttSwinUNet
//! (tests/reference/gen_swin_unet_fixtures.py): tiny configurations load strictly through
//! the key map, give the official logits at the configured size and at odd sizes (padded
//! internally and cropped back), the same skips and bottleneck, and save back to the official
//! keys; the registered models have the official parameter counts; a Swin classification
//! checkpoint fills the encoder and the mirrored decoder exactly as the official `load_from`.

use std::collections::BTreeMap;

use crate::common::{check_segmenter, fixture};
use burn::prelude::*;
use gaze::backbones::swin_unet::SwinUNetConfig;

fn check(name: &str, config: SwinUNetConfig, sizes: [[usize; 2]; 2]) {
    let device = Device::flex();
    check_segmenter(
        &format!("swin_unet/{name}"),
        &sizes,
        config.in_chans,
        config.num_classes,
        &config.feature_info(),
        || config.init(&device),
        &config.key_map(),
    );
}

fn tiny_w4() -> SwinUNetConfig {
    SwinUNetConfig::new()
        .with_img_size(64)
        .with_embed_dim(8)
        .with_num_heads(vec![1, 2, 2, 4])
        .with_window_size(4)
        .with_num_classes(3)
}

#[test]
fn swin_unet_window4_clipped_stages_three_classes() {
    check("tiny_w4", tiny_w4(), [[64, 64], [61, 50]]);
}

#[test]
fn swin_unet_official_geometry_224() {
    check(
        "tiny_w7",
        SwinUNetConfig::new()
            .with_embed_dim(12)
            .with_num_heads(vec![1, 2, 3, 6]),
        [[224, 224], [211, 200]],
    );
}

/// Cross-contextual attention on the two deepest skips (official `skip_num` '2'), the finest
/// fused plainly; Swin-T's uneven depths mirrored in the decoder.
#[test]
fn att_swin_unet_cross_contextual_skips() {
    check(
        "att_tiny",
        SwinUNetConfig::new()
            .with_embed_dim(12)
            .with_depths(vec![2, 2, 4, 2])
            .with_num_heads(vec![1, 2, 3, 6])
            .with_cross_attention_levels(2)
            .with_cross_dim_head(16)
            .with_num_classes(2),
        [[224, 224], [203, 217]],
    );
}

#[test]
fn registered_models_have_the_official_parameter_counts() {
    crate::common::assert_registered_param_counts("swin_unet/param_counts.json", &["swin_unet"]);
}

/// The official `load_from` on a Microsoft-layout Swin checkpoint, key by key: every Swin-UNet
/// parameter is filled from the same checkpoint key by gaze's placement, from that checkpoint
/// and from its timm-layout twin, and the same parameters keep their initialisation.
#[test]
fn encoder_placement_equals_the_official_load_from() {
    let text = std::fs::read_to_string(fixture("swin_unet/encoder_map.json")).unwrap();
    let map: serde_json::Value = serde_json::from_str(&text).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let official: BTreeMap<String, Option<String>> = map["filled"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
        .collect();
    let config = tiny_w4().with_num_classes(1);
    let keys = config.key_map();
    let microsoft = strings(&map["checkpoint_keys"]);
    let timm = strings(&map["timm_checkpoint_keys"]);
    // timm's name of each Microsoft key, to compare both placements in Microsoft's naming.
    let to_microsoft: BTreeMap<&str, &str> =
        timm.iter()
            .map(String::as_str)
            .zip(
                microsoft.iter().map(String::as_str).filter(|k| {
                    !k.ends_with("relative_position_index") && !k.ends_with("attn_mask")
                }),
            )
            .collect();
    for (layout, checkpoint) in [("microsoft", &microsoft), ("timm", &timm)] {
        let mut filled: BTreeMap<String, Option<String>> =
            official.keys().map(|k| (k.clone(), None)).collect();
        for (src, dst) in config.encoder_checkpoint_keys(checkpoint) {
            if keys.is_ignored(&dst) {
                continue;
            }
            let src = if layout == "timm" {
                to_microsoft[src.as_str()].to_string()
            } else {
                src
            };
            if let Some(slot) = filled.get_mut(&dst) {
                assert!(slot.is_none(), "{layout}: {dst} filled twice");
                *slot = Some(src);
            }
        }
        assert_eq!(filled, official, "{layout} layout");
    }
}

/// A Swin-T classification checkpoint saved by gaze (timm's layout) loads into `swin_unet`:
/// the encoder as it is, each stage's blocks mirrored into the decoder, the head left out.
#[test]
fn a_swin_classification_checkpoint_fills_encoder_and_mirrored_decoder() {
    let device = Device::flex();
    let dir = crate::common::tmp_dir("swin-unet-encoder");
    let classifier = gaze::create_model("swin_tiny_patch4_window7_224", &device).unwrap();
    let path = dir.join("swin_tiny.safetensors");
    classifier.save_safetensors(&path).unwrap();
    let (unet, summary) = gaze::create_model("swin_unet", &device)
        .unwrap()
        .load_weights_with_summary(&path)
        .unwrap();
    assert!(summary.encoder_only, "{summary}");
    assert!(summary.skipped_head.contains(&"head.fc.weight".to_string()));
    // Swin-T's third stage has 6 blocks, Swin-UNet's 2: the others have no place.
    assert!(summary
        .skipped_head
        .contains(&"layers.2.blocks.5.mlp.fc2.weight".to_string()));
    let ours: BTreeMap<String, TensorData> =
        unet.official_state_dict().unwrap().into_iter().collect();
    let theirs: BTreeMap<String, TensorData> = classifier
        .official_state_dict()
        .unwrap()
        .into_iter()
        .collect();
    let same = |a: &str, b: &str| {
        assert_eq!(ours[a], theirs[b], "{a} <- {b}");
    };
    same("patch_embed.proj.weight", "patch_embed.proj.weight");
    same(
        "layers.0.blocks.1.attn.qkv.weight",
        "layers.0.blocks.1.attn.qkv.weight",
    );
    same(
        "layers.0.downsample.reduction.weight",
        "layers.1.downsample.reduction.weight",
    );
    same(
        "layers.2.downsample.norm.bias",
        "layers.3.downsample.norm.bias",
    );
    same(
        "layers_up.3.blocks.0.mlp.fc1.weight",
        "layers.0.blocks.0.mlp.fc1.weight",
    );
    same(
        "layers_up.1.blocks.1.attn.relative_position_bias_table",
        "layers.2.blocks.1.attn.relative_position_bias_table",
    );
    same("norm.weight", "norm.weight");
}
