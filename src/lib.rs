#![doc = include_str!("../README.md")]
// Library code returns errors as values: nothing a file, a user or the OS can cause may panic.
// (Tests may: see clippy.toml.) `missing_docs` and `unsafe_code` are set in Cargo.toml.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod config;
mod error;
mod events;
pub mod format;
mod index;
pub mod inspect;
pub mod names;
mod notify;
mod os;
mod prepare;
mod reader;
mod record;
mod recovery;
mod rules;
mod segment;
mod shared;
mod source;
mod stats;
mod store;
mod sys;
mod writer;

pub use config::{SyncMode, WalConfig};
pub use error::{Error, Result};
pub use reader::{Iter, WalReader};
pub use record::{RecordRef, RecordType, WalRecord};
pub use recovery::TornTail;
pub use stats::Stats;
pub use store::WalStore;
pub use writer::WalWriter;

/// Test-only fault injection into the durability system calls (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault {
    pub use crate::sys::{FaultPlan, Observer, SysCall, SysOp};
}

#[cfg(test)]
mod send_sync {
    #[test]
    fn public_handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::WalStore>();
        check::<crate::WalWriter>();
        check::<crate::WalReader>();
        check::<crate::RecordRef<'static>>();
    }
}
