//! The only module with `unsafe` code: a segment file's memory mapping, and the one block
//! allocation call std lacks ([`allocate_blocks`]).
//!
//! A [`Mapping`] is shared between the writer and any number of readers. The rule that makes
//! that sound is the one the whole crate is built around: **bytes below a segment's published
//! end are never written again** (the writer only writes past the end it has published, and
//! publishes with Release after its writes and flush; readers load that end with Acquire and only
//! ever form slices below it). Writes go through raw pointers, never through a `&mut [u8]`, so no
//! mutable reference ever aliases a reader's `&[u8]`.
//!
//! What this module cannot guard against, and the README's Safety section says so: another
//! process (or a person) truncating or rewriting a segment file while it is mapped. A file that
//! shrinks under a mapping makes reads of the lost pages raise SIGBUS.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw};

/// A shared mapping of a whole segment file.
#[derive(Debug)]
pub(crate) struct Mapping {
    raw: MmapRaw,
    writable: bool,
}

fn out_of_bounds(start: usize, len: usize, size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("range {start}+{len} outside a mapping of {size} bytes"),
    )
}

impl Mapping {
    /// Maps `file` for reading and writing (a shared mapping: stores reach the file).
    pub(crate) fn read_write(file: &File) -> io::Result<Mapping> {
        let raw = MmapOptions::new().map_raw(file)?;
        Ok(Mapping {
            raw,
            writable: true,
        })
    }

    /// Maps `file` read-only.
    pub(crate) fn read_only(file: &File) -> io::Result<Mapping> {
        let raw = MmapOptions::new().map_raw_read_only(file)?;
        Ok(Mapping {
            raw,
            writable: false,
        })
    }

    /// Prefaults the first `len` bytes of the mapping writable (`MADV_POPULATE_WRITE`, Linux
    /// 5.14 and later): the page faults, and the file system's work to make each page writable,
    /// happen now instead of at the first store into each page. The pages become dirty (zeros
    /// the kernel writes back), so this is for a bounded prefix only. Best effort: where the
    /// kernel lacks it, nothing happens and the faults come later, as they would have anyway.
    pub(crate) fn prefault_write(&self, len: usize) {
        #[cfg(target_os = "linux")]
        if self.writable {
            let len = len.min(self.raw.len());
            let _ = self
                .raw
                .advise_range(memmap2::Advice::PopulateWrite, 0, len);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = len;
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    /// The bytes in `start..end`, or `None` if the range is outside the mapping.
    ///
    /// Only ask for a range nobody writes while the slice lives: below a segment's published
    /// end, a segment header, or a sealed segment. Every caller in the crate states which.
    pub(crate) fn stable_range(&self, start: usize, end: usize) -> Option<&[u8]> {
        if start > end || end > self.raw.len() {
            return None;
        }
        // SAFETY: the range is inside the live mapping (checked above), which stays mapped as long
        // as `self` is borrowed. No `&mut` to these bytes exists anywhere (writes go through raw
        // pointers in `write`/`zero`), and by the crate's invariant (module docs) nothing writes
        // below a published end while readers exist, so the bytes do not change under the slice.
        Some(unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(start), end - start) })
    }

    /// Copies `bytes` into the mapping at `offset`.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` for a read-only mapping, `InvalidInput` for a range outside it.
    ///
    /// # Safety
    ///
    /// No `&[u8]` over `offset..offset + bytes.len()` may be alive, in this process, while the
    /// bytes change, and no other write to the range may race with this one. In this crate that
    /// means one of: the range is past the segment's published end and the caller is its one
    /// writer (holding the writer's lock); or the segment is in no published view (a spare, or
    /// a segment recovery holds before any reader exists); or the range is past the data region
    /// of a segment nobody appends to any more (its seal).
    pub(crate) unsafe fn write(&self, offset: usize, bytes: &[u8]) -> io::Result<()> {
        self.check_writable(offset, bytes.len())?;
        // SAFETY: `check_writable` proved `offset + bytes.len() <= len` and that the mapping is
        // writable (PROT_WRITE, shared). The source is a distinct Rust slice, so the ranges do not
        // overlap. The caller's contract rules out a live slice over the destination and a racing
        // write.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.raw.as_mut_ptr().add(offset),
                bytes.len(),
            );
        }
        Ok(())
    }

    /// Sets `len` bytes at `offset` to zero.
    ///
    /// # Errors
    ///
    /// As [`Mapping::write`].
    ///
    /// # Safety
    ///
    /// As [`Mapping::write`].
    pub(crate) unsafe fn zero(&self, offset: usize, len: usize) -> io::Result<()> {
        self.check_writable(offset, len)?;
        // SAFETY: bounds and writability checked by `check_writable`; the caller's contract rules
        // out a live slice over the range and a racing write.
        unsafe {
            std::ptr::write_bytes(self.raw.as_mut_ptr().add(offset), 0, len);
        }
        Ok(())
    }

    /// msync(MS_SYNC) of the pages covering `offset..offset + len`.
    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.raw.len())
        {
            return Err(out_of_bounds(offset, len, self.raw.len()));
        }
        if len == 0 {
            return Ok(());
        }
        self.raw.flush_range(offset, len)
    }

    fn check_writable(&self, offset: usize, len: usize) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "mapping is read-only",
            ));
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.raw.len() => Ok(()),
            _ => Err(out_of_bounds(offset, len, self.raw.len())),
        }
    }
}

/// Allocates real blocks for bytes `0..len` of `file`, extending it if needed: the one system
/// call std does not offer and fs2 reports wrongly. `posix_fallocate` returns its error number
/// instead of setting `errno`; fs2 0.4 reads `errno` after it, so it reports a stale code (often
/// 0, "success") and a real I/O error could not be told from a full disk. Called directly, the
/// true code comes through: `ENOSPC` is a full disk, which the writer can recover from; anything
/// else (`EIO` after a failing disk, say) poisons it.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn allocate_blocks(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "allocation too large"))?;
    loop {
        let fd = std::os::fd::AsRawFd::as_raw_fd(file);
        // SAFETY: `posix_fallocate` only reads its three integer arguments; the descriptor is
        // owned by `file`, which the borrow keeps open for the whole call. No memory is shared.
        let code = unsafe { libc::posix_fallocate(fd, 0, len) };
        match code {
            0 => return Ok(()),
            libc::EINTR => continue,
            code => return Err(io::Error::from_raw_os_error(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_visible_and_bounds_are_checked() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(8192).unwrap();
        let map = Mapping::read_write(&file).unwrap();
        // SAFETY: the test owns the only mapping and forms no slice while writing.
        unsafe { map.write(100, b"abc").unwrap() };
        assert_eq!(map.stable_range(100, 103).unwrap(), b"abc");
        // SAFETY: as above (and these are refused before anything is written).
        unsafe {
            assert!(map.write(8190, b"abc").is_err());
            assert!(map.zero(usize::MAX, 2).is_err());
        }
        assert!(map.stable_range(10, 9000).is_none());
        assert!(map.stable_range(10, 9).is_none());
        map.flush_range(0, 8192).unwrap();
        assert!(map.flush_range(1, 8192).is_err());
        let ro = Mapping::read_only(&file).unwrap();
        assert_eq!(ro.stable_range(100, 103).unwrap(), b"abc");
        // SAFETY: refused before anything is written (the mapping is read-only).
        assert!(unsafe { ro.write(0, b"x") }.is_err());
    }

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    #[test]
    fn allocates_real_blocks() {
        let file = tempfile::tempfile().expect("temp file");
        super::allocate_blocks(&file, 1 << 20).expect("allocate");
        assert_eq!(file.metadata().expect("metadata").len(), 1 << 20);
    }

    /// fs2 turned every failure into a stale errno (often 0); the true code must come through,
    /// and only ENOSPC may look like a full disk.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    #[test]
    fn reports_the_real_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        let read_only = std::fs::File::open(&path).expect("open");
        let err = super::allocate_blocks(&read_only, 4096)
            .expect_err("a read-only descriptor cannot allocate");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert_ne!(err.kind(), std::io::ErrorKind::StorageFull);
    }
}
