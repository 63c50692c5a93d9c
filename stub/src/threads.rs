//! The other threads of the saved process. Once memory and the
//! process-wide state are back, the main thread creates one thread per
//! saved thread (`clone3` with `set_tid` = the saved tid when the kernel
//! allows it, else plain `clone`), each on a small stack in its slot of the
//! window. Each thread restores its own kernel state (thread pointer,
//! clear-child-tid, rseq), queues its own saved pending signals to its
//! (possibly new) tid, builds its signal frame in its slot, reports ready
//! and waits on a futex until the main thread releases them all
//! ([`release`], right before its own `rt_sigreturn`). With the tracer
//! attached, every thread then stops at its `int3` and the tracer lets them
//! all through `rt_sigreturn` before it unmaps the window.
#![allow(unsafe_code)] // Thread creation, and start blocks at fixed addresses.

use core::sync::atomic::{AtomicU32, Ordering};

use linux_raw_sys::general as g;

use crate::layout::{FRAME_LEN, MAX_THREADS, THREADS_AREA, THREAD_SLOT};
use crate::load::Image;
use crate::memory::Failure;
use crate::state;
use crate::sys::{self, Errno};

/// Threads that have built their frames.
static READY: AtomicU32 = AtomicU32::new(0);
/// The tid of each thread now, by its place in the image (0: the main
/// thread, which does not fill its slot).
static TIDS: [AtomicU32; MAX_THREADS] = [const { AtomicU32::new(0) }; MAX_THREADS];
/// Set once by the main thread: go.
static GO: AtomicU32 = AtomicU32::new(0);

const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
/// Bytes of a slot used as stack (the frame follows).
const STACK_LEN: usize = THREAD_SLOT - FRAME_LEN;

/// What a new thread is told, at the top of its stack.
struct Start {
    img: *const Image,
    index: usize,
    traced: bool,
    frame: usize,
}

/// How thread ids are chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tids {
    /// The saved tid when the kernel allows it, else a new one.
    Prefer,
    /// The saved tid or a failure (restore in a new PID namespace).
    Require,
}

/// `struct clone_args` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub(crate) const THREAD_FLAGS: u32 = g::CLONE_VM
    | g::CLONE_FS
    | g::CLONE_FILES
    | g::CLONE_SIGHAND
    | g::CLONE_THREAD
    | g::CLONE_SYSVSEM;

/// `clone3` with `set_tid = [tid]` for a thread starting at `sp` (stack
/// bottom `low`); returns the new tid or the errno.
///
/// # Safety
/// `sp` must come from `kckpt_arch::jump::thread_stack` on a stack that
/// nothing else uses.
unsafe fn clone3_with_tid(flags: u64, low: usize, sp: usize, tid: u32) -> Result<usize, Errno> {
    let set_tid = [tid as i32];
    let args = CloneArgs {
        flags,
        stack: low as u64,
        stack_size: (sp - low) as u64,
        set_tid: set_tid.as_ptr() as u64,
        set_tid_size: 1,
        ..CloneArgs::default()
    };
    let size = core::mem::size_of::<CloneArgs>();
    // SAFETY: the caller vouches for the stack; `args` and `set_tid` live
    // through the call.
    let r = unsafe {
        kckpt_arch::jump::clone_thread(
            g::__NR_clone3 as usize,
            [&args as *const CloneArgs as usize, size, 0, 0, 0],
        )
    };
    if r < 0 {
        Err(Errno((-r) as u32))
    } else {
        Ok(r as usize)
    }
}

/// `fork` as `clone3` with `set_tid = [pid]`: 0 in the child, its pid in
/// the parent.
pub fn fork_with_pid(pid: u32) -> Result<usize, Errno> {
    fork_with_pid_signal(pid, g::SIGCHLD)
}

/// [`fork_with_pid`] with `exit_signal` (the signal the parent gets when
/// the child ends; 0 for none); any pid when `pid` is 0.
pub fn fork_with_pid_signal(pid: u32, exit_signal: u32) -> Result<usize, Errno> {
    let set_tid = [pid as i32];
    let args = CloneArgs {
        exit_signal: u64::from(exit_signal),
        // Both 0 for any pid (the kernel refuses one without the other).
        set_tid: if pid != 0 { set_tid.as_ptr() as u64 } else { 0 },
        set_tid_size: u64::from(pid != 0),
        ..CloneArgs::default()
    };
    fork3(&args)
}

/// `clone3(args)` without `CLONE_VM`, a fork: 0 in the child, its pid in
/// the parent.
fn fork3(args: &CloneArgs) -> Result<usize, Errno> {
    let size = core::mem::size_of::<CloneArgs>();
    // SAFETY: like fork (callers pass no CLONE_VM): the child gets a copy
    // of this address space and returns from here on its copy of the
    // stack; the pointers in `args` (set_tid, pidfd) are live locals of
    // the caller.
    let r = unsafe {
        kckpt_arch::syscall::raw_syscall(
            g::__NR_clone3 as usize,
            [args as *const CloneArgs as usize, size, 0, 0, 0, 0],
        )
    };
    if r < 0 {
        Err(Errno((-r) as u32))
    } else {
        Ok(r as usize)
    }
}

/// (1.7) For the pidfds of a process that has exited and been reaped: a
/// stand-in child (no exit signal, so the process gets no `SIGCHLD`) that
/// ends as wait status `saved` says (`pidfd_target::DEAD`): its pid and a
/// pidfd of it. The caller reaps it (`__WALL`).
pub fn stand_in(saved: u64) -> Result<(u32, usize), Errno> {
    const CLONE_PIDFD: u64 = 0x1000;
    const RLIMIT_CORE: u32 = 4;
    let mut pidfd: i32 = -1;
    let args = CloneArgs {
        flags: CLONE_PIDFD,
        pidfd: &mut pidfd as *mut i32 as u64,
        ..CloneArgs::default()
    };
    let r = fork3(&args)?;
    if r == 0 {
        // A signal's default action without a core file.
        let _ = crate::xsys::prlimit(RLIMIT_CORE, Some(&crate::xsys::Rlimit::default()));
        let status = if saved & kckpt_image::selffd::pidfd_target::STATUS_KNOWN != 0 {
            (saved & 0xffff) as i32
        } else {
            0
        };
        sys::exit_like(status);
    }
    // SAFETY: a live local the kernel wrote through the pointer in `args`.
    let pidfd = unsafe { core::ptr::read_volatile(&pidfd) };
    Ok((r as u32, pidfd as usize))
}

/// Create the other threads and wait until each has built its frame.
pub fn start(img: &Image, traced: bool, tids: Tids) -> Result<(), Failure> {
    let n = img.view.header.thread_count as usize;
    if n <= 1 {
        return Ok(());
    }
    // The slots were mapped by `state::map_frames`; the threads use them by
    // address.
    for (i, thread) in img.view.threads().enumerate().skip(1) {
        let slot = THREADS_AREA + (i - 1) * THREAD_SLOT;
        let block = slot + STACK_LEN - 64;
        let start = Start {
            img,
            index: i,
            traced,
            frame: slot + STACK_LEN,
        };
        // SAFETY: `block` is inside slot `i`, just mapped and used by nothing
        // else; the stack below it is the new thread's.
        let sp = unsafe {
            core::ptr::write(block as *mut Start, start);
            kckpt_arch::jump::thread_stack(block, thread_main, block)
        };
        let tid = thread.record.tid;
        // SAFETY: `sp` was prepared by `thread_stack` on slot `i`'s stack.
        let made = unsafe { clone3_with_tid(u64::from(THREAD_FLAGS), slot, sp, tid) };
        match made {
            Ok(_) => {}
            Err(errno) if tids == Tids::Require => {
                return Err(Failure {
                    what: "giving a thread its saved tid (clone3 set_tid)",
                    addr: u64::from(tid),
                    errno,
                })
            }
            Err(_) => {
                // SAFETY: as above (the failed clone3 created nothing).
                let r = unsafe {
                    kckpt_arch::jump::clone_thread(
                        g::__NR_clone as usize,
                        [THREAD_FLAGS as usize, sp, 0, 0, 0],
                    )
                };
                if r < 0 {
                    return Err(Failure {
                        what: "creating a thread",
                        addr: u64::from(tid),
                        errno: Errno((-r) as u32),
                    });
                }
            }
        }
    }
    loop {
        let ready = READY.load(Ordering::Acquire);
        if ready as usize >= n - 1 {
            return Ok(());
        }
        let _ = sys::futex(&READY, FUTEX_WAIT, ready);
    }
}

/// The tid now of the thread whose saved tid is `saved` (call after
/// [`start`]; a tid the image does not have is returned as it is).
pub fn tid_now(img: &Image, saved: u32) -> u32 {
    match img.view.threads().position(|t| t.record.tid == saved) {
        Some(0) => crate::xsys::gettid(),
        Some(i) if i < MAX_THREADS => TIDS[i].load(Ordering::Acquire),
        _ => saved,
    }
}

/// Let every thread go to its `rt_sigreturn` (called by the main thread
/// right before its own).
pub fn release() {
    GO.store(1, Ordering::Release);
    let _ = sys::futex(&GO, FUTEX_WAKE, i32::MAX as u32);
}

extern "C" fn thread_main(arg: usize) -> ! {
    // SAFETY: `arg` is the address of the start block `start` wrote before
    // the clone; it stays unchanged and mapped until the window goes.
    let st = unsafe { &*(arg as *const Start) };
    // SAFETY: the image lives in the main thread's frame of `stage2`, which
    // never returns; it is only read.
    let img = unsafe { &*st.img };
    let thread = state::thread_state_at(img, st.index);
    let result = (|| -> Result<core::convert::Infallible, Failure> {
        state::restore_thread(&thread.record)?;
        crate::creds::robust_list(img, st.index)?;
        crate::kstate::join_cgroups(img, thread.record.tid)?;
        // Its own pending signals, to its (possibly new) tid, while every
        // signal is still blocked.
        crate::process::queue_own(img, thread.record.tid, false)?;
        // SAFETY: the frame half of this thread's slot, used by no one else.
        let buf = unsafe { core::slice::from_raw_parts_mut(st.frame as *mut u8, FRAME_LEN) };
        let sp = state::build_frame(img, &thread, buf, st.frame, st.index, st.traced)?;
        crate::attrs::scheduling(img, st.index);
        // Its seccomp filters when the tracer suspends them, then last its
        // own credentials (per thread in Linux).
        crate::seccomp::install_early(img, st.index)?;
        crate::creds::restore(img, st.index)?;
        crate::attrs::death_signal(img, st.index);
        crate::ids::drop_caps();
        if st.index < MAX_THREADS {
            TIDS[st.index].store(crate::xsys::gettid(), Ordering::Release);
        }
        READY.fetch_add(1, Ordering::AcqRel);
        let _ = sys::futex(&READY, FUTEX_WAKE, 1);
        while GO.load(Ordering::Acquire) == 0 {
            let _ = sys::futex(&GO, FUTEX_WAIT, 0);
        }
        // Otherwise its seccomp filters now: only rt_sigreturn (and the
        // tracer's calls) follow, checked up front by `crate::seccomp`.
        crate::seccomp::install_late(img, st.index)?;
        // SAFETY: the frame is complete and stays mapped until the tracer
        // has let every thread through rt_sigreturn.
        unsafe { kckpt_arch::jump::sigreturn(sp, st.traced) }
    })();
    match result {
        Ok(never) => match never {},
        Err(failure) => failure.exit(img),
    }
}
