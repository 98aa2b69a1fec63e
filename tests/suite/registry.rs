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
            InputSize::Any => (40, 56),
        };
        let x = Tensor::<4>::zeros([1, info.in_channels, h, w], &device);
        match (info.task, model.forward(x.clone()).unwrap()) {
            (Task::SuperResolution { scale }, Output::Image(y)) => {
                assert_eq!(y.dims(), [1, 3, h * scale, w * scale], "{}", info.name)
            }
            (Task::Classification { num_classes }, Output::Logits(y)) => {
                assert_eq!(y.dims(), [1, num_classes], "{}", info.name)
            }
            (task, out) => panic!("{}: {task} gave {:?}", info.name, out.dims()),
        }
        let maps = model.forward_intermediates(x).unwrap();
        let levels = model.feature_info();
        assert_eq!(maps.len(), levels.len(), "{}", info.name);
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

/// The registered models' norms have the epsilons of the reference models (timm's
/// `create_model(name)` or the official constructors; `constants.json` of each family).
#[test]
fn registered_models_have_the_reference_norm_epsilons() {
    for family in [
        "resnet",
        "ran",
        "vit",
        "swin",
        "levit",
        "nat_biformer",
        "halonet",
        "pan",
    ] {
        let constants = crate::common::constants(family);
        for (name, reference) in constants["registered"].as_object().unwrap() {
            let info = gaze::model_info(name).unwrap();
            let config = info.config();
            let net = config.init(&Device::flex());
            crate::common::assert_norm_eps(name, &net, &config.key_map(), reference);
        }
    }
}
