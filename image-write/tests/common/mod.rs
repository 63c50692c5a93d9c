//! Fixtures shared by the writer's tests.
#![allow(dead_code)]

use kckpt_image::read::EM_X86_64;
use kckpt_image::{ImageHeader, FORMAT_MAJOR, FORMAT_MINOR, HEADER_MAGIC};

/// The header of a small x86_64 image of the current format (4 KiB pages,
/// x87/SSE/AVX state, kernel release "6.18"); tests change what they test
/// with `..x86_64_header()`.
pub fn x86_64_header() -> ImageHeader {
    let mut kernel_release = [0u8; 64];
    kernel_release[..4].copy_from_slice(b"6.18");
    ImageHeader {
        magic: HEADER_MAGIC,
        format_major: FORMAT_MAJOR,
        format_minor: FORMAT_MINOR,
        machine: EM_X86_64,
        reserved0: 0,
        page_size: 4096,
        flags: 0,
        pid: 1234,
        thread_count: 0,
        xcr0: 7,
        xstate_size: 832,
        reserved1: 0,
        hwcap: 0,
        hwcap2: 0,
        vdso_hash: 0,
        created_unix: 1,
        kernel_release,
        reserved: [0; 4],
    }
}
