//! Refusing pickles that would call anything.
//!
//! A pickle is a program: `GLOBAL os system` + `REDUCE` calls `os.system`. gaze's reader (burn-store)
//! never executes Python, but a checkpoint that asks for a call outside the handful that
//! rebuild tensors is not a state dict, and is refused before anything else reads it. The
//! scanner walks the opcodes (every protocol, 0–5) with bounds checks and collects the globals
//! each pickle names; any global outside [`ALLOWED`] or any extension-registry opcode is an
//! error naming it.

/// The globals of `torch.save`d state dicts: tensor and storage rebuilding, ordered dicts,
/// the numpy scalars some training scripts store beside the weights.
const ALLOWED: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._tensor._rebuild_from_type_v2",
    "torch.Tensor",
    "torch.nn.parameter.Parameter",
    "torch.FloatStorage",
    "torch.DoubleStorage",
    "torch.HalfStorage",
    "torch.BFloat16Storage",
    "torch.LongStorage",
    "torch.IntStorage",
    "torch.ShortStorage",
    "torch.CharStorage",
    "torch.ByteStorage",
    "torch.BoolStorage",
    "torch.storage.UntypedStorage",
    "torch.float32",
    "torch.float16",
    "torch.bfloat16",
    "torch.float64",
    "torch.int64",
    "torch.int32",
    "torch.uint8",
    "torch.bool",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
    "_codecs.encode",
];

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("the pickle ends early")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("the pickle ends early")?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn sized(&mut self, width: usize) -> Result<&'a [u8], String> {
        let n = self.uint(width)?;
        self.take(usize::try_from(n).map_err(|_| "a length does not fit")?)
    }
}

/// Checks one pickle starting at `data[start..]`; returns where it ends (after STOP).
fn scan_one(data: &[u8], start: usize) -> Result<usize, String> {
    let mut r = Reader { data, pos: start };
    // Strings recently pushed and memoized, for STACK_GLOBAL's module and name.
    let mut strings: Vec<Option<String>> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Option<String>> = Default::default();
    let check = |module: &str, name: &str| -> Result<(), String> {
        let global = format!("{module}.{name}");
        if ALLOWED.contains(&global.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "the pickle calls {global}, which no state dict needs: refused (a checkpoint may only rebuild tensors)"
            ))
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    loop {
        let op = r.take(1)?[0];
        let mut pushed: Option<Option<String>> = Some(None);
        match op {
            b'.' => return Ok(r.pos),
            // No argument.
            b'(' | b'0' | b'1' | b'2' | b'N' | b'R' | b'a' | b'b' | b'd' | b'}' | b'e' | b'l'
            | b']' | b's' | b't' | b')' | b'u' | 0x88 | 0x89 | 0x85 | 0x86 | 0x87 | 0x81 | 0x8f
            | 0x90 | 0x91 | 0x92 | 0x97 | 0x98 | b'Q' | b'o' => {}
            0x94 => {
                // MEMOIZE: the top of the stack gets the next memo index.
                let top = strings.last().cloned().flatten();
                memo.insert(memo.len() as u64, top);
                pushed = None;
            }
            b'q' | b'r' => {
                let index = r.uint(if op == b'q' { 1 } else { 4 })?;
                memo.insert(index, strings.last().cloned().flatten());
                pushed = None;
            }
            b'p' => {
                let index = text(r.line()?).trim().parse::<u64>().unwrap_or(u64::MAX);
                memo.insert(index, strings.last().cloned().flatten());
                pushed = None;
            }
            b'h' | b'j' => {
                let index = r.uint(if op == b'h' { 1 } else { 4 })?;
                pushed = Some(memo.get(&index).cloned().flatten());
            }
            b'g' => {
                let index = text(r.line()?).trim().parse::<u64>().unwrap_or(u64::MAX);
                pushed = Some(memo.get(&index).cloned().flatten());
            }
            b'K' | 0x80 => {
                r.take(1)?;
                if op == 0x80 {
                    pushed = None;
                }
            }
            b'M' => {
                r.take(2)?;
            }
            b'J' => {
                r.take(4)?;
            }
            b'G' => {
                r.take(8)?;
            }
            0x95 => {
                // FRAME: its contents follow inline.
                r.take(8)?;
                pushed = None;
            }
            0x8a | b'U' | b'C' => {
                r.sized(1)?;
            }
            0x8c => pushed = Some(Some(text(r.sized(1)?))),
            b'X' => pushed = Some(Some(text(r.sized(4)?))),
            0x8d => pushed = Some(Some(text(r.sized(8)?))),
            b'T' | b'B' | 0x8b => {
                r.sized(4)?;
            }
            0x8e | 0x96 => {
                r.sized(8)?;
            }
            b'I' | b'L' | b'F' | b'S' | b'P' => {
                r.line()?;
            }
            b'V' => pushed = Some(Some(text(r.line()?))),
            b'c' | b'i' => {
                let module = text(r.line()?);
                let name = text(r.line()?);
                check(&module, &name)?;
            }
            0x93 => {
                // STACK_GLOBAL: module and name are the two strings on top of the stack.
                let n = strings.len();
                let (Some(Some(module)), Some(Some(name))) = (
                    n.checked_sub(2).and_then(|i| strings.get(i)),
                    n.checked_sub(1).and_then(|i| strings.get(i)),
                ) else {
                    return Err("the pickle names a global it does not spell out: refused".into());
                };
                check(module, name)?;
            }
            0x82..=0x84 => {
                return Err("the pickle uses the extension registry: refused".into());
            }
            other => return Err(format!("invalid pickle opcode 0x{other:02x}")),
        }
        if let Some(p) = pushed {
            strings.push(p);
            if strings.len() > 64 {
                strings.drain(..32);
            }
        }
    }
}

/// Checks every pickle of a legacy `torch.save` file (magic number, protocol, system info,
/// the state dict, the storage keys; raw storage bytes follow).
pub(crate) fn check_legacy(data: &[u8]) -> Result<(), String> {
    let mut pos = 0;
    for _ in 0..5 {
        if pos >= data.len() {
            break;
        }
        pos = scan_one(data, pos)?;
    }
    Ok(())
}

/// Checks the `data.pkl` of a `torch.save` zip archive (stored uncompressed, as PyTorch writes
/// it); archives laid out otherwise are left to the reader.
pub(crate) fn check_zip(data: &[u8]) -> Result<(), String> {
    let mut at = 0;
    while let Some(found) = find(&data[at..], b"PK\x03\x04") {
        let h = at + found;
        let field = |o: usize, n: usize| -> Option<u64> {
            let b = data.get(h + o..h + o + n)?;
            let mut v = [0u8; 8];
            v[..n].copy_from_slice(b);
            Some(u64::from_le_bytes(v))
        };
        let (Some(method), Some(size), Some(name_len), Some(extra_len)) =
            (field(8, 2), field(18, 4), field(26, 2), field(28, 2))
        else {
            return Ok(());
        };
        let name_start = h + 30;
        let name = data.get(name_start..name_start + name_len as usize);
        if name.is_some_and(|n| n.ends_with(b"data.pkl")) {
            if method != 0 {
                return Ok(());
            }
            // The local header's size may be 0 (sizes in a data descriptor): the pickle ends
            // at its STOP opcode, within the file.
            let _ = size;
            let start = name_start + name_len as usize + extra_len as usize;
            let Some(pickle) = data.get(start..) else {
                return Err("data.pkl lies beyond the end of the file".into());
            };
            scan_one(pickle, 0)?;
            return Ok(());
        }
        at = h + 4;
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_refused_and_state_dicts_pass() {
        let evil = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let err = scan_one(evil, 0).unwrap_err();
        assert!(err.contains("posix.system"), "{err}");
        // Protocol 4: STACK_GLOBAL from memoized strings.
        let evil4 = b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02ls\x94\x85\x94R\x94.";
        let err = scan_one(evil4, 0).unwrap_err();
        assert!(err.contains("posix.system"), "{err}");
        // An OrderedDict of nothing.
        let fine = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";
        assert_eq!(scan_one(fine, 0).unwrap(), fine.len());
        // Truncated: an error, not a panic.
        assert!(scan_one(&fine[..10], 0).is_err());
    }
}
