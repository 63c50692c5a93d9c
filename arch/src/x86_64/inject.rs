//! x86_64: system calls a tracer runs inside a stopped thread, arranged so
//! that the thread recovers on its own if the tracer dies at any moment.
//!
//! The call runs at a `syscall; ret` sequence found in the target's own
//! code, with the stack pointer on an `rt_sigframe` written below the
//! thread's red zone whose return address (`pretcode`) is an
//! `mov rax, 15; syscall` sequence (libc's `__restore_rt`). A live tracer
//! stops the thread at the call's exit and puts its registers back itself;
//! if the tracer is gone, the thread returns into `rt_sigreturn`, which
//! loads the frame: every register, the XSAVE state and the blocked mask it
//! had before (the frame's `uc_stack` holds invalid flags, so the
//! alternate stack is left as it is).

use crate::x86_64::regs::{rewind_for_image, set_syscall, UserRegs};

/// Byte sequences that run a system call and then return through the
/// address at the stack pointer; the `syscall` instruction is at offset 0.
pub const SYSCALL_RET_GADGETS: &[&[u8]] = &[&[0x0f, 0x05, 0xc3]];

/// Byte sequences that call `rt_sigreturn` with the frame at the stack
/// pointer: `mov rax, 15; syscall` and `mov eax, 15; syscall`.
pub const SIGRETURN_GADGETS: &[&[u8]] = &[
    &[0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05],
    &[0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05],
];

/// The `/proc/PID/status` key and value that say a thread has a hardware
/// return-address stack (CET shadow stack): `ret` into the sigreturn
/// sequence would fault there, so the self-recovering calls are not used.
pub const SHADOW_STACK_STATUS: (&str, &str) = ("x86_Thread_features", "shstk");

/// The registers a thread that recovers on its own resumes with: those it
/// was stopped with, an interrupted system call rewound to be issued again
/// (`rt_sigreturn` clears the restart block `restart_syscall` would need).
pub fn recovery_regs(stopped: &UserRegs) -> UserRegs {
    let mut regs = *stopped;
    rewind_for_image(&mut regs);
    regs
}

/// `uc_stack.ss_flags` of the recovery frame: not a valid mode, so
/// `rt_sigreturn`'s `sigaltstack` fails (silently) and changes nothing.
pub const KEEP_ALTSTACK_FLAGS: u32 = 0x7fff_0000;

/// Make the frame built at `frame_addr` (whose `rt_sigreturn` stack
/// pointer is `sigreturn_sp`) return into `sigreturn`; returns the stack
/// pointer for the injected call: the `ret` after `syscall` pops
/// `pretcode`, leaving the stack pointer where `rt_sigreturn` wants it.
pub fn link_frame(frame: &mut [u8], frame_addr: u64, sigreturn_sp: u64, sigreturn: u64) -> u64 {
    frame[..8].copy_from_slice(&sigreturn.to_le_bytes());
    debug_assert_eq!(sigreturn_sp, frame_addr + 8);
    frame_addr
}

/// Registers for system call `nr(args)` at the `syscall; ret` sequence at
/// `syscall_ret`, with the stack pointer `call_sp` from [`link_frame`].
pub fn injected_call_regs(
    stopped: &UserRegs,
    syscall_ret: u64,
    _sigreturn: u64,
    call_sp: u64,
    nr: u64,
    args: [u64; 6],
) -> UserRegs {
    let mut regs = *stopped;
    set_syscall(&mut regs, syscall_ret, nr, args);
    regs.rsp = call_sp;
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_call_returns_through_the_frame() {
        let stopped = UserRegs {
            rip: 0x40_1000,
            rsp: 0x7ffd_0000,
            rax: (-4i64) as u64, // -EINTR: not a restart
            orig_rax: 35,
            rbx: 7,
            ..Default::default()
        };
        let mut frame = [0u8; 64];
        let sp = link_frame(&mut frame, 0x7ffc_f000, 0x7ffc_f008, 0x7f00_1234);
        assert_eq!(sp, 0x7ffc_f000);
        assert_eq!(&frame[..8], &0x7f00_1234u64.to_le_bytes());
        let regs = injected_call_regs(
            &stopped,
            0x7f00_0100,
            0x7f00_1234,
            sp,
            13,
            [1, 2, 3, 4, 5, 6],
        );
        assert_eq!(
            (regs.rip, regs.rsp, regs.rax),
            (0x7f00_0100, 0x7ffc_f000, 13)
        );
        assert_eq!((regs.rdi, regs.r10, regs.r9), (1, 4, 6));
        assert_eq!(regs.orig_rax, u64::MAX);
        assert_eq!(regs.rbx, 7);
    }

    #[test]
    fn recovery_reissues_an_interrupted_call() {
        let stopped = UserRegs {
            rip: 0x40_1002,
            rax: (-516i64) as u64, // -ERESTART_RESTARTBLOCK (nanosleep)
            orig_rax: 35,
            ..Default::default()
        };
        let r = recovery_regs(&stopped);
        assert_eq!((r.rip, r.rax, r.orig_rax), (0x40_1000, 35, u64::MAX));
    }
}
