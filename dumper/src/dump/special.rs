//! Named pipes, memory character devices at any path and symbolic links
//! held with `O_PATH` (format 1.3, fd kinds 23-25).
//!
//! A named pipe's buffered bytes are copied without being consumed (`tee`
//! from a read end: the process's own when it has one, else a reader the
//! dumper opens through `/proc/PID/fd/N` with `O_NONBLOCK`), so
//! `--leave-running` leaves them in place. A named pipe another process
//! also holds is refused: the bytes in flight cannot be both kept there
//! and given to the restored process. The other holders are found by
//! comparing device and inode of every descriptor under `/proc/*/fd`
//! that the dumper may read (processes of other users are invisible to an
//! unprivileged dumper: a pipe shared with one of them is not seen).

use std::collections::HashSet;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use nix::fcntl::{fcntl, FcntlArg};

/// Is `rdev` one of the memory devices (`/dev/null`, `zero`, `full`,
/// `random`, `urandom`)? Returns (major, minor).
pub fn mem_device(rdev: u64) -> Option<(u64, u64)> {
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    kckpt_image::special::mem_device_path(major, minor).map(|_| (major, minor))
}

/// The bytes buffered in the named pipe at `/proc/PID/fd/FD` and its size:
/// through `copy` (a copy of the process's descriptor) when that can read,
/// else through a non-blocking reader opened for the purpose.
pub fn fifo_data(pid: i32, fd: i32, flags: u32, copy: &OwnedFd) -> std::io::Result<(Vec<u8>, u64)> {
    const O_PATH: u32 = 0o10000000;
    let own;
    let reader = if flags & 3 != 1 && flags & O_PATH == 0 {
        copy.as_fd()
    } else {
        own = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(format!("/proc/{pid}/fd/{fd}"))?;
        own.as_fd()
    };
    let size = fcntl(reader, FcntlArg::F_GETPIPE_SZ)? as u64;
    let owned = reader.try_clone_to_owned()?;
    Ok((super::files::peek_pipe(&owned)?, size))
}

/// The pids (other than `pid` and the dumper) that hold a descriptor of
/// one of the named pipes `pipes` ((device, inode) pairs), with the pair.
pub fn other_holders(pid: i32, pipes: &HashSet<(u64, u64)>) -> Vec<(i32, (u64, u64))> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let procs = fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in procs.filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok()) {
        if p == pid || p == me {
            continue;
        }
        let Ok(dir) = fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        for e in dir.flatten() {
            let Ok(link) = fs::read_link(e.path()) else {
                continue;
            };
            if link.as_os_str().as_bytes().first() != Some(&b'/') {
                continue; // pipes, sockets, anonymous inodes
            }
            let Ok(m) = fs::metadata(e.path()) else {
                continue;
            };
            let key = (m.dev(), m.ino());
            if m.file_type().is_fifo() && pipes.contains(&key) {
                out.push((p, key));
            }
        }
    }
    out
}
