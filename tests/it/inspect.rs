//! `softadastra_wal::inspect` against logs built by the library, sound and damaged: what it
//! reports must be what recovery and the readers do.

use std::path::Path;

use softadastra_wal::format::{self, Binding, IndexEntry};
use softadastra_wal::inspect::{Entry, Log, Severity, Tail, Verdict};
use softadastra_wal::{Error, RecordType, WalReader, WalStore};

use crate::common::{
    Rng, copy_dir, file_names, patch_file, record_extents, seg_info, segment_paths, small_config,
    tempdir,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A closed log of single appends and batches with payloads of 0 to 600 bytes, over several
/// 16 KiB segments, the newest one partly filled.
fn reference_log(dir: &Path, seed: u64) -> softadastra_wal::Result<u64> {
    let store = WalStore::open(small_config(dir))?;
    let writer = store.writer();
    let mut rng = Rng::new(seed);
    let mut last = 0;
    while last < 320 {
        if rng.below(4) == 0 {
            let payloads: Vec<Vec<u8>> = (0..rng.range(2, 5)).map(|_| rng.payload(600)).collect();
            last = *writer
                .append_batch(payloads.iter().map(|p| (RecordType::Update, &p[..])))?
                .end();
        } else {
            last = writer.append(rng.record_type(), &rng.payload(600))?;
        }
    }
    Ok(last)
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The records recovery counts as the log, as `(seq, payload)`.
fn in_log(log: &Log) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let mut v = Vec::new();
    for entry in log.entries() {
        if let Entry::Record(r) = entry?
            && r.in_log
        {
            v.push((r.seq, r.payload));
        }
    }
    Ok(v)
}

#[test]
fn a_sound_log_reads_like_the_reader_reads_it() -> TestResult {
    let dir = tempdir();
    let last = reference_log(dir.path(), 1)?;
    let log = Log::open(dir.path())?;
    let reader = WalReader::open(dir.path())?;
    let want: Vec<(u64, Vec<u8>)> = reader
        .iter()
        .map(|r| r.map(|r| (r.seq(), r.payload().to_vec())))
        .collect::<Result<_, _>>()?;
    assert_eq!(in_log(&log)?, want);
    assert_eq!((log.first_seq(), log.last_seq()), (Some(1), Some(last)));
    for seq in [1, 2, last / 2, last - 1, last] {
        let got = log.get(seq)?.ok_or("get found nothing")?;
        let r = reader.get(seq)?.ok_or("the reader found nothing")?;
        assert_eq!(
            (
                got.seq,
                got.record_type,
                got.timestamp,
                got.payload.as_slice()
            ),
            (r.seq(), r.record_type(), r.timestamp(), r.payload())
        );
    }
    assert_eq!(log.get(last + 1)?, None);

    let report = log.verify()?;
    assert_eq!(report.verdict(), Verdict::Clean, "{:#?}", report.findings);
    assert!(report.passes(true), "{:#?}", report.findings);
    assert_eq!((report.records, report.last_seq), (last, Some(last)));
    assert!(report.index_entries > 0);
    let segments = log.segments();
    assert_eq!(segments.len(), segment_paths(dir.path()).len());
    assert_eq!(
        segments.iter().map(|s| s.records).sum::<u64>(),
        last,
        "{segments:#?}"
    );
    Ok(())
}

/// An unfinished batch at the end of the newest segment is a torn tail whose records are shown
/// outside the log; recovery cuts exactly those bytes.
#[test]
fn an_unfinished_batch_is_a_torn_tail() -> TestResult {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path()))?;
    store.writer().append(RecordType::Put, b"before")?;
    store.writer().append_batch([
        (RecordType::Put, &b"one"[..]),
        (RecordType::Put, &b"two"[..]),
        (RecordType::Put, &b"three"[..]),
    ])?;
    drop(store);
    // Zero the batch's last record: its first two are left without it.
    let path = segment_paths(dir.path()).pop().ok_or("no segment")?;
    let third = record_extents(&path)
        .into_iter()
        .find(|e| e.seq == 4)
        .ok_or("record 4 not found")?;
    patch_file(&path, |b| {
        let o = usize::try_from(third.offset).unwrap_or(0);
        b[o..o + 40].fill(0);
        b[o + 8] = 0x7f; // not all zero: a torn header
    });

    let report = Log::open(dir.path())?.verify()?;
    assert_eq!(
        report.verdict(),
        Verdict::TornTail,
        "{:#?}",
        report.findings
    );
    assert!(report.passes(false) && !report.passes(true));
    assert_eq!(report.records, 1);
    assert_eq!(report.records_outside, 2);
    let torn = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::TornTail)
        .ok_or("no torn-tail finding")?;
    assert!(
        torn.what.contains("records 2..=3 are an unfinished batch"),
        "{}",
        torn.what
    );

    let copy = copy_dir(dir.path());
    let store = WalStore::open(small_config(copy.path()))?;
    let cut = store.torn_tail().ok_or("recovery cut nothing")?;
    assert_eq!(
        report.tail,
        Tail::Torn {
            file: path.clone(),
            offset: cut.offset,
            len: cut.len,
            next_seq: cut.next_seq,
        }
    );
    Ok(())
}

/// The segments of a reference log that are sealed.
fn sealed(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths = segment_paths(dir);
    paths.pop();
    paths
}

#[test]
fn a_damaged_footer_or_index_is_a_warning() -> TestResult {
    let dir = tempdir();
    reference_log(dir.path(), 2)?;
    let paths = sealed(dir.path());
    let footer_at = |p: &Path| {
        let info = seg_info(p);
        usize::try_from(info.size - 64).unwrap_or(0)
    };
    // Segment 1: a flipped bit in the footer. Segment 2: one in its first index entry.
    patch_file(&paths[0], |b| b[footer_at(&paths[0]) + 20] ^= 1);
    let info = seg_info(&paths[1]);
    let layout = format::Layout::new(info.size, info.index_interval)?;
    patch_file(&paths[1], |b| b[layout.index_offset() as usize + 3] ^= 1);

    let report = Log::open(dir.path())?.verify()?;
    assert_eq!(report.verdict(), Verdict::Clean, "{:#?}", report.findings);
    assert!(!report.passes(true));
    let warnings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| (name(&f.file), f.what.clone()))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0]
            .1
            .starts_with("invalid seal footer (seal footer checksum mismatch)"),
        "{warnings:#?}"
    );
    assert_eq!(warnings[1].0, name(&paths[1]));
    assert!(
        warnings[1]
            .1
            .starts_with("persisted index unusable (persisted index checksum mismatch)")
    );
    // The readers agree that nothing is lost.
    assert_eq!(
        WalReader::open(dir.path())?.iter().count() as u64,
        report.records
    );
    Ok(())
}

/// An index entry whose checksums are right but which points at the wrong record (what a bug in
/// a writer would leave) is found by checking it against the records.
#[test]
fn an_index_entry_pointing_at_another_record_is_found() -> TestResult {
    let dir = tempdir();
    reference_log(dir.path(), 3)?;
    let path = sealed(dir.path()).remove(0);
    let info = seg_info(&path);
    let layout = format::Layout::new(info.size, info.index_interval)?;
    let records = record_extents(&path);
    let binding = Binding {
        log_id: info.log_id,
        segment_id: info.segment_id,
    };
    let entry = |seq: u64, offset: u64| IndexEntry {
        seq: seq.into(),
        offset: offset.into(),
    };
    // A valid index of two entries: the first record, and the second entry naming record 3
    // at the offset of record 2.
    let index = [
        entry(records[0].seq, records[0].offset),
        entry(records[2].seq, records[1].offset),
    ];
    let last = records.last().ok_or("no records")?;
    let footer =
        format::encode_footer(binding, records[0].seq, last.seq, last.padded_end(), &index);
    patch_file(&path, |b| {
        let io = layout.index_offset() as usize;
        for (i, e) in index.iter().enumerate() {
            b[io + 16 * i..io + 16 * i + 8].copy_from_slice(&e.seq.get().to_le_bytes());
            b[io + 16 * i + 8..io + 16 * i + 16].copy_from_slice(&e.offset.get().to_le_bytes());
        }
        let fo = layout.footer_offset as usize;
        b[fo..fo + 64].copy_from_slice(zerocopy_bytes(&footer).as_slice());
    });

    let report = Log::open(dir.path())?.verify()?;
    let found: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| f.what.as_str())
        .collect();
    let want = format!(
        "index entry (record {} at offset {}) points at record {}; readers fall back to walking \
         the segment from its first record",
        records[2].seq, records[1].offset, records[1].seq
    );
    assert_eq!(found, [want.as_str()], "{:#?}", report.findings);
    assert_eq!(report.index_entries, 2 + (report.index_entries - 2));
    Ok(())
}

/// The 64 bytes of a footer, serialized from its documented layout.
fn zerocopy_bytes(f: &format::SealFooter) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&f.magic);
    for v in [f.first_seq, f.last_seq, f.data_end, f.index_count] {
        b.extend_from_slice(&v.get().to_le_bytes());
    }
    b.extend_from_slice(&f.index_crc.get().to_le_bytes());
    b.extend_from_slice(&f.reserved);
    b.extend_from_slice(&f.crc.get().to_le_bytes());
    b
}

#[test]
fn a_segment_file_is_described_field_by_field_even_when_rejected() -> TestResult {
    let dir = tempdir();
    reference_log(dir.path(), 4)?;
    let path = segment_paths(dir.path()).remove(1);
    patch_file(&path, |b| b[0] = b'X');
    let d = softadastra_wal::inspect::segment_detail(&path)?;
    assert_eq!(d.header, Err("not a segment file (bad magic)".to_string()));
    assert_eq!(d.name_id, Some(2));
    let magic = &d.header_fields[0];
    assert_eq!((magic.offset, magic.len, magic.name), (0, 8, "magic"));
    assert_eq!(magic.value, "XAWALSEG (expected SAWALSEG)");
    let base = d
        .header_fields
        .iter()
        .find(|f| f.name == "base_seq")
        .ok_or("no base_seq field")?;
    assert_eq!(
        (base.offset, base.value.clone()),
        (40, seg_info_base(&path).to_string())
    );
    assert!(d.footer_fields.is_empty() && d.footer.is_none());
    Ok(())
}

fn seg_info_base(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .get(40..48)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// What recovery concluded about a directory.
enum Recovered {
    Refused(Error),
    Opened {
        torn: Option<(String, u64, u64, u64)>,
        /// Every record the reader returns, or the error that ended the iteration.
        records: Result<Vec<(u64, Vec<u8>)>, Error>,
    },
}

fn recover(dir: &Path) -> Recovered {
    let copy = copy_dir(dir);
    let store = match WalStore::open(small_config(copy.path())) {
        Ok(store) => store,
        Err(e) => return Recovered::Refused(e),
    };
    let torn = store
        .torn_tail()
        .map(|t| (name(&t.file), t.offset, t.len, t.next_seq));
    let records = store
        .reader()
        .iter()
        .map(|r| r.map(|r| (r.seq(), r.payload().to_vec())))
        .collect();
    Recovered::Opened { torn, records }
}

/// Damages a copy of the reference log in one of several ways.
fn damage(dir: &Path, rng: &mut Rng) -> String {
    let mut paths = segment_paths(dir);
    let i = rng.below(paths.len() as u64) as usize;
    let path = paths.swap_remove(i);
    let len = std::fs::metadata(&path).map_or(0, |m| m.len());
    match rng.below(8) {
        7 => {
            // Spares: an unused one, the newest segment under its spare name (a lost rename),
            // one without a header but with data, or one with a header after a gap.
            let newest = segment_paths(dir).pop().unwrap_or(path);
            let info = seg_info(&newest);
            let spare = |id: u64| dir.join(softadastra_wal::names::spare(id));
            let blank = vec![0u8; usize::try_from(info.size).unwrap_or(0)];
            let done = match rng.below(4) {
                0 => std::fs::write(spare(info.segment_id + 1), &blank),
                1 => std::fs::rename(&newest, spare(info.segment_id)),
                2 => {
                    let mut data = blank.clone();
                    let at = 64 + rng.below(info.size - 64) as usize;
                    data[at] = 0x5a;
                    std::fs::write(spare(info.segment_id + 1), data)
                }
                _ => std::fs::copy(&newest, spare(info.segment_id + 2)).map(drop),
            };
            format!("spare games with {} ({done:?})", name(&newest))
        }
        0 | 1 => {
            let flips = rng.range(1, 3);
            let mut at = Vec::new();
            patch_file(&path, |b| {
                for _ in 0..flips {
                    let o = rng.below(len) as usize;
                    b[o] ^= 1 << rng.below(8);
                    at.push(o);
                }
            });
            format!("flipped bits at {at:?} of {}", name(&path))
        }
        2 => {
            let sector = rng.below(len / 512) * 512;
            patch_file(&path, |b| b[sector as usize..sector as usize + 512].fill(0));
            format!("zeroed the sector at {sector} of {}", name(&path))
        }
        3 => {
            // Garbage after the last record of the newest segment: an interrupted write.
            let newest = segment_paths(dir).pop().unwrap_or(path);
            let end = record_extents(&newest)
                .last()
                .map_or(64, |e| e.padded_end());
            let n = rng.range(1, 300);
            let junk = rng.bytes(n as usize);
            patch_file(&newest, |b| {
                b[end as usize..end as usize + junk.len()].copy_from_slice(&junk)
            });
            format!("{n} junk bytes at {end} of {}", name(&newest))
        }
        4 => {
            let to = rng.below(len);
            let file = std::fs::OpenOptions::new().write(true).open(&path);
            let _ = file.and_then(|f| f.set_len(to));
            format!("truncated {} to {to}", name(&path))
        }
        5 => {
            let _ = std::fs::remove_file(&path);
            format!("deleted {}", name(&path))
        }
        _ => {
            // A flipped bit in one of the last records of the newest segment.
            let newest = segment_paths(dir).pop().unwrap_or(path);
            let records = record_extents(&newest);
            let Some(r) = records.iter().rev().nth(rng.below(3) as usize) else {
                return "nothing".into();
            };
            let o = r.offset + rng.below(r.end() - r.offset);
            patch_file(&newest, |b| b[o as usize] ^= 1);
            format!(
                "flipped a bit at {o} (record {}) of {}",
                r.seq,
                name(&newest)
            )
        }
    }
}

/// Whatever the damage, verify agrees with recovery and the readers: where recovery refuses,
/// verify reports corruption at the same place; where it cuts a torn tail, verify announces the
/// same cut; where a read fails later, verify reports corruption; and where neither finds
/// anything, verify's log is the reader's log, record for record. Inspection changes nothing.
#[test]
fn verify_agrees_with_recovery_whatever_the_damage() -> TestResult {
    let reference = tempdir();
    reference_log(reference.path(), 5)?;
    let soak: u64 = std::env::var("SOFTADASTRA_WAL_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng::new(0x1D5E_C7ED);
    for case in 0..150 * soak {
        let dir = copy_dir(reference.path());
        let what = damage(dir.path(), &mut rng);
        let ctx = format!("case {case}: {what}");
        let before: Vec<(String, Vec<u8>)> = file_names(dir.path())
            .into_iter()
            .map(|n| {
                let bytes = std::fs::read(dir.path().join(&n)).unwrap_or_default();
                (n, bytes)
            })
            .collect();
        let log = Log::open(dir.path())?;
        let report = log.verify()?;
        let corruption = |file: &str, offset: u64| {
            report.findings.iter().any(|f| {
                f.severity == Severity::Corruption
                    && name(&f.file) == file
                    && f.offset == Some(offset)
            })
        };
        match recover(dir.path()) {
            Recovered::Refused(Error::Corruption { file, offset, .. }) => assert!(
                corruption(&name(&file), offset),
                "{ctx}: recovery refused at {}:{offset}, verify said {:#?}",
                name(&file),
                report.findings
            ),
            Recovered::Refused(Error::UnsupportedVersion { file, .. }) => {
                assert!(corruption(&name(&file), 0), "{ctx}: {:#?}", report.findings);
            }
            Recovered::Refused(e) => return Err(format!("{ctx}: recovery failed: {e}").into()),
            Recovered::Opened { torn, records } => {
                let verify_torn = match &report.tail {
                    Tail::Torn {
                        file,
                        offset,
                        len,
                        next_seq,
                    } => Some((name(file), *offset, *len, *next_seq)),
                    _ => None,
                };
                assert_eq!(verify_torn, torn, "{ctx}: {:#?}", report.findings);
                match records {
                    Err(e) => assert_eq!(
                        report.verdict(),
                        Verdict::Corruption,
                        "{ctx}: a read failed ({e}) but verify said {:#?}",
                        report.findings
                    ),
                    Ok(records) => {
                        assert_ne!(
                            report.verdict(),
                            Verdict::Corruption,
                            "{ctx}: every record reads, but verify said {:#?}",
                            report.findings
                        );
                        assert_eq!(in_log(&log)?, records, "{ctx}");
                    }
                }
            }
        }
        // Skipping segments outside a range loses nothing inside it.
        // Half the time a range just past the end of the log, where torn tails and records
        // past damage are.
        let (from, to) = if rng.below(2) == 0 {
            let from = report.last_seq.unwrap_or(1) + rng.below(3);
            (from, from + rng.below(50))
        } else {
            let (a, b) = (rng.range(1, 330), rng.range(1, 330));
            (a.min(b), a.max(b))
        };
        let within = |entries: softadastra_wal::inspect::Entries<'_>| -> Result<Vec<_>, Error> {
            let mut v = Vec::new();
            for e in entries {
                if let Entry::Record(r) = e?
                    && (from..=to).contains(&r.seq)
                {
                    v.push((r.seq, r.segment, r.offset, r.in_log));
                }
            }
            Ok(v)
        };
        assert_eq!(
            within(log.entries_between(from, to))?,
            within(log.entries())?,
            "{ctx}: records {from}..={to}"
        );
        for (n, bytes) in before {
            let now = std::fs::read(dir.path().join(&n)).unwrap_or_default();
            assert!(now == bytes, "{ctx}: inspection changed {n}");
        }
    }
    Ok(())
}
