//! The walk over one segment's records: every valid record in order, and a finding for each
//! damaged range, placed where it is. It never stops at damage: it steps over it, eight bytes at
//! a time, to the next valid record.

use std::collections::VecDeque;

use crate::format::{FLAG_BATCH_CONTINUES, RECORD_ALIGN, RECORD_HEADER_LEN, RecordError, Seal};
use crate::rules::DamageKind;
use crate::source::Window;

use super::analysis::{AfterRecords, Plan, Prefix, Seg};
use super::entries::{Entry, Record};
use super::verify::{Finding, Severity};

/// Damaged bytes being skipped: where they start and what was wrong there.
#[derive(Debug)]
struct Span {
    start: u64,
    what: String,
}

#[derive(Debug)]
enum Phase {
    /// Records from `off` to `end`: all of a sealed segment's, or the valid prefix of a scanned
    /// one.
    Body,
    /// Checks after the records of a sealed segment.
    SealEnd(Seal),
    /// The finding about a scanned segment's tail.
    TailStart {
        prefix: Prefix,
        tail: AfterRecords,
    },
    /// Valid records inside a tail (none of them in the log), up to `end`.
    Tail {
        end: u64,
    },
    Done,
}

/// The walk over one segment's records.
#[derive(Debug)]
pub(super) struct Walk<'l> {
    pub(super) seg: &'l Seg,
    window: Window<'l>,
    phase: Phase,
    /// The phase after `Body`.
    after_body: Option<Phase>,
    newest: bool,
    off: u64,
    end: u64,
    /// The sequence number the next record should have.
    expected: u64,
    /// Last sequence number the seal vouches for (sealed segments).
    last: Option<u64>,
    span: Option<Span>,
    /// Something was reported about this segment's records.
    reported: bool,
    last_flags: u8,
}

impl<'l> Walk<'l> {
    pub(super) fn new(seg: &'l Seg, plan: &Plan, newest: bool) -> Walk<'l> {
        let (end, last, after) = match plan {
            Plan::Sealed { seal, .. } => {
                (seal.data_end, Some(seal.last_seq), Phase::SealEnd(*seal))
            }
            Plan::Scanned { prefix, tail, .. } => (
                prefix.end,
                None,
                Phase::TailStart {
                    prefix: prefix.clone(),
                    tail: tail.clone(),
                },
            ),
        };
        Walk {
            seg,
            window: Window::new(&seg.file),
            phase: Phase::Body,
            after_body: Some(after),
            newest,
            off: seg.layout().data_start(),
            end,
            expected: seg.base_seq(),
            last,
            span: None,
            reported: false,
            last_flags: 0,
        }
    }

    fn finding(
        &mut self,
        out: &mut VecDeque<Entry>,
        severity: Severity,
        offset: u64,
        what: String,
    ) {
        self.reported = true;
        let mut f = Finding::at(
            severity,
            self.seg.file.path.clone(),
            Some(self.seg.id),
            offset,
            what,
        );
        f.seq = Some(self.expected);
        out.push_back(Entry::Damage(f));
    }

    /// Does one unit of work, queueing what it finds. `Ok(false)` once the segment is done.
    pub(super) fn step(&mut self, out: &mut VecDeque<Entry>) -> std::io::Result<bool> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Body => {
                self.phase = Phase::Body;
                self.body_step(out)?;
            }
            Phase::SealEnd(seal) => self.seal_end(&seal, out)?,
            Phase::TailStart { prefix, tail } => self.tail_start(&prefix, &tail, out),
            Phase::Tail { end } => {
                self.phase = Phase::Tail { end };
                self.tail_step(end, out)?;
            }
            Phase::Done => return Ok(false),
        }
        Ok(true)
    }

    /// Reads records until one is queued (with what precedes it) or the region ends.
    fn body_step(&mut self, out: &mut VecDeque<Entry>) -> std::io::Result<()> {
        let binding = self.seg.binding();
        loop {
            let off = self.off;
            if off + RECORD_HEADER_LEN > self.end {
                self.close_span(self.end, None, out);
                self.phase = self.after_body.take().unwrap_or(Phase::Done);
                return Ok(());
            }
            let err = match self.window.record(off, self.end, binding)? {
                Ok(found) => {
                    let seq = found.loc.header.seq.get();
                    let (next, flags) = (found.loc.next, found.loc.header.flags);
                    let record = Record::new(self.seg, off, &found, false);
                    self.place(record, off, out);
                    self.off = next;
                    self.last_flags = flags;
                    debug_assert!(seq != 0);
                    return Ok(());
                }
                Err(e) => e,
            };
            if self.span.is_none() {
                let what = self.describe(off, &err)?;
                self.span = Some(Span { start: off, what });
            }
            self.off = off + RECORD_ALIGN;
        }
    }

    /// Queues a valid record found in the body, with a finding first if it is not the one
    /// expected there.
    fn place(&mut self, mut record: Record, off: u64, out: &mut VecDeque<Entry>) {
        let seq = record.seq;
        let expected = self.expected;
        let closes_span = self.span.is_some();
        self.close_span(off, Some(seq), out);
        if seq == expected {
            record.in_log = true;
            self.expected += 1;
        } else if seq > expected && self.last.is_some_and(|last| seq <= last) {
            // Records are missing before it, but the seal vouches for this one.
            if !closes_span {
                self.finding(
                    out,
                    Severity::Corruption,
                    off,
                    format!(
                        "record {} is followed by record {seq}",
                        expected.saturating_sub(1)
                    ),
                );
            }
            record.in_log = true;
            self.expected = seq + 1;
        } else {
            self.finding(
                out,
                Severity::Corruption,
                off,
                format!("record {seq} is out of sequence here (expected {expected})"),
            );
        }
        out.push_back(Entry::Record(record));
    }

    /// Ends the damaged range being skipped at `end`, saying which records it took with it:
    /// those up to `next_seq` (the next valid record), or up to the seal's last one.
    fn close_span(&mut self, end: u64, next_seq: Option<u64>, out: &mut VecDeque<Entry>) {
        let Some(span) = self.span.take() else {
            return;
        };
        let first = self.expected;
        let last = match next_seq {
            Some(next) => next.checked_sub(1).filter(|&l| l >= first),
            None => self.last.filter(|&l| l >= first),
        };
        // The damage message already names the record when it is the only one lost.
        let named = span.what.starts_with(&format!("record {first}:"));
        let lost = match last {
            Some(l) if l == first && named => String::new(),
            Some(l) if l == first => format!("; record {first} is unreadable"),
            Some(l) => format!("; records {first}..={l} are unreadable"),
            None => String::new(),
        };
        let what = format!("{}{lost}", span.what);
        self.finding(out, Severity::Corruption, span.start, what);
        if let Some(f) = out.back_mut().and_then(|e| match e {
            Entry::Damage(f) => Some(f),
            Entry::Record(_) => None,
        }) {
            f.len = Some(end - span.start);
        }
    }

    /// Why the bytes at `off` are not the record expected there.
    fn describe(&mut self, off: u64, err: &RecordError) -> std::io::Result<String> {
        let expected = self.expected;
        Ok(match err {
            RecordError::Zero => format!("zero bytes where record {expected} should start"),
            RecordError::BadChecksum => match self.window.locate(off, self.end)? {
                Ok(loc) if loc.header.seq.get() == expected => {
                    format!("record {expected}: checksum mismatch")
                }
                Ok(loc) => format!(
                    "checksum mismatch (the header says record {}, record {expected} was \
                     expected)",
                    loc.header.seq.get()
                ),
                Err(e) => e.to_string(),
            },
            e => format!("record {expected}: {e}"),
        })
    }

    /// After the records of a sealed segment: do they end where the seal says?
    fn seal_end(&mut self, seal: &Seal, out: &mut VecDeque<Entry>) -> std::io::Result<()> {
        let layout = *self.seg.layout();
        if !self.reported && (self.off != seal.data_end || self.expected != seal.last_seq + 1) {
            self.finding(
                out,
                Severity::Corruption,
                self.off,
                format!(
                    "sealed as holding records {}..={} ending at offset {}, but the records \
                     end at offset {} after record {}",
                    seal.first_seq,
                    seal.last_seq,
                    seal.data_end,
                    self.off,
                    self.expected.saturating_sub(1)
                ),
            );
        }
        if self.last_flags & FLAG_BATCH_CONTINUES != 0 {
            self.finding(
                out,
                Severity::Warning,
                self.off,
                "the last record of a sealed segment says its batch continues".into(),
            );
        }
        if let Some(dirty) = self.window.last_nonzero(seal.data_end, layout.data_limit)? {
            self.finding(
                out,
                Severity::Warning,
                seal.data_end,
                format!(
                    "non-zero bytes after the end of the records (up to offset {dirty}); a \
                     writer leaves zeros there"
                ),
            );
        }
        self.phase = Phase::Done;
        Ok(())
    }

    /// The finding about what follows a scanned segment's valid prefix.
    fn tail_start(&mut self, prefix: &Prefix, tail: &AfterRecords, out: &mut VecDeque<Entry>) {
        let x = prefix.next_seq;
        self.expected = x;
        let (severity, end, what) = match tail {
            AfterRecords::Clean => {
                self.phase = Phase::Done;
                return;
            }
            AfterRecords::Torn { end } if self.newest => {
                let batch = if prefix.raw_next_seq > x {
                    format!(
                        " (records {x}..={} are an unfinished batch)",
                        prefix.raw_next_seq - 1
                    )
                } else {
                    String::new()
                };
                (
                    Severity::TornTail,
                    *end,
                    format!(
                        "torn tail: {} bytes after the last complete record{batch}; recovery \
                         cuts them and the log continues at {x}",
                        end - prefix.end
                    ),
                )
            }
            AfterRecords::Torn { end } => (
                Severity::Corruption,
                *end,
                DamageKind::InvalidBeforeNewer.to_string(),
            ),
            AfterRecords::Damaged { end, damage } => {
                (Severity::Corruption, *end, damage.kind.to_string())
            }
        };
        self.finding(out, severity, prefix.end, what);
        if let Some(Entry::Damage(f)) = out.back_mut() {
            f.len = Some(end - prefix.end);
        }
        self.off = prefix.end;
        self.phase = Phase::Tail { end };
    }

    /// Valid records inside a tail; none of them is in the log.
    fn tail_step(&mut self, end: u64, out: &mut VecDeque<Entry>) -> std::io::Result<()> {
        let limit = self.seg.layout().data_limit;
        let binding = self.seg.binding();
        while self.off + RECORD_HEADER_LEN <= end {
            let off = self.off;
            if let Ok(found) = self.window.record(off, limit, binding)? {
                self.off = found.loc.next;
                out.push_back(Entry::Record(Record::new(self.seg, off, &found, false)));
                return Ok(());
            }
            self.off = off + RECORD_ALIGN;
        }
        self.phase = Phase::Done;
        Ok(())
    }
}
