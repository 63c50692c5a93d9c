//! Settings of the saved cgroups (format 1.3, issue 8): for each cgroup
//! directory of `NT_KCKPT_CGROUPS` other than a hierarchy's root, the
//! owner-writable files that hold a setting (`pids.max`,
//! `net_prio.ifpriomap`, `cpuset.cpus`, ...) and their content at dump
//! time. The stub writes them back only into a cgroup directory it had to
//! create again, before the process joins it; an existing cgroup keeps
//! the settings it has.

use crate::read::{FormatError, ImageView};
use crate::records::{Record, StrRef};

/// Note type of the array of [`CgroupPropRecord`]; optional.
pub const NT_KCKPT_CGROUP_PROPS: u32 = 0x4b43_0084;

/// One setting of a saved cgroup: the file `name` in the directory of
/// cgroup record `cgroup`, and what reading it gave.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupPropRecord {
    /// Index of its cgroup in the `NT_KCKPT_CGROUPS` table.
    pub cgroup: u32,
    /// Flags; none defined, zero.
    pub flags: u32,
    /// The file's name (a plain name: no `/`).
    pub name: StrRef,
    /// Its content (lines ending in `\n`), at most [`MAX_PROP_VALUE`] bytes.
    pub value: StrRef,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
// SAFETY: repr(C); 4 + 4 + 8 + 8 + 16 = 40, no padding.
unsafe impl Record for CgroupPropRecord {}

const _: () = assert!(core::mem::size_of::<CgroupPropRecord>() == 40);

/// Largest value saved; larger files are left out (a dump warning names
/// each).
pub const MAX_PROP_VALUE: usize = 4096;
/// Most settings an image may hold.
pub const MAX_PROPS: usize = 65536;

/// Check the `NT_KCKPT_CGROUP_PROPS` records of `view`.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    if view.cgroup_props.len() > MAX_PROPS {
        return Err(FormatError::BadField("cgroup settings: too many"));
    }
    for p in view.cgroup_props.iter() {
        let name = view.string(p.name)?;
        let value = view.string(p.value)?;
        let ok = p.flags == 0
            && p.reserved == [0; 2]
            && (p.cgroup as usize) < view.cgroups.len()
            && !name.is_empty()
            && name.len() <= 255
            && name != b"."
            && name != b".."
            && !name.contains(&b'/')
            && !crate::check::has_nul(name)
            && value.len() <= MAX_PROP_VALUE
            && !crate::check::has_nul(value);
        if !ok {
            return Err(FormatError::BadField(
                "cgroup setting: bad cgroup index, name, value or reserved field",
            ));
        }
    }
    Ok(())
}
