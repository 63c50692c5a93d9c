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
/// Most bytes of notes of the second image a tree process reads (its
/// outer image, or, in the process that ran the image, each sub-image in
/// turn): the window has no room for a second 64 MiB buffer.
pub const TREE_NOTES_SIZE: usize = 16 << 20;
static TREE_NOTES: StaticBuf<TREE_NOTES_SIZE> = StaticBuf::new();
static TREE_PHDRS: StaticBuf<{ MAX_PHNUM as usize * PHDR_SIZE }> = StaticBuf::new();

/// An open, validated image.
pub struct Image {
    /// The image path, NUL-terminated.
    pub path: &'static [u8],
    /// Its descriptor.
    pub fd: usize,
    /// File offset of this image inside the file: 0, or a sub-image's
    /// `image_offset` in a process tree. Every offset of the image's own
    /// records is relative to it ([`Image::at`]).
    pub base: u64,
    /// The validated notes.
    pub view: ImageView<'static>,
    /// Format 1.2: the checksum note (its metadata checksums verified).
    pub sums: Option<Sums<'static>>,
}

impl Image {
    /// The file offset of the image's own offset `offset`.
    pub fn at(&self, offset: u64) -> u64 {
        self.base + offset
    }
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

/// Open the image at `path`: its descriptor and length.
fn open(path: &[u8]) -> (usize, u64) {
    let fd = sys::open(path, linux_raw_sys::general::O_RDONLY)
        .unwrap_or_else(|e| Msg::new().s("cannot open ").push(path).errno(e).fail());
    let (_, _, len) =
        sys::fstat(fd).unwrap_or_else(|e| Msg::new().s("cannot stat ").push(path).errno(e).fail());
    (fd, len)
}

/// The image of `len` bytes at `base` in `fd`, read into `notes` and
/// `phdrs` and validated; `Err` on a format problem.
pub fn read_view<'a>(
    path: &[u8],
    fd: usize,
    base: u64,
    len: u64,
    notes: &'a mut [u8],
    phdrs: &'a mut [u8],
) -> Result<(ImageView<'a>, Option<Sums<'a>>, &'a [u8]), FormatError> {
    let mut ehdr = [0u8; EHDR_SIZE];
    let n = sys::pread(fd, &mut ehdr[..EHDR_SIZE.min(len as usize)], base)
        .unwrap_or_else(|e| Msg::new().s("cannot read ").push(path).errno(e).fail());
    let elf = parse_elf_header(&ehdr[..n], len, kckpt_arch::ELF_MACHINE)?;
    let table = phdrs
        .get_mut(..elf.phdrs_size())
        .ok_or(FormatError::Truncated)?;
    read_exact(path, fd, table, base + elf.phoff);
    let (offset, size) = note_segment(table, len)?;
    let notes = notes
        .get_mut(..size as usize)
        .ok_or(FormatError::BadField("notes too large for a process tree"))?;
    read_exact(path, fd, notes, base + offset);
    let notes: &'a [u8] = notes;
    // Every metadata checksum, then the structure.
    let (view, sums) = check_image(&ehdr, table, notes, kckpt_arch::ELF_MACHINE, len)?;
    // Pages shared with earlier processes of a tree lie before the image.
    kckpt_image::pagerefs::check_base(&view, base)?;
    Ok((view, sums, notes))
}

/// Open and validate the image at `path` (NUL-terminated); refuses with one
/// line and exit status 126 on any problem.
pub fn load(path: &'static [u8]) -> Image {
    load_whole(path, &NOTES, &PHDRS)
}

/// A tree process: the outer image (its tree tables), in the second set
/// of buffers, so that [`load_sub`] can use the first.
pub fn load_outer(path: &'static [u8]) -> Image {
    load_whole(path, &TREE_NOTES, &TREE_PHDRS)
}

/// [`load`] into the given buffers.
fn load_whole<const N: usize, const P: usize>(
    path: &'static [u8],
    notes: &'static StaticBuf<N>,
    phdrs: &'static StaticBuf<P>,
) -> Image {
    let (fd, len) = open(path);
    let (notes, phdrs) = take(path, notes, phdrs);
    let (view, sums, _) =
        read_view(path, fd, 0, len, notes, phdrs).unwrap_or_else(|e| format_error(path, e));
    Image {
        path,
        fd,
        base: 0,
        view,
        sums,
    }
}

/// A tree process: its own sub-image (`base`, `len` from its process
/// record), validated with its own length; also its notes (for the
/// binding checksum, [`crate::tree::check_sub`]).
pub fn load_sub(path: &'static [u8], base: u64, len: u64) -> (Image, &'static [u8]) {
    let (fd, _) = open(path);
    let (notes, phdrs) = take(path, &NOTES, &PHDRS);
    let (view, sums, notes) = read_view(path, fd, base, len, notes, phdrs)
        .unwrap_or_else(|e| crate::tree::sub_format_error(path, base, e));
    let img = Image {
        path,
        fd,
        base,
        view,
        sums,
    };
    (img, notes)
}

/// The second set of buffers, for checking sub-images one after another
/// in the process that ran the image.
pub fn tree_buffers(path: &[u8]) -> (&'static mut [u8], &'static mut [u8]) {
    take(path, &TREE_NOTES, &TREE_PHDRS)
}

fn take<const N: usize, const M: usize>(
    path: &[u8],
    notes: &'static StaticBuf<N>,
    phdrs: &'static StaticBuf<M>,
) -> (&'static mut [u8], &'static mut [u8]) {
    let notes = notes
        .take()
        .unwrap_or_else(|| refuse(path, "internal error: buffer reused"));
    let phdrs = phdrs
        .take()
        .unwrap_or_else(|| refuse(path, "internal error: buffer reused"));
    (notes, phdrs)
}
