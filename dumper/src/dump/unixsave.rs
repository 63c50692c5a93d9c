//! Unix sockets saved as fd kind 45 (format 1.6,
//! `kckpt_image::unixsock::UnixRecord`): every Unix socket that is not
//! listening. Owns the record of one socket (its name, what it is
//! connected to, shutdown state, options) and the reading of its receive
//! queue, message by message with each sender's name (`MSG_PEEK` with
//! `SO_PEEK_OFF`, put back as the process had it) with (1.7) the
//! descriptors in flight with each (`SCM_RIGHTS`, named by the numbers
//! `files::inflight` gives them), and the refusals: options kckpt does
//! not restore, a peer outside the dump.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;
use nix::sys::socket::{self, sockopt, MsgFlags};

use kckpt_image::unixsock::{
    name_kind, peer_kind, put_message, sock_flags, Message, UnixRecord, MAX_NAME,
    SOCK_MODE_RECORDED,
};

use super::fdsys;
use super::unixsock::{file_mode, UnixDiag};

/// `TCP_ESTABLISHED`: a connected socket (its peer may be gone).
pub const ESTABLISHED: u8 = 1;

/// What a socket is connected to, as the caller found it.
pub enum Peer {
    /// Not connected.
    None,
    /// The other end of a pair, at this descriptor of the process.
    Pair(u32),
    /// (Datagram) connected to a socket of the process, which is not
    /// connected back: its name as the kernel holds it, its descriptor.
    Name(Option<Vec<u8>>, Option<u32>),
    /// Connected, the peer closed since.
    Gone,
    /// Connected to a socket held outside the process: its name, and who
    /// holds it (pid, command) when found.
    Outside(Option<Vec<u8>>, Option<(i32, String)>),
    /// Connected to a socket another process of the dump holds (its
    /// name, that process).
    InTree(Option<Vec<u8>>, i32),
    /// (1.7) Connected to the listener at this descriptor of the process,
    /// which has not accepted the connection yet: its place in the
    /// backlog.
    Pending(u32, u32),
}

/// A saved socket: its record bytes (for `path`), its queue (the data),
/// and what `--skip-unsupported` would lose (refused without it).
pub struct Saved {
    /// The encoded [`UnixRecord`].
    pub path: Vec<u8>,
    /// Queued messages ([`put_message`]).
    pub data: Vec<u8>,
    /// A loss to name at dump (a warning with `--skip-unsupported`).
    pub lost: Option<String>,
}

/// Options kckpt does not restore, compared with a new socket's.
const NOT_RESTORED: &[(i32, &str)] = &[
    (libc::SO_PRIORITY, "SO_PRIORITY"),
    (libc::SO_MARK, "SO_MARK"),
    (libc::SO_OOBINLINE, "SO_OOBINLINE"),
    (libc::SO_KEEPALIVE, "SO_KEEPALIVE"),
    (libc::SO_RCVLOWAT, "SO_RCVLOWAT"),
    (libc::SO_TIMESTAMP, "SO_TIMESTAMP"),
    (libc::SO_TIMESTAMPNS, "SO_TIMESTAMPNS"),
    (libc::SO_TIMESTAMPING, "SO_TIMESTAMPING"),
    (libc::SO_RXQ_OVFL, "SO_RXQ_OVFL"),
    (libc::SO_BUSY_POLL, "SO_BUSY_POLL"),
    (libc::SO_ZEROCOPY, "SO_ZEROCOPY"),
    (76, "SO_PASSPIDFD"),
];

/// Most bytes of one socket's queue kckpt saves.
const MAX_QUEUE: usize = 64 << 20;

/// `stream`, `datagram`, `seqpacket`.
pub fn type_name(ty: u8) -> &'static str {
    match i32::from(ty) {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "datagram",
        libc::SOCK_SEQPACKET => "seqpacket",
        _ => "other",
    }
}

/// A name as the kernel holds it: (kind, bytes as the record keeps them).
pub fn split_name(raw: Option<&[u8]>) -> (u8, Vec<u8>) {
    match raw {
        None | Some([]) => (name_kind::NONE, Vec::new()),
        Some([0, rest @ ..]) => (name_kind::ABSTRACT, rest.to_vec()),
        Some(p) => (
            name_kind::PATH,
            p.split(|&b| b == 0).next().unwrap_or(p).to_vec(),
        ),
    }
}

/// `unix datagram socket /run/x`, `unix stream socket (not bound)`.
pub fn describe(d: &UnixDiag) -> String {
    let name = match d.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => super::unixsock::shown(n),
        None => "(not bound)".to_owned(),
    };
    format!("unix {} socket {name}", type_name(d.ty))
}

/// What becomes of the descriptors in flight with one message (copies
/// the peek installed here, in order): their numbers in the image, or
/// why they cannot be kept.
pub type Rights<'a> = dyn FnMut(Vec<OwnedFd>) -> Result<Vec<u32>, String> + 'a;

/// A socket's queue as [`queue`] reads it: (data, number of messages), or
/// why it cannot be kept.
pub type Queued = Result<(Vec<u8>, u32), String>;

/// The record and queue of socket `sock` (a copy of the descriptor of
/// process `pid`) that `sock_diag` describes as `d`, connected to `peer`;
/// or the reason it is refused. `queued` is its queue when it was read
/// already (a queue is read once: a zero-length datagram a peek saw is
/// skipped by the next walk), else it is read here with `rights`
/// numbering the descriptors in flight.
pub fn save(
    pid: i32,
    sock: &OwnedFd,
    d: &UnixDiag,
    peer: Peer,
    queued: Option<Queued>,
    rights: &mut Rights<'_>,
) -> Result<Saved, String> {
    let shown = describe(d);
    if !matches!(
        i32::from(d.ty),
        libc::SOCK_STREAM | libc::SOCK_DGRAM | libc::SOCK_SEQPACKET
    ) {
        return Err(shown);
    }
    let (kind, name) = split_name(d.name.as_deref());
    if name.len() as u64 > MAX_NAME || (kind == name_kind::PATH && name.contains(&0)) {
        return Err(format!("{shown} (its name is too long or holds a NUL)"));
    }
    let mut r = UnixRecord {
        ty: u16::from(d.ty),
        name_kind: kind,
        name: &name,
        shutdown: d.shutdown & 3,
        peek_off: -1,
        ..UnixRecord::default()
    };
    if kind == name_kind::PATH {
        let relative = !name.starts_with(b"/");
        let base = if relative { "cwd/" } else { "root" };
        match file_mode(pid, base, &name, d.vfs) {
            Ok(Some(mode)) => r.mode = mode as u32 & 0o7777 | SOCK_MODE_RECORDED,
            Ok(None) if relative => {
                return Err(format!(
                    "{shown} (bound to a relative path that does not lead to it from its working directory)"
                ))
            }
            Ok(None) => r.flags |= sock_flags::DETACHED,
            Err(what) => return Err(format!("{shown} ({what} at its path now)")),
        }
        if relative {
            r.flags |= sock_flags::RELATIVE;
        }
    }
    let mut lost = None;
    let peer_name;
    match peer {
        Peer::None => {}
        Peer::Pair(_) => r.peer_kind = peer_kind::PAIR,
        Peer::Gone => r.peer_kind = peer_kind::GONE,
        Peer::Pending(l, pos) => {
            // What the client sent waits in the connection's own queue,
            // which nothing can read before `accept` takes it.
            const SIOCOUTQ: libc::c_ulong = 0x5411;
            let sent = fdsys::sock_ioctl_int(sock.as_raw_fd(), SIOCOUTQ).unwrap_or(-1);
            if sent != 0 {
                return Err(format!(
                    "{shown} connected to the listener at fd {l}, not accepted yet, with data \
                     it sent waiting in the connection (it cannot be read before the \
                     connection is accepted)"
                ));
            }
            r.peer_kind = peer_kind::PENDING;
            r.listener = l;
            r.queue_pos = pos;
        }
        Peer::Name(n, fd) => {
            r.target = fd.map_or(0, |fd| fd + 1);
            let (k, n) = split_name(n.as_deref());
            if k == name_kind::NONE {
                return Err(format!("{shown} connected to a socket without a name"));
            }
            peer_name = n;
            r.peer_kind = peer_kind::NAME;
            r.peer_name = &peer_name;
            r.peer_abstract = k == name_kind::ABSTRACT;
            if !r.peer_abstract && !peer_name.starts_with(b"/") {
                r.flags |= sock_flags::PEER_RELATIVE;
            }
        }
        Peer::InTree(n, p) => {
            let (_, n) = split_name(n.as_deref());
            let to = if n.is_empty() {
                "an unnamed socket".to_owned()
            } else {
                super::unixsock::shown(&n)
            };
            return Err(format!(
                "{shown} connected to {to} held by pid {p} of the dump (not restored: a \
                 datagram socket connected to a socket of another process, the two ends \
                 of a pair in processes no process of the dump is an ancestor of, or a \
                 connection accepted on a listener of another process that their common \
                 ancestor does not hold, with an abstract name or restored before it)"
            ));
        }
        Peer::Outside(n, holder) => {
            let (k, n) = split_name(n.as_deref());
            let to = match k {
                name_kind::NONE => "an unnamed socket".to_owned(),
                name_kind::ABSTRACT => format!("@{}", String::from_utf8_lossy(&n)),
                _ => String::from_utf8_lossy(&n).into_owned(),
            };
            let by = match holder {
                Some((p, comm)) => format!("held by pid {p} ({comm}) outside the dump"),
                None => "held outside the process (by another process of the dump, in flight, \
                         or by a process this user cannot see)"
                    .to_owned(),
            };
            let dgram = i32::from(d.ty) == libc::SOCK_DGRAM;
            let again = if dgram && k != name_kind::NONE {
                // --skip-unsupported: connected again to that name.
                peer_name = n;
                r.peer_kind = peer_kind::NAME;
                r.flags |= sock_flags::OUTSIDE;
                r.peer_name = &peer_name;
                r.peer_abstract = k == name_kind::ABSTRACT;
                if !r.peer_abstract && !peer_name.starts_with(b"/") {
                    r.flags |= sock_flags::PEER_RELATIVE;
                }
                "connected again to that name at restore"
            } else {
                "restored not connected"
            };
            lost = Some(format!("{shown} connected to {to}, {by}; {again}"));
        }
    }
    options(sock, d, &shown, &mut r)?;
    if i32::from(d.ty) == libc::SOCK_STREAM {
        // An out-of-band byte (MSG_OOB) is skipped by the queue walk.
        let mut b = [0u8; 1];
        let flags = MsgFlags::MSG_OOB | MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        if socket::recv(sock.as_raw_fd(), &mut b, flags).is_ok_and(|n| n > 0) {
            return Err(format!(
                "{shown} with an out-of-band byte pending (MSG_OOB, not restored)"
            ));
        }
    }
    let (data, messages) = match queued {
        Some(q) => q?,
        None => queue(sock, d.ty, &shown, rights)?,
    };
    r.messages = messages;
    r.in_flight = u16::try_from(kckpt_image::unixsock::rights_count(&data))
        .map_err(|_| format!("{shown} with more than 65535 descriptors in flight"))?;
    if UnixRecord::parse(r.encode().bytes()).is_none() {
        return Err(format!("{shown} with values kckpt cannot keep"));
    }
    Ok(Saved {
        path: r.encode().bytes().to_vec(),
        data,
        lost,
    })
}

/// The options kept in `r`; refused when one kckpt does not restore is
/// set.
fn options(
    sock: &OwnedFd,
    d: &UnixDiag,
    shown: &str,
    r: &mut UnixRecord<'_>,
) -> Result<(), String> {
    let fd = sock.as_raw_fd();
    let ty = match i32::from(d.ty) {
        libc::SOCK_STREAM => socket::SockType::Stream,
        libc::SOCK_DGRAM => socket::SockType::Datagram,
        _ => socket::SockType::SeqPacket,
    };
    let fresh = socket::socket(
        socket::AddressFamily::Unix,
        ty,
        socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("{shown} (cannot make a socket to compare its options with: {e})"))?;
    let nfd = fresh.as_raw_fd();
    let get = |fd, opt| fdsys::sockopt_int(fd, opt).ok();
    for &(opt, name) in NOT_RESTORED {
        if get(fd, opt) != get(nfd, opt) {
            return Err(format!("{shown} with option {name} (not restored)"));
        }
    }
    if let Ok(l) = socket::getsockopt(sock, sockopt::Linger) {
        if l.l_onoff != 0 {
            return Err(format!("{shown} with option SO_LINGER (not restored)"));
        }
    }
    let on = |opt| get(fd, opt).is_some_and(|v| v != 0);
    if on(libc::SO_PASSCRED) {
        r.flags |= sock_flags::PASSCRED;
    }
    if on(libc::SO_PASSSEC) {
        r.flags |= sock_flags::PASSSEC;
    }
    // No effect on a Unix socket, but a program may read it back.
    if on(libc::SO_REUSEADDR) {
        r.flags |= sock_flags::REUSEADDR;
    }
    // Buffer sizes the program set.
    let buf = |opt| {
        let v = get(fd, opt).unwrap_or(0);
        if Some(v) == get(nfd, opt) {
            0
        } else {
            v.max(0) as u32
        }
    };
    r.rcvbuf = buf(libc::SO_RCVBUF);
    r.sndbuf = buf(libc::SO_SNDBUF);
    // SO_BUF_LOCK (Linux 5.14; option 72): setting a size locks it; a lock
    // the restored sizes would not give back is named.
    let lock = get(fd, 72).unwrap_or(0);
    if lock != i32::from(r.sndbuf != 0) | i32::from(r.rcvbuf != 0) << 1 {
        return Err(format!("{shown} with option SO_BUF_LOCK (not restored)"));
    }
    let us = |t: nix::sys::time::TimeVal| {
        (t.tv_sec().max(0) as u64)
            .saturating_mul(1_000_000)
            .saturating_add(t.tv_usec().max(0) as u64)
    };
    r.rcvtimeo = socket::getsockopt(sock, sockopt::ReceiveTimeout).map_or(0, us);
    r.sndtimeo = socket::getsockopt(sock, sockopt::SendTimeout).map_or(0, us);
    r.peek_off = get(fd, libc::SO_PEEK_OFF).unwrap_or(-1).max(-1);
    Ok(())
}

/// The queue of Unix socket `sock` (of `SO_TYPE` `ty`, described as
/// `shown`), with `rights` numbering the descriptors in flight.
pub fn queue_of(sock: &OwnedFd, ty: i32, shown: &str, rights: &mut Rights<'_>) -> Queued {
    queue(sock, ty as u8, shown, rights)
}

/// The receive queue of `sock` (type `ty`), message by message: (data,
/// number of messages). `SO_PEEK_OFF` walks it without taking anything
/// and is put back as it was. Descriptors in flight (`SCM_RIGHTS`):
/// peeking them installs copies here, which `rights` numbers (1.7).
fn queue(
    sock: &OwnedFd,
    ty: u8,
    shown: &str,
    rights: &mut Rights<'_>,
) -> Result<(Vec<u8>, u32), String> {
    let fd = sock.as_raw_fd();
    let old = fdsys::sockopt_int(fd, libc::SO_PEEK_OFF).unwrap_or(-1);
    if let Err(e) = fdsys::set_sockopt_int(fd, libc::SO_PEEK_OFF, 0) {
        return Err(format!("{shown} (cannot read its queue: SO_PEEK_OFF: {e})"));
    }
    // A seqpacket socket shut down for reading answers an empty queue as
    // an empty message: with SO_PASSCRED on, a real message comes with
    // credentials, the end of the queue without.
    let seqpacket = i32::from(ty) == libc::SOCK_SEQPACKET;
    let passcred = fdsys::sockopt_int(fd, libc::SO_PASSCRED).unwrap_or(0);
    if seqpacket && passcred == 0 {
        let _ = fdsys::set_sockopt_int(fd, libc::SO_PASSCRED, 1);
    }
    let got = walk(fd, ty, shown, rights);
    // Put back what the process had (-1: off).
    let _ = fdsys::set_sockopt_int(fd, libc::SO_PEEK_OFF, old);
    if seqpacket && passcred == 0 {
        let _ = fdsys::set_sockopt_int(fd, libc::SO_PASSCRED, 0);
    }
    got
}

fn walk(fd: i32, ty: u8, shown: &str, rights: &mut Rights<'_>) -> Result<(Vec<u8>, u32), String> {
    let stream = i32::from(ty) == libc::SOCK_STREAM;
    let dgram = i32::from(ty) == libc::SOCK_DGRAM;
    let mut buf = vec![0u8; 4 << 20];
    let mut out = Vec::new();
    let mut stream_bytes = Vec::new();
    let mut pieces = 0u32;
    let (mut count, mut total) = (0u32, 0usize);
    loop {
        let mut flags = libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC;
        if !stream {
            // The whole length of a datagram longer than the buffer.
            flags |= libc::MSG_TRUNC;
        }
        let msg = match fdsys::peek_unix(fd, &mut buf, flags) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => break,
            // A stream socket never connected (EINVAL), a seqpacket one
            // (ENOTCONN): nothing can be queued.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOTCONN) if !dgram => break,
            Err(e) => return Err(format!("{shown} (cannot read its queue: {e})")),
        };
        let n = msg.len;
        let copies = msg.rights;
        if msg.flags & libc::MSG_CTRUNC != 0 {
            return Err(format!(
                "{shown} with more descriptors in flight in one message than kckpt reads"
            ));
        }
        if n == 0 && copies.is_empty() && (stream || (!dgram && !msg.creds)) {
            break; // end of file: the peer shut down
        }
        let numbers: Vec<u8> = if copies.is_empty() {
            Vec::new()
        } else {
            rights(copies)?
                .iter()
                .flat_map(|n| n.to_le_bytes())
                .collect()
        };
        if n > buf.len() {
            return Err(format!("{shown} with a queued message of {n} bytes"));
        }
        total += n;
        if total > MAX_QUEUE || count == u32::MAX {
            return Err(format!("{shown} with more than {MAX_QUEUE} queued bytes"));
        }
        count += 1;
        if stream {
            stream_bytes.extend_from_slice(&buf[..n]);
            if !numbers.is_empty() {
                // (1.7) The bytes up to the piece that carries them (a
                // read stops there), with its descriptors.
                put_message(
                    &mut out,
                    &Message {
                        name_kind: name_kind::NONE,
                        name: &[],
                        payload: &stream_bytes,
                        rights: &numbers,
                    },
                );
                stream_bytes.clear();
                pieces += 1;
            }
            continue;
        }
        let (kind, name) = split_name(Some(&msg.name));
        if name.len() as u64 > MAX_NAME || (kind == name_kind::PATH && name.contains(&0)) {
            return Err(format!(
                "{shown} with a message from a sender name kckpt cannot keep"
            ));
        }
        put_message(
            &mut out,
            &Message {
                name_kind: kind,
                name: &name,
                payload: &buf[..n],
                rights: &numbers,
            },
        );
    }
    if stream {
        if !stream_bytes.is_empty() {
            put_message(
                &mut out,
                &Message {
                    name_kind: name_kind::NONE,
                    name: &[],
                    payload: &stream_bytes,
                    rights: &[],
                },
            );
            pieces += 1;
        }
        count = pieces;
    }
    Ok((out, count))
}
