//! Where things are: the stub's own address window, the kernel's special
//! mappings (`[vvar]`, `[vvar_vclock]`, `[vdso]`) of the stub and of the
//! image, and the checks that the saved layout can be rebuilt here.

use kckpt_image::{fnv1a64, vma_flags, vma_kind, VmaRecord};

use crate::load::{refuse, Image};
use crate::report::Msg;
use crate::statics::StaticBuf;
use crate::sys;

pub use kckpt_stub::window::{
    FRAME_LEN, MAX_THREADS, USER_TOP, WINDOW_END, WINDOW_LEN, WINDOW_START,
};
/// Start of the scratch half of the window.
pub const SCRATCH: usize = WINDOW_START + WINDOW_LEN / 2;
/// The tracer handshake page.
pub const HANDSHAKE_ADDR: usize = SCRATCH;
/// The final signal frame ([`FRAME_LEN`] bytes).
pub const FRAME_ADDR: usize = SCRATCH + 0x10_0000;
/// Where the current vDSO and vvar pages wait while the old address space
/// is unmapped.
pub const SPECIAL_TEMP: usize = SCRATCH + 0x100_0000;
/// Per-thread slots of the other threads (stack, start block, signal
/// frame), one after the other.
pub const THREADS_AREA: usize = SCRATCH + 0x200_0000;
/// Bytes of one thread slot: a 64 KiB stack, then a 64 KiB frame.
pub const THREAD_SLOT: usize = 0x2_0000;
const _: () = assert!(THREADS_AREA + (MAX_THREADS - 1) * THREAD_SLOT <= WINDOW_END);

/// A special mapping of the running stub.
#[derive(Clone, Copy, Debug, Default)]
pub struct Special {
    /// `vma_kind` value.
    pub kind: u32,
    /// Start address.
    pub start: usize,
    /// Length.
    pub len: usize,
}

/// The stub's own special mappings (at most vvar, vvar_vclock, vdso).
#[derive(Clone, Copy, Debug, Default)]
pub struct Specials {
    /// The mappings found.
    pub list: [Special; 4],
    /// How many.
    pub count: usize,
}

impl Specials {
    /// The mapping of `kind`, if present.
    pub fn find(&self, kind: u32) -> Option<Special> {
        self.list[..self.count]
            .iter()
            .copied()
            .find(|s| s.kind == kind)
    }

    /// Lowest start address (the group is moved as a block).
    pub fn base(&self) -> usize {
        self.list[..self.count]
            .iter()
            .map(|s| s.start)
            .min()
            .unwrap_or(0)
    }
}

static MAPS: StaticBuf<{ 64 << 10 }> = StaticBuf::new();

fn hex(s: &[u8]) -> Option<usize> {
    let mut v = 0usize;
    if s.is_empty() {
        return None;
    }
    for &c in s {
        let d = (c as char).to_digit(16)? as usize;
        v = v.checked_mul(16)?.checked_add(d)?;
    }
    Some(v)
}

/// Read a small file into `buf`; its length (0 when it cannot be read).
/// The `start-end` range at the head of a `/proc/PID/maps` line.
fn map_range(line: &[u8]) -> Option<(usize, usize)> {
    let range = line.split(|&c| c == b' ').next()?;
    let mut ends = range.split(|&c| c == b'-');
    Some((ends.next().and_then(hex)?, ends.next().and_then(hex)?))
}

/// Running under user-mode emulation (`qemu-aarch64` on an x86_64 host):
/// `/proc/sys/kernel/arch`, which QEMU passes through, names another
/// architecture than the stub's.
pub fn emulated() -> bool {
    let mut buf = [0u8; 32];
    let arch = sys::read_small(b"/proc/sys/kernel/arch\0", &mut buf);
    let arch = arch.strip_suffix(b"\n").unwrap_or(arch);
    !arch.is_empty() && arch != kckpt_arch::NAME.as_bytes()
}

static GUEST_MAPS: StaticBuf<{ 64 << 10 }> = StaticBuf::new();

/// Under emulation, unmapping everything outside the window would unmap
/// the emulator itself (the guest shares its address space, at guest base
/// 0): `each(start, len)` for the guest's own areas (QEMU's
/// `/proc/self/maps`) that lie outside the window.
pub fn guest_areas_outside_window(
    mut each: impl FnMut(usize, usize) -> sys::SysResult,
) -> sys::SysResult {
    let Some(buf) = GUEST_MAPS.take() else {
        return Err(sys::Errno(linux_raw_sys::errno::EBUSY));
    };
    let maps = sys::read_small(b"/proc/self/maps\0", buf);
    if maps.is_empty() {
        return Err(sys::Errno(linux_raw_sys::errno::EIO));
    }
    for line in maps.split(|&c| c == b'\n') {
        let Some((start, end)) = map_range(line) else {
            continue;
        };
        if end <= start || (start >= WINDOW_START && end <= WINDOW_END) {
            continue;
        }
        each(start, end - start)?;
    }
    Ok(0)
}

/// Read `/proc/self/maps` and find the special mappings.
pub fn current_specials(img: &Image) -> Specials {
    let buf = MAPS
        .take()
        .unwrap_or_else(|| refuse(img.path, "internal error: buffer reused"));
    let fd =
        sys::open(b"/proc/self/maps\0", linux_raw_sys::general::O_RDONLY).unwrap_or_else(|e| {
            Msg::new()
                .s("cannot read /proc/self/maps (is /proc mounted?)")
                .errno(e)
                .fail()
        });
    let mut len = 0;
    while len < buf.len() {
        match sys::pread(fd, &mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => Msg::new().s("cannot read /proc/self/maps").errno(e).fail(),
        }
    }
    sys::close(fd);
    let mut out = Specials::default();
    for line in buf[..len].split(|&c| c == b'\n') {
        let kind = if line.ends_with(b"[vdso]") {
            vma_kind::VDSO
        } else if line.ends_with(b"[vvar]") {
            vma_kind::VVAR
        } else if line.ends_with(b"[vvar_vclock]") {
            vma_kind::VVAR_VCLOCK
        } else {
            continue;
        };
        let Some((start, end)) = map_range(line) else {
            continue;
        };
        if out.count < out.list.len() && end > start {
            out.list[out.count] = Special {
                kind,
                start,
                len: end - start,
            };
            out.count += 1;
        }
    }
    out
}

fn is_special(kind: u32) -> bool {
    matches!(
        kind,
        vma_kind::VDSO | vma_kind::VVAR | vma_kind::VVAR_VCLOCK
    )
}

/// Check that the image's layout can be rebuilt on this machine: page size,
/// CPU features, the vDSO and every backing file (the thread count and the
/// stub's window: `kckpt_stub::verify`). Refuses with one line otherwise.
pub fn check(img: &Image, specials: &Specials, page_size: u64, hwcap: u64, hwcap2: u64) {
    let h = &img.view.header;
    if u64::from(h.page_size) != page_size {
        Msg::new()
            .push(img.path)
            .s(": saved with page size ")
            .dec(h.page_size.into())
            .s(", this machine uses ")
            .dec(page_size)
            .fail();
    }
    if let Some(what) = kckpt_arch::cpu::missing_features(h, hwcap, hwcap2) {
        refuse(img.path, what);
    }
    for vma in img.view.vmas.iter() {
        let (s, e) = (vma.start as usize, vma.end as usize);
        if is_special(vma.kind) {
            match specials.find(vma.kind) {
                Some(cur) if cur.len == e - s => {}
                _ => refuse(
                    img.path,
                    "this kernel's vDSO/vvar layout differs from the saving kernel's",
                ),
            }
        }
    }
    check_vdso(img, specials);
    check_files(img);
}

fn check_vdso(img: &Image, specials: &Specials) {
    let saved = img.view.vmas.iter().any(|v| v.kind == vma_kind::VDSO);
    let Some(vdso) = specials.find(vma_kind::VDSO) else {
        if saved {
            refuse(
                img.path,
                "this kernel maps no vDSO, the saved process had one",
            );
        }
        return;
    };
    if !saved || img.view.header.vdso_hash == 0 {
        return;
    }
    let mut bytes = [0u8; 64 << 10];
    if vdso.len > bytes.len() {
        refuse(img.path, "this kernel's vDSO is unexpectedly large");
    }
    let fd = sys::open(b"/proc/self/mem\0", linux_raw_sys::general::O_RDONLY)
        .unwrap_or_else(|e| Msg::new().s("cannot read /proc/self/mem").errno(e).fail());
    let got = sys::pread(fd, &mut bytes[..vdso.len], vdso.start as u64);
    sys::close(fd);
    if got != Ok(vdso.len) {
        refuse(img.path, "cannot read this kernel's vDSO");
    }
    if fnv1a64(&bytes[..vdso.len]) != img.view.header.vdso_hash {
        refuse(
            img.path,
            "the image was saved under another kernel (its vDSO differs from this one's)",
        );
    }
}

/// A VMA's path as a NUL-terminated string in `buf`.
pub fn vma_path<'b>(img: &Image, vma: &VmaRecord, buf: &'b mut [u8; 4096]) -> &'b [u8] {
    let name = img.view.string(vma.name).unwrap_or(b"");
    if name.is_empty() || name.len() >= buf.len() {
        refuse(img.path, "a saved file mapping has no usable path");
    }
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()] = 0;
    &buf[..name.len() + 1]
}

/// Whether the file of a mapping is opened read-write: a shared mapping
/// that is writable, or may be made writable (`MAYWRITE`, format 1.3: the
/// file was opened for writing).
pub fn opens_for_write(vma: &VmaRecord) -> bool {
    vma.flags & vma_flags::SHARED != 0
        && (vma.prot & kckpt_image::prot::WRITE != 0 || vma.flags & vma_flags::MAYWRITE != 0)
}

/// Whether the VMA is mapped from its file at restore.
pub fn maps_file(vma: &VmaRecord) -> bool {
    vma.kind == vma_kind::FILE && vma.flags & vma_flags::FILE_UNAVAILABLE == 0
}

/// Open every mapped file as the restore will (read-write for a writable
/// shared mapping), check it is the saved inode, and that no private
/// mapping starts, or has stored pages, past the end of the file (a page
/// there cannot be touched: SIGBUS). Mappings that only partly extend past
/// the end occur in real processes and stay allowed.
fn check_files(img: &Image) {
    let page = u64::from(img.view.header.page_size);
    let (mut last_name, mut last_write, mut size) = (b"".as_slice(), false, 0u64);
    for vma in img.view.vmas.iter() {
        if !maps_file(&vma) || vma.flags & vma_flags::GHOST != 0 {
            continue; // ghosts: re-created from the image
        }
        let name = img.view.string(vma.name).unwrap_or(b"");
        let shared = vma.flags & vma_flags::SHARED != 0;
        let write = opens_for_write(&vma);
        let mut buf = [0u8; 4096];
        let path = vma_path(img, &vma, &mut buf);
        if name != last_name || write != last_write {
            (last_name, last_write) = (name, write);
            let mode = if write {
                linux_raw_sys::general::O_RDWR
            } else {
                linux_raw_sys::general::O_RDONLY
            };
            let vanishing = kckpt_image::ghosts::find_ghost(&img.view, vma.dev, vma.inode)
                .filter(|(_, g)| g.flags & kckpt_image::ghost_flags::VANISHING != 0);
            let fd = match (sys::open(path, mode), vanishing) {
                (Ok(fd), _) => fd,
                (Err(e), Some((_, g))) if e.0 == linux_raw_sys::errno::ENOENT => {
                    // Re-created from the image (ghosts.rs).
                    size = g.size;
                    continue;
                }
                (Err(e), _) => Msg::new()
                    .push(img.path)
                    .s(": cannot open the mapped file ")
                    .push(path)
                    .errno(e)
                    .fail(),
            };
            let stat = sys::fstat(fd);
            sys::close(fd);
            // Compare the inode only: on overlay file systems the device in
            // /proc/PID/maps is the lower layer's, not the one stat() reports.
            match stat {
                Ok((_, ino, len)) if ino == vma.inode => size = len,
                _ => Msg::new()
                    .push(img.path)
                    .s(": the mapped file ")
                    .push(path)
                    .s(" changed since the checkpoint (other inode)")
                    .fail(),
            }
        }
        let eof = size.div_ceil(page) * page;
        let past = vma.file_pgoff >= eof
            || img.view.runs_of(&vma).any(|r| {
                let end = vma.file_pgoff + (r.start - vma.start) + r.len;
                end > eof
            });
        if !shared && past {
            Msg::new()
                .push(img.path)
                .s(": the mapped file ")
                .push(path)
                .s(" is shorter than its saved mapping")
                .fail();
        }
    }
}
