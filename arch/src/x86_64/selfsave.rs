//! Checkpointing the calling thread from inside (x86_64): the assembly
//! entry `kckpt_checkpoint_self` (defined by [`self_checkpoint_entry!`] in
//! the crate that implements the checkpoint), the callee-saved registers it
//! records ([`SelfRegs`]), and the register notes of "the call returned 1"
//! that the image stores for the thread.
//!
//! Only the registers the SysV ABI preserves across a call matter: `rbx`,
//! `rbp`, `r12`-`r15`, `rsp` (after the return), the return address, and
//! the MXCSR and x87 control words (in the XSAVE area, which the Rust side
//! saves with `xsave64`: callee-saved state that Rust code does not change).
#![allow(unsafe_code)] // arch_prctl reads of the thread pointers, xsave64.

#[cfg(target_arch = "x86_64")]
use kckpt_image::records::{nt, CORE_OWNER, LINUX_OWNER};

use super::regs::UserRegs;

/// The callee-saved registers at the call of `kckpt_checkpoint_self`, as
/// the entry stores them (layout shared with the assembly).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SelfRegs {
    pub rbx: u64,
    pub rbp: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// The stack pointer once the call has returned.
    pub rsp: u64,
    /// The return address.
    pub rip: u64,
}

/// The rseq signature glibc registers on x86_64 (`RSEQ_SIG`).
pub const RSEQ_SIG: u32 = 0x5305_3053;

/// Receives each register note: `(owner, note type, descriptor)`.
pub type EmitNote<'a> = dyn FnMut(&'static [u8], u32, &[u8]) + 'a;

/// Define the exported function `int kckpt_checkpoint_self(const char *)`
/// in the invoking crate: it stores [`SelfRegs`] on its stack and tail-ends
/// in `$impl(path, &regs)`, an `extern "C" fn(*const c_char, *const
/// SelfRegs) -> c_int`, whose result it returns.
#[cfg(target_arch = "x86_64")]
#[macro_export]
macro_rules! self_checkpoint_entry {
    ($impl:path) => {
        core::arch::global_asm!(
            ".globl kckpt_checkpoint_self",
            ".type kckpt_checkpoint_self,@function",
            "kckpt_checkpoint_self:",
            // At entry rsp = 8 mod 16 (the return address); 72 bytes keep
            // the call below 16-byte aligned and hold the 64-byte SelfRegs.
            "sub rsp, 72",
            "mov [rsp], rbx",
            "mov [rsp + 8], rbp",
            "mov [rsp + 16], r12",
            "mov [rsp + 24], r13",
            "mov [rsp + 32], r14",
            "mov [rsp + 40], r15",
            "lea rax, [rsp + 80]",
            "mov [rsp + 48], rax",
            "mov rax, [rsp + 72]",
            "mov [rsp + 56], rax",
            "mov rsi, rsp",
            "call {imp}",
            "add rsp, 72",
            "ret",
            ".size kckpt_checkpoint_self, . - kckpt_checkpoint_self",
            imp = sym $impl,
        );
    };
}

/// `rflags` of the restored thread: IF and the always-one bit 1 (DF clear,
/// as the ABI requires at a call boundary).
const RFLAGS: u64 = 0x202;
/// User code and stack segment selectors on x86_64 Linux.
const USER_CS: u64 = 0x33;
const USER_SS: u64 = 0x2b;

/// The registers the image stores for the thread: the call returned 1
/// (`rax` = 1, `rip` = the return address, `rsp` = the caller's), with the
/// callee-saved registers of the call, the caller-saved ones zero and the
/// thread pointers `(fs_base, gs_base)`.
pub fn image_regs(saved: &SelfRegs, tls: (u64, u64)) -> UserRegs {
    UserRegs {
        rbx: saved.rbx,
        rbp: saved.rbp,
        r12: saved.r12,
        r13: saved.r13,
        r14: saved.r14,
        r15: saved.r15,
        rsp: saved.rsp,
        rip: saved.rip,
        rax: 1,
        orig_rax: u64::MAX,
        eflags: RFLAGS,
        cs: USER_CS,
        ss: USER_SS,
        fs_base: tls.0,
        gs_base: tls.1,
        ..UserRegs::default()
    }
}

/// This thread's `(fs_base, gs_base)` (`arch_prctl(ARCH_GET_FS/GS)`).
#[cfg(target_arch = "x86_64")]
pub fn thread_pointers() -> (u64, u64) {
    const ARCH_GET_FS: usize = 0x1003;
    const ARCH_GET_GS: usize = 0x1004;
    let nr = linux_raw_sys::general::__NR_arch_prctl as usize;
    let (mut fs, mut gs) = (0u64, 0u64);
    // SAFETY: arch_prctl(ARCH_GET_FS/GS) writes one u64 to the address given,
    // a local here.
    unsafe {
        super::syscall::raw_syscall(nr, [ARCH_GET_FS, (&raw mut fs) as usize, 0, 0, 0, 0]);
        super::syscall::raw_syscall(nr, [ARCH_GET_GS, (&raw mut gs) as usize, 0, 0, 0, 0]);
    }
    (fs, gs)
}

/// Bytes of scratch [`register_notes`] needs.
#[cfg(target_arch = "x86_64")]
pub fn scratch_len() -> usize {
    super::cpu::xsave_size() as usize + 64
}

/// Offset of the XCR0 word in the software-reserved bytes of an
/// NT_X86_XSTATE area (what ptrace puts there).
#[cfg(target_arch = "x86_64")]
const SW_RESERVED_XCR0: usize = 464;

/// The register notes of the calling thread other than NT_PRSTATUS, as an
/// external dump stores them: NT_PRFPREG (the 512-byte legacy area) and
/// NT_X86_XSTATE (the standard-format XSAVE area of every XCR0 feature,
/// with XCR0 at byte 464). `scratch` (at least [`scratch_len`] bytes)
/// holds the area; `emit(owner, type, bytes)` receives each note. Returns
/// false on a CPU without XSAVE.
#[cfg(target_arch = "x86_64")]
pub fn register_notes(_saved: &SelfRegs, scratch: &mut [u8], emit: &mut EmitNote<'_>) -> bool {
    let xcr0 = super::cpu::xsave_features();
    let size = super::cpu::xsave_size() as usize;
    if xcr0 == 0 || scratch.len() < size + 64 {
        return false;
    }
    let skip = scratch.as_ptr().align_offset(64);
    let area = &mut scratch[skip..skip + size];
    // XSAVE writes the header's XSTATE_BV only: XCOMP_BV and the reserved
    // bytes must be zero for the standard format.
    area.fill(0);
    // SAFETY: `area` is writable, 64-byte aligned and as large as CPUID
    // says the XSAVE area for XCR0 is; xsave64 writes only inside it.
    unsafe {
        core::arch::asm!(
            "xsave64 [{p}]",
            p = in(reg) area.as_mut_ptr(),
            in("eax") xcr0 as u32,
            in("edx") (xcr0 >> 32) as u32,
            options(nostack, preserves_flags),
        );
    }
    area[SW_RESERVED_XCR0..SW_RESERVED_XCR0 + 8].copy_from_slice(&xcr0.to_le_bytes());
    emit(CORE_OWNER, nt::PRFPREG, &area[..512]);
    emit(LINUX_OWNER, nt::X86_XSTATE, area);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_one_at_the_return_address() {
        let saved = SelfRegs {
            rbx: 1,
            rbp: 2,
            r12: 3,
            r13: 4,
            r14: 5,
            r15: 6,
            rsp: 0x7ffd_0000,
            rip: 0x5555_1234,
        };
        let r = image_regs(&saved, (0x7000, 0));
        assert_eq!(
            (r.rax, r.rip, r.rsp, r.rbp, r.r15),
            (1, 0x5555_1234, 0x7ffd_0000, 2, 6)
        );
        assert_eq!(r.orig_rax as i64, -1);
        assert_eq!(r.fs_base, 0x7000);
        assert_eq!(core::mem::size_of::<SelfRegs>(), 64);
    }
}
