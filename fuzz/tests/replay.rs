//! The fuzz targets as an ordinary test (stable toolchain, no sanitizer): every file of
//! `corpus/<target>/` and `regressions/<target>/` goes through the target's body. Also checks
//! the seed generator: its seeds are all in the corpus, and the logs it builds are what the
//! crate's own writer writes, byte for byte.
//!
//! Run: `cargo test --manifest-path fuzz/Cargo.toml`.

use std::path::{Path, PathBuf};

use softadastra_wal::format::Layout;
use softadastra_wal::{RecordType, WalConfig, WalReader, WalRecord, WalStore};
use softadastra_wal_fuzz::build::{self, Rec};
use softadastra_wal_fuzz::{TARGETS, check, run_target, seeds};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panic".into())
}

#[test]
fn corpus_and_regressions_replay_without_a_violation() {
    let mut failures = Vec::new();
    let mut count = 0;
    for target in TARGETS {
        for kind in ["corpus", "regressions"] {
            for path in inputs(&root().join(kind).join(target)) {
                let data = std::fs::read(&path).expect("read input");
                count += 1;
                if let Err(p) = std::panic::catch_unwind(|| run_target(target, &data)) {
                    failures.push(format!("{}: {}", path.display(), panic_message(&*p)));
                }
            }
        }
    }
    // Read by .ci/fuzz.sh (with --nocapture).
    println!("replay: inputs={count} failures={}", failures.len());
    assert!(count >= seeds::all().len(), "the corpus is missing");
    assert!(failures.is_empty(), "violations:\n{}", failures.join("\n"));
}

#[test]
fn every_seed_is_in_the_corpus() {
    for seed in seeds::all() {
        let path = root().join("corpus").join(seed.target).join(&seed.name);
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == seed.bytes,
            "{} is missing or stale: run `cargo run --manifest-path fuzz/Cargo.toml --bin gen_corpus`",
            path.display()
        );
    }
}

/// Appends `groups` (single records and batches, with the types and timestamps `Rec` gives) to a
/// fresh store; returns the directory and the records as the writer stamped them.
fn write_with_store(groups: &[Vec<Rec>]) -> (tempfile::TempDir, Vec<Vec<Rec>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = WalStore::open(
        WalConfig::new(dir.path())
            .segment_size(8192)
            .index_interval(256),
    )
    .expect("open");
    let w = store.writer();
    for group in groups {
        let typ = |r: &Rec| RecordType::from_code(r.code).expect("a valid type");
        if let [single] = &group[..] {
            let seq = w
                .append_with_timestamp(typ(single), single.timestamp, &single.payload)
                .expect("append");
            assert_eq!(seq, single.seq);
        } else {
            let range = w
                .append_batch(group.iter().map(|r| (typ(r), &r.payload[..])))
                .expect("batch");
            assert_eq!(*range.start(), group[0].seq);
        }
    }
    // A batch takes the writer's clock: read its timestamps back.
    let stamped: Vec<WalRecord> = store
        .reader()
        .iter()
        .map(|r| r.expect("read").to_record())
        .collect();
    let groups = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|r| Rec {
                    timestamp: stamped[r.seq as usize - 1].timestamp,
                    ..r.clone()
                })
                .collect()
        })
        .collect();
    (dir, groups)
}

fn mixed_groups() -> Vec<Vec<Rec>> {
    let mut groups = Vec::new();
    let mut seq = 1;
    for i in 0..60usize {
        if i % 7 == 3 {
            let payloads: Vec<Vec<u8>> = (0..4).map(|j| vec![j as u8 + 1; 300 + 50 * j]).collect();
            let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
            groups.push(Rec::batch(seq, &refs));
            seq += 4;
        } else {
            groups.push(vec![Rec::single(
                seq,
                1 + (i % 5) as u8,
                &vec![i as u8; i * 37 % 900],
            )]);
            seq += 1;
        }
    }
    groups
}

#[test]
fn the_builder_writes_what_the_writer_writes() {
    let (dir, groups) = write_with_store(&mixed_groups());
    let first = dir.path().join(build::segment_name(1));
    let header = std::fs::read(&first).expect("segment 1");
    let log_id = u64::from_le_bytes(header[24..32].try_into().expect("8 bytes"));
    let layout = Layout::new(8192, 256).expect("layout");
    let built = build::build_log_of(log_id, layout, 1, &groups);
    assert!(built.len() >= 3, "the log spans several segments");
    for (name, bytes) in &built {
        let written = std::fs::read(dir.path().join(name)).expect("written segment");
        let first_diff = written.iter().zip(bytes).position(|(a, b)| a != b);
        assert!(
            written == *bytes,
            "{name} differs from the writer's at byte {first_diff:?}"
        );
    }
}

#[test]
fn built_logs_read_back_as_built() {
    let groups = mixed_groups();
    let files = build::build_log(Layout::new(4096, 128).expect("layout"), 1, &groups);
    let dir = check::scratch_dir();
    check::materialize(dir.path(), &files);
    let reader = WalReader::open(dir.path()).expect("open the built log");
    let records = check::check_reader(&reader, &check::verified_records(&files))
        .unwrap_or_else(|e| panic!("iterate the built log: {e}"));
    let want: Vec<(u64, u8, u64, Vec<u8>)> = groups
        .iter()
        .flatten()
        .map(|r| (r.seq, r.code, r.timestamp, r.payload.clone()))
        .collect();
    let got: Vec<(u64, u8, u64, Vec<u8>)> = records
        .iter()
        .map(|r| (r.seq, r.record_type.code(), r.timestamp, r.payload.clone()))
        .collect();
    assert_eq!(got, want);
}

/// The seeds of valid logs are valid: a store opens them and finds records (so the fuzzer starts
/// from logs that reach deep into recovery, not from early rejections).
#[test]
fn seed_logs_open_with_records() {
    for seed in seeds::all() {
        let files = match seed.target {
            "recovery" if seed.name.starts_with("seed-raw") => {
                let mut inp = softadastra_wal_fuzz::input::Input::new(&seed.bytes[1..]);
                softadastra_wal_fuzz::raw_files(&mut inp)
            }
            "segment_loader" if seed.name != "seed-empty-256" => {
                let (h, _) = softadastra_wal::format::decode_segment_header(&seed.bytes)
                    .expect("a seed segment header");
                vec![(build::segment_name(h.segment_id.get()), seed.bytes.clone())]
            }
            _ => continue,
        };
        let dir = check::scratch_dir();
        check::materialize(dir.path(), &files);
        let store = WalStore::open(check::store_config(dir.path()))
            .unwrap_or_else(|e| panic!("{}: {e}", seed.name));
        assert!(store.last_seq().is_some(), "{}: no records", seed.name);
    }
}
