//! The recovery rules, as decisions over a [`ByteSource`]: is a segment's header acceptable,
//! does its seal hold, where do its valid records end, is what follows them a torn tail or
//! damaged durable data, do the segments of a directory form one log, what is a spare file.
//! FORMAT.md ("Recovery") states the rules and why they are safe.
//!
//! This module decides and never acts: recovery (`recovery.rs`) repairs what the decisions
//! allow it to repair and refuses the rest; inspection (`inspect`) reports them all. Both call
//! the same functions, so `walctl verify` and an open agree because they run the same code.
//! Every message that describes damage is worded here, once, by [`DamageKind`]'s `Display`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::format::{
    self, Binding, FLAG_BATCH_CONTINUES, FOOTER_LEN, HeaderError, IndexEntry, Layout, RECORD_ALIGN,
    RECORD_HEADER_LEN, RecordError, SEGMENT_HEADER_LEN, Seal, SegmentHeader,
};
use crate::index;
use crate::names;
use crate::source::{ByteSource, Window};

/// How often the newest segment of a live log is scanned again while the end of its records
/// keeps moving (a writer appending at the same time) before what is found counts.
pub(crate) const LIVE_RESCANS: usize = 1000;

/// How often an invalid seal footer of a live log is read again before it counts as invalid:
/// the writer seals a segment in the background, and a footer read while it is being copied in
/// looks invalid for a moment.
const FOOTER_REREADS: usize = 3;

/// Something wrong with durable data, where it is. [`DamageKind`] says what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    /// The file (for a missing segment, the name it should have).
    pub(crate) file: PathBuf,
    /// Byte offset in `file`.
    pub(crate) offset: u64,
    /// The sequence number expected there, when known.
    pub(crate) seq: Option<u64>,
    pub(crate) kind: DamageKind,
}

/// What is wrong. Its `Display` is the one wording of each message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DamageKind {
    /// The file is shorter than a segment header.
    ShortFile { len: u64 },
    /// The segment header does not decode (bad magic or checksum, unknown version, geometry).
    Header(HeaderError),
    /// The file's length is not the size its header gives.
    SizeMismatch { len: u64, size: u64 },
    /// The header's segment number is not the one in the file name.
    IdMismatch { header: u64, name: u64 },
    /// A segment number is missing from the directory's sequence of segments.
    MissingSegment {
        missing: u64,
        before: u64,
        after: u64,
    },
    /// The segment's log id differs from the older segments'.
    ForeignLog,
    /// The segment does not start where the previous one ends.
    SequenceBreak { base: u64, previous_next: u64 },
    /// A seal names a range its first record does not start.
    SealFirstRecord { first: u64, last: u64 },
    /// The records of a sealed segment do not end where its seal says.
    SealExtent {
        first: u64,
        last: u64,
        data_end: u64,
        found_end: u64,
        found_last: u64,
    },
    /// Bytes after the valid records of a segment that a newer one follows.
    InvalidBeforeNewer,
    /// A valid record with an older sequence number past the end of the valid records.
    StaleRecord { seq: u64, at: u64 },
    /// A valid record further on was written after the invalid bytes had been made durable.
    DurableAfter { seq: u64, at: u64 },
    /// A spare file with a valid header that is not the next segment.
    SpareStray,
    /// A spare file without a valid header that holds data.
    SpareDamaged,
    /// Bytes that should be a record are not one.
    Record(RecordError),
    /// A record with another sequence number where `expected` belongs.
    WrongSeq { found: u64, expected: u64 },
    /// The records of a segment end elsewhere than the segment says (or inside a batch).
    RecordsEnd { at: u64, end: u64, in_batch: bool },
    /// The next segment does not start where the previous one's records end.
    SegmentGap,
    /// A record with type code 0.
    TypeZero,
    /// A record a snapshot holds could not be found.
    NotFound,
}

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DamageKind::ShortFile { len } => {
                write!(f, "segment file is {len} bytes, shorter than its header")
            }
            DamageKind::Header(e) => write!(f, "{e}"),
            DamageKind::SizeMismatch { len, size } => {
                write!(f, "segment file is {len} bytes but its header says {size}")
            }
            DamageKind::IdMismatch { header, name } => {
                write!(
                    f,
                    "header says segment {header} but the file name says {name}"
                )
            }
            DamageKind::MissingSegment {
                missing,
                before,
                after,
            } => write!(
                f,
                "segment {missing} is missing between segments {before} and {after}"
            ),
            DamageKind::ForeignLog => {
                f.write_str("segment belongs to another log (log id differs)")
            }
            DamageKind::SequenceBreak {
                base,
                previous_next,
            } => write!(
                f,
                "segment starts at sequence {base} but the previous one ends before \
                 {previous_next}"
            ),
            DamageKind::SealFirstRecord { first, last } => write!(
                f,
                "the segment is sealed as holding records {first}..={last}, but its first \
                 record is damaged or does not start that range"
            ),
            DamageKind::SealExtent {
                first,
                last,
                data_end,
                found_end,
                found_last,
            } => write!(
                f,
                "sealed as holding records {first}..={last} ending at offset {data_end}, but \
                 the records end at offset {found_end} after record {found_last}"
            ),
            DamageKind::InvalidBeforeNewer => f.write_str(
                "invalid bytes after the last valid record of a segment that is followed by \
                 another (it was fully flushed before the next one was created)",
            ),
            DamageKind::StaleRecord { seq, at } => write!(
                f,
                "record {seq} at offset {at} lies past the end of the valid records"
            ),
            DamageKind::DurableAfter { seq, at } => write!(
                f,
                "the record here is invalid, but record {seq} at offset {at} was written after \
                 it had been made durable"
            ),
            DamageKind::SpareStray => {
                f.write_str("a spare segment file has a header but does not continue the log")
            }
            DamageKind::SpareDamaged => {
                f.write_str("a spare segment file without a valid header holds data")
            }
            DamageKind::Record(e) => write!(f, "{e}"),
            DamageKind::WrongSeq { found, expected } => {
                write!(f, "found sequence {found} where {expected} belongs")
            }
            DamageKind::RecordsEnd { at, end, in_batch } => write!(
                f,
                "the records end at offset {at}{}, but the segment ends at {end}",
                if *in_batch { " inside a batch" } else { "" }
            ),
            DamageKind::SegmentGap => f.write_str("sequence gap between segments"),
            DamageKind::TypeZero => f.write_str("record type 0"),
            DamageKind::NotFound => f.write_str("record not found"),
        }
    }
}

impl Damage {
    pub(crate) fn new(file: &Path, offset: u64, seq: Option<u64>, kind: DamageKind) -> Damage {
        Damage {
            file: file.to_path_buf(),
            offset,
            seq,
            kind,
        }
    }
}

impl From<Damage> for Error {
    fn from(d: Damage) -> Error {
        match d.kind {
            DamageKind::Header(HeaderError::UnsupportedVersion(version)) => {
                Error::UnsupportedVersion {
                    file: d.file,
                    version,
                }
            }
            kind => Error::corruption(d.file, d.offset, d.seq, kind.to_string()),
        }
    }
}

/// A segment whose header checked out: what every other rule needs to know about it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checked {
    /// The header as stored.
    pub(crate) header: SegmentHeader,
    pub(crate) layout: Layout,
    /// The segment's number (the file name's, which the header matches).
    pub(crate) id: u64,
    pub(crate) log_id: u64,
    /// Sequence number of the first record the segment holds or will hold.
    pub(crate) base_seq: u64,
}

impl Checked {
    pub(crate) fn binding(&self) -> Binding {
        Binding {
            log_id: self.log_id,
            segment_id: self.id,
        }
    }
}

/// Checks the header of a segment file: long enough, a valid header, the size it gives, and the
/// segment number `name_id` its file name gives (or any, when `None`).
pub(crate) fn check_header(
    src: &dyn ByteSource,
    name_id: Option<u64>,
) -> io::Result<Result<Checked, Damage>> {
    let path = src.path();
    let len = src.len();
    let damage = |kind| Ok(Err(Damage::new(path, 0, None, kind)));
    if len < SEGMENT_HEADER_LEN {
        return damage(DamageKind::ShortFile { len });
    }
    let mut window = Window::new(src);
    let bytes = window.bytes(0, SEGMENT_HEADER_LEN, SEGMENT_HEADER_LEN)?;
    let (header, layout) = match format::decode_segment_header(bytes) {
        Ok(ok) => ok,
        Err(e) => return damage(DamageKind::Header(e)),
    };
    if layout.size != len {
        return damage(DamageKind::SizeMismatch {
            len,
            size: layout.size,
        });
    }
    let id = header.segment_id.get();
    if let Some(name) = name_id
        && name != id
    {
        return damage(DamageKind::IdMismatch { header: id, name });
    }
    Ok(Ok(Checked {
        header,
        layout,
        id,
        log_id: header.log_id.get(),
        base_seq: header.base_seq.get(),
    }))
}

/// A segment's seal footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Footer {
    /// Not sealed (no footer magic).
    Absent,
    Valid(Seal),
    /// A footer is there but fails its checks; the segment is then scanned.
    Invalid(String),
}

/// Reads and checks the seal footer of `seg`.
pub(crate) fn footer(src: &dyn ByteSource, seg: &Checked) -> io::Result<Footer> {
    let at = seg.layout.footer_offset;
    let mut window = Window::new(src);
    let bytes = window.bytes(at, FOOTER_LEN, at.saturating_add(FOOTER_LEN))?;
    Ok(
        match format::decode_footer_bytes(bytes, &seg.layout, seg.binding()) {
            Ok(None) => Footer::Absent,
            Ok(Some(seal)) => Footer::Valid(seal),
            Err(why) => Footer::Invalid(why),
        },
    )
}

/// The persisted index of a sealed segment, checked as a reader checks it before using it.
pub(crate) fn persisted_index(
    src: &dyn ByteSource,
    seg: &Checked,
    seal: &Seal,
) -> io::Result<Result<Vec<IndexEntry>, String>> {
    let at = seg.layout.index_offset();
    let len = seal.index_count.saturating_mul(format::INDEX_ENTRY_LEN);
    let mut window = Window::new(src);
    let bytes = window.bytes(at, len, at.saturating_add(len))?;
    Ok(format::decode_index_bytes(
        bytes,
        &seg.layout,
        seg.binding(),
        seal,
    ))
}

/// The valid prefix of a segment's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    /// First sequence number after the last complete batch.
    pub(crate) next_seq: u64,
    /// Offset just past the last complete batch.
    pub(crate) end: u64,
    /// Like `next_seq`, counting the records of an unfinished batch after it.
    pub(crate) raw_next_seq: u64,
    /// The sparse index of the complete records.
    pub(crate) index: Vec<IndexEntry>,
}

/// Reads records from the start of `seg` while they are valid and numbered from its base
/// sequence, up to `limit`. A batch counts only with its last record.
pub(crate) fn scan_prefix(src: &dyn ByteSource, seg: &Checked, limit: u64) -> io::Result<Prefix> {
    let layout = &seg.layout;
    let limit = limit.min(layout.data_limit);
    let binding = seg.binding();
    let mut window = Window::new(src);
    let mut prefix = Prefix {
        next_seq: seg.base_seq,
        end: layout.data_start(),
        raw_next_seq: seg.base_seq,
        index: Vec::new(),
    };
    // Entries of the records read so far; only the first `complete` of them belong to complete
    // batches (an unfinished batch's entries are dropped at the end).
    let mut index = index::Builder::new(layout);
    let mut complete = 0;
    let (mut off, mut seq) = (layout.data_start(), seg.base_seq);
    while let Ok(found) = window.record(off, limit, binding)? {
        let h = found.loc.header;
        if h.seq.get() != seq {
            break;
        }
        index.observe(seq, off);
        seq += 1;
        off = found.loc.next;
        prefix.raw_next_seq = seq;
        if h.flags & FLAG_BATCH_CONTINUES == 0 {
            prefix.next_seq = seq;
            prefix.end = off;
            complete = index.len();
        }
    }
    prefix.index = index.finish(complete);
    Ok(prefix)
}

/// What follows the valid prefix of a segment's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AfterRecords {
    /// Only zeros up to the end of the data region.
    Clean,
    /// Bytes of writes that never became durable, up to `end`.
    Torn { end: u64 },
    /// A valid record further on proves that the bytes at the prefix's end were durable data.
    Damaged { end: u64, damage: Damage },
}

/// Looks at the bytes after `prefix.end` in the data region. Zeros: clean. Otherwise a torn tail,
/// unless a valid record further on proves that the record at the prefix's end had already been
/// made durable (then acknowledged data is damaged) or that the bytes are stale.
pub(crate) fn classify_tail(
    src: &dyn ByteSource,
    seg: &Checked,
    prefix: &Prefix,
) -> io::Result<AfterRecords> {
    let limit = seg.layout.data_limit;
    let mut window = Window::new(src);
    let Some(last) = window.last_nonzero(prefix.end, limit)? else {
        return Ok(AfterRecords::Clean);
    };
    let end = last.div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    let expected = prefix.next_seq;
    let damaged = |kind| {
        let damage = Damage::new(src.path(), prefix.end, Some(expected), kind);
        Ok(AfterRecords::Damaged { end, damage })
    };
    let mut p = prefix.end;
    while p + RECORD_HEADER_LEN <= end {
        match window.record(p, limit, seg.binding())? {
            Ok(found) => {
                let seq = found.loc.header.seq.get();
                if seq < expected {
                    return damaged(DamageKind::StaleRecord { seq, at: p });
                }
                let unsynced = u64::from(found.loc.header.unsynced_before.get());
                if (seq - 1).saturating_sub(unsynced) >= expected {
                    return damaged(DamageKind::DurableAfter { seq, at: p });
                }
                p = found.loc.next;
            }
            Err(_) => p += RECORD_ALIGN,
        }
    }
    Ok(AfterRecords::Torn { end })
}

/// How a segment is trusted: through its seal, or by scanning its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    Sealed {
        seal: Seal,
        /// The seal's first sequence number is the header's and the first record checks out.
        /// The log is refused otherwise (see [`seal_damage`]).
        first_ok: bool,
    },
    Scanned {
        prefix: Prefix,
        tail: AfterRecords,
        /// Why a footer that is present was not accepted.
        footer_problem: Option<String>,
    },
}

impl Plan {
    /// First sequence number, the one after the last, and the end of the records.
    pub(crate) fn extent(&self, seg: &Checked) -> (u64, u64, u64) {
        match self {
            Plan::Sealed { seal, .. } => (seal.first_seq, seal.last_seq + 1, seal.data_end),
            Plan::Scanned { prefix, .. } => (seg.base_seq, prefix.next_seq, prefix.end),
        }
    }
}

/// Whether the bytes may change while they are read, and what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Nobody writes (a writable open holds the lock): one look decides.
    Still,
    /// A writer may be appending (a reader without the lock): a newest segment found damaged
    /// is scanned again, at once, while the end of its records moves; a live append moves the
    /// end forward, damage stays where it is.
    Reading,
    /// As `Reading`, and a torn tail of the newest segment is looked at again too (pausing
    /// briefly between looks): an inspection reports a torn tail, which an append caught
    /// half-copied is not.
    Inspecting,
}

/// Decides how `seg` is trusted. `newest` is the last segment of the log, whose tail may be torn
/// and which a live writer appends to.
///
/// A valid seal makes the segment's extent known without reading its records. Its checksum binds
/// it to this log and segment, and it is written only after every record it covers was flushed:
/// a seal that does not match the segment's header or first record therefore means acknowledged
/// records were damaged. Scanning instead would cut them as a torn tail and leave a footer that
/// vouches for records that are gone.
pub(crate) fn plan(
    src: &dyn ByteSource,
    seg: &Checked,
    newest: bool,
    live: Liveness,
) -> io::Result<Plan> {
    let mut found = footer(src, seg)?;
    if live != Liveness::Still {
        for _ in 0..FOOTER_REREADS {
            if !matches!(found, Footer::Invalid(_)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            found = footer(src, seg)?;
        }
    }
    let footer_problem = match found {
        Footer::Valid(seal) => {
            let start = seg.layout.data_start();
            let mut window = Window::new(src);
            let first_ok = seal.first_seq == seg.base_seq
                && window
                    .record(start, seal.data_end, seg.binding())?
                    .is_ok_and(|f| f.loc.header.seq.get() == seal.first_seq);
            return Ok(Plan::Sealed { seal, first_ok });
        }
        Footer::Absent => None,
        Footer::Invalid(why) => Some(why),
    };
    let limit = seg.layout.data_limit;
    let mut prefix = scan_prefix(src, seg, limit)?;
    let mut tail = classify_tail(src, seg, &prefix)?;
    let mut rescans = 0;
    while newest && rescans < LIVE_RESCANS {
        let look_again = match live {
            Liveness::Still => false,
            Liveness::Reading => matches!(tail, AfterRecords::Damaged { .. }),
            Liveness::Inspecting => tail != AfterRecords::Clean,
        };
        if !look_again {
            break;
        }
        if live == Liveness::Inspecting {
            std::thread::sleep(Duration::from_millis(1));
        }
        let again = scan_prefix(src, seg, limit)?;
        if again.end == prefix.end && again.raw_next_seq == prefix.raw_next_seq {
            break;
        }
        prefix = again;
        tail = classify_tail(src, seg, &prefix)?;
        rescans += 1;
    }
    Ok(Plan::Scanned {
        prefix,
        tail,
        footer_problem,
    })
}

/// The damage a plan proves, if any: a seal its first record contradicts, damaged durable data
/// after the valid records, or invalid bytes after the records of a segment that is not the
/// newest (it was fully flushed before the next one was created). A torn tail of the newest
/// segment is not damage: recovery cuts it.
pub(crate) fn plan_damage(
    src: &dyn ByteSource,
    seg: &Checked,
    plan: &Plan,
    newest: bool,
) -> Option<Damage> {
    match plan {
        Plan::Sealed {
            seal,
            first_ok: false,
        } => Some(Damage::new(
            src.path(),
            seg.layout.data_start(),
            Some(seg.base_seq),
            DamageKind::SealFirstRecord {
                first: seal.first_seq,
                last: seal.last_seq,
            },
        )),
        Plan::Sealed { .. } => None,
        Plan::Scanned { tail, prefix, .. } => match tail {
            AfterRecords::Clean => None,
            AfterRecords::Torn { .. } if newest => None,
            AfterRecords::Torn { .. } => Some(Damage::new(
                src.path(),
                prefix.end,
                Some(prefix.next_seq),
                DamageKind::InvalidBeforeNewer,
            )),
            AfterRecords::Damaged { damage, .. } => Some(damage.clone()),
        },
    }
}

/// The damage a sealed segment shows when its records, scanned, end at `found_end` before
/// sequence `found_next` instead of where its seal says; `None` when they agree.
pub(crate) fn seal_extent_damage(
    path: &Path,
    seal: &Seal,
    found_end: u64,
    found_next: u64,
) -> Option<Damage> {
    (found_end != seal.data_end || found_next != seal.last_seq + 1).then(|| {
        Damage::new(
            path,
            found_end,
            Some(found_next),
            DamageKind::SealExtent {
                first: seal.first_seq,
                last: seal.last_seq,
                data_end: seal.data_end,
                found_end,
                found_last: found_next.saturating_sub(1),
            },
        )
    })
}

/// The first segment number missing from `ids` (sorted), as damage in `dir`.
pub(crate) fn missing_segment(dir: &Path, before: u64, after: u64) -> Option<Damage> {
    let missing = before.checked_add(1)?;
    (after != missing).then(|| {
        Damage::new(
            &dir.join(names::segment(missing)),
            0,
            None,
            DamageKind::MissingSegment {
                missing,
                before,
                after,
            },
        )
    })
}

/// Whether `seg` continues a log whose id is `log_id` and whose previous segment's records end
/// before `previous_next` (when that segment is known and directly precedes this one).
pub(crate) fn continuity(
    path: &Path,
    seg: &Checked,
    log_id: u64,
    previous_next: Option<u64>,
) -> Option<Damage> {
    if seg.log_id != log_id {
        return Some(Damage::new(path, 0, None, DamageKind::ForeignLog));
    }
    match previous_next {
        Some(previous_next) if seg.base_seq != previous_next => Some(Damage::new(
            path,
            0,
            Some(previous_next),
            DamageKind::SequenceBreak {
                base: seg.base_seq,
                previous_next,
            },
        )),
        _ => None,
    }
}

/// What a spare file's bytes say it is (FORMAT.md, "Spare segments").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpareKind {
    /// A valid header (of any format version: opening it as a segment reports a newer one): a
    /// segment whose activating rename was lost, or is happening now.
    Activated,
    /// No valid header and nothing past it: made ahead of need, not used yet.
    Unused,
    /// No valid header, but bytes past it.
    Damaged,
}

/// Decides what the spare file in `src` is. Without `look_past_header`, a spare without a valid
/// header counts as unused without reading the rest (a reader ignores it either way).
pub(crate) fn spare_kind(src: &dyn ByteSource, look_past_header: bool) -> io::Result<SpareKind> {
    let mut window = Window::new(src);
    let head = window.bytes(0, SEGMENT_HEADER_LEN, SEGMENT_HEADER_LEN)?;
    let head_len = head.len() as u64;
    if matches!(
        format::decode_segment_header(head),
        Ok(_) | Err(HeaderError::UnsupportedVersion(_))
    ) {
        return Ok(SpareKind::Activated);
    }
    if !look_past_header {
        return Ok(SpareKind::Unused);
    }
    let blank = head_len == SEGMENT_HEADER_LEN
        && window
            .last_nonzero(SEGMENT_HEADER_LEN, src.len())?
            .is_none();
    Ok(if blank {
        SpareKind::Unused
    } else {
        SpareKind::Damaged
    })
}

/// What becomes of a spare of kind `kind`; `is_next` when its number follows the newest segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SpareFate {
    /// It is the log's next segment.
    JoinsLog,
    /// Unused: a writer removes it.
    Unused,
    /// Damage that refuses the log.
    Refused(DamageKind),
}

pub(crate) fn spare_fate(kind: SpareKind, is_next: bool) -> SpareFate {
    match kind {
        SpareKind::Activated if is_next => SpareFate::JoinsLog,
        SpareKind::Activated => SpareFate::Refused(DamageKind::SpareStray),
        SpareKind::Unused => SpareFate::Unused,
        SpareKind::Damaged => SpareFate::Refused(DamageKind::SpareDamaged),
    }
}
