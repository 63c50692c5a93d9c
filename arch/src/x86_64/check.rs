//! x86_64: which saved registers a restored thread may resume with.
//!
//! `rt_sigreturn` loads the frame's `cs`, `ss` and `eflags` (with
//! `UC_STRICT_RESTORE_SS`, the stub's frames keep `ss` as saved): a selector
//! the CPU rejects makes the return to user space fault again and again,
//! and the trap flag makes the first restored instruction raise SIGTRAP.
//! `PTRACE_GETREGS` of 64-bit processes shows `cs` 0x33, `ss` 0x2b,
//! `ds`/`es`/`fs`/`gs` 0 and `eflags` 0x202 or 0x246-like values (bit 1 and
//! IF always set), which is what these checks accept.

use super::regs::UserRegs;

/// `__USER_CS`: the 64-bit user code segment.
pub const USER_CS: u64 = 0x33;
/// `__USER_DS`: the user data (and stack) segment.
pub const USER_DS: u64 = 0x2b;

/// eflags bits a user thread may have: CF PF AF ZF SF DF OF, AC, ID, RF,
/// the always-one bit 1 and IF. Never TF (bit 8), NT, IOPL, VM, VIF, VIP.
pub const EFLAGS_USER: u64 = 0x1
    | 0x2
    | 0x4
    | 0x10
    | 0x40
    | 0x80
    | 0x200
    | 0x400
    | 0x800
    | (1 << 16)
    | (1 << 18)
    | (1 << 21);
/// Bits every user thread has set: bit 1 (reserved, always one) and IF.
pub const EFLAGS_FIXED: u64 = 0x2 | 0x200;

/// Highest user address + 1 (47-bit, 4-level paging; the stub refuses
/// memory above it too).
const USER_END: u64 = 1 << 47;

/// A data segment selector a user thread may hold: null (0-3) or one of
/// the GDT's user descriptors with RPL 3: 32-bit code (0x23), data (0x2b),
/// 64-bit code (0x33), the three TLS entries (0x63, 0x6b, 0x73).
fn user_data_selector(sel: u64) -> bool {
    sel <= 3 || matches!(sel, 0x23 | 0x2b | 0x33 | 0x63 | 0x6b | 0x73)
}

/// Check the registers a thread is restored with; the error says what is
/// wrong (`FormatError::BadRegisters`).
pub fn check_user_regs(r: &UserRegs) -> Result<(), &'static str> {
    if r.cs != USER_CS || r.ss != USER_DS {
        return Err("cs or ss is not the 64-bit user segment");
    }
    if ![r.ds, r.es, r.fs, r.gs].into_iter().all(user_data_selector) {
        return Err("ds, es, fs or gs is not a user selector");
    }
    if r.eflags & !EFLAGS_USER != 0 || r.eflags & EFLAGS_FIXED != EFLAGS_FIXED {
        return Err("eflags has bits a user thread cannot have");
    }
    if r.rip >= USER_END {
        return Err("rip is not a user address");
    }
    Ok(())
}

/// Make `r` registers the kernel cannot return to user space with: the
/// stack segment 0x2f (an LDT selector, the one-bit corruption of 0x2b that
/// issue 7 found), for the stub's `KCKPT_DEBUG_JUMP=fault`.
pub fn make_unresumable(r: &mut UserRegs) {
    r.ss = 0x2f;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> UserRegs {
        UserRegs {
            cs: 0x33,
            ss: 0x2b,
            eflags: 0x246,
            rip: 0x5555_5555_1000,
            ..Default::default()
        }
    }

    #[test]
    fn accepts_what_ptrace_shows() {
        for eflags in [0x202, 0x206, 0x246, 0x10246, 0x200a97, 0x40202] {
            let r = UserRegs { eflags, ..good() };
            assert_eq!(check_user_regs(&r), Ok(()), "{eflags:#x}");
        }
        let r = UserRegs {
            fs: 0x63,
            gs: 0x2b,
            ds: 0x2b,
            es: 3,
            ..good()
        };
        assert_eq!(check_user_regs(&r), Ok(()));
    }

    #[test]
    fn refuses_bad_selectors_and_flags() {
        let bad = [
            UserRegs { ss: 0x2f, ..good() },
            UserRegs { ss: 0, ..good() },
            UserRegs { cs: 0x23, ..good() },
            UserRegs { cs: 0x10, ..good() },
            UserRegs {
                fs: 0x1234,
                ..good()
            },
            UserRegs { gs: 0x2f, ..good() },
            UserRegs { ds: 0x10, ..good() },
            UserRegs {
                eflags: 0x346,
                ..good()
            }, // TF
            UserRegs {
                eflags: 0x4246,
                ..good()
            }, // NT
            UserRegs {
                eflags: 0x3246,
                ..good()
            }, // IOPL 3
            UserRegs {
                eflags: 0x20246,
                ..good()
            }, // VM
            UserRegs {
                eflags: 0x80246,
                ..good()
            }, // VIF
            UserRegs {
                eflags: 0x100246,
                ..good()
            }, // VIP
            UserRegs {
                eflags: 0x44,
                ..good()
            }, // bit 1 and IF clear
            UserRegs {
                rip: 1 << 47,
                ..good()
            },
        ];
        for r in bad {
            assert!(check_user_regs(&r).is_err(), "{r:x?}");
        }
        let mut r = good();
        make_unresumable(&mut r);
        assert!(check_user_regs(&r).is_err());
    }
}
