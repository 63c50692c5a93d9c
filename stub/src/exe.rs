//! `/proc/PID/exe`: the restored process's executable link, which would
//! otherwise name `kckpt-stub`, the program the kernel executed.
//!
//! `PR_SET_MM_MAP` with an `exe_fd` changes it, for a caller with
//! `CAP_CHECKPOINT_RESTORE` or `CAP_SYS_ADMIN` in its user namespace (root,
//! or the stub inside the user namespace of `--new-pid-ns`), and only
//! while no mapping of the old executable remains (`EBUSY` otherwise). So
//! [`prepare`], before the address space changes, opens the saved
//! executable and replaces each of the stub's own file mappings (code,
//! read-only data, data) by an anonymous copy of itself (`mremap` of the
//! copy over the original: the code runs on from identical bytes);
//! `state::restore` then passes the descriptor ([`fd`]) and closes it
//! ([`done`]). Without the privilege nothing is done: the link stays the
//! stub (documented). A saved executable that cannot be opened or is
//! refused by the kernel is a warning naming it. x86_64 only: aarch64
//! would need its instruction cache synchronised for the copied code.
#![allow(unsafe_code)] // Replacing the stub's own mappings by copies.

use core::sync::atomic::{AtomicUsize, Ordering};

use linux_raw_sys::general as g;

use crate::layout::{SCRATCH, WINDOW_START};
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

/// Replace every file mapping in the lower half of the stub's window (its
/// ELF segments) by an anonymous copy.
fn anonymize_own_mappings() -> Result<(), sys::Errno> {
    let mut buf = [0u8; 16 << 10];
    let fd = sys::open(b"/proc/self/maps\0", g::O_RDONLY)?;
    let mut len = 0;
    while len < buf.len() {
        match crate::ksys::read(fd, &mut buf[len..]) {
            Ok(n) if n > 0 => len += n,
            _ => break,
        }
    }
    sys::close(fd);
    for line in buf[..len].split(|&c| c == b'\n') {
        let mut f = line.split(|&c| c == b' ').filter(|s| !s.is_empty());
        let (Some(range), Some(perms), _, _, Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let mut ends = range.split(|&c| c == b'-');
        let (Some(start), Some(end)) = (ends.next().and_then(hex), ends.next().and_then(hex))
        else {
            continue;
        };
        if start < WINDOW_START || end > SCRATCH || end <= start || inode == b"0" {
            continue;
        }
        let prot = |i: usize, bit: u32| if perms.get(i) != Some(&b'-') { bit } else { 0 };
        let prot = prot(0, g::PROT_READ) | prot(1, g::PROT_WRITE) | prot(2, g::PROT_EXEC);
        anonymize(start, end - start, prot)?;
    }
    Ok(())
}

fn hex(s: &[u8]) -> Option<usize> {
    let mut v = 0usize;
    for &c in s {
        v = v.checked_mul(16)? + (c as char).to_digit(16)? as usize;
    }
    Some(v)
}

/// Replace `[start, start + len)` by an anonymous copy with `prot`.
fn anonymize(start: usize, len: usize, prot: u32) -> Result<(), sys::Errno> {
    let flags = g::MAP_PRIVATE | g::MAP_ANONYMOUS;
    // SAFETY: a new mapping where the kernel chooses; replaces nothing.
    let copy = unsafe { sys::mmap(0, len, g::PROT_READ | g::PROT_WRITE, flags, usize::MAX, 0) }?;
    // SAFETY: `start..start+len` is one of this program's readable ELF
    // mappings (maps says so); `copy` is the fresh mapping of `len` bytes.
    // The mremap replaces the original with the identical copy, so the
    // code, constants and data in use stay the same bytes at the same
    // addresses (x86_64 keeps instruction fetches coherent).
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, copy as *mut u8, len);
        sys::mprotect(copy, len, prot)?;
        sys::mremap_fixed(copy, len, start)?;
    }
    Ok(())
}
