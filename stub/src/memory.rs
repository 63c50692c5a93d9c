//! Replacing the stub's address space with the saved one: park the kernel's
//! special mappings in the window, unmap everything outside the window, put
//! vDSO/vvar at their saved addresses and rebuild every saved VMA.
#![allow(unsafe_code)] // Every step maps or unmaps memory by address.

use kckpt_image::{prot, vma_flags, vma_kind, VmaRecord};
use linux_raw_sys::general as g;

use crate::layout::{self, Specials, SCRATCH, SPECIAL_TEMP, USER_TOP, WINDOW_END, WINDOW_START};
use crate::load::Image;
use crate::report::Msg;
use crate::shmem::{self, Groups};
use crate::sys::{self, Errno};

/// A failure after the old address space is gone: what and where.
pub struct Failure {
    /// The operation.
    pub what: &'static str,
    /// The address it was applied to.
    pub addr: u64,
    /// The kernel's error.
    pub errno: Errno,
}

impl Failure {
    /// Report and exit (stderr is still the caller's).
    pub fn exit(&self, img: &Image) -> ! {
        Msg::new()
            .push(img.path)
            .s(": restore failed after the address space was replaced: ")
            .s(self.what)
            .s(" at ")
            .hex(self.addr)
            .errno(self.errno)
            .fail()
    }
}

/// The [`Failure`] of operation `what` at `addr`, from its error.
pub(crate) fn at(what: &'static str, addr: u64) -> impl FnOnce(Errno) -> Failure {
    move |errno| Failure { what, addr, errno }
}

/// Reserve the scratch half of the window so the kernel puts nothing else
/// there; called after validation.
pub fn reserve_scratch() -> Result<(), Failure> {
    let flags = g::MAP_PRIVATE | g::MAP_ANONYMOUS | g::MAP_FIXED_NOREPLACE | g::MAP_NORESERVE;
    // SAFETY: the scratch half is unused (FIXED_NOREPLACE fails otherwise).
    unsafe {
        sys::mmap(
            SCRATCH,
            WINDOW_END - SCRATCH,
            g::PROT_NONE,
            flags,
            usize::MAX,
            0,
        )
    }
    .map_err(at("reserving the stub's scratch window", SCRATCH as u64))?;
    Ok(())
}

/// Map `len` bytes of fresh read-write memory at `addr` inside the scratch
/// window and return it as a slice.
pub fn scratch_page(addr: usize, len: usize, shared: bool) -> Result<&'static mut [u8], Failure> {
    let kind = if shared {
        g::MAP_SHARED
    } else {
        g::MAP_PRIVATE
    };
    let flags = kind | g::MAP_ANONYMOUS | g::MAP_FIXED;
    debug_assert!(addr >= SCRATCH && addr + len <= WINDOW_END);
    // SAFETY: inside the stub's reserved scratch window, which only the
    // stub uses; each scratch address is used for one purpose.
    unsafe {
        sys::mmap(
            addr,
            len,
            g::PROT_READ | g::PROT_WRITE,
            flags,
            usize::MAX,
            0,
        )
    }
    .map_err(at("mapping scratch memory", addr as u64))?;
    // SAFETY: the mapping was just created, is `len` bytes, readable and
    // writable, and no other reference to it exists.
    Ok(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) })
}

/// Replace the whole address space outside the window with the image's.
pub fn replace_address_space(
    img: &Image,
    specials: &Specials,
    groups: &mut Groups,
    mmap_mode: bool,
) -> Result<(), Failure> {
    // Park vDSO and vvar in the window, keeping their relative placement.
    let base = specials.base();
    for s in &specials.list[..specials.count] {
        let temp = SPECIAL_TEMP + (s.start - base);
        // SAFETY: moves a kernel special mapping into the stub's scratch
        // window; the stub never calls into the vDSO.
        unsafe { sys::mremap_fixed(s.start, s.len, temp) }
            .map_err(at("moving the vDSO", s.start as u64))?;
    }
    // From here on the stub runs only on its own window (code, .bss stack,
    // buffers); everything outside it is the old process image (initial
    // stack, environment) that is no longer used. Under user emulation
    // (QEMU) the emulator shares the address space: only the guest's own
    // areas are unmapped (docs/RESTORE.md).
    if crate::layout::emulated() {
        crate::layout::guest_areas_outside_window(|start, len| {
            // SAFETY: one guest area outside the window (see above).
            unsafe { sys::munmap(start, len) }
        })
        .map_err(at("unmapping", 0))?;
    } else {
        // SAFETY: see above.
        unsafe {
            sys::munmap(0, WINDOW_START).map_err(at("unmapping", 0))?;
            sys::munmap(WINDOW_END, USER_TOP - WINDOW_END)
                .map_err(at("unmapping", WINDOW_END as u64))?;
        }
    }
    let vmas = img.view.vmas;
    // Index of the next run's first data chunk checksum (format 1.2).
    let shift = img.sums.as_ref().map_or(12, |s| s.chunk_shift());
    let mut chunk = 0u64;
    for (i, vma) in vmas.iter().enumerate() {
        let first_chunk = chunk;
        for run in img.view.runs_of(&vma) {
            chunk += kckpt_image::checksum::chunk_count(run.len, shift);
        }
        match vma.kind {
            vma_kind::VDSO | vma_kind::VVAR | vma_kind::VVAR_VCLOCK => {
                let cur = specials.find(vma.kind).ok_or(Failure {
                    what: "finding the vDSO",
                    addr: vma.start,
                    errno: Errno(linux_raw_sys::errno::ENOENT),
                })?;
                let temp = SPECIAL_TEMP + (cur.start - base);
                // SAFETY: moves the parked mapping to its saved address,
                // which validation checked lies outside the window.
                unsafe { sys::mremap_fixed(temp, cur.len, vma.start as usize) }
                    .map_err(at("moving the vDSO", vma.start))?;
            }
            vma_kind::VSYSCALL => {}
            _ if kckpt_image::sysv::is_attachment(&vma) => crate::sysv::attach(&vma)?,
            _ if shmem::handles(img, &vma) => {
                rebuild(img, &vma, Some(&mut *groups), false, mmap_mode, first_chunk)?
            }
            _ => {
                let prev = i.checked_sub(1).and_then(|p| vmas.get(p));
                let next = vmas.get(i + 1);
                let separate = prev.is_some_and(|p| could_merge(&p, &vma))
                    || next.is_some_and(|n| could_merge(&vma, &n));
                rebuild(img, &vma, None, separate, mmap_mode, first_chunk)?;
            }
        }
    }
    // Guard regions (1.3), once the contents are in place.
    const MADV_GUARD_INSTALL: u32 = 102;
    for guard in img.view.guards.iter() {
        sys::madvise(guard.start as usize, guard.len as usize, MADV_GUARD_INSTALL)
            .map_err(at("installing a guard region", guard.start))?;
    }
    Ok(())
}

fn anon_like(vma: &VmaRecord) -> bool {
    !layout::maps_file(vma)
}

/// Would the kernel merge these two neighbours if both were created fresh?
/// (It kept them apart in the saved process, usually because each had its
/// own anonymous pages.)
fn could_merge(a: &VmaRecord, b: &VmaRecord) -> bool {
    a.end == b.start
        && anon_like(a)
        && anon_like(b)
        && a.flags & vma_flags::SHARED == 0
        && b.flags & vma_flags::SHARED == 0
        && a.prot == b.prot
}

fn map_flags(vma: &VmaRecord) -> u32 {
    const MAP_DROPPABLE: u32 = 0x08;
    let mut flags = if vma.flags & vma_flags::SHARED != 0 {
        g::MAP_SHARED
    } else if vma.flags & vma_flags::DROPPABLE != 0 {
        MAP_DROPPABLE
    } else {
        g::MAP_PRIVATE
    };
    if anon_like(vma) {
        flags |= g::MAP_ANONYMOUS;
    }
    if vma.flags & vma_flags::GROWSDOWN != 0 {
        flags |= g::MAP_GROWSDOWN;
    }
    if vma.flags & vma_flags::NORESERVE != 0 {
        flags |= g::MAP_NORESERVE;
    }
    flags
}

fn open_backing_file(img: &Image, vma: &VmaRecord) -> Result<usize, Failure> {
    let mode = if layout::opens_for_write(vma) {
        g::O_RDWR
    } else {
        g::O_RDONLY
    };
    if vma.flags & vma_flags::GHOST != 0 {
        // The re-created deleted file (validation found its record).
        let mut p = kckpt_image::ghosts::find_ghost(&img.view, vma.dev, vma.inode)
            .and_then(|(i, _)| crate::ghosts::proc_path(i))
            .ok_or(Failure {
                what: "finding a re-created deleted file",
                addr: vma.start,
                errno: Errno(linux_raw_sys::errno::ENOENT),
            })?;
        return sys::open(p.c(), mode).map_err(at("opening a deleted mapped file", vma.start));
    }
    let mut buf = [0u8; 4096];
    let path = layout::vma_path(img, vma, &mut buf);
    sys::open(path, mode).map_err(at("opening a mapped file", vma.start))
}

/// Create one VMA with its contents. With `separate`, it is built in a
/// fresh spot and moved into place, so it gets its own anonymous pages and
/// the kernel does not merge it with a neighbour the saved process kept
/// apart. With `groups`, it is a view of a shared memory object
/// ([`shmem`]). `first_chunk` indexes the checksum of its first stored
/// chunk: runs that are read are checked as they are read.
fn rebuild(
    img: &Image,
    vma: &VmaRecord,
    groups: Option<&mut Groups>,
    separate: bool,
    mmap_mode: bool,
    first_chunk: u64,
) -> Result<(), Failure> {
    let len = (vma.end - vma.start) as usize;
    let shared = vma.flags & vma_flags::SHARED != 0;
    let has_runs = vma.run_count > 0;
    // Pages shared with an earlier process of a tree are read, never
    // mapped lazily.
    let has_shared = img
        .view
        .page_refs
        .iter()
        .any(|r| r.start >= vma.start && r.start < vma.end);
    let final_prot = vma.prot & (prot::READ | prot::WRITE | prot::EXEC);
    // The stack stays read: /proc/PID/cmdline and environ are read from it
    // with FOLL_ANON, which refuses file-backed pages.
    let lazy = mmap_mode && !shared && vma.kind != vma_kind::STACK;
    let write_first = ((has_runs && !lazy) || has_shared) && final_prot & prot::WRITE == 0;
    let init_prot = if write_first {
        final_prot | prot::READ | prot::WRITE
    } else {
        final_prot
    };
    let fd = if anon_like(vma) || groups.is_some() {
        usize::MAX
    } else {
        open_backing_file(img, vma)?
    };
    let page = u64::from(img.view.header.page_size) as usize;

    // Where to build it: in place, or between two guard pages elsewhere.
    let mut guard = 0usize;
    let addr = if separate {
        // SAFETY: a new mapping wherever the kernel finds room (never over
        // existing mappings: no MAP_FIXED).
        guard = unsafe {
            sys::mmap(
                0,
                len + 2 * page,
                g::PROT_NONE,
                g::MAP_PRIVATE | g::MAP_ANONYMOUS | g::MAP_NORESERVE,
                usize::MAX,
                0,
            )
        }
        .map_err(at("finding room for", vma.start))?;
        guard + page
    } else {
        vma.start as usize
    };
    let file_off = if fd == usize::MAX { 0 } else { vma.file_pgoff };
    let result = match groups {
        Some(groups) => groups.map(img, vma, init_prot).map(|()| addr),
        // SAFETY: `addr` is either the VMA's saved range (outside the
        // window, checked by validation; the old contents there were
        // unmapped) or the inside of the guard reservation made just above.
        None => unsafe {
            sys::mmap(
                addr,
                len,
                init_prot,
                map_flags(vma) | g::MAP_FIXED,
                fd,
                file_off,
            )
        }
        .map_err(at("mapping", vma.start)),
    };
    if fd != usize::MAX {
        sys::close(fd);
    }
    result?;
    // Before the contents: with MADV_HUGEPAGE set first, the pages written
    // below can be huge pages again.
    advise(vma, addr);

    let shift = img.sums.as_ref().map_or(12, |s| s.chunk_shift());
    let mut chunk = first_chunk;
    for run in img.view.runs_of(vma) {
        let first = chunk;
        chunk += kckpt_image::checksum::chunk_count(run.len, shift);
        let dest = addr + (run.start - vma.start) as usize;
        if lazy {
            let flags = g::MAP_PRIVATE | g::MAP_FIXED;
            // SAFETY: replaces pages inside the VMA just created with a
            // private copy-on-write mapping of the image's data.
            unsafe {
                sys::mmap(
                    dest,
                    run.len as usize,
                    final_prot,
                    flags,
                    img.fd,
                    img.at(run.offset),
                )
            }
            .map_err(at("mapping saved pages", run.start))?;
        } else {
            crate::data_check::read_run(img, vma, &run, dest, first)
                .map_err(at("reading saved pages", run.start))?;
        }
    }
    // Pages stored by an earlier process of the tree (format 1.6), read
    // from the outer file and checked.
    crate::data_check::read_shared_pages(img, vma, addr)
        .map_err(at("reading shared pages", vma.start))?;
    if separate && !has_runs && !has_shared && init_prot & prot::WRITE != 0 {
        // Give it its own anonymous pages, as it had when saved.
        // SAFETY: the first byte of a fresh writable anonymous mapping is
        // zero; writing zero keeps it so and only allocates the page.
        unsafe { core::ptr::write_volatile(addr as *mut u8, 0) };
    }
    if init_prot != final_prot {
        // SAFETY: the VMA belongs to the restored process; the stub does
        // not use it.
        unsafe { sys::mprotect(addr, len, final_prot) }.map_err(at("protecting", vma.start))?;
    }
    if separate {
        // SAFETY: moves the finished VMA to its saved range (outside the
        // window) and drops the two guard pages.
        unsafe {
            sys::mremap_fixed(addr, len, vma.start as usize).map_err(at("moving", vma.start))?;
            let _ = sys::munmap(guard, page);
            let _ = sys::munmap(guard + page + len, page);
        }
    }
    Ok(())
}

/// Re-apply the `madvise`/`mlock` flags the saved VMA had. They are hints:
/// failures (no mlock allowance, THP disabled) are ignored.
/// `start` is where the VMA is being built (the flags move with it).
fn advise(vma: &VmaRecord, start: usize) {
    let len = (vma.end - vma.start) as usize;
    let hints = [
        (vma_flags::DONTDUMP, g::MADV_DONTDUMP),
        (vma_flags::HUGEPAGE, g::MADV_HUGEPAGE),
        (vma_flags::NOHUGEPAGE, g::MADV_NOHUGEPAGE),
        (vma_flags::DONTCOPY, g::MADV_DONTFORK),
        (vma_flags::WIPEONFORK, g::MADV_WIPEONFORK),
        (vma_flags::SEQ_READ, g::MADV_SEQUENTIAL),
        (vma_flags::RAND_READ, g::MADV_RANDOM),
        (vma_flags::MERGEABLE, g::MADV_MERGEABLE),
    ];
    for (flag, advice) in hints {
        if vma.flags & flag != 0 {
            let _ = sys::madvise(start, len, advice);
        }
    }
    if vma.flags & vma_flags::LOCKONFAULT != 0 {
        let _ = crate::xsys::mlock_onfault(start, len);
    } else if vma.flags & vma_flags::LOCKED != 0 {
        let _ = sys::mlock(start, len);
    }
}
