//! The sparse sequence index of one segment (FORMAT.md, "The sparse index"): which records get an
//! entry, the entries held in memory while a segment is written or after it was scanned, the
//! persisted copy a sealed segment carries, and the lookup that positions a read.
//!
//! The index is a cache of what the records say. Whoever uses an entry checks it against the
//! record it points to; a persisted index that fails its checks is rebuilt from the records.

use std::sync::{RwLock, RwLockReadGuard};

use zerocopy::byteorder::little_endian::U64;

use crate::error::{Error, Result};
use crate::format::{IndexEntry, Layout, Seal};

/// Most index entries reserved ahead per segment: 1 MiB, enough for the default geometry
/// (64 MiB segments, an entry per 4 KiB: 16,386 entries, 256 KiB).
const RESERVE_MAX: usize = 65_536;

/// The rule for which records get an entry: the first record of a segment, then the first
/// record that starts at or past the next `index_interval`-sized block of the data region after
/// the last entry. It keeps only the position of the next block, so checking it costs no lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    data_start: u64,
    interval: u64,
    next_at: u64,
}

impl Cursor {
    /// The cursor of an empty segment of `layout`.
    pub(crate) fn new(layout: &Layout) -> Cursor {
        Cursor {
            data_start: layout.data_start(),
            interval: layout.index_interval.max(1),
            next_at: layout.data_start(),
        }
    }

    /// The cursor after an entry at `offset` (or of an empty segment when `None`).
    pub(crate) fn after(layout: &Layout, last_entry: Option<u64>) -> Cursor {
        let mut cursor = Cursor::new(layout);
        if let Some(offset) = last_entry {
            cursor.advance(offset);
        }
        cursor
    }

    /// Whether the record at `offset` gets an entry.
    pub(crate) fn due(&self, offset: u64) -> bool {
        offset >= self.next_at
    }

    /// Notes that the record at `offset` got an entry.
    pub(crate) fn advance(&mut self, offset: u64) {
        let blocks = offset.saturating_sub(self.data_start) / self.interval + 1;
        self.next_at = self
            .data_start
            .saturating_add(blocks.saturating_mul(self.interval));
    }
}

/// Builds the entries of records read in order (a scan).
#[derive(Debug)]
pub(crate) struct Builder {
    cursor: Cursor,
    entries: Vec<IndexEntry>,
}

impl Builder {
    pub(crate) fn new(layout: &Layout) -> Builder {
        Builder {
            cursor: Cursor::new(layout),
            entries: Vec::new(),
        }
    }

    /// Record `seq` starts at `offset`.
    pub(crate) fn observe(&mut self, seq: u64, offset: u64) {
        if self.cursor.due(offset) {
            self.entries.push(entry(seq, offset));
            self.cursor.advance(offset);
        }
    }

    /// Entries so far.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The first `keep` entries (those of complete batches).
    pub(crate) fn finish(mut self, keep: usize) -> Vec<IndexEntry> {
        self.entries.truncate(keep);
        self.entries
    }
}

fn entry(seq: u64, offset: u64) -> IndexEntry {
    IndexEntry {
        seq: U64::new(seq),
        offset: U64::new(offset),
    }
}

#[derive(Debug)]
enum State {
    /// Built in memory while the segment is written or scanned, or loaded.
    Loaded(Vec<IndexEntry>),
    /// Persisted by the seal, not loaded yet.
    Persisted(Seal),
}

/// The index of one open segment.
#[derive(Debug)]
pub(crate) struct SparseIndex {
    state: RwLock<State>,
}

fn poisoned() -> Error {
    Error::Poisoned {
        cause: "a thread panicked while holding a segment index".into(),
    }
}

impl SparseIndex {
    /// The index of a segment of `layout` made of `entries`, with room for every entry the
    /// segment can get reserved up front so that appending never allocates (virtual memory
    /// only: untouched pages cost no RAM). The room is capped at [`RESERVE_MAX`] entries; a
    /// larger index grows as usual.
    pub(crate) fn with_entries(layout: &Layout, mut entries: Vec<IndexEntry>) -> SparseIndex {
        let room = usize::try_from(layout.max_index_entries)
            .unwrap_or(RESERVE_MAX)
            .min(RESERVE_MAX);
        entries.reserve(room.saturating_sub(entries.len()));
        SparseIndex {
            state: RwLock::new(State::Loaded(entries)),
        }
    }

    /// An index not known yet (a segment just opened, before recovery decided about it).
    pub(crate) fn unknown() -> SparseIndex {
        SparseIndex {
            state: RwLock::new(State::Loaded(Vec::new())),
        }
    }

    /// Replaces the index by `entries` (after a scan).
    pub(crate) fn set(&self, layout: &Layout, entries: Vec<IndexEntry>) {
        let fresh = SparseIndex::with_entries(layout, entries);
        if let (Ok(mut g), Ok(state)) = (self.state.write(), fresh.state.into_inner()) {
            *g = state;
        }
    }

    /// The index is the one `seal` persisted, loaded on first use.
    pub(crate) fn set_persisted(&self, seal: Seal) {
        if let Ok(mut g) = self.state.write() {
            *g = State::Persisted(seal);
        }
    }

    /// Adds the entry of record `seq` at `offset` (the writer, in order, when its cursor says so).
    pub(crate) fn push(&self, seq: u64, offset: u64) {
        if let Ok(mut g) = self.state.write()
            && let State::Loaded(v) = &mut *g
        {
            v.push(entry(seq, offset));
        }
    }

    /// Drops the entries at or past `offset` (a batch that failed before it was published) and
    /// gives the cursor for what remains.
    pub(crate) fn truncate(&self, layout: &Layout, offset: u64) -> Cursor {
        let mut last = None;
        if let Ok(mut g) = self.state.write()
            && let State::Loaded(v) = &mut *g
        {
            v.retain(|e| e.offset.get() < offset);
            last = v.last().map(|e| e.offset.get());
        }
        Cursor::after(layout, last)
    }

    /// The entries held in memory (what a seal persists).
    pub(crate) fn snapshot(&self) -> Vec<IndexEntry> {
        match self.state.read().as_deref() {
            Ok(State::Loaded(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// The cursor after the last entry held, for a writer that continues the segment.
    pub(crate) fn cursor(&self, layout: &Layout) -> Cursor {
        let last = match self.state.read().as_deref() {
            Ok(State::Loaded(v)) => v.last().map(|e| e.offset.get()),
            _ => None,
        };
        Cursor::after(layout, last)
    }

    /// The entry with the largest sequence number `<= seq`, as `(seq, offset)`; `None` when the
    /// index has none (the walk then starts at the segment's first record). A persisted index is
    /// loaded on first use by `load`, which validates it (and rebuilds it from the records if
    /// it is damaged).
    pub(crate) fn floor(
        &self,
        seq: u64,
        load: impl FnOnce(&Seal) -> Result<Vec<IndexEntry>>,
    ) -> Result<Option<(u64, u64)>> {
        let guard = self.loaded(load)?;
        let State::Loaded(entries) = &*guard else {
            return Ok(None);
        };
        let i = entries.partition_point(|e| e.seq.get() <= seq);
        Ok(i.checked_sub(1)
            .and_then(|i| entries.get(i))
            .map(|e| (e.seq.get(), e.offset.get())))
    }

    fn loaded(
        &self,
        load: impl FnOnce(&Seal) -> Result<Vec<IndexEntry>>,
    ) -> Result<RwLockReadGuard<'_, State>> {
        {
            let guard = self.state.read().map_err(|_| poisoned())?;
            if matches!(*guard, State::Loaded(_)) {
                return Ok(guard);
            }
        }
        {
            let mut guard = self.state.write().map_err(|_| poisoned())?;
            if let State::Persisted(seal) = *guard {
                *guard = State::Loaded(load(&seal)?);
            }
        }
        self.state.read().map_err(|_| poisoned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_per_interval_block() {
        let layout = Layout::new(8192, 256).unwrap();
        let mut b = Builder::new(&layout);
        // Records of 100 bytes from offset 64: entries at the first record and at the first
        // record starting at or past each 256-byte block boundary (64 + 256k).
        let mut off = 64;
        for seq in 1..=10 {
            b.observe(seq, off);
            off += 100;
        }
        let got: Vec<(u64, u64)> = b
            .finish(usize::MAX)
            .iter()
            .map(|e| (e.seq.get(), e.offset.get()))
            .collect();
        assert_eq!(got, vec![(1, 64), (4, 364), (7, 664), (9, 864)]);
    }

    #[test]
    fn truncate_gives_the_cursor_of_what_remains() {
        let layout = Layout::new(8192, 256).unwrap();
        let index = SparseIndex::with_entries(&layout, Vec::new());
        index.push(1, 64);
        index.push(4, 364);
        let cursor = index.truncate(&layout, 300);
        assert!(!cursor.due(300) && cursor.due(320));
        assert_eq!(
            index.floor(9, |_| Ok(Vec::new())).ok().flatten(),
            Some((1, 64))
        );
        let empty = index.truncate(&layout, 0);
        assert!(empty.due(64));
    }
}
