//! Fixtures shared by the writer's tests: a header, writing an image to a
//! temporary file and reading it back, the reader's check of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use kckpt_image::checksum::{check_image, Sums};
use kckpt_image::read::{note_segment, parse_elf_header, Notes, EHDR_SIZE, EM_X86_64};
use kckpt_image::{
    FormatError, ImageHeader, ImageView, FORMAT_MAJOR, FORMAT_MINOR, HEADER_MAGIC, NOTE_OWNER,
};
use kckpt_image_write::{ImageMetadata, ImageWriter};

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

/// A path for an image file of test `name` (of the test file `file`) in
/// the temporary directory.
pub fn temp_image(file: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kckpt-{file}-{}-{name}", std::process::id()))
}

/// Finish `writer` with `meta`, read the image at `path` back and remove
/// the file.
pub fn finish_and_read(writer: ImageWriter, meta: ImageMetadata, path: &Path) -> Vec<u8> {
    writer.finish(meta).unwrap();
    let bytes = fs::read(path).unwrap();
    fs::remove_file(path).unwrap();
    bytes
}

/// The reader's full check of an x86_64 image in memory (structure,
/// fields, metadata checksums): its view and its checksum table.
pub fn check(bytes: &[u8]) -> Result<(ImageView<'_>, Option<Sums<'_>>), FormatError> {
    let len = bytes.len() as u64;
    let elf = parse_elf_header(bytes, len, EM_X86_64)?;
    let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
    let (off, size) = note_segment(table, len)?;
    let notes = &bytes[off as usize..(off + size) as usize];
    check_image(&bytes[..EHDR_SIZE], table, notes, EM_X86_64, len)
}

/// Offset in the file of the descriptor of the first KCKPT note `kind`.
pub fn kckpt_desc_offset(bytes: &[u8], kind: u32) -> usize {
    let elf = parse_elf_header(bytes, bytes.len() as u64, EM_X86_64).unwrap();
    let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
    let (off, size) = note_segment(table, bytes.len() as u64).unwrap();
    let segment = &bytes[off as usize..(off + size) as usize];
    let note = Notes::new(segment)
        .map(Result::unwrap)
        .find(|n| n.is(NOTE_OWNER, kind))
        .unwrap();
    note.desc.as_ptr() as usize - bytes.as_ptr() as usize
}

/// The reader's parse of an x86_64 image in memory (structure and fields,
/// no checksums).
pub fn view(bytes: &[u8]) -> Result<ImageView<'_>, FormatError> {
    let len = bytes.len() as u64;
    let elf = parse_elf_header(bytes, len, EM_X86_64)?;
    let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
    let (off, size) = note_segment(table, len)?;
    ImageView::parse(&bytes[off as usize..(off + size) as usize], EM_X86_64, len)
}
