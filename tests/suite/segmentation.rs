//! Segmentation: the DRIVE figures against a numpy reference (tests/reference/
//! gen_seg_metrics_fixtures.py, read from the PNGs as `gaze segment` writes them), the data
//! layout and its errors, tiled inference, training (the loss falls; an interrupted run resumes
//! exactly).

use std::path::Path;

use burn::prelude::*;
use gaze::data::SegmentationSet;
use gaze::segment::{probabilities, tile_starts, LevelHistogram, SegMetrics, Tiling};
use gaze::train::segmentation::SegmentationTask;
use gaze::train::{fit, TrainConfig};
use gaze::{create_model, create_model_with, ModelOptions};

use crate::common::{tmp_dir, workspace_root};

fn assert_metrics(name: &str, ours: &SegMetrics, want: &serde_json::Value) {
    for (key, value) in [
        ("f1", ours.f1),
        ("auc", ours.auc),
        ("accuracy", ours.accuracy),
        ("sensitivity", ours.sensitivity),
        ("specificity", ours.specificity),
        ("precision", ours.precision),
        ("iou", ours.iou),
    ] {
        let w = want[key].as_f64().unwrap();
        assert!(
            (value - w).abs() <= 1e-12,
            "{name} {key}: {value} vs numpy {w}"
        );
    }
    assert_eq!(
        ours.pixels,
        want["pixels"].as_u64().unwrap(),
        "{name} pixels"
    );
}

#[test]
fn drive_figures_match_the_numpy_reference() {
    let root = workspace_root().join("tests/fixtures/seg_metrics");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("expected.json")).unwrap()).unwrap();
    let set = SegmentationSet::open(&root, true).unwrap();
    assert_eq!(set.samples.len(), 3);
    assert_eq!(
        set.missing_fov(),
        vec![root.join("images/03_test.png").as_path()]
    );
    let mut pooled = LevelHistogram::new();
    for sample in &set.samples {
        let pixels = sample.read().unwrap();
        let id = &sample.image.file_name().unwrap().to_str().unwrap()[..2];
        let prob = image::open(root.join(format!("pred/{id}_prob.png")))
            .unwrap()
            .to_luma16();
        let mut one = LevelHistogram::new();
        one.add(
            prob.as_raw(),
            pixels.truth.as_deref().unwrap(),
            Some(&pixels.fov),
        );
        let name = sample.image.file_name().unwrap().to_str().unwrap();
        assert_metrics(name, &one.metrics(0.5), &expected["images"][name]);
        pooled.merge(&one);
    }
    assert_metrics("pooled", &pooled.metrics(0.5), &expected["pooled"]);
}

/// A DRIVE-like set: `n` images of w×h with dark "vessels" (two lines) on a bright disc, the
/// vessels as ground truth, the disc as the field of view (left out for image 0 when
/// `fov_for_all` is false).
fn toy_drive(root: &Path, n: usize, w: u32, h: u32, fov_for_all: bool) {
    for d in ["images", "1st_manual", "mask"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for i in 0..n {
        let vessel = |x: u32, y: u32| {
            let a = (x as i64 - (w as i64 / 3 + i as i64)).abs() <= 1;
            let b = (y as i64 - (h as i64 / 2 + i as i64 % 3)).abs() <= 1;
            a || b
        };
        let in_fov = |x: u32, y: u32| {
            let (dx, dy) = (x as f64 - w as f64 / 2.0, y as f64 - h as f64 / 2.0);
            dx * dx / (w as f64 * w as f64 / 4.0) + dy * dy / (h as f64 * h as f64 / 4.0) <= 1.0
        };
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let noise = ((x * 13 + y * 7 + i as u32 * 5) % 17) as u8;
            let v = if !in_fov(x, y) {
                5
            } else if vessel(x, y) {
                60 + noise
            } else {
                170 + noise
            };
            image::Rgb([v, v / 2 + 20, v / 3])
        });
        img.save(root.join(format!("images/{i:02}_training.png")))
            .unwrap();
        image::GrayImage::from_fn(w, h, |x, y| {
            image::Luma([if vessel(x, y) { 255 } else { 0 }])
        })
        .save(root.join(format!("1st_manual/{i:02}_manual1.png")))
        .unwrap();
        if fov_for_all || i > 0 {
            image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([if in_fov(x, y) { 255 } else { 0 }])
            })
            .save(root.join(format!("mask/{i:02}_training_mask.png")))
            .unwrap();
        }
    }
}

#[test]
fn data_layout_errors_are_clear() {
    let root = tmp_dir("seg-layout");
    // No images/ folder.
    let e = SegmentationSet::open(&root, true).unwrap_err().to_string();
    assert!(e.contains("no images/ folder"), "{e}");
    // Images without masks, for training.
    std::fs::create_dir_all(root.join("images")).unwrap();
    image::RgbImage::new(8, 8)
        .save(root.join("images/01_a.png"))
        .unwrap();
    let e = SegmentationSet::open(&root, true).unwrap_err().to_string();
    assert!(e.contains("no ground-truth masks"), "{e}");
    assert_eq!(
        SegmentationSet::open(&root, false).unwrap().samples.len(),
        1
    );
    // A mask of another size than its image.
    std::fs::create_dir_all(root.join("masks")).unwrap();
    image::GrayImage::new(8, 9)
        .save(root.join("masks/01_a.png"))
        .unwrap();
    let set = SegmentationSet::open(&root, true).unwrap();
    let e = set.samples[0].read().unwrap_err().to_string();
    assert!(
        e.contains("is 8×9, its image") && e.contains("is 8×8"),
        "{e}"
    );
    // A missing field of view is listed for a warning.
    assert_eq!(set.missing_fov().len(), 1);
}

#[test]
fn tiled_inference_covers_the_image_and_matches_whole_when_one_tile() {
    assert_eq!(tile_starts(100, 40, 8), vec![0, 32, 60]);
    assert_eq!(tile_starts(40, 40, 8), vec![0]);
    assert_eq!(tile_starts(30, 40, 8), vec![0]);
    let device = Device::flex();
    let model = create_model("unet_small", &device).unwrap();
    let image = image::RgbImage::from_fn(53, 47, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
    });
    let whole = probabilities(&model, &image, Tiling::Whole).unwrap();
    assert_eq!((whole.width, whole.height, whole.classes), (53, 47, 1));
    let one = probabilities(
        &model,
        &image,
        Tiling::Tiles {
            tile: 64,
            overlap: 8,
        },
    )
    .unwrap();
    assert_eq!(one, whole, "a single tile is the whole image");
    let tiled = probabilities(
        &model,
        &image,
        Tiling::Tiles {
            tile: 32,
            overlap: 8,
        },
    )
    .unwrap();
    assert!(tiled.values.iter().all(|p| (0.0..=1.0).contains(p)));
    let mean_diff = tiled
        .values
        .iter()
        .zip(&whole.values)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / whole.values.len() as f32;
    assert!(
        mean_diff < 0.1,
        "tiles blend towards the whole-image result: {mean_diff}"
    );
}

fn config(epochs: usize, max_steps: Option<u64>, resume: bool) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 4,
        lr: 3e-3,
        min_lr: 1e-5,
        warmup_epochs: 0.2,
        weight_decay: 0.0,
        seed: 3,
        resume,
        max_steps,
    }
}

#[test]
fn segmentation_training_lowers_the_loss_and_resumes_exactly() {
    let root = tmp_dir("seg-train");
    let data = root.join("data");
    toy_drive(&data, 6, 40, 36, false);
    let init = root.join("init.safetensors");
    let options = ModelOptions::new();
    create_model_with("attention_unet_small", &options, &Device::flex())
        .unwrap()
        .save_safetensors(&init)
        .unwrap();
    let run = |dir: &Path, cfg: TrainConfig, losses: &mut Vec<f64>| {
        let device = Device::flex().autodiff();
        let model = create_model_with("attention_unet_small", &options, &device)
            .unwrap()
            .load_weights(&init)
            .unwrap();
        let task = SegmentationTask::open(&data, &model, Some(32), 4).unwrap();
        assert_eq!(
            task.val_len(),
            1,
            "a tenth of 6 images, rounded up, is held out"
        );
        assert_eq!(task.warnings().len(), 1, "image 00 has no field of view");
        fit(
            model,
            &task,
            &cfg,
            dir,
            std::slice::from_ref(&device),
            |e| {
                if let gaze::train::Event::EpochEnd { metrics, .. } = e {
                    losses.push(metrics.iter().find(|(k, _)| k == "train_loss").unwrap().1);
                }
            },
        )
        .unwrap()
    };
    let mut losses = Vec::new();
    let straight = run(&root.join("straight"), config(4, None, false), &mut losses);
    assert_eq!(
        straight.steps,
        4 * 5,
        "5 training images × 4 patches in batches of 4"
    );
    assert!(losses[3] < 0.8 * losses[0], "train loss {losses:?}");
    let csv = std::fs::read_to_string(root.join("straight/metrics.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,step,train_loss,val_loss,val_f1,val_auc,val_acc,val_sens,val_spec"),
        "{csv}"
    );
    let stopped = run(
        &root.join("resumed"),
        config(4, Some(7), false),
        &mut Vec::new(),
    );
    assert_eq!((stopped.epochs, stopped.steps), (1, 7));
    let resumed = run(
        &root.join("resumed"),
        config(4, None, true),
        &mut Vec::new(),
    );
    assert_eq!(resumed.steps, straight.steps);
    let read = |d: &str| std::fs::read(root.join(d).join("model.safetensors")).unwrap();
    assert!(
        read("straight") == read("resumed"),
        "resumed weights differ"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("resumed/metrics.csv")).unwrap(),
        csv
    );
}
