//! Findings and the full verification of a log.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::format::{INDEX_ENTRY_LEN, IndexEntry};

use super::analysis::{self, Plan};
use super::dir::SlotState;
use super::entries::Entry;
use super::lock::{WriterLock, writer_lock};
use super::{Log, SegmentInfo};

/// How much a [`Finding`] matters. Ordered from least to most serious.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; nothing is wrong (a spare segment, a file the log ignores).
    Note,
    /// Not as a cleanly working writer leaves the files, but no record is lost and the library
    /// repairs or works around it (an invalid seal footer or index, an unsealed older segment, a
    /// leftover temporary file).
    Warning,
    /// Bytes after the last complete record of the newest segment that recovery cuts: what a
    /// crash during an append leaves. Also what damage to the very last durable records looks
    /// like (FORMAT.md, "What recovery cannot tell apart").
    TornTail,
    /// A file could not be read, so it was not checked.
    Unreadable,
    /// Damage to data that was durable: recovery refuses to open the log, or a read of the
    /// records named fails.
    Corruption,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::TornTail => "torn tail",
            Severity::Unreadable => "unreadable",
            Severity::Corruption => "corruption",
        })
    }
}

/// Something found in a log directory, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The file it is about (for a missing segment, the name it should have), or the directory.
    pub file: PathBuf,
    /// The segment number, when the finding is about a segment.
    pub segment: Option<u64>,
    /// Byte offset in `file` where it is.
    pub offset: Option<u64>,
    /// How many bytes it covers, when that is known.
    pub len: Option<u64>,
    /// The sequence number expected there, when known.
    pub seq: Option<u64>,
    /// What is wrong, as a sentence.
    pub what: String,
}

impl Finding {
    pub(crate) fn at(
        severity: Severity,
        file: PathBuf,
        segment: Option<u64>,
        offset: u64,
        what: String,
    ) -> Finding {
        Finding {
            severity,
            file,
            segment,
            offset: Some(offset),
            len: None,
            seq: None,
            what,
        }
    }

    /// The finding for `damage`, found by the recovery rules, about segment `segment`.
    pub(crate) fn from_damage(
        severity: Severity,
        damage: crate::rules::Damage,
        segment: Option<u64>,
    ) -> Finding {
        Finding {
            severity,
            segment,
            offset: Some(damage.offset),
            len: None,
            seq: damage.seq,
            what: damage.kind.to_string(),
            file: damage.file,
        }
    }

    fn about(severity: Severity, file: &Path, what: String) -> Finding {
        Finding {
            severity,
            file: file.to_path_buf(),
            segment: None,
            offset: None,
            len: None,
            seq: None,
            what,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.file.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (sequence {seq})")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// How the newest segment ends.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tail {
    /// Zeros after the last record (or no segment with records).
    Clean,
    /// A torn tail recovery cuts: `len` bytes at `offset` of `file`; the log continues at
    /// `next_seq`.
    Torn {
        /// The newest segment file.
        file: PathBuf,
        /// Offset just past the last complete record.
        offset: u64,
        /// Bytes recovery zeroes.
        len: u64,
        /// The sequence number the log continues with.
        next_seq: u64,
    },
    /// The bytes after the last valid record are damaged durable data (see the findings).
    Corrupt {
        /// The newest segment file.
        file: PathBuf,
        /// Offset just past the last valid record.
        offset: u64,
    },
}

/// The one-word summary of a [`Report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Nothing worse than a warning.
    Clean,
    /// A torn tail, which recovery cuts; nothing worse.
    TornTail,
    /// Some file could not be read; nothing was found damaged in the others.
    Unreadable,
    /// Damage to durable data (see the findings for where).
    Corruption,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Clean => "clean",
            Verdict::TornTail => "torn tail (recoverable)",
            Verdict::Unreadable => "incomplete (files could not be read)",
            Verdict::Corruption => "corruption",
        })
    }
}

/// The result of [`Log::verify`]: every record's checksum and sequence number, every segment
/// header and seal, every persisted index entry against the record it points to, and the state
/// of the tail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The log directory.
    pub dir: PathBuf,
    /// The segment files.
    pub segments: Vec<SegmentInfo>,
    /// Everything found: notes about the directory first, then segment by segment, each in
    /// the order of the offsets.
    pub findings: Vec<Finding>,
    /// Records recovery counts as the log, all with valid checksums.
    pub records: u64,
    /// Valid records found outside the log (past damage, in a torn tail).
    pub records_outside: u64,
    /// Sequence number of the first record of the log.
    pub first_seq: Option<u64>,
    /// Sequence number of the last record of the log.
    pub last_seq: Option<u64>,
    /// Persisted index entries checked against their records.
    pub index_entries: u64,
    /// How the newest segment ends.
    pub tail: Tail,
    /// Whether a writer had the log open while it was verified.
    pub writer: WriterLock,
}

impl Report {
    /// The most serious kind of problem found.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        match self.findings.iter().map(|f| f.severity).max() {
            Some(Severity::Corruption) => Verdict::Corruption,
            Some(Severity::Unreadable) => Verdict::Unreadable,
            Some(Severity::TornTail) => Verdict::TornTail,
            _ => Verdict::Clean,
        }
    }

    /// Whether the log passes: no corruption and nothing unreadable; with `strict`, also no torn
    /// tail and no warning (the files are exactly as a cleanly working writer leaves them).
    #[must_use]
    pub fn passes(&self, strict: bool) -> bool {
        let worst_allowed = if strict {
            Severity::Note
        } else {
            Severity::TornTail
        };
        self.findings.iter().all(|f| f.severity <= worst_allowed)
    }
}

/// The persisted index of one sealed segment, consumed as its records go by.
struct IndexCheck {
    segment: u64,
    entries: Vec<IndexEntry>,
    next: usize,
    index_offset: u64,
    path: PathBuf,
}

impl IndexCheck {
    /// Checks the entries that point at or before the record at `offset` (sequence `seq`).
    /// `damaged` is the damaged range of this segment seen last: an entry pointing into it is
    /// already explained by that finding.
    fn record(&mut self, offset: u64, seq: u64, damaged: Option<(u64, u64)>, report: &mut Report) {
        while let Some(e) = self.entries.get(self.next) {
            let (e_seq, e_off) = (e.seq.get(), e.offset.get());
            if e_off > offset {
                break;
            }
            report.index_entries += 1;
            let explained = damaged.is_some_and(|(start, end)| (start..end).contains(&e_off));
            let wrong = if e_off < offset {
                Some("the middle of a record or damaged bytes".to_string())
            } else if e_seq != seq {
                Some(format!("record {seq}"))
            } else {
                None
            };
            if let Some(target) = wrong.filter(|_| !explained) {
                self.mismatch(e_seq, e_off, &target, report);
            }
            self.next += 1;
        }
    }

    fn finish(&mut self, report: &mut Report) {
        while let Some(e) = self.entries.get(self.next) {
            let (e_seq, e_off) = (e.seq.get(), e.offset.get());
            report.index_entries += 1;
            self.mismatch(e_seq, e_off, "no record (past the last one read)", report);
            self.next += 1;
        }
    }

    fn mismatch(&self, seq: u64, offset: u64, target: &str, report: &mut Report) {
        let at = self.index_offset + self.next as u64 * INDEX_ENTRY_LEN;
        report.findings.push(Finding::at(
            Severity::Warning,
            self.path.clone(),
            Some(self.segment),
            at,
            format!(
                "index entry (record {seq} at offset {offset}) points at {target}; readers fall \
                 back to walking the segment from its first record"
            ),
        ));
    }
}

pub(super) fn verify(log: &Log) -> Result<Report> {
    let writer = writer_lock(&log.dir);
    let mut report = Report {
        dir: log.dir.clone(),
        segments: log.segments(),
        findings: Vec::new(),
        records: 0,
        records_outside: 0,
        first_seq: None,
        last_seq: None,
        index_entries: 0,
        tail: Tail::Clean,
        writer: writer.clone(),
    };
    directory_findings(log, &writer, &mut report);

    let mut indexes: HashMap<u64, IndexCheck> = HashMap::new();
    for slot in &log.slots {
        let SlotState::Open {
            seg,
            plan: Plan::Sealed { seal, .. },
        } = &slot.state
        else {
            continue;
        };
        let index_offset = seg.layout().index_offset();
        match analysis::persisted_index(seg, seal)
            .map_err(|e| crate::Error::io("reading", &slot.path, e))?
        {
            Ok(entries) => {
                indexes.insert(
                    seg.id,
                    IndexCheck {
                        segment: seg.id,
                        entries,
                        next: 0,
                        index_offset,
                        path: slot.path.clone(),
                    },
                );
            }
            Err(why) => report.findings.push(Finding::at(
                Severity::Warning,
                slot.path.clone(),
                Some(seg.id),
                index_offset,
                format!("persisted index unusable ({why}); readers rebuild it from the records"),
            )),
        }
    }

    let newest_path = log.newest_slot().map(|i| log.slots[i].path.clone());
    let mut damaged: Option<(u64, (u64, u64))> = None;
    let mut current: Option<u64> = None;
    for entry in log.entries() {
        match entry? {
            Entry::Record(r) => {
                if current != Some(r.segment) {
                    if let Some(done) = current.and_then(|id| indexes.get_mut(&id)) {
                        done.finish(&mut report);
                    }
                    current = Some(r.segment);
                }
                if let Some(check) = indexes.get_mut(&r.segment) {
                    let span = damaged.filter(|(id, _)| *id == r.segment).map(|(_, s)| s);
                    check.record(r.offset, r.seq, span, &mut report);
                }
                if r.in_log {
                    report.records += 1;
                    report.first_seq.get_or_insert(r.seq);
                    report.last_seq = Some(r.seq);
                } else {
                    report.records_outside += 1;
                }
            }
            Entry::Damage(f) => {
                if let (Some(id), Some(offset)) = (f.segment, f.offset) {
                    let end = offset + f.len.unwrap_or(0).max(1);
                    damaged = Some((id, (offset, end)));
                }
                match f.severity {
                    Severity::TornTail => {
                        report.tail = Tail::Torn {
                            file: f.file.clone(),
                            offset: f.offset.unwrap_or(0),
                            len: f.len.unwrap_or(0),
                            next_seq: f.seq.unwrap_or(0),
                        };
                    }
                    Severity::Corruption
                        if report.tail == Tail::Clean && Some(&f.file) == newest_path.as_ref() =>
                    {
                        report.tail = Tail::Corrupt {
                            file: f.file.clone(),
                            offset: f.offset.unwrap_or(0),
                        };
                    }
                    _ => {}
                }
                report.findings.push(f);
            }
        }
    }
    for check in indexes.values_mut() {
        check.finish(&mut report);
    }
    // In log order: the directory's own notes, then segment by segment, each by offset.
    report
        .findings
        .sort_by_key(|f| (f.segment.map_or(0, |s| s.saturating_add(1)), f.offset));
    Ok(report)
}

/// Notes about the directory itself: files that are not segments, the lock file.
fn directory_findings(log: &Log, writer: &WriterLock, report: &mut Report) {
    if log.slots.is_empty() {
        report.findings.push(Finding::about(
            Severity::Note,
            &log.dir,
            "no segment files: an empty log (a writer creates segment 1)".into(),
        ));
    }
    for other in &log.others {
        let f = match other.temp_of {
            Some(id) if matches!(writer, WriterLock::Held { .. }) => Finding::about(
                Severity::Note,
                &other.path,
                format!("segment {id} being created by the writer"),
            ),
            Some(id) => Finding::about(
                Severity::Warning,
                &other.path,
                format!("leftover temporary file of segment {id}; a writer deletes it"),
            ),
            None => Finding::about(
                Severity::Note,
                &other.path,
                "not part of the log (ignored)".into(),
            ),
        };
        report.findings.push(f);
    }
}
