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
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use kckpt_image::inet::{inet_opts, InetRecord, AF_INET, INET_LISTEN_FD_KIND, UDP_FD_KIND};
use kckpt_image::inet::{INET_RECORD_LEN, STATE_ESTABLISHED, STATE_LISTEN};
use kckpt_image::tcp::TCP_CONN_FD_KIND;
use kckpt_image::{FdRecord, FD_NO_DUP};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::sys::{self, check as checked, Errno, SysResult};

const SOL_SOCKET: usize = 1;
const SO_REUSEADDR: usize = 2;
const SO_BROADCAST: usize = 6;
const SO_SNDBUF: usize = 7;
const SO_RCVBUF: usize = 8;
const SO_KEEPALIVE: usize = 9;
const SO_LINGER: usize = 13;
const SO_PASSCRED: usize = 16;
const SO_RCVTIMEO: usize = 20;
const SO_SNDTIMEO: usize = 21;
const SO_SNDBUFFORCE: usize = 32;
const SO_RCVBUFFORCE: usize = 33;
const SO_REUSEPORT: usize = 15;
const IPPROTO_TCP: usize = 6;
const IPPROTO_UDP: usize = 17;
const IPPROTO_IPV6: usize = 41;
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
    if tcp {
        m.s("TCP listener ");
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

fn get(fd: usize, level: usize, opt: usize) -> Result<i32, Errno> {
    let mut v: i32 = 0;
    let mut len: u32 = 4;
    call(
        g::__NR_getsockopt,
        [
            fd,
            level,
            opt,
            &mut v as *mut i32 as usize,
            &mut len as *mut u32 as usize,
            0,
        ],
    )
    .map(|_| v)
}

/// A new socket of `x`'s family and `kind`'s type with the options a
/// `bind` depends on; `reuse`: `SO_REUSEADDR` on.
fn new_socket(kind: u32, x: &InetRecord, reuse: bool) -> SysResult {
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
            0,
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
        });
    if let Err(e) = r {
        sys::close(fd);
        return Err(e);
    }
    Ok(fd)
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
        let probe = new_socket(r.kind, &x, reuse)
            .unwrap_or_else(|e| msg(img, &r, Some(&x)).s(": socket").errno(e).fail());
        let bound = bind(probe, &x);
        sys::close(probe);
        if let Err(e) = bound {
            bind_failed(img, &r, &x, e)
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
    let fd = new_socket(r.kind, &x, tcp || reuse).unwrap_or_else(|e| fail("socket", e));
    if x.local_port != 0 {
        if let Err(e) = bind(fd, &x) {
            bind_failed(img, r, &x, e)
        }
    }
    options(img, r, &x, fd, tcp);
    if x.state == STATE_LISTEN {
        call(g::__NR_listen, [fd, x.backlog as usize, 0, 0, 0, 0])
            .unwrap_or_else(|e| fail("listen", e));
    } else if x.state == STATE_ESTABLISHED {
        let (a, len) = sockaddr(x.family, &x.peer, x.peer_port);
        call(g::__NR_connect, [fd, a.as_ptr() as usize, len, 0, 0, 0])
            .unwrap_or_else(|e| fail("connect", e));
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
    // Buffer sizes: the kernel doubles what it is given; beyond the
    // system's limit only CAP_NET_ADMIN (the FORCE options) gets more.
    let bufs = [
        (SO_RCVBUF, SO_RCVBUFFORCE, x.rcvbuf, "SO_RCVBUF"),
        (SO_SNDBUF, SO_SNDBUFFORCE, x.sndbuf, "SO_SNDBUF"),
    ];
    for (opt, force, v, name) in bufs {
        if v == 0 {
            continue;
        }
        let half = (v / 2) as i32;
        if set(fd, SOL_SOCKET, force, half).is_err() {
            set(fd, SOL_SOCKET, opt, half).unwrap_or_else(|e| fail("cannot set a buffer size", e));
        }
        let got = get(fd, SOL_SOCKET, opt).unwrap_or(0);
        if got as u32 != v {
            let mut m = msg(img, r, Some(x));
            m.s(": ")
                .s(name)
                .s(" is ")
                .dec(got.max(0) as u64)
                .s(", not the saved ")
                .dec(v.into())
                .s(" (the system's limit)");
            m.warn();
        }
    }
}
