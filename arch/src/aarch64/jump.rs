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
