//! The `gaze` binary end to end: every verb, and every bad input giving one clear error line,
//! a non-zero exit and no output file. (A test of gaze-demos, which owns the binary; the
//! helpers are the suite's.)

#[path = "../../tests/suite/common.rs"]
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixture, shared_dir, tmp_dir};
use gaze::npy::{read_npy_f32, write_npy_f32};
use image::{ImageBuffer, Luma, Rgb, Rgba};

fn gaze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gaze"))
        .args(args)
        .output()
        .expect("gaze runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails unless the command failed with a one-line `error: …` containing `needle`.
fn assert_user_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
}

fn pan_x4_weights() -> Option<PathBuf> {
    shared_dir().map(|s| s.join("weights/sr/pan/PANx4_DF2K.pth"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn small_rgb(dir: &Path) -> PathBuf {
    let path = dir.join("small.png");
    ImageBuffer::from_fn(13, 11, |x, y| {
        Rgb([(x * 19) as u8, (y * 23) as u8, ((x + y) * 7) as u8])
    })
    .save(&path)
    .unwrap();
    path
}

#[test]
fn list_prints_the_registry() {
    let o = gaze(&["list"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("pan_x4") && out.contains("272,419") && out.contains("super-resolution x4"),
        "{out}"
    );
    let md = String::from_utf8_lossy(&gaze(&["list", "--markdown"]).stdout).into_owned();
    assert!(
        md.starts_with("| model |") && md.contains("| `pan_x2` |"),
        "{md}"
    );
}

#[test]
fn unknown_model_suggests_close_names() {
    let dir = tmp_dir("cli-unknown");
    let input = small_rgb(&dir);
    let out = dir.join("out.png");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x5",
        "--weights",
        "w.pth",
        s(&input),
        "-o",
        s(&out),
    ]);
    assert_user_error(
        &o,
        "unknown model 'pan_x5'; did you mean pan_x2, pan_x3, pan_x4",
    );
    assert!(!out.exists());
}

/// An unknown model name is reported before any file is read: every input here is missing.
#[test]
fn unknown_model_is_reported_before_any_file_is_read() {
    let missing = "/nonexistent/gaze/input";
    for args in [
        vec![
            "upscale",
            "--model",
            "pan_x5",
            "--weights",
            missing,
            missing,
            "-o",
            "/tmp/x.png",
        ],
        vec![
            "infer",
            "--model",
            "resnt50",
            "--weights",
            missing,
            "--input",
            missing,
            "--output",
            "/tmp/y.npy",
        ],
        vec![
            "sr-eval",
            "--model",
            "pan_x5",
            "--weights",
            missing,
            "--hr",
            missing,
            "--lr",
            missing,
            "--scale",
            "4",
        ],
    ] {
        let o = gaze(&args);
        assert_user_error(&o, "unknown model");
        assert!(stderr(&o).contains("did you mean"), "{}", stderr(&o));
    }
}

#[test]
fn upscale_without_a_model_runs_the_embedded_default() {
    let dir = tmp_dir("cli-default");
    let input = small_rgb(&dir);
    let out = dir.join("out.png");
    let o = gaze(&["upscale", s(&input), "-o", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (52, 44));
    // The library's default model is what the CLI ran.
    let device = gaze::burn::prelude::Device::flex();
    let model = gaze::sr::default_model(&device).unwrap();
    let ours = gaze::sr::upscale_image(
        &model,
        &gaze::io::read_image(&input).unwrap(),
        &device,
        None,
    )
    .unwrap();
    assert_eq!(
        ours.to_rgb8().as_slice().unwrap(),
        img.to_rgb8().as_raw().as_slice()
    );
    // Weights without a model are refused.
    let o = gaze(&["upscale", "--weights", s(&input), s(&input), "-o", s(&out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--model"), "{}", stderr(&o));
}

#[test]
fn train_sr_runs_and_writes_a_loadable_model() {
    let dir = tmp_dir("cli-train-sr");
    let data = dir.join("hr");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..3u32 {
        ImageBuffer::from_fn(40, 36, |x, y| {
            Rgb([
                ((x * 7 + y * 3 + i * 40) % 256) as u8,
                ((x * y + i) % 256) as u8,
                ((x + 2 * y) * 5 % 256) as u8,
            ])
        })
        .save(data.join(format!("img{i}.png")))
        .unwrap();
    }
    let run = dir.join("run");
    let o = gaze(&[
        "train",
        "--task",
        "sr",
        "--model",
        "pan_x2",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--batch",
        "2",
        "--patch",
        "8",
        "--patches-per-image",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("validation images: 1; bicubic Y-PSNR"),
        "{}",
        stderr(&o)
    );
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with("epoch,step,train_loss,val_l1,val_psnr_y"),
        "{metrics}"
    );
    assert_eq!(metrics.lines().count(), 2);
    // The saved weights load under the official names.
    let input = small_rgb(&dir);
    let out = dir.join("up.png");
    let weights = run.join("model.safetensors");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x2",
        "--weights",
        s(&weights),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The run directory itself loads too (its last complete epoch: the same weights).
    let from_run = dir.join("up_run.png");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x2",
        "--weights",
        s(&run),
        s(&input),
        "-o",
        s(&from_run),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&from_run).unwrap()
    );
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&run),
        s(&input),
        "-o",
        s(&from_run),
    ]);
    assert_user_error(&o, "trains pan_x2, not pan_x4");
    // A classifier, and a patch larger than the images, are refused.
    let o = gaze(&[
        "train",
        "--task",
        "sr",
        "--model",
        "resnet18",
        "--data",
        s(&data),
        "--out",
        s(&dir.join("bad")),
    ]);
    assert_user_error(&o, "super-resolution model");
    let o = gaze(&[
        "train",
        "--task",
        "sr",
        "--model",
        "pan_x2",
        "--data",
        s(&data),
        "--out",
        s(&dir.join("bad2")),
        "--patch",
        "64",
    ]);
    assert_user_error(&o, "smaller than one training patch");
}

#[test]
fn upscale_without_weights_says_where_they_are() {
    let dir = tmp_dir("cli-noweights");
    let input = small_rgb(&dir);
    let out = dir.join("out.png");
    let o = gaze(&["upscale", "--model", "pan_x4", s(&input), "-o", s(&out)]);
    assert_user_error(&o, "github.com/zhaohengyuan1/PAN");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&dir.join("nope.pth")),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert_user_error(&o, "does not exist");
    // An image is not a checkpoint.
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&input),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert_user_error(&o, "is not a checkpoint gaze can read");
    assert!(!out.exists());
}

#[test]
fn corrupt_and_missing_images_are_errors() {
    let dir = tmp_dir("cli-corrupt");
    let bad = dir.join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    let out = dir.join("out.png");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        "w.pth",
        s(&bad),
        "-o",
        s(&out),
    ]);
    assert_user_error(&o, "cannot decode image");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        "w.pth",
        s(&dir.join("absent.png")),
        "-o",
        s(&out),
    ]);
    assert_user_error(&o, "cannot read image");
    assert!(!out.exists());
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn wrong_checkpoint_names_keys_and_shapes() {
    let Some(shared) = shared_dir() else { return };
    let dir = tmp_dir("cli-imdn");
    let input = small_rgb(&dir);
    let out = dir.join("out.png");
    let imdn = shared.join("weights/sr/imdn/IMDN_x4.pth");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&imdn),
        s(&input),
        "-o",
        s(&out),
    ]);
    // A short report: counts, the first keys of each kind, and which model the file fits.
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    assert!(err.contains("does not match the model"), "{err}");
    assert!(
        err.contains("missing") && err.contains("unexpected") && err.contains("more)"),
        "{err}"
    );
    assert!(err.lines().count() <= 8, "short: {err}");
    // --verbose names every key, in the checkpoint's naming.
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&imdn),
        s(&input),
        "-o",
        s(&out),
        "--verbose",
    ]);
    let err = stderr(&o);
    assert!(
        err.contains("conv_first.weight")
            && err.contains("fea_conv")
            && err.contains("SCPA_trunk.15.k1.0.weight"),
        "{err}"
    );
    // Right family, wrong scale: the x2 checkpoint lacks the second upsampling stage, and the
    // report says which registered model it is.
    let x2 = shared.join("weights/sr/pan/PANx2_DF2K.pth");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&x2),
        s(&input),
        "-o",
        s(&out),
    ]);
    let err = stderr(&o);
    assert!(err.contains("HRconv2.weight"), "{err}");
    assert!(
        err.contains("this looks like a `pan_x2` checkpoint"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn upscale_handles_gray_rgba_16bit_and_jpeg() {
    let Some(weights) = pan_x4_weights() else {
        return;
    };
    let dir = tmp_dir("cli-kinds");
    let (w, h) = (13u32, 11u32);
    let gray = dir.join("gray.png");
    ImageBuffer::from_fn(w, h, |x, y| Luma([(x * 17 + y * 5) as u8]))
        .save(&gray)
        .unwrap();
    let rgba = dir.join("rgba.png");
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgba([
            (x * 19) as u8,
            (y * 23) as u8,
            90,
            if x < 6 { 255 } else { 0 },
        ])
    })
    .save(&rgba)
    .unwrap();
    let deep = dir.join("deep.png");
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([(x * 4000) as u16, (y * 5000) as u16, 30000u16])
    })
    .save(&deep)
    .unwrap();
    let jpeg = dir.join("photo.jpg");
    ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 19) as u8, (y * 23) as u8, 128u8]))
        .save(&jpeg)
        .unwrap();

    for (input, expect) in [
        (&gray, image::ColorType::L8),
        (&rgba, image::ColorType::Rgba8),
        (&deep, image::ColorType::Rgb16),
        (&jpeg, image::ColorType::Rgb8),
    ] {
        let out = dir.join(format!(
            "{}_x4.png",
            input.file_stem().unwrap().to_str().unwrap()
        ));
        let o = gaze(&[
            "upscale",
            "--model",
            "pan_x4",
            "--weights",
            s(&weights),
            s(input),
            "-o",
            s(&out),
        ]);
        assert!(o.status.success(), "{}: {}", input.display(), stderr(&o));
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (4 * w, 4 * h));
        assert_eq!(img.color(), expect, "{}", input.display());
        if expect == image::ColorType::Rgba8 {
            let a = img.to_rgba8();
            assert_eq!(a.get_pixel(2, 20).0[3], 255);
            assert_eq!(a.get_pixel(4 * w - 2, 20).0[3], 0);
        }
    }
    // Leftover temp files would mean a non-atomic write.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains("tmp")),
        "{names:?}"
    );
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn unwritable_output_leaves_nothing_behind() {
    let Some(weights) = pan_x4_weights() else {
        return;
    };
    let dir = tmp_dir("cli-unwritable");
    let input = small_rgb(&dir);
    let out = dir.join("no/such/dir/out.png");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&weights),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert_user_error(&o, "cannot write image");
    let o = gaze(&[
        "upscale",
        "--model",
        "pan_x4",
        "--weights",
        s(&weights),
        s(&input),
        "-o",
        s(&dir.join("out.xyz")),
    ]);
    assert_user_error(&o, "cannot write image");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only the input remains"
    );
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn sr_eval_reports_json_and_missing_pairs() {
    let Some(shared) = shared_dir() else { return };
    let set5 = shared.join("data/sr/Set5");
    let weights = shared.join("weights/sr/pan/PANx4_DF2K.pth");
    let o = gaze(&[
        "sr-eval",
        "--model",
        "pan_x4",
        "--weights",
        s(&weights),
        "--hr",
        s(&set5.join("HR")),
        "--lr",
        s(&set5.join("LR_bicubic/X4")),
        "--scale",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
    assert_eq!(report["model"], "pan_x4");
    assert_eq!(report["scale"], 4);
    let psnr = report["psnr_y"].as_f64().unwrap();
    let ssim = report["ssim_y"].as_f64().unwrap();
    assert!(
        (psnr - 32.1311).abs() <= 0.005 && (ssim - 0.8948).abs() <= 0.0005,
        "{psnr} {ssim}"
    );
    assert_eq!(report["images"].as_array().unwrap().len(), 5);
    assert!(report["images"][0]["name"].is_string() && report["psnr_rgb"].as_f64().unwrap() > 29.0);

    // An LR directory lacking a pair.
    let dir = tmp_dir("cli-pairs");
    for f in ["babyx4.png", "birdx4.png"] {
        std::fs::copy(set5.join("LR_bicubic/X4").join(f), dir.join(f)).unwrap();
    }
    let o = gaze(&[
        "sr-eval",
        "--model",
        "pan_x4",
        "--weights",
        s(&weights),
        "--hr",
        s(&set5.join("HR")),
        "--lr",
        s(&dir),
        "--scale",
        "4",
    ]);
    assert_user_error(&o, "no LR image for");
    // A scale the model does not have.
    let o = gaze(&[
        "sr-eval",
        "--model",
        "pan_x4",
        "--weights",
        s(&weights),
        "--hr",
        s(&set5.join("HR")),
        "--lr",
        s(&set5.join("LR_bicubic/X2")),
        "--scale",
        "2",
    ]);
    assert_user_error(&o, "is not a x2 model");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn infer_runs_npy_and_rejects_bad_shapes() {
    let dir = tmp_dir("cli-infer");
    let bad = dir.join("bad.npy");
    write_npy_f32(&bad, &[3, 8, 8], &vec![0.5; 192]).unwrap();
    let out = dir.join("y.npy");
    let o = gaze(&[
        "infer",
        "--model",
        "pan_x4",
        "--weights",
        "w.pth",
        "--input",
        s(&bad),
        "--output",
        s(&out),
    ]);
    assert_user_error(&o, "expects an NCHW tensor");
    let o = gaze(&[
        "infer",
        "--model",
        "pan_x4",
        "--weights",
        "w.pth",
        "--input",
        s(&fixture("pan/README.md")),
        "--output",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!out.exists());

    let Some(weights) = pan_x4_weights() else {
        return;
    };
    let x = dir.join("x.npy");
    let data: Vec<f32> = (0..2 * 3 * 6 * 7).map(|i| (i % 17) as f32 / 17.0).collect();
    write_npy_f32(&x, &[2, 3, 6, 7], &data).unwrap();
    let o = gaze(&[
        "infer",
        "--model",
        "pan_x4",
        "--weights",
        s(&weights),
        "--input",
        s(&x),
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, y) = read_npy_f32(&out).unwrap();
    assert_eq!(shape, vec![2, 3, 24, 28]);
    assert!(y.iter().all(|v| v.is_finite()));
    let o = gaze(&[
        "infer",
        "--model",
        "pan_x4",
        "--weights",
        s(&weights),
        "--input",
        s(&x),
        "--output",
        s(&out),
        "--features-dir",
        s(&dir.join("f")),
    ]);
    assert_user_error(&o, "has no multi-scale feature maps");
}

#[test]
fn readme_model_table_is_the_registry() {
    let readme = std::fs::read_to_string(common::workspace_root().join("README.md")).unwrap();
    let table = gaze_demos::cli::list::render(true);
    assert!(
        readme.contains(&table),
        "README's model table is stale; paste `gaze list --markdown`:\n{table}"
    );
}

#[test]
fn bench_measures_registered_models() {
    let o = gaze(&[
        "bench",
        "--models",
        "pan_x2,resnet18",
        "--size",
        "24",
        "20",
        "--runs",
        "1",
        "--batch",
        "2",
        "--batch-runs",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--csv",
        "--train",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "model,height,width,params,latency_ms,batch,images_per_s,peak_mib,steady_mib,train_ms"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    for (line, (name, params)) in lines[1..]
        .iter()
        .zip([("pan_x2", "261403"), ("resnet18", "11689512")])
    {
        let f: Vec<_> = line.split(',').collect();
        assert_eq!(
            (f[0], f[1], f[2], f[3], f[5]),
            (name, "24", "20", params, "2"),
            "{line}"
        );
        let latency: f64 = f[4].parse().unwrap();
        let throughput: f64 = f[6].parse().unwrap();
        let train_step: f64 = f[9].parse().unwrap();
        // Each model's first pass measured in a process of its own, then a later pass (Linux:
        // /proc).
        let peak: f64 = f[7].parse().unwrap();
        let steady: f64 = f[8].parse().unwrap();
        assert!(
            latency > 0.0 && throughput > 0.0 && train_step > 0.0 && peak >= 0.0 && steady >= 0.0,
            "{line}"
        );
    }
    // Bad names and sizes fail before anything runs, with the reason.
    let o = gaze(&["bench", "--models", "resnet18,levit_12"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("did you mean"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let o = gaze(&["bench", "--models", "levit_128s", "--size", "64", "64"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("224×224 inputs only"), "{}", stderr(&o));
}

#[test]
fn bench_attn_prints_every_kind() {
    let o = gaze(&[
        "bench-attn",
        "--channels",
        "32",
        "--size",
        "12",
        "10",
        "--runs",
        "2",
        "--warmup",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for kind in [
        "se", "eca", "fca", "cbam", "triplet", "psa_p", "psa_s", "ca", "pa", "csam",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{kind} "))),
            "{kind} missing:\n{out}"
        );
    }
    let o = gaze(&[
        "bench-attn",
        "--channels",
        "32",
        "--size",
        "8",
        "8",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--csv",
        "--kinds",
        "se,cbam",
    ]);
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines[0], "kind,params,flops,median_ms");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("se,") && lines[2].starts_with("cbam,"));
    // An unknown kind lists the known ones.
    let o = gaze(&["bench-attn", "--kinds", "sea"]);
    assert_eq!(o.status.code(), Some(2), "clap's usage error");
    assert!(
        stderr(&o).contains("known kinds: se, eca, fca"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn infer_runs_a_classifier_and_writes_its_feature_maps() {
    use burn::prelude::*;

    let dir = tmp_dir("cli-classifier");
    // A resnet18 checkpoint with timm's names, as gaze (or timm) saves it.
    let (model, weights) = saved_random_model(&dir, "resnet18");
    let device = Device::flex();

    let x = dir.join("x.npy");
    let data: Vec<f32> = (0..3 * 64 * 48)
        .map(|i| ((i % 31) as f32 / 31.0) - 0.5)
        .collect();
    write_npy_f32(&x, &[1, 3, 64, 48], &data).unwrap();
    let (out, feats) = (dir.join("logits.npy"), dir.join("features"));
    let o = gaze(&[
        "infer",
        "--model",
        "resnet18",
        "--weights",
        s(&weights),
        "--input",
        s(&x),
        "--output",
        s(&out),
        "--features-dir",
        s(&feats),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, logits) = read_npy_f32(&out).unwrap();
    assert_eq!(shape, vec![1, 1000]);
    let expected = model
        .forward(Tensor::from_data(
            TensorData::new(data, [1, 3, 64, 48]),
            &device,
        ))
        .unwrap()
        .into_logits()
        .unwrap();
    let expected = expected
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let diff = logits
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "CLI logits differ from the library's by {diff}"
    );
    for (i, (c, hw)) in [
        (64, (32, 24)),
        (64, (16, 12)),
        (128, (8, 6)),
        (256, (4, 3)),
        (512, (2, 2)),
    ]
    .into_iter()
    .enumerate()
    {
        let (shape, _) = read_npy_f32(&feats.join(format!("level{i}.npy"))).unwrap();
        assert_eq!(shape, vec![1, c, hw.0, hw.1], "level{i}");
    }
}

#[test]
fn infer_rejects_sizes_a_fixed_size_model_cannot_take() {
    let dir = tmp_dir("cli-levit");
    let x = dir.join("x.npy");
    write_npy_f32(&x, &[1, 3, 200, 224], &vec![0.1; 3 * 200 * 224]).unwrap();
    let o = gaze(&[
        "infer",
        "--model",
        "levit_128s",
        "--weights",
        "w.pth",
        "--input",
        s(&x),
        "--output",
        s(&dir.join("y.npy")),
    ]);
    assert_user_error(
        &o,
        "levit_128s: this model takes 224×224 inputs only, got 200×224",
    );
}

#[test]
fn bench_attn_compares_the_token_mixers() {
    let o = gaze(&[
        "bench-attn",
        "--tokens",
        "--size",
        "28",
        "28",
        "--dim",
        "24",
        "--heads",
        "2",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
    let names: Vec<_> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "global MHSA",
            "window (Swin)",
            "window (windows in/out)",
            "neighborhood (NAT)",
            "halo (HaloNet)",
            "bi-level routing"
        ],
        "{csv}"
    );
    // Local mixers build far smaller attention tensors than global attention.
    let elems: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(elems[1..].iter().all(|&e| e < elems[0]), "{csv}");
    let o = gaze(&["bench-attn", "--tokens", "--size", "15", "14"]);
    assert_user_error(&o, "must be multiples of --window 7");
}

/// A random-weight registered model and its checkpoint saved by gaze (timm's key names).
fn saved_random_model(dir: &Path, name: &str) -> (gaze::Model, PathBuf) {
    let model = gaze::create_model(name, &gaze::burn::prelude::Device::flex()).unwrap();
    let weights = dir.join(format!("{name}.safetensors"));
    model.save_safetensors(&weights).unwrap();
    (model, weights)
}

fn preprocess_fixture(rel: &str) -> PathBuf {
    common::workspace_root()
        .join("tests/fixtures/preprocess")
        .join(rel)
}

#[test]
fn preprocess_writes_timms_tensor() {
    let dir = tmp_dir("cli-preprocess");
    let out = dir.join("x.npy");
    let img = preprocess_fixture("images/rgb_odd_97x61.png");
    let o = gaze(&[
        "preprocess",
        "--model",
        "resnet50",
        s(&img),
        s(&img),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, got) = read_npy_f32(&out).unwrap();
    assert_eq!(shape, vec![2, 3, 224, 224]);
    let (_, timm) = read_npy_f32(&preprocess_fixture(
        "cases/resnet50.a1_in1k__rgb_odd_97x61_tensor.npy",
    ))
    .unwrap();
    let max = got[..timm.len()]
        .iter()
        .zip(&timm)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-5, "max abs diff {max:e} from timm");
    assert_user_error(
        &gaze(&["preprocess", "--model", "pan_x4", s(&img), "-o", s(&out)]),
        "not a classifier",
    );
}

/// A random-weight LeViT saved with gaze: `classify` ranks the classes as the library does, and
/// `eval` counts top-1/top-5 on an ImageFolder tree.
#[test]
fn classify_and_eval_a_saved_classifier() {
    let dir = tmp_dir("cli-classify");
    let (model, weights) = saved_random_model(&dir, "levit_128s");
    let img = preprocess_fixture("images/jpeg_rgb_96x72.jpg");
    let o = gaze(&[
        "classify",
        "--model",
        "levit_128s",
        "--weights",
        s(&weights),
        s(&img),
        "--topk",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let expected = gaze::classify(&model, &gaze::preprocess::open_rgb(&img).unwrap(), 3).unwrap();
    let preds = printed[0]["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    for (p, e) in preds.iter().zip(&expected) {
        assert_eq!(p["class"].as_u64().unwrap() as usize, e.class);
        assert_eq!(p["label"].as_str().unwrap(), e.label);
        assert!((p["probability"].as_f64().unwrap() as f32 - e.probability).abs() < 1e-6);
    }
    // Text output: one block per image, names from ImageNet-1k.
    let o = gaze(&[
        "classify",
        "--model",
        "levit_128s",
        "--weights",
        s(&weights),
        s(&img),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.contains(&expected[0].label), "{text}");

    // eval: class folders named after the first two predicted classes' indices' order.
    let data = dir.join("data");
    for class in ["c0", "c1"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        std::fs::copy(&img, data.join(class).join("a.jpg")).unwrap();
    }
    std::fs::write(data.join("c1/broken.png"), b"junk").unwrap();
    let o = gaze(&[
        "eval",
        "--model",
        "levit_128s",
        "--weights",
        s(&weights),
        s(&data),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["report"]["images"], 2);
    assert_eq!(report["report"]["skipped"].as_array().unwrap().len(), 1);
    // Labels 0 and 1: top-1 counts the image whose label is the top class.
    let top1 = expected[0].class;
    let want = if top1 <= 1 { 50.0 } else { 0.0 };
    assert_eq!(report["report"]["top1"].as_f64().unwrap(), want);
    assert!(stderr(&o).contains("broken.png"));

    // Bad input: an unreadable image is an error after the others are printed.
    let o = gaze(&[
        "classify",
        "--model",
        "levit_128s",
        "--weights",
        s(&weights),
        s(&data.join("c1/broken.png")),
    ]);
    assert_user_error_last_line(&o, "could not be read");
    assert_user_error(
        &gaze(&[
            "eval",
            "--model",
            "levit_128s",
            "--weights",
            s(&weights),
            s(&dir.join("nowhere")),
        ]),
        "cannot read data folder",
    );
}

fn assert_user_error_last_line(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "{err}"
    );
}

/// `gaze train` killed with SIGKILL mid-run and resumed ends with the weights of an
/// uninterrupted run.
#[test]
fn train_survives_kill_9() {
    let dir = tmp_dir("cli-train");
    let data = dir.join("data");
    for (class, v) in [("dark", 40u8), ("bright", 200u8)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..8u32 {
            ImageBuffer::from_fn(20 + i, 18, |x, y| {
                let n = ((x * 13 + y * 7 + i * 5) % 31) as u8;
                Rgb([v + n / 2, v, v.saturating_add(n)])
            })
            .save(data.join(class).join(format!("{i}.png")))
            .unwrap();
        }
    }
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            "resnet18",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--epochs",
            "4",
            "--batch",
            "4",
            "--image-size",
            "32",
            "--lr",
            "1e-3",
            "--seed",
            "5",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let straight = dir.join("straight");
    let o = Command::new(env!("CARGO_BIN_EXE_gaze"))
        .args(args(&straight))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let killed = dir.join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gaze"))
        .args(args(&killed))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the first checkpoint exists (mid-run: 4 epochs of 4 steps).
    let start = std::time::Instant::now();
    while !killed.join("checkpoint.gaze").exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let o = gaze(&["train", "--resume", s(&killed)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resumed after epoch"), "{}", stderr(&o));
    assert!(
        std::fs::read(straight.join("model.safetensors")).unwrap()
            == std::fs::read(killed.join("model.safetensors")).unwrap(),
        "the resumed run's weights differ from the uninterrupted run's"
    );
    // The trained model classifies with its run's transform and class names.
    let img = data.join("bright/0.png");
    let o = gaze(&[
        "classify",
        "--model",
        "resnet18",
        "--num-classes",
        "2",
        "--weights",
        s(&killed.join("model.safetensors")),
        "--data-config",
        s(&killed.join("data_config.json")),
        "--labels",
        s(&killed.join("labels.txt")),
        "--json",
        s(&img),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let labels: Vec<&str> = printed[0]["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 2);
    assert!(
        labels.contains(&"bright") && labels.contains(&"dark"),
        "{labels:?}"
    );
    // Resuming a directory that is not a run is a clear error.
    assert_user_error(
        &gaze(&["train", "--resume", s(&data)]),
        "not a gaze training run",
    );
}

/// `gaze segment` on images whose sides are not multiples of 32 writes a 16-bit probability
/// PNG, a 0/255 mask and an overlay of the image's size; `gaze seg-eval --json` on the same
/// images gives exactly the figures recomputed from those PNGs; bad inputs are clear errors.
#[test]
fn segment_and_seg_eval_agree_on_the_written_pngs() {
    let dir = tmp_dir("cli-segment");
    let (_, weights) = saved_random_model(&dir, "unet_small");
    let data = dir.join("test");
    for d in ["images", "1st_manual", "mask"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    let (w, h) = (45u32, 37u32);
    for i in 0..2u32 {
        ImageBuffer::from_fn(w, h, |x, y| {
            Rgb([(x * 5 + i * 9) as u8, (y * 6) as u8, ((x * y) % 251) as u8])
        })
        .save(data.join(format!("images/0{i}_test.png")))
        .unwrap();
        ImageBuffer::from_fn(w, h, |x, y| {
            let v = if (x + y + i) % 5 == 0 { 255u8 } else { 0 };
            Rgb([v, v, v])
        })
        .save(data.join(format!("1st_manual/0{i}_manual1.gif")))
        .unwrap();
        ImageBuffer::from_fn(w, h, |x, _| {
            let v = if x > 3 { 255u8 } else { 0 };
            Rgb([v, v, v])
        })
        .save(data.join(format!("mask/0{i}_test_mask.gif")))
        .unwrap();
    }
    let out = dir.join("out");
    let images: Vec<PathBuf> = (0..2)
        .map(|i| data.join(format!("images/0{i}_test.png")))
        .collect();
    let o = gaze(&[
        "segment",
        "--model",
        "unet_small",
        "--weights",
        s(&weights),
        s(&images[0]),
        s(&images[1]),
        "-o",
        s(&out),
        "--overlay",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut pooled = gaze::segment::LevelHistogram::new();
    for i in 0..2 {
        let prob = image::open(out.join(format!("0{i}_test_prob.png"))).unwrap();
        assert!(
            matches!(prob, image::DynamicImage::ImageLuma16(_)),
            "16-bit probabilities"
        );
        let prob = prob.to_luma16();
        let mask = image::open(out.join(format!("0{i}_test_mask.png")))
            .unwrap()
            .to_luma8();
        let overlay = image::open(out.join(format!("0{i}_test_overlay.png"))).unwrap();
        assert_eq!(prob.dimensions(), (w, h));
        assert_eq!(overlay.width(), w);
        for (q, m) in prob.as_raw().iter().zip(mask.as_raw()) {
            assert_eq!(*m, if *q as f64 / 65535.0 >= 0.5 { 255 } else { 0 });
        }
        let truth = image::open(data.join(format!("1st_manual/0{i}_manual1.gif")))
            .unwrap()
            .to_luma8();
        let fov = image::open(data.join(format!("mask/0{i}_test_mask.gif")))
            .unwrap()
            .to_luma8();
        let bin = |v: &[u8]| v.iter().map(|&x| u8::from(x > 127)).collect::<Vec<_>>();
        pooled.add(
            prob.as_raw(),
            &bin(truth.as_raw()),
            Some(&bin(fov.as_raw())),
        );
    }
    let o = gaze(&[
        "seg-eval",
        "--model",
        "unet_small",
        "--weights",
        s(&weights),
        "--data",
        s(&data),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let want = pooled.metrics(0.5);
    for (key, value) in [
        ("f1", want.f1),
        ("auc", want.auc),
        ("accuracy", want.accuracy),
    ] {
        // serde_json's default float parser may land one ulp off the printed value.
        let got = report["pooled"][key].as_f64().unwrap();
        assert!((got - value).abs() <= 1e-12, "{key}: {got} vs {value}");
    }
    assert_eq!(report["pooled"]["pixels"].as_u64().unwrap(), want.pixels);
    assert_eq!(report["images"].as_array().unwrap().len(), 2);

    // Bad inputs: a classifier, a folder without masks, a mask of the wrong size.
    let o = gaze(&[
        "segment",
        "--model",
        "resnet18",
        s(&images[0]),
        "-o",
        s(&out),
    ]);
    assert_user_error(&o, "not a segmentation model");
    std::fs::remove_dir_all(data.join("1st_manual")).unwrap();
    let o = gaze(&[
        "seg-eval",
        "--model",
        "unet_small",
        "--weights",
        s(&weights),
        "--data",
        s(&data),
    ]);
    assert_user_error(&o, "no ground-truth masks");
    std::fs::create_dir_all(data.join("masks")).unwrap();
    for i in 0..2 {
        ImageBuffer::from_fn(w + 1, h, |_, _| Luma([0u8]))
            .save(data.join(format!("masks/0{i}_test.png")))
            .unwrap();
    }
    let o = gaze(&[
        "seg-eval",
        "--model",
        "unet_small",
        "--weights",
        s(&weights),
        "--data",
        s(&data),
    ]);
    assert_user_error(&o, "is 46×37, its image");
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn degrade_writes_the_benchmark_lr_files() {
    let Some(shared) = shared_dir() else { return };
    let set5 = shared.join("data/sr/Set5");
    let out = tmp_dir("cli-degrade");
    let o = gaze(&[
        "degrade",
        "--scale",
        "3",
        s(&set5.join("HR")),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["baby", "bird", "butterfly", "head", "woman"] {
        let file = format!("{name}x3.png");
        let ours = image::open(out.join(&file)).unwrap().to_rgb8();
        let theirs = image::open(set5.join("LR_bicubic/X3").join(&file))
            .unwrap()
            .to_rgb8();
        assert!(ours == theirs, "{file} differs from the MATLAB-made file");
    }
    // Bad input: a factor of 1, a missing file, a corrupt image.
    assert_user_error(
        &gaze(&[
            "degrade",
            "--scale",
            "1",
            s(&set5.join("HR")),
            "-o",
            s(&out),
        ]),
        "at least 2",
    );
    assert_user_error(
        &gaze(&["degrade", "--scale", "2", "/nonexistent.png", "-o", s(&out)]),
        "no such file",
    );
    let bad = out.join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    assert_user_error(
        &gaze(&[
            "degrade",
            "--scale",
            "2",
            s(&bad),
            "-o",
            s(&out.join("sub")),
        ]),
        "bad.png",
    );
}

#[test]
fn convert_an_onnx_export_to_safetensors_and_burnpack() {
    use gaze::burn::prelude::*;
    let dir = tmp_dir("convert");
    let onnx = fixture("onnx/bsrn_s_x4.onnx");
    let (_, outputs) = common::split_fixture("onnx/bsrn_s_x4.safetensors");
    let device = Device::flex();
    let want: Tensor<4> = Tensor::from_data(outputs["output_15x15"].clone(), &device);
    let x = common::deterministic_input([2, 3, 15, 15], &device);
    let run = |weights: &Path| {
        gaze::create_model("bsrn_s_x4", &device)
            .unwrap()
            .load_weights(weights)
            .unwrap_or_else(|e| panic!("{e}"))
            .forward(x.clone())
            .unwrap()
            .into_image()
            .unwrap()
    };
    // ONNX → safetensors under the official names (what the official code loads).
    let st = dir.join("bsrn_s_x4.safetensors");
    let o = gaze(&["convert", "--model", "bsrn_s_x4", s(&onnx), s(&st)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("recovered from the ONNX graph"),
        "{}",
        stderr(&o)
    );
    let checkpoint = gaze::weights::Checkpoint::open(&st).unwrap();
    assert_eq!(checkpoint.format, gaze::weights::Format::Safetensors);
    assert!(
        checkpoint.keys().contains(&"B1.c1_r.pw.weight"),
        "{:?}",
        checkpoint.keys()
    );
    common::assert_close("convert → safetensors", run(&st), want.clone(), 1e-4);
    // safetensors → burnpack, read back by --weights.
    let bpk = dir.join("bsrn_s_x4.bpk");
    let o = gaze(&["convert", "--model", "bsrn_s_x4", s(&st), s(&bpk)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("burnpack"), "{}", stderr(&o));
    common::assert_close("convert → burnpack", run(&bpk), want, 1e-4);
    // Another model's export: one error line, nothing written.
    let bad = dir.join("bad.safetensors");
    let o = gaze(&["convert", "--model", "bsrn_x4", s(&onnx), s(&bad)]);
    assert_user_error(&o, "is not an export of the model");
    assert!(!bad.exists());
    // Unknown model, missing input, output over input.
    assert_user_error(
        &gaze(&["convert", "--model", "bsrn_s_x5", s(&onnx), s(&bad)]),
        "bsrn_s_x4",
    );
    assert_user_error(
        &gaze(&[
            "convert",
            "--model",
            "bsrn_s_x4",
            s(&dir.join("none.onnx")),
            s(&bad),
        ]),
        "does not exist",
    );
    assert_user_error(
        &gaze(&["convert", "--model", "bsrn_s_x4", s(&st), s(&st)]),
        "overwrite",
    );
}
