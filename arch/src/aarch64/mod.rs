//! aarch64 implementation of the `kckpt-arch` interface: register and
//! signal-frame layouts, raw system calls, the entry point and final jump
//! (running on ARM is a later step).

pub mod check;
pub mod cpu;
pub mod frame;
pub mod inject;
pub mod regs;
pub mod regsets;
pub mod selfsave;

#[cfg(target_arch = "aarch64")]
pub mod jump;
#[cfg(target_arch = "aarch64")]
pub mod start;
#[cfg(target_arch = "aarch64")]
pub mod syscall;

pub use check::*;
pub use frame::*;
pub use inject::*;
pub use regs::*;
pub use regsets::*;
