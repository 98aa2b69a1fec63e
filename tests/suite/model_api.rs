//! The model API every family shares: timm's `create_model` options (fresh head, other input
//! channels, feature extraction), errors instead of panics on inputs a model rejects, saving
//! under the official key names and loading back, the readable mismatch report, and training
//! as a Burn module.

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use gaze::backbones::{Features, InputSize};
use gaze::weights::{official_shapes, Checkpoint, KeyMap};
use gaze::{create_model, create_model_with, LoadError, ModelError, ModelOptions};

use crate::common::{deterministic_input, max_abs_diff, tmp_dir};

fn device() -> Device {
    Device::flex()
}

#[test]
fn key_maps_run_both_ways_for_every_registered_model() {
    for info in gaze::models() {
        let config = info.config();
        let keys = config.key_map();
        let paths = official_shapes(&config.init(&device()), &KeyMap::identity());
        for (path, _) in paths {
            let official = keys.unmap(&path);
            assert_eq!(
                keys.map(&official),
                path,
                "{}: {path} saved as {official}",
                info.name
            );
        }
    }
}

#[test]
fn saved_checkpoints_load_back_bit_exact_and_name_the_model() {
    let dir = tmp_dir("save-roundtrip");
    let model = create_model("pan_x4", &device()).unwrap();
    let path = dir.join("pan_x4.safetensors");
    model.save_safetensors(&path).unwrap();
    let saved = Checkpoint::open(&path).unwrap();
    // Official names: what the authors' code loads.
    assert!(saved.tensors.contains_key("SCPA_trunk.0.k1.0.weight"));
    assert!(saved.tensors.contains_key("HRconv2.bias"));
    let expected: Vec<String> = model
        .info()
        .checkpoint_shapes()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(saved.keys(), expected);

    let reloaded = create_model("pan_x4", &device())
        .unwrap()
        .load_weights(&path)
        .unwrap();
    let x = deterministic_input([1, 3, 12, 10], &device());
    let a = model.forward(x.clone()).unwrap().into_image().unwrap();
    let b = reloaded.forward(x).unwrap().into_image().unwrap();
    assert_eq!(max_abs_diff(a, b), 0.0);

    // The wrong model: a short report that says which model the file fits.
    let err = create_model("pan_x2", &device())
        .unwrap()
        .load_weights(&path)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("this looks like a `pan_x4` checkpoint"),
        "{text}"
    );
    assert!(text.lines().count() <= 6, "short report: {text}");
    let LoadError::Mismatch { report, .. } = err else {
        panic!("{text}")
    };
    assert!(report.verbose().lines().count() > text.lines().count());
}

#[test]
fn a_fresh_head_skips_only_the_checkpoint_head_and_says_so() {
    let dir = tmp_dir("fresh-head");
    let path = dir.join("resnet18.safetensors");
    let published = create_model("resnet18", &device()).unwrap();
    published.save_safetensors(&path).unwrap();

    let options = ModelOptions::new().num_classes(7);
    let (model, summary) = create_model_with("resnet18", &options, &device())
        .unwrap()
        .load_weights_with_summary(&path)
        .unwrap();
    assert_eq!(summary.skipped_head, ["fc.bias", "fc.weight"]);
    assert!(summary.to_string().contains("fc.weight"));
    let x = deterministic_input([2, 3, 40, 36], &device());
    let logits = model.forward(x.clone()).unwrap().into_logits().unwrap();
    assert_eq!(logits.dims(), [2, 7]);
    // Everything but the head is the published model's.
    let ours = model.forward_features(x.clone()).unwrap().into_map();
    let theirs = published.forward_features(x).unwrap().into_map();
    assert_eq!(max_abs_diff(ours, theirs), 0.0);

    // A fine-tuned model saved by gaze loads with its own head.
    let tuned = dir.join("tuned.safetensors");
    model.save_safetensors(&tuned).unwrap();
    let (_, summary) = create_model_with("resnet18", &options, &device())
        .unwrap()
        .load_weights_with_summary(&tuned)
        .unwrap();
    assert!(summary.skipped_head.is_empty());
}

#[test]
fn other_input_channels_adapt_the_stem_as_timm_does() {
    let dir = tmp_dir("in-chans");
    for name in ["resnet26d", "vit_tiny_patch16_224"] {
        let path = dir.join(format!("{name}.safetensors"));
        let published = create_model(name, &device()).unwrap();
        published.save_safetensors(&path).unwrap();
        let size = if name.starts_with("vit") { 32 } else { 40 };
        let x = deterministic_input([1, 3, size, size], &device());
        let reference = published.forward(x.clone()).unwrap().into_logits().unwrap();

        // 1 channel: the weights summed over RGB, so a gray image gives the RGB logits of the
        // same image repeated on three channels.
        let gray = x.clone().slice([0..1, 0..1, 0..size, 0..size]);
        let rgb = gray.clone().repeat_dim(1, 3);
        let reference_gray = published.forward(rgb).unwrap().into_logits().unwrap();
        let (mono, summary) = create_model_with(name, &ModelOptions::new().in_chans(1), &device())
            .unwrap()
            .load_weights_with_summary(&path)
            .unwrap();
        assert_eq!(summary.adapted_stem.len(), 1, "{name}: {summary}");
        let y = mono.forward(gray).unwrap().into_logits().unwrap();
        assert!(max_abs_diff(y, reference_gray) < 1e-4, "{name} in_chans=1");

        // 6 channels: repeated and scaled by 3/6, so the image twice gives the same logits.
        let six = create_model_with(name, &ModelOptions::new().in_chans(6), &device())
            .unwrap()
            .load_weights(&path)
            .unwrap();
        let y = six
            .forward(Tensor::cat(vec![x.clone(), x], 1))
            .unwrap()
            .into_logits()
            .unwrap();
        assert!(max_abs_diff(y, reference) < 1e-4, "{name} in_chans=6");
    }
}

#[test]
fn features_only_returns_the_selected_maps() {
    let options = ModelOptions::new().out_indices(&[1, 3]);
    let model = create_model_with("resnet18", &options, &device()).unwrap();
    let info = model.feature_info();
    assert_eq!(info.len(), 2);
    assert_eq!((info[0].channels, info[0].reduction), (64, 4));
    let maps = model
        .forward(Tensor::zeros([1, 3, 64, 64], &device()))
        .unwrap()
        .into_features()
        .unwrap();
    assert_eq!(maps[0].dims(), [1, 64, 16, 16]);
    assert_eq!(maps[1].dims(), [1, 256, 4, 4]);

    let err = create_model_with(
        "resnet18",
        &ModelOptions::new().out_indices(&[5]),
        &device(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    let err =
        create_model_with("pan_x4", &ModelOptions::new().features_only(), &device()).unwrap_err();
    assert!(matches!(err, ModelError::Options { .. }), "{err}");
    let err =
        create_model_with("pan_x4", &ModelOptions::new().num_classes(3), &device()).unwrap_err();
    assert!(err.to_string().contains("num_classes"), "{err}");
}

#[test]
fn inputs_a_model_rejects_are_errors_not_panics() {
    let levit = create_model("levit_128s", &device()).unwrap();
    assert_eq!(levit.input_size(), InputSize::Fixed([224, 224]));
    let err = levit
        .forward(Tensor::zeros([1, 3, 200, 224], &device()))
        .unwrap_err();
    assert!(err.to_string().contains("224×224"), "{err}");

    let nat = create_model("nat_mini", &device()).unwrap();
    assert!(nat
        .forward(Tensor::zeros([1, 3, 16, 16], &device()))
        .is_err());

    let resnet = create_model("resnet18", &device()).unwrap();
    let err = resnet
        .forward(Tensor::zeros([1, 4, 32, 32], &device()))
        .unwrap_err();
    assert!(err.to_string().contains("3 input channels"), "{err}");
    assert!(resnet
        .forward(Tensor::zeros([0, 3, 32, 32], &device()))
        .is_err());
    // The head rejects the features of another family.
    let tokens = Features::Tokens(Tensor::zeros([1, 5, 512], &device()));
    assert!(resnet.forward_head(tokens).is_err());
}

#[test]
fn a_model_trains_as_a_burn_module() {
    let device = Device::flex().autodiff();
    let options = ModelOptions::new().num_classes(3);
    let mut model = create_model_with("resnet18", &options, &device).unwrap();
    let x = deterministic_input([4, 3, 32, 32], &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::from([0i64, 1, 2, 1]), &device);
    let mut optim = SgdConfig::new().init();
    let loss_of = |model: &gaze::Model| {
        let logits = model.forward(x.clone()).unwrap().into_logits().unwrap();
        burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets.clone())
    };
    let first = loss_of(&model).into_scalar::<f32>();
    for _ in 0..5 {
        let loss = loss_of(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.005, model, grads);
    }
    let last = loss_of(&model).into_scalar::<f32>();
    assert!(last < first, "loss {first} → {last}");
    // The trained weights leave the autodiff graph and save like any model.
    let inner = model.valid();
    let dir = tmp_dir("trained");
    inner
        .save_safetensors(dir.join("trained.safetensors"))
        .unwrap();
    // With GAZE_EXPORT_DIR set, also write what tests/reference/check_gaze_saved_in_timm.py
    // loads into timm: the fine-tuned model and its logits on a deterministic batch.
    if let Some(export) = std::env::var_os("GAZE_EXPORT_DIR") {
        export_for_timm(&inner, std::path::Path::new(&export));
    }
    assert_eq!(
        inner.num_params(),
        create_model_with("resnet18", &options, &Device::flex())
            .unwrap()
            .num_params()
    );
    let _ = inner.to_device(&Device::flex()).fork(&Device::flex());
}

/// Writes gaze-saved models and their logits for tests/reference/check_gaze_saved_in_timm.py.
fn export_for_timm(tuned: &gaze::Model, export: &std::path::Path) {
    std::fs::create_dir_all(export).unwrap();
    let cpu = Device::flex();
    let write_logits = |file: &str, logits: Tensor<2>| {
        let data = logits.to_data().convert::<f32>();
        gaze::npy::write_npy_f32(
            &export.join(format!("{file}_logits.npy")),
            data.shape(),
            &data.try_to_vec::<f32>().unwrap(),
        )
        .unwrap();
    };
    let tuned = tuned.clone().to_device(&cpu);
    tuned
        .save_safetensors(export.join("resnet18_finetuned_3.safetensors"))
        .unwrap();
    let x = deterministic_input([2, 3, 40, 36], &cpu);
    write_logits(
        "resnet18_finetuned_3",
        tuned.forward(x).unwrap().into_logits().unwrap(),
    );
    for name in [
        "vit_tiny_patch16_224",
        "swin_tiny_patch4_window7_224",
        "levit_128s",
    ] {
        let model = create_model(name, &cpu).unwrap();
        model
            .save_safetensors(export.join(format!("{name}.safetensors")))
            .unwrap();
        let x = deterministic_input([1, 3, 224, 224], &cpu);
        write_logits(name, model.forward(x).unwrap().into_logits().unwrap());
    }
}

/// timm's `checkpoint_filter_fn`: a ViT checkpoint trained at 32² loads into a 64² model, its
/// position table resampled to the new grid exactly as the 32² model resamples it on the fly.
#[test]
fn a_position_table_of_another_grid_is_resampled_on_load() {
    use gaze::backbones::vit::VitConfig;
    use gaze::backbones::Family;
    let small = VitConfig::new(32, 1, 2)
        .with_img_size(32)
        .with_num_classes(5);
    let large = small.clone().with_img_size(64);
    let trained = small.init(&device());
    let dir = tmp_dir("pos-embed");
    let path = dir.join("vit32.safetensors");
    gaze::weights::save_safetensors(&trained, &path, &small.key_map(), &[]).unwrap();
    let loaded = gaze::weights::load_into(large.init(&device()), &path, &large.key_map()).unwrap();
    assert_eq!(loaded.pos_embed.dims(), [1, 1 + 16, 32]);
    let x = deterministic_input([2, 3, 64, 64], &device());
    let diff = max_abs_diff(trained.forward(x.clone()), loaded.forward(x));
    assert!(diff < 1e-5, "{diff}");
}

/// Inference is bit-identical from run to run and wherever it is called from (the calling
/// thread, a rayon worker, other threads at once): `Model::forward` runs the pass on a rayon
/// worker while the other workers wait for work awake, and every parallel op splits its work
/// the same way whoever steals it. Training's
/// exact-resume guarantee rests on the same property of the autodiff ops.
#[test]
fn inference_is_bit_identical_run_to_run_and_thread_to_thread() {
    let bits = |o: gaze::Output| -> Vec<u32> {
        o.into_data()
            .try_into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect()
    };
    for (name, batch) in [
        ("vit_tiny_patch16_224", 2),
        ("levit_128s", 1),
        ("resnet18", 2),
        ("swin_tiny_patch4_window7_224", 1),
        ("resnest14d", 1),
    ] {
        let model = create_model(name, &device()).unwrap();
        let x = deterministic_input([batch, 3, 224, 224], &device());
        let first = bits(model.forward(x.clone()).unwrap());
        for run in 0..3 {
            assert!(
                bits(model.forward(x.clone()).unwrap()) == first,
                "{name}: run {run} differs from the first"
            );
        }
        let on_pool = rayon::scope(|_| bits(model.forward(x.clone()).unwrap()));
        assert!(
            on_pool == first,
            "{name}: a forward on a rayon worker differs"
        );
        let elsewhere = std::thread::scope(|s| {
            s.spawn(|| bits(model.forward(x.clone()).unwrap()))
                .join()
                .unwrap()
        });
        assert!(
            elsewhere == first,
            "{name}: a forward on another thread differs"
        );
        // Forwards from several threads at once share the pool (one may run inside the
        // other's waiting workers) and still finish with the same values.
        let concurrent: Vec<Vec<u32>> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..3)
                .map(|_| s.spawn(|| bits(model.forward(x.clone()).unwrap())))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(
            concurrent.iter().all(|c| *c == first),
            "{name}: concurrent forwards differ"
        );
    }
}
