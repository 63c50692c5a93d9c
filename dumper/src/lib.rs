//! kckpt library: the dumper and the tools around images.
//!
//! [`dump::dump`] checkpoints a live process into an image;
//! [`checkpoint_self`] (C: `kckpt_checkpoint_self`, `kckpt.h`) checkpoints
//! the calling process itself ([`selfdump`]); [`info`],
//! [`restore`] and [`binfmt`] implement the other subcommands of the `kckpt`
//! CLI ([`cli`]). Every failure is an [`error::Error`] whose `Display` is
//! the one line the CLI prints.

pub mod binfmt;
pub mod cli;
pub mod dump;
pub mod error;
pub mod extract;
pub mod generate;
pub mod info;
mod info_files;
mod info_kstate;
mod info_sysv;
mod info_timers;
mod info_tree;
mod info_verify;
pub mod input;
pub mod progress;
pub mod restore;
pub mod selfdump;
pub mod snapshot;
mod testing;

pub use error::{Error, Result};
pub use selfdump::{checkpoint_self, SelfCheckpoint};
