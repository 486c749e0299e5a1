//! The `recovery` target's constructed logs: the input is read as a small program that builds
//! segment files with the crate's codec, so checksums are valid and the fuzzer explores what
//! recovery decides about well-formed but inconsistent logs (sequence numbers that jump or
//! repeat, unfinished batches, `unsynced_before` claims, segments missing or of another log,
//! seals whose fields or index lie, torn tails, wrong file lengths, flipped bits).

use softadastra_wal::format::{FLAG_BATCH_CONTINUES, Layout};
use zerocopy::byteorder::little_endian::U64;

use crate::build::{File, LOG_ID, Rec, SegmentImage, segment_name, temp_name};
use crate::input::Input;

/// Segment sizes and index intervals to build with: all valid layouts, all small.
const GEOMETRIES: [(u64, u64); 5] = [(256, 64), (512, 64), (1024, 128), (2048, 256), (4096, 1000)];

/// Layout: geometry (mod 5), log flags (bit 0: a leftover temporary file), the number of
/// segments - 1 (mod 4), the first segment number - 1 (mod 3), the first sequence number - 1
/// (mod 3); per segment a control byte (see [`segment`]) and its records (see [`records`]).
pub fn constructed_log(inp: &mut Input) -> Vec<File> {
    let (size, interval) = GEOMETRIES[usize::from(inp.below(GEOMETRIES.len() as u8))];
    let layout = Layout::new(size, interval).expect("the geometries are valid");
    let log_flags = inp.u8();
    let segments = 1 + inp.below(4);
    let mut id = 1 + u64::from(inp.below(3));
    let mut next_seq = 1 + u64::from(inp.below(3));
    let mut files = Vec::new();
    for _ in 0..segments {
        let (file, next) = segment(inp, layout, &mut id, next_seq);
        files.push(file);
        next_seq = next;
        id += 1;
    }
    if log_flags & 1 != 0 {
        files.push((temp_name(id), inp.bytes(64).to_vec()));
    }
    files
}

/// One segment. Control byte: bit 0 skips a segment number; bits 1-2 set the base sequence
/// (2: one too high, 3: one too low); bit 3 uses another log's id; bit 4 seals it (see [`seal`]);
/// bit 5 writes bytes after its records; bit 6 changes the file's length; bit 7 flips one bit.
/// Returns the file and the sequence number after its records.
fn segment(inp: &mut Input, layout: Layout, id: &mut u64, next_seq: u64) -> (File, u64) {
    let ctl = inp.u8();
    if ctl & 0x01 != 0 {
        *id += 1;
    }
    let base = match (ctl >> 1) & 3 {
        2 => next_seq + 1,
        3 => next_seq - 1,
        _ => next_seq,
    };
    let log_id = if ctl & 0x08 != 0 {
        LOG_ID ^ 0xFF
    } else {
        LOG_ID
    };
    let mut seg = SegmentImage::new(layout, log_id, *id, base);
    let next = records(inp, &mut seg);
    if ctl & 0x10 != 0 {
        seal(inp, &mut seg);
    }
    if ctl & 0x20 != 0 {
        let at = seg.end as usize + 8 * usize::from(inp.below(4));
        let len = 1 + usize::from(inp.below(48));
        let garbage = inp.bytes(len).to_vec();
        seg.write(at, &garbage);
    }
    let mut bytes = seg.bytes;
    if ctl & 0x40 != 0 {
        let delta = 8 * (1 + usize::from(inp.below(8)));
        if inp.below(2) == 0 {
            bytes.truncate(bytes.len().saturating_sub(delta));
        } else {
            bytes.resize(bytes.len() + delta, 0);
        }
    }
    if ctl & 0x80 != 0 && !bytes.is_empty() {
        let at = usize::from(inp.u16()) % bytes.len();
        bytes[at] ^= 1 << inp.below(8);
    }
    ((segment_name(*id), bytes), next.max(1))
}

/// Up to 11 records. Per record a control byte, a payload length (mod 80) and the payload.
/// Control: bits 0-1 the sequence number (2: skips one, 3: repeats the previous); bit 2 "the
/// batch continues"; bits 4-5 `unsynced_before`; bit 3 makes the record wrong in the way bits
/// 6-7 say (0: checksum, 1: type code 0, 2: unknown flag, 3: sequence number 0). Returns the
/// sequence number after the last record written.
fn records(inp: &mut Input, seg: &mut SegmentImage) -> u64 {
    let mut seq = seg.base_seq;
    for _ in 0..inp.below(12) {
        let ctl = inp.u8();
        let len = usize::from(inp.below(80));
        let payload = inp.bytes(len).to_vec();
        let mut rec = Rec {
            seq: match ctl & 3 {
                2 => seq + 1,
                3 => seq.saturating_sub(1),
                _ => seq,
            },
            timestamp: u64::from(ctl),
            code: 1 + ctl % 200,
            flags: if ctl & 0x04 != 0 {
                FLAG_BATCH_CONTINUES
            } else {
                0
            },
            unsynced_before: u32::from((ctl >> 4) & 3),
            payload,
        };
        let wrong = ctl & 0x08 != 0;
        match ctl >> 6 {
            _ if !wrong => {}
            1 => rec.code = 0,
            2 => rec.flags |= 0x02,
            3 => rec.seq = 0,
            _ => {}
        }
        let bad_crc = wrong && ctl >> 6 == 0;
        if !seg.push(&rec, bad_crc) {
            break;
        }
        seq = rec.seq + 1;
    }
    seq
}

/// Seals the segment, truthfully or not. Control byte: bit 0 first_seq one too high; bit 1
/// last_seq one too high; bit 2 data_end 8 too far; bit 3 the second index entry points 8 bytes
/// later; bit 4 the index reversed; bit 5 index_count one too high, bit 6 one too low; bit 7 a
/// flipped bit in the index (its checksum fails).
fn seal(inp: &mut Input, seg: &mut SegmentImage) {
    let ctl = inp.u8();
    let first = seg.base_seq + u64::from(ctl & 1);
    let last = seg.last_seq.unwrap_or(seg.base_seq) + u64::from((ctl >> 1) & 1);
    let data_end = seg.end + if ctl & 0x04 != 0 { 8 } else { 0 };
    let mut index = seg.index.clone();
    if ctl & 0x08 != 0
        && let Some(e) = index.get_mut(1)
    {
        e.offset = U64::new(e.offset.get() + 8);
    }
    if ctl & 0x10 != 0 {
        index.reverse();
    }
    let count = match (ctl >> 5) & 3 {
        1 => index.len() as u64 + 1,
        2 => (index.len() as u64).saturating_sub(1),
        _ => index.len() as u64,
    };
    seg.seal_with(first, last, data_end, &index, count);
    if ctl & 0x80 != 0 {
        let at = seg.layout.index_offset() as usize;
        seg.bytes[at] ^= 0x10;
    }
}
