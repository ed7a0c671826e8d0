//! Readings of this process and of the machine from `/proc`: RSS (current and peak), minor page
//! faults, the page size, the load average and the CPU model.
//!
//! RSS is process-wide, which is why the runners measure each allocator in its own child process.
//! Every reader returns an error string naming the file and what was wrong with it.

/// Reads a whole `/proc` file.
///
/// # Errors
/// The path and the I/O error.
pub fn read_proc(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}

/// Resident set size now: field 2 of `/proc/self/statm` times the page size, in bytes.
///
/// # Errors
/// When `/proc/self/statm` or `/proc/self/auxv` cannot be read or parsed.
pub fn rss_bytes() -> Result<u64, String> {
    let s = read_proc("/proc/self/statm")?;
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/self/statm: {s:?}"))?;
    Ok(pages * page_size()?)
}

/// Peak resident set size of this process so far (`VmHWM` of `/proc/self/status`), in bytes.
///
/// # Errors
/// When `/proc/self/status` cannot be read or has no `VmHWM` line.
pub fn peak_rss_bytes() -> Result<u64, String> {
    let s = read_proc("/proc/self/status")?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_string())
}

/// Minor page faults of this process so far (`/proc/self/stat` field 10).
///
/// # Errors
/// When `/proc/self/stat` cannot be read or parsed.
pub fn minor_faults() -> Result<u64, String> {
    let s = read_proc("/proc/self/stat")?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis start at 3.
    s.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(10 - 3))
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/self/stat: {s:?}"))
}

/// The page size, from the `AT_PAGESZ` entry of `/proc/self/auxv` (native-endian word pairs).
///
/// # Errors
/// When `/proc/self/auxv` cannot be read or has no `AT_PAGESZ` entry.
pub fn page_size() -> Result<u64, String> {
    const AT_PAGESZ: u64 = 6;
    const W: usize = std::mem::size_of::<usize>();
    let auxv = std::fs::read("/proc/self/auxv").map_err(|e| format!("reading /proc/self/auxv: {e}"))?;
    let word = |c: &[u8]| {
        let mut b = [0u8; W];
        b.copy_from_slice(c);
        usize::from_ne_bytes(b) as u64
    };
    auxv.chunks_exact(2 * W)
        .map(|pair| (word(&pair[..W]), word(&pair[W..])))
        .find(|&(k, _)| k == AT_PAGESZ)
        .map(|(_, v)| v)
        .ok_or_else(|| "no AT_PAGESZ in /proc/self/auxv".to_string())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), as written there.
pub fn load_average() -> Option<String> {
    let s = read_proc("/proc/loadavg").ok()?;
    let f: Vec<&str> = s.split_whitespace().take(3).collect();
    (f.len() == 3).then(|| f.join(" "))
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model() -> Option<String> {
    let s = read_proc("/proc/cpuinfo").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|v| v.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The kernel release (`/proc/sys/kernel/osrelease`).
pub fn kernel_release() -> Option<String> {
    read_proc("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_plausible() {
        let rss = rss_bytes().unwrap();
        assert!(rss > 0);
        assert!(peak_rss_bytes().unwrap() >= rss / 2);
        assert!(page_size().unwrap().is_power_of_two());
        minor_faults().unwrap();
    }
}
