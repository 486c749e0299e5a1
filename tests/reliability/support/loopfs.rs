//! A real ext4 file system on a loop device, for the harnesses that need a real power cut
//! (`FS_IOC_SHUTDOWN`) or a really full disk.
//!
//! [`LoopFs::create`] makes an image file (on the disk that holds the target directory, not on a
//! tmpfs), attaches it with `losetup --find --show`, formats it with `mkfs.ext4` and mounts it on
//! a temporary mount point. The guard always unmounts and detaches when dropped, also while a
//! panic unwinds. Where that cannot work (not root, no loop device, a tool missing or failing),
//! `create` returns a short reason for the harness to print as `skipped=<reason>`.

#![allow(dead_code)]

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to format the file system.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    /// Block size in bytes (`mkfs.ext4 -b`). `mkfs.ext4` alone would pick 1 KiB below 512 MiB.
    pub block_size: u32,
    /// Number of inodes (`mkfs.ext4 -N`), or the default for the size.
    pub inodes: Option<u64>,
}

impl Default for Format {
    /// 4 KiB blocks (as on real disks) and the default number of inodes.
    fn default() -> Format {
        Format {
            block_size: 4096,
            inodes: None,
        }
    }
}

/// A mounted ext4 file system on a loop device; unmounted and detached on drop.
pub struct LoopFs {
    format: Format,
    /// Holds the image file; removed (with the image) after the device is detached.
    image_dir: Option<tempfile::TempDir>,
    image: PathBuf,
    mount_point: PathBuf,
    device: Option<String>,
    mounted: bool,
}

impl LoopFs {
    /// Creates, attaches, formats and mounts a file system; `Err` is a short reason why this
    /// machine cannot (printed by the harness as its `skipped=` reason).
    pub fn create(size: u64, format: Format) -> Result<LoopFs, String> {
        unavailable()?;
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(base).map_err(|e| format!("no directory for the image: {e}"))?;
        let image_dir = tempfile::Builder::new()
            .prefix("sawal-loopfs-")
            .tempdir_in(base)
            .map_err(|e| format!("no temporary directory for the image: {e}"))?;
        let image = image_dir.path().join("fs.img");
        let mount_point = image_dir.path().join("mnt");
        std::fs::create_dir(&mount_point).map_err(|e| format!("no mount point: {e}"))?;
        File::create(&image)
            .and_then(|f| f.set_len(size))
            .map_err(|e| format!("cannot create the image file: {e}"))?;
        let mut fs = LoopFs {
            format,
            image_dir: Some(image_dir),
            image,
            mount_point,
            device: None,
            mounted: false,
        };
        let device = run("losetup", &["--find", "--show", path_str(&fs.image)?])?;
        fs.device = Some(device.trim().to_string());
        fs.mkfs()?;
        fs.mount()?;
        Ok(fs)
    }

    /// The mount point: the root directory of the file system.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// The loop device, e.g. `/dev/loop3`.
    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or("")
    }

    /// Mounts the file system (after [`unmount`](Self::unmount)); ext4 replays its journal.
    pub fn mount(&mut self) -> Result<(), String> {
        if self.mounted {
            return Ok(());
        }
        let device = self.device().to_string();
        run(
            "mount",
            &["-t", "ext4", &device, path_str(&self.mount_point)?],
        )?;
        self.mounted = true;
        Ok(())
    }

    /// Unmounts the file system. Every file on it must be closed (and unmapped) first.
    pub fn unmount(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        run("umount", &[path_str(&self.mount_point)?])?;
        self.mounted = false;
        Ok(())
    }

    /// The block size the file system was formatted with.
    pub fn block_size(&self) -> u32 {
        self.format.block_size
    }

    /// Unmounts and mounts again: what a machine does after a power cut.
    pub fn remount(&mut self) -> Result<(), String> {
        self.unmount()?;
        self.mount()
    }

    /// Unmounts, formats a fresh file system (of the same size) on the device and mounts it.
    pub fn reformat(&mut self, format: Format) -> Result<(), String> {
        self.unmount()?;
        self.format = format;
        self.mkfs()?;
        self.mount()
    }

    /// A power cut: `FS_IOC_SHUTDOWN` with `EXT4_GOING_FLAGS_NOLOGFLUSH`. Everything not yet
    /// committed to the journal is lost; every later I/O on the file system fails with `EIO`
    /// until it is unmounted and mounted again.
    pub fn power_cut(&self) -> io::Result<()> {
        let dir = File::open(&self.mount_point)?;
        shutdown::shutdown(&dir, shutdown::GOING_FLAGS_NOLOGFLUSH)
    }

    fn mkfs(&self) -> Result<(), String> {
        let inodes = self.format.inodes.map(|n| n.to_string());
        let block_size = self.format.block_size.to_string();
        let mut args = vec![
            "-q",
            "-F",
            "-b",
            &block_size,
            // No reserved blocks, and no background initialisation writing behind our back.
            "-m",
            "0",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
        ];
        if let Some(n) = &inodes {
            args.extend(["-N", n.as_str()]);
        }
        let device = self.device().to_string();
        args.push(&device);
        run("mkfs.ext4", &args).map(|_| ())
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted
            && let Ok(mount) = path_str(&self.mount_point)
            && run("umount", &[mount]).is_err()
        {
            // Something still has a file open (e.g. a child that could not be killed): detach
            // lazily so that the device is freed as soon as it is closed.
            let _ = run("umount", &["--lazy", mount]);
        }
        self.mounted = false;
        if let Some(device) = self.device.take() {
            let _ = run("losetup", &["--detach", &device]);
        }
        // Only now may the image (and the empty mount point) be removed.
        drop(self.image_dir.take());
    }
}

/// Why a loop-mounted file system cannot be made here, if it cannot: the only reasons a harness
/// may skip for. Once this passes (root, loop devices), a failure to make one is a failure.
pub fn unavailable() -> Result<(), String> {
    if !is_root() {
        return Err("not root (loop devices and mount need root)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no /dev/loop-control (no loop devices)".into());
    }
    Ok(())
}

/// Whether this process runs with effective user id 0 (read from `/proc`, there is no libc).
fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("path {} is not UTF-8", path.display()))
}

/// Runs a tool and returns its standard output; `Err` names the command and its complaint.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            shown(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `FS_IOC_SHUTDOWN` ioctl; the only unsafe code of the harnesses.
mod shutdown {
    #![allow(unsafe_code)]

    use std::ffi::{c_int, c_ulong};
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `_IOR('X', 125, __u32)` (as `F2FS_IOC_SHUTDOWN` in `<linux/f2fs.h>`, the same number as
    /// ext4's and XFS's): direction read (2) << 30 | size 4 << 16 | 'X' (0x58) << 8 | 125 (0x7D).
    const FS_IOC_SHUTDOWN: c_ulong = (2 << 30) | (4 << 16) | ((b'X' as c_ulong) << 8) | 125;
    /// Shut down without flushing the journal: what is not yet committed is lost, as in a power
    /// cut.
    pub const GOING_FLAGS_NOLOGFLUSH: u32 = 2;

    unsafe extern "C" {
        /// glibc's `int ioctl(int fd, unsigned long request, ...)`.
        fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    }

    /// Issues `FS_IOC_SHUTDOWN` with `flags` on the file system holding `file`.
    pub fn shutdown(file: &File, flags: u32) -> io::Result<()> {
        let mut flags = flags;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is an open descriptor owned by `file`, which outlives the call.
        // FS_IOC_SHUTDOWN reads exactly one u32 through its argument pointer (the kernel's
        // `get_user(flags, (__u32 __user *)arg)`), and `&mut flags` points to a live, aligned u32
        // on this stack frame for the whole call; the kernel keeps no reference to it afterwards.
        // The variadic argument is passed as a pointer, which is what the request expects.
        let rc = unsafe { ioctl(fd, FS_IOC_SHUTDOWN, &mut flags as *mut u32) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}
