//! Checkpoint loading: every container and format, strictness, and clear errors on bad files.

use crate::common::{assert_close, fixture, shared_dir, take_tensor, tmp_dir};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use gaze::backbones::PanConfig;
use gaze::weights::{apply_checkpoint, load_into, Checkpoint, Format, KeyMap, LoadError};

/// The network of tests/reference/gen_loader_fixtures.py.
#[derive(Module, Debug)]
struct Tiny {
    conv: Conv2d,
    bn: BatchNorm,
    fc: Linear,
}

impl Tiny {
    fn new(device: &Device) -> Self {
        Tiny {
            conv: Conv2dConfig::new([3, 4], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            bn: BatchNormConfig::new(4).init(device),
            fc: LinearConfig::new(4, 2).init(device),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = burn::tensor::activation::relu(self.bn.forward(self.conv.forward(x)));
        self.fc.forward(x.mean_dim(3).mean_dim(2).flatten(1, 3))
    }
}

fn device() -> Device {
    Device::flex()
}

fn expected() -> (Tensor<4>, Tensor<2>) {
    let mut io = Checkpoint::open(fixture("loader/tiny_io.safetensors")).unwrap();
    (
        take_tensor(&mut io, "input", &device()),
        take_tensor(&mut io, "output", &device()),
    )
}

#[test]
fn loads_every_container_and_format() {
    let (x, y) = expected();
    for (file, format) in [
        ("loader/tiny_wrapped_zip.pth", Format::TorchZip),
        ("loader/tiny_basicsr_legacy.pth", Format::TorchLegacy),
        ("loader/tiny_safetensors.bin", Format::Safetensors),
    ] {
        let checkpoint = Checkpoint::open(fixture(file)).unwrap();
        assert_eq!(checkpoint.format, format, "{file}");
        let tiny = apply_checkpoint(Tiny::new(&device()), checkpoint, &KeyMap::identity())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_close(file, tiny.forward(x.clone()), y.clone(), 1e-5);
    }
}

#[test]
fn onnx_initializers_are_read_by_name() {
    let checkpoint = Checkpoint::open(fixture("loader/tiny.onnx")).unwrap();
    assert_eq!(checkpoint.format, Format::Onnx);
    assert_eq!(checkpoint.shape("conv.weight"), Some(vec![4, 3, 3, 3]));
    assert_eq!(checkpoint.shape("fc.weight"), Some(vec![2, 4]));
    // ONNX carries no num_batches_tracked; the float tensors load the whole network.
    let (x, y) = expected();
    let tiny = apply_checkpoint(Tiny::new(&device()), checkpoint, &KeyMap::identity()).unwrap();
    assert_close("onnx", tiny.forward(x), y, 1e-5);
}

#[test]
fn basicsr_checkpoints_prefer_params_ema() {
    let checkpoint = Checkpoint::open(fixture("loader/tiny_basicsr_legacy.pth")).unwrap();
    assert!(
        checkpoint.keys().iter().all(|k| !k.starts_with("params")),
        "{:?}",
        checkpoint.keys()
    );
    let zip = Checkpoint::open(fixture("loader/tiny_wrapped_zip.pth")).unwrap();
    assert!(zip
        .keys()
        .iter()
        .all(|k| !k.starts_with("optimizer") && !k.starts_with("module.")));
}

#[test]
fn wrong_checkpoint_lists_missing_unexpected_and_shapes() {
    // The small x4 PAN fixture into a full-size x4 PAN: every trunk block beyond the second is
    // missing and every shape differs.
    let err = load_into(
        PanConfig::new(4).init(&device()),
        fixture("pan/pan_x4.safetensors"),
        &gaze::backbones::pan::key_map(),
    )
    .unwrap_err();
    let LoadError::Mismatch { report, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        report
            .missing
            .contains(&"scpa_trunk.15.conv3.weight".to_string()),
        "{report}"
    );
    assert_eq!(
        report.unexpected,
        [
            "feature0_11x13",
            "feature0_12x12",
            "output_11x13",
            "output_12x12"
        ]
    );
    let first = report
        .mismatched
        .iter()
        .find(|m| m.key == "conv_first.weight")
        .expect("conv_first mismatch");
    assert_eq!(
        (first.expected.clone(), first.found.clone()),
        (vec![40, 3, 3, 3], vec![8, 3, 3, 3])
    );
    // The short report gives counts and a few keys; the verbose one every key and shape.
    let text = err.to_string();
    assert!(
        text.contains("33 shape mismatches") && text.contains("more)"),
        "{text}"
    );
    assert!(text.lines().count() <= 6, "{text}");
    let all = report.verbose();
    assert!(
        all.contains("conv_first.weight")
            && all.contains("[40, 3, 3, 3]")
            && all.contains("[8, 3, 3, 3]"),
        "{all}"
    );
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn imdn_weights_do_not_load_into_pan() {
    let Some(shared) = shared_dir() else { return };
    let err = load_into(
        PanConfig::new(4).init(&device()),
        shared.join("weights/sr/imdn/IMDN_x4.pth"),
        &gaze::backbones::pan::key_map(),
    )
    .unwrap_err();
    let LoadError::Mismatch { report, .. } = &err else {
        panic!("{err}")
    };
    assert!(report.missing.contains(&"conv_first.weight".to_string()));
    assert!(
        report.unexpected.iter().any(|k| k.starts_with("fea_conv")),
        "module. prefix stripped: {report}"
    );
}

#[test]
fn bad_files_are_errors_not_panics() {
    let dir = tmp_dir("loader");
    let text = dir.join("notes.pth");
    std::fs::write(&text, "these are not weights\n").unwrap();
    assert!(matches!(
        Checkpoint::open(&text),
        Err(LoadError::UnknownFormat { .. })
    ));

    let missing = dir.join("absent.pth");
    assert!(matches!(
        Checkpoint::open(&missing),
        Err(LoadError::Io { .. })
    ));

    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert!(Checkpoint::open(&empty).is_err());

    // Truncated copies must fail cleanly, either when opened or when applied.
    for file in [
        "loader/tiny_wrapped_zip.pth",
        "loader/tiny_basicsr_legacy.pth",
        "loader/tiny_safetensors.bin",
    ] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        for cut in [bytes.len() / 3, bytes.len() - 7] {
            let truncated = dir.join(format!("cut{cut}_{}", file.replace('/', "_")));
            std::fs::write(&truncated, &bytes[..cut]).unwrap();
            match Checkpoint::open(&truncated) {
                Err(e) => eprintln!("{file} cut at {cut}: {e}"),
                Ok(c) => {
                    let report = apply_checkpoint(Tiny::new(&device()), c, &KeyMap::identity())
                        .expect_err("a truncated checkpoint loaded");
                    eprintln!("{file} cut at {cut}: {report}");
                }
            }
        }
    }
}

/// `torch.save` names the folder inside the zip after the file's stem; zip 9.8.1 misreads the
/// archives of 21-character stems. Every stem length from 1 to 64 must load, with its values.
#[test]
fn torch_zip_checkpoints_load_whatever_their_file_name() {
    let dir = fixture("loader/stems");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let files = expected["files"].as_array().unwrap();
    assert_eq!(files.len(), 64);
    for (i, file) in files.iter().enumerate() {
        let file = file.as_str().unwrap();
        assert_eq!(file.len(), i + 1 + ".pth".len(), "{file}");
        let checkpoint = Checkpoint::open(dir.join(file))
            .unwrap_or_else(|e| panic!("stem of {} characters: {e}", i + 1));
        assert_eq!(checkpoint.format, Format::TorchZip);
        for (name, t) in expected["tensors"].as_object().unwrap() {
            let tensor = checkpoint.tensors[name].clone();
            let values: Vec<f32> = burn::store::bridge::into_data(tensor)
                .unwrap()
                .try_to_vec::<f32>()
                .unwrap();
            let want: Vec<f32> = t["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(values, want, "{file}: {name}");
        }
    }
}
