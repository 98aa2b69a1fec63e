//! Saving a module under the official key names, so the reference code loads what gaze saved.

use std::borrow::Cow;
use std::path::Path;

use burn::module::Module;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
use burn::tensor::{DType, TensorData};

use crate::atomic_write::write_atomically;
use crate::KeyMap;

/// Why a module could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// A tensor could not be read back from its device, or has a dtype safetensors lacks.
    #[error("cannot save '{key}': {message}")]
    Tensor {
        /// The official key of the tensor.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// Two module paths map to one official key (a key-map bug).
    #[error("two parameters would be saved as '{0}'")]
    DuplicateKey(String),
    /// The file could not be written.
    #[error("cannot write '{path}': {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

struct View {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &View {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The module's tensors in PyTorch layout (Linear weights `[out, in]`, norms' `weight`/`bias`)
/// under the official names given by running `keys` backwards, in key order.
pub fn official_state_dict<M: Module>(
    module: &M,
    keys: &KeyMap,
) -> Result<Vec<(String, TensorData)>, SaveError> {
    let mut out: Vec<(String, TensorData)> = Vec::new();
    for tensor in module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        let key = keys.unmap(&tensor.name);
        // Buffers the key map ignores (index tables built at init) are not in the official
        // state dict either.
        if keys.is_ignored(&key) {
            continue;
        }
        let data = burn::store::bridge::into_data(tensor).map_err(|e| SaveError::Tensor {
            key: key.clone(),
            message: e.to_string(),
        })?;
        out.push((key, data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SaveError::DuplicateKey(w[0].0.clone()));
    }
    Ok(out)
}

/// Writes `module` as a safetensors file under the official key names (see
/// [`official_state_dict`]), atomically: a failed save leaves no half-written file.
pub fn save_safetensors<M: Module>(
    module: &M,
    path: impl AsRef<Path>,
    keys: &KeyMap,
    metadata: &[(&str, &str)],
) -> Result<(), SaveError> {
    let path = path.as_ref();
    let mut views = Vec::new();
    for (key, data) in official_state_dict(module, keys)? {
        let dtype = match data.dtype() {
            DType::F32 => safetensors::Dtype::F32,
            DType::F64 => safetensors::Dtype::F64,
            DType::F16 => safetensors::Dtype::F16,
            DType::BF16 => safetensors::Dtype::BF16,
            DType::I64 => safetensors::Dtype::I64,
            DType::I32 => safetensors::Dtype::I32,
            other => {
                return Err(SaveError::Tensor {
                    key,
                    message: format!("dtype {other:?} has no safetensors equivalent"),
                })
            }
        };
        let shape = data.shape().to_vec();
        views.push((
            key,
            View {
                dtype,
                shape,
                bytes: data.as_bytes().to_vec(),
            },
        ));
    }
    let plain =
        safetensors::serialize(views.iter().map(|(k, v)| (k.as_str(), v)), None).map_err(|e| {
            SaveError::Tensor {
                key: String::new(),
                message: e.to_string(),
            }
        })?;
    let bytes = with_metadata(&plain, metadata);
    write_atomically(path, |f| std::io::Write::write_all(f, &bytes)).map_err(|source| {
        SaveError::Io {
            path: path.display().to_string(),
            source,
        }
    })
}

/// The official key and PyTorch shape of every tensor `module` saves (see
/// [`official_state_dict`]), sorted by key, without initialising any weight.
pub fn official_shapes<M: Module>(module: &M, keys: &KeyMap) -> Vec<(String, Vec<usize>)> {
    // Shapes only: lazy parameters are not initialised, so describing a large model costs no
    // weights.
    let mut out: Vec<(String, Vec<usize>)> = crate::params::visit_params(module, false)
        .into_iter()
        .map(|p| (keys.unmap(&p.path), p.shape))
        .collect();
    out.sort();
    out
}

/// Inserts `__metadata__` (in the given order) at the start of a serialised safetensors header.
/// The crate takes metadata as a `HashMap`, whose order changes from run to run: doing it here
/// makes a save byte-for-byte reproducible.
fn with_metadata(plain: &[u8], metadata: &[(&str, &str)]) -> Vec<u8> {
    let len = u64::from_le_bytes(plain[..8].try_into().expect("8-byte length")) as usize;
    let header = std::str::from_utf8(&plain[8..8 + len])
        .expect("safetensors writes a UTF-8 header")
        .trim_end();
    let entries: Vec<String> = metadata
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                serde_json::to_string(k).expect("string"),
                serde_json::to_string(v).expect("string")
            )
        })
        .collect();
    let rest = &header[1..];
    let separator = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    let mut new_header = format!(
        "{{\"__metadata__\":{{{}}}{separator}{rest}",
        entries.join(",")
    );
    // The data that follows stays 8-byte aligned, as the format requires.
    while new_header.len() % 8 != 0 {
        new_header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + new_header.len() + plain.len() - 8 - len);
    out.extend_from_slice(&(new_header.len() as u64).to_le_bytes());
    out.extend_from_slice(new_header.as_bytes());
    out.extend_from_slice(&plain[8 + len..]);
    out
}
