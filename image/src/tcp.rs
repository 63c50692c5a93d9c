//! Established TCP connections over IPv4 and IPv6 (format 1.6, fd kind
//! 44, [`TCP_CONN_FD_KIND`]), and (1.7) half-closed ones ([`conn_state`]).
//!
//! `args[0]` is the address family (2 or 10), `args[1]` the
//! [`conn_mode`]: [`conn_mode::REPAIR`], saved with the kernel's TCP
//! repair mode and restored with it (sequence numbers, queues, window,
//! negotiated options), or [`conn_mode::RESET`] (`--tcp-close`), restored
//! as a socket whose connection was reset. `args[2..]` 0. `path` holds the
//! socket's [`InetRecord`](crate::inet::InetRecord) (its [`conn_state`],
//! local and peer address) followed by a [`TcpRepair`]
//! ([`TCP_REPAIR_LEN`] bytes; all 0 for a reset one); the data is the
//! receive queue's bytes followed by the send queue's.

use crate::inet::{InetRecord, INET_RECORD_LEN};

/// The fd kind of an established TCP connection.
pub const TCP_CONN_FD_KIND: u32 = 44;

/// Length of an encoded [`TcpRepair`].
pub const TCP_REPAIR_LEN: usize = 64;

/// `args[1]` of a kind-44 record.
pub mod conn_mode {
    /// Saved and restored with TCP repair.
    pub const REPAIR: u64 = 0;
    /// Restored as a reset connection (`--tcp-close`).
    pub const RESET: u64 = 1;
}

/// `InetRecord::state` of a kind-44 record: the kernel's `TCP_*` state.
/// A FIN counts one sequence number: `snd_seq` counts this side's FIN
/// ([`fin_sent`]), `rcv_seq` the peer's ([`fin_received`]); `outq_len`,
/// `unsent_len` and `inq_len` count bytes of data only.
pub mod conn_state {
    /// `TCP_ESTABLISHED` (1.6).
    pub const ESTABLISHED: u16 = 1;
    /// (1.7) `TCP_FIN_WAIT1`: shut down for writing, the FIN not
    /// acknowledged (maybe not sent).
    pub const FIN_WAIT1: u16 = 4;
    /// (1.7) `TCP_FIN_WAIT2`: shut down for writing, the FIN acknowledged.
    pub const FIN_WAIT2: u16 = 5;
    /// (1.7) `TCP_CLOSE_WAIT`: the peer's FIN received.
    pub const CLOSE_WAIT: u16 = 8;
    /// (1.7) `TCP_LAST_ACK`: the peer's FIN received, then shut down for
    /// writing, the FIN not acknowledged.
    pub const LAST_ACK: u16 = 9;
    /// (1.7) `TCP_CLOSING`: shut down for writing, then the peer's FIN
    /// received before this side's was acknowledged.
    pub const CLOSING: u16 = 11;
}

/// A state a kind-44 record may have.
pub const fn conn_state_known(s: u16) -> bool {
    use conn_state::*;
    matches!(
        s,
        ESTABLISHED | FIN_WAIT1 | FIN_WAIT2 | CLOSE_WAIT | LAST_ACK | CLOSING
    )
}

/// In state `s` this side has shut down for writing: its FIN is in the
/// send sequence (`snd_seq` counts it).
pub const fn fin_sent(s: u16) -> bool {
    use conn_state::*;
    matches!(s, FIN_WAIT1 | FIN_WAIT2 | LAST_ACK | CLOSING)
}

/// In state `s` the peer's FIN was received (`rcv_seq` counts it).
pub const fn fin_received(s: u16) -> bool {
    use conn_state::*;
    matches!(s, CLOSE_WAIT | LAST_ACK | CLOSING)
}

/// `TcpRepair::options` bits: what the two ends negotiated (`TCP_INFO`
/// `tcpi_options`).
pub mod tcp_opts {
    /// `TCPI_OPT_TIMESTAMPS`.
    pub const TIMESTAMPS: u32 = 1;
    /// `TCPI_OPT_SACK`.
    pub const SACK: u32 = 2;
    /// `TCPI_OPT_WSCALE`.
    pub const WSCALE: u32 = 4;
    /// All known bits.
    pub const KNOWN: u32 = 7;
}

/// Largest window scale (RFC 7323).
pub const MAX_WSCALE: u8 = 14;

/// Largest queue kept (bytes, each of the receive and send queues).
pub const MAX_QUEUE: u32 = 64 << 20;

/// The repair state of one connection, after its `InetRecord` in `path`.
///
/// Layout (little-endian): 0 `snd_seq` u32, 4 `rcv_seq` u32, 8 `outq_len`
/// u32, 12 `unsent_len` u32, 16 `inq_len` u32, 20 `mss` u32, 24
/// `timestamp` u32, 28 `options` u32, 32 `snd_wscale` u8, 33 `rcv_wscale`
/// u8, 34-35 reserved (0), 36 `snd_wl1` u32, 40 `snd_wnd` u32, 44
/// `max_window` u32, 48 `rcv_wnd` u32, 52 `rcv_wup` u32, 56-63 reserved
/// (0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpRepair {
    /// `TCP_QUEUE_SEQ` of the send queue: `write_seq`, the sequence number
    /// after the last byte the program wrote.
    pub snd_seq: u32,
    /// `TCP_QUEUE_SEQ` of the receive queue: `rcv_nxt`, the sequence number
    /// after the last byte received.
    pub rcv_seq: u32,
    /// Bytes in the send queue (`SIOCOUTQ`): sent but not acknowledged,
    /// then not sent.
    pub outq_len: u32,
    /// Of those, bytes never sent (`SIOCOUTQNSD`).
    pub unsent_len: u32,
    /// Bytes in the receive queue not read (`SIOCINQ`).
    pub inq_len: u32,
    /// `TCP_MAXSEG` in repair mode: the MSS clamp.
    pub mss: u32,
    /// `TCP_TIMESTAMP`: the connection's timestamp clock (opaque to
    /// kckpt, given back as read).
    pub timestamp: u32,
    /// [`tcp_opts`] bits.
    pub options: u32,
    /// Send window scale (with [`tcp_opts::WSCALE`]).
    pub snd_wscale: u8,
    /// Receive window scale (with [`tcp_opts::WSCALE`]).
    pub rcv_wscale: u8,
    /// `TCP_REPAIR_WINDOW`: `snd_wl1`.
    pub snd_wl1: u32,
    /// `snd_wnd`.
    pub snd_wnd: u32,
    /// `max_window`.
    pub max_window: u32,
    /// `rcv_wnd`.
    pub rcv_wnd: u32,
    /// `rcv_wup`.
    pub rcv_wup: u32,
}

impl TcpRepair {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; TCP_REPAIR_LEN] {
        let mut b = [0u8; TCP_REPAIR_LEN];
        let head = [
            self.snd_seq,
            self.rcv_seq,
            self.outq_len,
            self.unsent_len,
            self.inq_len,
            self.mss,
            self.timestamp,
            self.options,
        ];
        for (i, w) in head.iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        b[32] = self.snd_wscale;
        b[33] = self.rcv_wscale;
        let win = [
            self.snd_wl1,
            self.snd_wnd,
            self.max_window,
            self.rcv_wnd,
            self.rcv_wup,
        ];
        for (i, w) in win.iter().enumerate() {
            b[36 + 4 * i..40 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// The record in `b` (every value checked, reserved bytes 0), for a
    /// record of mode `mode`.
    pub fn parse(mode: u64, b: &[u8]) -> Option<TcpRepair> {
        if b.len() != TCP_REPAIR_LEN || b[34..36] != [0, 0] || b[56..].iter().any(|&x| x != 0) {
            return None;
        }
        let w = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let r = TcpRepair {
            snd_seq: w(0),
            rcv_seq: w(4),
            outq_len: w(8),
            unsent_len: w(12),
            inq_len: w(16),
            mss: w(20),
            timestamp: w(24),
            options: w(28),
            snd_wscale: b[32],
            rcv_wscale: b[33],
            snd_wl1: w(36),
            snd_wnd: w(40),
            max_window: w(44),
            rcv_wnd: w(48),
            rcv_wup: w(52),
        };
        let ok = match mode {
            conn_mode::RESET => r == TcpRepair::default(),
            conn_mode::REPAIR => {
                let ws = r.options & tcp_opts::WSCALE != 0;
                r.options & !tcp_opts::KNOWN == 0
                    && r.unsent_len <= r.outq_len
                    && r.outq_len <= MAX_QUEUE
                    && r.inq_len <= MAX_QUEUE
                    && (1..=65535).contains(&r.mss)
                    && r.snd_wscale <= MAX_WSCALE
                    && r.rcv_wscale <= MAX_WSCALE
                    && (ws || (r.snd_wscale == 0 && r.rcv_wscale == 0))
            }
            _ => false,
        };
        ok.then_some(r)
    }

    /// Bytes of data a record with this repair state carries: the
    /// receive queue, then the send queue.
    pub fn data_len(&self) -> u64 {
        u64::from(self.inq_len) + u64::from(self.outq_len)
    }
}

/// The `InetRecord` and `TcpRepair` in a kind-44 record's `path`, when
/// they are valid for `mode` (`args[1]`): in state fin-wait2 (this side's
/// FIN acknowledged) nothing is left to send.
pub fn parse(mode: u64, path: &[u8]) -> Option<(InetRecord, TcpRepair)> {
    if path.len() != INET_RECORD_LEN + TCP_REPAIR_LEN {
        return None;
    }
    let x = InetRecord::parse(TCP_CONN_FD_KIND, &path[..INET_RECORD_LEN])?;
    let t = TcpRepair::parse(mode, &path[INET_RECORD_LEN..])?;
    if x.state == conn_state::FIN_WAIT2 && t.outq_len != 0 {
        return None;
    }
    Some((x, t))
}

/// Kind-specific checks of a primary record of kind 44: family in
/// `args[0]`, a known mode in `args[1]`, the records in `path`, data as
/// long as the two queues; a state other than established only from
/// format `minor` 7 on.
pub fn args_ok(args: [u64; 4], path: &[u8], data_len: u64, minor: u16) -> bool {
    let Some((x, t)) = parse(args[1], path) else {
        return false;
    };
    args[0] == u64::from(x.family)
        && args[2..] == [0; 2]
        && data_len == t.data_len()
        && (minor >= 7 || x.state == conn_state::ESTABLISHED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inet::{AF_INET, AF_INET6, STATE_ESTABLISHED};

    fn conn() -> (InetRecord, TcpRepair) {
        let x = InetRecord {
            family: AF_INET,
            state: STATE_ESTABLISHED,
            local_port: 40000,
            peer_port: 8080,
            local: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            peer: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..InetRecord::default()
        };
        let t = TcpRepair {
            snd_seq: 1000,
            rcv_seq: 2000,
            outq_len: 10,
            unsent_len: 4,
            inq_len: 5,
            mss: 65483,
            timestamp: 12345,
            options: tcp_opts::KNOWN,
            snd_wscale: 7,
            rcv_wscale: 7,
            snd_wnd: 65536,
            ..TcpRepair::default()
        };
        (x, t)
    }

    fn path(x: &InetRecord, t: &TcpRepair) -> [u8; INET_RECORD_LEN + TCP_REPAIR_LEN] {
        let mut p = [0u8; INET_RECORD_LEN + TCP_REPAIR_LEN];
        p[..INET_RECORD_LEN].copy_from_slice(&x.encode());
        p[INET_RECORD_LEN..].copy_from_slice(&t.encode());
        p
    }

    #[test]
    fn round_trips() {
        let (x, t) = conn();
        let p = path(&x, &t);
        assert_eq!(parse(conn_mode::REPAIR, &p), Some((x, t)));
        assert!(args_ok([2, 0, 0, 0], &p, 15, 6));
        let reset = path(&x, &TcpRepair::default());
        assert!(args_ok([2, 1, 0, 0], &reset, 0, 6));
    }

    #[test]
    fn half_closed_states() {
        let (mut x, mut t) = conn();
        for s in [
            conn_state::FIN_WAIT1,
            conn_state::CLOSE_WAIT,
            conn_state::LAST_ACK,
            conn_state::CLOSING,
        ] {
            x.state = s;
            let p = path(&x, &t);
            assert!(args_ok([2, 0, 0, 0], &p, 15, 7), "state {s}");
            assert!(!args_ok([2, 0, 0, 0], &p, 15, 6), "state {s} in 1.6");
        }
        x.state = conn_state::FIN_WAIT2;
        assert!(
            parse(conn_mode::REPAIR, &path(&x, &t)).is_none(),
            "fin-wait2, data to send"
        );
        (t.outq_len, t.unsent_len) = (0, 0);
        assert!(args_ok([2, 0, 0, 0], &path(&x, &t), 5, 7));
        for s in [2u16, 3, 6, 7, 10, 12] {
            x.state = s;
            assert!(
                parse(conn_mode::REPAIR, &path(&x, &t)).is_none(),
                "state {s}"
            );
        }
        assert!(fin_sent(conn_state::CLOSING) && fin_received(conn_state::CLOSING));
        assert!(!fin_sent(conn_state::CLOSE_WAIT) && !fin_received(conn_state::FIN_WAIT2));
    }

    #[test]
    fn refuses_bad_records() {
        let (x, t) = conn();
        let p = path(&x, &t);
        assert!(!args_ok([10, 0, 0, 0], &p, 15, 7), "family");
        assert!(!args_ok([2, 0, 0, 0], &p, 14, 7), "data length");
        assert!(!args_ok([2, 2, 0, 0], &p, 15, 7), "mode");
        assert!(!args_ok([2, 1, 0, 0], &p, 15, 7), "reset with repair data");
        assert!(!args_ok([2, 0, 1, 0], &p, 15, 7), "args");
        assert!(!args_ok([2, 0, 0, 0], &p[..191], 15, 7), "short");
        let bad = |f: &dyn Fn(&mut InetRecord, &mut TcpRepair)| {
            let (mut x, mut t) = conn();
            f(&mut x, &mut t);
            parse(conn_mode::REPAIR, &path(&x, &t)).is_none()
        };
        assert!(bad(&|_, t| t.unsent_len = 11));
        assert!(bad(&|_, t| t.mss = 0));
        assert!(bad(&|_, t| t.snd_wscale = 15));
        assert!(bad(&|_, t| t.options = 8));
        assert!(bad(&|_, t| t.inq_len = MAX_QUEUE + 1));
        assert!(bad(&|_, t| {
            t.options = 0;
        }));
        assert!(bad(&|x, _| x.peer_port = 0));
        assert!(bad(&|x, _| x.local_port = 0));
        assert!(bad(&|x, _| x.backlog = 1));
        assert!(bad(&|x, _| x.state = 10));
        assert!(bad(&|x, _| x.family = AF_INET6 + 1));
        let mut p = path(&x, &t);
        p[INET_RECORD_LEN + 60] = 1;
        assert!(parse(conn_mode::REPAIR, &p).is_none(), "reserved");
    }
}
