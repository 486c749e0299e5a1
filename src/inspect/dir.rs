//! Listing a log directory: which files are segments, spares, leftovers or strangers, what
//! opening each segment found, and the words for what is unusual about one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::names::{self, FileKind};
use crate::rules::{self, DamageKind, SpareFate};
use crate::source::FileSource;

use super::analysis::{self, AfterRecords, Opened, Plan, Seg};
use super::{Log, OtherFile, SegmentInfo, SegmentState};

/// One listed segment file and what opening it found.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) path: PathBuf,
    pub(super) file_len: u64,
    pub(super) state: SlotState,
    /// A `.spare` file with a valid header: a segment whose activating rename to `.seg` a crash
    /// lost.
    pub(super) activated_spare: bool,
}

// One per segment file of an inspected directory, never in a hot path: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum SlotState {
    Open { seg: Seg, plan: Plan },
    Rejected(String),
    Unreadable(String),
    Vanished,
}

/// A `{id:020}.spare` file that is not part of the log.
#[derive(Debug)]
pub(super) struct SpareFile {
    pub(super) id: u64,
    pub(super) path: PathBuf,
    pub(super) file_len: u64,
    /// What becomes of it (never [`SpareFate::JoinsLog`]: such a spare is listed as a segment),
    /// or why it could not be read.
    pub(super) fate: std::result::Result<SpareFate, String>,
}

/// What the spare file at `path` is, read as a writable open reads it.
fn spare_kind(path: &Path) -> std::io::Result<rules::SpareKind> {
    let file = FileSource::open(path)?;
    rules::spare_kind(&file, true)
}

/// Lists `dir`, opens every segment file and decides how recovery would treat each.
pub(super) fn list(dir: &Path) -> Result<Log> {
    let dir = dir.to_path_buf();
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    let mut spares: Vec<(u64, PathBuf)> = Vec::new();
    let mut others = Vec::new();
    let mut lock_file = false;
    let listing = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
        let name: OsString = entry.file_name();
        let name = name.to_str();
        match name.and_then(names::parse) {
            Some(FileKind::Segment(id)) => files.push((id, entry.path())),
            Some(FileKind::Spare(id)) => spares.push((id, entry.path())),
            Some(FileKind::Temp(id)) => others.push(OtherFile {
                path: entry.path(),
                temp_of: Some(id),
            }),
            Some(FileKind::Lock) => lock_file = true,
            _ => others.push(OtherFile {
                path: entry.path(),
                temp_of: None,
            }),
        }
    }
    files.sort_unstable();
    spares.sort_unstable();
    others.sort_by(|a, b| a.path.cmp(&b.path));

    // Spares in increasing number, as recovery resolves them: one with a valid header that
    // numbers the segment after the newest is that segment, whose activating rename a crash
    // lost (or which the writer is renaming right now).
    let mut spare_files = Vec::new();
    for (id, path) in spares {
        let is_next = files.last().is_some_and(|(last, _)| id == last + 1);
        let fate = match spare_kind(&path).map(|kind| rules::spare_fate(kind, is_next)) {
            Ok(SpareFate::JoinsLog) => {
                files.push((id, path));
                continue;
            }
            Ok(fate) => Ok(fate),
            // Renamed into a segment, or removed, since the listing: no longer a spare.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Err(e.to_string()),
        };
        let file_len = std::fs::metadata(&path).map_or(0, |m| m.len());
        spare_files.push(SpareFile {
            id,
            path,
            file_len,
            fate,
        });
    }

    let opened: Vec<(u64, PathBuf, std::io::Result<Opened>)> = files
        .into_iter()
        .map(|(id, path)| {
            let (path, opened) = open_segment(&dir, id, path);
            (id, path, opened)
        })
        .collect();
    // The newest segment is the one whose tail may be torn (and the one a live writer appends
    // to).
    let newest = opened
        .iter()
        .rposition(|(.., o)| !matches!(o, Ok(Opened::Vanished)));
    let slots = opened
        .into_iter()
        .enumerate()
        .map(|(i, (id, path, opened))| {
            let file_len = std::fs::metadata(&path).map_or(0, |m| m.len());
            let activated_spare = path.extension().is_some_and(|e| e == "spare");
            Slot {
                id,
                file_len,
                state: slot_state(opened, Some(i) == newest),
                activated_spare,
                path,
            }
        })
        .collect();
    Ok(Log {
        dir,
        slots,
        spares: spare_files,
        others,
        lock_file,
    })
}

/// Opens segment `id` found as `path`. One found as an activated spare may be renamed to its
/// segment name by the writer meanwhile: then it is opened under that name.
fn open_segment(dir: &Path, id: u64, path: PathBuf) -> (PathBuf, std::io::Result<Opened>) {
    let opened = analysis::open(&path, Some(id));
    if matches!(opened, Ok(Opened::Vanished)) && path.extension().is_some_and(|e| e == "spare") {
        let renamed = dir.join(names::segment(id));
        let again = analysis::open(&renamed, Some(id));
        return (renamed, again);
    }
    (path, opened)
}

/// The state of a listed segment file from what opening it found.
fn slot_state(opened: std::io::Result<Opened>, newest: bool) -> SlotState {
    match opened {
        Ok(Opened::Seg(seg)) => match analysis::plan(&seg, newest) {
            Ok(plan) => SlotState::Open { seg, plan },
            Err(e) => SlotState::Unreadable(e.to_string()),
        },
        Ok(Opened::Rejected(why)) => SlotState::Rejected(why),
        Ok(Opened::Vanished) => SlotState::Vanished,
        Err(e) => SlotState::Unreadable(e.to_string()),
    }
}

impl SpareFile {
    pub(super) fn info(&self) -> SegmentInfo {
        let mut info = SegmentInfo::blank(self.path.clone(), self.id, self.file_len);
        match &self.fate {
            Ok(SpareFate::Unused | SpareFate::JoinsLog) => info.state = SegmentState::Spare,
            Ok(SpareFate::Refused(kind)) => info.note = Some(kind.to_string()),
            Err(why) => {
                info.state = SegmentState::Unreadable;
                info.note = Some(why.clone());
            }
        }
        info
    }
}

impl SegmentInfo {
    pub(super) fn blank(path: PathBuf, id: u64, file_len: u64) -> SegmentInfo {
        SegmentInfo {
            path,
            id,
            file_len,
            state: SegmentState::Rejected,
            header: None,
            first_seq: None,
            last_seq: None,
            records: 0,
            used: 0,
            capacity: 0,
            note: None,
        }
    }
}

impl Slot {
    pub(super) fn info(&self, newest: bool) -> SegmentInfo {
        let mut info = SegmentInfo::blank(self.path.clone(), self.id, self.file_len);
        match &self.state {
            SlotState::Open { seg, plan } => {
                let (first, next, end) = seg.extent(plan);
                let layout = seg.layout();
                info.header = Some(seg.header);
                info.records = next.saturating_sub(first);
                if info.records > 0 {
                    info.first_seq = Some(first);
                    info.last_seq = Some(next - 1);
                }
                info.used = end.saturating_sub(layout.data_start());
                info.capacity = layout.capacity();
                (info.state, info.note) = match plan {
                    Plan::Sealed { first_ok: true, .. } => (SegmentState::Sealed, None),
                    Plan::Sealed { seal, .. } => (
                        SegmentState::Sealed,
                        Some(first_record_mismatch(seal.first_seq, seal.last_seq)),
                    ),
                    Plan::Scanned {
                        prefix,
                        tail,
                        footer_problem,
                    } => (
                        SegmentState::Unsealed,
                        scanned_note(prefix, tail, footer_problem.as_deref(), newest),
                    ),
                };
            }
            SlotState::Rejected(why) => info.note = Some(why.clone()),
            SlotState::Unreadable(why) => {
                info.state = SegmentState::Unreadable;
                info.note = Some(why.clone());
            }
            SlotState::Vanished => info.state = SegmentState::Vanished,
        }
        info
    }
}

/// Recovery's words for a seal whose first record does not check out.
pub(super) fn first_record_mismatch(first: u64, last: u64) -> String {
    DamageKind::SealFirstRecord { first, last }.to_string()
}

fn scanned_note(
    prefix: &analysis::Prefix,
    tail: &AfterRecords,
    footer_problem: Option<&str>,
    newest: bool,
) -> Option<String> {
    let mut notes = Vec::new();
    if let Some(why) = footer_problem {
        notes.push(format!("invalid seal footer ({why})"));
    }
    match tail {
        AfterRecords::Clean => {}
        AfterRecords::Torn { end } if newest => notes.push(format!(
            "torn tail: {} bytes after offset {}",
            end - prefix.end,
            prefix.end
        )),
        AfterRecords::Torn { .. } => notes.push(format!(
            "invalid bytes after offset {} (corruption: a newer segment follows)",
            prefix.end
        )),
        AfterRecords::Damaged { .. } => notes.push(format!("corruption at offset {}", prefix.end)),
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}
