//! Harness 8, `disk-full`: a really full disk, and the directory lock.
//!
//! ENOSPC (on a small ext4 file system on a loop device, filled up with a filler file): appends
//! run until one fails. The failure must be a typed error. Where the disk filled up while a new
//! segment's blocks were allocated, the writer must not poison, must not have lost or half-made
//! anything, and the same append must succeed once the filler is deleted (and the log must
//! recover and continue). Where it hit another step, the writer must poison and a reopened store
//! must hold every acknowledged record. On a real disk, blocks run out at the allocation; the
//! other steps are reached with the `fault-injection` feature (a full disk injected at the
//! segment's fsync, its rename, the directory fsync, and a flush). Also: a full disk at the first
//! open (typed error, nothing left behind, opens once there is space), and a file system without
//! free inodes, where the new segment's file cannot be created: like a failed allocation, that
//! does not poison, and the same append succeeds once an inode is free; nothing acknowledged is
//! lost.
//!
//! Locking: a second process opening the directory gets `Error::Locked`, also when the first
//! holder is another process, and can open it once the holder is gone; a `WalReader::open` in
//! another process, during appends (with rotations and truncations), reads a consistent gap-free
//! log whose records all match their identities.
//!
//! Without loop devices the locking part still runs and the line says `skipped=` for ENOSPC.

mod support;

#[path = "support/loopfs.rs"]
mod loopfs;

use std::process::ExitCode;
use std::time::Instant;

use support::{Report, Rng};

const HARNESS: &str = "disk-full";
/// Set in a child's environment: its role (see [`child::run`]).
const CHILD_VAR: &str = "SOFTADASTRA_WAL_DISK_FULL_CHILD";
/// The log directory of a child.
const CHILD_DIR_VAR: &str = "SOFTADASTRA_WAL_DISK_FULL_DIR";

fn main() -> ExitCode {
    match std::env::var(CHILD_VAR) {
        Ok(role) => child::run(&role),
        Err(_) => parent(),
    }
}

fn parent() -> ExitCode {
    let mut report = Report::new(HARNESS);
    let seed = support::seed();
    println!("{HARNESS}: seed={seed} (replay with SOFTADASTRA_WAL_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    locking::run(&mut report, &mut rng);
    #[cfg(feature = "fault-injection")]
    injected::run(&mut report, &mut rng);
    if let Err(reason) = loopfs::unavailable() {
        eprintln!("{HARNESS}: ENOSPC part not run: {reason}");
        report.skip(format!("enospc_part:{}", short_reason(&reason)));
    } else if let Err(reason) = enospc::run(&mut report, &mut rng) {
        // Root and loop devices are here: not being able to use them is a failure.
        report.violation(format!("ENOSPC part could not run: {reason}"));
    }
    println!("{HARNESS}: elapsed={:.1}s", started.elapsed().as_secs_f64());
    report.finish()
}

/// A short reason for the result line.
fn short_reason(reason: &str) -> &'static str {
    if reason.starts_with("not root") {
        "not_root"
    } else if reason.starts_with("no /dev/loop-control") {
        "no_loop_device"
    } else {
        "loop_mount_failed"
    }
}

/// A temporary directory on the disk that holds the target directory.
fn tempdir() -> tempfile::TempDir {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("create the target's temporary directory");
    tempfile::Builder::new()
        .prefix("sawal-disk-full-")
        .tempdir_in(base)
        .expect("create a temporary directory")
}

/// Appends of self-describing records with a model of what was acknowledged.
mod workload {
    use std::path::{Path, PathBuf};

    use softadastra_wal::{Error, SyncMode, WalConfig, WalWriter};

    use crate::support::{self, BATCH_WRITER_BIT, Expected, Ident, Rng, append_idents};

    /// One log and everything acknowledged on it.
    pub struct Workload {
        pub dir: PathBuf,
        pub segment_size: u64,
        pub mode: SyncMode,
        /// Payload lengths are `Ident::len(cap)` (capped by the segment's maximum).
        pub cap: usize,
        pub expected: Expected,
        /// Appended in `Manual` mode since the last successful sync: acknowledged by the next.
        pending: Vec<(u64, Ident)>,
        sync_every: u64,
        rng: Rng,
        writer: u32,
        single: u64,
        batched: u64,
        started_ms: u64,
    }

    impl Workload {
        pub fn new(dir: &Path, segment_size: u64, mode: SyncMode, cap: usize, seed: u64) -> Self {
            let mut rng = Rng::new(seed);
            Workload {
                dir: dir.to_path_buf(),
                segment_size,
                mode,
                cap,
                expected: Expected::default(),
                pending: Vec::new(),
                sync_every: rng.range(1, 8),
                writer: rng.range(1, 1 << 20) as u32,
                rng,
                single: 0,
                batched: 0,
                started_ms: support::now_ms(),
            }
        }

        pub fn config(&self) -> WalConfig {
            config(&self.dir, self.segment_size, self.mode)
        }

        fn max(&self) -> usize {
            let max = self.config().max_payload().map_or(4096, |m| m as usize);
            self.cap.min(max)
        }

        /// The next operation: one record, or (one time in five) a batch of 2 to 5.
        pub fn next_op(&mut self) -> Vec<Ident> {
            if self.rng.one_in(5) {
                let len = self.rng.range(2, 5);
                let first = self.batched;
                self.batched += len;
                (0..len)
                    .map(|i| Ident::new(self.writer | BATCH_WRITER_BIT, first + i))
                    .collect()
            } else {
                self.single += 1;
                vec![Ident::new(self.writer, self.single - 1)]
            }
        }

        /// Appends `op`. In `Always` mode an `Ok` acknowledges it; in `Manual` mode it waits
        /// for a sync, which runs every few operations (its failure is returned as the step's).
        pub fn step(&mut self, w: &WalWriter, op: &[Ident]) -> Result<u64, Error> {
            let cap = if op.len() > 1 {
                self.max() / 8
            } else {
                self.max()
            };
            let first = append_idents(w, op, cap)?;
            let records = (first..).zip(op.iter().copied());
            match self.mode {
                SyncMode::Always => records.for_each(|(s, who)| self.expected.ack(s, who)),
                _ => {
                    self.pending.extend(records);
                    if self.rng.one_in(self.sync_every) {
                        self.sync(w)?;
                    }
                }
            }
            Ok(first)
        }

        /// Syncs (in `Manual` mode) and acknowledges what was pending.
        pub fn sync(&mut self, w: &WalWriter) -> Result<(), Error> {
            if self.mode == SyncMode::Manual {
                w.sync()?;
                for (s, who) in self.pending.drain(..) {
                    self.expected.ack(s, who);
                }
            }
            Ok(())
        }

        /// Forgets what a failed append or sync left unacknowledged (it may or may not be in
        /// the log; either is allowed).
        pub fn drop_pending(&mut self) {
            self.pending.clear();
        }

        fn window(&self) -> std::ops::RangeInclusive<u64> {
            self.started_ms.saturating_sub(1_000)..=support::now_ms() + 1_000
        }

        /// Reads the log through a `WalReader::open` (the store may be open) and checks I1-I3.
        pub fn check_live(&self) -> Vec<String> {
            match support::read_all(&self.dir) {
                Ok(records) => {
                    let (normalized, mut bad) =
                        support::normalize_batch_timestamps(&records, self.window());
                    bad.extend(support::check_records(&normalized, &self.expected));
                    bad
                }
                Err(e) => vec![format!("a reader could not read the log: {e}")],
            }
        }

        /// Recovers the log (the store must be closed) and checks I1-I5.
        pub fn check_recovered(&self) -> Vec<String> {
            let (size, mode) = (self.segment_size, self.mode);
            let config = move |d: &Path| config(d, size, mode);
            match support::recover_and_check_batches(
                &self.dir,
                config,
                &self.expected,
                self.window(),
            ) {
                Ok(_) => Vec::new(),
                Err(bad) => bad,
            }
        }
    }

    pub fn config(dir: &Path, segment_size: u64, mode: SyncMode) -> WalConfig {
        WalConfig::new(dir)
            .segment_size(segment_size)
            .index_interval(1024)
            .sync_mode(mode)
    }
}

/// Which step of an append ran into the full disk.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Allocating a new segment's blocks: documented not to poison.
    Allocation,
    /// Another system call, named by the error's `action`.
    Other(&'static str),
}

/// What a failed append's error says, or why it is not an acceptable one for a full disk.
fn classify(e: &softadastra_wal::Error) -> Result<Step, String> {
    match e {
        softadastra_wal::Error::Io { action, source, .. }
            if source.kind() == std::io::ErrorKind::StorageFull =>
        {
            Ok(if *action == "allocating" {
                Step::Allocation
            } else {
                Step::Other(action)
            })
        }
        other => Err(format!(
            "a full disk gave an unexpected error: {other} ({other:?})"
        )),
    }
}

/// Segment files being made (`*.seg.tmp`) in `dir`: a failed creation must not leave one.
fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".seg.tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// Real ENOSPC on a small loop-mounted ext4.
mod enospc {
    use std::fs::File;
    use std::io::{ErrorKind, Write as _};
    use std::path::{Path, PathBuf};

    use softadastra_wal::{Error, SyncMode, WalStore, WalWriter};

    use super::workload::Workload;
    use super::{Step, classify, temp_files};
    use crate::loopfs::{Format, LoopFs};
    use crate::support::{self, Ident, Report, Rng};

    /// The file system: small, so that filling it is quick.
    const FS_SIZE: u64 = 16 << 20;
    /// Block-full scenarios per run at soak 1.
    const BLOCK_SCENARIOS: u64 = 12;
    /// Inodes of the file system for the inode scenario (`mkfs.ext4` rounds it up a little).
    const FEW_INODES: u64 = 64;

    /// Which steps ran into the full disk, over the run.
    #[derive(Default)]
    struct Tally {
        allocation: u64,
        other: Vec<String>,
        retried_ok: u64,
    }

    pub fn run(report: &mut Report, rng: &mut Rng) -> Result<(), String> {
        let mut fs = LoopFs::create(FS_SIZE, Format::default())?;
        let mut tally = Tally::default();
        for n in 0..support::volume(BLOCK_SCENARIOS) {
            let seed = rng.next_u64();
            let mut bad = Vec::new();
            match fs.reformat(Format::default()) {
                Ok(()) => block_scenario(fs.path(), n, seed, &mut tally, &mut bad),
                Err(e) => bad.push(format!("could not format: {e}")),
            }
            record(report, &format!("full disk {n} (seed {seed})"), bad);
        }
        let seed = rng.next_u64();
        let mut bad = Vec::new();
        match fs.reformat(Format::default()) {
            Ok(()) => open_when_full(fs.path(), seed, &mut bad),
            Err(e) => bad.push(format!("could not format: {e}")),
        }
        record(report, &format!("open on a full disk (seed {seed})"), bad);
        let seed = rng.next_u64();
        let mut bad = Vec::new();
        let few_inodes = Format {
            inodes: Some(FEW_INODES),
            ..Format::default()
        };
        match fs.reformat(few_inodes) {
            Ok(()) => inode_scenario(fs.path(), seed, &mut tally, &mut bad),
            Err(e) => bad.push(format!("could not format: {e}")),
        }
        record(report, &format!("no free inode (seed {seed})"), bad);
        println!(
            "{}: ENOSPC hit: allocation={} other steps={:?}; appends retried after freeing \
             space={}",
            super::HARNESS,
            tally.allocation,
            tally.other,
            tally.retried_ok
        );
        Ok(())
    }

    fn record(report: &mut Report, case: &str, bad: Vec<String>) {
        report.case();
        for b in bad {
            report.violation(format!("{case}: {b}"));
        }
    }

    /// Fills the file system at `root` with a file, then shrinks it so that about `slack` bytes
    /// stay free. Returns the file.
    fn fill(root: &Path, slack: u64) -> std::io::Result<PathBuf> {
        let path = root.join("filler");
        let mut f = File::create(&path)?;
        for chunk in [1 << 20, 4096] {
            let bytes = vec![0xA5u8; chunk];
            loop {
                match f.write_all(&bytes) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::StorageFull => break,
                    Err(e) => return Err(e),
                }
            }
        }
        f.sync_all()?;
        let len = f.metadata()?.len();
        f.set_len(len.saturating_sub(slack))?;
        f.sync_all()?;
        Ok(path)
    }

    fn one_line(e: &Error) -> String {
        e.to_string().replace('\n', " ")
    }

    /// Deletes the filler and commits that, so that its blocks can be allocated again.
    fn free(root: &Path, filler: &Path) -> std::io::Result<()> {
        std::fs::remove_file(filler)?;
        File::open(root)?.sync_all()
    }

    /// Opens the store, or says why not.
    fn open(wl: &Workload, bad: &mut Vec<String>) -> Option<WalStore> {
        match WalStore::open(wl.config()) {
            Ok(store) => Some(store),
            Err(e) => {
                bad.push(format!("open failed: {e}"));
                None
            }
        }
    }

    /// Fills the disk to a random level, appends until an append fails and checks what
    /// follows for the step that failed.
    /// Scenario `n` cycles through the payload sizes, and every second group of three uses
    /// `SyncMode::Manual`; the segment size and the free space are random.
    fn block_scenario(root: &Path, n: u64, seed: u64, tally: &mut Tally, bad: &mut Vec<String>) {
        let mut rng = Rng::new(seed);
        // Segment sizes that small records fill in a few hundred appends (time).
        let (cap, sizes): (usize, &[u64]) = match n % 3 {
            0 => (300, &[64 << 10, 128 << 10]),
            1 => (9_000, &[64 << 10, 128 << 10, 256 << 10]),
            _ => (usize::MAX, &[64 << 10, 256 << 10, 1 << 20]),
        };
        let segment_size = sizes[rng.below(sizes.len() as u64) as usize];
        let mode = if (n / 3) % 2 == 1 {
            SyncMode::Manual
        } else {
            SyncMode::Always
        };
        let slack = rng.below(segment_size * 5 / 2);
        let mut wl = Workload::new(&root.join("log"), segment_size, mode, cap, rng.next_u64());
        let Some(store) = open(&wl, bad) else { return };
        let w = store.writer();
        let filler = match fill(root, slack) {
            Ok(f) => f,
            Err(e) => return bad.push(format!("could not fill the disk: {e}")),
        };
        let Some((op, err, next)) = append_until_full(&mut wl, &w, bad) else {
            return;
        };
        println!(
            "{}:   segments of {} KiB, {mode:?}, payloads up to {}, {} KiB left free: full \
             after {} acknowledged records: {}",
            super::HARNESS,
            segment_size >> 10,
            if cap == usize::MAX {
                "the maximum".to_string()
            } else {
                cap.to_string()
            },
            slack >> 10,
            wl.expected.acked.len(),
            one_line(&err)
        );
        match classify(&err) {
            Ok(Step::Allocation) => {
                tally.allocation += 1;
                after_allocation_failure(root, &filler, &mut wl, (store, w), &op, next, tally, bad);
            }
            Ok(Step::Other(action)) => {
                tally.other.push(action.to_string());
                after_poisoning_failure(root, &filler, &mut wl, (store, w), &err, bad);
            }
            Err(e) => bad.push(e),
        }
    }

    /// Appends until one fails; returns that operation, its error and the `next_seq` before
    /// it. `None` (with a violation) if the disk never filled up.
    fn append_until_full(
        wl: &mut Workload,
        w: &WalWriter,
        bad: &mut Vec<String>,
    ) -> Option<(Vec<Ident>, Error, u64)> {
        // The file system cannot take more than its size.
        for _ in 0..(FS_SIZE / 16) {
            let op = wl.next_op();
            let next = w.next_seq().unwrap_or(0);
            if let Err(e) = wl.step(w, &op) {
                return Some((op, e, next));
            }
        }
        bad.push("the disk never filled up".into());
        None
    }

    /// A full disk while allocating a new segment: nothing changed, the writer works on.
    #[allow(clippy::too_many_arguments)]
    fn after_allocation_failure(
        root: &Path,
        filler: &Path,
        wl: &mut Workload,
        (store, w): (WalStore, WalWriter),
        op: &[Ident],
        next: u64,
        tally: &mut Tally,
        bad: &mut Vec<String>,
    ) {
        if w.is_poisoned() {
            bad.push("a full disk while allocating a segment poisoned the writer".into());
        }
        if let Ok(now) = w.next_seq()
            && now != next
        {
            bad.push(format!(
                "the failed append moved next_seq from {next} to {now}"
            ));
        }
        let left = temp_files(&wl.dir);
        if !left.is_empty() {
            bad.push(format!("the failed segment creation left {left:?} behind"));
        }
        bad.extend(wl.check_live());
        // Still full: the same append fails the same way, and still does not poison.
        match wl.step(&w, op) {
            Err(e) if classify(&e) == Ok(Step::Allocation) && !w.is_poisoned() => {}
            Err(e) => bad.push(format!("retrying on the full disk gave: {e}")),
            Ok(seq) => bad.push(format!("retrying on the full disk succeeded (seq {seq})")),
        }
        if let Err(e) = free(root, filler) {
            return bad.push(format!("could not delete the filler: {e}"));
        }
        match wl.step(&w, op) {
            Ok(seq) if seq == next => tally.retried_ok += 1,
            Ok(seq) => bad.push(format!("the retried append got seq {seq}, expected {next}")),
            Err(e) => return bad.push(format!("the retried append failed: {e}")),
        }
        keep_appending(wl, &w, bad);
        drop((w, store));
        bad.extend(wl.check_recovered());
        continue_after_reopen(wl, bad);
    }

    /// A full disk at any other step: the writer must be poisoned, and a reopened store must
    /// hold everything acknowledged.
    fn after_poisoning_failure(
        root: &Path,
        filler: &Path,
        wl: &mut Workload,
        (store, w): (WalStore, WalWriter),
        err: &Error,
        bad: &mut Vec<String>,
    ) {
        wl.drop_pending();
        if !w.is_poisoned() {
            bad.push(format!("the writer is not poisoned after: {err}"));
        }
        let op = wl.next_op();
        match wl.step(&w, &op) {
            Err(e) if e.is_poisoned() => {}
            other => bad.push(format!("an append after poisoning gave {other:?}")),
        }
        wl.drop_pending();
        drop((w, store));
        if let Err(e) = free(root, filler) {
            return bad.push(format!("could not delete the filler: {e}"));
        }
        bad.extend(wl.check_recovered());
        continue_after_reopen(wl, bad);
    }

    /// Appends a few more records, and syncs.
    fn keep_appending(wl: &mut Workload, w: &WalWriter, bad: &mut Vec<String>) {
        for _ in 0..20 {
            let op = wl.next_op();
            if let Err(e) = wl.step(w, &op) {
                return bad.push(format!("an append after space was freed failed: {e}"));
            }
        }
        if let Err(e) = wl.sync(w) {
            bad.push(format!("a sync after space was freed failed: {e}"));
        }
    }

    /// Reopens the log, appends a few records, and checks it again.
    fn continue_after_reopen(wl: &mut Workload, bad: &mut Vec<String>) {
        let Some(store) = open(wl, bad) else { return };
        let w = store.writer();
        keep_appending(wl, &w, bad);
        drop((w, store));
        bad.extend(wl.check_recovered());
    }

    fn segments(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".seg"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// A new log on a disk too full for its first segment: `open` fails cleanly, and works
    /// once there is space.
    fn open_when_full(root: &Path, seed: u64, bad: &mut Vec<String>) {
        let mut rng = Rng::new(seed);
        let segment_size = 1 << 20;
        let mut wl = Workload::new(
            &root.join("log"),
            segment_size,
            SyncMode::Always,
            9_000,
            seed,
        );
        // Room for the directory and the lock file, not for a segment.
        let filler = match fill(root, rng.range(64 << 10, 512 << 10)) {
            Ok(f) => f,
            Err(e) => return bad.push(format!("could not fill the disk: {e}")),
        };
        match WalStore::open(wl.config()) {
            Ok(_) => return bad.push("open succeeded on a full disk".into()),
            Err(e) => {
                if let Err(why) = classify(&e) {
                    bad.push(why);
                }
            }
        }
        let left = temp_files(&wl.dir);
        if segments(&wl.dir) != 0 || !left.is_empty() {
            bad.push(format!(
                "the failed open left segment files behind ({left:?})"
            ));
        }
        if let Err(e) = free(root, &filler) {
            return bad.push(format!("could not delete the filler: {e}"));
        }
        continue_after_reopen(&mut wl, bad);
    }

    /// No free inode: the new segment's file cannot even be created. Nothing of the log changed,
    /// so (as for the allocation) the error is typed, the writer does not poison, and the same
    /// append succeeds once an inode is free.
    fn inode_scenario(root: &Path, seed: u64, tally: &mut Tally, bad: &mut Vec<String>) {
        let mut wl = Workload::new(&root.join("log"), 64 << 10, SyncMode::Always, 9_000, seed);
        let Some(store) = open(&wl, bad) else { return };
        let w = store.writer();
        let inodes = root.join("inodes");
        let used = match use_all_inodes(&inodes) {
            Ok(n) => n,
            Err(e) => return bad.push(format!("could not use up the inodes: {e}")),
        };
        let Some((op, err, next)) = append_until_full(&mut wl, &w, bad) else {
            return;
        };
        match classify(&err) {
            Ok(Step::Other(action)) => tally.other.push(format!("{action} (no inode)")),
            Ok(Step::Allocation) => bad.push(format!("no inode, yet allocation failed: {err}")),
            Err(e) => return bad.push(e),
        }
        let poisoned = w.is_poisoned();
        if poisoned {
            bad.push(format!(
                "no inode left: the writer poisoned, but a full disk while creating a segment's \
                 file is documented not to: {err}"
            ));
        }
        println!(
            "{}:   no inode left after {} acknowledged records: {} (writer poisoned: {poisoned})",
            super::HARNESS,
            wl.expected.acked.len(),
            one_line(&err)
        );
        if !poisoned {
            bad.extend(wl.check_live());
        }
        wl.drop_pending();
        let freed = std::fs::remove_file(inodes.join(format!("{}", used - 1)))
            .and_then(|()| File::open(&inodes)?.sync_all());
        if let Err(e) = freed {
            return bad.push(format!("could not free an inode: {e}"));
        }
        if !poisoned {
            match wl.step(&w, &op) {
                Ok(seq) if seq == next => tally.retried_ok += 1,
                other => bad.push(format!(
                    "not poisoned, but the retried append gave {other:?} (expected seq {next})"
                )),
            }
        }
        drop((w, store));
        bad.extend(wl.check_recovered());
        // Room for the segments the rest of the scenario creates.
        if let Err(e) = std::fs::remove_dir_all(&inodes) {
            return bad.push(format!("could not free the inodes: {e}"));
        }
        continue_after_reopen(&mut wl, bad);
    }

    /// Creates empty files in `dir` until the file system has no inode left; returns how many.
    fn use_all_inodes(dir: &Path) -> std::io::Result<u64> {
        std::fs::create_dir(dir)?;
        for n in 0.. {
            match File::create(dir.join(format!("{n}"))) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::StorageFull && n > 0 => return Ok(n),
                Err(e) => return Err(e),
            }
        }
        unreachable!("the file system ran out of inodes")
    }
}

/// A full disk injected at each step of segment creation and at a flush (`fault-injection`).
#[cfg(feature = "fault-injection")]
mod injected {
    use std::io::ErrorKind;
    use std::sync::Arc;

    use softadastra_wal::fault::{FaultPlan, SysOp};
    use softadastra_wal::{SyncMode, WalStore};

    use super::workload::Workload;
    use super::{Step, classify, temp_files};
    use crate::support::{Report, Rng};

    pub fn run(report: &mut Report, rng: &mut Rng) {
        for op in [
            SysOp::Allocate,
            SysOp::SyncFile,
            SysOp::Rename,
            SysOp::SyncDir,
            SysOp::Flush,
        ] {
            let seed = rng.next_u64();
            report.case();
            for b in scenario(op, seed) {
                report.violation(format!("injected full disk at {op:?} (seed {seed}): {b}"));
            }
        }
    }

    fn scenario(op: SysOp, seed: u64) -> Vec<String> {
        let mut bad = Vec::new();
        let dir = super::tempdir();
        let mut wl = Workload::new(
            &dir.path().join("log"),
            16 << 10,
            SyncMode::Always,
            2_000,
            seed,
        );
        let plan = Arc::new(FaultPlan::new());
        let store = match WalStore::open(wl.config().fault_plan(plan.clone())) {
            Ok(s) => s,
            Err(e) => return vec![format!("open failed: {e}")],
        };
        let w = store.writer();
        for _ in 0..5 {
            let ops = wl.next_op();
            if let Err(e) = wl.step(&w, &ops) {
                return vec![format!("an append before the fault failed: {e}")];
            }
        }
        plan.fail_nth(op, plan.calls(op) + 1, ErrorKind::StorageFull);
        let mut failure = None;
        for _ in 0..500 {
            let ops = wl.next_op();
            let next = w.next_seq().unwrap_or(0);
            if let Err(e) = wl.step(&w, &ops) {
                failure = Some((ops, e, next));
                break;
            }
        }
        let Some((ops, err, next)) = failure else {
            return vec!["the injected fault was never hit".into()];
        };
        let expect_allocation = op == SysOp::Allocate;
        match classify(&err) {
            Ok(Step::Allocation) if expect_allocation => {
                if w.is_poisoned() {
                    bad.push("the writer poisoned".into());
                }
                let left = temp_files(&wl.dir);
                if !left.is_empty() {
                    bad.push(format!("left {left:?} behind"));
                }
                match wl.step(&w, &ops) {
                    Ok(seq) if seq == next => {}
                    other => bad.push(format!("the retry gave {other:?}, expected seq {next}")),
                }
            }
            Ok(Step::Other(_)) if !expect_allocation => {
                if !w.is_poisoned() {
                    bad.push(format!("the writer is not poisoned after: {err}"));
                }
                let ops = wl.next_op();
                match wl.step(&w, &ops) {
                    Err(e) if e.is_poisoned() => {}
                    other => bad.push(format!("an append after poisoning gave {other:?}")),
                }
            }
            Ok(step) => bad.push(format!("the error {err} was taken as {step:?}")),
            Err(e) => bad.push(e),
        }
        drop((w, store));
        bad.extend(wl.check_recovered());
        bad
    }
}

/// The directory lock between processes, and a reader in another process during appends.
mod locking {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use softadastra_wal::{SyncMode, WalStore};

    use super::workload::Workload;
    use super::{CHILD_DIR_VAR, CHILD_VAR};
    use crate::support::{Report, Rng};

    pub fn run(report: &mut Report, rng: &mut Rng) {
        type Case = fn(u64) -> Vec<String>;
        let cases: [(&str, Case); 3] = [
            ("lock held by this process", held_here),
            ("lock held by another process", held_there),
            ("reader in another process", reader_elsewhere),
        ];
        for (name, case) in cases {
            let seed = rng.next_u64();
            report.case();
            for b in case(seed) {
                report.violation(format!("{name} (seed {seed}): {b}"));
            }
        }
    }

    fn spawn(role: &str, dir: &Path) -> std::io::Result<Child> {
        Command::new(std::env::current_exe()?)
            .env(CHILD_VAR, role)
            .env(CHILD_DIR_VAR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
    }

    /// Runs a `probe` child and returns its one-line answer.
    fn probe(dir: &Path) -> Result<String, String> {
        let child = spawn("probe", dir).map_err(|e| format!("cannot start a child: {e}"))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("cannot wait for the child: {e}"))?;
        if !out.status.success() {
            return Err(format!("the probe child failed: {}", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A store here: another process is refused with `Locked`; once it is closed, not.
    fn held_here(seed: u64) -> Vec<String> {
        let mut bad = Vec::new();
        let dir = super::tempdir();
        let mut wl = Workload::new(dir.path(), 64 << 10, SyncMode::Always, 300, seed);
        let store = match WalStore::open(wl.config()) {
            Ok(s) => s,
            Err(e) => return vec![format!("open failed: {e}")],
        };
        let w = store.writer();
        let op = wl.next_op();
        if let Err(e) = wl.step(&w, &op) {
            bad.push(format!("append failed: {e}"));
        }
        match probe(dir.path()) {
            Ok(answer) if answer == "LOCKED" => {}
            other => bad.push(format!("a second process opening the log got {other:?}")),
        }
        drop((w, store));
        match probe(dir.path()) {
            Ok(answer) if answer == "OPENED" => {}
            other => bad.push(format!(
                "after the store was closed, another process got {other:?}"
            )),
        }
        bad.extend(wl.check_recovered());
        bad
    }

    /// A store in another process: this one is refused with `Locked` until that process dies.
    fn held_there(_seed: u64) -> Vec<String> {
        let mut bad = Vec::new();
        let dir = super::tempdir();
        let config = super::workload::config(dir.path(), 64 << 10, SyncMode::Always);
        let mut child = match spawn("hold", dir.path()) {
            Ok(c) => c,
            Err(e) => return vec![format!("cannot start a child: {e}")],
        };
        let first = child.stdout.take().and_then(|out| {
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line).ok()?;
            Some(line.trim().to_string())
        });
        if first.as_deref() != Some("HELD") {
            bad.push(format!("the holding child said {first:?}"));
        }
        match WalStore::open(config.clone()) {
            Err(e) if e.is_locked() => {}
            Err(e) => bad.push(format!("opening a log another process holds gave: {e}")),
            Ok(_) => bad.push("opened a log another process holds".into()),
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Err(e) = WalStore::open(config) {
            bad.push(format!("the lock outlived the process that held it: {e}"));
        }
        bad
    }

    /// Appends here (rotations, batches, truncations) while another process reads with
    /// `WalReader::open` and `refresh`; every pass it reports must be a gap-free log of records
    /// matching their identities, the same records the appends acknowledged.
    fn reader_elsewhere(seed: u64) -> Vec<String> {
        let mut bad = Vec::new();
        let dir = super::tempdir();
        let mut wl = Workload::new(dir.path(), 64 << 10, SyncMode::Always, 9_000, seed);
        let mut rng = Rng::new(seed);
        let store = match WalStore::open(wl.config()) {
            Ok(s) => s,
            Err(e) => return vec![format!("open failed: {e}")],
        };
        let w = store.writer();
        let mut child = match spawn(&format!("reader {}", super::support::now_ms()), dir.path()) {
            Ok(c) => c,
            Err(e) => return vec![format!("cannot start a child: {e}")],
        };
        // Collect the reader's lines as they come, so that the appends go on until it has made
        // a few passes during them (a loaded machine can be slow to start it).
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let listener = child.stdout.take().map(|out| {
            let said = said.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(mut v) = said.lock() {
                        v.push(line);
                    }
                }
            })
        });
        let passes = || said.lock().map_or(0, |v| v.len());
        let started = Instant::now();
        let (least, most) = (Duration::from_millis(1_500), Duration::from_secs(60));
        while started.elapsed() < most && (started.elapsed() < least || passes() < 3) {
            let op = wl.next_op();
            if let Err(e) = wl.step(&w, &op) {
                bad.push(format!("append failed: {e}"));
                break;
            }
            if rng.one_in(40)
                && let Some(last) = wl.expected.last_acked()
            {
                let target = rng.range(1, last);
                match store.truncate_before(target) {
                    Ok(_) => {
                        wl.expected.truncated_before = wl.expected.truncated_before.max(target)
                    }
                    Err(e) => bad.push(format!("truncate_before({target}) failed: {e}")),
                }
            }
        }
        // Tell the reader to make its last pass, then read everything it said.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"FINAL\n");
        }
        match child.wait() {
            Ok(status) if !status.success() => {
                bad.push(format!("the reader child failed: {status}"));
            }
            Ok(_) => {}
            Err(e) => return vec![format!("cannot wait for the reader: {e}")],
        }
        if let Some(listener) = listener {
            let _ = listener.join();
        }
        let out = said.lock().map(|v| v.join("\n")).unwrap_or_default();
        bad.extend(judge_passes(&out, &wl));
        drop((w, store));
        bad.extend(wl.check_recovered());
        bad
    }

    /// The reader's `PASS n first last digest` lines must each agree with what was acknowledged;
    /// its `FINAL` pass must end at the last acknowledged record. `BAD` lines are violations.
    fn judge_passes(out: &str, wl: &Workload) -> Vec<String> {
        let mut bad = Vec::new();
        let (mut passes, mut last_seen, mut final_last) = (0, 0, None);
        for line in out.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["BAD", ..] => bad.push(format!("the reader found: {line}")),
                [kind @ ("PASS" | "FINAL"), first, last, digest] => {
                    let parsed = (
                        first.parse::<u64>(),
                        last.parse::<u64>(),
                        digest.parse::<u64>(),
                    );
                    let (Ok(first), Ok(last), Ok(digest)) = parsed else {
                        bad.push(format!("bad line from the reader: {line}"));
                        continue;
                    };
                    passes += 1;
                    if last < last_seen {
                        bad.push(format!(
                            "a later pass ends at {last}, an earlier one at {last_seen}"
                        ));
                    }
                    last_seen = last;
                    if let Some(why) = disagrees(first, last, digest, wl) {
                        bad.push(format!("{line}: {why}"));
                    }
                    if *kind == "FINAL" {
                        final_last = Some(last);
                    }
                }
                _ => bad.push(format!("bad line from the reader: {line}")),
            }
        }
        if passes < 3 {
            bad.push(format!("the reader made only {passes} passes"));
        }
        let acked = wl.expected.last_acked().unwrap_or(0);
        if final_last != Some(acked) {
            bad.push(format!(
                "the reader's final pass ends at {final_last:?}, the log at {acked}"
            ));
        }
        bad
    }

    /// Whether a pass over `first..=last` with `digest` disagrees with the acknowledged records.
    fn disagrees(first: u64, last: u64, digest: u64, wl: &Workload) -> Option<String> {
        if last < first {
            return None; // an empty pass
        }
        let mut expected = 0u64;
        for seq in first..=last {
            // Every append was acknowledged before the reader's last pass.
            let Some(who) = wl.expected.acked.get(&seq) else {
                return Some(format!("seq {seq} was never acknowledged"));
            };
            expected = expected.wrapping_add(super::child::digest(seq, *who));
        }
        (expected != digest).then(|| "records differ from those acknowledged".to_string())
    }
}

/// The children: `probe` (try to open the store), `hold` (open it and wait to be killed) and
/// `reader <ms>` (read the log in passes until told to stop).
mod child {
    use std::io::{BufRead as _, Write as _};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use softadastra_wal::{WalConfig, WalReader, WalStore};

    use crate::support::{self, Expected, Ident};

    pub fn run(role: &str) -> ExitCode {
        let Ok(dir) = std::env::var(super::CHILD_DIR_VAR) else {
            return ExitCode::from(2);
        };
        let words: Vec<&str> = role.split_whitespace().collect();
        match words.as_slice() {
            ["probe"] => probe(&dir),
            ["hold"] => hold(&dir),
            ["reader", ms] => reader(&dir, ms.parse().unwrap_or(0)),
            _ => ExitCode::from(2),
        }
    }

    fn probe(dir: &str) -> ExitCode {
        match WalStore::open(WalConfig::new(dir)) {
            Ok(_) => println!("OPENED"),
            Err(e) if e.is_locked() => println!("LOCKED"),
            Err(e) => println!("ERR {e}"),
        }
        ExitCode::SUCCESS
    }

    fn hold(dir: &str) -> ExitCode {
        let store = WalStore::open(WalConfig::new(dir).segment_size(64 << 10));
        match &store {
            Ok(_) => println!("HELD"),
            Err(e) => println!("ERR {e}"),
        }
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs(60));
        ExitCode::from(4)
    }

    /// A record's contribution to a pass digest: the parent recomputes it from what it
    /// acknowledged.
    pub fn digest(seq: u64, who: Ident) -> u64 {
        let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(who.writer).rotate_left(29)
            ^ who.counter.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        x ^= x >> 31;
        x.wrapping_mul(0x94D0_49BB_1331_11EB)
    }

    /// Reads the whole log again and again (a fresh `WalReader::open` or a `refresh`), checking
    /// each pass (I2, I3) and reporting its range and digest, until stdin says FINAL.
    fn reader(dir: &str, started_ms: u64) -> ExitCode {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            flag.store(true, Ordering::SeqCst);
        });
        let mut reader = None;
        for pass in 0u64.. {
            let last_pass = stop.load(Ordering::SeqCst);
            let kind = if last_pass { "FINAL" } else { "PASS" };
            if let Err(e) = one_pass(dir, &mut reader, pass, started_ms, kind) {
                println!("BAD pass {pass}: {e}");
            }
            if last_pass {
                break;
            }
        }
        ExitCode::SUCCESS
    }

    fn one_pass(
        dir: &str,
        reader: &mut Option<WalReader>,
        pass: u64,
        started_ms: u64,
        kind: &str,
    ) -> Result<(), String> {
        // Alternate between a fresh open and a refresh of the previous reader.
        let r = match reader.take() {
            Some(mut r) if pass % 2 == 1 => {
                r.refresh().map_err(|e| format!("refresh failed: {e}"))?;
                r
            }
            _ => WalReader::open(dir).map_err(|e| format!("open failed: {e}"))?,
        };
        let records = r
            .iter()
            .map(|x| x.map(|x| x.to_record()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reading failed: {e}"))?;
        let window = started_ms.saturating_sub(1_000)..=support::now_ms() + 1_000;
        let (normalized, mut bad) = support::normalize_batch_timestamps(&records, window);
        bad.extend(support::check_records(&normalized, &Expected::default()));
        if let Some(first) = bad.first() {
            return Err(format!("{} problems, first: {first}", bad.len()));
        }
        let digest = records.iter().fold(0u64, |d, r| {
            let who = Ident::of_payload(&r.payload).unwrap_or(Ident::new(0, 0));
            d.wrapping_add(digest(r.seq, who))
        });
        let first = records.first().map_or(1, |r| r.seq);
        let last = records.last().map_or(0, |r| r.seq);
        println!("{kind} {first} {last} {digest}");
        *reader = Some(r);
        Ok(())
    }
}
