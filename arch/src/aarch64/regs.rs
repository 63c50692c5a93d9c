//! aarch64: `user_pt_regs`, `elf_prstatus`.
#![allow(unsafe_code)] // `unsafe impl Record`: plain integer layouts.

/// ELF machine number.
pub const ELF_MACHINE: u16 = kckpt_image::read::EM_AARCH64;
/// Architecture name as `uname -m` prints it.
pub const NAME: &str = "aarch64";
/// `seccomp_data.arch` of this architecture's native system calls
/// (`AUDIT_ARCH_AARCH64`).
pub const AUDIT_ARCH: u32 = 0xc000_00b7;

/// `struct user_pt_regs` (the `pr_reg` of NT_PRSTATUS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserRegs {
    /// x0..x30.
    pub regs: [u64; 31],
    /// Stack pointer.
    pub sp: u64,
    /// Program counter.
    pub pc: u64,
    /// PSTATE.
    pub pstate: u64,
}
// SAFETY: repr(C), 34 u64, no padding.
unsafe impl kckpt_image::Record for UserRegs {}

impl UserRegs {
    /// Program counter.
    pub fn pc(&self) -> u64 {
        self.pc
    }
    /// Stack pointer.
    pub fn sp(&self) -> u64 {
        self.sp
    }
}

/// The system call instruction (`svc #0`, 0xd4000001) and the alignment of
/// an instruction, for a tracer looking for one to inject calls with.
pub const SYSCALL_INSN: &[u8] = &[0x01, 0x00, 0x00, 0xd4];
/// See [`SYSCALL_INSN`].
pub const INSN_ALIGN: usize = 4;

/// Size of `struct elf_prstatus` on aarch64.
pub const PRSTATUS_SIZE: usize = 392;
/// Offset of `pr_reg` inside `elf_prstatus`.
pub const PRSTATUS_REG_OFFSET: usize = 112;

/// On aarch64 the kernel has already rewound pc and x0 of an interrupted
/// system call by the time ptrace sees the stop; only a
/// `restart_syscall` (x8 = 128) needs the original number, which the
/// caller restores from NT_ARM_SYSTEM_CALL. Returns the syscall state.
pub fn rewind_for_image(_regs: &mut UserRegs) -> u32 {
    kckpt_image::syscall_state::NONE
}

/// See the x86_64 version: on aarch64 the kernel has already rewound the
/// call when ptrace sees it (`rewind_for_image` records no state), so
/// there is nothing to turn into `-EINTR`.
pub fn interrupt_syscall(
    _regs: &mut UserRegs,
    _state: u32,
    _result: i64,
    _sa_restart: bool,
) -> bool {
    false
}

/// See the x86_64 version: on aarch64 no state is recorded
/// (`rewind_for_image`) and the original `x0` a restart needs is not in
/// the user registers: never changed.
pub fn restart_in_kernel(_regs: &mut UserRegs, _result: i64) -> bool {
    false
}

/// See the x86_64 version: nothing to do on aarch64.
pub fn rewind_for_live_resume(regs: &UserRegs) -> UserRegs {
    *regs
}

/// Set up `regs` to run system call `nr` with `args` at the `svc`
/// instruction at `pc` (for a tracer injecting a call).
pub fn set_syscall(regs: &mut UserRegs, pc: u64, nr: u64, args: [u64; 6]) {
    regs.pc = pc;
    regs.regs[8] = nr;
    regs.regs[..6].copy_from_slice(&args);
}

/// The return value of a system call at its exit stop.
pub fn syscall_return(regs: &UserRegs) -> i64 {
    regs.regs[0] as i64
}

/// Where the `svc` instruction is when a tracee stopped on the trap
/// `jump::sigreturn(_, true)` executes: `brk` leaves pc on itself.
pub fn syscall_pc_after_trap(regs: &UserRegs) -> u64 {
    regs.pc + 4
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
/// (syscall number from NT_ARM_SYSTEM_CALL, -1 when not in a call; result
/// x0; tpidr_el0 and tpidr2_el0 from NT_ARM_TLS, 0 where the kernel gave
/// fewer bytes).
pub fn thread_values<'a>(
    live: &UserRegs,
    regset: impl Fn(u32) -> Option<&'a [u8]>,
) -> (i64, i64, u64, u64) {
    use kckpt_image::records::nt;
    let word = |note: u32, at: usize| -> Option<u64> {
        let b = regset(note)?.get(at..at + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let nr = regset(nt::ARM_SYSTEM_CALL)
        .and_then(|b| b.get(..4))
        .and_then(|b| b.try_into().ok())
        .map_or(-1, |b| i64::from(i32::from_le_bytes(b)));
    (
        nr,
        live.regs[0] as i64,
        word(nt::ARM_TLS, 0).unwrap_or(0),
        word(nt::ARM_TLS, 8).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kckpt_image::records::nt;

    #[test]
    fn thread_values_from_regsets() {
        let mut live = UserRegs::default();
        live.regs[0] = (-4i64) as u64;
        let tls = [0x11u8, 0, 0, 0, 0, 0, 0, 0, 0x22, 0, 0, 0, 0, 0, 0, 0];
        let sys = 98i32.to_le_bytes();
        let v = thread_values(&live, |n| match n {
            nt::ARM_TLS => Some(&tls[..]),
            nt::ARM_SYSTEM_CALL => Some(&sys[..]),
            _ => None,
        });
        assert_eq!(v, (98, -4, 0x11, 0x22));
        // An older kernel: 8-byte NT_ARM_TLS, no NT_ARM_SYSTEM_CALL.
        let v = thread_values(&live, |n| (n == nt::ARM_TLS).then_some(&tls[..8]));
        assert_eq!(v, (-1, -4, 0x11, 0));
        // Not in a system call: the kernel reports -1.
        let none = (-1i32).to_le_bytes();
        let v = thread_values(&live, |n| (n == nt::ARM_SYSTEM_CALL).then_some(&none[..]));
        assert_eq!(v.0, -1);
    }

    #[test]
    fn prstatus_round_trip() {
        let mut regs = UserRegs::default();
        for (i, r) in regs.regs.iter_mut().enumerate() {
            *r = i as u64 * 3 + 1;
        }
        regs.sp = 0xffff_f000;
        regs.pc = 0x40_1000;
        regs.pstate = 0x6000_0000;
        let bytes = prstatus_bytes(&regs, 7, 1, 0, 0);
        assert_eq!(u32::from_le_bytes(bytes[32..36].try_into().unwrap()), 7);
        assert_eq!(regs_from_prstatus(&bytes), Some(regs));
        assert_eq!(regs_from_prstatus(&bytes[..PRSTATUS_SIZE - 1]), None);
    }

    #[test]
    fn injected_syscall_registers() {
        let mut regs = UserRegs::default();
        set_syscall(&mut regs, 0x1000, 132, [1, 2, 3, 4, 5, 6]);
        assert_eq!((regs.pc, regs.regs[8]), (0x1000, 132));
        assert_eq!(&regs.regs[..6], &[1, 2, 3, 4, 5, 6]);
        regs.regs[0] = (-22i64) as u64;
        assert_eq!(syscall_return(&regs), -22);
    }
}
