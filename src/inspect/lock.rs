//! Whether a writer has a log open, found without touching its lock.
//!
//! Taking the lock to test it, even for a moment, would make an application's
//! [`WalStore::open`](crate::WalStore::open) fail with [`Error::Locked`](crate::Error::Locked) in
//! that moment. Linux lists the locks every process holds in `/proc/locks`; the lock file's
//! device and inode number identify its line there.

use std::path::Path;

use crate::names::LOCK_FILE;

/// Whether a writer holds the lock of a log directory.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterLock {
    /// A process holds the lock: a writer has the log open.
    Held {
        /// The process that took the lock, as the kernel reports it (0 when the process is in
        /// another PID namespace).
        pid: u32,
    },
    /// Nobody holds the lock.
    Free,
    /// The directory has no lock file: no writer has ever opened it.
    NoLockFile,
    /// It cannot be told on this system; the reason.
    Unknown(String),
}

impl std::fmt::Display for WriterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterLock::Held { pid } => {
                write!(f, "held by process {pid} (a writer has the log open)")
            }
            WriterLock::Free => f.write_str("free (no writer has the log open)"),
            WriterLock::NoLockFile => f.write_str("no lock file (no writer has opened the log)"),
            WriterLock::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// Whether a writer holds the lock of the log in `dir`, without taking it.
///
/// On Linux this reads `/proc/locks`; elsewhere the answer is [`WriterLock::Unknown`].
#[must_use]
pub fn writer_lock(dir: &Path) -> WriterLock {
    let path = dir.join(LOCK_FILE);
    match std::fs::metadata(&path) {
        Ok(meta) => held(&meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => WriterLock::NoLockFile,
        Err(e) => WriterLock::Unknown(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(target_os = "linux")]
fn held(meta: &std::fs::Metadata) -> WriterLock {
    use std::os::unix::fs::MetadataExt;
    // The kernel builds /proc/locks anew for each read call, so a listing that takes several
    // calls can skip a line when other locks come and go in between. A lock that is held stays
    // in the table, so reading again gives it another chance to be seen.
    let mut last_error = None;
    for _ in 0..3 {
        match read_proc_locks() {
            Ok(table) => match find_lock(&table, meta.dev(), meta.ino()) {
                Some(pid) => return WriterLock::Held { pid },
                None => last_error = None,
            },
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) => WriterLock::Unknown(format!("cannot read /proc/locks: {e}")),
        None => WriterLock::Free,
    }
}

/// `/proc/locks` in as few read calls as possible: one, into a large buffer, unless the table
/// is larger.
#[cfg(target_os = "linux")]
fn read_proc_locks() -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/locks")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(not(target_os = "linux"))]
fn held(_meta: &std::fs::Metadata) -> WriterLock {
    WriterLock::Unknown("only Linux lists the locks processes hold".into())
}

/// The process holding an `flock` on the file with device number `dev` (as `stat` reports it)
/// and inode `ino`, from the text of `/proc/locks`. Its lines read
/// `1: FLOCK  ADVISORY  WRITE 4242 fe:00:131090 0 EOF`: the device as hexadecimal major and minor
/// numbers, then the inode in decimal. Lines with `->` are processes waiting for a lock, not
/// holding one.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn find_lock(table: &str, dev: u64, ino: u64) -> Option<u32> {
    // Linux's encoding of a device number (glibc's `gnu_dev_major`/`gnu_dev_minor`).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let pid = fields.get(4)?.parse().ok()?;
        let mut id = fields.get(5)?.split(':');
        let l_major = u64::from_str_radix(id.next()?, 16).ok()?;
        let l_minor = u64::from_str_radix(id.next()?, 16).ok()?;
        let l_ino: u64 = id.next()?.parse().ok()?;
        (l_major == major && l_minor == minor && l_ino == ino).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::find_lock;

    #[test]
    fn finds_the_holder_by_device_and_inode() {
        let table = "1: POSIX  ADVISORY  WRITE 10 fe:00:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fe:00:77 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4343 fe:00:77 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 99 08:01:77 0 EOF\n";
        let dev_fe00 = 0xfe00;
        assert_eq!(find_lock(table, dev_fe00, 77), Some(4242));
        assert_eq!(find_lock(table, 0x0801, 77), Some(99));
        assert_eq!(find_lock(table, dev_fe00, 78), None);
        assert_eq!(find_lock("", dev_fe00, 77), None);
    }
}
