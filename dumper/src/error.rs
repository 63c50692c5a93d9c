//! The error type of every kckpt command: its `Display` is the one line that
//! `kckpt: <message>` prints on stderr.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The description of an OS error ("Operation not permitted") without Rust's
/// "(os error N)" suffix.
pub fn io_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::Error::from_raw(code).desc().to_owned(),
        None => err.to_string(),
    }
}

/// `bytes` (a path, a string from an image) for a one-line message:
/// control bytes, backslashes and bytes that are not UTF-8 as `\xNN`
/// (`kckpt_image::escape`, the stub's rules).
pub fn escaped(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    kckpt_image::escape::escaped(bytes, |piece| out.extend_from_slice(piece));
    String::from_utf8_lossy(&out).into_owned()
}

/// The description of an errno.
pub fn errno_text(err: nix::Error) -> &'static str {
    err.desc()
}

/// Everything that can go wrong in a kckpt command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/proc/PID` does not exist.
    #[error("no process with pid {0}")]
    NoProcess(i32),
    /// `PTRACE_SEIZE` failed.
    #[error("cannot trace pid {pid}: {}", errno_text(*.source))]
    Trace {
        /// Target pid.
        pid: i32,
        /// The ptrace error.
        source: nix::Error,
    },
    /// A ptrace request on the stopped target failed.
    #[error("{what} of pid {pid} failed: {}", errno_text(*.source))]
    Ptrace {
        /// What was being done.
        what: &'static str,
        /// Target pid.
        pid: i32,
        /// The error.
        source: nix::Error,
    },
    /// The target died (or was killed) while being dumped.
    #[error("process {pid} exited while it was being dumped")]
    TargetDied {
        /// Target pid.
        pid: i32,
    },
    /// Something about the target is not what the dumper can handle.
    #[error("cannot dump pid {pid}: {reason}")]
    Unsupported {
        /// Target pid.
        pid: i32,
        /// Why.
        reason: String,
    },
    /// A TCP connection moved while it was saved (its peer sent or
    /// acknowledged data): the dump failed, the processes go on, and
    /// `dump` tries again.
    #[error("cannot dump pid {pid}: {reason}")]
    Changed {
        /// Target pid.
        pid: i32,
        /// What changed.
        reason: String,
    },
    /// Reading a /proc file (or other file) failed.
    #[error("cannot read {}: {}", .path.display(), io_text(.source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A /proc file had unexpected contents.
    #[error("cannot parse {}: {what}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// Reading the target's memory failed.
    #[error("cannot read memory of pid {pid} at {addr:#x}: {}", io_text(.source))]
    Memory {
        /// Target pid.
        pid: i32,
        /// Address.
        addr: u64,
        /// The error.
        source: io::Error,
    },
    /// The temporary image file could not be created.
    #[error("cannot create image in {}: {}", .dir.display(), io_text(.source))]
    CreateImage {
        /// The output directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Writing (or syncing, renaming) the image failed.
    #[error("cannot write image {}: {}", .path.display(), io_text(.source))]
    WriteImage {
        /// The final image path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Writing a file other than an image failed (`kckpt generate`).
    #[error("cannot write {}: {}", .path.display(), io_text(.source))]
    WriteFile {
        /// The file (or the directory it goes in).
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A cancelling signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) arrived
    /// during a dump; `outcome` says what was left behind.
    #[error("interrupted by {}: {outcome}", crate::dump::interrupt::signal_name(*.signal))]
    Interrupted {
        /// The signal number.
        signal: i32,
        /// E.g. "process 42 left running, no image written".
        outcome: String,
    },
    /// `-o PATH` names something an image cannot be written to.
    #[error("cannot write an image to {}: {reason}", .path.display())]
    Output {
        /// The path as given.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Copying the image to standard output (`-o -`) failed.
    #[error("cannot write the image to standard output: {}{}", io_text(.source),
        if .source.raw_os_error() == Some(nix::libc::EPIPE) { " (the reader went away)" } else { "" })]
    Stream {
        /// The error.
        source: io::Error,
    },
    /// An image could not be opened.
    #[error("cannot open {}: {}", escaped(.path.as_os_str().as_bytes()), io_text(.source))]
    OpenImage {
        /// The image.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An image was refused by the format reader.
    #[error("{}: {error}", escaped(.path.as_os_str().as_bytes()))]
    BadImage {
        /// The image.
        path: PathBuf,
        /// The reader's verdict.
        error: kckpt_image::FormatError,
    },
    /// Stored data does not match its checksum (`kckpt info --verify`).
    #[error("{}: image is corrupt ({what} does not match its checksum)", .path.display())]
    CorruptData {
        /// The image.
        path: PathBuf,
        /// Which data: `memory 0x...-0x... ([heap]) at file offset N`,
        /// `data of fd 5 at file offset N`.
        what: String,
    },
    /// The restore stub is missing or could not be executed.
    #[error("cannot run the restore stub {}: {}", .path.display(), io_text(.source))]
    Stub {
        /// The stub path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An image of another architecture and no emulator to run it.
    #[error(
        "{}: an {arch} image; running it on this {} machine needs {emulator}, which is not \
         installed (Debian: apt-get install qemu-user)",
        .image.display(),
        kckpt_arch::NAME
    )]
    NoEmulator {
        /// The image.
        image: PathBuf,
        /// Its architecture.
        arch: &'static str,
        /// The emulator looked for in `PATH`.
        emulator: &'static str,
    },
    /// A binfmt_misc operation failed.
    #[error(transparent)]
    Binfmt(#[from] kckpt_binfmt::BinfmtError),
    /// The command line was not understood.
    #[error("{0}")]
    Usage(String),
    /// A self-checkpoint in a process with other threads (errno `EBUSY`).
    #[error(
        "cannot checkpoint this process from inside: it has {0} threads (only a single-threaded process can checkpoint itself)"
    )]
    SelfThreads(usize),
    /// A system call of the self-checkpoint failed.
    #[error("cannot checkpoint this process from inside: {what}: {}", io_text(.source))]
    SelfCall {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl Error {
    /// The errno that stands for this error in the C API
    /// (`kckpt_checkpoint_self`): the underlying system call's when there is
    /// one, `EBUSY` for a multi-threaded process, `EOPNOTSUPP` for state
    /// kckpt cannot save, `EINVAL` for a bad argument, else `EIO`.
    pub fn errno(&self) -> i32 {
        use nix::libc;
        let os = |e: &io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        match self {
            Error::NoProcess(_) | Error::TargetDied { .. } => libc::ESRCH,
            Error::SelfThreads(_) => libc::EBUSY,
            Error::Trace { source, .. } | Error::Ptrace { source, .. } => *source as i32,
            Error::Unsupported { .. } => libc::EOPNOTSUPP,
            Error::Changed { .. } => libc::EAGAIN,
            Error::Read { source, .. }
            | Error::Memory { source, .. }
            | Error::CreateImage { source, .. }
            | Error::WriteImage { source, .. }
            | Error::WriteFile { source, .. }
            | Error::OpenImage { source, .. }
            | Error::Stub { source, .. }
            | Error::SelfCall { source, .. } => os(source),
            Error::Stream { source } => os(source),
            Error::Usage(_) | Error::Output { .. } => libc::EINVAL,
            Error::Interrupted { .. } => libc::EINTR,
            Error::NoEmulator { .. } => libc::ENOENT,
            Error::Parse { .. }
            | Error::BadImage { .. }
            | Error::CorruptData { .. }
            | Error::Binfmt(_) => libc::EIO,
        }
    }
}

impl Error {
    /// The exit status of the `kckpt` command for this error: 128 + the
    /// signal number for an interrupted dump (as a shell reports a command
    /// killed by it), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { signal, .. } => 128 + signal,
            _ => 1,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
