//! The image reader as `kckpt-stub` uses it (see `kckpt_fuzz::stub_reads`):
//! no input may make it panic, hang or crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = kckpt_fuzz::VirtualFile::new(data);
    let _ = kckpt_fuzz::stub_reads(&file);
});
