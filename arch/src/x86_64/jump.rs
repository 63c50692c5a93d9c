//! Control transfers the stub needs on x86_64: run on another stack, and the
//! final `rt_sigreturn` into the restored process.
#![allow(unsafe_code)] // Stack switches and the final jump are assembly.

/// Call `f(arg)` on the stack whose top is `stack_top` (16-byte aligned);
/// never returns.
///
/// # Safety
/// `stack_top` must be the top of writable memory large enough for `f`,
/// not used by anything else.
pub unsafe fn call_on_stack(stack_top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: the caller provides a valid stack; `f` never returns, so
    // nothing depends on the old stack afterwards.
    unsafe {
        core::arch::asm!(
            "mov rsp, {sp}",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            sp = in(reg) stack_top & !15,
            f = in(reg) f,
            in("rdi") arg,
            options(noreturn),
        )
    }
}

/// `rt_sigreturn` with the stack pointer at `sp` (the frame's `uc`, as
/// [`crate::frame::build_sigframe`] returns it). With `trap_first`, an `int3`
/// runs just before the `syscall` instruction so the stub's tracer can stop
/// the process there (it reads the `syscall` address from the trap stop).
///
/// # Safety
/// `sp` must point at a complete frame built by `build_sigframe`; the
/// process continues with the registers in it.
pub unsafe fn sigreturn(sp: usize, trap_first: bool) -> ! {
    // SAFETY: the frame is complete (caller); rt_sigreturn replaces every
    // register, so nothing of this function survives it.
    unsafe {
        if trap_first {
            core::arch::asm!(
                "mov rsp, {sp}",
                "mov eax, 15",
                "int3",
                "syscall",
                "ud2",
                sp = in(reg) sp,
                options(noreturn),
            )
        } else {
            core::arch::asm!(
                "mov rsp, {sp}",
                "mov eax, 15",
                "syscall",
                "ud2",
                sp = in(reg) sp,
                options(noreturn),
            )
        }
    }
}

/// Set the thread pointers the signal frame does not carry: `fs_base`
/// (`tls`) and `gs_base` (`tls2`). Returns 0 or a negative errno.
pub fn set_tls(tls: u64, tls2: u64) -> isize {
    const ARCH_SET_GS: usize = 0x1001;
    const ARCH_SET_FS: usize = 0x1002;
    let nr = linux_raw_sys::general::__NR_arch_prctl as usize;
    // SAFETY: arch_prctl only changes this thread's segment bases; the
    // stub itself does not use TLS.
    let r =
        unsafe { crate::x86_64::syscall::raw_syscall(nr, [ARCH_SET_FS, tls as usize, 0, 0, 0, 0]) };
    if r < 0 {
        return r;
    }
    // SAFETY: as above, for gs.
    unsafe { crate::x86_64::syscall::raw_syscall(nr, [ARCH_SET_GS, tls2 as usize, 0, 0, 0, 0]) }
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
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "pop rax",
            "pop rdi",
            "xor ebp, ebp",
            "call rax",
            "ud2",
            "2:",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// The `clone` arguments (for [`clone_thread`]) of a thread on the stack
/// prepared at `sp` whose tid word at `clear_tid` the kernel sets to 0 (and
/// futex-wakes) once the thread has exited (`CLONE_CHILD_CLEARTID`).
pub fn clone_args_clearing_tid(flags: usize, sp: usize, clear_tid: usize) -> [usize; 5] {
    const CLONE_CHILD_CLEARTID: usize = 0x0020_0000;
    // x86_64: clone(flags, newsp, parent_tid, child_tid, tls).
    [flags | CLONE_CHILD_CLEARTID, sp, 0, clear_tid, 0]
}
