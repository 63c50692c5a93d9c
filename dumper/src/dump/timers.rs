//! Timers: the interval timers of `setitimer` (`getitimer`), the POSIX
//! timers of `timer_create` (listed by `/proc/PID/timers`: id, signal and
//! `sigev_value`, notification and target, clock; `timer_gettime` and
//! `timer_getoverrun` give the rest) and the process's
//! `PR_TIMER_CREATE_RESTORE_IDS` mode. Only the process can ask its own
//! timers, so the calls run inside it ([`super::inject`]): all of them are
//! queries. Two change kernel state that nothing can observe:
//! `timer_gettime` on a periodic timer whose signal is still queued moves
//! its next expiry past now (adding the missed periods to its overrun
//! count), as the kernel does at delivery; `timerfd_gettime` (on the
//! dumper's copy of a timerfd) does the same to an expired periodic timerfd
//! and adds the missed periods to its unread expirations, as a `read`
//! would.
//!
//! A timer can fire while the process is stopped for the dump. The pending
//! signals are read before anything runs in the process; the queues are
//! read again after the timers, and a timer whose signal appeared in
//! between is asked again, so that each timer is saved either with its
//! signal queued (flag `PENDING`: the restore makes it expire at once,
//! keeping its phase) or with the time left before it fires.
//!
//! The same queries run in the calling process for `checkpoint_self`
//! ([`Direct`]).
#![allow(unsafe_code)] // `Direct` system calls, `timerfd_gettime`.

use std::os::fd::{AsRawFd, OwnedFd};

use kckpt_image::records::{PendingSignalRecord, PENDING_SHARED};
use kckpt_image::timers::{
    cpu_clock, posix_timer_flags, sigev, timerfd, timers_flags, ItimerRecord, PosixTimerRecord,
    TimersRecord, TIMER_CLOCKS,
};
use kckpt_image_write::TimersMeta;

use super::inject::Session;
use super::memory::Memory;
use super::procfs::{self, MapEntry};
use super::ptrace::Tracee;
use crate::error::{Error, Result};

/// System calls the queries use.
mod nr {
    pub const GETITIMER: u64 = nix::libc::SYS_getitimer as u64;
    pub const TIMER_GETTIME: u64 = nix::libc::SYS_timer_gettime as u64;
    pub const TIMER_GETOVERRUN: u64 = nix::libc::SYS_timer_getoverrun as u64;
    pub const PRCTL: u64 = nix::libc::SYS_prctl as u64;
    pub const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;
    pub const PR_TIMER_CREATE_RESTORE_IDS_GET: u64 = 2;
}

/// `si_code` of a POSIX timer's signal.
const SI_TIMER: i32 = -2;

/// Somewhere to run the queries: a process's thread, with an output area.
pub trait Query {
    /// Run system call `nr(args)`; its raw result (negative errno).
    fn call(&mut self, nr: u64, args: [u64; 6]) -> Result<i64>;
    /// Address of a 64-byte output area for the calls.
    fn out(&self) -> u64;
    /// The first `len` bytes of the output area.
    fn read_out(&self, len: usize) -> Result<Vec<u8>>;
}

impl Query for Session<'_> {
    fn call(&mut self, nr: u64, args: [u64; 6]) -> Result<i64> {
        Session::call(self, nr, args)
    }
    fn out(&self) -> u64 {
        Session::out(self)
    }
    fn read_out(&self, len: usize) -> Result<Vec<u8>> {
        Session::read_out(self, len)
    }
}

/// The queries run by the calling process itself (`checkpoint_self`).
pub struct Direct {
    buf: Box<[u64; 8]>,
}

impl Direct {
    /// A query context with its own output area.
    pub fn new() -> Direct {
        Direct {
            buf: Box::new([0; 8]),
        }
    }
}

impl Default for Direct {
    fn default() -> Self {
        Direct::new()
    }
}

impl Query for Direct {
    fn call(&mut self, nr: u64, args: [u64; 6]) -> Result<i64> {
        // SAFETY: only the calls of this module, whose pointer arguments
        // are `out()` (this object's 64-byte buffer) or null.
        let r = unsafe {
            nix::libc::syscall(
                nr as nix::libc::c_long,
                args[0],
                args[1],
                args[2],
                args[3],
                args[4],
                args[5],
            )
        };
        Ok(if r < 0 {
            -i64::from(nix::errno::Errno::last_raw())
        } else {
            r
        })
    }
    fn out(&self) -> u64 {
        self.buf.as_ptr() as u64
    }
    fn read_out(&self, len: usize) -> Result<Vec<u8>> {
        let bytes: Vec<u8> = self.buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(bytes[..len.min(bytes.len())].to_vec())
    }
}

/// One entry of `/proc/PID/timers`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcTimer {
    /// `ID:`.
    pub id: u32,
    /// `signal: SIGNO/VALUE`.
    pub signo: u32,
    /// The `sigev_value` (hexadecimal after the `/`).
    pub value: u64,
    /// `notify: KIND/TARGET.N`, as a `sigev_notify` value.
    pub notify: u32,
    /// The pid or tid after `TARGET.`.
    pub target: u32,
    /// `ClockID:`.
    pub clock: i32,
}

/// Parse `/proc/PID/timers` (four lines per timer, newest first); sorted by
/// id. `None` on a line it does not understand.
pub fn parse_proc_timers(text: &str) -> Option<Vec<ProcTimer>> {
    let mut out: Vec<ProcTimer> = Vec::new();
    for line in text.lines() {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        if key == "ID" {
            out.push(ProcTimer {
                id: value.parse().ok()?,
                ..ProcTimer::default()
            });
            continue;
        }
        let t = out.last_mut()?;
        match key {
            "signal" => {
                let (signo, v) = value.split_once('/')?;
                // Any int for a timer without a signal (negative too):
                // out of range here, refused by name below unless unused.
                let n: i64 = signo.parse().ok()?;
                t.signo = u32::try_from(n).unwrap_or(u32::MAX);
                t.value = u64::from_str_radix(v, 16).ok()?;
            }
            "notify" => {
                let (kind, target) = value.split_once('/')?;
                let (scope, n) = target.split_once('.')?;
                let base = match kind {
                    "signal" => sigev::SIGNAL,
                    "none" => sigev::NONE,
                    "thread" => sigev::THREAD,
                    _ => return None,
                };
                t.notify = match scope {
                    "tid" => base | sigev::THREAD_ID,
                    "pid" => base,
                    _ => return None,
                };
                t.target = n.parse().ok()?;
            }
            "ClockID" => t.clock = value.parse().ok()?,
            _ => return None,
        }
    }
    out.sort_by_key(|t| t.id);
    Some(out)
}

/// Why a timer cannot be restored exactly, if it cannot: `tids` are the
/// process's threads (main first).
fn unsupported(t: &ProcTimer, tids: &[i32]) -> Option<String> {
    let pid = tids.first().copied().unwrap_or(0) as u32;
    let name = format!("POSIX timer {}", t.id);
    let creator_thread_clock = t.clock == 3 || cpu_clock(t.clock) == Some((0, true));
    if creator_thread_clock && tids.len() > 1 {
        return Some(format!(
            "{name} (on the CPU clock of the thread that created it, in a process of {} threads)",
            tids.len()
        ));
    }
    match cpu_clock(t.clock) {
        Some((0, _)) => {}
        Some((id, false)) if id == pid => {}
        Some((id, true)) if tids.contains(&(id as i32)) => {}
        Some((id, _)) => {
            return Some(format!(
                "{name} (on the CPU clock of another process, {id})"
            ))
        }
        None if TIMER_CLOCKS.contains(&t.clock) => {}
        None => return Some(format!("{name} (clock {})", t.clock)),
    }
    if t.notify == sigev::THREAD_ID && !tids.contains(&(t.target as i32)) {
        return Some(format!(
            "{name} (signals thread {}, not one of its own)",
            t.target
        ));
    }
    if t.notify != sigev::NONE && !(1..=64).contains(&t.signo) {
        return Some(format!("{name} (signal {})", t.signo));
    }
    None
}

/// `(seconds, sub)` pairs of a `struct itimerval` or `itimerspec` in `b`
/// (interval first, then value), in nanoseconds; `unit` is 1000 for
/// microseconds, 1 for nanoseconds.
fn interval_value(b: &[u8], unit: u64) -> (u64, u64) {
    let word = |i: usize| super::u64_at(b, i * 8);
    let ns = |s: u64, sub: u64| s.saturating_mul(1_000_000_000).saturating_add(sub * unit);
    (ns(word(0), word(1)), ns(word(2), word(3)))
}

fn failed(pid: i32, what: String, r: i64) -> Error {
    Error::Unsupported {
        pid,
        reason: format!(
            "{what} in the process failed: {}",
            nix::errno::Errno::from_raw(-r as i32).desc()
        ),
    }
}

/// `getitimer` of the three interval timers and the timer-id mode.
pub fn itimers(q: &mut impl Query, pid: i32) -> Result<TimersRecord> {
    let mut rec = TimersRecord::default();
    for (which, slot) in [&mut rec.real, &mut rec.virt, &mut rec.prof]
        .into_iter()
        .enumerate()
    {
        let r = q.call(nr::GETITIMER, [which as u64, q.out(), 0, 0, 0, 0])?;
        if r < 0 {
            return Err(failed(pid, format!("getitimer({which})"), r));
        }
        let (interval_ns, value_ns) = interval_value(&q.read_out(32)?, 1000);
        *slot = ItimerRecord {
            value_ns,
            interval_ns,
        };
    }
    let ids = q.call(
        nr::PRCTL,
        [
            nr::PR_TIMER_CREATE_RESTORE_IDS,
            nr::PR_TIMER_CREATE_RESTORE_IDS_GET,
            0,
            0,
            0,
            0,
        ],
    )?;
    if ids == 1 {
        rec.flags |= timers_flags::RESTORE_IDS;
    }
    Ok(rec)
}

/// `timer_gettime` and `timer_getoverrun` of timer `t`.
fn posix_timer(q: &mut impl Query, pid: i32, t: &ProcTimer) -> Result<PosixTimerRecord> {
    let r = q.call(nr::TIMER_GETTIME, [u64::from(t.id), q.out(), 0, 0, 0, 0])?;
    if r < 0 {
        return Err(failed(
            pid,
            format!("timer_gettime of POSIX timer {}", t.id),
            r,
        ));
    }
    let (interval_ns, value_ns) = interval_value(&q.read_out(32)?, 1);
    let overrun = q.call(nr::TIMER_GETOVERRUN, [u64::from(t.id), 0, 0, 0, 0, 0])?;
    Ok(PosixTimerRecord {
        id: t.id,
        clock: t.clock,
        notify: t.notify,
        // A timer that sends no signal keeps whatever number it was given,
        // which nothing reads back; out of range it is written as 0.
        signo: if t.notify == sigev::NONE && t.signo > 64 {
            0
        } else {
            t.signo
        },
        value: t.value,
        tid: if t.notify == sigev::THREAD_ID {
            t.target
        } else {
            0
        },
        flags: 0,
        value_ns,
        interval_ns,
        overrun: overrun.max(0) as u32,
        reserved0: 0,
        reserved: [0; 2],
    })
}

/// The POSIX timers `/proc/PID/timers` lists, checked against the
/// process's threads `tids` (main first): every timer kckpt cannot restore
/// is named in one refusal.
pub fn list(pid: i32, tids: &[i32]) -> Result<Vec<ProcTimer>> {
    let path = procfs::proc_path(pid, "timers");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Unsupported {
        pid,
        reason: format!(
            "its POSIX timers cannot be listed ({}: {})",
            path.display(),
            crate::error::io_text(&e)
        ),
    })?;
    let timers = parse_proc_timers(&text).ok_or_else(|| Error::Parse {
        path,
        what: "unexpected line".into(),
    })?;
    let refused: Vec<String> = timers.iter().filter_map(|t| unsupported(t, tids)).collect();
    if !refused.is_empty() {
        return Err(Error::Unsupported {
            pid,
            reason: refused.join(", "),
        });
    }
    Ok(timers)
}

/// Which queue (`PENDING_SHARED` or a tid) a timer's signals go to.
fn queue_of(t: &PosixTimerRecord) -> u32 {
    if t.notify == sigev::THREAD_ID {
        t.tid
    } else {
        PENDING_SHARED
    }
}

/// Whether `info` (a siginfo in queue `queue`) is timer `t`'s signal.
fn is_signal_of(t: &PosixTimerRecord, queue: u32, info: &[u8; 128]) -> bool {
    let word = |at: usize| i32::from_le_bytes([info[at], info[at + 1], info[at + 2], info[at + 3]]);
    t.notify != sigev::NONE
        && queue == queue_of(t)
        && word(0) as u32 == t.signo
        && word(8) == SI_TIMER
        && word(16) as u32 == t.id
}

/// Mark the timers whose signal is queued in `queued` (queue, siginfo). A
/// one-shot timer armed again since its signal was queued is not marked:
/// that signal is stale (the kernel drops it at delivery).
fn mark_pending(timers: &mut [PosixTimerRecord], queued: &[(u32, [u8; 128])]) {
    for t in timers.iter_mut() {
        let queued = queued.iter().any(|(q, info)| is_signal_of(t, *q, info));
        let stale = t.interval_ns == 0 && t.value_ns != 0;
        if queued && !stale {
            t.flags |= posix_timer_flags::PENDING;
        }
    }
}

/// Every queued siginfo of the process now: each thread's queue, then the
/// process-wide one.
fn queued_now(tracees: &[&Tracee]) -> Result<Vec<(u32, [u8; 128])>> {
    let mut out = Vec::new();
    for t in tracees {
        for info in t.peek_siginfo(false)? {
            out.push((t.pid() as u32, info));
        }
    }
    if let Some(main) = tracees.first() {
        for info in main.peek_siginfo(true)? {
            out.push((PENDING_SHARED, info));
        }
    }
    Ok(out)
}

/// Collect the timers of the stopped process whose main thread is
/// `tracee` (register sets `regsets`) and other threads `others`;
/// `pending` is what was queued before anything ran in it.
pub fn collect(
    tracee: &mut Tracee,
    others: &[Tracee],
    mem: &Memory,
    maps: &[MapEntry],
    site: super::inject::Site,
    regsets: &super::threads::Regsets,
    pending: &[PendingSignalRecord],
) -> Result<TimersMeta> {
    let pid = tracee.pid();
    let tids: Vec<i32> = std::iter::once(pid)
        .chain(others.iter().map(Tracee::pid))
        .collect();
    let listed = list(pid, &tids)?;
    let mut session = Session::open(tracee, mem, maps, site, regsets)?;
    let itimers = itimers(&mut session, pid)?;
    let mut posix = Vec::with_capacity(listed.len());
    for t in &listed {
        posix.push(posix_timer(&mut session, pid, t)?);
    }
    session.close()?;
    if posix.iter().all(|t| t.notify == sigev::NONE) {
        return Ok(TimersMeta {
            itimers: Some(itimers),
            posix,
        });
    }
    // Signals queued since the first reading: their timers fired while
    // they were being asked; ask those again.
    let before: Vec<(u32, [u8; 128])> = pending.iter().map(|p| (p.tid, p.siginfo)).collect();
    let all: Vec<&Tracee> = std::iter::once(&*tracee).chain(others.iter()).collect();
    let now = queued_now(&all)?;
    let fired: Vec<usize> = (0..posix.len())
        .filter(|&i| {
            let t = &posix[i];
            now.iter().any(|(q, info)| is_signal_of(t, *q, info))
                && !before.iter().any(|(q, info)| is_signal_of(t, *q, info))
        })
        .collect();
    if !fired.is_empty() {
        let mut session = Session::open(tracee, mem, maps, site, regsets)?;
        for &i in &fired {
            posix[i] = posix_timer(&mut session, pid, &listed[i])?;
        }
        session.close()?;
    }
    let mut queued = before;
    queued.extend(now);
    mark_pending(&mut posix, &queued);
    Ok(TimersMeta {
        itimers: Some(itimers),
        posix,
    })
}

/// The timers of the calling process (`checkpoint_self`, every signal
/// blocked). `pending` holds the signals pending in `SigPnd`/`ShdPnd`
/// (no siginfo can be read from inside without taking them): a timer
/// whose signal number is pending in its queue is saved as `PENDING` and
/// that signal is taken out of `pending` (the timer makes it pending again
/// at restore).
///
/// Under QEMU user emulation (`emulated`) `/proc/self/timers` lists the
/// emulator's own timers, whose ids are not the guest's: any is refused.
pub fn collect_self(pending: &mut Vec<PendingSignalRecord>, emulated: bool) -> Result<TimersMeta> {
    let pid = std::process::id() as i32;
    let listed = list(pid, &[pid])?;
    if emulated && !listed.is_empty() {
        return Err(Error::Unsupported {
            pid,
            reason: "POSIX timers under QEMU user emulation".into(),
        });
    }
    let mut q = Direct::new();
    let itimers = itimers(&mut q, pid)?;
    let mut posix = Vec::with_capacity(listed.len());
    for t in &listed {
        posix.push(posix_timer(&mut q, pid, t)?);
    }
    for t in posix.iter_mut() {
        let queue = queue_of(t);
        let stale = t.interval_ns == 0 && t.value_ns != 0;
        if t.notify == sigev::NONE || stale {
            continue;
        }
        let queue = if queue == PENDING_SHARED {
            PENDING_SHARED
        } else {
            pid as u32
        };
        if let Some(at) = pending
            .iter()
            .position(|p| p.tid == queue && p.signo == t.signo)
        {
            pending.remove(at);
            t.flags |= posix_timer_flags::PENDING;
        }
    }
    Ok(TimersMeta {
        itimers: Some(itimers),
        posix,
    })
}

/// The `args` of a timerfd (`FdRecord`, kind `TIMERFD`): clock id with the
/// settime flags in bits 32-33, time of the next expiry, interval, unread
/// expirations. `copy` is the dumper's copy of the descriptor
/// (`pidfd_getfd`): `timerfd_gettime` on it first moves an expired
/// periodic timer to its next expiry and counts the missed periods in its
/// unread expirations (as a `read` would, without taking them), so that
/// `/proc/PID/fdinfo`, read after it, shows the next expiry rather than 0.
/// An absolute timer on a wall clock keeps its absolute expiry time.
pub fn timerfd_args(pid: i32, fd: i32, copy: &OwnedFd) -> Result<[u64; 4]> {
    let info_path = procfs::proc_path(pid, &format!("fdinfo/{fd}"));
    // A timer can expire again between the two reads: a few rounds.
    for _ in 0..8 {
        let mut spec = nix::libc::itimerspec {
            it_interval: nix::libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: nix::libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        // SAFETY: the kernel writes one itimerspec into `spec`.
        let r = unsafe { nix::libc::timerfd_gettime(copy.as_raw_fd(), &mut spec) };
        if r < 0 {
            return Err(Error::Unsupported {
                pid,
                reason: format!(
                    "timerfd at fd {fd} cannot be read (timerfd_gettime: {})",
                    nix::errno::Errno::last().desc()
                ),
            });
        }
        let realtime_now = realtime_ns();
        let info = std::fs::read_to_string(&info_path).map_err(|source| Error::Read {
            path: info_path.clone(),
            source,
        })?;
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim_start_matches(':').trim().to_owned())
        };
        let clock = field("clockid")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let ticks = field("ticks")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let flags = field("settime flags")
            .and_then(|v| u64::from_str_radix(&v, 8).ok())
            .unwrap_or(0)
            & (timerfd::ABSTIME | timerfd::CANCEL_ON_SET);
        let value = timespec_ns(field("it_value").as_deref());
        let interval = timespec_ns(field("it_interval").as_deref());
        if value == 0 && interval != 0 {
            continue; // expired again after timerfd_gettime
        }
        let wall = clock == nix::libc::CLOCK_REALTIME as u64
            || clock == nix::libc::CLOCK_REALTIME_ALARM as u64;
        let next = if flags & timerfd::ABSTIME != 0 && wall && value != 0 {
            realtime_now.saturating_add(value)
        } else {
            value
        };
        return Ok([clock | flags << timerfd::FLAGS_SHIFT, next, interval, ticks]);
    }
    Err(Error::Unsupported {
        pid,
        reason: format!("timerfd at fd {fd} keeps expiring while it is read"),
    })
}

/// `(sec, nsec)` of a timerfd fdinfo value, in nanoseconds.
fn timespec_ns(v: Option<&str>) -> u64 {
    let Some(v) = v else { return 0 };
    let v = v.trim().trim_start_matches('(').trim_end_matches(')');
    let mut it = v.split(',').map(|s| s.trim().parse::<u64>().unwrap_or(0));
    let (s, ns) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    s.saturating_mul(1_000_000_000).saturating_add(ns)
}

/// `CLOCK_REALTIME` now, in nanoseconds since the epoch.
fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ID: 4
signal: 10/0000000000001234
notify: signal/pid.5530
ClockID: -44246
ID: 3
signal: 32/00005583685ac460
notify: signal/tid.5531
ClockID: 1
ID: 2
signal: 10/0000000000001234
notify: none/pid.5530
ClockID: 7
";

    #[test]
    fn proc_timers_are_parsed_and_sorted() {
        let t = parse_proc_timers(SAMPLE).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            ProcTimer {
                id: 2,
                signo: 10,
                value: 0x1234,
                notify: sigev::NONE,
                target: 5530,
                clock: 7
            }
        );
        assert_eq!(t[1].notify, sigev::THREAD_ID);
        assert_eq!(t[1].target, 5531);
        assert_eq!(t[2].clock, -44246);
        assert!(parse_proc_timers("ID: x\n").is_none());
        assert!(parse_proc_timers("signal: 1/0\n").is_none());
    }

    #[test]
    fn a_signal_number_out_of_range_is_parsed_and_named_only_when_used() {
        let text = "ID: 0\nsignal: -5/0\nnotify: none/pid.7\nClockID: 1\n\
                    ID: 1\nsignal: 99/0\nnotify: signal/pid.7\nClockID: 1\n";
        let t = parse_proc_timers(text).unwrap();
        assert_eq!(t[0].signo, u32::MAX);
        assert_eq!(unsupported(&t[0], &[7]), None, "no signal is sent");
        assert!(unsupported(&t[1], &[7]).is_some_and(|why| why.contains("signal 99")));
    }

    #[test]
    fn clocks_of_other_processes_and_threads_are_named() {
        let t = parse_proc_timers(SAMPLE).unwrap();
        // -44246 is the process CPU clock of pid 5530.
        assert_eq!(unsupported(&t[2], &[5530, 5531]), None);
        assert!(unsupported(&t[2], &[77])
            .unwrap()
            .contains("another process, 5530"));
        assert!(unsupported(&t[1], &[5530]).unwrap().contains("thread 5531"));
        let thread_clock = ProcTimer { clock: 3, ..t[0] };
        assert_eq!(unsupported(&thread_clock, &[5530]), None);
        assert!(unsupported(&thread_clock, &[5530, 5531])
            .unwrap()
            .contains("2 threads"));
        let fd_clock = ProcTimer { clock: -5, ..t[0] };
        assert!(unsupported(&fd_clock, &[5530]).is_some());
    }

    #[test]
    fn queued_timer_signals_mark_their_timer() {
        let timer = |id, interval_ns, value_ns| PosixTimerRecord {
            id,
            signo: 10,
            interval_ns,
            value_ns,
            ..Default::default()
        };
        let mut info = [0u8; 128];
        info[0] = 10;
        info[8..12].copy_from_slice(&SI_TIMER.to_le_bytes());
        info[16] = 1;
        let mut t = [timer(1, 0, 0), timer(2, 0, 0), timer(1, 0, 5)];
        mark_pending(&mut t, &[(PENDING_SHARED, info)]);
        assert_eq!(t[0].flags, posix_timer_flags::PENDING);
        assert_eq!(t[1].flags, 0); // another id
        assert_eq!(t[2].flags, 0); // armed again since: a stale signal
        let mut t = [timer(1, 1000, 500)];
        mark_pending(&mut t, &[(7, info)]); // another queue
        assert_eq!(t[0].flags, 0);
    }

    #[test]
    fn itimerval_and_itimerspec_in_nanoseconds() {
        let mut b = Vec::new();
        for w in [1u64, 500, 2, 0] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(interval_value(&b, 1000), (1_000_500_000, 2_000_000_000));
        assert_eq!(interval_value(&b, 1), (1_000_000_500, 2_000_000_000));
    }
}
