//! Atomic batches: after a cut anywhere inside a batch, recovery keeps all of it or none of it.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use softadastra_wal::format::record_size;
use softadastra_wal::{RecordType, SyncMode, WalConfig, WalReader, WalRecord, WalStore};

use crate::common::{
    Rng, assert_log, copy_dir, rec, record_extents, room_left, segment_paths, small_config, tempdir,
};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Appends `payloads` as one batch and returns the records as they must read back.
fn append_batch(store: &WalStore, batch: &[(RecordType, Vec<u8>)]) -> Vec<WalRecord> {
    let before = now_ms();
    let next = store.writer().next_seq().unwrap();
    let range = store
        .writer()
        .append_batch(batch.iter().map(|(t, p)| (*t, &p[..])))
        .unwrap();
    let after = now_ms();
    assert_eq!(
        *range.start(),
        next,
        "a batch starts at the next sequence number"
    );
    assert_eq!(
        range.clone().count(),
        batch.len(),
        "a batch gets consecutive numbers"
    );
    store.writer().sync().unwrap();
    let r = store.reader();
    let ts = r.get(next).unwrap().unwrap().timestamp();
    assert!(
        (before..=after).contains(&ts),
        "batch timestamp {ts} outside {before}..={after}"
    );
    range
        .zip(batch)
        .map(|(seq, (t, p))| rec(seq, *t, ts, p))
        .collect()
}

fn config(dir: &Path, mode: SyncMode) -> WalConfig {
    small_config(dir).sync_mode(mode)
}

/// For every `stride`-th byte offset inside the batch (header + payload of its records, the
/// last record's padding excluded), plus every record boundary: zero from there to the end of the
/// batch in a copy of the log and reopen. The batch must be entirely gone, everything before it
/// intact, and the next append must take the batch's first number.
fn cut_inside_batch(
    src: &Path,
    before: &[WalRecord],
    batch: &[WalRecord],
    mode: SyncMode,
    stride: u64,
) {
    let last_seg = segment_paths(src).pop().unwrap();
    let name = last_seg.file_name().unwrap().to_owned();
    let extents = record_extents(&last_seg);
    let first = batch[0].seq;
    let in_batch: Vec<_> = extents.iter().filter(|e| e.seq >= first).copied().collect();
    assert_eq!(
        in_batch.len(),
        batch.len(),
        "the whole batch is in the newest segment"
    );
    let start = in_batch[0].offset;
    let end = in_batch.last().unwrap().end();
    let original = std::fs::read(&last_seg).unwrap();
    let boundaries: Vec<u64> = in_batch
        .iter()
        .flat_map(|e| [e.offset, e.offset + 32, e.end() - 1])
        .collect();

    // One scratch copy, its newest segment rewritten for every cut (opening a store only ever
    // writes into that file; nothing is appended to it).
    let scratch = copy_dir(src);
    let seg = scratch.path().join(&name);
    let mut cuts = 0;
    for k in start..end {
        let full_check = boundaries.contains(&k) || (k - start) % 997 == 0;
        if (k - start) % stride != 0 && !full_check {
            continue;
        }
        cuts += 1;
        let what = format!(
            "cut at {k} (batch {}..={} spans {start}..{end})",
            first,
            batch.last().unwrap().seq
        );
        let mut bytes = original.clone();
        bytes[k as usize..end as usize].fill(0);
        std::fs::write(&seg, &bytes).unwrap();

        assert_log(
            &WalReader::open(scratch.path()).unwrap(),
            before,
            &format!("{what}: dir reader"),
        );
        {
            let store = WalStore::open(config(scratch.path(), mode))
                .unwrap_or_else(|e| panic!("{what}: open: {e}"));
            assert_log(&store.reader(), before, &format!("{what}: store"));
            assert_eq!(store.writer().next_seq().unwrap(), first, "{what}");
        }
        if full_check {
            // Recovery is repeatable, and the batch's numbers are reused by the next append.
            let copy = copy_dir(scratch.path());
            let store = WalStore::open(config(copy.path(), mode)).unwrap();
            assert_log(&store.reader(), before, &format!("{what}: second open"));
            let seq = store
                .writer()
                .append_with_timestamp(RecordType::Noop, 3, b"next")
                .unwrap();
            store.writer().sync().unwrap();
            assert_eq!(seq, first, "{what}");
            drop(store);
            let store = WalStore::open(config(copy.path(), mode)).unwrap();
            let mut want = before.to_vec();
            want.push(rec(first, RecordType::Noop, 3, b"next"));
            assert_log(
                &store.reader(),
                &want,
                &format!("{what}: after the next append"),
            );
        }
    }
    assert!(cuts > 0);

    // Nothing cut: the whole batch is there.
    std::fs::write(&seg, &original).unwrap();
    let mut all = before.to_vec();
    all.extend_from_slice(batch);
    let store = WalStore::open(config(scratch.path(), mode)).unwrap();
    assert_log(&store.reader(), &all, "uncut batch");
}

fn batch_payloads(rng: &mut Rng) -> Vec<(RecordType, Vec<u8>)> {
    // Payloads never contain 0, so zeroing any byte of one changes it. The large one spans pages.
    [700usize, 4200, 0, 1500, 90]
        .into_iter()
        .map(|len| (rng.record_type(), rng.bytes_without(len, 0)))
        .collect()
}

/// Records before the batch: a sealed segment and some records in the batch's segment.
fn prefix(store: &WalStore, rng: &mut Rng, before: &mut Vec<WalRecord>) {
    let w = store.writer();
    while segment_paths(store.dir()).len() < 2 || before.len() < 6 {
        let len = rng.range(1000, 4000) as usize;
        let payload = rng.bytes(len);
        let (t, ts) = (rng.record_type(), rng.timestamp());
        let seq = w.append_with_timestamp(t, ts, &payload).unwrap();
        before.push(rec(seq, t, ts, &payload));
    }
}

#[test]
fn batch_cut_at_every_offset_is_all_or_nothing() {
    let dir = tempdir();
    let mut rng = Rng::new(0xba7c);
    let mut before = Vec::new();
    let batch;
    {
        let store = WalStore::open(config(dir.path(), SyncMode::Always)).unwrap();
        prefix(&store, &mut rng, &mut before);
        // The batch must fit behind records of the same segment: small records until there is
        // room for it (rotating once if needed).
        let payloads = batch_payloads(&mut rng);
        let need: u64 = payloads
            .iter()
            .map(|(_, p)| record_size(p.len() as u64))
            .sum();
        while room_left(dir.path()) < need
            || record_extents(&segment_paths(dir.path()).pop().unwrap()).len() < 2
        {
            let payload = rng.bytes(200);
            let seq = store
                .writer()
                .append_with_timestamp(RecordType::Noop, 4, &payload)
                .unwrap();
            before.push(rec(seq, RecordType::Noop, 4, &payload));
        }
        batch = append_batch(&store, &payloads);
    }
    let last = segment_paths(dir.path()).pop().unwrap();
    let ext = record_extents(&last);
    assert!(
        ext.len() >= batch.len() + 2,
        "records of the batch's segment precede it"
    );
    assert!(segment_paths(dir.path()).len() >= 2);
    cut_inside_batch(dir.path(), &before, &batch, SyncMode::Always, 1);
}

/// The same with records before the batch that were never synced (Manual mode): cutting the
/// batch must not make recovery treat those records, or the batch, as damaged durable data.
#[test]
fn batch_cut_after_unsynced_records_manual_mode() {
    let dir = tempdir();
    let mut rng = Rng::new(0xba7d);
    let mut before = Vec::new();
    let batch;
    {
        let store = WalStore::open(config(dir.path(), SyncMode::Manual)).unwrap();
        prefix(&store, &mut rng, &mut before);
        store.writer().sync().unwrap();
        let w = store.writer();
        for i in 0..3u8 {
            let payload = vec![i + 1; 333];
            let seq = w
                .append_with_timestamp(RecordType::Put, 5, &payload)
                .unwrap();
            before.push(rec(seq, RecordType::Put, 5, &payload));
        }
        // No sync between these records and the batch.
        let payloads = batch_payloads(&mut rng);
        let next = w.next_seq().unwrap();
        let range = w
            .append_batch(payloads.iter().map(|(t, p)| (*t, &p[..])))
            .unwrap();
        assert_eq!(*range.start(), next);
        w.sync().unwrap();
        let r = store.reader();
        let ts = r.get(next).unwrap().unwrap().timestamp();
        batch = range
            .zip(&payloads)
            .map(|(s, (t, p))| rec(s, *t, ts, p))
            .collect::<Vec<_>>();
    }
    cut_inside_batch(dir.path(), &before, &batch, SyncMode::Manual, 7);
}

/// A batch that does not fit the active segment starts a new one; cut inside it, the new segment
/// is left empty and the log ends where it ended before the batch.
#[test]
fn batch_that_opened_a_new_segment_cut_at_many_offsets() {
    let dir = tempdir();
    let mut rng = Rng::new(0xba7e);
    let mut before = Vec::new();
    let batch;
    {
        let store = WalStore::open(config(dir.path(), SyncMode::Always)).unwrap();
        prefix(&store, &mut rng, &mut before);
        let segments = segment_paths(dir.path()).len();
        // Nearly a whole segment: never fits behind existing records.
        let cap = store.config().max_payload().unwrap() as usize;
        let payloads = vec![
            (RecordType::Put, rng.bytes_without(cap - 300, 0)),
            (RecordType::Update, rng.bytes_without(200, 0)),
        ];
        batch = append_batch(&store, &payloads);
        assert_eq!(segment_paths(dir.path()).len(), segments + 1);
    }
    cut_inside_batch(dir.path(), &before, &batch, SyncMode::Always, 9);
}

#[test]
fn batches_round_trip_and_interleave_with_single_appends() {
    let dir = tempdir();
    let mut rng = Rng::new(0xba7f);
    let mut all = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        for round in 0..30 {
            let n = rng.below(6) as usize;
            let payloads: Vec<_> = (0..n)
                .map(|_| (rng.record_type(), rng.payload(2500)))
                .collect();
            if n == 0 {
                let next = store.writer().next_seq().unwrap();
                let r = store.writer().append_batch(std::iter::empty()).unwrap();
                assert!(
                    r.is_empty(),
                    "round {round}: empty batch gives an empty range"
                );
                assert_eq!(*r.start(), next);
            } else {
                all.extend(append_batch(&store, &payloads));
            }
            let payload = rng.payload(500);
            let seq = store
                .writer()
                .append_with_timestamp(RecordType::Noop, round, &payload)
                .unwrap();
            all.push(rec(seq, RecordType::Noop, round, &payload));
        }
        assert_log(&store.reader(), &all, "batches, before reopen");
    }
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &all, "batches, after reopen");
}
