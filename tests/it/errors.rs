//! Refused inputs: typed errors, nothing written, no sequence number used.

use softadastra_wal::format::record_size;
use softadastra_wal::{Error, RecordType, SyncMode, WalConfig, WalReader, WalStore};

use crate::common::{assert_log, rec, segment_paths, small_config, tempdir};

#[test]
fn record_too_large_writes_nothing_and_uses_no_number() {
    let dir = tempdir();
    let config = small_config(dir.path());
    let max = config.max_payload().unwrap();
    let store = WalStore::open(config.clone()).unwrap();
    let w = store.writer();
    let mut expected = Vec::new();
    let seq = w
        .append_with_timestamp(RecordType::Put, 1, b"before")
        .unwrap();
    expected.push(rec(seq, RecordType::Put, 1, b"before"));
    let files_before: Vec<_> = segment_paths(dir.path());
    let bytes_before: Vec<Vec<u8>> = files_before
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();

    for len in [max + 1, max + 8, max + 9, 2 * max] {
        let err = w
            .append(RecordType::Put, &vec![9u8; len as usize])
            .unwrap_err();
        match err {
            Error::RecordTooLarge { needed, max: cap } => {
                assert!(needed > cap, "{needed} > {cap}");
                assert_eq!(
                    needed,
                    record_size(len),
                    "needed counts the header and padding"
                );
            }
            other => panic!("payload of {len}: {other}"),
        }
        // A batch that does not fit one segment as a whole.
        let half = vec![1u8; (max / 2 + 64) as usize];
        let err = w
            .append_batch([(RecordType::Put, &half[..]), (RecordType::Put, &half[..])])
            .unwrap_err();
        assert!(matches!(err, Error::RecordTooLarge { .. }), "{err}");
        assert_eq!(w.next_seq().unwrap(), 2, "no number used");
    }
    assert_eq!(
        segment_paths(dir.path()),
        files_before,
        "no segment created"
    );
    for (p, before) in files_before.iter().zip(&bytes_before) {
        assert!(
            &std::fs::read(p).unwrap() == before,
            "{} unchanged",
            p.display()
        );
    }
    assert_log(&store.reader(), &expected, "after refused appends");

    // The largest payload fits (in a segment of its own).
    let big = vec![0x5Au8; max as usize];
    let seq = w
        .append_with_timestamp(RecordType::Update, 2, &big)
        .unwrap();
    assert_eq!(seq, 2);
    expected.push(rec(seq, RecordType::Update, 2, &big));
    let seq = w
        .append_with_timestamp(RecordType::Delete, 3, b"after")
        .unwrap();
    assert_eq!(seq, 3);
    expected.push(rec(seq, RecordType::Delete, 3, b"after"));
    drop(w);
    drop(store);
    let store = WalStore::open(config).unwrap();
    assert_log(&store.reader(), &expected, "after reopen");
}

#[test]
fn reserved_custom_codes_are_refused() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let w = store.writer();
    for code in 0..=5u8 {
        let t = RecordType::Custom(code);
        let check = |r: softadastra_wal::Result<u64>, how: &str| match r {
            Err(Error::InvalidRecordType { code: c }) => assert_eq!(c, code, "{how}"),
            other => panic!("Custom({code}) via {how}: {other:?}"),
        };
        check(w.append(t, b"x"), "append");
        check(w.append_with_timestamp(t, 5, b"x"), "append_with_timestamp");
        // One bad record makes the whole batch refused, before anything is written.
        match w.append_batch([(RecordType::Put, &b"ok"[..]), (t, &b"bad"[..])]) {
            Err(Error::InvalidRecordType { code: c }) => assert_eq!(c, code),
            other => panic!("Custom({code}) in a batch: {other:?}"),
        }
    }
    assert_eq!(w.next_seq().unwrap(), 1);
    assert_eq!(store.last_seq(), None);
    // Custom 6..=255 and the named types are accepted and read back as written.
    let mut expected = Vec::new();
    let types = [
        RecordType::Put,
        RecordType::Update,
        RecordType::Delete,
        RecordType::Checkpoint,
        RecordType::Noop,
        RecordType::Custom(6),
        RecordType::Custom(128),
        RecordType::Custom(255),
    ];
    for (i, t) in types.into_iter().enumerate() {
        let seq = w.append_with_timestamp(t, i as u64, &[i as u8]).unwrap();
        assert_eq!(seq, i as u64 + 1);
        expected.push(rec(seq, t, i as u64, &[i as u8]));
    }
    assert_log(&store.reader(), &expected, "accepted types");
    drop(w);
    drop(store);
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        &expected,
        "accepted types, reopened",
    );
}

#[test]
fn invalid_configurations_are_refused() {
    let base = tempdir();
    let bad: Vec<(&str, WalConfig)> = vec![
        ("segment size 0", WalConfig::new("d").segment_size(0)),
        ("segment size 4096", WalConfig::new("d").segment_size(4096)),
        (
            "segment size not a multiple of 4096",
            WalConfig::new("d").segment_size(12_288 + 8),
        ),
        ("segment size 8193", WalConfig::new("d").segment_size(8193)),
        (
            "segment size above the maximum",
            WalConfig::new("d").segment_size(32 << 30),
        ),
        (
            "segment size u64::MAX",
            WalConfig::new("d").segment_size(u64::MAX),
        ),
        ("index interval 0", WalConfig::new("d").index_interval(0)),
        ("index interval 63", WalConfig::new("d").index_interval(63)),
        (
            "index interval above the segment size",
            WalConfig::new("d")
                .segment_size(16 << 10)
                .index_interval((16 << 10) + 8),
        ),
        (
            "index interval u64::MAX",
            WalConfig::new("d").index_interval(u64::MAX),
        ),
    ];
    for (i, (what, config)) in bad.into_iter().enumerate() {
        let dir = base.path().join(format!("log{i}"));
        let config = WalConfig::new(&dir)
            .segment_size(config.get_segment_size())
            .index_interval(config.get_index_interval())
            .sync_mode(SyncMode::Manual);
        match WalStore::open(config.clone()) {
            Err(Error::InvalidConfig { reason }) => assert!(!reason.is_empty(), "{what}"),
            Err(other) => panic!("{what}: {other}"),
            Ok(_) => panic!("{what}: accepted"),
        }
        assert!(
            matches!(config.max_payload(), Err(Error::InvalidConfig { .. })),
            "{what}: max_payload"
        );
        assert!(
            !dir.exists(),
            "{what}: nothing is created for a refused configuration"
        );
    }
    // The edges of the allowed ranges are accepted.
    for (seg, interval) in [
        (WalConfig::MIN_SEGMENT_SIZE, WalConfig::MIN_INDEX_INTERVAL),
        (WalConfig::MIN_SEGMENT_SIZE, WalConfig::MIN_SEGMENT_SIZE),
        (12_288, 100),
    ] {
        let dir = base.path().join(format!("ok-{seg}-{interval}"));
        let config = WalConfig::new(&dir)
            .segment_size(seg)
            .index_interval(interval);
        let store = WalStore::open(config.clone()).unwrap();
        let max = config.max_payload().unwrap();
        let w = store.writer();
        assert_eq!(
            w.append(RecordType::Put, &vec![1u8; max as usize]).unwrap(),
            1
        );
        assert_eq!(w.append(RecordType::Put, b"").unwrap(), 2);
        assert!(
            w.append(RecordType::Put, &vec![1u8; max as usize + 1])
                .is_err()
        );
        assert_eq!(store.reader().iter().count(), 2);
    }
}

#[test]
fn empty_batch_returns_an_empty_range_and_writes_nothing() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let w = store.writer();
    let r = w.append_batch(std::iter::empty()).unwrap();
    assert!(r.is_empty());
    assert_eq!(*r.start(), 1);
    assert_eq!(store.last_seq(), None);
    w.append(RecordType::Put, b"one").unwrap();
    let seg = segment_paths(dir.path()).pop().unwrap();
    let before = std::fs::read(&seg).unwrap();
    let r = w.append_batch(Vec::<(RecordType, &[u8])>::new()).unwrap();
    assert!(r.is_empty());
    assert_eq!(*r.start(), 2);
    assert_eq!(r.count(), 0);
    assert!(
        std::fs::read(&seg).unwrap() == before,
        "an empty batch writes nothing"
    );
    assert_eq!(w.append(RecordType::Put, b"two").unwrap(), 2);
    assert_eq!(store.last_seq(), Some(2));
}

#[test]
fn reader_of_a_missing_directory_is_an_io_error() {
    let base = tempdir();
    let missing = base.path().join("does-not-exist");
    match WalReader::open(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened a missing directory"),
    }
    assert!(!missing.exists(), "a reader never creates the directory");
    // A plain file is not a log directory either.
    let file = base.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(WalReader::open(&file), Err(Error::Io { .. })));
    // An existing empty directory is an empty log.
    let empty = base.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = WalReader::open(&empty).unwrap();
    assert_eq!(r.first_seq(), None);
    assert_eq!(r.iter().count(), 0);
    assert!(r.get(1).unwrap().is_none());
}

#[test]
fn a_file_that_is_not_a_segment_is_refused_at_open() {
    for (what, bytes) in [
        ("empty segment file", Vec::new()),
        ("short segment file", vec![0u8; 40]),
        ("zeroed segment file", vec![0u8; 16 << 10]),
        ("text", b"hello, this is not a segment".repeat(600)),
    ] {
        let dir = tempdir();
        {
            let store = WalStore::open(small_config(dir.path())).unwrap();
            store.writer().append(RecordType::Put, b"x").unwrap();
        }
        std::fs::write(dir.path().join(crate::common::segment_name(2)), &bytes).unwrap();
        let err = WalStore::open(small_config(dir.path()))
            .map(|_| ())
            .unwrap_err();
        assert!(err.is_corruption(), "{what}: {err}");
        let err = WalReader::open(dir.path()).map(|_| ()).unwrap_err();
        assert!(err.is_corruption(), "{what}: {err}");
    }
}

#[test]
fn a_missing_segment_in_the_middle_is_refused() {
    let dir = tempdir();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        while segment_paths(dir.path()).len() < 4 {
            w.append(RecordType::Put, &[3u8; 3000]).unwrap();
        }
    }
    std::fs::remove_file(dir.path().join(crate::common::segment_name(2))).unwrap();
    let err = WalStore::open(small_config(dir.path()))
        .map(|_| ())
        .unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let err = WalReader::open(dir.path()).map(|_| ()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn a_segment_of_a_newer_format_version_is_reported_as_such() {
    let dir = tempdir();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        while segment_paths(dir.path()).len() < 3 {
            w.append(RecordType::Put, &[1u8; 2000]).unwrap();
        }
    }
    let seg = segment_paths(dir.path()).pop().unwrap();
    crate::common::patch_file(&seg, |b| {
        assert_eq!(
            crate::common::crc32(&b[..60]).to_le_bytes(),
            b[60..64],
            "the test's CRC matches the format's"
        );
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crate::common::crc32(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
    });
    for (how, result) in [
        (
            "WalStore::open",
            WalStore::open(small_config(dir.path())).map(|_| ()),
        ),
        ("WalReader::open", WalReader::open(dir.path()).map(|_| ())),
    ] {
        match result {
            Err(Error::UnsupportedVersion { file, version }) => {
                assert_eq!(version, 2, "{how}");
                assert_eq!(file, seg, "{how}");
            }
            Err(other) => panic!("{how}: {other:?}"),
            Ok(()) => panic!("{how}: opened a segment of an unknown version"),
        }
    }
}

#[test]
fn a_truncated_segment_file_is_refused() {
    let dir = tempdir();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        while segment_paths(dir.path()).len() < 3 {
            w.append(RecordType::Put, &[1u8; 2000]).unwrap();
        }
    }
    for (index, keep) in [(0usize, 8192usize), (2, 8192), (2, 64), (1, 16383)] {
        let copy = crate::common::copy_dir(dir.path());
        let seg = segment_paths(copy.path())[index].clone();
        crate::common::patch_file(&seg, |b| b.truncate(keep));
        let what = format!("segment #{index} cut to {keep} bytes");
        let err = WalStore::open(small_config(copy.path()))
            .map(|_| ())
            .unwrap_err();
        assert!(err.is_corruption(), "{what}: {err}");
        let err = WalReader::open(copy.path()).map(|_| ()).unwrap_err();
        assert!(err.is_corruption(), "{what}: {err}");
    }
}

#[test]
fn unrelated_files_and_leftover_temporary_segments() {
    let dir = tempdir();
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        for i in 0..12u64 {
            let seq = w
                .append_with_timestamp(RecordType::Put, i, &[i as u8; 1800])
                .unwrap();
            expected.push(rec(seq, RecordType::Put, i, &[i as u8; 1800]));
        }
    }
    let next_id = segment_paths(dir.path()).len() as u64 + 1;
    // A crash while creating the next segment leaves its temporary file; other files are not ours.
    let tmp = dir.path().join(softadastra_wal::names::temp(next_id));
    std::fs::write(&tmp, vec![0xA5u8; 5000]).unwrap();
    for other in [
        "notes.txt",
        "7.seg",
        "0000000000000000000x.seg",
        "00000000000000000001.segx",
    ] {
        std::fs::write(dir.path().join(other), b"not a segment").unwrap();
    }
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        &expected,
        "dir reader ignores them",
    );
    assert!(tmp.exists(), "a read-only opener removes nothing");
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_log(&store.reader(), &expected, "store ignores them");
        assert!(!tmp.exists(), "the leftover temporary segment is removed");
        assert!(
            dir.path().join("notes.txt").exists(),
            "unrelated files are left alone"
        );
        let w = store.writer();
        while segment_paths(dir.path()).len() < next_id as usize + 1 {
            let seq = w
                .append_with_timestamp(RecordType::Put, 0, &[7u8; 3000])
                .unwrap();
            expected.push(rec(seq, RecordType::Put, 0, &[7u8; 3000]));
        }
    }
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(
        &store.reader(),
        &expected,
        "after rotating past the leftover's id",
    );
}

/// Segments whose headers do not chain (a break in the sequence numbers between segments, or a
/// header whose id disagrees with its file name) are refused, even with valid header checksums.
#[test]
fn segments_that_do_not_chain_are_refused() {
    let dir = tempdir();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        while segment_paths(dir.path()).len() < 4 {
            w.append(RecordType::Put, &[1u8; 2000]).unwrap();
        }
    }
    // (segment index, header offset of the u64 field, new value)
    let base = crate::common::seg_info(&segment_paths(dir.path())[2]).base_seq;
    for (index, field, value, what) in [
        (2usize, 40usize, base + 1, "base sequence one too high"),
        (2, 40, base - 1, "base sequence one too low"),
        (3, 40, 1, "last segment restarting at 1"),
        (1, 32, 7, "segment id differs from the file name"),
    ] {
        let copy = crate::common::copy_dir(dir.path());
        let seg = segment_paths(copy.path())[index].clone();
        crate::common::patch_file(&seg, |b| {
            b[field..field + 8].copy_from_slice(&value.to_le_bytes());
            let crc = crate::common::crc32(&b[..60]);
            b[60..64].copy_from_slice(&crc.to_le_bytes());
        });
        let err = WalStore::open(small_config(copy.path()))
            .map(|_| ())
            .unwrap_err();
        assert!(err.is_corruption(), "{what}: {err}");
        let err = WalReader::open(copy.path()).map(|_| ()).unwrap_err();
        assert!(err.is_corruption(), "{what}: {err}");
    }
}
