//! TCP listening sockets and UDP sockets over IPv4 and IPv6 (format 1.5,
//! fd kinds 42 and 43).
//!
//! A record of kind [`INET_LISTEN_FD_KIND`] is a TCP socket that was
//! listening, with no connection waiting to be accepted, or (1.6) one
//! neither listening nor connected (not bound, or bound); one of kind
//! [`UDP_FD_KIND`] a UDP socket, unbound, bound or connected, with (1.6)
//! its queued datagrams as data ([`Datagram`] headers, each followed by
//! its bytes). `args[0]` is the address family (2 `AF_INET`, 10
//! `AF_INET6`), `args[1..]` 0; `flags` the file status flags (`O_RDWR`,
//! maybe `O_NONBLOCK`). `path` holds the socket's [`InetRecord`]
//! ([`INET_RECORD_LEN`] bytes, little-endian, not text): addresses,
//! backlog and the socket options restored.

/// The fd kind of a listening TCP socket.
pub const INET_LISTEN_FD_KIND: u32 = 42;
/// The fd kind of a UDP socket.
pub const UDP_FD_KIND: u32 = 43;

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// `TCP_ESTABLISHED`: a connected UDP socket, an established TCP
/// connection (kind 44, `crate::tcp`).
pub const STATE_ESTABLISHED: u16 = 1;
/// `TCP_CLOSE`: an unconnected UDP socket (bound or not); (1.6) a TCP
/// socket neither listening nor connected.
pub const STATE_CLOSE: u16 = 7;
/// `TCP_LISTEN`.
pub const STATE_LISTEN: u16 = 10;

/// Length of an encoded [`InetRecord`].
pub const INET_RECORD_LEN: usize = 128;

/// `InetRecord::opts` bits: boolean socket options that were on.
pub mod inet_opts {
    /// `SO_REUSEADDR`.
    pub const REUSEADDR: u32 = 1 << 0;
    /// `SO_REUSEPORT`.
    pub const REUSEPORT: u32 = 1 << 1;
    /// `SO_KEEPALIVE`.
    pub const KEEPALIVE: u32 = 1 << 2;
    /// `TCP_NODELAY` (TCP only).
    pub const NODELAY: u32 = 1 << 3;
    /// `TCP_CORK` (TCP), `UDP_CORK` (UDP).
    pub const CORK: u32 = 1 << 4;
    /// `IPV6_V6ONLY` (IPv6 only).
    pub const V6ONLY: u32 = 1 << 5;
    /// `SO_BROADCAST`.
    pub const BROADCAST: u32 = 1 << 6;
    /// `SO_PASSCRED`.
    pub const PASSCRED: u32 = 1 << 7;
    /// `SO_LINGER` on, for `InetRecord::linger` seconds.
    pub const LINGER: u32 = 1 << 8;
    /// (1.6) `IP_TOS` set to `InetRecord::tos`.
    pub const TOS: u32 = 1 << 9;
    /// (1.6) `IP_TTL` set to `InetRecord::ttl`.
    pub const TTL: u32 = 1 << 10;
    /// (1.6) `SO_PRIORITY` set to `InetRecord::priority` (after `IP_TOS`,
    /// which sets it too).
    pub const PRIORITY: u32 = 1 << 11;
    /// (1.6) `IPV6_TCLASS` set to `InetRecord::tclass` (IPv6 only).
    pub const TCLASS: u32 = 1 << 12;
    /// (1.6) `IPV6_UNICAST_HOPS` set to `InetRecord::hops` (IPv6 only).
    pub const HOPS: u32 = 1 << 13;
    /// (1.6) `SO_BINDTODEVICE` to `InetRecord::device`.
    pub const BINDTODEVICE: u32 = 1 << 14;
    /// (1.6) `SO_OOBINLINE`.
    pub const OOBINLINE: u32 = 1 << 15;
    /// (1.6) `SO_DONTROUTE`.
    pub const DONTROUTE: u32 = 1 << 16;
    /// (1.6) `SO_NO_CHECK`.
    pub const NO_CHECK: u32 = 1 << 17;
    /// (1.6) `IP_FREEBIND` (`IPV6_FREEBIND` is the same flag), set before
    /// `bind`.
    pub const FREEBIND: u32 = 1 << 18;
    /// (1.6) `IP_PKTINFO`.
    pub const PKTINFO: u32 = 1 << 19;
    /// (1.6) `IPV6_RECVPKTINFO` (IPv6 only).
    pub const RECVPKTINFO: u32 = 1 << 20;
    /// (1.6) `SO_RCVLOWAT` set to `InetRecord::rcvlowat`.
    pub const RCVLOWAT: u32 = 1 << 21;
    /// (1.6) `SO_MARK` set to `InetRecord::mark` (needs `CAP_NET_ADMIN`
    /// or `CAP_NET_RAW` at restore).
    pub const MARK: u32 = 1 << 22;
    /// (1.6) `SO_BUF_LOCK` bit 0: the send buffer size is locked (set by
    /// the program, explicitly or by `SO_SNDBUF`).
    pub const SNDBUF_LOCK: u32 = 1 << 23;
    /// (1.6) `SO_BUF_LOCK` bit 1: the receive buffer size is locked.
    pub const RCVBUF_LOCK: u32 = 1 << 24;
    /// (1.7, UDP; 1.9, a TCP socket in state close) shut down for reading
    /// (`shutdown(SHUT_RD)`).
    pub const SHUT_RD: u32 = 1 << 25;
    /// (1.7, UDP; 1.9, a TCP socket in state close) shut down for writing
    /// (`shutdown(SHUT_WR)`).
    pub const SHUT_WR: u32 = 1 << 26;
    /// All known bits.
    pub const KNOWN: u32 = (1 << 27) - 1;
}

/// One TCP listener or UDP socket, as stored in its record's `path`.
///
/// Layout (little-endian): 0 `family` u16, 2 `state` u16, 4 `local_port`
/// u16, 6 `peer_port` u16, 8 `local` 16 bytes, 24 `peer` 16 bytes, 40
/// `backlog` u32, 44 `opts` u32, 48 `keepidle` u32, 52 `keepintvl` u32,
/// 56 `keepcnt` u32, 60 `rcvbuf` u32, 64 `sndbuf` u32, 68 `linger` u32,
/// 72 `rcvtimeo` u64, 80 `sndtimeo` u64, 88 `lost` u32, (1.6) 92
/// `priority` u32, 96 `tos` u8, 97 `ttl` u8, 98 `tclass` u8, 99 `hops` u8,
/// 100 `device` 16 bytes, 116 `datagrams` u32, 120 `rcvlowat` u32, 124
/// `mark` u32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InetRecord {
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// [`STATE_LISTEN`] (kind 42), [`STATE_CLOSE`] or
    /// [`STATE_ESTABLISHED`] (kind 43).
    pub state: u16,
    /// Bound port (0: not bound; a listener always has one).
    pub local_port: u16,
    /// Peer port (a connected UDP socket), else 0.
    pub peer_port: u16,
    /// Bound address (IPv4: the first 4 bytes, the rest 0).
    pub local: [u8; 16],
    /// Peer address (a connected UDP socket), else 0.
    pub peer: [u8; 16],
    /// `listen` backlog (`sk_max_ack_backlog`); 0 for UDP.
    pub backlog: u32,
    /// [`inet_opts`] bits.
    pub opts: u32,
    /// `TCP_KEEPIDLE` seconds set by the program (0: the system's).
    pub keepidle: u32,
    /// `TCP_KEEPINTVL` seconds (0: the system's).
    pub keepintvl: u32,
    /// `TCP_KEEPCNT` (0: the system's).
    pub keepcnt: u32,
    /// `SO_RCVBUF` as `getsockopt` gave it (0: the default, not set).
    pub rcvbuf: u32,
    /// `SO_SNDBUF` (0: the default, not set).
    pub sndbuf: u32,
    /// `SO_LINGER` seconds (with [`inet_opts::LINGER`]).
    pub linger: u32,
    /// `SO_RCVTIMEO` in microseconds (0: none).
    pub rcvtimeo: u64,
    /// `SO_SNDTIMEO` in microseconds (0: none).
    pub sndtimeo: u64,
    /// Connections waiting to be accepted (listener) or bytes of queued
    /// datagrams (UDP) that were dropped at dump (`--skip-unsupported`);
    /// shown by `kckpt info`, not restored.
    pub lost: u32,
    /// (1.6) `SO_PRIORITY` (with [`inet_opts::PRIORITY`]).
    pub priority: u32,
    /// (1.6) `IP_TOS` (with [`inet_opts::TOS`]).
    pub tos: u8,
    /// (1.6) `IP_TTL`, 1-255 (with [`inet_opts::TTL`]).
    pub ttl: u8,
    /// (1.6) `IPV6_TCLASS` (with [`inet_opts::TCLASS`]).
    pub tclass: u8,
    /// (1.6) `IPV6_UNICAST_HOPS`, 0-255 (with [`inet_opts::HOPS`]).
    pub hops: u8,
    /// (1.6) `SO_BINDTODEVICE` interface name, NUL-padded, 1-15 bytes
    /// (with [`inet_opts::BINDTODEVICE`]), else 0.
    pub device: [u8; 16],
    /// (1.6) UDP: datagrams queued to read, stored in order as the
    /// record's data; else 0.
    pub datagrams: u32,
    /// (1.6) `SO_RCVLOWAT` (with [`inet_opts::RCVLOWAT`]).
    pub rcvlowat: u32,
    /// (1.6) `SO_MARK` (with [`inet_opts::MARK`]).
    pub mark: u32,
}

/// Length of a [`Datagram`] header in a UDP record's data.
pub const DATAGRAM_HEADER_LEN: usize = 24;
/// Longest datagram kept (the most a UDP datagram carries over IPv6).
pub const MAX_DATAGRAM: u32 = 65535;

/// (1.6) The header of one queued datagram in a UDP record's data,
/// followed by its `len` bytes: 0 `family` u16 (the socket's), 2 `port`
/// u16 (the sender's), 4 `len` u32, 8 `addr` 16 bytes (the sender's
/// address, IPv4 in the first 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Datagram {
    /// [`AF_INET`] or [`AF_INET6`], the socket's family.
    pub family: u16,
    /// The sender's port.
    pub port: u16,
    /// Bytes of the datagram (at most [`MAX_DATAGRAM`]; 0 is a datagram).
    pub len: u32,
    /// The sender's address.
    pub addr: [u8; 16],
}

impl Datagram {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; DATAGRAM_HEADER_LEN] {
        let mut b = [0u8; DATAGRAM_HEADER_LEN];
        b[0..2].copy_from_slice(&self.family.to_le_bytes());
        b[2..4].copy_from_slice(&self.port.to_le_bytes());
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..24].copy_from_slice(&self.addr);
        b
    }

    /// The header in `b` when it fits a socket of `family` (a port, a
    /// length within [`MAX_DATAGRAM`], an IPv4 address in 4 bytes).
    pub fn parse(family: u16, b: &[u8; DATAGRAM_HEADER_LEN]) -> Option<Datagram> {
        let mut d = Datagram {
            family: u16::from_le_bytes([b[0], b[1]]),
            port: u16::from_le_bytes([b[2], b[3]]),
            len: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            ..Datagram::default()
        };
        d.addr.copy_from_slice(&b[8..24]);
        let v4_ok = family != AF_INET || d.addr[4..].iter().all(|&x| x == 0);
        (d.family == family && d.port != 0 && d.len <= MAX_DATAGRAM && v4_ok).then_some(d)
    }
}

/// Longest keepalive time / interval the kernel accepts.
const MAX_KEEP_SECS: u32 = 32767;
/// Most keepalive probes the kernel accepts.
const MAX_KEEPCNT: u32 = 127;
/// Longest timeout kept (2^50 microseconds, well within a `timeval`).
const MAX_TIMEO_US: u64 = 1 << 50;

impl InetRecord {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; INET_RECORD_LEN] {
        let mut b = [0u8; INET_RECORD_LEN];
        b[0..2].copy_from_slice(&self.family.to_le_bytes());
        b[2..4].copy_from_slice(&self.state.to_le_bytes());
        b[4..6].copy_from_slice(&self.local_port.to_le_bytes());
        b[6..8].copy_from_slice(&self.peer_port.to_le_bytes());
        b[8..24].copy_from_slice(&self.local);
        b[24..40].copy_from_slice(&self.peer);
        let words = [
            self.backlog,
            self.opts,
            self.keepidle,
            self.keepintvl,
            self.keepcnt,
            self.rcvbuf,
            self.sndbuf,
            self.linger,
        ];
        for (i, w) in words.iter().enumerate() {
            b[40 + 4 * i..44 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        b[72..80].copy_from_slice(&self.rcvtimeo.to_le_bytes());
        b[80..88].copy_from_slice(&self.sndtimeo.to_le_bytes());
        b[88..92].copy_from_slice(&self.lost.to_le_bytes());
        b[92..96].copy_from_slice(&self.priority.to_le_bytes());
        b[96..100].copy_from_slice(&[self.tos, self.ttl, self.tclass, self.hops]);
        b[100..116].copy_from_slice(&self.device);
        b[116..120].copy_from_slice(&self.datagrams.to_le_bytes());
        b[120..124].copy_from_slice(&self.rcvlowat.to_le_bytes());
        b[124..128].copy_from_slice(&self.mark.to_le_bytes());
        b
    }

    /// The record in `b`, when `b` is one that a record of fd kind
    /// `kind` may hold (every value checked; reserved bytes 0).
    pub fn parse(kind: u32, b: &[u8]) -> Option<InetRecord> {
        if b.len() != INET_RECORD_LEN {
            return None;
        }
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | u64::from(u32_at(o + 4)) << 32;
        let mut r = InetRecord {
            family: u16_at(0),
            state: u16_at(2),
            local_port: u16_at(4),
            peer_port: u16_at(6),
            backlog: u32_at(40),
            opts: u32_at(44),
            keepidle: u32_at(48),
            keepintvl: u32_at(52),
            keepcnt: u32_at(56),
            rcvbuf: u32_at(60),
            sndbuf: u32_at(64),
            linger: u32_at(68),
            rcvtimeo: u64_at(72),
            sndtimeo: u64_at(80),
            lost: u32_at(88),
            priority: u32_at(92),
            tos: b[96],
            ttl: b[97],
            tclass: b[98],
            hops: b[99],
            datagrams: u32_at(116),
            rcvlowat: u32_at(120),
            mark: u32_at(124),
            ..InetRecord::default()
        };
        r.device.copy_from_slice(&b[100..116]);
        r.local.copy_from_slice(&b[8..24]);
        r.peer.copy_from_slice(&b[24..40]);
        r.valid(kind).then_some(r)
    }

    fn valid(&self, kind: u32) -> bool {
        use inet_opts::*;
        let v4 = self.family == AF_INET;
        let tcp = kind == INET_LISTEN_FD_KIND || kind == crate::tcp::TCP_CONN_FD_KIND;
        let addr_ok = |a: &[u8; 16]| !v4 || a[4..].iter().all(|&x| x == 0);
        let zero = |a: &[u8; 16]| a.iter().all(|&x| x == 0);
        let state_ok = match (kind, self.state) {
            (INET_LISTEN_FD_KIND, STATE_LISTEN) => {
                self.local_port != 0 && self.backlog <= i32::MAX as u32
            }
            (INET_LISTEN_FD_KIND, STATE_CLOSE) => {
                self.backlog == 0 && (self.local_port != 0 || zero(&self.local))
            }
            (UDP_FD_KIND, STATE_CLOSE) => {
                self.backlog == 0
                    && self.peer_port == 0
                    && zero(&self.peer)
                    && (self.local_port != 0 || zero(&self.local))
            }
            // (Port 0 too: Linux lets a UDP socket connect to it.)
            (UDP_FD_KIND, STATE_ESTABLISHED) => self.backlog == 0,
            // (1.6) An established TCP connection (`crate::tcp`); (1.7)
            // or a half-closed one.
            (crate::tcp::TCP_CONN_FD_KIND, s) if crate::tcp::conn_state_known(s) => {
                self.backlog == 0 && self.peer_port != 0 && self.local_port != 0
            }
            _ => false,
        };
        let keep_ok = |v: u32, max: u32| v <= max && (tcp || v == 0);
        let only_with = |bit: u32, unset: bool| self.opts & bit != 0 || unset;
        let dev = &self.device;
        let dev_len = dev.iter().position(|&c| c == 0).unwrap_or(16);
        let dev_ok = if self.opts & BINDTODEVICE != 0 {
            (1..16).contains(&dev_len) && dev[dev_len..].iter().all(|&c| c == 0)
        } else {
            zero(dev)
        };
        (v4 || self.family == AF_INET6)
            && state_ok
            && (self.state == STATE_ESTABLISHED
                || kind == crate::tcp::TCP_CONN_FD_KIND
                || (self.peer_port == 0 && zero(&self.peer)))
            && addr_ok(&self.local)
            && addr_ok(&self.peer)
            && self.opts & !KNOWN == 0
            && (!tcp
                || self.opts & (SHUT_RD | SHUT_WR) == 0
                || (kind == INET_LISTEN_FD_KIND && self.state == STATE_CLOSE))
            && (tcp || self.opts & NODELAY == 0)
            && (!v4 || self.opts & V6ONLY == 0)
            && (self.opts & LINGER != 0 || self.linger == 0)
            && self.linger <= i32::MAX as u32
            && keep_ok(self.keepidle, MAX_KEEP_SECS)
            && keep_ok(self.keepintvl, MAX_KEEP_SECS)
            && keep_ok(self.keepcnt, MAX_KEEPCNT)
            && self.rcvbuf <= i32::MAX as u32
            && self.sndbuf <= i32::MAX as u32
            && self.rcvtimeo <= MAX_TIMEO_US
            && self.sndtimeo <= MAX_TIMEO_US
            && only_with(TOS, self.tos == 0)
            && only_with(TTL, self.ttl == 0)
            && (self.opts & TTL == 0 || self.ttl != 0)
            && only_with(PRIORITY, self.priority == 0)
            && self.priority <= i32::MAX as u32
            && only_with(TCLASS, self.tclass == 0)
            && only_with(HOPS, self.hops == 0)
            && (!v4 || self.opts & (TCLASS | HOPS | RECVPKTINFO) == 0)
            && only_with(RCVLOWAT, self.rcvlowat == 0)
            && self.rcvlowat <= i32::MAX as u32
            && only_with(MARK, self.mark == 0)
            && dev_ok
            && (!tcp || self.datagrams == 0)
    }
}

/// (1.9) `IPPROTO_UDPLITE`: a kind-43 record's `args[1]` for a UDP-Lite
/// socket (0: UDP).
pub const IPPROTO_UDPLITE: u64 = 136;

/// (1.9) `IPPROTO_ICMP` and `IPPROTO_ICMPV6`: a kind-43 record's
/// `args[1]` for an ICMP (ping) socket of family `AF_INET` and `AF_INET6`.
pub const IPPROTO_ICMP: u64 = 1;
/// See [`IPPROTO_ICMP`].
pub const IPPROTO_ICMPV6: u64 = 58;

/// (1.9) A UDP-Lite socket's checksum coverage in its record's `args[2]`:
/// `UDPLITE_SEND_CSCOV` in bits 0-15, `UDPLITE_RECV_CSCOV` in bits 16-31
/// (0: the whole datagram).
pub fn udplite_cscov(args: [u64; 4]) -> (u16, u16) {
    (args[2] as u16, (args[2] >> 16) as u16)
}

/// Kind-specific checks of a primary record of kind 42 or 43: the
/// family in `args[0]` matches the record in `path`; data only with
/// queued datagrams, at least their headers (the stub reads and checks
/// each header before anything changes); (1.9) a UDP-Lite socket (kind
/// 43) has `args[1]` [`IPPROTO_UDPLITE`] and its coverage in `args[2]`,
/// an ICMP (ping) one [`IPPROTO_ICMP`] or [`IPPROTO_ICMPV6`].
pub fn args_ok(kind: u32, args: [u64; 4], path: &[u8], data_len: u64) -> bool {
    let Some(r) = InetRecord::parse(kind, path) else {
        return false;
    };
    let n = u64::from(r.datagrams);
    let data_ok = if n == 0 {
        data_len == 0
    } else {
        data_len >= n * DATAGRAM_HEADER_LEN as u64
            && data_len <= n * (DATAGRAM_HEADER_LEN as u64 + u64::from(MAX_DATAGRAM))
    };
    let proto_ok = match args[1] {
        0 => args[2] == 0,
        IPPROTO_UDPLITE => kind == UDP_FD_KIND && args[2] >> 32 == 0,
        // (1.9) An ICMP (ping) socket: no datagram queued (echo replies
        // cannot be sent to it again), no coverage.
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let family = if args[1] == IPPROTO_ICMP {
                AF_INET
            } else {
                AF_INET6
            };
            kind == UDP_FD_KIND && r.family == family && args[2] == 0 && r.datagrams == 0
        }
        _ => false,
    };
    args[0] == u64::from(r.family) && proto_ok && args[3] == 0 && data_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> InetRecord {
        InetRecord {
            family: AF_INET,
            state: STATE_LISTEN,
            local_port: 8080,
            local: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            backlog: 128,
            opts: inet_opts::REUSEADDR | inet_opts::NODELAY,
            keepidle: 60,
            rcvtimeo: 1_500_000,
            ..InetRecord::default()
        }
    }

    #[test]
    fn round_trips_and_checks_values() {
        let r = listener();
        let b = r.encode();
        assert_eq!(InetRecord::parse(INET_LISTEN_FD_KIND, &b), Some(r));
        assert!(args_ok(INET_LISTEN_FD_KIND, [2, 0, 0, 0], &b, 0));
        // Family mismatch, data, a UDP kind for a listener.
        assert!(!args_ok(INET_LISTEN_FD_KIND, [10, 0, 0, 0], &b, 0));
        assert!(!args_ok(INET_LISTEN_FD_KIND, [2, 0, 0, 0], &b, 1));
        assert!(InetRecord::parse(UDP_FD_KIND, &b).is_none());
        let bad = |f: &dyn Fn(&mut InetRecord)| {
            let mut x = listener();
            f(&mut x);
            InetRecord::parse(INET_LISTEN_FD_KIND, &x.encode()).is_none()
        };
        assert!(bad(&|x| x.family = 1));
        assert!(bad(&|x| x.local_port = 0));
        assert!(bad(&|x| x.local[4] = 1));
        assert!(bad(&|x| x.opts |= 1 << 25));
        assert!(bad(&|x| x.opts |= inet_opts::V6ONLY));
        assert!(bad(&|x| x.keepcnt = 128));
        assert!(bad(&|x| x.linger = 5));
        assert!(bad(&|x| x.peer_port = 1));
        assert!(bad(&|x| x.ttl = 3));
        assert!(bad(&|x| {
            x.opts |= inet_opts::TTL;
        }));
        assert!(bad(&|x| x.opts |= inet_opts::HOPS));
        assert!(bad(&|x| x.opts |= inet_opts::BINDTODEVICE));
        assert!(bad(&|x| {
            x.opts |= inet_opts::BINDTODEVICE;
            x.device = *b"lo\0x\0\0\0\0\0\0\0\0\0\0\0\0";
        }));
        assert!(bad(&|x| x.datagrams = 1));
        let mut opts = listener();
        opts.opts |= inet_opts::TTL | inet_opts::TOS | inet_opts::BINDTODEVICE;
        opts.ttl = 9;
        opts.tos = 0x10;
        opts.device[..2].copy_from_slice(b"lo");
        assert_eq!(
            InetRecord::parse(INET_LISTEN_FD_KIND, &opts.encode()),
            Some(opts)
        );
        // A TCP socket neither listening nor connected, bound or not.
        let closed = InetRecord {
            state: STATE_CLOSE,
            backlog: 0,
            ..listener()
        };
        assert!(InetRecord::parse(INET_LISTEN_FD_KIND, &closed.encode()).is_some());
        let mut b = r.encode();
        b[120] = 1; // rcvlowat without its bit
        assert!(InetRecord::parse(INET_LISTEN_FD_KIND, &b).is_none());
        assert!(InetRecord::parse(INET_LISTEN_FD_KIND, &b[..127]).is_none());
        // UDP: unbound, connected; no TCP options.
        let udp = InetRecord {
            family: AF_INET6,
            state: STATE_CLOSE,
            ..InetRecord::default()
        };
        assert!(InetRecord::parse(UDP_FD_KIND, &udp.encode()).is_some());
        let connected = InetRecord {
            state: STATE_ESTABLISHED,
            peer_port: 53,
            local_port: 4000,
            ..udp
        };
        assert!(InetRecord::parse(UDP_FD_KIND, &connected.encode()).is_some());
        let nodelay = InetRecord {
            opts: inet_opts::NODELAY,
            ..udp
        };
        assert!(InetRecord::parse(UDP_FD_KIND, &nodelay.encode()).is_none());
        // Queued datagrams: data holds at least their headers.
        let queued = InetRecord {
            datagrams: 2,
            ..udp
        };
        let b = queued.encode();
        assert!(args_ok(UDP_FD_KIND, [10, 0, 0, 0], &b, 48 + 5));
        assert!(!args_ok(UDP_FD_KIND, [10, 0, 0, 0], &b, 47));
        assert!(!args_ok(UDP_FD_KIND, [10, 0, 0, 0], &udp.encode(), 1));
        // (1.9) UDP-Lite: its protocol and coverage; nothing else.
        let lite = [10, IPPROTO_UDPLITE, 8 | 20 << 16, 0];
        assert!(args_ok(UDP_FD_KIND, lite, &udp.encode(), 0));
        assert_eq!(udplite_cscov(lite), (8, 20));
        assert!(!args_ok(UDP_FD_KIND, [10, 17, 0, 0], &udp.encode(), 0));
        // (1.9) Ping sockets: their family's protocol, nothing queued.
        assert!(args_ok(
            UDP_FD_KIND,
            [10, IPPROTO_ICMPV6, 0, 0],
            &udp.encode(),
            0
        ));
        assert!(!args_ok(
            UDP_FD_KIND,
            [10, IPPROTO_ICMP, 0, 0],
            &udp.encode(),
            0
        ));
        assert!(!args_ok(
            UDP_FD_KIND,
            [10, IPPROTO_ICMPV6, 0, 0],
            &b,
            48 + 5
        ));
        assert!(!args_ok(UDP_FD_KIND, [10, 0, 8, 0], &udp.encode(), 0));
        assert!(!args_ok(
            UDP_FD_KIND,
            [10, IPPROTO_UDPLITE, 1 << 32, 0],
            &udp.encode(),
            0
        ));
        let l = listener().encode();
        assert!(args_ok(INET_LISTEN_FD_KIND, [2, 0, 0, 0], &l, 0));
        assert!(!args_ok(
            INET_LISTEN_FD_KIND,
            [2, IPPROTO_UDPLITE, 0, 0],
            &l,
            0
        ));
        let d = Datagram {
            family: AF_INET,
            port: 9,
            len: 5,
            addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        assert_eq!(Datagram::parse(AF_INET, &d.encode()), Some(d));
        assert!(Datagram::parse(AF_INET6, &d.encode()).is_none());
        let big = Datagram { len: 65536, ..d };
        assert!(Datagram::parse(AF_INET, &big.encode()).is_none());
        let noport = Datagram { port: 0, ..d };
        assert!(Datagram::parse(AF_INET, &noport.encode()).is_none());
    }
}
