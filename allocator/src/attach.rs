//! Reading another process's published counters (see `publish.rs`): find its region through
//! `/proc/PID/fd`, copy a consistent snapshot under the seqlock with `pread` (never a mapping:
//! see `read_region`).
//!
//! Every failure is an [`AttachError`] whose message names the cause and the fix in one line.

use core::sync::atomic::{fence, Ordering};
use std::fmt;
use std::fs::File;
use std::io::ErrorKind;

use crate::publish::{
    BODY_WORDS, HEADER_WORDS, H_BODY_BYTES, H_CLASSES, H_EPOCHS, H_HEADER_BYTES, H_LABELS, H_MAGIC, H_PID, H_PUBLISHES,
    H_SEQ, H_VERSION, LAYOUT_VERSION, MAGIC, MEMFD_NAME,
};
use crate::stats::{RawSnapshot, Snapshot};

/// Why a process's counters could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// No process has this pid.
    NoSuchProcess(u32),
    /// The caller may not inspect the process.
    PermissionDenied(u32),
    /// The process publishes no temporal-slab region.
    NotPublishing(u32),
    /// The region's layout is one this build does not understand.
    UnknownLayout {
        /// The target's pid.
        pid: u32,
        /// The layout version found.
        found: u64,
    },
    /// The process went away while being read.
    Exited(u32),
    /// The process publishes statistics but no heap profile (sampling off, or no sample yet).
    NoProfile(u32),
    /// The region kept changing for too long to copy a consistent snapshot.
    Busy(u32),
    /// The region was cut short while being read (the target truncated it).
    Truncated(u32),
    /// The snapshot breaks an invariant no real process breaks (`plausible.rs`).
    Implausible {
        /// The target's pid.
        pid: u32,
        /// The invariant broken.
        why: String,
    },
    /// Another I/O error.
    Io {
        /// The target's pid.
        pid: u32,
        /// What failed.
        what: String,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::NoSuchProcess(p) => {
                write!(f, "no process with pid {p}: check the pid (is the process still running?)")
            }
            AttachError::PermissionDenied(p) => write!(
                f,
                "permission denied inspecting pid {p}: run as the same user as the target, or as root \
                 (the kernel's ptrace access check guards /proc/{p}/fd)"
            ),
            AttachError::NotPublishing(p) => write!(
                f,
                "pid {p} publishes no temporal-slab statistics: it does not use TemporalSlab as its \
                 global allocator, has not allocated yet, runs with TSLAB_PUBLISH=0 or TSLAB_RECLAIM=0, or \
                 its file size limit (ulimit -f) is below the 12 KiB region"
            ),
            AttachError::UnknownLayout { pid, found } => write!(
                f,
                "pid {pid} publishes statistics layout version {found}, this build reads version \
                 {LAYOUT_VERSION}: use the stats_dump built with the target's temporal-slab version"
            ),
            AttachError::Exited(p) => write!(f, "pid {p} exited while being read: run again while it is alive"),
            AttachError::NoProfile(p) => write!(
                f,
                "pid {p} has no heap profile yet: it runs with TSLAB_PROFILE_SAMPLE=0 (sampling off) or \
                 has not allocated one sampling interval (2 MiB on average by default) since it started; \
                 run it with sampling on and try again once it has allocated"
            ),
            AttachError::Busy(p) => write!(f, "pid {p}'s statistics changed during every read attempt: try again"),
            AttachError::Truncated(p) => write!(
                f,
                "pid {p}'s statistics region was cut short while being read (the target truncated \
                 it): the target is not a well-behaved temporal-slab process; check what runs as pid {p}"
            ),
            AttachError::Implausible { pid, why } => write!(
                f,
                "pid {pid}'s statistics are not those of a temporal-slab process ({why}): the region was \
                 forged or corrupted; check what runs as pid {pid}"
            ),
            AttachError::Io { pid, what } => write!(f, "reading statistics of pid {pid}: {what}"),
        }
    }
}

impl std::error::Error for AttachError {}

/// Reads the latest snapshot that process `pid` published (at most one reclaimer tick, 100 ms,
/// old). Needs permission to inspect the process (same uid, or root).
pub fn snapshot_of(pid: u32) -> Result<Snapshot, AttachError> {
    first_region(pid, MEMFD_NAME, read_region, || AttachError::NotPublishing(pid))
}

/// What `read` makes of the first of process `pid`'s memfds named `name` that it recognises
/// (`Ok(None)`: not ours, try the next). With none: an unknown layout if one was seen, the
/// process gone, else `none()`.
pub(crate) fn first_region<T>(
    pid: u32,
    name: &str,
    read: impl Fn(&File, u32) -> Result<Option<T>, AttachError>,
    none: impl FnOnce() -> AttachError,
) -> Result<T, AttachError> {
    let mut unknown: Option<u64> = None;
    for file in memfds(pid, name)? {
        match read(&file, pid) {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => {}
            Err(AttachError::UnknownLayout { found, .. }) => unknown = Some(found),
            Err(e) => return Err(e),
        }
    }
    match unknown {
        Some(found) => Err(AttachError::UnknownLayout { pid, found }),
        None if gone(pid) => Err(AttachError::Exited(pid)),
        None => Err(none()),
    }
}

/// The open memfds named `name` of process `pid` (possibly inherited ones of its parent).
pub(crate) fn memfds(pid: u32, name: &str) -> Result<Vec<File>, AttachError> {
    let proc_dir = format!("/proc/{pid}");
    match std::fs::metadata(&proc_dir) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(AttachError::NoSuchProcess(pid)),
        Err(e) => return Err(AttachError::Io { pid, what: format!("{proc_dir}: {e}") }),
    }
    let fd_dir = format!("{proc_dir}/fd");
    let entries = match std::fs::read_dir(&fd_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(AttachError::PermissionDenied(pid)),
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(AttachError::Exited(pid)),
        Err(e) => return Err(AttachError::Io { pid, what: format!("{fd_dir}: {e}") }),
    };
    let wanted = format!("/memfd:{name}");
    let mut files = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        // "/memfd:NAME (deleted)": the name must end there (the stats name is a prefix of
        // others).
        let target = target.to_string_lossy();
        if target != wanted && !target.starts_with(&format!("{wanted} ")) {
            continue;
        }
        match File::open(entry.path()) {
            Ok(f) => files.push(f),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(AttachError::PermissionDenied(pid)),
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(AttachError::Exited(pid)),
            Err(e) => return Err(AttachError::Io { pid, what: format!("{}: {e}", entry.path().display()) }),
        }
    }
    Ok(files)
}

/// Whether process `pid` has exited (gone, or a zombie not yet reaped).
pub(crate) fn gone(pid: u32) -> bool {
    let proc_dir = format!("/proc/{pid}");
    // Field 3 of /proc/PID/stat, after the parenthesised command name: Z = exited, not reaped.
    let zombie = std::fs::read_to_string(format!("{proc_dir}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')));
    zombie || std::fs::metadata(&proc_dir).is_err()
}

/// Reads one candidate region. `Ok(None)`: not a region of `pid` (an inherited descriptor of a
/// parent, or not ours at all).
///
/// The region is copied with `pread` into local memory, never mapped: the target owns the memfd
/// and may truncate it at any moment, and a read through a mapping of a truncated file raises
/// SIGBUS in the reader. `pread` of a truncated file just returns fewer bytes, which is an error
/// here like any other malformed region.
fn read_region(file: &File, pid: u32) -> Result<Option<Snapshot>, AttachError> {
    let mut header = [0u64; HEADER_WORDS];
    if !read_words(file, 0, &mut header).map_err(|e| io_error(pid, &e))? {
        return Ok(None);
    }
    let at = |i: usize| header[i];
    if at(H_MAGIC) != MAGIC {
        return Ok(None);
    }
    let version = at(H_VERSION);
    let layout_ok = version == LAYOUT_VERSION
        && at(H_HEADER_BYTES) == (HEADER_WORDS * 8) as u64
        && at(H_BODY_BYTES) == (BODY_WORDS * 8) as u64
        && at(H_CLASSES) == crate::size_class::NUM_CLASSES as u64
        && at(H_EPOCHS) == crate::epoch::EPOCH_SLOTS as u64
        && at(H_LABELS) == crate::labels::MAX_LABELS as u64;
    if !layout_ok {
        return Err(AttachError::UnknownLayout { pid, found: version });
    }
    if at(H_PID) != pid as u64 {
        return Ok(None);
    }
    let mut raw = RawSnapshot::zeroed();
    for attempt in 0..10_000 {
        if attempt % 100 == 99 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut head = [0u64; HEADER_WORDS];
        if !read_words(file, 0, &mut head).map_err(|e| io_error(pid, &e))? {
            return Err(AttachError::Truncated(pid));
        }
        let s1 = head[H_SEQ];
        if s1 % 2 == 1 || head[H_PUBLISHES] == 0 {
            std::hint::spin_loop();
            continue;
        }
        // SAFETY: RawSnapshot is repr(C) of u64s, exactly BODY_WORDS words; every bit pattern is
        // valid.
        let body: &mut [u64; BODY_WORDS] = unsafe { &mut *core::ptr::from_mut(&mut raw).cast::<[u64; BODY_WORDS]>() };
        if !read_words(file, HEADER_WORDS, body).map_err(|e| io_error(pid, &e))? {
            return Err(AttachError::Truncated(pid));
        }
        // The body copy above happens before the second sequence read (separate system calls,
        // in this order); the fence keeps the compiler and CPU from hoisting our side.
        fence(Ordering::SeqCst);
        let mut seq = [0u64; 1];
        if !read_words(file, H_SEQ, &mut seq).map_err(|e| io_error(pid, &e))? {
            return Err(AttachError::Truncated(pid));
        }
        if s1 == seq[0] {
            let snap = Snapshot::from_raw(&raw);
            crate::plausible::check(&snap, Some(pid)).map_err(|why| AttachError::Implausible { pid, why })?;
            return Ok(Some(snap));
        }
    }
    Err(AttachError::Busy(pid))
}

/// Fills `out` with the little-endian words at word offset `word` of `file`. `Ok(false)`: the
/// file ends first (too short, or truncated meanwhile).
pub(crate) fn read_words(file: &File, word: usize, out: &mut [u64]) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; out.len() * 8];
    let mut done = 0;
    while done < bytes.len() {
        match file.read_at(&mut bytes[done..], (word * 8 + done) as u64) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    Ok(true)
}

fn io_error(pid: u32, e: &std::io::Error) -> AttachError {
    AttachError::Io { pid, what: format!("reading the region: {e}") }
}
