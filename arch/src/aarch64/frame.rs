//! The aarch64 `rt_sigframe` for the final `rt_sigreturn`.
//!
//! Layout (arch/arm64/kernel/signal.c, uapi/asm/sigcontext.h): `siginfo`
//! (128), then `ucontext`: flags, link, `stack_t` (24), sigmask (8), padding
//! to 168, `sigcontext` at 176 (16-aligned): fault_address, x0..x30, sp, pc,
//! pstate, then `__reserved[4096]` at 288 holding an `fpsimd_context`
//! (magic 0x46508001, 528 bytes) and a terminating empty record. The kernel
//! reads the frame at `sp`.

use crate::aarch64::regs::UserRegs;

/// What goes into the frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameInput<'a> {
    /// General registers to resume with.
    pub regs: &'a UserRegs,
    /// `user_fpsimd_state` (NT_PRFPREG): v0..v31, fpsr, fpcr.
    pub fpstate: &'a [u8],
    /// Unused on aarch64 (x86_64: XSAVE features).
    pub xfeatures: u64,
    /// Blocked signals.
    pub sigmask: u64,
    /// `sigaltstack`: base, flags, size.
    pub altstack: (u64, u32, u64),
}

/// Why a frame could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer is too small or not 16-byte aligned.
    BadBuffer,
    /// The FP state is shorter than `user_fpsimd_state`.
    BadFpState,
}

const UC_OFFSET: usize = 128;
const SIGMASK_OFFSET: usize = UC_OFFSET + 40;
const SIGCONTEXT_OFFSET: usize = UC_OFFSET + 176;
const RESERVED_OFFSET: usize = SIGCONTEXT_OFFSET + 288;
const FPSIMD_MAGIC: u32 = 0x4650_8001;
const FPSIMD_CONTEXT_SIZE: usize = 528;
const USER_FPSIMD_SIZE: usize = 528;
const FRAME_SIZE: usize = RESERVED_OFFSET + 4096;

/// Bytes of buffer a frame needs.
pub fn frame_size(_fpstate_len: usize) -> usize {
    FRAME_SIZE
}

fn put(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Build the frame in `buf`, which lives at address `buf_addr` (16-byte
/// aligned); returns the stack pointer to issue `rt_sigreturn` with.
pub fn build_sigframe(
    buf: &mut [u8],
    buf_addr: u64,
    input: &FrameInput,
) -> Result<u64, FrameError> {
    if input.fpstate.len() < USER_FPSIMD_SIZE {
        return Err(FrameError::BadFpState);
    }
    if !buf_addr.is_multiple_of(16) || buf.len() < FRAME_SIZE {
        return Err(FrameError::BadBuffer);
    }
    buf[..FRAME_SIZE].fill(0);
    put(buf, UC_OFFSET + 16, input.altstack.0);
    put(buf, UC_OFFSET + 24, u64::from(input.altstack.1));
    put(buf, UC_OFFSET + 32, input.altstack.2);
    put(buf, SIGMASK_OFFSET, input.sigmask);
    let r = input.regs;
    for (i, v) in r.regs.iter().enumerate() {
        put(buf, SIGCONTEXT_OFFSET + 8 + i * 8, *v);
    }
    put(buf, SIGCONTEXT_OFFSET + 256, r.sp);
    put(buf, SIGCONTEXT_OFFSET + 264, r.pc);
    put(buf, SIGCONTEXT_OFFSET + 272, r.pstate);
    let fp = &mut buf[RESERVED_OFFSET..RESERVED_OFFSET + FPSIMD_CONTEXT_SIZE];
    fp[0..4].copy_from_slice(&FPSIMD_MAGIC.to_le_bytes());
    fp[4..8].copy_from_slice(&(FPSIMD_CONTEXT_SIZE as u32).to_le_bytes());
    // fpsr, fpcr follow v0..v31 in user_fpsimd_state.
    fp[8..16].copy_from_slice(&input.fpstate[512..520]);
    fp[16..528].copy_from_slice(&input.fpstate[..512]);
    // The record after it stays zero: the terminator.
    Ok(buf_addr)
}

/// Whether an FP/SIMD state note can be loaded by `rt_sigreturn`.
pub fn fpstate_is_valid(fpstate: &[u8], _xfeatures: u64) -> bool {
    fpstate.len() >= USER_FPSIMD_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_fpsimd_land_in_place() {
        let mut regs = UserRegs::default();
        regs.regs[0] = 42;
        regs.pc = 0x400000;
        regs.sp = 0xfff0;
        let mut fpsimd = [0u8; 528];
        fpsimd[0] = 0xaa;
        fpsimd[512] = 0x11;
        let mut buf = [0u8; FRAME_SIZE];
        let input = FrameInput {
            regs: &regs,
            fpstate: &fpsimd,
            xfeatures: 0,
            sigmask: 3,
            altstack: (0, 2, 0),
        };
        assert_eq!(build_sigframe(&mut buf, 0x1000, &input), Ok(0x1000));
        let at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
        assert_eq!(at(SIGCONTEXT_OFFSET + 8), 42);
        assert_eq!(at(SIGCONTEXT_OFFSET + 264), 0x400000);
        assert_eq!(at(SIGMASK_OFFSET), 3);
        assert_eq!(buf[RESERVED_OFFSET + 8], 0x11);
        assert_eq!(buf[RESERVED_OFFSET + 16], 0xaa);
    }
}
