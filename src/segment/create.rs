//! Making new segment files (FORMAT.md, "Creating a segment" and "Spare segments"): under a
//! temporary name, with real blocks allocated, synced, renamed into place and the directory
//! synced, so that no record is ever acknowledged in a file a crash could lose.
//!
//! A segment is made either when it is needed ([`segment`]) or ahead of need as a [`Spare`],
//! which the writer activates at rotation with one small flush and a rename.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zerocopy::IntoBytes;

use crate::error::Result;
use crate::format::{self, Layout};
use crate::names;
use crate::os::Mapping;
use crate::segment::{Segment, io_err};
use crate::sys::{Sys, SysOp};

/// The `action` of the `Error::Io` for a failed block allocation of a new segment, and of one
/// for a failed creation of its temporary file. The writer tells a full disk at these steps
/// (harmless, not poisoning: nothing of the log changed) from every other failure by them.
pub(crate) const ALLOCATING: &str = "allocating";
pub(crate) const CREATING: &str = "creating";

/// How much of a spare is prefaulted writable (see [`Spare::create`]).
const PREFAULT_BYTES: usize = 1 << 20;

/// Creates segment `id` of log `log_id` in `dir`, starting at `base_seq`: written under a
/// temporary name, its blocks allocated, its header written and synced, renamed into place and
/// the directory synced. Only then is it mapped and returned.
pub(crate) fn segment(
    sys: &Sys,
    dir: &Path,
    id: u64,
    log_id: u64,
    base_seq: u64,
    layout: Layout,
) -> Result<Segment> {
    let header = format::encode_segment_header(&layout, log_id, id, base_seq);
    let path = dir.join(names::segment(id));
    let (file, map) = durable_file(sys, dir, id, &path, layout.size, Some(header.as_bytes()))?;
    Ok(Segment::created(path, file, map, header, layout))
}

/// Makes the file `path` (segment or spare `id`) durably: under its temporary name, `len` bytes
/// of real blocks allocated, `header` written at offset 0 if given, synced, renamed to `path`,
/// the directory synced; then maps it. A temporary file left by a failure is removed (or, should
/// that fail too, by the next open).
fn durable_file(
    sys: &Sys,
    dir: &Path,
    id: u64,
    path: &Path,
    len: u64,
    header: Option<&[u8]>,
) -> Result<(File, Mapping)> {
    let temp = dir.join(names::temp(id));
    let made = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io_err(CREATING, &temp))?;
        sys.allocate(&file, &temp, len)
            .map_err(io_err(ALLOCATING, &temp))?;
        if let Some(header) = header {
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(header))
                .map_err(io_err("writing the header of", &temp))?;
        }
        sys.sync_file(&file, &temp)
            .map_err(io_err("syncing", &temp))?;
        sys.rename(&temp, path).map_err(io_err("renaming", &temp))?;
        sys.sync_dir(dir)
            .map_err(io_err("syncing directory", dir))?;
        let map = Mapping::read_write(&file).map_err(io_err("mapping", path))?;
        Ok((file, map))
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    made
}

/// A file made ahead of need to become the next segment: allocated and synced, under its spare
/// name, all zero. The writer turns it into a segment at rotation ([`Spare::activate`]) with a
/// header flush and a rename: no file creation, allocation, file sync or directory sync on the
/// append path.
///
/// Recovery tells the states apart (`rules::spare_kind`): a spare without a valid header was
/// never used (and has nothing past its header); a spare with a valid header lost only its
/// activating rename, and is the log's next segment.
#[derive(Debug)]
pub(crate) struct Spare {
    id: u64,
    path: PathBuf,
    file: File,
    map: Mapping,
    layout: Layout,
}

impl Spare {
    /// Creates spare `id` in `dir`: temporary name, blocks allocated, synced, renamed to its
    /// spare name, directory synced, mapped.
    pub(crate) fn create(sys: &Sys, dir: &Path, id: u64, layout: Layout) -> Result<Spare> {
        let path = dir.join(names::spare(id));
        let (file, map) = durable_file(sys, dir, id, &path, layout.size, None)?;
        // The first store into a fresh segment cost 2 ms (measured: the header write of an
        // 8 MiB segment on ext4; a page fault plus the file system's work on a block that is
        // allocated but never written). Done here, off the append path, for the first MiB. Not
        // for the whole segment: the prefaulted pages are written back as zeros, and for whole
        // segments bulk write bandwidth (W3) measured 0.34-0.45 x its floor against 0.51-0.56 x
        // with the first MiB only.
        map.prefault_write(PREFAULT_BYTES);
        Ok(Spare {
            id,
            path,
            file,
            map,
            layout,
        })
    }

    /// The segment number this spare will get.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Removes the unused spare. Best effort, and not a durability call (it bypasses the fault
    /// seam): a spare left behind holds nothing, and the next open removes it.
    pub(crate) fn discard(self) {
        drop(self.map);
        let _ = std::fs::remove_file(&self.path);
    }

    /// Makes the spare segment `self.id` of log `log_id`, starting at `base_seq`: writes its
    /// header, flushes it, then renames the file to its segment name. A file with a segment name
    /// therefore always has a durable header; a crash before the rename leaves a spare with a
    /// header, which recovery recognises.
    #[allow(unsafe_code)]
    pub(crate) fn activate(
        self,
        sys: &Sys,
        dir: &Path,
        log_id: u64,
        base_seq: u64,
    ) -> Result<Segment> {
        let path = dir.join(names::segment(self.id));
        let header = format::encode_segment_header(&self.layout, log_id, self.id, base_seq);
        let header_len = header.as_bytes().len();
        // SAFETY: the spare is owned by `self` alone: it is in no published view, so no reader
        // slices it, and no writer has it yet.
        unsafe { self.map.write(0, header.as_bytes()) }
            .map_err(io_err("writing the header of", &self.path))?;
        sys.flush(
            SysOp::Flush,
            &self.map,
            &self.file,
            &self.path,
            0,
            header_len,
        )
        .map_err(io_err("flushing the header of", &self.path))?;
        sys.rename(&self.path, &path)
            .map_err(io_err("renaming", &self.path))?;
        Ok(Segment::created(
            path,
            self.file,
            self.map,
            header,
            self.layout,
        ))
    }
}
