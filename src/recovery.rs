//! Open-time recovery: list the segments, apply the recovery rules (`rules`) to each, and
//! repair what they allow a writable open to repair: remove leftover temporary and unused spare
//! files, rename an activated spare, cut (zero) a torn tail, flush recovered records and seal
//! segments a crash left unsealed. Damage the rules find is refused with its location.
//!
//! FORMAT.md ("Recovery") states the rules and why they are safe. A read-only opener (a reader
//! without the lock) only reads, and reads every byte a writer may still change by copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::events::event;
use crate::names::{self, FileKind};
use crate::rules::{self, AfterRecords, Liveness, Plan, SpareFate};
use crate::segment::{Segment, SegmentView};
use crate::source::{ByteSource, FileSource};
use crate::sys::Sys;

/// Bytes that opening a store cut from the end of the log: the unfinished write of a crash.
///
/// A crash (or power loss) during an append leaves part of its bytes on disk. Those bytes were
/// never acknowledged, so recovery removes them: it zeroes them on disk and the log continues
/// after the last complete record. The same picture results if the *last* flushed write of the
/// log was damaged after its acknowledgement, with nothing written after it that could prove it
/// had been durable; the two cannot be told apart from the bytes. [`WalStore::torn_tail`]
/// reports the cut so that it is never silent: an application that knows it acknowledged
/// sequence numbers up to `next_seq` or beyond learns that data was lost.
///
/// [`WalStore::torn_tail`]: crate::WalStore::torn_tail
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The segment file that held the bytes.
    pub file: PathBuf,
    /// Offset of the first byte cut (just past the last complete record).
    pub offset: u64,
    /// How many bytes were cut (zeroed), rounded up to the record alignment.
    pub len: u64,
    /// The sequence number the log continues with: the first one the cut bytes could have held.
    pub next_seq: u64,
}

/// The recovered state of a log directory.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Every segment, oldest first, with its durable records.
    pub(crate) views: Vec<SegmentView>,
    /// The log's identifier, if it has any segment.
    pub(crate) log_id: Option<u64>,
    /// The last segment was found sealed: the writer must rotate before appending.
    pub(crate) last_sealed: bool,
    /// The torn tail found at the end of the last segment, if any.
    pub(crate) torn_tail: Option<TornTail>,
}

/// Recovers the log in `dir`. With `writable` (the store, holding the lock) it removes leftover
/// temporary files, zeroes a torn tail and seals segments a crash left unsealed; without, it
/// only reads.
pub(crate) fn recover(dir: &Path, writable: bool, sys: &Sys) -> Result<Recovered> {
    let mut relists = 0;
    loop {
        match recover_listed(dir, writable, sys) {
            // A read-only opener can lose the race with a live writer completely: the newest
            // segment it listed was filled, sealed and truncated before it got to open it. Its
            // listing is stale, so it lists again.
            Err(Error::Io { source, .. })
                if !writable
                    && relists < rules::LIVE_RESCANS
                    && source.kind() == std::io::ErrorKind::NotFound
                    && dir.is_dir() =>
            {
                relists += 1;
            }
            done => return done,
        }
    }
}

fn recover_listed(dir: &Path, writable: bool, sys: &Sys) -> Result<Recovered> {
    let mut ids = Vec::new();
    let mut spares = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let name = entry.file_name();
        match name.to_str().and_then(names::parse) {
            Some(FileKind::Segment(id)) => ids.push(id),
            Some(FileKind::Spare(id)) => spares.push(id),
            Some(FileKind::Temp(_)) if writable => {
                let path = entry.path();
                sys.unlink(&path)
                    .map_err(|e| Error::io("removing", &path, e))?;
                event!(info, "removed unfinished segment file {}", path.display());
            }
            _ => {}
        }
    }
    ids.sort_unstable();
    spares.sort_unstable();
    for pair in ids.windows(2) {
        if let [before, after] = *pair
            && let Some(damage) = rules::missing_segment(dir, before, after)
        {
            return Err(damage.into());
        }
    }
    let mut files: Vec<(u64, PathBuf)> = ids
        .iter()
        .map(|&id| (id, dir.join(names::segment(id))))
        .collect();
    settle_spares(dir, writable, sys, &spares, &mut files)?;

    let mut views: Vec<SegmentView> = Vec::with_capacity(files.len());
    let mut log_id = None;
    let mut last_sealed = false;
    let mut torn_tail = None;
    for (i, (id, path)) in files.iter().enumerate() {
        let (id, is_last) = (*id, i + 1 == files.len());
        let seg = match Segment::open(path, id, writable) {
            Ok(seg) => seg,
            // A read-only opener races with the writer's truncate_before, which deletes the
            // oldest segments in order: a segment that vanished between listing and opening
            // means every older one is gone too. Dropping those already opened keeps the log
            // gap-free; it now starts after the vanished one. (The newest segment is never
            // deleted, so its absence stays an error.)
            Err(Error::Io { source, .. })
                if !writable && !is_last && source.kind() == std::io::ErrorKind::NotFound =>
            {
                views.clear();
                continue;
            }
            Err(e) => return Err(e),
        };
        let this_log = *log_id.get_or_insert(seg.checked().log_id);
        let previous_next = views.last().map(|v| v.next_seq);
        if let Some(damage) = rules::continuity(seg.path(), seg.checked(), this_log, previous_next)
        {
            return Err(damage.into());
        }
        let (view, sealed, torn) = recover_segment(seg, is_last, writable, sys)?;
        last_sealed = sealed && is_last;
        torn_tail = torn;
        views.push(view);
    }
    Ok(Recovered {
        views,
        log_id,
        last_sealed,
        torn_tail,
    })
}

/// Resolves the spare files (`rules::spare_kind`, FORMAT.md "Spare segments"). A spare with a
/// valid header is a segment whose activating rename a crash lost: it joins the log as the next
/// segment (renamed now by a writable open). A spare without one was never used: a writable open
/// removes it. Anything else is damage.
fn settle_spares(
    dir: &Path,
    writable: bool,
    sys: &Sys,
    spares: &[u64],
    files: &mut Vec<(u64, PathBuf)>,
) -> Result<()> {
    let mut removed = false;
    for &id in spares {
        let spare = dir.join(names::spare(id));
        let is_next = files.last().is_some_and(|(last, _)| id == last + 1);
        let file = FileSource::open(&spare).map_err(|e| Error::io("opening", &spare, e))?;
        // Only a writable open, which removes an unused spare, reads more than its header to
        // make sure nothing was written past it.
        let kind =
            rules::spare_kind(&file, writable).map_err(|e| Error::io("reading", &spare, e))?;
        drop(file);
        match rules::spare_fate(kind, is_next) {
            SpareFate::Unused => {
                if writable {
                    sys.unlink(&spare)
                        .map_err(|e| Error::io("removing", &spare, e))?;
                    removed = true;
                }
            }
            SpareFate::JoinsLog if writable => {
                let path = dir.join(names::segment(id));
                sys.rename(&spare, &path)
                    .map_err(|e| Error::io("renaming", &spare, e))?;
                sys.sync_dir(dir)
                    .map_err(|e| Error::io("syncing directory", dir, e))?;
                event!(
                    info,
                    "{} was in use: renamed to {}",
                    spare.display(),
                    path.display()
                );
                files.push((id, path));
            }
            SpareFate::JoinsLog => files.push((id, spare)),
            SpareFate::Refused(kind) => {
                return Err(rules::Damage::new(&spare, 0, None, kind).into());
            }
        }
    }
    if removed {
        sys.sync_dir(dir)
            .map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    Ok(())
}

/// Applies the rules to one segment: trusted through its seal or scanned, damage refused, and
/// with a writable open a torn tail cut, the records flushed and an older segment sealed.
fn recover_segment(
    seg: Segment,
    is_last: bool,
    writable: bool,
    sys: &Sys,
) -> Result<(SegmentView, bool, Option<TornTail>)> {
    let plan = if writable {
        decide(&seg.still_source(), &seg, is_last, Liveness::Still)?
    } else {
        let src = seg
            .copying_source()
            .map_err(|e| Error::io("opening", seg.path(), e))?;
        decide(&src, &seg, is_last, Liveness::Reading)?
    };
    let (prefix, tail) = match plan {
        Plan::Sealed { seal, .. } => {
            seg.set_persisted_index(seal);
            let view = SegmentView {
                first_seq: seal.first_seq,
                next_seq: seal.last_seq + 1,
                end: seal.data_end,
                seg: Arc::new(seg),
            };
            return Ok((view, true, None));
        }
        Plan::Scanned { prefix, tail, .. } => (prefix, tail),
    };
    let torn = match tail {
        AfterRecords::Torn { end } => Some(TornTail {
            file: seg.path().to_path_buf(),
            offset: prefix.end,
            len: end - prefix.end,
            next_seq: prefix.next_seq,
        }),
        // Refused above (`plan_damage`).
        AfterRecords::Clean | AfterRecords::Damaged { .. } => None,
    };
    if let Some(torn) = &torn
        && writable
    {
        cut(&seg, sys, torn)?;
    }
    let has_records = prefix.next_seq > seg.base_seq();
    if writable && is_last && has_records {
        // The records found may exist only in the page cache: a process that crashed, or closed
        // in `Manual` mode without syncing, leaves them there, and a power cut would still lose
        // them. Make them durable before they are published or vouched for by a new record's
        // `unsynced_before`. Clean pages cost nothing to flush.
        let start = seg.layout().data_start();
        seg.flush(sys, start, prefix.end - start)
            .map_err(|e| Error::io("flushing the recovered records of", seg.path(), e))?;
    }
    seg.set_index(prefix.index);
    let sealed = if writable && !is_last && has_records {
        seg.seal(sys, seg.base_seq(), prefix.next_seq - 1, prefix.end)?;
        event!(
            info,
            "sealed {} (records {}..={}), left unsealed by a crash",
            seg.path().display(),
            seg.base_seq(),
            prefix.next_seq - 1
        );
        true
    } else {
        false
    };
    let view = SegmentView {
        first_seq: seg.base_seq(),
        next_seq: prefix.next_seq,
        end: prefix.end,
        seg: Arc::new(seg),
    };
    Ok((view, sealed, torn))
}

/// The rules' plan for `seg` read from `src`, or the damage they find.
fn decide(src: &dyn ByteSource, seg: &Segment, is_last: bool, live: Liveness) -> Result<Plan> {
    let plan = rules::plan(src, seg.checked(), is_last, live)
        .map_err(|e| Error::io("reading", seg.path(), e))?;
    match rules::plan_damage(src, seg.checked(), &plan, is_last) {
        Some(damage) => Err(damage.into()),
        None => Ok(plan),
    }
}

/// Zeroes and flushes the torn tail of `seg`, so that two recoveries of the same files give the
/// same log.
#[allow(unsafe_code)]
fn cut(seg: &Segment, sys: &Sys, torn: &TornTail) -> Result<()> {
    // SAFETY: only a writable open gets here, holding the directory's lock, and `seg` is not in
    // any view yet: no writer or reader of it exists, in this process or another (a reader in
    // another process reads bytes past the valid records by copy, never through a slice).
    unsafe { seg.cut_torn_tail(sys, torn.offset, torn.len) }
        .map_err(|e| Error::io("zeroing the torn tail of", seg.path(), e))?;
    event!(
        warn,
        "cut a torn tail of {} bytes at offset {} of {} (the log continues at sequence {})",
        torn.len,
        torn.offset,
        seg.path().display(),
        torn.next_seq
    );
    Ok(())
}
