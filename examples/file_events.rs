//! The local-first flow of the original C++ `softadastra/wal`: a file watcher's events go into
//! the log before the application acts on them, the application's state is rebuilt by replaying
//! the log, a checkpoint lets it forget old records, and a restart replays only what the
//! checkpoint does not cover.
//!
//! Step by step:
//!
//! 1. File-system events (`Created`, `Updated`, `Deleted`, each with the path, size and
//!    modification time, and for updates and deletions the state the file had before) are
//!    encoded into payloads by a small hand-written encoder and appended durably, one by one, as
//!    a watcher would report them. Each is applied to an in-memory map once it is in the log.
//! 2. A checkpoint: the map is saved to a snapshot file (written aside, synced, renamed into
//!    place) that says which sequence number it covers, then a `Checkpoint` record marks that
//!    point in the log, and `truncate_before` deletes the segments the snapshot made useless.
//! 3. More events arrive after the checkpoint.
//! 4. Restart: the store is dropped and reopened; the snapshot is loaded and only the records
//!    after it are replayed. The rebuilt state must equal the state before the restart (the
//!    example exits with an error if it does not).
//!
//! Run it with (the optional argument is the number of events, default 5000):
//!
//! ```text
//! cargo run --release --example file_events
//! cargo run --release --example file_events -- 100000
//! ```
//!
//! The log lives in a temporary directory that is deleted at the end. Small segments (64 KiB)
//! make truncation visible with a few thousand events.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use softadastra_wal::{RecordRef, RecordType, WalConfig, WalStore};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Size and modification time of one file, as the watcher last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileState {
    size: u64,
    mtime_ms: u64,
}

/// What a file watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FileEvent {
    Created {
        path: String,
        now: FileState,
    },
    Updated {
        path: String,
        now: FileState,
        previous: FileState,
    },
    Deleted {
        path: String,
        previous: FileState,
    },
}

/// The application's state: every file that exists, by path.
type Files = BTreeMap<String, FileState>;

fn main() -> Result<()> {
    let events: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a number of events: {arg}"))?,
        None => 5000,
    };
    let tmp = tempfile::tempdir()?;
    let log_dir = tmp.path().join("wal");
    let snapshot_path = tmp.path().join("files.snapshot");
    let config = WalConfig::new(&log_dir).segment_size(64 << 10);
    println!("file_events: {events} events, log in {}", log_dir.display());

    // 1. Events in, durably, then applied.
    let store = WalStore::open(config.clone())?;
    let writer = store.writer();
    let mut files = Files::new();
    let mut watcher = Watcher::new(0x5eed);
    let before_checkpoint = events - events / 10;
    let started = Instant::now();
    for _ in 0..before_checkpoint {
        let event = watcher.next_event(&files);
        let (record_type, payload) = encode(&event);
        writer.append(record_type, &payload)?;
        apply(&mut files, &event);
    }
    println!(
        "  appended {before_checkpoint} events in {:.0} ms ({} files exist)",
        started.elapsed().as_secs_f64() * 1e3,
        files.len()
    );

    // 2. Checkpoint: the snapshot first (so that a crash before the record still has it), then
    //    the record, then truncation.
    let covered = store.last_seq().ok_or("the log is empty")?;
    save_snapshot(&snapshot_path, covered, &files)?;
    let checkpoint = writer.append(RecordType::Checkpoint, &covered.to_le_bytes())?;
    let segments_before = count_segments(&log_dir)?;
    let deleted = store.truncate_before(checkpoint)?;
    println!(
        "  checkpoint at record {checkpoint}: snapshot of {} files covers records 1..={covered}; \
         truncate_before({checkpoint}) deleted {deleted} of {segments_before} segments, \
         the log now starts at record {}",
        files.len(),
        store.first_seq().ok_or("the log is empty")?
    );

    // 3. Life goes on after the checkpoint.
    for _ in before_checkpoint..events {
        let event = watcher.next_event(&files);
        let (record_type, payload) = encode(&event);
        writer.append(record_type, &payload)?;
        apply(&mut files, &event);
    }
    let last = writer.next_seq()? - 1;
    println!(
        "  {} more events, the last is record {last}",
        events - before_checkpoint
    );

    // 4. Restart.
    drop(writer);
    drop(store);
    let started = Instant::now();
    let store = WalStore::open(config)?;
    let (covered, mut rebuilt) = load_snapshot(&snapshot_path)?;
    let reader = store.reader();
    let mut replayed = 0u64;
    for record in reader.iter_from(covered + 1) {
        let record = record?;
        replayed += 1;
        match decode_record(&record)? {
            Some(event) => apply(&mut rebuilt, &event),
            // The marker written with the snapshot: it must name the point the snapshot covers.
            None if record.record_type() == RecordType::Checkpoint
                && record.payload() != covered.to_le_bytes() =>
            {
                return Err(format!(
                    "checkpoint record {} does not match the snapshot",
                    record.seq()
                )
                .into());
            }
            None => {}
        }
    }
    println!(
        "  restart: snapshot ({} files) + {replayed} records replayed in {:.1} ms; \
         without the checkpoint it would replay all {last} records",
        rebuilt.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    if rebuilt != files {
        return Err("the state rebuilt at restart differs from the state before it".into());
    }
    println!("  the rebuilt state equals the state before the restart");
    drop(reader);
    drop(store);
    tmp.close()?;
    Ok(())
}

/// Applies one event to the state.
fn apply(files: &mut Files, event: &FileEvent) {
    match event {
        FileEvent::Created { path, now } | FileEvent::Updated { path, now, .. } => {
            files.insert(path.clone(), *now);
        }
        FileEvent::Deleted { path, .. } => {
            files.remove(path);
        }
    }
}

/// The record type and payload of an event: `Put` for a creation, `Update`, `Delete`.
///
/// Payload: path length (u16), path (UTF-8), then the state(s) as little-endian u64 pairs
/// (size, mtime): the new one for `Created` and `Updated`, then the previous one for `Updated`
/// and `Deleted`.
fn encode(event: &FileEvent) -> (RecordType, Vec<u8>) {
    let (record_type, path, states) = match event {
        FileEvent::Created { path, now } => (RecordType::Put, path, vec![*now]),
        FileEvent::Updated {
            path,
            now,
            previous,
        } => (RecordType::Update, path, vec![*now, *previous]),
        FileEvent::Deleted { path, previous } => (RecordType::Delete, path, vec![*previous]),
    };
    let mut out = Vec::with_capacity(2 + path.len() + 16 * states.len());
    // Paths come from the watcher below and are short; a real encoder would refuse > 64 KiB.
    out.extend_from_slice(&(path.len() as u16).to_le_bytes());
    out.extend_from_slice(path.as_bytes());
    for state in states {
        out.extend_from_slice(&state.size.to_le_bytes());
        out.extend_from_slice(&state.mtime_ms.to_le_bytes());
    }
    (record_type, out)
}

/// The event a record holds; `None` for records that are not events (the checkpoint marker).
fn decode_record(record: &RecordRef<'_>) -> Result<Option<FileEvent>> {
    let mut input = Input(record.payload());
    let event = match record.record_type() {
        RecordType::Put => FileEvent::Created {
            path: input.path()?,
            now: input.state()?,
        },
        RecordType::Update => FileEvent::Updated {
            path: input.path()?,
            now: input.state()?,
            previous: input.state()?,
        },
        RecordType::Delete => FileEvent::Deleted {
            path: input.path()?,
            previous: input.state()?,
        },
        _ => return Ok(None),
    };
    if !input.0.is_empty() {
        return Err(format!("record {}: bytes left after the event", record.seq()).into());
    }
    Ok(Some(event))
}

/// A cursor over a payload; every read checks the length first, so a short payload is an error.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err("payload too short".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    fn path(&mut self) -> Result<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into()?);
        Ok(String::from_utf8(self.take(len.into())?.to_vec())?)
    }

    fn state(&mut self) -> Result<FileState> {
        Ok(FileState {
            size: self.u64()?,
            mtime_ms: self.u64()?,
        })
    }
}

/// Writes the snapshot (`FILESNAP`, the sequence number it covers, the file count, then each
/// path and state as in [`encode`]) aside, syncs it and renames it into place, so that a crash
/// leaves either the old snapshot or the new one.
fn save_snapshot(path: &Path, covered: u64, files: &Files) -> Result<()> {
    let mut bytes = b"FILESNAP".to_vec();
    bytes.extend_from_slice(&covered.to_le_bytes());
    bytes.extend_from_slice(&(files.len() as u64).to_le_bytes());
    for (name, state) in files {
        bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(&state.size.to_le_bytes());
        bytes.extend_from_slice(&state.mtime_ms.to_le_bytes());
    }
    let aside = path.with_extension("tmp");
    let mut file = fs::File::create(&aside)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&aside, path)?;
    // The rename itself becomes durable with a sync of the directory.
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn load_snapshot(path: &Path) -> Result<(u64, Files)> {
    let bytes = fs::read(path)?;
    let mut input = Input(&bytes);
    if input.take(8)? != b"FILESNAP" {
        return Err(format!("{} is not a snapshot", path.display()).into());
    }
    let covered = input.u64()?;
    let count = input.u64()?;
    let mut files = Files::new();
    for _ in 0..count {
        let name = input.path()?;
        files.insert(name, input.state()?);
    }
    Ok((covered, files))
}

fn count_segments(dir: &Path) -> Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        if entry?.file_name().to_string_lossy().ends_with(".seg") {
            n += 1;
        }
    }
    Ok(n)
}

/// A stand-in for a file watcher: deterministic pseudo-random events over 300 paths.
struct Watcher {
    rng: u64,
    clock_ms: u64,
}

impl Watcher {
    fn new(seed: u64) -> Watcher {
        Watcher {
            rng: seed,
            clock_ms: 1_700_000_000_000,
        }
    }

    /// xorshift64: plenty for made-up events.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn next_event(&mut self, files: &Files) -> FileEvent {
        let r = self.next();
        self.clock_ms += 1 + r % 500;
        let path = format!("projects/notes/{:03}.md", r % 300);
        let now = FileState {
            size: (r >> 20) % 100_000,
            mtime_ms: self.clock_ms,
        };
        match files.get(&path) {
            None => FileEvent::Created { path, now },
            Some(&previous) if r.is_multiple_of(4) => FileEvent::Deleted { path, previous },
            Some(&previous) => FileEvent::Updated {
                path,
                now,
                previous,
            },
        }
    }
}
