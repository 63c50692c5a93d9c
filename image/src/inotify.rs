//! Inotify instances (format 1.3): the descriptor kind
//! [`INOTIFY_FD_KIND`] and the watch table `NT_KCKPT_INOTIFY` (an array of
//! [`InotifyWatchRecord`]), and their checks.
//!
//! A watch is saved with its watch descriptor (`wd`), its mask and how to
//! find its inode again at restore: a path, or a descriptor of the process
//! open on that inode (a deleted file: the restore watches
//! `/proc/self/fd/N`). The stub adds the watches of one instance in `wd`
//! order, using dummy watches to skip the numbers of removed ones.

use crate::read::{FormatError, ImageView};
use crate::records::{Record, StrRef, FD_NO_DUP};

/// Note type of the watch table: an array of [`InotifyWatchRecord`]
/// sorted by descriptor then watch descriptor; format 1.3, optional.
pub const NT_KCKPT_INOTIFY: u32 = 0x4b43_0080;

/// `FdRecord::kind` of an inotify instance (1.3): `flags` holds its
/// `O_NONBLOCK`; its watches are in `NT_KCKPT_INOTIFY`; `args` are zero.
pub const INOTIFY_FD_KIND: u32 = 30;

/// Largest watch descriptor an image may hold: the stub reaches a `wd` by
/// adding and removing that many watches.
pub const MAX_WD: u32 = 1 << 20;

/// Mask bits a watch may carry: the events (`IN_ALL_EVENTS`),
/// `IN_EXCL_UNLINK` and `IN_ONESHOT`, as `/proc/PID/fdinfo` shows them.
pub const WATCH_MASK_KNOWN: u32 = 0x0000_0fff | 0x0400_0000 | 0x8000_0000;

/// `InotifyWatchRecord::flags` bits.
pub mod watch_flags {
    /// The inode is the one descriptor `target_fd` of the process is open
    /// on (a deleted file, or any open file): restored by watching
    /// `/proc/self/fd/<target_fd>`; otherwise by `path`.
    pub const BY_FD: u32 = 1 << 0;
}

/// One watch (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InotifyWatchRecord {
    /// The inotify descriptor (a primary `INOTIFY_FD_KIND` record).
    pub fd: u32,
    /// Watch descriptor, 1..=[`MAX_WD`], increasing within one `fd`.
    pub wd: u32,
    /// Event mask ([`WATCH_MASK_KNOWN`] bits, at least one event).
    pub mask: u32,
    /// `watch_flags::*`.
    pub flags: u32,
    /// Device of the inode at dump time (`major << 32 | minor`).
    pub dev: u64,
    /// Inode number at dump time.
    pub ino: u64,
    /// Path of the inode at dump time (always written; used when not
    /// `BY_FD`).
    pub path: StrRef,
    /// `BY_FD`: a descriptor of the process on the inode; otherwise
    /// [`FD_NO_DUP`].
    pub target_fd: u32,
    /// Reserved, zero.
    pub reserved: u32,
}
// SAFETY: repr(C); 4*4 + 8 + 8 + 8 + 4 + 4 = 48, every field naturally
// aligned.
unsafe impl Record for InotifyWatchRecord {}

const _: () = assert!(core::mem::size_of::<InotifyWatchRecord>() == 48);

/// Check the watch table: each watch belongs to a primary inotify
/// descriptor, sorted by (fd, wd) without repeats, wds in range, known
/// mask bits with at least one event, a path inside the string table (not
/// empty unless `BY_FD`), a `BY_FD` target that is a primary descriptor
/// other than an inotify one, zero reserved fields.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad = FormatError::BadField("inotify watch: bad descriptor, wd, mask, path or target");
    let mut prev: Option<(u32, u32)> = None;
    for w in view.inotify.iter() {
        let fd = crate::files::find_fd(view, w.fd).ok_or(bad)?;
        if fd.kind != INOTIFY_FD_KIND || fd.dup_of != FD_NO_DUP {
            return Err(bad);
        }
        if prev.is_some_and(|p| (w.fd, w.wd) <= p) || w.wd == 0 || w.wd > MAX_WD {
            return Err(bad);
        }
        prev = Some((w.fd, w.wd));
        if w.mask & !WATCH_MASK_KNOWN != 0 || w.mask & 0xfff == 0 || w.reserved != 0 {
            return Err(bad);
        }
        let path = view.string(w.path).map_err(|_| bad)?;
        match w.flags {
            watch_flags::BY_FD => {
                let t = crate::files::find_fd(view, w.target_fd).ok_or(bad)?;
                if t.kind == INOTIFY_FD_KIND || t.dup_of != FD_NO_DUP {
                    return Err(bad);
                }
            }
            0 if !path.is_empty() && path[0] == b'/' && w.target_fd == FD_NO_DUP => {}
            _ => return Err(bad),
        }
    }
    Ok(())
}
