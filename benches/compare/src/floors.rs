//! The floors: what the hardware and kernel allow, measured in the same run as the log they are
//! compared with.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{Payloads, Res};

/// A file of `len` bytes with its blocks allocated (`posix_fallocate`), made durable, like a
/// preallocated log segment.
fn preallocated(path: &Path, len: u64) -> Res<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // SAFETY: a valid open descriptor; the call only allocates blocks.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc).into());
    }
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(file)
}

fn fdatasync(file: &File) -> Res<()> {
    // SAFETY: a valid open descriptor.
    if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// Latencies of `n` `pwrite(len bytes)` + `fdatasync` at consecutive offsets of a preallocated
/// file (W1's floor).
pub fn pwrite_fdatasync(dir: &Path, n: usize, len: usize) -> Res<Vec<Duration>> {
    let path = dir.join("floor-pwrite.dat");
    let file = preallocated(&path, ((n + 64) * len) as u64)?;
    let mut p = Payloads::new(len);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let buf = p.get(i as u64);
        let t = Instant::now();
        file.write_all_at(buf, (i * len) as u64)?;
        fdatasync(&file)?;
        lat.push(t.elapsed());
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok(lat)
}

/// Bytes per second of sequential `write`s of `chunk` bytes, each followed by `fdatasync`, into
/// a preallocated file of `total` bytes (W3's floor).
pub fn seq_write_fdatasync(dir: &Path, total: u64, chunk: usize) -> Res<f64> {
    let path = dir.join("floor-seq.dat");
    let file = preallocated(&path, total)?;
    let buf = Payloads::new(chunk);
    let data = {
        let mut b = buf;
        b.get(0).to_vec()
    };
    let t = Instant::now();
    let mut off = 0u64;
    while off < total {
        let n = chunk.min((total - off) as usize);
        file.write_all_at(&data[..n], off)?;
        fdatasync(&file)?;
        off += n as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(total as f64 / secs)
}

/// A shared writable mapping of a preallocated file, every page already written once ("warm").
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn map(file: &File, len: usize, warm: bool) -> Res<Mapping> {
        // SAFETY: maps `len` bytes of an open file that is at least that long; unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().into());
        }
        let m = Mapping {
            ptr: ptr.cast(),
            len,
        };
        if !warm {
            return Ok(m);
        }
        // Warm it: fault in and dirty every page.
        for off in (0..len).step_by(4096) {
            // SAFETY: `off < len`, inside the mapping.
            unsafe { m.ptr.add(off).write_volatile(0) };
        }
        Ok(m)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the region mapped in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Bytes per second of copying `total` bytes, `chunk` bytes at a time, into a warm file mapping
/// (W4's floor).
pub fn memcpy_warm(dir: &Path, total: u64, chunk: usize) -> Res<f64> {
    memcpy_into(dir, total, chunk, true)
}

/// The same into a mapping of a freshly preallocated file whose pages were never touched
/// (every 4 KiB page faults, and the kernel allocates and zeroes its page-cache page): what a
/// log that writes through a mapping into new segments pays. Not a goal's floor; for the notes.
pub fn memcpy_cold(dir: &Path, total: u64, chunk: usize) -> Res<f64> {
    memcpy_into(dir, total, chunk, false)
}

fn memcpy_into(dir: &Path, total: u64, chunk: usize, warm: bool) -> Res<f64> {
    let path = dir.join("floor-memcpy.dat");
    let total = total as usize;
    let file = preallocated(&path, total as u64)?;
    let map = Mapping::map(&file, total, warm)?;
    let mut p = Payloads::new(chunk);
    let t = Instant::now();
    let mut off = 0usize;
    let mut i = 0u64;
    while off + chunk <= total {
        let src = p.get(i);
        // SAFETY: `off + chunk <= total`: inside the mapping; the source is a separate buffer.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), map.ptr.add(off), chunk) };
        off += chunk;
        i += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(map.ptr);
    drop(map);
    drop(file);
    std::fs::remove_file(path)?;
    Ok(off as f64 / secs)
}

/// Bytes per second of crc32fast over `total` bytes already in memory, `chunk` bytes per call
/// (one call per record, as a verifying replay does) (W5's floor).
pub fn crc32_in_memory(total: u64, chunk: usize) -> f64 {
    // A warm 64 MiB buffer (more than any cache), hashed as many times as needed.
    let buf_len = (64usize << 20).min(total as usize).max(chunk);
    let mut buf = vec![0u8; buf_len];
    let mut p = Payloads::new(buf_len);
    buf.copy_from_slice(p.get(1));
    let mut acc = 0u32;
    // One untimed pass to warm it.
    for c in buf.chunks(chunk) {
        acc ^= crc32fast::hash(c);
    }
    let t = Instant::now();
    let mut done = 0u64;
    while done < total {
        for c in buf.chunks(chunk) {
            acc ^= crc32fast::hash(c);
        }
        done += buf_len as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    done as f64 / secs
}
