//! The training engine: the loss falls, a run interrupted mid-epoch resumes to exactly the
//! weights of an uninterrupted run, saved weights reload with identical outputs, unreadable
//! images are skipped and counted, a checkpoint of another model is refused.

use std::path::Path;

use burn::prelude::*;
use gaze::train::classification::ClassificationTask;
use gaze::train::{fit, load_run_model, TrainConfig};
use gaze::{create_model_with, ModelOptions};

use crate::common::tmp_dir;

/// A two-class ImageFolder: noisy bright squares on dark (class `a`) or dark on bright (`b`),
/// 20×20, different sizes per image so the crops and resizes are exercised.
fn toy_folder(root: &Path, per_class: usize) {
    for (class, bright) in [("a", true), ("b", false)] {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let (w, h) = (18 + (i % 5) as u32, 20 + (i % 3) as u32);
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let inside = (4..w - 4).contains(&x) && (4..h - 4).contains(&y);
                let noise = ((x * 31 + y * 17 + i as u32 * 7) % 23) as u8;
                let v = if inside == bright { 200 } else { 40 } + noise;
                image::Rgb([v, v / 2 + 60, 255 - v])
            });
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

fn toy_task(data: &Path, model: &gaze::Model) -> ClassificationTask {
    let mut task = ClassificationTask::open(data, model, Some(32)).unwrap();
    task.scale_min = 0.5;
    task
}

fn config(epochs: usize, max_steps: Option<u64>, resume: bool) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 8,
        lr: 2e-3,
        min_lr: 1e-5,
        warmup_epochs: 0.5,
        weight_decay: 0.05,
        seed: 7,
        resume,
        max_steps,
    }
}

fn options() -> ModelOptions {
    ModelOptions::new().num_classes(2)
}

#[test]
fn training_lowers_the_loss() {
    let root = tmp_dir("train-loss");
    toy_folder(&root.join("data"), 20);
    let device = Device::flex().autodiff();
    device.seed(1);
    let model = create_model_with("seresnet18", &options(), &device).unwrap();
    let task = toy_task(&root.join("data"), &model);
    let mut losses = Vec::new();
    let report = fit(
        model,
        &task,
        &config(8, None, false),
        &root.join("run"),
        std::slice::from_ref(&device),
        |e| {
            if let gaze::train::Event::EpochEnd { metrics, .. } = e {
                losses.push(metrics.iter().find(|(k, _)| k == "train_loss").unwrap().1);
            }
        },
    )
    .unwrap();
    assert_eq!(report.epochs, 8);
    assert_eq!(report.steps, 8 * 5, "36 training images in batches of 8");
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.8 * first, "train loss {losses:?}");
    let csv = std::fs::read_to_string(root.join("run/metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        9,
        "a header and one row per epoch:\n{csv}"
    );
    assert!(csv.starts_with("epoch,step,train_loss,train_top1,val_loss,val_top1,val_top5"));
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run/model_card.json")).unwrap()).unwrap();
    assert_eq!(card["model"], "seresnet18");
    assert_eq!(card["data"]["train_items"], 36);
}

/// Trains 2 epochs in one go, and the same run stopped after 3 steps (in epoch 2, as a kill
/// would leave it: only epoch 1's checkpoint on disk) and resumed: the weights, the metrics
/// and the step count are identical.
#[test]
fn an_interrupted_run_resumes_exactly() {
    let root = tmp_dir("train-resume");
    toy_folder(&root.join("data"), 10);
    let data = root.join("data");
    // The same initial weights for every run, from a file: the device's random generator is
    // shared with the tests running in parallel, so seeding it would not be enough.
    let init = root.join("init.safetensors");
    create_model_with("resnet18", &options(), &Device::flex())
        .unwrap()
        .save_safetensors(&init)
        .unwrap();
    let run = |dir: &Path, cfg: TrainConfig| {
        let device = Device::flex().autodiff();
        let model = create_model_with("resnet18", &options(), &device)
            .unwrap()
            .load_weights(&init)
            .unwrap();
        let task = toy_task(&data, &model);
        fit(
            model,
            &task,
            &cfg,
            dir,
            std::slice::from_ref(&device),
            |_| {},
        )
        .unwrap()
    };
    let straight = run(&root.join("straight"), config(2, None, false));
    let stopped = run(&root.join("resumed"), config(2, Some(3), false));
    assert_eq!((stopped.epochs, stopped.steps), (1, 3));
    let resumed = run(&root.join("resumed"), config(2, None, true));
    assert_eq!(
        (resumed.epochs, resumed.steps),
        (straight.epochs, straight.steps)
    );
    let read = |d: &str, f: &str| std::fs::read(root.join(d).join(f)).unwrap();
    assert!(
        read("straight", "model.safetensors") == read("resumed", "model.safetensors"),
        "resumed weights differ from the uninterrupted run's"
    );
    assert_eq!(
        read("straight", "metrics.csv"),
        read("resumed", "metrics.csv")
    );

    // The saved weights reload (official names) with the outputs of the trained model.
    let device = Device::flex();
    let from_run = load_run_model(&root.join("resumed"), &device).unwrap();
    let reloaded = create_model_with("resnet18", &options(), &device)
        .unwrap()
        .load_weights(root.join("resumed/model.safetensors"))
        .unwrap();
    let x = crate::common::deterministic_input([2, 3, 32, 32], &device);
    let a = from_run.forward(x.clone()).unwrap().into_data();
    let b = reloaded.forward(x).unwrap().into_data();
    assert_eq!(a, b);
}

#[test]
fn resuming_another_models_run_is_refused() {
    let root = tmp_dir("train-wrong-resume");
    toy_folder(&root.join("data"), 4);
    let device = Device::flex().autodiff();
    let model = create_model_with("resnet18", &options(), &device).unwrap();
    let task = toy_task(&root.join("data"), &model);
    fit(
        model,
        &task,
        &config(1, Some(1), false),
        &root.join("run"),
        std::slice::from_ref(&device),
        |_| {},
    )
    .unwrap();
    let other = create_model_with("resnet26", &options(), &device).unwrap();
    let task = toy_task(&root.join("data"), &other);
    let err = fit(
        other,
        &task,
        &config(1, None, true),
        &root.join("run"),
        std::slice::from_ref(&device),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("resnet18") && err.contains("resnet26"),
        "{err}"
    );
    // So is another length: the learning-rate schedule was laid out over the planned steps.
    let model = create_model_with("resnet18", &options(), &device).unwrap();
    let err = fit(
        model,
        &task,
        &config(3, None, true),
        &root.join("run"),
        std::slice::from_ref(&device),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("planned for 1 epochs"), "{err}");
    // A fresh run into a used directory is refused too, instead of overwriting it.
    let model = create_model_with("resnet18", &options(), &device).unwrap();
    let err = fit(
        model,
        &task,
        &config(1, None, false),
        &root.join("run"),
        std::slice::from_ref(&device),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--resume"), "{err}");
}

#[test]
fn an_unreadable_image_is_skipped_and_counted() {
    let root = tmp_dir("train-corrupt");
    toy_folder(&root.join("data"), 6);
    std::fs::write(root.join("data/a/bad.png"), b"not a png").unwrap();
    let device = Device::flex().autodiff();
    let model = create_model_with("resnet18", &options(), &device).unwrap();
    let task = toy_task(&root.join("data"), &model);
    let mut warnings = Vec::new();
    let report = fit(
        model,
        &task,
        &config(1, None, false),
        &root.join("run"),
        std::slice::from_ref(&device),
        |e| {
            if let gaze::train::Event::Skipped(w) = e {
                warnings.push(w.clone());
            }
        },
    )
    .unwrap();
    // bad.png sorts into the training part of the 90/10 split or the validation part; either
    // way the run completes, and a training-side failure is counted.
    assert_eq!(report.epochs, 1);
    assert_eq!(report.skipped, warnings.len());
    assert!(
        warnings.iter().all(|w| w.contains("bad.png")),
        "{warnings:?}"
    );
}

/// Two devices (here the same CPU twice, so the sharded path runs): each batch is split, the
/// replicas' gradients are summed on the first device, and training proceeds.
#[test]
fn a_batch_splits_across_devices() {
    let root = tmp_dir("train-multi");
    toy_folder(&root.join("data"), 8);
    let device = Device::flex().autodiff();
    let model = create_model_with("resnet18", &options(), &device).unwrap();
    let task = toy_task(&root.join("data"), &model);
    let report = fit(
        model,
        &task,
        &config(2, None, false),
        &root.join("run"),
        &[device.clone(), device.clone()],
        |_| {},
    )
    .unwrap();
    assert_eq!((report.epochs, report.steps), (2, 4));
    let loss = report
        .last_metrics
        .iter()
        .find(|(k, _)| k == "train_loss")
        .unwrap()
        .1;
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
}

/// The values of every float parameter of `model` (running statistics included), in visit
/// order.
fn parameter_values(model: &gaze::Model) -> Vec<Vec<f32>> {
    use burn::module::{ModuleVisitor, Param};
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().convert::<f32>();
            self.0.push(values.as_slice::<f32>().unwrap().to_vec());
        }
    }
    let mut collect = Collect(Vec::new());
    model.net().visit(&mut collect);
    collect.0
}

/// gaze's training paths (its kernels with their own backward on the autodiff flex device:
/// convolution, BatchNorm, linear, GELU, attention) give a whole model the gradients of Burn's
/// own autodiff ops, which run where gradient checkpointing is on: one SGD step at learning
/// rate 1 (the weights move by exactly the gradients) from the same weights lands on the same
/// weights. The ViT (smooth activations) to ≤ 1e-4 everywhere. The CNNs have kinks: where a
/// pre-activation lies within rounding of 0 or two max-pool inputs within rounding of each
/// other, the two float implementations can route one gradient differently, and BatchNorm's
/// batch means spread that over its channel. Over some twenty random initialisations the step
/// of a parameter tensor differed by ≤ 3e-5 of its length, or, in the first convolution of
/// some, by up to 5e-2 (7.7e-3 over the whole model). So each tensor's step is held to 0.25
/// of its length (beyond an RMS of 1e-4) and the whole step to 5e-2: a wrong or missing
/// gradient is off by about 1 (a BatchNorm γ gradient 1.5× too large: 0.33). Each op is held
/// to ≤ 1e-4 against Burn's in its own unit test. Swin cannot be compared so (Burn's attention
/// does not broadcast its per-window bias); `window_attention`'s unit test checks it against
/// the explicit formulation.
#[test]
fn training_paths_give_burns_gradients_for_whole_models() {
    use burn::optim::{GradientsParams, SgdConfig};
    let fast = Device::flex().autodiff();
    let reference = Device::flex().autodiff().gradient_checkpointing();
    let dir = tmp_dir("training_paths");
    // The ViT takes its pretrained size only; the others run small.
    for (name, side, smooth) in [
        ("resnet18", 48, false),
        ("unet_small", 48, false),
        ("vit_tiny_patch16_224", 224, true),
    ] {
        // The same weights on both devices, through a checkpoint.
        let file = dir.join(format!("{name}.safetensors"));
        let start = create_model_with(name, &options(), &Device::flex()).unwrap();
        start.save_safetensors(&file).unwrap();
        let step = |device: &Device| {
            let model = create_model_with(name, &options(), device)
                .unwrap()
                .load_weights(&file)
                .unwrap();
            let x = crate::common::deterministic_input([2, 3, side, side], device);
            let y = match model.forward(x).unwrap() {
                gaze::Output::Logits(t) => t.flatten::<1>(0, 1),
                gaze::Output::Mask(t) | gaze::Output::Image(t) => t.flatten::<1>(0, 3),
                other => panic!("{name}: unexpected output {other:?}"),
            };
            // A loss that weighs every output differently, averaged (moderate gradients).
            let n = y.dims()[0];
            let weights: Vec<f32> = (0..n)
                .map(|i| 1.0 + 0.5 * (i as f32 * 0.37).sin())
                .collect();
            let weights = Tensor::<1>::from_data(TensorData::new(weights, [n]), device);
            let loss = (y * weights).sum().div_scalar(n as f64);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model = SgdConfig::new().init().step(1.0, model, grads);
            parameter_values(&model.valid())
        };
        let (ours, burns, before) = (step(&fast), step(&reference), parameter_values(&start));
        assert_eq!(ours.len(), burns.len(), "{name}");
        let norm =
            |v: &mut dyn Iterator<Item = f32>| v.map(|x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let mut worst = (0.0f64, 0);
        let (mut all_moved, mut all_differ) = (0.0f64, 0.0f64);
        for (i, ((ours, burns), before)) in ours.iter().zip(&burns).zip(&before).enumerate() {
            let moved = norm(&mut ours.iter().zip(before).map(|(a, b)| a - b));
            let differs = norm(&mut ours.iter().zip(burns).map(|(a, b)| a - b));
            all_moved += moved * moved;
            all_differ += differs * differs;
            if smooth {
                let diff = ours
                    .iter()
                    .zip(burns)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    diff <= 1e-4,
                    "{name}: parameter {i} differs by {diff} after one step"
                );
            } else {
                // Relative to how far the step moved the parameter, beyond an RMS of 1e-4
                // (a convolution's bias before BatchNorm has a gradient of 0 up to rounding).
                let relative = (differs - 1e-4 * (ours.len() as f64).sqrt()).max(0.0) / moved;
                if relative > worst.0 {
                    worst = (relative, i);
                }
            }
        }
        let overall = (all_differ / all_moved).sqrt();
        assert!(
            overall <= 5e-2,
            "{name}: the steps differ by {overall:e} (relative)"
        );
        assert!(
            worst.0 <= 0.25,
            "{name}: parameter {} steps differ by {:e} (relative)",
            worst.1,
            worst.0
        );
    }
}
