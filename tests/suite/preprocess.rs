//! The eval transform against timm's own pipeline (fixtures of
//! tests/reference/gen_preprocess_fixtures.py: PIL 13, timm 1.0.31): PIL's `convert("RGB")` of
//! every kind of image, PIL's resampling bit for bit, timm's normalised tensor, and the pretrained
//! data config of every registered classifier timm knows.

use std::path::{Path, PathBuf};

use gaze::backbones::{CropMode, Interpolation, LabelSet};
use gaze::preprocess::{open_rgb, resize, Transform};
use ndarray::{Array3, ArrayD};
use serde_json::Value;

fn fixtures() -> PathBuf {
    crate::common::workspace_root().join("tests/fixtures/preprocess")
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
}

fn read_u8(path: &Path) -> Array3<u8> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn transform_of(config: &Value) -> Transform {
    let v = |k: &str| config[k].clone();
    let triple = |k: &str| -> [f64; 3] {
        let a = v(k);
        [0, 1, 2].map(|i| a[i].as_f64().unwrap())
    };
    let size = v("input_size");
    Transform {
        size: [
            size[1].as_u64().unwrap() as usize,
            size[2].as_u64().unwrap() as usize,
        ],
        interpolation: Interpolation::from_name(v("interpolation").as_str().unwrap()).unwrap(),
        crop_pct: v("crop_pct").as_f64().unwrap(),
        crop_mode: CropMode::from_name(v("crop_mode").as_str().unwrap()).unwrap(),
        mean: triple("mean"),
        std: triple("std"),
        channels: 3,
    }
}

#[test]
fn images_read_as_pil_converts_them_to_rgb() {
    let manifest = json("manifest.json");
    let images = manifest["images"].as_array().unwrap();
    assert!(images.len() >= 15);
    for image in images {
        let file = fixtures().join(image["file"].as_str().unwrap());
        let expected = read_u8(&fixtures().join(image["convert_rgb_npy"].as_str().unwrap()));
        let got = open_rgb(&file).unwrap();
        let (h, w, _) = expected.dim();
        assert_eq!(
            (got.width() as usize, got.height() as usize),
            (w, h),
            "{file:?}"
        );
        let differing = got
            .as_raw()
            .iter()
            .zip(expected.iter())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing, 0,
            "{} ({}): {differing} values differ from PIL's convert(\"RGB\")",
            image["name"], image["pil_mode"]
        );
    }
}

#[test]
fn the_eval_transform_equals_timms() {
    let manifest = json("manifest.json");
    let configs = manifest["configs"].as_array().unwrap();
    let images = manifest["images"].as_array().unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let config = configs.iter().find(|c| c["id"] == case["config"]).unwrap();
        let image = images.iter().find(|i| i["name"] == case["image"]).unwrap();
        let t = transform_of(config);
        let img = open_rgb(fixtures().join(image["file"].as_str().unwrap())).unwrap();
        // The resize, bit for bit.
        let resized_ref = read_u8(&fixtures().join(case["resized_npy"].as_str().unwrap()));
        let (rh, rw, _) = resized_ref.dim();
        let (w, h) = t.resized_size(img.width() as usize, img.height() as usize);
        assert_eq!((h, w), (rh, rw), "{id}: resized size");
        let resized = resize(&img, w, h, t.interpolation);
        let differing = resized
            .as_raw()
            .iter()
            .zip(resized_ref.iter())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing, 0,
            "{id}: {differing} resized values differ from PIL's ({})",
            case["pil_passes"]
        );
        // The normalised tensor.
        let reference: ArrayD<f32> =
            ndarray_npy::read_npy(fixtures().join(case["tensor_npy"].as_str().unwrap())).unwrap();
        let got = t.apply(&img);
        assert_eq!(got.len(), reference.len(), "{id}: tensor size");
        let max = got
            .iter()
            .zip(reference.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max <= 1e-5, "{id}: max abs diff {max:e} from timm's tensor");
    }
}

/// Every registered classifier timm knows carries the resolved data config of timm's default
/// tag; the others are listed as such in the fixture (their official repos' transforms).
#[test]
fn registered_classifiers_carry_timms_data_config() {
    let configs = json("data_configs.json");
    let not_in_timm: Vec<&str> = configs["not_in_timm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut checked = 0;
    for info in gaze::models() {
        let Some(data) = info.data.image() else {
            continue;
        };
        let Some(timm) = configs["models"].get(info.name) else {
            assert!(
                not_in_timm.contains(&info.name),
                "{} is in neither list",
                info.name
            );
            continue;
        };
        let t = transform_of(&timm["data_config"]);
        let ours = Transform::from_config(&info.data).unwrap();
        assert_eq!(
            (ours.size, ours.interpolation, ours.crop_mode, ours.channels),
            (t.size, t.interpolation, t.crop_mode, 3),
            "{}",
            info.name
        );
        assert!(
            (ours.crop_pct - t.crop_pct).abs() < 1e-12,
            "{}: crop_pct {} vs timm {}",
            info.name,
            ours.crop_pct,
            t.crop_pct
        );
        assert_eq!((ours.mean, ours.std), (t.mean, t.std), "{}", info.name);
        assert_eq!(timm["label_set"], "imagenet-1k", "{}", info.name);
        assert_eq!(data.labels, LabelSet::Imagenet1k, "{}", info.name);
        checked += 1;
    }
    assert!(
        checked >= 39,
        "only {checked} classifiers checked against timm"
    );
}

#[test]
fn a_transform_round_trips_through_its_data_config_json() {
    let manifest = json("manifest.json");
    let dir = crate::common::tmp_dir("data-config");
    for config in manifest["configs"].as_array().unwrap() {
        let t = transform_of(config);
        let path = dir.join("data_config.json");
        std::fs::write(&path, t.to_json().to_string()).unwrap();
        assert_eq!(
            Transform::from_json_file(&path).unwrap(),
            t,
            "{}",
            config["id"]
        );
    }
    std::fs::write(dir.join("bad.json"), r#"{"input_size": [2, 8, 8]}"#).unwrap();
    let err = Transform::from_json_file(&dir.join("bad.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("input_size"), "{err}");
}

/// A JPEG cut short is an error, as in PIL ("image file is truncated"), although libjpeg would
/// pad it with gray; bytes after the end-of-image marker are ignored, as PIL ignores them; a
/// JPEG with an EXIF thumbnail (its own end marker) cut short is still caught.
#[test]
fn truncated_jpegs_are_errors_as_in_pil() {
    let dir = crate::common::tmp_dir("truncated-jpeg");
    for name in ["jpeg_rgb_96x72.jpg", "jpeg_exif_orient6_48x32.jpg"] {
        let bytes = std::fs::read(fixtures().join("images").join(name)).unwrap();
        let whole = open_rgb(fixtures().join("images").join(name)).unwrap();
        let cut = dir.join(format!("cut_{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let e = open_rgb(&cut).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{name}: {e}");
        let padded = dir.join(format!("trailing_{name}"));
        let mut more = bytes.clone();
        more.extend_from_slice(b"trailing bytes after EOI");
        std::fs::write(&padded, &more).unwrap();
        assert_eq!(open_rgb(&padded).unwrap(), whole, "{name}");
    }
}
