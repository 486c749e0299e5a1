//! The parent side of one kill: start a child, wait for the chosen moment, `SIGKILL` it, and
//! collect every complete line it reported.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::child::{Mode, Msg, Spec};

/// A child that has not reached its marker by then is hung: a violation, killed anyway.
const MARKER_TIMEOUT: Duration = Duration::from_secs(20);

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
pub enum KillAt {
    /// This long after the process was started (possibly before it opened the log).
    Spawned(Duration),
    /// This long after it reported that it is calling `WalStore::open` (during recovery).
    Opening(Duration),
    /// This long after `WalStore::open` returned (while it appends).
    Ready(Duration),
}

impl KillAt {
    fn delay(self) -> Duration {
        match self {
            KillAt::Spawned(d) | KillAt::Opening(d) | KillAt::Ready(d) => d,
        }
    }

    /// Whether `msg` is the one the kill waits for.
    fn is_marker(self, msg: &Msg) -> bool {
        match self {
            KillAt::Spawned(_) => false,
            KillAt::Opening(_) => matches!(msg, Msg::Opening),
            KillAt::Ready(_) => matches!(msg, Msg::Ready(_)),
        }
    }
}

/// What one killed child did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every complete message, in the order the child sent them.
    pub msgs: Vec<Msg>,
    /// The child died of the `SIGKILL` (rather than exiting on its own).
    pub killed: bool,
    /// It exited on its own with status 0.
    pub exited_ok: bool,
    /// How it ended, for messages.
    pub status: String,
    /// The marker the kill waited for never came (and the child had not exited).
    pub hung: bool,
}

impl Outcome {
    pub fn began_open(&self) -> bool {
        self.msgs.contains(&Msg::Opening)
    }

    /// How long `WalStore::open` took, if it returned.
    pub fn open_time(&self) -> Option<Duration> {
        self.msgs.iter().find_map(|m| match m {
            Msg::Ready(micros) => Some(Duration::from_micros(*micros)),
            _ => None,
        })
    }

    pub fn opened(&self) -> bool {
        self.open_time().is_some()
    }

    /// The failures the child reported.
    pub fn failures(&self) -> impl Iterator<Item = &str> {
        self.msgs.iter().filter_map(|m| match m {
            Msg::Failed(why) => Some(why.as_str()),
            _ => None,
        })
    }
}

/// Runs this test binary as a child in `mode` on `spec`, kills it at `kill_at`, and returns what
/// it reported.
pub fn run_child(mode: Mode, spec: &Spec, kill_at: KillAt) -> std::io::Result<Outcome> {
    let mut cmd = Command::new(std::env::current_exe()?);
    spec.apply(mode, &mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("child stdout is piped");
    let (tx, rx) = mpsc::channel();
    let lines = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        // Only complete lines: a kill can cut the last one short.
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            if line.last() == Some(&b'\n')
                && let Some(msg) =
                    Msg::parse(String::from_utf8_lossy(&line[..line.len() - 1]).as_ref())
                && tx.send(msg).is_err()
            {
                break;
            }
            line.clear();
        }
    });
    let mut msgs = Vec::new();
    let hung = !wait_for_moment(kill_at, &rx, &mut msgs);
    // The child may already have exited (on a failure); killing a reaped-not-yet zombie is fine.
    let _ = child.kill();
    let status = child.wait()?;
    let _ = lines.join();
    msgs.extend(rx.try_iter());
    Ok(Outcome {
        msgs,
        killed: status.signal() == Some(9),
        exited_ok: status.success(),
        status: status.to_string(),
        hung,
    })
}

/// Sleeps until the kill moment, collecting messages meanwhile. False if the marker never came
/// while the child was still alive.
fn wait_for_moment(kill_at: KillAt, rx: &Receiver<Msg>, msgs: &mut Vec<Msg>) -> bool {
    if !matches!(kill_at, KillAt::Spawned(_)) {
        let deadline = Instant::now() + MARKER_TIMEOUT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(msg) => {
                    let reached = kill_at.is_marker(&msg);
                    msgs.push(msg);
                    if reached {
                        break;
                    }
                }
                // The child exited before the marker: it has reported why.
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }
    std::thread::sleep(kill_at.delay());
    true
}
