//! Opening options: [`WalConfig`] and [`SyncMode`].
//!
//! A configuration is a plain value: building one touches no file and checks nothing.
//! [`WalStore::open`](crate::WalStore::open) validates it and reports an out-of-range setting as
//! [`Error::InvalidConfig`].

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format;

/// When an append becomes durable, and so when readers see it.
///
/// The choice applies to the store opened with it; a log written in one mode can be reopened in
/// the other (the mode is not stored on disk).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SyncMode {
    /// Every `append` (and every batch) flushes its bytes to stable storage before it returns.
    /// An acknowledged record survives a process crash, an OS crash and a power cut, provided the
    /// drive honours flushes. This is the default.
    #[default]
    Always,
    /// `append` returns once the record is copied into the mapping. It is *not* durable and not
    /// visible to the store's readers until the next [`WalWriter::sync`](crate::WalWriter::sync)
    /// (or a segment rotation, which flushes the full segment). A crash may lose any record
    /// appended since the last completed `sync`, but never one before it, and never leaves a gap.
    ///
    /// A [`WalReader::open`](crate::WalReader::open) reader reads the files themselves and can
    /// see such records before they are synced.
    Manual,
}

/// Where the log lives and how it is laid out: the argument of
/// [`WalStore::open`](crate::WalStore::open).
///
/// Start from [`WalConfig::new`] (every setting at its default) and change settings with the
/// builder methods, which take and return the configuration by value. Nothing is checked until
/// the store is opened (or [`max_payload`](Self::max_payload) is called): an out-of-range value is
/// then an [`Error::InvalidConfig`] that names the setting.
///
/// ```
/// use softadastra_wal::{SyncMode, WalConfig};
/// let config = WalConfig::new("data/wal")
///     .segment_size(64 << 20)
///     .index_interval(4096)
///     .sync_mode(SyncMode::Always);
/// assert_eq!(config.get_segment_size(), 64 << 20);
/// assert_eq!(config.dir(), std::path::Path::new("data/wal"));
/// ```
#[derive(Clone, Debug)]
pub struct WalConfig {
    pub(crate) dir: PathBuf,
    pub(crate) segment_size: u64,
    pub(crate) index_interval: u64,
    pub(crate) sync_mode: SyncMode,
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: Option<std::sync::Arc<crate::sys::FaultPlan>>,
}

impl WalConfig {
    /// Default segment size: 64 MiB.
    pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
    /// Default distance between sparse index entries: 4 KiB.
    pub const DEFAULT_INDEX_INTERVAL: u64 = 4096;
    /// Smallest allowed segment size: 8 KiB.
    pub const MIN_SEGMENT_SIZE: u64 = 8 << 10;
    /// Largest allowed segment size: 16 GiB.
    pub const MAX_SEGMENT_SIZE: u64 = 16 << 30;
    /// Smallest allowed index interval: 64 bytes.
    pub const MIN_INDEX_INTERVAL: u64 = 64;

    /// A configuration for the log in directory `dir` (created with its parents on open if
    /// missing), with every other setting at its default: 64 MiB segments, an index entry every
    /// 4 KiB, [`SyncMode::Always`]. A relative `dir` stays relative (each file operation
    /// resolves it against the current directory): give an absolute path if the process may
    /// change its current directory while the log is open.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            segment_size: Self::DEFAULT_SEGMENT_SIZE,
            index_interval: Self::DEFAULT_INDEX_INTERVAL,
            sync_mode: SyncMode::Always,
            #[cfg(feature = "fault-injection")]
            faults: None,
        }
    }

    /// Bytes per segment file, headers and index included. Applies to segments created from now
    /// on; existing segments keep the size they were created with. A multiple of 4096 between
    /// [`MIN_SEGMENT_SIZE`](Self::MIN_SEGMENT_SIZE) and
    /// [`MAX_SEGMENT_SIZE`](Self::MAX_SEGMENT_SIZE). Default: 64 MiB.
    ///
    /// Every segment file takes its full size on disk from the moment it is created (its blocks
    /// are allocated up front), and opening a log reads the newest segment whole, so a smaller
    /// size means less disk used by a short log and a faster open; a record (or a batch) must fit
    /// into one segment (see [`max_payload`](Self::max_payload)).
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> WalConfig {
        self.segment_size = bytes;
        self
    }

    /// Bytes of records between two entries of the sparse sequence index; smaller is faster
    /// random access and a larger index. At least
    /// [`MIN_INDEX_INTERVAL`](Self::MIN_INDEX_INTERVAL), at most the segment size. Default: 4 KiB.
    ///
    /// A lookup by sequence number walks the record headers after the nearest index entry, so
    /// this bounds that walk; each entry costs 16 bytes of the segment file (reserved up front)
    /// and of memory while the segment's index is loaded. Applies to segments created from now on.
    #[must_use]
    pub fn index_interval(mut self, bytes: u64) -> WalConfig {
        self.index_interval = bytes;
        self
    }

    /// When appends become durable and visible to readers. Default: [`SyncMode::Always`].
    #[must_use]
    pub fn sync_mode(mut self, mode: SyncMode) -> WalConfig {
        self.sync_mode = mode;
        self
    }

    /// Test-only: inject failures into the durability system calls of the store opened with this
    /// configuration.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    #[must_use]
    pub fn fault_plan(mut self, plan: std::sync::Arc<crate::sys::FaultPlan>) -> WalConfig {
        self.faults = Some(plan);
        self
    }

    /// The log directory, as given to [`new`](Self::new).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configured segment size in bytes (not yet validated).
    #[must_use]
    pub fn get_segment_size(&self) -> u64 {
        self.segment_size
    }

    /// The configured index interval in bytes (not yet validated).
    #[must_use]
    pub fn get_index_interval(&self) -> u64 {
        self.index_interval
    }

    /// The configured sync mode.
    #[must_use]
    pub fn get_sync_mode(&self) -> SyncMode {
        self.sync_mode
    }

    /// The largest payload one record can carry in segments of this configuration: the segment
    /// size less its header, the room reserved for its index and footer, and one record header
    /// (capped at `u32::MAX`). A longer payload is refused by every append with
    /// [`Error::RecordTooLarge`]. A batch must fit into one segment as a whole, so its records
    /// together (each with a 32-byte header and padding to 8 bytes) get a little less.
    ///
    /// ```
    /// use softadastra_wal::WalConfig;
    /// # fn main() -> softadastra_wal::Result<()> {
    /// let max = WalConfig::new("wal").segment_size(1 << 20).max_payload()?;
    /// assert!(max > 1_000_000 && max < 1 << 20);
    ///
    /// let odd = WalConfig::new("wal").segment_size(5000);
    /// assert!(odd.max_payload().is_err()); // not a multiple of 4096
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the segment size or the index interval is out of range (the
    /// same check [`WalStore::open`](crate::WalStore::open) makes).
    pub fn max_payload(&self) -> Result<u64> {
        self.validate()?;
        Ok(format::Layout::new(self.segment_size, self.index_interval)?.max_payload())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let size = self.segment_size;
        if !(Self::MIN_SEGMENT_SIZE..=Self::MAX_SEGMENT_SIZE).contains(&size)
            || !size.is_multiple_of(4096)
        {
            return Err(Error::config(format!(
                "segment_size {size} must be a multiple of 4096 between {} and {}",
                Self::MIN_SEGMENT_SIZE,
                Self::MAX_SEGMENT_SIZE
            )));
        }
        let interval = self.index_interval;
        if interval < Self::MIN_INDEX_INTERVAL || interval > size {
            return Err(Error::config(format!(
                "index_interval {interval} must be between {} and the segment size {size}",
                Self::MIN_INDEX_INTERVAL
            )));
        }
        format::Layout::new(size, interval).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let c = WalConfig::new("x");
        assert_eq!(c.get_segment_size(), 64 << 20);
        assert_eq!(c.get_index_interval(), 4096);
        assert_eq!(c.get_sync_mode(), SyncMode::Always);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [0, 4096, 8193, 32 << 30] {
            let err = WalConfig::new("x").segment_size(bad).validate();
            assert!(matches!(err, Err(Error::InvalidConfig { .. })), "{bad}");
        }
        for bad in [0, 63, (64 << 20) + 1] {
            let err = WalConfig::new("x").index_interval(bad).validate();
            assert!(matches!(err, Err(Error::InvalidConfig { .. })), "{bad}");
        }
    }
}
