//! Small helpers: errors, statistics, payloads, file-system checks, memory accounting.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Every fallible step of the benchmark returns this.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Turns any displayable error (peers have many error types) into ours.
pub fn err<E: std::fmt::Display>(e: E) -> Box<dyn std::error::Error + Send + Sync> {
    e.to_string().into()
}

/// Median of a set of figures (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p` quantile (0..=1) of latencies, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A payload generator: incompressible bytes (so that no peer gains from compression), with the
/// record's number in its first 8 bytes (so that readers can check they got the right record).
pub struct Payloads {
    buf: Vec<u8>,
}

impl Payloads {
    pub fn new(len: usize) -> Payloads {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
        let mut buf = vec![0u8; len];
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        Payloads { buf }
    }

    /// The payload of record number `i` (valid until the next call).
    #[inline]
    pub fn get(&mut self, i: u64) -> &[u8] {
        if self.buf.len() >= 8 {
            self.buf[..8].copy_from_slice(&i.to_le_bytes());
        }
        &self.buf
    }
}

/// The record number a payload made by [`Payloads`] carries.
#[inline]
pub fn payload_number(p: &[u8]) -> Option<u64> {
    p.get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// A small xorshift generator for random positions (deterministic across runs).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        ((x as u128 * n as u128) >> 64) as u64
    }
}

/// The file system type of `path` as reported by statfs, and its free bytes.
pub fn fs_info(path: &Path) -> Res<(String, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let name = match st.f_type as i64 {
        0xEF53 => "ext4",
        0x0102_1994 => "tmpfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        other => {
            return Ok((
                format!("0x{other:x}"),
                st.f_bavail as u64 * st.f_bsize as u64,
            ));
        }
    };
    Ok((name.to_string(), st.f_bavail as u64 * st.f_bsize as u64))
}

/// Size in KiB of one line (`RssAnon:`, `VmHWM:` ...) of /proc/self/status.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Removes a directory tree, ignoring a missing one.
pub fn remove_dir(path: &Path) {
    if !path.exists() {
        return;
    }
    // A peer's background thread may still be finishing; try again once.
    if std::fs::remove_dir_all(path).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Err(e) = std::fs::remove_dir_all(path) {
            eprintln!("warning: could not remove {}: {e}", path.display());
        }
    }
}

/// Allocator wrapper that can count the live and peak heap bytes (for W8). Counting is off unless
/// [`HEAP_COUNTING`] is set, so the other workloads pay one relaxed load per allocation.
pub struct CountingAlloc;

pub static HEAP_COUNTING: AtomicBool = AtomicBool::new(false);
pub static HEAP_LIVE: AtomicUsize = AtomicUsize::new(0);
pub static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only
// statistics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && HEAP_COUNTING.load(Ordering::Relaxed) {
            let live = HEAP_LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            HEAP_PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if HEAP_COUNTING.load(Ordering::Relaxed) {
            HEAP_LIVE.fetch_sub(
                layout.size().min(HEAP_LIVE.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
        }
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's arguments.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && HEAP_COUNTING.load(Ordering::Relaxed) {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let live = HEAP_LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                HEAP_PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                let shrink = layout.size() - new_size;
                HEAP_LIVE.fetch_sub(
                    shrink.min(HEAP_LIVE.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
        }
        p
    }
}

/// Runs `f`, turning a panic into an error so that one failing peer does not end the run.
pub fn guarded<T>(f: impl FnOnce() -> Res<T>) -> Res<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("panicked: {msg}").into())
        }
    }
}
