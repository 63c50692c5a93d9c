//! x86_64 implementation of the `kckpt-arch` interface.

pub mod check;
pub mod frame;
pub mod inject;
pub mod regs;
pub mod regsets;
pub mod selfsave;

#[cfg(target_arch = "x86_64")]
pub mod cpu;
#[cfg(target_arch = "x86_64")]
pub mod jump;
#[cfg(target_arch = "x86_64")]
pub mod start;
#[cfg(target_arch = "x86_64")]
pub mod syscall;

pub use check::*;
pub use frame::*;
pub use inject::*;
pub use regs::*;
pub use regsets::*;
