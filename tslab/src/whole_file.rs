//! Writing an output file whole: through a temporary file in the same directory, renamed into
//! place, so that a failure (a full disk, a directory in the way) leaves no half-written file.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Writes `data` to `path` whole, or fails with one line naming the cause and the fix.
pub fn write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).context("the output needs a file name")?;
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        let cause = match e.raw_os_error() {
            Some(libc::EISDIR) => {
                let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("svg");
                format!("it is a directory: give a file path ending in .{ext}")
            }
            _ => crate::export::cause_and_fix(&e, dir),
        };
        bail!("cannot write {}: {cause}; no file was written", path.display());
    }
    Ok(())
}
