//! The kckpt image format.
//!
//! An image is an ELF `ET_CORE` file: standard core notes so gdb and readelf
//! read it, kckpt's own notes (owner `KCKPT`) for what a core file lacks, and
//! memory as page-aligned `PT_LOAD` data. `docs/FORMAT.md` is the written
//! specification; [`records`] holds the raw layouts and [`read`] the
//! allocation-free reader the `no_std` stub uses. The writer is the
//! `kckpt-image-write` crate (it needs `std`).
#![no_std]
#![allow(unsafe_code)] // Only `read::read_record` / `read::record_bytes`: Record is Pod.

pub mod cgroup_props;
pub mod check;
pub mod checksum;
pub mod escape;
pub mod external;
pub mod files;
pub mod fown;
pub mod ghosts;
pub mod guards;
pub mod inet;
pub mod inotify;
pub mod kstate;
pub mod locks;
pub mod pagerefs;
pub mod read;
pub mod records;
pub mod seccomp;
pub mod selffd;
pub mod sockfilter;
pub mod special;
pub mod sysv;
pub mod tcp;
pub mod terminal;
pub mod timers;
pub mod tree;
pub mod unixsock;

pub use fown::{owner_type, FownRecord};
pub use ghosts::{ghost_fd_kind, ghost_flags, ExtentRecord, GhostRecord};
pub use guards::GuardRecord;
pub use locks::{lock_kind, lock_type, LockRecord};
pub use read::{FormatError, ImageView};
pub use records::*;
pub use selffd::{self_fd_kind, EPOLL_SRC_CLOSED};
pub use special::special_fd_kind;
pub use timers::{PosixTimerRecord, TimersRecord, NT_KCKPT_POSIX_TIMERS, NT_KCKPT_TIMERS};
