//! Seccomp (format 1.8, `NT_KCKPT_SECCOMP`): each thread installs its own
//! saved filters (oldest first) or strict mode. Once installed they see
//! every later system call of the thread, the stub's included, and the
//! tracer's injected `rt_sigaction` and `munmap` (`crate::tracer`).
//! Two ways:
//!
//! - early ([`install_early`]): the tracer attached with
//!   `PTRACE_O_SUSPEND_SECCOMP` (root restore, no seccomp of the
//!   restorer's own), so nothing is filtered until it detaches; each
//!   thread installs right before it takes its credentials, still
//!   privileged (no `no_new_privs` needed);
//! - late ([`install_late`]): otherwise, as the very last step of each
//!   thread before its final `rt_sigreturn`. Installing then needs
//!   `no_new_privs` (saved, restored by `crate::process`), and the check
//!   phase ([`check`]) runs each filter on every system call that still
//!   follows (`rt_sigreturn`, the tracer's calls with their real
//!   arguments): each must be allowed, else the restore is refused before
//!   anything changes. Strict mode would kill the tracer's `munmap`: it
//!   needs the early way.
#![allow(unsafe_code)] // seccomp(2) with a pointer into the image.

use core::sync::atomic::{AtomicU32, Ordering};

use kckpt_image::seccomp::{
    of_thread, run, Seccomp, SeccompData, Verdict, MODE_STRICT, RET_ACTION_FULL, RET_ALLOW, RET_LOG,
};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::memory::Failure;
use crate::report::Msg;
use crate::sys::{self, Errno};

/// Nothing to install.
const NONE: u32 = 0;
/// Needed; privileged (the tracer should suspend seccomp).
const WANT_EARLY: u32 = 1;
/// Needed; unprivileged (late install checked).
const WANT_LATE: u32 = 2;
/// Needed; privileged, and late install would do too.
const WANT_EARLY_OR_LATE: u32 = 3;
/// Decided: install before credentials.
const EARLY: u32 = 4;
/// Decided: install last.
const LATE: u32 = 5;

static STATE: AtomicU32 = AtomicU32::new(NONE);
/// Leading filters every thread has (same flags and program), installed
/// once by the main thread before the others exist ([`install_shared`]).
static SHARED: AtomicU32 = AtomicU32::new(0);

const CAP_SYS_ADMIN: u32 = 21;
const PR_GET_SECCOMP: u32 = 21;
const SECCOMP_SET_MODE_STRICT: usize = 0;
const SECCOMP_SET_MODE_FILTER: usize = 1;

/// Why a late install cannot work, if it cannot: the name of the first
/// problem and the thread it is in.
fn late_problem(img: &Image) -> Option<(&'static str, u32)> {
    let nnp = img.view.process.is_some_and(|p| p.no_new_privs != 0);
    for t in img.view.threads() {
        let Some(s) = of_thread(&t) else {
            continue;
        };
        let tid = t.record.tid;
        if s.record.mode == MODE_STRICT {
            return Some((
                "seccomp strict mode: the restore's last system calls (the tracer's munmap) would be killed; restore as root",
                tid,
            ));
        }
        if !nnp {
            return Some((
                "seccomp filter without no_new_privs: installing it needs CAP_SYS_ADMIN; restore as root",
                tid,
            ));
        }
        if let Some(why) = denies(&s) {
            return Some((why, tid));
        }
    }
    None
}

/// Does a filter of `s` deny a system call the restore runs after a late
/// install?
fn denies(s: &Seccomp<'_>) -> Option<&'static str> {
    let [a, b] = crate::tracer::injected_calls();
    // rt_sigreturn's argument registers hold whatever the stub left
    // there: a filter that looks at them cannot be checked.
    let calls = [
        (g::__NR_rt_sigreturn, None, "rt_sigreturn"),
        (a.0, Some(a.1), "rt_sigaction"),
        (b.0, Some(b.1), "munmap"),
    ];
    for (nr, args, name) in calls {
        let d = SeccompData {
            nr,
            arch: kckpt_arch::AUDIT_ARCH,
            args,
        };
        for (_, insns) in s.filters() {
            match run(insns, &d) {
                Verdict::Ret(v) if matches!(v & RET_ACTION_FULL, RET_ALLOW | RET_LOG) => {}
                Verdict::Unknown => {
                    return Some("seccomp filter that reads the instruction pointer or rt_sigreturn's arguments (cannot be checked for the restore's last system calls); restore as root")
                }
                _ => {
                    return Some(match name {
                        "rt_sigreturn" => "seccomp filter that does not allow rt_sigreturn, which the restore runs after installing it; restore as root",
                        "rt_sigaction" => "seccomp filter that does not allow the tracer's rt_sigaction, which the restore runs after installing it; restore as root",
                        _ => "seccomp filter that does not allow the tracer's munmap, which the restore runs after installing it; restore as root",
                    })
                }
            }
        }
    }
    None
}

/// Before anything changes: decide how the saved seccomp state can be
/// installed, or refuse by name. `own_userns`: the restore runs in a user
/// namespace of its own (its capabilities there cannot suspend seccomp).
pub fn check(img: &Image, own_userns: bool) {
    if !img.view.threads().any(|t| of_thread(&t).is_some()) {
        return;
    }
    let privileged = !own_userns
        && crate::ksys::capget().effective & (1 << CAP_SYS_ADMIN) != 0
        && sys::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == Ok(0);
    let problem = late_problem(img);
    let state = match (privileged, problem) {
        (true, None) => WANT_EARLY_OR_LATE,
        (true, Some(_)) => WANT_EARLY,
        (false, None) => WANT_LATE,
        (false, Some((why, tid))) => {
            let mut m = Msg::new();
            m.push(img.path).s(": ");
            if tid != img.view.header.pid {
                m.s("thread ").dec(tid.into()).s(": ");
            }
            m.s(why).fail()
        }
    };
    STATE.store(state, Ordering::Relaxed);
}

/// Should the tracer attach with `PTRACE_O_SUSPEND_SECCOMP`?
pub fn wants_suspend() -> bool {
    matches!(
        STATE.load(Ordering::Relaxed),
        WANT_EARLY | WANT_EARLY_OR_LATE
    )
}

/// Once the tracer has started (`suspended`: it attached with
/// `PTRACE_O_SUSPEND_SECCOMP`): early or late.
pub fn decide(suspended: bool) -> Result<(), Failure> {
    let next = match STATE.load(Ordering::Relaxed) {
        NONE => return Ok(()),
        WANT_EARLY | WANT_EARLY_OR_LATE if suspended => EARLY,
        WANT_LATE | WANT_EARLY_OR_LATE => LATE,
        _ => {
            return Err(Failure {
                what: "suspending seccomp in the restore tracer (PTRACE_O_SUSPEND_SECCOMP), needed to install seccomp strict mode or filters without no_new_privs",
                addr: 0,
                errno: Errno(linux_raw_sys::errno::EPERM),
            })
        }
    };
    STATE.store(next, Ordering::Relaxed);
    Ok(())
}

/// Thread `index` installs its filters now if seccomp goes in early
/// (call right before it takes its credentials).
pub fn install_early(img: &Image, index: usize) -> Result<(), Failure> {
    if STATE.load(Ordering::Relaxed) == EARLY {
        install(img, index)?;
    }
    Ok(())
}

/// Thread `index` installs its filters now if seccomp goes in late (call
/// right before its final `rt_sigreturn`).
pub fn install_late(img: &Image, index: usize) -> Result<(), Failure> {
    if STATE.load(Ordering::Relaxed) == LATE {
        install(img, index)?;
    }
    Ok(())
}

/// Early only: the main thread installs the filters that every saved
/// thread has first (the longest common run, compared by flags and
/// program), before it creates the other threads, which inherit them as
/// the saved threads shared them (inherited at `clone` or synced with
/// `SECCOMP_FILTER_FLAG_TSYNC`): a later `TSYNC` install by the program
/// then works as before. Each thread installs the rest itself
/// ([`install_early`]). Call before `threads::start`.
pub fn install_shared(img: &Image) -> Result<(), Failure> {
    if STATE.load(Ordering::Relaxed) != EARLY {
        return Ok(());
    }
    let mut threads = img.view.threads();
    let Some(main) = threads.next().and_then(|t| of_thread(&t)) else {
        return Ok(());
    };
    if main.record.mode == MODE_STRICT {
        return Ok(());
    }
    let mut common = main.record.filter_count as usize;
    for t in threads {
        let n = match of_thread(&t) {
            Some(s) if s.record.mode != MODE_STRICT => main
                .filters()
                .zip(s.filters())
                .take_while(|(a, b)| a == b)
                .count(),
            _ => 0,
        };
        common = common.min(n);
    }
    for (f, insns) in main.filters().take(common) {
        install_filter(f.flags, f.insn_count, insns)?;
    }
    SHARED.store(common as u32, Ordering::Relaxed);
    Ok(())
}

fn install(img: &Image, index: usize) -> Result<(), Failure> {
    let Some(s) = img.view.threads().nth(index).and_then(|t| of_thread(&t)) else {
        return Ok(());
    };
    if s.record.mode == MODE_STRICT {
        // SAFETY: strict mode takes no pointer.
        let r = unsafe {
            kckpt_arch::syscall::raw_syscall(
                g::__NR_seccomp as usize,
                [SECCOMP_SET_MODE_STRICT, 0, 0, 0, 0, 0],
            )
        };
        return sys::check(r)
            .map(drop)
            .map_err(crate::memory::at("entering seccomp strict mode", 0));
    }
    let shared = if STATE.load(Ordering::Relaxed) == EARLY {
        SHARED.load(Ordering::Relaxed) as usize
    } else {
        0
    };
    for (f, insns) in s.filters().skip(shared) {
        install_filter(f.flags, f.insn_count, insns)?;
    }
    Ok(())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, {count, insns})`.
fn install_filter(flags: u32, count: u32, insns: &[u8]) -> Result<(), Failure> {
    let prog = crate::sockfilter::SockFprog::new(count, insns);
    // SAFETY: the kernel only reads `prog` and the `len` 8-byte
    // instructions it points to, inside the image (validated: exactly
    // that many bytes).
    let r = unsafe {
        kckpt_arch::syscall::raw_syscall(
            g::__NR_seccomp as usize,
            [
                SECCOMP_SET_MODE_FILTER,
                flags as usize,
                &prog as *const crate::sockfilter::SockFprog as usize,
                0,
                0,
                0,
            ],
        )
    };
    sys::check(r)
        .map(drop)
        .map_err(crate::memory::at("installing a seccomp filter", 0))
}
