//! aarch64: `user_pt_regs`, `elf_prstatus`.
#![allow(unsafe_code)] // `unsafe impl Record`: plain integer layouts.

/// ELF machine number.
pub const ELF_MACHINE: u16 = kckpt_image::read::EM_AARCH64;
/// Architecture name as `uname -m` prints it.
pub const NAME: &str = "aarch64";

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
