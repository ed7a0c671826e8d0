//! Reading a heap profile (`profile/table.rs`): another process's, copied with `pread` through
//! `/proc/PID/fd` like its statistics (`attach.rs`), or this process's own.

use std::fs::File;

use crate::attach::{first_region, read_words, AttachError};
use crate::profile::table::{
    site_at, BUSY, DEPTH, FIXED, HEADER_WORDS, H_DEPTH, H_DROPPED, H_LIVE, H_MAGIC, H_MEAN, H_PID, H_SAMPLES, H_SITES,
    H_SITE_OVERFLOW, H_VERSION, H_WORDS, LAYOUT_VERSION, LIVE, LIVE_AT, LIVE_WORDS, MAGIC, MEMFD_NAME, NO_SITE, SITES,
    WORDS,
};
use crate::profile::weight;

/// One sampled call stack and what was allocated there since the start (estimates).
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Return addresses, innermost first, as captured (the allocator's own frames included).
    pub frames: Vec<u64>,
    /// Estimated objects allocated at this stack.
    pub alloc_objects: f64,
    /// Estimated bytes allocated at this stack.
    pub alloc_bytes: f64,
}

/// One sampled object still live.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSample {
    /// Bytes requested.
    pub size: u64,
    /// Index into [`Profile::sites`]; `None` when the site table was full.
    pub site: Option<usize>,
    /// The era (epoch) it was allocated in.
    pub era: u64,
    /// The label id of the innermost domain it was allocated in.
    pub label_id: Option<u8>,
    /// Estimated objects it stands for (`1 / (1 - exp(-size / mean))`).
    pub objects: f64,
    /// Estimated bytes it stands for.
    pub bytes: f64,
}

/// A heap profile: sampled sites and the sampled objects still live.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The process it was read from.
    pub pid: u32,
    /// Mean sampling interval in bytes.
    pub sample_bytes: u64,
    /// Samples taken since the start.
    pub samples: u64,
    /// Samples not kept as live (the live table had no slot near their hash).
    pub dropped: u64,
    /// Samples whose stack found no site slot.
    pub site_overflow: u64,
    /// Sites, merged by stack (order: table order).
    pub sites: Vec<Site>,
    /// Live samples.
    pub live: Vec<LiveSample>,
}

/// Reads process `pid`'s heap profile. Needs the same access as [`crate::attach::snapshot_of`].
pub fn profile_of(pid: u32) -> Result<Profile, AttachError> {
    // No profile region: say why (sampling off, or not this allocator at all).
    let none = || match crate::attach::snapshot_of(pid) {
        Ok(_) => AttachError::NoProfile(pid),
        Err(e) => e,
    };
    first_region(pid, MEMFD_NAME, read_file, none)
}

/// This process's own heap profile (`None`: no sample taken yet, or sampling off).
pub fn own_profile() -> Option<Profile> {
    let words = crate::profile::own_region();
    let again = words.get(LIVE_AT..)?.to_vec();
    parse(&words, &again, std::process::id()).ok().flatten()
}

fn read_file(file: &File, pid: u32) -> Result<Option<Profile>, AttachError> {
    let io = |e: std::io::Error| AttachError::Io { pid, what: format!("reading the profile region: {e}") };
    let mut header = [0u64; HEADER_WORDS];
    if !read_words(file, 0, &mut header).map_err(io)? || header[H_MAGIC] != MAGIC {
        return Ok(None);
    }
    check_layout(&header, pid)?;
    if header[H_PID] != u64::from(pid) {
        return Ok(None);
    }
    let mut words = vec![0u64; WORDS];
    if !read_words(file, 0, &mut words).map_err(io)? {
        return Err(AttachError::Truncated(pid));
    }
    // The live entries again, after the first copy: an entry freed or reused while its values
    // were copied has another key now and is left out.
    let mut again = vec![0u64; LIVE * LIVE_WORDS];
    if !read_words(file, LIVE_AT, &mut again).map_err(io)? {
        return Err(AttachError::Truncated(pid));
    }
    parse(&words, &again, pid)
}

fn check_layout(header: &[u64], pid: u32) -> Result<(), AttachError> {
    let ok = header[H_VERSION] == LAYOUT_VERSION
        && header[H_SITES] == SITES as u64
        && header[H_DEPTH] == DEPTH as u64
        && header[H_LIVE] == LIVE as u64
        && header[H_WORDS] == WORDS as u64;
    if ok {
        Ok(())
    } else {
        Err(AttachError::UnknownLayout { pid, found: header[H_VERSION] })
    }
}

/// Parses a copied region; `again`: its live entries copied again after it.
fn parse(words: &[u64], again: &[u64], pid: u32) -> Result<Option<Profile>, AttachError> {
    if words.len() < WORDS || words[H_MAGIC] != MAGIC {
        return Ok(None);
    }
    check_layout(words, pid)?;
    let mean = words[H_MEAN];
    // Sites, merged by stack: a stack may hold two slots (see `Table::site`).
    let mut sites: Vec<Site> = Vec::new();
    let mut slot_to_site = vec![None; SITES];
    for (slot, to) in slot_to_site.iter_mut().enumerate() {
        let at = site_at(slot);
        let key = words[at];
        if key == 0 || key == BUSY {
            continue;
        }
        let depth = (words[at + 1] as usize).min(DEPTH);
        let frames = words[at + 4..at + 4 + depth].to_vec();
        let objects = words[at + 2] as f64 / FIXED;
        let bytes = words[at + 3] as f64;
        let i = match sites.iter().position(|s| s.frames == frames) {
            Some(i) => {
                sites[i].alloc_objects += objects;
                sites[i].alloc_bytes += bytes;
                i
            }
            None => {
                sites.push(Site { frames, alloc_objects: objects, alloc_bytes: bytes });
                sites.len() - 1
            }
        };
        *to = Some(i);
    }
    let mut live = Vec::new();
    for (i, entry) in words[LIVE_AT..LIVE_AT + LIVE * LIVE_WORDS].chunks_exact(LIVE_WORDS).enumerate() {
        let key = entry[0];
        if key == 0 || key == BUSY || again.get(i * LIVE_WORDS) != Some(&key) {
            continue;
        }
        let (size, site, era, label) = (entry[1], entry[2], entry[3] >> 8, entry[3] & 0xff);
        let site = if site == NO_SITE { None } else { slot_to_site.get(site as usize).copied().flatten() };
        let w = weight(size, mean);
        live.push(LiveSample {
            size,
            site,
            era,
            label_id: label.checked_sub(1).and_then(|l| u8::try_from(l).ok()),
            objects: w,
            bytes: w * size as f64,
        });
    }
    Ok(Some(Profile {
        pid,
        sample_bytes: mean,
        samples: words[H_SAMPLES],
        dropped: words[H_DROPPED],
        site_overflow: words[H_SITE_OVERFLOW],
        sites,
        live,
    }))
}
