//! The kckpt image format.
//!
//! An image is an ELF `ET_CORE` file: standard core notes so gdb and readelf
//! read it, kckpt's own notes (owner `KCKPT`) for what a core file lacks, and
//! memory as page-aligned `PT_LOAD` data. `docs/FORMAT.md` is the written
//! specification; [`records`] holds the raw layouts, [`read`] the
//! allocation-free reader the `no_std` stub uses, and `write` (feature
//! `std`) the writer.
#![no_std]
#![allow(unsafe_code)] // Only `read::read_record` / `read::record_bytes`: Record is Pod.

#[cfg(feature = "std")]
extern crate std;

pub mod read;
pub mod records;
#[cfg(feature = "std")]
pub mod write;

pub use read::{FormatError, ImageView};
pub use records::*;
