//! Pages shared between the processes of a tree (format 1.6, issue 9).
//!
//! After `fork`, parent and children share most private pages
//! (copy-on-write). A sub-image of a tree does not store such a page again
//! when an earlier process of the tree (the root, or a sub-image placed
//! before it in the file) stored it: its `NT_KCKPT_PAGE_REFS` note says
//! "these pages of mine are the bytes at offset `outer_offset` of the
//! containing file". A sub-image with such a note is not self-contained:
//! `kckpt extract` copies the bytes in, and a standalone image (base 0)
//! with references is refused ([`check_base`]).

use crate::read::{FormatError, ImageView};
use crate::records::{vma_flags, vma_kind, Record};

/// Note type of the page-reference table: an array of [`PageRefRecord`],
/// sorted by address.
pub const NT_KCKPT_PAGE_REFS: u32 = 0x4b43_0094;

/// Pages of this process whose bytes are stored by an earlier process of
/// the tree.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRefRecord {
    /// First address (page aligned).
    pub start: u64,
    /// Length in bytes (page aligned, not zero).
    pub len: u64,
    /// File offset of the bytes in the containing (outer) file, not
    /// relative to this sub-image: page aligned, and the bytes end at or
    /// before this sub-image's start.
    pub outer_offset: u64,
    /// Checksum of the `len` bytes (`checksum::chunk_sum`, the CRC-32C of
    /// every stored chunk, here over the whole range).
    pub sum: u32,
    /// Reserved, zero.
    pub reserved: u32,
}
// SAFETY: repr(C); 3 * 8 + 2 * 4 = 32, no padding.
unsafe impl Record for PageRefRecord {}

/// Sorted and disjoint, page aligned, each inside one private memory area
/// that can hold stored pages and overlapping none of its runs.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad = FormatError::BadField(
        "shared page: unaligned, unsorted, outside a private memory area or over its stored pages",
    );
    let page = u64::from(view.header.page_size);
    let mut prev_end = 0u64;
    for r in view.page_refs.iter() {
        let end = r.start.checked_add(r.len).ok_or(bad)?;
        if r.len == 0
            || (r.start | r.len | r.outer_offset) % page != 0
            || r.outer_offset.checked_add(r.len).is_none()
            || r.start < prev_end
            || r.reserved != 0
        {
            return Err(bad);
        }
        let vma = view
            .vmas
            .iter()
            .find(|v| v.start <= r.start && end <= v.end)
            .ok_or(bad)?;
        let storable = !matches!(
            vma.kind,
            vma_kind::VDSO | vma_kind::VVAR | vma_kind::VVAR_VCLOCK | vma_kind::VSYSCALL
        ) && vma.flags & vma_flags::SHARED == 0;
        if !storable
            || view
                .runs_of(&vma)
                .any(|run| run.start < end && r.start < run.start + run.len)
        {
            return Err(bad);
        }
        prev_end = end;
    }
    Ok(())
}

/// The references of an image read at file offset `base` (0 for a whole
/// file) all end at or before `base`: a standalone image has none.
pub fn check_base(view: &ImageView<'_>, base: u64) -> Result<(), FormatError> {
    if base == 0 && !view.page_refs.is_empty() {
        return Err(FormatError::BadField(
            "it refers to pages stored by other processes of a tree: extract it with kckpt extract",
        ));
    }
    if view.page_refs.iter().any(|r| r.outer_offset + r.len > base) {
        return Err(FormatError::BadField(
            "shared page: its bytes are not before this process's image in the file",
        ));
    }
    Ok(())
}

/// Bytes of memory stored by other processes.
pub fn shared_bytes(view: &ImageView<'_>) -> u64 {
    view.page_refs.iter().map(|r| r.len).sum()
}
