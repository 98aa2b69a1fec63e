//! Reading a checkpoint file into named tensors.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleStore, PytorchStore, SafetensorsStore};
use burn::tensor::TensorData;

use crate::{Format, LoadError};

/// Top-level containers that training frameworks wrap a state dict in, in order of
/// preference (BasicSR saves `params` and `params_ema`, the EMA weights being the published
/// ones; timm's training scripts `state_dict`; DeiT/Swin/BiFormer-style scripts `model`).
const WRAPPERS: [&str; 4] = ["params_ema", "params", "state_dict", "model"];

/// The tensors of a checkpoint, keyed by their (unwrapped) state-dict names.
pub struct Checkpoint {
    /// Format recognised from the file's bytes.
    pub format: Format,
    /// Tensors by name; data is read lazily when applied.
    pub tensors: BTreeMap<String, PackTensor>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("format", &self.format)
            .field("keys", &self.tensors.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Checkpoint {
    /// Opens a checkpoint, recognising its format from its bytes and unwrapping
    /// `params_ema` / `params` / `state_dict` containers and `module.` prefixes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let format = Format::detect(path)
            .map_err(|source| LoadError::Io {
                path: shown.clone(),
                source,
            })?
            .ok_or_else(|| LoadError::UnknownFormat {
                path: shown.clone(),
            })?;
        let corrupt = |message: String| LoadError::Corrupt {
            path: shown.clone(),
            format,
            message,
        };
        let raw = match format {
            Format::TorchLegacy | Format::TorchZip => {
                // Nothing reads a pickle that asks for calls beyond rebuilding tensors.
                let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
                    path: shown.clone(),
                    source,
                })?;
                if format == Format::TorchLegacy {
                    crate::pickle_scan::check_legacy(&bytes)
                } else {
                    crate::pickle_scan::check_zip(&bytes)
                }
                .map_err(corrupt)?;
                drop(bytes);
                // zip 9.8.1 misreads some torch.save archives (21-character stems); those are
                // read through a repaired temporary copy, which must outlive `read_store`.
                let repaired =
                    crate::torch_zip::repaired_copy(path).map_err(|source| LoadError::Io {
                        path: shown.clone(),
                        source,
                    })?;
                let source = repaired.as_deref().unwrap_or(path);
                // Keys exactly as stored: burn-store would renumber `conv1.3` to `conv1.2`.
                read_store(PytorchStore::from_file(source).map_indices_contiguous(false))
                    .map_err(corrupt)?
            }
            Format::Safetensors => {
                read_store(SafetensorsStore::from_file(path).map_indices_contiguous(false))
                    .map_err(corrupt)?
            }
            Format::Onnx => read_onnx(path).map_err(corrupt)?,
            Format::Burnpack => {
                read_store(burn::store::BurnpackStore::from_file(path).auto_extension(false))
                    .map_err(corrupt)?
            }
        };
        if raw.is_empty() {
            return Err(LoadError::Corrupt {
                path: shown,
                format,
                message: "it holds no tensors".into(),
            });
        }
        Ok(Checkpoint {
            format,
            tensors: unwrap_names(raw),
        })
    }

    /// A safetensors checkpoint held in memory (e.g. weights embedded with `include_bytes!`);
    /// `name` stands for the file in errors.
    pub fn from_safetensors_bytes(bytes: Vec<u8>, name: &str) -> Result<Self, LoadError> {
        let raw =
            read_store(SafetensorsStore::from_bytes(Some(bytes)).map_indices_contiguous(false))
                .map_err(|message| LoadError::Corrupt {
                    path: name.to_string(),
                    format: Format::Safetensors,
                    message,
                })?;
        if raw.is_empty() {
            return Err(LoadError::Corrupt {
                path: name.to_string(),
                format: Format::Safetensors,
                message: "it holds no tensors".into(),
            });
        }
        Ok(Checkpoint {
            format: Format::Safetensors,
            tensors: unwrap_names(raw),
        })
    }

    /// The tensor names, sorted.
    pub fn keys(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// The shape of one tensor.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|t| t.shape.to_vec())
    }
}

fn read_store<S: ModuleStore>(mut store: S) -> Result<BTreeMap<String, PackTensor>, String> {
    store
        .get_all_tensors()
        .map(|t| t.clone())
        .map_err(|e| e.to_string())
}

/// Keeps only the preferred wrapper's tensors (dropping e.g. optimizer state) and strips the
/// wrapper and any DataParallel `module.` prefixes from the names.
fn unwrap_names(raw: BTreeMap<String, PackTensor>) -> BTreeMap<String, PackTensor> {
    let wrapper = WRAPPERS
        .iter()
        .map(|w| format!("{w}."))
        .find(|prefix| raw.keys().any(|k| k.starts_with(prefix.as_str())));
    raw.into_iter()
        .filter_map(|(key, mut tensor)| {
            let mut name = match &wrapper {
                Some(prefix) => key.strip_prefix(prefix.as_str())?.to_string(),
                None => key,
            };
            while let Some(rest) = name.strip_prefix("module.") {
                name = rest.to_string();
            }
            tensor.name = name.clone();
            Some((name, tensor))
        })
        .collect()
}

/// ONNX initializers by name (float32 only: the weights of exported vision models), external
/// data included. Files whose names are not the state dict's go through
/// [`crate::recover_onnx`].
fn read_onnx(path: &Path) -> Result<BTreeMap<String, PackTensor>, String> {
    Ok(crate::onnx::initializers(path)?
        .into_iter()
        .map(|(name, c)| {
            let data = TensorData::new(c.data, c.shape);
            let tensor = burn::store::bridge::from_data(data, name.clone(), None);
            (name, tensor)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> (String, PackTensor) {
        let data = TensorData::new(vec![0f32; 2], [2]);
        (
            name.to_string(),
            burn::store::bridge::from_data(data, name.to_string(), None),
        )
    }

    #[test]
    fn unwraps_preferred_container_and_module_prefix() {
        let raw: BTreeMap<_, _> = [
            t("params.module.a.weight"),
            t("params_ema.module.a.weight"),
            t("optimizer.state.0"),
        ]
        .into_iter()
        .collect();
        let names: Vec<_> = unwrap_names(raw).into_keys().collect();
        assert_eq!(names, vec!["a.weight"]);
        let raw: BTreeMap<_, _> = [t("module.conv.weight"), t("module.conv.bias")]
            .into_iter()
            .collect();
        let names: Vec<_> = unwrap_names(raw).into_keys().collect();
        assert_eq!(names, vec!["conv.bias", "conv.weight"]);
    }
}
