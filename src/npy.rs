//! NumPy `.npy` files of `f32` arrays (any rank), through `ndarray-npy`.
//!
//! Reading accepts `<f4` and `<f8` (converted to `f32`) in C order; writing produces what
//! `numpy.save` writes for a C-ordered `float32` array, atomically.
//!
//! ```
//! use gaze::npy::{read_npy_f32, write_npy_f32};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("x.npy");
//! write_npy_f32(&path, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
//! let (shape, data) = read_npy_f32(&path).unwrap();
//! assert_eq!(shape, vec![2, 3]);
//! assert_eq!(data[5], 6.0);
//! ```

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};

use crate::atomic_write::write_atomically;

/// Why a `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not an `f32`/`f64` C-order `.npy` array.
    #[error("{}: not a float32/float64 .npy array: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What `ndarray-npy` reported.
        message: String,
    },
    /// The data length is not the product of the shape.
    #[error("{found} values do not fill the shape {shape:?} ({expected} values)")]
    ShapeDataMismatch {
        /// The requested shape.
        shape: Vec<usize>,
        /// Values the shape holds.
        expected: usize,
        /// Values given.
        found: usize,
    },
}

/// Reads a `.npy` file of `float32` or `float64` values: its shape and its data (row-major).
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_npy_bytes(&bytes).map_err(|message| NpyError::Format {
        path: path.to_path_buf(),
        message,
    })
}

/// Decodes `.npy` bytes (see [`read_npy_f32`]).
pub fn read_npy_bytes(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    let array = match ArrayD::<f32>::read_npy(Cursor::new(bytes)) {
        Ok(a) => a,
        Err(ReadNpyError::WrongDescriptor(_)) => ArrayD::<f64>::read_npy(Cursor::new(bytes))
            .map_err(|e| e.to_string())?
            .mapv(|v| v as f32),
        Err(e) => return Err(e.to_string()),
    };
    let shape = array.shape().to_vec();
    Ok((shape, array.into_iter().collect()))
}

/// Encodes a C-ordered `float32` array as `.npy` bytes.
pub fn encode_npy_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, NpyError> {
    let expected: usize = shape.iter().product();
    let array = ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).map_err(|_| {
        NpyError::ShapeDataMismatch {
            shape: shape.to_vec(),
            expected,
            found: data.len(),
        }
    })?;
    let mut out = Vec::new();
    array
        .write_npy(&mut out)
        .expect("writing .npy into memory cannot fail");
    Ok(out)
}

/// Writes a C-ordered `float32` array to `path` atomically.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let bytes = encode_npy_f32(shape, data)?;
    write_atomically(path, |f| std::io::Write::write_all(f, &bytes)).map_err(|source| {
        NpyError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}
