//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use softadastra_wal::format::{self, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use softadastra_wal::{RecordType, SyncMode, WalConfig, WalReader, WalRecord};
use tempfile::TempDir;

/// A fresh temporary directory for a log: in memory (`/dev/shm`) where there is one. These
/// tests check logic, and many copy a log and reopen it hundreds of times; recovery makes the
/// copied (dirty) pages durable, which on a disk would cost a real write each time. Real disks
/// and file systems are the reliability harnesses' job (power-cut, disk-full).
pub fn tempdir() -> TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix("sawal-it-");
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder.tempdir().expect("create temp dir")
}

/// A small-segment configuration so tests rotate often.
pub fn small_config(dir: &std::path::Path) -> WalConfig {
    WalConfig::new(dir)
        .segment_size(16 << 10)
        .index_interval(256)
        .sync_mode(SyncMode::Always)
}

/// Every record of a reader, owned; panics (failing the test) on an error.
pub fn collect(reader: &WalReader) -> Vec<WalRecord> {
    reader
        .iter()
        .map(|r| r.expect("read record").to_record())
        .collect()
}

/// A small deterministic PRNG (xorshift64*), so every failure reproduces.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Avoid the all-zero state, which xorshift never leaves.
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Random bytes of a random length in `0..=max_len`.
    pub fn payload(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.below(max_len + 1) as usize;
        self.bytes(len)
    }

    /// Bytes that are never 0 and never `avoid`: a cut (zeroing or filling with `avoid`) at any
    /// position of such a payload really changes it.
    pub fn bytes_without(&mut self, len: usize, avoid: u8) -> Vec<u8> {
        (0..len)
            .map(|_| {
                loop {
                    let b = self.next_u64() as u8;
                    if b != 0 && b != avoid {
                        break b;
                    }
                }
            })
            .collect()
    }

    /// Any valid record type: a named one for codes 1..=5, `Custom` for 6..=255.
    pub fn record_type(&mut self) -> RecordType {
        let code = self.range(1, 255) as u8;
        RecordType::from_code(code).expect("non-zero code")
    }

    /// A timestamp, sometimes at the edges of the range.
    pub fn timestamp(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX,
            _ => self.next_u64(),
        }
    }
}

/// An owned record, as the tests expect to read it back.
pub fn rec(seq: u64, record_type: RecordType, timestamp: u64, payload: &[u8]) -> WalRecord {
    WalRecord {
        seq,
        record_type,
        timestamp,
        payload: payload.to_vec(),
    }
}

/// Compact description of a record for assertion messages (payloads can be kilobytes).
pub fn describe(r: &WalRecord) -> String {
    format!(
        "seq {} type {:?} ts {} len {} crc-ish {:#x}",
        r.seq,
        r.record_type,
        r.timestamp,
        r.payload.len(),
        r.payload
            .iter()
            .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
    )
}

/// Asserts that two lists of records are equal, with a readable message on the first difference.
pub fn assert_records_eq(got: &[WalRecord], want: &[WalRecord], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{what}: record #{i} differs: got [{}], want [{}]",
            describe(g),
            describe(w)
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: got {} records, want {} (got seqs {:?}..{:?}, want seqs {:?}..{:?})",
        got.len(),
        want.len(),
        got.first().map(|r| r.seq),
        got.last().map(|r| r.seq),
        want.first().map(|r| r.seq),
        want.last().map(|r| r.seq),
    );
}

/// Asserts that `reader` holds exactly `want` (consecutive sequence numbers), through `iter`,
/// `get` of every record, `first_seq`/`last_seq`, and `get` just outside the range.
pub fn assert_log(reader: &WalReader, want: &[WalRecord], what: &str) {
    let got = collect(reader);
    assert_records_eq(&got, want, &format!("{what} (iter)"));
    assert_eq!(
        reader.first_seq(),
        want.first().map(|r| r.seq),
        "{what}: first_seq"
    );
    assert_eq!(
        reader.last_seq(),
        want.last().map(|r| r.seq),
        "{what}: last_seq"
    );
    for w in want {
        let g = reader
            .get(w.seq)
            .unwrap_or_else(|e| panic!("{what}: get({}) failed: {e}", w.seq))
            .unwrap_or_else(|| panic!("{what}: get({}) is None", w.seq))
            .to_record();
        assert!(
            &g == w,
            "{what}: get({}) got [{}], want [{}]",
            w.seq,
            describe(&g),
            describe(w)
        );
    }
    assert!(reader.get(0).expect("get(0)").is_none(), "{what}: get(0)");
    if let Some(last) = want.last() {
        assert!(
            reader.get(last.seq + 1).expect("get(last+1)").is_none(),
            "{what}: get(last + 1)"
        );
        if let Some(first) = want.first()
            && first.seq > 1
        {
            assert!(
                reader.get(first.seq - 1).expect("get(first-1)").is_none(),
                "{what}: get(first - 1)"
            );
        }
    }
}

/// Copies every regular file of `src` into a fresh temporary directory.
pub fn copy_dir(src: &Path) -> TempDir {
    let dst = tempdir();
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), dst.path().join(entry.file_name())).expect("copy");
        }
    }
    dst
}

/// The name a segment file with this id has.
pub fn segment_name(id: u64) -> String {
    softadastra_wal::names::segment(id)
}

/// The segment files of a log directory, oldest first.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 24 && n.ends_with(".seg"))
        })
        .collect();
    v.sort();
    v
}

/// Every file name in a directory, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// What a segment file's header says (parsed by hand from the documented layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegInfo {
    pub path: PathBuf,
    pub log_id: u64,
    pub segment_id: u64,
    pub base_seq: u64,
    pub size: u64,
    pub index_interval: u64,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub fn seg_info(path: &Path) -> SegInfo {
    let bytes = std::fs::read(path).expect("read segment");
    assert_eq!(&bytes[..8], b"SAWALSEG", "{} magic", path.display());
    SegInfo {
        path: path.to_path_buf(),
        segment_id: le_u64(&bytes, 32),
        log_id: le_u64(&bytes, 24),
        base_seq: le_u64(&bytes, 40),
        size: le_u64(&bytes, 16),
        index_interval: le_u64(&bytes, 48),
    }
}

/// Where a record lies in a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub seq: u64,
    /// Offset of the record header.
    pub offset: u64,
    pub payload_len: u64,
}

impl Extent {
    /// End of header + payload (padding excluded).
    pub fn end(&self) -> u64 {
        self.offset + RECORD_HEADER_LEN + self.payload_len
    }

    /// End including the padding to the next record.
    pub fn padded_end(&self) -> u64 {
        self.offset + format::record_size(self.payload_len)
    }
}

/// The records of a segment file, found by walking headers from offset 64 until an all-zero
/// header (independent of the crate's own scanner: only the documented header layout is used).
pub fn record_extents(path: &Path) -> Vec<Extent> {
    let bytes = std::fs::read(path).expect("read segment");
    let info = seg_info(path);
    let layout = format::Layout::new(info.size, info.index_interval).expect("layout");
    let mut out = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    while off + RECORD_HEADER_LEN <= layout.data_limit {
        let h = &bytes[off as usize..(off + RECORD_HEADER_LEN) as usize];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let len = u64::from(le_u32(h, 4));
        let seq = le_u64(h, 8);
        out.push(Extent {
            seq,
            offset: off,
            payload_len: len,
        });
        off += format::record_size(len);
    }
    out
}

/// Rewrites a file (closed: no store may have it mapped) with `f` applied to its bytes.
pub fn patch_file(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).expect("read");
    f(&mut bytes);
    std::fs::write(path, &bytes).expect("write");
}

/// The 64 bytes of a segment header built by `format::encode_segment_header`, serialized by hand
/// from the documented layout (zerocopy is not a dev-dependency).
pub fn segment_header_bytes(h: &format::SegmentHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&h.magic);
    b.extend_from_slice(&h.version.get().to_le_bytes());
    b.extend_from_slice(&h.header_len.get().to_le_bytes());
    b.extend_from_slice(&h.segment_size.get().to_le_bytes());
    b.extend_from_slice(&h.log_id.get().to_le_bytes());
    b.extend_from_slice(&h.segment_id.get().to_le_bytes());
    b.extend_from_slice(&h.base_seq.get().to_le_bytes());
    b.extend_from_slice(&h.index_interval.get().to_le_bytes());
    b.extend_from_slice(&h.reserved);
    b.extend_from_slice(&h.crc.get().to_le_bytes());
    assert_eq!(b.len() as u64, SEGMENT_HEADER_LEN);
    b
}

/// The 32 bytes of a record header built by `format::encode_record_header`.
pub fn record_header_bytes(h: &format::RecordHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(&h.crc.get().to_le_bytes());
    b.extend_from_slice(&h.len.get().to_le_bytes());
    b.extend_from_slice(&h.seq.get().to_le_bytes());
    b.extend_from_slice(&h.timestamp.get().to_le_bytes());
    b.push(h.record_type);
    b.push(h.flags);
    b.extend_from_slice(&h.reserved);
    b.extend_from_slice(&h.unsynced_before.get().to_le_bytes());
    assert_eq!(b.len() as u64, RECORD_HEADER_LEN);
    b
}

/// Creates, in a closed log directory, the segment that a rotation would create next (same log,
/// same geometry as the newest segment, base sequence after its last record), with no record in
/// it: the state a crash leaves right after a rotation created the file. Returns its path.
pub fn craft_next_empty_segment(dir: &Path) -> PathBuf {
    let last = segment_paths(dir).pop().expect("a segment");
    let info = seg_info(&last);
    let next_seq = record_extents(&last)
        .last()
        .map_or(info.base_seq, |e| e.seq + 1);
    let layout = format::Layout::new(info.size, info.index_interval).expect("layout");
    let id = info.segment_id + 1;
    let header = format::encode_segment_header(&layout, info.log_id, id, next_seq);
    let mut bytes = vec![0u8; info.size as usize];
    bytes[..64].copy_from_slice(&segment_header_bytes(&header));
    let path = dir.join(segment_name(id));
    std::fs::write(&path, &bytes).expect("write crafted segment");
    path
}

/// CRC-32 (IEEE, reflected), as crc32fast computes it; bitwise, for crafting test files.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Free bytes left in the data region of the newest segment of a log (read from the file; every
/// record in it must have been flushed).
pub fn room_left(dir: &Path) -> u64 {
    let last = segment_paths(dir).pop().expect("a segment");
    let info = seg_info(&last);
    let layout = format::Layout::new(info.size, info.index_interval).expect("layout");
    let end = record_extents(&last)
        .last()
        .map_or(layout.data_start(), Extent::padded_end);
    layout.data_limit - end
}

/// Writes `len` bytes of `byte` just past the last record of the newest segment of the closed
/// log in `dir` (a torn record where the next header would start); returns their offset.
pub fn garbage_after_last_record(dir: &Path, len: usize, byte: u8) -> u64 {
    let last = segment_paths(dir).pop().expect("a segment");
    let end = record_extents(&last)
        .last()
        .expect("a record in the newest segment")
        .padded_end();
    patch_file(&last, |b| b[end as usize..end as usize + len].fill(byte));
    end
}
