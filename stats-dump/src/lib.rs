//! What the `stats_dump` and `tslab` tools share: the human summary of a snapshot, the doctor's
//! ranked findings, number formatting, the bundled demo workload they attach to, and their
//! command-line conventions.

#![forbid(unsafe_code)]

pub mod cli;
pub mod doctor;
pub mod fmt;
pub mod pinned;
pub mod pprof;
pub mod sites;
pub mod summary;
pub mod symbolize;
pub mod workload;
