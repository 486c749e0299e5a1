//! Side-by-side benchmark of softadastra-wal against its floors and its peers on crates.io.
//!
//! Run from the repository root:
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- [--quick]
//! ```
//!
//! Prints a Markdown table and writes the same figures as JSON to `target/compare/results.json`
//! (at the repository root). See `benches/compare/README.md`.

mod floors;
mod ours;
mod peers;
mod report;
mod subject;
mod util;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use report::{PeerInfo, Report};
use util::{HEAP_COUNTING, Res, fs_info, remove_dir};
use workloads::{Ctx, Params};

#[global_allocator]
static ALLOC: util::CountingAlloc = util::CountingAlloc;

const USAGE: &str = "usage: softadastra-wal-compare [--quick] [--runs N] [--only W1,W2,...] [--data-dir DIR] [--strict]

  --quick      small sizes (CI smoke test: checks that every workload runs, not the goals)
  --runs N     runs per figure (default 5, quick 3); every figure is the median
  --only LIST  run only these workloads (W7 and W8 share their log)
  --peers LIST run only these peers (names as in the table, or none)
  --data-dir   where the logs are written (default: <repo>/target/compare/data); must be a
               real disk, not tmpfs: an fsync on tmpfs costs nothing
  --strict     exit 1 when a goal is missed (never in --quick mode)";

struct Args {
    quick: bool,
    runs: Option<usize>,
    only: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    strict: bool,
    allow_tmpfs: bool,
    peers: Option<Vec<String>>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        runs: None,
        only: None,
        data_dir: None,
        strict: false,
        allow_tmpfs: false,
        peers: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--strict" => a.strict = true,
            "--allow-tmpfs" => a.allow_tmpfs = true,
            "--runs" => {
                let n: usize = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--runs needs a number")?;
                a.runs = Some(n.max(1));
            }
            "--only" => {
                let v = it.next().ok_or("--only needs a list")?;
                a.only = Some(v.split(',').map(|s| s.trim().to_uppercase()).collect());
            }
            "--peers" => {
                let v = it.next().ok_or("--peers needs a list (or none)")?;
                a.peers = Some(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| s != "none")
                        .collect(),
                );
            }
            "--data-dir" => a.data_dir = Some(it.next().ok_or("--data-dir needs a path")?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

fn main() -> ExitCode {
    // Internal: the W8 child process.
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() == 3 && argv[1] == "--w8-child" {
        HEAP_COUNTING.store(true, std::sync::atomic::Ordering::Relaxed);
        return match workloads::w8_child(Path::new(&argv[2])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("W8 child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Res<ExitCode> {
    let started = Instant::now();
    let p = Params::new(args.quick, args.runs);
    let root = repo_root();
    let out_dir = root.join("target/compare");
    std::fs::create_dir_all(&out_dir)?;
    let data_parent = args
        .data_dir
        .clone()
        .unwrap_or_else(|| out_dir.join("data"));
    let data = data_parent.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&data)?;
    let (fs_type, free) = fs_info(&data)?;
    let ours = ours::subject();
    let mut peers = peers::all();
    if let Some(keep) = &args.peers {
        peers.retain(|s| keep.iter().any(|k| k == s.name));
    }
    let needed = p.disk_needed(peers.len() + 1);
    if fs_type == "tmpfs" && !args.allow_tmpfs {
        remove_dir(&data);
        return Err(format!(
            "{} is on tmpfs, where fsync costs nothing: pass --data-dir on a real disk",
            data.display()
        )
        .into());
    }
    if free < needed {
        remove_dir(&data);
        return Err(format!(
            "{} has {} MiB free, the run needs about {} MiB",
            data.display(),
            free >> 20,
            needed >> 20
        )
        .into());
    }
    let wants = |w: &str| args.only.as_ref().is_none_or(|l| l.iter().any(|x| x == w));

    let mut report = Report {
        quick: args.quick,
        runs: p.runs,
        meta: meta(&data, &fs_type, &p),
        peers: peers
            .iter()
            .map(|s| PeerInfo {
                name: s.name.into(),
                version: s.version.into(),
                sync: s.sync.into(),
            })
            .collect(),
        rows: Vec::new(),
        timings: Vec::new(),
        errors: Vec::new(),
    };
    let mut ctx = Ctx {
        p: &p,
        data: data.clone(),
        subjects: std::iter::once(&ours).chain(peers.iter()).collect(),
        errors: Vec::new(),
    };
    eprintln!(
        "softadastra-wal compare: {} mode, {} runs per figure, logs in {} ({fs_type})",
        if args.quick { "quick" } else { "full" },
        p.runs,
        data.display()
    );

    let timed = |name: &str, report: &mut Report, f: &mut dyn FnMut() -> Vec<report::Row>| {
        let t = Instant::now();
        eprint!("{name} ... ");
        let rows = f();
        let s = t.elapsed().as_secs_f64();
        eprintln!("{s:.1} s");
        report.timings.push((name.to_string(), s));
        report.rows.extend(rows);
    };

    let mut w1_rate = None;
    if wants("W1") || wants("W2") {
        timed("W1", &mut report, &mut || {
            let (rows, rate) = workloads::w1(&mut ctx);
            w1_rate = Some(rate);
            rows
        });
    }
    if wants("W2") {
        let rate = w1_rate.clone().expect("W1 ran");
        timed("W2", &mut report, &mut || workloads::w2(&mut ctx, &rate));
    }
    if wants("W3") {
        timed("W3", &mut report, &mut || workloads::w3(&mut ctx));
    }
    if wants("W4") {
        timed("W4", &mut report, &mut || workloads::w4(&mut ctx));
    }
    if wants("W5") {
        timed("W5", &mut report, &mut || workloads::w5(&mut ctx));
    }
    if wants("W6") {
        timed("W6", &mut report, &mut || workloads::w6(&mut ctx));
    }
    if wants("W7") || wants("W8") {
        let t = Instant::now();
        eprint!("W7/W8 build ... ");
        let built = workloads::w7_build(&mut ctx);
        let s = t.elapsed().as_secs_f64();
        eprintln!("{s:.1} s");
        report.timings.push(("W7/W8 build".into(), s));
        match built {
            Ok((big, one, files)) => {
                if wants("W7") {
                    timed("W7", &mut report, &mut || {
                        workloads::w7(&mut ctx, &big, &one, files)
                    });
                }
                if wants("W8") {
                    timed("W8", &mut report, &mut || workloads::w8(&mut ctx, &big));
                }
                remove_dir(&big);
                remove_dir(&one);
            }
            Err(e) => ctx
                .errors
                .push(format!("W7/W8 softadastra-wal: building the logs: {e}")),
        }
    }
    remove_dir(&data);
    let _ = std::fs::remove_dir(&data_parent); // only if empty
    report.errors = std::mem::take(&mut ctx.errors);
    report
        .timings
        .push(("total".into(), started.elapsed().as_secs_f64()));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report.meta.push((
        "load average at end".into(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    ));

    // Output.
    let md = report.markdown();
    println!("{md}");
    println!("Peers and what their durability call does:");
    println!("- softadastra-wal (this crate): {}", ours.sync);
    for s in &peers {
        println!("- {} {}: {}", s.name, s.version, s.sync);
    }
    println!();
    println!("Notes:");
    for r in &report.rows {
        if !r.note.is_empty() {
            println!("- {} {}: {}", r.id, r.figure, r.note);
        }
    }
    for (k, v) in &report.meta {
        println!("- {k}: {v}");
    }
    let times: Vec<String> = report
        .timings
        .iter()
        .map(|(k, v)| format!("{k} {v:.1} s"))
        .collect();
    println!("- time: {}", times.join(", "));
    if !report.errors.is_empty() {
        println!();
        println!("Errors:");
        for e in &report.errors {
            println!("- {e}");
        }
    }
    if args.quick {
        println!();
        println!("(--quick: small sizes on a possibly shared machine; the goals are not checked)");
    }
    let json_path = out_dir.join("results.json");
    std::fs::write(&json_path, report.json())?;
    eprintln!("wrote {}", json_path.display());

    // Exit status: every workload of this crate must have produced its figures.
    let ours_failed = report.errors.iter().any(|e| e.contains("softadastra-wal"))
        || report
            .rows
            .iter()
            .any(|r| matches!(r.ours, report::Cell::Failed(_) | report::Cell::Empty));
    if ours_failed {
        eprintln!("softadastra-wal failed a workload (see Errors)");
        return Ok(ExitCode::FAILURE);
    }
    let missed = report
        .rows
        .iter()
        .flat_map(|r| &r.goals)
        .any(|g| g.met == Some(false));
    if args.strict && !args.quick && missed {
        eprintln!("--strict: a goal was missed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Date, machine and settings, for the record.
fn meta(data: &Path, fs_type: &str, p: &Params) -> Vec<(String, String)> {
    let mut m = Vec::new();
    m.push(("date (UTC)".into(), utc_now()));
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    m.push(("cpu".into(), format!("{model}, {cpus} CPUs")));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "?".into());
    m.push(("memory".into(), mem));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    m.push(("kernel".into(), kernel.trim().to_string()));
    m.push(("data dir".into(), format!("{} ({fs_type})", data.display())));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    m.push((
        "load average at start".into(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    ));
    m.push((
        "mode".into(),
        if p.quick {
            "quick".into()
        } else {
            "full".into()
        },
    ));
    m.push(("runs per figure".into(), p.runs.to_string()));
    m
}

/// The current UTC date and time, `YYYY-MM-DD HH:MM:SS`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
