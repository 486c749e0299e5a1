//! What every reliability harness shares: the volume multiplier, the one-line report,
//! self-describing payloads, and the check of invariants I1-I5 against what was acknowledged.
//!
//! Each harness is its own test binary (`harness = false`) so that its `reliability:` line is
//! printed by a plain `cargo test`, never swallowed by libtest's output capture.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use softadastra_wal::{Error, RecordType, WalReader, WalRecord};

/// The environment variable that multiplies every harness's volume (e.g. `50` for a release
/// gate). Unset means 1.
pub const SOAK_VAR: &str = "SOFTADASTRA_WAL_SOAK";

/// The volume multiplier from [`SOAK_VAR`]; a value that is not a positive integer stops the
/// harness with a message rather than silently running at 1x.
pub fn soak() -> u64 {
    match std::env::var(SOAK_VAR) {
        Err(_) => 1,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("{SOAK_VAR}={v:?} is not a positive integer");
                std::process::exit(2);
            }
        },
    }
}

/// `base` cases, multiplied by the soak factor.
pub fn volume(base: u64) -> u64 {
    base.saturating_mul(soak())
}

/// A seed: `SOFTADASTRA_WAL_SEED` if set (to replay a failure), else from the clock.
pub fn seed() -> u64 {
    if let Ok(v) = std::env::var("SOFTADASTRA_WAL_SEED")
        && let Ok(n) = v.trim().parse::<u64>()
    {
        return n;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED)
}

/// Counts cases and violations and prints the harness's one result line.
pub struct Report {
    harness: &'static str,
    cases: u64,
    violations: u64,
    skipped: Option<String>,
    shown: u64,
}

/// How many violation details are printed before the rest are only counted.
const SHOWN_VIOLATIONS: u64 = 20;

impl Report {
    /// A report for `harness` (one of the names tests/reliability/README.md lists). Also starts
    /// the watchdog: a harness that hangs (a deadlock, an endless loop on damaged input) fails
    /// instead of stalling CI.
    pub fn new(harness: &'static str) -> Report {
        watchdog(
            harness,
            std::time::Duration::from_secs(WATCHDOG_SECS * soak()),
        );
        Report {
            harness,
            cases: 0,
            violations: 0,
            skipped: None,
            shown: 0,
        }
    }

    /// One more case ran.
    pub fn case(&mut self) {
        self.cases += 1;
    }

    /// `n` more cases ran.
    pub fn cases(&mut self, n: u64) {
        self.cases += n;
    }

    /// Cases so far.
    pub fn count(&self) -> u64 {
        self.cases
    }

    /// Violations so far.
    pub fn violation_count(&self) -> u64 {
        self.violations
    }

    /// A violation, with what is needed to reproduce it (seed, case number, detail).
    pub fn violation(&mut self, detail: impl std::fmt::Display) {
        self.violations += 1;
        if self.shown < SHOWN_VIOLATIONS {
            self.shown += 1;
            eprintln!("VIOLATION [{}]: {detail}", self.harness);
        }
    }

    /// The harness could not run here, for `reason` (printed, never a silent pass).
    pub fn skip(&mut self, reason: impl Into<String>) {
        self.skipped = Some(reason.into());
    }

    /// Prints the result line and turns the report into the process's exit code.
    pub fn finish(self) -> ExitCode {
        let mut line = format!(
            "reliability: {} cases={} violations={}",
            self.harness, self.cases, self.violations
        );
        if let Some(reason) = &self.skipped {
            let _ = write!(line, " skipped={}", reason.replace(' ', "_"));
        }
        println!("{line}");
        if self.violations == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// How long a harness may run (times the soak factor) before the watchdog fails it: several
/// times the longest CI run of any harness.
const WATCHDOG_SECS: u64 = 900;

/// Ends the process with a violation if it is still running after `limit`.
fn watchdog(harness: &'static str, limit: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!(
            "VIOLATION [{harness}]: still running after {} s: a hang",
            limit.as_secs()
        );
        println!("reliability: {harness} cases=0 violations=1");
        std::process::exit(1);
    });
}

/// A small deterministic PRNG (xorshift64*): every failure reproduces from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`; distinct seeds give distinct streams (the seed goes through the
    /// splitmix64 finalizer, a bijection, before the low bit is forced on to avoid the all-zero
    /// state; only seeds whose mixed values differ in that bit alone collide).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Who appended a record: writer (thread) `writer`, its `counter`-th record. The payload, type and
/// timestamp of a record are functions of its identity, so a checker knows exactly what every
/// record must hold without being told its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident {
    pub writer: u32,
    pub counter: u64,
}

/// The payload prefix: a marker, the identity and the total length.
const PAYLOAD_HEADER: usize = 20;
const PAYLOAD_MARK: u32 = 0x5A57_4C31; // "ZWL1"

impl Ident {
    pub fn new(writer: u32, counter: u64) -> Ident {
        Ident { writer, counter }
    }

    fn key(self) -> u64 {
        (u64::from(self.writer) << 40) ^ self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// A payload length for this identity, at most `max` (and at least the header): mostly small,
    /// sometimes a few KiB (straddling pages), rarely close to `max` (straddling segments).
    pub fn len(self, max: usize) -> usize {
        let mut rng = Rng::new(self.key() ^ 0x1E27);
        let len = match rng.below(100) {
            0..=79 => rng.range(0, 300) as usize,
            80..=96 => rng.range(3_000, 9_000) as usize,
            _ => max.saturating_sub(rng.below(64) as usize),
        };
        len.clamp(PAYLOAD_HEADER, max.max(PAYLOAD_HEADER))
    }

    /// The exact payload of this identity, `len` bytes long (`len >= 20`).
    pub fn payload(self, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(PAYLOAD_HEADER)];
        p[0..4].copy_from_slice(&PAYLOAD_MARK.to_le_bytes());
        p[4..8].copy_from_slice(&self.writer.to_le_bytes());
        p[8..16].copy_from_slice(&self.counter.to_le_bytes());
        let total = p.len() as u32;
        p[16..20].copy_from_slice(&total.to_le_bytes());
        Rng::new(self.key()).fill(&mut p[PAYLOAD_HEADER..]);
        p
    }

    /// The record type of this identity.
    pub fn record_type(self) -> RecordType {
        match self.key() % 7 {
            0 => RecordType::Put,
            1 => RecordType::Delete,
            2 => RecordType::Update,
            3 => RecordType::Checkpoint,
            5 => RecordType::Noop,
            4 => RecordType::Custom(200),
            _ => RecordType::Custom(6 + (self.counter % 200) as u8),
        }
    }

    /// The timestamp of this identity.
    pub fn timestamp(self) -> u64 {
        self.key().rotate_left(17)
    }

    /// Reads the identity a payload claims; `None` if it has no valid header.
    pub fn of_payload(payload: &[u8]) -> Option<Ident> {
        if payload.len() < PAYLOAD_HEADER {
            return None;
        }
        let word = |r: std::ops::Range<usize>| payload[r].to_vec();
        let mark = u32::from_le_bytes(word(0..4).try_into().ok()?);
        let len = u32::from_le_bytes(word(16..20).try_into().ok()?);
        if mark != PAYLOAD_MARK || len as usize != payload.len() {
            return None;
        }
        Some(Ident {
            writer: u32::from_le_bytes(word(4..8).try_into().ok()?),
            counter: u64::from_le_bytes(word(8..16).try_into().ok()?),
        })
    }

    /// Whether `record` is exactly what this identity's append wrote.
    pub fn matches(self, record: &WalRecord) -> bool {
        record.payload == self.payload(record.payload.len())
            && record.record_type == self.record_type()
            && record.timestamp == self.timestamp()
    }
}

/// What the recovered log must hold.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Acknowledged records: sequence number -> identity. Each must be present, byte-exact (I1).
    pub acked: HashMap<u64, Ident>,
    /// Records known to be gone, by an acknowledged `truncate_before(seq)`: the log may start at
    /// any point at or after this (older segments can remain until deleted).
    pub truncated_before: u64,
    /// The members of every batch appended (acknowledged or not): each batch must be in the log
    /// whole (consecutive, one timestamp) or not at all.
    pub batches: Vec<Vec<Ident>>,
}

impl Expected {
    pub fn ack(&mut self, seq: u64, who: Ident) {
        self.acked.insert(seq, who);
    }

    /// The highest acknowledged sequence number.
    pub fn last_acked(&self) -> Option<u64> {
        self.acked.keys().copied().max()
    }
}

/// Reads every record of `dir` through a fresh [`WalReader`]; the error is typed (I5).
pub fn read_all(dir: &Path) -> Result<Vec<WalRecord>, Error> {
    let reader = WalReader::open(dir)?;
    reader.iter().map(|r| r.map(|r| r.to_record())).collect()
}

/// Checks a recovered log against what was acknowledged: I1 (every acknowledged record present
/// and byte-exact), I2 (gap-free, every record one that some writer appended, in each writer's
/// order, none twice), I3 (no record whose bytes differ from what its identity says). Returns
/// every violation found, described.
pub fn check_records(records: &[WalRecord], expected: &Expected) -> Vec<String> {
    let mut bad = Vec::new();
    let mut by_seq = HashMap::with_capacity(records.len());
    let mut last_counter: HashMap<u32, u64> = HashMap::new();
    for pair in records.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            bad.push(format!(
                "gap: seq {} is followed by seq {}",
                pair[0].seq, pair[1].seq
            ));
        }
    }
    if let Some(first) = records.first()
        && first.seq > expected.truncated_before.max(1)
    {
        // Records before the first one are gone; they must all have been truncated.
        if let Some((&seq, _)) = expected
            .acked
            .iter()
            .find(|(s, _)| **s < first.seq && **s >= expected.truncated_before)
        {
            bad.push(format!(
                "log starts at seq {} but acknowledged seq {seq} was not truncated",
                first.seq
            ));
        }
    }
    for r in records {
        by_seq.insert(r.seq, r);
        match Ident::of_payload(&r.payload) {
            None => bad.push(format!(
                "seq {}: payload of {} bytes is not one any writer appended",
                r.seq,
                r.payload.len()
            )),
            Some(who) if !who.matches(r) => bad.push(format!(
                "seq {}: bytes differ from those writer {} record {} appended",
                r.seq, who.writer, who.counter
            )),
            Some(who) => {
                if let Some(prev) = last_counter.insert(who.writer, who.counter)
                    && prev >= who.counter
                {
                    bad.push(format!(
                        "seq {}: writer {} record {} after its record {prev} (stale or duplicate)",
                        r.seq, who.writer, who.counter
                    ));
                }
            }
        }
    }
    bad.extend(check_batches(records, &expected.batches));
    let mut acked: Vec<_> = expected.acked.iter().collect();
    acked.sort();
    for (&seq, &who) in acked {
        if seq < expected.truncated_before {
            continue;
        }
        match by_seq.get(&seq) {
            None => bad.push(format!(
                "acknowledged seq {seq} (writer {} record {}) is missing",
                who.writer, who.counter
            )),
            Some(r) if Ident::of_payload(&r.payload) != Some(who) || !who.matches(r) => {
                bad.push(format!(
                    "acknowledged seq {seq} should be writer {} record {}, holds something else",
                    who.writer, who.counter
                ))
            }
            Some(_) => {}
        }
    }
    bad
}

/// Batch atomicity: every batch is in `records` whole (all members, at consecutive sequence
/// numbers) or not at all. (Harnesses that rewrite batch timestamps before checking, see
/// [`normalize_batch_timestamps`], check the shared timestamp themselves.)
pub fn check_batches(records: &[WalRecord], batches: &[Vec<Ident>]) -> Vec<String> {
    if batches.is_empty() {
        return Vec::new();
    }
    let by_ident: HashMap<Ident, &WalRecord> = records
        .iter()
        .filter_map(|r| Some((Ident::of_payload(&r.payload)?, r)))
        .collect();
    let mut bad = Vec::new();
    for members in batches {
        let present: Vec<&WalRecord> = members
            .iter()
            .filter_map(|who| by_ident.get(who).copied())
            .collect();
        let whole =
            present.len() == members.len() && present.windows(2).all(|p| p[1].seq == p[0].seq + 1);
        if !present.is_empty() && !whole {
            bad.push(format!(
                "torn batch: {} of its {} records present (seqs {:?})",
                present.len(),
                members.len(),
                present.iter().map(|r| r.seq).collect::<Vec<_>>()
            ));
        }
    }
    bad
}

/// Recovers `dir` as a writer would (open the store, which repairs a torn tail), reads it twice
/// and through a second open, and checks I1-I5. Returns the recovered records when they pass.
pub fn recover_and_check(
    dir: &Path,
    config: impl Fn(&Path) -> softadastra_wal::WalConfig,
    expected: &Expected,
) -> Result<Vec<WalRecord>, Vec<String>> {
    recover_and_compare(dir, &config, |records| check_records(records, expected))
}

/// Recovers `dir` with `config`, checks the records with `check`, then I4: a second recovery of
/// the (now repaired) files and a plain reader must agree exactly. Returns the recovered records
/// when everything passes.
fn recover_and_compare(
    dir: &Path,
    config: &impl Fn(&Path) -> softadastra_wal::WalConfig,
    check: impl FnOnce(&[WalRecord]) -> Vec<String>,
) -> Result<Vec<WalRecord>, Vec<String>> {
    let first = match open_and_read(dir, config) {
        Ok(r) => r,
        Err(e) => return Err(vec![format!("recovery failed: {e}")]),
    };
    let mut bad = check(&first);
    match open_and_read(dir, config) {
        Ok(second) if second != first => bad.push(format!(
            "second recovery differs: {} records, then {}",
            first.len(),
            second.len()
        )),
        Ok(_) => {}
        Err(e) => bad.push(format!("second recovery failed: {e}")),
    }
    match read_all(dir) {
        Ok(again) if again != first => bad.push(format!(
            "a reader sees {} records where recovery saw {}",
            again.len(),
            first.len()
        )),
        Ok(_) => {}
        Err(e) => bad.push(format!("reader after recovery failed: {e}")),
    }
    if bad.is_empty() { Ok(first) } else { Err(bad) }
}

fn open_and_read(
    dir: &Path,
    config: &impl Fn(&Path) -> softadastra_wal::WalConfig,
) -> Result<Vec<WalRecord>, String> {
    let store = softadastra_wal::WalStore::open(config(dir)).map_err(|e| e.to_string())?;
    let reader = store.reader();
    let replay = || -> Result<Vec<WalRecord>, String> {
        reader
            .iter()
            .map(|r| r.map(|r| r.to_record()).map_err(|e| e.to_string()))
            .collect()
    };
    let once = replay()?;
    if replay()? != once {
        return Err("two replays of one store differ".to_string());
    }
    Ok(once)
}

// =============================================================================================
// power-cut / disk-full (helper "powercut"): records appended in batches.
// =============================================================================================

/// `append_batch` stamps its records with the current time, not with the timestamp their
/// [`Ident`] implies. Harnesses that append batches set this bit in the writer id of batch
/// records, so that a check knows which timestamps come from the clock.
pub const BATCH_WRITER_BIT: u32 = 1 << 31;

/// Milliseconds since the Unix epoch, the clock `append_batch` stamps records with.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks that every record of a batch writer ([`BATCH_WRITER_BIT`]) has a timestamp inside
/// `window` (the run's time span) and replaces it with its identity's, so that [`check_records`]
/// can check everything else exactly. Returns the normalized records and the violations.
pub fn normalize_batch_timestamps(
    records: &[WalRecord],
    window: std::ops::RangeInclusive<u64>,
) -> (Vec<WalRecord>, Vec<String>) {
    let mut bad = Vec::new();
    let normalized = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(who) = Ident::of_payload(&r.payload)
                && who.writer & BATCH_WRITER_BIT != 0
            {
                if window.contains(&r.timestamp) {
                    r.timestamp = who.timestamp();
                } else {
                    bad.push(format!(
                        "seq {}: batch record with timestamp {} outside the run ({window:?})",
                        r.seq, r.timestamp
                    ));
                }
            }
            r
        })
        .collect();
    (normalized, bad)
}

/// [`recover_and_check`] for a log that holds batch records (see [`BATCH_WRITER_BIT`]): their
/// timestamps must lie in `window`; everything else is checked exactly as there (I1-I5).
/// Returns the recovered records as read (not normalized) when they pass.
pub fn recover_and_check_batches(
    dir: &Path,
    config: impl Fn(&Path) -> softadastra_wal::WalConfig,
    expected: &Expected,
    window: std::ops::RangeInclusive<u64>,
) -> Result<Vec<WalRecord>, Vec<String>> {
    recover_and_compare(dir, &config, |records| {
        let (normalized, mut bad) = normalize_batch_timestamps(records, window);
        bad.extend(check_records(&normalized, expected));
        bad
    })
}

/// Appends `idents` (each with a payload of `Ident::len(max)` bytes): one record with its
/// identity's timestamp, or several as one `append_batch` (writer ids with
/// [`BATCH_WRITER_BIT`]). Returns the first sequence number.
pub fn append_idents(
    writer: &softadastra_wal::WalWriter,
    idents: &[Ident],
    max: usize,
) -> Result<u64, Error> {
    let payloads: Vec<Vec<u8>> = idents.iter().map(|i| i.payload(i.len(max))).collect();
    match idents {
        [one] => writer.append_with_timestamp(one.record_type(), one.timestamp(), &payloads[0]),
        _ => {
            let range = writer.append_batch(
                idents
                    .iter()
                    .zip(&payloads)
                    .map(|(i, p)| (i.record_type(), p.as_slice())),
            )?;
            Ok(*range.start())
        }
    }
}
