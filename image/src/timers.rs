//! Timers (format 1.3): the interval timers of `setitimer`/`alarm`
//! (`NT_KCKPT_TIMERS`) and the POSIX timers of `timer_create`
//! (`NT_KCKPT_POSIX_TIMERS`), both optional, and their checks. Timerfds are
//! descriptors (`FdRecord` kind `TIMERFD`), not here.

use crate::read::{FormatError, ImageView};
use crate::records::Record;

/// Note type of [`TimersRecord`]: the three interval timers and the
/// process's `PR_TIMER_CREATE_RESTORE_IDS` mode; format 1.3, optional.
pub const NT_KCKPT_TIMERS: u32 = 0x4b43_0040;
/// Note type of the array of [`PosixTimerRecord`], sorted by timer id;
/// format 1.3, optional (absent when the process has none).
pub const NT_KCKPT_POSIX_TIMERS: u32 = 0x4b43_0041;

/// One interval timer as `getitimer` reports it, in nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItimerRecord {
    /// Time left before it expires (0: disarmed).
    pub value_ns: u64,
    /// Its period (0: one-shot).
    pub interval_ns: u64,
}
// SAFETY: repr(C), two u64.
unsafe impl Record for ItimerRecord {}

/// `TimersRecord::flags` bits.
pub mod timers_flags {
    /// `prctl(PR_TIMER_CREATE_RESTORE_IDS)` was on in the process.
    pub const RESTORE_IDS: u32 = 1 << 0;
}

/// The process-wide timer state of `setitimer` (72 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimersRecord {
    /// `ITIMER_REAL` (SIGALRM, wall-clock time).
    pub real: ItimerRecord,
    /// `ITIMER_VIRTUAL` (SIGVTALRM, user CPU time of the process).
    pub virt: ItimerRecord,
    /// `ITIMER_PROF` (SIGPROF, user and system CPU time of the process).
    pub prof: ItimerRecord,
    /// `timers_flags::*`.
    pub flags: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
// SAFETY: repr(C); 3*16 + 4 + 4 + 16 = 72, every field naturally aligned.
unsafe impl Record for TimersRecord {}

/// `sigev_notify` values of a POSIX timer.
pub mod sigev {
    /// `SIGEV_SIGNAL`: a signal to the process.
    pub const SIGNAL: u32 = 0;
    /// `SIGEV_NONE`: no notification.
    pub const NONE: u32 = 1;
    /// `SIGEV_THREAD` as the kernel sees it (a signal to the process; the C
    /// library's helper thread is usually `SIGNAL | THREAD_ID` instead).
    pub const THREAD: u32 = 2;
    /// `SIGEV_SIGNAL | SIGEV_THREAD_ID`: a signal to one thread (`tid`).
    pub const THREAD_ID: u32 = 4;
}

/// `PosixTimerRecord::flags` bits.
pub mod posix_timer_flags {
    /// The timer had expired and its signal was still queued (not yet
    /// delivered) at dump time: the restore makes it expire again at once,
    /// so its own signal is pending (a periodic timer keeps its phase).
    pub const PENDING: u32 = 1 << 0;
}

/// One POSIX timer (72 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosixTimerRecord {
    /// Timer id (0..=`i32::MAX`), strictly increasing through the array.
    pub id: u32,
    /// Clock id as given to `timer_create` (negative: a CPU-time clock of
    /// the process or of one of its threads, encoding its pid or tid).
    pub clock: i32,
    /// `sigev_notify` ([`sigev`]).
    pub notify: u32,
    /// `sigev_signo`.
    pub signo: u32,
    /// `sigev_value` (`si_value` of its signals).
    pub value: u64,
    /// `SIGEV_THREAD_ID`: the tid (at dump time) of the thread its signals
    /// go to; 0 otherwise.
    pub tid: u32,
    /// `posix_timer_flags::*`.
    pub flags: u32,
    /// Time left before the next expiry, in nanoseconds (0: disarmed).
    pub value_ns: u64,
    /// Period in nanoseconds (0: one-shot).
    pub interval_ns: u64,
    /// `timer_getoverrun` at dump time (recorded; the kernel cannot set it).
    pub overrun: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
// SAFETY: repr(C); 4*4 + 8 + 4+4 + 8+8 + 4+4 + 16 = 72, every field
// naturally aligned.
unsafe impl Record for PosixTimerRecord {}

const _: () = {
    assert!(core::mem::size_of::<TimersRecord>() == 72);
    assert!(core::mem::size_of::<PosixTimerRecord>() == 72);
};

/// Largest time an image may hold (`KTIME_MAX`, about 292 years).
pub const MAX_NS: u64 = i64::MAX as u64;

/// Static clock ids `timer_create` accepts: REALTIME, MONOTONIC,
/// PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID, BOOTTIME, REALTIME_ALARM,
/// BOOTTIME_ALARM, TAI.
pub const TIMER_CLOCKS: [i32; 8] = [0, 1, 2, 3, 7, 8, 9, 11];

/// A CPU-time clock id (negative): `(pid or tid, per thread)` it names
/// (pid 0: the caller), or `None` for a clock that is not one (a dynamic
/// POSIX clock of a descriptor, `CLOCKFD`).
pub fn cpu_clock(clock: i32) -> Option<(u32, bool)> {
    if clock >= 0 || clock & 3 == 3 {
        return None;
    }
    Some(((!(clock >> 3)) as u32, clock & 4 != 0))
}

/// The CPU-time clock id of the same kind as `clock` for pid or tid `id`.
pub fn cpu_clock_for(clock: i32, id: u32) -> i32 {
    ((!(id as i32)) << 3) | (clock & 7)
}

fn ensure(ok: bool, what: &'static str) -> Result<(), FormatError> {
    if ok {
        Ok(())
    } else {
        Err(FormatError::BadField(what))
    }
}

/// Whether `tid` is a saved thread of `view`.
fn saved_thread(view: &ImageView<'_>, tid: u32) -> bool {
    view.threads().any(|t| t.record.tid == tid)
}

/// Check the timer records: known flags, zero reserved fields, times the
/// kernel accepts, timers sorted by id, clocks `timer_create` knows (a
/// CPU-time clock of this process or one of its threads), notification
/// kinds, signal numbers and target threads that exist.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    if let Some(t) = view.timers {
        ensure(
            t.reserved0 == 0 && t.reserved == [0; 2],
            "timers: reserved field not zero",
        )?;
        ensure(
            t.flags & !timers_flags::RESTORE_IDS == 0,
            "timers: unknown flags",
        )?;
        for i in [t.real, t.virt, t.prof] {
            ensure(
                i.value_ns <= MAX_NS && i.interval_ns <= MAX_NS,
                "timers: time out of range",
            )?;
            // setitimer takes microseconds: whole ones, as getitimer gave.
            ensure(
                i.value_ns % 1000 == 0 && i.interval_ns % 1000 == 0,
                "timers: interval timer not in whole microseconds",
            )?;
        }
    }
    let mut prev: Option<u32> = None;
    for r in view.posix_timers.iter() {
        posix_timer(view, &r)?;
        ensure(
            prev.is_none_or(|p| r.id > p),
            "posix timer: ids not increasing",
        )?;
        prev = Some(r.id);
    }
    Ok(())
}

fn posix_timer(view: &ImageView<'_>, r: &PosixTimerRecord) -> Result<(), FormatError> {
    ensure(
        r.reserved0 == 0 && r.reserved == [0; 2],
        "posix timer: reserved field not zero",
    )?;
    ensure(r.id <= i32::MAX as u32, "posix timer: id out of range")?;
    ensure(
        r.value_ns <= MAX_NS && r.interval_ns <= MAX_NS,
        "posix timer: time out of range",
    )?;
    let clock_ok = match cpu_clock(r.clock) {
        Some((0, _)) => true,
        Some((id, false)) => id == view.header.pid,
        Some((id, true)) => saved_thread(view, id),
        None => TIMER_CLOCKS.contains(&r.clock),
    };
    ensure(clock_ok, "posix timer: clock not one timer_create accepts")?;
    let signal_ok = match r.notify {
        sigev::NONE => r.signo <= 64 && r.tid == 0,
        sigev::SIGNAL | sigev::THREAD => (1..=64).contains(&r.signo) && r.tid == 0,
        sigev::THREAD_ID => (1..=64).contains(&r.signo) && saved_thread(view, r.tid),
        _ => false,
    };
    ensure(
        signal_ok,
        "posix timer: bad notification, signal or target thread",
    )?;
    ensure(
        r.flags & !posix_timer_flags::PENDING == 0 && (r.flags == 0 || r.notify != sigev::NONE),
        "posix timer: unknown flags",
    )
}

/// The POSIX timer of `view` whose signal a pending `siginfo` is (`si_code`
/// `SI_TIMER`, `si_tid` its id, same signal), if any: the restore makes
/// such a signal pending again through the timer itself rather than
/// queueing the saved siginfo.
pub fn timer_of_signal(view: &ImageView<'_>, signo: u32, siginfo: &[u8; 128]) -> bool {
    const SI_TIMER: i32 = -2;
    let word = |at: usize| {
        i32::from_le_bytes([
            siginfo[at],
            siginfo[at + 1],
            siginfo[at + 2],
            siginfo[at + 3],
        ])
    };
    word(8) == SI_TIMER
        && view
            .posix_timers
            .iter()
            .any(|t| t.id == word(16) as u32 && t.signo == signo && t.notify != sigev::NONE)
}

/// Timerfds (`FdRecord` kind `TIMERFD`, format 1.3): bits 32-33 of
/// `args[0]` hold the `timerfd_settime` flags, bits 0-31 the clock id.
pub mod timerfd {
    /// Where the settime flags start in `args[0]`.
    pub const FLAGS_SHIFT: u32 = 32;
    /// `TFD_TIMER_ABSTIME`: armed with an absolute time. On a
    /// `CLOCK_REALTIME`/`CLOCK_REALTIME_ALARM` clock `args[1]` is then the
    /// expiry time in nanoseconds since the epoch rather than the time left.
    pub const ABSTIME: u64 = 1;
    /// `TFD_TIMER_CANCEL_ON_SET`.
    pub const CANCEL_ON_SET: u64 = 2;
}
