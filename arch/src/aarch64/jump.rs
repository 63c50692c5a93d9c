//! Control transfers the stub needs on aarch64: run on another stack, and
//! the final `rt_sigreturn` into the restored process.
#![allow(unsafe_code)] // Stack switches and the final jump are assembly.

/// Call `f(arg)` on the stack whose top is `stack_top`; never returns.
///
/// # Safety
/// `stack_top` must be the top of writable memory large enough for `f`.
pub unsafe fn call_on_stack(stack_top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: the caller provides a valid stack; `f` never returns.
    unsafe {
        core::arch::asm!(
            "mov sp, {sp}",
            "mov x29, xzr",
            "mov x30, xzr",
            "blr {f}",
            "udf #0",
            sp = in(reg) stack_top & !15,
            f = in(reg) f,
            in("x0") arg,
            options(noreturn),
        )
    }
}

/// `rt_sigreturn` with the stack pointer at `sp` (the frame from
/// [`crate::aarch64::frame::build_sigframe`]). With `trap_first`, a `brk`
/// runs just before the `svc` so the stub's tracer can stop there.
///
/// # Safety
/// `sp` must point at a complete frame built by `build_sigframe`.
pub unsafe fn sigreturn(sp: usize, trap_first: bool) -> ! {
    // SAFETY: the frame is complete (caller); rt_sigreturn replaces every
    // register.
    unsafe {
        if trap_first {
            core::arch::asm!(
                "mov sp, {sp}",
                "mov x8, #139",
                "brk #0",
                "svc 0",
                "udf #0",
                sp = in(reg) sp,
                options(noreturn),
            )
        } else {
            core::arch::asm!(
                "mov sp, {sp}",
                "mov x8, #139",
                "svc 0",
                "udf #0",
                sp = in(reg) sp,
                options(noreturn),
            )
        }
    }
}

/// Set the thread pointers the signal frame does not carry: `tpidr_el0`
/// (`tls`); `tls2` (`tpidr2_el0`, SME) is not restored yet. Returns 0.
pub fn set_tls(tls: u64, _tls2: u64) -> isize {
    // SAFETY: tpidr_el0 is the user-writable thread register; the stub
    // itself does not use TLS.
    unsafe { core::arch::asm!("msr tpidr_el0, {0}", in(reg) tls, options(nomem, nostack)) };
    0
}

/// Put `f` and `arg` at the top of a new thread's stack (`stack_top`,
/// 16-byte aligned); returns the stack pointer to give `clone`/`clone3`,
/// so that [`clone_thread`]'s child calls `f(arg)` there.
///
/// # Safety
/// `[stack_top - 16, stack_top)` must be writable memory of the new stack.
pub unsafe fn thread_stack(stack_top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> usize {
    let sp = (stack_top & !15) - 16;
    // SAFETY: inside the caller's stack (above).
    unsafe {
        core::ptr::write(sp as *mut usize, f as usize);
        core::ptr::write((sp + 8) as *mut usize, arg);
    }
    sp
}

/// Issue `clone` or `clone3` (`nr`, arguments `args`) for a new thread whose
/// stack was prepared by [`thread_stack`]: the child calls `f(arg)` on it
/// and never comes back here; the parent gets the result (new tid or a
/// negative errno).
///
/// # Safety
/// The arguments must create a thread (`CLONE_VM`) on the prepared stack;
/// the child runs `f` concurrently with the caller.
pub unsafe fn clone_thread(nr: usize, args: [usize; 5]) -> isize {
    let ret: isize;
    // SAFETY: the child starts on its own prepared stack and only runs
    // `f(arg)`, which never returns; the parent sees a plain system call.
    unsafe {
        core::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "ldp x1, x0, [sp], #16",
            "mov x29, xzr",
            "mov x30, xzr",
            "blr x1",
            "udf #0",
            "2:",
            in("x8") nr,
            inlateout("x0") args[0] as isize => ret,
            inlateout("x1") args[1] => _,
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
        );
    }
    ret
}

/// The `clone` arguments (for [`clone_thread`]) of a thread on the stack
/// prepared at `sp` whose tid word at `clear_tid` the kernel sets to 0 (and
/// futex-wakes) once the thread has exited (`CLONE_CHILD_CLEARTID`).
pub fn clone_args_clearing_tid(flags: usize, sp: usize, clear_tid: usize) -> [usize; 5] {
    const CLONE_CHILD_CLEARTID: usize = 0x0020_0000;
    // aarch64: clone(flags, newsp, parent_tid, tls, child_tid).
    [flags | CLONE_CHILD_CLEARTID, sp, 0, 0, clear_tid]
}
