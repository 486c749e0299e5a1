//! The properties every target checks on what the library returns. A violation panics: that is
//! how libFuzzer (and the replay test) see it.

use std::collections::HashSet;
use std::path::Path;

use softadastra_wal::format::{self, Binding};
use softadastra_wal::{Error, TornTail, WalReader, WalRecord, WalStore};

use crate::build::File;

/// A record as its bytes say: sequence number, type code, timestamp, payload.
pub type Key = (u64, u8, u64, Vec<u8>);

fn key(r: &WalRecord) -> Key {
    (r.seq, r.record_type.code(), r.timestamp, r.payload.clone())
}

/// More records than any input here can describe: an iterator that yields this many never ends.
const MAX_ITEMS: usize = 1 << 20;

/// Every record that verifies somewhere in `files`: each segment file whose header decodes is
/// scanned at every 8-byte aligned offset of its data region, under its own binding. A record
/// the library returns must be one of these (I3: no corrupt byte is returned as data).
#[must_use]
pub fn verified_records(files: &[File]) -> HashSet<Key> {
    let mut out = HashSet::new();
    for (_, bytes) in files {
        let Ok((header, layout)) = format::decode_segment_header(bytes) else {
            continue;
        };
        let binding = Binding {
            log_id: header.log_id.get(),
            segment_id: header.segment_id.get(),
        };
        let limit = layout.data_limit.min(bytes.len() as u64);
        let mut off = layout.data_start();
        while off < limit {
            if let Ok((loc, payload)) = format::decode_record(bytes, off, limit, binding) {
                out.insert((
                    loc.header.seq.get(),
                    loc.header.record_type,
                    loc.header.timestamp.get(),
                    payload.to_vec(),
                ));
            }
            off += format::RECORD_ALIGN;
        }
    }
    out
}

/// Reads the whole log of `reader` and checks what it returns: every record verifies, sequence
/// numbers are consecutive, iteration ends (also after an error). When iteration succeeds, the
/// range, lookups by sequence and iteration from the middle agree with it; returns the records,
/// or the error that ended the iteration.
pub fn check_reader(reader: &WalReader, verified: &HashSet<Key>) -> Result<Vec<WalRecord>, Error> {
    let records = iterate(reader, verified)?;
    assert_eq!(
        reader.first_seq(),
        records.first().map(|r| r.seq),
        "first_seq disagrees with iteration"
    );
    assert_eq!(
        reader.last_seq(),
        records.last().map(|r| r.seq),
        "last_seq disagrees with iteration"
    );
    for r in &records {
        match reader.get(r.seq) {
            Ok(Some(got)) => assert_eq!(got.to_record(), *r, "get({}) differs", r.seq),
            Ok(None) => panic!("get({}) is None, iteration returned it", r.seq),
            Err(e) => panic!("get({}) failed, iteration returned it: {e}", r.seq),
        }
    }
    assert!(
        matches!(reader.get(0), Ok(None) | Err(_)),
        "get(0) returned a record"
    );
    if let Some(mid) = records.get(records.len() / 2) {
        let tail: Result<Vec<WalRecord>, _> = reader
            .iter_from(mid.seq)
            .take(records.len() + 1)
            .map(|r| r.map(|r| r.to_record()))
            .collect();
        match tail {
            Ok(tail) => assert_eq!(tail, records[records.len() / 2..], "iter_from differs"),
            Err(e) => panic!("iter_from({}) failed, iteration did not: {e}", mid.seq),
        }
    }
    Ok(records)
}

/// Iterates with a bound; the error if iteration ended with one.
fn iterate(reader: &WalReader, verified: &HashSet<Key>) -> Result<Vec<WalRecord>, Error> {
    let mut records: Vec<WalRecord> = Vec::new();
    let mut iter = reader.iter();
    for _ in 0..MAX_ITEMS {
        match iter.next() {
            None => return Ok(records),
            Some(Ok(r)) => {
                let r = r.to_record();
                assert!(
                    verified.contains(&key(&r)),
                    "record {} was returned but does not verify anywhere in the files",
                    r.seq
                );
                if let Some(prev) = records.last() {
                    assert_eq!(r.seq, prev.seq + 1, "iteration skips or repeats");
                }
                records.push(r);
            }
            Some(Err(e)) => {
                assert!(iter.next().is_none(), "iteration goes on after an error");
                return Err(e);
            }
        }
    }
    panic!("iteration does not end");
}

/// Writes `files` into the empty directory `dir`.
pub fn materialize(dir: &Path, files: &[File]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write a file of the fuzzed log");
    }
}

/// A scratch directory, in memory where there is one (each run makes and maps a few files).
#[must_use]
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("sawal-fuzz-");
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder.tempdir().expect("create scratch dir")
}

/// The configuration of the stores the targets open: small segments, so that a store that has
/// to create one (an empty directory, a sealed last segment) stays cheap.
#[must_use]
pub fn store_config(dir: &Path) -> softadastra_wal::WalConfig {
    softadastra_wal::WalConfig::new(dir)
        .segment_size(8 << 10)
        .index_interval(256)
}

/// Opens `dir` the three ways an application can and checks them against each other:
///
/// * a read-only `WalReader::open`, which never writes;
/// * a `WalStore::open`, which repairs (zeroes a torn tail, seals, removes temporary files):
///   when both succeed they show the same records, and a torn tail it reports lies right after
///   the last record;
/// * a second `WalStore::open` of the repaired files shows the same records again (I4) and
///   finds no torn tail any more, and an append continues right after the last record.
pub fn check_directory(dir: &Path, files: &[File]) {
    let verified = verified_records(files);
    let read_only = WalReader::open(dir).and_then(|reader| check_reader(&reader, &verified));
    let Ok((first, torn)) = open_store(dir, &verified) else {
        return;
    };
    if let (Some(torn), Some(last)) = (&torn, first.last()) {
        assert_eq!(
            torn.next_seq,
            last.seq + 1,
            "the torn tail is not after the log"
        );
    }
    if let Ok(read_only) = &read_only {
        assert_eq!(
            *read_only, first,
            "a read-only open and a store disagree on the records"
        );
    }
    let (second, torn_again) = open_store(dir, &verified)
        .unwrap_or_else(|e| panic!("a second open of a recovered log failed: {e}"));
    assert_eq!(first, second, "two recoveries differ");
    assert_eq!(
        torn_again, None,
        "the first open did not repair the torn tail"
    );
    check_append(dir, &first, &verified);
}

/// Opens a store on `dir`; its records and the torn tail it cut, if the open and the iteration
/// succeed.
fn open_store(
    dir: &Path,
    verified: &HashSet<Key>,
) -> Result<(Vec<WalRecord>, Option<TornTail>), Error> {
    let store = WalStore::open(store_config(dir))?;
    let records = check_reader(&store.reader(), verified)?;
    Ok((records, store.torn_tail().cloned()))
}

/// Appends one record to the recovered log: it gets the next sequence number, and a reopen
/// shows the log with it at the end.
fn check_append(dir: &Path, before: &[WalRecord], verified: &HashSet<Key>) {
    let payload = b"fuzz: appended after recovery";
    let seq = {
        let store = WalStore::open(store_config(dir))
            .unwrap_or_else(|e| panic!("the third open of a recovered log failed: {e}"));
        match store.writer().append_with_timestamp(
            softadastra_wal::RecordType::Custom(77),
            7,
            payload,
        ) {
            Ok(seq) => seq,
            Err(e) => panic!("appending to a recovered log failed: {e}"),
        }
    };
    if let Some(last) = before.last() {
        assert_eq!(
            seq,
            last.seq + 1,
            "the log does not continue after recovery"
        );
    }
    let mut verified = verified.clone();
    verified.insert((seq, 77, 7, payload.to_vec()));
    let (after, _) = open_store(dir, &verified)
        .unwrap_or_else(|e| panic!("reopening after an append failed: {e}"));
    let (last, earlier) = after.split_last().expect("the appended record is missing");
    assert_eq!(last.seq, seq, "the appended record is not the last one");
    assert_eq!(earlier, before, "an append changed earlier records");
}
