//! aarch64: which ptrace register sets the dumper captures per thread and the
//! notes they become (owner, type), and the CPU features read from them.

use kckpt_image::records::{nt, CORE_OWNER, LINUX_OWNER};

/// One register set read with `PTRACE_GETREGSET` and stored as a note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegsetSpec {
    /// Note owner (`CORE`, `LINUX`).
    pub owner: &'static [u8],
    /// Note type, also the `PTRACE_GETREGSET` regset number.
    pub note_type: u32,
    /// Buffer size to offer the kernel (it shortens the iovec to the real size).
    pub max_size: usize,
    /// The dumper refuses when the kernel does not provide this set.
    pub required: bool,
}

/// Register sets stored after NT_PRSTATUS, in note order.
pub const REGSETS: &[RegsetSpec] = &[
    // user_fpsimd_state: 32 x 128-bit V registers, fpsr, fpcr.
    RegsetSpec {
        owner: CORE_OWNER,
        note_type: nt::PRFPREG,
        max_size: 528,
        required: true,
    },
    RegsetSpec {
        owner: LINUX_OWNER,
        note_type: nt::ARM_TLS,
        max_size: 16,
        required: true,
    },
    RegsetSpec {
        owner: LINUX_OWNER,
        note_type: nt::ARM_SYSTEM_CALL,
        max_size: 4,
        required: true,
    },
    RegsetSpec {
        owner: LINUX_OWNER,
        note_type: nt::ARM_PAC_ENABLED_KEYS,
        max_size: 8,
        required: false,
    },
];

/// CPU features recorded in the image header from a captured register set:
/// none on aarch64 (HWCAPs come from the auxiliary vector).
pub fn cpu_features(_note_type: u32, _desc: &[u8]) -> Option<(u64, u32)> {
    None
}
