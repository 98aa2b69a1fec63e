//! The SR zoo on its official weights (../shared/weights/sr) reproduces what the official code
//! gives on Set5 and Set14 (../shared/README.md: Y-PSNR within 0.005 dB, SSIM within 5e-4),
//! with the papers' protocol (`gaze::sr::evaluate`). PAN has its own file
//! (pan_real_weights.rs: the authors' logs). Needs ../shared.

use crate::common::shared_dir;
use burn::prelude::*;
use gaze::create_model;
use gaze::sr::{evaluate, pair_images};

/// (model, checkpoint under weights/sr, Set5 Y-PSNR / SSIM, Set14 Y-PSNR / SSIM) of the
/// official code on these files.
const OFFICIAL: [(&str, &str, [f64; 2], [f64; 2]); 13] = [
    (
        "imdn_x2",
        "imdn/IMDN_x2.pth",
        [37.9960, 0.9605],
        [33.6266, 0.9177],
    ),
    (
        "imdn_x3",
        "imdn/IMDN_x3.pth",
        [34.3597, 0.9270],
        [30.3216, 0.8417],
    ),
    (
        "imdn_x4",
        "imdn/IMDN_x4.pth",
        [32.2096, 0.8948],
        [28.5820, 0.7811],
    ),
    (
        "a2n_x2",
        "a2n/aan_x2.pt",
        [38.0581, 0.9607],
        [33.7188, 0.9187],
    ),
    (
        "a2n_x3",
        "a2n/aan_x3.pt",
        [34.4648, 0.9278],
        [30.3830, 0.8424],
    ),
    (
        "bsrn_x2",
        "bsrn/net_g_BSRN_x2.pth",
        [38.0830, 0.9608],
        [33.7301, 0.9193],
    ),
    (
        "bsrn_x3",
        "bsrn/net_g_BSRN_x3.pth",
        [34.4502, 0.9276],
        [30.4688, 0.8449],
    ),
    (
        "bsrn_x4",
        "bsrn/net_g_BSRN_x4.pth",
        [32.3488, 0.8965],
        [28.7354, 0.7847],
    ),
    // Not in ../shared/README.md: the official code (RFDNFINALB5 of BSRN's repository, the
    // class its BSRN-S test config builds) on these files, same protocol.
    (
        "bsrn_s_x4",
        "bsrn/net_g_BSRN-S.pth",
        [32.1570, 0.8949],
        [28.6329, 0.7820],
    ),
    (
        "vapsr_x2",
        "vapsr/VapSR_X2.pth",
        [38.1069, 0.9609],
        [33.7315, 0.9196],
    ),
    (
        "vapsr_x3",
        "vapsr/VapSR_X3.pth",
        [34.5251, 0.9281],
        [30.5151, 0.8453],
    ),
    (
        "vapsr_x4",
        "vapsr/VapSR_X4.pth",
        [32.3997, 0.8974],
        [28.7707, 0.7852],
    ),
    // Not in ../shared/README.md: the official code on these files, run by
    // tests/reference/gen_vapsr_fixtures.py's author with the same protocol (the repository's
    // README publishes 32.14 / 0.8951 and 28.64 / 0.7826).
    (
        "vapsr_s_x4",
        "vapsr/VapSR-S.pth",
        [32.1662, 0.8947],
        [28.6446, 0.7826],
    ),
];

const PSNR_TOL: f64 = 0.005;
const SSIM_TOL: f64 = 5e-4;

fn check(model_name: &str, dataset: &str) {
    let Some(shared) = shared_dir() else { return };
    let (_, file, set5, set14) = OFFICIAL.iter().find(|r| r.0 == model_name).unwrap();
    let [psnr, ssim] = if dataset == "Set5" { *set5 } else { *set14 };
    let device = Device::flex();
    let model = create_model(model_name, &device)
        .unwrap()
        .load_weights(shared.join("weights/sr").join(file))
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
        "{model_name} {dataset}: PSNR_Y {:.4} (official {psnr}), SSIM_Y {:.4} (official {ssim})",
        report.psnr_y, report.ssim_y
    );
    assert!(
        (report.psnr_y - psnr).abs() <= PSNR_TOL,
        "{model_name} {dataset}: PSNR_Y {} vs {psnr}",
        report.psnr_y
    );
    assert!(
        (report.ssim_y - ssim).abs() <= SSIM_TOL,
        "{model_name} {dataset}: SSIM_Y {} vs {ssim}",
        report.ssim_y
    );
}

macro_rules! reproduce {
    ($($test:ident: $model:literal on $set:literal;)*) => {$(
        #[test]
        #[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
        fn $test() {
            check($model, $set);
        }
    )*};
}

reproduce! {
    imdn_x2_set5: "imdn_x2" on "Set5";
    imdn_x2_set14: "imdn_x2" on "Set14";
    imdn_x3_set5: "imdn_x3" on "Set5";
    imdn_x3_set14: "imdn_x3" on "Set14";
    imdn_x4_set5: "imdn_x4" on "Set5";
    imdn_x4_set14: "imdn_x4" on "Set14";
    a2n_x2_set5: "a2n_x2" on "Set5";
    a2n_x2_set14: "a2n_x2" on "Set14";
    a2n_x3_set5: "a2n_x3" on "Set5";
    a2n_x3_set14: "a2n_x3" on "Set14";
    bsrn_x2_set5: "bsrn_x2" on "Set5";
    bsrn_x2_set14: "bsrn_x2" on "Set14";
    bsrn_x3_set5: "bsrn_x3" on "Set5";
    bsrn_x3_set14: "bsrn_x3" on "Set14";
    bsrn_x4_set5: "bsrn_x4" on "Set5";
    bsrn_x4_set14: "bsrn_x4" on "Set14";
    bsrn_s_x4_set5: "bsrn_s_x4" on "Set5";
    vapsr_x2_set5: "vapsr_x2" on "Set5";
    vapsr_x2_set14: "vapsr_x2" on "Set14";
    vapsr_x3_set5: "vapsr_x3" on "Set5";
    vapsr_x3_set14: "vapsr_x3" on "Set14";
    vapsr_x4_set5: "vapsr_x4" on "Set5";
    vapsr_x4_set14: "vapsr_x4" on "Set14";
    vapsr_s_x4_set5: "vapsr_s_x4" on "Set5";
}
