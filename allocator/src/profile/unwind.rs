//! Capturing the caller's stack: the return addresses. On x86_64 by cached rules (`walk.rs`),
//! falling back to libgcc's unwinder for a stack they cannot walk; elsewhere by libgcc's.
//!
//! Written by hand rather than taken from the `backtrace` crate: the libgcc path needs only
//! `_Unwind_Backtrace` and `_Unwind_GetIP` (which Rust's standard library already links, through
//! libgcc_s), while that crate also brings a DWARF symbolizer (addr2line, gimli, object) into
//! every program that installs the allocator. Symbols are resolved out of process, by
//! `stats_dump --profile`.
//!
//! The unwinder reads `.eh_frame`, which Rust and C compilers emit by default on Linux; it does not
//! allocate through malloc on glibc 2.35+ (`_dl_find_object`), and where an older libgcc does on
//! its first call, the sampler's re-entry guard serves that allocation unsampled.

use core::ffi::c_void;

type Ctx = c_void;
const URC_NO_REASON: i32 = 0;
const URC_NORMAL_STOP: i32 = 4;

extern "C" {
    fn _Unwind_Backtrace(trace: extern "C" fn(*mut Ctx, *mut c_void) -> i32, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut Ctx) -> usize;
}

struct Frames<'a> {
    out: &'a mut [u64],
    n: usize,
    skip: usize,
}

extern "C" fn on_frame(ctx: *mut Ctx, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Frames` that `capture` passed, alive for the whole walk; the
    // unwinder calls us on the capturing thread only.
    let frames = unsafe { &mut *arg.cast::<Frames<'_>>() };
    // SAFETY: `ctx` is the unwinder's context for this frame, valid during the callback.
    let ip = unsafe { _Unwind_GetIP(ctx) } as u64;
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    if frames.skip > 0 {
        frames.skip -= 1;
        return URC_NO_REASON;
    }
    frames.out[frames.n] = ip;
    frames.n += 1;
    if frames.n == frames.out.len() {
        URC_NORMAL_STOP
    } else {
        URC_NO_REASON
    }
}

/// Writes the return addresses of the calling stack into `out`, innermost first, leaving out
/// `skip` innermost frames (and this function's own); returns how many were written.
#[inline(never)]
pub(crate) fn capture(out: &mut [u64], skip: usize, stack: &Stack) -> usize {
    if out.is_empty() {
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(n) = super::walk::walk(out, skip, stack) {
        return n;
    }
    let _ = stack;
    libgcc(out, skip)
}

/// The capturing thread's stack state for the walk (`walk::Stack`; nothing elsewhere).
#[cfg(target_arch = "x86_64")]
pub(crate) use super::walk::Stack;
#[cfg(not(target_arch = "x86_64"))]
#[derive(Default)]
pub(crate) struct Stack;

/// [`capture`] by libgcc's `_Unwind_Backtrace`; inlined, so the first frame left out is the
/// caller's.
#[inline(always)]
pub(crate) fn libgcc(out: &mut [u64], skip: usize) -> usize {
    let mut frames = Frames { out, n: 0, skip: skip + 1 };
    // SAFETY: `on_frame` matches the unwinder's callback signature and only writes through the
    // `Frames` pointer we pass, which outlives the call.
    unsafe { _Unwind_Backtrace(on_frame, core::ptr::from_mut(&mut frames).cast()) };
    frames.n
}

#[cfg(test)]
mod tests {
    #[inline(never)]
    fn two_deep(out: &mut [u64]) -> usize {
        super::capture(out, 0, &super::Stack::default())
    }

    #[test]
    fn captures_distinct_nonzero_return_addresses() {
        let mut out = [0u64; 16];
        let n = two_deep(&mut out);
        assert!(n >= 3, "only {n} frames");
        assert!(out[..n].iter().all(|&ip| ip != 0));
        assert_ne!(out[0], out[1]);
        let mut short = [0u64; 2];
        assert_eq!(two_deep(&mut short), 2, "stops when the buffer is full");
    }
}
