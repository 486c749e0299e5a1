//! Live tailing: one thread appends, others follow the log as records become durable.
//!
//! * The writer appends `N` records with `SyncMode::Always` (each durable when `append` returns),
//!   in bursts of 1 to 8 with short pauses, as an application would.
//! * The in-process follower uses a reader made by `WalStore::reader` and `wait_for`: it sleeps
//!   until the writer publishes new records (woken by the store, no polling).
//! * The directory follower uses `WalReader::open`, the path for a reader in another process
//!   (here a thread, to keep the example in one program): its `wait_for` polls the directory
//!   with `refresh`, pausing 1 ms at first and up to 50 ms.
//!
//! Each follower prints a line for its first wake-ups, checks that it saw every record exactly
//! once, in order and with the right payload, and reports how long after the writer's `append`
//! returned it saw them.
//! The example exits with an error if a record was missed.
//!
//! Run it with (the optional argument is the number of records, default 2000):
//!
//! ```text
//! cargo run --release --example follow
//! cargo run --release --example follow -- 100000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordType, WalConfig, WalReader, WalStore};

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// A follower that has seen nothing new for this long gives up: the writer must have failed.
const STALL: Duration = Duration::from_secs(10);
/// Wake-ups each follower prints before it goes quiet.
const SHOWN: usize = 5;

fn main() -> Result<()> {
    let total: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a number of records: {arg}"))?,
        None => 2000,
    };
    let tmp = tempfile::tempdir()?;
    // Small segments, so that the followers also cross rotations.
    let store = WalStore::open(WalConfig::new(tmp.path()).segment_size(1 << 20))?;
    let epoch = Instant::now();
    // When each append returned (nanoseconds since `epoch`), for the followers' delays.
    let acked: Vec<AtomicU64> = (0..=total).map(|_| AtomicU64::new(0)).collect();
    let acked = &acked;
    println!("follow: {total} records, log in {}", tmp.path().display());

    let reports = thread::scope(|s| -> Result<Vec<Report>> {
        let in_process = store.reader();
        let from_dir = WalReader::open(tmp.path())?;
        let followers = [
            s.spawn(move || follow("store reader", in_process, total, epoch, acked)),
            s.spawn(move || follow("directory reader", from_dir, total, epoch, acked)),
        ];
        let writer = store.writer();
        let mut seq = 0;
        while seq < total {
            let burst = 1 + seq % 8;
            for _ in 0..burst.min(total - seq) {
                seq = writer.append(RecordType::Put, &(seq + 1).to_le_bytes())?;
                if let Some(slot) = acked.get(seq as usize) {
                    slot.store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
            }
            thread::sleep(Duration::from_micros(200));
        }
        followers
            .into_iter()
            .map(|f| f.join().map_err(|_| "a follower panicked")?)
            .collect()
    })?;

    let mut missed = false;
    for r in &reports {
        println!(
            "  {:<16} saw {} records in {} wake-ups; seen after the append returned: p50 {:.0} us, max {:.1} ms",
            r.name,
            r.records,
            r.wakeups,
            r.p50.as_secs_f64() * 1e6,
            r.max.as_secs_f64() * 1e3
        );
        missed |= r.records != total;
    }
    if missed {
        return Err("a follower missed records".into());
    }
    drop(store);
    tmp.close()?;
    Ok(())
}

struct Report {
    name: &'static str,
    records: u64,
    wakeups: u64,
    p50: Duration,
    max: Duration,
}

/// Follows the log until record `total`: waits for the record after the last one seen, then
/// reads everything the refreshed snapshot holds.
fn follow(
    name: &'static str,
    mut reader: WalReader,
    total: u64,
    epoch: Instant,
    acked: &[AtomicU64],
) -> Result<Report> {
    let (mut next, mut wakeups) = (1, 0);
    let mut delays = Vec::with_capacity(total as usize);
    while next <= total {
        if !reader.wait_for(next, STALL)? {
            return Err(format!(
                "{name}: nothing new for {STALL:?} after record {}",
                next - 1
            )
            .into());
        }
        wakeups += 1;
        let first = next;
        for record in reader.iter_from(next) {
            let record = record?;
            if record.seq() != next {
                return Err(format!("{name}: expected record {next}, got {}", record.seq()).into());
            }
            if record.payload() != next.to_le_bytes() {
                return Err(format!("{name}: record {next} has the wrong payload").into());
            }
            // Zero when the follower saw the record before `append` returned to the writer
            // (a record is published just before the call returns).
            let seen = epoch.elapsed().as_nanos() as u64;
            let ack = acked
                .get(next as usize)
                .map_or(0, |a| a.load(Ordering::Relaxed));
            let delay = if ack == 0 {
                0
            } else {
                seen.saturating_sub(ack)
            };
            delays.push(Duration::from_nanos(delay));
            next += 1;
        }
        if wakeups <= SHOWN as u64 {
            println!("  {name}: woke up for records {first}..={}", next - 1);
        }
    }
    delays.sort_unstable();
    Ok(Report {
        name,
        records: next - 1,
        wakeups,
        p50: delays.get(delays.len() / 2).copied().unwrap_or_default(),
        max: delays.last().copied().unwrap_or_default(),
    })
}
