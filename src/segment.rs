//! One segment file: naming, creation (temporary name, real blocks, header, sync, rename,
//! directory sync), mapping, sealing, and its sparse index.
//!
//! A `Segment` never decides what is valid in it; `recovery` does that. It never writes below a
//! published end; the writer that owns the active segment decides where to write.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use zerocopy::IntoBytes;
use zerocopy::byteorder::little_endian::U64;

use crate::error::{Error, Result};
use crate::format::{self, Binding, IndexEntry, Layout, Seal};
use crate::mmap::Mapping;
use crate::recovery;
use crate::sys::Sys;

const SEGMENT_SUFFIX: &str = ".seg";
/// The `action` of the `Error::Io` for a failed block allocation of a new segment, and of one
/// for a failed creation of its temporary file. The writer tells a full disk at these steps
/// (harmless, not poisoning: nothing of the log changed) from every other failure by them.
pub(crate) const ALLOCATING: &str = "allocating";
pub(crate) const CREATING: &str = "creating";
const TEMP_SUFFIX: &str = ".seg.tmp";
const SPARE_SUFFIX: &str = ".spare";
/// Most index entries reserved ahead per segment: 1 MiB, enough for the default geometry
/// (64 MiB segments, an entry per 4 KiB: 16,386 entries, 256 KiB).
const INDEX_RESERVE_MAX: usize = 65_536;

/// The file name of segment `id`: 20 zero-padded decimal digits, so names sort like numbers.
pub(crate) fn file_name(id: u64) -> String {
    format!("{id:020}{SEGMENT_SUFFIX}")
}

fn temp_name(id: u64) -> String {
    format!("{id:020}{TEMP_SUFFIX}")
}

/// The file name of the spare made ahead of need to become segment `id` (see [`Spare`]).
pub(crate) fn spare_name(id: u64) -> String {
    format!("{id:020}{SPARE_SUFFIX}")
}

/// What a directory entry's name says it is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DirEntryKind {
    Segment(u64),
    Temp(u64),
    Spare(u64),
}

/// Parses a name made by [`file_name`], [`spare_name`] or the temporary name used while
/// creating either.
pub(crate) fn parse_name(name: &str) -> Option<DirEntryKind> {
    let (digits, kind): (&str, fn(u64) -> DirEntryKind) =
        if let Some(d) = name.strip_suffix(TEMP_SUFFIX) {
            (d, DirEntryKind::Temp)
        } else if let Some(d) = name.strip_suffix(SPARE_SUFFIX) {
            (d, DirEntryKind::Spare)
        } else {
            (name.strip_suffix(SEGMENT_SUFFIX)?, DirEntryKind::Segment)
        };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(kind(digits.parse().ok()?))
}

/// A file made ahead of need to become the next segment: allocated and synced, under its spare
/// name, all zero. The writer turns it into a segment at rotation ([`Spare::activate`]) with a
/// header flush and a rename: no file creation, allocation, file sync or directory sync on the
/// append path.
///
/// Recovery tells the states apart (FORMAT.md, "Spare segments"): a spare without a valid header
/// was never used (and has nothing past its header); a spare with a valid header lost only its
/// activating rename, and is the log's next segment.
#[derive(Debug)]
pub(crate) struct Spare {
    pub(crate) id: u64,
    path: PathBuf,
    file: File,
    map: Mapping,
    layout: Layout,
}

/// How much of a spare is prefaulted writable (see [`Spare::create`]).
const PREFAULT_BYTES: usize = 1 << 20;

impl Spare {
    /// Creates spare `id` in `dir`: temporary name, blocks allocated, synced, renamed to its
    /// spare name, directory synced, mapped.
    pub(crate) fn create(sys: &Sys, dir: &Path, id: u64, layout: Layout) -> Result<Spare> {
        let temp = dir.join(temp_name(id));
        let path = dir.join(spare_name(id));
        let made = (|| {
            let file = allocated_temp(sys, &temp, layout.size)?;
            sys.sync_file(&file, &temp)
                .map_err(io_err("syncing", &temp))?;
            sys.rename(&temp, &path)
                .map_err(io_err("renaming", &temp))?;
            sys.sync_dir(dir)
                .map_err(io_err("syncing directory", dir))?;
            let map = Mapping::read_write(&file).map_err(io_err("mapping", &path))?;
            // The first store into a fresh segment cost 2 ms (measured: the header write of
            // an 8 MiB segment on ext4; a page fault plus the file system's work on a block
            // that is allocated but never written). Done here, off the append path, for the
            // first MiB. Not for the whole segment: the prefaulted pages are written back as
            // zeros, and for whole segments bulk write bandwidth (W3) measured 0.34-0.45 x its
            // floor against 0.51-0.56 x with the first MiB only.
            map.prefault_write(PREFAULT_BYTES);
            Ok(Spare {
                id,
                path: path.clone(),
                file,
                map,
                layout,
            })
        })();
        if made.is_err() {
            // Best effort: leftovers are removed by the next open.
            let _ = std::fs::remove_file(&temp);
        }
        made
    }

    /// Removes the unused spare. Best effort, and not a durability call (it bypasses the fault
    /// seam): a spare left behind holds nothing, and the next open removes it.
    pub(crate) fn discard(self) {
        drop(self.map);
        let _ = std::fs::remove_file(&self.path);
    }

    /// Makes the spare segment `self.id` of log `log_id`, starting at `base_seq`: writes its
    /// header, flushes it, then renames the file to its segment name. A file with a segment name
    /// therefore always has a durable header; a crash before the rename leaves a spare with a
    /// header, which recovery recognises (see [`Spare`]).
    pub(crate) fn activate(
        self,
        sys: &Sys,
        dir: &Path,
        log_id: u64,
        base_seq: u64,
    ) -> Result<Segment> {
        let path = dir.join(file_name(self.id));
        let header = format::encode_segment_header(&self.layout, log_id, self.id, base_seq);
        let header_len = header.as_bytes().len();
        self.map
            .write(0, header.as_bytes())
            .map_err(io_err("writing the header of", &self.path))?;
        sys.flush(&self.map, &self.file, &self.path, 0, header_len)
            .map_err(io_err("flushing the header of", &self.path))?;
        sys.rename(&self.path, &path)
            .map_err(io_err("renaming", &self.path))?;
        Ok(Segment::new(
            self.id,
            path,
            self.file,
            self.map,
            self.layout,
            log_id,
            base_seq,
        ))
    }
}

/// Creates (or empties) `temp` and allocates `len` bytes of real blocks to it.
fn allocated_temp(sys: &Sys, temp: &Path, len: u64) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)
        .map_err(io_err(CREATING, temp))?;
    sys.allocate(&file, temp, len)
        .map_err(io_err(ALLOCATING, temp))?;
    Ok(file)
}

/// The sparse index of a segment: built in memory while the segment is written or scanned, or
/// still on disk (persisted at seal time) and loaded on first use.
#[derive(Debug)]
enum IndexState {
    Loaded(Vec<IndexEntry>),
    Persisted(Seal),
}

/// An open, mapped segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    /// Kept open for the segment's lifetime: the writer fsyncs through it, and a descriptor
    /// closed after a failed writeback could hide the error from the next fsync.
    pub(crate) file: File,
    pub(crate) map: Mapping,
    pub(crate) layout: Layout,
    pub(crate) binding: Binding,
    /// Sequence number of the first record the segment holds or will hold.
    pub(crate) base_seq: u64,
    index: RwLock<IndexState>,
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |e| Error::io(action, path, e)
}

impl Segment {
    /// Creates segment `id` in `dir`: written under a temporary name, its blocks allocated, its
    /// header written and synced, renamed into place and the directory synced. Only then is it
    /// mapped and returned, so no record is ever acknowledged in a file that a crash could lose.
    pub(crate) fn create(
        sys: &Sys,
        dir: &Path,
        id: u64,
        log_id: u64,
        base_seq: u64,
        layout: Layout,
    ) -> Result<Segment> {
        let temp = dir.join(temp_name(id));
        let path = dir.join(file_name(id));
        let result = Self::create_at(sys, dir, &temp, &path, id, log_id, base_seq, layout);
        if result.is_err() {
            // Best effort: a leftover temporary file is also removed by the next open.
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn create_at(
        sys: &Sys,
        dir: &Path,
        temp: &Path,
        path: &Path,
        id: u64,
        log_id: u64,
        base_seq: u64,
        layout: Layout,
    ) -> Result<Segment> {
        let mut file = allocated_temp(sys, temp, layout.size)?;
        let header = format::encode_segment_header(&layout, log_id, id, base_seq);
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(header.as_bytes()))
            .map_err(io_err("writing the header of", temp))?;
        sys.sync_file(&file, temp)
            .map_err(io_err("syncing", temp))?;
        sys.rename(temp, path).map_err(io_err("renaming", temp))?;
        sys.sync_dir(dir)
            .map_err(io_err("syncing directory", dir))?;
        let map = Mapping::read_write(&file).map_err(io_err("mapping", path))?;
        Ok(Segment::new(
            id,
            path.to_path_buf(),
            file,
            map,
            layout,
            log_id,
            base_seq,
        ))
    }

    /// A new, empty segment of log `log_id` whose header is written (not necessarily synced).
    fn new(
        id: u64,
        path: PathBuf,
        file: File,
        map: Mapping,
        layout: Layout,
        log_id: u64,
        base_seq: u64,
    ) -> Segment {
        Segment {
            id,
            path,
            file,
            map,
            layout,
            binding: Binding {
                log_id,
                segment_id: id,
            },
            base_seq,
            index: RwLock::new(IndexState::Loaded(Self::index_with_room(
                &layout,
                Vec::new(),
            ))),
        }
    }

    /// `entries` with room for every entry the segment can get, reserved up front so that
    /// appending never allocates (virtual memory only: untouched pages cost no RAM). Capped at
    /// [`INDEX_RESERVE_MAX`] entries; a larger index grows as usual.
    fn index_with_room(layout: &Layout, mut entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
        let room = usize::try_from(layout.max_index_entries)
            .unwrap_or(INDEX_RESERVE_MAX)
            .min(INDEX_RESERVE_MAX);
        entries.reserve(room.saturating_sub(entries.len()));
        entries
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
        if len < format::SEGMENT_HEADER_LEN {
            return Err(Error::corruption(
                path,
                0,
                None,
                format!("segment file is {len} bytes, shorter than its header"),
            ));
        }
        let map = if writable {
            Mapping::read_write(&file)
        } else {
            Mapping::read_only(&file)
        }
        .map_err(io_err("mapping", path))?;
        // The header is written once, before the file gets its final name, and never again.
        let header_bytes = map
            .stable_range(0, format::SEGMENT_HEADER_LEN as usize)
            .unwrap_or(&[]);
        let (header, layout) =
            format::decode_segment_header(header_bytes).map_err(|e| match e {
                format::HeaderError::UnsupportedVersion(version) => Error::UnsupportedVersion {
                    file: path.to_path_buf(),
                    version,
                },
                e => Error::corruption(path, 0, None, e.to_string()),
            })?;
        if layout.size != len {
            return Err(Error::corruption(
                path,
                0,
                None,
                format!(
                    "segment file is {len} bytes but its header says {}",
                    layout.size
                ),
            ));
        }
        if header.segment_id.get() != id {
            return Err(Error::corruption(
                path,
                0,
                None,
                format!(
                    "header says segment {} but the file name says {id}",
                    header.segment_id.get()
                ),
            ));
        }
        Ok(Segment {
            id,
            path: path.to_path_buf(),
            file,
            map,
            layout,
            binding: Binding {
                log_id: header.log_id.get(),
                segment_id: id,
            },
            base_seq: header.base_seq.get(),
            index: RwLock::new(IndexState::Loaded(Vec::new())),
        })
    }

    /// The segment's bytes `0..end`. `end` must be at most a published end (or, for a sealed
    /// segment, its size): see [`Mapping::stable_range`].
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

    /// The seal footer, if the segment is sealed. Only for segments nobody writes any more.
    pub(crate) fn read_seal(&self) -> Result<Option<Seal>, String> {
        let whole = self
            .map
            .stable_range(0, self.map.len())
            .ok_or("segment mapping unreadable")?;
        format::decode_footer(whole, &self.layout, self.binding)
    }

    /// Seals the segment: persists its sparse index and the footer, and flushes them.
    /// The caller (the writer, holding its lock) guarantees the records `first..=last` end at
    /// `data_end` and are durable.
    pub(crate) fn seal(&self, sys: &Sys, first: u64, last: u64, data_end: u64) -> Result<()> {
        let entries = self.index_snapshot();
        let footer = format::encode_footer(self.binding, first, last, data_end, &entries);
        let index_offset = self.layout.index_offset() as usize;
        let write = || -> std::io::Result<()> {
            self.map.write(index_offset, entries.as_bytes())?;
            self.map
                .write(self.layout.footer_offset as usize, footer.as_bytes())?;
            let len = self.layout.size as usize - index_offset;
            sys.seal(&self.map, &self.file, &self.path, index_offset, len)
        };
        write().map_err(io_err("sealing", &self.path))
    }

    /// Marks the segment as sealed on disk with its index not yet loaded.
    pub(crate) fn set_persisted_index(&self, seal: Seal) {
        if let Ok(mut g) = self.index.write() {
            *g = IndexState::Persisted(seal);
        }
    }

    /// Replaces the in-memory index (after a scan).
    pub(crate) fn set_index(&self, entries: Vec<IndexEntry>) {
        let entries = Self::index_with_room(&self.layout, entries);
        if let Ok(mut g) = self.index.write() {
            *g = IndexState::Loaded(entries);
        }
    }

    /// Adds an index entry for the record `seq` at `offset` (the writer, in order).
    pub(crate) fn push_index(&self, seq: u64, offset: u64) {
        if let Ok(mut g) = self.index.write()
            && let IndexState::Loaded(v) = &mut *g
        {
            v.push(IndexEntry {
                seq: U64::new(seq),
                offset: U64::new(offset),
            });
        }
    }

    /// Drops index entries at or past `offset` (a batch that failed before it was published).
    pub(crate) fn truncate_index(&self, offset: u64) {
        if let Ok(mut g) = self.index.write()
            && let IndexState::Loaded(v) = &mut *g
        {
            v.retain(|e| e.offset.get() < offset);
        }
    }

    fn index_snapshot(&self) -> Vec<IndexEntry> {
        match self.index.read().as_deref() {
            Ok(IndexState::Loaded(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// The index entry with the largest sequence number `<= seq`, as `(seq, offset)`; the first
    /// record of the segment if the index has none. Loads a persisted index on first use,
    /// validating it, and rebuilds it by scanning the records if it is damaged.
    pub(crate) fn index_floor(&self, seq: u64) -> Result<(u64, u64)> {
        let guard = self.loaded_index()?;
        let IndexState::Loaded(entries) = &*guard else {
            return Ok((self.base_seq, self.layout.data_start()));
        };
        let i = entries.partition_point(|e| e.seq.get() <= seq);
        Ok(match i.checked_sub(1).and_then(|i| entries.get(i)) {
            Some(e) => (e.seq.get(), e.offset.get()),
            None => (self.base_seq, self.layout.data_start()),
        })
    }

    fn loaded_index(&self) -> Result<RwLockReadGuard<'_, IndexState>> {
        let poisoned = || Error::Poisoned {
            cause: "a thread panicked while holding a segment index".into(),
        };
        {
            let guard = self.index.read().map_err(|_| poisoned())?;
            if matches!(*guard, IndexState::Loaded(_)) {
                return Ok(guard);
            }
        }
        {
            let mut guard = self.index.write().map_err(|_| poisoned())?;
            if let IndexState::Persisted(seal) = *guard {
                *guard = IndexState::Loaded(self.load_persisted_index(&seal)?);
            }
        }
        self.index.read().map_err(|_| poisoned())
    }

    fn load_persisted_index(&self, seal: &Seal) -> Result<Vec<IndexEntry>> {
        let whole = self.bytes(self.layout.size)?;
        match format::decode_index(whole, &self.layout, self.binding, seal) {
            Ok(entries) => Ok(entries),
            // The index is a cache of what the records say: rebuild it from them.
            Err(_) => {
                let scan = recovery::scan_records(self, seal.data_end, self.base_seq)?;
                if scan.end != seal.data_end || scan.next_seq != seal.last_seq + 1 {
                    return Err(Error::corruption(
                        &self.path,
                        scan.end,
                        Some(scan.next_seq),
                        format!(
                            "sealed segment should hold records {}..={} ending at offset {}",
                            seal.first_seq, seal.last_seq, seal.data_end
                        ),
                    ));
                }
                Ok(scan.index)
            }
        }
    }
}

/// A segment together with the records of it that a reader may see: `first_seq..next_seq`,
/// ending at byte `end`. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct SegmentView {
    pub(crate) seg: std::sync::Arc<Segment>,
    pub(crate) first_seq: u64,
    pub(crate) next_seq: u64,
    pub(crate) end: u64,
}

impl SegmentView {
    pub(crate) fn is_empty(&self) -> bool {
        self.next_seq == self.first_seq
    }
}

/// Where the writer adds the next index entry after one at `offset`: the start of the next
/// `interval`-sized block of the data region.
pub(crate) fn next_index_boundary(layout: &Layout, offset: u64) -> u64 {
    let start = layout.data_start();
    start + ((offset - start) / layout.index_interval + 1) * layout.index_interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(parse_name(&file_name(id)), Some(DirEntryKind::Segment(id)));
            assert_eq!(parse_name(&temp_name(id)), Some(DirEntryKind::Temp(id)));
            assert_eq!(parse_name(&spare_name(id)), Some(DirEntryKind::Spare(id)));
        }
        assert_eq!(file_name(7), "00000000000000000007.seg");
        for bad in [
            "wal.lock",
            "7.seg",
            "0000000000000000000x.seg",
            "00000000000000000007.segx",
            "00000000000000000007.spare.tmp",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
