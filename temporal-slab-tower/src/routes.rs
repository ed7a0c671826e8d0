//! The bounded set of labels a layer gives out: one per route template, up to a limit.

use std::sync::{Arc, RwLock};

/// Routes labelled by their own template before later ones share [`OTHER_LABEL`]: the
/// allocator's label registry holds 31 labels for the whole process, so a layer leaves room for
/// the program's other domains.
pub const DEFAULT_MAX_ROUTES: usize = 24;
/// The label of requests to routes beyond the limit.
pub const OTHER_LABEL: &str = "(other routes)";
/// The label of requests the route function gave no route for (404s, for example).
pub const UNMATCHED_LABEL: &str = "(unmatched)";

/// Route templates seen so far and the fallback labels.
#[derive(Debug)]
pub(crate) struct Routes {
    max: usize,
    other: Arc<str>,
    unmatched: Arc<str>,
    seen: RwLock<Vec<Arc<str>>>,
}

impl Routes {
    pub(crate) fn new(max: usize, other: &str) -> Routes {
        Routes { max, other: other.into(), unmatched: UNMATCHED_LABEL.into(), seen: RwLock::new(Vec::new()) }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn other(&self) -> &str {
        &self.other
    }

    /// The label for `route`: its own while fewer than `max` routes have been seen, else the
    /// shared one. A lock that only request paths take (never the allocator's paths); after the
    /// first request of each route it is a read lock and a scan of at most `max` short strings.
    pub(crate) fn label(&self, route: Option<&str>) -> Arc<str> {
        let Some(route) = route else { return self.unmatched.clone() };
        // A poisoned lock only means another request panicked while holding it; the list is
        // still valid (pushes are the only writes).
        let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = seen.iter().find(|l| ***l == *route) {
            return l.clone();
        }
        drop(seen);
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = seen.iter().find(|l| ***l == *route) {
            return l.clone();
        }
        if seen.len() >= self.max {
            return self.other.clone();
        }
        let label: Arc<str> = route.into();
        seen.push(label.clone());
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_beyond_the_limit_share_the_other_label() {
        let r = Routes::new(2, OTHER_LABEL);
        assert_eq!(&*r.label(Some("/a")), "/a");
        assert_eq!(&*r.label(Some("/b")), "/b");
        assert_eq!(&*r.label(Some("/c")), OTHER_LABEL);
        assert_eq!(&*r.label(Some("/a")), "/a", "a route seen before keeps its label");
        assert_eq!(&*r.label(None), UNMATCHED_LABEL);
    }
}
