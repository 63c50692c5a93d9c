//! File descriptors, working directory and umask (format 1.1 notes).
//!
//! Runs after the image is validated and before anything in the address
//! space changes, so a file that cannot be reopened is a clean refusal:
//! the image descriptor moves above every saved descriptor number, the
//! descriptors inherited from the caller other than 0-2 are closed, then
//! every saved descriptor is rebuilt at a free number and moved to its
//! own with `dup3` (pairs of pipe or socket ends are first parked above
//! the image descriptor, so neither end lands on the other's number),
//! other open file descriptions of pipes and memfds (`REOPEN`, through
//! `/proc/self/fd`) and duplicates follow, then epoll interest lists,
//! inotify watches, terminal modes, the working directory and the umask.
//!
//! Descriptors 0-2 (issue 8): files and devices are reopened from the
//! image like any other descriptor; terminals and what led outside the
//! process (`INHERITED`) are the caller's; a descriptor 0-2 the process
//! had closed is closed. `KCKPT_STDIO=inherit` keeps the caller's files
//! and devices at 0-2 instead (and its descriptors the process had
//! closed), `KCKPT_STDIO=saved` reopens terminals by their saved path and
//! refuses what led outside.

use kckpt_image::files::{find_fd, of_tree_process};
use kckpt_image::ghosts::procfs_of;
use kckpt_image::selffd::pidfd_target;
use kckpt_image::{
    fd_flags, fd_kind, fs_flags, ghost_fd_kind, self_fd_kind, special_fd_kind, FdRecord, ImageView,
    EPOLL_SRC_CLOSED, FD_NO_DUP,
};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::startup::{STDIO_INHERIT, STDIO_SAVED};
use crate::sys::{self, Errno};

const F_DUPFD_CLOEXEC: u32 = 1030;
const F_SETFD: u32 = 2;
const F_SETFL: u32 = 4;
const F_SETPIPE_SZ: u32 = 1031;
const F_ADD_SEALS: u32 = 1033;
const F_SEAL_SEAL: u64 = 1;
const MFD_CLOEXEC: u32 = 1;
const MFD_ALLOW_SEALING: u32 = 2;

/// `kckpt: IMAGE: fd N (...)` prefix.
pub(crate) fn fd_msg(img: &Image, r: &FdRecord) -> Msg {
    if matches!(
        r.kind,
        kckpt_image::inet::INET_LISTEN_FD_KIND
            | kckpt_image::inet::UDP_FD_KIND
            | kckpt_image::tcp::TCP_CONN_FD_KIND
    ) {
        return crate::inet::msg(img, r, None); // `path` is binary
    }
    let mut m = Msg::new();
    m.push(img.path).s(": fd ").dec(r.fd.into());
    let path = img.view.string(r.path).unwrap_or(&[]);
    if !path.is_empty() {
        m.s(" (").push(path).s(")");
    }
    m
}

pub(crate) fn fail(img: &Image, r: &FdRecord, what: &str, e: Errno) -> ! {
    fd_msg(img, r).s(": ").s(what).errno(e).fail()
}

/// `bytes` + NUL in `buf`.
fn c_string<'b>(bytes: &[u8], buf: &'b mut [u8; 4096]) -> &'b [u8] {
    let n = bytes.len().min(buf.len() - 1);
    buf[..n].copy_from_slice(&bytes[..n]);
    buf[n] = 0;
    &buf[..n + 1]
}

/// Move `tmp` to number `fd` with the saved close-on-exec flag.
pub(crate) fn place(tmp: usize, r: &FdRecord) -> Result<(), Errno> {
    let fd = r.fd as usize;
    let cloexec = r.fd_flags & fd_flags::CLOEXEC != 0;
    if tmp == fd {
        sys::fcntl(fd, F_SETFD, usize::from(cloexec))?;
    } else {
        sys::dup3(tmp, fd, if cloexec { g::O_CLOEXEC } else { 0 })?;
        sys::close(tmp);
    }
    // Status flags (O_APPEND, O_NONBLOCK...): the kernel changes only
    // those F_SETFL may change; a refusal (O_DIRECT on some files) is not
    // worth failing the restore for.
    let _ = sys::fcntl(fd, F_SETFL, r.flags as usize);
    Ok(())
}

/// Park `tmp` above `floor` (so it is nobody's target number).
pub(crate) fn park(tmp: usize, floor: usize) -> Result<usize, Errno> {
    let high = sys::fcntl(tmp, F_DUPFD_CLOEXEC, floor)?;
    sys::close(tmp);
    Ok(high)
}

pub(crate) fn open_dev_null() -> Result<usize, Errno> {
    sys::open(b"/dev/null\0", g::O_RDWR)
}

/// Is record `r` (not a dup) taken from the caller rather than rebuilt,
/// with `stdio` mode ([`crate::startup::STDIO_AUTO`]...)?
fn from_caller(r: &FdRecord, stdio: u8) -> bool {
    match r.kind {
        fd_kind::INHERITED | fd_kind::TERMINAL => stdio != STDIO_SAVED,
        fd_kind::FILE | fd_kind::PATH | special_fd_kind::DEVICE => {
            r.fd <= 2 && stdio == STDIO_INHERIT
        }
        _ => false,
    }
}

/// The hint of a refusal about fd 0-2: how to take the caller's instead.
fn stdio_hint(m: &mut Msg, r: &FdRecord) {
    if r.fd <= 2 {
        m.s(
            " (kckpt restore --stdio=inherit or KCKPT_STDIO=inherit takes the caller's fd instead)",
        );
    }
}

/// Close every descriptor from 3 on except the ranges `[from, to)` of
/// `keep`.
fn close_others(keep: &mut [(u32, u32)]) {
    keep.sort_unstable();
    let mut lo = 3u32;
    for &(from, to) in keep.iter() {
        if from > lo {
            let _ = sys::close_range(lo, from - 1);
        }
        lo = lo.max(to);
    }
    if lo != u32::MAX {
        let _ = sys::close_from(lo);
    }
}

/// Rebuild every saved descriptor, the working directory and the umask.
/// Refuses (exit 126, one line) on anything that cannot be restored,
/// except deleted or shrunk files when `force` is set (then a warning).
/// `stdio` is the `KCKPT_STDIO` mode for fds 0-2.
///
/// `kept`: in a tree process, the descriptors `[from, to)` of the tree's
/// slots, barrier and external copies, which stay open; `TREE_SHARED`
/// records are copies of those slots. `who`: in a tree process, its index
/// and pid (messages about external descriptors name it).
pub fn restore(
    img: &mut Image,
    force: bool,
    stdio: u8,
    kept: Option<(u32, u32)>,
    who: Option<(u32, u32)>,
) {
    let v = img.view;
    if v.fds.is_empty() && v.fs.is_none() {
        return; // format 1.0 image: descriptors 0-2 inherited, as before
    }
    // Epoll items whose number was closed are added with that number
    // for a moment: it must be free of the stub's own descriptors too.
    let max = v
        .fds
        .iter()
        .map(|r| r.fd as usize)
        .chain(v.epoll.iter().map(|e| e.tfd as usize))
        .max()
        .unwrap_or(2)
        .max(2);
    // In a tree process, above the slots and the barrier too.
    let floor = kept.map_or(max + 1, |k| (max + 1).max(k.1 as usize));
    // External descriptors: the caller's, before they are closed.
    let ext_base = kept.map(|k| k.1 - kckpt_image::external::MAX_INHERIT as u32);
    let held = crate::external::Held::take(
        img,
        floor,
        ext_base.zip(who).map(|(b, (i, pid))| (b, i, pid)),
    );
    let image_fd = sys::fcntl(img.fd, F_DUPFD_CLOEXEC, floor).unwrap_or_else(|e| {
        Msg::new()
            .push(img.path)
            .s(": cannot use descriptor numbers up to ")
            .dec(floor as u64)
            .s(" (RLIMIT_NOFILE)")
            .errno(e)
            .fail()
    });
    sys::close(img.fd);
    img.fd = image_fd;
    // The stub's messages keep going to the caller's stderr once fd 2 is
    // the restored one (report.rs).
    let err_fd = match sys::fcntl(2, F_DUPFD_CLOEXEC, image_fd + 1) {
        Ok(fd) => {
            crate::report::keep_stderr(fd);
            fd
        }
        Err(_) => image_fd,
    };
    let (from, to) = kept.unwrap_or((u32::MAX, u32::MAX));
    let mut keep = [(u32::MAX, u32::MAX); 3 + kckpt_image::external::MAX_INHERIT];
    keep[0] = (image_fd as u32, image_fd as u32 + 1);
    keep[1] = (err_fd as u32, err_fd as u32 + 1);
    keep[2] = (from, to);
    for (k, range) in keep[3..].iter_mut().zip(held.keep()) {
        *k = range;
    }
    close_others(&mut keep);
    let park_floor = err_fd + 1;
    let mut buf = [0u8; 4096];
    crate::ghosts::create_all(img, park_floor);
    if stdio != STDIO_INHERIT {
        // fds 0-2 the process had closed are closed (their number is the
        // next one it opens).
        for fd in 0..3u32 {
            if find_fd(&v, fd).is_none() {
                sys::close(fd as usize);
            }
        }
    }

    for r in v.fds.iter().filter(|r| r.dup_of == FD_NO_DUP) {
        let r = &r;
        let path = v.string(r.path).unwrap_or(&[]);
        if from_caller(r, stdio) {
            continue;
        }
        let tmp = match r.kind {
            fd_kind::INHERITED => {
                let mut m = fd_msg(img, r);
                m.s(": led outside the process and cannot be reopened (KCKPT_STDIO=saved); ")
                    .s("without --stdio=saved the caller's fd is used")
                    .fail()
            }
            fd_kind::TERMINAL => {
                let flags = r.flags & !(g::O_CREAT | g::O_EXCL | g::O_TRUNC) | g::O_NOCTTY;
                sys::open(c_string(path, &mut buf), flags)
                    .unwrap_or_else(|e| fail(img, r, "cannot reopen the terminal", e))
            }
            fd_kind::CTTY => ctty(img, r, force),
            fd_kind::REOPEN => continue, // once its object exists, below
            fd_kind::FILE | fd_kind::PATH => {
                let flags = r.flags & !(g::O_CREAT | g::O_EXCL | g::O_TRUNC | g::O_NOCTTY);
                let opened = if r.fd_flags & fd_flags::DELETED != 0 {
                    Err(Errno(linux_raw_sys::errno::ENOENT))
                } else {
                    sys::open(c_string(path, &mut buf), flags)
                };
                match opened {
                    Ok(fd) => {
                        if r.kind == fd_kind::FILE {
                            let size = sys::fstat(fd).map(|s| s.2).unwrap_or(0);
                            if size < r.pos {
                                let mut m = fd_msg(img, r);
                                m.s(": the file is shorter (")
                                    .dec(size)
                                    .s(" bytes) than the saved offset ")
                                    .dec(r.pos);
                                if !force {
                                    m.s("; KCKPT_FORCE=1 or kckpt restore --force restores it at that offset: the program then reads nothing there and what it writes leaves a hole");
                                    stdio_hint(&mut m, r);
                                    m.fail();
                                }
                                m.s("; restored at that offset (forced)").warn();
                            }
                        }
                        if r.pos != 0 {
                            let _ = sys::lseek(fd, r.pos);
                        }
                        fd
                    }
                    Err(e) if e.0 == linux_raw_sys::errno::ENOENT && r.kind == fd_kind::FILE => {
                        let mut m = fd_msg(img, r);
                        m.s(if r.fd_flags & fd_flags::DELETED != 0 {
                            ": the file was deleted before the dump (an image older than format 1.3 does not hold it)"
                        } else {
                            ": the file was deleted since the dump"
                        });
                        if !force {
                            m.s("; KCKPT_FORCE=1 or kckpt restore --force restores it as /dev/null: the program then reads nothing from it and what it writes there is lost (a database loses its journal)");
                            stdio_hint(&mut m, r);
                            m.fail();
                        }
                        m.s("; restored as /dev/null (forced)").warn();
                        open_dev_null().unwrap_or_else(|e| fail(img, r, "cannot open /dev/null", e))
                    }
                    Err(e) => {
                        let mut m = fd_msg(img, r);
                        m.s(": cannot reopen it").errno(e);
                        stdio_hint(&mut m, r);
                        m.fail()
                    }
                }
            }
            fd_kind::PIPE if r.peer == FD_NO_DUP => {
                alone(img, r, park_floor)
                    .unwrap_or_else(|e| fail(img, r, "cannot rebuild the pipe", e));
                continue;
            }
            fd_kind::PIPE | fd_kind::SOCKETPAIR => {
                if r.peer < r.fd {
                    continue; // created with its peer
                }
                let Some(peer) = find_fd(&v, r.peer) else {
                    fail(img, r, "bad peer", Errno(22))
                };
                pair(img, r, &peer, park_floor)
                    .unwrap_or_else(|e| fail(img, r, "cannot rebuild the pipe or socketpair", e));
                continue;
            }
            fd_kind::MEMFD => {
                let seals = r.args[1];
                let sealing = if seals & F_SEAL_SEAL == 0 {
                    MFD_ALLOW_SEALING
                } else {
                    0
                };
                let name = c_string(path, &mut buf);
                let fd = sys::memfd_create(&name[..name.len().min(250)], MFD_CLOEXEC | sealing)
                    .or_else(|_| sys::memfd_create(b"kckpt\0", MFD_CLOEXEC | sealing))
                    .unwrap_or_else(|e| fail(img, r, "memfd_create", e));
                fill_memfd(img, r, fd, "cannot fill the memfd");
                if r.args[2] >> 32 == 1 {
                    let _ = crate::gsys::fchmod(fd, (r.args[2] & 0o7777) as u32);
                }
                if sealing != 0 && seals != 0 {
                    let _ = sys::fcntl(fd, F_ADD_SEALS, seals as usize);
                }
                fd
            }
            fd_kind::EVENTFD => {
                let sem = if r.args[1] != 0 { 1 } else { 0 }; // EFD_SEMAPHORE
                let fd =
                    sys::eventfd(g::O_CLOEXEC | sem).unwrap_or_else(|e| fail(img, r, "eventfd", e));
                if r.args[0] != 0 {
                    if let Err(e) = sys::write(fd, &r.args[0].to_ne_bytes()) {
                        fail(img, r, "cannot set the eventfd counter", e);
                    }
                }
                fd
            }
            fd_kind::EPOLL => {
                sys::epoll_create(g::O_CLOEXEC).unwrap_or_else(|e| fail(img, r, "epoll_create1", e))
            }
            fd_kind::TIMERFD => {
                crate::timers::timerfd(r).unwrap_or_else(|(what, e)| fail(img, r, what, e))
            }
            fd_kind::SIGNALFD => sys::signalfd(r.args[0], g::O_CLOEXEC)
                .unwrap_or_else(|e| fail(img, r, "signalfd", e)),
            kckpt_image::inotify::INOTIFY_FD_KIND => sys::inotify_init1(g::O_CLOEXEC)
                .unwrap_or_else(|e| fail(img, r, "inotify_init1", e)),
            // (1.8) Of another process of the tree: once every process
            // exists (`tree::after_files`).
            ghost_fd_kind::PROCFS if r.args[0] == procfs_of::TREE => continue,
            ghost_fd_kind::PROCFS if r.args[0] == procfs_of::OUTSIDE => {
                outside_procfs(img, r, path)
            }
            ghost_fd_kind::GHOST | ghost_fd_kind::PROCFS => reopen(img, r, path),
            ghost_fd_kind::SHMEM => shmem_fd(img, r),
            special_fd_kind::FIFO => {
                crate::special::fifo(img, r, force, park_floor);
                continue;
            }
            special_fd_kind::DEVICE => crate::special::device(img, r),
            kckpt_image::unixsock::UNIX_LISTEN_FD_KIND => crate::unixsock::listener(img, r),
            // (1.6) Once every other descriptor exists (`unixconn`).
            kckpt_image::unixsock::UNIX_SOCKET_FD_KIND => continue,
            kckpt_image::inet::INET_LISTEN_FD_KIND | kckpt_image::inet::UDP_FD_KIND => {
                crate::inet::socket(img, r)
            }
            // After every listener, below: one on the same port binds it
            // without forced reuse.
            kckpt_image::tcp::TCP_CONN_FD_KIND => continue,
            special_fd_kind::SYMLINK => crate::special::symlink(img, r, force),
            // A pidfd of the process itself: of the restored process.
            // (1.7) Of another process of the tree: once every process
            // exists (`tree::after_files`).
            self_fd_kind::PIDFD if r.args[0] == pidfd_target::TREE => continue,
            // (1.7) Of an exited process: below, each group on one
            // stand-in.
            self_fd_kind::PIDFD if r.args[0] == pidfd_target::DEAD => continue,
            self_fd_kind::PIDFD => crate::xsys::pidfd_open(sys::getpid(), r.flags & g::O_NONBLOCK)
                .unwrap_or_else(|e| fail(img, r, "pidfd_open", e)),
            self_fd_kind::NSFD => namespace(img, r, path),
            kckpt_image::external::EXTERNAL_FD_KIND => held
                .copy(path)
                .unwrap_or_else(|e| fail(img, r, "cannot copy the restorer's descriptor", e)),
            kckpt_image::tree::TREE_SHARED_FD_KIND => match kept {
                Some(kept) => crate::tree::shared_fd(kept, r.args[0])
                    .unwrap_or_else(|e| fail(img, r, "cannot copy the shared descriptor", e)),
                None => crate::tree::shared_refusal(img, r.fd),
            },
            _ => {
                fd_msg(img, r)
                    .s(": not saved (dumped with --skip-unsupported); restored as /dev/null")
                    .warn();
                open_dev_null().unwrap_or_else(|e| fail(img, r, "cannot open /dev/null", e))
            }
        };
        place(tmp, r).unwrap_or_else(|e| fail(img, r, "cannot move it to its number", e));
    }

    dead_pidfds(img);
    crate::unixconn::restore_all(img, park_floor);

    held.close();

    for r in v.fds.iter().filter(|r| r.dup_of == FD_NO_DUP) {
        if r.kind == kckpt_image::tcp::TCP_CONN_FD_KIND {
            let fd = crate::tcp::socket(img, &r, park_floor);
            place(fd, &r).unwrap_or_else(|e| fail(img, &r, "cannot move it to its number", e));
        }
    }

    for r in v.fds.iter().filter(|r| r.dup_of == FD_NO_DUP) {
        let of_fifo =
            find_fd(&v, r.args[0] as u32).is_some_and(|o| o.kind == special_fd_kind::FIFO);
        if r.kind == fd_kind::REOPEN && !of_fifo {
            let fd = reopen_description(img, &r);
            place(fd, &r).unwrap_or_else(|e| fail(img, &r, "cannot move it to its number", e));
        }
    }

    for r in v.fds.iter().filter(|r| r.dup_of != FD_NO_DUP) {
        if r.fd <= 2 && stdio == STDIO_INHERIT || deferred(&v, r.dup_of) {
            continue; // the caller's, or made later
        }
        duplicate(img, &r);
    }

    for item in v.epoll.iter().filter(|i| !deferred(&v, watched(i))) {
        watch(img, &item, park_floor);
    }

    // (1.7) Files only in flight: in their queues now (`unixconn`), and
    // closed before any lock is taken again (a close drops the process's
    // POSIX locks on the file).
    for r in v.fds.iter() {
        if r.fd_flags & fd_flags::IN_FLIGHT != 0 {
            sys::close(r.fd as usize);
        }
    }

    crate::inotify::check_paths(img, force);
    crate::terminal::apply_modes(img);
    crate::flocks::take(img, force, true);
    crate::ghosts::finish_all(img);

    if let Some(fs) = v.fs {
        let cwd = v.string(fs.cwd).unwrap_or(&[]);
        let r = if fs.flags & fs_flags::CWD_DELETED != 0 {
            match crate::ghosts::cwd_fd(img) {
                Some(fd) => crate::gsys::fchdir(fd),
                None => Err(Errno(linux_raw_sys::errno::ENOENT)),
            }
        } else {
            sys::chdir(c_string(cwd, &mut buf))
        };
        if let Err(e) = r {
            let mut m = Msg::new();
            m.push(img.path)
                .s(": cannot enter the working directory ")
                .push(cwd)
                .errno(e);
            if !force {
                m.s("; KCKPT_FORCE=1 or kckpt restore --force goes on without it")
                    .fail();
            }
            m.s(" (forced: staying in the current directory)").warn();
        }
        let _ = sys::umask(fs.umask & 0o777);
    }
}

/// (1.7) The pidfds of exited processes: per process, a stand-in child
/// that ends as the saved wait status says, a pidfd of it for each
/// record (the first and those `SAME_AS` it: one pidfs inode, as at dump)
/// opened while it is a zombie, then reaped.
fn dead_pidfds(img: &Image) {
    let v = img.view;
    let dead = |r: &FdRecord| {
        r.kind == self_fd_kind::PIDFD && r.args[0] == pidfd_target::DEAD && r.dup_of == FD_NO_DUP
    };
    for first in v.fds.iter().filter(|r| dead(r) && r.args[2] == 0) {
        let what = "cannot make a pidfd of an exited process";
        let (child, fd) =
            crate::threads::stand_in(first.args[1]).unwrap_or_else(|e| fail(img, &first, what, e));
        place(fd, &first).unwrap_or_else(|e| fail(img, &first, what, e));
        let same = pidfd_target::SAME_AS | u64::from(first.fd);
        for r in v.fds.iter().filter(|r| dead(r) && r.args[2] == same) {
            let fd = crate::xsys::pidfd_open(child, r.flags & g::O_NONBLOCK)
                .unwrap_or_else(|e| fail(img, &r, what, e));
            place(fd, &r).unwrap_or_else(|e| fail(img, &r, what, e));
        }
        let _ = sys::wait4(child as i32, g::__WALL);
    }
}

/// Copy `r.dup_of` to `r.fd` (a `dup`), with its close-on-exec flag.
pub(crate) fn duplicate(img: &Image, r: &FdRecord) {
    let cloexec = if r.fd_flags & fd_flags::CLOEXEC != 0 {
        g::O_CLOEXEC
    } else {
        0
    };
    if let Err(e) = sys::dup3(r.dup_of as usize, r.fd as usize, cloexec) {
        let mut m = fd_msg(img, r);
        m.s(": cannot duplicate fd ")
            .dec(r.dup_of.into())
            .errno(e)
            .fail();
    }
}

/// (1.7) Is descriptor `fd` (or the one it copies) a pidfd of another
/// process of the tree, made by `tree::after_files`?
pub(crate) fn deferred(v: &ImageView<'_>, fd: u32) -> bool {
    let Some(r) = find_fd(v, fd) else {
        return false;
    };
    let r = match r.dup_of {
        FD_NO_DUP => Some(r),
        of => find_fd(v, of),
    };
    r.is_some_and(|r| of_tree_process(&r))
}

/// The descriptor whose file epoll item `item` watches.
pub(crate) fn watched(item: &kckpt_image::EpollItemRecord) -> u32 {
    if item.src & EPOLL_SRC_CLOSED != 0 {
        item.src & !EPOLL_SRC_CLOSED
    } else {
        item.tfd
    }
}

/// Add epoll item `item`. One whose number was closed after it was added
/// (`src`) is added with that number for a moment: the file of its source
/// descriptor is put there (the descriptor saved there, if any, is parked
/// above `floor` and put back), added, and the number closed again.
pub(crate) fn watch(img: &Image, item: &kckpt_image::EpollItemRecord, floor: usize) {
    let v = img.view;
    let closed = item.src & EPOLL_SRC_CLOSED != 0;
    let watched = watched(item);
    let Some(target) = find_fd(&v, watched) else {
        return;
    };
    if target.kind == fd_kind::PLACEHOLDER {
        return;
    }
    let (tfd, src) = (item.tfd as usize, watched as usize);
    let add = || sys::epoll_add(item.epfd as usize, tfd, item.events, item.data);
    let r = if closed {
        // Whatever is open at that number now (a saved descriptor, or
        // with KCKPT_STDIO=inherit the caller's 0-2) is put back after.
        const F_GETFD: u32 = 1;
        let held = sys::fcntl(tfd, F_GETFD, 0)
            .ok()
            .map(|_| park_copy(tfd, floor));
        let r = sys::dup3(src, tfd, g::O_CLOEXEC).and_then(|_| add());
        match held {
            Some(Ok((copy, fd_flags))) => {
                let back = sys::dup3(copy, tfd, 0).and_then(|_| sys::fcntl(tfd, F_SETFD, fd_flags));
                sys::close(copy);
                if let Err(e) = back {
                    fail(
                        img,
                        &target,
                        "cannot put a descriptor back after an epoll item",
                        e,
                    );
                }
            }
            Some(Err(e)) => fail(img, &target, "cannot park a descriptor", e),
            None => sys::close(tfd),
        }
        r
    } else {
        add()
    };
    if let (Err(e), Some(ep)) = (r, find_fd(&v, item.epfd)) {
        let mut m = fd_msg(img, &ep);
        m.s(": cannot watch fd ").dec(item.tfd.into());
        if target.kind == fd_kind::INHERITED {
            m.errno(e)
                .s(" (an inherited descriptor; not watched)")
                .warn();
        } else {
            m.errno(e).fail();
        }
    }
}

/// A copy of descriptor `fd` above `floor`, and `fd`'s `F_GETFD` flags.
fn park_copy(fd: usize, floor: usize) -> Result<(usize, usize), Errno> {
    const F_GETFD: u32 = 1;
    let flags = sys::fcntl(fd, F_GETFD, 0)?;
    Ok((sys::fcntl(fd, F_DUPFD_CLOEXEC, floor)?, flags))
}

/// One of the process's own namespaces: `/proc/self/ns/NAME` of the
/// restored process. When that is another namespace than at dump time
/// (another inode: a restore in new namespaces), a warning says so.
fn namespace(img: &Image, r: &FdRecord, path: &[u8]) -> usize {
    let mut buf = [0u8; 4096];
    let fd = sys::open(
        c_string(path, &mut buf),
        r.flags & !(g::O_CREAT | g::O_EXCL | g::O_TRUNC),
    )
    .unwrap_or_else(|e| fail(img, r, "cannot open the namespace", e));
    if sys::fstat(fd).map(|s| s.1).unwrap_or(0) != r.args[0] {
        fd_msg(img, r)
            .s(": the restored process is in another namespace of that kind than at dump time; the descriptor is its namespace now")
            .warn();
    }
    fd
}

/// The controlling terminal at fd 3 or above: `/dev/tty` of whoever runs
/// the image, with the saved flags. Without one the restore is refused,
/// or with `force` the descriptor is `/dev/null`, with a warning.
fn ctty(img: &Image, r: &FdRecord, force: bool) -> usize {
    let flags = r.flags & !(g::O_CREAT | g::O_EXCL | g::O_TRUNC) | g::O_NOCTTY;
    match sys::open(b"/dev/tty\0", flags) {
        Ok(fd) => fd,
        Err(e) => {
            let mut m = fd_msg(img, r);
            m.s(": the controlling terminal; none to reopen here (/dev/tty)")
                .errno(e);
            if !force {
                m.s("; run the image in a terminal, or KCKPT_FORCE=1 or kckpt restore --force restores it as /dev/null")
                    .fail();
            }
            m.s("; restored as /dev/null (forced)").warn();
            open_dev_null().unwrap_or_else(|e| fail(img, r, "cannot open /dev/null", e))
        }
    }
}

/// Another open file description (`REOPEN`) of the object at descriptor `args[0]`
/// (which exists by now): `/proc/self/fd/N` opened with the saved flags,
/// at the saved offset.
pub(crate) fn reopen_description(img: &Image, r: &FdRecord) -> usize {
    let mut path = crate::ghosts::PathBuf::proc_fd(r.args[0]);
    let flags = r.flags & !(g::O_CREAT | g::O_EXCL | g::O_TRUNC) | g::O_NOCTTY;
    let fd = sys::open(path.c(), flags)
        .unwrap_or_else(|e| fail(img, r, "cannot open it again through /proc/self/fd", e));
    if r.pos != 0 {
        let _ = sys::lseek(fd, r.pos);
    }
    fd
}

/// A deleted file (through its re-created copy's `/proc/self/fd/N`) or a
/// procfs file (its path, `/proc/self/...`) opened again with the saved
/// flags, at the saved offset.
fn reopen(img: &Image, r: &FdRecord, path: &[u8]) -> usize {
    open_again(r, path).unwrap_or_else(|e| fail(img, r, "cannot reopen it", e))
}

/// (1.9) A procfs file of a process outside the dump, opened again when
/// the process at its pid started when it did (field 22 of
/// `/proc/PID/stat`: the same process, still running).
fn outside_procfs(img: &Image, r: &FdRecord, path: &[u8]) -> usize {
    let mut buf = [0u8; 1024];
    let start = crate::ids::stat_fields(r.args[1] as u32, &mut buf)
        .unwrap_or(&[])
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(22 - 3)
        .and_then(|f| {
            f.iter().try_fold(0u64, |n, &d| {
                d.is_ascii_digit().then_some(())?;
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
        });
    if start != Some(r.args[2]) {
        fd_msg(img, r)
            .s(": procfs file of process ")
            .dec(r.args[1])
            .s(
                ", which is not the process it was at dump (it has exited, or this is another \
                boot or PID namespace)",
            )
            .fail();
    }
    reopen(img, r, path)
}

/// [`reopen`]'s open, with its error.
pub(crate) fn open_again(r: &FdRecord, path: &[u8]) -> Result<usize, Errno> {
    let mut flags = r.flags & !(g::O_CREAT | g::O_EXCL | g::O_TRUNC | g::O_NOCTTY);
    if flags & g::O_TMPFILE == g::O_TMPFILE {
        // A file made with O_TMPFILE keeps the flag (and O_DIRECTORY, part
        // of it); it is reopened as the regular file it is.
        flags &= !g::O_TMPFILE;
    }
    let mut via = crate::ghosts::PathBuf::new();
    let target = if r.kind == ghost_fd_kind::GHOST {
        // (its re-created file missing: ENOENT)
        via = crate::ghosts::proc_path(r.args[0] as usize).ok_or(Errno(2))?;
        via.c()
    } else {
        via.push(path);
        via.c()
    };
    let fd = sys::open(target, flags)?;
    if r.pos != 0 {
        let _ = sys::lseek(fd, r.pos);
    }
    Ok(fd)
}

/// Shared anonymous memory held by a descriptor: a memfd with the saved
/// content (its link reads `/memfd:kckpt-shmem (deleted)`).
fn shmem_fd(img: &Image, r: &FdRecord) -> usize {
    let fd = sys::memfd_create(b"kckpt-shmem\0", MFD_CLOEXEC)
        .unwrap_or_else(|e| fail(img, r, "memfd_create", e));
    fill_memfd(img, r, fd, "cannot fill the shared memory");
    fd
}

/// Give the new memfd `fd` the saved size (`args[0]`), content and offset
/// of `r`; a failure fails the restore with `what`.
fn fill_memfd(img: &Image, r: &FdRecord, fd: usize, what: &str) {
    let filled = sys::ftruncate(fd, r.args[0])
        .and_then(|_| sys::sendfile_all(fd, img.fd, img.at(r.data_offset), r.data_len))
        .and_then(|_| sys::lseek(fd, r.pos).map(|_| ()));
    if let Err(e) = filled {
        fail(img, r, what, e);
    }
}

/// Create a pipe or socketpair for `r` and `peer` (`r.fd < peer.fd`),
/// refill what each end had not read yet, and put both ends in place.
/// (1.5) A pipe end whose other end was closed everywhere: a new pipe, the
/// unread bytes written into it (read end), the other end closed.
fn alone(img: &Image, r: &FdRecord, floor: usize) -> Result<(), Errno> {
    let ends = sys::fd_pair(None, g::O_CLOEXEC)?;
    let (read, write) = (park(ends[0], floor)?, park(ends[1], floor)?);
    if r.flags & 3 == 1 {
        sys::close(read);
        return place(write, r);
    }
    if r.args[0] != 0 {
        let _ = sys::fcntl(write, F_SETPIPE_SZ, r.args[0] as usize);
    }
    sys::sendfile_all(write, img.fd, img.at(r.data_offset), r.data_len)?;
    sys::close(write);
    place(read, r)
}

fn pair(img: &Image, r: &FdRecord, peer: &FdRecord, floor: usize) -> Result<(), Errno> {
    let socket = r.kind == fd_kind::SOCKETPAIR;
    let ends = sys::fd_pair(socket.then_some(r.args[0] as u32), g::O_CLOEXEC)?;
    let (a, b) = (park(ends[0], floor)?, park(ends[1], floor)?);
    // Pipe: ends[0] reads, ends[1] writes. Socketpair: `a` is `r`'s.
    let (mine, theirs) = if !socket && r.flags & 3 == 1 {
        (b, a)
    } else {
        (a, b)
    };
    if socket {
        // What `r` had not read was sent by its peer, and the other way.
        sys::sendfile_all(theirs, img.fd, img.at(r.data_offset), r.data_len)?;
        sys::sendfile_all(mine, img.fd, img.at(peer.data_offset), peer.data_len)?;
    } else {
        let reader = if r.flags & 3 == 1 { peer } else { r };
        if reader.args[0] != 0 {
            let _ = sys::fcntl(b, F_SETPIPE_SZ, reader.args[0] as usize);
        }
        sys::sendfile_all(b, img.fd, img.at(reader.data_offset), reader.data_len)?;
    }
    place(mine, r)?;
    place(theirs, peer)
}
