//! A desktop application's cold start: open a large log and replay it from the last checkpoint.
//!
//! The example first builds the log a long-running application would leave behind: records of
//! mixed sizes (64 B to 2 KiB) and a `Checkpoint` record at a quarter, half and three quarters
//! of the log. The
//! application keeps the sequence number of its last checkpoint next to its snapshot (here a
//! small file beside the log). Then it "quits" (the store is dropped) and starts again:
//!
//! * time to open: recovery checks the segments and finds the end of the log;
//! * time to first record: `iter_from(checkpoint)` positions itself with the sparse index;
//! * total replay time and rate for the records after the checkpoint, and for comparison for
//!   the whole log;
//! * `WalStore::stats()` after the open.
//!
//! Run it with (the optional argument is the size of the log in MB, default 160):
//!
//! ```text
//! cargo run --release --example startup_replay
//! cargo run --release --example startup_replay -- 2000
//! ```
//!
//! The figures are for a warm page cache (the log was just written, and dropping the cache needs
//! root): a real cold start after a reboot also waits for the disk to read the segments. The log
//! is in a temporary directory (set `TMPDIR` to choose the disk), deleted at the end.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordType, SyncMode, WalConfig, WalReader, WalStore};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() -> Result<()> {
    let megabytes: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a size in MB: {arg}"))?,
        None => 160,
    };
    if megabytes == 0 {
        return Err("the log needs at least 1 MB".into());
    }
    let tmp = tempfile::tempdir()?;
    let log_dir = tmp.path().join("wal");
    let checkpoint_file = tmp.path().join("last-checkpoint");
    println!(
        "startup_replay: a {megabytes} MB log in {}",
        log_dir.display()
    );

    let started = Instant::now();
    let (records, checkpoint) = build(&log_dir, megabytes * 1_000_000)?;
    fs::write(&checkpoint_file, checkpoint.to_le_bytes())?;
    println!(
        "  built {records} records in {} (SyncMode::Manual, synced every 4 MB); last checkpoint: record {checkpoint}",
        took(started.elapsed())
    );

    // The application starts again.
    let started = Instant::now();
    let store = WalStore::open(WalConfig::new(&log_dir))?;
    let open_time = started.elapsed();
    let stats = store.stats()?;
    println!(
        "  open:                {:>10}  {} records in {} segments recovered, {} bytes of torn tail cut",
        took(open_time),
        stats.recovered_records,
        stats.segments,
        stats.truncated_bytes
    );

    let checkpoint = read_checkpoint(&checkpoint_file)?;
    let reader = store.reader();
    let from_checkpoint = replay(&reader, checkpoint)?;
    println!(
        "  first record:        {:>10}  record {checkpoint} (the checkpoint), positioned by the index",
        took(from_checkpoint.first)
    );
    println!(
        "  replay from it:      {:>10}  {} records, {:.0} MB, {:.2} GB/s",
        took(from_checkpoint.total),
        from_checkpoint.records,
        from_checkpoint.bytes as f64 / 1e6,
        from_checkpoint.rate()
    );
    println!(
        "  open to last record: {:>10}",
        took(open_time + from_checkpoint.total)
    );
    let whole = replay(&reader, 1)?;
    println!(
        "  (whole log:          {:>10}  {} records, {:.0} MB, {:.2} GB/s)",
        took(whole.total),
        whole.records,
        whole.bytes as f64 / 1e6,
        whole.rate()
    );
    if whole.records != records || from_checkpoint.records != records - checkpoint + 1 {
        return Err("the replay did not see every record that was written".into());
    }
    println!("  after the replay, {:?}", store.stats()?);

    drop(reader);
    drop(store);
    tmp.close()?;
    Ok(())
}

/// Writes about `bytes` of payload and returns the number of records and the sequence number of
/// the last checkpoint record.
fn build(dir: &Path, bytes: u64) -> Result<(u64, u64)> {
    let store = WalStore::open(WalConfig::new(dir).sync_mode(SyncMode::Manual))?;
    let writer = store.writer();
    // Payloads are slices of one buffer of varied bytes, at varied offsets and lengths.
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut written, mut since_sync, mut next_checkpoint) = (0u64, 0u64, bytes / 4);
    let mut checkpoint = 1;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    while written < bytes {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let len = 64 + (rng % 1985) as usize;
        let at = (rng >> 32) as usize % (noise.len() - len);
        let record_type =
            [RecordType::Put, RecordType::Update, RecordType::Delete][(rng % 3) as usize];
        writer.append(record_type, &noise[at..at + len])?;
        written += len as u64;
        since_sync += len as u64;
        if since_sync >= 4_000_000 {
            writer.sync()?;
            since_sync = 0;
        }
        if written >= next_checkpoint && next_checkpoint < bytes {
            // In an application: the state up to here has been saved in a snapshot.
            checkpoint = writer.append(RecordType::Checkpoint, b"")?;
            next_checkpoint += bytes / 4;
        }
    }
    writer.sync()?;
    let records = writer.next_seq()? - 1;
    Ok((records, checkpoint))
}

fn read_checkpoint(path: &Path) -> Result<u64> {
    let bytes: [u8; 8] = fs::read(path)?
        .try_into()
        .map_err(|_| format!("{} is not 8 bytes long", path.display()))?;
    Ok(u64::from_le_bytes(bytes))
}

struct Replay {
    first: Duration,
    total: Duration,
    records: u64,
    bytes: u64,
}

impl Replay {
    fn rate(&self) -> f64 {
        self.bytes as f64 / self.total.as_secs_f64() / 1e9
    }
}

/// Replays the records from `from` on into a stand-in for application state (a running sum, so
/// that the payloads are really read), timing the first record and the whole replay.
fn replay(reader: &WalReader, from: u64) -> Result<Replay> {
    let started = Instant::now();
    let mut first = None;
    let (mut records, mut bytes, mut state) = (0u64, 0u64, 0u64);
    for record in reader.iter_from(from) {
        let record = record?;
        first.get_or_insert_with(|| started.elapsed());
        records += 1;
        bytes += record.payload().len() as u64;
        state = record
            .payload()
            .iter()
            .step_by(64)
            .fold(state, |s, &b| s.rotate_left(5) ^ u64::from(b));
    }
    let total = started.elapsed();
    std::hint::black_box(state);
    Ok(Replay {
        first: first.unwrap_or(total),
        total,
        records,
        bytes,
    })
}

/// A duration in the unit that keeps it readable.
fn took(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{:.0} us", ms * 1e3)
    } else if ms < 10_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.1} s", ms / 1e3)
    }
}
