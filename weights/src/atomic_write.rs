//! Atomic file replacement: readers see either the old file or the complete new one, never a
//! half-written file, even if the writer fails, panics or the process is killed.
//!
//! `tempfile` creates the scratch file in the target's directory (so the rename never crosses a
//! file system) and removes it on any error; we add the `fsync` of the data before the rename
//! and of the directory after it, so the new file survives a power cut.

use std::fs::File;
use std::io;
use std::path::Path;

/// Writes `path` atomically: `write` fills a temporary file next to `path`, which is then
/// synced and renamed over `path`. On any error the temporary file is removed and `path` is
/// left as it was.
///
/// ```
/// use gaze_weights::atomic_write::write_atomically;
/// use std::io::Write;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("hello.txt");
/// write_atomically(&path, |f| f.write_all(b"hello")).unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// ```
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot write to {}: the path has no file name",
                path.display()
            ),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".gaze-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    write(tmp.as_file_mut())?;
    // Temporary files are private (0600); the result gets the permissions of the file it
    // replaces, or the usual 0644 of a new file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable (best effort: not every platform can open a directory).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
