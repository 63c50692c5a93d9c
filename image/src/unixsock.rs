//! Listening Unix sockets bound to a name (format 1.4, fd kind 41).
//!
//! A record of kind [`UNIX_LISTEN_FD_KIND`] is a Unix stream or seqpacket
//! socket that was listening, with no connection waiting to be accepted,
//! bound to a path or an abstract name. `path` holds the name (for an
//! abstract name: its bytes after the leading NUL); `flags` the file
//! status flags (`O_RDWR`, maybe `O_NONBLOCK`);
//! - `args[0]`: the socket type (1 stream, 5 seqpacket), with
//!   [`unix_flags::ABSTRACT`] set for an abstract name,
//!   [`unix_flags::RELATIVE`] for a relative path,
//!   [`unix_flags::DETACHED`] for a path that no longer led to the
//!   socket's own file;
//! - `args[1]`: the backlog given to `listen` (`sock_diag` reports it);
//! - `args[2]`: [`unix_opts`] bits, the socket options restored;
//! - `args[3]`: the socket file's permission bits (07777) with bit 32 set
//!   (0: not recorded: an abstract name, or a file that was not the
//!   socket's any more).
//!
//! No data region. Restored by `socket`, `bind` to the name (a stale
//! socket file nobody listens on is removed first; anything else at the
//! path refuses the restore), `listen(backlog)`. A `DETACHED` one is
//! bound with whatever is at its path moved aside for the moment (a
//! rename in the same directory), and the file `bind` made is removed
//! again.

/// The fd kind of a listening Unix socket.
pub const UNIX_LISTEN_FD_KIND: u32 = 41;

/// Bits of `args[0]` above the socket type.
pub mod unix_flags {
    /// The name is abstract (no file): `path` is the name after its NUL.
    pub const ABSTRACT: u64 = 1 << 32;
    /// The name is a relative path: bound from the process's working
    /// directory (`NT_KCKPT_FS`), as it was at dump time.
    pub const RELATIVE: u64 = 1 << 33;
    /// The path no longer led to the socket's own file at dump (removed,
    /// or replaced by another socket's file): the socket gets its name
    /// back and the path is left as the restore finds it (format 1.4).
    pub const DETACHED: u64 = 1 << 34;
}

/// Socket options kept (`args[2]`).
pub mod unix_opts {
    /// `SO_PASSCRED`.
    pub const PASSCRED: u64 = 1 << 0;
    /// `SO_PASSSEC`.
    pub const PASSSEC: u64 = 1 << 1;
    /// All known bits.
    pub const KNOWN: u64 = PASSCRED | PASSSEC;
}

/// Bit 32 of `args[3]`: the permission bits are recorded.
pub const MODE_RECORDED: u64 = 1 << 32;

/// Longest name (`sun_path` holds 108 bytes; a path needs its NUL, an
/// abstract name its leading NUL).
pub const MAX_NAME: u64 = 107;

/// Kind-specific checks of a primary record of this kind.
pub fn args_ok(args: [u64; 4], name_len: usize, data_len: u64) -> bool {
    let ty = args[0] & 0xffff_ffff;
    let abstract_name = args[0] & unix_flags::ABSTRACT != 0;
    let relative = args[0] & unix_flags::RELATIVE != 0;
    let detached = args[0] & unix_flags::DETACHED != 0;
    matches!(ty, 1 | 5)
        && args[0] >> 32 & !7 == 0
        && !(abstract_name && relative)
        && !(detached && (abstract_name || relative || args[3] != 0))
        && args[1] <= i32::MAX as u64
        && args[2] & !unix_opts::KNOWN == 0
        && (args[3] == 0 || (!abstract_name && args[3] & !0o7777 == MODE_RECORDED))
        && name_len > 0
        && name_len as u64 <= MAX_NAME
        && data_len == 0
}

// ---------------------------------------------------------------------
// Format 1.6: every other Unix socket (fd kind 45).
// ---------------------------------------------------------------------

/// The fd kind of a Unix socket that is not listening and not a plain
/// in-process socketpair (`fd_kind::SOCKETPAIR`): unbound or bound
/// (path, abstract, autobound), never connected, one end of a pair the
/// process holds (socketpair or connect/accept, named or not), a
/// datagram socket connected to a named socket, a socket whose peer
/// closed; with its queued messages, shutdown state and options.
///
/// `args[0]` is the socket type (1 stream, 2 datagram, 5 seqpacket),
/// `args[1..]` 0; `flags` the file status flags; `path` holds the
/// socket's [`UnixRecord`] (binary, [`UNIX_RECORD_LEN`] bytes then the
/// names); `peer` the descriptor of the other end when
/// [`UnixRecord::peer_kind`] is [`peer_kind::PAIR`], else
/// `FD_NO_DUP`. The data, when any, is this socket's receive queue: see
/// [`messages`].
pub const UNIX_SOCKET_FD_KIND: u32 = 45;

/// Length of the fixed part of an encoded [`UnixRecord`].
pub const UNIX_RECORD_LEN: usize = 64;

/// How a socket is named ([`UnixRecord::name_kind`], and the name kind of
/// a queued message's sender).
pub mod name_kind {
    /// Not bound (no name).
    pub const NONE: u8 = 0;
    /// Bound to a path (without its NUL).
    pub const PATH: u8 = 1;
    /// Bound to an abstract name (its bytes after the leading NUL; an
    /// autobound socket's name is one of these).
    pub const ABSTRACT: u8 = 2;
}

/// What a socket is connected to ([`UnixRecord::peer_kind`]).
pub mod peer_kind {
    /// Not connected.
    pub const NONE: u8 = 0;
    /// Connected to the socket at descriptor `FdRecord::peer` of the
    /// same process, which is connected back (socketpair, accept).
    pub const PAIR: u8 = 1;
    /// A datagram socket connected to the socket named
    /// [`super::UnixRecord::peer_name`]: `connect` again at restore.
    pub const NAME: u8 = 2;
    /// Connected, and the peer was closed since (reads give the queued
    /// data then end of file; writes fail).
    pub const GONE: u8 = 3;
    /// (1.7) A stream or seqpacket socket connected to the listener at
    /// descriptor [`super::UnixRecord::listener`] (a kind-41 primary
    /// record of the same type), whose connection was not accepted yet:
    /// `connect` to that listener again, at place
    /// [`super::UnixRecord::queue_pos`] of its backlog.
    pub const PENDING: u8 = 4;
}

/// [`UnixRecord::flags`] bits.
pub mod sock_flags {
    /// The path no longer led to the socket's file at dump: the socket
    /// gets its name back and the file `bind` makes is removed again.
    pub const DETACHED: u32 = 1 << 0;
    /// The name is a path relative to the working directory.
    pub const RELATIVE: u32 = 1 << 1;
    /// (`PAIR`) this end was accepted on the listening socket at
    /// descriptor [`super::UnixRecord::listener`]: restored by connecting
    /// the other end to that listener and accepting.
    pub const ACCEPTED: u32 = 1 << 2;
    /// `SO_PASSCRED`.
    pub const PASSCRED: u32 = 1 << 3;
    /// `SO_PASSSEC`.
    pub const PASSSEC: u32 = 1 << 4;
    /// The peer's name is a relative path.
    pub const PEER_RELATIVE: u32 = 1 << 5;
    /// (`NAME`) the peer was held outside the dump (`--skip-unsupported`):
    /// connected again to whatever has that name at restore, left
    /// unconnected with a warning when nothing does.
    pub const OUTSIDE: u32 = 1 << 6;
    /// `SO_REUSEADDR` (no effect on a Unix socket; read back by programs).
    pub const REUSEADDR: u32 = 1 << 7;
    /// All known bits.
    pub const KNOWN: u32 = (1 << 8) - 1;
}

/// `shutdown` bits ([`UnixRecord::shutdown`], the kernel's
/// `sk_shutdown`).
pub mod shut {
    /// `RCV_SHUTDOWN`.
    pub const RCV: u8 = 1;
    /// `SEND_SHUTDOWN`.
    pub const SEND: u8 = 2;
}

/// Bit 31 of [`UnixRecord::mode`]: the permission bits are recorded.
pub const SOCK_MODE_RECORDED: u32 = 1 << 31;

/// Longest timeout kept (2^50 microseconds).
const MAX_TIMEO_US: u64 = 1 << 50;

/// One Unix socket of kind [`UNIX_SOCKET_FD_KIND`], as stored in its
/// record's `path`.
///
/// Layout (little-endian): 0 `ty` u16, 2 `name_kind` u8, 3 `peer_kind`
/// u8, 4 `flags` u32, 8 `shutdown` u8, 9 `peer_abstract` u8, 10
/// `in_flight` u16 (1.7; 0 before), 12 name length
/// u16, 14 peer name length u16, 16 `rcvbuf` u32, 20 `sndbuf` u32, 24
/// `rcvtimeo` u64, 32 `sndtimeo` u64, 40 `peek_off` i32, 44 `listener`
/// u32, 48 `mode` u32, 52 `messages` u32, 56 `target` u32, 60
/// `queue_pos` u32 (1.7; reserved, 0, before); then the
/// name, then the peer name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnixRecord<'a> {
    /// Socket type: 1 stream, 2 datagram, 5 seqpacket.
    pub ty: u16,
    /// [`name_kind`] of the socket's own name.
    pub name_kind: u8,
    /// [`peer_kind`].
    pub peer_kind: u8,
    /// [`sock_flags`] bits.
    pub flags: u32,
    /// [`shut`] bits.
    pub shutdown: u8,
    /// `SO_RCVBUF` as `getsockopt` gave it (0: the default).
    pub rcvbuf: u32,
    /// `SO_SNDBUF` (0: the default).
    pub sndbuf: u32,
    /// `SO_RCVTIMEO` in microseconds (0: none).
    pub rcvtimeo: u64,
    /// `SO_SNDTIMEO` in microseconds (0: none).
    pub sndtimeo: u64,
    /// `SO_PEEK_OFF` (-1: off).
    pub peek_off: i32,
    /// (1.7) Descriptors in flight in the queue (`SCM_RIGHTS`), counted
    /// over its messages: shown by `kckpt info`, checked by the stub.
    pub in_flight: u16,
    /// (`ACCEPTED`, 1.7 `PENDING`) the listener's descriptor, else 0.
    pub listener: u32,
    /// Permission bits of the socket file with [`SOCK_MODE_RECORDED`]
    /// (0: not recorded).
    pub mode: u32,
    /// Messages in the queue (datagram, seqpacket) or 1 for queued stream
    /// bytes: shown by `kckpt info`.
    pub messages: u32,
    /// (`NAME`) the descriptor + 1 of the process's socket it is
    /// connected to (0: none of the process's): connected while that
    /// socket's path leads to it (several sockets may have had one path).
    pub target: u32,
    /// (1.7, `PENDING`) its place in the listener's backlog (0: the
    /// first connection `accept` returns), else 0.
    pub queue_pos: u32,
    /// The socket's name (a path without NUL, an abstract name without
    /// its leading NUL).
    pub name: &'a [u8],
    /// (`NAME`) the peer's name (a path, or abstract with
    /// [`UnixRecord::peer_abstract`]).
    pub peer_name: &'a [u8],
    /// (`NAME`) the peer's name is abstract.
    pub peer_abstract: bool,
}

impl<'a> UnixRecord<'a> {
    /// The record's bytes.
    pub fn encode(&self) -> Vec8 {
        let mut b = Vec8::new();
        b.put(&self.ty.to_le_bytes());
        b.put(&[self.name_kind, self.peer_kind]);
        b.put(&self.flags.to_le_bytes());
        b.put(&[self.shutdown, u8::from(self.peer_abstract)]);
        b.put(&self.in_flight.to_le_bytes());
        b.put(&(self.name.len() as u16).to_le_bytes());
        b.put(&(self.peer_name.len() as u16).to_le_bytes());
        b.put(&self.rcvbuf.to_le_bytes());
        b.put(&self.sndbuf.to_le_bytes());
        b.put(&self.rcvtimeo.to_le_bytes());
        b.put(&self.sndtimeo.to_le_bytes());
        b.put(&self.peek_off.to_le_bytes());
        b.put(&self.listener.to_le_bytes());
        b.put(&self.mode.to_le_bytes());
        b.put(&self.messages.to_le_bytes());
        b.put(&self.target.to_le_bytes());
        b.put(&self.queue_pos.to_le_bytes());
        b.put(self.name);
        b.put(self.peer_name);
        b
    }

    /// The record in `b`, every value checked.
    pub fn parse(b: &'a [u8]) -> Option<UnixRecord<'a>> {
        let fixed = b.get(..UNIX_RECORD_LEN)?;
        let u16_at = |o: usize| u16::from_le_bytes([fixed[o], fixed[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([fixed[o], fixed[o + 1], fixed[o + 2], fixed[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | u64::from(u32_at(o + 4)) << 32;
        if fixed[9] > 1 {
            return None;
        }
        let (nl, pl) = (usize::from(u16_at(12)), usize::from(u16_at(14)));
        if b.len() != UNIX_RECORD_LEN + nl + pl {
            return None;
        }
        let r = UnixRecord {
            ty: u16_at(0),
            name_kind: fixed[2],
            peer_kind: fixed[3],
            flags: u32_at(4),
            shutdown: fixed[8],
            peer_abstract: fixed[9] == 1,
            rcvbuf: u32_at(16),
            sndbuf: u32_at(20),
            rcvtimeo: u64_at(24),
            sndtimeo: u64_at(32),
            peek_off: u32_at(40) as i32,
            in_flight: u16_at(10),
            listener: u32_at(44),
            mode: u32_at(48),
            messages: u32_at(52),
            target: u32_at(56),
            queue_pos: u32_at(60),
            name: &b[UNIX_RECORD_LEN..UNIX_RECORD_LEN + nl],
            peer_name: &b[UNIX_RECORD_LEN + nl..],
        };
        r.valid().then_some(r)
    }

    fn valid(&self) -> bool {
        use sock_flags::*;
        let f = self.flags;
        let path_ok = |n: &[u8], relative: bool| {
            !n.is_empty()
                && n.len() as u64 <= MAX_NAME
                && !n.contains(&0)
                && (relative || n[0] == b'/')
        };
        let name_ok = match self.name_kind {
            name_kind::NONE => {
                self.name.is_empty() && f & (DETACHED | RELATIVE) == 0 && self.mode == 0
            }
            name_kind::PATH => {
                path_ok(self.name, f & RELATIVE != 0)
                    && !(f & DETACHED != 0 && (f & RELATIVE != 0 || self.mode != 0))
                    && (self.mode == 0 || self.mode & !0o7777 == SOCK_MODE_RECORDED)
            }
            name_kind::ABSTRACT => {
                !self.name.is_empty()
                    && self.name.len() as u64 <= MAX_NAME
                    && f & (DETACHED | RELATIVE) == 0
                    && self.mode == 0
            }
            _ => false,
        };
        let peer_ok = match self.peer_kind {
            peer_kind::NAME => {
                (if self.peer_abstract {
                    !self.peer_name.is_empty()
                        && self.peer_name.len() as u64 <= MAX_NAME
                        && f & PEER_RELATIVE == 0
                } else {
                    path_ok(self.peer_name, f & PEER_RELATIVE != 0)
                }) && f & ACCEPTED == 0
            }
            peer_kind::NONE | peer_kind::PAIR | peer_kind::GONE => {
                self.peer_name.is_empty()
                    && !self.peer_abstract
                    && f & (PEER_RELATIVE | OUTSIDE) == 0
                    && (self.peer_kind == peer_kind::PAIR || f & ACCEPTED == 0)
            }
            peer_kind::PENDING => {
                self.peer_name.is_empty()
                    && !self.peer_abstract
                    && f & (PEER_RELATIVE | OUTSIDE | ACCEPTED) == 0
                    && self.ty != 2
            }
            _ => false,
        };
        matches!(self.ty, 1 | 2 | 5)
            && name_ok
            && peer_ok
            && f & !KNOWN == 0
            && (f & ACCEPTED != 0 || self.peer_kind == peer_kind::PENDING || self.listener == 0)
            && (self.peer_kind == peer_kind::PENDING || self.queue_pos == 0)
            && self.queue_pos <= i32::MAX as u32
            && (self.peer_kind == peer_kind::NAME || self.target == 0)
            && !(f & OUTSIDE != 0 && self.target != 0)
            && self.shutdown & !3 == 0
            && self.rcvbuf <= i32::MAX as u32
            && self.sndbuf <= i32::MAX as u32
            && self.rcvtimeo <= MAX_TIMEO_US
            && self.sndtimeo <= MAX_TIMEO_US
            && self.peek_off >= -1
    }

    /// Whether a pair end with this record is a plain socketpair end
    /// (`fd_kind::SOCKETPAIR` holds all of it): no name, no option,
    /// not shut down, stream data only.
    pub fn plain(&self) -> bool {
        *self
            == UnixRecord {
                ty: self.ty,
                peer_kind: peer_kind::PAIR,
                peek_off: -1,
                messages: self.messages,
                ..UnixRecord::default()
            }
            && (self.ty == 1 || self.messages == 0)
    }
}

/// A small growable byte buffer over a fixed array (the image crate
/// allocates nothing): the longest record is [`UNIX_RECORD_LEN`] plus
/// two names.
#[derive(Clone, Copy)]
pub struct Vec8 {
    buf: [u8; UNIX_RECORD_LEN + 2 * MAX_NAME as usize],
    len: usize,
}

impl Vec8 {
    fn new() -> Vec8 {
        Vec8 {
            buf: [0; UNIX_RECORD_LEN + 2 * MAX_NAME as usize],
            len: 0,
        }
    }
    fn put(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }
    /// The bytes written.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// One queued message of a socket's data: who sent it and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// [`name_kind`] of the sender's name.
    pub name_kind: u8,
    /// The sender's name (empty for `NONE`).
    pub name: &'a [u8],
    /// The bytes.
    pub payload: &'a [u8],
    /// (1.7) The descriptors in flight with it (`SCM_RIGHTS`), in order:
    /// little-endian u32 descriptor numbers of the image, at most
    /// [`MAX_RIGHTS`] (empty: none; always empty before 1.7).
    pub rights: &'a [u8],
}

impl Message<'_> {
    /// The descriptor numbers of [`Message::rights`], in order.
    pub fn rights(&self) -> impl Iterator<Item = u32> + '_ {
        self.rights
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// Length of a message header in the data.
pub const MESSAGE_HEADER_LEN: usize = 8;

/// (1.7) Most descriptors in flight with one message (the kernel's
/// `SCM_MAX_FD`).
pub const MAX_RIGHTS: usize = 253;

/// Append message `m` to `out` (the data of a kind-45 record): `len`
/// u32, sender `name_kind` u8, (1.7) the number of descriptors in flight
/// u8 (0 before 1.7), name length u16, (1.7) the descriptors (u32 each),
/// the name, the payload, zero bytes up to a multiple of 4.
pub fn put_message(out: &mut impl Extend<u8>, m: &Message<'_>) {
    out.extend((m.payload.len() as u32).to_le_bytes());
    out.extend([m.name_kind, (m.rights.len() / 4) as u8]);
    out.extend((m.name.len() as u16).to_le_bytes());
    out.extend(m.rights.iter().copied());
    out.extend(m.name.iter().copied());
    out.extend(m.payload.iter().copied());
    let n = MESSAGE_HEADER_LEN + m.rights.len() + m.name.len() + m.payload.len();
    out.extend(core::iter::repeat_n(0u8, (4 - n % 4) % 4));
}

/// The messages in `data`, in queue order: `None` at the first malformed
/// one (walk the whole data with [`queue_ok`] first). A stream socket's
/// queue is one message without a sender.
pub fn messages(data: &[u8]) -> impl Iterator<Item = Option<Message<'_>>> + '_ {
    let mut at = 0usize;
    core::iter::from_fn(move || {
        if at >= data.len() {
            return None;
        }
        let got = message_at(data, at);
        at = match got {
            Some((_, next)) => next,
            None => data.len(),
        };
        Some(got.map(|(m, _)| m))
    })
}

fn message_at(data: &[u8], at: usize) -> Option<(Message<'_>, usize)> {
    let h = data.get(at..at.checked_add(MESSAGE_HEADER_LEN)?)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let kind = h[4];
    let nr = usize::from(h[5]);
    let nl = usize::from(u16::from_le_bytes([h[6], h[7]]));
    let rights_at = at + MESSAGE_HEADER_LEN;
    let name_at = rights_at.checked_add(nr * 4)?;
    let end = name_at.checked_add(nl)?.checked_add(len)?;
    let pad = (4 - (end - at) % 4) % 4;
    let next = end.checked_add(pad)?;
    if nr > MAX_RIGHTS || next > data.len() || data[end..next].iter().any(|&x| x != 0) {
        return None;
    }
    let name = &data[name_at..name_at + nl];
    let name_ok = match kind {
        name_kind::NONE => nl == 0,
        name_kind::PATH => nl > 0 && nl as u64 <= MAX_NAME && !name.contains(&0),
        name_kind::ABSTRACT => nl > 0 && nl as u64 <= MAX_NAME,
        _ => false,
    };
    name_ok.then_some((
        Message {
            name_kind: kind,
            name,
            payload: &data[name_at + nl..end],
            rights: &data[rights_at..name_at],
        },
        next,
    ))
}

/// Whether `data` is a well-formed queue for a socket of type `ty`: every
/// message whole; a stream socket's a single message without a sender,
/// or (1.7) when descriptors are in flight, several: the bytes up to and
/// including each piece that carries descriptors, then the rest.
pub fn queue_ok(ty: u16, data: &[u8]) -> bool {
    let mut n = 0usize;
    let mut rights = false;
    for m in messages(data) {
        let Some(m) = m else { return false };
        n += 1;
        rights |= !m.rights.is_empty();
        if ty == 1 && m.name_kind != name_kind::NONE {
            return false;
        }
    }
    ty != 1 || n <= 1 || rights
}

/// (1.7) The number of descriptors in flight in the messages of `data`.
pub fn rights_count(data: &[u8]) -> usize {
    messages(data).flatten().map(|m| m.rights.len() / 4).sum()
}

/// Kind-specific checks of a primary record of kind 45: the type in
/// `args[0]` matches the record in `path`.
pub fn socket_args_ok(args: [u64; 4], path: &[u8]) -> bool {
    UnixRecord::parse(path).is_some_and(|r| args[0] == u64::from(r.ty) && args[1..] == [0; 3])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn checks_the_values_of_a_listener() {
        let ok = [1, 128, unix_opts::PASSCRED, MODE_RECORDED | 0o600];
        assert!(args_ok(ok, 10, 0));
        assert!(args_ok([5 | unix_flags::ABSTRACT, 0, 0, 0], 1, 0));
        // Datagram, unknown flag bits, option bits, mode bits, a mode on
        // an abstract name, no name, a long name, data.
        assert!(!args_ok([2, 128, 0, 0], 10, 0));
        assert!(args_ok([1 | unix_flags::RELATIVE, 128, 0, 0], 10, 0));
        assert!(!args_ok([1 | 1 << 35, 128, 0, 0], 10, 0));
        // Detached: a path, no mode, not relative.
        let detached = unix_flags::DETACHED;
        assert!(args_ok([1 | detached, 128, 0, 0], 10, 0));
        assert!(!args_ok([1 | detached, 128, 0, MODE_RECORDED], 10, 0));
        assert!(!args_ok(
            [1 | detached | unix_flags::ABSTRACT, 1, 0, 0],
            10,
            0
        ));
        assert!(!args_ok(
            [1 | detached | unix_flags::RELATIVE, 1, 0, 0],
            10,
            0
        ));
        let both = unix_flags::ABSTRACT | unix_flags::RELATIVE;
        assert!(!args_ok([1 | both, 128, 0, 0], 10, 0));
        assert!(!args_ok([1, 128, 4, 0], 10, 0));
        assert!(!args_ok([1, 128, 0, 0o600], 10, 0));
        assert!(!args_ok(
            [1 | unix_flags::ABSTRACT, 1, 0, MODE_RECORDED],
            10,
            0
        ));
        assert!(!args_ok(ok, 0, 0));
        assert!(!args_ok(ok, 108, 0));
        assert!(!args_ok(ok, 10, 1));
        assert!(!args_ok([1, 1 << 31, 0, 0], 10, 0));
    }

    #[test]
    fn a_socket_record_round_trips_and_is_checked() {
        let r = UnixRecord {
            ty: 2,
            name_kind: name_kind::PATH,
            peer_kind: peer_kind::NAME,
            flags: sock_flags::PASSCRED,
            shutdown: shut::SEND,
            rcvbuf: 4608,
            peek_off: -1,
            mode: SOCK_MODE_RECORDED | 0o755,
            name: b"/tmp/a",
            peer_name: b"srv",
            peer_abstract: true,
            ..UnixRecord::default()
        };
        let b = r.encode();
        assert_eq!(UnixRecord::parse(b.bytes()), Some(r.clone()));
        assert!(socket_args_ok([2, 0, 0, 0], b.bytes()));
        assert!(!socket_args_ok([1, 0, 0, 0], b.bytes()));
        let bad = |f: &dyn Fn(&mut UnixRecord)| {
            let mut x = r.clone();
            f(&mut x);
            UnixRecord::parse(x.encode().bytes()).is_none()
        };
        assert!(bad(&|x| x.ty = 3));
        assert!(bad(&|x| x.name = b"rel"));
        assert!(bad(&|x| x.name = b"/a\0b"));
        assert!(bad(&|x| x.name_kind = 3));
        assert!(bad(&|x| x.peer_kind = 5));
        assert!(bad(&|x| x.flags |= 1 << 8));
        assert!(bad(&|x| x.flags |= sock_flags::ACCEPTED));
        assert!(bad(&|x| x.shutdown = 4));
        assert!(bad(&|x| x.peek_off = -2));
        assert!(bad(&|x| x.mode = 0o755));
        assert!(bad(&|x| x.peer_name = b""));
        assert!(bad(&|x| {
            x.name_kind = name_kind::ABSTRACT;
        }));
        let mut b = r.encode().bytes().to_vec();
        b[60] = 1;
        assert!(UnixRecord::parse(&b).is_none());
        assert!(UnixRecord::parse(&r.encode().bytes()[..70]).is_none());
        // (1.7) A connection not accepted yet: its listener and place.
        let pending = UnixRecord {
            ty: 5,
            peer_kind: peer_kind::PENDING,
            peek_off: -1,
            listener: 3,
            queue_pos: 2,
            ..UnixRecord::default()
        };
        assert_eq!(
            UnixRecord::parse(pending.encode().bytes()),
            Some(pending.clone())
        );
        let bad_pending = |f: &dyn Fn(&mut UnixRecord)| {
            let mut x = pending.clone();
            f(&mut x);
            UnixRecord::parse(x.encode().bytes()).is_none()
        };
        assert!(bad_pending(&|x| x.ty = 2));
        assert!(bad_pending(&|x| x.peer_name = b"/s"));
        assert!(bad_pending(&|x| x.flags |= sock_flags::ACCEPTED));
        assert!(bad_pending(&|x| x.queue_pos = u32::MAX));
        assert!(bad_pending(&|x| x.peer_kind = peer_kind::PAIR));
        // A plain socketpair end.
        let plain = UnixRecord {
            ty: 1,
            peer_kind: peer_kind::PAIR,
            peek_off: -1,
            messages: 1,
            ..UnixRecord::default()
        };
        assert!(plain.plain());
        assert!(!UnixRecord {
            ty: 2,
            ..plain.clone()
        }
        .plain());
        assert!(!UnixRecord {
            shutdown: 1,
            ..plain
        }
        .plain());
    }

    #[test]
    fn queues_round_trip_and_bad_ones_are_refused() {
        let mut q = Vec::new();
        let a = Message {
            name_kind: name_kind::PATH,
            name: b"/s",
            payload: b"hello",
            rights: &[],
        };
        let b = Message {
            name_kind: name_kind::NONE,
            name: b"",
            payload: b"",
            rights: &[],
        };
        put_message(&mut q, &a);
        put_message(&mut q, &b);
        assert_eq!(q.len() % 4, 0);
        let got: Vec<_> = messages(&q).collect();
        assert_eq!(got, vec![Some(a), Some(b)]);
        assert!(queue_ok(2, &q));
        assert!(!queue_ok(1, &q));
        assert!(!queue_ok(2, &q[..q.len() - 1]));
        let mut bad = q.clone();
        bad[4] = 9;
        assert!(!queue_ok(2, &bad));
        let mut huge = q.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!queue_ok(2, &huge));
    }

    #[test]
    fn descriptors_in_flight_round_trip() {
        let fds: Vec<u8> = [7u32, 9].iter().flat_map(|f| f.to_le_bytes()).collect();
        let with = Message {
            name_kind: name_kind::ABSTRACT,
            name: b"x",
            payload: b"abc",
            rights: &fds,
        };
        let plain = Message {
            name_kind: name_kind::NONE,
            name: b"",
            payload: b"d",
            rights: &[],
        };
        let mut q = Vec::new();
        put_message(&mut q, &with);
        put_message(&mut q, &plain);
        assert_eq!(q.len() % 4, 0);
        let got: Vec<_> = messages(&q).collect();
        assert_eq!(got, vec![Some(with), Some(plain)]);
        assert_eq!(got[0].unwrap().rights().collect::<Vec<_>>(), vec![7, 9]);
        assert_eq!(rights_count(&q), 2);
        assert!(queue_ok(2, &q));
        // A stream queue: several pieces only with descriptors in flight.
        let mut s = Vec::new();
        put_message(
            &mut s,
            &Message {
                name_kind: name_kind::NONE,
                name: b"",
                ..with
            },
        );
        put_message(&mut s, &plain);
        assert!(queue_ok(1, &s));
        let mut two = Vec::new();
        put_message(&mut two, &plain);
        put_message(&mut two, &plain);
        assert!(!queue_ok(1, &two));
        // More than SCM_MAX_FD descriptors.
        let mut bad = q.clone();
        bad[5] = 254;
        assert!(!queue_ok(2, &bad));
    }
}
