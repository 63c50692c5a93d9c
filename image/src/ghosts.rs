//! Files whose content travels in the image (format 1.3): deleted files and
//! directories the process still holds ("ghosts"), and small files it maps
//! shared and writable that may vanish before a restore (a JVM's
//! `/tmp/hsperfdata_USER/PID`). Records, note types, descriptor kinds and
//! their validation; `docs/FORMAT.md` describes them.
//!
//! A ghost is one inode: every descriptor (`fd_kind::GHOST`), memory area
//! (`vma_flags::GHOST`) and the working directory (`ghost_flags::CWD`) that
//! used it at dump time use the one file the stub re-creates.

use crate::read::{FormatError, ImageView};
use crate::records::*;

/// Note type of the ghost table: an array of [`GhostRecord`].
pub const NT_KCKPT_GHOSTS: u32 = 0x4b43_0060;
/// Note type of the extents of the ghosts' content: an array of
/// [`ExtentRecord`], partitioned among the ghosts.
pub const NT_KCKPT_EXTENTS: u32 = 0x4b43_0061;

/// Most ghosts an image may hold (the stub keeps a table of this size;
/// the dumper refuses more deleted files and saves fewer vanishing ones).
pub const MAX_GHOSTS: usize = 256;

/// `fd_kind` values of this module.
pub mod ghost_fd_kind {
    /// A descriptor of a ghost: `args[0]` is the index of its
    /// [`super::GhostRecord`]; `flags` and `pos` as for `FILE`.
    pub const GHOST: u32 = 12;
    /// A file of a pseudo file system (procfs, sysfs, cgroupfs, debugfs,
    /// tracefs): reopened by path with the saved flags and offset, with
    /// no size check (such files have none); in procfs the process's own
    /// `/proc/PID/task/PID` is written `/proc/thread-self` and `/proc/PID`
    /// `/proc/self`; (1.8) `args[0]` [`super::procfs_of`].
    pub const PROCFS: u32 = 13;
    /// A descriptor of shared anonymous memory (`/dev/zero (deleted)`,
    /// opened through `/proc/PID/map_files`): restored as a memfd with the
    /// content; `args[0]` its size.
    pub const SHMEM: u32 = 14;
}

/// `PROCFS` `args[0]`: whose file it is.
pub mod procfs_of {
    /// The process's own (`/proc/self`, `/proc/thread-self`) or a file
    /// outside any process directory; `args` all 0.
    pub const OWN: u64 = 0;
    /// (1.8) Of another process of the tree, `args[1]` its saved pid: the
    /// path is `/proc/PID` or `/proc/PID/...` (trees keep their pids),
    /// opened once every process of the tree exists.
    pub const TREE: u64 = 1;
    /// (1.9) Of a process outside the dump, `args[1]` its pid, `args[2]`
    /// its start time (`/proc/PID/stat` field 22, clock ticks after boot):
    /// the path is `/proc/PID` or `/proc/PID/...`, opened again only when
    /// the process at that pid has that start time (the same process,
    /// still running: this boot, this PID namespace).
    pub const OUTSIDE: u64 = 2;
}

/// The pid of a `/proc/PID` or `/proc/PID/...` path.
fn path_pid(path: &[u8]) -> Option<u64> {
    let rest = path.strip_prefix(b"/proc/")?;
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    let digits = &rest[..end];
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A `PROCFS` record's `args` agree with its `path` (see [`procfs_of`]).
pub fn procfs_args_ok(args: [u64; 4], path: &[u8], minor: u16) -> bool {
    match args[0] {
        procfs_of::OWN => args == [0; 4],
        procfs_of::TREE => {
            let pid = args[1];
            minor >= 8
                && (2..=i32::MAX as u64).contains(&pid)
                && args[2] == 0
                && args[3] == 0
                && path_pid(path) == Some(pid)
        }
        procfs_of::OUTSIDE => {
            let pid = args[1];
            minor >= 9
                && (1..=i32::MAX as u64).contains(&pid)
                && args[3] == 0
                && path_pid(path) == Some(pid)
        }
        _ => false,
    }
}

/// `GhostRecord::flags` bits.
pub mod ghost_flags {
    /// The file had been deleted: re-created unlinked.
    pub const DELETED: u32 = 1 << 0;
    /// Not deleted, mapped shared: re-created at its path with the saved
    /// content only when that path is missing at restore.
    pub const VANISHING: u32 = 1 << 1;
    /// The process's working directory is this (deleted) directory.
    pub const CWD: u32 = 1 << 2;
}

/// Every `ghost_flags` bit.
pub const GHOST_FLAGS_KNOWN: u32 = ghost_flags::DELETED | ghost_flags::VANISHING | ghost_flags::CWD;

/// `GhostRecord::mode` file types (`S_IFMT` bits).
pub const S_IFMT: u32 = 0o170000;
/// A regular file.
pub const S_IFREG: u32 = 0o100000;
/// A directory.
pub const S_IFDIR: u32 = 0o040000;

/// One file whose content is stored in the image.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GhostRecord {
    /// Device, encoded as in `/proc/PID/maps` (`major << 32 | minor`).
    pub dev: u64,
    /// Inode number at dump time.
    pub inode: u64,
    /// File size (`st_size`); regular files only, 0 for directories.
    pub size: u64,
    /// `st_mode`: `S_IFREG` or `S_IFDIR` and the permission bits (07777).
    pub mode: u32,
    /// `ghost_flags::*`.
    pub flags: u32,
    /// Owner (`st_uid`), restored when the restorer may.
    pub uid: u32,
    /// Group (`st_gid`).
    pub gid: u32,
    /// Access time, seconds since the epoch.
    pub atime_sec: i64,
    /// Access time, nanoseconds.
    pub atime_nsec: u64,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u64,
    /// The path it had (without ` (deleted)`).
    pub path: StrRef,
    /// Index of its first [`ExtentRecord`].
    pub first_extent: u32,
    /// Number of extents.
    pub extent_count: u32,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
// SAFETY: repr(C); 3*8 + 4*4 + 4*8 + 8 + 2*4 + 16 = 104, all fields
// naturally aligned, no padding.
unsafe impl Record for GhostRecord {}

/// One stored range of a ghost's content: `len` bytes at `file_offset` in
/// the file are in the image at `data_offset` (page aligned). The ranges of
/// the file outside every extent are holes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtentRecord {
    /// Offset in the file.
    pub file_offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Offset of the data in the image.
    pub data_offset: u64,
}
// SAFETY: repr(C), three u64.
unsafe impl Record for ExtentRecord {}

/// The extents of ghost `g`.
pub fn extents_of<'v>(
    view: &'v ImageView<'_>,
    g: &GhostRecord,
) -> impl Iterator<Item = ExtentRecord> + 'v {
    view.extents.span(g.first_extent, g.extent_count)
}

/// The ghost whose (dev, inode) is the saved file's, if any.
pub fn find_ghost(view: &ImageView<'_>, dev: u64, inode: u64) -> Option<(usize, GhostRecord)> {
    view.ghosts
        .iter()
        .enumerate()
        .find(|(_, g)| g.dev == dev && g.inode == inode)
}

/// The extents `first..first + count` of `table` (an object's, whose
/// extents start at `next`, the end of the previous object's): sorted, not
/// overlapping, not empty, inside the object's `size`, their data
/// page-aligned and inside the file. Returns where the next object's
/// start; `errors`: (out of order, bad extent) messages.
pub(crate) fn extents_in_order(
    table: &crate::read::RecordTable<'_, ExtentRecord>,
    (first, count): (u32, u32),
    next: u32,
    (size, page, file_len): (u64, u64, u64),
    (order, bad_extent): (&'static str, &'static str),
) -> Result<u32, FormatError> {
    if first != next {
        return Err(FormatError::BadField(order));
    }
    let next = next
        .checked_add(count)
        .ok_or(FormatError::BadField(order))?;
    let mut end = 0u64;
    for i in first..next {
        let e = table.get(i as usize).ok_or(FormatError::BadField(order))?;
        let obj_end = e.file_offset.checked_add(e.len);
        let data_end = e.data_offset.checked_add(e.len);
        if e.len == 0
            || e.file_offset < end
            || obj_end.is_none_or(|x| x > size)
            || !e.data_offset.is_multiple_of(page)
            || e.data_offset == 0
        {
            return Err(FormatError::BadField(bad_extent));
        }
        if data_end.is_none_or(|x| x > file_len) {
            return Err(FormatError::Truncated);
        }
        end = obj_end.unwrap_or(u64::MAX);
    }
    Ok(next)
}

/// Structure and fields: extents partition the extent table in order,
/// inside the file's size and the image, page-aligned data; a directory
/// has none; a known type and flags; descriptors of kind `GHOST` and areas
/// flagged `GHOST` name an existing ghost of the right type.
pub fn validate(view: &ImageView<'_>, file_len: u64) -> Result<(), FormatError> {
    let bad = |what| FormatError::BadField(what);
    let page = u64::from(view.header.page_size);
    let mut next = 0u32;
    let mut cwd = 0;
    for g in view.ghosts.iter() {
        let kind = g.mode & S_IFMT;
        if g.reserved != [0; 2]
            || g.flags & !GHOST_FLAGS_KNOWN != 0
            || g.mode & !(S_IFMT | 0o7777) != 0
            || !(kind == S_IFREG || kind == S_IFDIR)
            || (g.flags & ghost_flags::DELETED == 0) == (g.flags & ghost_flags::VANISHING == 0)
            || (g.flags & ghost_flags::CWD != 0
                && (kind != S_IFDIR || g.flags & ghost_flags::DELETED == 0))
            || (kind == S_IFDIR && (g.size != 0 || g.extent_count != 0))
            || g.atime_nsec >= 1_000_000_000
            || g.mtime_nsec >= 1_000_000_000
        {
            return Err(bad("ghost file: bad type, flags or times"));
        }
        if g.flags & ghost_flags::CWD != 0 {
            cwd += 1;
        }
        let name = view.string(g.path)?;
        if name.is_empty() || name.len() > 4095 || name.contains(&0) {
            return Err(bad("ghost file: no usable path"));
        }
        next = extents_in_order(
            &view.extents,
            (g.first_extent, g.extent_count),
            next,
            (g.size, page, file_len),
            ("ghost file: extents out of order", "ghost file: bad extent"),
        )?;
    }
    if next as usize != view.extents.len() || cwd > 1 {
        return Err(bad("ghost file: extents out of order"));
    }
    for r in view.fds.iter() {
        if r.kind == ghost_fd_kind::PROCFS
            && !procfs_args_ok(r.args, view.string(r.path)?, view.header.format_minor)
        {
            return Err(bad("fd: procfs file of no known process"));
        }
        if r.kind == ghost_fd_kind::GHOST {
            let g = usize::try_from(r.args[0])
                .ok()
                .and_then(|i| view.ghosts.get(i))
                .ok_or(bad("fd: no such ghost file"))?;
            if g.flags & ghost_flags::DELETED == 0 {
                return Err(bad("fd: no such ghost file"));
            }
        }
    }
    for v in view.vmas.iter() {
        if v.flags & vma_flags::GHOST != 0 {
            let ok = v.kind == vma_kind::FILE
                && v.flags & vma_flags::FILE_UNAVAILABLE == 0
                && find_ghost(view, v.dev, v.inode).is_some_and(|(_, g)| {
                    g.mode & S_IFMT == S_IFREG && g.flags & ghost_flags::DELETED != 0
                });
            if !ok {
                return Err(bad("memory area: no such ghost file"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod procfs_tests {
    use super::{procfs_args_ok, procfs_of};

    #[test]
    fn a_procfs_file_of_the_tree_names_its_pid_in_its_path() {
        let tree = |pid| [procfs_of::TREE, pid, 0, 0];
        assert!(procfs_args_ok([0; 4], b"/proc/self/stat", 7));
        assert!(procfs_args_ok(tree(42), b"/proc/42/stat", 8));
        assert!(procfs_args_ok(tree(42), b"/proc/42", 8));
        assert!(!procfs_args_ok(tree(42), b"/proc/42/stat", 7), "before 1.8");
        assert!(!procfs_args_ok(tree(42), b"/proc/43/stat", 8));
        assert!(!procfs_args_ok(tree(42), b"/proc/042/stat", 8));
        assert!(!procfs_args_ok(tree(1), b"/proc/1/stat", 8), "pid 1");
        assert!(!procfs_args_ok(tree(42), b"/sys/42", 8));
        assert!(!procfs_args_ok([0, 1, 0, 0], b"/proc/self/stat", 8));
        assert!(!procfs_args_ok([3, 42, 0, 0], b"/proc/42/stat", 9));
    }

    #[test]
    fn a_procfs_file_of_a_process_outside_names_its_pid_and_start() {
        let outside = |pid, start| [procfs_of::OUTSIDE, pid, start, 0];
        assert!(procfs_args_ok(outside(1, 5), b"/proc/1/status", 9));
        assert!(procfs_args_ok(outside(42, 0), b"/proc/42", 9));
        assert!(
            !procfs_args_ok(outside(1, 5), b"/proc/1/status", 8),
            "before 1.9"
        );
        assert!(!procfs_args_ok(outside(1, 5), b"/proc/2/status", 9));
        assert!(!procfs_args_ok(outside(0, 5), b"/proc/0/status", 9));
        assert!(!procfs_args_ok([2, 1, 5, 1], b"/proc/1/status", 9));
        assert!(!procfs_args_ok(outside(1, 5), b"/proc/self/status", 9));
    }
}
