//! x86_64 implementation of the `kckpt-arch` interface.

pub mod regs;

pub use regs::*;
