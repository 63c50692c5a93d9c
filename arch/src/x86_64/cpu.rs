//! What this CPU can restore on x86_64: the XSAVE features the kernel
//! enabled (XCR0) and the size of the XSAVE area for them.
#![allow(unsafe_code)] // xgetbv.

/// XCR0, or 0 when the CPU has no XSAVE (then only x87/SSE via fxsave).
pub fn xsave_features() -> u64 {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    const OSXSAVE: u32 = 1 << 27;
    if leaf1.ecx & OSXSAVE == 0 {
        return 0;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: OSXSAVE is set, so xgetbv is enabled; it only reads XCR0.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Size in bytes of the standard-format XSAVE area for the enabled features
/// (CPUID 0xD.0 EBX), 512 without XSAVE.
pub fn xsave_size() -> u32 {
    if xsave_features() == 0 {
        return 512;
    }
    // Leaf 0xD exists when OSXSAVE is set.
    core::arch::x86_64::__cpuid_count(0xd, 0).ebx
}

/// The features of a saved process this CPU lacks, as the message names
/// them; `None` when everything is present.
pub fn missing_features(
    header: &kckpt_image::ImageHeader,
    _hwcap: u64,
    _hwcap2: u64,
) -> Option<&'static str> {
    let have = xsave_features() | 0x3; // x87 and SSE are always restorable
    if header.xcr0 & !have != 0 {
        return Some("the image uses CPU xstate features (XCR0) this CPU lacks");
    }
    if header.xstate_size > xsave_size().max(512) {
        return Some("the image's xstate area is larger than this CPU's");
    }
    None
}

/// XTILEDATA (AMX tiles): a dynamic feature a process must ask for.
const XTILEDATA: u64 = 1 << 18;
/// `arch_prctl(ARCH_REQ_XCOMP_PERM)`.
const ARCH_REQ_XCOMP_PERM: usize = 0x1023;

fn xstate_bv(fpstate: &[u8]) -> u64 {
    fpstate
        .get(512..520)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The features and the length of the saved XSAVE area to hand to
/// `rt_sigreturn`. The kernel falls back to restoring only x87/SSE when the
/// area is larger than the process's own XSAVE size, which leaves out
/// dynamic features (AMX tile data) it has not asked for; so unless the
/// saved tiles are in use they are left out, and the area ends after the
/// last remaining feature.
pub fn frame_fpstate(fpstate: &[u8], xcr0: u64) -> (u64, usize) {
    if fpstate.len() <= 512 {
        return (xcr0, fpstate.len());
    }
    let mut features = xcr0;
    if xstate_bv(fpstate) & XTILEDATA == 0 {
        features &= !XTILEDATA;
    }
    let mut end = 512 + 64; // legacy area + XSAVE header
    for bit in 2..63 {
        if features & (1 << bit) != 0 {
            let leaf = core::arch::x86_64::__cpuid_count(0xd, bit);
            // ECX bit 0 set: a supervisor state, never in a user area.
            if leaf.ecx & 1 == 0 {
                end = end.max(leaf.ebx as usize + leaf.eax as usize);
            }
        }
    }
    (features, end.min(fpstate.len()))
}

/// Ask for the dynamic XSAVE features the saved state uses (AMX tiles)
/// before `rt_sigreturn` loads them. Returns 0 or a negative errno.
pub fn enable_dynamic_features(fpstate: &[u8], xcr0: u64) -> isize {
    let (features, _) = frame_fpstate(fpstate, xcr0);
    if features & XTILEDATA == 0 {
        return 0;
    }
    let nr = linux_raw_sys::general::__NR_arch_prctl as usize;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) only grants this process the
    // right to use AMX; it touches no memory.
    unsafe { crate::x86_64::syscall::raw_syscall(nr, [ARCH_REQ_XCOMP_PERM, 18, 0, 0, 0, 0]) }
}
