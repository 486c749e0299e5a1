//! Using the log from async code (tokio).
//!
//! Appends and `sync` block the calling thread until the disk has the bytes (about 0.1 ms to
//! several ms per flush), and so does `wait_for`. Called directly from an async task they would
//! stall an executor thread and every task scheduled on it, so they must run on threads made for
//! blocking. Two ways, both shown and timed here:
//!
//! 1. **`spawn_blocking` per append**, with `SyncMode::Always`. Simplest: each call runs on
//!    tokio's blocking pool, and appends that run at the same time share flushes (the store's
//!    group commit). Right for occasional appends, or when each task needs its own durable
//!    acknowledgement with no extra code.
//! 2. **A dedicated writer thread** fed by a channel, with `SyncMode::Manual`. Tasks send a
//!    request and await a reply (a oneshot channel); the thread takes every request waiting,
//!    appends them one by one, makes them durable with one `sync`, then replies to each. One
//!    thread instead of one blocking-pool thread per waiting append, a flush shared by everything
//!    that queued up meanwhile, and backpressure from the bounded channel. Right for many small
//!    appends from many tasks. Each request still gets its own result: an append refused (too
//!    large, say) fails alone; a failed `sync` fails every request of its round, and poisons the
//!    writer as always.
//!
//! A follower reads the log from async code the same way: `wait_for` inside `spawn_blocking`
//! (or on its own thread), handing records to async code through a channel.
//!
//! Run it with (the optional argument is the number of tasks, each appending 20 records;
//! default 64):
//!
//! ```text
//! cargo run --release -p softadastra-wal-async-example
//! cargo run --release -p softadastra-wal-async-example -- 500
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordType, SyncMode, WalConfig, WalStore, WalWriter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinSet, spawn_blocking};

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Appends per task.
const PER_TASK: u64 = 20;
/// Requests the writer thread takes in one round (one `sync`) at most.
const MAX_ROUND: usize = 512;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let tasks: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a number of tasks: {arg}"))?,
        None => 64,
    };
    let tmp = tempfile::tempdir()?;
    let total = tasks * PER_TASK;
    println!(
        "async: {tasks} tasks x {PER_TASK} appends, logs in {}",
        tmp.path().display()
    );

    // 1. spawn_blocking. Opening runs recovery (file I/O) too: it also goes to the blocking pool.
    let dir = tmp.path().join("spawn_blocking");
    let store = spawn_blocking(move || WalStore::open(WalConfig::new(dir))).await??;
    let follower = spawn_blocking({
        let mut reader = store.reader();
        move || -> Result<u64> {
            let mut next = 1;
            while next <= total {
                if !reader.wait_for(next, Duration::from_secs(10))? {
                    return Err(
                        format!("the follower saw nothing after record {}", next - 1).into(),
                    );
                }
                for record in reader.iter_from(next) {
                    if record?.seq() != next {
                        return Err("the follower missed a record".into());
                    }
                    next += 1;
                }
            }
            Ok(next - 1)
        }
    });
    let writer = store.writer();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let writer = writer.clone();
        set.spawn(async move {
            for i in 0..PER_TASK {
                let w = writer.clone();
                let payload = format!("task {task} change {i}");
                spawn_blocking(move || w.append(RecordType::Put, payload.as_bytes())).await??;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    let took = started.elapsed();
    let followed = follower.await??;
    report("spawn_blocking", total, took, &store)?;
    println!(
        "  {:<15} a spawn_blocking follower saw all {followed} records",
        ""
    );
    drop(writer);
    drop(store);

    // 2. A dedicated writer thread.
    let dir = tmp.path().join("writer_thread");
    let config = WalConfig::new(dir).sync_mode(SyncMode::Manual);
    let store = spawn_blocking(move || WalStore::open(config)).await??;
    let (log, thread) = Log::start(store.writer());
    let started = Instant::now();
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let log = log.clone();
        set.spawn(async move {
            for i in 0..PER_TASK {
                log.append(
                    RecordType::Put,
                    format!("task {task} change {i}").into_bytes(),
                )
                .await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    let took = started.elapsed();
    // The thread ends when the last handle is dropped.
    drop(log);
    spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| "the writer thread panicked")?;
    report("writer thread", total, took, &store)?;
    if store.last_seq() != Some(total) {
        return Err("the writer thread's log does not hold every record".into());
    }
    drop(store);
    tmp.close()?;
    Ok(())
}

fn report(name: &str, total: u64, took: Duration, store: &WalStore) -> Result<()> {
    let stats = store.stats()?;
    println!(
        "  {name:<15} {total} durable appends in {:.0} ms ({:.1} k/s), {} flushes ({:.1} appends per flush)",
        took.as_secs_f64() * 1e3,
        total as f64 / took.as_secs_f64() / 1e3,
        stats.flushes,
        stats.appends as f64 / stats.flushes.max(1) as f64
    );
    Ok(())
}

/// What a task asks the writer thread for, and where the answer goes.
struct Request {
    record_type: RecordType,
    payload: Vec<u8>,
    reply: oneshot::Sender<Reply>,
}

/// The sequence number of the durable record, or why there is none. Shared because a failed
/// `sync` is the answer to every request of its round.
type Reply = Result<u64, Arc<softadastra_wal::Error>>;

/// The async side of the writer thread: cheap to clone, one per task.
#[derive(Clone)]
struct Log {
    requests: mpsc::Sender<Request>,
}

impl Log {
    /// Starts the writer thread. It runs until every `Log` handle is dropped.
    fn start(writer: WalWriter) -> (Log, std::thread::JoinHandle<()>) {
        // Bounded: when the disk falls behind, senders wait instead of queueing without limit.
        let (requests, queue) = mpsc::channel(4 * MAX_ROUND);
        let thread = std::thread::spawn(move || write_rounds(&writer, queue));
        (Log { requests }, thread)
    }

    /// Appends a record and returns its sequence number once it is durable.
    async fn append(&self, record_type: RecordType, payload: Vec<u8>) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            record_type,
            payload,
            reply,
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| "the writer thread has stopped")?;
        Ok(answer
            .await
            .map_err(|_| "the writer thread dropped the request")??)
    }
}

/// The writer thread: a round takes the requests waiting (at least one), appends them, syncs
/// once, and answers each.
fn write_rounds(writer: &WalWriter, mut queue: mpsc::Receiver<Request>) {
    let mut round = Vec::with_capacity(MAX_ROUND);
    while let Some(first) = queue.blocking_recv() {
        round.push(first);
        while round.len() < MAX_ROUND {
            match queue.try_recv() {
                Ok(request) => round.push(request),
                Err(_) => break,
            }
        }
        let appended: Vec<Reply> = round
            .iter()
            .map(|r| writer.append(r.record_type, &r.payload).map_err(Arc::new))
            .collect();
        let synced = writer.sync().map_err(Arc::new);
        for (request, result) in round.drain(..).zip(appended) {
            let reply = match &synced {
                Ok(()) => result,
                Err(e) => Err(e.clone()),
            };
            // A task that stopped waiting (cancelled) does not need the answer.
            let _ = request.reply.send(reply);
        }
    }
}
