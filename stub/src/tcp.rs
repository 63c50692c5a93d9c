//! Established TCP connections (format 1.6, fd kind 44,
//! `kckpt_image::tcp`).
//!
//! [`check`], before anything changes: for each connection saved with
//! TCP repair, a probe socket is put in repair mode (`EPERM`: the restorer
//! lacks `CAP_NET_ADMIN`, a refusal naming the connection unless
//! `KCKPT_TCP_CLOSE=1`), bound to the local address and connected to the
//! peer (in repair mode neither sends anything) and closed (in repair mode:
//! silently), so a connection that exists again (the same addresses and
//! ports) refuses the restore in one line.
//!
//! [`socket`] with repair: `socket`, `TCP_REPAIR` on, `IPV6_V6ONLY` and
//! `SO_REUSEPORT` as saved, the sequence numbers of both queues
//! (`TCP_REPAIR_QUEUE` + `TCP_QUEUE_SEQ`, set to the start of each saved
//! queue), `bind` (repair mode forces address reuse: a restored listener
//! holding the same port does not stop it), `connect` (no SYN in repair
//! mode: the socket is established at once), `TCP_REPAIR_OPTIONS` (MSS,
//! window scales, SACK, timestamps), `TCP_TIMESTAMP`, the receive queue's
//! bytes sent into the receive queue, `TCP_REPAIR_WINDOW`, `TCP_REPAIR`
//! off without a window probe (`TCP_REPAIR_OFF_NO_WP`), then the ordinary
//! options as for a listener. Nothing is sent yet: the send queue is
//! written by [`send_queues`] right before the process resumes (see there).
//!
//! (1.7) Half-closed connections. A FIN counts one sequence number, which
//! the saved `snd_seq` (this side's) and `rcv_seq` (the peer's) include:
//! the queues' sequence numbers are set without them, and each FIN is put
//! back the way the kernel takes it. This side's: `shutdown(SHUT_WR)`. The
//! peer's: a FIN from the peer's address and port with the saved sequence
//! numbers, sent through a raw socket (`crate::tcpseg`; `CAP_NET_RAW`,
//! checked by [`check`]); the socket acknowledges it at once, even in
//! repair mode, so it is sent only once every socket of the image exists
//! (in [`send_queues`]): an acknowledgement to a peer of the same image not
//! restored yet would come back as a reset. There the order per state is:
//! close-wait: the FIN, then the send queue; last-ack: the FIN, the send
//! queue, `shutdown`; closing: the send queue, `shutdown`, the FIN
//! (acknowledging only what the peer had); fin-wait1: the send queue,
//! `shutdown`. Fin-wait2 (this side's FIN acknowledged, nothing left to
//! send) is rebuilt in [`socket`], in repair mode: `shutdown` with the send
//! queue selected (the FIN counts as sent, nothing leaves), then a raw ACK
//! of it from the peer (a socket sends nothing for an acknowledgement),
//! then the saved window. The stub waits until the socket took each raw
//! segment (its state changed) and fails naming the connection if it does
//! not (a firewall dropping it). A peer of the same image gets nothing it
//! did not have: acknowledgements again, and a FIN or data it may already
//! hold again, which it drops and acknowledges as after a retransmission.
//!
//! Reset (a record saved with `--tcp-close`, or `KCKPT_TCP_CLOSE=1`): a
//! socket connected over loopback to a listener of the stub's own whose
//! accepted end is closed with `SO_LINGER` 0: it receives an RST, so the
//! program's next `read` or `write` fails with `ECONNRESET` (then `EPIPE`
//! / end of file), as after a peer reset.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kckpt_image::inet::{inet_opts, InetRecord, AF_INET};
use kckpt_image::tcp::{
    conn_mode, conn_state, fin_received, fin_sent, tcp_opts, TcpRepair, TCP_CONN_FD_KIND,
};
use kckpt_image::{FdRecord, FD_NO_DUP};
use linux_raw_sys::errno;
use linux_raw_sys::general as g;

use crate::inet::{addr, call, get, msg, set, sockaddr};
use crate::load::Image;
use crate::sockopts::*;
use crate::sys::{self, Errno};
use crate::tcpseg::{self, Segment};

const IPV6_V6ONLY: usize = 26;
const TCP_MAXSEG: usize = 2;
const TCP_INFO: usize = 11;
const TCP_REPAIR: usize = 19;
const TCP_REPAIR_QUEUE: usize = 20;
const TCP_QUEUE_SEQ: usize = 21;
const TCP_REPAIR_OPTIONS: usize = 22;
const TCP_TIMESTAMP: usize = 24;
const TCP_REPAIR_WINDOW: usize = 29;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
const TCPOPT_MSS: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;
const MSG_DONTWAIT: usize = 0x40;
const TCP_NO_QUEUE: i32 = 0;
const SHUT_WR: usize = 1;
const SIOCOUTQ: usize = 0x5411;
const F_DUPFD_CLOEXEC: usize = 1030;
const NONE: usize = usize::MAX;

/// The raw sockets (IPv4, IPv6) the segments of half-closed connections
/// are sent through, made while the stub may (`CAP_NET_RAW`), above the
/// restored descriptors; closed by [`send_queues`].
static RAW: [AtomicUsize; 2] = [AtomicUsize::new(NONE), AtomicUsize::new(NONE)];

/// `KCKPT_TCP_CLOSE=1`: restore every connection reset.
static CLOSE: AtomicBool = AtomicBool::new(false);

/// `KCKPT_TCP_CLOSE=1` was set.
pub fn set_close() {
    CLOSE.store(true, Ordering::Relaxed);
}

/// The records of connection `r` (validated with the image).
fn records(img: &Image, r: &FdRecord) -> (InetRecord, TcpRepair) {
    let bytes = img.view.string(r.path).unwrap_or(&[]);
    match kckpt_image::tcp::parse(r.args[1], bytes) {
        Some(x) => x,
        None => msg(img, r, None).s(": bad socket record").fail(),
    }
}

/// Restored with TCP repair (else reset)?
pub(crate) fn repaired(r: &FdRecord) -> bool {
    r.args[1] == conn_mode::REPAIR && !CLOSE.load(Ordering::Relaxed)
}

fn new_socket(family: u16) -> Result<usize, Errno> {
    call(
        g::__NR_socket,
        [
            usize::from(family),
            (SOCK_STREAM | g::O_CLOEXEC) as usize,
            IPPROTO_TCP,
            0,
            0,
            0,
        ],
    )
}

fn connect(fd: usize, family: u16, a: &[u8; 16], port: u16) -> Result<usize, Errno> {
    let (s, len) = sockaddr(family, a, port);
    call(g::__NR_connect, [fd, s.as_ptr() as usize, len, 0, 0, 0])
}

/// May this restorer put a socket in repair mode in this network
/// namespace (`CAP_NET_ADMIN`)? A probe socket, never bound.
pub(crate) fn repair_allowed() -> bool {
    match new_socket(AF_INET) {
        Ok(fd) => {
            let ok = set(fd, IPPROTO_TCP, TCP_REPAIR, 1).is_ok();
            sys::close(fd);
            ok
        }
        Err(_) => false,
    }
}

/// Buffers with room for the saved queues (they fitted the old buffers,
/// which the kernel may have grown): `SO_RCVBUFFORCE` / `SO_SNDBUFFORCE`
/// (`CAP_NET_ADMIN` in the initial user namespace), else `SO_RCVBUF` /
/// `SO_SNDBUF` (up to twice `net.core.rmem_max` / `wmem_max`). A queue
/// that still has no room: its name, its length and the buffer's size.
fn make_room(fd: usize, t: &TcpRepair) -> Result<(), (&'static str, u32, u64)> {
    let (rcv, snd) = (u64::from(t.inq_len), u64::from(t.outq_len));
    for (what, len, need, opt, force) in [
        // The bytes, and the kernel's accounting of the buffers that hold
        // them (`truesize`): in the receive queue (repair mode) one buffer
        // per piece of `copy_queue`, its pages and under 1 KiB of its own;
        // in the send queue (an ordinary send, segments of up to 64 KiB
        // with their headers) a sixteenth more and 64 KiB.
        (
            "receive",
            t.inq_len,
            rcv + (rcv / QUEUE_PIECE as u64 + 1) * 1024,
            SO_RCVBUF,
            SO_RCVBUFFORCE,
        ),
        (
            "send",
            t.outq_len,
            snd + snd / 16 + 65536,
            SO_SNDBUF,
            SO_SNDBUFFORCE,
        ),
    ] {
        let have = || get(fd, SOL_SOCKET, opt).unwrap_or(0).max(0) as u64;
        if len == 0 || have() >= need {
            continue;
        }
        let v = need.min(i32::MAX as u64) as i32;
        if set(fd, SOL_SOCKET, force, v).is_err() {
            // The kernel doubles the value it is given.
            let _ = set(fd, SOL_SOCKET, opt, v / 2 + 1);
        }
        if have() < need {
            return Err((what, len, have()));
        }
    }
    Ok(())
}

/// The refusal of a restorer without `CAP_NET_ADMIN`.
fn no_cap(img: &Image, r: &FdRecord, x: &InetRecord) -> ! {
    msg(img, r, Some(x))
        .s(": restoring it needs CAP_NET_ADMIN (TCP repair); kckpt restore --tcp-close or KCKPT_TCP_CLOSE=1 restores it as a reset connection, kckpt restore --new-net-ns (KCKPT_NEW_NET_NS=1) in a network namespace of its own with only a loopback interface")
        .fail()
}

/// `socket`, `TCP_REPAIR` on, the options `bind` depends on, `bind`.
fn repair_socket(img: &Image, r: &FdRecord, x: &InetRecord) -> usize {
    let fd =
        new_socket(x.family).unwrap_or_else(|e| msg(img, r, Some(x)).s(": socket").errno(e).fail());
    match set(fd, IPPROTO_TCP, TCP_REPAIR, 1) {
        Ok(_) => {}
        Err(e) if e.0 == errno::EPERM => no_cap(img, r, x),
        Err(e) => msg(img, r, Some(x)).s(": TCP_REPAIR").errno(e).fail(),
    }
    let on = |bit| i32::from(x.opts & bit != 0);
    let mut opts = set(fd, SOL_SOCKET, SO_REUSEPORT, on(inet_opts::REUSEPORT));
    if x.family != AF_INET {
        opts = opts.and_then(|_| set(fd, IPPROTO_IPV6, IPV6_V6ONLY, on(inet_opts::V6ONLY)));
    }
    if let Err(e) = opts {
        msg(img, r, Some(x))
            .s(": cannot set a socket option")
            .errno(e)
            .fail()
    }
    fd
}

/// `bind` and `connect` of a socket in repair mode, or a refusal naming
/// what is in use.
fn attach(img: &Image, r: &FdRecord, x: &InetRecord, fd: usize) {
    if let Err(e) = crate::inet::bind_to_device(fd, x).and_then(|_| crate::inet::bind(fd, x)) {
        let mut m = msg(img, r, Some(x));
        m.s(": cannot bind ");
        addr(&mut m, x.family, &x.local, x.local_port);
        m.s(" again");
        crate::netns::explain(&mut m);
        m.errno(e).fail()
    }
    if let Err(e) = connect(fd, x.family, &x.peer, x.peer_port) {
        let mut m = msg(img, r, Some(x));
        m.s(": cannot connect it again");
        if matches!(e.0, errno::EADDRNOTAVAIL | errno::EADDRINUSE) {
            m.s(": that connection exists (the dumped process still running, or the connection still closing)");
        }
        m.errno(e).fail()
    }
}

/// Before anything changes: every connection restored with repair can be
/// (the restorer may use TCP repair, its addresses are free).
pub fn check(img: &Image) {
    let conn = |r: &FdRecord| r.dup_of == FD_NO_DUP && r.kind == TCP_CONN_FD_KIND;
    for r in img.view.fds.iter().filter(conn) {
        let (x, t) = records(img, &r);
        if !repaired(&r) {
            continue;
        }
        let probe = repair_socket(img, &r, &x);
        attach(img, &r, &x, probe);
        if let Err((queue, len, size)) = make_room(probe, &t) {
            msg(img, &r, Some(&x))
                .s(": its ")
                .s(queue)
                .s(" queue of ")
                .dec(len.into())
                .s(" bytes does not fit the largest buffer this user may set (")
                .dec(size)
                .s(" bytes: twice net.core.rmem_max or wmem_max; more needs CAP_NET_ADMIN in the initial user namespace); kckpt restore --tcp-close or KCKPT_TCP_CLOSE=1 restores it as a reset connection")
                .fail()
        }
        sys::close(probe); // in repair mode: no FIN, no RST
        if needs_raw(&x) {
            match tcpseg::open(tcpseg::wire_v4(&x)) {
                Ok(fd) => sys::close(fd),
                Err(e) => {
                    let mut m = msg(img, &r, Some(&x));
                    state_name(&mut m, &x);
                    if e.0 == errno::EPERM {
                        m.s(": restoring it needs CAP_NET_RAW (");
                        m.s(if x.state == conn_state::FIN_WAIT2 {
                            "the acknowledgement of its FIN"
                        } else {
                            "the peer's FIN"
                        });
                        m.s(" is sent to it as a raw packet); kckpt restore --tcp-close or KCKPT_TCP_CLOSE=1 restores it as a reset connection").fail()
                    }
                    m.s(": a raw socket").errno(e).fail()
                }
            }
        }
    }
}

/// A connection in state `x.state` is rebuilt with raw segments.
fn needs_raw(x: &InetRecord) -> bool {
    fin_received(x.state) || x.state == conn_state::FIN_WAIT2
}

/// ` in state close-wait` after a connection's name, for a half-closed one.
fn state_name(m: &mut crate::report::Msg, x: &InetRecord) {
    let name = match x.state {
        conn_state::FIN_WAIT1 => "fin-wait1",
        conn_state::FIN_WAIT2 => "fin-wait2",
        conn_state::CLOSE_WAIT => "close-wait",
        conn_state::LAST_ACK => "last-ack",
        conn_state::CLOSING => "closing",
        _ => return,
    };
    m.s(" in state ").s(name);
}

/// The raw socket for `x`'s segments, made the first time (above `floor`).
fn raw_socket(img: &Image, r: &FdRecord, x: &InetRecord, floor: usize) -> usize {
    let slot = &RAW[usize::from(!tcpseg::wire_v4(x))];
    let fd = slot.load(Ordering::Relaxed);
    if fd != NONE {
        return fd;
    }
    let high = tcpseg::open(tcpseg::wire_v4(x)).and_then(|fd| {
        let high = sys::fcntl(fd, F_DUPFD_CLOEXEC as u32, floor);
        sys::close(fd);
        high
    });
    let fd = high.unwrap_or_else(|e| msg(img, r, Some(x)).s(": a raw socket").errno(e).fail());
    slot.store(fd, Ordering::Relaxed);
    fd
}

/// Send `seg` to connection `x` (socket `fd`) from its peer, and wait until
/// the socket took it (its state no longer one of `before`), or fail
/// naming `what`. A socket already past `before` (the peer itself sent the
/// segment again meanwhile) gets nothing.
fn inject(
    img: &Image,
    r: &FdRecord,
    x: &InetRecord,
    fd: usize,
    seg: &Segment,
    before: &[u8],
    what: &str,
) {
    let raw = RAW[usize::from(!tcpseg::wire_v4(x))].load(Ordering::Relaxed);
    let fail = |e: Option<Errno>| -> ! {
        let mut m = msg(img, r, Some(x));
        state_name(&mut m, x);
        m.s(": ").s(what);
        match e {
            Some(e) => m.s(", sent to it as a raw packet").errno(e).fail(),
            None => m
                .s(", sent to it as a raw packet, did not reach it (a firewall dropping it?)")
                .fail(),
        }
    };
    if !before.contains(&tcp_state(fd)) {
        return;
    }
    tcpseg::send(raw, x, seg).unwrap_or_else(|e| fail(Some(e)));
    // Loopback delivers it at once, mostly before `sendto` returns.
    for i in 0..400 {
        if !before.contains(&tcp_state(fd)) {
            return;
        }
        if i < 100 {
            let _ = call(g::__NR_sched_yield, [0; 6]);
        } else {
            crate::ksys::sleep_ms(5);
        }
    }
    fail(None)
}

/// `tcpi_state` of socket `fd` (0 if unknown).
fn tcp_state(fd: usize) -> u8 {
    let mut info = [0u8; 8];
    match crate::inet::get_bytes(fd, IPPROTO_TCP, TCP_INFO, &mut info) {
        Ok(_) => info[0],
        Err(_) => 0,
    }
}

/// The window field of a segment from the peer: the saved send window in
/// the peer's scale.
fn peer_window(t: &TcpRepair) -> u16 {
    let scale = if t.options & tcp_opts::WSCALE != 0 {
        t.snd_wscale
    } else {
        0
    };
    (t.snd_wnd >> scale).min(65535) as u16
}

/// The socket of connection `r` (not yet at its number); the stub's own
/// descriptors go above `floor`.
pub fn socket(img: &Image, r: &FdRecord, floor: usize) -> usize {
    let (x, t) = records(img, r);
    if !repaired(r) {
        return reset(img, r, &x);
    }
    let fail =
        |what: &str, e: Errno| -> ! { msg(img, r, Some(&x)).s(": ").s(what).errno(e).fail() };
    if needs_raw(&x) {
        raw_socket(img, r, &x, floor);
    }
    let fd = repair_socket(img, r, &x);
    let queue = |q: i32| set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, q);
    // The queues start after the last byte each side had acknowledged
    // (without the FINs, put back later).
    let (snd_una, rcv_nxt) = unfinned(&x, &t);
    queue(TCP_SEND_QUEUE)
        .and_then(|_| set(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, snd_una as i32))
        .and_then(|_| queue(TCP_RECV_QUEUE))
        .and_then(|_| {
            set(
                fd,
                IPPROTO_TCP,
                TCP_QUEUE_SEQ,
                rcv_nxt.wrapping_sub(t.inq_len) as i32,
            )
        })
        .unwrap_or_else(|e| fail("cannot set the sequence numbers (TCP_QUEUE_SEQ)", e));
    // The segment size is computed at `connect` from the MSS clamp (the
    // one TCP_REPAIR_OPTIONS sets later is not used for it: without this
    // the connection would send 524-byte segments); TCP_MAXSEG takes at
    // most 32767, at least 88.
    if t.mss >= 88 {
        set(fd, IPPROTO_TCP, TCP_MAXSEG, segment_size(&t) as i32)
            .unwrap_or_else(|e| fail("cannot set the MSS (TCP_MAXSEG)", e));
    }
    attach(img, r, &x, fd);
    // The options both ends agreed on.
    let mut o = [[0u32; 2]; 4];
    let mut n = 0;
    o[n] = [TCPOPT_MSS, t.mss];
    n += 1;
    if t.options & tcp_opts::WSCALE != 0 {
        o[n] = [
            TCPOPT_WINDOW,
            u32::from(t.snd_wscale) | u32::from(t.rcv_wscale) << 16,
        ];
        n += 1;
    }
    if t.options & tcp_opts::SACK != 0 {
        o[n] = [TCPOPT_SACK_PERM, 0];
        n += 1;
    }
    if t.options & tcp_opts::TIMESTAMPS != 0 {
        o[n] = [TCPOPT_TIMESTAMP, 0];
        n += 1;
    }
    call(
        g::__NR_setsockopt,
        [
            fd,
            IPPROTO_TCP,
            TCP_REPAIR_OPTIONS,
            o.as_ptr() as usize,
            8 * n,
            0,
        ],
    )
    .unwrap_or_else(|e| fail("cannot set the TCP options (TCP_REPAIR_OPTIONS)", e));
    set(fd, IPPROTO_TCP, TCP_TIMESTAMP, t.timestamp as i32)
        .unwrap_or_else(|e| fail("TCP_TIMESTAMP", e));
    // Room for the queues (checked by `check`).
    let _ = make_room(fd, &t);
    set(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
        .unwrap_or_else(|e| fail("TCP_REPAIR_QUEUE", e));
    copy_queue(img, fd, img.at(r.data_offset), t.inq_len)
        .unwrap_or_else(|e| fail("cannot refill the receive queue", e));
    if x.state == conn_state::FIN_WAIT2 {
        // This side's FIN, counted as sent (nothing leaves), then its
        // acknowledgement from the peer; the window is set after it.
        queue(TCP_SEND_QUEUE)
            .and_then(|_| call(g::__NR_shutdown, [fd, SHUT_WR, 0, 0, 0, 0]))
            .and_then(|_| queue(TCP_NO_QUEUE))
            .unwrap_or_else(|e| fail("cannot shut it down for writing in repair mode", e));
        let ack = Segment {
            seq: t.rcv_seq,
            ack: t.snd_seq,
            flags: tcpseg::ACK,
            window: peer_window(&t),
        };
        let sent = [conn_state::FIN_WAIT1 as u8];
        inject(
            img,
            r,
            &x,
            fd,
            &ack,
            &sent,
            "the acknowledgement of its FIN",
        );
    }
    // The peer's FIN is not received yet: the window it advertised may
    // not start after it (its right edge is kept).
    let mut w = [t.snd_wl1, t.snd_wnd, t.max_window, t.rcv_wnd, t.rcv_wup];
    let ahead = t.rcv_wup.wrapping_sub(rcv_nxt) as i32;
    if ahead > 0 {
        w[3] = w[3].wrapping_add(ahead as u32);
        w[4] = rcv_nxt;
    }
    call(
        g::__NR_setsockopt,
        [
            fd,
            IPPROTO_TCP,
            TCP_REPAIR_WINDOW,
            w.as_ptr() as usize,
            20,
            0,
        ],
    )
    .unwrap_or_else(|e| fail("cannot set the window (TCP_REPAIR_WINDOW)", e));
    match set(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP) {
        Err(e) if e.0 == errno::EINVAL => set(fd, IPPROTO_TCP, TCP_REPAIR, 0),
        other => other,
    }
    .unwrap_or_else(|e| fail("cannot leave repair mode", e));
    crate::inet::options(img, r, &x, fd, true);
    fd
}

/// The MSS clamp for `connect` of connection `t`: the saved one (at most
/// 32767, what TCP_MAXSEG takes), bounded as the kernel bounds a segment
/// to half the largest window the peer offered (`tcp_bound_to_half_wnd`,
/// which runs when the MSS is computed: at `connect`, where the window is
/// not known yet, and when the peer offers a larger one than ever).
/// Without it a peer that only ever offered a window smaller than one
/// segment (a receiver with a small `SO_RCVBUF`) gets nothing but one
/// window-sized probe per persist timer (about 20 KB/s).
fn segment_size(t: &TcpRepair) -> u32 {
    let mss = t.mss.min(32767);
    let half = if t.max_window > 536 {
        t.max_window >> 1
    } else {
        t.max_window
    };
    if half == 0 || mss <= half {
        return mss;
    }
    // The clamp counts the timestamp option, the segment does not (12
    // bytes, taken off the clamp at `connect`).
    let ts = if t.options & tcp_opts::TIMESTAMPS != 0 {
        12
    } else {
        0
    };
    (half + ts).clamp(88, mss)
}

/// Write `len` bytes of the image at `at` to socket `fd` (in repair mode
/// with `TCP_RECV_QUEUE`: into its receive queue), straight from a
/// read-only mapping of the image, in pieces of [`QUEUE_PIECE`] bytes: a
/// receive queue filled in repair mode takes one buffer per `send`, of
/// whole pages when the piece is (its accounting, `truesize`, is then the
/// bytes and under 1 KiB more, which [`make_room`] counts on; pieces of
/// one page cost twice the bytes until the kernel collapses them, and a
/// quarter more after). The mapping is gone before this returns.
fn copy_queue(img: &Image, fd: usize, at: u64, len: u32) -> Result<(), Errno> {
    const MSG_NOSIGNAL: usize = 0x4000;
    if len == 0 {
        return Ok(());
    }
    let page = u64::from(img.view.header.page_size);
    let base = at / page * page;
    let map_len = (at + u64::from(len) - base) as usize;
    // SAFETY: a new read-only private mapping where the kernel chooses
    // (no MAP_FIXED): nothing else is there, and it is unmapped below.
    let addr = unsafe { sys::mmap(0, map_len, g::PROT_READ, g::MAP_PRIVATE, img.fd, base) }?;
    let mut done = 0usize;
    let from = addr + (at - base) as usize;
    let mut r = Ok(());
    while done < len as usize {
        let n = (len as usize - done).min(QUEUE_PIECE);
        match call(
            g::__NR_sendto,
            [fd, from + done, n, MSG_DONTWAIT | MSG_NOSIGNAL, 0, 0],
        ) {
            Ok(0) => {
                r = Err(Errno(errno::EIO));
                break;
            }
            Ok(k) => done += k,
            Err(e) => {
                r = Err(e);
                break;
            }
        }
    }
    // SAFETY: the mapping made above, no longer used.
    let _ = unsafe { sys::munmap(addr, map_len) };
    r
}

/// Bytes per `send` of [`copy_queue`]: 16 pages of 4 KiB (under
/// `MAX_SKB_FRAGS`, 17, so one buffer of page fragments each).
const QUEUE_PIECE: usize = 16 * 4096;

/// Right before the process resumes (in a tree, once every process of it
/// is ready, so every peer exists): the send queue of every connection
/// restored with repair is written again, as the program had written it.
/// The kernel sends it from the first byte the peer had not acknowledged:
/// the peer drops what it had received already. Restored in repair mode
/// instead (as sent), it would be retransmitted by a timer that may fire
/// (200 ms) before a peer of the same tree is restored, which then answers
/// with a reset. (1.7) The FINs of half-closed connections are put back
/// around it (module doc), then the raw sockets are closed.
pub fn send_queues(img: &Image) {
    crate::inet::finish(img);
    let conn = |r: &FdRecord| r.dup_of == FD_NO_DUP && r.kind == TCP_CONN_FD_KIND;
    for r in img.view.fds.iter().filter(conn) {
        let (x, t) = records(img, &r);
        let fd = r.fd as usize;
        if repaired(&r) {
            let fin_in = |x: &InetRecord, t: &TcpRepair, ack: u32| {
                let fin = Segment {
                    seq: t.rcv_seq.wrapping_sub(1),
                    ack,
                    flags: tcpseg::FIN | tcpseg::ACK,
                    window: peer_window(t),
                };
                // Not received yet: established, or shut down for writing.
                let open = [1, conn_state::FIN_WAIT1 as u8, conn_state::FIN_WAIT2 as u8];
                inject(img, &r, x, fd, &fin, &open, "the peer's FIN");
            };
            if matches!(x.state, conn_state::CLOSE_WAIT | conn_state::LAST_ACK) {
                fin_in(&x, &t, unfinned(&x, &t).0);
            }
            if t.outq_len != 0 {
                let at = img.at(r.data_offset) + u64::from(t.inq_len);
                if let Err(e) = copy_queue(img, fd, at, t.outq_len) {
                    msg(img, &r, Some(&x))
                        .s(": cannot refill the send queue")
                        .errno(e)
                        .fail()
                }
            }
            if fin_sent(x.state) && x.state != conn_state::FIN_WAIT2 {
                if let Err(e) = call(g::__NR_shutdown, [fd, SHUT_WR, 0, 0, 0, 0]) {
                    let mut m = msg(img, &r, Some(&x));
                    state_name(&mut m, &x);
                    m.s(": cannot shut it down for writing").errno(e).fail()
                }
            }
            if x.state == conn_state::CLOSING {
                // What the peer has acknowledged of the queue sent again.
                let mut outq: i32 = 0;
                let _ = call(
                    g::__NR_ioctl,
                    [fd, SIOCOUTQ, &mut outq as *mut i32 as usize, 0, 0, 0],
                );
                fin_in(&x, &t, t.snd_seq.wrapping_sub(outq.max(0) as u32));
            }
        }
        // Sizes the program set (locked), once the queue is in.
        crate::inet::buffers(img, &r, &x, fd);
    }
    for slot in &RAW {
        let fd = slot.swap(NONE, Ordering::Relaxed);
        if fd != NONE {
            sys::close(fd);
        }
    }
}

/// `snd_una` and `rcv_nxt` of connection `x` saved as `t`, without the
/// FINs: where its queues start (the send queue's first byte not
/// acknowledged, the byte after the receive queue).
fn unfinned(x: &InetRecord, t: &TcpRepair) -> (u32, u32) {
    let snd = t
        .snd_seq
        .wrapping_sub(u32::from(fin_sent(x.state)))
        .wrapping_sub(t.outq_len);
    let rcv = t.rcv_seq.wrapping_sub(u32::from(fin_received(x.state)));
    (snd, rcv)
}

/// A socket whose connection was reset (see the module's doc).
fn reset(img: &Image, r: &FdRecord, x: &InetRecord) -> usize {
    let fail = |what: &str, e: Errno| -> ! {
        let mut m = msg(img, r, Some(x));
        m.s(": restoring it reset: ").s(what).errno(e);
        if matches!(e.0, errno::ENETUNREACH | errno::EADDRNOTAVAIL) {
            m.s(" (it needs a loopback interface that is up)");
        }
        m.fail()
    };
    let mut lo = [0u8; 16];
    if x.family == AF_INET {
        lo[..4].copy_from_slice(&[127, 0, 0, 1]);
    } else {
        lo[15] = 1;
    }
    let l = new_socket(x.family).unwrap_or_else(|e| fail("socket", e));
    let (s, len) = sockaddr(x.family, &lo, 0);
    call(g::__NR_bind, [l, s.as_ptr() as usize, len, 0, 0, 0])
        .and_then(|_| call(g::__NR_listen, [l, 1, 0, 0, 0, 0]))
        .unwrap_or_else(|e| fail("a loopback listener", e));
    let mut got = [0u8; 28];
    let mut got_len: u32 = 28;
    call(
        g::__NR_getsockname,
        [
            l,
            got.as_mut_ptr() as usize,
            &mut got_len as *mut u32 as usize,
            0,
            0,
            0,
        ],
    )
    .unwrap_or_else(|e| fail("getsockname", e));
    let port = u16::from_be_bytes([got[2], got[3]]);
    let fd = new_socket(x.family).unwrap_or_else(|e| fail("socket", e));
    connect(fd, x.family, &lo, port).unwrap_or_else(|e| fail("connect over loopback", e));
    let a = call(g::__NR_accept4, [l, 0, 0, g::O_CLOEXEC as usize, 0, 0])
        .unwrap_or_else(|e| fail("accept", e));
    let linger: [i32; 2] = [1, 0];
    call(
        g::__NR_setsockopt,
        [a, SOL_SOCKET, SO_LINGER, linger.as_ptr() as usize, 8, 0],
    )
    .unwrap_or_else(|e| fail("SO_LINGER", e));
    sys::close(a); // sends the RST
    sys::close(l);
    // Loopback delivers the RST at once; wait until the socket saw it.
    for _ in 0..10_000 {
        // 0: TCP_INFO failed; 7: TCP_CLOSE.
        if matches!(tcp_state(fd), 0 | 7) {
            break;
        }
        let _ = call(g::__NR_sched_yield, [0; 6]);
    }
    fd
}
