//! Unix sockets of fd kind 45 (format 1.6, `kckpt_image::unixsock::
//! UnixRecord`): every Unix socket that is not listening and not a plain
//! socketpair. Rebuilt after every other descriptor (listeners they were
//! accepted on exist by then), in four steps over all of them:
//!
//! 1. create: a pair by `socketpair`, or, for an end accepted on a
//!    listener of the process, by connecting the other end to that
//!    listener and accepting; a socket whose peer closed by a socketpair
//!    whose other end is closed once its queue is refilled; any other by
//!    `socket`; (1.7) then the clients whose connection a listener of the
//!    process had not accepted, connected to it again in backlog order. Each bound to its name (a stale socket file nobody uses
//!    is replaced; anything else at the path refuses the restore with one
//!    line; the path of a socket whose file was gone at dump is bound with
//!    whatever is there renamed aside), with its buffer sizes, timeouts
//!    and `SO_PASSCRED`/`SO_PASSSEC`, then put at its number;
//! 2. refill: each queued message sent again, in order, by the other end
//!    of a pair, or to the socket's name from a socket bound to the
//!    sender's name (a new one, the path's current file renamed aside for
//!    the `bind` when taken, or the process's own socket of that abstract
//!    name), so datagrams keep their boundaries and senders;
//! 3. connect: datagram sockets connected to a name `connect` again;
//! 4. finish: files of sockets detached at dump removed again (what was
//!    renamed aside put back), `SO_PEEK_OFF`, then `shutdown`.
//!
//! (1.7) A queued message that carried descriptors (`SCM_RIGHTS`) is
//! sent again with the descriptors its record names, restored by then
//! (files only in flight at their synthetic numbers, closed by
//! `files::restore` after every queue is refilled). Sockets whose peer
//! closed are made after every other one: their queue is sent as they
//! are made, and may carry the others.
//!
//! Credentials passed with the queued messages (`SCM_CREDENTIALS`) and
//! the peer credentials (`SO_PEERCRED`) are the restoring process's.
#![allow(unsafe_code)]

use kckpt_image::files::find_fd;
use kckpt_image::unixsock::{
    messages, name_kind, peer_kind, queue_ok, rights_count, shut, sock_flags, unix_flags,
    UnixRecord, MAX_RIGHTS, SOCK_MODE_RECORDED, UNIX_LISTEN_FD_KIND, UNIX_SOCKET_FD_KIND,
};
use kckpt_image::{fd_kind, FdRecord, FD_NO_DUP};
use linux_raw_sys::errno::{EADDRINUSE, EINVAL, ENOENT};
use linux_raw_sys::general as g;

use crate::files::{park, place};
use crate::load::Image;
use crate::report::Msg;
use crate::sockopts::*;
use crate::sys::{self, Errno};
use crate::unixsock::{
    addr_of, bind_again, bind_mode, call, make_parents, remove_parents, rename, set_opt, socket,
    with_addr, Addr, Made, NotBound,
};

const SCM_RIGHTS: i32 = 1;
const F_SETFL: u32 = 4;
const MSG_DONTWAIT: usize = 0x40;
const MSG_NOSIGNAL: usize = 0x4000;
const ASIDE: &[u8] = b".kckpt-aside";

/// `IMAGE: fd N (unix datagram socket NAME)`.
fn msg(img: &Image, r: &FdRecord, x: &UnixRecord<'_>) -> Msg {
    let mut m = Msg::new();
    m.push(img.path).s(": fd ").dec(r.fd.into()).s(" (unix ");
    m.s(match x.ty {
        1 => "stream",
        2 => "datagram",
        _ => "seqpacket",
    });
    m.s(" socket");
    match x.name_kind {
        name_kind::PATH => {
            m.s(" ").push(x.name);
        }
        name_kind::ABSTRACT => {
            m.s(" @").push(x.name);
        }
        _ => {}
    }
    m.s(")");
    m
}

fn fail(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, what: &str, e: Errno) -> ! {
    msg(img, r, x).s(": ").s(what).errno(e).fail()
}

/// The record of `r` (validated with the image).
fn record<'a>(img: &'a Image, r: &FdRecord) -> UnixRecord<'a> {
    let bytes = img.view.string(r.path).unwrap_or(&[]);
    match UnixRecord::parse(bytes) {
        Some(x) => x,
        None => {
            let mut m = Msg::new();
            m.push(img.path)
                .s(": fd ")
                .dec(r.fd.into())
                .s(": bad unix socket record")
                .fail()
        }
    }
}

fn primaries<'a>(img: &'a Image) -> impl Iterator<Item = FdRecord> + 'a {
    img.view
        .fds
        .iter()
        .filter(|r| r.kind == UNIX_SOCKET_FD_KIND && r.dup_of == FD_NO_DUP)
}

/// The stored queue of `r`, mapped read-only from the image (empty when
/// there is none); unmapped with [`unmap`].
fn map_queue(img: &Image, r: &FdRecord, x: &UnixRecord<'_>) -> &'static [u8] {
    if r.data_len == 0 {
        return &[];
    }
    let len = r.data_len as usize;
    // SAFETY: a new private read-only mapping at an address the kernel
    // picks; nothing else uses it until `unmap`.
    let at = unsafe {
        sys::mmap(
            0,
            len,
            g::PROT_READ,
            g::MAP_PRIVATE,
            img.fd,
            img.at(r.data_offset),
        )
    }
    .unwrap_or_else(|e| fail(img, r, x, "cannot map its queued messages", e));
    // SAFETY: `len` readable bytes mapped at `at` just above, valid until
    // `unmap`.
    unsafe { core::slice::from_raw_parts(at as *const u8, len) }
}

fn unmap(q: &[u8]) {
    if !q.is_empty() {
        // SAFETY: `q` is a mapping of `map_queue`, used nowhere after.
        let _ = unsafe { sys::munmap(q.as_ptr() as usize, q.len()) };
    }
}

/// `name` + NUL in `buf`, and `name.kckpt-aside` + NUL in `aside`.
fn paths<'b>(
    name: &[u8],
    buf: &'b mut [u8; 128],
    aside: &'b mut [u8; 128],
) -> (&'b [u8], &'b [u8]) {
    let n = name.len().min(107);
    buf[..n].copy_from_slice(&name[..n]);
    buf[n] = 0;
    aside[..n].copy_from_slice(&name[..n]);
    aside[n..n + ASIDE.len()].copy_from_slice(ASIDE);
    aside[n + ASIDE.len()] = 0;
    (&buf[..n + 1], &aside[..n + ASIDE.len() + 1])
}

/// (1.7) Every descriptor in flight in `q` is a primary record restored
/// before the queues are refilled, and the record counts them.
fn rights_ok(img: &Image, x: &UnixRecord<'_>, q: &[u8]) -> bool {
    let exists = |n: u32| {
        find_fd(&img.view, n).is_some_and(|o| {
            o.dup_of == FD_NO_DUP
                && o.kind != fd_kind::REOPEN
                && o.kind != kckpt_image::tcp::TCP_CONN_FD_KIND
                && !crate::files::deferred(&img.view, n)
        })
    };
    rights_count(q) == usize::from(x.in_flight)
        && messages(q).flatten().all(|m| m.rights().all(exists))
}

/// Before anything changes: every kind-45 record's queue is well formed
/// (one line naming the socket otherwise).
pub fn check(img: &Image) {
    for r in primaries(img) {
        let x = record(img, &r);
        let q = map_queue(img, &r, &x);
        let ok = queue_ok(x.ty, q) && rights_ok(img, &x, q);
        unmap(q);
        if !ok {
            msg(img, &r, &x).s(": bad queued messages").fail();
        }
    }
}

/// Rebuild every kind-45 socket of the image (the steps of the module
/// documentation); new descriptors are parked at `floor` or above until
/// they move to their numbers.
pub fn restore_all(img: &Image, floor: usize) {
    let mut any = false;
    let mut relative = false;
    check(img);
    for r in primaries(img) {
        let x = record(img, &r);
        any = true;
        relative |= x.flags & (sock_flags::RELATIVE | sock_flags::PEER_RELATIVE) != 0;
    }
    if !any {
        return;
    }
    if relative {
        // Relative names are bound from the saved working directory
        // (entered again for the process after the descriptors).
        if let Some(r) = primaries(img).find(|r| {
            record(img, r).flags & (sock_flags::RELATIVE | sock_flags::PEER_RELATIVE) != 0
        }) {
            crate::unixsock::enter_cwd(img, &r);
        }
    }
    // A socket whose peer closed sends its queue as it is made: after
    // every other one (its queue may carry them).
    for r in primaries(img).filter(|r| record(img, r).peer_kind != peer_kind::GONE) {
        create(img, &r, floor);
    }
    for r in primaries(img).filter(|r| record(img, r).peer_kind == peer_kind::GONE) {
        create(img, &r, floor);
    }
    pending_all(img, floor);
    for r in primaries(img) {
        let x = record(img, &r);
        if x.peer_kind != peer_kind::GONE && !late(&x) {
            refill(img, &r, &x, floor);
        }
    }
    // A socket whose file was gone at dump, one at a time: its path leads
    // to it only while it is handled (several may have had one path).
    for r in primaries(img) {
        let x = record(img, &r);
        if !late(&x) {
            continue;
        }
        let made = detach_bind(img, &r, &x, r.fd as usize);
        refill(img, &r, &x, floor);
        for c in primaries(img) {
            let y = record(img, &c);
            if y.peer_kind == peer_kind::NAME && y.target == r.fd + 1 {
                reconnect(img, &c, &y);
            }
        }
        detach_finish(img, &r, &x, made);
    }
    for r in primaries(img) {
        let x = record(img, &r);
        let handled = x.target != 0
            && find_fd(&img.view, x.target - 1)
                .filter(|t| t.kind == UNIX_SOCKET_FD_KIND)
                .is_some_and(|t| late(&record(img, &t)));
        if x.peer_kind == peer_kind::NAME && !handled {
            reconnect(img, &r, &x);
        }
    }
    for r in primaries(img) {
        finish(img, &r);
    }
}

/// A socket bound to its path only in the third step (`DETACHED`, not
/// one end of a pair nor connected to a closed peer).
fn late(x: &UnixRecord<'_>) -> bool {
    x.flags & sock_flags::DETACHED != 0 && matches!(x.peer_kind, peer_kind::NONE | peer_kind::NAME)
}

/// A new socket of `x`'s type, parked.
fn new_socket(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, floor: usize) -> usize {
    let fd = socket(u32::from(x.ty)).unwrap_or_else(|e| fail(img, r, x, "socket", e));
    park(fd, floor).unwrap_or_else(|e| fail(img, r, x, "cannot park the socket", e))
}

fn create(img: &Image, r: &FdRecord, floor: usize) {
    let x = record(img, r);
    match x.peer_kind {
        peer_kind::PENDING => {} // `pending_all`, once every socket exists
        peer_kind::PAIR if r.peer < r.fd => {} // made with its peer
        peer_kind::PAIR => {
            let Some(p) = find_fd(&img.view, r.peer) else {
                fail(img, r, &x, "bad peer", Errno(EINVAL))
            };
            let y = record(img, &p);
            let (a, b) = if x.flags & sock_flags::ACCEPTED != 0 {
                let (acc, cli) = accepted(img, r, &x, &p, &y, floor);
                (acc, cli)
            } else if y.flags & sock_flags::ACCEPTED != 0 {
                let (acc, cli) = accepted(img, &p, &y, r, &x, floor);
                (cli, acc)
            } else {
                let ends = sys::fd_pair(Some(u32::from(x.ty)), g::O_CLOEXEC)
                    .unwrap_or_else(|e| fail(img, r, &x, "socketpair", e));
                let a = park(ends[0], floor).unwrap_or_else(|e| fail(img, r, &x, "park", e));
                let b = park(ends[1], floor).unwrap_or_else(|e| fail(img, r, &x, "park", e));
                bind_own(img, r, &x, a);
                bind_own(img, &p, &y, b);
                (a, b)
            };
            options(img, r, &x, a);
            options(img, &p, &y, b);
            place(a, r).unwrap_or_else(|e| fail(img, r, &x, "cannot move it to its number", e));
            place(b, &p).unwrap_or_else(|e| fail(img, &p, &y, "cannot move it to its number", e));
        }
        peer_kind::GONE => {
            // The peer is a socketpair end that sends the queue, then
            // closes (stream, seqpacket: both directions shut down).
            let ends = sys::fd_pair(Some(u32::from(x.ty)), g::O_CLOEXEC)
                .unwrap_or_else(|e| fail(img, r, &x, "socketpair", e));
            let a = park(ends[0], floor).unwrap_or_else(|e| fail(img, r, &x, "park", e));
            let b = park(ends[1], floor).unwrap_or_else(|e| fail(img, r, &x, "park", e));
            let detached = x.flags & sock_flags::DETACHED != 0;
            let made = if detached {
                detach_bind(img, r, &x, a)
            } else {
                bind_own(img, r, &x, a);
                Made::default()
            };
            options(img, r, &x, a);
            // At its number first: its queue may carry it (1.7).
            place(a, r).unwrap_or_else(|e| fail(img, r, &x, "cannot move it to its number", e));
            let q = map_queue(img, r, &x);
            let own = addr_of(x.name, x.name_kind == name_kind::ABSTRACT);
            for m in messages(q).flatten() {
                // A datagram from another named socket (before the
                // connect) comes from a socket of that name.
                if m.name_kind != name_kind::NONE && x.name_kind != name_kind::NONE {
                    let from = sender(img, r, &x, m.name_kind, m.name, floor);
                    send_all(img, r, &x, from.0, m.payload, Some(&own), m.rights);
                    if from.1 {
                        sys::close(from.0);
                    }
                } else {
                    send_all(img, r, &x, b, m.payload, None, m.rights);
                }
            }
            unmap(q);
            if detached {
                detach_finish(img, r, &x, made);
            }
            sys::close(b);
        }
        _ => {
            let fd = new_socket(img, r, &x, floor);
            bind_own(img, r, &x, fd);
            options(img, r, &x, fd);
            place(fd, r).unwrap_or_else(|e| fail(img, r, &x, "cannot move it to its number", e));
        }
    }
}

/// (1.7) Every client whose connection was not accepted yet, connected
/// to its listener again: all first places of the backlogs, then all
/// second ones..., so each listener's `accept` returns them in the saved
/// order.
fn pending_all(img: &Image, floor: usize) {
    let Some(last) = primaries(img)
        .map(|r| record(img, &r))
        .filter(|x| x.peer_kind == peer_kind::PENDING)
        .map(|x| x.queue_pos)
        .max()
    else {
        return;
    };
    for pos in 0..=last {
        for r in primaries(img) {
            let x = record(img, &r);
            if x.peer_kind == peer_kind::PENDING && x.queue_pos == pos {
                pending(img, &r, &x, floor);
            }
        }
    }
}

/// A new socket of `x` connected to its listener (a kind-41 record of
/// the same type), where its connection waits to be accepted; then put
/// at its number.
fn pending(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, floor: usize) {
    let Some(l) = find_fd(&img.view, x.listener).filter(|l| {
        l.kind == UNIX_LISTEN_FD_KIND
            && l.dup_of == FD_NO_DUP
            && l.args[0] & 0xffff_ffff == u64::from(x.ty)
            && l.args[0] & unix_flags::DETACHED == 0
    }) else {
        fail(img, r, x, "bad listener", Errno(EINVAL))
    };
    if l.args[0] & unix_flags::RELATIVE != 0 {
        crate::unixsock::enter_cwd(img, &l);
    }
    let lname = img.view.string(l.path).unwrap_or(&[]);
    let la = addr_of(lname, l.args[0] & unix_flags::ABSTRACT != 0);
    let c = new_socket(img, r, x, floor);
    bind_own(img, r, x, c);
    options(img, r, x, c);
    // Never blocks: a backlog that held the connections holds them again
    // (a full one answers EAGAIN, named below).
    let _ = sys::fcntl(c, F_SETFL, g::O_NONBLOCK as usize);
    if let Err(e) = with_addr(g::__NR_connect, c, &la) {
        fail(
            img,
            r,
            x,
            "cannot connect it again to its listener (its connection was not accepted yet)",
            e,
        )
    }
    place(c, r).unwrap_or_else(|e| fail(img, r, x, "cannot move it to its number", e));
}

/// The ends of a pair whose end `acc` was accepted on a listener of the
/// process: (accepted end, other end), both parked.
fn accepted(
    img: &Image,
    acc: &FdRecord,
    ax: &UnixRecord<'_>,
    cli: &FdRecord,
    cx: &UnixRecord<'_>,
    floor: usize,
) -> (usize, usize) {
    let Some(l) = find_fd(&img.view, ax.listener).filter(|l| l.kind == UNIX_LISTEN_FD_KIND) else {
        fail(img, acc, ax, "bad listener", Errno(EINVAL))
    };
    let lname = img.view.string(l.path).unwrap_or(&[]);
    let la = addr_of(lname, l.args[0] & unix_flags::ABSTRACT != 0);
    let c = new_socket(img, cli, cx, floor);
    bind_own(img, cli, cx, c);
    if let Err(e) = with_addr(g::__NR_connect, c, &la) {
        fail(img, acc, ax, "cannot connect to its listener again", e)
    }
    let a = call(
        g::__NR_accept4,
        [l.fd as usize, 0, 0, g::O_CLOEXEC as usize, 0, 0],
    )
    .unwrap_or_else(|e| fail(img, acc, ax, "cannot accept it on its listener again", e));
    let a = park(a, floor).unwrap_or_else(|e| fail(img, acc, ax, "park", e));
    (a, c)
}

/// Bind `fd` to the name of `x`, if it has one (a socket of [`late`]:
/// later; another `DETACHED` one: its file removed again at once).
fn bind_own(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, fd: usize) {
    if late(x) {
        return;
    }
    if x.flags & sock_flags::DETACHED != 0 && x.peer_kind != peer_kind::GONE {
        let made = detach_bind(img, r, x, fd);
        detach_finish(img, r, x, made);
        return;
    }
    match x.name_kind {
        name_kind::NONE => {}
        name_kind::ABSTRACT => {
            let a = addr_of(x.name, true);
            let mut bound = with_addr(g::__NR_bind, fd, &a);
            // (1.7) The dumped process's sockets that were in flight in
            // each other's queues outlive it until the kernel's garbage
            // collector of Unix sockets runs, which closing a Unix socket
            // starts (zdtm scm06): a pair made and closed, then a few
            // tries over half a second.
            for _ in 0..50 {
                if !matches!(bound, Err(e) if e.0 == EADDRINUSE) {
                    break;
                }
                crate::unixsock::collect_garbage();
                bound = with_addr(g::__NR_bind, fd, &a);
            }
            if let Err(e) = bound {
                let what = if e.0 == EADDRINUSE {
                    "cannot bind it to its abstract name again: another socket has it"
                } else {
                    "cannot bind it to its abstract name again"
                };
                fail(img, r, x, what, e)
            }
        }
        _ => bind_path(img, r, x, fd),
    }
}

fn bind_path(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, fd: usize) {
    let a = addr_of(x.name, false);
    let mode = (x.mode & SOCK_MODE_RECORDED != 0).then_some(x.mode & 0o777);
    let taken = |what: &str| -> ! {
        let mut m = msg(img, r, x);
        m.s(": cannot bind it to ")
            .push(x.name)
            .s(" again: ")
            .s(what);
        m.fail()
    };
    match bind_again(img, fd, &a, u32::from(x.ty), true, mode) {
        Ok(()) => {}
        Err(NotBound::OtherFile) => taken("another kind of file is there (not a socket)"),
        Err(NotBound::Live) => {
            taken("a live socket is bound there (is the dumped process still running?)")
        }
        Err(NotBound::Failed(what, e)) => fail(img, r, x, what, e),
        Err(NotBound::Bind(e)) => fail(img, r, x, "cannot bind it to its path again", e),
    }
}

/// Bind a `DETACHED` socket (its file was gone at dump) to its path:
/// whatever is there now is left alone, moved aside for the `bind`
/// ([`detach_finish`] removes the new file and puts it back).
fn detach_bind(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, fd: usize) -> Made {
    let a = addr_of(x.name, false);
    let mut bound = bind_mode(fd, &a, None);
    let mut made = Made::default();
    if matches!(bound, Err(e) if e.0 == ENOENT) {
        // Its directory was removed too: made again for the moment.
        let (mut b1, mut b2) = ([0u8; 128], [0u8; 128]);
        made = make_parents(paths(x.name, &mut b1, &mut b2).0);
        bound = bind_mode(fd, &a, None);
    }
    if matches!(bound, Err(e) if e.0 == EADDRINUSE) {
        let (mut b1, mut b2) = ([0u8; 128], [0u8; 128]);
        let (path, aside) = paths(x.name, &mut b1, &mut b2);
        if let Err(e) = rename(path, aside) {
            fail(
                img,
                r,
                x,
                "cannot move what is at its path aside to bind it",
                e,
            )
        }
        bound = bind_mode(fd, &a, None);
    }
    if let Err(e) = bound {
        fail(img, r, x, "cannot bind it to its path again", e)
    }
    made
}

/// After [`detach_bind`]: the new socket file removed, what was at the
/// path put back, directories made for it removed.
fn detach_finish(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, made: Made) {
    let (mut b1, mut b2) = ([0u8; 128], [0u8; 128]);
    let (path, aside) = paths(x.name, &mut b1, &mut b2);
    if let Err(e) = crate::gsys::unlink(path, 0) {
        fail(img, r, x, "cannot remove its socket file again", e)
    }
    match rename(aside, path) {
        Err(e) if e.0 != ENOENT => fail(img, r, x, "cannot put back what was at its path", e),
        _ => {}
    }
    remove_parents(path, made);
}

fn set_int(fd: usize, opt: usize, v: i32) -> Result<usize, Errno> {
    call(
        g::__NR_setsockopt,
        [fd, SOL_SOCKET, opt, &v as *const i32 as usize, 4, 0],
    )
}

/// The options of `x` set before any data moves: credentials passing,
/// timeouts, buffer sizes (the kernel doubles what it is given; beyond
/// the system's limit only CAP_NET_ADMIN gets more: a warning says so).
fn options(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, fd: usize) {
    for (bit, opt) in [
        (sock_flags::PASSCRED, SO_PASSCRED),
        (sock_flags::PASSSEC, SO_PASSSEC),
        (sock_flags::REUSEADDR, SO_REUSEADDR),
    ] {
        if x.flags & bit != 0 {
            set_opt(fd, opt).unwrap_or_else(|e| fail(img, r, x, "cannot set a socket option", e));
        }
    }
    for (opt, us) in [(SO_RCVTIMEO, x.rcvtimeo), (SO_SNDTIMEO, x.sndtimeo)] {
        if us != 0 {
            let tv: [i64; 2] = [(us / 1_000_000) as i64, (us % 1_000_000) as i64];
            call(
                g::__NR_setsockopt,
                [fd, SOL_SOCKET, opt, tv.as_ptr() as usize, 16, 0],
            )
            .unwrap_or_else(|e| fail(img, r, x, "cannot set a socket timeout", e));
        }
    }
    crate::inet::buffer_sizes(fd, x.rcvbuf, x.sndbuf, &|| msg(img, r, x));
}

/// `struct msghdr` (64-bit).
#[repr(C)]
struct MsgHdr {
    name: usize,
    namelen: u32,
    iov: usize,
    iovlen: usize,
    control: usize,
    controllen: usize,
    flags: i32,
}

/// A `cmsghdr` with room for [`MAX_RIGHTS`] descriptors (`SCM_RIGHTS`).
#[repr(C)]
struct Rights {
    len: usize,
    level: i32,
    ty: i32,
    fds: [u32; MAX_RIGHTS + 1],
}

/// `sendmsg` of `bytes` from `from` (to `addr`/`len` when not 0) with the
/// descriptors `rights` (little-endian u32 numbers, at most
/// [`MAX_RIGHTS`]): bytes sent.
fn send_rights(
    from: usize,
    bytes: &[u8],
    addr: usize,
    len: usize,
    rights: &[u8],
) -> Result<usize, Errno> {
    let n = (rights.len() / 4).min(MAX_RIGHTS);
    let mut c = Rights {
        len: 16 + 4 * n,
        level: SOL_SOCKET as i32,
        ty: SCM_RIGHTS,
        fds: [0; MAX_RIGHTS + 1],
    };
    for (k, f) in rights.chunks_exact(4).take(MAX_RIGHTS).enumerate() {
        c.fds[k] = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
    }
    let iov: [usize; 2] = [bytes.as_ptr() as usize, bytes.len()];
    let h = MsgHdr {
        name: addr,
        namelen: len as u32,
        iov: iov.as_ptr() as usize,
        iovlen: 1,
        control: &c as *const Rights as usize,
        // CMSG_SPACE: the length rounded up to 8.
        controllen: (c.len + 7) & !7,
        flags: 0,
    };
    call(
        g::__NR_sendmsg,
        [
            from,
            &h as *const MsgHdr as usize,
            MSG_DONTWAIT | MSG_NOSIGNAL,
            0,
            0,
            0,
        ],
    )
}

/// Send `bytes` from `from` (to `to` when given) without blocking: a
/// stream in as many pieces as it takes, a datagram whole; (1.7) the
/// descriptors `rights` with the first piece.
fn send_all(
    img: &Image,
    r: &FdRecord,
    x: &UnixRecord<'_>,
    from: usize,
    bytes: &[u8],
    to: Option<&Addr>,
    rights: &[u8],
) {
    let (addr, len) = match to {
        Some(a) => (a as *const Addr as usize, a.len),
        None => (0, 0),
    };
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        let sent = if at == 0 && !rights.is_empty() {
            send_rights(from, rest, addr, len, rights)
        } else {
            call(
                g::__NR_sendto,
                [
                    from,
                    rest.as_ptr() as usize,
                    rest.len(),
                    MSG_DONTWAIT | MSG_NOSIGNAL,
                    addr,
                    len,
                ],
            )
        };
        let n =
            sent.unwrap_or_else(|e| fail(img, r, x, "cannot queue its saved messages again", e));
        at += n;
        if x.ty != 1 || at >= bytes.len() {
            break;
        }
    }
}

/// Queue again what `x` (now at descriptor `fd`) had not read.
fn refill(img: &Image, r: &FdRecord, x: &UnixRecord<'_>, floor: usize) {
    let q = map_queue(img, r, x);
    if q.is_empty() {
        return;
    }
    let own = addr_of(x.name, x.name_kind == name_kind::ABSTRACT);
    for m in messages(q).flatten() {
        if x.peer_kind == peer_kind::PAIR {
            send_all(img, r, x, r.peer as usize, m.payload, None, m.rights);
            continue;
        }
        if x.peer_kind == peer_kind::GONE {
            continue; // sent by the closing end (`create`)
        }
        if x.name_kind == name_kind::NONE || u32::from(x.ty) != SOCK_DGRAM {
            msg(img, r, x)
                .s(": queued messages on a socket nothing can send to")
                .fail();
        }
        let from = sender(img, r, x, m.name_kind, m.name, floor);
        send_all(img, r, x, from.0, m.payload, Some(&own), m.rights);
        if from.1 {
            sys::close(from.0);
        }
    }
    unmap(q);
}

/// A datagram socket bound to a sender's name: (descriptor, whether it
/// is a new one to close after the send).
fn sender(
    img: &Image,
    r: &FdRecord,
    x: &UnixRecord<'_>,
    kind: u8,
    name: &[u8],
    floor: usize,
) -> (usize, bool) {
    let s = socket(SOCK_DGRAM).unwrap_or_else(|e| fail(img, r, x, "socket", e));
    let s = park(s, floor).unwrap_or_else(|e| fail(img, r, x, "park", e));
    if kind == name_kind::NONE {
        return (s, true);
    }
    let abstract_name = kind == name_kind::ABSTRACT;
    let a = addr_of(name, abstract_name);
    match with_addr(g::__NR_bind, s, &a) {
        Ok(_) => {
            if !abstract_name {
                let (mut b1, mut b2) = ([0u8; 128], [0u8; 128]);
                let (path, _) = paths(name, &mut b1, &mut b2);
                let _ = crate::gsys::unlink(path, 0);
            }
            (s, true)
        }
        Err(e) if e.0 == ENOENT && !abstract_name => {
            // The sender's directory was removed: made for the moment.
            let (mut b1, mut b2) = ([0u8; 128], [0u8; 128]);
            let (path, _) = paths(name, &mut b1, &mut b2);
            let made = make_parents(path);
            let bound = with_addr(g::__NR_bind, s, &a);
            let _ = crate::gsys::unlink(path, 0);
            remove_parents(path, made);
            if let Err(e) = bound {
                fail(
                    img,
                    r,
                    x,
                    "cannot bind a socket to the name of a queued message's sender",
                    e,
                )
            }
            (s, true)
        }
        Err(e) if e.0 == EADDRINUSE && abstract_name => {
            // The process's own socket of that name sends it.
            sys::close(s);
            let own = primaries(img).find(|o| {
                let y = record(img, o);
                y.name_kind == name_kind::ABSTRACT
                    && y.name == name
                    && u32::from(y.ty) == SOCK_DGRAM
            });
            match own {
                Some(o) => (o.fd as usize, false),
                None => {
                    let mut m = msg(img, r, x);
                    m.s(": a queued message came from @")
                        .push(name)
                        .s(", a name another socket holds now");
                    m.fail()
                }
            }
        }
        Err(e) if e.0 == EADDRINUSE => {
            // The path is taken (the sender's own file, restored or
            // not): moved aside for the bind, then put back.
            let (mut b1, mut b2) = ([0u8; 128], [0u8; 128]);
            let (path, aside) = paths(name, &mut b1, &mut b2);
            if let Err(e) = rename(path, aside) {
                fail(
                    img,
                    r,
                    x,
                    "cannot bind a socket to the name of a queued message's sender",
                    e,
                )
            }
            let bound = with_addr(g::__NR_bind, s, &a);
            let _ = crate::gsys::unlink(path, 0);
            if let Err(e) = rename(aside, path) {
                fail(img, r, x, "cannot put a sender's socket file back", e)
            }
            if let Err(e) = bound {
                fail(
                    img,
                    r,
                    x,
                    "cannot bind a socket to the name of a queued message's sender",
                    e,
                )
            }
            (s, true)
        }
        Err(e) => fail(
            img,
            r,
            x,
            "cannot bind a socket to the name of a queued message's sender",
            e,
        ),
    }
}

/// `connect` a datagram socket to its peer's name again.
fn reconnect(img: &Image, r: &FdRecord, x: &UnixRecord<'_>) {
    let a = addr_of(x.peer_name, x.peer_abstract);
    if let Err(e) = with_addr(g::__NR_connect, r.fd as usize, &a) {
        let mut m = msg(img, r, x);
        m.s(": cannot connect it again to ")
            .s(if x.peer_abstract { "@" } else { "" })
            .push(x.peer_name);
        if x.flags & sock_flags::OUTSIDE != 0 {
            m.s(" (outside the dump); left unconnected").errno(e).warn();
            return;
        }
        m.errno(e).fail()
    }
}

/// `SO_PEEK_OFF`, `shutdown`.
fn finish(img: &Image, r: &FdRecord) {
    let x = record(img, r);
    let fd = r.fd as usize;
    if x.peek_off >= 0 {
        set_int(fd, SO_PEEK_OFF, x.peek_off)
            .unwrap_or_else(|e| fail(img, r, &x, "cannot set SO_PEEK_OFF", e));
    }
    let how = match x.shutdown & (shut::RCV | shut::SEND) {
        shut::RCV => 0,
        shut::SEND => 1,
        0 => return,
        _ => 2,
    };
    if let Err(e) = call(g::__NR_shutdown, [fd, how, 0, 0, 0, 0]) {
        // A socket whose peer closed is shut down already.
        if x.peer_kind != peer_kind::GONE {
            fail(img, r, &x, "cannot shut it down again", e)
        }
    }
}
