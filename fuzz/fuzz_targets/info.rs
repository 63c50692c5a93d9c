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
    let mut sub_pid = None;
    for json in [false, true] {
        match kckpt::info::render(path(), json, false) {
            Ok(text) => {
                if json {
                    assert!(text.starts_with('{'), "JSON output: {text}");
                    sub_pid = second_pid(&text);
                }
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "a two-line error: {e}"),
        }
    }
    // A process tree: another process's details, and its extraction.
    if let Some(pid) = sub_pid {
        if let Err(e) = kckpt::info::render_process(path(), false, false, Some(pid)) {
            assert!(!e.to_string().contains('\n'), "a two-line error: {e}");
        }
        let out = path().with_extension("extracted");
        if let Err(e) = kckpt::extract::extract(path(), pid, &out) {
            assert!(!e.to_string().contains('\n'), "a two-line error: {e}");
        }
        let _ = std::fs::remove_file(&out);
    }
}

/// The pid of the second process of the tree `kckpt info --json` printed.
fn second_pid(json: &str) -> Option<u32> {
    let at = json.find("\"processes\"")?;
    let rest = &json[at..];
    let second = rest.match_indices("\"pid\": ").nth(1)?.0;
    let digits: String = rest[second + 7..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
