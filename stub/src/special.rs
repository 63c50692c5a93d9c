//! Named pipes, memory character devices and symbolic links held by a
//! descriptor (format 1.3, fd kinds 23-25).
//!
//! A named pipe is opened `O_RDWR | O_NONBLOCK` first (an open for reading
//! only or writing only would wait for the other side; Linux never makes
//! a read-write open of a FIFO wait). The saved bytes are written through
//! that descriptor, then the process's descriptors of that pipe are opened
//! through `/proc/self/fd/N` with their own flags (a reader and a writer
//! exist, so neither waits) and the temporary one is closed: the bytes
//! stay while any end is open. A pipe that already holds bytes at restore
//! (another process has it open, e.g. the original after
//! `--leave-running`) is refused: the saved bytes would come twice.
//!
//! A deleted named pipe, device node or symbolic link is made again under
//! its old name when free, else under `NAME.kckpt-FD`, opened and
//! unlinked. A device node needs `CAP_MKNOD`; without it the standard
//! `/dev/null`... of that device number is opened, with a warning (the
//! node's permission bits and inode then differ).
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use kckpt_image::special::mem_device_path;
use kckpt_image::{fd_flags, fd_kind, FdRecord, FD_NO_DUP};
use linux_raw_sys::general as g;

use crate::files::{fail, fd_msg, open_dev_null, place, reopen_description};
use crate::ghosts::PathBuf;
use crate::load::Image;
use crate::sys::{self, check, Errno, SysResult};

const F_SETPIPE_SZ: usize = 1031;
const FIONREAD: usize = 0x541b;
const S_IFMT: u32 = 0o170000;

/// `fstat(fd)`: (mode, rdev).
fn stat_mode(fd: usize) -> Result<(u32, u64), Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: g::stat = unsafe { core::mem::zeroed() };
    // SAFETY: the kernel writes one `struct stat` into `st`.
    check(unsafe {
        raw_syscall(
            g::__NR_fstat as usize,
            [fd, &mut st as *mut g::stat as usize, 0, 0, 0, 0],
        )
    })?;
    Ok((st.st_mode, st.st_rdev as u64))
}

/// Bytes waiting in a pipe (`FIONREAD`).
pub(crate) fn queued(fd: usize) -> SysResult {
    let mut n: i32 = 0;
    // SAFETY: the kernel writes one int into `n`.
    check(unsafe {
        raw_syscall(
            g::__NR_ioctl as usize,
            [fd, FIONREAD, &mut n as *mut i32 as usize, 0, 0, 0],
        )
    })?;
    Ok(n as usize)
}

/// `mknodat(AT_FDCWD, path, mode, dev)`, or with `target`
/// `symlinkat(target, AT_FDCWD, path)`; `path`, `target` NUL-terminated.
fn make(path: &[u8], mode: u32, dev: u64, target: Option<&[u8]>) -> SysResult {
    let cwd = g::AT_FDCWD as isize as usize;
    let (nr, a) = match target {
        Some(t) => (
            g::__NR_symlinkat,
            [t.as_ptr() as usize, cwd, path.as_ptr() as usize],
        ),
        None => (
            g::__NR_mknodat,
            [cwd, path.as_ptr() as usize, mode as usize],
        ),
    };
    let a3 = if target.is_some() { 0 } else { dev as usize };
    // SAFETY: the kernel only reads the NUL-terminated paths.
    check(unsafe { raw_syscall(nr as usize, [a[0], a[1], a[2], a3, 0, 0]) })
}

/// Make the node of `r` again (mode or symlink `target`), open it with
/// `flags` and unlink it: under its name when free, else `NAME.kckpt-FD`.
fn recreate(
    path: &[u8],
    r: &FdRecord,
    mode: u32,
    dev: u64,
    target: Option<&[u8]>,
    flags: u32,
) -> SysResult {
    let mut t = PathBuf::new();
    let target = target.map(|x| {
        t.push(x);
        t.c()
    });
    let mut p = PathBuf::new();
    p.push(path);
    if let Err(e) = make(p.c(), mode, dev, target) {
        if e.0 != linux_raw_sys::errno::EEXIST {
            return Err(e);
        }
        p.push(b".kckpt-").dec(r.fd.into());
        make(p.c(), mode, dev, target)?;
    }
    let fd = sys::open(p.c(), flags);
    let _ = crate::gsys::unlink(p.c(), 0);
    fd
}

/// Refuse `what` about `r`, or with `force` warn and open `/dev/null`.
fn refuse_or_null(img: &Image, r: &FdRecord, what: &str, e: Errno, force: bool) -> usize {
    let mut m = fd_msg(img, r);
    m.s(": ").s(what).errno(e);
    if !force {
        m.s("; KCKPT_FORCE=1 or kckpt restore --force restores it as /dev/null: the program then reads nothing from it and what it writes there is lost")
            .fail();
    }
    m.s("; restored as /dev/null (forced)").warn();
    open_dev_null().unwrap_or_else(|e| fail(img, r, "cannot open /dev/null", e))
}

fn c(path: &[u8]) -> PathBuf {
    let mut p = PathBuf::new();
    p.push(path);
    p
}

/// A named pipe and every other open file description of it (`REOPEN`),
/// placed at their numbers, with the saved bytes buffered again.
pub fn fifo(img: &Image, r: &FdRecord, force: bool, floor: usize) {
    let v = img.view;
    let path = v.string(r.path).unwrap_or(&[]);
    let rw = g::O_RDWR | g::O_NONBLOCK;
    let deleted = r.fd_flags & fd_flags::DELETED != 0;
    let opened = if deleted {
        recreate(
            path,
            r,
            g::S_IFIFO | (r.args[1] as u32 & 0o7777),
            0,
            None,
            rw,
        )
    } else {
        sys::open(c(path).c(), rw)
    };
    let fd = match opened {
        Ok(tmp) => {
            if stat_mode(tmp).map(|m| m.0 & S_IFMT) != Ok(g::S_IFIFO) {
                fail(
                    img,
                    r,
                    "is no longer a named pipe",
                    Errno(linux_raw_sys::errno::EEXIST),
                );
            }
            let low = tmp;
            let tmp = sys::fcntl(low, g::F_DUPFD_CLOEXEC, floor)
                .unwrap_or_else(|e| fail(img, r, "cannot open the named pipe", e));
            sys::close(low);
            let n = queued(tmp).unwrap_or(0);
            if n != 0 {
                fd_msg(img, r)
                    .s(": the named pipe already holds ")
                    .dec(n as u64)
                    .s(" bytes: another process has it open, its saved bytes would be read twice")
                    .fail();
            }
            if r.args[0] != 0 {
                let _ = sys::fcntl(tmp, F_SETPIPE_SZ as u32, r.args[0] as usize);
            }
            if let Err(e) = sys::sendfile_all(tmp, img.fd, img.at(r.data_offset), r.data_len) {
                fail(img, r, "cannot refill the named pipe", e);
            }
            let mut own = *r;
            own.args[0] = tmp as u64;
            let fd = reopen_description(img, &own);
            place(fd, r).unwrap_or_else(|e| fail(img, r, "cannot move it to its number", e));
            Some(tmp)
        }
        Err(e) if deleted => {
            let fd = refuse_or_null(img, r, "cannot make the deleted named pipe again", e, force);
            place(fd, r).unwrap_or_else(|e| fail(img, r, "cannot move it to its number", e));
            None
        }
        Err(e) => {
            let what = if e.0 == linux_raw_sys::errno::ENOENT {
                "the named pipe was deleted since the dump"
            } else {
                "cannot open the named pipe"
            };
            let fd = refuse_or_null(img, r, what, e, force);
            place(fd, r).unwrap_or_else(|e| fail(img, r, "cannot move it to its number", e));
            None
        }
    };
    for o in v.fds.iter() {
        if o.kind == fd_kind::REOPEN && o.dup_of == FD_NO_DUP && o.args[0] == u64::from(r.fd) {
            let n = reopen_description(img, &o);
            place(n, &o).unwrap_or_else(|e| fail(img, &o, "cannot move it to its number", e));
        }
    }
    if let Some(tmp) = fd {
        sys::close(tmp);
    }
}

/// A memory device: its path when that still is the device, else a node
/// made again (deleted), else the standard path of the device number.
pub fn device(img: &Image, r: &FdRecord) -> usize {
    let path = img.view.string(r.path).unwrap_or(&[]);
    let (major, minor) = (r.args[0], r.args[1]);
    let dev = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
    let flags = r.flags & !(g::O_CREAT | g::O_EXCL | g::O_TRUNC) | g::O_NOCTTY;
    let std = mem_device_path(major, minor).unwrap_or(b"/dev/null\0");
    let opened = if r.fd_flags & fd_flags::DELETED != 0 {
        recreate(
            path,
            r,
            g::S_IFCHR | (r.args[2] as u32 & 0o7777),
            dev,
            None,
            flags,
        )
    } else {
        sys::open(c(path).c(), flags)
    };
    let ok = |fd: usize| stat_mode(fd).is_ok_and(|(m, d)| m & S_IFMT == g::S_IFCHR && d == dev);
    match opened {
        Ok(fd) if ok(fd) => return fd,
        Ok(fd) => sys::close(fd),
        Err(_) => {}
    }
    fd_msg(img, r)
        .s(": device ")
        .dec(major)
        .s(":")
        .dec(minor)
        .s(" cannot be opened at that path (deleted, missing or another file; making a node needs CAP_MKNOD): opened as ")
        .push(&std[..std.len() - 1])
        .s(": the same device, with that file's permissions and inode")
        .warn();
    sys::open(std, flags).unwrap_or_else(|e| fail(img, r, "cannot open the device", e))
}

/// A symbolic link held with `O_PATH`: opened by its path, or made again
/// with its saved target when it was deleted.
pub fn symlink(img: &Image, r: &FdRecord, force: bool) -> usize {
    let path = img.view.string(r.path).unwrap_or(&[]);
    let flags = g::O_PATH | g::O_NOFOLLOW;
    let opened = if r.fd_flags & fd_flags::DELETED != 0 {
        let mut target = [0u8; 4095];
        let n = (r.data_len as usize).min(target.len());
        let read = sys::pread(img.fd, &mut target[..n], img.at(r.data_offset));
        match read {
            Ok(_) => recreate(path, r, 0, 0, Some(&target[..n]), flags),
            Err(e) => Err(e),
        }
    } else {
        sys::open(c(path).c(), flags)
    };
    match opened {
        Ok(fd) if stat_mode(fd).is_ok_and(|(m, _)| m & S_IFMT == g::S_IFLNK) => fd,
        Ok(fd) => {
            sys::close(fd);
            refuse_or_null(
                img,
                r,
                "is no longer a symbolic link",
                Errno(linux_raw_sys::errno::EEXIST),
                force,
            )
        }
        Err(e) => refuse_or_null(img, r, "cannot open the symbolic link", e, force),
    }
}
