//! The crate's one error type.
//!
//! Every failure a file, a user or the operating system can cause is a value of [`Error`];
//! nothing in the crate panics on such input. Variants carry the context needed to act on them
//! (the file, the offset, the sequence number) and `Display` reads as a sentence.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The result type of every fallible operation in this crate: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, writing or reading a log.
///
/// Match on the variant to act on the details, or use [`is_corruption`](Self::is_corruption),
/// [`is_poisoned`](Self::is_poisoned) and [`is_locked`](Self::is_locked) for the common cases.
/// `Display` reads as a sentence with the file, offset or setting involved; `source()` is the
/// operating system's error for [`Error::Io`]. New variants may be added in minor releases.
///
/// ```
/// use softadastra_wal::{Error, WalConfig, WalStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let _store = WalStore::open(WalConfig::new(dir.path()))?;
///
/// // A second store on the same directory is refused while the first is alive.
/// let err = WalStore::open(WalConfig::new(dir.path()))
///     .err()
///     .ok_or("the second open should have failed")?;
/// assert!(err.is_locked());
/// assert!(matches!(&err, Error::Locked { dir: locked } if locked.as_path() == dir.path()));
/// assert!(err.to_string().contains("is locked by another writer"));
///
/// // Where only `std::io::Error` fits, the conversion keeps a matching kind.
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed. `path` is the file or directory it was working on.
    ///
    /// A failed flush, sync, block allocation, rename, directory sync or unlink while appending
    /// or truncating also poisons the writer (later appends fail with [`Error::Poisoned`]). A full
    /// disk while a new segment is being created does not: `source.kind()` is then
    /// [`StorageFull`](io::ErrorKind::StorageFull), nothing in the log changed, and the append can
    /// be retried once space is freed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the crate was doing, e.g. `"flushing"` or `"renaming"`.
        action: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// Bytes on disk are not what the format allows, in a place where that cannot be explained by
    /// a crash during an unacknowledged write. Acknowledged data may be damaged; the log refuses to
    /// guess.
    ///
    /// Returned by [`WalStore::open`](crate::WalStore::open) and
    /// [`WalReader::open`](crate::WalReader::open) for damage recovery must not cut, and by reads
    /// for a record that fails its checks (records of full segments are checked when read, not at
    /// open). Keep a copy of the directory before doing anything else with it.
    Corruption {
        /// The segment file.
        file: PathBuf,
        /// Byte offset inside `file` where the damage was found (for a record, the start of its
        /// header).
        offset: u64,
        /// The sequence number that was expected or being read there, if known.
        seq: Option<u64>,
        /// What exactly was wrong.
        detail: String,
    },
    /// Another [`WalStore`](crate::WalStore) (in this or another process) holds the directory's
    /// writer lock. The lock is released when that store and every writer made from it are
    /// dropped (or its process ends); readers do not hold it.
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// A record (or a batch) does not fit into one segment. Nothing was written and no sequence
    /// number was used; see [`WalConfig::max_payload`](crate::WalConfig::max_payload).
    RecordTooLarge {
        /// Bytes the record or batch needs on disk, headers included.
        needed: u64,
        /// The most a segment of the configured size can hold.
        max: u64,
    },
    /// An earlier flush, allocation, rename or unlink failed, so the writer can no longer prove what
    /// is on stable storage. Nothing is acknowledged after that; drop the store and every writer
    /// made from it and reopen the store, which recovers what is really on disk. Also returned
    /// after a thread panicked while it held the log's internal lock.
    Poisoned {
        /// The failure that poisoned the writer.
        cause: String,
    },
    /// A [`WalConfig`](crate::WalConfig) value is out of range.
    InvalidConfig {
        /// Which setting and why.
        reason: String,
    },
    /// A segment was written by a format version this crate does not read (a newer release).
    UnsupportedVersion {
        /// The segment file.
        file: PathBuf,
        /// The version it declares.
        version: u32,
    },
    /// An application record type used a code reserved by the format
    /// (see [`RecordType::Custom`](crate::RecordType::Custom)). Nothing was written and no
    /// sequence number was used.
    InvalidRecordType {
        /// The code that was refused.
        code: u8,
    },
}

impl Error {
    /// True when the error reports damaged data on disk ([`Error::Corruption`]).
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// True when the writer is poisoned and the store must be reopened ([`Error::Poisoned`]).
    /// The `Error::Io` that caused the poisoning is not itself counted: ask
    /// [`WalWriter::is_poisoned`](crate::WalWriter::is_poisoned) after an I/O error.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned { .. })
    }

    /// True when the directory is locked by another store ([`Error::Locked`]).
    #[must_use]
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        seq: Option<u64>,
        detail: impl Into<String>,
    ) -> Error {
        Error::Corruption {
            file: file.into(),
            offset,
            seq,
            detail: detail.into(),
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Error {
        Error::InvalidConfig {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                path,
                action,
                source,
            } => write!(f, "I/O error while {action} {}: {source}", path.display()),
            Error::Corruption {
                file,
                offset,
                seq,
                detail,
            } => {
                write!(f, "corruption in {} at offset {offset}", file.display())?;
                if let Some(seq) = seq {
                    write!(f, " (sequence {seq})")?;
                }
                write!(f, ": {detail}")
            }
            Error::Locked { dir } => write!(
                f,
                "the log directory {} is locked by another writer",
                dir.display()
            ),
            Error::RecordTooLarge { needed, max } => write!(
                f,
                "the record needs {needed} bytes but a segment holds at most {max}"
            ),
            Error::Poisoned { cause } => write!(
                f,
                "the writer is poisoned by an earlier failure ({cause}); reopen the store"
            ),
            Error::InvalidConfig { reason } => write!(f, "invalid configuration: {reason}"),
            Error::UnsupportedVersion { file, version } => write!(
                f,
                "{} uses format version {version}, which this release does not read (it reads version {})",
                file.display(),
                crate::format::FORMAT_VERSION
            ),
            Error::InvalidRecordType { code } => write!(
                f,
                "record type code {code} is reserved; custom codes must be 6 to 255"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Wraps the error (kept as the `io::Error`'s inner error) with a kind that matches it:
/// an `Io` error keeps its own kind, `Corruption` is `InvalidData`, `Locked` is `WouldBlock`,
/// `RecordTooLarge`, `InvalidConfig` and `InvalidRecordType` are `InvalidInput`,
/// `UnsupportedVersion` is `Unsupported` and `Poisoned` is `Other`.
impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::Io { source, .. } => source.kind(),
            Error::Corruption { .. } => io::ErrorKind::InvalidData,
            Error::Locked { .. } => io::ErrorKind::WouldBlock,
            Error::RecordTooLarge { .. } | Error::InvalidConfig { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::InvalidRecordType { .. } => io::ErrorKind::InvalidInput,
            Error::UnsupportedVersion { .. } => io::ErrorKind::Unsupported,
            Error::Poisoned { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn display_reads_as_a_sentence() {
        let err = Error::corruption("/x/1.seg", 96, Some(7), "checksum mismatch");
        assert_eq!(
            err.to_string(),
            "corruption in /x/1.seg at offset 96 (sequence 7): checksum mismatch"
        );
        assert!(err.is_corruption());
        assert!(!err.is_poisoned());
    }
}
