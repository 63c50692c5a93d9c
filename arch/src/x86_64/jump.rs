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
