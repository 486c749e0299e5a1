//! Integration tests: one binary, one module per concern (cheaper to build on 2 cores).

mod batch;
mod common;
mod concurrency;
mod corruption;
mod errors;
#[cfg(feature = "log")]
mod events;
mod format_spec;
#[cfg(feature = "fault-injection")]
mod group_commit;
mod inspect;
mod locking;
mod model;
#[cfg(feature = "fault-injection")]
mod poison;
mod random_access;
mod recovery;
mod regressions;
mod reopen;
mod roundtrip;
mod smoke;
mod spares;
mod stats;
mod tailing;
mod truncate;
