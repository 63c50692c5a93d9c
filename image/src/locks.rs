//! File locks held by the process (format 1.3): `flock`, POSIX
//! (`fcntl(F_SETLK)`) and open-file-description (`F_OFD_SETLK`) locks,
//! and (1.8) file leases (`F_SETLEASE`), taken again by the stub once
//! every descriptor exists.

use crate::read::{FormatError, ImageView};
use crate::records::Record;

/// Note type of the lock table: an array of [`LockRecord`].
pub const NT_KCKPT_LOCKS: u32 = 0x4b43_0062;

/// `LockRecord::kind`.
pub mod lock_kind {
    /// `flock(2)`: belongs to the open file description of `fd`.
    pub const FLOCK: u32 = 1;
    /// POSIX record lock (`F_SETLK`): belongs to the process, on the inode
    /// of `fd`.
    pub const POSIX: u32 = 2;
    /// OFD record lock (`F_OFD_SETLK`): belongs to the open file
    /// description of `fd`.
    pub const OFD: u32 = 3;
    /// (1.8) A file lease (`F_SETLEASE`, not being broken): belongs to the
    /// open file description of `fd`; no range.
    pub const LEASE: u32 = 4;
}

/// `LockRecord::lock_type`.
pub mod lock_type {
    /// A shared (read) lock: `F_RDLCK`, `LOCK_SH`.
    pub const READ: u32 = 0;
    /// An exclusive (write) lock: `F_WRLCK`, `LOCK_EX`.
    pub const WRITE: u32 = 1;
}

/// `LockRecord::lease_break`: a lease being broken (another process's
/// `open` conflicted with it), and to what.
pub mod lease_break {
    /// Not being broken.
    pub const NONE: u32 = 0;
    /// Being downgraded to a read lease (a write lease, by a reader).
    pub const TO_READ: u32 = 1;
    /// Being removed (a read or write lease, by a writer).
    pub const TO_NONE: u32 = 2;
}

/// One lock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockRecord {
    /// A descriptor (with a record in `NT_KCKPT_FDS`, not a `dup`) it is
    /// taken through.
    pub fd: u32,
    /// `lock_kind::*`.
    pub kind: u32,
    /// `lock_type::*`.
    pub lock_type: u32,
    /// (1.8) A `LEASE` being broken: `lease_break::*`; 0 for other kinds
    /// (reserved before 1.8).
    pub lease_break: u32,
    /// First byte (record locks; 0 for `flock`).
    pub start: u64,
    /// Number of bytes, 0 meaning up to the end of the file whatever its
    /// size (record locks; 0 for `flock`).
    pub len: u64,
}
// SAFETY: repr(C); 4*4 + 2*8 = 32, no padding.
unsafe impl Record for LockRecord {}

/// Every lock names a known kind and type and a primary descriptor of a
/// kind that can hold one; `flock` locks have no range.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad = FormatError::BadField("lock: bad kind, type, range or descriptor");
    for l in view.locks.iter() {
        let fd = crate::files::find_fd(view, l.fd).ok_or(bad)?;
        let lockable = matches!(
            fd.kind,
            crate::records::fd_kind::FILE
                | crate::records::fd_kind::PATH
                | crate::ghosts::ghost_fd_kind::GHOST
        );
        let last = if view.header.format_minor >= 8 {
            lock_kind::LEASE
        } else {
            lock_kind::OFD
        };
        let whole = matches!(l.kind, lock_kind::FLOCK | lock_kind::LEASE);
        let lease = l.kind == lock_kind::LEASE;
        if (!lease && l.lease_break != lease_break::NONE)
            || l.lease_break > lease_break::TO_NONE
            || (l.lease_break == lease_break::TO_READ && l.lock_type != lock_type::WRITE)
            || !(lock_kind::FLOCK..=last).contains(&l.kind)
            || l.lock_type > lock_type::WRITE
            || fd.dup_of != crate::records::FD_NO_DUP
            || !lockable
            || (lease && fd.kind != crate::records::fd_kind::FILE)
            || (whole && (l.start != 0 || l.len != 0))
            || l.start > i64::MAX as u64
            || l.start
                .checked_add(l.len)
                .is_none_or(|e| e > i64::MAX as u64)
        {
            return Err(bad);
        }
    }
    Ok(())
}
