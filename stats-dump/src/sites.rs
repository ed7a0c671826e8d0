//! Call sites ranked by the live bytes their sampled objects stand for, with the labels and
//! epochs those bytes are in: what `tslab top --sites` lists and the doctor cites.
//!
//! A site is the first frame of a sampled stack that is the program's own code (the
//! allocator's frames and the standard library's are skipped, `symbolize::resolve_stack`).

use std::collections::HashMap;

use temporal_slab::profile_attach::Profile;

use crate::symbolize::{resolve_stack, Frame, Symbolizer};

/// One call site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    /// The frame that names the site.
    pub frame: Frame,
    /// Estimated live bytes and objects.
    pub live_bytes: f64,
    /// Estimated live objects.
    pub live_objects: f64,
    /// Estimated bytes allocated here since the start.
    pub alloc_bytes: f64,
    /// Live bytes per label name ("(no label)" for allocations outside domains), largest first.
    pub by_label: Vec<(String, f64)>,
    /// Live bytes per era, largest first.
    pub by_era: Vec<(u64, f64)>,
}

/// The sites of `p`, largest live bytes first. `labels`: label id -> name.
pub fn rank(p: &Profile, sym: &mut Symbolizer, labels: &HashMap<u8, String>) -> Vec<SiteRow> {
    let unknown = Frame { function: "(site table full)".into(), file: None, line: None };
    let names: Vec<Frame> = p
        .sites
        .iter()
        .map(|s| resolve_stack(sym, &s.frames).first().and_then(|(_, f)| f.first().cloned()).unwrap_or(unknown.clone()))
        .collect();
    let mut rows: Vec<SiteRow> = Vec::new();
    let mut index: HashMap<Frame, usize> = HashMap::new();
    let mut row_of = |rows: &mut Vec<SiteRow>, f: &Frame| -> usize {
        *index.entry(f.clone()).or_insert_with(|| {
            rows.push(SiteRow {
                frame: f.clone(),
                live_bytes: 0.0,
                live_objects: 0.0,
                alloc_bytes: 0.0,
                by_label: Vec::new(),
                by_era: Vec::new(),
            });
            rows.len() - 1
        })
    };
    for (s, f) in p.sites.iter().zip(&names) {
        let r = row_of(&mut rows, f);
        rows[r].alloc_bytes += s.alloc_bytes;
    }
    for l in &p.live {
        let f = l.site.map_or(&unknown, |i| &names[i]);
        let r = row_of(&mut rows, f);
        let row = &mut rows[r];
        row.live_bytes += l.bytes;
        row.live_objects += l.objects;
        let label = l.label_id.map_or_else(
            || "(no label)".to_string(),
            |id| labels.get(&id).cloned().unwrap_or_else(|| format!("label {id}")),
        );
        add(&mut row.by_label, label, l.bytes);
        add(&mut row.by_era, l.era, l.bytes);
    }
    for r in &mut rows {
        r.by_label.sort_by(|a, b| b.1.total_cmp(&a.1));
        r.by_era.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    rows.sort_by(|a, b| b.live_bytes.total_cmp(&a.live_bytes).then(b.alloc_bytes.total_cmp(&a.alloc_bytes)));
    rows
}

fn add<K: PartialEq>(v: &mut Vec<(K, f64)>, k: K, x: f64) {
    match v.iter_mut().find(|(key, _)| *key == k) {
        Some(e) => e.1 += x,
        None => v.push((k, x)),
    }
}

/// The live bytes of samples allocated in era `era`, by site, largest first: (site, bytes,
/// objects), and the total.
pub fn pinning(p: &Profile, sym: &mut Symbolizer, era: u64) -> (Vec<(Frame, f64, f64)>, f64) {
    let mut by: Vec<(Frame, f64, f64)> = Vec::new();
    let mut total = 0.0;
    for l in p.live.iter().filter(|l| l.era == era) {
        let f = l
            .site
            .and_then(|i| resolve_stack(sym, &p.sites[i].frames).first().and_then(|(_, f)| f.first().cloned()))
            .unwrap_or(Frame { function: "(site table full)".into(), file: None, line: None });
        total += l.bytes;
        match by.iter_mut().find(|(k, _, _)| *k == f) {
            Some(e) => {
                e.1 += l.bytes;
                e.2 += l.objects;
            }
            None => by.push((f, l.bytes, l.objects)),
        }
    }
    by.sort_by(|a, b| b.1.total_cmp(&a.1));
    (by, total)
}

/// Label id -> name from a snapshot's label registry.
pub fn label_names(s: &temporal_slab::Snapshot) -> HashMap<u8, String> {
    s.label_registry.iter().filter_map(|e| Some((u8::try_from(e.id).ok()?, e.label.clone()))).collect()
}
