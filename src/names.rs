//! The names of the files in a log directory (FORMAT.md, "Directory contents"): one function
//! that makes each kind of name and one that reads any of them back.
//!
//! Segment numbers are written as 20 zero-padded decimal digits, so that names sort like the
//! numbers they carry. Tools that build or read log directories themselves (a converter, a
//! test that damages files) use these functions instead of formatting names on their own.
//!
//! ```
//! use softadastra_wal::names::{self, FileKind};
//!
//! assert_eq!(names::segment(7), "00000000000000000007.seg");
//! assert_eq!(names::parse("00000000000000000007.spare"), Some(FileKind::Spare(7)));
//! assert_eq!(names::parse(names::LOCK_FILE), Some(FileKind::Lock));
//! assert_eq!(names::parse("notes.txt"), None);
//! ```

const SEGMENT_SUFFIX: &str = ".seg";
const TEMP_SUFFIX: &str = ".seg.tmp";
const SPARE_SUFFIX: &str = ".spare";
const DIGITS: usize = 20;

/// The name of the lock file a writer holds inside a log directory.
pub const LOCK_FILE: &str = "wal.lock";

/// The name of segment `id`: `{id:020}.seg`.
#[must_use]
pub fn segment(id: u64) -> String {
    format!("{id:020}{SEGMENT_SUFFIX}")
}

/// The name of the spare made ahead of need to become segment `id`: `{id:020}.spare`.
#[must_use]
pub fn spare(id: u64) -> String {
    format!("{id:020}{SPARE_SUFFIX}")
}

/// The temporary name under which segment (or spare) `id` is created: `{id:020}.seg.tmp`.
#[must_use]
pub fn temp(id: u64) -> String {
    format!("{id:020}{TEMP_SUFFIX}")
}

/// What a file's name says it is in a log directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// Segment `id` ([`segment`]).
    Segment(u64),
    /// A spare that may become segment `id` ([`spare`]).
    Spare(u64),
    /// Segment or spare `id` being created ([`temp`]); a writer opening the log removes it.
    Temp(u64),
    /// The writer's lock file ([`LOCK_FILE`]).
    Lock,
}

/// Reads a name made by [`segment`], [`spare`], [`temp`] or [`LOCK_FILE`]; `None` for any other
/// name (a file the log does not own).
#[must_use]
pub fn parse(name: &str) -> Option<FileKind> {
    if name == LOCK_FILE {
        return Some(FileKind::Lock);
    }
    let (digits, kind): (&str, fn(u64) -> FileKind) =
        if let Some(d) = name.strip_suffix(TEMP_SUFFIX) {
            (d, FileKind::Temp)
        } else if let Some(d) = name.strip_suffix(SPARE_SUFFIX) {
            (d, FileKind::Spare)
        } else {
            (name.strip_suffix(SEGMENT_SUFFIX)?, FileKind::Segment)
        };
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(kind(digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(parse(&segment(id)), Some(FileKind::Segment(id)));
            assert_eq!(parse(&temp(id)), Some(FileKind::Temp(id)));
            assert_eq!(parse(&spare(id)), Some(FileKind::Spare(id)));
        }
        assert_eq!(segment(7), "00000000000000000007.seg");
        assert_eq!(parse(LOCK_FILE), Some(FileKind::Lock));
        for bad in [
            "wal.lock.old",
            "7.seg",
            "0000000000000000000x.seg",
            "00000000000000000007.segx",
            "00000000000000000007.spare.tmp",
            "99999999999999999999.seg",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
