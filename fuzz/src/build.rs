//! Building segment files in memory with the crate's byte codec (`softadastra_wal::format`),
//! exactly as FORMAT.md says the writer lays them out: for the seed corpus, and for the
//! `recovery` target's constructed logs (valid checksums around chosen, possibly inconsistent,
//! fields, which random bytes almost never reach).

use softadastra_wal::format::{
    self, Binding, FLAG_BATCH_CONTINUES, INDEX_ENTRY_LEN, IndexEntry, Layout, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN,
};
use zerocopy::IntoBytes;
use zerocopy::byteorder::little_endian::{U32, U64};

/// The `log_id` of every log built here (a real log's is random).
pub const LOG_ID: u64 = 0x5EED_F00D_CAFE_0001;

/// A file of a log directory: its name and its bytes.
pub type File = (String, Vec<u8>);

/// The name of segment `id`.
#[must_use]
pub fn segment_name(id: u64) -> String {
    softadastra_wal::names::segment(id)
}

/// The name of the temporary file of segment `id` being created.
#[must_use]
pub fn temp_name(id: u64) -> String {
    softadastra_wal::names::temp(id)
}

/// One record to write, every header field chosen by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub seq: u64,
    pub timestamp: u64,
    pub code: u8,
    pub flags: u8,
    pub unsynced_before: u32,
    pub payload: Vec<u8>,
}

impl Rec {
    /// A single append of `SyncMode::Always`: nothing pending before it.
    #[must_use]
    pub fn single(seq: u64, code: u8, payload: &[u8]) -> Rec {
        Rec {
            seq,
            timestamp: 1_700_000_000_000 + seq,
            code,
            flags: 0,
            unsynced_before: 0,
            payload: payload.to_vec(),
        }
    }

    /// The records of one atomic batch starting at `first`, as the writer flags them.
    #[must_use]
    pub fn batch(first: u64, payloads: &[&[u8]]) -> Vec<Rec> {
        let last = payloads.len().saturating_sub(1);
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Rec {
                flags: if i < last { FLAG_BATCH_CONTINUES } else { 0 },
                unsynced_before: i as u32,
                ..Rec::single(first + i as u64, 1 + (i % 5) as u8, p)
            })
            .collect()
    }

    /// Bytes the record takes in a segment.
    #[must_use]
    pub fn size(&self) -> u64 {
        format::record_size(self.payload.len() as u64)
    }
}

/// A segment file being built.
#[derive(Clone, Debug)]
pub struct SegmentImage {
    pub id: u64,
    pub layout: Layout,
    pub binding: Binding,
    pub base_seq: u64,
    pub bytes: Vec<u8>,
    /// Offset just past the last record written.
    pub end: u64,
    /// Sequence number of the last record written.
    pub last_seq: Option<u64>,
    /// The sparse index, by the writer's rule.
    pub index: Vec<IndexEntry>,
    next_index_at: u64,
}

impl SegmentImage {
    /// A zero-filled segment with its header.
    #[must_use]
    pub fn new(layout: Layout, log_id: u64, id: u64, base_seq: u64) -> SegmentImage {
        let mut bytes = vec![0u8; layout.size as usize];
        let header = format::encode_segment_header(&layout, log_id, id, base_seq);
        bytes[..SEGMENT_HEADER_LEN as usize].copy_from_slice(header.as_bytes());
        SegmentImage {
            id,
            layout,
            binding: Binding {
                log_id,
                segment_id: id,
            },
            base_seq,
            bytes,
            end: layout.data_start(),
            last_seq: None,
            index: Vec::new(),
            next_index_at: layout.data_start(),
        }
    }

    /// Free bytes left in the data region.
    #[must_use]
    pub fn room(&self) -> u64 {
        self.layout.data_limit - self.end
    }

    /// Writes `rec` at the end with a valid checksum (or a wrong one, with `bad_crc`), and indexes
    /// it. `false` (nothing written) if it does not fit.
    pub fn push(&mut self, rec: &Rec, bad_crc: bool) -> bool {
        if rec.size() > self.room() {
            return false;
        }
        let mut header = format::encode_record_header(
            self.binding,
            rec.seq,
            rec.timestamp,
            rec.code,
            rec.flags,
            rec.unsynced_before,
            &rec.payload,
        );
        if bad_crc {
            header.crc = (header.crc.get() ^ 0x0100_0000).into();
        }
        let at = self.end as usize;
        self.write(at, header.as_bytes());
        self.write(at + RECORD_HEADER_LEN as usize, &rec.payload);
        if self.end >= self.next_index_at {
            self.index.push(IndexEntry {
                seq: U64::new(rec.seq),
                offset: U64::new(self.end),
            });
            let step = self.layout.index_interval;
            let block = (self.end - self.layout.data_start()) / step;
            self.next_index_at = self.layout.data_start() + (block + 1) * step;
        }
        self.end += rec.size();
        self.last_seq = Some(rec.seq);
        true
    }

    /// Writes `data` at `offset`, as far as the file reaches.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        let end = (offset + data.len()).min(self.bytes.len());
        if offset < end {
            self.bytes[offset..end].copy_from_slice(&data[..end - offset]);
        }
    }

    /// Seals the segment as the writer does: the index at `data_limit`, then the footer.
    pub fn seal(&mut self) {
        let first = self.base_seq;
        let last = self.last_seq.unwrap_or(first);
        let (end, index) = (self.end, self.index.clone());
        self.seal_with(first, last, end, &index, index.len() as u64);
    }

    /// Writes `index` and a footer claiming `first..=last`, `data_end` and `index_count`; the
    /// footer's checksums are valid (the index checksum covers the `index_count` entries written).
    pub fn seal_with(
        &mut self,
        first: u64,
        last: u64,
        data_end: u64,
        index: &[IndexEntry],
        index_count: u64,
    ) {
        let room = (self.layout.footer_offset - self.layout.data_limit) / INDEX_ENTRY_LEN;
        let index = &index[..index.len().min(room as usize)];
        let at = self.layout.index_offset() as usize;
        self.write(at, index.as_bytes());
        let counted = &index[..(index_count as usize).min(index.len())];
        let mut footer = format::encode_footer(self.binding, first, last, data_end, counted);
        if index_count != counted.len() as u64 {
            // A count the entries written do not back, under a valid footer checksum.
            footer.index_count = U64::new(index_count);
            footer.crc = U32::new(footer_crc(self.binding, &footer.as_bytes()[..60]));
        }
        let at = self.layout.footer_offset as usize;
        self.write(at, footer.as_bytes());
    }

    /// The segment as a file of a log directory.
    #[must_use]
    pub fn into_file(self) -> File {
        (segment_name(self.id), self.bytes)
    }
}

/// The footer checksum (FORMAT.md): CRC-32 of the binding and the footer's first 60 bytes.
fn footer_crc(binding: Binding, head: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&binding.log_id.to_le_bytes());
    h.update(&binding.segment_id.to_le_bytes());
    h.update(head);
    h.finalize()
}

/// A log as the writer would leave it after appending `groups` (each an atomic batch; a single
/// append is a batch of one) into segments of `layout`, starting with segment `first_id`: a
/// group that does not fit the rest of a segment goes to a new one, and the full segment is
/// sealed then. The last segment stays unsealed.
#[must_use]
pub fn build_log(layout: Layout, first_id: u64, groups: &[Vec<Rec>]) -> Vec<File> {
    build_log_of(LOG_ID, layout, first_id, groups)
}

/// [`build_log`] for the log with id `log_id`.
#[must_use]
pub fn build_log_of(log_id: u64, layout: Layout, first_id: u64, groups: &[Vec<Rec>]) -> Vec<File> {
    let first_seq = groups.first().and_then(|g| g.first()).map_or(1, |r| r.seq);
    let mut files = Vec::new();
    let mut seg = SegmentImage::new(layout, log_id, first_id, first_seq);
    for group in groups {
        let need: u64 = group.iter().map(Rec::size).sum();
        if need > seg.room() {
            let next = SegmentImage::new(layout, log_id, seg.id + 1, group[0].seq);
            let mut full = std::mem::replace(&mut seg, next);
            if full.last_seq.is_some() {
                full.seal();
            }
            files.push(full.into_file());
        }
        for rec in group {
            let _ = seg.push(rec, false);
        }
    }
    files.push(seg.into_file());
    files
}
