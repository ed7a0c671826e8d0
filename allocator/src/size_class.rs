//! Size classes: pure tables and the O(1) map from a request to its class.
//!
//! Invariants (checked exhaustively by the tests below):
//! - classes run from 8 B to [`MAX_SMALL_SIZE`] (32 KiB), strictly increasing;
//! - every class size is a multiple of 8, so every object is at least 8-aligned;
//! - from 32 B to 4 KiB, neighbouring classes are at most 25% apart (four classes per
//!   doubling); below 32 B the 8-byte granularity is the spacing;
//! - above 4 KiB, where a slab holds 2 to 12 objects, each class is the largest multiple of 64
//!   that fits its count of objects into a slab (64 KiB / n, for the counts the four-per-doubling
//!   classes had), so no slab has a tail of a page or more and classes that held as many objects
//!   a slab are one class: 9 classes where there were 12, and a request never gets fewer objects
//!   a slab than before. (With 24, 28 and 32 KiB apart, each held 2 objects a slab, and a slab
//!   of 24 KiB objects left 16 KiB resident for nothing once a previous class had touched it.)
//! - [`class_for`] returns the smallest class that holds `size` and whose objects are all aligned
//!   to `align` (objects sit at `k * object_size` from a slab start that is [`SLAB_SIZE`]-aligned).

/// Bytes in one slab. Slabs are carved from segments and are `SLAB_SIZE`-aligned.
pub const SLAB_SIZE: usize = 64 * 1024;
/// log2 of [`SLAB_SIZE`].
pub const SLAB_SHIFT: u32 = 16;
/// log2 of [`SEGMENT_SIZE`].
pub(crate) const SEGMENT_SHIFT: u32 = 22;
/// Bytes in one segment (a mapping of slabs with their metadata header), and the alignment of
/// every header.
pub(crate) const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
/// Slab slots per segment; slot 0 is the header itself.
pub(crate) const SLABS_PER_SEGMENT: usize = SEGMENT_SIZE / SLAB_SIZE;
/// The largest request served from slabs; anything larger takes the large-object path.
pub const MAX_SMALL_SIZE: usize = 32 * 1024;
/// Number of size classes.
pub const NUM_CLASSES: usize = 41;
/// The most cells a slab holds: its free-cell bitmap has this many bits (`slab.rs`). Only the
/// 8-byte class is capped (7,232 of its 8,192 cells), so that every slab's bitmap fits in the
/// segment header's 64 KiB.
pub const MAX_CELLS: usize = 7232;

/// A size-class index, `0..NUM_CLASSES`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeClass(pub(crate) u8);

impl SizeClass {
    /// The class index as a `usize`, for table lookups.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Bytes in each object of this class.
    #[inline]
    pub fn object_size(self) -> usize {
        // `pick`: no bounds check, so no panic branch (and no stack frame for it) on the
        // allocation path, where the class comes from a slab's class byte.
        *self.pick(&CLASS_SIZES) as usize
    }

    /// How many objects of this class one slab holds (at most [`MAX_CELLS`]).
    #[inline]
    pub const fn objects_per_slab(self) -> usize {
        OBJECTS_PER_SLAB[self.0 as usize] as usize
    }

    /// The cell index of byte offset `off` (a multiple of the object size, below
    /// [`SLAB_SIZE`]) in a slab of this class: a multiply and a shift instead of a division.
    #[inline(always)]
    pub(crate) fn cell_of(self, off: u32) -> u32 {
        ((u64::from(off) * u64::from(*self.pick(&CELL_RECIPROCALS))) >> 32) as u32
    }

    /// The entry of `table` for this class, without a bounds check (and so without a panic
    /// branch on the allocation path).
    #[inline(always)]
    pub(crate) fn pick<T>(self, table: &[T; NUM_CLASSES]) -> &T {
        debug_assert!(self.index() < NUM_CLASSES);
        // SAFETY: a SizeClass is only made by `class_of_size` / `class_for` (whose results are
        // below NUM_CLASSES, tested exhaustively), by `all()`, or from a slab's class byte, which
        // is only ever written from a SizeClass (and is 0 in zeroed metadata).
        unsafe { table.get_unchecked(self.index()) }
    }

    /// [`SizeClass::pick`] for a table the caller may change.
    #[inline(always)]
    pub(crate) fn pick_mut<T>(self, table: &mut [T; NUM_CLASSES]) -> &mut T {
        debug_assert!(self.index() < NUM_CLASSES);
        // SAFETY: as in `pick`: the index is below NUM_CLASSES.
        unsafe { table.get_unchecked_mut(self.index()) }
    }

    /// Every class, smallest first.
    pub fn all() -> impl Iterator<Item = SizeClass> {
        (0..NUM_CLASSES as u8).map(SizeClass)
    }
}

/// Object size of each class, in bytes.
pub const CLASS_SIZES: [u32; NUM_CLASSES] = build_sizes();

/// `ceil(2^32 / size)` for each class: `off * r >> 32 == off / size` for every `off` below
/// 2^16 (the error `off * (r * size - 2^32) / size` stays below `off / 2^32 < 1`, as
/// `r * size - 2^32 < size`); checked exhaustively by the tests below.
const CELL_RECIPROCALS: [u32; NUM_CLASSES] = build_reciprocals();

/// Objects per slab of each class (a table: the allocation path never divides).
const OBJECTS_PER_SLAB: [u16; NUM_CLASSES] = build_objects_per_slab();

const fn build_objects_per_slab() -> [u16; NUM_CLASSES] {
    let mut n = [0u16; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        let per = SLAB_SIZE / CLASS_SIZES[i] as usize;
        n[i] = if per < MAX_CELLS { per as u16 } else { MAX_CELLS as u16 };
        i += 1;
    }
    n
}

const fn build_reciprocals() -> [u32; NUM_CLASSES] {
    let mut r = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        r[i] = (1u64 << 32).div_ceil(CLASS_SIZES[i] as u64) as u32;
        i += 1;
    }
    r
}

const fn build_sizes() -> [u32; NUM_CLASSES] {
    let mut sizes = [0u32; NUM_CLASSES];
    let mut i = 0;
    // 8..=64 in steps of 8.
    while i < 8 {
        sizes[i] = 8 * (i as u32 + 1);
        i += 1;
    }
    // Then four classes per doubling up to 4 KiB: (4+1..=4+4) << (k-2) for each power of two 2^k.
    let mut k = 6u32;
    while i < CLASS_4096 + 1 {
        let mut sub = 1u32;
        while sub <= 4 && i < CLASS_4096 + 1 {
            sizes[i] = (4 + sub) << (k - 2);
            i += 1;
            sub += 1;
        }
        k += 1;
    }
    // Above 4 KiB, a slab holds few objects: each class is the largest multiple of 64 that fits
    // its count of objects into a slab (see `TILES`).
    let mut t = 0;
    while i < NUM_CLASSES {
        sizes[i] = (SLAB_SIZE as u32 / TILES[t]) & !63;
        i += 1;
        t += 1;
    }
    sizes
}

/// Objects per slab of the classes above 4 KiB, largest count first.
const TILES: [u32; 9] = [12, 10, 9, 8, 6, 5, 4, 3, 2];
/// Index of the class 4096 B: the last of the four-per-doubling run.
const CLASS_4096: usize = 31;

/// `TILE_LUT[(size - 4097) >> 6]` is the class of `size` for `4096 < size <= MAX_SMALL_SIZE`
/// (the classes there are multiples of 64).
const TILE_LUT: [u8; (MAX_SMALL_SIZE - 4096) / 64] = build_tile_lut();

const fn build_tile_lut() -> [u8; (MAX_SMALL_SIZE - 4096) / 64] {
    let mut lut = [0u8; (MAX_SMALL_SIZE - 4096) / 64];
    let mut i = 0;
    while i < lut.len() {
        let size = (4096 + 64 * (i + 1)) as u32;
        let mut c = CLASS_4096;
        while CLASS_SIZES[c] < size {
            c += 1;
        }
        lut[i] = c as u8;
        i += 1;
    }
    lut
}

/// Index of the class 1024 B; classes above it are found arithmetically.
const CLASS_1024: usize = 23;
/// `LUT[(size + 7) / 8]` is the class of `size` for `size <= 1024`. A `const`, not a `static`,
/// so the table is emitted into the calling crate and read RIP-relative (no GOT load).
const LUT: [u8; 129] = build_lut();

const fn build_lut() -> [u8; 129] {
    let mut lut = [0u8; 129];
    let mut i = 0;
    while i < 129 {
        let size = (i * 8) as u32;
        let mut c = 0;
        while CLASS_SIZES[c] < size {
            c += 1;
        }
        lut[i] = c as u8;
        i += 1;
    }
    lut
}

/// [`LUT`] for C's alignment rule (`malloc`: 16-aligned from 16 bytes up, 8-aligned below): from
/// index 2 (sizes 9-16) on, the smallest class that holds `i * 8` bytes and is a multiple of 16.
const C_LUT: [u8; 129] = build_c_lut();

const fn build_c_lut() -> [u8; 129] {
    let mut lut = build_lut();
    let mut i = 2;
    while i < 129 {
        let mut c = lut[i] as usize;
        while !CLASS_SIZES[c].is_multiple_of(16) {
            c += 1;
        }
        lut[i] = c as u8;
        i += 1;
    }
    lut
}

/// The class of a C `malloc(size)`: 16-aligned from 16 bytes up, 8-aligned below, size 0 as 1
/// (one table lookup up to 1 KiB, as [`class_of_size`]); `None`: the large-object path.
#[inline(always)]
pub fn class_for_c(size: usize) -> Option<SizeClass> {
    if size <= 1024 {
        return Some(SizeClass(C_LUT[(size + 7) >> 3]));
    }
    class_for(size, 16)
}

/// The class of a request of `size` bytes with alignment at most 8.
///
/// `size` must be at most [`MAX_SMALL_SIZE`]; size 0 maps to the smallest class.
#[inline]
pub fn class_of_size(size: usize) -> SizeClass {
    debug_assert!(size <= MAX_SMALL_SIZE);
    if size <= 1024 {
        return SizeClass(LUT[(size + 7) >> 3]);
    }
    if size > 4096 {
        // The clamp (never taken for sizes up to MAX_SMALL_SIZE) keeps a panic branch off the
        // allocation path: the bound is the caller's, which the compiler cannot see.
        return SizeClass(TILE_LUT[((size - 4097) >> 6).min(TILE_LUT.len() - 1)]);
    }
    // Four classes per doubling: the top three bits of (size - 1) pick the class.
    let s = size - 1;
    let k = usize::BITS - 1 - s.leading_zeros(); // floor(log2(s)), >= 10
    let sub = (s >> (k - 2)) & 3;
    SizeClass((CLASS_1024 + 1 + (k as usize - 10) * 4 + sub) as u8)
}

/// The smallest class that holds `size` bytes at alignment `align`, or `None` when the request
/// must take the large-object path.
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<SizeClass> {
    if align <= 8 {
        return (size <= MAX_SMALL_SIZE).then(|| class_of_size(size));
    }
    // Slab starts are SLAB_SIZE-aligned, so an object of a class whose size is a multiple of
    // `align` is `align`-aligned. Rounding the size up to `align` finds such a class at once
    // for alignments up to 64 (see the exhaustive test); larger ones step up to the next
    // class that is a multiple (a few steps at most above 4 KiB, where classes are multiples of
    // 64 only).
    let rounded = size.max(1).checked_add(align - 1)? & !(align - 1);
    if rounded > MAX_SMALL_SIZE || align > MAX_SMALL_SIZE {
        return None;
    }
    let mut c = class_of_size(rounded).index();
    while c < NUM_CLASSES {
        if (CLASS_SIZES[c] as usize).is_multiple_of(align) {
            return Some(SizeClass(c as u8));
        }
        c += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_classes_are_the_smallest_that_fit_at_c_alignment() {
        for size in 0..=4096usize {
            let c = class_for_c(size).expect("small");
            let align = if size >= 16 { 16 } else { 8 };
            assert!(c.object_size() >= size.max(1), "size {size}");
            assert_eq!(c.object_size() % align, 0, "size {size}: class {}", c.object_size());
            assert_eq!(Some(c), class_for(size.max(1), align), "size {size}: the same as the general rule");
        }
        assert!(class_for_c(MAX_SMALL_SIZE + 1).is_none());
    }

    #[test]
    fn cell_of_divides_exactly() {
        for c in SizeClass::all() {
            for k in 0..c.objects_per_slab() {
                let off = (k * c.object_size()) as u32;
                assert_eq!(c.cell_of(off), k as u32, "class {} offset {off}", c.object_size());
            }
            assert!(c.objects_per_slab() <= MAX_CELLS && c.objects_per_slab() >= 2);
        }
    }

    #[test]
    fn sizes_increase_and_end_at_32k() {
        assert_eq!(CLASS_SIZES[0], 8);
        assert_eq!(CLASS_SIZES[NUM_CLASSES - 1] as usize, MAX_SMALL_SIZE);
        assert_eq!(CLASS_SIZES[CLASS_1024], 1024);
        for w in CLASS_SIZES.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
            assert_eq!(w[1] % 8, 0);
        }
    }

    #[test]
    fn spacing_at_most_25_percent_from_32_bytes_to_4k() {
        for w in CLASS_SIZES[..=CLASS_4096].windows(2) {
            if w[0] >= 32 {
                assert!(w[1] * 4 <= w[0] * 5, "classes {} and {} are more than 25% apart", w[0], w[1]);
            }
        }
        assert_eq!(CLASS_SIZES[CLASS_4096], 4096);
    }

    #[test]
    fn classes_above_4k_tile_a_slab() {
        // Each is the largest multiple of 64 that fits its count of objects into a slab, so the
        // slab has less than a page of tail, and every request above 4 KiB gets at least as many
        // objects a slab as under four classes per doubling (whose counts TILES lists).
        for (i, &n) in TILES.iter().enumerate() {
            let c = SizeClass((CLASS_4096 + 1 + i) as u8);
            let size = c.object_size();
            assert_eq!(size % 64, 0);
            assert_eq!(c.objects_per_slab(), n as usize, "class {size}");
            assert!(size * n as usize <= SLAB_SIZE && (size + 64) * n as usize > SLAB_SIZE, "class {size}");
            assert!(SLAB_SIZE - size * (n as usize) < 4096, "class {size}: a page of tail");
        }
        for size in 4097..=MAX_SMALL_SIZE {
            let quarter = 1usize << ((size - 1).ilog2() - 2);
            let old_class = size.next_multiple_of(quarter);
            assert!(class_of_size(size).objects_per_slab() >= SLAB_SIZE / old_class, "size {size}");
        }
    }

    #[test]
    fn every_size_gets_the_smallest_fitting_class() {
        for size in 0..=MAX_SMALL_SIZE {
            let c = class_of_size(size);
            assert!(c.object_size() >= size, "size {size} in class {}", c.object_size());
            if c.index() > 0 {
                let smaller = CLASS_SIZES[c.index() - 1] as usize;
                assert!(smaller < size, "size {size} could use class {smaller}");
            }
        }
    }

    #[test]
    fn every_alignment_gets_the_smallest_aligned_class() {
        let mut align = 1;
        while align <= 2 * MAX_SMALL_SIZE {
            for size in 0..=MAX_SMALL_SIZE {
                let want = (0..NUM_CLASSES)
                    .map(|c| SizeClass(c as u8))
                    .find(|c| c.object_size() >= size && c.object_size().is_multiple_of(align));
                let want = want.filter(|_| align <= MAX_SMALL_SIZE);
                assert_eq!(class_for(size, align), want, "size {size} align {align}");
                if let (Some(c), true) = (want, align > 8 && align <= 64) {
                    // Up to 64 (every class from 64 B up is a multiple of 64 or a power of two
                    // apart), rounding the size up to `align` finds the class at once.
                    let rounded = (size.max(1) + align - 1) & !(align - 1);
                    assert_eq!(class_of_size(rounded), c, "size {size} align {align}");
                }
            }
            align *= 2;
        }
        assert_eq!(SLAB_SIZE % 8, 0);
    }

    #[test]
    fn huge_requests_do_not_overflow() {
        assert_eq!(class_for(usize::MAX, 16), None);
        assert_eq!(class_for(usize::MAX - 3, 8), None);
        assert_eq!(class_for(MAX_SMALL_SIZE + 1, 1), None);
    }
}
