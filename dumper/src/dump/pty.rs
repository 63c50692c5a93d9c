//! Pseudo-terminal pairs held inside a process tree (issue 9): the state
//! of a master (`/dev/ptmx`) read from a `pidfd_getfd` copy, for its
//! `PTY_MASTER` slot (`kckpt_image::tree::PtyRecord`).
#![allow(unsafe_code)] // ioctls that fill one integer.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;

use kckpt_image::tree::{PtyRecord, NO_PARENT};

/// One `int` out of ioctl `request` on `fd`.
fn get_int(fd: &OwnedFd, request: libc::Ioctl) -> nix::Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: each request used here writes one `int` into `v`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, &raw mut v) };
    Errno::result(r).map(|_| v)
}

/// Does process `pid` hold a pseudo-terminal master (device 5:2)?
pub fn holds_master(pid: i32) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::metadata(e.path()).is_ok_and(|m| {
            m.file_type().is_char_device() && super::terminal::is_pty_master(m.rdev())
        })
    })
}

/// The number `N` of the pair whose master is `master` (`/dev/pts/N`).
pub fn number(master: &OwnedFd) -> nix::Result<u32> {
    get_int(master, libc::TIOCGPTN).map(|n| n as u32)
}

/// `(major, minor)` of the slave of pair `n`.
pub fn slave_dev(n: u32) -> (u64, u64) {
    (136, u64::from(n))
}

/// `(uid, gid, mode)` of the slave of `master`, from a description opened
/// with `O_PATH` (`TIOCGPTPEER`: not an open of the terminal, no effect on
/// the pair).
pub fn slave_owner(master: &OwnedFd) -> nix::Result<(u32, u32, u32)> {
    let flags = libc::O_PATH | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new
    // descriptor, owned below.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = Errno::result(r)?;
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(&fd)?;
    Ok((st.st_uid, st.st_gid, st.st_mode & 0o7777))
}

/// Bytes waiting to be read on `fd` (`FIONREAD`): on a master, what the
/// slave side wrote; on a slave, the input its readers have not read.
pub fn unread(fd: &OwnedFd) -> nix::Result<u32> {
    get_int(fd, libc::FIONREAD).map(|n| n.max(0) as u32)
}

/// Mode, window size, packet and lock state of the pair of `master`
/// (numbered `n`); `session` and `fg_pgid` are filled by the caller.
pub fn state(master: &OwnedFd, n: u32) -> Option<PtyRecord> {
    let term = super::terminal::terminal_state(master)?;
    Some(PtyRecord {
        term,
        index: n,
        packet: u32::from(get_int(master, libc::TIOCGPKT).unwrap_or(0) != 0),
        locked: u32::from(get_int(master, libc::TIOCGPTLCK).unwrap_or(0) != 0),
        session: NO_PARENT,
        fg_pgid: 0,
        owner: 0,
        uid: 0,
        gid: 0,
    })
}
