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

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::libc;
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
}

/// `inet_diag` of socket inode `ino` of `family` (`AF_INET`...) and
/// protocol (`IPPROTO_TCP`, `IPPROTO_UDP`).
pub fn diag(family: i32, protocol: i32, ino: u64) -> Option<InetDiag> {
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
                2 | 3 => return None, // NLMSG_ERROR, NLMSG_DONE: not found
                SOCK_DIAG_BY_FAMILY => {
                    if let Some(d) = parse(&buf[at + 16..at + len], ino) {
                        return Some(d);
                    }
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
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

/// What a socket not bound has for `inet_diag` (which does not see it):
/// state close, port 0; `None` when it is bound after all.
pub fn unbound(sock: &OwnedFd) -> Option<InetDiag> {
    // getsockname through std (works on any inet socket).
    let a = std::net::UdpSocket::from(sock.try_clone().ok()?)
        .local_addr()
        .ok()?;
    let (family, port) = match a {
        std::net::SocketAddr::V4(v4) => (libc::AF_INET, v4.port()),
        std::net::SocketAddr::V6(v6) => (libc::AF_INET6, v6.port()),
    };
    (port == 0).then(|| InetDiag {
        family: family as u8,
        state: 7,
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
    (libc::SOL_SOCKET, libc::SO_PRIORITY, "SO_PRIORITY"),
    (libc::SOL_SOCKET, libc::SO_MARK, "SO_MARK"),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE, "SO_OOBINLINE"),
    (libc::SOL_SOCKET, libc::SO_DONTROUTE, "SO_DONTROUTE"),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT, "SO_RCVLOWAT"),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMP, "SO_TIMESTAMP"),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, "SO_TIMESTAMPNS"),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPING, "SO_TIMESTAMPING"),
    (libc::SOL_SOCKET, libc::SO_PASSSEC, "SO_PASSSEC"),
    (libc::SOL_SOCKET, libc::SO_RXQ_OVFL, "SO_RXQ_OVFL"),
    (libc::SOL_SOCKET, libc::SO_BUSY_POLL, "SO_BUSY_POLL"),
    (libc::SOL_SOCKET, libc::SO_ZEROCOPY, "SO_ZEROCOPY"),
    (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, "SO_ATTACH_FILTER"),
    (libc::IPPROTO_IP, libc::IP_TOS, "IP_TOS"),
    (libc::IPPROTO_IP, libc::IP_TTL, "IP_TTL"),
    (libc::IPPROTO_IP, libc::IP_RECVOPTS, "IP_RECVOPTS"),
    (libc::IPPROTO_IP, libc::IP_RECVTTL, "IP_RECVTTL"),
    (libc::IPPROTO_IP, libc::IP_RECVTOS, "IP_RECVTOS"),
    (libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO"),
    (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, "IP_MTU_DISCOVER"),
    (libc::IPPROTO_IP, libc::IP_RECVERR, "IP_RECVERR"),
    (libc::IPPROTO_IP, libc::IP_FREEBIND, "IP_FREEBIND"),
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
    (
        libc::IPPROTO_IPV6,
        libc::IPV6_UNICAST_HOPS,
        "IPV6_UNICAST_HOPS",
    ),
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
    (
        libc::IPPROTO_IPV6,
        libc::IPV6_RECVPKTINFO,
        "IPV6_RECVPKTINFO",
    ),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS, "IPV6_TCLASS"),
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

/// A TCP or UDP socket of the dumped process, `sock` a copy of it: its
/// record, with the lost queue (listener: connections, UDP: bytes) when
/// that is not empty, or the reason it is refused.
pub fn record(sock: &OwnedFd, tcp: bool, d: &InetDiag) -> Result<(InetRecord, u32), String> {
    let family = u16::from(d.family);
    let local = addr_text(family, &d.src, d.sport);
    let peer = addr_text(family, &d.dst, d.dport);
    let mut r = InetRecord {
        family,
        local_port: d.sport,
        local: d.src,
        ..InetRecord::default()
    };
    if tcp {
        match d.state {
            10 => {}
            1 => return Err(format!("TCP connection {local} -> {peer}")),
            7 if d.sport == 0 => return Err("TCP socket, not bound".into()),
            7 => return Err(format!("TCP socket {local}, bound, not listening")),
            s => {
                return Err(format!(
                    "TCP socket {local} -> {peer} in state {}",
                    state_name(s)
                ))
            }
        }
        r.state = STATE_LISTEN;
        r.backlog = d.wqueue;
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
    let shown = match (tcp, r.state) {
        (true, _) => format!("TCP listener {local}"),
        (false, STATE_ESTABLISHED) => format!("UDP socket {local} -> {peer}"),
        (false, _) if d.sport == 0 => "UDP socket, not bound".to_owned(),
        (false, _) => format!("UDP socket {local}"),
    };
    options(sock, tcp, false, d, &shown, &mut r)?;
    let fd = sock.as_raw_fd();
    // Queued input: connections not accepted, datagrams not read.
    let lost = if tcp { d.rqueue } else { udp_queued(fd, d) };
    if InetRecord::parse(
        if tcp {
            kckpt_image::inet::INET_LISTEN_FD_KIND
        } else {
            UDP_FD_KIND
        },
        &r.encode(),
    )
    .is_none()
    {
        return Err(format!("{shown} with option values kckpt cannot keep"));
    }
    Ok((r, lost))
}

/// The options of TCP or UDP socket `sock` (`d` its `inet_diag`, `shown`
/// its name in messages) into `r`, or the reason it is refused. `conn`: an
/// established TCP connection (`TCP_MAXSEG` and `TCP_WINDOW_CLAMP` are the
/// connection's own, restored by TCP repair; buffer sizes are the kernel's
/// tuning, not saved).
pub fn options(
    sock: &OwnedFd,
    tcp: bool,
    conn: bool,
    d: &InetDiag,
    shown: &str,
    r: &mut InetRecord,
) -> Result<(), String> {
    let family = u16::from(d.family);
    if d.shutdown != 0 {
        return Err(format!(
            "{shown} shut down for {} (shutdown(2), not restored)",
            match d.shutdown & 3 {
                1 => "reading",
                2 => "writing",
                _ => "reading and writing",
            }
        ));
    }
    if d.ifindex != 0 {
        return Err(format!(
            "{shown} bound to a device (SO_BINDTODEVICE, not restored)"
        ));
    }
    if d.sport != 0 && !local_address(family, &d.src) {
        return Err(format!(
            "{shown} (an address this host does not have: bound with IP_FREEBIND or IP_TRANSPARENT)"
        ));
    }
    let fd = sock.as_raw_fd();
    let v6 = family == AF_INET6;
    let fresh = socket::socket(
        if v6 {
            socket::AddressFamily::Inet6
        } else {
            socket::AddressFamily::Inet
        },
        if tcp {
            socket::SockType::Stream
        } else {
            socket::SockType::Datagram
        },
        socket::SockFlag::SOCK_CLOEXEC,
        None,
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
        if opt == libc::SO_ATTACH_FILTER {
            if fdsys::filter_len(fd) != 0 {
                return Err(format!(
                    "{shown} with a socket filter (SO_ATTACH_FILTER, not restored)"
                ));
            }
            continue;
        }
        // A connection's MSS and window clamp are its own (TCP repair
        // restores them); an accepted one took its multicast TTL / hop
        // limit from the SYN, and multicast means nothing to TCP.
        let own = match level {
            libc::IPPROTO_TCP => matches!(opt, libc::TCP_MAXSEG | libc::TCP_WINDOW_CLAMP),
            libc::IPPROTO_IP => matches!(
                opt,
                libc::IP_MULTICAST_TTL | libc::IP_MULTICAST_LOOP | libc::IP_MULTICAST_ALL
            ),
            libc::IPPROTO_IPV6 => {
                matches!(opt, libc::IPV6_MULTICAST_HOPS | libc::IPV6_MULTICAST_LOOP)
            }
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
    if tcp {
        if on(libc::IPPROTO_TCP, libc::TCP_NODELAY) {
            opts |= inet_opts::NODELAY;
        }
        if on(libc::IPPROTO_TCP, libc::TCP_CORK) {
            opts |= inet_opts::CORK;
        }
        // The keepalive times the program set (a new socket's are the
        // system's, which stay in effect when equal).
        let keep = |opt| {
            let v = getopt(fd, libc::IPPROTO_TCP, opt).unwrap_or(0);
            let default = getopt(nfd, libc::IPPROTO_TCP, opt).unwrap_or(0);
            if v == default {
                0
            } else {
                v.max(0) as u32
            }
        };
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
    r.opts = opts;
    // Buffer sizes the program set (setting one locks it: a default one
    // is left to the kernel's tuning).
    let buf = |opt| {
        let v = getopt(fd, libc::SOL_SOCKET, opt).unwrap_or(0);
        let default = getopt(nfd, libc::SOL_SOCKET, opt).unwrap_or(0);
        if v == default {
            0
        } else {
            v.max(0) as u32
        }
    };
    if !conn {
        r.rcvbuf = buf(libc::SO_RCVBUF);
        r.sndbuf = buf(libc::SO_SNDBUF);
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

/// The name under which a socket with record `r` is shown.
pub fn shown(tcp: bool, r: &InetRecord) -> String {
    let local = addr_text(r.family, &r.local, r.local_port);
    match (tcp, r.state) {
        (true, _) => format!("TCP listener {local}"),
        (false, STATE_ESTABLISHED) => format!(
            "UDP socket {local} -> {}",
            addr_text(r.family, &r.peer, r.peer_port)
        ),
        (false, _) if r.local_port == 0 => "UDP socket, not bound".to_owned(),
        (false, _) => format!("UDP socket {local}"),
    }
}

/// Bytes of datagrams queued on a UDP socket (0: none, by a peek that
/// takes nothing).
fn udp_queued(fd: RawFd, d: &InetDiag) -> u32 {
    let mut b = [0u8; 1];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
    match socket::recv(fd, &mut b, flags) {
        Ok(_) => d.rqueue.max(1),
        Err(_) => 0,
    }
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
