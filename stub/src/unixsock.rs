//! Listening Unix sockets bound to a name (format 1.4, fd kind 41,
//! `kckpt_image::unixsock`).
//!
//! `socket`, then `bind` to the saved name with the saved permission bits
//! (the umask is set for the `bind` only; the process's own umask is put
//! back with the working directory, after every descriptor). When the
//! path is taken: a socket file nobody listens on (a probe `connect`
//! gets `ECONNREFUSED`: the file of the process that was dumped) is
//! removed and the name bound again; anything else there (another kind
//! of file, a live listener) refuses the restore with one line naming
//! the path. Then the kept socket options and `listen(backlog)`. A
//! relative name is bound from the saved working directory, entered
//! first. A detached listener (its path removed or taken by another
//! socket's file at dump) gets its name back without a file: whatever is
//! at the path is renamed aside for the `bind`, the new file removed, the
//! other put back.
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use kckpt_image::unixsock::{unix_flags, unix_opts, MODE_RECORDED};
use kckpt_image::{fs_flags, FdRecord};
use linux_raw_sys::errno::{EADDRINUSE, ECONNREFUSED, ENOENT};
use linux_raw_sys::general as g;

use crate::files::{fail, fd_msg};
use crate::load::Image;
use crate::sockopts::*;
use crate::sys::{self, check, Errno, SysResult};

const AF_UNIX: usize = 1;
const SOCK_NONBLOCK: u32 = 0o4000;
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;

/// `struct sockaddr_un` (`family`, `path`: what the kernel reads) and
/// the length to pass.
#[repr(C)]
pub(crate) struct Addr {
    /// Read by the kernel only.
    #[allow(dead_code)]
    family: u16,
    path: [u8; 108],
    pub(crate) len: usize,
}

pub(crate) fn call(nr: u32, a: [usize; 6]) -> SysResult {
    // SAFETY: every caller passes integers or pointers to live values the
    // kernel only reads within their given size.
    check(unsafe { raw_syscall(nr as usize, a) })
}

pub(crate) fn addr_of(name: &[u8], abstract_name: bool) -> Addr {
    let mut a = Addr {
        family: AF_UNIX as u16,
        path: [0; 108],
        len: 0,
    };
    let at = usize::from(abstract_name);
    let n = name.len().min(107);
    a.path[at..at + n].copy_from_slice(&name[..n]);
    // A path counts its NUL; an abstract name its leading NUL only.
    a.len = 2 + n + 1;
    a
}

impl Addr {
    /// A path address's path with its NUL (for the file calls).
    pub(crate) fn path_bytes(&self) -> &[u8] {
        &self.path[..self.len.saturating_sub(2)]
    }
}

/// Why [`bind_again`] could not bind a socket to its path.
pub(crate) enum NotBound {
    /// Another kind of file is at the path.
    OtherFile,
    /// A live socket is bound there.
    Live,
    /// A step before the `bind` failed: its name and error.
    Failed(&'static str, Errno),
    /// The `bind` failed.
    Bind(Errno),
}

/// Bind `fd` (a Unix socket of type `ty`) to the path `a` again, with the
/// permission bits `mode`: a stale socket file there (nobody answers on
/// it, probed by a socket of the same type; with `collect`, the kernel's
/// garbage collector given a chance to close sockets of the dead process
/// that answered: not for a listener, whose probes would each wait in a
/// live listener's backlog) is replaced. The new file gets the stale
/// one's owner and group, else the filesystem ids of the process of `img`:
/// bound by root for another user's process it would be root's, and that
/// user could not connect. (Not allowed to a restorer without
/// `CAP_CHOWN`, who restores its own processes, or forced, with its own
/// ids: left as bound.)
pub(crate) fn bind_again(
    img: &Image,
    fd: usize,
    a: &Addr,
    ty: u32,
    collect: bool,
    mode: Option<u32>,
) -> Result<(), NotBound> {
    let path = a.path_bytes();
    let mut owner = None;
    let mut bound = bind_mode(fd, a, mode);
    if matches!(bound, Err(e) if e.0 == EADDRINUSE) {
        match file_stat(path) {
            Ok((S_IFSOCK, uid, gid)) => owner = Some((uid, gid)),
            Ok(_) => return Err(NotBound::OtherFile),
            Err(e) => return Err(NotBound::Failed("cannot look at its path", e)),
        }
        let mut live = live_as(a, ty);
        let tries = if collect { 50 } else { 0 };
        for _ in 0..tries {
            if !matches!(live, Ok(true)) {
                break;
            }
            collect_garbage();
            live = live_as(a, ty);
        }
        match live {
            Ok(false) => {}
            Ok(true) => return Err(NotBound::Live),
            Err(e) => return Err(NotBound::Failed("cannot probe its path", e)),
        }
        match crate::gsys::unlink(path, 0) {
            Err(e) if e.0 != ENOENT => {
                return Err(NotBound::Failed("cannot remove the stale socket file", e))
            }
            _ => {}
        }
        bound = bind_mode(fd, a, mode);
    }
    if let Err(e) = bound {
        return Err(NotBound::Bind(e));
    }
    let owner = owner.or_else(|| crate::creds::task_of(img, 0).map(|(t, _)| (t.uid[3], t.gid[3])));
    if let Some((uid, gid)) = owner.filter(|&o| o != (sys::geteuid(), sys::getegid())) {
        let _ = call(
            g::__NR_fchownat,
            [
                g::AT_FDCWD as usize,
                path.as_ptr() as usize,
                uid as usize,
                gid as usize,
                g::AT_SYMLINK_NOFOLLOW as usize,
                0,
            ],
        );
    }
    Ok(())
}

/// Start the kernel's garbage collector of Unix sockets (closing one
/// does) and give it 10 ms: sockets of a dead process kept alive only by
/// being in flight in each other's queues go.
pub(crate) fn collect_garbage() {
    if let Ok(p) = sys::fd_pair(Some(SOCK_DGRAM), g::O_CLOEXEC) {
        sys::close(p[0]);
        sys::close(p[1]);
    }
    crate::ksys::sleep_ms(10);
}

pub(crate) fn socket(ty: u32) -> SysResult {
    call(
        g::__NR_socket,
        [AF_UNIX, (ty | g::O_CLOEXEC) as usize, 0, 0, 0, 0],
    )
}

pub(crate) fn with_addr(nr: u32, fd: usize, a: &Addr) -> SysResult {
    call(nr, [fd, a as *const Addr as usize, a.len, 0, 0, 0])
}

pub(crate) fn set_opt(fd: usize, opt: usize) -> SysResult {
    let one: i32 = 1;
    call(
        g::__NR_setsockopt,
        [fd, SOL_SOCKET, opt, &one as *const i32 as usize, 4, 0],
    )
}

/// The type bits, owner and group of the file at `path` (not following a
/// symbolic link).
fn file_stat(path: &[u8]) -> Result<(u32, u32, u32), Errno> {
    let fd = sys::open(path, g::O_PATH | g::O_NOFOLLOW)?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: g::stat = unsafe { core::mem::zeroed() };
    let r = call(
        g::__NR_fstat,
        [fd, &mut st as *mut g::stat as usize, 0, 0, 0, 0],
    );
    sys::close(fd);
    r.map(|_| (st.st_mode & S_IFMT, st.st_uid, st.st_gid))
}

/// Whether a socket at `a` answers a probe of socket type `ty` (a
/// datagram socket's file is probed by a datagram socket; `Ok(false)`: a
/// stale socket file nobody listens on).
pub(crate) fn live_as(a: &Addr, ty: u32) -> Result<bool, Errno> {
    // Non-blocking: a listener with a full backlog answers EAGAIN.
    let probe = socket(ty | SOCK_NONBLOCK)?;
    let r = with_addr(g::__NR_connect, probe, a);
    sys::close(probe);
    match r {
        Err(e) if e.0 == ECONNREFUSED || e.0 == ENOENT => Ok(false),
        _ => Ok(true), // connected, in progress, full backlog, other type
    }
}

/// `bind` with the permission bits of `r` (umask set for the call).
fn bind(fd: usize, a: &Addr, r: &FdRecord) -> SysResult {
    let mode = (r.args[3] & MODE_RECORDED != 0).then_some((r.args[3] & 0o777) as u32);
    bind_mode(fd, a, mode)
}

/// `bind` giving the socket file permission bits `mode` (umask set for
/// the call), or the umask's.
pub(crate) fn bind_mode(fd: usize, a: &Addr, mode: Option<u32>) -> SysResult {
    let Some(mode) = mode else {
        return with_addr(g::__NR_bind, fd, a);
    };
    let old = sys::umask(!mode & 0o777)?;
    let res = with_addr(g::__NR_bind, fd, a);
    let _ = sys::umask(old as u32);
    res
}

/// A relative name is bound from the saved working directory: enter it
/// now (entered again, as for every process, after the descriptors).
pub(crate) fn enter_cwd(img: &Image, r: &FdRecord) {
    let fs = img
        .view
        .fs
        .filter(|fs| fs.flags & fs_flags::CWD_DELETED == 0);
    let Some(fs) = fs else {
        fail(
            img,
            r,
            "bound to a relative path in a deleted working directory",
            Errno(linux_raw_sys::errno::ENOENT),
        )
    };
    let cwd = img.view.string(fs.cwd).unwrap_or(&[]);
    let mut buf = [0u8; 4096];
    let n = cwd.len().min(4095);
    buf[..n].copy_from_slice(&cwd[..n]);
    if let Err(e) = sys::chdir(&buf[..n + 1]) {
        let mut m = fd_msg(img, r);
        m.s(": cannot enter ")
            .push(cwd)
            .s(", where its relative name is bound")
            .errno(e);
        m.fail()
    }
}

/// The listening socket of record `r` (not yet at its number).
pub fn listener(img: &Image, r: &FdRecord) -> usize {
    let name = img.view.string(r.path).unwrap_or(&[]);
    let abstract_name = r.args[0] & unix_flags::ABSTRACT != 0;
    let a = addr_of(name, abstract_name);
    let ty = (r.args[0] & 0xffff_ffff) as u32;
    if r.args[0] & unix_flags::RELATIVE != 0 {
        enter_cwd(img, r);
    }
    let fd = socket(ty).unwrap_or_else(|e| fail(img, r, "socket", e));
    if r.args[0] & unix_flags::DETACHED != 0 {
        bind_detached(img, r, fd, &a, name);
        return listen(img, r, fd);
    }
    if abstract_name {
        if let Err(e) = bind(fd, &a, r) {
            bind_failed(img, r, name, true, e)
        }
        return listen(img, r, fd);
    }
    let mode = (r.args[3] & MODE_RECORDED != 0).then_some((r.args[3] & 0o777) as u32);
    let taken = |what: &str| -> ! {
        let mut m = fd_msg(img, r);
        m.s(": cannot listen on ").push(name).s(" again: ").s(what);
        m.fail()
    };
    match bind_again(img, fd, &a, ty, false, mode) {
        Ok(()) => {}
        Err(NotBound::OtherFile) => taken("another kind of file is there (not a socket)"),
        Err(NotBound::Live) => {
            taken("a live socket listens there (is the dumped process still running?)")
        }
        Err(NotBound::Failed(what, e)) => fail(img, r, what, e),
        Err(NotBound::Bind(e)) => bind_failed(img, r, name, false, e),
    }
    listen(img, r, fd)
}

fn bind_failed(img: &Image, r: &FdRecord, name: &[u8], abstract_name: bool, e: Errno) -> ! {
    let mut m = fd_msg(img, r);
    m.s(": cannot bind the listening socket to ")
        .s(if abstract_name { "@" } else { "" })
        .push(name)
        .errno(e);
    m.fail()
}

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`.
pub(crate) fn rename(from: &[u8], to: &[u8]) -> SysResult {
    const RENAME_NOREPLACE: usize = 1;
    let cwd = g::AT_FDCWD as isize as usize;
    call(
        g::__NR_renameat2,
        [
            cwd,
            from.as_ptr() as usize,
            cwd,
            to.as_ptr() as usize,
            RENAME_NOREPLACE,
            0,
        ],
    )
}

/// Bind a detached listener (`unix_flags::DETACHED`) to its name and
/// leave the path as it is: whatever is there is renamed aside
/// (`NAME.kckpt-aside`, same directory) for the `bind`, the file `bind`
/// made is removed, and the other file is put back.
fn bind_detached(img: &Image, r: &FdRecord, fd: usize, a: &Addr, name: &[u8]) {
    const SUFFIX: &[u8] = b".kckpt-aside\0";
    let n = name.len().min(107);
    let mut path = [0u8; 108];
    path[..n].copy_from_slice(&name[..n]);
    let path = &path[..n + 1];
    let mut aside = [0u8; 108 + SUFFIX.len()];
    aside[..n].copy_from_slice(&name[..n]);
    aside[n..n + SUFFIX.len()].copy_from_slice(SUFFIX);
    let aside = &aside[..n + SUFFIX.len()];
    let mut moved = false;
    let mut bound = bind(fd, a, r);
    let mut made = Made::default();
    if matches!(bound, Err(e) if e.0 == ENOENT) {
        made = make_parents(path);
        bound = bind(fd, a, r);
    }
    if matches!(bound, Err(e) if e.0 == EADDRINUSE) {
        if let Err(e) = rename(path, aside) {
            let mut m = fd_msg(img, r);
            m.s(": cannot move ")
                .push(name)
                .s(" aside to give the socket its name back")
                .errno(e);
            m.fail()
        }
        moved = true;
        bound = bind(fd, a, r);
    }
    let removed = if bound.is_ok() {
        crate::gsys::unlink(path, 0)
    } else {
        Ok(0)
    };
    remove_parents(path, made);
    if moved {
        if let Err(e) = rename(aside, path) {
            let mut m = fd_msg(img, r);
            m.s(": cannot put ")
                .push(name)
                .s(".kckpt-aside back")
                .errno(e);
            m.fail()
        }
    }
    if let Err(e) = bound {
        bind_failed(img, r, name, false, e)
    }
    if let Err(e) = removed {
        fail(
            img,
            r,
            "cannot remove the socket file of a detached listener",
            e,
        )
    }
}

/// The kept socket options, then `listen(backlog)`; returns `fd`.
fn listen(img: &Image, r: &FdRecord, fd: usize) -> usize {
    let opts = [
        (unix_opts::PASSCRED, SO_PASSCRED),
        (unix_opts::PASSSEC, SO_PASSSEC),
    ];
    for (bit, opt) in opts {
        if r.args[2] & bit != 0 {
            set_opt(fd, opt).unwrap_or_else(|e| fail(img, r, "cannot set a socket option", e));
        }
    }
    call(g::__NR_listen, [fd, r.args[1] as usize, 0, 0, 0, 0])
        .unwrap_or_else(|e| fail(img, r, "listen", e));
    fd
}

/// Directories [`make_parents`] made, by the length of their path.
#[derive(Clone, Copy, Default)]
pub(crate) struct Made {
    ends: [usize; 8],
    n: usize,
}

/// For a `bind` to `path` (NUL-terminated) whose directory was removed
/// after the socket was bound (zdtm sk-unix01): the missing directories
/// made (mode 0700), at most 8 levels; [`remove_parents`] removes them.
pub(crate) fn make_parents(path: &[u8]) -> Made {
    let mut made = Made::default();
    let mut buf = [0u8; 128];
    let n = path.len().min(127);
    buf[..n].copy_from_slice(&path[..n]);
    for end in 1..n {
        if buf[end] != b'/' || made.n == made.ends.len() {
            continue;
        }
        buf[end] = 0;
        let r = crate::gsys::mkdir(&buf[..end + 1], 0o700);
        buf[end] = b'/';
        if r.is_ok() {
            made.ends[made.n] = end;
            made.n += 1;
        }
    }
    made
}

/// Remove the directories [`make_parents`] made for `path`, deepest first.
pub(crate) fn remove_parents(path: &[u8], made: Made) {
    const AT_REMOVEDIR: u32 = 0x200;
    let mut buf = [0u8; 128];
    for &end in made.ends[..made.n].iter().rev() {
        buf[..end].copy_from_slice(&path[..end]);
        buf[end] = 0;
        let _ = crate::gsys::unlink(&buf[..end + 1], AT_REMOVEDIR);
    }
}
