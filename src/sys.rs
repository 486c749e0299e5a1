//! The seam: every system call durability depends on goes through [`Sys`].
//!
//! Flushing a mapping, syncing a file, allocating blocks, renaming, syncing a directory and
//! unlinking all happen here and nowhere else, so that tests (with the `fault-injection` feature)
//! can make the N-th call of any kind fail and check that the store poisons instead of
//! acknowledging. Without the feature the indirection compiles away.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::os::Mapping;

/// The kinds of durability-relevant system calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub enum SysOp {
    /// msync of a mapped range (plus `F_FULLFSYNC` on Apple systems).
    Flush,
    /// fsync of a file.
    SyncFile,
    /// fallocate of a new segment's blocks.
    Allocate,
    /// rename of a new segment into place.
    Rename,
    /// fsync of the log directory.
    SyncDir,
    /// unlink of a segment file.
    Unlink,
    /// msync of a full segment's index and footer when it is sealed (in the background after a
    /// rotation, or by recovery). Its own kind because it runs beside the writer's flushes.
    Seal,
}

impl SysOp {
    /// Every kind, in a fixed order.
    #[cfg(feature = "fault-injection")]
    pub const ALL: [SysOp; 7] = [
        SysOp::Flush,
        SysOp::SyncFile,
        SysOp::Allocate,
        SysOp::Rename,
        SysOp::SyncDir,
        SysOp::Unlink,
        SysOp::Seal,
    ];

    #[cfg(feature = "fault-injection")]
    fn slot(self) -> usize {
        self as usize
    }
}

/// Test-only: one durability system call, as shown to a [`FaultPlan`] observer.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug)]
pub struct SysCall<'a> {
    /// The kind of call.
    pub op: SysOp,
    /// The file or directory it acts on (for a rename, the source).
    pub path: &'a Path,
    /// For a rename, the destination.
    pub to: Option<&'a Path>,
    /// For a flush, the byte range `(offset, len)` of the file it makes durable.
    pub range: Option<(u64, u64)>,
    /// `false` just before the call is made (a crash point), `true` once it has succeeded.
    pub done: bool,
}

/// Test-only: a function shown every durability call, before it is made and after it succeeds.
#[cfg(feature = "fault-injection")]
pub type Observer = Box<dyn Fn(&SysCall<'_>) + Send + Sync>;

/// Test-only: which call of which kind should fail, and a count of the calls made so far.
#[cfg(feature = "fault-injection")]
#[derive(Default)]
pub struct FaultPlan {
    calls: [std::sync::atomic::AtomicU64; 7],
    fail_at: std::sync::Mutex<Vec<(SysOp, u64, io::ErrorKind)>>,
    observer: std::sync::RwLock<Option<Observer>>,
}

#[cfg(feature = "fault-injection")]
impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultPlan")
            .field("calls", &self.calls)
            .field("fail_at", &self.fail_at)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "fault-injection")]
impl FaultPlan {
    /// A plan that fails nothing and counts every call.
    #[must_use]
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// Make the `n`-th call (1-based, counted from the plan's creation) of kind `op` fail with an
    /// I/O error of `kind`.
    pub fn fail_nth(&self, op: SysOp, n: u64, kind: io::ErrorKind) {
        if let Ok(mut v) = self.fail_at.lock() {
            v.push((op, n, kind));
        }
    }

    /// Show every later call to `observer`: before it is made (`done == false`), and again after
    /// it succeeded (`done == true`). A call failed by the plan is shown only before. Used by the
    /// power-loss harness to learn which bytes are durable at each moment.
    pub fn observe(&self, observer: Observer) {
        if let Ok(mut slot) = self.observer.write() {
            *slot = Some(observer);
        }
    }

    fn notify(&self, call: &SysCall<'_>) {
        if let Ok(slot) = self.observer.read()
            && let Some(observer) = slot.as_ref()
        {
            observer(call);
        }
    }

    /// How many calls of kind `op` were made so far.
    #[must_use]
    pub fn calls(&self, op: SysOp) -> u64 {
        self.calls[op.slot()].load(std::sync::atomic::Ordering::SeqCst)
    }

    fn check(&self, op: SysOp) -> io::Result<()> {
        let n = self.calls[op.slot()].fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let planned = self
            .fail_at
            .lock()
            .ok()
            .and_then(|v| v.iter().find(|f| f.0 == op && f.1 == n).map(|f| f.2));
        match planned {
            Some(kind) => Err(io::Error::new(kind, format!("injected fault: {op:?} #{n}"))),
            None => Ok(()),
        }
    }
}

/// The durability system calls of one store.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sys {
    #[cfg(feature = "fault-injection")]
    plan: Option<std::sync::Arc<FaultPlan>>,
}

impl Sys {
    #[cfg(feature = "fault-injection")]
    pub(crate) fn new(plan: Option<std::sync::Arc<FaultPlan>>) -> Sys {
        Sys { plan }
    }

    #[cfg(not(feature = "fault-injection"))]
    pub(crate) fn new() -> Sys {
        Sys {}
    }

    /// Runs `call` unless the fault plan fails it; shows it to the plan's observer before and
    /// after.
    #[inline]
    fn run<T>(
        &self,
        op: SysOp,
        path: &Path,
        to: Option<&Path>,
        range: Option<(u64, u64)>,
        call: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &self.plan {
            let mut event = SysCall {
                op,
                path,
                to,
                range,
                done: false,
            };
            plan.notify(&event);
            plan.check(op)?;
            let out = call()?;
            event.done = true;
            plan.notify(&event);
            return Ok(out);
        }
        let _ = (op, path, to, range);
        call()
    }

    /// Makes the mapped bytes `offset..offset + len` durable: `op` is [`SysOp::Flush`] for
    /// records and headers, [`SysOp::Seal`] for the index and footer of a segment being sealed.
    pub(crate) fn flush(
        &self,
        op: SysOp,
        map: &Mapping,
        _file: &File,
        path: &Path,
        offset: usize,
        len: usize,
    ) -> io::Result<()> {
        let range = Some((offset as u64, len as u64));
        self.run(op, path, None, range, || {
            map.flush_range(offset, len)?;
            // On Apple systems msync hands the pages to the drive without flushing its cache;
            // std's sync_all issues F_FULLFSYNC, which does.
            #[cfg(any(target_os = "macos", target_os = "ios"))]
            _file.sync_all()?;
            Ok(())
        })
    }

    /// fsync of a file (data and metadata).
    pub(crate) fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        self.run(SysOp::SyncFile, path, None, None, || file.sync_all())
    }

    /// Allocates real blocks for `len` bytes (never a sparse extension).
    pub(crate) fn allocate(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.run(SysOp::Allocate, path, None, None, || {
            Self::allocate_blocks(file, len)
        })
    }

    fn allocate_blocks(file: &File, len: u64) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        crate::os::allocate_blocks(file, len)?;
        // Elsewhere fs2 uses calls that set errno (F_PREALLOCATE on Apple systems). Should a
        // code still be missing, the cause is unknown: an error that poisons, not a "full disk".
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        fs2::FileExt::allocate(file, len).map_err(|e| match e.raw_os_error() {
            Some(0) => io::Error::other(format!("could not allocate {len} bytes")),
            _ => e,
        })?;
        let have = file.metadata()?.len();
        if have < len {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("could not allocate {len} bytes (got {have})"),
            ));
        }
        Ok(())
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.run(SysOp::Rename, from, Some(to), None, || {
            std::fs::rename(from, to)
        })
    }

    /// fsync of a directory, so that a create, rename or unlink in it is durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.run(SysOp::SyncDir, dir, None, None, || {
            #[cfg(unix)]
            {
                File::open(dir)?.sync_all()
            }
            // Windows cannot open a directory as a file; NTFS journals the rename itself.
            #[cfg(not(unix))]
            {
                Ok(())
            }
        })
    }

    pub(crate) fn unlink(&self, path: &Path) -> io::Result<()> {
        self.run(SysOp::Unlink, path, None, None, || {
            std::fs::remove_file(path)
        })
    }
}
