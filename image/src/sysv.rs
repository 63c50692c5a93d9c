//! SysV shared memory segments (format 1.10): the segments the dumped
//! processes had attached or created, with their content, restored in a
//! new IPC namespace under their saved ids. Records, note types and their
//! validation; `docs/FORMAT.md` describes them.
//!
//! The table is in the image of a tree's first process (or of the single
//! process). A memory area attached to a segment is a `vma_flags::SYSV`
//! VMA whose `inode` is the segment's id; it stores no pages (the
//! segment's content is stored once, here).

use crate::ghosts::ExtentRecord;
use crate::read::{FormatError, ImageView};
use crate::records::*;

/// Note type of the segment table: an array of [`SysvShmRecord`], sorted
/// by id.
pub const NT_KCKPT_SYSV_SHM: u32 = 0x4b43_0066;
/// Note type of the extents of the segments' content: an array of
/// [`ExtentRecord`] (`file_offset`: offset in the segment), partitioned
/// among the segments in order.
pub const NT_KCKPT_SYSV_EXTENTS: u32 = 0x4b43_0067;

/// First format minor with SysV segments.
pub const SYSV_SINCE_MINOR: u16 = 10;
/// Most segments an image may hold (the kernel's default `shmmni` is 4096).
pub const MAX_SEGMENTS: usize = 4096;
/// Largest segment size kept (1 TiB).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 40;

/// `SysvShmRecord::mode` bits besides the permission bits (0777), as
/// `shm_perm.mode` has them.
pub mod shm_mode {
    /// `SHM_DEST`: removed (`IPC_RMID`) while attached; its key reads 0.
    pub const DEST: u32 = 0o1000;
    /// `SHM_LOCKED`: locked in memory (`SHM_LOCK`).
    pub const LOCKED: u32 = 0o2000;
}

/// Every `SysvShmRecord::mode` bit.
pub const SHM_MODE_KNOWN: u32 = 0o777 | shm_mode::DEST | shm_mode::LOCKED;

/// One SysV shared memory segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysvShmRecord {
    /// Its id (`shmid`), what `/proc/PID/maps` shows as the inode.
    pub id: u32,
    /// Its key (`key_t`; 0 is `IPC_PRIVATE`, and the key of a removed one).
    pub key: u32,
    /// Size in bytes (`shm_segsz`).
    pub size: u64,
    /// `shm_perm.mode`: permission bits and [`shm_mode`] bits.
    pub mode: u32,
    /// Owner (`shm_perm.uid`).
    pub uid: u32,
    /// Group (`shm_perm.gid`).
    pub gid: u32,
    /// Index of its first [`ExtentRecord`] in `NT_KCKPT_SYSV_EXTENTS`.
    pub first_extent: u32,
    /// Number of extents; the rest of the segment is zeros.
    pub extent_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Reserved, zero.
    pub reserved2: [u64; 2],
}
// SAFETY: repr(C); 4+4+8 + 6*4 + 16 = 56, all fields naturally aligned, no
// padding.
unsafe impl Record for SysvShmRecord {}

/// The extents of segment `s`.
pub fn extents_of<'v>(
    view: &'v ImageView<'_>,
    s: &SysvShmRecord,
) -> impl Iterator<Item = ExtentRecord> + 'v {
    view.sysv_extents.span(s.first_extent, s.extent_count)
}

/// The segment with id `id`.
pub fn find(view: &ImageView<'_>, id: u64) -> Option<SysvShmRecord> {
    view.sysv_shm.iter().find(|s| u64::from(s.id) == id)
}

/// Is `vma` an attachment of a SysV segment?
pub fn is_attachment(vma: &VmaRecord) -> bool {
    vma.flags & vma_flags::SYSV != 0
}

/// Segments sorted by id, sizes and modes the kernel accepts, extents
/// partitioning the extent table inside each segment and the file; every
/// attachment a shared file mapping without stored pages inside its
/// segment (when the table is here: a sub-image of a tree has none, its
/// segments are in the tree's first image).
pub fn validate(view: &ImageView<'_>, file_len: u64) -> Result<(), FormatError> {
    let bad = |what| FormatError::BadField(what);
    let page = u64::from(view.header.page_size);
    let new_enough = view.header.format_minor >= SYSV_SINCE_MINOR;
    if !new_enough && (!view.sysv_shm.is_empty() || !view.sysv_extents.is_empty()) {
        return Err(bad("SysV segment: in an image older than 1.10"));
    }
    if view.sysv_shm.len() > MAX_SEGMENTS {
        return Err(bad("SysV segment: too many"));
    }
    let mut next = 0u32;
    let mut last_id = None;
    for s in view.sysv_shm.iter() {
        if s.reserved != 0
            || s.reserved2 != [0; 2]
            || s.mode & !SHM_MODE_KNOWN != 0
            || s.size == 0
            || s.size > MAX_SEGMENT_SIZE
            || s.id > i32::MAX as u32
            || last_id.is_some_and(|l| s.id <= l)
            || (s.mode & shm_mode::DEST != 0 && s.key != 0)
        {
            return Err(bad("SysV segment: bad id, size or mode"));
        }
        last_id = Some(s.id);
        next = crate::ghosts::extents_in_order(
            &view.sysv_extents,
            (s.first_extent, s.extent_count),
            next,
            (s.size, page, file_len),
            (
                "SysV segment: extents out of order",
                "SysV segment: bad extent",
            ),
        )?;
    }
    if next as usize != view.sysv_extents.len() {
        return Err(bad("SysV segment: extents out of order"));
    }
    for v in view.vmas.iter().filter(is_attachment) {
        if !new_enough
            || v.kind != vma_kind::FILE
            || v.flags & vma_flags::SHARED == 0
            || v.flags & vma_flags::GHOST != 0
            || v.run_count != 0
            || v.inode > i32::MAX as u64
        {
            return Err(bad("memory area: bad SysV attachment"));
        }
        if view.sysv_shm.is_empty() && view.tree.is_none() {
            // A sub-image: its tree's first image has the table.
            continue;
        }
        let seg = find(view, v.inode).ok_or(bad("memory area: no such SysV segment"))?;
        let end = v.file_pgoff.checked_add(v.end - v.start);
        if end.is_none_or(|e| e > seg.size.next_multiple_of(page)) {
            return Err(bad("memory area: past the end of its SysV segment"));
        }
    }
    Ok(())
}
