//! The preparer: a background thread that keeps the next segment ready (a [`Spare`]) and seals
//! full segments, so that the append which crosses a segment boundary pays neither a file
//! creation, an allocation, the three syncs of a new file nor the seal's sync of the old one.
//!
//! The writer hands it work under the writer's mutex. At each rotation the writer first waits
//! until the preparer is idle (its work since the last rotation has had a whole segment's worth
//! of appends to finish), then takes the spare. A failure of the preparer's work is reported
//! there, at the next rotation, as if the writer had made the call itself: a full disk while
//! allocating the spare is an error that does not poison (the writer then creates the segment
//! itself, as before, once the application retries), anything else poisons. A failed seal loses
//! nothing before that: the records it covers were durable already, and recovery seals an
//! unsealed segment at the next open. Waiting at rotation also keeps the order of the calls
//! deterministic, which the fault-injection tests rely on.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::events::event;
use crate::format::Layout;
use crate::segment::Segment;
use crate::segment::create::Spare;
use crate::sys::Sys;

/// A segment to seal: its records `first..=last` end at `data_end` and are durable.
#[derive(Debug)]
struct SealJob {
    seg: Arc<Segment>,
    first: u64,
    last: u64,
    data_end: u64,
}

#[derive(Debug)]
enum SpareSlot {
    /// Nothing asked for (or the last one was taken and no new one requested yet).
    None,
    /// Asked for, not started.
    Wanted(u64),
    /// Being made by the thread.
    Making,
    Ready(Spare),
}

#[derive(Debug)]
struct State {
    spare: SpareSlot,
    seals: Vec<SealJob>,
    /// A seal is being written by the thread.
    sealing: bool,
    /// The first failure since the writer last looked.
    failure: Option<Error>,
    stop: bool,
}

impl State {
    fn idle(&self) -> bool {
        self.seals.is_empty()
            && !self.sealing
            && matches!(self.spare, SpareSlot::None | SpareSlot::Ready(_))
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    layout: Layout,
    sys: Sys,
    state: Mutex<State>,
    /// Signalled on every change of `state`.
    changed: Condvar,
}

/// The handle the store keeps; dropping it lets the thread finish its work, stops it and
/// removes an unused spare.
#[derive(Debug)]
pub(crate) struct Preparer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Preparer {
    /// Starts the thread for the log in `dir`, whose new segments have `layout`.
    pub(crate) fn start(dir: PathBuf, layout: Layout, sys: Sys) -> Result<Preparer> {
        let inner = Arc::new(Inner {
            dir,
            layout,
            sys,
            state: Mutex::new(State {
                spare: SpareSlot::None,
                seals: Vec::new(),
                sealing: false,
                failure: None,
                stop: false,
            }),
            changed: Condvar::new(),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("softadastra-wal-prepare".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io("starting the segment preparer for", &inner.dir, e))?;
        Ok(Preparer {
            inner,
            thread: Some(thread),
        })
    }

    /// Asks for the spare that will become segment `id`.
    pub(crate) fn want_spare(&self, id: u64) {
        let mut st = self.inner.lock();
        if matches!(st.spare, SpareSlot::None) {
            st.spare = SpareSlot::Wanted(id);
            self.inner.changed.notify_all();
        }
    }

    /// Queues the seal of `seg`, whose records `first..=last` end at `data_end` and are durable.
    pub(crate) fn seal(&self, seg: Arc<Segment>, first: u64, last: u64, data_end: u64) {
        let mut st = self.inner.lock();
        st.seals.push(SealJob {
            seg,
            first,
            last,
            data_end,
        });
        self.inner.changed.notify_all();
    }

    /// Waits until the preparer is idle, then hands over the spare for segment `id` if there is
    /// one (`Ok(None)`: the caller creates the segment itself).
    ///
    /// # Errors
    ///
    /// The first failure of the preparer's work since the last call.
    pub(crate) fn take_spare(&self, id: u64) -> Result<Option<Spare>> {
        let mut st = self.settled();
        if let Some(e) = st.failure.take() {
            return Err(e);
        }
        match std::mem::replace(&mut st.spare, SpareSlot::None) {
            SpareSlot::Ready(spare) if spare.id() == id => Ok(Some(spare)),
            // Ids only grow, one rotation at a time, so another id cannot happen; should it, the
            // file stays until the store closes or the next open removes it.
            other => {
                st.spare = other;
                Ok(None)
            }
        }
    }

    /// Waits until the preparer is idle: no seal pending (before segments are deleted, so that
    /// no seal is written into a file that is gone) and no spare being made.
    pub(crate) fn settle(&self) {
        drop(self.settled());
    }

    fn settled(&self) -> MutexGuard<'_, State> {
        let mut st = self.inner.lock();
        while !st.idle() {
            st = self.inner.wait(st);
        }
        st
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.inner.lock().stop = true;
        self.inner.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread has nothing that can panic; if it did, there is nothing to add.
            let _ = thread.join();
        }
        // An unused spare is removed, not to leave a file behind a closed log (after a crash it
        // stays, and the next open removes it).
        if let SpareSlot::Ready(spare) =
            std::mem::replace(&mut self.inner.lock().spare, SpareSlot::None)
        {
            spare.discard();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every unlock; a panic elsewhere does not change that.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, guard: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// The thread: seals first (oldest first), then the wanted spare. A spare asked for is made
    /// even when the store is closing, so that the work done does not depend on timing.
    fn run(&self) {
        let mut st = self.lock();
        loop {
            if !st.seals.is_empty() {
                let job = st.seals.remove(0);
                st.sealing = true;
                drop(st);
                let sealed = job.seg.seal(&self.sys, job.first, job.last, job.data_end);
                st = self.lock();
                st.sealing = false;
                if let Err(e) = sealed {
                    event!(error, "sealing {} failed: {e}", job.seg.path().display());
                    st.failure.get_or_insert(e);
                }
                self.changed.notify_all();
            } else if let SpareSlot::Wanted(id) = st.spare {
                st.spare = SpareSlot::Making;
                drop(st);
                let made = Spare::create(&self.sys, &self.dir, id, self.layout);
                st = self.lock();
                st.spare = match made {
                    Ok(spare) => SpareSlot::Ready(spare),
                    Err(e) => {
                        event!(warn, "preparing segment {id} ahead failed: {e}");
                        st.failure.get_or_insert(e);
                        SpareSlot::None
                    }
                };
                self.changed.notify_all();
            } else if st.stop {
                return;
            } else {
                st = self.wait(st);
            }
        }
    }
}
