//! Per-architecture code behind one interface.
//!
//! `src/x86_64/` and `src/aarch64/` hold files with the same names defining
//! the same items; the module for the target is re-exported at the root, so
//! generic code (dumper, stub) only writes `kckpt_arch::*`. Both modules
//! compile on every target so their pure parts (layouts, conversions) are
//! unit-tested everywhere; inline assembly is cfg'd to its own target.
#![no_std]

pub mod aarch64;
pub mod core_notes;
pub mod mem;
pub mod x86_64;

#[cfg(target_arch = "aarch64")]
pub use aarch64::*;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;
