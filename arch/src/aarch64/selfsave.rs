//! Checkpointing the calling thread from inside (aarch64): the assembly
//! entry `kckpt_checkpoint_self` (defined by [`self_checkpoint_entry!`] in
//! the crate that implements the checkpoint), the callee-saved registers it
//! records ([`SelfRegs`]), and the register notes of "the call returned 1"
//! that the image stores for the thread.
//!
//! The AAPCS64 preserves `x19`-`x29`, `sp`, the low halves of `v8`-`v15`
//! (`d8`-`d15`) and FPCR across a call; `x30` holds the return address.
//! Not run yet (aarch64 restore is a later step), but compiled and unit-tested.
#![allow(unsafe_code)] // mrs reads of tpidr_el0, fpsr, fpcr.

#[cfg(target_arch = "aarch64")]
use kckpt_image::records::{nt, CORE_OWNER, LINUX_OWNER};

use super::regs::UserRegs;

/// The callee-saved registers at the call of `kckpt_checkpoint_self`, as
/// the entry stores them (layout shared with the assembly).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelfRegs {
    /// x19..=x28.
    pub x19_28: [u64; 10],
    /// Frame pointer.
    pub x29: u64,
    /// Link register: the return address.
    pub x30: u64,
    /// The stack pointer of the caller.
    pub sp: u64,
    /// d8..=d15.
    pub d8_15: [u64; 8],
    /// Padding to 16 bytes.
    pub pad: u64,
}

/// The rseq signature glibc registers on aarch64 (`RSEQ_SIG`).
pub const RSEQ_SIG: u32 = 0xd428_bc00;

/// Receives each register note: `(owner, note type, descriptor)`.
pub type EmitNote<'a> = dyn FnMut(&'static [u8], u32, &[u8]) + 'a;

/// Define the exported function `int kckpt_checkpoint_self(const char *)`
/// in the invoking crate: it stores [`SelfRegs`] on its stack and calls
/// `$impl(path, &regs)`, an `extern "C" fn(*const c_char, *const SelfRegs)
/// -> c_int`, whose result it returns.
#[cfg(target_arch = "aarch64")]
#[macro_export]
macro_rules! self_checkpoint_entry {
    ($impl:path) => {
        core::arch::global_asm!(
            ".globl kckpt_checkpoint_self",
            ".type kckpt_checkpoint_self,%function",
            "kckpt_checkpoint_self:",
            "sub sp, sp, #176",
            "stp x19, x20, [sp, #0]",
            "stp x21, x22, [sp, #16]",
            "stp x23, x24, [sp, #32]",
            "stp x25, x26, [sp, #48]",
            "stp x27, x28, [sp, #64]",
            "stp x29, x30, [sp, #80]",
            "add x9, sp, #176",
            "str x9, [sp, #96]",
            "stp d8, d9, [sp, #104]",
            "stp d10, d11, [sp, #120]",
            "stp d12, d13, [sp, #136]",
            "stp d14, d15, [sp, #152]",
            "mov x1, sp",
            "bl {imp}",
            "ldr x30, [sp, #88]",
            "add sp, sp, #176",
            "ret",
            ".size kckpt_checkpoint_self, . - kckpt_checkpoint_self",
            imp = sym $impl,
        );
    };
}

/// The registers the image stores for the thread: the call returned 1
/// (`x0` = 1, `pc` = `x30`), with the callee-saved registers of the call.
/// The thread pointers go to NT_ARM_TLS, not here.
pub fn image_regs(saved: &SelfRegs, _tls: (u64, u64)) -> UserRegs {
    let mut regs = [0u64; 31];
    regs[0] = 1;
    regs[19..29].copy_from_slice(&saved.x19_28);
    regs[29] = saved.x29;
    regs[30] = saved.x30;
    UserRegs {
        regs,
        sp: saved.sp,
        pc: saved.x30,
        pstate: 0,
    }
}

/// This thread's `(tpidr_el0, 0)`.
#[cfg(target_arch = "aarch64")]
pub fn thread_pointers() -> (u64, u64) {
    let tp: u64;
    // SAFETY: reads the EL0 thread pointer register only.
    unsafe { core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nomem, nostack)) };
    (tp, 0)
}

/// Bytes of scratch [`register_notes`] needs.
#[cfg(target_arch = "aarch64")]
pub fn scratch_len() -> usize {
    FPSIMD_SIZE
}

/// Size of `struct user_fpsimd_state`.
const FPSIMD_SIZE: usize = 528;

/// The `user_fpsimd_state` of the call: `d8`-`d15` in the low halves of
/// `v8`-`v15`, the other vector registers zero (caller-saved), FPSR and FPCR.
pub fn fpsimd_bytes(saved: &SelfRegs, fpsr: u32, fpcr: u32) -> [u8; FPSIMD_SIZE] {
    let mut out = [0u8; FPSIMD_SIZE];
    for (i, d) in saved.d8_15.iter().enumerate() {
        let at = (8 + i) * 16;
        out[at..at + 8].copy_from_slice(&d.to_le_bytes());
    }
    out[512..516].copy_from_slice(&fpsr.to_le_bytes());
    out[516..520].copy_from_slice(&fpcr.to_le_bytes());
    out
}

/// The register notes of the calling thread other than NT_PRSTATUS, as an
/// external dump stores them: NT_PRFPREG, NT_ARM_TLS and NT_ARM_SYSTEM_CALL
/// (-1: not in a system call). `emit(owner, type, bytes)` receives each.
#[cfg(target_arch = "aarch64")]
pub fn register_notes(saved: &SelfRegs, _scratch: &mut [u8], emit: &mut EmitNote<'_>) -> bool {
    let (fpsr, fpcr): (u64, u64);
    // SAFETY: reads of the EL0 floating-point status and control registers.
    unsafe {
        core::arch::asm!("mrs {}, fpsr", out(reg) fpsr, options(nomem, nostack));
        core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
    }
    emit(
        CORE_OWNER,
        nt::PRFPREG,
        &fpsimd_bytes(saved, fpsr as u32, fpcr as u32),
    );
    let mut tls = [0u8; 16];
    tls[..8].copy_from_slice(&thread_pointers().0.to_le_bytes());
    emit(LINUX_OWNER, nt::ARM_TLS, &tls);
    emit(LINUX_OWNER, nt::ARM_SYSTEM_CALL, &(-1i32).to_le_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_one_at_the_link_register() {
        let saved = SelfRegs {
            x30: 0x4000_1000,
            sp: 0xffff_0000,
            x29: 7,
            d8_15: [1, 2, 3, 4, 5, 6, 7, 8],
            ..SelfRegs::default()
        };
        let r = image_regs(&saved, (0, 0));
        assert_eq!(
            (r.regs[0], r.pc, r.sp, r.regs[29]),
            (1, 0x4000_1000, 0xffff_0000, 7)
        );
        assert_eq!(core::mem::size_of::<SelfRegs>(), 176);
        let fp = fpsimd_bytes(&saved, 0x10, 0x20);
        assert_eq!(fp[8 * 16], 1);
        assert_eq!(fp[15 * 16], 8);
        assert_eq!(fp[512], 0x10);
    }
}
