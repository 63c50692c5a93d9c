//! The x86_64 `rt_sigframe` the stub ends with: `rt_sigreturn` loads every
//! general register, the flags, the XSAVE state, the blocked mask and the
//! alternate signal stack from it in one step.
//!
//! Layout (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h):
//! `pretcode` (8), `ucontext` (304: flags, link, `stack_t`, `sigcontext`
//! (256), sigmask), `siginfo` (128), then the XSAVE area, 64-byte aligned,
//! with the software-reserved bytes at 464 that tell the kernel its size and
//! features, and `FP_XSTATE_MAGIC2` right after it.

use crate::x86_64::regs::UserRegs;

/// What goes into the frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameInput<'a> {
    /// General registers to resume with.
    pub regs: &'a UserRegs,
    /// The XSAVE area in standard format (NT_X86_XSTATE), or a 512-byte
    /// fxsave area (NT_PRFPREG) when there is no XSAVE.
    pub fpstate: &'a [u8],
    /// XSAVE features present in `fpstate` (XCR0 of the saving CPU).
    pub xfeatures: u64,
    /// Blocked signals.
    pub sigmask: u64,
    /// `sigaltstack`: base, flags, size.
    pub altstack: (u64, u32, u64),
}

/// Why a frame could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer is too small or not 64-byte aligned.
    BadBuffer,
    /// The FP state is shorter than an fxsave area.
    BadFpState,
}

const UC_FP_XSTATE: u64 = 0x1;
const UC_SIGCONTEXT_SS: u64 = 0x2;
const UC_STRICT_RESTORE_SS: u64 = 0x4;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const UC_OFFSET: usize = 8;
const MCONTEXT_OFFSET: usize = UC_OFFSET + 40;
const SIGMASK_OFFSET: usize = UC_OFFSET + 296;
const FPSTATE_OFFSET: usize = 448; // after pretcode + uc + siginfo, 64-aligned
const SW_BYTES_OFFSET: usize = 464;
const FXSAVE_SIZE: usize = 512;
/// Bytes of buffer a frame needs for an FP state of `fpstate_len` bytes.
pub fn frame_size(fpstate_len: usize) -> usize {
    FPSTATE_OFFSET + fpstate_len + 4
}

fn put(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Build the frame in `buf`, which lives at address `buf_addr` (64-byte
/// aligned); returns the stack pointer to issue `rt_sigreturn` with.
pub fn build_sigframe(
    buf: &mut [u8],
    buf_addr: u64,
    input: &FrameInput,
) -> Result<u64, FrameError> {
    let fp_len = input.fpstate.len();
    if fp_len < FXSAVE_SIZE {
        return Err(FrameError::BadFpState);
    }
    if !buf_addr.is_multiple_of(64) || buf.len() < frame_size(fp_len) {
        return Err(FrameError::BadBuffer);
    }
    buf[..frame_size(fp_len)].fill(0);
    let r = input.regs;
    put(
        buf,
        UC_OFFSET,
        UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
    );
    // uc_stack: ss_sp, ss_flags (int + padding), ss_size.
    put(buf, UC_OFFSET + 16, input.altstack.0);
    put(buf, UC_OFFSET + 24, u64::from(input.altstack.1));
    put(buf, UC_OFFSET + 32, input.altstack.2);
    let gp = [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.eflags,
    ];
    for (i, v) in gp.iter().enumerate() {
        put(buf, MCONTEXT_OFFSET + i * 8, *v);
    }
    // cs, gs, fs, ss as u16 each.
    let segs = (r.cs & 0xffff)
        | ((r.gs & 0xffff) << 16)
        | ((r.fs & 0xffff) << 32)
        | ((r.ss & 0xffff) << 48);
    put(buf, MCONTEXT_OFFSET + 18 * 8, segs);
    // err, trapno, oldmask, cr2 stay 0; then the fpstate pointer.
    let fp_addr = buf_addr + FPSTATE_OFFSET as u64;
    put(buf, MCONTEXT_OFFSET + 23 * 8, fp_addr);
    put(buf, SIGMASK_OFFSET, input.sigmask);
    let fp = &mut buf[FPSTATE_OFFSET..FPSTATE_OFFSET + fp_len + 4];
    fp[..fp_len].copy_from_slice(input.fpstate);
    // Software-reserved bytes: magic1, extended_size, xfeatures,
    // xstate_size, then zero padding; MAGIC2 right after the area.
    let sw = &mut fp[SW_BYTES_OFFSET..FXSAVE_SIZE];
    sw.fill(0);
    if fp_len > FXSAVE_SIZE {
        sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        sw[4..8].copy_from_slice(&(fp_len as u32 + 4).to_le_bytes());
        sw[8..16].copy_from_slice(&input.xfeatures.to_le_bytes());
        sw[16..20].copy_from_slice(&(fp_len as u32).to_le_bytes());
        fp[fp_len..fp_len + 4].copy_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    }
    Ok(buf_addr + UC_OFFSET as u64)
}

/// Whether an XSAVE (or fxsave) area can be loaded by `rt_sigreturn` with
/// features `xfeatures`: MXCSR without reserved bits, and (XSAVE) a
/// standard-format header whose features are a subset of `xfeatures`.
/// Loading anything else would fault and kill the restored process.
pub fn fpstate_is_valid(fpstate: &[u8], xfeatures: u64) -> bool {
    let word = |at: usize| {
        fpstate
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let Some(mxcsr) = fpstate.get(24..28) else {
        return false;
    };
    if u32::from_le_bytes([mxcsr[0], mxcsr[1], mxcsr[2], mxcsr[3]]) & 0xffff_0000 != 0 {
        return false;
    }
    if fpstate.len() == FXSAVE_SIZE {
        return true;
    }
    match (word(512), word(520)) {
        (Some(bv), Some(comp)) => {
            bv & !xfeatures == 0
                && comp == 0
                && fpstate
                    .get(528..576)
                    .is_some_and(|r| r.iter().all(|&b| b == 0))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_land_in_sigcontext_order() {
        let regs = UserRegs {
            r8: 8,
            rip: 0x401000,
            rsp: 0x7ffd0000,
            eflags: 0x246,
            cs: 0x33,
            ss: 0x2b,
            ..Default::default()
        };
        let xstate = [0u8; 832];
        let mut buf = [0u8; 2048];
        let input = FrameInput {
            regs: &regs,
            fpstate: &xstate,
            xfeatures: 7,
            sigmask: 1 << 9,
            altstack: (0, 2, 0),
        };
        let sp = build_sigframe(&mut buf, 0x1000, &input).unwrap();
        assert_eq!(sp, 0x1008);
        let at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
        assert_eq!(at(MCONTEXT_OFFSET), 8);
        assert_eq!(at(MCONTEXT_OFFSET + 16 * 8), 0x401000);
        assert_eq!(at(MCONTEXT_OFFSET + 15 * 8), 0x7ffd0000);
        assert_eq!(at(MCONTEXT_OFFSET + 18 * 8) & 0xffff, 0x33);
        assert_eq!(at(MCONTEXT_OFFSET + 18 * 8) >> 48, 0x2b);
        assert_eq!(at(MCONTEXT_OFFSET + 23 * 8), 0x1000 + 448);
        assert_eq!(at(SIGMASK_OFFSET), 1 << 9);
        let fp = FPSTATE_OFFSET;
        assert_eq!(&buf[fp + 464..fp + 468], &FP_XSTATE_MAGIC1.to_le_bytes());
        assert_eq!(&buf[fp + 832..fp + 836], &FP_XSTATE_MAGIC2.to_le_bytes());
    }

    #[test]
    fn refuses_unaligned_or_small_buffers() {
        let regs = UserRegs::default();
        let xstate = [0u8; 512];
        let input = FrameInput {
            regs: &regs,
            fpstate: &xstate,
            xfeatures: 3,
            sigmask: 0,
            altstack: (0, 2, 0),
        };
        let mut buf = [0u8; 2048];
        assert_eq!(
            build_sigframe(&mut buf, 0x1010, &input),
            Err(FrameError::BadBuffer)
        );
        assert_eq!(
            build_sigframe(&mut buf[..500], 0x1000, &input),
            Err(FrameError::BadBuffer)
        );
        assert_eq!(
            build_sigframe(
                &mut buf,
                0x1000,
                &FrameInput {
                    fpstate: &xstate[..100],
                    ..input
                }
            ),
            Err(FrameError::BadFpState)
        );
    }
}
