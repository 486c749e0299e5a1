//! Where the recovery rules read a segment's bytes from.
//!
//! A [`ByteSource`] is one segment file seen either through a mapping whose bytes can no longer
//! change (a writable open holding the directory's lock, or the stable prefix of a segment), which
//! lends its bytes without copying, or through positioned reads, which copy them. Bytes that a
//! writer may still be changing (the newest segment of a live log, seen by a reader in another
//! process or beside the store) are only ever read by copy: a `&[u8]` over them would alias the
//! writer's stores, which Rust's aliasing rules forbid however careful the parsing.
//!
//! A [`Window`] is a cursor over a source: it holds one range of bytes and refills on demand, so
//! that the rules decode records with the pure codec in `format` whatever the source.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::format::{self, Binding, Located, RECORD_HEADER_LEN, RecordError};
use crate::os::Mapping;

/// Bytes fetched per copy: large enough that scanning small records costs few system calls,
/// small enough that memory stays bounded whatever the segment size.
const CHUNK: u64 = 1 << 20;

/// What [`ByteSource::fetch`] produced.
pub(crate) enum Fetched<'s> {
    /// The source's own bytes, lent without copying.
    Lent(&'s [u8]),
    /// The bytes were copied into the caller's buffer.
    Copied,
}

/// One segment file's bytes, lent or copied (see the module docs).
pub(crate) trait ByteSource {
    /// The file, for error messages and findings.
    fn path(&self) -> &Path;

    /// The file's length in bytes.
    fn len(&self) -> u64;

    /// Bytes from `offset`: at least `min` of them (fewer only where the source ends), at most
    /// up to `end`. A source that lends may return everything up to `end`; one that copies
    /// fills `buf` with a bounded amount.
    fn fetch<'s>(
        &'s self,
        offset: u64,
        min: u64,
        end: u64,
        buf: &mut Vec<u8>,
    ) -> io::Result<Fetched<'s>>;
}

/// Copies at least `min` bytes from `offset` of `file` into `buf` (fewer only at the end of the
/// file), a bounded chunk more if `end` allows.
fn copy_chunk(
    file: &File,
    offset: u64,
    min: u64,
    end: u64,
    buf: &mut Vec<u8>,
) -> io::Result<Fetched<'static>> {
    let want = min.max(CHUNK).min(end.saturating_sub(offset)).max(min);
    read_into(file, offset, want, buf)?;
    Ok(Fetched::Copied)
}

/// A mapping whose bytes in the ranges asked for no longer change: lends them.
#[derive(Debug)]
pub(crate) struct StableMapping<'m> {
    path: &'m Path,
    map: &'m Mapping,
}

impl<'m> StableMapping<'m> {
    /// Reads `map` (of the file at `path`). The caller promises what the type's name says: no
    /// write reaches the bytes it fetches while the lent slices live (a writable open holding
    /// the directory's lock before any writer or reader exists, or a range below a published
    /// end).
    pub(crate) fn new(path: &'m Path, map: &'m Mapping) -> StableMapping<'m> {
        StableMapping { path, map }
    }
}

impl ByteSource for StableMapping<'_> {
    fn path(&self) -> &Path {
        self.path
    }

    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn fetch<'s>(
        &'s self,
        offset: u64,
        _min: u64,
        end: u64,
        _buf: &mut Vec<u8>,
    ) -> io::Result<Fetched<'s>> {
        let len = self.len();
        let (start, end) = (offset.min(len), end.min(len).max(offset.min(len)));
        // Bounded by the mapping's length just above, so the conversions cannot truncate.
        let bytes = self
            .map
            .stable_range(start as usize, end as usize)
            .unwrap_or(&[]);
        Ok(Fetched::Lent(bytes))
    }
}

/// Reads up to `len` bytes at `offset` of `file` into `buf` (replacing its contents); fewer only
/// at the end of the file.
pub(crate) fn read_into(file: &File, offset: u64, len: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    buf.clear();
    buf.resize(len, 0);
    let mut done = 0;
    while done < len {
        let at = offset.saturating_add(done as u64);
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        match read_at(file, rest, at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(())
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

/// A held range of one source, refilled on demand. Records are decoded from it with the pure
/// codec in `format`, with offsets made relative to the window's start.
pub(crate) struct Window<'s> {
    src: &'s dyn ByteSource,
    base: u64,
    lent: Option<&'s [u8]>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Window<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("path", &self.src.path())
            .field("base", &self.base)
            .field("held", &self.held().len())
            .finish()
    }
}

impl<'s> Window<'s> {
    pub(crate) fn new(src: &'s dyn ByteSource) -> Window<'s> {
        Window {
            src,
            base: 0,
            lent: None,
            buf: Vec::new(),
        }
    }

    fn held(&self) -> &[u8] {
        self.lent.unwrap_or(&self.buf)
    }

    /// Makes sure the window holds `offset..offset + len` (or as much of it as `limit` and the
    /// source allow), starting the window at `offset` if it must be refilled.
    fn fill(&mut self, offset: u64, len: u64, limit: u64) -> io::Result<()> {
        let want_end = offset.saturating_add(len).min(limit);
        let have_end = self.base + self.held().len() as u64;
        if offset >= self.base && want_end <= have_end && (self.lent.is_some() || have_end > 0) {
            return Ok(());
        }
        let min = want_end.saturating_sub(offset);
        self.lent = match self.src.fetch(offset, min, limit, &mut self.buf)? {
            Fetched::Lent(bytes) => Some(bytes),
            Fetched::Copied => None,
        };
        self.base = offset;
        Ok(())
    }

    /// The bytes `offset..offset + len`, fewer where `limit` or the source ends first.
    pub(crate) fn bytes(&mut self, offset: u64, len: u64, limit: u64) -> io::Result<&[u8]> {
        self.fill(offset, len, limit)?;
        let start = offset.saturating_sub(self.base);
        let end = offset
            .saturating_add(len)
            .min(limit)
            .saturating_sub(self.base);
        let held = self.held();
        let end = usize::try_from(end).unwrap_or(usize::MAX).min(held.len());
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(end);
        Ok(held.get(start..end).unwrap_or(&[]))
    }

    /// The record at `offset` (a multiple of 8) of a region that ends at `limit`, checked as
    /// [`format::decode_record`] checks it (structure first, then the checksum). The outer error
    /// is a failed read; the inner one says why the bytes are not a record.
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
        let start = loc.payload_offset.saturating_sub(self.base);
        let held = self.held();
        let payload = usize::try_from(start)
            .ok()
            .and_then(|s| held.get(s..s.checked_add(usize::try_from(loc.len()).ok()?)?))
            .unwrap_or(&[]);
        Ok(format::verify_record(binding, &loc, payload).map(|()| Found { loc, payload }))
    }

    /// Like [`record`](Self::record) without the checksum: the header's structure only, with the
    /// whole record (payload included) loaded into the window.
    pub(crate) fn locate(
        &mut self,
        offset: u64,
        limit: u64,
    ) -> io::Result<Result<Located, RecordError>> {
        self.fill(offset, RECORD_HEADER_LEN, limit)?;
        // The payload length, to load the whole record before the codec looks at it. A length
        // that runs past `limit` is cut to it here and refused by the codec below.
        let rel = offset.saturating_sub(self.base) as usize;
        if let Some(&[a, b, c, d]) = self.held().get(rel + 4..rel + 8) {
            let len = u64::from(u32::from_le_bytes([a, b, c, d]));
            self.fill(offset, format::record_size(len), limit)?;
        }
        // The window starts at a multiple of 8 at or before `offset`, so offsets relative to it
        // keep their alignment and the codec's padding check means the same as on the file.
        let rel_off = offset - self.base;
        let rel_limit = limit.saturating_sub(self.base);
        let base = self.base;
        Ok(
            format::locate_record(self.held(), rel_off, rel_limit).map(|mut loc| {
                loc.payload_offset += base;
                loc.next += base;
                loc
            }),
        )
    }

    /// Offset one past the last non-zero byte in `start..end`, or `None` if they are all zero
    /// (bytes past the end of a shorter file do not exist: they are not data). Reads backwards
    /// in bounded pieces, so a region that ends in zeros is read once, at memory speed.
    pub(crate) fn last_nonzero(&mut self, start: u64, end: u64) -> io::Result<Option<u64>> {
        const PIECE: u64 = 4096;
        let mut hi = end;
        while hi > start {
            let lo = hi.saturating_sub(CHUNK).max(start);
            let bytes = self.bytes(lo, hi - lo, hi)?;
            // Whole pages first: the common all-zero case costs one OR per byte.
            let last_piece = bytes
                .chunks(PIECE as usize)
                .rposition(|c| c.iter().fold(0u8, |a, &b| a | b) != 0);
            if let Some(piece) = last_piece {
                let from = piece * PIECE as usize;
                let within = bytes
                    .get(from..)
                    .and_then(|c| c.iter().rposition(|&b| b != 0));
                if let Some(i) = within {
                    return Ok(Some(lo + (from + i) as u64 + 1));
                }
            }
            hi = lo;
        }
        Ok(None)
    }
}

/// A segment file read with positioned reads: every byte is copied, so the file may change or
/// shrink while it is read without harm (short reads, unexpected bytes, never a signal).
#[derive(Debug)]
pub(crate) struct FileSource {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// The length when the file was opened.
    pub(crate) len: u64,
}

impl FileSource {
    /// Opens the file at `path` for reading.
    pub(crate) fn open(path: &Path) -> io::Result<FileSource> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSource::new(path.to_path_buf(), file, len))
    }

    /// Reads `file` (found at `path`), whose length is `len` bytes.
    pub(crate) fn new(path: PathBuf, file: File, len: u64) -> FileSource {
        FileSource { path, file, len }
    }
}

impl ByteSource for FileSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn fetch<'s>(
        &'s self,
        offset: u64,
        min: u64,
        end: u64,
        buf: &mut Vec<u8>,
    ) -> io::Result<Fetched<'s>> {
        copy_chunk(&self.file, offset, min, end, buf)
    }
}
