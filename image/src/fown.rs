//! Owners of descriptors' I/O signals (format 1.4, `NT_KCKPT_FOWNERS`):
//! the process, thread or process group `F_SETOWN_EX` named and the signal
//! `F_SETSIG` chose, per open file description; set again by the stub once
//! every descriptor exists (`O_ASYNC` itself is one of the descriptor's
//! status flags, `FdRecord::flags`).

use crate::read::{FormatError, ImageView};
use crate::records::Record;

/// Note type of the owner table: an array of [`FownRecord`] sorted by fd.
pub const NT_KCKPT_FOWNERS: u32 = 0x4b43_0064;

/// `FownRecord::owner_type`: the values of `F_OWNER_TID`, `F_OWNER_PID`,
/// `F_OWNER_PGRP` (`struct f_owner_ex`).
pub mod owner_type {
    /// One thread.
    pub const TID: u32 = 0;
    /// A process.
    pub const PID: u32 = 1;
    /// A process group.
    pub const PGRP: u32 = 2;
}

/// The signal owner of one descriptor's open file description.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FownRecord {
    /// A descriptor with a record in `NT_KCKPT_FDS`.
    pub fd: u32,
    /// `owner_type::*`.
    pub owner_type: u32,
    /// The owner's id as the dumper saw it (0: no owner).
    pub owner: u32,
    /// `F_GETSIG`: 0 means `SIGIO`; else the signal sent (1..=64).
    pub signal: u32,
}
// SAFETY: repr(C); 4*4 = 16, no padding.
unsafe impl Record for FownRecord {}

/// Every record names a descriptor of the table, sorted by fd without
/// repeats, a known owner type and a valid signal.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad = FormatError::BadField("file owner: bad descriptor, owner type or signal");
    let mut last: Option<u32> = None;
    for o in view.fowners.iter() {
        if last.is_some_and(|l| l >= o.fd)
            || crate::files::find_fd(view, o.fd).is_none()
            || o.owner_type > owner_type::PGRP
            || o.owner > i32::MAX as u32
            || o.signal > 64
        {
            return Err(bad);
        }
        last = Some(o.fd);
    }
    Ok(())
}
