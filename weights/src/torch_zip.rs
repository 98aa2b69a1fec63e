//! Reading `torch.save` zip archives that zip 9.8.1 misreads.
//!
//! PyTorch's writer (miniz with `MZ_ZIP_FLAG_WRITE_ZIP64`) always puts a ZIP64 end record and
//! locator (56 + 20 bytes) between the central directory and the end record, even when the
//! end record's own fields hold every value. zip 9.8.1 then takes the ZIP32 path and first
//! tries the directory start implied by "end record position − directory size", which is 76
//! bytes past the real start. If a central header happens to begin there, it accepts that
//! position with a 76-byte archive offset, runs into the ZIP64 record after the last entry
//! ("Invalid Central Directory header") and, since that wrong directory abuts the end
//! record, never retries the real start. `torch.save` writes `<stem>/data.pkl` first and its
//! central header is 46 + stem + 9 bytes long, so every checkpoint saved under a stem of 21
//! bytes (`deit_tiny_patch16_224`, `vit_small_patch16_224`, ...) hits this; renaming the
//! file afterwards does not help, the folder name is inside the archive.
//!
//! Such a file is read through a temporary copy without the redundant ZIP64 records: the
//! directory then abuts the end record and every offset stays as it was.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const CDFH: [u8; 4] = *b"PK\x01\x02";
const EOCD64: [u8; 4] = *b"PK\x06\x06";
const LOCATOR64: [u8; 4] = *b"PK\x06\x07";
const EOCD: [u8; 4] = *b"PK\x05\x06";
const EOCD_LEN: u64 = 22;
const LOCATOR64_LEN: u64 = 20;

/// A copy of `path` without the ZIP64 records between its central directory and end record,
/// when zip 9.8.1 would misplace the directory; `None` when the file can be read as it is
/// (every other zip and every legacy checkpoint). Open the copy instead of `path` and keep it
/// until the store has read the tensor list: pytorch-reader holds the file open from then on
/// and never reopens it by path, so dropping (deleting) the copy afterwards is safe.
pub(crate) fn repaired_copy(path: &Path) -> io::Result<Option<tempfile::TempPath>> {
    let mut file = File::open(path)?;
    let Some((cd_end, eocd_at)) = misread_layout(&mut file)? else {
        return Ok(None);
    };
    let mut out = tempfile::Builder::new().suffix(".pth").tempfile()?;
    file.seek(SeekFrom::Start(0))?;
    io::copy(&mut (&mut file).take(cd_end), out.as_file_mut())?;
    file.seek(SeekFrom::Start(eocd_at))?;
    io::copy(&mut file, out.as_file_mut())?;
    out.as_file_mut().flush()?;
    Ok(Some(out.into_temp_path()))
}

/// `(end of the central directory, position of the end record)` when the file has PyTorch's
/// layout (no leading bytes, end record whose fields are not saturated, ZIP64 records in
/// between) and a central header starts where zip 9.8.1 looks first.
fn misread_layout(file: &mut File) -> io::Result<Option<(u64, u64)>> {
    let len = file.metadata()?.len();
    // miniz writes no archive comment, so the end record is the last 22 bytes.
    if len < EOCD_LEN + LOCATOR64_LEN {
        return Ok(None);
    }
    let eocd_at = len - EOCD_LEN;
    let eocd = read_at(file, eocd_at, EOCD_LEN as usize)?;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let (files, cd_size, cd_offset) = (u16_at(&eocd, 10), u32_at(&eocd, 12), u32_at(&eocd, 16));
    if eocd[..4] != EOCD || files == u16::MAX || cd_size == u32::MAX || cd_offset == u32::MAX {
        // Saturated fields send zip down its ZIP64 path, which finds the directory.
        return Ok(None);
    }
    let cd_end = u64::from(cd_offset) + u64::from(cd_size);
    let guess = eocd_at.saturating_sub(u64::from(cd_size));
    let locator_at = eocd_at - LOCATOR64_LEN;
    if guess <= u64::from(cd_offset) || cd_end > locator_at {
        return Ok(None);
    }
    let locator = read_at(file, locator_at, LOCATOR64_LEN as usize)?;
    let eocd64_at = u64::from_le_bytes(locator[8..16].try_into().unwrap());
    let layout_is_pytorch = locator[..4] == LOCATOR64
        && eocd64_at == cd_end
        && read_at(file, cd_end, 4)? == EOCD64
        && read_at(file, cd_offset.into(), 4)? == CDFH;
    let misread = layout_is_pytorch && read_at(file, guess, 4)? == CDFH;
    Ok(misread.then_some((cd_end, eocd_at)))
}

fn read_at(file: &mut File, at: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tests/reference/gen_zip_stem_fixtures.py: one checkpoint per stem length 1..64; only
    /// the 21-character stem produces the layout zip 9.8.1 misreads.
    #[test]
    fn repairs_exactly_the_misread_stem() {
        // Read at run time (cargo sets it for test processes): a test binary reused from a
        // checkout elsewhere that shares the target directory would carry that path.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test");
        let dir = Path::new(&manifest).join("../tests/fixtures/loader/stems");
        let mut repaired = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pth")
                && repaired_copy(&path).unwrap().is_some()
            {
                repaired.push(path.file_stem().unwrap().len());
            }
        }
        assert_eq!(repaired, vec![21]);
    }
}
