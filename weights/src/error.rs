//! Errors of checkpoint loading, with the full list of what does not fit.

use std::fmt;

/// One tensor whose shape differs between the model and the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The checkpoint's key.
    pub key: String,
    /// Shape the model expects.
    pub expected: Vec<usize>,
    /// Shape found in the checkpoint.
    pub found: Vec<usize>,
}

/// Everything that kept a checkpoint from loading strictly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Module parameters with no tensor in the checkpoint (module paths).
    pub missing: Vec<String>,
    /// Checkpoint tensors no module parameter took (checkpoint keys).
    pub unexpected: Vec<String>,
    /// Tensors present on both sides with different shapes.
    pub mismatched: Vec<ShapeMismatch>,
    /// Anything else (dtype, corrupt tensor data), one line each.
    pub other: Vec<String>,
}

impl LoadReport {
    /// True when nothing is missing, unexpected or mismatched.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.other.is_empty()
    }

    pub(crate) fn sort(&mut self) {
        self.missing.sort();
        self.unexpected.sort();
        self.mismatched.sort_by(|a, b| a.key.cmp(&b.key));
    }
}

/// How many keys of each kind the short report names; [`LoadReport::verbose`] names all.
const SHOWN: usize = 5;

impl LoadReport {
    /// The whole report, every key on its own line.
    pub fn verbose(&self) -> String {
        let mut out = format!(
            "{} missing, {} unexpected, {} shape mismatches",
            self.missing.len(),
            self.unexpected.len(),
            self.mismatched.len()
        );
        for m in &self.missing {
            out.push_str(&format!("\n  missing:    {m}"));
        }
        for u in &self.unexpected {
            out.push_str(&format!("\n  unexpected: {u}"));
        }
        for m in &self.mismatched {
            out.push_str(&format!(
                "\n  shape:      {} (model {:?}, checkpoint {:?})",
                m.key, m.expected, m.found
            ));
        }
        for o in &self.other {
            out.push_str(&format!("\n  other:      {o}"));
        }
        out
    }
}

fn first_few(f: &mut fmt::Formatter<'_>, what: &str, keys: &[String]) -> fmt::Result {
    if keys.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = keys.iter().take(SHOWN).map(String::as_str).collect();
    write!(f, "\n  {what}: {}", shown.join(", "))?;
    if keys.len() > SHOWN {
        write!(f, ", … ({} more)", keys.len() - SHOWN)?;
    }
    Ok(())
}

/// A short report: the counts, then at most five keys of each kind on one line each.
impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} missing, {} unexpected, {} shape mismatches",
            self.missing.len(),
            self.unexpected.len(),
            self.mismatched.len()
        )?;
        first_few(
            f,
            "missing (model parameters not in the checkpoint)",
            &self.missing,
        )?;
        first_few(
            f,
            "unexpected (checkpoint keys the model does not have)",
            &self.unexpected,
        )?;
        let shapes: Vec<String> = self
            .mismatched
            .iter()
            .map(|m| {
                format!(
                    "{} (model {:?}, checkpoint {:?})",
                    m.key, m.expected, m.found
                )
            })
            .collect();
        first_few(f, "shape mismatches", &shapes)?;
        first_few(f, "other", &self.other)?;
        Ok(())
    }
}

/// Why a checkpoint could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("cannot read checkpoint '{path}': {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a checkpoint format gaze reads.
    #[error("'{path}' is not a checkpoint gaze can read (expected a PyTorch .pth/.pt, safetensors or ONNX file)")]
    UnknownFormat {
        /// The file.
        path: String,
    },
    /// The format was recognised but the file is damaged or not a tensor dictionary.
    #[error("corrupt or unsupported {format} checkpoint '{path}': {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// Its recognised format.
        format: crate::Format,
        /// What went wrong.
        message: String,
    },
    /// An ONNX file whose graph does not compute the model (another model, or an export gaze
    /// cannot read): the first place where the graph and the model diverge.
    #[error("ONNX file '{path}' is not an export of the model: {message}")]
    Graph {
        /// The file.
        path: String,
        /// Where the graph and the model diverge.
        message: String,
    },
    /// The checkpoint does not hold exactly the model's parameters.
    #[error("checkpoint '{path}' does not match the model: {report}{}", hint.as_deref().map(|h| format!("\n  {h}")).unwrap_or_default())]
    Mismatch {
        /// The file.
        path: String,
        /// Everything that does not fit.
        report: LoadReport,
        /// Which registered model the checkpoint does fit, when one does.
        hint: Option<String>,
    },
}
