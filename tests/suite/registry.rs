//! Every name in the registry builds and runs, with the output shape its task promises and
//! the feature maps its `feature_info` describes.

use burn::prelude::*;
use gaze::backbones::{InputSize, Output};
use gaze::Task;

#[test]
fn every_registered_model_builds_and_runs() {
    let device = Device::flex();
    for info in gaze::models() {
        let model = gaze::create_model(info.name, &device).unwrap();
        let (h, w) = match model.input_size() {
            InputSize::Fixed([h, w]) | InputSize::AtLeast([h, w]) => (h, w),
            InputSize::PaddedTo(m) => (m, m),
            // U-Nets pad evenly to their pooling multiple; their maps are the padded input's.
            InputSize::Any if matches!(info.task, Task::Segmentation { .. }) => (64, 96),
            InputSize::Any => (40, 56),
        };
        assert_eq!(
            model.num_params(),
            info.params,
            "{}: registry entry",
            info.name
        );
        let x = Tensor::<4>::zeros([1, info.in_channels, h, w], &device);
        match (info.task, model.forward(x.clone()).unwrap()) {
            (Task::SuperResolution { scale }, Output::Image(y)) => {
                assert_eq!(y.dims(), [1, 3, h * scale, w * scale], "{}", info.name)
            }
            (Task::Classification { num_classes }, Output::Logits(y)) => {
                assert_eq!(y.dims(), [1, num_classes], "{}", info.name)
            }
            (Task::Segmentation { num_classes }, Output::Mask(y)) => {
                assert_eq!(y.dims(), [1, num_classes, h, w], "{}", info.name)
            }
            (task, out) => panic!("{}: {task} gave {:?}", info.name, out.dims()),
        }
        let maps = model.forward_intermediates(x).unwrap();
        let levels = model.feature_info();
        assert_eq!(maps.len(), levels.len(), "{}", info.name);
        // Segmentation models give the maps of their padded input (at least the input).
        let (h, w) = match (info.task, maps.first(), levels.first()) {
            (Task::Segmentation { .. }, Some(map), Some(level)) => {
                let [_, _, mh, mw] = map.dims();
                let padded = (mh * level.reduction, mw * level.reduction);
                assert!(padded.0 >= h && padded.1 >= w, "{}", info.name);
                padded
            }
            _ => (h, w),
        };
        for (map, level) in maps.iter().zip(&levels) {
            let [_, c, mh, mw] = map.dims();
            assert_eq!(c, level.channels, "{} {}", info.name, level.module);
            assert_eq!(
                (mh, mw),
                (h.div_ceil(level.reduction), w.div_ceil(level.reduction)),
                "{} {}",
                info.name,
                level.module
            );
        }
    }
}

/// The registered models' norms and attention modules have the epsilons and scales of the
/// reference models (timm's
/// `create_model(name)` or the official constructors; `constants.json` of each family).
#[test]
fn registered_models_have_the_reference_norm_epsilons_and_attention_scales() {
    for family in [
        "resnet",
        "ran",
        "vit",
        "swin",
        "levit",
        "nat_biformer",
        "halonet",
        "pan",
        "unet",
        "imdn",
        "a2n",
        "vapsr",
        "rcan",
        "han",
        "hat",
        "bsrn",
    ] {
        let constants = crate::common::constants(family);
        for (name, reference) in constants["registered"].as_object().unwrap() {
            let info = gaze::model_info(name).unwrap();
            let config = info.config();
            let net = config.init(&Device::flex());
            crate::common::assert_constants_match(name, &net, &config.key_map(), reference);
        }
    }
}

/// The activation constants the references record: every LeakyReLU of the SR references has
/// gaze's slope, and every GELU is the exact (erf) one, which is the only GELU gaze uses.
#[test]
fn activation_constants_are_the_references() {
    for family in [
        "resnet",
        "ran",
        "vit",
        "swin",
        "levit",
        "nat_biformer",
        "halonet",
        "pan",
        "unet",
        "a2n",
        "rcan",
        "han",
        "bsrn",
    ] {
        // IMDN (0.05), VapSR (0.1) and HAT (0.01) use other LeakyReLU slopes: their parity
        // files check them.
        let constants = crate::common::constants(family);
        for section in ["fixtures", "registered"] {
            for (name, c) in constants[section].as_object().unwrap() {
                if let Some(slopes) = c.get("leaky_relu_slope").and_then(|v| v.as_object()) {
                    for slope in slopes.keys() {
                        let slope: f64 = slope.parse().unwrap();
                        assert_eq!(slope, gaze::blocks::layers::LRELU_SLOPE, "{family} {name}");
                    }
                }
                if let Some(gelu) = c.get("gelu_approximate").and_then(|v| v.as_object()) {
                    assert!(
                        gelu.keys().all(|k| k == "none"),
                        "{family} {name}: {gelu:?}"
                    );
                }
            }
        }
    }
    // The PAN references do use LeakyReLU, so the check above is not vacuous.
    let pan = crate::common::constants("pan");
    assert!(pan["registered"]["pan_x4"]
        .get("leaky_relu_slope")
        .is_some());
}
