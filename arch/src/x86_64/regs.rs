//! x86_64: `user_regs_struct`, `elf_prstatus`, interrupted-syscall rewind.
#![allow(unsafe_code)] // `unsafe impl Record`: plain integer layouts.

/// ELF machine number.
pub const ELF_MACHINE: u16 = kckpt_image::read::EM_X86_64;
/// Architecture name as `uname -m` prints it.
pub const NAME: &str = "x86_64";
/// `seccomp_data.arch` of this architecture's native system calls
/// (`AUDIT_ARCH_X86_64`).
pub const AUDIT_ARCH: u32 = 0xc000_003e;

/// `struct user_regs_struct` (the `pr_reg` of NT_PRSTATUS and the
/// NT_PRSTATUS regset of PTRACE_GETREGSET).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}
// SAFETY: repr(C), 27 u64, no padding.
unsafe impl kckpt_image::Record for UserRegs {}

impl UserRegs {
    /// Program counter.
    pub fn pc(&self) -> u64 {
        self.rip
    }
    /// Stack pointer.
    pub fn sp(&self) -> u64 {
        self.rsp
    }
    /// Thread pointer (`fs_base`).
    pub fn tls(&self) -> u64 {
        self.fs_base
    }
    /// Second thread register (`gs_base`).
    pub fn tls2(&self) -> u64 {
        self.gs_base
    }
}

/// The system call instruction (`syscall`) and the alignment of an
/// instruction, for a tracer looking for one to inject calls with.
pub const SYSCALL_INSN: &[u8] = &[0x0f, 0x05];
/// See [`SYSCALL_INSN`].
pub const INSN_ALIGN: usize = 1;

/// Size of `struct elf_prstatus` on x86_64.
pub const PRSTATUS_SIZE: usize = 336;
/// Offset of `pr_reg` inside `elf_prstatus`.
pub const PRSTATUS_REG_OFFSET: usize = 112;

const ERESTARTSYS: i64 = 512;
const ERESTARTNOINTR: i64 = 513;
const ERESTARTNOHAND: i64 = 514;
const ERESTART_RESTARTBLOCK: i64 = 516;
/// `__NR_restart_syscall`.
const NR_RESTART_SYSCALL: u64 = 219;
/// Length of the `syscall` instruction.
const SYSCALL_INSN_LEN: u64 = 2;

/// What a thread stopped inside a system call must do on resume, as a
/// `kckpt_image::syscall_state` value, with the registers to store: the
/// kernel's own restart rule after a signal without handler (ip back over
/// `syscall`, ax = orig_ax). `-ERESTART_RESTARTBLOCK` (nanosleep, poll
/// with timeout) has no restart block in a new process, so the original
/// call is issued again with its original arguments.
pub fn rewind_for_image(regs: &mut UserRegs) -> u32 {
    use kckpt_image::syscall_state;
    if (regs.orig_rax as i64) < 0 {
        return syscall_state::NONE;
    }
    let state = match regs.rax as i64 {
        r if r == -ERESTARTSYS || r == -ERESTARTNOINTR || r == -ERESTARTNOHAND => {
            syscall_state::RESTART
        }
        r if r == -ERESTART_RESTARTBLOCK => syscall_state::RESTART_BLOCK,
        _ => return syscall_state::NONE,
    };
    regs.rax = regs.orig_rax;
    regs.rip = regs.rip.wrapping_sub(SYSCALL_INSN_LEN);
    regs.orig_rax = u64::MAX;
    state
}

/// A signal with a handler arrives for a thread saved inside a system call
/// (`state`, `result`: its `ThreadRecord` fields; `regs` rewound by
/// [`rewind_for_image`]): make the call return `-EINTR` instead of being
/// issued again, as the kernel does when a handler runs during
/// `-ERESTARTSYS` without `SA_RESTART`, `-ERESTARTNOHAND` or
/// `-ERESTART_RESTARTBLOCK`. Returns whether the registers changed.
pub fn interrupt_syscall(regs: &mut UserRegs, state: u32, result: i64, sa_restart: bool) -> bool {
    use kckpt_image::syscall_state;
    const EINTR: i64 = 4;
    let interrupted = match state {
        syscall_state::RESTART => {
            result == -ERESTARTNOHAND || (result == -ERESTARTSYS && !sa_restart)
        }
        syscall_state::RESTART_BLOCK => true,
        _ => false,
    };
    if interrupted {
        regs.rip = regs.rip.wrapping_add(SYSCALL_INSN_LEN);
        regs.rax = (-EINTR) as u64;
        regs.orig_rax = u64::MAX;
    }
    interrupted
}

/// Registers of a thread saved inside a system call (`result`: the raw
/// `-ERESTARTSYS`, `-ERESTARTNOINTR` or `-ERESTARTNOHAND` the kernel had
/// set), rewound by [`rewind_for_image`] (ip at `syscall`, ax the call's
/// number), made back into that call's exit (ip after `syscall`, orig_ax
/// the number, ax the result), for a tracer to set at a syscall-exit stop:
/// resumed from there, the kernel applies its own rule, atomically with
/// signal delivery: the call returns `-EINTR` when a handler runs for a
/// signal pending then (`-ERESTARTSYS` with `SA_RESTART` excepted), and is
/// issued again otherwise. Resumed from the rewound registers instead, a
/// handler run first leaves the call to be issued again (a `pause` would
/// then sleep through the signal that should have ended it). Returns
/// whether `regs` were such registers and were changed.
pub fn restart_in_kernel(regs: &mut UserRegs, result: i64) -> bool {
    let restartable =
        result == -ERESTARTSYS || result == -ERESTARTNOINTR || result == -ERESTARTNOHAND;
    if !restartable || regs.orig_rax != u64::MAX || (regs.rax as i64) < 0 {
        return false;
    }
    regs.orig_rax = regs.rax;
    regs.rax = result as u64;
    regs.rip = regs.rip.wrapping_add(SYSCALL_INSN_LEN);
    true
}

/// Registers to put back into a live thread before detaching after the
/// dumper ran system calls in it: the same rewind the kernel would have
/// applied, with `-ERESTART_RESTARTBLOCK` going through `restart_syscall`
/// (the live thread still has its restart block).
pub fn rewind_for_live_resume(regs: &UserRegs) -> UserRegs {
    let mut out = *regs;
    if (regs.orig_rax as i64) < 0 {
        return out;
    }
    match regs.rax as i64 {
        r if r == -ERESTARTSYS || r == -ERESTARTNOINTR || r == -ERESTARTNOHAND => {
            out.rax = regs.orig_rax;
            out.rip = regs.rip.wrapping_sub(SYSCALL_INSN_LEN);
        }
        r if r == -ERESTART_RESTARTBLOCK => {
            out.rax = NR_RESTART_SYSCALL;
            out.rip = regs.rip.wrapping_sub(SYSCALL_INSN_LEN);
        }
        _ => return out,
    }
    out.orig_rax = u64::MAX;
    out
}

/// Set up `regs` to run system call `nr` with `args` at the `syscall`
/// instruction at `pc` (for a tracer injecting a call). `orig_rax` is set to
/// -1 so the kernel's restart logic leaves the registers alone.
pub fn set_syscall(regs: &mut UserRegs, pc: u64, nr: u64, args: [u64; 6]) {
    regs.rip = pc;
    regs.rax = nr;
    regs.orig_rax = u64::MAX;
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    regs.r10 = args[3];
    regs.r8 = args[4];
    regs.r9 = args[5];
}

/// The return value of a system call at its exit stop.
pub fn syscall_return(regs: &UserRegs) -> i64 {
    regs.rax as i64
}

/// Where the `syscall` instruction is when a tracee stopped on the trap
/// `jump::sigreturn(_, true)` executes: `int3` has already advanced rip.
pub fn syscall_pc_after_trap(regs: &UserRegs) -> u64 {
    regs.rip
}

/// Encode an `elf_prstatus` for NT_PRSTATUS.
pub fn prstatus_bytes(
    regs: &UserRegs,
    pid: u32,
    ppid: u32,
    sigpend: u64,
    sighold: u64,
) -> [u8; PRSTATUS_SIZE] {
    let mut out = [0u8; PRSTATUS_SIZE];
    out[16..24].copy_from_slice(&sigpend.to_le_bytes());
    out[24..32].copy_from_slice(&sighold.to_le_bytes());
    out[32..36].copy_from_slice(&pid.to_le_bytes());
    out[36..40].copy_from_slice(&ppid.to_le_bytes());
    let regs = kckpt_image::read::record_bytes(regs);
    out[PRSTATUS_REG_OFFSET..PRSTATUS_REG_OFFSET + regs.len()].copy_from_slice(regs);
    // pr_fpvalid: FP state is present in NT_PRFPREG / NT_X86_XSTATE.
    out[PRSTATUS_SIZE - 8..PRSTATUS_SIZE - 4].copy_from_slice(&1u32.to_le_bytes());
    out
}

/// Decode the registers of an NT_PRSTATUS descriptor.
pub fn regs_from_prstatus(desc: &[u8]) -> Option<UserRegs> {
    if desc.len() < PRSTATUS_SIZE {
        return None;
    }
    kckpt_image::read::read_record(desc.get(PRSTATUS_REG_OFFSET..)?)
}

/// The per-thread values of a `ThreadRecord` taken from the live registers
/// of a traced thread and its captured register sets (`regset(note_type)`):
/// (syscall number, syscall result, tls, tls2).
pub fn thread_values<'a>(
    live: &UserRegs,
    _regset: impl Fn(u32) -> Option<&'a [u8]>,
) -> (i64, i64, u64, u64) {
    (
        live.orig_rax as i64,
        live.rax as i64,
        live.fs_base,
        live.gs_base,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_kernel() {
        assert_eq!(core::mem::size_of::<UserRegs>(), 27 * 8);
        assert_eq!(
            PRSTATUS_REG_OFFSET + core::mem::size_of::<UserRegs>() + 8,
            PRSTATUS_SIZE
        );
    }

    #[test]
    fn rewinds_nanosleep_like_the_kernel() {
        let mut r = UserRegs {
            orig_rax: 35,
            rax: (-516i64) as u64,
            rip: 0x1002,
            ..Default::default()
        };
        let live = rewind_for_live_resume(&r);
        assert_eq!((live.rax, live.rip), (219, 0x1000));
        assert_eq!(
            rewind_for_image(&mut r),
            kckpt_image::syscall_state::RESTART_BLOCK
        );
        assert_eq!((r.rax, r.rip), (35, 0x1000));
    }

    #[test]
    fn leaves_finished_syscalls_alone() {
        let mut r = UserRegs {
            orig_rax: 0,
            rax: 5,
            rip: 0x1002,
            ..Default::default()
        };
        assert_eq!(rewind_for_image(&mut r), kckpt_image::syscall_state::NONE);
        assert_eq!((r.rax, r.rip), (5, 0x1002));
    }

    #[test]
    fn prstatus_round_trip() {
        let r = UserRegs {
            rip: 0xdead,
            rsp: 0xbeef,
            fs_base: 7,
            ..Default::default()
        };
        assert_eq!(regs_from_prstatus(&prstatus_bytes(&r, 1, 2, 0, 0)), Some(r));
    }
}
