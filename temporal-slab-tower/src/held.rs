//! How a request holds its domain: owned (moved from the response future into the body), or
//! shared with the handler through the [`RequestDomain`](crate::RequestDomain) extension.

use std::ops::Deref;
use std::sync::Arc;

use temporal_slab::EpochDomain;

/// The request's domain; dropping the last holder ends it.
#[derive(Debug)]
pub(crate) enum Held {
    /// Nobody else has it: no reference count, no allocation.
    Owned(EpochDomain),
    /// The handler may have a clone (layers with handler access).
    Shared(Arc<EpochDomain>),
}

impl Deref for Held {
    type Target = EpochDomain;

    fn deref(&self) -> &EpochDomain {
        match self {
            Held::Owned(d) => d,
            Held::Shared(d) => d,
        }
    }
}
