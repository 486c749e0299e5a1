//! Open-time recovery: list the segments, check that they form one gap-free log, find the end of
//! the records in the active segment and decide whether what follows it is a torn tail (cut it)
//! or damaged acknowledged data (refuse, with the location).
//!
//! The rules, and why they are safe, are in FORMAT.md ("Recovery"). This module reads; the only
//! writes it makes (with a writable store) are zeroing a torn tail and sealing segments that a
//! crash left unsealed, both before any reader exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::events::event;
use crate::format::{self, IndexEntry, RECORD_ALIGN, RECORD_HEADER_LEN};
use crate::segment::{self, DirEntryKind, Segment, SegmentView};
use crate::sys::Sys;
use zerocopy::byteorder::little_endian::U64;

/// The valid prefix of a segment's records.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Sequence number after the last valid record (the first one if none).
    pub(crate) next_seq: u64,
    /// Offset just past the last valid record.
    pub(crate) end: u64,
    /// The sparse index of the valid records.
    pub(crate) index: Vec<IndexEntry>,
}

/// What follows the last valid record of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Only zeros.
    Clean,
    /// Bytes of records that never became durable, up to `garbage_end`.
    Torn { garbage_end: u64 },
}

/// Reads records from the start of `seg` while they are valid, numbered from `base_seq`, and
/// complete (a batch counts only with its last record), stopping at `limit`.
pub(crate) fn scan_records(seg: &Segment, limit: u64, base_seq: u64) -> Result<Scan> {
    let layout = &seg.layout;
    let limit = limit.min(layout.data_limit);
    let region = seg.bytes(limit)?;
    let mut committed = Scan {
        next_seq: base_seq,
        end: layout.data_start(),
        index: Vec::new(),
    };
    // Entries of the records read so far; only the first `committed_entries` belong to complete
    // batches (an unfinished batch's entries are dropped at the end).
    let mut index = Vec::new();
    let mut committed_entries = 0;
    let mut next_index_at = layout.data_start();
    let (mut off, mut seq) = (layout.data_start(), base_seq);
    while let Ok((loc, _)) = format::decode_record(region, off, limit, seg.binding) {
        if loc.header.seq.get() != seq {
            break;
        }
        if off >= next_index_at {
            index.push(IndexEntry {
                seq: U64::new(seq),
                offset: U64::new(off),
            });
            next_index_at = segment::next_index_boundary(layout, off);
        }
        seq += 1;
        off = loc.next;
        if loc.header.flags & format::FLAG_BATCH_CONTINUES == 0 {
            committed.next_seq = seq;
            committed.end = off;
            committed_entries = index.len();
        }
    }
    index.truncate(committed_entries);
    committed.index = index;
    Ok(committed)
}

/// Looks at the bytes after `scan.end` in the data region. Zeros: clean. Otherwise it is a torn
/// tail, unless a valid record further on proves that the record at `scan.end` had already been
/// made durable (then acknowledged data is damaged) or that the bytes are foreign.
pub(crate) fn classify_tail(seg: &Segment, scan: &Scan) -> Result<Tail> {
    let limit = seg.layout.data_limit;
    let region = seg.bytes(limit)?;
    let start = scan.end as usize;
    let Some(last_nonzero) = last_nonzero_byte(&region[start..]) else {
        return Ok(Tail::Clean);
    };
    let garbage_end = ((start + last_nonzero + 1) as u64).div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    let expected = scan.next_seq;
    let damaged = |detail: String| Error::corruption(&seg.path, scan.end, Some(expected), detail);
    let mut p = scan.end;
    while p + RECORD_HEADER_LEN <= garbage_end {
        if let Ok((loc, _)) = format::decode_record(region, p, limit, seg.binding) {
            let seq = loc.header.seq.get();
            if seq < expected {
                return Err(damaged(format!(
                    "record {seq} at offset {p} lies past the end of the valid records"
                )));
            }
            let durable_when_written =
                (seq - 1).saturating_sub(u64::from(loc.header.unsynced_before.get()));
            if durable_when_written >= expected {
                return Err(damaged(format!(
                    "the record here is invalid, but record {seq} at offset {p} was written after \
                     it had been made durable"
                )));
            }
            p = loc.next;
        } else {
            p += RECORD_ALIGN;
        }
    }
    Ok(Tail::Torn { garbage_end })
}

/// Index of the last non-zero byte, reading 4 KiB at a time so the common all-zero case runs at
/// memory speed.
fn last_nonzero_byte(bytes: &[u8]) -> Option<usize> {
    const CHUNK: usize = 4096;
    let last_chunk = bytes
        .chunks(CHUNK)
        .rposition(|c| c.iter().fold(0u8, |a, &b| a | b) != 0)?;
    let base = last_chunk * CHUNK;
    let chunk = &bytes[base..(base + CHUNK).min(bytes.len())];
    chunk.iter().rposition(|&b| b != 0).map(|i| base + i)
}

/// Bytes that opening a store cut from the end of the log: the unfinished write of a crash.
///
/// A crash (or power loss) during an append leaves part of its bytes on disk. Those bytes were
/// never acknowledged, so recovery removes them: it zeroes them on disk and the log continues
/// after the last complete record. The same picture results if the *last* flushed write of the
/// log was damaged after its acknowledgement, with nothing written after it that could prove it
/// had been durable; the two cannot be told apart from the bytes. [`WalStore::torn_tail`]
/// reports the cut so that it is never silent: an application that knows it acknowledged
/// sequence numbers up to `next_seq` or beyond learns that data was lost.
///
/// [`WalStore::torn_tail`]: crate::WalStore::torn_tail
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The segment file that held the bytes.
    pub file: PathBuf,
    /// Offset of the first byte cut (just past the last complete record).
    pub offset: u64,
    /// How many bytes were cut (zeroed), rounded up to the record alignment.
    pub len: u64,
    /// The sequence number the log continues with: the first one the cut bytes could have held.
    pub next_seq: u64,
}

/// The recovered state of a log directory.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Every segment, oldest first, with its durable records.
    pub(crate) views: Vec<SegmentView>,
    /// The log's identifier, if it has any segment.
    pub(crate) log_id: Option<u64>,
    /// The last segment was found sealed: the writer must rotate before appending.
    pub(crate) last_sealed: bool,
    /// The torn tail found at the end of the last segment, if any.
    pub(crate) torn_tail: Option<TornTail>,
}

/// Recovers the log in `dir`. With `writable` (the store, holding the lock) it removes leftover
/// temporary files, zeroes a torn tail and seals segments a crash left unsealed; without, it
/// only reads.
pub(crate) fn recover(dir: &Path, writable: bool, sys: &Sys) -> Result<Recovered> {
    let mut relists = 0;
    loop {
        match recover_listed(dir, writable, sys) {
            // A read-only opener can lose the race with a live writer completely: the newest
            // segment it listed was filled, sealed and truncated before it got to open it. Its
            // listing is stale, so it lists again.
            Err(Error::Io { source, .. })
                if !writable
                    && relists < LIVE_RESCANS
                    && source.kind() == std::io::ErrorKind::NotFound
                    && dir.is_dir() =>
            {
                relists += 1;
            }
            done => return done,
        }
    }
}

fn recover_listed(dir: &Path, writable: bool, sys: &Sys) -> Result<Recovered> {
    let mut ids = Vec::new();
    let mut spares = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let name = entry.file_name();
        match name.to_str().and_then(segment::parse_name) {
            Some(DirEntryKind::Segment(id)) => ids.push(id),
            Some(DirEntryKind::Spare(id)) => spares.push(id),
            Some(DirEntryKind::Temp(_)) if writable => {
                let path = entry.path();
                sys.unlink(&path)
                    .map_err(|e| Error::io("removing", &path, e))?;
                event!(info, "removed unfinished segment file {}", path.display());
            }
            _ => {}
        }
    }
    ids.sort_unstable();
    spares.sort_unstable();
    for pair in ids.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(Error::corruption(
                dir.join(segment::file_name(pair[0] + 1)),
                0,
                None,
                format!(
                    "segment {} is missing between segments {} and {}",
                    pair[0] + 1,
                    pair[0],
                    pair[1]
                ),
            ));
        }
    }
    let mut files: Vec<(u64, PathBuf)> = ids
        .iter()
        .map(|&id| (id, dir.join(segment::file_name(id))))
        .collect();
    settle_spares(dir, writable, sys, &spares, &mut files)?;

    let mut views: Vec<SegmentView> = Vec::with_capacity(files.len());
    let mut log_id = None;
    let mut last_sealed = false;
    let mut torn_tail = None;
    for (i, (id, path)) in files.iter().enumerate() {
        let (id, is_last) = (*id, i + 1 == files.len());
        let seg = match Segment::open(path, id, writable) {
            Ok(seg) => seg,
            // A read-only opener races with the writer's truncate_before, which deletes the
            // oldest segments in order: a segment that vanished between listing and opening
            // means every older one is gone too. Dropping those already opened keeps the log
            // gap-free; it now starts after the vanished one. (The newest segment is never
            // deleted, so its absence stays an error.)
            Err(Error::Io { source, .. })
                if !writable && !is_last && source.kind() == std::io::ErrorKind::NotFound =>
            {
                views.clear();
                continue;
            }
            Err(e) => return Err(e),
        };
        let this_log = seg.binding.log_id;
        if *log_id.get_or_insert(this_log) != this_log {
            return Err(Error::corruption(
                &seg.path,
                0,
                None,
                "segment belongs to another log (log id differs)",
            ));
        }
        if let Some(prev) = views.last()
            && seg.base_seq != prev.next_seq
        {
            return Err(Error::corruption(
                &seg.path,
                0,
                Some(prev.next_seq),
                format!(
                    "segment starts at sequence {} but the previous one ends before {}",
                    seg.base_seq, prev.next_seq
                ),
            ));
        }
        let (view, sealed, torn) = recover_segment(seg, is_last, writable, sys)?;
        last_sealed = sealed && is_last;
        torn_tail = torn;
        views.push(view);
    }
    Ok(Recovered {
        views,
        log_id,
        last_sealed,
        torn_tail,
    })
}

/// Resolves the spare files (see [`segment::Spare`] and FORMAT.md, "Spare segments"). A spare
/// with a valid header is a segment whose activating rename a crash lost: it joins the log as
/// the next segment (renamed now by a writable open). A spare without one was never used (a
/// crash may have torn its header flush), and nothing was ever written past its header: a
/// writable open removes it. Anything else is damage.
fn settle_spares(
    dir: &Path,
    writable: bool,
    sys: &Sys,
    spares: &[u64],
    files: &mut Vec<(u64, PathBuf)>,
) -> Result<()> {
    let mut removed = false;
    for &id in spares {
        let spare = dir.join(segment::spare_name(id));
        let is_next = files.last().is_some_and(|(last, _)| id == last + 1);
        match spare_state(&spare, writable)? {
            SpareState::Unused => {
                if writable {
                    sys.unlink(&spare)
                        .map_err(|e| Error::io("removing", &spare, e))?;
                    removed = true;
                }
            }
            SpareState::Activated if is_next && writable => {
                let path = dir.join(segment::file_name(id));
                sys.rename(&spare, &path)
                    .map_err(|e| Error::io("renaming", &spare, e))?;
                sys.sync_dir(dir)
                    .map_err(|e| Error::io("syncing directory", dir, e))?;
                event!(
                    info,
                    "{} was in use: renamed to {}",
                    spare.display(),
                    path.display()
                );
                files.push((id, path));
            }
            SpareState::Activated if is_next => files.push((id, spare)),
            state => {
                return Err(Error::corruption(
                    spare,
                    0,
                    None,
                    match state {
                        SpareState::Activated => {
                            "a spare segment file has a header but does not continue the log"
                        }
                        _ => "a spare segment file without a valid header holds data",
                    },
                ));
            }
        }
    }
    if removed {
        sys.sync_dir(dir)
            .map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum SpareState {
    /// No valid header, nothing past it.
    Unused,
    /// A valid header (of any format version: the segment open reports a newer one).
    Activated,
    /// No valid header, but bytes past it.
    Damaged,
}

/// What the spare file at `path` is. Only a writable open, which removes an unused spare, reads
/// more than its header to make sure nothing was written past it.
fn spare_state(path: &Path, writable: bool) -> Result<SpareState> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut header = Vec::with_capacity(format::SEGMENT_HEADER_LEN as usize);
    (&mut file)
        .take(format::SEGMENT_HEADER_LEN)
        .read_to_end(&mut header)
        .map_err(|e| Error::io("reading", path, e))?;
    if matches!(
        format::decode_segment_header(&header),
        Ok(_) | Err(format::HeaderError::UnsupportedVersion(_))
    ) {
        return Ok(SpareState::Activated);
    }
    if !writable {
        return Ok(SpareState::Unused);
    }
    let map = crate::mmap::Mapping::read_only(&file).map_err(|e| Error::io("mapping", path, e))?;
    let bytes = map.stable_range(0, map.len()).unwrap_or(&[]);
    let past_header = bytes.get(header.len()..).unwrap_or(&[]);
    Ok(
        if header.len() as u64 == format::SEGMENT_HEADER_LEN
            && last_nonzero_byte(past_header).is_none()
        {
            SpareState::Unused
        } else {
            SpareState::Damaged
        },
    )
}

/// How often a read-only opener rescans a segment whose bytes changed while it looked at them.
const LIVE_RESCANS: usize = 1000;

/// Scans `seg` and classifies what follows its records.
///
/// A read-only opener reads a segment that another process may be appending to, so the bytes
/// can change between the scan and the classification: a record caught half-copied by the scan
/// is complete a moment later and the record after it then looks like proof of damage. Damage
/// stays where it is; a live append moves the end forward. So a read-only opener that meets
/// "damage" rescans, and reports it only if the end of the valid records did not move.
fn scan_and_classify(seg: &Segment, writable: bool) -> Result<(Scan, Tail)> {
    let mut scan = scan_records(seg, seg.layout.data_limit, seg.base_seq)?;
    let mut rescans = 0;
    loop {
        match classify_tail(seg, &scan) {
            Ok(tail) => return Ok((scan, tail)),
            Err(e) if writable || rescans == LIVE_RESCANS => return Err(e),
            Err(e) => {
                let again = scan_records(seg, seg.layout.data_limit, seg.base_seq)?;
                if again.end == scan.end {
                    return Err(e);
                }
                scan = again;
                rescans += 1;
            }
        }
    }
}

fn recover_segment(
    seg: Segment,
    is_last: bool,
    writable: bool,
    sys: &Sys,
) -> Result<(SegmentView, bool, Option<TornTail>)> {
    // A valid seal makes the segment's extent known without reading its records. Its checksum
    // binds it to this log and segment, and it is written only after every record it covers was
    // flushed: a seal that does not match the segment's header or first record therefore means
    // acknowledged records were damaged. Scanning instead would cut them as a torn tail and
    // leave a footer that vouches for records that are gone.
    if let Ok(Some(seal)) = seg.read_seal() {
        let region = seg.bytes(seal.data_end)?;
        let first_ok = seal.first_seq == seg.base_seq
            && format::decode_record(region, seg.layout.data_start(), seal.data_end, seg.binding)
                .is_ok_and(|(loc, _)| loc.header.seq.get() == seal.first_seq);
        if !first_ok {
            return Err(Error::corruption(
                &seg.path,
                seg.layout.data_start(),
                Some(seg.base_seq),
                format!(
                    "the segment is sealed as holding records {}..={}, but its first record is \
                     damaged or does not start that range",
                    seal.first_seq, seal.last_seq
                ),
            ));
        }
        seg.set_persisted_index(seal);
        let view = SegmentView {
            first_seq: seal.first_seq,
            next_seq: seal.last_seq + 1,
            end: seal.data_end,
            seg: Arc::new(seg),
        };
        return Ok((view, true, None));
    }
    let (scan, tail) = scan_and_classify(&seg, writable)?;
    let torn = match tail {
        Tail::Torn { garbage_end } => Some(TornTail {
            file: seg.path.clone(),
            offset: scan.end,
            len: garbage_end - scan.end,
            next_seq: scan.next_seq,
        }),
        Tail::Clean => None,
    };
    match tail {
        Tail::Clean => {}
        Tail::Torn { .. } if !is_last => {
            return Err(Error::corruption(
                &seg.path,
                scan.end,
                Some(scan.next_seq),
                "invalid bytes after the last valid record of a segment that is followed by \
                 another (it was fully flushed before the next one was created)",
            ));
        }
        Tail::Torn { garbage_end } if writable => {
            let (start, len) = (scan.end as usize, (garbage_end - scan.end) as usize);
            seg.map
                .zero(start, len)
                .and_then(|()| sys.flush(&seg.map, &seg.file, &seg.path, start, len))
                .map_err(|e| Error::io("zeroing the torn tail of", &seg.path, e))?;
            event!(
                warn,
                "cut a torn tail of {len} bytes at offset {start} of {} (the log continues at \
                 sequence {})",
                seg.path.display(),
                scan.next_seq
            );
        }
        Tail::Torn { .. } => {}
    }
    let has_records = scan.next_seq > seg.base_seq;
    if writable && is_last && has_records {
        // The records found may exist only in the page cache: a process that crashed, or closed
        // in `Manual` mode without syncing, leaves them there, and a power cut would still lose
        // them. Make them durable before they are published or vouched for by a new record's
        // `unsynced_before`. Clean pages cost nothing to flush.
        let (start, len) = (
            seg.layout.data_start() as usize,
            (scan.end - seg.layout.data_start()) as usize,
        );
        sys.flush(&seg.map, &seg.file, &seg.path, start, len)
            .map_err(|e| Error::io("flushing the recovered records of", &seg.path, e))?;
    }
    seg.set_index(scan.index);
    let sealed = if writable && !is_last && has_records {
        seg.seal(sys, seg.base_seq, scan.next_seq - 1, scan.end)?;
        event!(
            info,
            "sealed {} (records {}..={}), left unsealed by a crash",
            seg.path.display(),
            seg.base_seq,
            scan.next_seq - 1
        );
        true
    } else {
        false
    };
    let view = SegmentView {
        first_seq: seg.base_seq,
        next_seq: scan.next_seq,
        end: scan.end,
        seg: Arc::new(seg),
    };
    Ok((view, sealed, torn))
}

#[cfg(test)]
mod tests {
    use super::last_nonzero_byte;

    #[test]
    fn last_nonzero_byte_finds_the_last_one() {
        let mut v = vec![0u8; 10_000];
        assert_eq!(last_nonzero_byte(&v), None);
        v[5] = 1;
        v[4097] = 3;
        assert_eq!(last_nonzero_byte(&v), Some(4097));
        v[9_999] = 1;
        assert_eq!(last_nonzero_byte(&v), Some(9_999));
    }
}
