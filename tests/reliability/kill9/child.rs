//! The child side of the kill9 harness: this same test binary, re-executed with
//! [`MODE_VAR`] set, opens the log and (in `append` mode) appends from several threads until it
//! is killed, reporting on stdout each sequence number only after its append returned `Ok`.
//!
//! The protocol is one line per message ([`Msg`]). Every message is written with one `write`
//! to a pipe, so a kill leaves at most a partial last line, which the parent drops: a line the
//! parent reads is always a true statement.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use softadastra_wal::{WalConfig, WalStore, WalWriter};

use crate::batch;
use crate::support::{Ident, Rng};

/// Set (to a [`Mode`] name) when the binary runs as a child.
pub const MODE_VAR: &str = "SOFTADASTRA_WAL_KILL9_CHILD";
const DIR_VAR: &str = "SOFTADASTRA_WAL_KILL9_DIR";
const SEGMENT_VAR: &str = "SOFTADASTRA_WAL_KILL9_SEGMENT";
const INTERVAL_VAR: &str = "SOFTADASTRA_WAL_KILL9_INTERVAL";
const WRITER_VAR: &str = "SOFTADASTRA_WAL_KILL9_WRITER_BASE";
const SEED_VAR: &str = "SOFTADASTRA_WAL_KILL9_SEED";

/// Appending threads per child.
pub const THREADS: u32 = 3;

/// What a child does after opening the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Appends (singles and batches) and truncates until killed.
    Append,
    /// Only recovers (opens the store) and exits: the parent kills it during recovery.
    Recover,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Recover => "recover",
        }
    }
}

/// Everything a child needs to know, passed through its environment.
#[derive(Clone, Debug)]
pub struct Spec {
    pub dir: PathBuf,
    pub segment_size: u64,
    pub index_interval: u64,
    /// Writers `writer_base .. writer_base + THREADS`: never reused, so identities never repeat
    /// across cycles.
    pub writer_base: u32,
    pub seed: u64,
}

impl Spec {
    /// The store configuration (default `SyncMode::Always`).
    pub fn config(&self) -> WalConfig {
        WalConfig::new(&self.dir)
            .segment_size(self.segment_size)
            .index_interval(self.index_interval)
    }

    /// Sets `cmd`'s environment so that it runs as a child in `mode`.
    pub fn apply(&self, mode: Mode, cmd: &mut Command) {
        cmd.env(MODE_VAR, mode.name())
            .env(DIR_VAR, &self.dir)
            .env(SEGMENT_VAR, self.segment_size.to_string())
            .env(INTERVAL_VAR, self.index_interval.to_string())
            .env(WRITER_VAR, self.writer_base.to_string())
            .env(SEED_VAR, self.seed.to_string());
    }

    fn from_env() -> Result<(Mode, Spec), String> {
        let var = |name: &str| std::env::var(name).map_err(|e| format!("{name}: {e}"));
        let num = |name: &str| -> Result<u64, String> {
            var(name)?.parse().map_err(|e| format!("{name}: {e}"))
        };
        let mode = match var(MODE_VAR)?.as_str() {
            "append" => Mode::Append,
            "recover" => Mode::Recover,
            other => return Err(format!("unknown child mode {other:?}")),
        };
        let spec = Spec {
            dir: PathBuf::from(var(DIR_VAR)?),
            segment_size: num(SEGMENT_VAR)?,
            index_interval: num(INTERVAL_VAR)?,
            writer_base: u32::try_from(num(WRITER_VAR)?).map_err(|e| e.to_string())?,
            seed: num(SEED_VAR)?,
        };
        Ok((mode, spec))
    }
}

/// One line of the child-to-parent protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// About to call `WalStore::open` (recovery starts).
    Opening,
    /// `WalStore::open` returned `Ok`, after this many microseconds.
    Ready(u64),
    /// The append of record `seq` with this identity returned `Ok`.
    Ack(u64, Ident),
    /// About to call `truncate_before(seq)`.
    TruncateIntent(u64),
    /// `truncate_before(seq)` returned `Ok`.
    Truncated(u64),
    /// The library returned an error (or panicked); the child exits.
    Failed(String),
}

impl Msg {
    /// The line for this message, newline included.
    pub fn encode(&self) -> String {
        match self {
            Msg::Opening => "B\n".to_string(),
            Msg::Ready(micros) => format!("R {micros}\n"),
            Msg::Ack(seq, who) => format!("A {seq} {} {}\n", who.writer, who.counter),
            Msg::TruncateIntent(seq) => format!("t {seq}\n"),
            Msg::Truncated(seq) => format!("T {seq}\n"),
            Msg::Failed(why) => format!("E {}\n", why.replace('\n', " | ")),
        }
    }

    /// Parses one complete line (without its newline).
    pub fn parse(line: &str) -> Option<Msg> {
        let mut words = line.splitn(2, ' ');
        let kind = words.next()?;
        let rest = words.next().unwrap_or("");
        let nums = || -> Option<Vec<u64>> { rest.split(' ').map(|w| w.parse().ok()).collect() };
        Some(match kind {
            "B" => Msg::Opening,
            "R" => Msg::Ready(rest.parse().ok()?),
            "A" => match nums()?.as_slice() {
                &[seq, writer, counter] => {
                    Msg::Ack(seq, Ident::new(u32::try_from(writer).ok()?, counter))
                }
                _ => return None,
            },
            "t" => Msg::TruncateIntent(rest.parse().ok()?),
            "T" => Msg::Truncated(rest.parse().ok()?),
            "E" => Msg::Failed(rest.to_string()),
            _ => return None,
        })
    }
}

/// Sends messages to the parent: each group of lines in one locked write, flushed at once.
fn send(msgs: &[Msg]) {
    let text: String = msgs.iter().map(Msg::encode).collect();
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        // The parent is gone; nothing left to report to.
        std::process::exit(4);
    }
}

/// Reports a failure and ends the child.
fn fail(why: String) -> ! {
    send(&[Msg::Failed(why)]);
    std::process::exit(3);
}

/// If this process is a child (its environment says so), runs it and returns its exit code.
pub fn run_if_child() -> Option<ExitCode> {
    std::env::var_os(MODE_VAR)?;
    // A panic anywhere in the child is a violation (I5): report it before dying.
    std::panic::set_hook(Box::new(|info| fail(format!("panic: {info}"))));
    let (mode, spec) = Spec::from_env().unwrap_or_else(|e| fail(format!("bad child spec: {e}")));
    send(&[Msg::Opening]);
    let started = std::time::Instant::now();
    let store = WalStore::open(spec.config()).unwrap_or_else(|e| fail(format!("open: {e}")));
    send(&[Msg::Ready(started.elapsed().as_micros() as u64)]);
    if mode == Mode::Recover {
        return Some(ExitCode::SUCCESS);
    }
    append_until_killed(&store, &spec)
}

/// Runs [`THREADS`] appending threads on one store until the parent kills the process.
fn append_until_killed(store: &WalStore, spec: &Spec) -> ! {
    let max_single = store
        .config()
        .max_payload()
        .unwrap_or_else(|e| fail(format!("max_payload: {e}"))) as usize;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let worker = Worker {
                store,
                writer: store.writer(),
                writer_id: spec.writer_base + t,
                rng: Rng::new(spec.seed ^ u64::from(t).wrapping_mul(0x9E37_79B9)),
                max_single,
                truncates: t == 0,
                counter: 0,
                batches: 0,
            };
            s.spawn(move || worker.run());
        }
    });
    fail("every appending thread stopped".to_string())
}

/// One appending thread of a child.
struct Worker<'a> {
    store: &'a WalStore,
    writer: WalWriter,
    writer_id: u32,
    rng: Rng,
    max_single: usize,
    /// Whether this thread also truncates now and then.
    truncates: bool,
    counter: u64,
    batches: u64,
}

impl Worker<'_> {
    fn run(mut self) {
        loop {
            if self.truncates && self.rng.one_in(30) {
                self.truncate();
            } else if self.rng.one_in(2) {
                self.append_batch();
            } else {
                self.append_one();
            }
        }
    }

    fn append_one(&mut self) {
        let who = Ident::new(self.writer_id, self.counter);
        self.counter += 1;
        let payload = who.payload(who.len(self.max_single));
        match self
            .writer
            .append_with_timestamp(who.record_type(), who.timestamp(), &payload)
        {
            Ok(seq) => send(&[Msg::Ack(seq, who)]),
            Err(e) => fail(format!(
                "append of writer {} record {}: {e}",
                who.writer, who.counter
            )),
        }
    }

    fn append_batch(&mut self) {
        let size = self.rng.range(2, 5) as usize;
        self.batches += 1;
        let idents = batch::idents(self.writer_id, self.batches, size);
        // The whole batch must fit into one segment.
        let max = (self.max_single / size).saturating_sub(48);
        let payloads: Vec<Vec<u8>> = idents.iter().map(|w| w.payload(w.len(max))).collect();
        let records = idents
            .iter()
            .zip(&payloads)
            .map(|(w, p)| (w.record_type(), p.as_slice()));
        match self.writer.append_batch(records) {
            Ok(range) if range.clone().count() == size => {
                let acks: Vec<Msg> = range
                    .zip(&idents)
                    .map(|(seq, w)| Msg::Ack(seq, *w))
                    .collect();
                send(&acks);
            }
            Ok(range) => fail(format!(
                "batch of {size} records got sequence numbers {range:?}"
            )),
            Err(e) => fail(format!(
                "batch {} of writer {}: {e}",
                self.batches, self.writer_id
            )),
        }
    }

    /// Truncates before a sequence number somewhat behind the end of the log.
    fn truncate(&mut self) {
        let Some(last) = self.store.last_seq() else {
            return;
        };
        let target = last.saturating_sub(self.rng.range(10, 400)).max(1);
        send(&[Msg::TruncateIntent(target)]);
        match self.store.truncate_before(target) {
            Ok(_) => send(&[Msg::Truncated(target)]),
            Err(e) => fail(format!("truncate_before({target}): {e}")),
        }
    }
}
