//! The state a store shares with its writers and readers: the directory, the settings, the
//! background preparer, the exclusive lock, and what has been published to readers.
//!
//! The writer changes `published` (under its own lock, after a flush); readers only take
//! snapshots of it. Keeping this state here, apart from the store, the writer and the reader,
//! lets each of those depend on it without depending on each other.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::config::WalConfig;
use crate::error::{Error, Result};
use crate::format::Layout;
use crate::notify::Wakeup;
use crate::prepare::Preparer;
use crate::segment::SegmentView;
use crate::sys::Sys;

/// The durable state readers may see: every segment but the newest, and the newest one's durable
/// prefix. Sealed views change only at rotation and truncation, so they sit behind an `Arc`.
#[derive(Clone, Debug)]
pub(crate) struct Published {
    pub(crate) sealed: Arc<Vec<SegmentView>>,
    pub(crate) active: SegmentView,
}

impl Published {
    pub(crate) fn views(&self) -> Vec<SegmentView> {
        let mut v = Vec::with_capacity(self.sealed.len() + 1);
        v.extend(self.sealed.iter().cloned());
        v.push(self.active.clone());
        v
    }
}

/// State shared by a store and every writer and reader made from it.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) config: WalConfig,
    /// Layout of segments created from now on.
    pub(crate) layout: Layout,
    pub(crate) log_id: u64,
    pub(crate) sys: Sys,
    published: RwLock<Published>,
    /// Wakes readers waiting for new records ([`WalReader::wait_for`](crate::WalReader::wait_for)).
    pub(crate) wakeup: Wakeup,
    /// Keeps the next segment ready and seals full ones in the background. Declared before
    /// `_lock`: fields drop in order, and the thread must be gone before the lock is released.
    pub(crate) preparer: Preparer,
    /// Holds the exclusive lock for as long as any handle lives.
    _lock: File,
}

/// The error for a lock whose holder panicked.
pub(crate) fn panicked() -> Error {
    Error::Poisoned {
        cause: "a thread panicked while holding the log's lock".into(),
    }
}

impl Shared {
    /// The state of an opened log whose directory lock is `lock`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dir: PathBuf,
        config: WalConfig,
        layout: Layout,
        log_id: u64,
        sys: Sys,
        published: Published,
        preparer: Preparer,
        lock: File,
    ) -> Shared {
        Shared {
            dir,
            config,
            layout,
            log_id,
            sys,
            published: RwLock::new(published),
            wakeup: Wakeup::default(),
            preparer,
            _lock: lock,
        }
    }

    pub(crate) fn read_published(&self) -> Result<RwLockReadGuard<'_, Published>> {
        self.published.read().map_err(|_| panicked())
    }

    pub(crate) fn write_published(&self) -> Result<RwLockWriteGuard<'_, Published>> {
        self.published.write().map_err(|_| panicked())
    }
}
