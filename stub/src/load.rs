//! Opening the image and validating all of it (with `kckpt-image`'s reader)
//! into `.bss` buffers, before anything in the address space changes.

use kckpt_image::checksum::{check_image, Sums};
use kckpt_image::read::{
    note_segment, parse_elf_header, EHDR_SIZE, MAX_NOTES_SIZE, MAX_PHNUM, PHDR_SIZE,
};
use kckpt_image::{FormatError, ImageView};

use crate::report::Msg;
use crate::statics::StaticBuf;
use crate::sys;

static NOTES: StaticBuf<{ MAX_NOTES_SIZE as usize }> = StaticBuf::new();
static PHDRS: StaticBuf<{ MAX_PHNUM as usize * PHDR_SIZE }> = StaticBuf::new();

/// An open, validated image.
pub struct Image {
    /// The image path, NUL-terminated.
    pub path: &'static [u8],
    /// Its descriptor.
    pub fd: usize,
    /// The validated notes.
    pub view: ImageView<'static>,
    /// Format 1.2: the checksum note (its metadata checksums verified).
    pub sums: Option<Sums<'static>>,
}

/// `kckpt: PATH: <what>` and exit.
pub fn refuse(path: &[u8], what: &str) -> ! {
    Msg::new().push(path).s(": ").s(what).fail()
}

/// `kckpt: PATH: <the format error>` and exit.
pub fn format_error(path: &[u8], e: FormatError) -> ! {
    let mut m = Msg::new();
    m.push(path).s(": ");
    match e {
        FormatError::BadChecksum(which) => m
            .s("image is corrupt (checksum of ")
            .s(which)
            .s(" does not match)"),
        FormatError::BadField(what) => m.s("image is corrupt (").s(what).s(")"),
        FormatError::BadRegisters(what) => m.s("image is corrupt (registers: ").s(what).s(")"),
        _ => m.s(e.message()),
    };
    if let FormatError::UnsupportedVersion { major, minor } = e {
        m.s(" (image format ")
            .dec(major.into())
            .s(".")
            .dec(minor.into())
            .s(", this stub reads ")
            .dec(kckpt_image::FORMAT_MAJOR.into())
            .s(".")
            .dec(kckpt_image::FORMAT_MINOR.into())
            .s(")");
    }
    m.fail()
}

fn read_exact(img_path: &[u8], fd: usize, buf: &mut [u8], offset: u64) {
    match sys::pread(fd, buf, offset) {
        Ok(n) if n == buf.len() => {}
        Ok(_) => format_error(img_path, FormatError::Truncated),
        Err(e) => Msg::new().s("cannot read ").push(img_path).errno(e).fail(),
    }
}

/// Open and validate the image at `path` (NUL-terminated); refuses with one
/// line and exit status 126 on any problem.
pub fn load(path: &'static [u8]) -> Image {
    let fd = sys::open(path, linux_raw_sys::general::O_RDONLY)
        .unwrap_or_else(|e| Msg::new().s("cannot open ").push(path).errno(e).fail());
    let (_, _, len) =
        sys::fstat(fd).unwrap_or_else(|e| Msg::new().s("cannot stat ").push(path).errno(e).fail());
    let mut ehdr = [0u8; EHDR_SIZE];
    let n = sys::pread(fd, &mut ehdr, 0)
        .unwrap_or_else(|e| Msg::new().s("cannot read ").push(path).errno(e).fail());
    let elf = parse_elf_header(&ehdr[..n], len, kckpt_arch::ELF_MACHINE)
        .unwrap_or_else(|e| format_error(path, e));
    let phdrs = PHDRS
        .take()
        .unwrap_or_else(|| refuse(path, "internal error: buffer reused"));
    let table = &mut phdrs[..elf.phdrs_size()];
    read_exact(path, fd, table, elf.phoff);
    let (offset, size) = note_segment(table, len).unwrap_or_else(|e| format_error(path, e));
    let notes = NOTES
        .take()
        .unwrap_or_else(|| refuse(path, "internal error: buffer reused"));
    let notes = &mut notes[..size as usize];
    read_exact(path, fd, notes, offset);
    let notes: &'static [u8] = notes;
    // Every metadata checksum, then the structure.
    let (view, sums) = check_image(&ehdr, table, notes, kckpt_arch::ELF_MACHINE, len)
        .unwrap_or_else(|e| format_error(path, e));
    Image {
        path,
        fd,
        view,
        sums,
    }
}
