//! glibc's malloc introspection functions, answered from temporal-slab's counters:
//! `malloc_usable_size`, `malloc_trim`, `malloc_stats`, `mallinfo2` and the older `mallinfo`.
//!
//! None of them allocates: they read [`temporal_slab::stats::totals`] (a walk over the thread
//! heaps and slab metadata into a stack buffer) and `malloc_stats` formats into a stack buffer
//! written with one `write(2)`. The figures are not atomic across fields (see the allocator's
//! `stats` module). `mallinfo2`'s fields map onto ours as follows (glibc's meaning in brackets):
//!
//! | field | [glibc] | temporal-slab |
//! |---|---|---|
//! | `arena` | [non-mmapped bytes] | touched bytes of all slabs (`estimated_slab_rss_bytes`) |
//! | `ordblks` | [free chunks] | slabs holding objects (`net_slabs`) |
//! | `smblks` | [fastbin chunks] | empty slabs kept warm for reuse (`warm_slabs`) |
//! | `hblks` | [mmapped regions] | live large objects |
//! | `hblkhd` | [mmapped bytes] | bytes of live large objects |
//! | `usmblks` | [unused] | mapped address space of the allocator (`mapped_bytes`) |
//! | `fsmblks` | [fastbin bytes] | warm slab bytes |
//! | `uordblks` | [bytes in use] | bytes of live small objects (object-size granularity) |
//! | `fordblks` | [free bytes] | `arena - uordblks`, free bytes in touched slab pages |
//! | `keepcost` | [trimmable top] | bytes `malloc_trim` would release now (warm slabs + large cache) |

use core::ffi::{c_int, c_void};
use core::fmt::Write;

use temporal_slab::size_class::SLAB_SIZE;
use temporal_slab::stats::{totals, Totals};

/// `malloc_usable_size(3)`: the bytes usable at `p` (at least what was requested); 0 for NULL.
///
/// # Safety
/// `p` is NULL or a live block returned by this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: the caller guarantees p is a live block of ours.
    unsafe { temporal_slab::usable_size(p.cast()) }
}

/// `malloc_trim(3)`: gives back to the OS now everything not in use (warm empty slabs, the
/// large-object cache, what exited threads hold); `pad` is ignored. Returns 1 if the allocator's
/// resident estimate went down, else 0.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    let before = totals().resident_bytes;
    temporal_slab::trim();
    c_int::from(totals().resident_bytes < before)
}

/// `struct mallinfo2` (glibc 2.33+), every field `size_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Mallinfo2 {
    /// See the module table.
    pub arena: usize,
    /// See the module table.
    pub ordblks: usize,
    /// See the module table.
    pub smblks: usize,
    /// See the module table.
    pub hblks: usize,
    /// See the module table.
    pub hblkhd: usize,
    /// See the module table.
    pub usmblks: usize,
    /// See the module table.
    pub fsmblks: usize,
    /// See the module table.
    pub uordblks: usize,
    /// See the module table.
    pub fordblks: usize,
    /// See the module table.
    pub keepcost: usize,
}

/// `struct mallinfo` (obsolete): the same fields as `int`, saturated at `INT_MAX`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Mallinfo {
    /// See the module table.
    pub arena: c_int,
    /// See the module table.
    pub ordblks: c_int,
    /// See the module table.
    pub smblks: c_int,
    /// See the module table.
    pub hblks: c_int,
    /// See the module table.
    pub hblkhd: c_int,
    /// See the module table.
    pub usmblks: c_int,
    /// See the module table.
    pub fsmblks: c_int,
    /// See the module table.
    pub uordblks: c_int,
    /// See the module table.
    pub fordblks: c_int,
    /// See the module table.
    pub keepcost: c_int,
}

fn info_of(t: &Totals) -> Mallinfo2 {
    let z = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let warm_bytes = t.warm_slabs.saturating_mul(SLAB_SIZE as u64);
    Mallinfo2 {
        arena: z(t.slab_resident_bytes),
        ordblks: z(t.slabs_in_use),
        smblks: z(t.warm_slabs),
        hblks: z(t.large_objects),
        hblkhd: z(t.large_bytes),
        usmblks: z(t.mapped_bytes),
        fsmblks: z(warm_bytes),
        uordblks: z(t.small_live_bytes),
        fordblks: z(t.slab_resident_bytes.saturating_sub(t.small_live_bytes)),
        keepcost: z(warm_bytes.saturating_add(t.large_cache_bytes)),
    }
}

/// `mallinfo2(3)`: the allocator's figures in glibc's structure (see the module table).
#[no_mangle]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    info_of(&totals())
}

/// `mallinfo(3)` (obsolete): [`mallinfo2`] with every field saturated to `int`.
#[no_mangle]
pub extern "C" fn mallinfo() -> Mallinfo {
    let m = info_of(&totals());
    let i = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
    Mallinfo {
        arena: i(m.arena),
        ordblks: i(m.ordblks),
        smblks: i(m.smblks),
        hblks: i(m.hblks),
        hblkhd: i(m.hblkhd),
        usmblks: i(m.usmblks),
        fsmblks: i(m.fsmblks),
        uordblks: i(m.uordblks),
        fordblks: i(m.fordblks),
        keepcost: i(m.keepcost),
    }
}

/// A `fmt::Write` into a fixed stack buffer; output past its end is dropped.
struct StackBuf {
    buf: [u8; 1024],
    len: usize,
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len().saturating_sub(self.len);
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), s.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        Ok(())
    }
}

/// `malloc_stats(3)`: prints the allocator's figures to stderr (one `write`, no allocation).
/// The `system bytes` / `in use bytes` lines keep glibc's wording for people who grep them.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    let t = totals();
    let mut out = StackBuf { buf: [0; 1024], len: 0 };
    let in_use = t.small_live_bytes.saturating_add(t.large_bytes);
    let _ = write!(
        out,
        "temporal-slab malloc_stats (pid {pid}):\n\
         system bytes     = {mapped:>12}   (mapped)\n\
         resident bytes   = {resident:>12}   (estimate)\n\
         in use bytes     = {in_use:>12}\n\
         small objects    = {objects:>12}   ({bytes} bytes; {allocs} allocations, {frees} frees)\n\
         slabs in use     = {slabs:>12}   ({slab_res} bytes touched; {warm} empty kept warm)\n\
         large objects    = {large:>12}   ({large_bytes} bytes; {cache} bytes cached)\n\
         details: stats_dump --pid {pid}\n",
        pid = std::process::id(),
        mapped = t.mapped_bytes,
        resident = t.resident_bytes,
        objects = t.small_live_objects,
        bytes = t.small_live_bytes,
        allocs = t.small_allocations,
        frees = t.small_frees,
        slabs = t.slabs_in_use,
        slab_res = t.slab_resident_bytes,
        warm = t.warm_slabs,
        large = t.large_objects,
        large_bytes = t.large_bytes,
        cache = t.large_cache_bytes,
    );
    let bytes = out.buf.get(..out.len).unwrap_or(&[]);
    // SAFETY: writing an initialised stack buffer to fd 2; a short or failed write is ignored,
    // as glibc's malloc_stats does.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}
