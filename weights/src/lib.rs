//! Loading published checkpoints into gaze modules.
//!
//! * [`Checkpoint::open`] reads PyTorch (legacy pickle and zip), safetensors and ONNX files,
//!   recognising the format from the file's bytes, not its extension, and unwraps the usual
//!   containers (`params_ema`, `params`, `state_dict` top-level keys; DataParallel's `module.`).
//! * A [`KeyMap`] per model family renames the official parameter names to our module paths.
//! * [`load_into`] applies the tensors strictly: any missing key, unexpected key or shape
//!   mismatch fails with one [`LoadError`] that lists all of them, and the partially filled
//!   module is dropped, never returned.
//!
//! ```no_run
//! use burn::prelude::*;
//! use gaze_weights::{load_into, KeyMap};
//! # #[derive(burn::module::Module, Debug)] struct Net { conv: burn::nn::conv::Conv2d }
//! # fn build(device: &Device) -> Net { Net { conv: burn::nn::conv::Conv2dConfig::new([3, 8], [3, 3]).init(device) } }
//! let device = Device::flex();
//! let keys = KeyMap::new(&[(r"^body\.", "conv.")]);
//! let net = load_into(build(&device), "net.pth", &keys)?;
//! # Ok::<(), gaze_weights::LoadError>(())
//! ```

pub mod atomic_write;
pub mod checkpoint;
pub mod error;
pub mod format;
pub mod keymap;
pub mod onnx;
mod params;
mod pickle_scan;
pub mod save;
mod torch_zip;

pub use checkpoint::Checkpoint;
pub use error::{LoadError, LoadReport, ShapeMismatch};
pub use format::Format;
pub use keymap::{KeyMap, Transform};
pub use onnx::RecoverySummary;
pub use save::{official_shapes, official_state_dict, save_safetensors, SaveError};

use std::path::Path;

use burn::module::Module;
use burn::store::{ApplyError, ModuleSnapshot, PyTorchToBurnAdapter};

/// Parameters as PyTorch counts them: every float tensor of the module except BatchNorm's
/// running statistics, which PyTorch keeps as buffers (Burn's `num_params` counts them), and
/// except integer index buffers.
pub fn count_parameters<M: Module>(module: &M) -> usize {
    module
        .collect(None, None, true)
        .iter()
        .filter(|t| !t.name.ends_with("running_mean") && !t.name.ends_with("running_var"))
        // Integer index buffers built at init are not parameters either.
        .filter(|t| t.dtype.is_float())
        .map(|t| t.shape.num_elements())
        .sum()
}

/// Recovers the parameters of `module` from the ONNX export at `path` through its graph (see
/// [`onnx`]): a checkpoint under the official key names (`keys` run backwards) in PyTorch
/// layout, ready for [`apply_checkpoint`]. `model` names the model in errors.
pub fn recover_onnx<M: Module + burn::module::ModuleDisplay>(
    path: impl AsRef<Path>,
    module: &M,
    keys: &KeyMap,
    model: &str,
) -> Result<(Checkpoint, RecoverySummary), LoadError> {
    recover_onnx_with(
        path.as_ref(),
        module,
        keys,
        model,
        true,
        &OnnxHints::default(),
    )
}

/// Tables the forward reads through an index that depends on the input size (NAT's relative
/// position bias): given the export's input height and width, `(official key, index)` pairs,
/// the index flattening the table's trailing axes, one entry per element the forward gathers,
/// in the layout the forward lays them out.
pub type GatheredTables<'a> = &'a dyn Fn([usize; 2]) -> Vec<(String, Vec<i64>)>;

/// What the model knows about itself that an export's graph may need.
#[derive(Default, Clone)]
pub struct OnnxHints<'a> {
    /// Layers the forward never runs (module paths, PyTorch leaf names, as [`unused_layers`]
    /// gives them): no export holds them, so they are not looked for in the graph and come
    /// back as zeros, which gives the same outputs.
    pub never_run: Vec<String>,
    /// Where an exporter may have folded a table's gather into one constant (the dynamo
    /// exporter does when the gathered tensor is small): the index to undo it.
    pub gathered: Option<GatheredTables<'a>>,
}

/// [`recover_onnx`] with what the model knows about itself ([`OnnxHints`]).
pub fn recover_onnx_with_hints<M: Module + burn::module::ModuleDisplay>(
    path: impl AsRef<Path>,
    module: &M,
    keys: &KeyMap,
    model: &str,
    hints: &OnnxHints,
) -> Result<(Checkpoint, RecoverySummary), LoadError> {
    recover_onnx_with(path.as_ref(), module, keys, model, true, hints)
}

/// [`recover_onnx_with_hints`] from shapes and forward order alone, ignoring every name the
/// exporter kept: what a file stripped of names gives. For tests that the module's parameter
/// order is its forward order.
#[doc(hidden)]
pub fn recover_onnx_by_order<M: Module + burn::module::ModuleDisplay>(
    path: impl AsRef<Path>,
    module: &M,
    keys: &KeyMap,
    model: &str,
    hints: &OnnxHints,
) -> Result<(Checkpoint, RecoverySummary), LoadError> {
    recover_onnx_with(path.as_ref(), module, keys, model, false, hints)
}

/// The parameters of the layers of `module` that the backward pass behind `grads` never
/// reached: layers its forward builds but never runs (module paths, PyTorch leaf names).
/// Run a forward on an autodiff device (`Device::flex().autodiff()`) and `backward()` its
/// output's sum to get `grads`. Empty when `grads` holds nothing of `module`.
pub fn unused_layers<M: Module>(module: &M, grads: &burn::tensor::Gradients) -> Vec<String> {
    params::unused_layers(module, grads)
}

fn recover_onnx_with<M: Module + burn::module::ModuleDisplay>(
    path: &Path,
    module: &M,
    keys: &KeyMap,
    model: &str,
    use_names: bool,
    hints: &OnnxHints,
) -> Result<(Checkpoint, RecoverySummary), LoadError> {
    let params = params::visit_params(module, true);
    let eps = params::batch_norm_epsilons(module);
    let units = onnx::units(&params, &|p| keys.unmap(p), &|k| keys.is_ignored(k), &eps);
    // Layers the forward never runs are in no graph: filled with zeros instead.
    let unused: std::collections::HashSet<String> =
        hints.never_run.iter().map(|p| keys.unmap(p)).collect();
    let (never_run, mut units): (Vec<_>, Vec<_>) = units
        .into_iter()
        .partition(|u| u.keys().all(|k| unused.contains(k)));
    let (mut state, mut summary) =
        onnx::recover(path, &mut units, model, use_names, hints.gathered).map_err(|e| match e {
            onnx::RecoverError::File(message) => LoadError::Corrupt {
                path: path.display().to_string(),
                format: Format::Onnx,
                message,
            },
            onnx::RecoverError::Graph(message) => LoadError::Graph {
                path: path.display().to_string(),
                message,
            },
        })?;
    for unit in &never_run {
        state.extend(unit.zeros());
    }
    summary.never_run = never_run.len();
    let tensors = state
        .into_iter()
        .map(|(key, c)| {
            let data = burn::tensor::TensorData::new(c.data, c.shape);
            let tensor = burn::store::bridge::from_data(data, key.clone(), None);
            (key, tensor)
        })
        .collect();
    Ok((
        Checkpoint {
            format: Format::Onnx,
            tensors,
        },
        summary,
    ))
}

/// Loads the checkpoint at `path` into `module`, renaming its keys with `keys`.
///
/// Strict: every parameter of the module must be present with the right shape and every
/// tensor of the checkpoint must be used (buffers the key map ignores aside). On any
/// mismatch the error lists every missing key, unexpected key and shape mismatch.
pub fn load_into<M: Module>(
    module: M,
    path: impl AsRef<Path>,
    keys: &KeyMap,
) -> Result<M, LoadError> {
    let path = path.as_ref();
    let checkpoint = Checkpoint::open(path)?;
    apply_checkpoint(module, checkpoint, keys).map_err(|report| LoadError::Mismatch {
        path: path.display().to_string(),
        report,
        hint: None,
    })
}

/// Applies an already opened checkpoint; the error is the strict report.
pub fn apply_checkpoint<M: Module>(
    module: M,
    checkpoint: Checkpoint,
    keys: &KeyMap,
) -> Result<M, LoadReport> {
    apply_checkpoint_allowing(module, checkpoint, keys, &|_| false)
}

/// [`apply_checkpoint`], except that module parameters for which `may_be_missing(path)` holds
/// keep their values when the checkpoint lacks them (a fresh classifier head).
pub fn apply_checkpoint_allowing<M: Module>(
    mut module: M,
    checkpoint: Checkpoint,
    keys: &KeyMap,
    may_be_missing: &dyn Fn(&str) -> bool,
) -> Result<M, LoadReport> {
    let mut report = LoadReport::default();
    let mut origin = std::collections::HashMap::new();
    let mut tensors = Vec::new();
    let expected: std::collections::HashMap<String, Vec<usize>> =
        official_shapes(&module, keys).into_iter().collect();
    for (name, mut tensor) in checkpoint.tensors {
        if keys.is_ignored(&name) {
            continue;
        }
        // Configuration-dependent shapes (a position table of another grid) are adapted.
        if let (Some(transform), Some(shape)) = (keys.transform_for(&name), expected.get(&name)) {
            if tensor.shape.to_vec() != *shape {
                let data = burn::store::bridge::into_data(tensor)
                    .map_err(|e| one_error(&name, e.to_string()))?;
                let data = transform(data, shape).map_err(|e| one_error(&name, e))?;
                tensor = burn::store::bridge::from_data(data, name.clone(), None);
            }
        }
        let mapped = keys.map(&name);
        origin.insert(mapped.clone(), name);
        tensor.name = mapped;
        tensors.push(tensor);
    }
    let result = module.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    let checkpoint_name = |path: &str| {
        origin
            .get(path)
            .cloned()
            .unwrap_or_else(|| path.to_string())
    };
    report.missing = result
        .missing
        .iter()
        .map(|(path, _)| path.clone())
        // Buffers the key map ignores are computed at init, never read from a checkpoint.
        .filter(|path| !may_be_missing(path) && !keys.is_ignored(&keys.unmap(path)))
        .collect();
    report.unexpected = result.unused.iter().map(|p| checkpoint_name(p)).collect();
    for error in &result.errors {
        match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => report.mismatched.push(ShapeMismatch {
                key: checkpoint_name(path),
                expected: expected.to_vec(),
                found: found.to_vec(),
            }),
            other => report.other.push(other.to_string()),
        }
    }
    if report.is_clean() {
        Ok(module)
    } else {
        report.sort();
        Err(report)
    }
}

fn one_error(key: &str, message: String) -> LoadReport {
    LoadReport {
        other: vec![format!("{key}: {message}")],
        ..LoadReport::default()
    }
}
