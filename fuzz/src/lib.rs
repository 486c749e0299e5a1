//! The bodies of the fuzz targets of `softadastra-wal`, kept in a library so that the corpus and
//! the regressions replay as an ordinary test (`tests/replay.rs`) with the stable toolchain.
//!
//! * [`record_decoder`]: the record codec of `softadastra_wal::format` on arbitrary bytes (every
//!   record that decodes re-encodes to the same bytes), and records encoded by the codec (they
//!   decode to what was encoded; a flipped bit or another segment never does).
//! * [`segment_loader`]: the bytes as a segment file: header, seal footer and persisted index
//!   through the codec, then the file alone in a log directory, opened by `WalReader::open` and
//!   `WalStore::open`.
//! * [`recovery`]: a whole log directory, either raw files cut from the input or a log
//!   constructed from it with valid checksums around chosen inconsistencies, opened read-only,
//!   recovered twice, appended to.
//!
//! The property in all: no panic, no hang, every failure an `Err`, and every record the library
//! returns verifies and matches bytes that were in the files (see [`check`]). A violated
//! property panics, which libFuzzer reports as a crash.

pub mod build;
pub mod check;
pub mod input;
pub mod program;
pub mod seeds;

use softadastra_wal::format::{
    self, Binding, KNOWN_FLAGS, Layout, RECORD_ALIGN, RECORD_HEADER_LEN, RecordError,
    SEGMENT_HEADER_LEN,
};
use zerocopy::IntoBytes;

use crate::build::{File, segment_name, temp_name};
use crate::input::Input;

/// The names of the fuzz targets, as in `fuzz_targets/` and `corpus/`.
pub const TARGETS: [&str; 3] = ["record_decoder", "segment_loader", "recovery"];

/// Runs the body of target `name` on `data`; `false` for an unknown name.
pub fn run_target(name: &str, data: &[u8]) -> bool {
    match name {
        "record_decoder" => record_decoder(data),
        "segment_loader" => segment_loader(data),
        "recovery" => recovery(data),
        _ => return false,
    }
    true
}

/// The log directory an input of target `name` describes (`segment_loader`, `recovery`), to
/// look at a crash input with ordinary tools (`src/bin/materialize.rs`).
#[must_use]
pub fn files_of(name: &str, data: &[u8]) -> Option<Vec<File>> {
    match name {
        "segment_loader" => Some(vec![segment_file(data)]),
        "recovery" => Some(recovery_files(data)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// record_decoder
// ---------------------------------------------------------------------------------------------

/// Target `record_decoder`. First byte even: arbitrary bytes decoded at a chosen offset and
/// limit, then walked like a scanner. Odd: a record encoded from chosen fields, decoded back.
pub fn record_decoder(data: &[u8]) {
    let mut inp = Input::new(data);
    if inp.u8() & 1 == 0 {
        decode_arbitrary(&mut inp);
    } else {
        encode_then_decode(&mut inp);
    }
}

/// Layout: flags (bit 0: offset near `u64::MAX`, bit 1: limit near `u64::MAX`), log id,
/// segment id, offset (u16), limit (u16), then the region.
fn decode_arbitrary(inp: &mut Input) {
    let flags = inp.u8();
    let binding = Binding {
        log_id: inp.u64(),
        segment_id: inp.u64(),
    };
    let near_max = |v: u16, set: bool| {
        if set {
            u64::MAX - u64::from(v)
        } else {
            u64::from(v)
        }
    };
    let offset = near_max(inp.u16(), flags & 1 != 0);
    let limit = near_max(inp.u16(), flags & 2 != 0);
    let region = inp.rest();
    check_record_at(region, offset, limit, binding);
    // As a scanner would: from the start, record after record, skipping what does not decode.
    let mut off = 0;
    while off < region.len() as u64 {
        off = match format::decode_record(region, off, limit, binding) {
            Ok((loc, _)) => {
                check_record_at(region, off, limit, binding);
                assert!(loc.next > off, "a record that does not advance");
                loc.next
            }
            Err(_) => off + RECORD_ALIGN,
        };
    }
}

/// Everything the codec says about the bytes at `offset` must be consistent: a located record
/// lies inside the region and the limit, its fields are valid, its payload is the bytes after
/// its header, and one that verifies re-encodes to exactly its header bytes.
fn check_record_at(region: &[u8], offset: u64, limit: u64, binding: Binding) {
    let located = format::locate_record(region, offset, limit);
    let decoded = format::decode_record(region, offset, limit, binding);
    let loc = match (&located, &decoded) {
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "decode_record fails otherwise than locate_record");
            return;
        }
        (Err(e), Ok(_)) => panic!("decode_record accepts what locate_record refuses ({e})"),
        (Ok(loc), Err(e)) => {
            assert_eq!(
                *e,
                RecordError::BadChecksum,
                "only the checksum can fail now"
            );
            loc
        }
        (Ok(loc), Ok(_)) => loc,
    };
    let end = limit.min(region.len() as u64);
    let len = loc.len();
    assert_eq!(loc.payload_offset, offset + RECORD_HEADER_LEN);
    assert!(loc.payload_offset + len <= end, "payload past the limit");
    assert_eq!(loc.next, offset + format::record_size(len));
    assert!(loc.next <= end.div_ceil(RECORD_ALIGN) * RECORD_ALIGN);
    let h = &loc.header;
    assert!(h.record_type != 0 && h.flags & !KNOWN_FLAGS == 0 && h.reserved == [0; 2]);
    assert!(h.seq.get() != 0);
    let at = offset as usize;
    assert_eq!(h.as_bytes(), &region[at..at + RECORD_HEADER_LEN as usize]);
    let payload = format::payload(region, loc);
    let p_at = loc.payload_offset as usize;
    assert_eq!(payload, &region[p_at..p_at + len as usize]);
    let verified = format::verify_record(binding, loc, payload);
    assert_eq!(verified.is_ok(), decoded.is_ok());
    if verified.is_ok() {
        let again = format::encode_record_header(
            binding,
            h.seq.get(),
            h.timestamp.get(),
            h.record_type,
            h.flags,
            h.unsynced_before.get(),
            payload,
        );
        assert_eq!(
            again.as_bytes(),
            h.as_bytes(),
            "a record re-encodes otherwise"
        );
    }
}

/// Layout: log id, segment id, seq, timestamp, type code, flags, unsynced_before (u32), lead
/// (the record's offset / 8, mod 8), the bit to flip (u16), then the payload.
fn encode_then_decode(inp: &mut Input) {
    let binding = Binding {
        log_id: inp.u64(),
        segment_id: inp.u64(),
    };
    let (seq, timestamp, code, flags) = (inp.u64(), inp.u64(), inp.u8(), inp.u8());
    let unsynced = inp.u32();
    let lead = u64::from(inp.below(8)) * RECORD_ALIGN;
    let flip = inp.u16();
    let payload = inp.rest();
    let header =
        format::encode_record_header(binding, seq, timestamp, code, flags, unsynced, payload);
    let mut region = vec![0u8; lead as usize];
    region.extend_from_slice(header.as_bytes());
    region.extend_from_slice(payload);
    region.resize(region.len().div_ceil(8) * 8 + RECORD_HEADER_LEN as usize, 0);
    let limit = region.len() as u64;
    let valid = code != 0 && flags & !KNOWN_FLAGS == 0 && seq != 0;
    match format::decode_record(&region, lead, limit, binding) {
        Ok((loc, p)) => {
            assert!(valid, "an invalid header decoded");
            let h = &loc.header;
            assert_eq!(
                (h.seq.get(), h.timestamp.get(), h.record_type, h.flags),
                (seq, timestamp, code, flags)
            );
            assert_eq!(h.unsynced_before.get(), unsynced);
            assert_eq!(p, payload);
            assert_eq!(loc.next, lead + format::record_size(payload.len() as u64));
            let after = format::locate_record(&region, loc.next, limit);
            assert_eq!(after.err(), Some(RecordError::Zero), "zeros end the data");
        }
        Err(e) => {
            assert!(!valid, "an encoded record does not decode: {e}");
            assert_eq!(e, RecordError::BadHeader);
            return;
        }
    }
    let other = Binding {
        segment_id: binding.segment_id ^ 1,
        ..binding
    };
    assert_eq!(
        format::decode_record(&region, lead, limit, other).err(),
        Some(RecordError::BadChecksum),
        "a record verified in another segment"
    );
    flip_one_bit(&mut region, lead, payload.len(), flip);
    assert!(
        format::decode_record(&region, lead, limit, binding).is_err(),
        "a record with a flipped bit decoded"
    );
}

/// Flips bit `which` (modulo their number) of the bytes a record's checksum covers, other than
/// its length (changing the length moves the payload: no longer a single-bit error).
fn flip_one_bit(region: &mut [u8], lead: u64, payload_len: usize, which: u16) {
    let at = lead as usize;
    let mut covered: Vec<usize> = (at..at + 4).collect(); // the checksum itself
    covered.extend(at + 8..at + RECORD_HEADER_LEN as usize);
    let p_at = at + RECORD_HEADER_LEN as usize;
    covered.extend(p_at..p_at + payload_len);
    let bit = usize::from(which) % (covered.len() * 8);
    region[covered[bit / 8]] ^= 1 << (bit % 8);
}

// ---------------------------------------------------------------------------------------------
// segment_loader
// ---------------------------------------------------------------------------------------------

/// Target `segment_loader`: the input is one segment file.
pub fn segment_loader(data: &[u8]) {
    check_segment_codec(data);
    let files = vec![segment_file(data)];
    let dir = check::scratch_dir();
    check::materialize(dir.path(), &files);
    check::check_directory(dir.path(), &files);
}

/// The input as a segment file, named after the number in its header (1 if it has none).
fn segment_file(data: &[u8]) -> File {
    let id = format::decode_segment_header(data).map_or(1, |(h, _)| h.segment_id.get());
    (segment_name(id), data.to_vec())
}

/// Header, footer and index through the codec: what decodes is consistent, and a header
/// re-encodes to its bytes.
fn check_segment_codec(data: &[u8]) {
    let Ok((h, layout)) = format::decode_segment_header(data) else {
        return;
    };
    check_layout(&layout);
    if h.reserved == [0; 4] {
        let again = format::encode_segment_header(
            &layout,
            h.log_id.get(),
            h.segment_id.get(),
            h.base_seq.get(),
        );
        assert_eq!(
            again.as_bytes(),
            &data[..SEGMENT_HEADER_LEN as usize],
            "a header re-encodes otherwise"
        );
    }
    let binding = Binding {
        log_id: h.log_id.get(),
        segment_id: h.segment_id.get(),
    };
    check_seal(data, &layout, binding);
    // The same bytes under the layout their length allows, as if the header lied about it.
    let fitting = (data.len() as u64 / RECORD_ALIGN) * RECORD_ALIGN;
    if fitting != layout.size
        && let Ok(other) = Layout::new(fitting, layout.index_interval)
    {
        check_seal(data, &other, binding);
    }
}

fn check_layout(l: &Layout) {
    assert!(l.data_limit >= SEGMENT_HEADER_LEN + RECORD_HEADER_LEN);
    assert_eq!(l.data_limit % RECORD_ALIGN, 0);
    assert_eq!(l.footer_offset, l.size - format::FOOTER_LEN);
    assert_eq!(
        l.data_limit + l.max_index_entries * format::INDEX_ENTRY_LEN,
        l.footer_offset
    );
}

fn check_seal(data: &[u8], layout: &Layout, binding: Binding) {
    let Ok(Some(seal)) = format::decode_footer(data, layout, binding) else {
        return;
    };
    assert!(seal.first_seq >= 1 && seal.first_seq <= seal.last_seq);
    assert!(seal.data_end > layout.data_start() && seal.data_end <= layout.data_limit);
    assert!(seal.index_count >= 1 && seal.index_count <= layout.max_index_entries);
    let Ok(entries) = format::decode_index(data, layout, binding, &seal) else {
        return;
    };
    assert_eq!(entries.len() as u64, seal.index_count);
    assert_eq!(
        (entries[0].seq.get(), entries[0].offset.get()),
        (seal.first_seq, layout.data_start())
    );
    for pair in entries.windows(2) {
        assert!(pair[1].seq.get() > pair[0].seq.get());
        assert!(pair[1].offset.get() > pair[0].offset.get());
    }
    for e in &entries {
        assert!((seal.first_seq..=seal.last_seq).contains(&e.seq.get()));
        assert!(e.offset.get() < seal.data_end && e.offset.get() % RECORD_ALIGN == 0);
    }
}

// ---------------------------------------------------------------------------------------------
// recovery
// ---------------------------------------------------------------------------------------------

/// Target `recovery`. First byte even: raw files cut from the input (see [`raw_files`]); odd: a
/// log constructed by [`program::constructed_log`].
pub fn recovery(data: &[u8]) {
    let files = recovery_files(data);
    let dir = check::scratch_dir();
    check::materialize(dir.path(), &files);
    check::check_directory(dir.path(), &files);
}

fn recovery_files(data: &[u8]) -> Vec<File> {
    let mut inp = Input::new(data);
    if inp.u8() & 1 == 0 {
        raw_files(&mut inp)
    } else {
        program::constructed_log(&mut inp)
    }
}

/// Layout: the number of files - 1 (mod 6), then per file a tag, a length (u16) and that many
/// bytes. The tag names the file (see [`raw_name`]); a later file of the same name replaces an
/// earlier one.
pub fn raw_files(inp: &mut Input) -> Vec<File> {
    let count = 1 + inp.below(6);
    let mut files: Vec<File> = Vec::new();
    for _ in 0..count {
        let tag = inp.u8();
        let len = usize::from(inp.u16());
        let name = raw_name(tag);
        files.retain(|(n, _)| *n != name);
        files.push((name, inp.bytes(len).to_vec()));
    }
    files
}

/// The file a tag names: bits 3-4 give the segment number 1 to 4, bits 0-2 the kind (0 to 4 a
/// segment, 5 its temporary file, 6 a name too short to be a segment, 7 an unrelated file).
#[must_use]
pub fn raw_name(tag: u8) -> String {
    let id = 1 + u64::from((tag >> 3) & 3);
    match tag & 7 {
        0..=4 => segment_name(id),
        5 => temp_name(id),
        6 => format!("{id}.seg"),
        _ => "notes.txt".to_string(),
    }
}

/// The tag [`raw_name`] reads as segment `id` (1 to 4).
#[must_use]
pub fn segment_tag(id: u64) -> u8 {
    (((id - 1) & 3) as u8) << 3
}

/// The tag [`raw_name`] reads as the temporary file of segment `id` (1 to 4).
#[must_use]
pub fn temp_tag(id: u64) -> u8 {
    segment_tag(id) | 5
}
