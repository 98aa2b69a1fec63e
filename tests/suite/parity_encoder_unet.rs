//! U-Net on classifier encoders: parity with segmentation_models_pytorch's own `smp.Unet` with
//! timm encoders (tests/reference/gen_encoder_unet_fixtures.py): narrowed ResNet-18,
//! SE-ResNet-18 with the scSE decoder attention and 2 classes, and ResNet-26d's deep stem load
//! strictly through smp's key names, give the same logits at 64×96 and at 45×71 (padded
//! internally to a multiple of 32 and cropped back; smp refuses that size) and the same encoder
//! maps, and save back to smp's keys; so does a narrowed Swin, smp's "transformer style"
//! encoder (strides 4…32). smp's own ResNet encoders name their keys without `model.`: those
//! load too. The registered `unet_<encoder>` models of timm encoders have smp's parameter
//! counts, and the full-size Swin and HaloNet ones smp's key names and shapes.

use crate::common::{check_backbone, split_fixture, BackboneCheck};
use burn::prelude::*;
use gaze::backbones::encoder_unet::{EncoderConfig, EncoderUNet, EncoderUNetConfig};
use gaze::backbones::ModelConfig;
use gaze::blocks::attention::AttentionKind;

fn tiny_resnet(name: &str, stem_width: Option<usize>) -> EncoderConfig {
    let ModelConfig::ResNet(c) = gaze::model_info(name).unwrap().config() else {
        panic!("{name} is a ResNet");
    };
    let c = c.with_channels(vec![8, 8, 16, 16]);
    EncoderConfig::ResNet(match stem_width {
        Some(w) => c.with_stem_width(w),
        None => c,
    })
}

fn check(name: &str, config: EncoderUNetConfig) -> EncoderUNet {
    let device = Device::flex();
    check_backbone(
        BackboneCheck {
            fixture: &format!("encoder_unet/{name}"),
            sizes: &[[64, 96], [45, 71]],
            in_chans: 3,
            forward: &|m: &EncoderUNet, x: Tensor<4>| {
                let [n, _, h, w] = x.dims();
                let y = m.forward(x);
                assert_eq!(y.dims(), [n, config.num_classes, h, w]);
                y
            },
            features: &|m: &EncoderUNet, x: Tensor<4>| m.forward_intermediates(x),
        },
        || config.init(&device),
        &config.key_map(),
    )
}

#[test]
fn swin_transformer_style_encoder() {
    let ModelConfig::Swin(c) = gaze::model_info("swin_tiny_patch4_window7_224")
        .unwrap()
        .config()
    else {
        panic!("a Swin");
    };
    let c = c
        .with_img_size([64, 64])
        .with_embed_dim(8)
        .with_depths(vec![2, 2, 2, 2])
        .with_num_heads(vec![1, 2, 2, 4])
        .with_window_size(4);
    check(
        "swin_transformer",
        EncoderUNetConfig::new(EncoderConfig::Swin(c)).with_decoder_channels(vec![16, 16, 8, 8, 4]),
    );
}

/// smp's full-size `Unet("tu-swin_tiny_patch4_window7_224")` and `Unet("tu-halonet26t")`:
/// exactly the same tensor names and shapes (timm's `features_only` flattening, no final norm).
#[test]
fn full_size_swin_and_halonet_unets_have_smp_names() {
    let text =
        std::fs::read_to_string(crate::common::fixture("encoder_unet/smp_keys.json")).unwrap();
    let reference: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, Vec<usize>>,
    > = serde_json::from_str(&text).unwrap();
    for (name, keys) in reference {
        let info = gaze::model_info(&name).unwrap();
        let config = info.config();
        let net = config.init(&Device::flex());
        let ours: std::collections::BTreeMap<String, Vec<usize>> =
            gaze::weights::official_shapes(&net, &config.key_map())
                .into_iter()
                .collect();
        assert_eq!(ours, keys, "{name}");
    }
}

#[test]
fn resnet18_encoder() {
    check(
        "resnet18_plain",
        EncoderUNetConfig::new(tiny_resnet("resnet18", None))
            .with_decoder_channels(vec![16, 16, 8, 8, 4]),
    );
}

#[test]
fn seresnet18_encoder_with_scse_decoder_two_classes() {
    check(
        "seresnet18_scse",
        EncoderUNetConfig::new(tiny_resnet("seresnet18", None))
            .with_decoder_channels(vec![16; 5])
            .with_decoder_attention(Some(AttentionKind::Scse))
            .with_num_classes(2),
    );
}

#[test]
fn resnet26d_deep_stem_encoder() {
    check(
        "resnet26d_deep",
        EncoderUNetConfig::new(tiny_resnet("resnet26d", Some(8)))
            .with_decoder_channels(vec![16, 16, 8, 8, 4]),
    );
}

/// smp's own ResNet encoders (`smp.Unet("resnet18")`) name the encoder's keys `encoder.<key>`,
/// its timm encoders `encoder.model.<key>`: both load to the same weights.
#[test]
fn smp_native_encoder_keys_load_too() {
    let device = Device::flex();
    let config = EncoderUNetConfig::new(tiny_resnet("resnet18", None))
        .with_decoder_channels(vec![16, 16, 8, 8, 4]);
    let keys = config.key_map();
    let (timm_named, _) = split_fixture("encoder_unet/resnet18_plain.safetensors");
    let (mut native, _) = split_fixture("encoder_unet/resnet18_plain.safetensors");
    native.tensors = native
        .tensors
        .into_iter()
        .map(|(k, v)| (k.replacen("encoder.model.", "encoder.", 1), v))
        .collect();
    assert!(native.tensors.keys().any(|k| k == "encoder.conv1.weight"));
    let a = gaze::weights::apply_checkpoint(config.init(&device), timm_named, &keys).unwrap();
    let b = gaze::weights::apply_checkpoint(config.init(&device), native, &keys).unwrap();
    assert_eq!(
        gaze::weights::official_state_dict(&a, &keys).unwrap(),
        gaze::weights::official_state_dict(&b, &keys).unwrap()
    );
}

/// Every `unet_<encoder>` of a timm encoder (the ResNet family, Swin, HaloNet) has smp's
/// parameter count (NAT, BiFormer, the Residual Attention Network and the ViTs are not
/// encoders smp's U-Net takes; their counts are the registry's, checked against the built
/// models in `registry.rs`).
#[test]
fn registered_models_have_smp_parameter_counts() {
    let text =
        std::fs::read_to_string(crate::common::fixture("encoder_unet/param_counts.json")).unwrap();
    let reference: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap();
    let resnets: Vec<&str> = gaze::models()
        .iter()
        .filter(|m| {
            m.family == "encoder_unet"
                && matches!(
                    m.config(),
                    gaze::backbones::ModelConfig::EncoderUNet(ref c)
                        if matches!(
                            c.encoder,
                            EncoderConfig::ResNet(_) | EncoderConfig::Swin(_) | EncoderConfig::HaloNet(_)
                        )
                )
        })
        .map(|m| m.name)
        .collect();
    let mut expected: Vec<&str> = reference.keys().map(String::as_str).collect();
    expected.sort();
    let mut names = resnets.clone();
    names.sort();
    assert_eq!(names, expected);
    let device = Device::flex();
    for name in resnets {
        let info = gaze::model_info(name).unwrap();
        let want = reference[name].as_u64().unwrap() as usize;
        assert_eq!(info.build(&device).num_params(), want, "{name}");
        assert_eq!(info.params, want, "registry entry of {name}");
    }
}

/// A classification checkpoint of the encoder (timm keys, head included) loads into the
/// encoder of `unet_<encoder>` and says so; the classifier's head is left out.
#[test]
fn a_classification_checkpoint_fills_the_encoder() {
    let device = Device::flex();
    let dir = crate::common::tmp_dir("encoder-only");
    let classifier = gaze::create_model("resnet18", &device).unwrap();
    let path = dir.join("resnet18.safetensors");
    classifier.save_safetensors(&path).unwrap();
    let (unet, summary) = gaze::create_model("unet_resnet18", &device)
        .unwrap()
        .load_weights_with_summary(&path)
        .unwrap();
    assert!(summary.encoder_only, "{summary}");
    assert_eq!(summary.skipped_head, ["fc.bias", "fc.weight"]);
    assert!(summary.to_string().contains("loaded into the encoder"));
    let encoder: std::collections::BTreeMap<String, TensorData> = unet
        .official_state_dict()
        .unwrap()
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("encoder.model.").map(|k| (k.to_string(), v)))
        .collect();
    let reference: std::collections::BTreeMap<String, TensorData> = classifier
        .official_state_dict()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("fc."))
        .collect();
    assert_eq!(encoder, reference);
}

/// Any attention kind of the zoo goes in the decoder blocks (smp offers scSE only); models
/// without a decoder refuse the option.
#[test]
fn decoder_attention_by_name() {
    let device = Device::flex();
    let options = gaze::ModelOptions::new().decoder_attention(AttentionKind::Cbam);
    let model = gaze::create_model_with("unet_resnet18", &options, &device).unwrap();
    let keys: Vec<String> = model
        .official_state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(keys
        .iter()
        .any(|k| k.starts_with("decoder.blocks.0.attention1.attention.")));
    let y = model
        .forward(Tensor::<4>::zeros([1, 3, 33, 47], &device))
        .unwrap()
        .into_mask()
        .unwrap();
    assert_eq!(y.dims(), [1, 1, 33, 47]);
    let e = gaze::create_model_with("resnet18", &options, &device).unwrap_err();
    assert!(e.to_string().contains("has no decoder"), "{e}");
}

/// `unet_vit_*`: the ViT's four intermediate maps (stride 16) become the pyramid at strides
/// 4, 8, 16, 32 without parameters: nearest ×4 and ×2, as is, 2×2 max pooling.
#[test]
fn a_vit_encoder_is_resampled_into_a_pyramid() {
    let device = Device::flex();
    let dir = crate::common::tmp_dir("vit-encoder");
    let classifier = gaze::create_model("vit_tiny_patch16_224", &device).unwrap();
    let path = dir.join("vit.safetensors");
    classifier.save_safetensors(&path).unwrap();
    let (unet, summary) = gaze::create_model("unet_vit_tiny_patch16_224", &device)
        .unwrap()
        .load_weights_with_summary(&path)
        .unwrap();
    assert!(summary.encoder_only, "{summary}");
    let x = crate::common::deterministic_input([1, 3, 64, 96], &device);
    let ours = unet.forward_intermediates(x.clone()).unwrap();
    let vit = classifier.forward_intermediates(x).unwrap();
    let strides: Vec<usize> = unet.feature_info().iter().map(|f| f.reduction).collect();
    assert_eq!(strides, [4, 8, 16, 32]);
    let same = |a: &Tensor<4>, b: Tensor<4>| {
        assert_eq!(a.dims(), b.dims());
        let diff: f32 = (a.clone() - b).abs().max().into_scalar();
        assert!(diff == 0.0, "max |diff| {diff}");
    };
    same(
        &ours[0],
        gaze::blocks::layers::upsample_nearest(vit[0].clone(), 4),
    );
    same(
        &ours[1],
        gaze::blocks::layers::upsample_nearest(vit[1].clone(), 2),
    );
    same(&ours[2], vit[2].clone());
    let pooled = gaze::blocks::layers::max_pool_2x2(vit[3].clone());
    same(&ours[3], pooled);
}

#[test]
fn nat_encoder_lookups_are_named_as_the_unet_names_them() {
    // An ONNX export of `unet_nat_mini` may hold the encoder's folded rpb lookups: the U-Net
    // gives their index under its own (smp) keys, each naming the encoder's rpb table.
    let model = gaze::backbones::create_model("unet_nat_mini", &Device::flex()).unwrap();
    let shapes: std::collections::BTreeMap<String, Vec<usize>> =
        gaze::weights::official_shapes(model.net(), &model.key_map())
            .into_iter()
            .collect();
    let tables = model.config().gathered_tables([224, 224]);
    assert_eq!(tables.len(), 3 + 4 + 6 + 5, "one per NAT layer of nat_mini");
    for (key, index) in &tables {
        let shape = shapes
            .get(key)
            .unwrap_or_else(|| panic!("{key} is no parameter of unet_nat_mini"));
        assert!(
            key.starts_with("encoder.model.") && key.ends_with(".attn.rpb"),
            "{key}"
        );
        let table: usize = shape[1..].iter().product();
        assert!(
            index.iter().all(|&i| i >= 0 && (i as usize) < table),
            "{key}"
        );
    }
}
