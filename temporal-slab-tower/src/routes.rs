//! The bounded set of labels a layer gives out: one per route template, up to a limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use temporal_slab::Label;

/// Routes labelled by their own template before later ones share [`OTHER_LABEL`]: the
/// allocator's label registry holds 31 labels for the whole process, so a layer leaves room for
/// the program's other domains.
pub const DEFAULT_MAX_ROUTES: usize = 24;
/// The label of requests to routes beyond the limit.
pub const OTHER_LABEL: &str = "(other routes)";
/// The label of requests the route function gave no route for (404s, for example).
pub const UNMATCHED_LABEL: &str = "(unmatched)";

/// Route templates seen so far and the fallback label.
///
/// Every request looks its route up here, on every worker thread at once, so the read path
/// writes nothing shared: no lock, no reference count (a read lock or an `Arc` clone would be an
/// atomic read-modify-write on one cache line for every request of the process). The labels are
/// `&'static str`: each route's text is leaked once, at most `max` per layer; each is registered
/// with the allocator once too ([`Label`]), so opening a request's domain looks nothing up again.
#[derive(Debug)]
pub(crate) struct Routes {
    other: &'static str,
    seen: Box<[OnceLock<(&'static str, Label)>]>,
    /// The registered [`OTHER_LABEL`] (or the layer's own) and [`UNMATCHED_LABEL`], made when
    /// first needed (so that a layer whose routes all fit registers neither).
    other_label: OnceLock<Label>,
    unmatched_label: OnceLock<Label>,
    /// Entries of `seen` published (set before the count is raised).
    count: AtomicUsize,
    adding: Mutex<()>,
}

impl Routes {
    pub(crate) fn new(max: usize, other: &'static str) -> Routes {
        Routes {
            other,
            seen: (0..max).map(|_| OnceLock::new()).collect(),
            count: AtomicUsize::new(0),
            adding: Mutex::new(()),
            other_label: OnceLock::new(),
            unmatched_label: OnceLock::new(),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.seen.len()
    }

    pub(crate) fn other(&self) -> &'static str {
        self.other
    }

    fn find(&self, route: &str, published: usize) -> Option<(&'static str, Label)> {
        self.seen[..published].iter().filter_map(|s| s.get().copied()).find(|(l, _)| *l == route)
    }

    fn other_pair(&self) -> (&'static str, Label) {
        (self.other, *self.other_label.get_or_init(|| Label::new(self.other)))
    }

    /// The label for `route` (its text and its registered id): its own while fewer than `max`
    /// routes have been seen, else the shared one. After the first request of each route, a
    /// scan of at most `max` short strings.
    pub(crate) fn label(&self, route: Option<&str>) -> (&'static str, Label) {
        let Some(route) = route else {
            return (UNMATCHED_LABEL, *self.unmatched_label.get_or_init(|| Label::new(UNMATCHED_LABEL)));
        };
        // Acquire: pairs with the Release store below, so the entries counted are set.
        if let Some(l) = self.find(route, self.count.load(Ordering::Acquire)) {
            return l;
        }
        // A poisoned lock only means a panic elsewhere while holding it; the entries are still
        // valid (each is set once, before the count is raised).
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.count.load(Ordering::Relaxed);
        if let Some(l) = self.find(route, n) {
            return l;
        }
        if n >= self.seen.len() {
            return self.other_pair();
        }
        let text: &'static str = Box::leak(route.into());
        let pair = (text, Label::new(text));
        let _ = self.seen[n].set(pair);
        self.count.store(n + 1, Ordering::Release);
        pair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_beyond_the_limit_share_the_other_label() {
        let r = Routes::new(2, OTHER_LABEL);
        assert_eq!(r.label(Some("/a")).0, "/a");
        assert_eq!(r.label(Some("/b")).0, "/b");
        assert_eq!(r.label(Some("/c")).0, OTHER_LABEL);
        assert_eq!(r.label(Some("/a")).0, "/a", "a route seen before keeps its label");
        assert_eq!(r.label(None).0, UNMATCHED_LABEL);
        assert_eq!(r.label(Some("/d")).1, r.label(Some("/e")).1, "routes past the limit share one id");
        assert_ne!(r.label(Some("/a")).1, r.label(Some("/b")).1);
        assert_eq!(r.label(Some("/b")).1, Label::new("/b"), "the id registered for the route's text");
    }

    #[test]
    fn concurrent_first_requests_of_a_route_get_one_label() {
        let r = std::sync::Arc::new(Routes::new(4, OTHER_LABEL));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let r = r.clone();
                std::thread::spawn(move || r.label(Some(["/x", "/y"][i % 2])).0.as_ptr() as usize)
            })
            .collect();
        let mut ptrs: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        ptrs.sort_unstable();
        ptrs.dedup();
        assert_eq!(ptrs.len(), 2, "one leaked text per route");
        assert_eq!(r.count.load(Ordering::Relaxed), 2);
    }
}
