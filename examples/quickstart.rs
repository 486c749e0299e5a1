//! The main demo of softadastra-wal: a write-ahead log behind a tiny key-value store.
//!
//! It creates a log in a temporary directory, appends single records with `SyncMode::Always`
//! (each one durable before `append` returns) and one atomic batch, "restarts" by dropping the
//! store and opening it again, replays the log into an in-memory map, reads one record by its
//! sequence number, and prints how long each step took.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! The log goes into a fresh directory under the system's temporary directory (set `TMPDIR` to
//! choose another file system) and is deleted at the end. Durable-append latency is the cost of
//! flushing to the disk under that directory: on a RAM-backed file system such as tmpfs it is
//! meaningless.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordRef, RecordType, SyncMode, WalConfig, WalStore};

/// Single appends to make; each is flushed to stable storage before the next one starts.
const SINGLE_APPENDS: usize = 200;
/// Keys the appends cycle through, so that replay ends with a small map.
const KEYS: usize = 8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("wal");
    let config = WalConfig::new(&dir).sync_mode(SyncMode::Always);
    println!("softadastra-wal quickstart, log in {}", dir.display());

    // 1. Create the log.
    let started = Instant::now();
    let store = WalStore::open(config.clone())?;
    let writer = store.writer();
    step(
        "create",
        started.elapsed(),
        &format!(
            "new log, {} MiB segments, SyncMode::{:?}",
            config.get_segment_size() >> 20,
            config.get_sync_mode()
        ),
    );

    // 2. Single appends: puts, and a delete of the previous key every fifth record.
    let mut latencies = Vec::with_capacity(SINGLE_APPENDS);
    for i in 0..SINGLE_APPENDS {
        let (record_type, payload) = if i % 5 == 4 {
            (RecordType::Delete, format!("key{}", (i - 1) % KEYS))
        } else {
            (RecordType::Put, format!("key{}=value{i}", i % KEYS))
        };
        let started = Instant::now();
        writer.append(record_type, payload.as_bytes())?;
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    step(
        &format!("{SINGLE_APPENDS} appends"),
        percentile(&latencies, 50),
        &format!(
            "p50 per durable append (p99 {}, total {})",
            fmt(percentile(&latencies, 99)),
            fmt(latencies.iter().sum())
        ),
    );

    // 3. One atomic batch: all three records or none, one flush for the three.
    let started = Instant::now();
    let batch = writer.append_batch([
        (RecordType::Put, &b"user=ada"[..]),
        (RecordType::Put, &b"theme=dark"[..]),
        (RecordType::Delete, &b"key0"[..]),
    ])?;
    step(
        "1 batch",
        started.elapsed(),
        &format!("records {}..={}, one flush", batch.start(), batch.end()),
    );
    let appended = writer.next_seq()? - 1;

    // 4. "Restart": drop every handle (which releases the directory lock), then reopen. Opening
    //    runs recovery: it checks the segments and finds the end of the log.
    drop(writer);
    drop(store);
    let started = Instant::now();
    let store = WalStore::open(config)?;
    let reopen_time = started.elapsed();
    let last = store.last_seq().ok_or("the reopened log is empty")?;
    step(
        "reopen",
        reopen_time,
        &format!("recovered records 1..={last} of {appended} appended"),
    );

    // 5. Replay every record, in order, into the key-value state.
    let reader = store.reader();
    let mut state = BTreeMap::new();
    let mut applied = 0u64;
    let started = Instant::now();
    reader.for_each(|record| {
        apply(&mut state, record);
        applied += 1;
    })?;
    let replay_time = started.elapsed();
    step(
        "replay",
        replay_time,
        &format!("{applied} records applied, {} live keys:", state.len()),
    );
    let shown: Vec<String> = state.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{:27}{}", "", shown.join(" "));

    // 6. Random access by sequence number, positioned by the sparse index.
    let wanted = last / 2;
    let started = Instant::now();
    let record = reader
        .get(wanted)?
        .ok_or(format!("record {wanted} is missing"))?;
    let get_time = started.elapsed();
    step(
        &format!("get({wanted})"),
        get_time,
        &format!(
            "{:?} {:?}, timestamp {} ms",
            record.record_type(),
            String::from_utf8_lossy(record.payload()),
            record.timestamp()
        ),
    );

    // The temporary directory (and the log in it) is deleted when `tmp` is dropped; the store
    // and reader must go first so that no file is still mapped.
    drop(reader);
    drop(store);
    tmp.close()?;
    Ok(())
}

/// Applies one record to the key-value state: `Put`/`Update` carry `key=value`, `Delete` a key.
/// Anything else is ignored.
fn apply(state: &mut BTreeMap<String, String>, record: RecordRef<'_>) {
    let text = String::from_utf8_lossy(record.payload());
    match record.record_type() {
        RecordType::Put | RecordType::Update => {
            if let Some((key, value)) = text.split_once('=') {
                state.insert(key.to_owned(), value.to_owned());
            }
        }
        RecordType::Delete => {
            state.remove(text.as_ref());
        }
        _ => {}
    }
}

/// Prints one step: what, how long, and what it did.
fn step(what: &str, took: Duration, detail: &str) {
    println!("  {what:<13}{:>10}  {detail}", fmt(took));
}

/// The `percent`-th percentile of sorted durations (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100);
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

/// A duration in the unit that keeps it readable.
fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} us")
    } else {
        format!("{:.2} ms", us / 1_000.0)
    }
}
