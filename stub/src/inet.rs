//! TCP listeners and UDP sockets over IPv4 and IPv6 (format 1.5, fd kinds
//! 42 and 43, `kckpt_image::inet`).
//!
//! [`check`], before anything changes: every bound socket's address is
//! tried with a probe socket (same family, type, `SO_REUSEADDR` for TCP,
//! the saved `SO_REUSEPORT` and `IPV6_V6ONLY`), so a port taken since the
//! dump refuses the restore with one line naming it. [`socket`]: `socket`,
//! the options that matter for `bind` (`SO_REUSEADDR` on for a TCP
//! listener's `bind`, as a restarted server would, so connections of the
//! dumped process in `TIME_WAIT` do not hold the port; then the saved
//! value), `bind`, the other options, then `listen(backlog)` or, for a
//! connected UDP socket, `connect`.
//!
//! (1.6) A TCP socket neither listening nor connected stops after the
//! options (bound when it was). A UDP socket's queued datagrams are sent
//! again, in order, before its `connect`: each from a helper socket bound
//! to its sender's address and port (`SO_REUSEADDR`), from the socket
//! itself when it sent the datagram to itself, or from the sender when it
//! is a UDP socket of the image restored before; after each the stub waits
//! until the socket's receive memory (`SO_MEMINFO`) grew, so they queue in
//! their order. [`check`] reads every datagram header and binds a helper
//! to every sender first: a sender's port taken at restore refuses it in
//! one line, before anything changes.
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use kckpt_image::inet::{inet_opts, InetRecord, AF_INET, INET_LISTEN_FD_KIND, UDP_FD_KIND};
use kckpt_image::inet::{Datagram, DATAGRAM_HEADER_LEN, MAX_DATAGRAM};
use kckpt_image::inet::{INET_RECORD_LEN, STATE_CLOSE, STATE_ESTABLISHED, STATE_LISTEN};
use kckpt_image::tcp::TCP_CONN_FD_KIND;
use kckpt_image::{FdRecord, FD_NO_DUP};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::sockopts::*;
use crate::sys::{self, check as checked, Errno, SysResult};

const IP_TOS: usize = 1;
const IP_TTL: usize = 2;
const IPV6_UNICAST_HOPS: usize = 16;
const IPV6_TCLASS: usize = 67;
const IP_PKTINFO: usize = 8;
const IP_FREEBIND: usize = 15;
const IPV6_RECVPKTINFO: usize = 49;
const TCP_NODELAY: usize = 1;
const TCP_CORK: usize = 3;
const TCP_KEEPIDLE: usize = 4;
const TCP_KEEPINTVL: usize = 5;
const TCP_KEEPCNT: usize = 6;
const UDP_CORK: usize = 1;
const IPV6_V6ONLY: usize = 26;

pub(crate) fn call(nr: u32, a: [usize; 6]) -> SysResult {
    // SAFETY: every caller passes integers or pointers to live values the
    // kernel only reads (or, for getsockopt, writes) within their given size.
    checked(unsafe { raw_syscall(nr as usize, a) })
}

/// `getsockopt(fd, level, opt)` into `buf`: how many bytes the kernel
/// wrote.
pub(crate) fn get_bytes(fd: usize, level: usize, opt: usize, buf: &mut [u8]) -> SysResult {
    let mut len = buf.len() as u32;
    call(
        g::__NR_getsockopt,
        [
            fd,
            level,
            opt,
            buf.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
            0,
        ],
    )?;
    Ok(len as usize)
}

/// The record of `r` (validated with the image: `files::validate`).
fn record(img: &Image, r: &FdRecord) -> InetRecord {
    let bytes = img.view.string(r.path).unwrap_or(&[]);
    match InetRecord::parse(r.kind, bytes) {
        Some(x) => x,
        None => msg(img, r, None).s(": bad socket record").fail(),
    }
}

/// `IMAGE: fd N (TCP listener ADDR)`.
pub fn msg(img: &Image, r: &FdRecord, x: Option<&InetRecord>) -> Msg {
    let mut m = Msg::new();
    m.push(img.path).s(": fd ").dec(r.fd.into());
    let bytes = img.view.string(r.path).unwrap_or(&[]);
    let bytes = match r.kind {
        TCP_CONN_FD_KIND => bytes.get(..INET_RECORD_LEN).unwrap_or(&[]),
        _ => bytes,
    };
    if let Some(x) = x.copied().or_else(|| InetRecord::parse(r.kind, bytes)) {
        m.s(" (");
        if r.kind == TCP_CONN_FD_KIND {
            m.s("TCP connection ");
            addr(&mut m, x.family, &x.local, x.local_port);
            m.s(" -> ");
            addr(&mut m, x.family, &x.peer, x.peer_port);
        } else {
            describe(&mut m, r.kind == INET_LISTEN_FD_KIND, &x);
        }
        m.s(")");
    }
    m
}

fn describe(m: &mut Msg, tcp: bool, x: &InetRecord) {
    if tcp && x.state == STATE_LISTEN {
        m.s("TCP listener ");
    } else if tcp {
        m.s("TCP socket");
        if x.local_port == 0 {
            m.s(", not bound");
            return;
        }
        m.s(" ");
        addr(m, x.family, &x.local, x.local_port);
        m.s(", bound, not listening");
        return;
    } else {
        m.s("UDP socket");
        if x.local_port == 0 {
            m.s(", not bound");
            return;
        }
        m.s(" ");
    }
    addr(m, x.family, &x.local, x.local_port);
    if x.state == STATE_ESTABLISHED {
        m.s(" -> ");
        addr(m, x.family, &x.peer, x.peer_port);
    }
}

/// `127.0.0.1:80`, `[0:0:0:0:0:0:0:1]:80`.
pub(crate) fn addr(m: &mut Msg, family: u16, a: &[u8; 16], port: u16) {
    if family == AF_INET {
        for (i, b) in a[..4].iter().enumerate() {
            if i > 0 {
                m.s(".");
            }
            m.dec(u64::from(*b));
        }
    } else {
        m.s("[");
        for i in 0..8 {
            if i > 0 {
                m.s(":");
            }
            let w = u16::from_be_bytes([a[2 * i], a[2 * i + 1]]);
            let mut d = [0u8; 4];
            let mut n = 0;
            let mut v = w;
            loop {
                d[3 - n] = b"0123456789abcdef"[usize::from(v & 15)];
                n += 1;
                v >>= 4;
                if v == 0 {
                    break;
                }
            }
            m.push(&d[4 - n..]);
        }
        m.s("]");
    }
    m.s(":").dec(u64::from(port));
}

/// `sockaddr_in` or `sockaddr_in6` and its length.
pub(crate) fn sockaddr(family: u16, a: &[u8; 16], port: u16) -> ([u8; 28], usize) {
    let mut s = [0u8; 28];
    s[0..2].copy_from_slice(&family.to_ne_bytes());
    s[2..4].copy_from_slice(&port.to_be_bytes());
    if family == AF_INET {
        s[4..8].copy_from_slice(&a[..4]);
        (s, 16)
    } else {
        s[8..24].copy_from_slice(a);
        (s, 28)
    }
}

pub(crate) fn set(fd: usize, level: usize, opt: usize, v: i32) -> SysResult {
    call(
        g::__NR_setsockopt,
        [fd, level, opt, &v as *const i32 as usize, 4, 0],
    )
}

/// An `int` socket option.
pub(crate) fn get(fd: usize, level: usize, opt: usize) -> Result<i32, Errno> {
    let mut v = [0u8; 4];
    get_bytes(fd, level, opt, &mut v)?;
    Ok(i32::from_ne_bytes(v))
}

/// The protocol `socket` takes for record `r`: (1.9) UDP-Lite's or
/// ICMP's (`args[1]` of a UDP record), else 0 (TCP, UDP).
fn protocol(r: &FdRecord) -> usize {
    if r.kind == UDP_FD_KIND {
        r.args[1] as usize
    } else {
        0
    }
}

/// What failed when `socket` fails for record `r`: (1.9) an ICMP (ping)
/// socket needs this user's group in `net.ipv4.ping_group_range`.
fn socket_call(r: &FdRecord) -> &'static str {
    match r.args[1] {
        kckpt_image::inet::IPPROTO_ICMP | kckpt_image::inet::IPPROTO_ICMPV6
            if r.kind == UDP_FD_KIND =>
        {
            "socket (an ICMP (ping) socket: net.ipv4.ping_group_range must hold this group)"
        }
        _ => "socket",
    }
}

/// A new socket of `x`'s family and `kind`'s type (`proto` its protocol)
/// with the options a `bind` depends on; `reuse`: `SO_REUSEADDR` on.
fn new_socket(kind: u32, x: &InetRecord, reuse: bool, proto: usize) -> SysResult {
    let ty = if kind == INET_LISTEN_FD_KIND {
        1u32 // SOCK_STREAM
    } else {
        2u32 // SOCK_DGRAM
    };
    let fd = call(
        g::__NR_socket,
        [
            usize::from(x.family),
            (ty | g::O_CLOEXEC) as usize,
            proto,
            0,
            0,
            0,
        ],
    )?;
    let on = |bit| i32::from(x.opts & bit != 0);
    let r = set(fd, SOL_SOCKET, SO_REUSEADDR, i32::from(reuse))
        .and_then(|_| set(fd, SOL_SOCKET, SO_REUSEPORT, on(inet_opts::REUSEPORT)))
        .and_then(|_| match x.family {
            AF_INET => Ok(0),
            _ => set(fd, IPPROTO_IPV6, IPV6_V6ONLY, on(inet_opts::V6ONLY)),
        })
        .and_then(|_| match x.opts & inet_opts::FREEBIND {
            0 => Ok(0),
            _ => set(fd, IPPROTO_IP, IP_FREEBIND, 1),
        })
        .and_then(|_| bind_to_device(fd, x));
    if let Err(e) = r {
        sys::close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// `SO_BINDTODEVICE` to the saved device, if any (before `bind`: the
/// device is part of what a port conflicts with; unprivileged since Linux
/// 5.7 on a socket not bound to a device yet).
pub(crate) fn bind_to_device(fd: usize, x: &InetRecord) -> SysResult {
    if x.opts & inet_opts::BINDTODEVICE == 0 {
        return Ok(0);
    }
    let len = x.device.iter().position(|&c| c == 0).unwrap_or(16);
    call(
        g::__NR_setsockopt,
        [
            fd,
            SOL_SOCKET,
            SO_BINDTODEVICE,
            x.device.as_ptr() as usize,
            len,
            0,
        ],
    )
}

pub(crate) fn bind(fd: usize, x: &InetRecord) -> SysResult {
    let (a, len) = sockaddr(x.family, &x.local, x.local_port);
    call(g::__NR_bind, [fd, a.as_ptr() as usize, len, 0, 0, 0])
}

fn bind_failed(img: &Image, r: &FdRecord, x: &InetRecord, e: Errno) -> ! {
    let mut m = msg(img, r, Some(x));
    m.s(": cannot bind ");
    addr(&mut m, x.family, &x.local, x.local_port);
    if e.0 == linux_raw_sys::errno::EADDRINUSE {
        m.s(" again: the port is in use (by the dumped process still running, another program, or connections of the dumped process still closing when it had no SO_REUSEADDR)");
    }
    crate::netns::explain(&mut m);
    m.errno(e).fail()
}

/// Before anything changes: every socket record is valid, and every bound
/// one's address can be bound again now.
pub fn check(img: &Image) {
    let inet =
        |r: &FdRecord| r.dup_of == FD_NO_DUP && matches!(r.kind, INET_LISTEN_FD_KIND | UDP_FD_KIND);
    for r in img.view.fds.iter().filter(inet) {
        let x = record(img, &r);
        if x.local_port == 0 {
            continue;
        }
        let tcp = r.kind == INET_LISTEN_FD_KIND;
        let reuse = tcp || x.opts & inet_opts::REUSEADDR != 0;
        let probe = new_socket(r.kind, &x, reuse, protocol(&r)).unwrap_or_else(|e| {
            msg(img, &r, Some(&x))
                .s(": ")
                .s(socket_call(&r))
                .errno(e)
                .fail()
        });
        let bound = bind(probe, &x);
        sys::close(probe);
        if let Err(e) = bound {
            bind_failed(img, &r, &x, e)
        }
        each_datagram(img, &r, &x, |d, _| {
            if from_itself(&x, &d) {
                return;
            }
            let helper = sender(&x, &d, protocol(&r)).unwrap_or_else(|e| {
                let mut m = msg(img, &r, Some(&x));
                m.s(": cannot send its queued datagrams again from ");
                addr(&mut m, d.family, &d.addr, d.port);
                if e.0 == linux_raw_sys::errno::EADDRINUSE {
                    m.s(": the sender's port is in use");
                } else if e.0 == linux_raw_sys::errno::EACCES {
                    m.s(": binding the sender's port (below 1024) needs privilege");
                }
                m.errno(e).fail()
            });
            sys::close(helper);
        });
    }
}

/// Calls `f` with each queued datagram's header and its data's image
/// offset (relative to the image), every header read and checked first
/// (a bad one refuses the restore).
fn each_datagram(img: &Image, r: &FdRecord, x: &InetRecord, mut f: impl FnMut(Datagram, u64)) {
    let bad = || -> ! { msg(img, r, Some(x)).s(": bad queued datagram data").fail() };
    let mut at = 0u64;
    for _ in 0..x.datagrams {
        let mut h = [0u8; DATAGRAM_HEADER_LEN];
        let hl = DATAGRAM_HEADER_LEN as u64;
        if at + hl > r.data_len {
            bad();
        }
        match sys::pread(img.fd, &mut h, img.at(r.data_offset + at)) {
            Ok(n) if n == DATAGRAM_HEADER_LEN => {}
            _ => bad(),
        }
        let Some(d) = Datagram::parse(x.family, &h) else {
            bad()
        };
        if at + hl + u64::from(d.len) > r.data_len {
            bad();
        }
        f(d, r.data_offset + at + hl);
        at += hl + u64::from(d.len);
    }
    if at != r.data_len {
        bad();
    }
}

/// Whether the socket sent datagram `d` to itself (from its own port, and
/// its own address or any when bound to any).
fn from_itself(x: &InetRecord, d: &Datagram) -> bool {
    d.port == x.local_port && (d.addr == x.local || x.local.iter().all(|&b| b == 0))
}

/// A helper socket bound to datagram `d`'s sender.
fn sender(x: &InetRecord, d: &Datagram, proto: usize) -> SysResult {
    let fd = call(
        g::__NR_socket,
        [
            usize::from(x.family),
            (2 | g::O_CLOEXEC) as usize,
            proto,
            0,
            0,
            0,
        ],
    )?;
    let (a, len) = sockaddr(x.family, &d.addr, d.port);
    let r = set(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        .and_then(|_| call(g::__NR_bind, [fd, a.as_ptr() as usize, len, 0, 0, 0]));
    if let Err(e) = r {
        sys::close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// The descriptor of a UDP socket of the image restored before `r` (so
/// bound already, at its number) that sent datagram `d`, not corked: the
/// datagram is sent from it (a helper could not bind its port).
fn restored_sender(img: &Image, r: &FdRecord, d: &Datagram) -> Option<usize> {
    for o in img.view.fds.iter() {
        if o.fd == r.fd {
            return None; // the ones after are not bound yet
        }
        // (UDP and UDP-Lite ports are apart.)
        if o.kind != UDP_FD_KIND || o.dup_of != FD_NO_DUP || protocol(&o) != protocol(r) {
            continue;
        }
        let Some(y) = InetRecord::parse(o.kind, img.view.string(o.path).unwrap_or(&[])) else {
            continue;
        };
        let any = y.local.iter().all(|&b| b == 0);
        if y.family == d.family
            && y.local_port == d.port
            && (y.local == d.addr || any)
            && y.opts & inet_opts::CORK == 0
        {
            return Some(o.fd as usize);
        }
    }
    None
}

/// `SO_MEMINFO`'s receive memory (`SK_MEMINFO_RMEM_ALLOC`) of `fd`.
fn rmem(fd: usize) -> u32 {
    let mut v = [0u8; 36];
    match get_bytes(fd, SOL_SOCKET, SO_MEMINFO, &mut v) {
        Ok(n) if n >= 4 => u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
        _ => 0,
    }
}

/// `SOL_UDPLITE` and its options (`linux/udp.h`).
const SOL_UDPLITE: usize = 136;
const UDPLITE_SEND_CSCOV: usize = 10;
const UDPLITE_RECV_CSCOV: usize = 11;

/// Send the queued datagrams of `x` to socket `fd` again, in order.
fn requeue(img: &Image, r: &FdRecord, x: &InetRecord, fd: usize) {
    if x.datagrams == 0 {
        return;
    }
    let size = MAX_DATAGRAM as usize + 1;
    let prot = g::PROT_READ | g::PROT_WRITE;
    let flags = g::MAP_PRIVATE | g::MAP_ANONYMOUS;
    // SAFETY: a new anonymous mapping at an address the kernel picks.
    let buf = unsafe { sys::mmap(0, size, prot, flags, usize::MAX, 0) }
        .unwrap_or_else(|e| msg(img, r, Some(x)).s(": mmap").errno(e).fail());
    // SAFETY: the mapping above, `size` bytes, used only here.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, size) };
    let mut n = 0u64;
    each_datagram(img, r, x, |d, off| {
        let fail = |what: &str, e: Errno| -> ! {
            let mut m = msg(img, r, Some(x));
            m.s(": queued datagram ").dec(n + 1).s(" from ");
            addr(&mut m, d.family, &d.addr, d.port);
            m.s(": ").s(what).errno(e).fail()
        };
        let body = &mut buf[..d.len as usize];
        match sys::pread(img.fd, body, img.at(off)) {
            Ok(got) if got == body.len() => {}
            Ok(_) => fail("short read", Errno(linux_raw_sys::errno::EIO)),
            Err(e) => fail("read", e),
        }
        // To the socket's own address, or, bound to any, to the sender's
        // (a local address: the socket gets it with that destination).
        let own = from_itself(x, &d);
        let to = if x.local.iter().all(|&b| b == 0) {
            &d.addr
        } else {
            &x.local
        };
        let (a, len) = sockaddr(x.family, to, x.local_port);
        let restored = if own {
            None
        } else {
            restored_sender(img, r, &d)
        };
        let from = match restored {
            _ if own => fd,
            Some(other) => other,
            None => sender(x, &d, protocol(r)).unwrap_or_else(|e| fail("bind", e)),
        };
        let before = rmem(fd);
        let sent = call(
            g::__NR_sendto,
            [
                from,
                body.as_ptr() as usize,
                body.len(),
                0,
                a.as_ptr() as usize,
                len,
            ],
        );
        if !own && restored.is_none() {
            sys::close(from);
        }
        if let Err(e) = sent {
            fail("sendto", e);
        }
        // Queued before the next one is sent (loopback delivers through a
        // per-CPU queue).
        let mut waited = 0;
        while rmem(fd) == before {
            if waited == 1000 {
                fail(
                    "did not arrive (a receive buffer too small?)",
                    Errno(linux_raw_sys::errno::ETIMEDOUT),
                );
            }
            crate::ksys::sleep_ms(1);
            waited += 1;
        }
        n += 1;
    });
    // SAFETY: the mapping above; nothing uses it any more.
    let _ = unsafe { sys::munmap(buf.as_ptr() as usize, size) };
}

/// Does TCP listener `r` (`x`, without `SO_REUSEPORT`) share its port
/// with a listener of the image that has `SO_REUSEPORT`?
fn shared_port(img: &Image, r: &FdRecord, x: &InetRecord) -> bool {
    let listener = |o: &FdRecord| o.kind == INET_LISTEN_FD_KIND && o.dup_of == FD_NO_DUP;
    listener(r)
        && x.state == STATE_LISTEN
        && x.opts & inet_opts::REUSEPORT == 0
        && img.view.fds.iter().filter(listener).any(|o| {
            let y = record(img, &o);
            o.fd != r.fd
                && y.state == STATE_LISTEN
                && y.family == x.family
                && y.local_port == x.local_port
                && y.opts & inet_opts::REUSEPORT != 0
        })
}

/// Once every descriptor exists, right before the process resumes: the
/// listeners that bound with `SO_REUSEPORT` for a port they share
/// ([`socket`]) get their saved value (off) back.
pub fn finish(img: &Image) {
    for r in img.view.fds.iter() {
        let x = match r.kind {
            INET_LISTEN_FD_KIND if r.dup_of == FD_NO_DUP => record(img, &r),
            _ => continue,
        };
        if shared_port(img, &r, &x) {
            set(r.fd as usize, SOL_SOCKET, SO_REUSEPORT, 0).unwrap_or_else(|e| {
                msg(img, &r, Some(&x))
                    .s(": cannot turn SO_REUSEPORT off")
                    .errno(e)
                    .fail()
            });
        }
    }
}

/// The socket of record `r` (not yet at its number).
pub fn socket(img: &Image, r: &FdRecord) -> usize {
    let x = record(img, r);
    let tcp = r.kind == INET_LISTEN_FD_KIND;
    let fail =
        |what: &str, e: Errno| -> ! { msg(img, r, Some(&x)).s(": ").s(what).errno(e).fail() };
    let reuse = x.opts & inet_opts::REUSEADDR != 0;
    // A port shared with SO_REUSEPORT by listeners of the image, one of
    // which turned the option off after it bound: every one binds and
    // listens with it on, then [`finish`] puts the saved value back.
    let mut bound = x;
    if shared_port(img, r, &x) {
        bound.opts |= inet_opts::REUSEPORT;
    }
    let fd = new_socket(r.kind, &bound, tcp || reuse, protocol(r))
        .unwrap_or_else(|e| fail(socket_call(r), e));
    // (1.9) UDP-Lite's checksum coverage (0: the whole datagram).
    if protocol(r) == kckpt_image::inet::IPPROTO_UDPLITE as usize {
        let (send, recv) = kckpt_image::inet::udplite_cscov(r.args);
        for (opt, v) in [(UDPLITE_SEND_CSCOV, send), (UDPLITE_RECV_CSCOV, recv)] {
            if v != 0 {
                set(fd, SOL_UDPLITE, opt, i32::from(v))
                    .unwrap_or_else(|e| fail("UDP-Lite coverage", e));
            }
        }
    }
    if x.local_port != 0 {
        if let Err(e) = bind(fd, &x) {
            bind_failed(img, r, &x, e)
        }
    }
    options(img, r, &x, fd, tcp);
    requeue(img, r, &x, fd);
    // (1.7) A UDP socket shut down, once its datagrams are back (the
    // kernel sets the bits, connected or not; ENOTCONN for the latter).
    let how = match x.opts & (inet_opts::SHUT_RD | inet_opts::SHUT_WR) {
        0 => None,
        inet_opts::SHUT_RD => Some(0),
        inet_opts::SHUT_WR => Some(1),
        _ => Some(2),
    };
    if x.state == STATE_LISTEN {
        call(g::__NR_listen, [fd, x.backlog as usize, 0, 0, 0, 0])
            .unwrap_or_else(|e| fail("listen", e));
    } else if x.state == STATE_CLOSE {
        // Not listening, not connected: bound (above) or not.
    } else if x.state == STATE_ESTABLISHED {
        let (a, len) = sockaddr(x.family, &x.peer, x.peer_port);
        call(g::__NR_connect, [fd, a.as_ptr() as usize, len, 0, 0, 0])
            .unwrap_or_else(|e| fail("connect", e));
    }
    if let Some(how) = how {
        match call(g::__NR_shutdown, [fd, how, 0, 0, 0, 0]) {
            Ok(_) | Err(Errno(linux_raw_sys::errno::ENOTCONN)) => {}
            Err(e) => fail("shutdown", e),
        }
    }
    fd
}

/// The options of record `r` (`x`) other than those `bind` depends on,
/// on socket `fd`; `tcp`: a TCP socket.
pub(crate) fn options(img: &Image, r: &FdRecord, x: &InetRecord, fd: usize, tcp: bool) {
    let fail = |what: &str, e: Errno| -> ! { msg(img, r, Some(x)).s(": ").s(what).errno(e).fail() };
    let on = |bit| i32::from(x.opts & bit != 0);
    let mut opts = [
        (SOL_SOCKET, SO_REUSEADDR, on(inet_opts::REUSEADDR)),
        (SOL_SOCKET, SO_KEEPALIVE, on(inet_opts::KEEPALIVE)),
        (SOL_SOCKET, SO_BROADCAST, on(inet_opts::BROADCAST)),
        (SOL_SOCKET, SO_PASSCRED, on(inet_opts::PASSCRED)),
        (IPPROTO_UDP, UDP_CORK, on(inet_opts::CORK)),
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
    ];
    if tcp {
        opts[4] = (IPPROTO_TCP, TCP_CORK, on(inet_opts::CORK));
        opts[5] = (IPPROTO_TCP, TCP_NODELAY, on(inet_opts::NODELAY));
        let keep = [
            (TCP_KEEPIDLE, x.keepidle),
            (TCP_KEEPINTVL, x.keepintvl),
            (TCP_KEEPCNT, x.keepcnt),
        ];
        for (i, (opt, v)) in keep.into_iter().enumerate() {
            if v != 0 {
                opts[6 + i] = (IPPROTO_TCP, opt, v as i32);
            }
        }
    }
    for (level, opt, v) in opts {
        if opt != 0 && (v != 0 || opt == SO_REUSEADDR) {
            set(fd, level, opt, v).unwrap_or_else(|e| fail("cannot set a socket option", e));
        }
    }
    // IP_TOS before SO_PRIORITY (setting the first sets the second).
    let more = [
        (
            inet_opts::TOS,
            IPPROTO_IP,
            IP_TOS,
            i32::from(x.tos),
            "IP_TOS",
        ),
        (
            inet_opts::TTL,
            IPPROTO_IP,
            IP_TTL,
            i32::from(x.ttl),
            "IP_TTL",
        ),
        (
            inet_opts::PRIORITY,
            SOL_SOCKET,
            SO_PRIORITY,
            x.priority as i32,
            "SO_PRIORITY",
        ),
        (
            inet_opts::TCLASS,
            IPPROTO_IPV6,
            IPV6_TCLASS,
            i32::from(x.tclass),
            "IPV6_TCLASS",
        ),
        (
            inet_opts::HOPS,
            IPPROTO_IPV6,
            IPV6_UNICAST_HOPS,
            i32::from(x.hops),
            "IPV6_UNICAST_HOPS",
        ),
        (
            inet_opts::OOBINLINE,
            SOL_SOCKET,
            SO_OOBINLINE,
            1,
            "SO_OOBINLINE",
        ),
        (
            inet_opts::DONTROUTE,
            SOL_SOCKET,
            SO_DONTROUTE,
            1,
            "SO_DONTROUTE",
        ),
        (
            inet_opts::NO_CHECK,
            SOL_SOCKET,
            SO_NO_CHECK,
            1,
            "SO_NO_CHECK",
        ),
        (inet_opts::PKTINFO, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO"),
        (
            inet_opts::RECVPKTINFO,
            IPPROTO_IPV6,
            IPV6_RECVPKTINFO,
            1,
            "IPV6_RECVPKTINFO",
        ),
        (
            inet_opts::RCVLOWAT,
            SOL_SOCKET,
            SO_RCVLOWAT,
            x.rcvlowat as i32,
            "SO_RCVLOWAT",
        ),
        (
            inet_opts::MARK,
            SOL_SOCKET,
            SO_MARK,
            x.mark as i32,
            "SO_MARK",
        ),
    ];
    for (bit, level, opt, v, name) in more {
        if x.opts & bit != 0 {
            if let Err(e) = set(fd, level, opt, v) {
                let mut m = msg(img, r, Some(x));
                m.s(": cannot set ").s(name).errno(e).fail()
            }
        }
    }
    if x.opts & inet_opts::LINGER != 0 {
        let l: [i32; 2] = [1, x.linger as i32];
        call(
            g::__NR_setsockopt,
            [fd, SOL_SOCKET, SO_LINGER, l.as_ptr() as usize, 8, 0],
        )
        .unwrap_or_else(|e| fail("cannot set SO_LINGER", e));
    }
    for (opt, us) in [(SO_RCVTIMEO, x.rcvtimeo), (SO_SNDTIMEO, x.sndtimeo)] {
        if us != 0 {
            let tv: [i64; 2] = [(us / 1_000_000) as i64, (us % 1_000_000) as i64];
            call(
                g::__NR_setsockopt,
                [fd, SOL_SOCKET, opt, tv.as_ptr() as usize, 16, 0],
            )
            .unwrap_or_else(|e| fail("cannot set a socket timeout", e));
        }
    }
    // A connection's sizes come after its send queue is written again
    // (`tcp::send_queues`): they may be smaller than the queue.
    if r.kind != TCP_CONN_FD_KIND {
        buffers(img, r, x, fd);
    }
}

/// The saved buffer sizes `rcv` and `snd` (what `getsockopt` gave, 0:
/// not set by the program) on socket `fd`, Unix or inet; `named` starts a
/// message about the socket. The kernel doubles what it is given; beyond
/// the system's limit only CAP_NET_ADMIN (the FORCE options) gets more,
/// and a smaller size than saved is a warning.
pub(crate) fn buffer_sizes(fd: usize, rcv: u32, snd: u32, named: &dyn Fn() -> Msg) {
    for (opt, force, v, name) in [
        (SO_RCVBUF, SO_RCVBUFFORCE, rcv, "SO_RCVBUF"),
        (SO_SNDBUF, SO_SNDBUFFORCE, snd, "SO_SNDBUF"),
    ] {
        if v == 0 {
            continue;
        }
        let half = (v / 2) as i32;
        if set(fd, SOL_SOCKET, force, half).is_err() {
            if let Err(e) = set(fd, SOL_SOCKET, opt, half) {
                named().s(": cannot set a buffer size").errno(e).fail()
            }
        }
        let got = get(fd, SOL_SOCKET, opt).unwrap_or(0);
        if got as u32 != v {
            named()
                .s(": ")
                .s(name)
                .s(" is ")
                .dec(got.max(0) as u64)
                .s(", not the saved ")
                .dec(v.into())
                .s(" (the system's limit)")
                .warn();
        }
    }
}

/// The buffer sizes and `SO_BUF_LOCK` of record `r` (`x`) on socket `fd`.
pub(crate) fn buffers(img: &Image, r: &FdRecord, x: &InetRecord, fd: usize) {
    let fail = |what: &str, e: Errno| -> ! { msg(img, r, Some(x)).s(": ").s(what).errno(e).fail() };
    buffer_sizes(fd, x.rcvbuf, x.sndbuf, &|| msg(img, r, Some(x)));
    // SO_BUF_LOCK as saved, when it is not what setting the sizes (or a
    // connection's queues) left.
    let saved = i32::from(x.opts & inet_opts::SNDBUF_LOCK != 0)
        | i32::from(x.opts & inet_opts::RCVBUF_LOCK != 0) << 1;
    if get(fd, SOL_SOCKET, SO_BUF_LOCK).unwrap_or(0) != saved {
        set(fd, SOL_SOCKET, SO_BUF_LOCK, saved)
            .unwrap_or_else(|e| fail("cannot set SO_BUF_LOCK", e));
    }
}
