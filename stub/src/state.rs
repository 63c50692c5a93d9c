//! Process state beyond memory: mm fields and auxv, command name, signal
//! dispositions, thread pointers, clear-child-tid, rseq; then the signal
//! frame and the final jump.
#![allow(unsafe_code)] // Only the final jump (`resume`).

use kckpt_image::{nt, CORE_OWNER};
use kckpt_stub::verify::Refusal;
use linux_raw_sys::prctl::prctl_mm_map;

use crate::layout::{FRAME_ADDR, FRAME_LEN};
use crate::load::{refuse, Image};
use crate::memory::{self, Failure};
use crate::report::Msg;
use crate::sys::{self, Errno, KernelSigaction};

pub use kckpt_stub::verify::ThreadState;

/// Every check of the image that needs no system call
/// ([`kckpt_stub::verify`]: thread count, the stub's window, every
/// thread's registers and FP state); refuses with one line.
pub fn verify(img: &Image) {
    if let Err(r) = kckpt_stub::verify::image(&img.view) {
        refusal(img.path, r)
    }
}

/// Refuse with the text of `r`.
pub fn refusal(path: &[u8], r: Refusal) -> ! {
    match r {
        Refusal::Format(e) => crate::load::format_error(path, e),
        Refusal::Text(what) => refuse(path, what),
        Refusal::Window(addr) => Msg::new()
            .push(path)
            .s(": the saved memory at ")
            .hex(addr)
            .s(" overlaps the addresses kckpt's stub runs at")
            .fail(),
    }
}

/// Pick the main thread's notes (checked by [`verify`]).
pub fn thread_state(img: &Image) -> ThreadState<'static> {
    thread_state_at(img, 0)
}

/// The notes of thread `index` (0: main), checked.
pub fn thread_state_at(img: &Image, index: usize) -> ThreadState<'static> {
    kckpt_stub::verify::thread(&img.view, index).unwrap_or_else(|r| refusal(img.path, r))
}

fn failed(what: &'static str) -> impl FnOnce(Errno) -> Failure {
    move |errno| Failure {
        what,
        addr: 0,
        errno,
    }
}

/// Restore the per-process and per-thread kernel state.
pub fn restore(img: &Image, thread: &ThreadState<'_>) -> Result<(), Failure> {
    let v = &img.view;
    let mm = &v.mm;
    let map = prctl_mm_map {
        start_code: mm.start_code,
        end_code: mm.end_code,
        start_data: mm.start_data,
        end_data: mm.end_data,
        start_brk: mm.start_brk,
        brk: mm.brk,
        start_stack: mm.start_stack,
        arg_start: mm.arg_start,
        arg_end: mm.arg_end,
        env_start: mm.env_start,
        env_end: mm.env_end,
        auxv: v.auxv.as_ptr() as *mut u64,
        auxv_size: v.auxv.len() as u32,
        exe_fd: crate::exe::fd(),
    };
    let mut r = sys::set_mm_map(&map);
    if let (Err(e), true) = (r, map.exe_fd != u32::MAX) {
        // The saved executable was refused (not executable, busy...): the
        // link stays the stub's.
        crate::exe::warn(img, e);
        r = sys::set_mm_map(&prctl_mm_map {
            exe_fd: u32::MAX,
            ..map
        });
    }
    crate::exe::done();
    match r {
        // QEMU user emulation does not emulate PR_SET_MM (EINVAL): the
        // guest's /proc/self/{cmdline,environ} stay the stub's.
        Err(e) if e.0 == linux_raw_sys::errno::EINVAL && crate::layout::emulated() => {}
        r => {
            r.map_err(failed("prctl(PR_SET_MM_MAP)"))?;
        }
    }
    // The command name (`/proc/PID/comm`): the main thread's record has it
    // (set in `restore_thread`); images that did not record it have
    // NT_PRPSINFO's pr_fname.
    let psinfo = if thread.record.name[0] == 0 {
        v.notes()
            .map_while(Result::ok)
            .find(|n| n.is(CORE_OWNER, nt::PRPSINFO))
    } else {
        None
    };
    if let Some(psinfo) = psinfo {
        if let Some(fname) = psinfo.desc.get(40..56) {
            let mut name = [0u8; 16];
            name[..15].copy_from_slice(&fname[..15]);
            let _ = sys::set_name(&name);
        }
    }
    for (i, a) in v.signals.actions.iter().enumerate() {
        let sig = i as u32 + 1;
        if sig == 9 || sig == 19 {
            continue;
        }
        let act = KernelSigaction {
            handler: a.handler,
            flags: a.flags,
            restorer: a.restorer,
            mask: a.mask,
        };
        sys::set_sigaction(sig, &act).map_err(failed("rt_sigaction"))?;
    }
    restore_thread(&thread.record)
}

/// The calling thread's own state: clear-child-tid, rseq, thread pointers.
pub fn restore_thread(t: &kckpt_image::ThreadRecord) -> Result<(), Failure> {
    if t.name[0] != 0 {
        // The thread's own name (images before it was recorded keep the
        // process's, which a new thread inherits).
        let mut name = t.name;
        name[15] = 0;
        let _ = sys::set_name(&name);
    }
    sys::set_tid_address(t.clear_child_tid).map_err(failed("set_tid_address"))?;
    if t.rseq_addr != 0 {
        sys::rseq_register(t.rseq_addr, t.rseq_len, t.rseq_sig)
            .map_err(failed("rseq registration"))?;
    }
    let r = kckpt_arch::jump::set_tls(t.tls, t.tls2);
    if r < 0 {
        return Err(Failure {
            what: "setting the thread pointer",
            addr: t.tls,
            errno: Errno((-r) as u32),
        });
    }
    Ok(())
}

/// Map the memory of every thread's final signal frame (and the other
/// threads' stacks): before the saved resource limits are set, since a
/// process may well use more memory than its `RLIMIT_DATA` or `RLIMIT_AS`
/// allows (limits only refuse growth). Returns the main thread's frame.
pub fn map_frames(img: &Image) -> Result<&'static mut [u8], Failure> {
    let n = img.view.header.thread_count as usize;
    if n > 1 {
        let area = crate::layout::THREADS_AREA;
        let _ = memory::scratch_page(area, (n - 1) * crate::layout::THREAD_SLOT, false)?;
    }
    memory::scratch_page(FRAME_ADDR, FRAME_LEN, false)
}

/// Build the signal frame in `buf` (from [`map_frames`]) and return into
/// the restored process. `debug_jump`: `KCKPT_DEBUG_JUMP`
/// (`startup::DEBUG_*`).
pub fn resume(
    img: &Image,
    thread: &ThreadState<'_>,
    traced: bool,
    debug_jump: u8,
    buf: &mut [u8],
) -> Result<core::convert::Infallible, Failure> {
    let mut thread = *thread;
    if debug_jump == crate::startup::DEBUG_FAULT {
        kckpt_arch::make_unresumable(&mut thread.regs);
    }
    let sp = build_frame(img, &thread, buf, FRAME_ADDR, 0, traced)?;
    if debug_jump != 0 {
        crate::report::line(b"kckpt: debug: jumping into the restored process\n");
    }
    sys::close(img.fd);
    crate::report::close_stderr();
    crate::threads::release();
    // Seccomp installed last (unprivileged restore): only rt_sigreturn and
    // the tracer's calls follow (`crate::seccomp`). On failure the process
    // ends (stderr is closed already).
    crate::seccomp::install_late(img, 0)?;
    // SAFETY: `sp` points at the complete frame just built, in the window
    // that stays mapped until the tracer removes it after rt_sigreturn.
    unsafe { kckpt_arch::jump::sigreturn(sp, traced) }
}

/// Build `thread`'s signal frame in `buf` (at address `addr`); returns the
/// stack pointer for `rt_sigreturn`. `index`: the thread's place in the
/// image; `traced`: the tracer will set the saved mask at detach.
pub fn build_frame(
    img: &Image,
    thread: &ThreadState<'_>,
    buf: &mut [u8],
    addr: usize,
    index: usize,
    traced: bool,
) -> Result<usize, Failure> {
    let t = &thread.record;
    let xcr0 = img.view.header.xcr0;
    let r = kckpt_arch::cpu::enable_dynamic_features(thread.fpstate, xcr0);
    if r < 0 {
        let errno = Errno((-r) as u32);
        return Err(Failure {
            what: "enabling AMX for the saved tile state",
            addr: 0,
            errno,
        });
    }
    let (xfeatures, fp_len) = kckpt_arch::cpu::frame_fpstate(thread.fpstate, xcr0);
    let input = kckpt_arch::FrameInput {
        regs: &thread.regs,
        fpstate: &thread.fpstate[..fp_len],
        xfeatures,
        // With the tracer attached, everything stays blocked until it has
        // removed the window and sets the saved mask at detach: pending
        // signals are then delivered with their siginfo, not caught in
        // its stops.
        sigmask: if traced { !0 } else { t.sigmask },
        altstack: (t.altstack_sp, t.altstack_flags, t.altstack_size),
    };
    let sp = kckpt_arch::build_sigframe(buf, addr as u64, &input).map_err(|_| Failure {
        what: "building the signal frame",
        addr: addr as u64,
        errno: Errno(22),
    })?;
    if traced {
        crate::tracer::set_final_mask(index, crate::xsys::gettid(), t.sigmask);
        // Still rewound to issue the call again (not turned into -EINTR
        // for a SIGWINCH queued here): the kernel decides at detach.
        let mut raw = thread.regs;
        let restart = t.syscall_state == kckpt_image::syscall_state::RESTART
            && kckpt_arch::restart_in_kernel(&mut raw, t.syscall_result);
        crate::tracer::set_restart(index, if restart { t.syscall_result } else { 0 });
    }
    Ok(sp as usize)
}
