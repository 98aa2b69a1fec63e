//! Helpers shared by the integration tests: fixtures, ../shared, tensor comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use gaze::weights::Checkpoint;

/// The workspace root (tests run from the root package or from gaze-demos).
pub fn workspace_root() -> PathBuf {
    // At run time (cargo sets it for test processes), not compile time: a binary reused from
    // another checkout sharing the target directory would carry that checkout's path.
    let mut dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"));
    while !dir.join("tests/fixtures").is_dir() {
        assert!(
            dir.pop(),
            "tests/fixtures not found above CARGO_MANIFEST_DIR"
        );
    }
    dir
}

/// A committed fixture file.
pub fn fixture(rel: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(rel)
}

/// Whether this is a CI run (where nothing may be skipped).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `$GAZE_SHARED` or `../shared` beside the workspace. Tests that need it carry
/// `#[cfg_attr(gaze_no_shared, ignore = …)]` (set by build.rs outside CI when it is missing),
/// so the summary counts them as ignored; in CI a missing folder fails the test.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GAZE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    if dir.join("weights").is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "CI needs the shared data at {} (set GAZE_SHARED)",
        dir.display()
    );
    eprintln!(
        "SKIPPED: shared data not found at {} (set GAZE_SHARED)",
        dir.display()
    );
    None
}

/// The WGPU device (Mesa's lavapipe where there is no GPU). Tests that need it carry
/// `#[cfg_attr(gaze_no_wgpu, ignore = …)]`; in CI, or where a driver is installed, an adapter
/// that does not open fails the test.
pub fn wgpu_device() -> Device {
    gaze::DeviceChoice::Wgpu
        .open()
        .expect("a WGPU adapter (install mesa-vulkan-drivers)")
}

/// A reference fixture: the module's checkpoint plus the `input` and `output` tensors.
pub struct Fixture {
    pub checkpoint: Checkpoint,
    pub input: Tensor<4>,
    pub output: Tensor<4>,
}

pub fn take_tensor<const D: usize>(
    checkpoint: &mut Checkpoint,
    key: &str,
    device: &Device,
) -> Tensor<D> {
    let t = checkpoint
        .tensors
        .remove(key)
        .unwrap_or_else(|| panic!("fixture has no '{key}'"));
    let data = burn::store::bridge::into_data(t).expect("fixture tensor data");
    Tensor::from_data(data, device)
}

pub fn load_fixture(rel: &str, device: &Device) -> Fixture {
    let mut checkpoint = Checkpoint::open(fixture(rel)).expect("fixture opens");
    let input = take_tensor(&mut checkpoint, "input", device);
    let output = take_tensor(&mut checkpoint, "output", device);
    Fixture {
        checkpoint,
        input,
        output,
    }
}

pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).abs().max().into_scalar::<f32>()
}

/// Asserts `max |a - b| <= tol` and prints the difference.
pub fn assert_close<const D: usize>(name: &str, a: Tensor<D>, b: Tensor<D>, tol: f32) {
    let d = max_abs_diff(a, b);
    eprintln!("{name}: max abs diff {d:e}");
    assert!(d <= tol, "{name}: max abs diff {d} > {tol}");
}

/// A test's scratch directory, removed when dropped — also when the test fails — so that runs
/// leave nothing behind (CI machines run the suite again and again on one disk).
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for TestDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

pub fn tmp_dir(name: &str) -> TestDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("gaze-test-{name}-"))
        .tempdir()
        .expect("a scratch directory");
    TestDir(dir)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// `x[n,c,h,w] = sin(0.05 (h+1)(c+1) + 0.07 w + 0.3 n)`, computed in f64 like the fixture
/// scripts do, so large inputs need not be committed.
pub fn deterministic_input(shape: [usize; 4], device: &Device) -> Tensor<4> {
    let [n, c, h, w] = shape;
    let mut v = Vec::with_capacity(n * c * h * w);
    for ni in 0..n {
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    let a = 0.05 * (hi as f64 + 1.0) * (ci as f64 + 1.0)
                        + 0.07 * wi as f64
                        + 0.3 * ni as f64;
                    v.push(a.sin() as f32);
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// The registered models of `families` are exactly the ones in the reference's
/// `param_counts.json` (fixture path `json`), and each builds with that many parameters
/// (PyTorch counting) and declares it in its registry entry.
pub fn assert_registered_param_counts(json: &str, families: &[&str]) {
    let text = std::fs::read_to_string(fixture(json)).unwrap();
    let reference: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap();
    let registered: Vec<_> = gaze::models()
        .iter()
        .filter(|m| families.contains(&m.family))
        .collect();
    let mut names: Vec<_> = registered.iter().map(|m| m.name).collect();
    names.sort();
    let mut expected_names: Vec<_> = reference.keys().map(String::as_str).collect();
    expected_names.sort();
    assert_eq!(
        names, expected_names,
        "registered {families:?} models vs {json}"
    );
    let device = Device::flex();
    for info in registered {
        let expected = reference[info.name].as_u64().unwrap() as usize;
        assert_eq!(info.build(&device).num_params(), expected, "{}", info.name);
        assert_eq!(info.params, expected, "registry entry of {}", info.name);
    }
}

/// Strictly loads the fixture `file` (weights plus `input` and `output` of rank `D`) into
/// `block` with `keys`, checks Burn's parameter count (PyTorch's parameters plus any BatchNorm
/// running statistics) and compares `forward(&block, input)` with the reference output.
/// Returns the loaded block.
pub fn check_fixture<M: burn::module::Module, const D: usize>(
    file: &str,
    block: M,
    keys: &gaze::weights::KeyMap,
    params: usize,
    forward: impl FnOnce(&M, Tensor<D>) -> Tensor<D>,
) -> M {
    let device = Device::flex();
    let mut checkpoint = Checkpoint::open(fixture(file)).expect("fixture opens");
    let input: Tensor<D> = take_tensor(&mut checkpoint, "input", &device);
    let output: Tensor<D> = take_tensor(&mut checkpoint, "output", &device);
    let block = gaze::weights::apply_checkpoint(block, checkpoint, keys)
        .unwrap_or_else(|report| panic!("{file}: {report}"));
    assert_eq!(block.num_params(), params, "{file}: parameter count");
    assert_close(file, forward(&block, input), output, 1e-4);
    block
}

/// Output keys of the backbone fixtures (`logits_<H>x<W>`, `output_<H>x<W>`,
/// `feature<i>_<H>x<W>`, `input`), as opposed to weights.
fn is_output_key(key: &str) -> bool {
    key == "input"
        || key.starts_with("logits_")
        || key.starts_with("output_")
        || (key.starts_with("feature") && key.contains('_'))
}

/// The fixture's weights alone (outputs removed) and its outputs by key.
pub fn split_fixture(file: &str) -> (Checkpoint, std::collections::BTreeMap<String, TensorData>) {
    let mut checkpoint = Checkpoint::open(fixture(file)).expect("fixture opens");
    let outputs: Vec<String> = checkpoint
        .tensors
        .keys()
        .filter(|k| is_output_key(k))
        .cloned()
        .collect();
    let outputs = outputs
        .into_iter()
        .map(|k| {
            let t = checkpoint.tensors.remove(&k).unwrap();
            (k, burn::store::bridge::into_data(t).unwrap())
        })
        .collect();
    (checkpoint, outputs)
}

/// A backbone's forward passes as the parity check sees them.
pub struct BackboneCheck<'a, M> {
    /// Fixture path without extension under tests/fixtures (`resnet/basic_plain`).
    pub fixture: &'a str,
    /// Input sizes `[H, W]`; the fixture holds `logits_<H>x<W>` (or `output_…`) and
    /// `feature<i>_<H>x<W>` for each.
    pub sizes: &'a [[usize; 2]],
    /// Image channels.
    pub in_chans: usize,
    /// The main output (logits `[N, K]` flattened to rank 2, or an image).
    pub forward: &'a dyn Fn(&M, Tensor<4>) -> Tensor<4>,
    /// The multi-scale maps compared with `feature<i>_…`.
    pub features: &'a dyn Fn(&M, Tensor<4>) -> Vec<Tensor<4>>,
}

/// [`check_backbone`] for a segmentation network: logits `[N, num_classes, H, W]` at every
/// size, and its `forward_intermediates` with the channels of `levels`.
pub fn check_segmenter<M>(
    fixture: &str,
    sizes: &[[usize; 2]],
    in_chans: usize,
    num_classes: usize,
    levels: &[gaze::backbones::FeatureInfo],
    build: impl Fn() -> M,
    keys: &gaze::weights::KeyMap,
) -> M
where
    M: gaze::backbones::FamilyNet + burn::module::ModuleDisplay,
{
    check_backbone(
        BackboneCheck {
            fixture,
            sizes,
            in_chans,
            forward: &|m: &M, x: Tensor<4>| {
                let [n, _, h, w] = x.dims();
                let y = m.forward(x).into_mask().expect("a mask");
                assert_eq!(y.dims(), [n, num_classes, h, w], "{fixture}: output size");
                y
            },
            features: &|m: &M, x: Tensor<4>| {
                let maps = m.forward_intermediates(x);
                assert_eq!(maps.len(), levels.len(), "{fixture}: levels");
                for (map, level) in maps.iter().zip(levels) {
                    assert_eq!(map.dims()[1], level.channels, "{fixture}: channels");
                }
                maps
            },
        },
        build,
        keys,
    )
}

/// Backbone parity at ≤ 1e-4 absolute on a batch of 2: the fixture's weights load strictly
/// from its `.safetensors` and from its `.pth` (`torch.save`) copy with identical values; the
/// main output and every feature map match the reference at every size; and the module saves
/// back to exactly the checkpoint's official keys and values (the key map run backwards).
/// Returns the loaded module.
pub fn check_backbone<M: burn::module::Module + burn::module::ModuleDisplay>(
    check: BackboneCheck<'_, M>,
    build: impl Fn() -> M,
    keys: &gaze::weights::KeyMap,
) -> M {
    let device = Device::flex();
    let name = check.fixture;
    let (weights, outputs) = split_fixture(&format!("{name}.safetensors"));
    let reference: std::collections::BTreeMap<String, TensorData> = weights
        .tensors
        .iter()
        .filter(|(k, _)| !keys.is_ignored(k))
        .map(|(k, t)| {
            (
                k.clone(),
                burn::store::bridge::into_data(t.clone()).unwrap(),
            )
        })
        .collect();
    let net = gaze::weights::apply_checkpoint(build(), weights, keys)
        .unwrap_or_else(|report| panic!("{name}.safetensors: {report}"));
    // Constants random weights barely see: every norm's epsilon is the reference's.
    let (family, stem) = name.split_once('/').unwrap();
    let consts = &constants(family)["fixtures"][stem];
    assert_constants_match(name, &net, keys, consts);

    // The .pth copy: the same tensors, keys read exactly as stored.
    let pth = Checkpoint::open(fixture(&format!("{name}.pth"))).expect("the .pth fixture opens");
    assert_eq!(pth.format, gaze::weights::Format::TorchZip, "{name}.pth");
    let from_pth = gaze::weights::apply_checkpoint(build(), pth, keys)
        .unwrap_or_else(|report| panic!("{name}.pth: {report}"));
    let a = gaze::weights::official_state_dict(&net, keys).unwrap();
    let b = gaze::weights::official_state_dict(&from_pth, keys).unwrap();
    assert_eq!(a, b, "{name}: .pth and .safetensors load the same tensors");

    // Saving runs the key map backwards: exactly the official keys and values.
    let saved: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
    let expected: Vec<&str> = reference.keys().map(String::as_str).collect();
    assert_eq!(saved, expected, "{name}: saved keys vs the checkpoint's");
    for (key, data) in &a {
        assert_eq!(
            data.clone().convert::<f32>(),
            reference[key].clone().convert::<f32>(),
            "{name}: saved '{key}'"
        );
    }

    for &[h, w] in check.sizes {
        let tag = format!("{h}x{w}");
        let x = deterministic_input([2, check.in_chans, h, w], &device);
        let want = outputs
            .get(&format!("logits_{tag}"))
            .or_else(|| outputs.get(&format!("output_{tag}")))
            .unwrap_or_else(|| panic!("{name}: no logits_{tag} or output_{tag}"));
        let ours = (check.forward)(&net, x.clone());
        let values: Vec<f32> = want.clone().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert_eq!(
            values.len(),
            ours.dims().iter().product::<usize>(),
            "{name} {tag}: output size ({:?} vs {:?})",
            want.shape(),
            ours.dims()
        );
        let want = Tensor::<4>::from_data(TensorData::new(values, ours.dims()), &device);
        assert_close(&format!("{name} output {tag}"), ours, want, 1e-4);
        let maps = (check.features)(&net, x);
        let stored = (0..)
            .map_while(|i| outputs.get(&format!("feature{i}_{tag}")))
            .count();
        if stored > 0 {
            assert_eq!(maps.len(), stored, "{name} {tag}: feature maps");
        }
        for (i, map) in maps.into_iter().enumerate().take(stored) {
            let want = Tensor::<4>::from_data(
                outputs[&format!("feature{i}_{tag}")]
                    .clone()
                    .convert::<f32>(),
                &device,
            );
            assert_close(&format!("{name} feature{i} {tag}"), map, want, 1e-4);
        }
    }
    net
}

/// `[N, K]` logits as `[N, K, 1, 1]`, for [`BackboneCheck::forward`].
pub fn logits4(logits: Tensor<2>) -> Tensor<4> {
    let [n, k] = logits.dims();
    logits.reshape([n, k, 1, 1])
}

/// The constants of `module` that random-weight outputs barely see, read from its Display (the
/// one place Burn shows a LayerNorm's epsilon), by official module name: every norm's epsilon
/// and every attention module's scale (the scale field where a block stores one, else `d^-½` of
/// the width it scales by).
pub struct ModuleConstants {
    /// `(module, epsilon)` of every LayerNorm/BatchNorm and own norm with an `epsilon` field.
    pub norm_eps: Vec<(String, f64)>,
    /// `(module, scale)` of every attention module.
    pub attn_scale: Vec<(String, f64)>,
}

pub fn module_constants<M: burn::module::ModuleDisplay>(
    module: &M,
    keys: &gaze::weights::KeyMap,
) -> ModuleConstants {
    let text = burn::module::ModuleDisplay::format(module, Default::default());
    let leaf = regex::Regex::new(r"^(\s*)([^\s:]+): (LayerNorm|BatchNorm) \{(.*)\}$").unwrap();
    let open = regex::Regex::new(r"^(\s*)([^\s:]+): (\w+)(<[^>]*>)? \{$").unwrap();
    let eps = regex::Regex::new(r"epsilon: ([0-9.eE+-]+)").unwrap();
    let field =
        regex::Regex::new(r"^(\s*)(epsilon|head_dim|key_dim|dim_head_qk|scale): ([0-9.eE+-]+)$")
            .unwrap();
    // (indent, field name, type) of the enclosing modules.
    let mut stack: Vec<(usize, String, String)> = Vec::new();
    let official = |stack: &[(usize, String, String)], leaf: Option<&str>| {
        let mut path: Vec<&str> = stack
            .iter()
            .map(|(_, n, _)| n.as_str())
            .filter(|n| *n != "_0")
            .collect();
        path.extend(leaf);
        let key = keys.unmap(&format!("{}.weight", path.join(".")));
        key.trim_end_matches(".weight").to_string()
    };
    let mut out = ModuleConstants {
        norm_eps: Vec::new(),
        attn_scale: Vec::new(),
    };
    for line in text.lines() {
        if let Some(c) = leaf.captures(line) {
            stack.retain(|(i, _, _)| *i < c[1].len());
            let value = eps.captures(&c[4]).expect("epsilon shown")[1]
                .parse()
                .unwrap();
            out.norm_eps.push((official(&stack, Some(&c[2])), value));
        } else if let Some(c) = field.captures(line) {
            stack.retain(|(i, _, _)| *i < c[1].len());
            let Some((_, _, kind)) = stack.last() else {
                continue;
            };
            let value: f64 = c[3].parse().unwrap();
            match (kind.as_str(), &c[2]) {
                // A norm of our own (e.g. PSA's context LayerNorm) with an `epsilon` field.
                (_, "epsilon") => out.norm_eps.push((official(&stack, None), value)),
                (
                    "NeighborhoodAttention"
                    | "BiLevelRoutingAttention"
                    | "TopkRouting"
                    | "AttentionLePE",
                    "scale",
                ) => out.attn_scale.push((official(&stack, None), value)),
                ("VitAttention" | "WindowAttention" | "CrossAttention", "head_dim")
                | ("LevitAttention" | "LevitAttentionDownsample", "key_dim")
                | ("HaloAttn", "dim_head_qk") => out
                    .attn_scale
                    .push((official(&stack, None), value.powf(-0.5))),
                _ => {}
            }
        } else if let Some(c) = open.captures(line) {
            let indent = c[1].len();
            stack.retain(|(i, _, _)| *i < indent);
            stack.push((indent, c[2].to_string(), c[3].to_string()));
        }
    }
    out
}

/// `ours` equals the reference's `constants.json` entry `reference[kind]`
/// (`{"1e-05": [patterns]}`, `*` standing for a run of digits): every module of ours is in the
/// reference with the same value, and every reference pattern has a counterpart.
fn assert_constants(what: &str, kind: &str, ours: &[(String, f64)], reference: &serde_json::Value) {
    let mut patterns: Vec<(regex::Regex, String, f64)> = Vec::new();
    if let Some(map) = reference.get(kind).and_then(|v| v.as_object()) {
        for (value, list) in map {
            for p in list.as_array().unwrap() {
                let p = p.as_str().unwrap();
                let re = format!("^{}$", regex::escape(p).replace(r"\*", r"\d+"));
                patterns.push((
                    regex::Regex::new(&re).unwrap(),
                    p.to_string(),
                    value.parse().unwrap(),
                ));
            }
        }
    }
    for (name, value) in ours {
        let matching: Vec<_> = patterns
            .iter()
            .filter(|(re, _, _)| re.is_match(name))
            .collect();
        assert!(
            !matching.is_empty(),
            "{what}: {kind} of '{name}' is not in the reference's constants"
        );
        for (_, p, want) in matching {
            assert!(
                (value - want).abs() <= want * 1e-9,
                "{what}: {kind} of '{name}' is {value}, the reference's '{p}' {want}"
            );
        }
    }
    for (re, p, _) in &patterns {
        assert!(
            ours.iter().any(|(name, _)| re.is_match(name)),
            "{what}: the reference's {kind} of '{p}' has no counterpart in {ours:?}"
        );
    }
}

/// The norms' epsilons and the attention scales of `module` are the reference's.
pub fn assert_constants_match<M: burn::module::ModuleDisplay>(
    what: &str,
    module: &M,
    keys: &gaze::weights::KeyMap,
    reference: &serde_json::Value,
) {
    let ours = module_constants(module, keys);
    assert_constants(what, "norm_eps", &ours.norm_eps, reference);
    assert_constants(what, "attn_scale", &ours.attn_scale, reference);
}

/// The backbone fixture folders, each with a `constants.json`.
pub const FIXTURE_FAMILIES: [&str; 8] = [
    "resnet",
    "ran",
    "vit",
    "swin",
    "levit",
    "nat_biformer",
    "halonet",
    "pan",
];

/// `tests/fixtures/<family>/constants.json`.
pub fn constants(family: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("{family}/constants.json"))).unwrap(),
    )
    .unwrap()
}
