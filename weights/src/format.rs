//! Recognising a checkpoint's format from its first bytes.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// File formats [`crate::Checkpoint`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` before PyTorch 1.6: a raw pickle stream (most published SR weights).
    TorchLegacy,
    /// `torch.save` since PyTorch 1.6: a zip archive holding `data.pkl` and the storages.
    TorchZip,
    /// Hugging Face safetensors.
    Safetensors,
    /// An ONNX model (weights recovered from the graph, see [`crate::onnx`]).
    Onnx,
    /// Burn's burnpack (module paths, Burn layout), as `gaze convert` or Burn writes it.
    Burnpack,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::TorchLegacy => "PyTorch legacy pickle",
            Format::TorchZip => "PyTorch zip",
            Format::Safetensors => "safetensors",
            Format::Onnx => "ONNX",
            Format::Burnpack => "burnpack",
        })
    }
}

impl Format {
    /// Recognises the format from the first bytes of a file (at least 16 are needed to be
    /// sure; `file_len` bounds the safetensors header size).
    pub fn sniff(head: &[u8], file_len: u64) -> Option<Format> {
        // burnpack: the magic number 0x4255524E ("BURN") little-endian.
        if head.starts_with(&0x4255_524Eu32.to_le_bytes()) {
            return Some(Format::Burnpack);
        }
        if head.starts_with(b"PK\x03\x04") {
            return Some(Format::TorchZip);
        }
        // safetensors: u64 little-endian header length, then a JSON object. Checked before the
        // pickle opcode: a header length like 0x480 also starts with the byte 0x80.
        if head.len() >= 9 {
            let n = u64::from_le_bytes(head[..8].try_into().unwrap());
            if head[8] == b'{' && n >= 2 && n.saturating_add(8) <= file_len {
                return Some(Format::Safetensors);
            }
        }
        // Pickle protocol 2+ starts with the PROTO opcode 0x80 and the protocol number.
        if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
            return Some(Format::TorchLegacy);
        }
        // ONNX ModelProto: field 1 (ir_version, varint) comes first in every exporter's output.
        if head.len() >= 2 && head[0] == 0x08 && head[1] < 0x80 && head[1] > 0 {
            return Some(Format::Onnx);
        }
        None
    }

    /// Reads the head of `path` and recognises its format.
    pub fn detect(path: &Path) -> std::io::Result<Option<Format>> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut head = Vec::with_capacity(16);
        (&mut file).take(16).read_to_end(&mut head)?;
        Ok(Format::sniff(&head, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_format() {
        assert_eq!(
            Format::sniff(b"PK\x03\x04rest", 100),
            Some(Format::TorchZip)
        );
        assert_eq!(
            Format::sniff(&[0x80, 0x02, 0x8a, 0x0a], 100),
            Some(Format::TorchLegacy)
        );
        let mut st = 4u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{  }");
        assert_eq!(Format::sniff(&st, 12), Some(Format::Safetensors));
        assert_eq!(Format::sniff(&st, 11), None, "header longer than the file");
        assert_eq!(Format::sniff(&[0x08, 0x07, 0x12], 100), Some(Format::Onnx));
        // A safetensors header of 0x280 bytes starts like a protocol-2 pickle.
        let mut st = 0x280u64.to_le_bytes().to_vec();
        st.push(b'{');
        assert_eq!(Format::sniff(&st, 0x400), Some(Format::Safetensors));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n", 100), None);
        assert_eq!(Format::sniff(b"", 0), None);
    }
}
