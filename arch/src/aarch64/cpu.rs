//! What this CPU can restore on aarch64: the saved AT_HWCAP/AT_HWCAP2 must
//! be a subset of this machine's.

/// The features of a saved process this CPU lacks, as the message names
/// them; `None` when everything is present.
pub fn missing_features(
    header: &kckpt_image::ImageHeader,
    hwcap: u64,
    hwcap2: u64,
) -> Option<&'static str> {
    if header.hwcap & !hwcap != 0 || header.hwcap2 & !hwcap2 != 0 {
        return Some("the image uses CPU features (HWCAP) this CPU lacks");
    }
    None
}

/// The features and the length of the saved FP state for the frame: all of
/// it on aarch64.
pub fn frame_fpstate(fpstate: &[u8], xcr0: u64) -> (u64, usize) {
    (xcr0, fpstate.len())
}

/// Nothing to ask for on aarch64 (SVE/SME state is not saved yet).
pub fn enable_dynamic_features(_fpstate: &[u8], _xcr0: u64) -> isize {
    0
}
