//! kckpt library: the dumper and the tools around images.
//!
//! [`dump::dump`] checkpoints a live process into an image; [`info`],
//! [`restore`] and [`binfmt`] implement the other subcommands of the `kckpt`
//! CLI ([`cli`]). Every failure is an [`error::Error`] whose `Display` is
//! the one line the CLI prints.

pub mod binfmt;
pub mod cli;
pub mod dump;
pub mod error;
pub mod info;
mod info_files;
pub mod restore;

pub use error::{Error, Result};
