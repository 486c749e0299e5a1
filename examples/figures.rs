//! Measures the figures quoted in benches/compare/README.md and the closing notes, each beside its
//! floor measured in the same run (this machine's disk and memory, so ratios stay comparable
//! across machines):
//!
//! 1. latency of a durable 128-byte append (SyncMode::Always), p50 and p99, next to one 128-byte
//!    `pwrite` + `fdatasync` into a preallocated file;
//! 2. unsynced 128-byte appends (SyncMode::Manual) in records/s;
//! 3. time to open a 1 GiB log made of 64 MiB segments, and a 1 GiB log of one segment;
//! 4. latency of the durable append that crosses into a new segment, next to the others (64 KiB
//!    records, 8 MiB segments).
//!
//! Run: `cargo run --release --example figures` (add `--quick` for a smaller, faster run).
//! The logs are written under a temporary directory on the file system of `TMPDIR` (default /tmp).

use std::fs::OpenOptions;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordType, SyncMode, WalConfig, WalStore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One 128-byte pwrite + fdatasync at consecutive offsets of a preallocated file.
fn floor_pwrite_fdatasync(dir: &std::path::Path, n: usize) -> Result<Vec<Duration>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let path = dir.join("floor.dat");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        fs2::FileExt::allocate(&file, 64 << 20)?;
        file.sync_all()?;
        let buf = [0x5au8; 128];
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            file.write_at(&buf, (i * 128) as u64)?;
            file.sync_data()?;
            lat.push(t.elapsed());
        }
        std::fs::remove_file(path)?;
        Ok(lat)
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, n);
        Ok(Vec::new())
    }
}

fn durable_appends(dir: &std::path::Path, n: usize) -> Result<Vec<Duration>> {
    let store = WalStore::open(WalConfig::new(dir.join("durable")))?;
    let w = store.writer();
    let payload = [0xabu8; 128];
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        w.append(RecordType::Put, &payload)?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}

/// Durable 64 KiB appends into 8 MiB segments: latencies of the appends that rotated (the log
/// gained a segment) and of the others, each sorted.
fn rotation_latency(dir: &std::path::Path, n: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let store = WalStore::open(WalConfig::new(dir.join("rotation")).segment_size(8 << 20))?;
    let w = store.writer();
    let payload = vec![0x5au8; 64 << 10];
    let (mut rotating, mut plain) = (Vec::new(), Vec::with_capacity(n));
    for _ in 0..n {
        let segments = store.stats()?.segments;
        let t = Instant::now();
        w.append(RecordType::Put, &payload)?;
        let took = t.elapsed();
        if store.stats()?.segments > segments {
            rotating.push(took);
        } else {
            plain.push(took);
        }
    }
    rotating.sort();
    plain.sort();
    Ok((rotating, plain))
}

/// Durable 128 B appends from `threads` threads at once for `per_thread` appends each: records
/// per second (group commit lets concurrent appenders share flushes).
fn durable_rate(dir: &std::path::Path, threads: usize, per_thread: usize) -> Result<f64> {
    let store = WalStore::open(WalConfig::new(dir.join(format!("durable-{threads}"))))?;
    let payload = [0xabu8; 128];
    let t = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let w = store.writer();
                s.spawn(move || -> softadastra_wal::Result<()> {
                    for _ in 0..per_thread {
                        w.append(RecordType::Put, &payload)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| std::io::Error::other("an appending thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((threads * per_thread) as f64 / t.elapsed().as_secs_f64())
}

fn unsynced_rate(dir: &std::path::Path, n: usize) -> Result<f64> {
    let store = WalStore::open(WalConfig::new(dir.join("manual")).sync_mode(SyncMode::Manual))?;
    let w = store.writer();
    let payload = [0xcdu8; 128];
    // Warm the mapping and the code path first.
    for _ in 0..1000 {
        w.append(RecordType::Put, &payload)?;
    }
    let t = Instant::now();
    for _ in 0..n {
        w.append(RecordType::Put, &payload)?;
    }
    let elapsed = t.elapsed();
    w.sync()?;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Fills a log of about `total` bytes with 4 KiB records and returns the median open time.
fn open_time(dir: &std::path::Path, segment: u64, total: u64, runs: usize) -> Result<Duration> {
    let config = WalConfig::new(dir)
        .segment_size(segment)
        .sync_mode(SyncMode::Manual);
    {
        let store = WalStore::open(config.clone())?;
        let w = store.writer();
        let payload = vec![0x11u8; 4096 - 32];
        let records = total / 4096 - 64;
        for _ in 0..records {
            w.append(RecordType::Put, &payload)?;
        }
        w.sync()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let store = WalStore::open(config.clone())?;
        times.push(t.elapsed());
        drop(store);
    }
    Ok(median(times))
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let tmp = tempfile::Builder::new()
        .prefix("sawal-figures-")
        .tempdir()?;
    let dir = tmp.path();
    let (n_sync, n_fast, log_bytes) = if quick {
        (200, 100_000, 64u64 << 20)
    } else {
        (2000, 2_000_000, 1u64 << 30)
    };

    let mut floor = floor_pwrite_fdatasync(dir, n_sync)?;
    let mut ours = durable_appends(dir, n_sync)?;
    floor.sort();
    ours.sort();
    let (f50, o50, o99) = (
        percentile(&floor, 0.5),
        percentile(&ours, 0.5),
        percentile(&ours, 0.99),
    );
    println!(
        "durable 128 B append ({n_sync} runs): p50 {:.1} us, p99 {:.1} us; floor pwrite+fdatasync p50 {:.1} us; ratio {:.2}",
        us(o50),
        us(o99),
        us(f50),
        o50.as_secs_f64() / f50.as_secs_f64().max(1e-12)
    );

    let one = durable_rate(dir, 1, n_sync)?;
    let eight = durable_rate(dir, 8, n_sync)?;
    println!(
        "durable 128 B appends: 1 thread {one:.0} records/s, 8 threads {eight:.0} records/s (x{:.1}, group commit)",
        eight / one
    );

    let rate = unsynced_rate(dir, n_fast)?;
    println!("unsynced 128 B append: {:.2} M records/s", rate / 1e6);

    let (rotating, plain) = rotation_latency(dir, if quick { 400 } else { 2000 })?;
    println!(
        "durable 64 KiB append into 8 MiB segments: rotating p50 {:.0} us ({} appends), others p50 {:.0} us; ratio {:.2}",
        us(percentile(&rotating, 0.5)),
        rotating.len(),
        us(percentile(&plain, 0.5)),
        percentile(&rotating, 0.5).as_secs_f64() / percentile(&plain, 0.5).as_secs_f64().max(1e-12)
    );

    let seg_small = if quick { 8u64 << 20 } else { 64 << 20 };
    let many = open_time(&dir.join("many"), seg_small, log_bytes, 5)?;
    let one = open_time(&dir.join("one"), log_bytes, log_bytes, 5)?;
    println!(
        "open a {} MiB log: {} MiB segments {:.2} ms, one segment {:.2} ms (median of 5, warm cache)",
        log_bytes >> 20,
        seg_small >> 20,
        many.as_secs_f64() * 1e3,
        one.as_secs_f64() * 1e3
    );
    Ok(())
}
