//! Process state of format 1.1 (`NT_KCKPT_PROCESS`, `NT_KCKPT_PENDING`),
//! restored after memory, handlers and the other kernel state, just before
//! the final frame, in this order:
//!
//! 1. resource limits (`prlimit64`), late so that a lowered `RLIMIT_AS`,
//!    `RLIMIT_DATA` or `RLIMIT_NOFILE` cannot get in the way of the
//!    restore itself. A hard limit above this process's current one needs
//!    `CAP_SYS_RESOURCE`: without it the limit is clamped to the current
//!    hard limit (the restoring user's policy wins, as for any program
//!    started there) and the restore goes on;
//! 2. personality (after memory: `READ_IMPLIES_EXEC` would add `PROT_EXEC`
//!    to the areas being rebuilt);
//! 3. pending signals, queued to this process (`rt_sigqueueinfo`) or this
//!    thread (`rt_tgsigqueueinfo`) with their saved siginfo, while every
//!    signal is blocked; they are delivered once the saved mask allows it.
//!    Each other thread queues its own ([`queue_own`], from
//!    `threads::thread_main`) once it exists, before it reports ready;
//! 4. no_new_privs, which cannot be undone (the other threads, created
//!    next, inherit it);
//! 5. dumpable (`PR_SET_DUMPABLE`; the value 2 cannot be set by prctl and
//!    stays 1), at the very end ([`restore_dumpable`]): a change of
//!    credentials (`crate::creds`) resets it.
//!
//! Images of format 1.0 have neither note and keep the stub's defaults.

use kckpt_image::{PENDING_SHARED, RLIMIT_COUNT};
use linux_raw_sys::errno::EPERM;

use crate::load::Image;
use crate::memory::Failure;
use crate::sys::{self, Errno};
use crate::xsys::{self, Rlimit};

const PR_SET_DUMPABLE: u32 = 4;
const PR_SET_NO_NEW_PRIVS: u32 = 38;

fn failed(what: &'static str, addr: u64) -> impl FnOnce(Errno) -> Failure {
    move |errno| Failure { what, addr, errno }
}

/// Restore limits, personality, pending signals and no_new_privs. `main_tid` is the saved thread id of this thread.
pub fn restore(img: &Image, main_tid: u32) -> Result<(), Failure> {
    let Some(p) = img.view.process else {
        return queue_pending(img, main_tid);
    };
    let count = (p.rlimit_count as usize).min(RLIMIT_COUNT);
    for (res, saved) in p.rlimits[..count].iter().enumerate() {
        let want = Rlimit {
            cur: saved.cur,
            max: saved.max,
        };
        match xsys::prlimit(res as u32, Some(&want)) {
            Ok(_) => {}
            Err(Errno(EPERM)) => {
                // Raising the hard limit needs CAP_SYS_RESOURCE: clamp.
                let now = xsys::prlimit(res as u32, None)
                    .map_err(failed("reading a resource limit", res as u64))?;
                let clamped = Rlimit {
                    cur: want.cur.min(now.max),
                    max: want.max.min(now.max),
                };
                xsys::prlimit(res as u32, Some(&clamped))
                    .map_err(failed("setting resource limit", res as u64))?;
            }
            Err(e) => return Err(failed("setting resource limit", res as u64)(e)),
        }
    }
    xsys::personality(p.personality).map_err(failed("setting the personality", 0))?;
    queue_pending(img, main_tid)?;
    if p.no_new_privs != 0 {
        sys::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).map_err(failed("setting no_new_privs", 0))?;
    }
    Ok(())
}

/// `PR_SET_DUMPABLE` (the value 2 cannot be set and becomes 1): after
/// every thread's credentials, since changing them resets it.
pub fn restore_dumpable(img: &Image) -> Result<(), Failure> {
    let Some(p) = img.view.process else {
        return Ok(());
    };
    let dumpable = if p.dumpable == 0 { 0 } else { 1 };
    sys::prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0).map_err(failed("setting dumpable", 0))?;
    Ok(())
}

/// Queue the saved pending signals of the main thread (saved tid
/// `main_tid`) and of the process again, in their saved order.
fn queue_pending(img: &Image, main_tid: u32) -> Result<(), Failure> {
    queue_own(img, main_tid, true)
}

/// Queue the saved pending signals of the calling thread, whose saved tid
/// is `saved_tid` (it may have a new one), with `rt_tgsigqueueinfo` to its
/// current tid, in saved order; with `shared`, also those of the
/// process-wide queue (`rt_sigqueueinfo`; only the main thread may, since
/// the kernel lets a process queue a signal with a kernel-reserved
/// `si_code` such as `SI_USER` or `SI_TKILL` only to the caller itself).
/// Call while every signal is blocked.
pub fn queue_own(img: &Image, saved_tid: u32, shared: bool) -> Result<(), Failure> {
    let tgid = sys::getpid();
    let tid = xsys::gettid();
    for s in img.view.pending.iter() {
        let to = if s.tid == PENDING_SHARED && shared {
            0
        } else if s.tid == saved_tid && s.tid != PENDING_SHARED {
            tid
        } else {
            continue; // another thread's queue: queued by that thread
        };
        if kckpt_image::timers::timer_of_signal(&img.view, s.signo, &s.siginfo) {
            continue; // queued again by its POSIX timer (crate::timers)
        }
        xsys::queue_signal(tgid, to, s.signo, &s.siginfo)
            .map_err(failed("queueing a pending signal", u64::from(s.signo)))?;
    }
    Ok(())
}
