//! Turning the return addresses of a live process's samples into functions, files and lines:
//! `/proc/PID/maps` says which file each address is in and at what offset, the file's ELF
//! segments turn that into a link-time address, and its DWARF (through `addr2line`) into the
//! chain of inlined functions. Without debug information the symbol table still names the
//! function (no file or line).

use std::collections::HashMap;

use anyhow::{Context, Result};
use object::{Object, ObjectSegment};

/// One function frame (innermost first within an address's inline chain).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Demangled function name (`"??"` when unknown).
    pub function: String,
    /// Source file, when the debug information has it.
    pub file: Option<String>,
    /// Source line, when the debug information has it.
    pub line: Option<u32>,
}

impl Frame {
    /// `function (file:line)`, or the function alone.
    pub fn describe(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{} ({f}:{l})", self.function),
            (Some(f), None) => format!("{} ({f})", self.function),
            _ => self.function.clone(),
        }
    }
}

/// A mapped file of the process (one line of `/proc/PID/maps` with a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The file.
    pub path: String,
}

struct Module {
    loader: addr2line::Loader,
    /// (file offset, file size, link-time address) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
}

/// Resolves addresses of one process, caching each file's debug information.
pub struct Symbolizer {
    maps: Vec<Mapping>,
    modules: HashMap<String, Option<Module>>,
    cache: HashMap<u64, Vec<Frame>>,
}

impl Symbolizer {
    /// Reads the mappings of process `pid` (it must still be running).
    pub fn for_pid(pid: u32) -> Result<Symbolizer> {
        let path = format!("/proc/{pid}/maps");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {path} to symbolize the profile (is the process still running?)"))?;
        Ok(Symbolizer { maps: parse_maps(&text), modules: HashMap::new(), cache: HashMap::new() })
    }

    /// The process's file mappings.
    pub fn mappings(&self) -> &[Mapping] {
        &self.maps
    }

    /// Index into [`Symbolizer::mappings`] of the mapping holding `pc`.
    pub fn mapping_of(&self, pc: u64) -> Option<usize> {
        self.maps.iter().position(|m| (m.start..m.end).contains(&pc))
    }

    /// The inline chain at `pc`, innermost first (at least one frame). `pc` is a return address
    /// unless it is the innermost frame of its stack: the call itself is one byte before it.
    pub fn frames(&mut self, pc: u64, return_address: bool) -> Vec<Frame> {
        let probe = if return_address { pc.saturating_sub(1) } else { pc };
        if let Some(f) = self.cache.get(&probe) {
            return f.clone();
        }
        let frames = self.resolve(probe).unwrap_or_default();
        let frames = if frames.is_empty() {
            vec![Frame { function: format!("{pc:#x}"), file: None, line: None }]
        } else {
            frames
        };
        self.cache.insert(probe, frames.clone());
        frames
    }

    fn resolve(&mut self, pc: u64) -> Option<Vec<Frame>> {
        let m = self.maps.get(self.mapping_of(pc)?)?.clone();
        let module = self.modules.entry(m.path.clone()).or_insert_with(|| load(&m.path)).as_ref()?;
        let file_offset = pc - m.start + m.offset;
        let &(seg_off, _, seg_addr) =
            module.segments.iter().find(|&&(off, size, _)| (off..off + size).contains(&file_offset))?;
        let svma = file_offset - seg_off + seg_addr;
        let mut out = Vec::new();
        if let Ok(mut it) = module.loader.find_frames(svma) {
            while let Ok(Some(f)) = it.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(|s| s.into_owned()))
                    .unwrap_or_else(|| "??".to_string());
                let (file, line) = f.location.map_or((None, None), |l| (l.file.map(str::to_string), l.line));
                out.push(Frame { function, file, line });
            }
        }
        if out.iter().all(|f| f.function == "??") {
            let name = module.loader.find_symbol(svma)?;
            let name = addr2line::demangle_auto(name.into(), None).into_owned();
            out = vec![Frame { function: name, file: None, line: None }];
        }
        Some(out)
    }
}

fn load(path: &str) -> Option<Module> {
    let data = std::fs::read(path).ok()?;
    let obj = object::File::parse(&*data).ok()?;
    let segments = obj
        .segments()
        .filter_map(|s| {
            let (off, size) = s.file_range();
            (size > 0).then_some((off, size, s.address()))
        })
        .collect();
    let loader = addr2line::Loader::new(path).ok()?;
    Some(Module { loader, segments })
}

/// The file-backed lines of a `/proc/PID/maps` text (anonymous and special ones left out).
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let range = parts.next()?;
            let _perms = parts.next()?;
            let offset = u64::from_str_radix(parts.next()?, 16).ok()?;
            let _dev = parts.next()?;
            let _inode = parts.next()?;
            let path: Vec<&str> = parts.collect();
            let path = path.join(" ");
            if !path.starts_with('/') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let start = u64::from_str_radix(a, 16).ok()?;
            let end = u64::from_str_radix(b, 16).ok()?;
            Some(Mapping { start, end, offset, path: path.trim_end_matches(" (deleted)").to_string() })
        })
        .collect()
}

/// Frames of the allocator's own code and of the allocation entry points (Rust's `__rust_alloc`
/// shims, `alloc::alloc`, the C ABI's `malloc` family, the unwinder), which every sampled
/// stack starts with.
pub fn is_allocator_frame(function: &str) -> bool {
    const PREFIXES: [&str; 13] = [
        "temporal_slab::",
        "<temporal_slab::",
        "temporal_slab_capi::",
        "__rust_alloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rustc::",
        "__rdl_",
        "__rg_",
        "alloc::alloc::",
        "std::alloc::",
        "_Unwind_",
        "<alloc::alloc::Global",
    ];
    const C_ENTRY: [&str; 7] = ["malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign"];
    PREFIXES.iter().any(|p| function.starts_with(p)) || C_ENTRY.contains(&function)
}

/// Frames of Rust's standard library (collections growing, `format!`, boxing): a user asks
/// which of their own functions allocated, so a site is named by the first frame past these.
/// Told by the source path (the standard library is built from `/rustc/HASH/library/...` and
/// its dependencies from `/rust/deps/...`), else by the function's path.
pub fn is_library_frame(f: &Frame) -> bool {
    if let Some(file) = &f.file {
        return (file.starts_with("/rustc/") && file.contains("/library/")) || file.starts_with("/rust/deps/");
    }
    const PREFIXES: [&str; 8] =
        ["alloc::", "<alloc::", "core::", "<core::", "std::", "<std::", "hashbrown::", "<hashbrown::"];
    PREFIXES.iter().any(|p| f.function.starts_with(p))
}

/// A sampled stack resolved and trimmed: the allocator's own frames and the standard library's
/// at its top are left out, so the first frame is the program's code that allocated. Returns
/// `(pc, frames at pc)` pairs, innermost first; every pair has at least one frame. A stack that
/// is all allocator or library frames keeps its last library frame.
pub fn resolve_stack(sym: &mut Symbolizer, pcs: &[u64]) -> Vec<(u64, Vec<Frame>)> {
    let mut flat: Vec<(u64, Frame)> = Vec::new();
    for (i, &pc) in pcs.iter().enumerate() {
        for f in sym.frames(pc, i > 0) {
            flat.push((pc, f));
        }
    }
    let first_user = flat.iter().position(|(_, f)| !is_allocator_frame(&f.function) && !is_library_frame(f));
    let first_kept = match first_user {
        Some(i) => i,
        None => flat.iter().rposition(|(_, f)| !is_allocator_frame(&f.function)).unwrap_or(0),
    };
    let mut out: Vec<(u64, Vec<Frame>)> = Vec::new();
    for (pc, f) in flat.into_iter().skip(first_kept) {
        match out.last_mut() {
            Some((last, frames)) if *last == pc => frames.push(f),
            _ => out.push((pc, vec![f])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_with_paths_are_kept() {
        let text = "55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 123 /usr/bin/my app\n\
                    55d0c0a21000-55d0c0b00000 r-xp 00021000 08:01 123 /usr/bin/my app\n\
                    7f00-8f00 rw-p 00000000 00:00 0 \n\
                    7ffd-7ffe rw-p 00000000 00:00 0 [stack]\n\
                    9000-a000 r-xp 00001000 08:01 9 /tmp/x (deleted)\n\
                    garbage\n";
        let m = parse_maps(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[1],
            Mapping { start: 0x55d0c0a21000, end: 0x55d0c0b00000, offset: 0x21000, path: "/usr/bin/my app".into() }
        );
        assert_eq!(m[2].path, "/tmp/x");
    }

    #[test]
    fn allocator_and_library_frames_are_told_apart() {
        assert!(is_allocator_frame("temporal_slab::profile::Sampler::on_due"));
        assert!(is_allocator_frame("__rustc::__rust_alloc"));
        assert!(is_allocator_frame("malloc"));
        assert!(!is_allocator_frame("mallocx_user"));
        assert!(!is_allocator_frame("tslab_tools::workload::cache_insert"));
        let frame = |function: &str, file: Option<&str>| Frame {
            function: function.into(),
            file: file.map(str::to_string),
            line: None,
        };
        assert!(is_library_frame(&frame("alloc::raw_vec::RawVec<T,A>::grow_one", None)));
        let from_elem = "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem";
        assert!(is_library_frame(&frame(from_elem, Some("/rustc/5980/library/alloc/src/vec/spec_from_elem.rs"))));
        assert!(!is_library_frame(&frame("myapp::cache::insert", None)));
        assert!(!is_library_frame(&frame("<myapp::Key as core::clone::Clone>::clone", Some("src/key.rs"))));
    }

    #[inline(never)]
    fn here() -> u64 {
        // The return address of this call lies in `here`'s caller: resolve one inside `here`
        // instead, through a function pointer's address.
        here as fn() -> u64 as usize as u64
    }

    #[test]
    fn an_address_of_this_test_binary_resolves_to_its_function_and_file() {
        let mut sym = Symbolizer::for_pid(std::process::id()).unwrap();
        let frames = sym.frames(here(), false);
        assert!(frames.iter().any(|f| f.function.ends_with("symbolize::tests::here")), "{frames:?}");
        assert!(frames.iter().any(|f| f.file.as_deref().is_some_and(|p| p.ends_with("symbolize.rs"))), "{frames:?}");
        let unknown = sym.frames(8, false);
        assert_eq!(unknown[0].function, "0x8");
    }
}
