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
    render_both();
    // Sealed again (metadata checksums recomputed), so the checks behind
    // the checksums see the mutation too.
    if reseal(&file).is_some() {
        render_both();
    }
});

/// Recompute the metadata checksums of the file at `path()` written from
/// `file` (in place: only its checksum note changes).
fn reseal(file: &kckpt_fuzz::VirtualFile<'_>) -> Option<()> {
    use kckpt_image::read::{note_segment, parse_elf_header, EHDR_SIZE};
    use std::os::unix::fs::FileExt;
    let mut ehdr = [0u8; EHDR_SIZE];
    if file.read_at(&mut ehdr, 0) != EHDR_SIZE {
        return None;
    }
    let machine = u16::from_le_bytes([ehdr[18], ehdr[19]]);
    let elf = parse_elf_header(&ehdr, file.len, machine).ok()?;
    let mut phdrs = vec![0u8; elf.phdrs_size()];
    (file.read_at(&mut phdrs, elf.phoff) == phdrs.len()).then_some(())?;
    let (off, size) = note_segment(&phdrs, file.len).ok()?;
    let mut notes = vec![0u8; size as usize];
    (file.read_at(&mut notes, off) == notes.len()).then_some(())?;
    kckpt_image_write::reseal_parts(&ehdr, &phdrs, &mut notes).ok()?;
    let f = std::fs::OpenOptions::new().write(true).open(path()).ok()?;
    f.write_all_at(&notes, off).ok()
}

fn render_both() {
    for json in [false, true] {
        match kckpt::info::render(path(), json, false) {
            Ok(text) => {
                if json {
                    assert!(text.starts_with('{'), "JSON output: {text}");
                }
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "a two-line error: {e}"),
        }
    }
}
