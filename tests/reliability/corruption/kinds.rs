//! The damage kinds. Each turns the reference log into damaged copies, one case at a time: the
//! exhaustive kinds walk every bit or position they cover (no seed needed), the random ones draw
//! from the harness's seed.

use crate::reference::{Reference, Role, Segment};
use crate::support::Rng;

/// Sector and block sizes of the damage a drive or file system does.
const SECTOR: usize = 512;
const BLOCK: usize = 4096;

/// What happens to one segment file.
pub enum Edit {
    /// Its bytes are replaced by these (same name).
    Bytes(Vec<u8>),
    /// It is deleted.
    Delete,
}

/// What the log must look like when an open succeeds without reporting anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every record, 1 to N.
    Whole,
    /// Segments at the front were deleted, as `truncate_before` does: a legitimate log that starts
    /// at this sequence number; everything after it must be exact.
    StartsAt(u64),
    /// The newest segment was deleted or replaced by an older copy of itself: the files are
    /// byte for byte those of a log whose last appends never happened, which nothing can tell
    /// (docs/guide.md and FORMAT.md, "Recovery"; README assumption 3: "Deleting the newest
    /// segment, for example, cannot be detected"). The log must end exactly here and be exact.
    EndsAt(u64),
}

/// One damaged copy of the reference log.
pub struct Case {
    pub kind: Kind,
    /// Exactly what was done, to reproduce it.
    pub label: String,
    /// Segment index in the reference -> what happens to that file; other files are copied as is.
    pub edits: Vec<(usize, Edit)>,
    pub expect: Expect,
    /// The case wrote a segment header of this format version: both opens must refuse the log
    /// with `Error::UnsupportedVersion` for it.
    pub refuse_version: Option<u32>,
}

/// The damage kinds, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    SegmentHeaderBit,
    RecordHeaderBit,
    FooterBit,
    IndexEntryBit,
    VersionField,
    IndexRewritten,
    FooterRewritten,
    ZeroedSector,
    ZeroedTail,
    Truncated,
    SwappedBlocks,
    DuplicatedBlock,
    ForeignSegment,
    MisplacedSegment,
    OlderCopy,
    DeletedSegment,
    PayloadBits,
    PayloadBurst,
    AnyBit,
}

impl Kind {
    pub const ALL: [Kind; 19] = [
        Kind::SegmentHeaderBit,
        Kind::RecordHeaderBit,
        Kind::FooterBit,
        Kind::IndexEntryBit,
        Kind::VersionField,
        Kind::IndexRewritten,
        Kind::FooterRewritten,
        Kind::ZeroedSector,
        Kind::ZeroedTail,
        Kind::Truncated,
        Kind::SwappedBlocks,
        Kind::DuplicatedBlock,
        Kind::ForeignSegment,
        Kind::MisplacedSegment,
        Kind::OlderCopy,
        Kind::DeletedSegment,
        Kind::PayloadBits,
        Kind::PayloadBurst,
        Kind::AnyBit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SegmentHeaderBit => "segment-header-bit",
            Kind::RecordHeaderBit => "record-header-bit",
            Kind::FooterBit => "footer-bit",
            Kind::IndexEntryBit => "index-entry-bit",
            Kind::VersionField => "version-field",
            Kind::IndexRewritten => "index-rewritten",
            Kind::FooterRewritten => "footer-rewritten",
            Kind::ZeroedSector => "zeroed-sector",
            Kind::ZeroedTail => "zeroed-tail",
            Kind::Truncated => "truncated-file",
            Kind::SwappedBlocks => "swapped-blocks",
            Kind::DuplicatedBlock => "duplicated-block",
            Kind::ForeignSegment => "foreign-segment",
            Kind::MisplacedSegment => "misplaced-segment",
            Kind::OlderCopy => "older-copy",
            Kind::DeletedSegment => "deleted-segment",
            Kind::PayloadBits => "payload-multi-bit",
            Kind::PayloadBurst => "payload-burst",
            Kind::AnyBit => "random-bit-anywhere",
        }
    }

    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|&k| k == self).unwrap_or(0)
    }
}

/// Receives every case.
pub type Sink<'a> = dyn FnMut(Case) + 'a;

/// Every exhaustive kind, in order.
pub fn exhaustive(r: &Reference, foreign: &Reference, sink: &mut Sink<'_>) {
    header_bits(r, sink);
    record_header_bits(r, sink);
    footer_bits(r, sink);
    index_entry_bits(r, sink);
    version_fields(r, sink);
    index_rewrites(r, sink);
    footer_rewrites(r, sink);
    zeroed_sectors(r, sink);
    zeroed_tails(r, sink);
    truncations(r, sink);
    swapped_blocks(r, sink);
    duplicated_blocks(r, sink);
    foreign_segments(r, foreign, sink);
    misplaced_segments(r, sink);
    older_copies(r, sink);
    deleted_segments(r, sink);
}

/// `count` random cases, drawn from `rng`, spread evenly over the random kinds.
pub fn random(r: &Reference, rng: &mut Rng, count: u64, sink: &mut Sink<'_>) {
    let payloads: Vec<(usize, usize)> = r
        .segments
        .iter()
        .enumerate()
        .flat_map(|(s, seg)| {
            seg.extents
                .iter()
                .enumerate()
                .filter(|(_, e)| e.len > 0)
                .map(move |(i, _)| (s, i))
        })
        .collect();
    for n in 0..count {
        let case = match n % 3 {
            0 => payload_bits(r, &payloads, rng, n),
            1 => payload_burst(r, &payloads, rng, n),
            _ => any_bit(r, rng, n),
        };
        sink(case);
    }
}

/// A single-edit case: segment `s` with `f` applied to a copy of its bytes.
fn patched(
    r: &Reference,
    kind: Kind,
    s: usize,
    label: String,
    f: impl FnOnce(&mut Vec<u8>),
) -> Case {
    let mut bytes = r.segments[s].bytes.clone();
    f(&mut bytes);
    Case {
        kind,
        label,
        edits: vec![(s, Edit::Bytes(bytes))],
        expect: Expect::Whole,
        refuse_version: None,
    }
}

/// Flips one bit of segment `s` at `offset`.
fn bit_flip(r: &Reference, kind: Kind, s: usize, offset: usize, bit: u8) -> Case {
    let label = format!("{} bit {bit}", place(&r.segments[s], offset));
    patched(r, kind, s, label, |b| b[offset] ^= 1 << bit)
}

/// Where `offset` is in `seg`, for labels.
pub fn place(seg: &Segment, offset: usize) -> String {
    let what = match seg.roles.get(offset) {
        Some(Role::Record(seq)) => format!("record {seq}"),
        Some(role) => format!("{role:?}"),
        None => "past the end".to_string(),
    };
    let state = if seg.sealed { "sealed" } else { "active" };
    format!("{} ({state}) byte {offset} [{what}]", seg.name)
}

fn every_bit(
    r: &Reference,
    kind: Kind,
    s: usize,
    range: std::ops::Range<u64>,
    sink: &mut Sink<'_>,
) {
    for offset in range {
        for bit in 0..8 {
            sink(bit_flip(r, kind, s, offset as usize, bit));
        }
    }
}

/// Every bit of every segment header, sealed segments and the active one.
fn header_bits(r: &Reference, sink: &mut Sink<'_>) {
    for s in 0..r.segments.len() {
        every_bit(r, Kind::SegmentHeaderBit, s, 0..64, sink);
    }
}

/// Every bit of every record header.
fn record_header_bits(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate() {
        for e in &seg.extents {
            every_bit(r, Kind::RecordHeaderBit, s, e.offset..e.offset + 32, sink);
        }
    }
}

/// Every bit of every seal footer.
fn footer_bits(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate().filter(|(_, seg)| seg.sealed) {
        every_bit(
            r,
            Kind::FooterBit,
            s,
            seg.layout.footer_offset..seg.layout.size,
            sink,
        );
    }
}

/// Every bit of every persisted index entry.
fn index_entry_bits(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate().filter(|(_, seg)| seg.sealed) {
        let start = seg.layout.index_offset();
        every_bit(
            r,
            Kind::IndexEntryBit,
            s,
            start..start + 16 * seg.index_count,
            sink,
        );
    }
}

/// A version other than 1 written into a segment header whose CRC is then made to match again
/// (as a newer release would write it): the only way to reach the version check, which comes
/// after the CRC check.
fn version_fields(r: &Reference, sink: &mut Sink<'_>) {
    for s in 0..r.segments.len() {
        for version in [0u32, 2, 3, 0x100, u32::MAX] {
            let label = format!(
                "{} version set to {version}, header CRC recomputed",
                r.segments[s].name
            );
            let mut case = patched(r, Kind::VersionField, s, label, |b| {
                b[8..12].copy_from_slice(&version.to_le_bytes());
                let crc = crc32fast::hash(&b[..60]);
                b[60..64].copy_from_slice(&crc.to_le_bytes());
            });
            case.refuse_version = Some(version);
            sink(case);
        }
    }
}

fn le_u64(b: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put_u64(b: &mut [u8], at: u64, value: u64) {
    b[at as usize..at as usize + 8].copy_from_slice(&value.to_le_bytes());
}

/// Makes a sealed segment's `index_crc` and footer CRC match its (edited) index and footer
/// again. The binding they cover, `log_id ‖ segment_id`, is header bytes 24..40.
fn reseal(b: &mut [u8], seg: &Segment) {
    let (footer, index) = (
        seg.layout.footer_offset as usize,
        seg.layout.index_offset() as usize,
    );
    let count = le_u64(b, footer as u64 + 32).min(seg.layout.max_index_entries) as usize;
    let crc_of = |parts: &[&[u8]]| {
        let mut h = crc32fast::Hasher::new();
        parts.iter().for_each(|p| h.update(p));
        h.finalize()
    };
    let index_crc = crc_of(&[&b[24..40], &b[index..index + 16 * count]]);
    b[footer + 40..footer + 44].copy_from_slice(&index_crc.to_le_bytes());
    let crc = crc_of(&[&b[24..40], &b[footer..footer + 60]]);
    b[footer + 60..footer + 64].copy_from_slice(&crc.to_le_bytes());
}

/// Every persisted index entry rewritten to point somewhere else, with the CRCs made to match
/// (as a buggy writer, not the disk, would leave it): the index must either be rejected and
/// rebuilt, or every walk from a wrong entry must fall back to the segment's first record.
/// Never a wrong record.
fn index_rewrites(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate().filter(|(_, seg)| seg.sealed) {
        for i in 0..seg.index_count {
            let at = seg.layout.index_offset() + 16 * i;
            let (seq, off) = (le_u64(&seg.bytes, at), le_u64(&seg.bytes, at + 8));
            let next_record = seg
                .extents
                .iter()
                .find(|e| e.offset > off)
                .map_or(off, |e| e.offset);
            let variants = [
                ("seq + 1", seq + 1, off),
                ("seq - 1", seq.saturating_sub(1), off),
                ("offset + 8", seq, off + 8),
                ("offset - 8", seq, off.saturating_sub(8)),
                ("offset of the next record", seq, next_record),
            ];
            let changed = variants
                .into_iter()
                .filter(|&(_, q, o)| (q, o) != (seq, off));
            for (what, new_seq, new_off) in changed {
                let label = format!(
                    "{} index entry {i} ({seq}, {off}) rewritten: {what}, CRCs recomputed",
                    seg.name
                );
                sink(patched(r, Kind::IndexRewritten, s, label, |b| {
                    put_u64(b, at, new_seq);
                    put_u64(b, at + 8, new_off);
                    reseal(b, seg);
                }));
            }
        }
    }
}

/// Every field of every seal footer rewritten to a neighbouring value, and the footer rewritten
/// consistently without the segment's last record, with the CRCs made to match: a footer that
/// lies about the records must be caught by the checks around it (the first record, the next
/// segment's base sequence, the reads), never believed into a wrong or silently shorter log.
fn footer_rewrites(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate().filter(|(_, seg)| seg.sealed) {
        let footer = seg.layout.footer_offset;
        let fields = [
            ("first_seq", 8),
            ("last_seq", 16),
            ("data_end", 24),
            ("index_count", 32),
        ];
        let mut edits: Vec<(String, Vec<(u64, u64)>)> = Vec::new();
        for (name, rel) in fields {
            let old = le_u64(&seg.bytes, footer + rel);
            for value in [
                old + 1,
                old.saturating_sub(1),
                old + 8,
                old.saturating_sub(8),
            ] {
                if value != old {
                    edits.push((
                        format!("{name} {old} -> {value}"),
                        vec![(footer + rel, value)],
                    ));
                }
            }
        }
        if let Some(last) = seg.extents.last() {
            edits.push((
                format!("without record {}", last.seq),
                vec![(footer + 16, last.seq - 1), (footer + 24, last.offset)],
            ));
        }
        for (what, writes) in edits {
            let label = format!("{} footer {what}, CRCs recomputed", seg.name);
            sink(patched(r, Kind::FooterRewritten, s, label, |b| {
                for (at, value) in writes {
                    put_u64(b, at, value);
                }
                reseal(b, seg);
            }));
        }
    }
}

/// Every 512-byte sector that holds a non-zero byte, zeroed.
fn zeroed_sectors(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate() {
        for start in (0..seg.bytes.len()).step_by(SECTOR) {
            let range = start..start + SECTOR;
            if seg.bytes[range.clone()].iter().all(|&b| b == 0) {
                continue;
            }
            let label = format!("{} zeroed", sector_label(seg, start, SECTOR));
            sink(patched(r, Kind::ZeroedSector, s, label, |b| {
                b[range].fill(0)
            }));
        }
    }
}

fn sector_label(seg: &Segment, start: usize, len: usize) -> String {
    format!("{} bytes {start}..{}", place(seg, start), start + len)
}

/// The data region zeroed from a point to its end, as a file system that lost the end of a
/// file's writes would leave it: from each record's start, from inside its header and from the
/// middle of its payload.
fn zeroed_tails(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate() {
        for e in &seg.extents {
            for from in [e.offset, e.offset + 8, e.offset + 32 + e.len / 2] {
                let (from, to) = (from as usize, seg.layout.data_limit as usize);
                let label = format!(
                    "{} zeroed to the end of the data region ({to})",
                    place(seg, from)
                );
                sink(patched(r, Kind::ZeroedTail, s, label, |b| {
                    b[from..to].fill(0)
                }));
            }
        }
    }
}

/// Every segment file cut short: around each sector boundary and at a few lengths that matter
/// (inside the header, just past it, before the footer).
fn truncations(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate() {
        let size = seg.bytes.len();
        let mut lengths = vec![0, 1, 8, 32, 63, 64, 65, 96, size - 64, size - 8, size - 1];
        for k in (SECTOR..size).step_by(SECTOR) {
            lengths.extend([k - 1, k, k + 8]);
        }
        lengths.sort_unstable();
        lengths.dedup();
        for len in lengths.into_iter().filter(|&l| l < size) {
            let label = format!("{} truncated to {len} bytes", seg.name);
            sink(patched(r, Kind::Truncated, s, label, |b| b.truncate(len)));
        }
    }
}

/// Every 4 KiB block of the log, as (segment, offset).
fn blocks(r: &Reference) -> Vec<(usize, usize)> {
    r.segments
        .iter()
        .enumerate()
        .flat_map(|(s, seg)| (0..seg.bytes.len()).step_by(BLOCK).map(move |o| (s, o)))
        .collect()
}

fn block(r: &Reference, (s, o): (usize, usize)) -> &[u8] {
    &r.segments[s].bytes[o..o + BLOCK]
}

/// Writes the given blocks over copies of their segments.
fn with_blocks(
    r: &Reference,
    kind: Kind,
    label: String,
    writes: &[((usize, usize), &[u8])],
) -> Case {
    let mut edits: Vec<(usize, Edit)> = Vec::new();
    for &((s, o), data) in writes {
        if !edits.iter().any(|(e, _)| *e == s) {
            edits.push((s, Edit::Bytes(r.segments[s].bytes.clone())));
        }
        if let Some((_, Edit::Bytes(bytes))) = edits.iter_mut().find(|(e, _)| *e == s) {
            bytes[o..o + BLOCK].copy_from_slice(data);
        }
    }
    Case {
        kind,
        label,
        edits,
        expect: Expect::Whole,
        refuse_version: None,
    }
}

fn block_label(r: &Reference, (s, o): (usize, usize)) -> String {
    format!("{} block {}", r.segments[s].name, o / BLOCK)
}

/// Every pair of different 4 KiB blocks of the log swapped (within a segment or across two).
fn swapped_blocks(r: &Reference, sink: &mut Sink<'_>) {
    let all = blocks(r);
    for (i, &a) in all.iter().enumerate() {
        for &b in &all[i + 1..] {
            if block(r, a) == block(r, b) {
                continue;
            }
            let label = format!("{} swapped with {}", block_label(r, a), block_label(r, b));
            sink(with_blocks(
                r,
                Kind::SwappedBlocks,
                label,
                &[(a, block(r, b)), (b, block(r, a))],
            ));
        }
    }
}

/// Every 4 KiB block of the log copied over every other one.
fn duplicated_blocks(r: &Reference, sink: &mut Sink<'_>) {
    let all = blocks(r);
    for &from in &all {
        for &to in &all {
            if from == to || block(r, from) == block(r, to) {
                continue;
            }
            let label = format!(
                "{} copied over {}",
                block_label(r, from),
                block_label(r, to)
            );
            sink(with_blocks(
                r,
                Kind::DuplicatedBlock,
                label,
                &[(to, block(r, from))],
            ));
        }
    }
}

/// Each segment replaced by the segment with the same number (same name, a valid header and
/// records of their own) of another log.
fn foreign_segments(r: &Reference, foreign: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate() {
        let Some(other) = foreign.segments.iter().find(|o| o.id == seg.id) else {
            continue;
        };
        sink(Case {
            kind: Kind::ForeignSegment,
            label: format!(
                "{} replaced by the segment of the same number of another log",
                seg.name
            ),
            edits: vec![(s, Edit::Bytes(other.bytes.clone()))],
            expect: Expect::Whole,
            refuse_version: None,
        });
    }
}

/// Each segment replaced by another segment of the same log (under the wrong name).
fn misplaced_segments(r: &Reference, sink: &mut Sink<'_>) {
    for (s, seg) in r.segments.iter().enumerate() {
        for (o, other) in r.segments.iter().enumerate().filter(|&(o, _)| o != s) {
            sink(Case {
                kind: Kind::MisplacedSegment,
                label: format!("{} replaced by a copy of {}", seg.name, other.name),
                edits: vec![(s, Edit::Bytes(r.segments[o].bytes.clone()))],
                expect: Expect::Whole,
                refuse_version: None,
            });
        }
    }
}

/// Each segment replaced by every older copy of itself, taken right after one of the writes made
/// while it was the active segment: for a sealed segment, before it was complete or before it
/// was sealed; for the active one, before its last writes.
fn older_copies(r: &Reference, sink: &mut Sink<'_>) {
    let last = r.segments.len() - 1;
    for snap in &r.snapshots {
        let seg = &r.segments[snap.segment];
        if snap.bytes == seg.bytes {
            continue;
        }
        let expect = if snap.segment == last {
            Expect::EndsAt(snap.last_seq)
        } else {
            Expect::Whole
        };
        sink(Case {
            kind: Kind::OlderCopy,
            label: format!(
                "{} replaced by its copy taken when seq {} was the last",
                seg.name, snap.last_seq
            ),
            edits: vec![(snap.segment, Edit::Bytes(snap.bytes.clone()))],
            expect,
            refuse_version: None,
        });
    }
}

/// Segments deleted: each one alone (the first is what `truncate_before` does; a middle one must
/// be reported; the newest one cannot be told apart from a shorter log), the first few together,
/// and the two newest together.
fn deleted_segments(r: &Reference, sink: &mut Sink<'_>) {
    let n = r.segments.len();
    let mut sets: Vec<Vec<usize>> = (0..n).map(|s| vec![s]).collect();
    sets.extend((2..n).map(|k| (0..k).collect()));
    sets.push(vec![n - 2, n - 1]);
    for set in sets {
        let expect = if set[0] == 0 {
            Expect::StartsAt(r.segments[set.len()].base_seq)
        } else if set.contains(&(n - 1)) && set.windows(2).all(|w| w[1] == w[0] + 1) {
            Expect::EndsAt(r.segments[set[0]].base_seq - 1)
        } else {
            Expect::Whole
        };
        let names: Vec<&str> = set.iter().map(|&s| r.segments[s].name.as_str()).collect();
        sink(Case {
            kind: Kind::DeletedSegment,
            label: format!("deleted {}", names.join(", ")),
            edits: set.into_iter().map(|s| (s, Edit::Delete)).collect(),
            expect,
            refuse_version: None,
        });
    }
}

/// 2 to 8 distinct bits flipped in the payload of one record, or spread over two records of the
/// same segment.
fn payload_bits(r: &Reference, payloads: &[(usize, usize)], rng: &mut Rng, n: u64) -> Case {
    let (s, first) = payloads[rng.below(payloads.len() as u64) as usize];
    let seg = &r.segments[s];
    let mut targets = vec![first];
    if rng.one_in(4) {
        let same: Vec<usize> = payloads.iter().filter(|p| p.0 == s).map(|p| p.1).collect();
        targets.push(same[rng.below(same.len() as u64) as usize]);
    }
    let mut flips: Vec<(usize, u8)> = Vec::new();
    let count = rng.range(2, 8);
    while (flips.len() as u64) < count {
        let e = seg.extents[targets[rng.below(targets.len() as u64) as usize]];
        let at = (e.offset + 32 + rng.below(e.len)) as usize;
        let bit = rng.below(8) as u8;
        if !flips.contains(&(at, bit)) {
            flips.push((at, bit));
        }
    }
    let spots: Vec<String> = flips.iter().map(|(o, b)| format!("{o}:{b}")).collect();
    let label = format!(
        "random case {n}: {} bits flipped at {}",
        seg.name,
        spots.join(" ")
    );
    patched(r, Kind::PayloadBits, s, label, |b| {
        for (o, bit) in flips {
            b[o] ^= 1 << bit;
        }
    })
}

/// A burst of 2 to 64 damaged bytes inside one payload: its first and last bytes always change,
/// the ones between are XORed with random bytes (some may stay as they were).
fn payload_burst(r: &Reference, payloads: &[(usize, usize)], rng: &mut Rng, n: u64) -> Case {
    let (s, i) = payloads[rng.below(payloads.len() as u64) as usize];
    let seg = &r.segments[s];
    let e = seg.extents[i];
    let len = rng.range(2.min(e.len), 64.min(e.len)).max(1);
    let start = (e.offset + 32 + rng.below(e.len - len + 1)) as usize;
    let mut mask = vec![0u8; len as usize];
    rng.fill(&mut mask);
    let last = mask.len() - 1;
    for i in [0, last] {
        if mask[i] == 0 {
            mask[i] = 0x80;
        }
    }
    let label = format!(
        "random case {n}: {} bytes {start}..{} XORed with {mask:02x?}",
        seg.name,
        start + mask.len()
    );
    patched(r, Kind::PayloadBurst, s, label, |b| {
        for (x, m) in b[start..].iter_mut().zip(&mask) {
            *x ^= m;
        }
    })
}

/// One bit flipped anywhere in the log's files: mostly where nothing is written (free space,
/// unused index slots, padding), which must change nothing, sometimes in a record.
fn any_bit(r: &Reference, rng: &mut Rng, n: u64) -> Case {
    let mut at = rng.below(r.total_bytes()) as usize;
    let mut s = 0;
    while at >= r.segments[s].bytes.len() {
        at -= r.segments[s].bytes.len();
        s += 1;
    }
    let mut case = bit_flip(r, Kind::AnyBit, s, at, rng.below(8) as u8);
    case.label = format!("random case {n}: {}", case.label);
    case
}
