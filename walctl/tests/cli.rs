//! `walctl info`, `dump`, `get`, `verify` and `salvage`, run as the real binary against logs
//! built here through the library, sound and damaged.

mod common;

use std::ffi::OsStr;

use common::*;
use softadastra_wal::{Error, WalReader, WalStore};

/// 130 records: segments 1 (1..=55) and 2 (56..=110) sealed, segment 3 (111..=130) active.
const N: u64 = 130;

fn log() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    build_log(dir.path(), N)?;
    Ok(dir)
}

#[test]
fn info_lists_every_segment() -> TestResult {
    let dir = log()?;
    let run = walctl(&[&"info", &dir.path()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has_line("format version 1"), "{}", run.stdout);
    assert!(run.has_line("writer lock free"), "{}", run.stdout);
    assert!(
        run.has_line("records 1..=130 (130 records)"),
        "{}",
        run.stdout
    );
    assert!(run.has_line("segments 3"), "{}", run.stdout);
    assert!(
        run.has_line("FILE FIRST LAST RECORDS USED/CAPACITY STATE HEADER"),
        "{}",
        run.stdout
    );
    for row in [
        "00000000000000000001.seg 1 55 55 7480/7536 sealed ok",
        "00000000000000000002.seg 56 110 55 7480/7536 sealed ok",
        "00000000000000000003.seg 111 130 20 2720/7536 active ok",
    ] {
        assert!(run.has_line(row), "missing {row:?} in\n{}", run.stdout);
    }
    Ok(())
}

#[test]
fn info_of_a_segment_file_names_every_field() -> TestResult {
    let dir = log()?;
    let run = walctl(&[&"info", &segment_path(dir.path(), 2)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for line in [
        "header ok",
        "OFFSET SIZE FIELD VALUE",
        "0 8 magic SAWALSEG",
        "8 4 version 1",
        "16 8 segment_size 8192",
        "32 8 segment_id 2",
        "40 8 base_seq 56",
        "48 8 index_interval 256",
        "footer valid (sealed)",
        "8128 8 magic SAWALEND",
        "8136 8 first_seq 56",
        "8144 8 last_seq 110",
        "8152 8 data_end 7544",
        "records 56..=110 (55 records)",
        "state sealed",
    ] {
        assert!(run.has_line(line), "missing {line:?} in\n{}", run.stdout);
    }
    Ok(())
}

#[test]
fn info_reports_the_writer_holding_the_lock() -> TestResult {
    let dir = log()?;
    let store = WalStore::open(config(dir.path()))?;
    let run = walctl(&[&"info", &dir.path()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let want = if cfg!(target_os = "linux") {
        format!("writer lock held by process {}", std::process::id())
    } else {
        "writer lock unknown".to_string()
    };
    assert!(run.has_line(&want), "missing {want:?} in\n{}", run.stdout);
    // Looking did not take the lock: the application can still append.
    store
        .writer()
        .append(softadastra_wal::RecordType::Noop, b"")?;
    Ok(())
}

#[test]
fn verify_passes_a_sound_log() -> TestResult {
    let dir = log()?;
    for strict in [false, true] {
        let path = dir.path();
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"verify", &path];
        if strict {
            args.push(&"--strict");
        }
        let run = walctl(&args);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(
            run.has_line("3 segments, 130 records (1..=130), 58 index entries"),
            "{}",
            run.stdout
        );
        assert!(run.has_line("tail: clean"), "{}", run.stdout);
        assert_eq!(run.lines().last(), Some(&"result: clean"), "{}", run.stdout);
    }
    Ok(())
}

#[test]
fn dump_prints_every_record_in_order() -> TestResult {
    let dir = log()?;
    let run = walctl(&[&"dump", &dir.path(), &"--payload", &"utf8"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(seqs(&run.stdout), (1..=N).collect::<Vec<_>>());
    let lines = run.lines();
    assert_eq!(
        lines[0],
        format!(
            "seq=1 segment=1 offset=64 type=Put time=2023-11-14T22:13:20.000Z len=100 payload=\"record 00001{}\"...(+36 bytes)",
            ".".repeat(52)
        )
    );
    assert!(
        lines[9].starts_with("seq=10 segment=1 offset=1288 type=Checkpoint "),
        "{}",
        lines[9]
    );
    assert!(
        lines[55].starts_with("seq=56 segment=2 offset=64 "),
        "{}",
        lines[55]
    );
    assert_eq!(lines.last(), Some(&"130 records; 0 findings"));
    Ok(())
}

#[test]
fn dump_filters_by_range_and_type() -> TestResult {
    let dir = log()?;
    let d = &dir.path();
    let run = walctl(&[&"dump", &d, &"--from", &"50", &"--to", &"60"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(seqs(&run.stdout), (50..=60).collect::<Vec<_>>());

    let run = walctl(&[&"dump", &d, &"--type", &"checkpoint", &"--payload", &"none"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        seqs(&run.stdout),
        (1..=13).map(|i| i * 10).collect::<Vec<_>>()
    );
    assert!(run.lines()[0].ends_with("type=Checkpoint time=2023-11-14T22:13:20.009Z"));

    let run = walctl(&[&"dump", &d, &"--type", &"4", &"--from", &"100"]);
    assert_eq!(seqs(&run.stdout), [100, 110, 120, 130]);
    Ok(())
}

#[test]
fn dump_json_is_one_object_per_line() -> TestResult {
    let dir = log()?;
    let run = walctl(&[
        &"dump",
        &dir.path(),
        &"--format",
        &"json",
        &"--payload",
        &"utf8",
        &"--from",
        &"55",
        &"--to",
        &"56",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let p55 = String::from_utf8(payload(55))?;
    assert_eq!(
        lines[0],
        format!(
            "{{\"kind\":\"record\",\"seq\":55,\"segment\":1,\"offset\":7408,\"type\":\"Put\",\
             \"type_code\":1,\"timestamp\":1700000000054,\"flags\":0,\"in_log\":true,\"len\":100,\
             \"payload_utf8\":\"{p55}\"}}"
        )
    );
    assert!(lines[1].starts_with("{\"kind\":\"record\",\"seq\":56,\"segment\":2,\"offset\":64,"));
    assert_eq!(
        lines[2],
        "{\"kind\":\"summary\",\"records\":2,\"outside_log\":0,\"corruption\":0,\"unreadable\":0,\
         \"torn_tail\":0,\"warnings\":0,\"notes\":0}"
    );
    Ok(())
}

#[test]
fn get_prints_one_record_or_its_raw_payload() -> TestResult {
    let dir = log()?;
    let d = &dir.path();
    let run = walctl(&[&"get", &d, &"57"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for line in [
        "seq 57",
        "segment 2",
        "offset 200",
        "type Put (code 1)",
        "timestamp 1700000000056 (2023-11-14T22:13:20.056Z)",
        "length 100 bytes",
        "payload (UTF-8):",
    ] {
        assert!(run.has_line(line), "missing {line:?} in\n{}", run.stdout);
    }
    let run = walctl(&[&"get", &d, &"120", &"--raw"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.raw_stdout, payload(120));

    let run = walctl(&[&"get", &d, &"131"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "walctl: record 131 is not in the log (it holds 1..=130)\n"
    );
    assert!(run.stdout.is_empty());
    Ok(())
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_corruption_where_it_is() -> TestResult {
    let dir = log()?;
    let (path, offset) = damage_record(dir.path(), 20)?;
    let before = snapshot(dir.path())?;
    let d = &dir.path();

    let run = walctl(&[&"verify", &d]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let want = format!(
        "!! corruption 00000000000000000001.seg offset={offset} len=136 seq=20: record 20: \
         checksum mismatch"
    );
    assert!(
        run.lines().contains(&want.as_str()),
        "missing {want:?} in\n{}",
        run.stdout
    );
    assert!(run.has_line("129 records (1..=130)"), "{}", run.stdout);
    assert!(run.has_line(&format!(
        "result: corruption (first at offset {offset} of 00000000000000000001.seg)"
    )));

    let run = walctl(&[&"dump", &d, &"--from", &"19", &"--to", &"21"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines = run.lines();
    assert!(lines[0].starts_with("seq=19 "), "{}", run.stdout);
    assert!(lines[1].starts_with(&format!(
        "!! corruption 00000000000000000001.seg offset={offset} "
    )));
    assert!(lines[2].starts_with("seq=21 "), "{}", run.stdout);
    assert_eq!(lines[3], "2 records; 1 finding (1 corruption)");

    let run = walctl(&[&"get", &d, &"20"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with("walctl: record 20 is damaged: corruption in "),
        "{run:?}"
    );
    assert!(
        run.stderr.ends_with(&format!(
            "at offset {offset} (sequence 20): record checksum mismatch\n"
        )),
        "{run:?}"
    );
    let run = walctl(&[&"get", &d, &"21", &"--raw"]);
    assert_eq!((run.code, run.raw_stdout), (Some(0), payload(21)));

    // The library agrees: the damaged record cannot be read, its neighbours can.
    let reader = WalReader::open(dir.path())?;
    assert!(matches!(reader.get(20), Err(Error::Corruption { offset: o, .. }) if o == offset));
    assert!(reader.get(21)?.is_some());
    assert_eq!(
        snapshot(dir.path())?,
        before,
        "inspection changed {}",
        path.display()
    );
    Ok(())
}

#[test]
fn a_flipped_byte_in_the_active_segment_is_proven_corruption() -> TestResult {
    let dir = log()?;
    let (_, offset) = damage_record(dir.path(), 115)?;
    let run = walctl(&[&"verify", &dir.path()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let next = offset + RECORD_LEN;
    let want = format!(
        "!! corruption 00000000000000000003.seg offset={offset} len={} seq=115: the record here \
         is invalid, but record 116 at offset {next} was written after it had been made durable",
        20 * RECORD_LEN - (115 - 111) * RECORD_LEN
    );
    assert!(
        run.lines().contains(&want.as_str()),
        "missing {want:?} in\n{}",
        run.stdout
    );
    assert!(run.has_line(&format!(
        "tail: corrupt: damaged durable data at offset {offset} of 00000000000000000003.seg"
    )));
    assert!(
        run.has_line("15 valid records outside the log"),
        "{}",
        run.stdout
    );

    // The records after the damage are valid, but recovery would not return them.
    let run = walctl(&[
        &"dump",
        &dir.path(),
        &"--from",
        &"115",
        &"--to",
        &"116",
        &"--payload",
        &"len",
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines = run.lines();
    assert!(
        lines[0].starts_with(&format!(
            "!! corruption 00000000000000000003.seg offset={offset} "
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[1],
        format!(
            "seq=116 segment=3 offset={next} type=Put time=2023-11-14T22:13:20.115Z outside-log len=100"
        )
    );
    assert_eq!(
        lines[2],
        "1 records (1 outside the log); 1 finding (1 corruption)"
    );

    // Recovery refuses the log at the same place.
    match WalStore::open(config(dir.path())) {
        Err(Error::Corruption { offset: o, seq, .. }) => assert_eq!((o, seq), (offset, Some(115))),
        other => panic!("recovery should refuse the log: {other:?}"),
    }
    Ok(())
}

#[test]
fn a_torn_tail_is_recoverable_and_fails_only_strict() -> TestResult {
    let dir = log()?;
    let end = 64 + 20 * RECORD_LEN;
    // Half a record header and some payload bytes after the last record: an interrupted write.
    write_at(&segment_path(dir.path(), 3), end, &[0x5a; 44])?;
    let before = snapshot(dir.path())?;
    let d = &dir.path();

    let run = walctl(&[&"verify", &d]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let want = format!(
        "!! torn tail 00000000000000000003.seg offset={end} len=48 seq=131: torn tail: 48 bytes \
         after the last complete record; recovery cuts them and the log continues at 131"
    );
    assert!(
        run.lines().contains(&want.as_str()),
        "missing {want:?} in\n{}",
        run.stdout
    );
    assert_eq!(run.lines().last(), Some(&"result: torn tail (recoverable)"));
    let run = walctl(&[&"verify", &d, &"--strict"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.lines().last(),
        Some(&"result: torn tail (recoverable); --strict: 1 problems")
    );
    let run = walctl(&[&"dump", &d, &"--from", &"130"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.lines().len(), 3, "{}", run.stdout);
    assert_eq!(
        snapshot(dir.path())?,
        before,
        "inspection changed the files"
    );

    // Recovery cuts exactly what verify announced.
    let store = WalStore::open(config(dir.path()))?;
    let cut = store.torn_tail().ok_or("recovery found no torn tail")?;
    assert_eq!((cut.offset, cut.len, cut.next_seq), (end, 48, 131));
    Ok(())
}

#[test]
fn damage_to_the_last_record_looks_like_a_torn_tail() -> TestResult {
    let dir = log()?;
    let (_, offset) = damage_record(dir.path(), 130)?;
    let run = walctl(&[&"verify", &dir.path()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has_line(&format!("tail: torn: 136 bytes at offset {offset} of 00000000000000000003.seg; recovery cuts them and the log continues at 130")), "{}", run.stdout);
    let run = walctl(&[&"get", &dir.path(), &"130"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "walctl: record 130 is not in the log (it holds 1..=129)\n"
    );
    Ok(())
}

#[test]
fn a_truncated_segment_is_rejected() -> TestResult {
    let dir = log()?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), 2))?;
    file.set_len(5000)?;
    let run = walctl(&[&"verify", &dir.path()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.lines().contains(&"!! corruption 00000000000000000002.seg offset=0: segment file is 5000 bytes but its header says 8192"), "{}", run.stdout);
    let run = walctl(&[&"info", &dir.path()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.has_line("00000000000000000002.seg - - 0 - rejected bad"),
        "{}",
        run.stdout
    );
    // The records of the other segments are still there to read and salvage.
    let run = walctl(&[&"dump", &dir.path(), &"--payload", &"none"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        seqs(&run.stdout),
        (1..=55).chain(111..=130).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn a_missing_middle_segment_is_reported_by_name() -> TestResult {
    let dir = log()?;
    std::fs::remove_file(segment_path(dir.path(), 2))?;
    let run = walctl(&[&"verify", &dir.path()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.lines().contains(&"!! corruption 00000000000000000002.seg offset=0: segment 2 is missing between segments 1 and 3"), "{}", run.stdout);
    assert!(
        run.has_line("2 segments, 75 records (1..=130)"),
        "{}",
        run.stdout
    );
    let run = walctl(&[&"get", &dir.path(), &"60"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr,
        "walctl: record 60 is not in any readable segment (the log spans 1..=130; walctl verify \
         says what is missing)\n"
    );
    Ok(())
}

#[test]
fn a_damaged_header_is_rejected() -> TestResult {
    let dir = log()?;
    flip(&segment_path(dir.path(), 2), 41)?; // base_seq
    let run = walctl(&[&"verify", &dir.path()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.lines().contains(
            &"!! corruption 00000000000000000002.seg offset=0: segment header checksum mismatch"
        ),
        "{}",
        run.stdout
    );
    let run = walctl(&[&"info", &segment_path(dir.path(), 2)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.has_line("header rejected: segment header checksum mismatch"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("(computed 0x"), "{}", run.stdout);
    Ok(())
}

#[test]
fn salvage_copies_every_valid_record_and_leaves_the_source_alone() -> TestResult {
    let dir = log()?;
    damage_record(dir.path(), 20)?;
    damage_record(dir.path(), 21)?;
    write_at(
        &segment_path(dir.path(), 3),
        64 + 20 * RECORD_LEN,
        &[0x5a; 44],
    )?;
    let before = snapshot(dir.path())?;
    let out = tempfile::tempdir()?;
    let new = out.path().join("salvaged");

    let run = walctl(&[&"salvage", &dir.path(), &"--out", &new]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    assert!(
        lines[0].starts_with("salvaged 128 records from "),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"old 1..=19 -> new 1..=19"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"old 22..=130 -> new 20..=128"),
        "{}",
        run.stdout
    );
    assert!(
        run.has_line("records 20..=21 are unreadable"),
        "{}",
        run.stdout
    );
    assert!(
        run.has_line("skipped: torn tail in 00000000000000000003.seg"),
        "{}",
        run.stdout
    );
    assert_eq!(lines.last(), Some(&"new log: 128 records, clean"));
    assert_eq!(snapshot(dir.path())?, before, "salvage changed the source");

    // The new log holds the same records, renumbered, with their types and timestamps.
    let reader = WalReader::open(&new)?;
    let old_seqs: Vec<u64> = (1..=19).chain(22..=130).collect();
    assert_eq!(reader.last_seq(), Some(128));
    for (new_seq, old) in (1..).zip(old_seqs) {
        let r = reader
            .get(new_seq)?
            .ok_or("record missing from the salvaged log")?;
        assert_eq!(r.payload(), payload(old).as_slice());
        assert_eq!(
            (r.record_type(), r.timestamp()),
            (record_type(old), T0 + old - 1)
        );
    }

    // A second salvage into the same place is refused.
    let run = walctl(&[&"salvage", &dir.path(), &"--out", &new]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "walctl: {} is not empty; salvage writes only into a new or empty directory\n",
            new.display()
        )
    );
    Ok(())
}

#[test]
fn a_directory_that_is_not_a_log_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("notes.txt"), b"hello")?;
    for cmd in ["info", "dump", "verify"] {
        let run = walctl(&[&cmd, &dir.path()]);
        assert_eq!(run.code, Some(1), "{cmd}: {run:?}");
        assert_eq!(
            run.stderr,
            format!(
                "walctl: {} is not a softadastra-wal log (no segment files and no wal.lock)\n",
                dir.path().display()
            ),
            "{cmd}"
        );
        assert!(run.stdout.is_empty(), "{cmd}: {}", run.stdout);
    }
    Ok(())
}

#[test]
fn a_missing_directory_is_one_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("nope");
    for cmd in ["info", "dump", "verify"] {
        let run = walctl(&[&cmd, &missing]);
        assert_eq!(run.code, Some(1), "{cmd}: {run:?}");
        assert_eq!(
            run.stderr,
            format!("walctl: {}: no such file or directory\n", missing.display()),
            "{cmd}"
        );
    }
    let run = walctl(&[&"get", &missing, &"1"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    Ok(())
}

#[test]
fn bad_arguments_are_usage_errors() -> TestResult {
    let dir = log()?;
    let d = dir.path().to_str().ok_or("temporary path is not UTF-8")?;
    let cases: [(&[&str], &str); 6] = [
        (
            &["get", d, "abc"],
            "walctl: invalid value 'abc' for '<SEQ>': not a sequence number (a whole number from 1)",
        ),
        (
            &["get", d, "0"],
            "walctl: invalid value '0' for '<SEQ>': sequence numbers start at 1",
        ),
        (
            &["dump", d, "--from", "-3"],
            "walctl: unexpected argument '-3' found",
        ),
        (
            &["dump", d, "--payload", "base64"],
            "walctl: invalid value 'base64' for '--payload <VIEW>'",
        ),
        (
            &["verify"],
            "walctl: the following required arguments were not provided: <DIR>",
        ),
        (
            &["frobnicate", d],
            "walctl: unrecognized subcommand 'frobnicate'",
        ),
    ];
    for (words, want) in cases {
        let args: Vec<&dyn AsRef<OsStr>> = words.iter().map(|a| a as &dyn AsRef<OsStr>).collect();
        let run = walctl(&args);
        let args = words;
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with(want), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    let run = walctl(&[&"dump", &d, &"--from", &"9", &"--to", &"3"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr, "walctl: --from 9 is after --to 3\n");
    Ok(())
}

/// Root reads any file, so as root the binary runs as `nobody` (uid 65534), from a copy it
/// can execute; otherwise the log directory is made unreadable.
#[cfg(unix)]
#[test]
fn permission_denied_is_one_line() -> TestResult {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;

    let outer = tempfile::tempdir()?;
    std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o755))?;
    let logdir = outer.path().join("log");
    build_log(&logdir, 3)?;
    let root = std::fs::metadata(&logdir)?.uid() == 0;
    let mut cmd = if root {
        std::fs::set_permissions(&logdir, std::fs::Permissions::from_mode(0o700))?;
        let exe = outer.path().join("walctl");
        std::fs::copy(env!("CARGO_BIN_EXE_walctl"), &exe)?;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.uid(65534).gid(65534);
        cmd
    } else {
        std::fs::set_permissions(&logdir, std::fs::Permissions::from_mode(0o000))?;
        bin()
    };
    let out = cmd.arg("verify").arg(&logdir).output()?;
    std::fs::set_permissions(&logdir, std::fs::Permissions::from_mode(0o755))?;
    let run = finish(out);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "walctl: {}: permission denied (while listing)\n",
            logdir.display()
        )
    );
    Ok(())
}

/// Every command works while this process appends to the same log, rotating and truncating:
/// the inspection sees a consistent prefix and no damage. `SyncMode::Manual` with batches keeps
/// the writer copying records most of the time, so the newest segment is often caught with a
/// batch half-copied, which must not be mistaken for a torn tail.
#[test]
fn commands_work_while_an_application_appends() -> TestResult {
    use softadastra_wal::{RecordType, SyncMode};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir()?;
    // Segments large enough that the writer spends its time copying records, not rotating.
    let config = config(dir.path())
        .segment_size(1 << 20)
        .sync_mode(SyncMode::Manual);
    let store = WalStore::open(config)?;
    let writer = store.writer();
    writer.append(RecordType::Put, &payload(1))?;
    writer.sync()?;
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (stop, store) = (stop.clone(), store.clone());
        std::thread::spawn(move || -> softadastra_wal::Result<u64> {
            let writer = store.writer();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let seq = writer.next_seq()?;
                let batch: Vec<Vec<u8>> = (seq..seq + 4).map(payload).collect();
                writer.append_batch(batch.iter().map(|p| (RecordType::Put, &p[..])))?;
                if n % 8 == 7 {
                    writer.sync()?;
                }
                if n % 200 == 199 {
                    store.truncate_before(seq.saturating_sub(300))?;
                }
                n += 1;
            }
            Ok(n)
        })
    };
    let d = &dir.path();
    let result = (|| -> TestResult {
        for round in 0..10 {
            let run = walctl(&[&"verify", &d]);
            assert_eq!(run.code, Some(0), "round {round}: {run:?}");
            assert!(!run.stdout.contains("!!"), "round {round}:\n{}", run.stdout);

            let run = walctl(&[&"dump", &d, &"--payload", &"utf8"]);
            assert_eq!(run.code, Some(0), "round {round}: {run:?}");
            assert!(!run.stdout.contains("!!"), "round {round}:\n{}", run.stdout);
            let seqs = seqs(&run.stdout);
            let first = *seqs.first().ok_or("empty dump")?;
            assert_eq!(
                seqs,
                (first..first + seqs.len() as u64).collect::<Vec<_>>(),
                "round {round}: a gap"
            );
            for line in run.stdout.lines().filter(|l| l.starts_with("seq=")) {
                let seq: u64 = line[4..].split(' ').next().unwrap_or("").parse()?;
                assert!(
                    line.contains(&format!("payload=\"record {seq:05}")),
                    "round {round}: {line}"
                );
            }

            let run = walctl(&[&"info", &d]);
            assert_eq!(run.code, Some(0), "round {round}: {run:?}");
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let appended = appender
        .join()
        .map_err(|_| "the appending thread panicked")??;
    result?;
    assert!(appended > 0);
    Ok(())
}

/// The file name of spare `id`.
fn spare_path(dir: &std::path::Path, id: u64) -> std::path::PathBuf {
    dir.join(softadastra_wal::names::spare(id))
}

/// What recovery says about a copy of `dir`: the records it opens with, or its error.
fn recovery_of(
    dir: &std::path::Path,
) -> Result<Result<Option<u64>, Error>, Box<dyn std::error::Error>> {
    let copy = tempfile::tempdir()?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        std::fs::copy(entry.path(), copy.path().join(entry.file_name()))?;
    }
    Ok(WalStore::open(config(copy.path())).map(|store| store.last_seq()))
}

/// A spare made ahead of need (`{id:020}.spare`, no valid header, nothing past it) is a note,
/// not a problem; so is one whose header flush a crash tore.
#[test]
fn an_unused_spare_is_shown_as_such() -> TestResult {
    let dir = log()?;
    std::fs::write(spare_path(dir.path(), 4), vec![0u8; 8192])?;
    let run = walctl(&[&"info", &dir.path()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.has_line("00000000000000000004.spare - - 0 - spare none"),
        "{}",
        run.stdout
    );
    // A torn header: some of its bytes written, the checksum not matching.
    let mut torn = vec![0u8; 8192];
    torn[..20].copy_from_slice(&std::fs::read(segment_path(dir.path(), 3))?[..20]);
    std::fs::write(spare_path(dir.path(), 5), torn)?;
    let run = walctl(&[&"verify", &dir.path(), &"--strict"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for n in [4, 5] {
        let want =
            format!("-- note 0000000000000000000{n}.spare offset=0: spare segment (not yet used)");
        assert!(
            run.lines().contains(&want.as_str()),
            "missing {want:?} in\n{}",
            run.stdout
        );
    }
    assert!(matches!(recovery_of(dir.path())?, Ok(Some(130))));
    Ok(())
}

/// A spare with a valid header, numbered right after the newest segment, is a segment whose
/// activating rename a crash lost: its records are part of the log. A spare with a header that
/// does not continue the log, or without a valid header but with data, is damage; so is a
/// segment without a valid header, which a `.seg` file always has.
#[test]
fn spares_with_a_header_or_data() -> TestResult {
    let dir = log()?;
    std::fs::rename(segment_path(dir.path(), 3), spare_path(dir.path(), 3))?;
    let run = walctl(&[&"verify", &dir.path(), &"--strict"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.has_line("3 segments, 130 records (1..=130)"),
        "{}",
        run.stdout
    );
    assert!(run.lines().contains(&"-- note 00000000000000000003.spare offset=0: an activated spare whose rename to 00000000000000000003.seg a crash lost; recovery renames it"), "{}", run.stdout);
    let run = walctl(&[&"get", &dir.path(), &"130", &"--raw"]);
    assert_eq!((run.code, run.raw_stdout), (Some(0), payload(130)));
    assert!(matches!(recovery_of(dir.path())?, Ok(Some(130))));

    type Damage = fn(&std::path::Path) -> TestResult;
    let cases: [(&str, Damage, &str); 3] = [
        (
            "a stray spare with a header",
            |d| {
                std::fs::copy(segment_path(d, 2), spare_path(d, 9))?;
                Ok(())
            },
            "!! corruption 00000000000000000009.spare offset=0: a spare segment file has a header but does not continue the log",
        ),
        (
            "a spare with data but no header",
            |d| {
                let mut bytes = vec![0u8; 8192];
                bytes[500] = 1;
                std::fs::write(spare_path(d, 4), bytes)?;
                Ok(())
            },
            "!! corruption 00000000000000000004.spare offset=0: a spare segment file without a valid header holds data",
        ),
        (
            "a segment without its header",
            |d| write_at(&segment_path(d, 3), 0, &[0; 64]),
            "!! corruption 00000000000000000003.seg offset=0: not a segment file (bad magic)",
        ),
    ];
    for (what, damage, want) in cases {
        let dir = log()?;
        damage(dir.path())?;
        let run = walctl(&[&"verify", &dir.path()]);
        assert_eq!(run.code, Some(1), "{what}: {run:?}");
        assert!(
            run.lines().contains(&want),
            "{what}: missing {want:?} in\n{}",
            run.stdout
        );
        match recovery_of(dir.path())? {
            Err(Error::Corruption {
                file, offset: 0, ..
            }) => {
                assert!(
                    want.contains(&*file.file_name().unwrap_or_default().to_string_lossy()),
                    "{what}: {}",
                    file.display()
                );
            }
            other => panic!("{what}: recovery should refuse the log: {other:?}"),
        }
    }
    Ok(())
}
