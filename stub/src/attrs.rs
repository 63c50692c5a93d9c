//! Per-thread scheduling (policy, real-time priority, nice value) and
//! parent-death signal, and the group stop of a process that was stopped
//! when it was dumped (`TaskRecord` and `KstateRecord` fields, format 1.4).
//!
//! - [`check`], before anything changes: a policy or nice value this user
//!   may not set (a real-time policy, or a nice value below the current one,
//!   without `CAP_SYS_NICE` or enough `RLIMIT_RTPRIO`/`RLIMIT_NICE`) refuses
//!   the restore naming it, or, forced, is a warning (the thread keeps the
//!   restorer's).
//! - [`scheduling`], in each thread before its credentials change.
//! - [`death_signal`], in each thread after its credentials (the main
//!   thread: after the tree barrier, which clears the stub's own).
//! - [`stop`], in the main thread right before the final jump.
#![allow(unsafe_code)] // Plain system calls on the calling thread.

use core::sync::atomic::{AtomicBool, Ordering};

use kckpt_image::kstate::{SCHED_FIFO, SCHED_RESET_ON_FORK, SCHED_RR, SCHED_SAVED};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::sys::{self, sc, SysResult};

/// Forced past a scheduling value this user may not set: no more warnings.
static FORCED: AtomicBool = AtomicBool::new(false);

const CAP_SYS_NICE: u32 = 23;
const RLIMIT_NICE: u32 = 13;
const RLIMIT_RTPRIO: u32 = 14;
const PR_SET_PDEATHSIG: u32 = 1;
const SIGSTOP: u32 = 19;
const SIGCONT: u32 = 18;

fn sched_setscheduler(policy: u32, priority: u32) -> SysResult {
    let param = priority as i32;
    // SAFETY: the kernel reads one int (struct sched_param).
    unsafe {
        sc(
            g::__NR_sched_setscheduler,
            [0, policy as usize, &raw const param as usize, 0, 0, 0],
        )
    }
}

fn setpriority(nice: i32) -> SysResult {
    // SAFETY: touches no memory; PRIO_PROCESS 0 = the calling thread.
    unsafe { sc(g::__NR_setpriority, [0, 0, nice as isize as usize, 0, 0, 0]) }
}

/// The calling thread's nice value.
fn current_nice() -> i32 {
    // SAFETY: touches no memory; the kernel returns 20 - nice.
    let r = unsafe { sc(g::__NR_getpriority, [0, 0, 0, 0, 0, 0]) };
    20 - r.map_or(20, |v| v as i32)
}

/// The soft limit `resource`.
fn limit(resource: u32) -> u64 {
    crate::xsys::prlimit(resource, None).map_or(0, |l| l.cur)
}

/// Why thread `t` cannot get its saved scheduling here, if it cannot.
fn not_allowed(
    t: &kckpt_image::kstate::TaskRecord,
    privileged: bool,
    nice_now: i32,
) -> Option<&'static str> {
    if t.sched_policy & SCHED_SAVED == 0 || privileged {
        return None;
    }
    let policy = t.sched_policy & !(SCHED_SAVED | SCHED_RESET_ON_FORK);
    if (policy == SCHED_FIFO || policy == SCHED_RR)
        && u64::from(t.sched_priority) > limit(RLIMIT_RTPRIO)
    {
        return Some("a real-time scheduling policy");
    }
    if t.nice < nice_now && i64::from(20 - t.nice) > limit(RLIMIT_NICE) as i64 {
        return Some("a nice value lower than the restorer's");
    }
    None
}

/// Refuse (or, `force`d, warn) when a thread's scheduling cannot be set.
/// `own_userns`: capabilities of a user namespace the stub made do not
/// count.
pub fn check(img: &Image, force: bool, own_userns: bool) {
    let privileged = !own_userns && crate::ksys::capget().effective & (1 << CAP_SYS_NICE) != 0;
    let nice_now = current_nice();
    for (i, th) in img.view.threads().enumerate() {
        let Some((t, _)) = crate::creds::task_of(img, i) else {
            continue;
        };
        let Some(what) = not_allowed(&t, privileged, nice_now) else {
            continue;
        };
        let mut m = Msg::new();
        m.push(img.path)
            .s(": thread ")
            .dec(th.record.tid.into())
            .s(" ran with ")
            .s(what)
            .s(" (policy ")
            .dec((t.sched_policy & 7).into())
            .s(", priority ")
            .dec(t.sched_priority.into())
            .s(", nice ")
            .s(if t.nice < 0 { "-" } else { "" })
            .dec(t.nice.unsigned_abs().into())
            .s("), which this user may not set");
        if !force {
            m.s(" (CAP_SYS_NICE or RLIMIT_NICE/RLIMIT_RTPRIO; KCKPT_FORCE=1 keeps the restorer's)")
                .fail();
        }
        m.s("; it keeps the restorer's (forced)").warn();
        FORCED.store(true, Ordering::Relaxed);
    }
}

/// Set thread `index`'s saved policy, priority and nice value on the
/// calling thread.
pub fn scheduling(img: &Image, index: usize) {
    let Some((t, _)) = crate::creds::task_of(img, index) else {
        return;
    };
    if t.sched_policy & SCHED_SAVED == 0 {
        return;
    }
    let policy = t.sched_policy & !SCHED_SAVED;
    let set = sched_setscheduler(policy, t.sched_priority).and_then(|_| setpriority(t.nice));
    if let Err(e) = set {
        if !FORCED.load(Ordering::Relaxed) {
            let tid = img.view.threads().nth(index).map_or(0, |th| th.record.tid);
            Msg::new()
                .push(img.path)
                .s(": thread ")
                .dec(tid.into())
                .s(": cannot restore its scheduling policy and nice value")
                .errno(e)
                .warn();
        }
    }
}

/// Set thread `index`'s saved parent-death signal on the calling thread
/// (none saved: the stub's own, if any, stays).
pub fn death_signal(img: &Image, index: usize) {
    if let Some((t, _)) = crate::creds::task_of(img, index) {
        if t.pdeath_signal != 0 {
            let _ = sys::prctl(PR_SET_PDEATHSIG, t.pdeath_signal as usize, 0, 0, 0);
        }
    }
}

fn tgkill(sig: u32) -> SysResult {
    let (pid, tid) = (sys::getpid(), crate::xsys::gettid());
    // SAFETY: touches no memory.
    unsafe {
        sc(
            g::__NR_tgkill,
            [pid as usize, tid as usize, sig as usize, 0, 0, 0],
        )
    }
}

/// The blocked pending signals.
fn pending() -> u64 {
    let mut set = 0u64;
    // SAFETY: the kernel writes 8 bytes to `set`.
    let r = unsafe {
        sc(
            g::__NR_rt_sigpending,
            [&raw mut set as usize, 8, 0, 0, 0, 0],
        )
    };
    r.map_or(0, |_| set)
}

/// A process that was stopped when dumped stops again here, with the same
/// signal, so that its parent's `waitpid(WUNTRACED)` sees it; `SIGCONT`
/// resumes it (every signal is blocked: the `SIGCONT` stays pending and is
/// handled as the process would). `SIGSTOP` with the tracer attached
/// (`traced`): the tracer sends it right before it detaches instead. A `SIGTSTP`, `SIGTTIN` or `SIGTTOU` the
/// kernel discards (the process group is orphaned here) is `SIGSTOP`.
/// `stopped` (`kckpt restore --stopped`): a process saved running stops
/// with `SIGSTOP` the same way, before its first instruction.
pub fn stop(img: &Image, traced: bool, stopped: bool) {
    let saved = img.view.kstate.map_or(0, |k| k.stop_signal);
    let sig = if saved == 0 && stopped {
        SIGSTOP
    } else {
        saved
    };
    if sig == 0 {
        return;
    }
    if sig == SIGSTOP && traced {
        // The tracer sends it once it has put everything back, right
        // before it detaches: the process stops untraced (state `T`).
        crate::tracer::set_stop_signal(SIGSTOP);
        return;
    }
    if sig != SIGSTOP {
        let saved = &img.view.signals.actions[sig as usize - 1];
        let _ = sys::set_sigaction(sig, &sys::KernelSigaction::default());
        let _ = sys::set_sigmask(!(1u64 << (sig - 1)));
        let _ = tgkill(sig);
        let _ = sys::set_sigmask(!0);
        let act = sys::KernelSigaction {
            handler: saved.handler,
            flags: saved.flags,
            restorer: saved.restorer,
            mask: saved.mask,
        };
        let _ = sys::set_sigaction(sig, &act);
        if pending() & (1 << (SIGCONT - 1)) != 0 {
            return; // It stopped and was continued.
        }
    }
    let _ = tgkill(SIGSTOP);
}
