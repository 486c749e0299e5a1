//! One open, mapped segment file: the only code that writes bytes into a segment (records, the
//! seal, a torn tail's zeros), its sparse index, and the views readers hold of it.
//!
//! A `Segment` never decides what is valid in it (`rules` does) and never decides where to
//! write: the writer that owns the active segment does, and the functions that write say, as
//! their safety contract, what the caller must have made sure of.

pub(crate) mod create;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zerocopy::IntoBytes;

use crate::error::{Error, Result};
use crate::format::{self, Binding, IndexEntry, Layout, RECORD_HEADER_LEN, RecordHeader, Seal};
use crate::index::{Cursor, SparseIndex};
use crate::os::Mapping;
use crate::rules::{self, Checked};
use crate::source::{FileSource, StableMapping};
use crate::sys::{Sys, SysOp};

/// An open, mapped segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    path: PathBuf,
    /// Kept open for the segment's lifetime: the writer fsyncs through it, and a descriptor
    /// closed after a failed writeback could hide the error from the next fsync.
    file: File,
    map: Mapping,
    checked: Checked,
    index: SparseIndex,
}

pub(crate) fn io_err<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> Error + 'p {
    move |e| Error::io(action, path, e)
}

impl Segment {
    /// A new, empty segment `id` of log `log_id` starting at `base_seq`, whose header is written
    /// into `file` (made by the `create` module).
    pub(crate) fn created(
        path: PathBuf,
        file: File,
        map: Mapping,
        header: format::SegmentHeader,
        layout: Layout,
    ) -> Segment {
        let checked = Checked {
            header,
            layout,
            id: header.segment_id.get(),
            log_id: header.log_id.get(),
            base_seq: header.base_seq.get(),
        };
        Segment {
            path,
            file,
            map,
            index: SparseIndex::with_entries(&layout, Vec::new()),
            checked,
        }
    }

    /// Opens and maps an existing segment file and checks its header. `writable` maps it for
    /// writing (the store); otherwise it is opened and mapped read-only.
    pub(crate) fn open(path: &Path, id: u64, writable: bool) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(io_err("opening", path))?;
        let len = file
            .metadata()
            .map_err(io_err("reading metadata of", path))?
            .len();
        // Checked before the file is mapped: a file shorter than a header cannot be mapped whole.
        let head = FileSource::new(
            path.to_path_buf(),
            file.try_clone().map_err(io_err("opening", path))?,
            len,
        );
        let checked = rules::check_header(&head, Some(id)).map_err(io_err("reading", path))??;
        let map = if writable {
            Mapping::read_write(&file)
        } else {
            Mapping::read_only(&file)
        }
        .map_err(io_err("mapping", path))?;
        Ok(Segment {
            path: path.to_path_buf(),
            file,
            map,
            checked,
            index: SparseIndex::unknown(),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.checked.id
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.checked.layout
    }

    pub(crate) fn binding(&self) -> Binding {
        self.checked.binding()
    }

    /// Sequence number of the first record the segment holds or will hold.
    pub(crate) fn base_seq(&self) -> u64 {
        self.checked.base_seq
    }

    /// What the header says, for the rules.
    pub(crate) fn checked(&self) -> &Checked {
        &self.checked
    }

    /// The segment's bytes through its mapping, for the rules, lent without copying. Only while
    /// nothing writes them: a writable open holding the lock, before any writer or reader exists.
    pub(crate) fn still_source(&self) -> StableMapping<'_> {
        StableMapping::new(&self.path, &self.map)
    }

    /// The segment's bytes read by copy, for the rules: for a reader that does not hold the lock
    /// while a writer may be changing them. Reads through a second descriptor of the file.
    pub(crate) fn copying_source(&self) -> io::Result<FileSource> {
        let file = self.file.try_clone()?;
        Ok(FileSource::new(
            self.path.clone(),
            file,
            self.map.len() as u64,
        ))
    }

    /// The segment's bytes `0..end`. `end` must be at most a published end (or the end of the
    /// records of a sealed segment): see [`Mapping::stable_range`].
    pub(crate) fn bytes(&self, end: u64) -> Result<&[u8]> {
        self.map.stable_range(0, end as usize).ok_or_else(|| {
            Error::corruption(
                &self.path,
                end,
                None,
                "read past the end of the segment mapping",
            )
        })
    }

    /// msync (and what the platform adds) of `start..start + len`, through the fault seam.
    pub(crate) fn flush(&self, sys: &Sys, start: u64, len: u64) -> io::Result<()> {
        sys.flush(
            SysOp::Flush,
            &self.map,
            &self.file,
            &self.path,
            start as usize,
            len as usize,
        )
    }

    /// Copies a record (`header`, then `payload`) into the mapping at `offset`. Not durable and
    /// not visible until the writer flushes and publishes it.
    ///
    /// # Safety
    ///
    /// The caller is the one writer of this segment (it holds the writer's lock) and `offset` is
    /// at or past the end it has published: no reader slices those bytes and nobody else writes
    /// them.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn write_record(
        &self,
        offset: u64,
        header: &RecordHeader,
        payload: &[u8],
    ) -> io::Result<()> {
        // SAFETY: the caller's contract is exactly `Mapping::write`'s.
        unsafe {
            self.map.write(offset as usize, header.as_bytes())?;
            self.map
                .write((offset + RECORD_HEADER_LEN) as usize, payload)
        }
    }

    /// Zeroes and flushes the torn tail `start..start + len` that recovery cuts.
    ///
    /// # Safety
    ///
    /// Only by a writable open holding the directory's lock, before the segment is given to any
    /// writer or reader: nothing else can slice or write these bytes yet.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn cut_torn_tail(&self, sys: &Sys, start: u64, len: u64) -> io::Result<()> {
        // SAFETY: the caller's contract is `Mapping::zero`'s, for a segment no one else holds.
        unsafe { self.map.zero(start as usize, len as usize)? };
        self.flush(sys, start, len)
    }

    /// Seals the segment: persists its sparse index and the footer, and flushes them. The caller
    /// (the background preparer after a rotation, or recovery) guarantees that the records
    /// `first..=last` end at `data_end`, are durable, and that nothing appends to the segment
    /// any more.
    #[allow(unsafe_code)]
    pub(crate) fn seal(&self, sys: &Sys, first: u64, last: u64, data_end: u64) -> Result<()> {
        let layout = self.layout();
        let entries = self.index.snapshot();
        let footer = format::encode_footer(self.binding(), first, last, data_end, &entries);
        let index_offset = layout.index_offset() as usize;
        let write = || -> io::Result<()> {
            // SAFETY: the index region and the footer lie past `data_limit`, where no record is
            // ever written, and no writer appends to a segment being sealed (the caller's
            // promise). No reader slices them: readers of this process slice records only, and
            // read a footer and a persisted index only of a segment recovery found sealed, which
            // is never sealed again. Readers in other processes read them by copy.
            unsafe {
                self.map.write(index_offset, entries.as_bytes())?;
                self.map
                    .write(layout.footer_offset as usize, footer.as_bytes())?;
            }
            let len = layout.size as usize - index_offset;
            sys.flush(
                SysOp::Seal,
                &self.map,
                &self.file,
                &self.path,
                index_offset,
                len,
            )
        };
        write().map_err(io_err("sealing", &self.path))
    }

    /// The segment was found sealed: its index is the persisted one, loaded on first use.
    pub(crate) fn set_persisted_index(&self, seal: Seal) {
        self.index.set_persisted(seal);
    }

    /// Replaces the in-memory index (after a scan).
    pub(crate) fn set_index(&self, entries: Vec<IndexEntry>) {
        self.index.set(self.layout(), entries);
    }

    /// Adds the index entry of record `seq` at `offset` (the writer, when its cursor says so).
    pub(crate) fn push_index(&self, seq: u64, offset: u64) {
        self.index.push(seq, offset);
    }

    /// Drops index entries at or past `offset`, and gives the index cursor for what remains.
    pub(crate) fn truncate_index(&self, offset: u64) -> Cursor {
        self.index.truncate(self.layout(), offset)
    }

    /// The index cursor of a writer that continues this segment.
    pub(crate) fn index_cursor(&self) -> Cursor {
        self.index.cursor(self.layout())
    }

    /// The index entry with the largest sequence number `<= seq`, as `(seq, offset)`; the first
    /// record of the segment if the index has none. Loads a persisted index on first use,
    /// validating it, and rebuilds it by scanning the records if it is damaged.
    pub(crate) fn index_floor(&self, seq: u64) -> Result<(u64, u64)> {
        let found = self
            .index
            .floor(seq, |seal| self.load_persisted_index(seal))?;
        Ok(found.unwrap_or((self.base_seq(), self.layout().data_start())))
    }

    fn load_persisted_index(&self, seal: &Seal) -> Result<Vec<IndexEntry>> {
        // A sealed segment's bytes do not change any more: they can be lent.
        let src = self.still_source();
        let read_err = io_err("reading", &self.path);
        match rules::persisted_index(&src, &self.checked, seal).map_err(read_err)? {
            Ok(entries) => Ok(entries),
            // The index is a cache of what the records say: rebuild it from them.
            Err(_) => {
                let scan = rules::scan_prefix(&src, &self.checked, seal.data_end)
                    .map_err(io_err("reading", &self.path))?;
                match rules::seal_extent_damage(&self.path, seal, scan.end, scan.next_seq) {
                    Some(damage) => Err(damage.into()),
                    None => Ok(scan.index),
                }
            }
        }
    }
}

/// A segment together with the records of it that a reader may see: `first_seq..next_seq`,
/// ending at byte `end`. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct SegmentView {
    pub(crate) seg: Arc<Segment>,
    pub(crate) first_seq: u64,
    pub(crate) next_seq: u64,
    pub(crate) end: u64,
}

impl SegmentView {
    /// The view of a segment with no records yet.
    pub(crate) fn empty(seg: Arc<Segment>, first_seq: u64) -> SegmentView {
        let end = seg.layout().data_start();
        SegmentView {
            seg,
            first_seq,
            next_seq: first_seq,
            end,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next_seq == self.first_seq
    }
}
