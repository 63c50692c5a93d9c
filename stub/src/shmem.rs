//! Shared memory objects whose file cannot be reopened: shared anonymous
//! memory (`/dev/zero (deleted)` in maps), memfds (`/memfd:NAME (deleted)`),
//! and shared mappings of deleted files or SysV segments. Their VMAs are
//! grouped by the saved (device, inode): each group becomes one new object,
//! so VMAs that shared pages in the saved process share them again.
//!
//! - memfd: `memfd_create(NAME)` sized to cover every VMA of the group, each
//!   VMA mapped from it at its saved offset (shared or private, as saved);
//! - the others: one `MAP_SHARED|MAP_ANONYMOUS` area (the "base") at a
//!   place no saved VMA uses, each VMA a second mapping of it made with
//!   `mremap(base + offset, 0, len)`, the base unmapped after the group's
//!   last VMA. The object keeps the name `/dev/zero (deleted)`.
//!
//! A group of shared anonymous memory that is also mapped privately (1.3:
//! `/dev/zero (deleted)` opened through `/proc/PID/map_files` and mapped
//! `MAP_PRIVATE`) is a memfd named `kckpt-shmem` instead (an anonymous
//! area can be mapped privately only through a descriptor): the private
//! VMA sees the object's pages it has not written, as before.
//!
//! Stored pages are then written through each VMA (they land in the object;
//! those of a private VMA are its own copies).
//!
//! In a process tree (format 1.4), an object several processes use is a
//! `MEMORY` slot ([`Groups::tree_slots`]): its holder creates it as one
//! memfd of the slot's size at the slot descriptor before it forks its
//! children (or copies there its own restored descriptor of that memfd),
//! and every process whose group has the slot's (device, inode) maps its
//! VMAs from the inherited slot instead of a new object of its own. All of
//! them write their stored pages before the tree's barrier.
#![allow(unsafe_code)] // Maps memory by address.

use kckpt_image::{prot, vma_flags, vma_kind, VmaRecord};
use linux_raw_sys::general as g;

use crate::layout::{WINDOW_END, WINDOW_START};
use crate::load::{refuse, Image};
use crate::memory::Failure;
use crate::sys::{self, Errno};
use crate::tree::Tree;
use crate::xsys;

const F_DUPFD_CLOEXEC: u32 = 1030;

/// Most shared objects an image may have.
const MAX_GROUPS: usize = 64;
const MEMFD_PREFIX: &[u8] = b"/memfd:";
const DELETED: &[u8] = b" (deleted)";

/// Is `vma` restored here (rather than by `memory::rebuild`)?
pub fn handles(img: &Image, vma: &VmaRecord) -> bool {
    if vma.kind != vma_kind::FILE || vma.flags & vma_flags::FILE_UNAVAILABLE == 0 {
        return false;
    }
    vma.flags & vma_flags::SHARED != 0 || memfd_name(img, vma).is_some() || private_shmem(img, vma)
}

/// A private mapping of shared anonymous memory (`/dev/zero (deleted)`).
fn private_shmem(img: &Image, vma: &VmaRecord) -> bool {
    vma.flags & vma_flags::SHARED == 0 && img.view.string(vma.name).ok() == Some(SHMEM_NAME)
}

const SHMEM_NAME: &[u8] = b"/dev/zero (deleted)";

/// `NAME` of `/memfd:NAME (deleted)`.
fn memfd_name(img: &Image, vma: &VmaRecord) -> Option<&'static [u8]> {
    let name = img.view.string(vma.name).ok()?;
    name.strip_prefix(MEMFD_PREFIX)?.strip_suffix(DELETED)
}

#[derive(Clone, Copy, Default)]
struct Group {
    dev: u64,
    inode: u64,
    /// Bytes the object must have: the largest end offset of its VMAs.
    size: u64,
    /// VMAs not restored yet.
    left: u32,
    memfd: bool,
    /// The memfd, or the base address of the shared anonymous area.
    handle: usize,
    created: bool,
}

/// The shared objects of an image.
pub struct Groups {
    list: [Group; MAX_GROUPS],
    count: usize,
}

impl Groups {
    /// Group the image's shared-object VMAs; refuses (before anything
    /// changes) when there are too many or a name is unusable.
    pub fn new(img: &Image) -> Groups {
        let mut out = Groups {
            list: [Group::default(); MAX_GROUPS],
            count: 0,
        };
        for vma in img.view.vmas.iter() {
            if !handles(img, &vma) {
                continue;
            }
            let end = vma
                .file_pgoff
                .checked_add(vma.end - vma.start)
                .unwrap_or_else(|| refuse(img.path, "image is corrupt (bad file offset)"));
            let memfd = memfd_name(img, &vma).is_some();
            if memfd && memfd_name(img, &vma).map_or(0, <[u8]>::len) > 249 {
                refuse(img.path, "a saved memfd name is too long");
            }
            let i = match out.find(vma.dev, vma.inode) {
                Some(i) => i,
                None => {
                    if out.count == MAX_GROUPS {
                        refuse(img.path, "too many shared memory objects (more than 64)");
                    }
                    out.list[out.count] = Group {
                        dev: vma.dev,
                        inode: vma.inode,
                        memfd,
                        ..Group::default()
                    };
                    out.count += 1;
                    out.count - 1
                }
            };
            let grp = &mut out.list[i];
            grp.memfd |= private_shmem(img, &vma);
            grp.size = grp.size.max(end);
            grp.left += 1;
        }
        out
    }

    /// A tree process, after its descriptors are restored and before it
    /// forks its children: create the `MEMORY` slots it holds, then take
    /// the slot of every group that is one (a close-on-exec copy, closed
    /// after the group's last VMA). Fails with one line.
    pub fn tree_slots(&mut self, tree: &Tree, img: &Image) {
        let base = tree.slot_base() as usize;
        for (k, s) in tree.outer.tree_slots.iter().enumerate() {
            if s.kind != kckpt_image::tree::slot_kind::MEMORY {
                continue;
            }
            let fd = base + k;
            if s.holder == tree.index {
                if let Err(e) = create_slot(img, s.inode, s.size, fd) {
                    slot_fail(img, k, "cannot create the shared memory", e);
                }
            }
            let Some(i) = self.find(s.dev, s.inode) else {
                continue;
            };
            // Above every fixed descriptor of the tree restore (slots,
            // barrier, external copies): a lower free number may be a slot
            // created next, or one closed after the children are forked.
            let above = crate::tree::kept_end(tree.barrier_base());
            match sys::fcntl(fd, F_DUPFD_CLOEXEC, above as usize) {
                Ok(copy) => {
                    let grp = &mut self.list[i];
                    grp.memfd = true;
                    grp.handle = copy;
                    grp.created = true;
                }
                Err(e) => slot_fail(img, k, "the shared memory is not inherited", e),
            }
        }
    }

    fn find(&self, dev: u64, inode: u64) -> Option<usize> {
        self.list[..self.count]
            .iter()
            .position(|g| g.dev == dev && g.inode == inode)
    }

    /// Map `vma` at its saved address from its group's object (creating
    /// the object first) with protection `init_prot`.
    pub fn map(&mut self, img: &Image, vma: &VmaRecord, init_prot: u32) -> Result<(), Failure> {
        let at = |what: &'static str| {
            move |errno: Errno| Failure {
                what,
                addr: vma.start,
                errno,
            }
        };
        let i = self.find(vma.dev, vma.inode).ok_or(Failure {
            what: "finding a shared memory object",
            addr: vma.start,
            errno: Errno(linux_raw_sys::errno::ENOENT),
        })?;
        let len = (vma.end - vma.start) as usize;
        if !self.list[i].created {
            let restored = img.view.fds.iter().find(|r| {
                r.kind == kckpt_image::fd_kind::MEMFD
                    && r.dup_of == kckpt_image::FD_NO_DUP
                    && r.args[3] != 0
                    && r.args[3] == vma.inode
            });
            self.list[i].handle = if let (true, Some(r)) = (self.list[i].memfd, restored) {
                // The memfd a descriptor holds (restored with its content):
                // one object for the descriptor and the areas.
                sys::fcntl(r.fd as usize, F_DUPFD_CLOEXEC, 0)
                    .map_err(at("sharing a restored memfd"))?
            } else if self.list[i].memfd {
                let mut name = [0u8; 256];
                let n = memfd_name(img, vma).unwrap_or(b"kckpt-shmem");
                name[..n.len()].copy_from_slice(n);
                let fd = sys::memfd_create(&name[..n.len() + 1], g::MFD_CLOEXEC)
                    .map_err(at("creating a memfd"))?;
                sys::ftruncate(fd, self.list[i].size).map_err(at("sizing a memfd"))?;
                fd
            } else {
                base_area(img, self.list[i].size as usize).map_err(at("mapping shared memory"))?
            };
            self.list[i].created = true;
        }
        let grp = &mut self.list[i];
        if grp.memfd {
            let kind = if vma.flags & vma_flags::SHARED != 0 {
                g::MAP_SHARED
            } else {
                g::MAP_PRIVATE
            };
            // SAFETY: the VMA's saved range, outside the window (validated),
            // whose old contents were unmapped.
            unsafe {
                sys::mmap(
                    vma.start as usize,
                    len,
                    init_prot,
                    kind | g::MAP_FIXED,
                    grp.handle,
                    vma.file_pgoff,
                )
            }
            .map_err(at("mapping a memfd"))?;
        } else {
            let from = grp.handle + vma.file_pgoff as usize;
            // SAFETY: the VMA's saved range, as above; `from` lies in the
            // base area, which covers every VMA of the group.
            unsafe { xsys::mremap_duplicate(from, len, vma.start as usize) }
                .map_err(at("mapping shared memory"))?;
            if init_prot != prot::READ | prot::WRITE {
                // SAFETY: the VMA just created belongs to the restored process.
                unsafe { sys::mprotect(vma.start as usize, len, init_prot) }
                    .map_err(at("protecting"))?;
            }
        }
        grp.left -= 1;
        if grp.left == 0 {
            if grp.memfd {
                sys::close(grp.handle);
            } else {
                // SAFETY: the base area is the stub's own; every VMA of the
                // group now maps the object itself.
                let _ = unsafe { sys::munmap(grp.handle, grp.size as usize) };
            }
        }
        Ok(())
    }
}

/// A read-write shared anonymous area of `size` bytes in a range that no
/// saved VMA uses (so later VMAs never land on it) and outside the window.
fn base_area(img: &Image, size: usize) -> Result<usize, Errno> {
    let page = img.view.header.page_size as usize;
    let size = size.next_multiple_of(page);
    let free = |start: usize| {
        let end = start + size;
        !(start < WINDOW_END && end > WINDOW_START)
            && img
                .view
                .vmas
                .iter()
                .all(|v| end <= v.start as usize || start >= v.end as usize)
    };
    // Candidates: right after each saved VMA, from the top down, above 4 GiB.
    let mut last = Err(Errno(linux_raw_sys::errno::ENOMEM));
    let vmas = img.view.vmas;
    for v in (0..vmas.len()).rev().filter_map(|i| vmas.get(i)) {
        let start = (v.end as usize).next_multiple_of(page);
        if start < (1 << 32) || start + size > crate::layout::USER_TOP || !free(start) {
            continue;
        }
        let flags = g::MAP_SHARED | g::MAP_ANONYMOUS | g::MAP_FIXED_NOREPLACE;
        // SAFETY: FIXED_NOREPLACE never replaces an existing mapping.
        last = unsafe {
            sys::mmap(
                start,
                size,
                g::PROT_READ | g::PROT_WRITE,
                flags,
                usize::MAX,
                0,
            )
        };
        if last.is_ok() {
            return last;
        }
    }
    last
}

/// The holder's `MEMORY` slot at descriptor `at`: its own restored
/// descriptor of that memfd (inode `inode`) when it has one, else a new
/// memfd of `size` bytes, named as its own VMAs of the object name it
/// (`kckpt-shmem` when it maps none or they are not memfds). Inherited
/// across `execve` by the children.
fn create_slot(img: &Image, inode: u64, size: u64, at: usize) -> Result<(), Errno> {
    let restored = img.view.fds.iter().find(|r| {
        r.kind == kckpt_image::fd_kind::MEMFD
            && r.dup_of == kckpt_image::FD_NO_DUP
            && r.args[3] == inode
    });
    if let Some(r) = restored {
        sys::dup3(r.fd as usize, at, 0)?;
        return Ok(());
    }
    let mut name = [0u8; 256];
    let n = img
        .view
        .vmas
        .iter()
        .filter(|v| v.inode == inode)
        .find_map(|v| memfd_name(img, &v))
        .filter(|n| n.len() <= 249)
        .unwrap_or(b"kckpt-shmem");
    name[..n.len()].copy_from_slice(n);
    let fd = sys::memfd_create(&name[..n.len() + 1], g::MFD_CLOEXEC)?;
    sys::ftruncate(fd, size)?;
    crate::tree::put(fd, at as u32)
}

/// `shared memory slot K: WHAT: ERRNO` and exit.
fn slot_fail(img: &Image, k: usize, what: &str, e: Errno) -> ! {
    crate::report::Msg::new()
        .push(img.path)
        .s(": shared memory slot ")
        .dec(k as u64)
        .s(": ")
        .s(what)
        .errno(e)
        .fail()
}
