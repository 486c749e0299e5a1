//! Criterion micro-benchmarks of the four hot operations: append (unsynced and durable), random
//! `get`, full iteration and open. `cargo bench -p softadastra-wal-micro`. The side-by-side
//! comparison with floors and peers is `benches/compare/` (see README, "Performance").

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use softadastra_wal::{RecordType, SyncMode, WalConfig, WalStore};

const PAYLOAD: [u8; 128] = [0x42; 128];

/// A fresh directory on the real disk (never tmpfs: a durable append must pay a real flush).
fn bench_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sawal-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir for the benchmark")
}

/// A log of `records` 128-byte records, synced, in `dir`.
fn fill(dir: &Path, records: u64) {
    let store = WalStore::open(WalConfig::new(dir).sync_mode(SyncMode::Manual)).expect("open");
    let w = store.writer();
    for _ in 0..records {
        w.append(RecordType::Put, &PAYLOAD).expect("append");
    }
    w.sync().expect("sync");
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_128B");
    group.throughput(Throughput::Elements(1));
    for (name, mode) in [
        ("unsynced", SyncMode::Manual),
        ("durable", SyncMode::Always),
    ] {
        let dir = bench_dir();
        let store = WalStore::open(WalConfig::new(dir.path()).sync_mode(mode)).expect("open");
        let w = store.writer();
        group.bench_function(name, |b| {
            b.iter(|| {
                w.append(RecordType::Put, black_box(&PAYLOAD))
                    .expect("append")
            })
        });
    }
    group.finish();
}

fn get(c: &mut Criterion) {
    const RECORDS: u64 = 200_000;
    let dir = bench_dir();
    fill(dir.path(), RECORDS);
    let store = WalStore::open(WalConfig::new(dir.path())).expect("open");
    let reader = store.reader();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    c.bench_function("get_random_128B", |b| {
        b.iter(|| {
            // xorshift: a cheap, different sequence number each time.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = 1 + x % RECORDS;
            let record = reader.get(seq).expect("get").expect("present");
            black_box(record.payload().len())
        })
    });
}

fn iterate(c: &mut Criterion) {
    const RECORDS: u64 = 100_000;
    let dir = bench_dir();
    fill(dir.path(), RECORDS);
    let store = WalStore::open(WalConfig::new(dir.path())).expect("open");
    let reader = store.reader();
    let mut group = c.benchmark_group("iterate");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("100k_records_128B", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for record in reader.iter() {
                bytes += record.expect("record").payload().len();
            }
            black_box(bytes)
        })
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let dir = bench_dir();
    // About 64 MiB: one full default segment and part of the next.
    fill(dir.path(), 400_000);
    c.bench_function("open_64MiB_log", |b| {
        b.iter_batched(
            || (),
            |()| WalStore::open(WalConfig::new(dir.path())).expect("open"),
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = append, get, iterate, open
}
criterion_main!(benches);
