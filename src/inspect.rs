//! Looking inside a log directory without opening it as a log: what each segment file holds,
//! every record and every damaged byte range in order, one record by sequence number, and a
//! full verification that says what recovery would do. `walctl` is a thin layer over this
//! module.
//!
//! Everything here reads files with positioned reads into bounded buffers. Nothing is mapped, so
//! a truncated or damaged file, or one another process changes while it is read, gives an error
//! value or a [`Finding`], never a `SIGBUS`. Nothing is written and no lock is taken: an
//! application can open and append to the same directory at the same time (the inspection then
//! sees the log as it was when [`Log::open`] listed it, plus what was appended to the newest
//! segment before it was scanned).
//!
//! The rules are recovery's (FORMAT.md, "Recovery"): a segment whose seal checks out is taken
//! to hold the records its seal names; other segments are scanned; bytes after the last complete
//! record of the newest segment are a torn tail unless a later record proves they were durable.
//! Unlike recovery, inspection does not stop at the first problem: it reports every one it finds,
//! reads the records of sealed segments too (so damage that a read would hit later is found now),
//! and looks past damage for valid records.
//!
//! ```
//! use softadastra_wal::inspect::{self, Entry, Verdict};
//! use softadastra_wal::{RecordType, WalConfig, WalStore};
//!
//! # fn main() -> softadastra_wal::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = WalStore::open(WalConfig::new(dir.path()))?;
//! store.writer().append(RecordType::Put, b"hello")?;
//! // (While a store is open, `segments()` also lists the spare it keeps ready.)
//! drop(store);
//!
//! let log = inspect::Log::open(dir.path())?;
//! assert_eq!(log.segments().len(), 1);
//! for entry in log.entries() {
//!     match entry? {
//!         Entry::Record(r) => println!("{} {:?} {:?}", r.seq, r.record_type, r.payload),
//!         Entry::Damage(d) => println!("damage: {d}"),
//!         _ => {}
//!     }
//! }
//! let report = log.verify()?;
//! assert_eq!(report.verdict(), Verdict::Clean);
//! assert_eq!(report.last_seq, Some(1));
//! # Ok(())
//! # }
//! ```

mod analysis;
mod detail;
mod dir;
mod entries;
mod get;
mod lock;
mod verify;
mod walk;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::format::{Layout, SegmentHeader};

use analysis::{Plan, Seg};
use dir::{Slot, SlotState, SpareFile};

pub use detail::{Field, SegmentDetail, segment_detail};
pub use entries::{Entries, Entry, Record};
pub use lock::{WriterLock, writer_lock};
pub use verify::{Finding, Report, Severity, Tail, Verdict};

/// The fields of a segment header that checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderInfo {
    /// Format version (1).
    pub version: u32,
    /// Size of the segment file in bytes.
    pub segment_size: u64,
    /// The log's random identifier.
    pub log_id: u64,
    /// The segment's number.
    pub segment_id: u64,
    /// Sequence number of the first record the segment holds or will hold.
    pub base_seq: u64,
    /// Bytes of records between sparse index entries.
    pub index_interval: u64,
    /// Where the records, the index and the footer are.
    pub layout: Layout,
}

impl HeaderInfo {
    fn new(h: &SegmentHeader, layout: Layout) -> HeaderInfo {
        HeaderInfo {
            version: h.version.get(),
            segment_size: h.segment_size.get(),
            log_id: h.log_id.get(),
            segment_id: h.segment_id.get(),
            base_seq: h.base_seq.get(),
            index_interval: h.index_interval.get(),
            layout,
        }
    }
}

/// What a segment file is, as far as the log is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentState {
    /// Full: a valid seal footer names its records.
    Sealed,
    /// Not sealed: the newest segment, which the writer appends to, or an older one a crash left
    /// unsealed (the next writer seals it).
    Unsealed,
    /// A spare file (`{id:020}.spare`) without a valid header and with nothing past it: made
    /// ahead of need, not used yet. A writer removes it when it is done with it.
    Spare,
    /// Its header is not acceptable (see [`SegmentInfo::note`]); recovery refuses the log.
    Rejected,
    /// It could not be read (see [`SegmentInfo::note`]).
    Unreadable,
    /// It was deleted between listing the directory and opening it (truncation by the writer).
    Vanished,
}

/// One segment file of a log: one line of `walctl info`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// The segment number in its name.
    pub id: u64,
    /// The file's length in bytes when it was opened.
    pub file_len: u64,
    /// What the file is.
    pub state: SegmentState,
    /// The header, when it checked out.
    pub header: Option<HeaderInfo>,
    /// Sequence number of its first record, if it has any.
    pub first_seq: Option<u64>,
    /// Sequence number of its last record, if it has any.
    pub last_seq: Option<u64>,
    /// How many records of the log it holds (as recovery counts them).
    pub records: u64,
    /// Bytes of the data region those records use, headers and padding included.
    pub used: u64,
    /// Bytes the data region has room for.
    pub capacity: u64,
    /// Why the header was rejected or the file unreadable, or what is unusual about it.
    pub note: Option<String>,
}

/// A file in a log directory that is not part of the log's sequence of segments.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtherFile {
    /// Its path.
    pub path: PathBuf,
    /// `Some(id)` for a segment (or spare) still being created (`{id:020}.seg.tmp`); a writer
    /// opening the log deletes it. `None` for any other file, which the log ignores.
    pub temp_of: Option<u64>,
}

/// A log directory opened for inspection: its files listed, each segment's header checked and
/// its extent determined as recovery would. Holds each segment file open (read-only), so the
/// inspection keeps reading a segment that the writer deletes meanwhile.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    slots: Vec<Slot>,
    spares: Vec<SpareFile>,
    others: Vec<OtherFile>,
    lock_file: bool,
}

impl Log {
    /// Lists `dir` and opens every segment file in it for reading.
    ///
    /// A damaged, unreadable or vanished segment is not an error: it is described in
    /// [`segments`](Self::segments) and reported by [`entries`](Self::entries) and
    /// [`verify`](Self::verify). A directory without any segment file is not an error either
    /// (see [`is_log`](Self::is_log)).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the directory cannot be listed (missing, not a directory, permission
    /// denied).
    pub fn open(dir: impl AsRef<Path>) -> Result<Log> {
        dir::list(dir.as_ref())
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when the directory looks like a log: it has a segment file (even a damaged one), a
    /// segment being created, or the writer's lock file.
    #[must_use]
    pub fn is_log(&self) -> bool {
        !self.slots.is_empty()
            || !self.spares.is_empty()
            || self.lock_file
            || self.others.iter().any(|o| o.temp_of.is_some())
    }

    /// True when the directory has the writer's lock file `wal.lock`.
    #[must_use]
    pub fn has_lock_file(&self) -> bool {
        self.lock_file
    }

    /// Files in the directory that are neither segments nor the lock file.
    #[must_use]
    pub fn other_files(&self) -> &[OtherFile] {
        &self.others
    }

    /// The segment files, oldest first, and the spare segments made ahead of need.
    #[must_use]
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let newest = self.newest_slot();
        let mut v: Vec<SegmentInfo> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| s.info(Some(i) == newest))
            .collect();
        v.extend(self.spares.iter().map(SpareFile::info));
        v.sort_by_key(|s| s.id);
        v
    }

    /// The log's identifier (from the oldest readable segment header).
    #[must_use]
    pub fn log_id(&self) -> Option<u64> {
        self.open_segments()
            .next()
            .map(|(seg, _)| seg.header.log_id)
    }

    /// Sequence number of the oldest record recovery would find.
    #[must_use]
    pub fn first_seq(&self) -> Option<u64> {
        self.open_segments().find_map(|(seg, plan)| {
            let (first, next, _) = seg.extent(plan);
            (next > first).then_some(first)
        })
    }

    /// Sequence number of the newest record recovery would find.
    #[must_use]
    pub fn last_seq(&self) -> Option<u64> {
        let mut last = None;
        for (seg, plan) in self.open_segments() {
            let (first, next, _) = seg.extent(plan);
            if next > first {
                last = Some(next - 1);
            }
        }
        last
    }

    /// Every record and every finding, in log order. See [`Entries`].
    #[must_use]
    pub fn entries(&self) -> Entries<'_> {
        Entries::new(self, 0, u64::MAX)
    }

    /// Like [`entries`](Self::entries), skipping the segments that hold only records below
    /// `from` or only records above `to` (and what is reported about them).
    #[must_use]
    pub fn entries_between(&self, from: u64, to: u64) -> Entries<'_> {
        Entries::new(self, from, to)
    }

    /// The record with sequence number `seq`, if the log holds it (as recovery would see the
    /// log: records a torn tail or damage leaves outside the log are not returned).
    ///
    /// # Errors
    ///
    /// [`Error::Corruption`](crate::Error::Corruption) if the record is damaged; [`Error::Io`](crate::Error::Io) if a read fails.
    pub fn get(&self, seq: u64) -> Result<Option<Record>> {
        get::get(self, seq)
    }

    /// Reads the whole log and reports everything that is not as a cleanly working writer
    /// leaves it. See [`Report`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if a read fails part-way (an unreadable file is a finding, not an error).
    pub fn verify(&self) -> Result<Report> {
        verify::verify(self)
    }

    fn open_segments(&self) -> impl Iterator<Item = (&Seg, &Plan)> {
        self.slots.iter().filter_map(|s| match &s.state {
            SlotState::Open { seg, plan } => Some((seg, plan)),
            _ => None,
        })
    }

    /// Index of the newest slot that is not a spare: the one whose tail may be torn.
    fn newest_slot(&self) -> Option<usize> {
        self.slots
            .iter()
            .rposition(|s| !matches!(s.state, SlotState::Vanished))
    }
}
