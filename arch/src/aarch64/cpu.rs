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
