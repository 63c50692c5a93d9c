//! TCP and UDP sockets over IPv4 and IPv6 (format 1.5, fd kinds 42
//! `INET_LISTEN` and 43 `UDP`, `kckpt_image::inet`).
//!
//! `sock_diag` (`inet_diag`, a dump of the family and protocol matched by
//! inode) gives the state, the bound address (`sk_rcv_saddr`, not the
//! source address a connected socket picked), the peer, and for a
//! listener the connections waiting to be accepted and the backlog; for
//! UDP the bytes queued to read and to send. Options are read with
//! `getsockopt` on a copy of the descriptor (`pidfd_getfd`) and compared
//! with those of a new socket of the same kind: an option kckpt does not
//! restore that differs is named in a refusal.
//!
//! (1.6) TCP sockets neither listening nor connected (not bound, bound,
//! or closed after a failed `connect`) are kind 42 with state close; the
//! queued datagrams of a UDP socket are peeked in order (`SO_PEEK_OFF`
//! works for UDP: each peek at the offset past the previous datagrams
//! gives the next one and its sender) and stored as the record's data.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, MsgFlags};

use kckpt_image::inet::{inet_opts, InetRecord, AF_INET, AF_INET6, STATE_CLOSE, STATE_LISTEN};
use kckpt_image::inet::{STATE_ESTABLISHED, UDP_FD_KIND};

use super::fdsys;

/// What `inet_diag` says about one TCP or UDP socket.
#[derive(Clone, Debug, Default)]
pub struct InetDiag {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// `TCP_*` state (UDP: 7 close, 1 connected).
    pub state: u8,
    /// Bound port.
    pub sport: u16,
    /// Peer port.
    pub dport: u16,
    /// Bound address (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    /// Peer address.
    pub dst: [u8; 16],
    /// Listener: connections waiting to be accepted; else bytes queued
    /// to read.
    pub rqueue: u32,
    /// Listener: the backlog; else bytes queued to send.
    pub wqueue: u32,
    /// Bound device (`SO_BINDTODEVICE`), 0 if none.
    pub ifindex: u32,
    /// `shutdown(2)` directions (`INET_DIAG_SHUTDOWN`: bit 0 reading,
    /// bit 1 writing), 0 if none.
    pub shutdown: u8,
    /// A TCP socket in no table `sock_diag` reads that still has a port
    /// (`getsockname`): what a failed `connect` leaves; else 0.
    pub stale_port: u16,
}

/// A TCP or UDP socket as saved: its record, its data (queued
/// datagrams), and what it loses (named in a refusal, or with
/// `--skip-unsupported` a warning).
pub struct Saved {
    /// The record (`path`).
    pub rec: InetRecord,
    /// The record's data: [`kckpt_image::inet::Datagram`] headers, each
    /// followed by its bytes.
    pub data: Vec<u8>,
    /// What is not restored, shown after the socket's name.
    pub lossy: Option<String>,
}

/// `inet_diag` of socket inode `ino` of `family` (`AF_INET`...) and
/// protocol (`IPPROTO_TCP`, `IPPROTO_UDP`).
pub fn diag(family: i32, protocol: i32, ino: u64) -> Option<InetDiag> {
    let mut found = None;
    scan(family, protocol, |m| {
        found = parse(m, ino);
        found.is_some()
    })?;
    found
}

/// Every `inet_diag_msg` of `family` and `protocol` (all states) to
/// `each` until it returns true; `None` when `sock_diag` fails.
fn scan(family: i32, protocol: i32, mut each: impl FnMut(&[u8]) -> bool) -> Option<()> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST_DUMP: u16 = 0x301;
    let mut req = Vec::with_capacity(56);
    req.extend_from_slice(&[family as u8, protocol as u8, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_le_bytes()); // all states
    req.extend_from_slice(&[0u8; 48]); // any socket id
    let nl = fdsys::sock_diag_request(NLM_F_REQUEST_DUMP, &req)?;
    let mut buf = vec![0u8; 32768];
    loop {
        let n = socket::recv(nl.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_le_bytes(buf[at..at + 4].try_into().ok()?) as usize;
            let ty = u16::from_le_bytes(buf[at + 4..at + 6].try_into().ok()?);
            if len < 16 || at + len > n {
                return None;
            }
            match ty {
                3 => return Some(()), // NLMSG_DONE
                2 => return None,     // NLMSG_ERROR
                SOCK_DIAG_BY_FAMILY if each(&buf[at + 16..at + len]) => return Some(()),
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
}

/// The sockets (inodes) of the clients of the connections waiting to be
/// accepted by the TCP listener `listener`: a waiting connection is an
/// established socket of no file with the listener's port; its client, a
/// socket of a file whose own port is that connection's peer port and
/// whose peer port is the listener's (matched by ports, over IPv4 and
/// IPv6: a false match only refuses more).
pub fn pending_clients(listener: &InetDiag) -> Vec<u64> {
    // The kernel's TCP_ESTABLISHED and TCP_SYN_RECV.
    const ESTABLISHED: u8 = 1;
    const SYN_RECV: u8 = 3;
    let port = |m: &[u8], o: usize| u16::from_be_bytes([m[o], m[o + 1]]);
    let ino = |m: &[u8]| {
        m.get(68..72)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut waiting = Vec::new();
    let mut sockets = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        let _ = scan(family, libc::IPPROTO_TCP, |m| {
            if m.len() >= 72 {
                let (state, sport, dport, ino) = (m[1], port(m, 4), port(m, 6), ino(m));
                if ino == 0 && sport == listener.sport && matches!(state, ESTABLISHED | SYN_RECV) {
                    waiting.push(dport);
                } else if ino != 0 && dport == listener.sport {
                    sockets.push((sport, u64::from(ino)));
                }
            }
            false
        });
    }
    sockets
        .into_iter()
        .filter(|(sport, _)| waiting.contains(sport))
        .map(|(_, ino)| ino)
        .collect()
}

/// One `inet_diag_msg`, when it is socket inode `ino`.
fn parse(m: &[u8], ino: u64) -> Option<InetDiag> {
    let u32_at = |o: usize| Some(u32::from_le_bytes(m.get(o..o + 4)?.try_into().ok()?));
    if u64::from(u32_at(68)?) != ino {
        return None;
    }
    let mut d = InetDiag {
        family: m[0],
        state: m[1],
        sport: u16::from_be_bytes([m[4], m[5]]),
        dport: u16::from_be_bytes([m[6], m[7]]),
        rqueue: u32_at(56)?,
        wqueue: u32_at(60)?,
        ifindex: u32_at(40)?,
        ..InetDiag::default()
    };
    let n = if i32::from(d.family) == libc::AF_INET {
        4
    } else {
        16
    };
    d.src[..n].copy_from_slice(&m[8..8 + n]);
    d.dst[..n].copy_from_slice(&m[24..24 + n]);
    // Attributes after the 72-byte message: INET_DIAG_SHUTDOWN (8), which
    // the kernel always adds.
    let mut at = 72;
    while at + 4 <= m.len() {
        let len = usize::from(u16::from_le_bytes([m[at], m[at + 1]]));
        let ty = u16::from_le_bytes([m[at + 2], m[at + 3]]);
        if len < 4 || at + len > m.len() {
            break;
        }
        if ty == 8 && len >= 5 {
            d.shutdown = m[at + 4];
        }
        at += (len + 3) & !3;
    }
    Some(d)
}

/// (1.9) An ICMP (ping) socket of process `pid` as its network
/// namespace's `/proc/PID/net/icmp` (or `icmp6`) lists it (no `inet_diag`
/// serves them): a bound one (its address and identifier, `sport`), maybe
/// connected (state 1, the peer address; port 0), its queues; `None` for
/// one not listed (not bound: [`unbound`] has it).
pub fn ping_diag(pid: i32, family: i32, ino: u64) -> Option<InetDiag> {
    let v6 = family == libc::AF_INET6;
    let text = std::fs::read_to_string(format!(
        "/proc/{pid}/net/{}",
        if v6 { "icmp6" } else { "icmp" }
    ))
    .ok()?;
    // "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ..."
    let addr = |field: &str| -> Option<([u8; 16], u16)> {
        let (a, port) = field.split_once(':')?;
        let mut out = [0u8; 16];
        for (i, chunk) in a.as_bytes().chunks(8).enumerate().take(4) {
            let word = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        Some((out, u16::from_str_radix(port, 16).ok()?))
    };
    text.lines().skip(1).find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.get(9)?.parse::<u64>().ok()? != ino {
            return None;
        }
        let (src, sport) = addr(w.get(1)?)?;
        let (dst, dport) = addr(w.get(2)?)?;
        let (tx, rx) = w.get(4)?.split_once(':')?;
        Some(InetDiag {
            family: family as u8,
            state: u8::from_str_radix(w.get(3)?, 16).ok()?,
            sport,
            dport,
            src,
            dst,
            rqueue: u32::from_str_radix(rx, 16).ok()?,
            wqueue: u32::from_str_radix(tx, 16).ok()?,
            ..InetDiag::default()
        })
    })
}

/// What a socket `inet_diag` does not see has for it: state close, port
/// 0 (not bound); for TCP the port a failed `connect` left in
/// `stale_port`; `None` for a UDP socket that is bound after all.
pub fn unbound(sock: &OwnedFd, tcp: bool) -> Option<InetDiag> {
    // getsockname through std (works on any inet socket).
    let a = std::net::UdpSocket::from(sock.try_clone().ok()?)
        .local_addr()
        .ok()?;
    let (family, port) = match a {
        std::net::SocketAddr::V4(v4) => (libc::AF_INET, v4.port()),
        std::net::SocketAddr::V6(v6) => (libc::AF_INET6, v6.port()),
    };
    (port == 0 || tcp).then(|| InetDiag {
        family: family as u8,
        state: 7,
        stale_port: port,
        ..InetDiag::default()
    })
}

/// Whether this host has address `a` of `family` (a socket can bind it
/// without `IP_FREEBIND`).
fn local_address(family: u16, a: &[u8; 16]) -> bool {
    let ip: std::net::IpAddr = if family == AF_INET {
        Ipv4Addr::new(a[0], a[1], a[2], a[3]).into()
    } else {
        Ipv6Addr::from(*a).into()
    };
    !matches!(
        std::net::UdpSocket::bind((ip, 0)),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
    )
}

/// `127.0.0.1:80`, `[::1]:80`.
pub fn addr_text(family: u16, addr: &[u8; 16], port: u16) -> String {
    if family == AF_INET {
        let a = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
        format!("{a}:{port}")
    } else {
        format!("[{}]:{port}", Ipv6Addr::from(*addr))
    }
}

/// `SO_BUF_LOCK` (not in every libc).
const SO_BUF_LOCK: i32 = 72;

/// The name of `TCP_*` state `s`.
pub fn state_name(s: u8) -> &'static str {
    match s {
        1 => "established",
        2 => "syn-sent",
        3 => "syn-recv",
        4 => "fin-wait1",
        5 => "fin-wait2",
        6 => "time-wait",
        7 => "close",
        8 => "close-wait",
        9 => "last-ack",
        10 => "listen",
        11 => "closing",
        _ => "unknown",
    }
}

fn getopt(fd: RawFd, level: i32, opt: i32) -> Option<i32> {
    fdsys::sockopt_at(fd, level, opt).ok()
}

/// Options kckpt does not restore, compared with a new socket's.
const NOT_RESTORED: &[(i32, i32, &str)] = &[
    (libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF"),
    (libc::SOL_SOCKET, 47, "SO_MAX_PACING_RATE"),
    (libc::SOL_SOCKET, 69, "SO_PREFER_BUSY_POLL"),
    (libc::SOL_SOCKET, 70, "SO_BUSY_POLL_BUDGET"),
    (libc::SOL_SOCKET, 75, "SO_RCVMARK"),
    (libc::SOL_SOCKET, 41, "SO_WIFI_STATUS"),
    (libc::SOL_SOCKET, 45, "SO_SELECT_ERR_QUEUE"),
    (libc::IPPROTO_IP, 18, "IP_PASSSEC"),
    (libc::IPPROTO_IP, 21, "IP_MINTTL"),
    (libc::IPPROTO_IP, 22, "IP_NODEFRAG"),
    (libc::IPPROTO_IP, 23, "IP_CHECKSUM"),
    (libc::IPPROTO_IP, 25, "IP_RECVFRAGSIZE"),
    (libc::IPPROTO_IP, 32, "IP_MULTICAST_IF"),
    (libc::IPPROTO_IP, 51, "IP_LOCAL_PORT_RANGE"),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMP, "SO_TIMESTAMP"),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, "SO_TIMESTAMPNS"),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPING, "SO_TIMESTAMPING"),
    (libc::SOL_SOCKET, libc::SO_PASSSEC, "SO_PASSSEC"),
    (libc::SOL_SOCKET, libc::SO_RXQ_OVFL, "SO_RXQ_OVFL"),
    (libc::SOL_SOCKET, libc::SO_BUSY_POLL, "SO_BUSY_POLL"),
    (libc::SOL_SOCKET, libc::SO_ZEROCOPY, "SO_ZEROCOPY"),
    (libc::IPPROTO_IP, libc::IP_RECVOPTS, "IP_RECVOPTS"),
    (libc::IPPROTO_IP, libc::IP_RECVTTL, "IP_RECVTTL"),
    (libc::IPPROTO_IP, libc::IP_RECVTOS, "IP_RECVTOS"),
    (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, "IP_MTU_DISCOVER"),
    (libc::IPPROTO_IP, libc::IP_RECVERR, "IP_RECVERR"),
    (libc::IPPROTO_IP, libc::IP_TRANSPARENT, "IP_TRANSPARENT"),
    (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, "IP_MULTICAST_TTL"),
    (
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_LOOP,
        "IP_MULTICAST_LOOP",
    ),
    (libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, "IP_MULTICAST_ALL"),
    (
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        "IP_BIND_ADDRESS_NO_PORT",
    ),
    (
        libc::IPPROTO_IP,
        libc::IP_RECVORIGDSTADDR,
        "IP_RECVORIGDSTADDR",
    ),
];

const NOT_RESTORED_V6: &[(i32, i32, &str)] = &[
    (libc::IPPROTO_IPV6, 17, "IPV6_MULTICAST_IF"),
    (libc::IPPROTO_IPV6, 29, "IPV6_MULTICAST_ALL"),
    (libc::IPPROTO_IPV6, 53, "IPV6_RECVHOPOPTS"),
    (libc::IPPROTO_IPV6, 56, "IPV6_RECVRTHDR"),
    (libc::IPPROTO_IPV6, 58, "IPV6_RECVDSTOPTS"),
    (libc::IPPROTO_IPV6, 60, "IPV6_RECVPATHMTU"),
    (libc::IPPROTO_IPV6, 62, "IPV6_DONTFRAG"),
    (libc::IPPROTO_IPV6, 70, "IPV6_AUTOFLOWLABEL"),
    (libc::IPPROTO_IPV6, 72, "IPV6_ADDR_PREFERENCES"),
    (libc::IPPROTO_IPV6, 73, "IPV6_MINHOPCOUNT"),
    (libc::IPPROTO_IPV6, 74, "IPV6_RECVORIGDSTADDR"),
    (libc::IPPROTO_IPV6, 77, "IPV6_RECVFRAGSIZE"),
    (
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        "IPV6_MULTICAST_HOPS",
    ),
    (
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_LOOP,
        "IPV6_MULTICAST_LOOP",
    ),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, "IPV6_RECVTCLASS"),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVERR, "IPV6_RECVERR"),
    (
        libc::IPPROTO_IPV6,
        libc::IPV6_MTU_DISCOVER,
        "IPV6_MTU_DISCOVER",
    ),
    (
        libc::IPPROTO_IPV6,
        libc::IPV6_RECVHOPLIMIT,
        "IPV6_RECVHOPLIMIT",
    ),
    (
        libc::IPPROTO_IPV6,
        libc::IPV6_TRANSPARENT,
        "IPV6_TRANSPARENT",
    ),
];

const NOT_RESTORED_TCP: &[(i32, i32, &str)] = &[
    (libc::IPPROTO_TCP, 17, "TCP_THIN_DUPACK"),
    (libc::IPPROTO_TCP, 36, "TCP_INQ"),
    (libc::IPPROTO_TCP, 37, "TCP_TX_DELAY"),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG, "TCP_MAXSEG"),
    (libc::IPPROTO_TCP, libc::TCP_SYNCNT, "TCP_SYNCNT"),
    (libc::IPPROTO_TCP, libc::TCP_LINGER2, "TCP_LINGER2"),
    (
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        "TCP_DEFER_ACCEPT",
    ),
    (
        libc::IPPROTO_TCP,
        libc::TCP_WINDOW_CLAMP,
        "TCP_WINDOW_CLAMP",
    ),
    (
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        "TCP_USER_TIMEOUT",
    ),
    (libc::IPPROTO_TCP, libc::TCP_FASTOPEN, "TCP_FASTOPEN"),
    (
        libc::IPPROTO_TCP,
        libc::TCP_NOTSENT_LOWAT,
        "TCP_NOTSENT_LOWAT",
    ),
    (
        libc::IPPROTO_TCP,
        libc::TCP_THIN_LINEAR_TIMEOUTS,
        "TCP_THIN_LINEAR_TIMEOUTS",
    ),
    (libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, "TCP_SAVE_SYN"),
    (
        libc::IPPROTO_TCP,
        libc::TCP_FASTOPEN_CONNECT,
        "TCP_FASTOPEN_CONNECT",
    ),
];

/// `UDP_SEGMENT`, `UDP_GRO` (`SOL_UDP`).
const NOT_RESTORED_UDP: &[(i32, i32, &str)] = &[
    (libc::SOL_UDP, 103, "UDP_SEGMENT"),
    (libc::SOL_UDP, 104, "UDP_GRO"),
];

/// A TCP or UDP socket (`proto`: `IPPROTO_TCP`, `IPPROTO_UDP`, (1.9)
/// UDP-Lite's or ICMP's) of the dumped process, `sock` a copy of it: what
/// is saved of it, or the reason it is refused.
pub fn record(sock: &OwnedFd, proto: i32, d: &InetDiag) -> Result<Saved, String> {
    let tcp = proto == libc::IPPROTO_TCP;
    let family = u16::from(d.family);
    let local = addr_text(family, &d.src, d.sport);
    let peer = addr_text(family, &d.dst, d.dport);
    let mut r = InetRecord {
        family,
        local_port: d.sport,
        local: d.src,
        ..InetRecord::default()
    };
    let mut lossy = None;
    // (1.9) A TCP socket whose connection ended (both ways shut down,
    // then closed: the kernel's `tcp_done`), not closed by the program.
    let mut ended = false;
    if tcp {
        match d.state {
            10 => {
                r.state = STATE_LISTEN;
                r.backlog = d.wqueue;
            }
            1 => return Err(format!("TCP connection {local} -> {peer}")),
            7 => {
                r.state = STATE_CLOSE;
                let left = unread(sock);
                if left > 0 {
                    return Err(format!(
                        "TCP connection that ended (local port {}) with {left} bytes not read \
                         yet (not restored)",
                        d.stale_port.max(d.sport)
                    ));
                }
                // Readable with nothing to read: shut down for reading
                // (nix's `revents` drops `POLLRDHUP`, which says it).
                ended = d.shutdown & 1 != 0 || polls(sock, PollFlags::POLLIN);
                if ended {
                    // Reads give end of file, writes EPIPE: both bits
                    // (`tcp_done` sets both; a socket never connected
                    // that was shut down for reading only comes back
                    // shut down both ways, which writes cannot tell).
                    r.opts |= inet_opts::SHUT_RD | inet_opts::SHUT_WR;
                }
                if d.stale_port != 0 && ended {
                    lossy = Some(format!(
                        "TCP connection that ended (local port {}): restored shut down and not \
                         bound (getsockname gives port 0)",
                        d.stale_port
                    ));
                } else if d.stale_port != 0 {
                    // Restored not bound: getsockname gives port 0.
                    lossy = Some(format!(
                        "TCP socket whose connect failed, with the port getsockname \
                         still gave ({})",
                        d.stale_port
                    ));
                }
            }
            s => {
                return Err(format!(
                    "TCP socket {local} -> {peer} in state {}",
                    state_name(s)
                ))
            }
        }
    } else {
        r.state = match d.state {
            1 => STATE_ESTABLISHED,
            _ => STATE_CLOSE,
        };
        if r.state == STATE_ESTABLISHED {
            r.peer_port = d.dport;
            r.peer = d.dst;
        }
        if d.wqueue > 0 {
            return Err(format!(
                "UDP socket {local} with {} bytes corked, not sent",
                d.wqueue
            ));
        }
    }
    let shown = shown(proto, &r);
    // An error waiting to be read (a failed connect, an ICMP error on a
    // connected UDP socket) is read once: SO_ERROR would take it from the
    // process; poll shows it without.
    if r.state != STATE_LISTEN && polls(sock, PollFlags::POLLERR) {
        return Err(format!(
            "{shown} with an error not read yet (SO_ERROR, not restored)"
        ));
    }
    // The options a connection set (its MSS, window clamp, the multicast
    // TTL of an accepted one) are those of an ended one here.
    options(sock, proto, ended, d, &shown, &mut r)?;
    // Queued input: connections not accepted (lost), datagrams (kept).
    let mut data = Vec::new();
    if tcp && d.rqueue > 0 && r.state == STATE_LISTEN {
        r.lost = d.rqueue;
        lossy = Some(format!(
            "{shown} with {} connection(s) waiting to be accepted",
            d.rqueue
        ));
    } else if !tcp && !matches!(proto, libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6) {
        // (A ping socket cannot be peeked at; the caller refuses one with
        // replies queued.)
        let (n, bytes) = udp_datagrams(sock, &shown, family, d.rqueue)?;
        r.datagrams = n;
        data = bytes;
    }
    let kind = if tcp {
        kckpt_image::inet::INET_LISTEN_FD_KIND
    } else {
        UDP_FD_KIND
    };
    if InetRecord::parse(kind, &r.encode()).is_none() {
        return Err(format!("{shown} with option values kckpt cannot keep"));
    }
    Ok(Saved {
        rec: r,
        data,
        lossy,
    })
}

/// The options of TCP or UDP socket `sock` (`proto` as for [`record`],
/// `d` its `inet_diag`, `shown` its name in messages) into `r`, or the
/// reason it is refused. `conn`: an
/// established TCP connection (`TCP_MAXSEG` and `TCP_WINDOW_CLAMP` are the
/// connection's own, restored by TCP repair; buffer sizes are the kernel's
/// tuning, not saved).
pub fn options(
    sock: &OwnedFd,
    proto: i32,
    conn: bool,
    d: &InetDiag,
    shown: &str,
    r: &mut InetRecord,
) -> Result<(), String> {
    let family = u16::from(d.family);
    let tcp = proto == libc::IPPROTO_TCP;
    // (1.7) A UDP socket's shutdown bits are kept.
    if !tcp {
        if d.shutdown & 1 != 0 {
            r.opts |= inet_opts::SHUT_RD;
        }
        if d.shutdown & 2 != 0 {
            r.opts |= inet_opts::SHUT_WR;
        }
    }
    if d.shutdown != 0 && tcp && r.state != STATE_CLOSE {
        return Err(format!(
            "{shown} shut down for {} (shutdown(2), not restored)",
            match d.shutdown & 3 {
                1 => "reading",
                2 => "writing",
                _ => "reading and writing",
            }
        ));
    }
    let freebind = getopt(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_FREEBIND).unwrap_or(0) != 0;
    if d.sport != 0 && !freebind && !local_address(family, &d.src) {
        return Err(format!(
            "{shown} (an address this host does not have: bound with IP_FREEBIND or IP_TRANSPARENT)"
        ));
    }
    let fd = sock.as_raw_fd();
    let v6 = family == AF_INET6;
    // Of the same protocol (UDP-Lite has options of its own).
    let fresh = fdsys::socket(
        if v6 { libc::AF_INET6 } else { libc::AF_INET },
        if tcp {
            libc::SOCK_STREAM
        } else {
            libc::SOCK_DGRAM
        },
        proto,
    )
    .map_err(|e| format!("{shown} (cannot make a socket to compare its options with: {e})"))?;
    let nfd = fresh.as_raw_fd();
    let lists: [&[(i32, i32, &str)]; 4] = [
        NOT_RESTORED,
        if v6 { NOT_RESTORED_V6 } else { &[] },
        if tcp { NOT_RESTORED_TCP } else { &[] },
        if tcp { &[] } else { NOT_RESTORED_UDP },
    ];
    for &(level, opt, name) in lists.iter().flat_map(|l| l.iter()) {
        // After a failed connect TCP_MAXSEG reads the route's MSS, not
        // what the program set: not comparable.
        if opt == libc::TCP_MAXSEG && d.stale_port != 0 {
            continue;
        }
        // A connection's MSS and window clamp are its own (TCP repair
        // restores them); an accepted one took its multicast TTL / hop
        // limit from the SYN, and multicast means nothing to TCP.
        let own = match level {
            libc::IPPROTO_TCP => matches!(opt, libc::TCP_MAXSEG | libc::TCP_WINDOW_CLAMP),
            libc::IPPROTO_IP => matches!(
                opt,
                libc::IP_MULTICAST_TTL
                    | libc::IP_MULTICAST_LOOP
                    | libc::IP_MULTICAST_ALL
                    | libc::IP_MULTICAST_IF
            ),
            libc::IPPROTO_IPV6 => matches!(
                opt,
                libc::IPV6_MULTICAST_HOPS | libc::IPV6_MULTICAST_LOOP | libc::IPV6_MULTICAST_IF
            ),
            _ => false,
        };
        if conn && own {
            continue;
        }
        let (mine, new) = (getopt(fd, level, opt), getopt(nfd, level, opt));
        if mine != new {
            return Err(format!("{shown} with option {name} (not restored)"));
        }
    }
    if !tcp {
        if let Some(group) = multicast_membership(fd, v6) {
            return Err(format!(
                "{shown} member of multicast group {group} (IP_ADD_MEMBERSHIP, not restored)"
            ));
        }
    }
    let on = |level, opt| getopt(fd, level, opt).is_some_and(|v| v != 0);
    let mut opts = 0;
    let bools = [
        (libc::SOL_SOCKET, libc::SO_REUSEADDR, inet_opts::REUSEADDR),
        (libc::SOL_SOCKET, libc::SO_REUSEPORT, inet_opts::REUSEPORT),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, inet_opts::KEEPALIVE),
        (libc::SOL_SOCKET, libc::SO_BROADCAST, inet_opts::BROADCAST),
        (libc::SOL_SOCKET, libc::SO_PASSCRED, inet_opts::PASSCRED),
    ];
    for (level, opt, bit) in bools {
        if on(level, opt) {
            opts |= bit;
        }
    }
    if v6 && on(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) {
        opts |= inet_opts::V6ONLY;
    }
    // (1.6) More booleans.
    let more = [
        (libc::SOL_SOCKET, libc::SO_OOBINLINE, inet_opts::OOBINLINE),
        (libc::SOL_SOCKET, libc::SO_DONTROUTE, inet_opts::DONTROUTE),
        (libc::SOL_SOCKET, libc::SO_NO_CHECK, inet_opts::NO_CHECK),
        (libc::IPPROTO_IP, libc::IP_FREEBIND, inet_opts::FREEBIND),
        (libc::IPPROTO_IP, libc::IP_PKTINFO, inet_opts::PKTINFO),
    ];
    for (level, opt, bit) in more {
        if on(level, opt) {
            opts |= bit;
        }
    }
    if v6 && on(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) {
        opts |= inet_opts::RECVPKTINFO;
    }
    // A value the program set, when it differs from a new socket's.
    let changed = |level, opt| {
        let v = getopt(fd, level, opt)?;
        (Some(v) != getopt(nfd, level, opt)).then_some(v)
    };
    if tcp {
        if on(libc::IPPROTO_TCP, libc::TCP_NODELAY) {
            opts |= inet_opts::NODELAY;
        }
        if on(libc::IPPROTO_TCP, libc::TCP_CORK) {
            opts |= inet_opts::CORK;
        }
        // The keepalive times the program set (a new socket's are the
        // system's, which stay in effect when equal).
        let keep = |opt| changed(libc::IPPROTO_TCP, opt).map_or(0, |v| v.max(0) as u32);
        r.keepidle = keep(libc::TCP_KEEPIDLE);
        r.keepintvl = keep(libc::TCP_KEEPINTVL);
        r.keepcnt = keep(libc::TCP_KEEPCNT);
    } else if on(libc::SOL_UDP, libc::UDP_CORK) {
        opts |= inet_opts::CORK;
    }
    if let Ok(l) = socket::getsockopt(sock, sockopt::Linger) {
        if l.l_onoff != 0 {
            opts |= inet_opts::LINGER;
            r.linger = l.l_linger.max(0) as u32;
        }
    }
    // (1.6) IP_TOS (which sets SO_PRIORITY too), SO_PRIORITY, IP_TTL,
    // IPV6_TCLASS, IPV6_UNICAST_HOPS.
    let bytes = [
        (libc::IPPROTO_IP, libc::IP_TOS, inet_opts::TOS, 0, 255),
        (libc::IPPROTO_IP, libc::IP_TTL, inet_opts::TTL, 1, 255),
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_TCLASS,
            inet_opts::TCLASS,
            0,
            255,
        ),
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            inet_opts::HOPS,
            0,
            255,
        ),
    ];
    for (level, opt, bit, min, max) in bytes {
        if level == libc::IPPROTO_IPV6 && !v6 {
            continue;
        }
        if let Some(v) = changed(level, opt) {
            if !(min..=max).contains(&v) {
                return Err(format!("{shown} with option value {v} kckpt cannot keep"));
            }
            opts |= bit;
            let v = v as u8;
            match bit {
                inet_opts::TOS => r.tos = v,
                inet_opts::TTL => r.ttl = v,
                inet_opts::TCLASS => r.tclass = v,
                _ => r.hops = v,
            }
        }
    }
    if let Some(v) = changed(libc::SOL_SOCKET, libc::SO_PRIORITY) {
        opts |= inet_opts::PRIORITY;
        r.priority = v.max(0) as u32;
    }
    if let Some(v) = changed(libc::SOL_SOCKET, libc::SO_RCVLOWAT) {
        opts |= inet_opts::RCVLOWAT;
        r.rcvlowat = v.max(0) as u32;
    }
    if let Some(v) = changed(libc::SOL_SOCKET, libc::SO_MARK) {
        opts |= inet_opts::MARK;
        r.mark = v as u32;
    }
    // (1.6) SO_BINDTODEVICE: the device's name (bound again by name at
    // restore; unprivileged since Linux 5.7 on a socket not yet bound to
    // one).
    if d.ifindex != 0 || r.state == STATE_CLOSE {
        let dev = socket::getsockopt(sock, sockopt::BindToDevice)
            .map(|n| n.into_encoded_bytes())
            .unwrap_or_default();
        let dev: Vec<u8> = dev.into_iter().take_while(|&c| c != 0).collect();
        if !dev.is_empty() {
            if dev.len() > 15 {
                return Err(format!("{shown} bound to a device with a long name"));
            }
            opts |= inet_opts::BINDTODEVICE;
            r.device[..dev.len()].copy_from_slice(&dev);
        } else if d.ifindex != 0 {
            return Err(format!(
                "{shown} bound to device {} (SO_BINDTODEVICE), its name unknown",
                d.ifindex
            ));
        }
    }
    // Keep the shutdown bits set above.
    r.opts = opts | (r.opts & (inet_opts::SHUT_RD | inet_opts::SHUT_WR));
    // Buffer sizes the program set (setting one locks it: a default one
    // is left to the kernel's tuning).
    let buf = |opt| changed(libc::SOL_SOCKET, opt).map_or(0, |v| v.max(0) as u32);
    // SO_BUF_LOCK (Linux 5.14; 0 before): the buffer sizes the kernel
    // must not tune, which a program may set without setting a size. A
    // connection's sizes are the kernel's tuning unless locked.
    let lock = getopt(fd, libc::SOL_SOCKET, SO_BUF_LOCK).unwrap_or(0);
    if !conn || lock & 2 != 0 {
        r.rcvbuf = buf(libc::SO_RCVBUF);
    }
    if !conn || lock & 1 != 0 {
        r.sndbuf = buf(libc::SO_SNDBUF);
    }
    if lock & 1 != 0 {
        r.opts |= inet_opts::SNDBUF_LOCK;
    }
    if lock & 2 != 0 {
        r.opts |= inet_opts::RCVBUF_LOCK;
    }
    let us = |t: nix::sys::time::TimeVal| {
        (t.tv_sec().max(0) as u64)
            .saturating_mul(1_000_000)
            .saturating_add(t.tv_usec().max(0) as u64)
    };
    r.rcvtimeo = socket::getsockopt(sock, sockopt::ReceiveTimeout).map_or(0, us);
    r.sndtimeo = socket::getsockopt(sock, sockopt::SendTimeout).map_or(0, us);
    Ok(())
}

/// (1.9) The checksum coverage of UDP-Lite socket `sock` as a record's
/// `args[2]` (`kckpt_image::inet::udplite_cscov`): `UDPLITE_SEND_CSCOV`
/// in bits 0-15, `UDPLITE_RECV_CSCOV` in bits 16-31.
pub fn udplite_cscov(sock: &OwnedFd) -> u64 {
    const SOL_UDPLITE: i32 = 136;
    let get = |opt| getopt(sock.as_raw_fd(), SOL_UDPLITE, opt).map_or(0, |v| v.clamp(0, 0xffff));
    (get(UDPLITE_SEND_CSCOV) | get(UDPLITE_RECV_CSCOV) << 16) as u64
}
const UDPLITE_SEND_CSCOV: i32 = 10;
const UDPLITE_RECV_CSCOV: i32 = 11;

/// Whether socket `sock` has an error waiting to be read (`POLLERR`),
/// seen without taking it.
/// A multicast group socket `fd` joined (`IP_ADD_MEMBERSHIP`,
/// `IPV6_JOIN_GROUP`, `MCAST_JOIN_GROUP`...), as `239.1.2.3 on lo`. The
/// kernel lists each device's groups (`/proc/net/igmp`, `/proc/net/igmp6`)
/// but not which sockets joined them: each group is asked of the socket
/// (`getsockopt(MCAST_MSFILTER)` answers for a member, `EADDRNOTAVAIL`
/// otherwise).
fn multicast_membership(fd: RawFd, v6: bool) -> Option<String> {
    // struct group_filter: gf_interface, padding, gf_group, gf_fmode,
    // gf_numsrc (GROUP_FILTER_SIZE(0) = 144 bytes), one source slot.
    let member = |level: i32, ifindex: u32, group: &[u8]| {
        let mut buf = [0u8; 272];
        buf[..4].copy_from_slice(&ifindex.to_ne_bytes());
        buf[8..8 + group.len()].copy_from_slice(group);
        fdsys::sockopt_bytes(fd, level, libc::MCAST_MSFILTER, &mut buf).is_ok()
    };
    let text = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    // "Idx\tDevice : Count ..." then "\t\t\t\tGROUP Users ..." lines.
    let (mut ifindex, mut dev) = (0u32, String::new());
    for line in text("/proc/net/igmp").lines().skip(1) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with('\t') {
            ifindex = w.first().and_then(|s| s.parse().ok()).unwrap_or(0);
            dev = w.get(1).map_or_else(String::new, |s| s.to_string());
            continue;
        }
        // The group in hex, in network byte order read as a host u32.
        let Some(addr) = w.first().and_then(|g| u32::from_str_radix(g, 16).ok()) else {
            continue;
        };
        let addr = addr.to_ne_bytes();
        let mut sin = [0u8; 16];
        sin[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        sin[4..8].copy_from_slice(&addr);
        if member(libc::IPPROTO_IP, ifindex, &sin) {
            let a = std::net::Ipv4Addr::from(addr);
            return Some(format!("{a} on {dev}"));
        }
    }
    if !v6 {
        return None;
    }
    // "IDX DEVICE GROUP(32 hex) USERS FLAGS TIMER"
    for line in text("/proc/net/igmp6").lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(idx), Some(dev), Some(hex)) = (w.first(), w.get(1), w.get(2)) else {
            continue;
        };
        let Ok(ifindex) = idx.parse::<u32>() else {
            continue;
        };
        let Ok(group) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        let mut sin6 = [0u8; 28];
        sin6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        sin6[8..24].copy_from_slice(&group.to_be_bytes());
        if member(libc::IPPROTO_IPV6, ifindex, &sin6) {
            let a = std::net::Ipv6Addr::from(group);
            return Some(format!("{a} on {dev}"));
        }
    }
    None
}

/// Bytes left to read on TCP socket `sock` (`SIOCINQ`).
fn unread(sock: &OwnedFd) -> i32 {
    fdsys::sock_ioctl_int(sock.as_raw_fd(), super::tcp_repair::SIOCINQ).unwrap_or(0)
}

/// Whether socket `sock` polls with `flag` now (`POLLERR`: an error
/// waiting to be read, seen without taking it).
fn polls(sock: &OwnedFd, flag: PollFlags) -> bool {
    use std::os::fd::AsFd;
    let mut p = [PollFd::new(sock.as_fd(), flag)];
    poll(&mut p, PollTimeout::ZERO).is_ok() && p[0].revents().is_some_and(|r| r.contains(flag))
}

/// The name an inet socket that is neither TCP nor UDP is refused by:
/// raw, SCTP, MPTCP sockets ((1.9) UDP-Lite and ICMP (ping) sockets are
/// UDP's).
pub fn other_name(domain: i32, ty: i32, proto: i32) -> String {
    let v = if domain == libc::AF_INET6 {
        "IPv6"
    } else {
        "IPv4"
    };
    match (ty, proto) {
        (libc::SOCK_RAW, p) => format!("raw {v} socket (protocol {p})"),
        (libc::SOCK_DGRAM, libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6) => {
            format!("ICMP (ping) {v} socket")
        }
        (_, libc::IPPROTO_SCTP) => format!("SCTP {v} socket"),
        (_, libc::IPPROTO_UDPLITE) => format!("UDP-Lite {v} socket"),
        (_, libc::IPPROTO_MPTCP) => format!("MPTCP {v} socket"),
        _ => format!("{v} socket of type {ty}, protocol {proto}"),
    }
}

/// What a socket of protocol `proto` (as for [`record`]) is called.
pub fn noun(proto: i32) -> &'static str {
    match proto {
        libc::IPPROTO_TCP => "TCP socket",
        libc::IPPROTO_UDPLITE => "UDP-Lite socket",
        libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6 => "ICMP (ping) socket",
        _ => "UDP socket",
    }
}

/// The name under which a socket of `proto` with record `r` is shown.
pub fn shown(proto: i32, r: &InetRecord) -> String {
    let local = addr_text(r.family, &r.local, r.local_port);
    let noun = noun(proto);
    match (proto == libc::IPPROTO_TCP, r.state) {
        (true, STATE_LISTEN) => format!("TCP listener {local}"),
        (true, _) if r.local_port == 0 => "TCP socket, not bound".to_owned(),
        (true, _) => format!("TCP socket {local}, bound, not listening"),
        (false, STATE_ESTABLISHED) => format!(
            "{noun} {local} -> {}",
            addr_text(r.family, &r.peer, r.peer_port)
        ),
        (false, _) if r.local_port == 0 => format!("{noun}, not bound"),
        (false, _) => format!("{noun} {local}"),
    }
}

/// The datagrams queued on UDP socket `sock`, in order, peeked without
/// taking them: their count and the record's data. The peek offset
/// (`SO_PEEK_OFF`, shared with the process's socket) is put back as it
/// was. Refused: a sender address this host does not have (only the
/// kernel could send from it again), a queue `inet_diag` says is not
/// empty where no datagram shows (the kernel shows a zero-length datagram
/// to one peek only: one the process peeked before is invisible).
fn udp_datagrams(
    sock: &OwnedFd,
    shown: &str,
    family: u16,
    rqueue: u32,
) -> Result<(u32, Vec<u8>), String> {
    use kckpt_image::inet::{Datagram, MAX_DATAGRAM};
    let fd = sock.as_raw_fd();
    let old = fdsys::sockopt_at(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap_or(-1);
    fdsys::set_sockopt_at(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0)
        .map_err(|e| format!("{shown} (cannot peek at its datagrams: {e})"))?;
    let mut buf = vec![0u8; MAX_DATAGRAM as usize + 1];
    let mut data = Vec::new();
    let mut n = 0u32;
    let mut refusal = None;
    while let Ok((len, from)) = fdsys::peek_datagram(fd, &mut buf) {
        if len > MAX_DATAGRAM as usize {
            refusal = Some(format!(
                "{shown} with a queued datagram over {MAX_DATAGRAM} bytes"
            ));
            break;
        }
        let mut d = Datagram {
            family,
            len: len as u32,
            port: from.map_or(0, |a| a.port()),
            ..Datagram::default()
        };
        let fits = match from {
            Some(std::net::SocketAddr::V4(a)) if family == AF_INET => {
                d.addr[..4].copy_from_slice(&a.ip().octets());
                true
            }
            Some(std::net::SocketAddr::V6(a)) if family == AF_INET6 => {
                d.addr = a.ip().octets();
                true
            }
            _ => false,
        };
        if !fits || d.port == 0 || !local_address(family, &d.addr) {
            refusal = Some(format!(
                "{shown} with a queued datagram from {} (only a sender on this host can be \
                 reproduced)",
                from.map_or("an address of another family".to_owned(), |a| a.to_string())
            ));
            break;
        }
        data.extend_from_slice(&d.encode());
        data.extend_from_slice(&buf[..len]);
        n += 1;
    }
    let _ = fdsys::set_sockopt_at(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old);
    if let Some(what) = refusal {
        return Err(what);
    }
    if n == 0 && rqueue > 0 {
        return Err(format!(
            "{shown} with queued datagrams a peek does not show ({rqueue} bytes queued: \
             a zero-length datagram the process peeked at before)"
        ));
    }
    Ok((n, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listener_answer_and_shows_addresses() {
        let mut m = vec![0u8; 72];
        m[0] = 2;
        m[1] = 10;
        m[4..6].copy_from_slice(&8080u16.to_be_bytes());
        m[8..12].copy_from_slice(&[127, 0, 0, 1]);
        m[56..60].copy_from_slice(&3u32.to_le_bytes());
        m[60..64].copy_from_slice(&128u32.to_le_bytes());
        m[68..72].copy_from_slice(&77u32.to_le_bytes());
        assert!(parse(&m, 78).is_none());
        let d = parse(&m, 77).unwrap();
        assert_eq!((d.state, d.sport, d.rqueue, d.wqueue), (10, 8080, 3, 128));
        assert_eq!(addr_text(AF_INET, &d.src, d.sport), "127.0.0.1:8080");
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(addr_text(AF_INET6, &one, 80), "[::1]:80");
    }
}
