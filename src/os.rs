//! The one system call std does not offer and fs2 reports wrongly: block allocation.
//!
//! `posix_fallocate` returns its error number instead of setting `errno`. fs2 0.4 reads `errno`
//! after it, so it reports a stale code (often 0, "success"), and a real I/O error could not be
//! told from a full disk. Calling it directly gives the true code: `ENOSPC` is a full disk, which
//! the writer can recover from; anything else (`EIO` after a failing disk, say) poisons it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Allocates real blocks for bytes `0..len` of `file`, extending it if needed.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "allocation too large"))?;
    loop {
        // SAFETY: `posix_fallocate` only reads its three integer arguments; the descriptor is
        // owned by `file`, which the borrow keeps open for the whole call. No memory is shared.
        let code = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match code {
            0 => return Ok(()),
            libc::EINTR => continue,
            code => return Err(io::Error::from_raw_os_error(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::allocate;

    #[test]
    fn allocates_real_blocks() {
        let file = tempfile::tempfile().expect("temp file");
        allocate(&file, 1 << 20).expect("allocate");
        assert_eq!(file.metadata().expect("metadata").len(), 1 << 20);
    }

    /// fs2 turned every failure into a stale errno (often 0); the true code must come through,
    /// and only ENOSPC may look like a full disk.
    #[test]
    fn reports_the_real_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        let read_only = std::fs::File::open(&path).expect("open");
        let err = allocate(&read_only, 4096).expect_err("a read-only descriptor cannot allocate");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert_ne!(err.kind(), std::io::ErrorKind::StorageFull);
    }
}
