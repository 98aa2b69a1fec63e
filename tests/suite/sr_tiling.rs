//! Whole-image SR options: tiles and the ×8 self-ensemble.
//! * PAN (a finite receptive field, [`Model::receptive_radius`]) tiled with that much context
//!   equals the untiled output.
//! * A model with global attention (IMDN: contrast-aware channel attention pools over the
//!   input) cannot be tiled exactly: cross-faded tiles stay within 0.02 dB of the untiled PSNR
//!   on Set14 and show no step across tile borders.
//! * The self-ensemble equals EDSR's `forward_x8` (tests/reference/gen_self_ensemble_fixture.py).

use crate::common::{assert_close, load_fixture, max_abs_diff, shared_dir};
use burn::prelude::*;
use gaze::backbones::PanConfig;
use gaze::create_model;
use gaze::sr::{
    evaluate_with, pair_images, self_ensemble, upscale_tensor, Blend, SrOptions, Tiling,
};
use gaze::weights::apply_checkpoint;

fn device() -> Device {
    Device::flex()
}

/// A smooth deterministic image `[1, 3, h, w]` in [0, 1].
fn image(h: usize, w: usize) -> Tensor<4> {
    let data: Vec<f32> = (0..3 * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            0.5 + 0.4 * ((0.11 * y as f32 + 0.07 * x as f32 + c as f32).sin())
        })
        .collect();
    Tensor::<1>::from_floats(data.as_slice(), &device()).reshape([1, 3, h, w])
}

#[test]
fn pan_tiles_with_its_receptive_radius_are_exact() {
    let model = create_model("pan_x2", &device()).unwrap();
    let radius = model.receptive_radius().unwrap();
    let x = image(70, 90);
    let whole = upscale_tensor(&model, x.clone(), None).unwrap();
    let tiling = Tiling {
        tile: 24,
        overlap: radius,
    };
    assert_eq!(Blend::for_model(&model, tiling), Blend::Crop);
    let tiled = upscale_tensor(&model, x.clone(), Some(tiling)).unwrap();
    let diff = max_abs_diff(whole.clone(), tiled);
    assert!(
        diff <= 1e-5,
        "PAN tiled with {radius} px of context: {diff}"
    );
    // With random weights the far taps barely matter, so less context is only reported here;
    // pan_real_weights.rs shows with the official weights that half the radius is not enough.
    for overlap in [radius - 4, radius / 2] {
        let options = SrOptions {
            tiling: Some(Tiling { tile: 24, overlap }),
            blend: Some(Blend::Crop),
            ..SrOptions::default()
        };
        let cropped = gaze::sr::upscale_tensor_with(&model, x.clone(), options).unwrap();
        let d = max_abs_diff(whole.clone(), cropped);
        eprintln!("PAN (random weights) tiles with {overlap} px of context: max diff {d:e}");
    }
}

#[test]
fn self_ensemble_matches_edsr_forward_x8() {
    let f = load_fixture("pan/self_ensemble_x2.safetensors", &device());
    let pan = apply_checkpoint(
        PanConfig::new(2)
            .with_nf(8)
            .with_unf(6)
            .with_num_blocks(2)
            .init(&device()),
        f.checkpoint,
        &gaze::backbones::pan::key_map(),
    )
    .unwrap();
    let y = self_ensemble(f.input, |x| Ok(pan.forward(x))).unwrap();
    assert_close("self-ensemble", y, f.output, 1e-4);
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn feathered_tiles_of_a_global_attention_model_stay_within_0_02_db() {
    let Some(shared) = shared_dir() else { return };
    let model = create_model("imdn_x4", &device())
        .unwrap()
        .load_weights(shared.join("weights/sr/imdn/IMDN_x4.pth"))
        .unwrap();
    assert_eq!(model.receptive_radius(), None);
    let set14 = shared.join("data/sr/Set14");
    let pairs = pair_images(&set14.join("HR"), &set14.join("LR_bicubic/X4"), 4).unwrap();
    let tiling = Tiling {
        tile: 48,
        overlap: 16,
    };
    // Untiled vs tiled PSNR over Set14 (LR images 62–192 px: 2–16 tiles each).
    let whole = evaluate_with(&model, &device(), &pairs, false, |_| {}).unwrap();
    let mut tiled_psnr = Vec::new();
    let mut worst_step: f64 = 0.0;
    for (name, hr_path, lr_path) in &pairs {
        let lr = gaze::io::read_image(lr_path).unwrap();
        let hr = gaze::io::read_image(hr_path).unwrap();
        let x = lr.to_tensor(&device());
        let options = SrOptions {
            tiling: Some(tiling),
            ..SrOptions::default()
        };
        let tiled = gaze::sr::upscale_tensor_with(&model, x.clone(), options).unwrap();
        let plain = upscale_tensor(&model, x, None).unwrap();
        // No seam: the jump between the two output columns (rows) at every tile border is
        // no larger in the tiled output than in the untiled one, relative to the image.
        let step = border_step(&tiled, 48 * 4) - border_step(&plain, 48 * 4);
        worst_step = worst_step.max(step);
        let sr = gaze::io::Image::from_tensor(tiled, &lr).to_rgb8();
        let (h, w) = (lr.height * 4, lr.width * 4);
        let hr = hr.to_rgb8().slice_move(ndarray::s![..h, ..w, ..]);
        tiled_psnr.push(gaze::metrics::evaluate_sr(&sr, &hr, 4).unwrap().psnr_y);
        eprintln!("{name}: border step excess {step:.5}");
    }
    let tiled = tiled_psnr.iter().sum::<f64>() / tiled_psnr.len() as f64;
    eprintln!(
        "IMDN x4 Set14: untiled {:.4} dB, tiled {tiled:.4} dB",
        whole.psnr_y
    );
    assert!(
        (tiled - whole.psnr_y).abs() <= 0.02,
        "{tiled} vs {}",
        whole.psnr_y
    );
    assert!(
        worst_step <= 2e-3,
        "a seam: border step excess {worst_step}"
    );
}

/// Mean |out[b] − out[b − 1]| over the columns and rows `b` at multiples of `period`.
fn border_step(out: &Tensor<4>, period: usize) -> f64 {
    let [_, _, h, w] = out.dims();
    let mut total = 0.0;
    let mut count = 0;
    for b in (period..w).step_by(period) {
        let d = (out.clone().slice([0..1, 0..3, 0..h, b..b + 1])
            - out.clone().slice([0..1, 0..3, 0..h, b - 1..b]))
        .abs()
        .mean()
        .into_scalar::<f32>();
        total += d as f64;
        count += 1;
    }
    for b in (period..h).step_by(period) {
        let d = (out.clone().slice([0..1, 0..3, b..b + 1, 0..w])
            - out.clone().slice([0..1, 0..3, b - 1..b, 0..w]))
        .abs()
        .mean()
        .into_scalar::<f32>();
        total += d as f64;
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}
