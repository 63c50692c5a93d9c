//! Established TCP connections (format 1.6, fd kind 44,
//! `kckpt_image::tcp`) and (1.7) half-closed ones (fin-wait1, fin-wait2,
//! close-wait, last-ack, closing): saved with the kernel's TCP repair mode,
//! or with `--tcp-close` as connections restored reset.
//!
//! A FIN counts one sequence number: in a state where this side sent one,
//! `TCP_QUEUE_SEQ` of the send queue (`write_seq`) and `SIOCOUTQ` (until
//! it is acknowledged) and `SIOCOUTQNSD` (until it is sent) count it, the
//! peek of the send queue does not; where the peer's was received,
//! `TCP_QUEUE_SEQ` of the receive queue (`rcv_nxt`) and `inet_diag`'s
//! receive queue (until the program read the end of file) count it,
//! `SIOCINQ` and the peek do not. The record keeps both sequence numbers as
//! read and the queues' lengths in bytes of data.
//!
//! First, out of repair mode, [`settle_flow`] waits until the connection
//! moved no data for a moment (at most 3 s): the stopped processes' queues
//! are still being sent. Then, on the `pidfd_getfd` copy of the socket (it
//! shares the target's `struct sock`): `TCP_REPAIR` on (needs `CAP_NET_ADMIN` in the socket's
//! network namespace; `EPERM` without it is a refusal naming the
//! connection), then per queue `TCP_REPAIR_QUEUE` + `TCP_QUEUE_SEQ` and a
//! `MSG_PEEK` of its bytes (the send queue holds the bytes sent and not
//! acknowledged, then those not sent, `SIOCOUTQNSD`), `TCP_REPAIR_WINDOW`,
//! `TCP_INFO` (the negotiated SACK, timestamps and window scales),
//! `TCP_MAXSEG` (in repair mode the MSS clamp) and `TCP_TIMESTAMP`.
//!
//! Repair mode is turned off again as soon as a connection is read
//! (`TCP_REPAIR_OFF_NO_WP`: no window probe, the connection never stopped;
//! `SO_REUSEADDR` put back, which leaving repair mode clears), so a dumper
//! killed meanwhile leaves it working. The copies stay here until the dump
//! ends. Right before the image is committed ([`arm_and_verify`]) each is
//! put in repair mode again and checked unchanged since it was read (a
//! packet of the peer meanwhile fails the dump). A socket in repair mode
//! sends nothing when it is closed (no FIN, no RST): when the target is
//! killed ([`settle`] with `killed`) the copies are closed as they are, so
//! the peer notices nothing; when it is resumed (`--leave-running`) or the
//! dump fails ([`Guard`]), repair mode is turned off first.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;

use kckpt_image::inet::{inet_opts, InetRecord};
use kckpt_image::tcp::{
    conn_mode, conn_state, conn_state_known, fin_received, fin_sent, tcp_opts, TcpRepair,
    MAX_QUEUE, TCP_CONN_FD_KIND,
};

use super::fdsys;
use super::inet::{self, InetDiag};

const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
const TCP_NO_QUEUE: i32 = 0;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
/// `TCP_REPAIR_OFF_NO_WP` (Linux 4.19): repair off without a window probe.
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
pub(super) const SIOCINQ: libc::c_ulong = 0x541B;
const SIOCOUTQ: libc::c_ulong = 0x5411;
const SIOCOUTQNSD: libc::c_ulong = 0x894B;

/// `--tcp-close` of the running dump.
static CLOSE: AtomicBool = AtomicBool::new(false);

/// A copy of a socket put in repair mode, and whether `SO_REUSEADDR` was
/// on (turning repair off clears it).
struct Held {
    fd: OwnedFd,
    reuse: bool,
    /// The process, the connection's name, and what was saved of it:
    /// `rcv_nxt`, `snd_una` (once saved).
    pid: i32,
    name: String,
    saved: Option<(u32, u32)>,
}

/// Every socket of the running dump in repair mode.
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

/// Set `--tcp-close` for the dump about to run.
pub fn set_close(on: bool) {
    CLOSE.store(on, Ordering::Relaxed);
}

/// Turns repair mode off on every socket still held, when dropped: on a
/// failed dump, before its processes are resumed (declare it after them).
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        settle(false);
    }
}

/// Before the image is committed: every connection saved is put in
/// repair mode again (so that it closes silently when the processes are
/// killed) and is as it was saved (nothing was received or acknowledged
/// since: a packet of the peer that came meanwhile would be lost), or the
/// dump fails.
pub fn arm_and_verify() -> crate::error::Result<()> {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    for h in held.iter() {
        let Some((rcv, una)) = h.saved else { continue };
        let fd = h.fd.as_raw_fd();
        let now = (|| {
            set(fd, TCP_REPAIR, 1)?;
            set(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)?;
            let rcv = get(fd, TCP_QUEUE_SEQ)? as u32;
            set(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)?;
            let snd = get(fd, TCP_QUEUE_SEQ)? as u32;
            let outq = fdsys::sock_ioctl_int(fd, SIOCOUTQ)? as u32;
            let _ = set(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
            Ok::<_, Errno>((rcv, snd.wrapping_sub(outq)))
        })();
        if now != Ok((rcv, una)) {
            return Err(crate::error::Error::Changed {
                pid: h.pid,
                reason: format!(
                    "{} changed while it was saved (its peer sent or acknowledged \
                     data during the dump)",
                    h.name
                ),
            });
        }
    }
    Ok(())
}

/// End of the dump: with `killed` the copies are closed in repair mode
/// (the peer sees nothing), else repair mode is turned off first.
pub fn settle(killed: bool) {
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|e| e.into_inner()));
    if !killed {
        for h in &held {
            repair_off(h);
        }
    }
}

/// `--leave-running`: out of repair mode, and a warning per connection
/// saved: the image holds it as it was; once the live one has moved on, a
/// restore of the image (when the live one is gone) is out of step with
/// the peer.
pub fn leave_running() {
    let names: Vec<String> = HELD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|h| h.saved.is_some())
        .map(|h| h.name.clone())
        .collect();
    settle(false);
    for n in names {
        eprintln!(
            "kckpt: warning: {n} carries on (--leave-running): the image holds it as it is now; \
             restored once it has moved on (and closed), it is out of step with its peer"
        );
    }
}

fn repair_off(h: &Held) {
    let fd = h.fd.as_raw_fd();
    if set(fd, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP) == Err(Errno::EINVAL) {
        let _ = set(fd, TCP_REPAIR, 0); // a kernel before 4.19
    }
    if h.reuse {
        let _ = fdsys::set_sockopt_bytes(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &1i32.to_ne_bytes(),
        );
    }
}

fn set(fd: RawFd, opt: i32, v: i32) -> nix::Result<()> {
    fdsys::set_sockopt_bytes(fd, libc::IPPROTO_TCP, opt, &v.to_ne_bytes())
}

fn get(fd: RawFd, opt: i32) -> nix::Result<i32> {
    fdsys::sockopt_at(fd, libc::IPPROTO_TCP, opt)
}

/// What a connection is saved as: its record's `path` (`InetRecord` +
/// `TcpRepair`), data (receive queue, then send queue) and mode
/// (`args[1]`).
pub struct Conn {
    /// `InetRecord` then `TcpRepair`.
    pub path: Vec<u8>,
    /// The receive queue's bytes, then the send queue's.
    pub data: Vec<u8>,
    /// [`conn_mode`].
    pub mode: u64,
}

/// `TCP connection LOCAL -> PEER`.
pub fn name(d: &InetDiag) -> String {
    let family = u16::from(d.family);
    format!(
        "TCP connection {} -> {}",
        inet::addr_text(family, &d.src, d.sport),
        inet::addr_text(family, &d.dst, d.dport)
    )
}

/// The TCP socket `sock` (a copy of the target's), neither listening nor
/// closed (`d` its `inet_diag`): what it is saved as, or the reason it is
/// refused (everything that can refuse it is checked before it is put in
/// repair mode).
pub fn record(sock: &OwnedFd, d: &InetDiag, ino: u64, pid: i32) -> Result<Conn, String> {
    let shown = name(d);
    let state = u16::from(d.state);
    if !conn_state_known(state) {
        return Err(format!(
            "{shown} in state {} (only established and half-closed connections are saved)",
            inet::state_name(d.state)
        ));
    }
    let mut r = InetRecord {
        family: u16::from(d.family),
        state,
        local_port: d.sport,
        peer_port: d.dport,
        local: d.src,
        peer: d.dst,
        ..InetRecord::default()
    };
    // The shutdown the state implies (the peer's FIN: reading; this
    // side's: writing) is the state's; any other is refused by `options`.
    let implied = u8::from(fin_received(state)) | u8::from(fin_sent(state)) << 1;
    let own = InetDiag {
        shutdown: d.shutdown & !implied,
        ..d.clone()
    };
    inet::options(sock, libc::IPPROTO_TCP, true, &own, &shown, &mut r)?;
    let mut path = r.encode().to_vec();
    if InetRecord::parse(TCP_CONN_FD_KIND, &path).is_none() {
        return Err(format!("{shown} with option values kckpt cannot keep"));
    }
    if CLOSE.load(Ordering::Relaxed) {
        path.extend_from_slice(&TcpRepair::default().encode());
        return Ok(Conn {
            path,
            data: Vec::new(),
            mode: conn_mode::RESET,
        });
    }
    congestion_default(sock).map_err(|cc| {
        format!("{shown} with congestion control {cc} (TCP_CONGESTION, not restored)")
    })?;
    let fd = sock.as_raw_fd();
    settle_flow(fd);
    match set(fd, TCP_REPAIR, 1) {
        Ok(()) => {}
        Err(Errno::EPERM) => {
            return Err(format!(
                "{shown} (saving it needs CAP_NET_ADMIN, for TCP repair; \
                 --tcp-close saves it as a connection restored reset)"
            ))
        }
        Err(e) => return Err(format!("{shown} (TCP_REPAIR: {})", e.desc())),
    }
    let copy = sock
        .try_clone()
        .map_err(|e| format!("{shown} (cannot keep a copy: {e})"))?;
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(Held {
        fd: copy,
        reuse: r.opts & inet_opts::REUSEADDR != 0,
        pid,
        name: shown.clone(),
        saved: None,
    });
    // Bytes received and not read, by `inet_diag`.
    let queued = || inet::diag(i32::from(d.family), libc::IPPROTO_TCP, ino).map(|d| d.rqueue);
    let got = read_repair(fd, state, queued).map_err(|e| format!("{shown} ({e})"));
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let (t, data) = match got {
        Ok(x) => x,
        Err(why) => {
            // Refused (or skipped: then closed normally at the kill).
            if let Some(h) = held.pop() {
                repair_off(&h);
            }
            return Err(why);
        }
    };
    if let Some(h) = held.last_mut() {
        h.saved = Some((t.rcv_seq, snd_una(state, &t)));
        // Out of repair mode until the end ([`arm_and_verify`]): a dumper
        // killed meanwhile leaves the connection as it was.
        repair_off(h);
    }
    path.extend_from_slice(&t.encode());
    Ok(Conn {
        path,
        data,
        mode: conn_mode::REPAIR,
    })
}

/// `Err(name)` when `sock`'s congestion control is not the one a new
/// socket gets (a program's `TCP_CONGESTION`).
fn congestion_default(sock: &OwnedFd) -> Result<(), String> {
    let name = |fd: RawFd| {
        let mut b = [0u8; 16];
        let n =
            fdsys::sockopt_bytes(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, &mut b).unwrap_or(0);
        let end = b[..n].iter().position(|&c| c == 0).unwrap_or(n);
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let fresh = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("? (cannot make a socket to compare with: {e})"))?;
    let (mine, new) = (name(sock.as_raw_fd()), name(fresh.as_raw_fd()));
    if mine == new {
        Ok(())
    } else {
        Err(mine)
    }
}

/// How long a connection must have moved no data (either way) to be read:
/// more than the shortest retransmission timer (200 ms), after which a
/// segment a full receiver dropped is sent again (and may be taken once
/// the receiver collapsed its queue).
const QUIET: Duration = Duration::from_millis(250);
/// The longest [`settle_flow`] waits.
const SETTLE_MAX: Duration = Duration::from_secs(3);

/// Wait (out of repair mode) until connection `fd` moved no data for
/// [`QUIET`], at most [`SETTLE_MAX`]. The processes are stopped, but the
/// kernel goes on sending their queues as long as the peers' windows allow
/// (paced: a busy connection over loopback took some 100 KB more between
/// two reads of its receive queue, and segments dropped by a full receiver come
/// again at the retransmission timer), and a peer fills its window only
/// after that: read before, a connection whose queues are full both ways
/// changed between its read and the commit, or while it was read. Read
/// from `TCP_INFO` (`tcpi_last_data_sent`, `tcpi_last_data_recv`, ms;
/// `tcpi_bytes_acked`, `tcpi_bytes_received`); a connection quiet already
/// costs nothing. What still moves after it (a peer outside the dump that
/// sends, a window reopened when a full receive queue is collapsed, at a
/// retransmission timer) fails the dump at its final check, as before.
fn settle_flow(fd: RawFd) {
    let sample = || {
        let mut info = [0u8; 136];
        let n = fdsys::sockopt_bytes(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).ok()?;
        if n < 136 {
            return None;
        }
        let u32_at = |o: usize| u32::from_ne_bytes(info[o..o + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |o: usize| u64::from_ne_bytes(info[o..o + 8].try_into().unwrap_or([0; 8]));
        let idle = Duration::from_millis(u64::from(u32_at(44).min(u32_at(52))));
        Some((idle, (u64_at(120), u64_at(128))))
    };
    let start = Instant::now();
    let Some((idle, mut last)) = sample() else {
        return;
    };
    if idle >= QUIET {
        return;
    }
    let mut since = Instant::now();
    while start.elapsed() < SETTLE_MAX {
        std::thread::sleep(Duration::from_millis(2));
        let Some((idle, now)) = sample() else {
            return;
        };
        if idle >= QUIET {
            return;
        }
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= QUIET {
            return;
        }
    }
}

/// `snd_una` of a connection in `state` saved as `t`: `snd_seq` less the
/// bytes not acknowledged and this side's FIN when it is not (fin-wait2:
/// acknowledged).
fn snd_una(state: u16, t: &TcpRepair) -> u32 {
    let fin = u32::from(fin_sent(state) && state != conn_state::FIN_WAIT2);
    t.snd_seq.wrapping_sub(t.outq_len).wrapping_sub(fin)
}

/// The repair state and queued bytes of socket `fd` in `state`, in repair
/// mode.
fn read_repair(
    fd: RawFd,
    state: u16,
    queued: impl Fn() -> Option<u32>,
) -> Result<(TcpRepair, Vec<u8>), String> {
    fn e(what: &'static str) -> impl Fn(Errno) -> String {
        move |e| format!("{what}: {}", e.desc())
    }
    let mut info = [0u8; 104];
    fdsys::sockopt_bytes(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info)
        .map_err(e("TCP_INFO"))?;
    if u16::from(info[0]) != state {
        return Err(format!(
            "left state {} meanwhile, now {}",
            inet::state_name(state as u8),
            inet::state_name(info[0])
        ));
    }
    // This side's FIN while it is not acknowledged, the peer's once
    // received: each one sequence number and no byte.
    let fin_out = u32::from(fin_sent(state) && state != conn_state::FIN_WAIT2);
    let fin_in = u32::from(fin_received(state));
    let mut t = TcpRepair {
        options: u32::from(info[5]) & tcp_opts::KNOWN,
        ..TcpRepair::default()
    };
    if t.options & tcp_opts::WSCALE != 0 {
        t.snd_wscale = info[6] & 15;
        t.rcv_wscale = info[6] >> 4;
    }
    // The receive queue: its bytes and rcv_nxt, read again until a packet
    // coming meanwhile changes neither.
    set(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE).map_err(e("TCP_REPAIR_QUEUE"))?;
    // `inet_diag`'s count is read between the two, so that all three
    // describe one `rcv_nxt` (a packet arriving between a peek and a
    // later count looked like urgent data).
    let mut inq = Vec::new();
    let mut counted = None;
    let mut steady = false;
    for _ in 0..5 {
        let seq = get(fd, TCP_QUEUE_SEQ).map_err(e("TCP_QUEUE_SEQ"))?;
        let len = fdsys::sock_ioctl_int(fd, SIOCINQ).map_err(e("SIOCINQ"))?;
        inq = peek(fd, len.max(0) as usize)?;
        counted = queued();
        let again = get(fd, TCP_QUEUE_SEQ).map_err(e("TCP_QUEUE_SEQ"))?;
        if seq == again && inq.len() == len.max(0) as usize {
            t.rcv_seq = seq as u32;
            steady = true;
            break;
        }
    }
    if !steady {
        return Err("its receive queue kept changing".into());
    }
    // `SIOCINQ` and a peek stop at an urgent mark; `inet_diag` counts
    // every byte up to `rcv_nxt`, and the peer's FIN until the program
    // read the end of file (then nothing is left).
    let read_all = |all: u32| {
        all as usize == inq.len() + fin_in as usize || (fin_in == 1 && all == 0 && inq.is_empty())
    };
    if counted.is_some_and(|all| !read_all(all)) {
        return Err("its receive queue holds urgent data (MSG_OOB), not saved".into());
    }
    // The send queue: the program is stopped, only acknowledgements
    // shrink it; read again until one coming meanwhile changes nothing.
    set(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE).map_err(e("TCP_REPAIR_QUEUE"))?;
    t.snd_seq = get(fd, TCP_QUEUE_SEQ).map_err(e("TCP_QUEUE_SEQ"))? as u32;
    let mut sendq = None;
    for _ in 0..5 {
        let outq = fdsys::sock_ioctl_int(fd, SIOCOUTQ).map_err(e("SIOCOUTQ"))?;
        let unsent = fdsys::sock_ioctl_int(fd, SIOCOUTQNSD).map_err(e("SIOCOUTQNSD"))?;
        // The FIN not acknowledged is the last thing in the queue, and
        // not sent when anything is not.
        let data = (outq.max(0) as u32).saturating_sub(fin_out) as usize;
        let unsent = (unsent.max(0) as u32).saturating_sub(fin_out.min(unsent.max(0) as u32));
        let bytes = peek(fd, data)?;
        let again = fdsys::sock_ioctl_int(fd, SIOCOUTQ).map_err(e("SIOCOUTQ"))?;
        if again == outq && bytes.len() == data && (outq > 0 || fin_out == 0) {
            sendq = Some((bytes, unsent as i32));
            break;
        }
    }
    let Some((outq_bytes, unsent)) = sendq else {
        return Err("its send queue kept changing".into());
    };
    let _ = set(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
    t.inq_len = inq.len() as u32;
    t.outq_len = outq_bytes.len() as u32;
    t.unsent_len = (unsent.max(0) as u32).min(t.outq_len);
    if t.inq_len > MAX_QUEUE || t.outq_len > MAX_QUEUE {
        return Err(format!(
            "more than {} MiB queued ({} to read, {} to send)",
            MAX_QUEUE >> 20,
            t.inq_len,
            t.outq_len
        ));
    }
    t.mss = get(fd, libc::TCP_MAXSEG).map_err(e("TCP_MAXSEG"))? as u32;
    t.timestamp = get(fd, TCP_TIMESTAMP).map_err(e("TCP_TIMESTAMP"))? as u32;
    let mut w = [0u8; 20];
    let n = fdsys::sockopt_bytes(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW, &mut w)
        .map_err(e("TCP_REPAIR_WINDOW"))?;
    if n != 20 {
        return Err(format!("TCP_REPAIR_WINDOW gave {n} bytes, not 20"));
    }
    let word = |i: usize| u32::from_ne_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]);
    (t.snd_wl1, t.snd_wnd, t.max_window, t.rcv_wnd, t.rcv_wup) =
        (word(0), word(1), word(2), word(3), word(4));
    if TcpRepair::parse(conn_mode::REPAIR, &t.encode()).is_none() {
        return Err(format!("repair values kckpt cannot keep: {t:?}"));
    }
    let mut data = inq;
    data.extend_from_slice(&outq_bytes);
    Ok((t, data))
}

/// Up to `len` bytes of the selected queue (`MSG_PEEK`, not waiting).
fn peek(fd: RawFd, len: usize) -> Result<Vec<u8>, String> {
    if len == 0 {
        return Ok(Vec::new());
    }
    // Room for more: a queue that grew is seen as such.
    let mut buf = vec![0u8; len + 65536];
    let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
    match nix::sys::socket::recv(fd, &mut buf, flags) {
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(Errno::EAGAIN) => Ok(Vec::new()),
        Err(e) => Err(format!("reading a queue (MSG_PEEK): {}", e.desc())),
    }
}
