//! Timers (format 1.3): interval timers (`setitimer`), POSIX timers
//! (`timer_create` with their saved ids) and timerfds.
//!
//! POSIX timers and interval timers are set last, by the main thread once
//! every thread exists (a `SIGEV_THREAD_ID` timer signals a thread, by its
//! tid here, which may be new) and every signal is still blocked: their
//! remaining times count from there, right before the process resumes. A
//! timer whose signal was queued at dump time (`PENDING`) expires again at
//! once, so its own signal is queued (with `si_overrun` counted by the
//! kernel, and a periodic timer re-armed at delivery), at an absolute time
//! one period before its saved next expiry so that it keeps its phase. An
//! `ITIMER_REAL` with a period but no time left has its SIGALRM queued and
//! is re-armed by the kernel when that is delivered: it is set to expire at
//! once. Timer ids come back with `PR_TIMER_CREATE_RESTORE_IDS` (Linux
//! 6.15); on older kernels timers are created in id order, the ids in
//! between deleted, and a restore whose ids cannot match fails.
//!
//! Before anything changes, [`check`] creates and deletes each POSIX timer
//! once with its id and clock, so a clock this user may not use (an alarm
//! clock needs `CAP_WAKE_ALARM`) is a clean refusal.
#![allow(unsafe_code)] // System calls with pointers to live locals.

use kckpt_arch::syscall::raw_syscall;
use kckpt_image::timers::{cpu_clock, cpu_clock_for, posix_timer_flags, sigev, timerfd};
use kckpt_image::{FdRecord, PosixTimerRecord};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::memory::Failure;
use crate::report::Msg;
use crate::sys::{self, check as checked, Errno, SysResult};

const PR_TIMER_CREATE_RESTORE_IDS: u32 = 77;
const TIMER_ABSTIME: usize = 1;
const NS: u64 = 1_000_000_000;

/// `struct __kernel_timespec` pairs: `[interval, value]` as
/// `[sec, nsec, sec, nsec]`.
fn itimerspec(value_ns: u64, interval_ns: u64) -> [i64; 4] {
    [
        (interval_ns / NS) as i64,
        (interval_ns % NS) as i64,
        (value_ns / NS) as i64,
        (value_ns % NS) as i64,
    ]
}

/// `struct sigevent` (64 bytes): value, signo, notify, thread id.
fn sigevent(t: &PosixTimerRecord, tid: u32) -> [u64; 8] {
    let mut ev = [0u64; 8];
    ev[0] = t.value;
    ev[1] = u64::from(t.signo) | u64::from(t.notify) << 32;
    ev[2] = u64::from(tid);
    ev
}

fn syscall(nr: u32, args: [usize; 6]) -> SysResult {
    // SAFETY: the calls of this module only pass integers and pointers to
    // live locals the kernel reads or writes within their size.
    checked(unsafe { raw_syscall(nr as usize, args) })
}

/// `timer_create(clock, ev, &id)`: `id` is the id wanted (with
/// `PR_TIMER_CREATE_RESTORE_IDS` on) and becomes the id given.
fn timer_create(clock: i32, ev: &[u64; 8], id: &mut u32) -> SysResult {
    syscall(
        g::__NR_timer_create,
        [
            clock as isize as usize,
            ev.as_ptr() as usize,
            id as *mut u32 as usize,
            0,
            0,
            0,
        ],
    )
}

fn timer_delete(id: u32) {
    let _ = syscall(g::__NR_timer_delete, [id as usize, 0, 0, 0, 0, 0]);
}

fn restore_ids(on: bool) -> SysResult {
    sys::prctl(PR_TIMER_CREATE_RESTORE_IDS, usize::from(on), 0, 0, 0)
}

/// `clock_gettime(clock)` in nanoseconds.
fn now_ns(clock: i32) -> Result<u64, Errno> {
    let mut ts = [0i64; 2];
    syscall(
        g::__NR_clock_gettime,
        [
            clock as isize as usize,
            ts.as_mut_ptr() as usize,
            0,
            0,
            0,
            0,
        ],
    )?;
    Ok((ts[0] as u64)
        .saturating_mul(NS)
        .saturating_add(ts[1] as u64))
}

/// The clock to create timer `t` with in this process: a CPU-time clock
/// naming the saved process or one of its threads names them as they are
/// now (`tid_now` maps a saved tid).
fn clock_now(img: &Image, t: &PosixTimerRecord, tid_now: &dyn Fn(u32) -> u32) -> i32 {
    match cpu_clock(t.clock) {
        Some((0, _)) | None => t.clock,
        Some((id, true)) => cpu_clock_for(t.clock, tid_now(id)),
        Some((id, false)) if id == img.view.header.pid => cpu_clock_for(t.clock, sys::getpid()),
        Some(_) => t.clock,
    }
}

fn refuse_timer(img: &Image, t: &PosixTimerRecord, what: &str, e: Errno) -> ! {
    Msg::new()
        .push(img.path)
        .s(": POSIX timer ")
        .dec(t.id.into())
        .s(": ")
        .s(what)
        .errno(e)
        .fail()
}

/// Create and delete every saved POSIX timer once with its id and clock
/// (signals of no thread yet: `SIGEV_NONE`); refuse with one line if one
/// cannot be. Nothing is checked on kernels without
/// `PR_TIMER_CREATE_RESTORE_IDS` (a test timer would take an id).
pub fn check(img: &Image, in_order: bool) {
    let saved_mode = img
        .view
        .timers
        .is_some_and(|r| r.flags & kckpt_image::timers::timers_flags::RESTORE_IDS != 0);
    if saved_mode && restore_ids(true).is_err() {
        Msg::new()
            .push(img.path)
            .s(": the process had asked to choose its POSIX timer ids (PR_TIMER_CREATE_RESTORE_IDS); this kernel cannot (Linux 6.15 or later can)")
            .fail();
    }
    let _ = restore_ids(false);
    if img.view.posix_timers.is_empty() {
        return;
    }
    if in_order || restore_ids(true).is_err() {
        // A test timer would take an id here: the one privilege an alarm
        // clock needs is checked instead.
        const CAP_WAKE_ALARM: u32 = 35;
        let may_alarm = crate::ksys::capget().effective & 1 << CAP_WAKE_ALARM != 0;
        for t in img.view.posix_timers.iter() {
            if matches!(t.clock, 8 | 9) && !may_alarm {
                // CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM
                refuse_timer(img, &t, "an alarm clock needs CAP_WAKE_ALARM", Errno(1));
            }
        }
        return;
    }
    let main = crate::xsys::gettid();
    for t in img.view.posix_timers.iter() {
        let probe = PosixTimerRecord {
            notify: sigev::NONE,
            ..t
        };
        let mut id = t.id;
        let clock = clock_now(img, &t, &|_| main);
        match timer_create(clock, &sigevent(&probe, 0), &mut id) {
            Ok(_) => timer_delete(id),
            Err(e) => {
                let _ = restore_ids(false);
                refuse_timer(img, &t, "cannot be created again", e)
            }
        }
    }
    let _ = restore_ids(false);
}

/// Set the interval timers and create the POSIX timers (see the module
/// documentation). `tid_now` maps a saved tid to the thread's tid now;
/// `in_order`: create POSIX timers in id order even where the kernel could
/// give them their ids directly (`KCKPT_TIMER_IDS=in-order`, for tests).
pub fn restore(img: &Image, tid_now: &dyn Fn(u32) -> u32, in_order: bool) -> Result<(), Failure> {
    let failed = |what: &'static str, addr: u64| move |errno| Failure { what, addr, errno };
    let by_id = !in_order && restore_ids(true).is_ok();
    for t in img.view.posix_timers.iter() {
        let tid = if t.notify == sigev::THREAD_ID {
            tid_now(t.tid)
        } else {
            0
        };
        let ev = sigevent(&t, tid);
        let clock = clock_now(img, &t, tid_now);
        let id = u64::from(t.id);
        if by_id {
            let mut got = t.id;
            timer_create(clock, &ev, &mut got).map_err(failed("creating POSIX timer", id))?;
        } else {
            create_in_order(clock, &ev, t.id).map_err(failed("creating POSIX timer", id))?;
        }
        arm(&t, clock).map_err(failed("arming POSIX timer", id))?;
    }
    let saved_mode = img
        .view
        .timers
        .is_some_and(|r| r.flags & kckpt_image::timers::timers_flags::RESTORE_IDS != 0);
    if by_id && !saved_mode {
        restore_ids(false).map_err(failed("PR_TIMER_CREATE_RESTORE_IDS", 0))?;
    } else if saved_mode {
        restore_ids(true).map_err(failed("PR_TIMER_CREATE_RESTORE_IDS", 1))?;
    }
    itimers(img)
}

/// Create timers until one gets id `want` (the kernel hands ids out in
/// increasing order), deleting the others; `EBUSY` once past it.
fn create_in_order(clock: i32, ev: &[u64; 8], want: u32) -> Result<(), Errno> {
    for _ in 0..(1u32 << 20) {
        let mut got = 0u32;
        timer_create(clock, ev, &mut got)?;
        if got == want {
            return Ok(());
        }
        timer_delete(got);
        if got > want {
            break;
        }
    }
    Err(Errno(linux_raw_sys::errno::EBUSY))
}

/// Arm POSIX timer `t` (created on `clock`).
fn arm(t: &PosixTimerRecord, clock: i32) -> SysResult {
    let (flags, spec) = if t.flags & posix_timer_flags::PENDING == 0 {
        (0, itimerspec(t.value_ns, t.interval_ns))
    } else if t.interval_ns == 0 {
        (0, itimerspec(1, 0))
    } else {
        // One period before the next expiry: already past, so it expires
        // now and the kernel re-arms it from there at delivery.
        let now = now_ns(clock)?;
        let base = now.saturating_add(t.value_ns).saturating_sub(t.interval_ns);
        (TIMER_ABSTIME, itimerspec(base.max(1), t.interval_ns))
    };
    syscall(
        g::__NR_timer_settime,
        [t.id as usize, flags, spec.as_ptr() as usize, 0, 0, 0],
    )
}

/// `setitimer` of the three interval timers (disarmed in images without
/// timer notes: interval timers survive `execve`, and the caller's are not
/// the process's).
fn itimers(img: &Image) -> Result<(), Failure> {
    let rec = img.view.timers.unwrap_or_default();
    for (which, mut t) in [rec.real, rec.virt, rec.prof].into_iter().enumerate() {
        if which == 0 && t.value_ns == 0 && t.interval_ns != 0 {
            t.value_ns = 1; // its SIGALRM was queued: expire now
        }
        let usec = |ns: u64| [(ns / NS) as i64, (ns % NS).div_ceil(1000) as i64];
        let (i, v) = (usec(t.interval_ns), usec(t.value_ns));
        let val = [i[0], i[1], v[0], v[1]];
        syscall(
            g::__NR_setitimer,
            [which, val.as_ptr() as usize, 0, 0, 0, 0],
        )
        .map_err(|errno| Failure {
            what: "setting an interval timer (setitimer)",
            addr: which as u64,
            errno,
        })?;
    }
    Ok(())
}

/// Create the timerfd of record `r` (kind `TIMERFD`): its clock, settime
/// flags, next expiry, interval and unread expirations. `Err((what,
/// errno))` names the call that failed.
pub fn timerfd(r: &FdRecord) -> Result<usize, (&'static str, Errno)> {
    let clock = r.args[0] as u32;
    let flags = r.args[0] >> timerfd::FLAGS_SHIFT;
    let fd = sys::timerfd_create(clock, g::O_CLOEXEC).map_err(|e| ("timerfd_create", e))?;
    let (mut value, interval) = (r.args[1], r.args[2]);
    let wall = matches!(clock, 0 | 8); // CLOCK_REALTIME, CLOCK_REALTIME_ALARM
    if flags & timerfd::ABSTIME != 0 && !wall && value != 0 {
        // Absolute on a clock that restarts with the machine: the time
        // that was left, counted from now.
        let now = now_ns(clock as i32).map_err(|e| ("clock_gettime", e))?;
        value = now.saturating_add(value);
    }
    if value != 0 || flags != 0 {
        let spec = itimerspec(value, interval);
        syscall(
            g::__NR_timerfd_settime,
            [fd, flags as usize, spec.as_ptr() as usize, 0, 0, 0],
        )
        .map_err(|e| ("timerfd_settime", e))?;
    }
    if r.args[3] != 0 {
        // Expirations not read yet (needs CONFIG_CHECKPOINT_RESTORE).
        sys::timerfd_set_ticks(fd, r.args[3]).map_err(|e| ("TFD_IOC_SET_TICKS", e))?;
    }
    Ok(fd)
}
