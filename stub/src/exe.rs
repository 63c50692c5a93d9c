//! `/proc/PID/exe`: the restored process's executable link, which would
//! otherwise name `kckpt-stub`, the program the kernel executed.
//!
//! `PR_SET_MM_MAP` with an `exe_fd` changes it, for a caller with
//! `CAP_CHECKPOINT_RESTORE` or `CAP_SYS_ADMIN` in its user namespace (root,
//! or the stub inside the user namespace of `--new-pid-ns`), and only
//! while no mapping of the old executable remains (`EBUSY` otherwise). So
//! [`prepare`], before the address space changes, opens the saved
//! executable and replaces the stub's own file mappings (code, read-only
//! data, data) by an anonymous copy of them (`mremap` of the copy over the
//! originals: the code runs on from identical bytes);
//! `state::restore` then passes the descriptor ([`fd`]) and closes it
//! ([`done`]). Without the privilege nothing is done: the link stays the
//! stub, and a warning says so (`ids::report_new_ids`). A saved executable that cannot be opened or is
//! refused by the kernel is a warning naming it. x86_64 only: aarch64
//! would need its instruction cache synchronised for the copied code.
#![allow(unsafe_code)] // Replacing the stub's own mappings by copies.

use core::sync::atomic::{AtomicUsize, Ordering};

use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::sys;

/// The saved executable, open, or `usize::MAX`.
static FD: AtomicUsize = AtomicUsize::new(usize::MAX);

const CAP_SYS_ADMIN: u32 = 21;
const CAP_CHECKPOINT_RESTORE: u32 = 40;

/// The descriptor for `prctl_mm_map::exe_fd` (`u32::MAX`: none).
pub fn fd() -> u32 {
    match FD.load(Ordering::Relaxed) {
        usize::MAX => u32::MAX,
        fd => fd as u32,
    }
}

/// Close the executable once `PR_SET_MM_MAP` is done.
pub fn done() {
    let fd = FD.swap(usize::MAX, Ordering::Relaxed);
    if fd != usize::MAX {
        sys::close(fd);
    }
}

/// Warn that the link stays the stub's, and why.
pub fn warn(img: &Image, errno: sys::Errno) {
    let exe = img.view.string(img.view.mm.exe).unwrap_or(b"");
    Msg::new()
        .push(img.path)
        .s(": /proc/PID/exe stays kckpt-stub: cannot make it ")
        .push(exe)
        .errno(errno)
        .warn();
}

/// Does the restored process's executable link stay the stub's because
/// this process may not change it (and it would otherwise)?
pub fn stays_stub(img: &Image) -> bool {
    cfg!(target_arch = "x86_64")
        && !crate::layout::emulated()
        && FD.load(Ordering::Relaxed) == usize::MAX
        && crate::ksys::capget().effective & (1 << CAP_CHECKPOINT_RESTORE | 1 << CAP_SYS_ADMIN) == 0
        && img
            .view
            .string(img.view.mm.exe)
            .is_ok_and(|e| !e.is_empty())
}

/// Open the saved executable and detach the stub from its own file, when
/// this process may change its executable link (see the module
/// documentation).
pub fn prepare(img: &Image) {
    if !cfg!(target_arch = "x86_64") || crate::layout::emulated() {
        return;
    }
    let caps = crate::ksys::capget().effective;
    if caps & (1 << CAP_CHECKPOINT_RESTORE | 1 << CAP_SYS_ADMIN) == 0 {
        return;
    }
    let Ok(exe) = img.view.string(img.view.mm.exe) else {
        return;
    };
    let mut path = [0u8; 4096];
    if exe.is_empty() || exe.len() >= path.len() {
        return;
    }
    path[..exe.len()].copy_from_slice(exe);
    let fd = match sys::open(&path[..exe.len() + 1], g::O_RDONLY) {
        Ok(fd) => fd,
        Err(e) => return warn(img, e),
    };
    if let Err(e) = anonymize_own_mappings() {
        sys::close(fd);
        return warn(img, e);
    }
    FD.store(fd, Ordering::Relaxed);
}

extern "C" {
    /// The linker's start of the program (its ELF header, `WINDOW_START`).
    static __executable_start: u8;
    /// The linker's end of the initialised data: the last byte that comes
    /// from the file.
    static _edata: u8;
}

/// Replace the stub's file mappings (its ELF segments, from
/// `__executable_start` to the page of `_edata`) by one anonymous copy,
/// readable, writable and executable (the window is unmapped at the end).
/// Only the segments' pages are copied: the linker may leave an unmapped
/// page between two of them (the copy has zeros there).
fn anonymize_own_mappings() -> Result<(), sys::Errno> {
    use kckpt_image::read::{program_headers, EHDR_SIZE, PT_LOAD};
    const PAGE: usize = 4096;
    let start = core::ptr::addr_of!(__executable_start) as usize;
    let end = (core::ptr::addr_of!(_edata) as usize).next_multiple_of(PAGE);
    let len = end - start;
    // SAFETY: the ELF header and the program header table are at the
    // start of the first segment, mapped and readable for the program's
    // lifetime (the linker's `__executable_start` is the header).
    let table = unsafe {
        let ehdr = core::slice::from_raw_parts(start as *const u8, EHDR_SIZE);
        let at = |i: usize| ehdr[i] as usize | (ehdr[i + 1] as usize) << 8;
        let phoff = at(32) | at(34) << 16;
        core::slice::from_raw_parts((start + phoff) as *const u8, at(56) * at(54))
    };
    let flags = g::MAP_PRIVATE | g::MAP_ANONYMOUS;
    // SAFETY: a new mapping where the kernel chooses; replaces nothing.
    let copy = unsafe { sys::mmap(0, len, g::PROT_READ | g::PROT_WRITE, flags, usize::MAX, 0) }?;
    for ph in program_headers(table).filter(|p| p.p_type == PT_LOAD) {
        let from = (ph.p_vaddr as usize / PAGE * PAGE).max(start);
        let to = ((ph.p_vaddr + ph.p_memsz) as usize)
            .next_multiple_of(PAGE)
            .min(end);
        if from < to {
            // SAFETY: `from..to` is a loaded segment's pages, mapped and
            // readable; the copy has `len` bytes from `start` on.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    from as *const u8,
                    (copy + (from - start)) as *mut u8,
                    to - from,
                )
            };
        }
    }
    // SAFETY: the mremap replaces the original with the identical copy, so
    // the code, constants and data in use stay the same bytes at the same
    // addresses (x86_64 keeps instruction fetches coherent).
    unsafe {
        sys::mprotect(copy, len, g::PROT_READ | g::PROT_WRITE | g::PROT_EXEC)?;
        sys::mremap_fixed(copy, len, start)?;
    }
    Ok(())
}
