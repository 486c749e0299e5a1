//! Crash images: what a power loss could leave on disk, in the spirit of SQLite's crash simulator
//! and FoundationDB's simulation.
//!
//! [`DurableState`] follows one log directory through the fault seam's observer: which bytes of
//! which file are known durable (a flush makes its page-rounded range durable, an fsync the whole
//! file and its size) and which directory entries are (creates, renames and unlinks become
//! durable at the next fsync of the directory). [`DurableState::image`] then makes one possible
//! post-crash directory: the durable state, plus for every 4 KiB page that differs from its
//! durable version the old page, the new page, a mix of the two at 512-byte granularity, or
//! garbage over the bytes that changed; and each directory operation since the last directory
//! fsync either lost or kept (a rename atomically).
//!
//! Files are tracked by identity (an inode number of the model), not by name, since a rename
//! moves a file. Creates are not shown by the seam: they are found by listing the directory.
//!
//! [`CrashPoints`] wires a `DurableState` into a [`FaultPlan`] and samples crash points: every
//! durability call is shown to it just before it is made, which is exactly a moment a power cut
//! can hit.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use softadastra_wal::fault::{FaultPlan, SysCall, SysOp};

use crate::support::Rng;

/// The unit a flush writes back, and the unit in which unflushed data survives or not.
pub const PAGE: usize = 4096;
/// The unit a drive writes atomically: a torn page is a mix of old and new sectors.
pub const SECTOR: usize = 512;
/// Never part of an image: the store recreates it, and nothing in it is data.
use softadastra_wal::names::LOCK_FILE;

/// One file of the model, by identity.
#[derive(Clone, Debug)]
struct Inode {
    /// The file's bytes as last read (what the page cache holds).
    current: Vec<u8>,
    /// What a crash keeps for sure, as long as `current` (bytes never made durable read as the
    /// zeros of a fresh allocation).
    durable: Vec<u8>,
    /// The file length a crash keeps for sure (made durable by an fsync).
    durable_len: usize,
    /// What a process crash keeps for sure: the bytes as of the last open of the store (see
    /// [`DurableState::settle`]) or the last flush, whichever is later. Bytes written before
    /// that are in the page cache whatever happens to the process.
    settled: Vec<u8>,
    /// The real inode number, to notice a name that now points to another file.
    ino: u64,
}

/// A directory operation not yet made durable by a directory fsync, with the inode it acts on
/// (a kept rename or unlink acts on that file, whatever else a lost operation left at the name).
#[derive(Clone, Debug)]
enum NsOp {
    Create(String, usize),
    Rename(String, String, usize),
    Unlink(String, usize),
}

/// What is known durable in one log directory.
#[derive(Clone, Debug)]
pub struct DurableState {
    dir: PathBuf,
    inodes: Vec<Inode>,
    /// Name -> inode, as a crash keeps it for sure.
    durable_ns: BTreeMap<String, usize>,
    /// Name -> inode, as the directory is now.
    current_ns: BTreeMap<String, usize>,
    /// Directory operations since the last directory fsync, in order.
    pending: Vec<NsOp>,
}

/// One possible content of the directory after a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    /// File name and bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Image {
    /// Writes the image's files into `dir` (created if missing, expected empty).
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, bytes) in &self.files {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(())
    }

    /// Replaces every file of `dir` but the lock file with the image's.
    pub fn replace(&self, dir: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name() != LOCK_FILE {
                std::fs::remove_file(entry.path())?;
            }
        }
        self.write_to(dir)
    }
}

fn name_of(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_string)
}

#[cfg(unix)]
fn ino_of(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn ino_of(_meta: &std::fs::Metadata) -> u64 {
    0
}

/// Writes `bytes` at `offset` of an existing file, in place (no truncation: a mapping of the
/// file stays valid).
fn write_at(path: &Path, offset: usize, bytes: &[u8]) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(offset as u64))?;
    file.write_all(bytes)
}

/// The page-rounded range `offset..offset + len`, clamped to `file_len`.
fn page_range(offset: u64, len: u64, file_len: usize) -> std::ops::Range<usize> {
    let start = (offset as usize / PAGE) * PAGE;
    let end = (offset + len) as usize;
    let end = end.div_ceil(PAGE) * PAGE;
    start.min(file_len)..end.min(file_len)
}

impl DurableState {
    /// A directory that holds nothing durable yet (a log about to be created in it).
    pub fn empty(dir: &Path) -> DurableState {
        DurableState {
            dir: dir.to_path_buf(),
            inodes: Vec::new(),
            durable_ns: BTreeMap::new(),
            current_ns: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// A directory whose every file is durable as it is now (a crash image just written).
    pub fn all_durable(dir: &Path) -> io::Result<DurableState> {
        let mut state = DurableState::empty(dir);
        state.resync()?;
        state.make_all_durable();
        Ok(state)
    }

    /// Forgets what was not durable: everything in the directory now is (after the directory
    /// was replaced by a crash image).
    pub fn reset_all_durable(&mut self) -> io::Result<()> {
        *self = DurableState::all_durable(&self.dir)?;
        Ok(())
    }

    fn make_all_durable(&mut self) {
        for inode in &mut self.inodes {
            inode.durable.clone_from(&inode.current);
            inode.durable_len = inode.current.len();
            inode.settled.clone_from(&inode.current);
        }
        self.durable_ns.clone_from(&self.current_ns);
        self.pending.clear();
    }

    /// The directory this state follows.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Brings the model's view of the current directory up to date: files created (or removed)
    /// without going through the seam, and the current bytes of every file.
    pub fn resync(&mut self) -> io::Result<()> {
        let mut seen = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == LOCK_FILE || !entry.file_type()?.is_file() {
                continue;
            }
            let meta = entry.metadata()?;
            seen.insert(name, ino_of(&meta));
        }
        let gone: Vec<String> = self
            .current_ns
            .keys()
            .filter(|n| !seen.contains_key(*n))
            .cloned()
            .collect();
        // A rename another thread has made but whose observer call has not run yet (the store's
        // background thread renames spares): the file is gone under its old name and present,
        // with the same inode, under its new one. It is that rename, not an unlink and a create
        // (a create would forget what of the file was durable).
        let new_inos: BTreeSet<u64> = seen
            .iter()
            .filter(|(name, _)| !self.current_ns.contains_key(*name))
            .map(|(_, &ino)| ino)
            .collect();
        let mut renamed: BTreeMap<u64, (String, usize)> = BTreeMap::new();
        for name in gone {
            if let Some(id) = self.current_ns.remove(&name) {
                let ino = self.inodes[id].ino;
                if new_inos.contains(&ino) {
                    renamed.insert(ino, (name, id));
                } else {
                    self.pending.push(NsOp::Unlink(name, id));
                }
            }
        }
        for (name, ino) in seen {
            let known = self.current_ns.get(&name).copied();
            let id = match known {
                Some(id) if self.inodes[id].ino == ino => id,
                None if renamed.contains_key(&ino) => {
                    let (from, id) = renamed.remove(&ino).unwrap_or_default();
                    self.current_ns.insert(name.clone(), id);
                    self.pending.push(NsOp::Rename(from, name.clone(), id));
                    id
                }
                _ => self.create(&name, ino),
            };
            self.read_current(id, &name)?;
        }
        for (_, (name, id)) in renamed {
            self.pending.push(NsOp::Unlink(name, id));
        }
        Ok(())
    }

    /// A file appeared under `name` (created, or replaced by an unseen create).
    fn create(&mut self, name: &str, ino: u64) -> usize {
        if let Some(&old) = self.current_ns.get(name) {
            self.pending.push(NsOp::Unlink(name.to_string(), old));
        }
        let id = self.inodes.len();
        self.inodes.push(Inode {
            current: Vec::new(),
            durable: Vec::new(),
            durable_len: 0,
            settled: Vec::new(),
            ino,
        });
        self.current_ns.insert(name.to_string(), id);
        self.pending.push(NsOp::Create(name.to_string(), id));
        id
    }

    /// Reads the current bytes of inode `id` (named `name`); `std::fs::read` sees what the
    /// writer stored through its shared mapping.
    fn read_current(&mut self, id: usize, name: &str) -> io::Result<()> {
        let bytes = std::fs::read(self.dir.join(name))?;
        let inode = &mut self.inodes[id];
        inode.durable.resize(bytes.len(), 0);
        inode.settled.resize(bytes.len(), 0);
        inode.current = bytes;
        Ok(())
    }

    /// The inode currently named by `path`, finding unseen creates if needed.
    fn inode_at(&mut self, path: &Path) -> io::Result<Option<(usize, String)>> {
        let Some(name) = name_of(path) else {
            return Ok(None);
        };
        if !self.current_ns.contains_key(&name) {
            self.resync()?;
        }
        Ok(self.current_ns.get(&name).map(|&id| (id, name)))
    }

    /// A durability call is about to be made: learn about creates that happened before it (so
    /// that they are ordered before the call's own directory operation).
    pub fn before(&mut self, call: &SysCall<'_>) -> io::Result<()> {
        if !matches!(call.op, SysOp::Flush | SysOp::Seal) {
            self.resync()?;
        }
        Ok(())
    }

    /// Whether `path` names an entry of this directory: a call on anything else makes nothing
    /// of it durable (a sync of the wrong directory must not count).
    fn in_dir(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path())
    }

    /// A durability call succeeded: record what it made durable.
    pub fn after(&mut self, call: &SysCall<'_>) -> io::Result<()> {
        let ours = match call.op {
            SysOp::SyncDir => call.path == self.dir,
            SysOp::Rename => self.in_dir(call.path) && call.to.is_some_and(|to| self.in_dir(to)),
            _ => self.in_dir(call.path),
        };
        if !ours {
            return Ok(());
        }
        match call.op {
            SysOp::Flush | SysOp::Seal => {
                if let Some((id, name)) = self.inode_at(call.path)? {
                    self.read_current(id, &name)?;
                    let (offset, len) = call.range.unwrap_or((0, u64::MAX / 2));
                    let inode = &mut self.inodes[id];
                    let r = page_range(offset, len, inode.current.len());
                    inode.durable[r.clone()].copy_from_slice(&inode.current[r.clone()]);
                    inode.settled[r.clone()].copy_from_slice(&inode.current[r]);
                }
            }
            SysOp::SyncFile => {
                if let Some((id, name)) = self.inode_at(call.path)? {
                    self.read_current(id, &name)?;
                    let inode = &mut self.inodes[id];
                    inode.durable.clone_from(&inode.current);
                    inode.durable_len = inode.current.len();
                    inode.settled.clone_from(&inode.current);
                }
            }
            SysOp::Allocate => {
                if let Some((id, name)) = self.inode_at(call.path)? {
                    self.read_current(id, &name)?;
                }
            }
            SysOp::Rename => {
                let (Some(from), Some(to)) = (name_of(call.path), call.to.and_then(name_of)) else {
                    return Ok(());
                };
                if let Some(id) = self.current_ns.remove(&from) {
                    self.current_ns.insert(to.clone(), id);
                    self.pending.push(NsOp::Rename(from, to, id));
                }
            }
            SysOp::SyncDir => {
                self.resync()?;
                self.durable_ns.clone_from(&self.current_ns);
                self.pending.clear();
            }
            SysOp::Unlink => {
                if let Some(name) = name_of(call.path)
                    && let Some(id) = self.current_ns.remove(&name)
                {
                    self.pending.push(NsOp::Unlink(name, id));
                }
            }
        }
        Ok(())
    }

    /// Whether a crash now could leave anything but exactly the current files: some page or
    /// length not durable, or a directory operation not synced.
    pub fn has_unsynced(&self) -> bool {
        !self.pending.is_empty()
            || self.current_ns.values().any(|&id| {
                let inode = &self.inodes[id];
                inode.durable_len != inode.current.len() || inode.durable != inode.current
            })
    }

    /// A store was opened: whatever the files hold now stays in the page cache through any
    /// later process crash (it was written by an earlier process, or by recovery).
    pub fn settle(&mut self) -> io::Result<()> {
        self.resync()?;
        for &id in self.current_ns.values() {
            let inode = &mut self.inodes[id];
            inode.settled.clone_from(&inode.current);
        }
        Ok(())
    }

    /// A process crash in the middle of copying: in the newest file that holds bytes written
    /// since the store was opened and not flushed, those bytes stop at a random point (the ones
    /// after it are put back to their value before), in place, as the page cache would hold
    /// them. The model's durable state is unchanged. Returns the file and the offset of the
    /// cut, if any file had such bytes.
    pub fn tear_tail(&mut self, rng: &mut Rng) -> io::Result<Option<(String, usize)>> {
        self.resync()?;
        let newest = self
            .current_ns
            .iter()
            .rev()
            .find(|(_, id)| self.inodes[**id].settled != self.inodes[**id].current);
        let Some((name, &id)) = newest else {
            return Ok(None);
        };
        let name = name.clone();
        let inode = &self.inodes[id];
        let differs = |(a, b): (&u8, &u8)| a != b;
        let pairs = || inode.settled.iter().zip(&inode.current);
        let (Some(first), Some(last)) = (pairs().position(differs), pairs().rposition(differs))
        else {
            return Ok(None);
        };
        let cut = first + rng.below((last - first + 1) as u64) as usize;
        write_at(&self.dir.join(&name), cut, &inode.settled[cut..=last])?;
        self.read_current(id, &name)?;
        Ok(Some((name, cut)))
    }

    /// The harshest power cut now, and the only one that draws nothing at random: exactly what
    /// was made durable (every page written since its last flush comes back old, every
    /// directory operation since the last directory fsync is lost). Call
    /// [`resync`](Self::resync) first if the files may have changed.
    pub fn durable_image(&self) -> Image {
        let files = self
            .durable_ns
            .iter()
            .map(|(name, &id)| {
                let inode = &self.inodes[id];
                (name.clone(), inode.durable[..inode.durable_len].to_vec())
            })
            .collect();
        Image { files }
    }

    /// One possible directory after a power cut now. Call [`resync`](Self::resync) first if
    /// the files may have changed since the last durability call.
    pub fn image(&self, rng: &mut Rng) -> Image {
        let mut names = self.durable_ns.clone();
        for op in &self.pending {
            if rng.one_in(2) {
                continue; // this operation was lost
            }
            match op {
                NsOp::Create(name, id) => {
                    names.insert(name.clone(), *id);
                }
                NsOp::Rename(from, to, id) => {
                    if names.get(from) == Some(id) {
                        names.remove(from);
                    }
                    names.insert(to.clone(), *id);
                }
                NsOp::Unlink(name, id) => {
                    if names.get(name) == Some(id) {
                        names.remove(name);
                    }
                }
            }
        }
        let files = names
            .into_iter()
            .map(|(name, id)| (name, file_image(&self.inodes[id], rng)))
            .collect();
        Image { files }
    }
}

/// How a page that was changed since it was last made durable comes back after the crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageFate {
    Old,
    New,
    Torn,
    Garbage,
}

fn page_fate(rng: &mut Rng) -> PageFate {
    match rng.below(8) {
        0 | 1 => PageFate::Old,
        2 | 3 => PageFate::New,
        4..=6 => PageFate::Torn,
        _ => PageFate::Garbage,
    }
}

/// The bytes one file has after the crash.
fn file_image(inode: &Inode, rng: &mut Rng) -> Vec<u8> {
    let len = if inode.durable_len == inode.current.len() || rng.one_in(2) {
        inode.current.len()
    } else {
        inode.durable_len
    };
    let mut out = inode.durable[..len].to_vec();
    for start in (0..len).step_by(PAGE) {
        let end = (start + PAGE).min(len);
        let (old, new) = (&inode.durable[start..end], &inode.current[start..end]);
        if old != new {
            crash_page(&mut out[start..end], new, rng);
        }
    }
    out
}

/// Turns `page` (holding the durable bytes) into what a crash leaves of a write of `new`.
fn crash_page(page: &mut [u8], new: &[u8], rng: &mut Rng) {
    match page_fate(rng) {
        PageFate::Old => {}
        PageFate::New => page.copy_from_slice(new),
        PageFate::Torn => {
            for (old, new) in page.chunks_mut(SECTOR).zip(new.chunks(SECTOR)) {
                if rng.one_in(2) {
                    old.copy_from_slice(new);
                }
            }
        }
        PageFate::Garbage => {
            // Only bytes the write changed can be garbage: bytes it left alone keep their
            // (possibly durable) value, as FORMAT.md assumes of the storage.
            // The garbage comes from a generator of its own, so that how much of it is drawn
            // (which depends on the bytes) does not shift every later draw: runs replay exactly.
            let mut garbage = Rng::new(rng.next_u64());
            let first = page.iter().zip(new).position(|(a, b)| a != b);
            let last = page.iter().zip(new).rposition(|(a, b)| a != b);
            if let (Some(first), Some(last)) = (first, last) {
                garbage.fill(&mut page[first..=last]);
            }
        }
    }
}

/// One crash image taken at a crash point.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Number of the crash point (counted from the start of the recorder).
    pub point: u64,
    /// What was about to happen (the durability call, or the harness's label).
    pub what: String,
    pub image: Image,
    /// Whether anything was not durable at that point (else the image is the current files).
    pub unsynced: bool,
}

/// How often crash points are sampled and how many images each sampled one gives.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    /// A crash point is sampled with probability `1 / one_in` (1: every one; 0: never).
    pub one_in: u64,
    /// Images made at a sampled crash point.
    pub images: usize,
}

/// One sampled crash point in this many gets the durable-only image as its first image.
const HARSHEST_ONE_IN: u64 = 4;

struct Recorder {
    state: DurableState,
    rng: Rng,
    sampling: Sampling,
    points: u64,
    captured: Vec<Captured>,
    /// The first thing that went wrong inside the observer (it cannot return errors).
    error: Option<String>,
}

impl Recorder {
    fn crash_point(&mut self, what: impl FnOnce() -> String, force: bool) {
        self.points += 1;
        let sampled = match self.sampling.one_in {
            0 => false,
            n => self.rng.one_in(n),
        };
        if !(sampled || force) {
            return;
        }
        if let Err(e) = self.state.resync() {
            self.error
                .get_or_insert(format!("reading the directory: {e}"));
            return;
        }
        let what = what();
        let unsynced = self.state.has_unsynced();
        for k in 0..self.sampling.images.max(1) {
            // Now and then the harshest image, which random fates rarely give when many pages
            // or directory operations are pending.
            let image = if k == 0 && self.rng.one_in(HARSHEST_ONE_IN) {
                self.state.durable_image()
            } else {
                self.state.image(&mut self.rng)
            };
            self.captured.push(Captured {
                point: self.points,
                what: what.clone(),
                image,
                unsynced,
            });
        }
    }

    fn observe(&mut self, call: &SysCall<'_>) {
        let result = if call.done {
            self.state.after(call)
        } else {
            let r = self.state.before(call);
            self.crash_point(|| describe(call), false);
            r
        };
        if let Err(e) = result {
            self.error.get_or_insert(format!(
                "following {:?} of {}: {e}",
                call.op,
                call.path.display()
            ));
        }
    }
}

/// A short description of a durability call.
pub fn describe(call: &SysCall<'_>) -> String {
    let name = |p: &Path| name_of(p).unwrap_or_else(|| p.display().to_string());
    match (call.op, call.to, call.range) {
        (SysOp::Rename, Some(to), _) => format!("Rename {} -> {}", name(call.path), name(to)),
        (op @ (SysOp::Flush | SysOp::Seal), _, Some((off, len))) => {
            format!("{op:?} {} {off}+{len}", name(call.path))
        }
        (op, _, _) => format!("{op:?} {}", name(call.path)),
    }
}

/// A [`DurableState`] fed by a fault plan's observer, sampling crash points as it goes.
#[derive(Clone)]
pub struct CrashPoints {
    inner: Arc<Mutex<Recorder>>,
}

impl CrashPoints {
    /// Follows `state`; samples crash points as `sampling` says, drawing from `seed`.
    pub fn new(state: DurableState, seed: u64, sampling: Sampling) -> CrashPoints {
        CrashPoints {
            inner: Arc::new(Mutex::new(Recorder {
                state,
                rng: Rng::new(seed),
                sampling,
                points: 0,
                captured: Vec::new(),
                error: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fault plan that fails nothing and shows every durability call to this recorder. Pass
    /// it to every store opened on the directory.
    pub fn plan(&self) -> Arc<FaultPlan> {
        let plan = FaultPlan::new();
        let inner = self.inner.clone();
        plan.observe(Box::new(move |call| {
            inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(call);
        }));
        Arc::new(plan)
    }

    /// A crash point of the harness's own (between two operations, where no durability call is
    /// made: in `Manual` mode, after an unsynced append). Sampled like the others, or always
    /// with `force`.
    pub fn here(&self, what: &str, force: bool) {
        self.lock().crash_point(|| what.to_string(), force);
    }

    /// One crash image of the directory as it is now, outside the sampling.
    pub fn image_now(&self) -> Result<Image, String> {
        let mut r = self.lock();
        r.state
            .resync()
            .map_err(|e| format!("reading the directory: {e}"))?;
        let Recorder { state, rng, .. } = &mut *r;
        Ok(state.image(rng))
    }

    /// The directory as [`DurableState::durable_image`] says a power cut now leaves it.
    pub fn durable_image_now(&self) -> Result<Image, String> {
        let mut r = self.lock();
        r.state
            .resync()
            .map_err(|e| format!("reading the directory: {e}"))?;
        Ok(r.state.durable_image())
    }

    /// See [`DurableState::tear_tail`].
    pub fn tear_tail(&self) -> Result<Option<(String, usize)>, String> {
        let mut r = self.lock();
        let Recorder { state, rng, .. } = &mut *r;
        state
            .tear_tail(rng)
            .map_err(|e| format!("tearing the tail: {e}"))
    }

    /// See [`DurableState::settle`].
    pub fn settle(&self) -> Result<(), String> {
        self.lock()
            .state
            .settle()
            .map_err(|e| format!("reading the directory: {e}"))
    }

    /// The images captured since the last call.
    pub fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut self.lock().captured)
    }

    /// Crash points seen so far.
    pub fn points(&self) -> u64 {
        self.lock().points
    }

    /// Something that went wrong while following the directory, if anything did: the model is
    /// then unreliable and the harness must say so.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Everything now in the directory is durable (it was just replaced by a crash image).
    pub fn reset_all_durable(&self) -> Result<(), String> {
        self.lock()
            .state
            .reset_all_durable()
            .map_err(|e| format!("reading the directory: {e}"))
    }

    /// Whether a crash now could lose anything.
    pub fn has_unsynced(&self) -> Result<bool, String> {
        let mut r = self.lock();
        r.state
            .resync()
            .map_err(|e| format!("reading the directory: {e}"))?;
        Ok(r.state.has_unsynced())
    }
}
