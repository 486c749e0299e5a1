//! Recovery and the check of I1-I5 for logs that contain batches, and the scratch directory logs
//! live in.
//!
//! `support::recover_and_check` compares every record's timestamp with its identity's, which a
//! batch member (stamped with the clock) cannot satisfy. This is the same procedure with the
//! batch checks of [`batch`](crate::batch) in front: batches are checked for atomicity and their
//! timestamps, then normalized and handed to `support::check_records`.

#![allow(dead_code)]

use std::ops::RangeInclusive;
use std::path::Path;

use softadastra_wal::{WalConfig, WalRecord, WalStore};
use tempfile::TempDir;

use crate::batch;
use crate::support::{self, Expected};

/// A fresh scratch directory, in `/dev/shm` when it exists: a killed process leaves its writes in
/// the page cache, so for kill -9 a tmpfs is as faithful as a disk, and much faster.
pub fn scratch_dir(prefix: &str) -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix(prefix).tempdir_in(shm)
    {
        return dir;
    }
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a scratch directory")
}

/// Checks one recovered log (raw records, clock timestamps on batches) against `expected`: batch
/// atomicity, then I1-I3.
pub fn check_log(
    records: &[WalRecord],
    expected: &Expected,
    window: &RangeInclusive<u64>,
) -> Vec<String> {
    let mut bad = batch::check_batches(records, window);
    bad.extend(support::check_records(
        &batch::normalized(records),
        expected,
    ));
    bad
}

/// A recovered log that passed the checks.
#[derive(Debug)]
pub struct Recovered {
    /// Its records, as read (batches with their clock timestamps).
    pub records: Vec<WalRecord>,
    /// The first recovery cut a torn tail (the crash image needed repair).
    pub torn: bool,
}

/// Recovers `dir` as a writer would (open the store, which repairs a torn tail), replays it twice,
/// recovers it a second time and reads it with a plain reader, and checks I1-I5 (batches
/// included).
pub fn recover_and_check(
    dir: &Path,
    config: impl Fn(&Path) -> WalConfig,
    expected: &Expected,
    window: &RangeInclusive<u64>,
) -> Result<Recovered, Vec<String>> {
    let (first, torn) =
        open_and_read(dir, &config).map_err(|e| vec![format!("recovery failed: {e}")])?;
    let mut bad = check_log(&first, expected, window);
    // I4: a second recovery of the (now repaired) files and a plain reader agree exactly.
    match open_and_read(dir, &config) {
        Ok((_, true)) => bad.push("the second recovery cut a torn tail again".to_string()),
        Ok((second, _)) if second != first => bad.push(format!(
            "second recovery differs: {} records, then {}",
            first.len(),
            second.len()
        )),
        Ok(_) => {}
        Err(e) => bad.push(format!("second recovery failed: {e}")),
    }
    match support::read_all(dir) {
        Ok(again) if again != first => bad.push(format!(
            "a reader sees {} records where recovery saw {}",
            again.len(),
            first.len()
        )),
        Ok(_) => {}
        Err(e) => bad.push(format!("reader after recovery failed: {e}")),
    }
    if bad.is_empty() {
        Ok(Recovered {
            records: first,
            torn,
        })
    } else {
        Err(bad)
    }
}

/// Opens a store on `dir` and replays it twice; the two replays must be identical. Also tells
/// whether the open cut a torn tail.
fn open_and_read(
    dir: &Path,
    config: &impl Fn(&Path) -> WalConfig,
) -> Result<(Vec<WalRecord>, bool), String> {
    let store = WalStore::open(config(dir)).map_err(|e| e.to_string())?;
    let torn = store.torn_tail().is_some();
    let reader = store.reader();
    let replay = || -> Result<Vec<WalRecord>, String> {
        reader
            .iter()
            .map(|r| r.map(|r| r.to_record()).map_err(|e| e.to_string()))
            .collect()
    };
    let once = replay()?;
    if replay()? != once {
        return Err("two replays of one store differ".to_string());
    }
    Ok((once, torn))
}

/// Makes `to` an exact copy of the files of `from` (replacing whatever `to` held), to keep a
/// crash image. A missing `from` (a log not created yet) gives an empty `to`.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    if !from.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Traces of a crash in the middle of a rotation, read from a crash image before recovery.
#[derive(Clone, Copy, Debug, Default)]
pub struct RotationTraces {
    /// A `*.seg.tmp` file: killed while a new segment was being created.
    pub temp_file: bool,
    /// The segment before the newest has no seal footer: killed after the new segment was
    /// created and before the old one was sealed.
    pub unsealed_predecessor: bool,
}

/// Looks for [`RotationTraces`] in `dir` (FORMAT.md: segment names, the `SAWALEND` footer magic
/// in the last 64 bytes of a sealed segment). Unreadable things count as no trace.
pub fn rotation_traces(dir: &Path) -> RotationTraces {
    let mut traces = RotationTraces::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return traces;
    };
    let mut segments = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".seg.tmp") {
            traces.temp_file = true;
        } else if name.ends_with(".seg") {
            segments.push(entry.path());
        }
    }
    segments.sort();
    if let [.., before_newest, _] = segments.as_slice() {
        traces.unsealed_predecessor = !has_seal(before_newest);
    }
    traces
}

fn has_seal(segment: &Path) -> bool {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut magic = [0u8; 8];
    std::fs::File::open(segment)
        .and_then(|mut f| {
            f.seek(SeekFrom::End(-64))?;
            f.read_exact(&mut magic)
        })
        .is_ok_and(|()| &magic == b"SAWALEND")
}
