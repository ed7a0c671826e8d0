//! `tslab export`: a snapshot in another format. One format today: Prometheus text (0.0.4, see
//! `prom/`), on standard output or as a node_exporter textfile.
//!
//! A textfile is replaced, never edited in place: the text goes to a temporary file in the same
//! directory (`.NAME.PID.NANOS.tmp`: a leading dot and no `.prom` ending, so node_exporter's
//! `*.prom` glob never reads it), is written in full, flushed to disk, made mode 0644 and
//! renamed over the target (atomic within one file system). On any failure the temporary file
//! is removed and the target is left as it was, so a scrape sees the old file or the new one,
//! never a part of one and never a stray.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};

use crate::input::InputArgs;
use crate::prom;

/// Options of `tslab export`.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:
    tslab export prometheus --pid 1234
    tslab export prometheus --pid 1234 --textfile /var/lib/prometheus/node-exporter/tslab.prom
    tslab export prometheus snapshot.json
    stats_dump --pid 1234 --no-text | tslab export prometheus -")]
pub struct ExportArgs {
    /// The output format.
    #[command(subcommand)]
    pub format: Format,
}

/// The output formats.
#[derive(clap::Subcommand, Debug)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4, on stdout or atomically into a textfile.
    #[command(after_help = "EXAMPLES:
    tslab export prometheus --pid 1234
    tslab export prometheus --pid 1234 --textfile /var/lib/prometheus/node-exporter/tslab.prom
    tslab export prometheus snapshot.json | promtool check metrics
    stats_dump --pid 1234 --no-text | tslab export prometheus -

TEXTFILE:
    For node_exporter's textfile collector (--collector.textfile.directory=DIR): the file must
    be in DIR and end in .prom. It is replaced atomically (temporary file in the same directory,
    fsync, mode 0644, rename), so a scrape never sees a partial file; on failure the previous
    file is left as it was. Run it from a timer (e.g. every 15 s), one process per file.

METRICS:
    Every family, its labels and the JSON key it comes from: docs/METRICS.md.")]
    Prometheus(PrometheusArgs),
}

/// Options of `tslab export prometheus`.
#[derive(clap::Args, Debug)]
pub struct PrometheusArgs {
    /// Where the snapshot comes from.
    #[command(flatten)]
    pub input: InputArgs,
    /// Write the text to this file atomically (for node_exporter's textfile collector) instead
    /// of standard output. The name must end in .prom.
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
}

/// Runs `tslab export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    match &args.format {
        Format::Prometheus(p) => {
            let text = prom::render(&p.input.load()?);
            match &p.textfile {
                Some(path) => write_textfile(path, text.as_bytes()),
                None => {
                    let mut out = io::stdout().lock();
                    out.write_all(text.as_bytes()).context("writing to standard output")?;
                    out.flush().context("writing to standard output")
                }
            }
        }
    }
}

/// Temporary files of an earlier run older than this were left by a run that was killed; they
/// are removed (a run takes milliseconds).
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// Replaces `path` with `text` atomically (see the module docs).
pub fn write_textfile(path: &Path, text: &[u8]) -> Result<()> {
    let shown = path.display();
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        bail!("--textfile {shown}: ends in /, so it names a directory: give a file path ending in .prom");
    }
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        bail!(
            "--textfile {shown}: give a file path ending in .prom (e.g. /var/lib/prometheus/node-exporter/tslab.prom)"
        );
    };
    if !name.ends_with(".prom") {
        bail!(
            "--textfile {shown}: the name must end in .prom, or node_exporter's textfile collector never reads it \
             (e.g. {})",
            path.with_extension("prom").display()
        );
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let existed = path.symlink_metadata().is_ok();
    let outcome = if existed { "the previous file is left as it was" } else { "no file was written" };
    if path.is_dir() {
        bail!("cannot write textfile {shown}: it is a directory: give a file path ending in .prom");
    }
    let fail = |e: io::Error| anyhow!("cannot write textfile {shown}: {}; {outcome}", cause_and_fix(&e, dir));

    if let Some(limit) = file_size_limit() {
        if text.len() as u64 > limit {
            // Writing past the limit would raise SIGXFSZ, which kills this process midway and
            // leaves its temporary file behind: refuse before creating it.
            return Err(fail(io::Error::from_raw_os_error(libc::EFBIG)));
        }
    }
    remove_stale_temps(dir, name);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut temp = TempFile::create(dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()))).map_err(fail)?;
    temp.file.write_all(text).map_err(fail)?;
    temp.file.sync_all().map_err(fail)?;
    // Explicitly, whatever the umask: node_exporter may run as another user.
    temp.file.set_permissions(Permissions::from_mode(0o644)).map_err(fail)?;
    fs::rename(&temp.path, path).map_err(fail)?;
    temp.renamed = true;
    // Make the rename itself durable. The new file is already in place, so a failure here
    // changes nothing a reader sees.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// This process's soft file size limit (`ulimit -f`) in bytes, from `/proc/self/limits`; `None`
/// when unlimited or unknown.
fn file_size_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max file size"))?;
    line["Max file size".len()..].split_whitespace().next()?.parse().ok()
}

/// One line: what went wrong, then what to do about it.
pub(crate) fn cause_and_fix(e: &io::Error, dir: &Path) -> String {
    let dir = dir.display();
    match e.raw_os_error() {
        Some(libc::ENOENT) => format!("directory {dir} does not exist: create it (mkdir -p {dir}) or fix the path"),
        Some(libc::ENOTDIR) => format!("{dir} is not a directory: give a path inside an existing directory"),
        Some(libc::EACCES | libc::EPERM) => {
            format!("permission denied in {dir}: run as a user that may write there, or make the directory writable")
        }
        Some(libc::EROFS) => format!("{dir} is on a read-only file system: choose a writable directory"),
        Some(libc::ENOSPC) => format!("no space left on device: free space in {dir}"),
        Some(libc::EDQUOT) => format!("disk quota exceeded: free space or raise the quota for {dir}"),
        Some(libc::EFBIG) => {
            "file too large for the file size limit of this process (ulimit -f): raise the limit".to_string()
        }
        Some(libc::EISDIR) => "the path is a directory: give a file path ending in .prom".to_string(),
        _ => format!("{e}"),
    }
}

/// Removes temporary files of this textfile that a killed run left behind.
fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else { continue };
        if !(n.starts_with(&prefix) && n.ends_with(".tmp")) {
            continue;
        }
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if old.is_some_and(|age| age > STALE_TEMP_AGE) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A temporary file that removes itself unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    fn create(path: PathBuf) -> io::Result<TempFile> {
        let file = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path)?;
        Ok(TempFile { path, file, renamed: false })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}
