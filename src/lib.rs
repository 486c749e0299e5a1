//! A durable, memory-mapped, segmented write-ahead log for local-first applications.
//!
//! An application appends every change it accepts to the log before it acknowledges the change;
//! after a crash it reopens the log and replays the records to rebuild its state. Each record
//! gets a dense sequence number (1, 2, 3, ... with no gaps), can be read back by that number,
//! and is handed out as a zero-copy slice of the mapped segment file once its CRC-32 has been
//! verified.
//!
//! It is an append-only log in one directory of fixed-size, preallocated segment files, written
//! by one process (an exclusive lock enforces it) and read by any number of readers, with a
//! sparse sequence index per segment that is persisted when the segment is full. It is not a
//! database (payloads are opaque bytes with a type code and a timestamp), not multi-writer, not a
//! repair tool (damage to acknowledged data is reported, never skipped; the `walctl salvage`
//! command copies the intact records into a new log), and not networked, replicated, compressed
//! or encrypted.
//!
//! # Example
//!
//! ```
//! use softadastra_wal::{RecordType, SyncMode, WalConfig, WalStore};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let config = WalConfig::new(dir.path()).sync_mode(SyncMode::Always); // the default
//!     let store = WalStore::open(config.clone())?;
//!     let writer = store.writer();
//!     assert_eq!(writer.append(RecordType::Put, b"user:1=alice")?, 1); // durable now
//!     let batch = writer.append_batch([
//!         (RecordType::Put, &b"user:2=bob"[..]),
//!         (RecordType::Delete, &b"user:1"[..]),
//!     ])?; // all or nothing, one flush
//!     assert_eq!(batch, 2..=3);
//!     drop((writer, store)); // closed; a crash is recovered the same way
//!
//!     let store = WalStore::open(config)?; // recovers the directory
//!     let reader = store.reader();
//!     let record = reader.get(2)?.ok_or("record 2 should be in the log")?;
//!     assert_eq!(record.payload(), b"user:2=bob");
//!     let mut replayed = Vec::new();
//!     reader.for_each(|r| replayed.push((r.seq(), r.record_type())))?;
//!     assert_eq!(replayed.len(), 3);
//!     Ok(())
//! }
//! ```
//!
//! # Durability contract
//!
//! * With [`SyncMode::Always`] (the default), when [`WalWriter::append`] or
//!   [`WalWriter::append_batch`] returns `Ok`, the record or the whole batch, and every record
//!   before it, is on stable storage: it survives a process crash, an operating-system crash and
//!   a power cut. Appends from several threads share flushes (group commit).
//! * With [`SyncMode::Manual`], appends only copy into the mapping; when [`WalWriter::sync`]
//!   returns `Ok`, everything appended before it is durable. A crash loses at most the records
//!   appended since the last successful sync, never an earlier one, and never leaves a gap.
//! * A batch is atomic: after a crash all of its records are in the log, or none is.
//! * A reader made by [`WalStore::reader`] sees durable records only. A [`WalReader::open`]
//!   reader (another process) reads the files as they are, and in `Manual` mode can see records
//!   that are not synced yet.
//! * [`WalStore::open`] recovers the directory: the log holds every acknowledged record
//!   (except those removed by [`WalStore::truncate_before`]), numbered without gaps. A torn tail
//!   (an interrupted write) is cut and reported by [`WalStore::torn_tail`]; damage to data that
//!   had been made durable is refused with [`Error::Corruption`], naming file, offset and
//!   sequence number.
//! * The first failed flush (or sync, rename, unlink) poisons the writer: that call returns
//!   [`Error::Io`], every later append returns [`Error::Poisoned`], and nothing is acknowledged
//!   again until the store and its writers are dropped and the directory is opened anew. A flush
//!   that failed once is never retried, because the kernel may have dropped the dirty pages.
//! * A refused append (too large, reserved type code) consumes no sequence number.
//!
//! This rests on three assumptions: the drive honours flushes; one process writes a directory at
//! a time ([`WalStore::open`] takes an exclusive lock on `wal.lock` and fails with
//! [`Error::Locked`] otherwise; the lock is advisory and meant for local file systems); and
//! nobody else changes the files.
//!
//! # Safety of the memory mappings
//!
//! Every public function is safe to call, whatever the files contain: the writer writes only
//! past the end it has published to readers, readers form slices only below it, every length is
//! checked before it is used, and every record's checksum is verified before it is handed out.
//! Segments are created at full size with real blocks allocated, so a full disk is an error when
//! a segment is created, never a `SIGBUS` on a later store.
//!
//! What the crate cannot check is another program changing the files under its mappings. Do not:
//!
//! * truncate, rewrite or replace a segment file while any process has the log open (a
//!   [`WalStore`], a reader made from one, or a [`WalReader::open`]): reading a mapped page of a
//!   shrunk file kills the process with `SIGBUS`, and rewritten bytes change payload slices that
//!   were already checked and handed out. Restoring a backup counts, and so do
//!   file-synchronization clients (Dropbox, OneDrive, iCloud Drive): keep the log out of their
//!   folders;
//! * delete, rename or add segment files (`<20 digits>.seg`) at any time: a missing newest
//!   segment cannot be told from a log that ended earlier;
//! * run a second writer by other means than [`WalStore::open`], or share a log directory
//!   between machines over NFS or SMB (the lock may not keep the other machine out, and mappings
//!   on two machines are not kept coherent);
//! * copy a live directory as a backup: copy it while no process has it open for writing.
//!
//! A disk that cannot read a mapped page (a failing drive, a removed USB stick) also raises
//! `SIGBUS`, as with any memory-mapped file. The [`inspect`] module (and the `walctl` tool built
//! on it) reads with positioned reads instead, and reports such a file as an I/O error.
//!
//! # Cargo features
//!
//! * `log` (off by default): recovery (a torn tail cut, a segment sealed after a crash, leftover
//!   files removed), rotation, truncation and poisoning are reported through the [`log`] facade,
//!   under the target `softadastra_wal`.
//! * `fault-injection` (off by default): for this crate's own tests only. It lets a test make
//!   the N-th durability system call fail; its API is hidden and not covered by semver.
//!   Applications never enable it.
//!
//! # Further reading
//!
//! * [The guide][guide]: the API tour, threads, async code and other processes, recovery,
//!   safety and dependencies in full.
//! * [FORMAT.md][format-md]: the on-disk format, byte by byte, and the recovery rules; the
//!   [`format`](mod@format) module is its byte codec.
//! * [walctl][walctl], the inspection tool; the [reliability harnesses][reliability]; the
//!   [comparison with the floors and other Rust WALs][compare].
//!
//! [guide]: https://github.com/softadastra/softadastra-wal/blob/main/docs/guide.md
//! [format-md]: https://github.com/softadastra/softadastra-wal/blob/main/FORMAT.md
//! [walctl]: https://github.com/softadastra/softadastra-wal/blob/main/walctl/README.md
//! [reliability]: https://github.com/softadastra/softadastra-wal/blob/main/tests/reliability/README.md
//! [compare]: https://github.com/softadastra/softadastra-wal/blob/main/benches/compare/README.md
//! [`log`]: https://docs.rs/log
// Library code returns errors as values: nothing a file, a user or the OS can cause may panic.
// (Tests may: see clippy.toml.) `missing_docs` and `unsafe_code` are set in Cargo.toml.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The examples in the repository's markdown files run as doctests: these items exist only
// while rustdoc collects doctests, and carry the files as their documentation.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
struct GuideDoctests;

#[cfg(doctest)]
#[doc = include_str!("../FORMAT.md")]
struct FormatDoctests;

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
