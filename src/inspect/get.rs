//! One record by sequence number, found the way the library's readers find it.

use crate::error::{Error, Result};

use super::Log;
use crate::rules::DamageKind;
use crate::source::Window;

use super::analysis::{self, Plan, Seg};
use super::dir::SlotState;
use super::entries::Record;

/// [`Log::get`]: positioned by the persisted index of a sealed segment when it checks out, then
/// a walk over record headers, and the checksum of the record returned.
pub(super) fn get(log: &Log, seq: u64) -> Result<Option<Record>> {
    for slot in &log.slots {
        let SlotState::Open { seg, plan } = &slot.state else {
            continue;
        };
        let (first, next, end) = seg.extent(plan);
        if !(first..next).contains(&seq) {
            continue;
        }
        let io_err = |e| Error::io("reading", &seg.file.path, e);
        let start = (seg.base_seq(), seg.layout().data_start());
        let mut from = start;
        if let Plan::Sealed { seal, .. } = plan
            && let Ok(index) = analysis::persisted_index(seg, seal).map_err(io_err)?
        {
            let i = index.partition_point(|e| e.seq.get() <= seq);
            if let Some(e) = i.checked_sub(1).and_then(|i| index.get(i)) {
                from = (e.seq.get(), e.offset.get());
            }
        }
        return match walk_to(seg, from, seq, end).map_err(io_err)? {
            Ok(record) => Ok(Some(record)),
            // An index entry that leads nowhere: walk from the first record, as readers do.
            Err(_) if from != start => match walk_to(seg, start, seq, end).map_err(io_err)? {
                Ok(record) => Ok(Some(record)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
    }
    Ok(None)
}

/// Walks record headers from `(seq, offset)` to record `target`, then checks its checksum.
fn walk_to(
    seg: &Seg,
    (mut seq, mut off): (u64, u64),
    target: u64,
    end: u64,
) -> std::io::Result<Result<Record>> {
    let mut window = Window::new(&seg.file);
    let damaged =
        |off, seq, detail: String| Error::corruption(&seg.file.path, off, Some(seq), detail);
    loop {
        let loc = match window.locate(off, end)? {
            Ok(loc) => loc,
            Err(e) => {
                return Ok(Err(damaged(
                    off,
                    seq,
                    format!("{e} (looking for record {target})"),
                )));
            }
        };
        let found_seq = loc.header.seq.get();
        if found_seq != seq {
            let wrong = DamageKind::WrongSeq {
                found: found_seq,
                expected: seq,
            };
            return Ok(Err(damaged(off, seq, wrong.to_string())));
        }
        if seq == target {
            return Ok(match window.record(off, end, seg.binding())? {
                Ok(found) => Ok(Record::new(seg, off, &found, true)),
                Err(e) => Err(damaged(off, seq, e.to_string())),
            });
        }
        seq += 1;
        off = loc.next;
    }
}
