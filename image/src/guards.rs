//! Guard regions (format 1.3): page ranges a process marked with
//! `madvise(MADV_GUARD_INSTALL)` (Linux 6.13), where any access faults.
//! They live inside ordinary memory areas, hold no data, and are installed
//! again by the stub once the areas are rebuilt.

use crate::read::{FormatError, ImageView};
use crate::records::Record;

/// Note type of the guard table: an array of [`GuardRecord`], sorted.
pub const NT_KCKPT_GUARDS: u32 = 0x4b43_0063;

/// One guard region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardRecord {
    /// First address (page aligned).
    pub start: u64,
    /// Length in bytes (page aligned, not zero).
    pub len: u64,
}
// SAFETY: repr(C), two u64.
unsafe impl Record for GuardRecord {}

/// Sorted, page aligned, each inside one saved memory area.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad =
        FormatError::BadField("guard region: unaligned, unsorted or outside the memory areas");
    let page = u64::from(view.header.page_size);
    let mut prev_end = 0u64;
    for g in view.guards.iter() {
        let end = g.start.checked_add(g.len).ok_or(bad)?;
        let inside = view.vmas.iter().any(|v| v.start <= g.start && end <= v.end);
        if g.len == 0
            || !g.start.is_multiple_of(page)
            || !g.len.is_multiple_of(page)
            || g.start < prev_end
            || !inside
        {
            return Err(bad);
        }
        prev_end = end;
    }
    Ok(())
}
