//! The reference log that every case damages a copy of: built once through the real writer, then
//! kept in memory with what each of its bytes is for (FORMAT.md, "Segment layout"), so that a
//! case can tell which records, headers and caches its damage touched.

use std::path::{Path, PathBuf};

use softadastra_wal::format::{self, Binding, Layout};
use softadastra_wal::{RecordType, SyncMode, WalConfig, WalReader, WalRecord, WalStore};

use crate::support::{Ident, Rng};

/// Small segments keep every copy cheap; 256-byte index intervals give each sealed segment a
/// persisted index of a dozen or more entries.
pub const SEGMENT_SIZE: u64 = 16 << 10;
pub const INDEX_INTERVAL: u64 = 256;
/// The reference log has at least this many sealed segments before its active one.
const SEALED_SEGMENTS: usize = 4;
/// The active segment holds at least this many records when the build stops.
const ACTIVE_RECORDS: u64 = 8;
/// Largest payload of a single append: records of up to ~4 KiB straddle 512-byte sectors and
/// 4 KiB blocks.
const MAX_SINGLE: usize = 3_800;
/// Largest payload of a record in a batch (a batch must fit one segment).
const MAX_BATCH_ITEM: usize = 600;
/// Largest payload of a record in the final batch, so that it fits the active segment.
const MAX_LAST_BATCH_ITEM: usize = 200;

/// The configuration of every log this harness opens.
pub fn config(dir: &Path) -> WalConfig {
    WalConfig::new(dir)
        .segment_size(SEGMENT_SIZE)
        .index_interval(INDEX_INTERVAL)
        .sync_mode(SyncMode::Always)
}

/// What a byte of a segment file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The 64-byte segment header.
    Header,
    /// Header or payload bytes of the record with this sequence number.
    Record(u64),
    /// Zero padding after a payload: not covered by the CRC and never read.
    Padding,
    /// The data region after the last record. In a sealed segment the footer says where the
    /// records end, so these bytes are never read; in the active segment they are where a torn
    /// tail would be.
    Free,
    /// A persisted index entry of a sealed segment: a cache of what the records say.
    IndexUsed,
    /// Index slots past `index_count`, and the index region and footer of the unsealed active
    /// segment: never read.
    Unused,
    /// The seal footer: a cache too (a segment whose footer does not check out is scanned).
    Footer,
}

/// Where a record lies in its segment.
#[derive(Clone, Copy, Debug)]
pub struct Extent {
    pub seq: u64,
    pub offset: u64,
    pub len: u64,
}

impl Extent {
    /// Just past the payload (padding excluded).
    pub fn end(&self) -> u64 {
        self.offset + format::RECORD_HEADER_LEN + self.len
    }
}

/// One segment file of the reference log.
pub struct Segment {
    pub id: u64,
    pub name: String,
    pub bytes: Vec<u8>,
    pub layout: Layout,
    pub base_seq: u64,
    /// One past the last record's sequence number.
    pub next_seq: u64,
    pub sealed: bool,
    pub extents: Vec<Extent>,
    pub index_count: u64,
    /// The role of every byte.
    pub roles: Vec<Role>,
}

/// A copy of a segment file taken right after one write, while the segment was the active one.
pub struct Snapshot {
    /// Index of the segment in [`Reference::segments`].
    pub segment: usize,
    pub bytes: Vec<u8>,
    /// The last sequence number acknowledged when the copy was taken.
    pub last_seq: u64,
}

/// The reference log, in memory.
pub struct Reference {
    /// Oldest first; all but the last are sealed.
    pub segments: Vec<Segment>,
    /// Every record, `records[seq - 1]`, as its append wrote it.
    pub records: Vec<WalRecord>,
    /// For every record (`[seq - 1]`), the first sequence number of the write (single append or
    /// batch) it belonged to: one flush, the unit a torn write can take away.
    pub write_start: Vec<u64>,
    /// The active segment after every write.
    pub snapshots: Vec<Snapshot>,
}

impl Reference {
    /// The number of records (the last sequence number).
    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    /// The expected record with sequence number `seq`.
    pub fn record(&self, seq: u64) -> Option<&WalRecord> {
        seq.checked_sub(1)
            .and_then(|i| self.records.get(usize::try_from(i).ok()?))
    }

    /// The first sequence number of the write that record `seq` belonged to.
    pub fn write_start(&self, seq: u64) -> u64 {
        seq.checked_sub(1)
            .and_then(|i| self.write_start.get(usize::try_from(i).ok()?))
            .copied()
            .unwrap_or(seq)
    }

    pub fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("the reference log has segments")
    }

    /// Total bytes of all segment files.
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes.len() as u64).sum()
    }
}

/// A write of the build plan: the identities it appends (one, or a batch).
struct Write {
    idents: Vec<(Ident, usize)>,
}

/// Builds a log in `dir` through the real writer: single appends with mixed payload sizes and
/// batches of 2-4 records, until it has [`SEALED_SEGMENTS`] sealed segments and an active one
/// with at least [`ACTIVE_RECORDS`] records, the last write being a batch of 3. `writer` makes
/// the payloads of two logs differ.
pub fn build(dir: &Path, writer: u32, seed: u64) -> Result<Reference, String> {
    let store = WalStore::open(config(dir)).map_err(|e| format!("opening {dir:?}: {e}"))?;
    let w = store.writer();
    let mut rng = Rng::new(seed);
    let mut counter = 0u64;
    let mut writes = Vec::new();
    let mut snapshots = Vec::new();
    loop {
        let files = segment_files(dir)?;
        let next = w.next_seq().map_err(|e| format!("next_seq: {e}"))?;
        let active_base = base_seq_of(files.last().ok_or("no segment")?)?;
        let enough = files.len() > SEALED_SEGMENTS && next - active_base >= ACTIVE_RECORDS;
        if enough && writes.last().is_some_and(|w: &Write| w.idents.len() == 3) {
            break;
        }
        let (count, cap) = if enough {
            (3, MAX_LAST_BATCH_ITEM)
        } else if rng.one_in(4) {
            (rng.range(2, 4) as usize, MAX_BATCH_ITEM)
        } else {
            (1, MAX_SINGLE)
        };
        let idents: Vec<(Ident, usize)> = (0..count)
            .map(|_| {
                counter += 1;
                let who = Ident::new(writer, counter);
                (who, who.len(cap))
            })
            .collect();
        append(&w, &idents, next)?;
        writes.push(Write { idents });
        let files = segment_files(dir)?;
        let last = files.last().ok_or("no segment")?;
        snapshots.push(Snapshot {
            segment: files.len() - 1,
            bytes: std::fs::read(last).map_err(|e| format!("reading {last:?}: {e}"))?,
            last_seq: next + count as u64 - 1,
        });
    }
    drop(w);
    drop(store);
    let (records, write_start) = expected_records(dir, &writes)?;
    let segments = segment_files(dir)?
        .iter()
        .map(|p| parse_segment(p))
        .collect::<Result<Vec<_>, _>>()?;
    let reference = Reference {
        segments,
        records,
        write_start,
        snapshots,
    };
    check_shape(&reference)?;
    Ok(reference)
}

/// Appends one planned write and checks the sequence numbers it got.
fn append(
    w: &softadastra_wal::WalWriter,
    idents: &[(Ident, usize)],
    next: u64,
) -> Result<(), String> {
    let payloads: Vec<(RecordType, Vec<u8>)> = idents
        .iter()
        .map(|(who, len)| (who.record_type(), who.payload(*len)))
        .collect();
    let range = if let [(who, _)] = idents {
        let (t, p) = &payloads[0];
        let seq = w
            .append_with_timestamp(*t, who.timestamp(), p)
            .map_err(|e| format!("append: {e}"))?;
        seq..=seq
    } else {
        w.append_batch(payloads.iter().map(|(t, p)| (*t, p.as_slice())))
            .map_err(|e| format!("append_batch: {e}"))?
    };
    let want = next..=next + idents.len() as u64 - 1;
    if range != want {
        return Err(format!(
            "write got sequence numbers {range:?}, expected {want:?}"
        ));
    }
    Ok(())
}

/// The records the build wrote, from its plan: payload and type from each identity, the
/// timestamp from the identity for single appends and, for batches (stamped with the current time
/// by the writer), the one timestamp the batch's records share as read back. Everything read back
/// must match.
fn expected_records(dir: &Path, writes: &[Write]) -> Result<(Vec<WalRecord>, Vec<u64>), String> {
    let reader = WalReader::open(dir).map_err(|e| format!("reading the reference log: {e}"))?;
    let back = reader
        .iter()
        .map(|r| r.map(|r| r.to_record()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the reference log: {e}"))?;
    let mut records = Vec::new();
    let mut write_start = Vec::new();
    for write in writes {
        let start = records.len() as u64 + 1;
        let batch_time = back.get(records.len()).map(|r| r.timestamp);
        for &(who, len) in &write.idents {
            let seq = records.len() as u64 + 1;
            let timestamp = match write.idents.len() {
                1 => who.timestamp(),
                _ => batch_time.ok_or("the reference log lost a batch")?,
            };
            records.push(WalRecord {
                seq,
                record_type: who.record_type(),
                timestamp,
                payload: who.payload(len),
            });
            write_start.push(start);
        }
    }
    if back != records {
        return Err(format!(
            "the reference log reads back {} records that differ from the {} written",
            back.len(),
            records.len()
        ));
    }
    Ok((records, write_start))
}

/// The segment files of `dir`, oldest first.
pub fn segment_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("listing {dir:?}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 24 && n.ends_with(".seg"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn base_seq_of(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path:?}: {e}"))?;
    let (h, _) = format::decode_segment_header(&bytes).map_err(|e| format!("{path:?}: {e}"))?;
    Ok(h.base_seq.get())
}

/// Reads a segment file and works out where its records, index and footer are, using the
/// format's own codec only to decode what FORMAT.md describes.
fn parse_segment(path: &Path) -> Result<Segment, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path:?}: {e}"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("segment name")?
        .to_string();
    let (h, layout) = format::decode_segment_header(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let binding = Binding {
        log_id: h.log_id.get(),
        segment_id: h.segment_id.get(),
    };
    let base_seq = h.base_seq.get();
    let mut extents = Vec::new();
    let (mut off, mut seq) = (layout.data_start(), base_seq);
    while let Ok((loc, _)) = format::decode_record(&bytes, off, layout.data_limit, binding) {
        if loc.header.seq.get() != seq {
            return Err(format!(
                "{name}: record {} at {off}, expected {seq}",
                loc.header.seq.get()
            ));
        }
        extents.push(Extent {
            seq,
            offset: off,
            len: loc.len(),
        });
        off = loc.next;
        seq += 1;
    }
    let data_end = off;
    let seal =
        format::decode_footer(&bytes, &layout, binding).map_err(|e| format!("{name}: {e}"))?;
    if let Some(seal) = seal
        && (seal.data_end != data_end || seal.last_seq + 1 != seq || seal.first_seq != base_seq)
    {
        return Err(format!(
            "{name}: footer {seal:?} disagrees with the records"
        ));
    }
    let index_count = seal.map_or(0, |s| s.index_count);
    let sealed = seal.is_some();
    let roles = roles(&layout, &extents, data_end, sealed, index_count);
    Ok(Segment {
        id: binding.segment_id,
        name,
        bytes,
        layout,
        base_seq,
        next_seq: seq,
        sealed,
        extents,
        index_count,
        roles,
    })
}

/// The role of every byte of a segment.
fn roles(
    layout: &Layout,
    extents: &[Extent],
    data_end: u64,
    sealed: bool,
    index_count: u64,
) -> Vec<Role> {
    let size = layout.size as usize;
    let mut roles = vec![Role::Unused; size];
    let mut fill = |from: u64, to: u64, role: Role| roles[from as usize..to as usize].fill(role);
    fill(0, format::SEGMENT_HEADER_LEN, Role::Header);
    for e in extents {
        fill(e.offset, e.end(), Role::Record(e.seq));
        fill(
            e.end(),
            e.offset + format::record_size(e.len),
            Role::Padding,
        );
    }
    fill(data_end, layout.data_limit, Role::Free);
    if sealed {
        let index = layout.index_offset();
        fill(
            index,
            index + index_count * format::INDEX_ENTRY_LEN,
            Role::IndexUsed,
        );
        fill(layout.footer_offset, layout.size, Role::Footer);
    }
    roles
}

/// The build must have produced what the cases assume: sealed segments with persisted indexes,
/// then an unsealed active segment with records, every record in exactly one segment.
fn check_shape(r: &Reference) -> Result<(), String> {
    let (active, sealed) = r.segments.split_last().ok_or("no segment")?;
    if sealed.len() < SEALED_SEGMENTS || sealed.iter().any(|s| !s.sealed || s.index_count < 2) {
        return Err("the reference log lacks sealed, indexed segments".into());
    }
    if active.sealed || active.next_seq - active.base_seq < ACTIVE_RECORDS {
        return Err("the reference log's active segment is sealed or nearly empty".into());
    }
    let mut next = 1;
    for (i, s) in r.segments.iter().enumerate() {
        if s.base_seq != next || s.id != i as u64 + 1 {
            return Err(format!("segment {} does not continue the log", s.name));
        }
        next = s.next_seq;
    }
    if next != r.len() + 1 {
        return Err(format!(
            "segments hold {} records, {} were written",
            next - 1,
            r.len()
        ));
    }
    Ok(())
}
