//! x86_64: which ptrace register sets the dumper captures per thread and the
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
    // 512-byte fxsave area.
    RegsetSpec {
        owner: CORE_OWNER,
        note_type: nt::PRFPREG,
        max_size: 512,
        required: true,
    },
    // XSAVE area in standard format; its size follows XCR0 (AVX-512 ~2.7 KiB,
    // AMX ~11 KiB): 64 KiB is plenty.
    RegsetSpec {
        owner: LINUX_OWNER,
        note_type: nt::X86_XSTATE,
        max_size: 64 * 1024,
        required: true,
    },
];

/// Offset of the XCR0 mask in a `PTRACE_GETREGSET` NT_X86_XSTATE buffer:
/// word 0 of the fxsave area's software-reserved bytes (`sw_reserved`, at
/// 464), the kernel's `USER_XSTATE_XCR0_WORD`. (Signal frames differ: there
/// `sw_reserved` holds `_fpx_sw_bytes`, with `xfeatures` at +8.)
const SW_RESERVED_XCR0: usize = 464;

/// CPU features recorded in the image header from the captured register
/// sets: `(xcr0, xstate_size)` on x86_64 (`hwcap`s are read from auxv on
/// aarch64). Zero when the xstate set is absent.
pub fn cpu_features(note_type: u32, desc: &[u8]) -> Option<(u64, u32)> {
    if note_type != nt::X86_XSTATE {
        return None;
    }
    let xcr0 = desc.get(SW_RESERVED_XCR0..SW_RESERVED_XCR0 + 8)?;
    Some((
        u64::from_le_bytes(xcr0.try_into().ok()?),
        u32::try_from(desc.len()).ok()?,
    ))
}
