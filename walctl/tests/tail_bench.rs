//! `walctl tail` and `walctl bench`, run as the real binary against logs built here through the
//! library.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordType, WalConfig, WalReader, WalStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long a follower may take to show a record appended by this process. Generous: the test
/// machine is shared and the binary unoptimized.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(20);

fn walctl(args: &[&str], dir: &Path) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(args)
        .arg(dir)
        .output()
}

/// Small segments (8 KiB, about 30 of these records each) so that the logs span several.
fn config(dir: &Path) -> WalConfig {
    WalConfig::new(dir).segment_size(8192).index_interval(256)
}

/// Payload of record `seq`: its number in text, padded so that records fill segments quickly.
fn payload(seq: u64) -> String {
    format!("record {seq} {}", "x".repeat(200))
}

/// A log holding records 1..=n.
fn build_log(dir: &Path, n: u64) -> Result<WalStore, Box<dyn std::error::Error>> {
    let store = WalStore::open(config(dir))?;
    let writer = store.writer();
    for seq in 1..=n {
        let got = writer.append(RecordType::Put, payload(seq).as_bytes())?;
        assert_eq!(got, seq);
    }
    Ok(store)
}

/// The sequence number that starts each line of `walctl tail` output (`seq=42 type=Put ...`).
fn seq_of(line: &str) -> Option<u64> {
    line.split_whitespace()
        .next()?
        .strip_prefix("seq=")?
        .parse()
        .ok()
}

fn seqs(stdout: &[u8]) -> Vec<Option<u64>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(seq_of)
        .collect()
}

fn some_range(range: std::ops::RangeInclusive<u64>) -> Vec<Option<u64>> {
    range.map(Some).collect()
}

/// An error run: exit code 1 and exactly one line on stderr, `walctl: ...`, never a panic.
fn assert_one_line_error(out: &Output, mentions: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.starts_with("walctl: "), "stderr: {stderr}");
    assert!(stderr.contains(mentions), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[test]
fn tail_prints_exactly_the_last_records() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = build_log(tmp.path(), 75)?;
    assert!(
        std::fs::read_dir(tmp.path())?.count() > 3,
        "the log should span several segments"
    );

    let out = walctl(&["tail", "-n", "7"], tmp.path())?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(seqs(&out.stdout), some_range(69..=75));

    let out = walctl(&["tail"], tmp.path())?;
    assert_eq!(seqs(&out.stdout), some_range(66..=75), "default: 10");

    let out = walctl(&["tail", "-n", "500"], tmp.path())?;
    assert_eq!(
        seqs(&out.stdout),
        some_range(1..=75),
        "more than the log holds"
    );

    let out = walctl(&["tail", "-n", "0"], tmp.path())?;
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");

    // After truncation the log starts later: tail never asks for what is gone.
    let deleted = store.truncate_before(40)?;
    assert!(deleted > 0);
    let first = store.first_seq().ok_or("empty log")?;
    let out = walctl(&["tail", "-n", "500"], tmp.path())?;
    assert_eq!(seqs(&out.stdout), some_range(first..=75));
    Ok(())
}

#[test]
fn tail_payload_views() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = WalStore::open(config(tmp.path()))?;
    store.writer().append(RecordType::Delete, b"key:\x01")?;

    let line = |view: &str| -> Result<String, Box<dyn std::error::Error>> {
        let out = walctl(&["tail", "--payload", view], tmp.path())?;
        assert!(out.status.success(), "{out:?}");
        Ok(String::from_utf8(out.stdout)?)
    };
    let utf8 = line("utf8")?;
    assert!(utf8.contains("key:"), "{utf8}");
    assert!(utf8.contains("Delete"), "{utf8}");
    let hex = line("hex")?;
    assert!(hex.contains("6b65793a01"), "{hex}");
    let none = line("none")?;
    assert!(
        !none.contains("6b65793a01") && !none.contains("key:"),
        "{none}"
    );
    assert_eq!(seqs(none.as_bytes()), [Some(1)]);
    Ok(())
}

/// Kills the follower when the test ends, however it ends.
struct Follower(Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of the child's stdout, read on a thread so that the test can wait with a timeout.
fn lines_of(child: &mut Child) -> Result<Receiver<String>, Box<dyn std::error::Error>> {
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Waits for the next line and returns its sequence number.
fn next_seq(lines: &Receiver<String>) -> Result<u64, Box<dyn std::error::Error>> {
    let line = lines
        .recv_timeout(FOLLOW_TIMEOUT)
        .map_err(|e| format!("no line from tail -f within {FOLLOW_TIMEOUT:?}: {e}"))?;
    Ok(seq_of(&line).ok_or(format!("not a record line: {line}"))?)
}

#[test]
fn tail_follow_shows_records_appended_after_it_started() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = build_log(tmp.path(), 3)?;
    let writer = store.writer();

    let mut follower = Follower(
        Command::new(env!("CARGO_BIN_EXE_walctl"))
            .args(["tail", "-f", "-n", "2"])
            .arg(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let lines = lines_of(&mut follower.0)?;
    assert_eq!(next_seq(&lines)?, 2);
    assert_eq!(next_seq(&lines)?, 3);

    // One at a time (the follower sees each on its own), then a burst across rotations (it
    // sees several per scan), then a pause long enough for its polling to back off.
    for seq in 4..=6 {
        writer.append(RecordType::Put, payload(seq).as_bytes())?;
        assert_eq!(next_seq(&lines)?, seq);
    }
    for seq in 7..=100 {
        writer.append(RecordType::Put, payload(seq).as_bytes())?;
    }
    for seq in 7..=100 {
        assert_eq!(next_seq(&lines)?, seq);
    }
    thread::sleep(Duration::from_millis(300));
    writer.append(RecordType::Update, payload(101).as_bytes())?;
    assert_eq!(next_seq(&lines)?, 101);

    // Nothing more than what was appended.
    assert!(lines.recv_timeout(Duration::from_millis(300)).is_err());
    if let Some(status) = follower.0.try_wait()? {
        return Err(format!("tail -f exited on its own: {status}").into());
    }
    Ok(())
}

#[test]
fn tail_follow_reports_records_truncated_before_it_saw_them() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = build_log(tmp.path(), 1)?;
    let writer = store.writer();
    let mut follower = Follower(
        Command::new(env!("CARGO_BIN_EXE_walctl"))
            .args(["tail", "-f"])
            .arg(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let lines = lines_of(&mut follower.0)?;
    assert_eq!(next_seq(&lines)?, 1);
    // Stop the follower, append and truncate, let it go on: it finds the log starting later.
    let pid = follower.0.id().to_string();
    let signal = |sig: &str| Command::new("kill").args([sig, &pid]).status();
    if !signal("-STOP")?.success() {
        return Err("cannot stop the follower".into());
    }
    wait_until_stopped(&pid)?;
    for seq in 2..=100 {
        writer.append(RecordType::Put, payload(seq).as_bytes())?;
    }
    let deleted = store.truncate_before(60)?;
    let first = store.first_seq().ok_or("empty log")?;
    assert!(deleted > 0 && first > 2, "first {first}");
    if !signal("-CONT")?.success() {
        return Err("cannot resume the follower".into());
    }
    assert_eq!(next_seq(&lines)?, first);
    follower.0.kill()?;
    follower.0.wait()?;
    let mut stderr = String::new();
    follower
        .0
        .stderr
        .take()
        .ok_or("no stderr pipe")?
        .read_to_string(&mut stderr)?;
    assert!(
        stderr.contains(&format!("records 2 to {} were deleted", first - 1)),
        "stderr: {stderr}"
    );
    Ok(())
}

#[test]
fn tail_follow_ends_quietly_when_its_reader_goes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = build_log(tmp.path(), 1)?;
    let mut follower = Follower(
        Command::new(env!("CARGO_BIN_EXE_walctl"))
            .args(["tail", "-f"])
            .arg(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    // Like `walctl tail -f | head -1`: read one line, then close the pipe.
    let mut first = String::new();
    BufReader::new(follower.0.stdout.take().ok_or("no stdout pipe")?).read_line(&mut first)?;
    assert_eq!(seq_of(&first), Some(1));
    // The follower finds out at its next write.
    store
        .writer()
        .append(RecordType::Put, b"after the reader left")?;
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    let status = loop {
        if let Some(status) = follower.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            return Err("tail -f kept running after its stdout was closed".into());
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    follower
        .0
        .stderr
        .take()
        .ok_or("no stderr pipe")?
        .read_to_string(&mut stderr)?;
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    Ok(())
}

/// Waits until the kernel shows process `pid` stopped (state `T` in /proc/PID/stat), so that
/// nothing it does after the signal can see what the test does next.
fn wait_until_stopped(pid: &str) -> TestResult {
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // After the command name in parentheses (which may hold spaces) comes the state.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("T") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the follower did not stop: {stat}").into());
        }
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn tail_errors_are_one_line() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let missing = tmp.path().join("missing");
    assert_one_line_error(&walctl(&["tail"], &missing)?, "missing");
    assert_one_line_error(&walctl(&["tail", "-f"], &missing)?, "missing");

    let file = tmp.path().join("file");
    std::fs::write(&file, b"not a log")?;
    assert_one_line_error(&walctl(&["tail"], &file)?, "file");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty)?;
    assert_one_line_error(&walctl(&["tail"], &empty)?, "not a softadastra-wal log");

    let bad = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(["tail", "-n", "minus-one"])
        .arg(tmp.path())
        .output()?;
    assert_eq!(bad.status.code(), Some(2), "a usage error: {bad:?}");
    Ok(())
}

/// The figures of one `bench` output line, in order: `p50 85.4 us p99 ...` gives [85.4, ...].
fn figures(line: &str) -> Vec<f64> {
    line.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn bench_quick_measures_and_cleans_up() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("bench");
    let started = Instant::now();
    let out = walctl(&["bench", "--quick"], &dir)?;
    let took = started.elapsed();
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal"
    );
    assert!(took < Duration::from_secs(10), "--quick took {took:?}");
    assert!(!dir.exists(), "the directory bench created is removed");

    let find = |prefix: &str| -> Result<Vec<f64>, String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .ok_or(format!("no line starting with {prefix:?} in:\n{stdout}"))?;
        Ok(figures(line))
    };
    // `durable append, 1 thread, 128 B: p50 X us  p99 Y us  (N records)`
    let latency = find("durable append, 1 thread")?;
    let [_, _, p50, p99, n] = latency[..] else {
        return Err(format!("latency line: {latency:?}").into());
    };
    assert!(p50 > 0.0 && p99 >= p50 && n >= 1.0, "{latency:?}");
    for prefix in ["durable append, 8 threads", "unsynced bulk", "replay"] {
        let values = find(prefix)?;
        assert!(
            values.iter().all(|v| *v >= 0.0) && values.len() >= 2,
            "{prefix}: {values:?}"
        );
    }
    Ok(())
}

#[test]
fn bench_keep_leaves_a_log_holding_every_record_it_counted() -> TestResult {
    let tmp = tempfile::tempdir()?;
    // An existing empty directory is fine too, and stays.
    let out = walctl(&["bench", "--quick", "--keep"], tmp.path())?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}");
    let count = |prefix: &str| -> Result<u64, String> {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| {
                l.rsplit_once('(')?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .ok_or(format!("no count on the {prefix:?} line of:\n{stdout}"))
    };
    let appended = count("durable append, 1 thread")?
        + count("durable append, 8 threads")?
        + count("unsynced bulk")?;
    assert_eq!(count("replay")?, appended);
    let reader = WalReader::open(tmp.path())?;
    assert_eq!(reader.last_seq(), Some(appended));
    assert_eq!(reader.iter().count() as u64, appended);

    // Without --keep, an existing empty directory is emptied but stays.
    let again = tmp.path().join("again");
    std::fs::create_dir(&again)?;
    let out = walctl(&["bench", "--quick"], &again)?;
    assert!(out.status.success(), "{out:?}");
    assert!(again.is_dir());
    assert_eq!(std::fs::read_dir(&again)?.count(), 0);
    Ok(())
}

#[test]
fn bench_refuses_a_directory_that_is_not_empty() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let precious = tmp.path().join("precious.txt");
    std::fs::write(&precious, b"keep me")?;
    assert_one_line_error(&walctl(&["bench", "--quick"], tmp.path())?, "not empty");
    assert_eq!(std::fs::read(&precious)?, b"keep me");
    assert_eq!(std::fs::read_dir(tmp.path())?.count(), 1);

    assert_one_line_error(&walctl(&["bench", "--quick"], &precious)?, "precious.txt");
    assert_eq!(std::fs::read(&precious)?, b"keep me");
    Ok(())
}
