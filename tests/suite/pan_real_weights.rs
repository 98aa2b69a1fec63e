//! The official PAN checkpoints reproduce the authors' test logs on Set5 and Set14 to
//! 5e-4 dB, on the Y channel and on RGB, at ×2, ×3 and ×4, on the CPU device. Needs
//! ../shared (ignored without it outside CI).

use crate::common::shared_dir;
use burn::prelude::*;
use gaze::create_model;
use gaze::sr::{evaluate, pair_images};

/// (model, checkpoint, dataset, PSNR_Y, PSNR_RGB, SSIM_Y if logged) from the authors' logs
/// (../shared/README.md).
const PUBLISHED: [(&str, &str, &str, f64, f64, Option<f64>); 6] = [
    ("pan_x2", "PANx2_DF2K.pth", "Set5", 38.0007, 35.8059, None),
    ("pan_x2", "PANx2_DF2K.pth", "Set14", 33.5927, 31.5347, None),
    ("pan_x3", "PANx3_DF2K.pth", "Set5", 34.4003, 32.3856, None),
    ("pan_x3", "PANx3_DF2K.pth", "Set14", 30.3553, 28.4611, None),
    (
        "pan_x4",
        "PANx4_DF2K.pth",
        "Set5",
        32.1311,
        30.2183,
        Some(0.894811),
    ),
    (
        "pan_x4",
        "PANx4_DF2K.pth",
        "Set14",
        28.6107,
        26.8036,
        Some(0.782151),
    ),
];

/// The logs print 4 decimals: 5e-4 dB is their rounding plus ours.
const PSNR_TOL: f64 = 5e-4;

fn check(model_name: &str, dataset: &str) {
    let Some(shared) = shared_dir() else { return };
    let (_, file, _, psnr, psnr_rgb, ssim) = PUBLISHED
        .iter()
        .find(|p| p.0 == model_name && p.2 == dataset)
        .unwrap();
    let device = Device::flex();
    let model = create_model(model_name, &device)
        .unwrap()
        .load_weights(shared.join("weights/sr/pan").join(file))
        .unwrap();
    let scale = model.scale().unwrap();
    let data = shared.join("data/sr").join(dataset);
    let pairs = pair_images(
        &data.join("HR"),
        &data.join(format!("LR_bicubic/X{scale}")),
        scale,
    )
    .unwrap();
    let report = evaluate(&model, &device, &pairs, |_| {}).unwrap();
    eprintln!(
        "{model_name} {dataset}: PSNR_Y {:.4} (log {psnr}), SSIM_Y {:.4}, PSNR_RGB {:.4} (log {psnr_rgb})",
        report.psnr_y, report.ssim_y, report.psnr_rgb
    );
    assert!(
        (report.psnr_y - psnr).abs() <= PSNR_TOL,
        "{model_name} {dataset}: PSNR_Y {} vs {psnr}",
        report.psnr_y
    );
    assert!(
        (report.psnr_rgb - psnr_rgb).abs() <= PSNR_TOL,
        "{model_name} {dataset}: PSNR_RGB {} vs {psnr_rgb}",
        report.psnr_rgb
    );
    if let Some(ssim) = ssim {
        assert!(
            (report.ssim_y - ssim).abs() <= 0.0005,
            "{model_name} {dataset}: SSIM {} vs {ssim}",
            report.ssim_y
        );
    }
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn pan_x2_set5() {
    check("pan_x2", "Set5");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn pan_x2_set14() {
    check("pan_x2", "Set14");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn pan_x3_set5() {
    check("pan_x3", "Set5");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn pan_x3_set14() {
    check("pan_x3", "Set14");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn pan_x4_set5() {
    check("pan_x4", "Set5");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn pan_x4_set14() {
    check("pan_x4", "Set14");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn official_checkpoints_load_strictly_with_published_sizes() {
    let Some(shared) = shared_dir() else { return };
    let device = Device::flex();
    for (name, file, params) in [
        ("pan_x2", "PANx2_DF2K.pth", 261_403),
        ("pan_x3", "PANx3_DF2K.pth", 261_403),
        ("pan_x4", "PANx4_DF2K.pth", 272_419),
    ] {
        let model = create_model(name, &device)
            .unwrap()
            .load_weights(shared.join("weights/sr/pan").join(file))
            .unwrap();
        assert_eq!(model.num_params(), params);
    }
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn tiled_upscaling_equals_whole_image() {
    let Some(shared) = shared_dir() else { return };
    use gaze::sr::{upscale_tensor, Tiling};
    let device = Device::flex();
    let model = create_model("pan_x4", &device)
        .unwrap()
        .load_weights(shared.join("weights/sr/pan/PANx4_DF2K.pth"))
        .unwrap();
    let lr = gaze::io::read_image(shared.join("data/sr/Set5/LR_bicubic/X4/birdx4.png")).unwrap();
    let x = lr.to_tensor(&device);
    let whole = upscale_tensor(&model, x.clone(), None).unwrap();
    // The declared receptive radius is enough context for exact tiles…
    let radius = model.receptive_radius().unwrap();
    let tiled = upscale_tensor(
        &model,
        x.clone(),
        Some(Tiling {
            tile: 32,
            overlap: radius,
        }),
    )
    .unwrap();
    let diff = crate::common::max_abs_diff(whole.clone(), tiled);
    eprintln!("tiled with {radius} px of context vs whole: {diff:e}");
    assert!(diff <= 1e-4, "{diff}");
    // …and less is not exact: the difference shrinks with the context (the far taps of the
    // trained network are small: at half the radius it is ~1e-5), at 2 px it is visible.
    for (overlap, min_diff) in [(radius / 2, 0.0), (2, 1e-3)] {
        let options = gaze::sr::SrOptions {
            tiling: Some(Tiling { tile: 32, overlap }),
            blend: Some(gaze::sr::Blend::Crop),
            ..Default::default()
        };
        let short = gaze::sr::upscale_tensor_with(&model, x.clone(), options).unwrap();
        let diff = crate::common::max_abs_diff(whole.clone(), short);
        eprintln!("tiled with {overlap} px of context vs whole: {diff:e}");
        assert!(diff > min_diff, "{overlap} px: {diff}");
    }
}
