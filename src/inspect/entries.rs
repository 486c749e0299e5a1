//! Every record and every finding of a log, in log order: the directory-level findings here,
//! the records of each segment from [`walk`](super::walk).

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::format::FLAG_BATCH_CONTINUES;
use crate::names;
use crate::record::RecordType;
use crate::rules::{self, SpareFate};
use crate::source::Found;

use super::Log;
use super::analysis::{self, Plan, Seg};
use super::dir::SlotState;
use super::verify::{Finding, Severity};
use super::walk::Walk;

/// One item of [`Log::entries`]: a record, or something found wrong (or worth knowing) at a
/// place in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// A record whose checksum is valid.
    Record(Record),
    /// Damage, or a note about the files, where it is in the log.
    Damage(Finding),
}

/// A record read from a segment file. Its checksum was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// Sequence number.
    pub seq: u64,
    /// Number of the segment that holds it.
    pub segment: u64,
    /// Offset of its header in the segment file.
    pub offset: u64,
    /// Type.
    pub record_type: RecordType,
    /// Timestamp as stored.
    pub timestamp: u64,
    /// Flag bits ([`FLAG_BATCH_CONTINUES`](crate::format::FLAG_BATCH_CONTINUES) or 0).
    pub flags: u8,
    /// How many records before it were not yet durable when it was written.
    pub unsynced_before: u32,
    /// The payload.
    pub payload: Vec<u8>,
    /// True when recovery counts the record as part of the log. False for a valid record found
    /// past damage or in a torn tail (recovery cuts or refuses those bytes), and for one out of
    /// sequence.
    pub in_log: bool,
}

impl Record {
    /// True when the next record belongs to the same atomic batch.
    #[must_use]
    pub fn batch_continues(&self) -> bool {
        self.flags & FLAG_BATCH_CONTINUES != 0
    }

    pub(super) fn new(seg: &Seg, offset: u64, found: &Found<'_>, in_log: bool) -> Record {
        let h = found.loc.header;
        Record {
            seq: h.seq.get(),
            segment: seg.id,
            offset,
            // A valid record never has type code 0.
            record_type: RecordType::from_code(h.record_type)
                .unwrap_or(RecordType::Custom(h.record_type)),
            timestamp: h.timestamp.get(),
            flags: h.flags,
            unsynced_before: h.unsynced_before.get(),
            payload: found.payload.to_vec(),
            in_log,
        }
    }
}

/// The iterator of [`Log::entries`]: the records of every segment in order, with a
/// [`Entry::Damage`] where something is wrong (a missing segment, a rejected header, a damaged
/// record, a torn tail, ...), placed where it is in the log.
///
/// Records recovery would not return (found past damage or in a torn tail) are included with
/// [`Record::in_log`] false. An `Err` item is a failed read; the iteration ends after it.
#[derive(Debug)]
pub struct Entries<'l> {
    log: &'l Log,
    from: u64,
    to: u64,
    next_slot: usize,
    newest: Option<usize>,
    out: VecDeque<Entry>,
    walk: Option<Walk<'l>>,
    /// Number of the previous segment file listed, and where its records end if it was readable.
    prev: Option<(u64, Option<u64>)>,
    log_id: Option<u64>,
    done: bool,
}

impl<'l> Entries<'l> {
    pub(super) fn new(log: &'l Log, from: u64, to: u64) -> Entries<'l> {
        Entries {
            log,
            from,
            to,
            next_slot: 0,
            newest: log.newest_slot(),
            out: VecDeque::new(),
            walk: None,
            prev: None,
            log_id: None,
            done: false,
        }
    }

    fn finding(&mut self, f: Finding) {
        self.out.push_back(Entry::Damage(f));
    }

    /// Queues what is known about slot `i` before its records, and starts walking them.
    fn start_slot(&mut self, i: usize) {
        let log = self.log;
        let slot = &log.slots[i];
        let newest = Some(i) == self.newest;
        let extent = match &slot.state {
            SlotState::Open { seg, plan } => Some(seg.extent(plan)),
            _ => None,
        };
        // A segment is skipped only when the records wanted are elsewhere for sure: it starts
        // after `to`, or the segment after it starts where it ends, before `from` (so nothing
        // past its records, a torn tail or damage, can concern them either).
        let successor_first = log.slots.get(i + 1).and_then(|next| match &next.state {
            SlotState::Open { seg, plan } if next.id == slot.id + 1 => Some(seg.extent(plan).0),
            _ => None,
        });
        let skipped = extent.is_some_and(|(first, next, _)| {
            first > self.to || (next < self.from && successor_first == Some(next))
        });
        let prev = self
            .prev
            .replace((slot.id, extent.map(|(_, next, _)| next)));
        if skipped {
            if let SlotState::Open { seg, .. } = &slot.state {
                self.log_id.get_or_insert(seg.header.log_id);
            }
            return;
        }
        if let Some((prev_id, _)) = prev
            && let Some(damage) = rules::missing_segment(&log.dir, prev_id, slot.id)
        {
            let missing = prev_id + 1;
            self.finding(Finding::from_damage(
                Severity::Corruption,
                damage,
                Some(missing),
            ));
        }
        let at = |severity, what: String| {
            Finding::at(severity, slot.path.clone(), Some(slot.id), 0, what)
        };
        match &slot.state {
            SlotState::Rejected(why) => self.finding(at(Severity::Corruption, why.clone())),
            SlotState::Unreadable(why) => {
                self.finding(at(Severity::Unreadable, format!("cannot be read: {why}")));
            }
            SlotState::Vanished => self.finding(at(
                Severity::Note,
                "deleted while being inspected (the writer truncated the log)".into(),
            )),
            SlotState::Open { seg, plan } => {
                if slot.activated_spare {
                    self.finding(at(
                        Severity::Note,
                        format!(
                            "an activated spare whose rename to {} a crash lost; recovery \
                             renames it",
                            names::segment(slot.id)
                        ),
                    ));
                }
                let log_id = *self.log_id.get_or_insert(seg.header.log_id);
                let previous_next = prev
                    .filter(|&(prev_id, _)| prev_id + 1 == seg.id)
                    .and_then(|(_, next)| next);
                if let Some(damage) =
                    rules::continuity(seg.path(), &seg.checked, log_id, previous_next)
                {
                    self.finding(Finding::from_damage(
                        Severity::Corruption,
                        damage,
                        Some(seg.id),
                    ));
                }
                self.plan_findings(seg, plan, newest);
                self.walk = Some(Walk::new(seg, plan, newest));
            }
        }
    }

    /// Spare files come after every segment: a spare is at most the next one.
    fn spare_findings(&mut self) {
        for spare in &self.log.spares {
            let (severity, what) = match &spare.fate {
                Ok(SpareFate::Unused | SpareFate::JoinsLog) => {
                    (Severity::Note, "spare segment (not yet used)".into())
                }
                Ok(SpareFate::Refused(kind)) => (Severity::Corruption, kind.to_string()),
                Err(why) => (Severity::Unreadable, format!("cannot be read: {why}")),
            };
            self.out.push_back(Entry::Damage(Finding::at(
                severity,
                spare.path.clone(),
                Some(spare.id),
                0,
                what,
            )));
        }
    }

    /// What the plan says about a readable segment before its records.
    fn plan_findings(&mut self, seg: &Seg, plan: &Plan, newest: bool) {
        let path = seg.file.path.clone();
        let layout = seg.layout();
        match plan {
            Plan::Sealed {
                first_ok: false, ..
            } => {
                if let Some(damage) = analysis::plan_damage(seg, plan, newest) {
                    self.finding(Finding::from_damage(
                        Severity::Corruption,
                        damage,
                        Some(seg.id),
                    ));
                }
            }
            Plan::Sealed { .. } => {}
            Plan::Scanned {
                prefix,
                footer_problem,
                ..
            } => {
                if let Some(why) = footer_problem {
                    let then = if newest {
                        ""
                    } else {
                        ", and a writer seals it again"
                    };
                    self.finding(Finding::at(
                        Severity::Warning,
                        path,
                        Some(seg.id),
                        layout.footer_offset,
                        format!(
                            "invalid seal footer ({why}): recovery scans the segment instead{then}"
                        ),
                    ));
                } else if !newest && prefix.next_seq > seg.base_seq() {
                    // The writer seals a full segment after it moved on to the next one, so a
                    // crash in between leaves it unsealed.
                    self.finding(Finding::at(
                        Severity::Note,
                        path,
                        Some(seg.id),
                        layout.footer_offset,
                        "unsealed (sealed at the next open)".into(),
                    ));
                }
            }
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(e) = self.out.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            if let Some(walk) = &mut self.walk {
                match walk.step(&mut self.out) {
                    Ok(true) => {}
                    Ok(false) => self.walk = None,
                    Err(e) => {
                        self.done = true;
                        let path = walk.seg.file.path.clone();
                        return Some(Err(Error::io("reading", path, e)));
                    }
                }
                continue;
            }
            let i = self.next_slot;
            if i >= self.log.slots.len() {
                self.done = true;
                self.spare_findings();
                continue;
            }
            self.next_slot += 1;
            self.start_slot(i);
        }
    }
}
