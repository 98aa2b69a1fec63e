//! The committed DRIVE model (`trained/drive/`, trained by `gaze train --task segment`, see
//! its model card) re-measured on DRIVE's 20 test images with the DRIVE protocol: the pooled
//! field-of-view figures are the ones its `seg_eval.json` and the README report, and meet the
//! segmentation issue's bar (F1 ≥ 0.80, AUC ≥ 0.975).

use burn::prelude::*;
use gaze::data::SegmentationSet;
use gaze::segment::{probabilities, LevelHistogram, Tiling};

#[test]
#[cfg_attr(gaze_no_shared, ignore = "needs ../shared (DRIVE)")]
fn committed_drive_model_reproduces_its_figures() {
    let Some(shared) = crate::common::shared_dir() else {
        return;
    };
    let dir = crate::common::workspace_root().join("trained/drive");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("seg_eval.json")).unwrap()).unwrap();
    let model_name = card["model"].as_str().unwrap();
    let device = Device::flex();
    let model = gaze::create_model(model_name, &device)
        .unwrap()
        .load_weights(dir.join(format!("{model_name}.safetensors")))
        .unwrap();
    let set = SegmentationSet::open(&shared.join("data/seg/DRIVE/test"), true).unwrap();
    assert_eq!(set.samples.len(), 20);
    let mut pooled = LevelHistogram::new();
    for sample in &set.samples {
        let pixels = sample.read().unwrap();
        let probs = probabilities(&model, &pixels.image, Tiling::Auto).unwrap();
        pooled.add(
            &probs.foreground_levels(),
            pixels.truth.as_deref().unwrap(),
            Some(&pixels.fov),
        );
    }
    let ours = pooled.metrics(0.5);
    let reported = &card["pooled"];
    for (name, value) in [
        ("f1", ours.f1),
        ("auc", ours.auc),
        ("accuracy", ours.accuracy),
        ("sensitivity", ours.sensitivity),
        ("specificity", ours.specificity),
    ] {
        let want = reported[name].as_f64().unwrap();
        assert!(
            (value - want).abs() <= 1e-4,
            "{name}: {value} measured, {want} reported"
        );
    }
    assert!(ours.f1 >= 0.80 && ours.auc >= 0.975, "{ours:?}");
    let readme =
        std::fs::read_to_string(crate::common::workspace_root().join("README.md")).unwrap();
    for figure in [ours.f1, ours.auc] {
        let text = format!("{figure:.4}");
        assert!(readme.contains(&text), "the README reports {text}");
    }
}
