//! aarch64: system calls a tracer runs inside a stopped thread, arranged so
//! that the thread recovers on its own if the tracer dies at any moment.
//!
//! The call runs at an `svc #0; ret` sequence found in the target's own
//! code with the link register on `__kernel_rt_sigreturn` (the vDSO's
//! `mov x8, #139; svc #0`) and the stack pointer on an `rt_sigframe`
//! holding the registers the thread was stopped with. A live tracer stops
//! the thread at the call's exit and puts its registers back itself; if the
//! tracer is gone, `ret` enters `rt_sigreturn`, which loads the frame.
//! Not yet exercised on an aarch64 kernel (the ptrace dumper has only run
//! on x86_64; see dumper/README.md).

use crate::aarch64::regs::{rewind_for_image, set_syscall, UserRegs};

/// `svc #0; ret`, the `svc` at offset 0.
pub const SYSCALL_RET_GADGETS: &[&[u8]] = &[&[0x01, 0x00, 0x00, 0xd4, 0xc0, 0x03, 0x5f, 0xd6]];

/// `mov x8, #139; svc #0` (`__kernel_rt_sigreturn` in the vDSO).
pub const SIGRETURN_GADGETS: &[&[u8]] = &[&[0x68, 0x11, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4]];

/// `/proc/PID/status` key and value of a hardware return-address stack
/// (none is checked on aarch64 yet).
pub const SHADOW_STACK_STATUS: (&str, &str) = ("", "");

/// The registers a thread that recovers on its own resumes with (the
/// kernel has already rewound an interrupted call on aarch64).
pub fn recovery_regs(stopped: &UserRegs) -> UserRegs {
    let mut regs = *stopped;
    rewind_for_image(&mut regs);
    regs
}

/// `uc_stack.ss_flags` of the recovery frame: not a valid mode, so the
/// alternate stack is left as it is.
pub const KEEP_ALTSTACK_FLAGS: u32 = 0x7fff_0000;

/// The frame is read at the stack pointer; the return address goes in the
/// link register ([`injected_call_regs`]), not in the frame.
pub fn link_frame(_frame: &mut [u8], _frame_addr: u64, sigreturn_sp: u64, _sigreturn: u64) -> u64 {
    sigreturn_sp
}

/// Registers for system call `nr(args)` at the `svc; ret` sequence at
/// `syscall_ret`, returning into `sigreturn` with the stack at `call_sp`.
pub fn injected_call_regs(
    stopped: &UserRegs,
    syscall_ret: u64,
    sigreturn: u64,
    call_sp: u64,
    nr: u64,
    args: [u64; 6],
) -> UserRegs {
    let mut regs = *stopped;
    set_syscall(&mut regs, syscall_ret, nr, args);
    regs.sp = call_sp;
    regs.regs[30] = sigreturn;
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_call_returns_into_sigreturn() {
        let stopped = UserRegs::default();
        let mut frame = [0u8; 16];
        let sp = link_frame(&mut frame, 0x1000, 0x1000, 0x5000);
        let regs = injected_call_regs(&stopped, 0x4000, 0x5000, sp, 63, [1, 0, 0, 0, 0, 0]);
        assert_eq!(
            (regs.pc, regs.sp, regs.regs[30], regs.regs[8]),
            (0x4000, 0x1000, 0x5000, 63)
        );
        assert_eq!(frame, [0u8; 16]);
    }
}
