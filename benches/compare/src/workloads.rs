//! The eight workloads. Each runs every subject that has the tier, `runs` times, with the floor
//! measured in the same round right before; ratios are taken round by round, then the median.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::floors;
use crate::ours;
use crate::report::{Cell, Goal, Row};
use crate::subject::{Getter, Subject};
use crate::util::{Payloads, Res, Rng, guarded, median, percentile, remove_dir};

pub struct Params {
    pub quick: bool,
    pub runs: usize,
    pub w1_n: usize,
    pub w2_threads: usize,
    pub w2_secs: f64,
    pub w3_total: u64,
    pub w4_small_n: u64,
    pub w4_big_n: u64,
    pub w5_bytes: u64,
    pub w5_payload: usize,
    pub w6_records: u64,
    pub w6_gets: usize,
    pub w7_seg_size: u64,
    pub w7_segments: u64,
}

impl Params {
    pub fn new(quick: bool, runs: Option<usize>) -> Params {
        if quick {
            Params {
                quick,
                runs: runs.unwrap_or(3),
                w1_n: 200,
                w2_threads: 8,
                w2_secs: 0.2,
                w3_total: 16 << 20,
                w4_small_n: 50_000,
                w4_big_n: 256,
                w5_bytes: 16 << 20,
                w5_payload: 4096,
                w6_records: 20_000,
                w6_gets: 5_000,
                w7_seg_size: 4 << 20,
                w7_segments: 16,
            }
        } else {
            Params {
                quick,
                runs: runs.unwrap_or(5),
                w1_n: 2_000,
                w2_threads: 8,
                w2_secs: 1.0,
                w3_total: 256 << 20,
                w4_small_n: 1_000_000,
                w4_big_n: 4096,
                w5_bytes: 1 << 30,
                w5_payload: 4096,
                w6_records: 1_000_000,
                w6_gets: 50_000,
                w7_seg_size: 64 << 20,
                w7_segments: 64,
            }
        }
    }

    /// Disk space the largest workload needs at once (W5 keeps one log per subject).
    pub fn disk_needed(&self, subjects: usize) -> u64 {
        let w5 = self.w5_bytes * 11 / 10 * subjects as u64;
        let w7 = self.w7_seg_size * (self.w7_segments + 2);
        w5.max(w7) + (512 << 20)
    }
}

/// One subject's figure across the rounds.
#[derive(Clone, Debug)]
pub struct Fig {
    vals: Vec<Option<f64>>,
    na: Option<String>,
    err: Option<String>,
}

impl Fig {
    fn new(runs: usize) -> Fig {
        Fig {
            vals: vec![None; runs],
            na: None,
            err: None,
        }
    }

    fn ok(&self) -> bool {
        self.na.is_none() && self.err.is_none()
    }

    fn cell(&self) -> Cell {
        if let Some(why) = &self.na {
            return Cell::NotApplicable(why.clone());
        }
        if let Some(e) = &self.err {
            return Cell::Failed(e.clone());
        }
        Cell::from_runs(&self.vals.iter().flatten().copied().collect::<Vec<_>>())
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        if self.err.is_none() {
            self.err = Some(e.to_string());
        }
    }
}

/// Per-round `a / b`, median.
fn pair_ratio(a: &Fig, b: &Fig) -> Option<f64> {
    if !a.ok() || !b.ok() {
        return None;
    }
    let r: Vec<f64> = a
        .vals
        .iter()
        .zip(&b.vals)
        .filter_map(|(x, y)| Some(x.as_ref()? / y.as_ref()?))
        .collect();
    if r.is_empty() { None } else { Some(median(&r)) }
}

/// Per round, the best value among the peers that have one (`higher`: larger is better).
fn best_of(peers: &[Fig], higher: bool) -> Option<Fig> {
    let usable: Vec<&Fig> = peers.iter().filter(|f| f.ok()).collect();
    if usable.is_empty() {
        return None;
    }
    let runs = usable[0].vals.len();
    let mut best = Fig::new(runs);
    for r in 0..runs {
        let vals = usable.iter().filter_map(|f| f.vals[r]);
        best.vals[r] = if higher {
            vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        } else {
            vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))
        };
    }
    Some(best)
}

fn goal(text: &str, value: Option<f64>, unit: &'static str, ok: impl Fn(f64) -> bool) -> Goal {
    Goal {
        text: text.into(),
        value,
        unit,
        met: value.map(ok),
    }
}

pub struct Ctx<'a> {
    pub p: &'a Params,
    pub data: PathBuf,
    /// This crate first, then the peers.
    pub subjects: Vec<&'a Subject>,
    pub errors: Vec<String>,
}

impl Ctx<'_> {
    fn dir(&self, name: &str) -> PathBuf {
        self.data.join(name)
    }

    fn npeers(&self) -> usize {
        self.subjects.len() - 1
    }

    fn row(
        &self,
        id: &'static str,
        workload: &str,
        figure: &str,
        unit: &'static str,
        figs: &[Fig],
    ) -> Row {
        let mut row = Row::new(id, workload, figure, unit, self.npeers());
        row.ours = figs[0].cell();
        for (k, f) in figs[1..].iter().enumerate() {
            row.peers[k] = f.cell();
        }
        row
    }

    fn note_errors(&mut self, what: &str, figs: &[Fig]) {
        for (s, f) in self.subjects.iter().zip(figs) {
            if let Some(e) = &f.err {
                self.errors.push(format!("{what} {}: {e}", s.name));
            }
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// ---- W1 ----------------------------------------------------------------------------------------

/// Durable appends from one thread. Returns the rows and this crate's records/s per round (W2's
/// goal compares with it).
pub fn w1(ctx: &mut Ctx) -> (Vec<Row>, Fig) {
    const LEN: usize = 128;
    const WARM: u64 = 20;
    let (runs, n) = (ctx.p.runs, ctx.p.w1_n);
    let ns = ctx.subjects.len();
    let (mut p50, mut p99, mut rate) = (
        vec![Fig::new(runs); ns],
        vec![Fig::new(runs); ns],
        vec![Fig::new(runs); ns],
    );
    let (mut f50, mut f99, mut frate) = (Fig::new(runs), Fig::new(runs), Fig::new(runs));
    for r in 0..runs {
        match guarded(|| floors::pwrite_fdatasync(&ctx.data, n, LEN)) {
            Ok(mut lat) => {
                let total: Duration = lat.iter().sum();
                lat.sort();
                f50.vals[r] = Some(us(percentile(&lat, 0.5)));
                f99.vals[r] = Some(us(percentile(&lat, 0.99)));
                frate.vals[r] = Some(n as f64 / total.as_secs_f64());
            }
            Err(e) => f50.fail(e),
        }
        for (k, s) in ctx.subjects.iter().enumerate() {
            let tier = match &s.durable {
                Ok(t) => t,
                Err(why) => {
                    for f in [&mut p50[k], &mut p99[k], &mut rate[k]] {
                        f.na = Some(why.to_string());
                    }
                    continue;
                }
            };
            let dir = ctx.dir(&format!("w1-{}-{r}", s.name));
            let res = guarded(|| {
                let log = tier.open(&dir)?;
                let mut p = Payloads::new(LEN);
                for i in 0..WARM {
                    log.append_sync(0, p.get(i))?;
                }
                let mut lat = Vec::with_capacity(n);
                let t0 = Instant::now();
                for i in 0..n as u64 {
                    let t = Instant::now();
                    log.append_sync(0, p.get(WARM + i))?;
                    lat.push(t.elapsed());
                }
                let total = t0.elapsed();
                drop(log);
                Ok((lat, total))
            });
            remove_dir(&dir);
            match res {
                Ok((mut lat, total)) => {
                    lat.sort();
                    p50[k].vals[r] = Some(us(percentile(&lat, 0.5)));
                    p99[k].vals[r] = Some(us(percentile(&lat, 0.99)));
                    rate[k].vals[r] = Some(n as f64 / total.as_secs_f64());
                }
                Err(e) => {
                    for f in [&mut p50[k], &mut p99[k], &mut rate[k]] {
                        f.fail(&e);
                    }
                }
            }
        }
    }
    ctx.note_errors("W1", &p50);
    let wl = "durable append, 1 thread, 128 B";
    let floor_name = "pwrite+fdatasync 128 B";

    let mut a = ctx.row("W1", wl, "p50 latency", "us", &p50);
    a.floor_name = floor_name.into();
    a.floor = f50.cell();
    let ratio = pair_ratio(&p50[0], &f50);
    a.ratio = ratio.map_or(Cell::Empty, |v| Cell::Num(v, vec![]));
    a.goals
        .push(goal("p50 ≤ 1.10 × floor", ratio, "x", |v| v <= 1.10));
    let vs_best = best_of(&p50[1..], false).and_then(|b| pair_ratio(&p50[0], &b));
    a.goals.push(goal(
        "p50 ≤ every durable peer (ours / best peer)",
        vs_best,
        "x",
        |v| v <= 1.0,
    ));

    let mut b = ctx.row("W1", wl, "p99 latency", "us", &p99);
    b.floor_name = floor_name.into();
    b.floor = f99.cell();
    b.ratio = pair_ratio(&p99[0], &f99).map_or(Cell::Empty, |v| Cell::Num(v, vec![]));

    let mut c = ctx.row("W1", wl, "records/s (n / total time)", "rec/s", &rate);
    c.floor_name = floor_name.into();
    c.floor = frate.cell();
    c.ratio = pair_ratio(&rate[0], &frate).map_or(Cell::Empty, |v| Cell::Num(v, vec![]));
    c.note = format!("{n} appends per run after {WARM} untimed; a fresh log per run");
    (vec![a, b, c], rate[0].clone())
}

// ---- W2 ----------------------------------------------------------------------------------------

pub fn w2(ctx: &mut Ctx, w1_rate: &Fig) -> Vec<Row> {
    const LEN: usize = 128;
    let (runs, threads) = (ctx.p.runs, ctx.p.w2_threads);
    let dur = Duration::from_secs_f64(ctx.p.w2_secs);
    let mut rate = vec![Fig::new(runs); ctx.subjects.len()];
    for r in 0..runs {
        for (k, s) in ctx.subjects.iter().enumerate() {
            let tier = match &s.durable {
                Ok(t) => t,
                Err(why) => {
                    rate[k].na = Some(why.to_string());
                    continue;
                }
            };
            let dir = ctx.dir(&format!("w2-{}-{r}", s.name));
            let res = guarded(|| {
                let log = tier.open(&dir)?;
                let total = AtomicU64::new(0);
                let failure = Mutex::new(None::<String>);
                let barrier = std::sync::Barrier::new(threads + 1);
                let mut t0 = Instant::now();
                std::thread::scope(|sc| {
                    for t in 0..threads {
                        let (log, total, failure, barrier) = (&log, &total, &failure, &barrier);
                        sc.spawn(move || {
                            let mut p = Payloads::new(LEN);
                            barrier.wait();
                            let deadline = Instant::now() + dur;
                            let mut i = 0u64;
                            while Instant::now() < deadline {
                                if let Err(e) = log.append_sync(t, p.get(i)) {
                                    *failure.lock().unwrap() = Some(e.to_string());
                                    break;
                                }
                                i += 1;
                            }
                            total.fetch_add(i, Ordering::Relaxed);
                        });
                    }
                    barrier.wait();
                    t0 = Instant::now();
                });
                // From the start barrier to the last thread's end (the scope joins them).
                let elapsed = t0.elapsed();
                if let Some(e) = failure.into_inner().unwrap() {
                    return Err(e.into());
                }
                drop(log);
                Ok(total.into_inner() as f64 / elapsed.as_secs_f64())
            });
            remove_dir(&dir);
            match res {
                Ok(v) => rate[k].vals[r] = Some(v),
                Err(e) => rate[k].fail(e),
            }
        }
    }
    ctx.note_errors("W2", &rate);
    let mut row = ctx.row(
        "W2",
        &format!("durable append, {threads} threads, 128 B"),
        "records/s",
        "rec/s",
        &rate,
    );
    let vs_w1 = pair_ratio(&rate[0], w1_rate);
    row.goals.push(goal(
        "≥ 5 × this crate's W1 records/s",
        vs_w1,
        "x",
        |v| v >= 5.0,
    ));
    let vs_best = best_of(&rate[1..], true).and_then(|b| pair_ratio(&rate[0], &b));
    row.goals
        .push(goal("≥ 1.5 × best durable peer", vs_best, "x", |v| {
            v >= 1.5
        }));
    row.note = format!(
        "each thread appends for {:.1} s; a fresh log per run",
        dur.as_secs_f64()
    );
    vec![row]
}

// ---- W3 ----------------------------------------------------------------------------------------

pub fn w3(ctx: &mut Ctx) -> Vec<Row> {
    const LEN: usize = 4096;
    const GROUP: u64 = (1 << 20) / LEN as u64;
    let (runs, total) = (ctx.p.runs, ctx.p.w3_total);
    let groups = total / (1 << 20);
    let mut mbs = vec![Fig::new(runs); ctx.subjects.len()];
    let mut floor = Fig::new(runs);
    for r in 0..runs {
        match guarded(|| floors::seq_write_fdatasync(&ctx.data, total, 1 << 20)) {
            Ok(bps) => floor.vals[r] = Some(bps / 1e6),
            Err(e) => floor.fail(e),
        }
        for (k, s) in ctx.subjects.iter().enumerate() {
            let tier = match &s.bulk {
                Ok(t) => t,
                Err(why) => {
                    mbs[k].na = Some(why.to_string());
                    continue;
                }
            };
            let dir = ctx.dir(&format!("w3-{}-{r}", s.name));
            let res = guarded(|| {
                let mut log = tier.open(&dir)?;
                let mut p = Payloads::new(LEN);
                let t = Instant::now();
                for g in 0..groups {
                    log.write_group(&mut p, g * GROUP, GROUP)?;
                }
                let secs = t.elapsed().as_secs_f64();
                drop(log);
                Ok((groups * GROUP * LEN as u64) as f64 / secs / 1e6)
            });
            remove_dir(&dir);
            match res {
                Ok(v) => mbs[k].vals[r] = Some(v),
                Err(e) => mbs[k].fail(e),
            }
        }
    }
    ctx.note_errors("W3", &mbs);
    let mut row = ctx.row(
        "W3",
        "bulk: 4 KiB records, flush every 1 MiB",
        "MB/s",
        "MB/s",
        &mbs,
    );
    row.floor_name = "write 1 MiB + fdatasync".into();
    row.floor = floor.cell();
    let ratio = pair_ratio(&mbs[0], &floor);
    row.ratio = ratio.map_or(Cell::Empty, |v| Cell::Num(v, vec![]));
    row.goals
        .push(goal("≥ 0.9 × floor", ratio, "x", |v| v >= 0.9));
    row.note = format!(
        "{} MiB per run (payload bytes); a fresh log per run",
        total >> 20
    );
    vec![row]
}

// ---- W4 ----------------------------------------------------------------------------------------

pub fn w4(ctx: &mut Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for (len, n) in [
        (128usize, ctx.p.w4_small_n),
        (64usize << 10, ctx.p.w4_big_n),
    ] {
        let runs = ctx.p.runs;
        let mut rec = vec![Fig::new(runs); ctx.subjects.len()];
        let mut floor = Fig::new(runs);
        let mut cold = Vec::new();
        for r in 0..runs {
            match guarded(|| floors::memcpy_warm(&ctx.data, n * len as u64, len)) {
                Ok(bps) => floor.vals[r] = Some(bps / len as f64),
                Err(e) => floor.fail(e),
            }
            if let Ok(bps) = guarded(|| floors::memcpy_cold(&ctx.data, n * len as u64, len)) {
                cold.push(bps / 1e6);
            }
            for (k, s) in ctx.subjects.iter().enumerate() {
                let tier = match &s.unsynced {
                    Ok(t) => t,
                    Err(why) => {
                        rec[k].na = Some(why.to_string());
                        continue;
                    }
                };
                let dir = ctx.dir(&format!("w4-{}-{len}-{r}", s.name));
                let res = guarded(|| {
                    let mut log = tier.open(&dir)?;
                    let mut p = Payloads::new(len);
                    let t = Instant::now();
                    for i in 0..n {
                        log.append(p.get(i))?;
                    }
                    let secs = t.elapsed().as_secs_f64();
                    drop(log);
                    Ok(n as f64 / secs)
                });
                remove_dir(&dir);
                match res {
                    Ok(v) => rec[k].vals[r] = Some(v),
                    Err(e) => rec[k].fail(e),
                }
            }
        }
        ctx.note_errors("W4", &rec);
        let to_mb = |f: &Fig| Fig {
            vals: f
                .vals
                .iter()
                .map(|v| v.map(|x| x * len as f64 / 1e6))
                .collect(),
            na: f.na.clone(),
            err: f.err.clone(),
        };
        let mb: Vec<Fig> = rec.iter().map(to_mb).collect();
        let floor_mb = to_mb(&floor);
        let size = if len >= 1024 {
            format!("{} KiB", len >> 10)
        } else {
            format!("{len} B")
        };
        let wl = format!("unsynced append, 1 thread, {size}");
        let fname = format!("memcpy {size} into a warm mapping");
        let mut a = ctx.row("W4", &wl, "records/s", "rec/s", &rec);
        a.floor_name = fname.clone();
        a.floor = floor.cell();
        let ratio = pair_ratio(&rec[0], &floor);
        a.ratio = ratio.map_or(Cell::Empty, |v| Cell::Num(v, vec![]));
        let mut b = ctx.row("W4", &wl, "MB/s", "MB/s", &mb);
        b.floor_name = fname;
        b.floor = floor_mb.cell();
        b.ratio = a.ratio.clone();
        if len == 128 {
            let vs_best = best_of(&rec[1..], true).and_then(|bf| pair_ratio(&rec[0], &bf));
            a.goals
                .push(goal("≥ 3 × best unsynced peer", vs_best, "x", |v| {
                    v >= 3.0
                }));
        } else {
            b.goals
                .push(goal("≥ 0.7 × memcpy floor", ratio, "x", |v| v >= 0.7));
        }
        a.note = format!(
            "{n} appends per run; a fresh log per run (segment creation included); for reference, memcpy {size} into a cold mapping of a new preallocated file: {:.0} MB/s",
            median(&cold)
        );
        rows.push(a);
        rows.push(b);
    }
    rows
}

// ---- W5 ----------------------------------------------------------------------------------------

pub fn w5(ctx: &mut Ctx) -> Vec<Row> {
    let (runs, len) = (ctx.p.runs, ctx.p.w5_payload);
    let count = ctx.p.w5_bytes / len as u64;
    let ns = ctx.subjects.len();
    let mut gbs = vec![Fig::new(runs); ns];
    let mut floor = Fig::new(runs);
    let mut build_s = vec![f64::NAN; ns];
    let mut open_share = Vec::new();
    // Build every log first (untimed), so that the replays of one round run back to back.
    for (k, s) in ctx.subjects.iter().enumerate() {
        let tier = match &s.replay {
            Ok(t) => t,
            Err(why) => {
                gbs[k].na = Some(why.to_string());
                continue;
            }
        };
        let dir = ctx.dir(&format!("w5-{}", s.name));
        let t = Instant::now();
        if let Err(e) = guarded(|| tier.build(&dir, len, count)) {
            gbs[k].fail(format!("build: {e}"));
            remove_dir(&dir);
        }
        build_s[k] = t.elapsed().as_secs_f64();
    }
    for r in 0..runs {
        floor.vals[r] = Some(floors::crc32_in_memory(count * len as u64, len) / 1e9);
        for (k, s) in ctx.subjects.iter().enumerate() {
            if !gbs[k].ok() {
                continue;
            }
            let tier = s.replay.as_ref().expect("checked");
            let dir = ctx.dir(&format!("w5-{}", s.name));
            let res = guarded(|| {
                let t = Instant::now();
                let (n, bytes) = tier.replay(&dir)?;
                let secs = t.elapsed().as_secs_f64();
                if n != count {
                    return Err(format!("replayed {n} records of {count}").into());
                }
                Ok(bytes as f64 / secs / 1e9)
            });
            match res {
                Ok(v) => {
                    gbs[k].vals[r] = Some(v);
                    if k == 0 {
                        let open_s = ours::LAST_OPEN_NS.load(Ordering::Relaxed) as f64 / 1e9;
                        let total_s = (count * len as u64) as f64 / (v * 1e9);
                        open_share.push((open_s * 1e3, total_s * 1e3));
                    }
                }
                Err(e) => gbs[k].fail(e),
            }
        }
    }
    for s in &ctx.subjects {
        remove_dir(&ctx.dir(&format!("w5-{}", s.name)));
    }
    ctx.note_errors("W5", &gbs);
    let size = if ctx.p.w5_bytes >= 1 << 30 {
        format!("{} GiB", ctx.p.w5_bytes >> 30)
    } else {
        format!("{} MiB", ctx.p.w5_bytes >> 20)
    };
    let mut row = ctx.row(
        "W5",
        &format!(
            "replay a {size} log ({} KiB records), warm cache, checksums verified",
            len >> 10
        ),
        "GB/s (payload, open + replay)",
        "GB/s",
        &gbs,
    );
    row.floor_name = format!("crc32fast, {} KiB per call, in memory", len >> 10);
    row.floor = floor.cell();
    let ratio = pair_ratio(&gbs[0], &floor);
    row.ratio = ratio.map_or(Cell::Empty, |v| Cell::Num(v, vec![]));
    row.goals
        .push(goal("≥ 0.7 × crc32fast floor", ratio, "x", |v| v >= 0.7));
    let vs_best = best_of(&gbs[1..], true).and_then(|b| pair_ratio(&gbs[0], &b));
    row.goals
        .push(goal("≥ 3 × best peer", vs_best, "x", |v| v >= 3.0));
    let builds: Vec<String> = ctx
        .subjects
        .iter()
        .zip(&build_s)
        .filter(|(_, b)| b.is_finite())
        .map(|(s, b)| format!("{} {b:.1} s", s.name))
        .collect();
    let open_ms = median(&open_share.iter().map(|x| x.0).collect::<Vec<_>>());
    let total_ms = median(&open_share.iter().map(|x| x.1).collect::<Vec<_>>());
    row.note = format!(
        "{count} records; time = open (recovery) + visiting every record (this crate: open {open_ms:.1} ms of {total_ms:.1} ms); build times (untimed): {}",
        builds.join(", ")
    );
    vec![row]
}

// ---- W6 ----------------------------------------------------------------------------------------

pub fn w6(ctx: &mut Ctx) -> Vec<Row> {
    const LEN: usize = 128;
    let (runs, records, gets) = (ctx.p.runs, ctx.p.w6_records, ctx.p.w6_gets);
    let ns = ctx.subjects.len();
    let mut p50 = vec![Fig::new(runs); ns];
    let mut getters: Vec<Option<Box<dyn Getter>>> = Vec::new();
    for (k, s) in ctx.subjects.iter().enumerate() {
        let tier = match &s.get {
            Ok(t) => t,
            Err(why) => {
                p50[k].na = Some(why.to_string());
                getters.push(None);
                continue;
            }
        };
        let dir = ctx.dir(&format!("w6-{}", s.name));
        let res = guarded(|| {
            let mut g = tier.build(&dir, LEN, records)?;
            // Warm: read one record in 16, which touches every page of every log.
            for i in (0..records).step_by(16) {
                g.get(i)?;
            }
            Ok(g)
        });
        match res {
            Ok(g) => getters.push(Some(g)),
            Err(e) => {
                p50[k].fail(e);
                getters.push(None);
            }
        }
    }
    // What reading the clock twice costs (included in every figure below).
    let clock = {
        let mut v: Vec<Duration> = (0..10_000)
            .map(|_| {
                let t = Instant::now();
                t.elapsed()
            })
            .collect();
        v.sort();
        percentile(&v, 0.5).as_nanos()
    };
    for r in 0..runs {
        let mut rng = Rng::new(0x5eed + r as u64);
        let idx: Vec<u64> = (0..gets).map(|_| rng.below(records)).collect();
        for (k, g) in getters.iter_mut().enumerate() {
            let Some(g) = g else { continue };
            let res = guarded(|| {
                let mut lat = Vec::with_capacity(gets);
                for &i in &idx {
                    let t = Instant::now();
                    std::hint::black_box(g.get(i)?);
                    lat.push(t.elapsed());
                }
                lat.sort();
                Ok(percentile(&lat, 0.5).as_nanos() as f64)
            });
            match res {
                Ok(v) => p50[k].vals[r] = Some(v),
                Err(e) => p50[k].fail(e),
            }
        }
    }
    drop(getters);
    for s in &ctx.subjects {
        remove_dir(&ctx.dir(&format!("w6-{}", s.name)));
    }
    ctx.note_errors("W6", &p50);
    let mut row = ctx.row(
        "W6",
        "random get(seq), warm, 128 B records",
        "p50 latency",
        "ns",
        &p50,
    );
    let ours = p50[0].cell().value();
    row.goals
        .push(goal("p50 ≤ 250 ns", ours, "ns", |v| v <= 250.0));
    let vs_best = best_of(&p50[1..], false).and_then(|b| pair_ratio(&b, &p50[0]));
    row.goals.push(goal(
        "≥ 5 × faster than best peer (best peer p50 / ours)",
        vs_best,
        "x",
        |v| v >= 5.0,
    ));
    row.note = format!(
        "{records} records, {gets} random reads per run, each timed alone (clock pair ≈ {clock} ns, included)"
    );
    vec![row]
}

// ---- W7 / W8 -----------------------------------------------------------------------------------

/// Builds the logs for W7 and W8: a log of `w7_segments` segments (the newest half full) and a
/// log of one half-full segment. Returns their directories.
pub fn w7_build(ctx: &mut Ctx) -> Res<(PathBuf, PathBuf, u64)> {
    const LEN: usize = 4096;
    let seg = ctx.p.w7_seg_size;
    let per = ours::records_per_segment(seg, LEN as u64)?;
    let big = ctx.dir("w7-many");
    let one = ctx.dir("w7-one");
    ours::build_log(&big, seg, LEN, per * (ctx.p.w7_segments - 1) + per / 2)?;
    ours::build_log(&one, seg, LEN, per / 2)?;
    let files = std::fs::read_dir(&big)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .count() as u64;
    Ok((big, one, files))
}

pub fn w7(ctx: &mut Ctx, big: &Path, one: &Path, files: u64) -> Vec<Row> {
    let runs = ctx.p.runs;
    let mut many_ms = vec![Fig::new(runs); ctx.subjects.len()];
    let mut one_ms = Fig::new(runs);
    for (k, s) in ctx.subjects.iter().enumerate().skip(1) {
        let _ = s;
        many_ms[k].na = Some("this crate only".into());
    }
    for r in 0..runs {
        match guarded(|| ours::open_time(one)) {
            Ok((d, _)) => one_ms.vals[r] = Some(d.as_secs_f64() * 1e3),
            Err(e) => one_ms.fail(e),
        }
        match guarded(|| ours::open_time(big)) {
            Ok((d, _)) => many_ms[0].vals[r] = Some(d.as_secs_f64() * 1e3),
            Err(e) => many_ms[0].fail(e),
        }
    }
    ctx.note_errors("W7", &many_ms);
    let seg = ctx.p.w7_seg_size;
    let total = seg * files;
    let size = if total >= 1 << 30 {
        format!("{:.0} GiB", total as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", total >> 20)
    };
    let mut row = ctx.row(
        "W7",
        &format!(
            "open (recover) a {size} log of {} MiB segments ({files} files) vs a 1-segment log",
            seg >> 20
        ),
        "open time (warm cache)",
        "ms",
        &many_ms,
    );
    row.floor_name = format!("1-segment log, {} MiB segment", seg >> 20);
    row.floor = one_ms.cell();
    let ratio = pair_ratio(&many_ms[0], &one_ms);
    row.ratio = ratio.map_or(Cell::Empty, |v| Cell::Num(v, vec![]));
    row.goals.push(goal("ratio ≤ 2", ratio, "x", |v| v <= 2.0));
    row.goals
        .push(goal("≤ 20 ms", many_ms[0].cell().value(), "ms", |v| {
            v <= 20.0
        }));
    row.note =
        "both newest segments half full (4 KiB records); the ratio column is many / one".into();
    vec![row]
}

/// W8: a child process opens and replays the big log while a thread samples its RssAnon.
pub fn w8(ctx: &mut Ctx, big: &Path) -> Vec<Row> {
    let runs = ctx.p.runs;
    let mut peak = vec![Fig::new(runs); ctx.subjects.len()];
    for f in peak.iter_mut().skip(1) {
        f.na = Some("this crate only".into());
    }
    let mut notes = Vec::new();
    for r in 0..runs {
        let res = guarded(|| {
            let out = std::process::Command::new(std::env::current_exe()?)
                .arg("--w8-child")
                .arg(big)
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                return Err(format!(
                    "child failed: {} {}",
                    text.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
                .into());
            }
            let line = text
                .lines()
                .find(|l| l.starts_with("W8 "))
                .ok_or("no W8 line")?
                .to_string();
            let field = |name: &str| -> Option<f64> {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            };
            let pk = field("rss_anon_peak_kib").ok_or("no peak")?;
            Ok((pk / 1024.0, line))
        });
        match res {
            Ok((v, line)) => {
                peak[0].vals[r] = Some(v);
                if r == 0 {
                    notes.push(line);
                }
            }
            Err(e) => peak[0].fail(e),
        }
    }
    ctx.note_errors("W8", &peak);
    let mut row = ctx.row(
        "W8",
        "anonymous memory while opening and replaying the W7 log",
        "peak RssAnon",
        "MiB",
        &peak,
    );
    row.goals
        .push(goal("≤ 32 MiB", peak[0].cell().value(), "MiB", |v| {
            v <= 32.0
        }));
    row.note = format!(
        "child process, /proc/self/status sampled every 1 ms, whole process; first run: {}",
        notes.join(" ")
    );
    vec![row]
}

/// The W8 child: open + replay `dir`, sampling RssAnon; prints one `W8 ...` line.
pub fn w8_child(dir: &Path) -> Res<()> {
    use crate::util::{HEAP_PEAK, proc_status_kib};
    use std::sync::atomic::AtomicBool;
    let baseline = proc_status_kib("RssAnon:").unwrap_or(0);
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(baseline);
    let samples = AtomicU64::new(0);
    let (records, after, elapsed) = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(v) = proc_status_kib("RssAnon:") {
                    peak.fetch_max(v, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let t = Instant::now();
        let n = ours::open_and_replay(dir);
        let elapsed = t.elapsed();
        let after = proc_status_kib("RssAnon:").unwrap_or(0);
        peak.fetch_max(after, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        (n, after, elapsed)
    });
    let records = records?;
    println!(
        "W8 rss_anon_peak_kib={} baseline_kib={baseline} after_kib={after} heap_peak_kib={} samples={} records={records} seconds={:.3}",
        peak.load(Ordering::Relaxed),
        HEAP_PEAK.load(Ordering::Relaxed) / 1024,
        samples.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    Ok(())
}
