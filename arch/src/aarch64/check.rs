//! aarch64: which saved registers a restored thread may resume with.
//!
//! `rt_sigreturn` refuses (SIGSEGV) a `pstate` that is not EL0t in AArch64
//! state or that masks D, A, I or F (the kernel's `valid_user_regs`), and
//! silently drops other bits; a set SS bit would single-step, a misaligned
//! `pc` faults at once. Only NZCV and the user bits the kernel keeps (TCO,
//! DIT, SSBS, BTYPE) are accepted.

use super::regs::UserRegs;

/// `pstate` bits a user thread may have: N Z C V (31-28), TCO (25), DIT
/// (24), SSBS (12), BTYPE (11-10). Mode bits 4-0 must be 0 (EL0t,
/// AArch64); never D A I F (9-6), SS (21), IL (20), PAN, UAO.
pub const PSTATE_USER: u64 = 0xf000_0000 | (1 << 25) | (1 << 24) | (1 << 12) | (3 << 10);

/// Highest user address + 1 (52-bit virtual addresses at most).
const USER_END: u64 = 1 << 52;

/// Check the registers a thread is restored with; the error says what is
/// wrong (`FormatError::BadRegisters`).
pub fn check_user_regs(r: &UserRegs) -> Result<(), &'static str> {
    if r.pstate & !PSTATE_USER != 0 {
        return Err("pstate has bits a user thread cannot have");
    }
    if r.pc & 3 != 0 || r.pc >= USER_END {
        return Err("pc is not an aligned user address");
    }
    Ok(())
}

/// Make `r` registers the kernel refuses to return to user space with
/// (`pstate` EL1h), for the stub's `KCKPT_DEBUG_JUMP=fault`.
pub fn make_unresumable(r: &mut UserRegs) {
    r.pstate = 0x5;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pstate: u64, pc: u64) -> UserRegs {
        UserRegs {
            pstate,
            pc,
            ..Default::default()
        }
    }

    #[test]
    fn accepts_user_states() {
        for p in [0, 0x6000_0000, 0x8000_1000, 0x2000_0c00, 0x0300_0000] {
            assert_eq!(check_user_regs(&with(p, 0x40_1000)), Ok(()), "{p:#x}");
        }
    }

    #[test]
    fn refuses_other_levels_masks_and_single_step() {
        for p in [
            0x4,     // EL1t
            0x5,     // EL1h
            0x10,    // AArch32
            0x3c0,   // DAIF
            0x80,    // I
            1 << 21, // SS
            1 << 20, // IL
            1 << 22, // PAN
            1 << 40, // RES0
        ] {
            assert!(check_user_regs(&with(p, 0x40_1000)).is_err(), "{p:#x}");
        }
        assert!(check_user_regs(&with(0, 0x40_1002)).is_err());
        assert!(check_user_regs(&with(0, 1 << 52)).is_err());
        let mut r = with(0, 0x40_1000);
        make_unresumable(&mut r);
        assert!(check_user_regs(&r).is_err());
    }
}
