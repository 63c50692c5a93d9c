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
