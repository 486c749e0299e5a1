//! Positioned reads of one segment file: a read-only handle and a sliding window over it.
//!
//! Nothing here maps a file. A file that is shorter than expected, or that another process
//! changes while it is read, yields short reads or unexpected bytes, never a signal.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::format::{self, Binding, Located, RECORD_ALIGN, RECORD_HEADER_LEN, RecordError};

/// Bytes fetched per read: large enough that scanning small records costs few system calls,
/// small enough that memory stays bounded whatever the segment size.
pub(crate) const CHUNK: u64 = 1 << 20;

/// A segment file opened for reading only.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    file: File,
    /// The length when the file was opened.
    pub(crate) len: u64,
}

impl SegmentFile {
    pub(crate) fn open(path: &Path) -> io::Result<SegmentFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(SegmentFile {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset.saturating_add(done as u64);
            match read_at(&self.file, &mut buf[done..], at) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// The bytes `offset..offset + len` (shorter if the file ends first).
    pub(crate) fn read_vec(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::OutOfMemory)?;
        let mut buf = vec![0u8; len];
        let n = self.read_at(offset, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Offset one past the last non-zero byte in `start..end`, or `None` if they are all zero.
    /// Reads backwards, so a region that ends in zeros is read once.
    pub(crate) fn last_nonzero(&self, start: u64, end: u64) -> io::Result<Option<u64>> {
        let mut buf = vec![0u8; CHUNK.min(end.saturating_sub(start)) as usize];
        let mut hi = end;
        while hi > start {
            let lo = hi.saturating_sub(CHUNK).max(start);
            let want = (hi - lo) as usize;
            let n = self.read_at(lo, &mut buf[..want])?;
            // Bytes past the end of a (damaged, shorter) file do not exist: they are not data.
            if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
                return Ok(Some(lo + i as u64 + 1));
            }
            hi = lo;
        }
        Ok(None)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// A record decoded from a window: the codec's [`Located`] with file offsets, and its payload.
#[derive(Debug)]
pub(crate) struct Found<'w> {
    pub(crate) loc: Located,
    pub(crate) payload: &'w [u8],
}

/// A cached range of one file, refilled on demand. Records are decoded from it with the pure
/// codec in `format`, with offsets made relative to the window's start.
#[derive(Debug)]
pub(crate) struct Window<'f> {
    file: &'f SegmentFile,
    base: u64,
    buf: Vec<u8>,
}

impl<'f> Window<'f> {
    pub(crate) fn new(file: &'f SegmentFile) -> Window<'f> {
        Window {
            file,
            base: 0,
            buf: Vec::new(),
        }
    }

    /// Makes sure the window holds `offset..offset + len` (or as much of it as `limit` and the
    /// file allow), starting the window at `offset` if it must be refilled.
    fn fill(&mut self, offset: u64, len: u64, limit: u64) -> io::Result<()> {
        let want_end = offset.saturating_add(len).min(limit);
        let have_end = self.base + self.buf.len() as u64;
        if offset >= self.base && want_end <= have_end {
            return Ok(());
        }
        let fetch = len.max(CHUNK).min(limit.saturating_sub(offset));
        self.buf = self.file.read_vec(offset, fetch)?;
        self.base = offset;
        Ok(())
    }

    /// The record at `offset` (a multiple of [`RECORD_ALIGN`]) of a region that ends at `limit`,
    /// checked exactly as [`format::decode_record`] checks it (structure first, then the
    /// checksum). The outer error is a failed read; the inner one says why the bytes are not a
    /// record.
    pub(crate) fn record(
        &mut self,
        offset: u64,
        limit: u64,
        binding: Binding,
    ) -> io::Result<Result<Found<'_>, RecordError>> {
        let loc = match self.locate(offset, limit)? {
            Ok(loc) => loc,
            Err(e) => return Ok(Err(e)),
        };
        let start = (loc.payload_offset - self.base) as usize;
        let payload = self
            .buf
            .get(start..start + loc.len() as usize)
            .unwrap_or(&[]);
        Ok(format::verify_record(binding, &loc, payload).map(|()| Found { loc, payload }))
    }

    /// Like [`record`](Self::record) without the checksum: the header's structure only, and the
    /// whole record (payload included) loaded into the window.
    pub(crate) fn locate(
        &mut self,
        offset: u64,
        limit: u64,
    ) -> io::Result<Result<Located, RecordError>> {
        debug_assert!(offset.is_multiple_of(RECORD_ALIGN));
        self.fill(offset, RECORD_HEADER_LEN, limit)?;
        // The payload length, to load the whole record before the codec looks at it. A length
        // that runs past `limit` is cut to it here and refused by the codec below.
        let rel = offset.saturating_sub(self.base) as usize;
        if let Some(len) = self.buf.get(rel + 4..rel + 8) {
            let len = u64::from(u32::from_le_bytes([len[0], len[1], len[2], len[3]]));
            self.fill(offset, format::record_size(len), limit)?;
        }
        // The window starts at a multiple of 8 at or before `offset`, so offsets relative to it
        // keep their alignment and the codec's padding check means the same as on the file.
        let rel_off = offset - self.base;
        let rel_limit = limit.saturating_sub(self.base);
        Ok(
            format::locate_record(&self.buf, rel_off, rel_limit).map(|mut loc| {
                loc.payload_offset += self.base;
                loc.next += self.base;
                loc
            }),
        )
    }
}
