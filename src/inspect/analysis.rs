//! One segment file as recovery sees it, read with positioned reads: its header, its seal, the
//! valid prefix of its records and what follows them.
//!
//! The rules are recovery's (`src/recovery.rs`, FORMAT.md "Recovery"); the messages are the same
//! where recovery reports the same thing, so `walctl verify` and an open agree word for word.

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::format::{
    self, Binding, FLAG_BATCH_CONTINUES, FOOTER_LEN, INDEX_ENTRY_LEN, IndexEntry, Layout,
    RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, Seal,
};

use super::HeaderInfo;
use super::io::{SegmentFile, Window};

/// A segment file whose header checked out.
#[derive(Debug)]
pub(crate) struct Seg {
    pub(crate) file: SegmentFile,
    pub(crate) id: u64,
    pub(crate) header: HeaderInfo,
}

impl Seg {
    pub(crate) fn layout(&self) -> &Layout {
        &self.header.layout
    }

    pub(crate) fn binding(&self) -> Binding {
        Binding {
            log_id: self.header.log_id,
            segment_id: self.id,
        }
    }

    pub(crate) fn base_seq(&self) -> u64 {
        self.header.base_seq
    }
}

/// What opening a segment file found.
#[derive(Debug)]
pub(crate) enum Opened {
    Seg(Seg),
    /// The header is not one this crate accepts; the reason, as recovery words it.
    Rejected(String),
    /// The file was deleted between the directory listing and the open (truncation).
    Vanished,
}

/// Opens `path` (segment number `id`, or the header's own number when `id` is `None`) and
/// checks its header in recovery's order.
pub(crate) fn open(path: &Path, id: Option<u64>) -> io::Result<Opened> {
    let file = match SegmentFile::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Vanished),
        Err(e) => return Err(e),
    };
    let head = file.read_vec(0, SEGMENT_HEADER_LEN)?;
    let len = file.len;
    if len < SEGMENT_HEADER_LEN {
        return Ok(Opened::Rejected(format!(
            "segment file is {len} bytes, shorter than its header"
        )));
    }
    let (h, layout) = match format::decode_segment_header(&head) {
        Ok(ok) => ok,
        Err(e) => return Ok(Opened::Rejected(e.to_string())),
    };
    if layout.size != len {
        return Ok(Opened::Rejected(format!(
            "segment file is {len} bytes but its header says {}",
            layout.size
        )));
    }
    let header = HeaderInfo::new(&h, layout);
    let id = id.unwrap_or(header.segment_id);
    if header.segment_id != id {
        return Ok(Opened::Rejected(format!(
            "header says segment {} but the file name says {id}",
            header.segment_id
        )));
    }
    Ok(Opened::Seg(Seg { file, id, header }))
}

/// The seal footer of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Footer {
    Absent,
    Valid(Seal),
    /// A footer is there but fails its checks; recovery then scans the segment.
    Invalid(String),
}

pub(crate) fn footer(seg: &Seg) -> io::Result<Footer> {
    let layout = seg.layout();
    let bytes = seg.file.read_vec(layout.footer_offset, FOOTER_LEN)?;
    Ok(
        match format::decode_footer_bytes(&bytes, layout, seg.binding()) {
            Ok(None) => Footer::Absent,
            Ok(Some(seal)) => Footer::Valid(seal),
            Err(why) => Footer::Invalid(why),
        },
    )
}

/// The persisted index of a sealed segment, checked as a reader checks it before using it.
pub(crate) fn persisted_index(
    seg: &Seg,
    seal: &Seal,
) -> io::Result<Result<Vec<IndexEntry>, String>> {
    let layout = seg.layout();
    let len = seal.index_count.saturating_mul(INDEX_ENTRY_LEN);
    let bytes = seg.file.read_vec(layout.index_offset(), len)?;
    Ok(format::decode_index_bytes(
        &bytes,
        layout,
        seg.binding(),
        seal,
    ))
}

/// The valid prefix of a segment's records (recovery's `scan_records`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    /// First sequence number after the last complete batch.
    pub(crate) next_seq: u64,
    /// Offset just past the last complete batch.
    pub(crate) end: u64,
    /// Like `next_seq`, counting the records of an unfinished batch after it.
    pub(crate) raw_next_seq: u64,
}

pub(crate) fn prefix(seg: &Seg, limit: u64) -> io::Result<Prefix> {
    let limit = limit.min(seg.layout().data_limit);
    let mut window = Window::new(&seg.file);
    let start = seg.layout().data_start();
    let mut p = Prefix {
        next_seq: seg.base_seq(),
        end: start,
        raw_next_seq: seg.base_seq(),
    };
    let (mut off, mut seq) = (start, seg.base_seq());
    while let Ok(found) = window.record(off, limit, seg.binding())? {
        let h = found.loc.header;
        if h.seq.get() != seq {
            break;
        }
        seq += 1;
        off = found.loc.next;
        p.raw_next_seq = seq;
        if h.flags & FLAG_BATCH_CONTINUES == 0 {
            p.next_seq = seq;
            p.end = off;
        }
    }
    Ok(p)
}

/// What follows the valid prefix of a scanned segment (recovery's `classify_tail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TailClass {
    /// Only zeros up to the end of the data region.
    Clean,
    /// Bytes of writes that never became durable, up to `end`.
    Torn { end: u64 },
    /// A valid record further on proves the bytes at the prefix's end were durable data.
    Corrupt { end: u64, detail: String },
}

pub(crate) fn classify_tail(seg: &Seg, prefix: &Prefix) -> io::Result<TailClass> {
    let limit = seg.layout().data_limit;
    let Some(last) = seg.file.last_nonzero(prefix.end, limit)? else {
        return Ok(TailClass::Clean);
    };
    let end = last.div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    let expected = prefix.next_seq;
    let mut window = Window::new(&seg.file);
    let mut p = prefix.end;
    while p + RECORD_HEADER_LEN <= end {
        match window.record(p, limit, seg.binding())? {
            Ok(found) => {
                let seq = found.loc.header.seq.get();
                if seq < expected {
                    return Ok(TailClass::Corrupt {
                        end,
                        detail: format!(
                            "record {seq} at offset {p} lies past the end of the valid records"
                        ),
                    });
                }
                let unsynced = u64::from(found.loc.header.unsynced_before.get());
                if (seq - 1).saturating_sub(unsynced) >= expected {
                    return Ok(TailClass::Corrupt {
                        end,
                        detail: format!(
                            "the record here is invalid, but record {seq} at offset {p} was \
                             written after it had been made durable"
                        ),
                    });
                }
                p = found.loc.next;
            }
            Err(_) => p += RECORD_ALIGN,
        }
    }
    Ok(TailClass::Torn { end })
}

/// How recovery treats a segment: trusted through its seal, or scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    Sealed {
        seal: Seal,
        /// The seal's first sequence number is the header's and the first record checks out.
        /// Recovery refuses the log otherwise.
        first_ok: bool,
    },
    Scanned {
        prefix: Prefix,
        tail: TailClass,
        /// Why a footer that is present was not accepted.
        footer_problem: Option<String>,
    },
}

impl Plan {
    /// First sequence number, the one after the last, and the end of the records.
    pub(crate) fn extent(&self, seg: &Seg) -> (u64, u64, u64) {
        match self {
            Plan::Sealed { seal, .. } => (seal.first_seq, seal.last_seq + 1, seal.data_end),
            Plan::Scanned { prefix, .. } => (seg.base_seq(), prefix.next_seq, prefix.end),
        }
    }
}

/// How often an invalid footer is read again before it is taken as invalid.
const FOOTER_REREADS: usize = 3;

/// How often the newest segment is scanned again while its end keeps moving (a live writer).
const LIVE_RESCANS: usize = 200;

/// Decides how recovery would treat `seg`. For the newest segment a tail that is not clean is
/// looked at again while the end of the records moves: a writer appending to the log at the
/// same time leaves a record or batch half-copied for a moment, which is not damage.
pub(crate) fn plan(seg: &Seg, newest: bool) -> io::Result<Plan> {
    // The writer seals a segment in the background after it moved on: a footer read while it is
    // being copied in looks invalid for a moment.
    let mut footer = footer(seg)?;
    for _ in 0..FOOTER_REREADS {
        if !matches!(footer, Footer::Invalid(_)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        footer = self::footer(seg)?;
    }
    let footer_problem = match footer {
        Footer::Valid(seal) => {
            let data_start = seg.layout().data_start();
            let mut window = Window::new(&seg.file);
            let first_ok = seal.first_seq == seg.base_seq()
                && window
                    .record(data_start, seal.data_end, seg.binding())?
                    .is_ok_and(|f| f.loc.header.seq.get() == seal.first_seq);
            return Ok(Plan::Sealed { seal, first_ok });
        }
        Footer::Absent => None,
        Footer::Invalid(why) => Some(why),
    };
    let data_limit = seg.layout().data_limit;
    let mut prefix = prefix(seg, data_limit)?;
    let mut tail = classify_tail(seg, &prefix)?;
    let mut rescans = 0;
    while newest && tail != TailClass::Clean && rescans < LIVE_RESCANS {
        std::thread::sleep(Duration::from_millis(1));
        let again = self::prefix(seg, data_limit)?;
        if again == prefix {
            break;
        }
        prefix = again;
        tail = classify_tail(seg, &prefix)?;
        rescans += 1;
    }
    Ok(Plan::Scanned {
        prefix,
        tail,
        footer_problem,
    })
}
