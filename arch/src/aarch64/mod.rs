//! aarch64 implementation of the `kckpt-arch` interface (layouts in place;
//! running on ARM is a later step).

pub mod regs;

pub use regs::*;
