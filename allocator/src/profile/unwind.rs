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
use core::mem::MaybeUninit;

type Ctx = c_void;
const URC_NO_REASON: i32 = 0;
const URC_NORMAL_STOP: i32 = 4;

extern "C" {
    fn _Unwind_Backtrace(trace: extern "C" fn(*mut Ctx, *mut c_void) -> i32, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut Ctx) -> usize;
}

struct Frames<'a> {
    out: &'a mut [MaybeUninit<u64>],
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
    frames.out[frames.n].write(ip);
    frames.n += 1;
    if frames.n == frames.out.len() {
        URC_NORMAL_STOP
    } else {
        URC_NO_REASON
    }
}

/// Writes the return addresses of the calling stack into `out`, innermost first, leaving out
/// `skip` innermost frames (and this function's own); returns those written. `out` starts
/// uninitialised: zeroing a buffer of [`super::table::DEPTH`] words on the stack, below the
/// program's frames, wrote 4 lines that a sample otherwise does not touch.
#[inline(never)]
pub(crate) fn capture<'a>(out: &'a mut [MaybeUninit<u64>], skip: usize, stack: &Stack) -> &'a [u64] {
    #[cfg(target_arch = "x86_64")]
    let walked = if out.is_empty() { Some(0) } else { super::walk::walk(out, skip, stack) };
    #[cfg(not(target_arch = "x86_64"))]
    let walked = {
        let _ = stack;
        None
    };
    let n = match walked {
        Some(n) => n,
        None => libgcc(out, skip),
    };
    // SAFETY: both walks wrote the first n entries (n <= out.len()), and MaybeUninit<u64> has
    // u64's layout.
    unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<u64>(), n) }
}

/// The capturing thread's stack state for the walk (`walk::Stack`; nothing elsewhere).
#[cfg(target_arch = "x86_64")]
pub(crate) use super::walk::Stack;
#[cfg(not(target_arch = "x86_64"))]
#[derive(Default)]
pub(crate) struct Stack;

#[cfg(not(target_arch = "x86_64"))]
impl Stack {
    /// Nothing to forget where libgcc walks.
    pub(crate) fn new_thread(&self) {}
}

/// [`capture`] by libgcc's `_Unwind_Backtrace`; inlined, so the first frame left out is the
/// caller's.
#[inline(always)]
pub(crate) fn libgcc(out: &mut [MaybeUninit<u64>], skip: usize) -> usize {
    if out.is_empty() {
        return 0;
    }
    let mut frames = Frames { out, n: 0, skip: skip + 1 };
    // SAFETY: `on_frame` matches the unwinder's callback signature and only writes through the
    // `Frames` pointer we pass, which outlives the call.
    unsafe { _Unwind_Backtrace(on_frame, core::ptr::from_mut(&mut frames).cast()) };
    frames.n
}

#[cfg(test)]
mod tests {
    use core::mem::MaybeUninit;

    #[inline(never)]
    fn two_deep(out: &mut [MaybeUninit<u64>]) -> Vec<u64> {
        super::capture(out, 0, &super::Stack::default()).to_vec()
    }

    #[test]
    fn captures_distinct_nonzero_return_addresses() {
        let mut out = [MaybeUninit::uninit(); 16];
        let got = two_deep(&mut out);
        assert!(got.len() >= 3, "only {} frames", got.len());
        assert!(got.iter().all(|&ip| ip != 0));
        assert_ne!(got[0], got[1]);
        let mut short = [MaybeUninit::uninit(); 2];
        assert_eq!(two_deep(&mut short).len(), 2, "stops when the buffer is full");
        assert!(two_deep(&mut []).is_empty());
    }
}
