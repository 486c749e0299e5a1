//! Runs one case: writes the damaged copy, opens it read-only (`WalReader::open`, no repair) and
//! writable (`WalStore::open`, which may cut a torn tail), reads everything, and judges what came
//! back against the reference and against what the damage touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use softadastra_wal::{Error, TornTail, WalReader, WalStore};

use crate::kinds::{Case, Edit, Expect};
use crate::reference::{self, Reference, Role};

/// How a case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `WalStore::open` refused the log with a typed error.
    OpenRefused,
    /// The log opened; reading the damaged part was an error.
    ReadError,
    /// The store cut acknowledged records at the end of the active segment, and reported it.
    TailCut,
    /// The store cut non-zero bytes after the last record, losing no record, and reported it.
    TailGarbage,
    /// Front segments deleted: the log starts later and the rest is exact.
    FrontDeleted,
    /// Byte for byte a log whose last appends never happened: the newest segment deleted, an
    /// older copy of it put back, or its data zeroed from a record's first byte to the end.
    /// Undetectable by design (docs/guide.md and FORMAT.md, "Recovery"); the log must be exactly
    /// the shorter prefix.
    Undetectable,
    /// Only a cache (persisted index, seal footer) was damaged; it was rebuilt from the records
    /// and the whole log read back exact.
    Rebuilt,
    /// Only bytes the format never reads (padding, unused index slots, free space of a sealed
    /// segment) were damaged, and the whole log read back exact.
    Ignored,
    /// At least one violation.
    Violation,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::OpenRefused,
        Outcome::ReadError,
        Outcome::TailCut,
        Outcome::TailGarbage,
        Outcome::FrontDeleted,
        Outcome::Undetectable,
        Outcome::Rebuilt,
        Outcome::Ignored,
        Outcome::Violation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::OpenRefused => "open-refused",
            Outcome::ReadError => "read-error",
            Outcome::TailCut => "tail-cut",
            Outcome::TailGarbage => "garbage-cut",
            Outcome::FrontDeleted => "front-deleted",
            Outcome::Undetectable => "undetectable",
            Outcome::Rebuilt => "rebuilt",
            Outcome::Ignored => "ignored",
            Outcome::Violation => "VIOLATION",
        }
    }

    pub fn index(self) -> usize {
        Outcome::ALL.iter().position(|&o| o == self).unwrap_or(0)
    }
}

/// What the damage of a case touched, from comparing its files with the reference.
#[derive(Debug, Default)]
pub struct Damage {
    /// Records whose header or payload bytes changed, or whose file was deleted or cut short.
    pub records: BTreeSet<u64>,
    /// A segment header changed (in a file that is still there).
    pub header: bool,
    /// A persisted index entry or a seal footer changed.
    pub cache: bool,
}

/// Compares every edited file with the reference.
pub fn damage_of(r: &Reference, case: &Case) -> Damage {
    let mut d = Damage::default();
    for (s, edit) in &case.edits {
        let seg = &r.segments[*s];
        match edit {
            Edit::Delete => d.records.extend(seg.extents.iter().map(|e| e.seq)),
            Edit::Bytes(new) => {
                for i in changed_bytes(&seg.bytes, new) {
                    match seg.roles[i] {
                        Role::Header => d.header = true,
                        Role::Record(seq) => {
                            d.records.insert(seq);
                        }
                        Role::IndexUsed | Role::Footer => d.cache = true,
                        Role::Padding | Role::Free | Role::Unused => {}
                    }
                }
            }
        }
    }
    d
}

/// The offsets of `old` whose byte differs in `new` (or is missing from it), comparing 64-byte
/// chunks first: most of a file is unchanged.
fn changed_bytes<'a>(old: &'a [u8], new: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    const CHUNK: usize = 64;
    (0..old.len()).step_by(CHUNK).flat_map(move |start| {
        let end = (start + CHUNK).min(old.len());
        let same = new.get(start..end) == Some(&old[start..end]);
        (start..if same { start } else { end }).filter(move |&i| new.get(i) != Some(&old[i]))
    })
}

/// What one open showed.
#[derive(Debug)]
struct Seen {
    /// The log's range; `last < first` when it is empty.
    first: u64,
    last: u64,
    /// Typed errors met while reading.
    read_errors: u64,
}

/// Judges one case, with `dir` as the scratch directory. Returns the outcome and every violation
/// found, described.
pub fn run_case(r: &Reference, dir: &Path, case: &Case, case_no: u64) -> (Outcome, Vec<String>) {
    materialize(r, dir, case);
    let damage = damage_of(r, case);
    let expect = zeroed_from_record(r, case).map_or(case.expect, Expect::EndsAt);
    let mut v = Vec::new();
    // Read-only first: it must not change the files the store then recovers.
    let reader = match WalReader::open(dir) {
        Ok(rd) => Ok(check_reads(&rd, r, &damage, case_no, READER, &mut v)),
        Err(e) => Err(open_error(&e, case, READER, &mut v)),
    };
    let (store, torn) = match WalStore::open(reference::config(dir)) {
        Ok(store) => {
            let seen = check_reads(&store.reader(), r, &damage, case_no, STORE, &mut v);
            (Ok(seen), store.torn_tail().cloned())
        }
        Err(e) => (Err(open_error(&e, case, STORE, &mut v)), None),
    };
    if let (Ok(_), Err(e)) | (Err(e), Ok(_)) = (&reader, &store) {
        let which = if reader.is_ok() { STORE } else { READER };
        v.push(format!(
            "only {which} refused the log ({e}); the two opens run the same checks"
        ));
    }
    let mut lost = 0;
    for (seen, who) in [(&reader, READER), (&store, STORE)] {
        if let Ok(seen) = seen {
            let log = Log {
                r,
                expect,
                active: present_active(r, case),
                damage: &damage,
                torn: torn.as_ref(),
            };
            lost = lost.max(check_extent(seen, &log, who, &mut v));
            if damage.header {
                v.push(format!(
                    "{who}: a segment header was damaged but the log opened"
                ));
            }
        }
    }
    if let (Ok(first), Some(_)) = (&store, &torn) {
        check_second_recovery(r, dir, first, &damage, case_no, &mut v);
    }
    let _ = std::fs::remove_dir_all(dir);
    let read_errors = [&reader, &store]
        .iter()
        .any(|s| s.as_ref().is_ok_and(|s| s.read_errors > 0));
    let outcome = if !v.is_empty() {
        Outcome::Violation
    } else if store.is_err() {
        Outcome::OpenRefused
    } else if read_errors {
        Outcome::ReadError
    } else if torn.is_some() && lost > 0 {
        Outcome::TailCut
    } else if torn.is_some() {
        Outcome::TailGarbage
    } else if matches!(expect, Expect::StartsAt(_)) {
        Outcome::FrontDeleted
    } else if matches!(expect, Expect::EndsAt(_)) {
        Outcome::Undetectable
    } else if damage.cache {
        Outcome::Rebuilt
    } else {
        Outcome::Ignored
    };
    (outcome, v)
}

const READER: &str = "WalReader::open";
const STORE: &str = "WalStore::open";

/// A refused open: the error must report damage (I5), and a segment written with another format
/// version must be refused as exactly that. Returns the error, described.
fn open_error(e: &Error, case: &Case, who: &str, v: &mut Vec<String>) -> String {
    typed(e, who, v);
    if let Some(want) = case.refuse_version
        && !matches!(e, Error::UnsupportedVersion { version, .. } if *version == want)
    {
        v.push(format!(
            "{who}: a segment of format version {want} was refused with another error: {e}"
        ));
    }
    e.to_string()
}

/// A store that cut a torn tail zeroed and flushed it: opening the same files again must give
/// the same log with nothing left to cut (I4).
fn check_second_recovery(
    r: &Reference,
    dir: &Path,
    first: &Seen,
    damage: &Damage,
    case_no: u64,
    v: &mut Vec<String>,
) {
    const AGAIN: &str = "second WalStore::open";
    match WalStore::open(reference::config(dir)) {
        Ok(store) => {
            let seen = check_reads(&store.reader(), r, damage, case_no, AGAIN, v);
            if let Some(t) = store.torn_tail() {
                v.push(format!("{AGAIN}: cut again: {t:?}"));
            }
            if (seen.first, seen.last) != (first.first, first.last) {
                v.push(format!(
                    "{AGAIN}: holds {}..={} where the first recovery held {}..={}",
                    seen.first, seen.last, first.first, first.last
                ));
            }
        }
        Err(e) => v.push(format!("{AGAIN} failed after the first one succeeded: {e}")),
    }
}

/// The copy of the reference with the case's edits, in a fresh `dir`.
fn materialize(r: &Reference, dir: &Path, case: &Case) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the case directory");
    for (s, seg) in r.segments.iter().enumerate() {
        let bytes = match case.edits.iter().find(|(e, _)| *e == s) {
            Some((_, Edit::Delete)) => continue,
            Some((_, Edit::Bytes(b))) => b,
            None => &seg.bytes,
        };
        std::fs::write(dir.join(&seg.name), bytes).expect("write a segment copy");
    }
}

/// The documented undetectable damage to the active segment (docs/guide.md and FORMAT.md,
/// "Recovery"): its data region zero from the first byte of a record to its end, every byte
/// before that untouched and no other file changed. The files are then exactly those of a log
/// whose appends from that record on never happened. Returns where that log ends.
fn zeroed_from_record(r: &Reference, case: &Case) -> Option<u64> {
    let active = r.segments.len() - 1;
    let [(s, Edit::Bytes(new))] = case.edits.as_slice() else {
        return None;
    };
    let seg = r.active();
    if *s != active || case.expect != Expect::Whole || new.len() != seg.bytes.len() {
        return None;
    }
    let limit = seg.layout.data_limit as usize;
    let zero_from = new[..limit]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    let first_gone = seg
        .extents
        .iter()
        .find(|e| e.offset as usize >= zero_from)?;
    let kept = first_gone.offset as usize;
    (new[..kept] == seg.bytes[..kept]).then_some(first_gone.seq - 1)
}

/// The range an open that reports nothing must show.
fn expected_range(r: &Reference, expect: Expect) -> (u64, u64) {
    match expect {
        Expect::Whole => (1, r.len()),
        Expect::StartsAt(first) => (first, r.len()),
        Expect::EndsAt(last) => (1, last),
    }
}

/// The name of the newest segment file the case leaves in place: where a torn tail can be.
fn present_active<'a>(r: &'a Reference, case: &Case) -> &'a str {
    r.segments
        .iter()
        .enumerate()
        .rev()
        .find(|(s, _)| {
            !case
                .edits
                .iter()
                .any(|(e, edit)| e == s && matches!(edit, Edit::Delete))
        })
        .map_or("", |(_, seg)| seg.name.as_str())
}

/// An error must be one that reports damage (I5): anything else is a violation.
fn typed(e: &Error, who: &str, v: &mut Vec<String>) {
    if !matches!(
        e,
        Error::Corruption { .. } | Error::UnsupportedVersion { .. }
    ) {
        v.push(format!("{who}: error that does not report damage: {e}"));
    }
}

/// Reads the whole log (iteration) and a sample by sequence number (every damaged record among
/// them), and checks every record returned against the reference (I3). Damaged records inside
/// the log's range must be read errors.
fn check_reads(
    rd: &WalReader,
    r: &Reference,
    damage: &Damage,
    case_no: u64,
    who: &str,
    v: &mut Vec<String>,
) -> Seen {
    let last = rd.last_seq().unwrap_or(0);
    let first = rd.first_seq().unwrap_or(last + 1);
    let mut seen = Seen {
        first,
        last,
        read_errors: 0,
    };
    check_iteration(rd, r, &mut seen, who, v);
    let gets = sample(r, &seen, damage, case_no);
    let mut got_error = BTreeMap::new();
    for &seq in &gets {
        let failed = check_get(rd, r, &mut seen, seq, who, v);
        got_error.insert(seq, failed);
    }
    let in_log = damage
        .records
        .iter()
        .filter(|&&q| (seen.first..=seen.last).contains(&q));
    for &seq in in_log {
        if got_error.get(&seq) == Some(&false) {
            v.push(format!(
                "{who}: damaged record {seq} was read without an error"
            ));
        }
    }
    check_iter_from(rd, r, &mut seen, 1 + case_no % r.len().max(1), who, v);
    seen
}

/// Iterates over every record: each one returned must be the reference record, in order, and
/// the iteration must end at `last` or with a typed error.
fn check_iteration(rd: &WalReader, r: &Reference, seen: &mut Seen, who: &str, v: &mut Vec<String>) {
    let mut next = seen.first;
    for item in rd.iter() {
        match item {
            Ok(rec) => {
                if rec.seq() != next {
                    v.push(format!(
                        "{who}: iteration returned seq {} where {next} belongs",
                        rec.seq()
                    ));
                    return;
                }
                same_as_reference(r, &rec, who, "iteration", v);
                next += 1;
            }
            Err(e) => {
                typed(&e, who, v);
                seen.read_errors += 1;
                return;
            }
        }
    }
    if next != seen.last + 1 {
        v.push(format!(
            "{who}: iteration ended silently after seq {} but the log ends at {}",
            next - 1,
            seen.last
        ));
    }
}

/// `get(seq)`: the reference record, `None` outside the log's range, or a typed error. Returns
/// whether it was an error.
fn check_get(
    rd: &WalReader,
    r: &Reference,
    seen: &mut Seen,
    seq: u64,
    who: &str,
    v: &mut Vec<String>,
) -> bool {
    let in_range = (seen.first..=seen.last).contains(&seq);
    match rd.get(seq) {
        Ok(Some(rec)) => {
            if rec.seq() != seq {
                v.push(format!("{who}: get({seq}) returned seq {}", rec.seq()));
            } else if !in_range {
                v.push(format!(
                    "{who}: get({seq}) returned a record outside {}..={}",
                    seen.first, seen.last
                ));
            }
            same_as_reference(r, &rec, who, "get", v);
            false
        }
        Ok(None) => {
            if in_range {
                v.push(format!(
                    "{who}: get({seq}) is None inside {}..={}",
                    seen.first, seen.last
                ));
            }
            false
        }
        Err(e) => {
            typed(&e, who, v);
            seen.read_errors += 1;
            true
        }
    }
}

/// A few records from `iter_from(start)`, positioned by the (possibly damaged) index.
fn check_iter_from(
    rd: &WalReader,
    r: &Reference,
    seen: &mut Seen,
    start: u64,
    who: &str,
    v: &mut Vec<String>,
) {
    let mut next = start.max(seen.first);
    for item in rd.iter_from(start).take(3) {
        match item {
            Ok(rec) => {
                if rec.seq() != next {
                    v.push(format!(
                        "{who}: iter_from({start}) returned seq {} where {next} belongs",
                        rec.seq()
                    ));
                    return;
                }
                same_as_reference(r, &rec, who, "iter_from", v);
                next += 1;
            }
            Err(e) => {
                typed(&e, who, v);
                seen.read_errors += 1;
                return;
            }
        }
    }
}

/// The record must be byte-exact the reference record with its sequence number (I3).
fn same_as_reference(
    r: &Reference,
    rec: &softadastra_wal::RecordRef<'_>,
    who: &str,
    how: &str,
    v: &mut Vec<String>,
) {
    let Some(want) = r.record(rec.seq()) else {
        v.push(format!(
            "{who}: {how} returned seq {}, which was never written",
            rec.seq()
        ));
        return;
    };
    if rec.payload() != want.payload.as_slice()
        || rec.record_type() != want.record_type
        || rec.timestamp() != want.timestamp
    {
        v.push(format!(
            "{who}: {how} returned seq {} with different bytes ({} payload bytes, {:?}, ts {}; written: {} bytes, {:?}, ts {})",
            rec.seq(),
            rec.payload().len(),
            rec.record_type(),
            rec.timestamp(),
            want.payload.len(),
            want.record_type,
            want.timestamp
        ));
    }
}

/// The sequence numbers read by `get`: the ends of the log and of the reference, every damaged
/// record, and every sixth record (shifted from case to case so that all are covered).
fn sample(r: &Reference, seen: &Seen, damage: &Damage, case_no: u64) -> BTreeSet<u64> {
    let mut s: BTreeSet<u64> = [
        1,
        r.len(),
        r.len() + 1,
        seen.first,
        seen.last,
        seen.last + 1,
    ]
    .into_iter()
    .filter(|&q| q > 0)
    .collect();
    s.extend(damage.records.iter().copied());
    s.extend((1..=r.len()).filter(|q| (q + case_no).is_multiple_of(6)));
    s
}

/// What a case's log must be, for [`check_extent`].
struct Log<'a> {
    r: &'a Reference,
    expect: Expect,
    /// The name of the newest segment file left in place.
    active: &'a str,
    damage: &'a Damage,
    /// The cut the store reported.
    torn: Option<&'a TornTail>,
}

/// The log's range must be the expected one. A log that ends early is accepted only as a cut the
/// store reported (`torn_tail`), in the newest segment, starting no earlier than the write that
/// holds the first damaged record after it (a damaged record of a batch takes its whole batch).
/// Returns how many records a reported cut took.
fn check_extent(seen: &Seen, log: &Log<'_>, who: &str, v: &mut Vec<String>) -> u64 {
    let Log {
        r,
        damage,
        active,
        torn,
        ..
    } = *log;
    let (want_first, want_last) = expected_range(r, log.expect);
    if seen.first != want_first {
        v.push(format!(
            "{who}: the log starts at seq {}, not {want_first}",
            seen.first
        ));
    }
    if seen.last > want_last {
        v.push(format!(
            "{who}: the log ends at seq {}, after {want_last}",
            seen.last
        ));
    }
    if seen.last >= want_last {
        return 0;
    }
    let next = seen.last + 1;
    let Some(t) = torn else {
        v.push(format!(
            "{who}: the log ends at seq {} but {want_last} were acknowledged, and no cut was reported",
            seen.last
        ));
        return 0;
    };
    let in_active = t.file.file_name().and_then(|n| n.to_str()) == Some(active);
    if t.next_seq != next || !in_active {
        v.push(format!(
            "{who}: the log ends at seq {} but the reported cut is {t:?} (newest segment {active})",
            seen.last
        ));
        return 0;
    }
    match damage.records.range(next..).next() {
        Some(&d) if r.write_start(d) <= next => want_last - seen.last,
        first_damaged => {
            v.push(format!(
                "{who}: the reported cut at seq {next} takes undamaged acknowledged records (first damaged: {first_damaged:?})"
            ));
            0
        }
    }
}
