//! The part of the restore stub that is a pure function of the image: its
//! address window and every check of an image that needs no system call
//! ([`verify`]). The `kckpt-stub` program runs them before it changes
//! anything, and the fuzz target `stub_reader` (`fuzz/`) runs them on
//! arbitrary input.
#![cfg_attr(not(test), no_std)]

pub mod verify;
pub mod window;
