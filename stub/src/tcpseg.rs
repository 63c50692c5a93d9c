//! Raw TCP segments sent to a restored connection as if from its peer
//! (format 1.7, half-closed connections, `crate::tcp`): the peer's FIN of
//! a connection restored in close-wait, last-ack or closing, and the
//! acknowledgement of this side's FIN of one restored in fin-wait2. A
//! segment is a 20-byte TCP header (no option, no data) after an IPv4 or
//! IPv6 header built here, checksummed with the pseudo-header, and sent
//! through a raw socket (`IPPROTO_RAW`: the caller writes the IP header, so
//! the source is the peer's address; making one needs `CAP_NET_RAW`) to the
//! connection's local address, which routes it back in through loopback.
//! An IPv6 socket whose peer is an IPv4-mapped address (`::ffff:a.b.c.d`)
//! talks IPv4 on the wire, and so do its segments.

use kckpt_image::inet::{InetRecord, AF_INET, AF_INET6};
use linux_raw_sys::general as g;

use crate::inet::{call, sockaddr};
use crate::sys::Errno;

const SOCK_RAW: u32 = 3;
const IPPROTO_RAW: usize = 255;
const IPPROTO_TCP: u8 = 6;
const TCP_HEADER: usize = 20;

/// TCP header flag FIN.
pub const FIN: u8 = 0x01;
/// TCP header flag ACK.
pub const ACK: u8 = 0x10;

/// One segment's header fields (ports and addresses are the connection's).
pub struct Segment {
    /// Sequence number (the peer's).
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// [`FIN`], [`ACK`].
    pub flags: u8,
    /// Window field (already scaled down).
    pub window: u16,
}

/// The IPv4 address in `a` of a socket of `family`: its first 4 bytes
/// (`AF_INET`), or the last 4 of an IPv4-mapped IPv6 address.
fn v4(family: u16, a: &[u8; 16]) -> Option<[u8; 4]> {
    let mapped = a[..10] == [0; 10] && a[10..12] == [0xff, 0xff];
    match family {
        AF_INET => Some([a[0], a[1], a[2], a[3]]),
        AF_INET6 if mapped => Some([a[12], a[13], a[14], a[15]]),
        _ => None,
    }
}

/// Connection `x` runs over IPv4 on the wire.
pub fn wire_v4(x: &InetRecord) -> bool {
    v4(x.family, &x.peer).is_some()
}

/// A raw socket for segments over IPv4 (`v4`) or IPv6 (close-on-exec).
pub fn open(v4: bool) -> Result<usize, Errno> {
    let family = if v4 { AF_INET } else { AF_INET6 };
    call(
        g::__NR_socket,
        [
            usize::from(family),
            (SOCK_RAW | g::O_CLOEXEC) as usize,
            IPPROTO_RAW,
            0,
            0,
            0,
        ],
    )
}

/// The 16-bit one's complement sum of `parts` (big-endian words, an odd
/// last byte padded), complemented: the Internet checksum (RFC 1071).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut acc: u32 = 0;
    for p in parts {
        for w in p.chunks(2) {
            acc += u32::from(w[0]) << 8 | u32::from(w.get(1).copied().unwrap_or(0));
        }
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The TCP header of `s` from `x`'s peer to `x`, checksum 0.
fn tcp_header(x: &InetRecord, s: &Segment) -> [u8; TCP_HEADER] {
    let mut t = [0u8; TCP_HEADER];
    t[0..2].copy_from_slice(&x.peer_port.to_be_bytes());
    t[2..4].copy_from_slice(&x.local_port.to_be_bytes());
    t[4..8].copy_from_slice(&s.seq.to_be_bytes());
    t[8..12].copy_from_slice(&s.ack.to_be_bytes());
    t[12] = (TCP_HEADER as u8 / 4) << 4; // data offset in words
    t[13] = s.flags;
    t[14..16].copy_from_slice(&s.window.to_be_bytes());
    t
}

/// The IP packet carrying `s` from `x`'s peer to `x` (in `buf`, its
/// length returned) and its destination as a `sockaddr` for `sendto`.
fn packet(x: &InetRecord, s: &Segment, buf: &mut [u8; 60]) -> (usize, ([u8; 28], usize)) {
    let mut tcp = tcp_header(x, s);
    let len = TCP_HEADER as u16;
    if let (Some(src), Some(dst)) = (v4(x.family, &x.peer), v4(x.family, &x.local)) {
        let pseudo = [0, IPPROTO_TCP, (len >> 8) as u8, len as u8];
        let sum = checksum(&[&src, &dst, &pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let ip = &mut buf[..20];
        ip[0] = 0x45; // version 4, 5 words
        ip[2..4].copy_from_slice(&(20 + len).to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64; // TTL
        ip[9] = IPPROTO_TCP;
        // The kernel fills in the identification and header checksum.
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        buf[20..40].copy_from_slice(&tcp);
        let mut to = [0u8; 16];
        to[..4].copy_from_slice(&dst);
        (40, sockaddr(AF_INET, &to, 0))
    } else {
        let pseudo = [0, 0, (len >> 8) as u8, len as u8, 0, 0, 0, IPPROTO_TCP];
        let sum = checksum(&[&x.peer, &x.local, &pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let ip = &mut buf[..40];
        ip[0] = 0x60; // version 6
        ip[4..6].copy_from_slice(&len.to_be_bytes());
        ip[6] = IPPROTO_TCP; // next header
        ip[7] = 64; // hop limit
        ip[8..24].copy_from_slice(&x.peer);
        ip[24..40].copy_from_slice(&x.local);
        buf[40..60].copy_from_slice(&tcp);
        // Port 0: the protocol is the header's.
        (60, sockaddr(AF_INET6, &x.local, 0))
    }
}

/// Send `s` from `x`'s peer to `x` through raw socket `fd` (of the
/// connection's wire family, [`wire_v4`]).
pub fn send(fd: usize, x: &InetRecord, s: &Segment) -> Result<(), Errno> {
    let mut buf = [0u8; 60];
    let (n, (to, to_len)) = packet(x, s, &mut buf);
    call(
        g::__NR_sendto,
        [
            fd,
            buf.as_ptr() as usize,
            n,
            0,
            to.as_ptr() as usize,
            to_len,
        ],
    )
    .map(|_| ())
}
