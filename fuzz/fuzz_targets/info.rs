//! `kckpt info` (its library entry, `kckpt::info::render`, text and JSON)
//! on the image file an input stands for: no input may make it panic, hang
//! or crash, and every error is one line.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// The file the input is written to (sparse), one per fuzzing process.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("kckpt-fuzz-info-{}.kckpt", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let file = kckpt_fuzz::VirtualFile::new(data);
    if file.write_to(path()).is_err() {
        return;
    }
    for json in [false, true] {
        match kckpt::info::render(path(), json) {
            Ok(text) => {
                if json {
                    assert!(text.starts_with('{'), "JSON output: {text}");
                }
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "a two-line error: {e}"),
        }
    }
});
