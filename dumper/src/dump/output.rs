//! Where an image goes, and what a dump may leave behind.
//!
//! - `-o PATH` accepts a path that does not exist or names a regular file
//!   (through any symbolic links: the file they lead to is replaced, the
//!   links stay); anything else (a device, FIFO, socket, directory, a
//!   dangling link) is refused before the target is touched
//!   ([`destination`]).
//! - The image is written to an unnamed file (`O_TMPFILE`) in the
//!   destination's directory, synced, and only then given its name with
//!   `linkat` through `/proc/self/fd/N`; an existing file is replaced
//!   atomically (link to `.NAME.tmp.PID`, then `rename` over the name).
//!   A dump killed at any moment leaves nothing, except in the
//!   microseconds between that link and the rename, when the temporary
//!   name exists: the next dump into the directory removes such names
//!   whose process is gone ([`remove_stale`]). Where the file system has
//!   no `O_TMPFILE` the file is `.NAME.tmp.PID` from the start (as before),
//!   and a killed dump leaves it until the next dump there.
//! - `-o -` writes the image to an unnamed file in `$TMPDIR` (default
//!   `/tmp`) and copies it to standard output once complete ([`TempImage::
//!   for_stream`]).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};

use super::interrupt;
use crate::error::{Error, Result};

/// What a file is, for messages ("a FIFO").
pub(crate) fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The same for a `stat` mode.
fn mode_name(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        _ => "not a regular file",
    }
}

/// A regular file to create or replace: `dir/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Destination {
    /// The path as given (for messages).
    pub path: PathBuf,
    /// The directory the image is created in.
    pub dir: PathBuf,
    /// Its name there.
    pub name: OsString,
}

/// Check `-o PATH` without changing anything: a path that does not exist
/// (its directory must), or a regular file, possibly through symbolic
/// links (the file they lead to is the one replaced). Anything else is
/// refused with one line.
pub(crate) fn destination(path: &Path) -> Result<Destination> {
    let refuse = |reason: String| Error::Output {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(refuse("the path is empty".into()));
    }
    let target = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && bytes.ends_with(b"/") => {
            return Err(refuse(
                "the path ends with / (give the name of the image file)".into(),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(refuse(crate::error::io_text(&e))),
        Ok(m) if m.file_type().is_file() => path.to_path_buf(),
        Ok(m) if m.file_type().is_symlink() => {
            let link = fs::read_link(path).unwrap_or_default();
            match fs::metadata(path) {
                Ok(t) if t.file_type().is_file() => {
                    fs::canonicalize(path).map_err(|e| refuse(crate::error::io_text(&e)))?
                }
                Ok(t) => {
                    return Err(refuse(format!(
                        "it is a symbolic link to {} ({}); kckpt writes images to regular \
                         files, or to standard output with -o -",
                        link.display(),
                        kind_name(t.file_type())
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(refuse(format!(
                        "it is a dangling symbolic link (to {}); give the path of the image \
                         itself",
                        link.display()
                    )))
                }
                Err(e) => {
                    return Err(refuse(format!(
                        "it is a symbolic link to {}: {}",
                        link.display(),
                        crate::error::io_text(&e)
                    )))
                }
            }
        }
        Ok(m) => {
            return Err(refuse(format!(
                "it is {}; kckpt writes images to regular files, or to standard output with -o -",
                kind_name(m.file_type())
            )))
        }
    };
    let name = target.file_name().map(OsStr::to_os_string);
    let name = match name {
        Some(n) if n != ".." => n,
        _ => return Err(refuse("it is a directory".into())),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(Destination {
        path: path.to_path_buf(),
        dir,
        name,
    })
}

/// `-o -`: standard output must be open and not a terminal.
pub(crate) fn check_stdout() -> Result<()> {
    let out = io::stdout();
    let refuse = |reason: &str| Error::Output {
        path: PathBuf::from("standard output"),
        reason: reason.to_owned(),
    };
    if fstat(out.as_fd()).is_err() {
        return Err(refuse("it is closed"));
    }
    if nix::unistd::isatty(out.as_fd()).unwrap_or(false) {
        return Err(refuse(
            "it is a terminal (redirect it to a file or a pipe, or use -o FILE)",
        ));
    }
    Ok(())
}

/// `-o -` with standard output a regular file: refuse one that process
/// `pid` maps or holds open (appending the image to it would change a file
/// the process depends on; the shell's `>` has already truncated it).
pub(crate) fn check_stdout_not_used_by(pid: i32) -> Result<()> {
    let Ok(st) = fstat(io::stdout().as_fd()) else {
        return Ok(());
    };
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Ok(());
    }
    let refuse = |how: &str| Error::Output {
        path: PathBuf::from("standard output"),
        reason: format!("it is a file that process {pid} {how}"),
    };
    let dev = (nix::sys::stat::major(st.st_dev) << 32) | nix::sys::stat::minor(st.st_dev);
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    if maps
        .lines()
        .filter_map(super::procfs::parse_maps_line)
        .any(|m| m.dev == dev && m.inode == st.st_ino)
    {
        return Err(refuse("maps"));
    }
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten();
    for fd in fds.flatten() {
        if fs::metadata(fd.path()).is_ok_and(|m| m.dev() == st.st_dev && m.ino() == st.st_ino) {
            return Err(refuse("holds open"));
        }
    }
    Ok(())
}

/// Remove `.NAME.tmp.PID` files in `dir` left by dumps killed between
/// their link and rename (or by dumps into a directory without
/// `O_TMPFILE`): regular files of this user whose process no longer
/// exists, holding a kckpt image header or nothing yet at their start.
pub(crate) fn remove_stale(dir: &File) {
    let Ok(entries) = fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = stale_pid(name.as_bytes()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let Ok(st) = fstatat(
            dir.as_fd(),
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG
            || st.st_uid != me
        {
            continue;
        }
        let head = openat(
            dir.as_fd(),
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .map(File::from)
        .map(|f| {
            let mut head = [0u8; 20];
            let n = f.read_at(&mut head, 0).unwrap_or(0);
            (head, n)
        });
        if head.is_some_and(|(h, n)| {
            n == 0 || is_image_header(&h[..n]) || h[..n].iter().all(|&b| b == 0)
        }) {
            let _ = unlinkat(dir.as_fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// The PID of a `.NAME.tmp.PID` name.
fn stale_pid(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(b".")?;
    let at = rest.windows(5).rposition(|w| w == b".tmp.")?;
    if at == 0 {
        return None;
    }
    let digits = &rest[at + 5..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Do these bytes (the first 20 of a file, or fewer) start a kckpt image:
/// ELF identification with kckpt's marker, `ET_CORE`?
pub fn is_image_header(head: &[u8]) -> bool {
    use kckpt_image::records::{IDENT_MARKER, IDENT_MARKER_OFFSET};
    head.len() >= 18
        && head[..4] == *b"\x7fELF"
        && head[IDENT_MARKER_OFFSET..IDENT_MARKER_OFFSET + IDENT_MARKER.len()] == IDENT_MARKER
        && head[16..18] == 4u16.to_le_bytes()
}

/// Where the finished image goes.
enum Place {
    /// A name in a directory.
    Dir {
        /// The directory, open.
        dir: File,
        /// Its path (for messages).
        dir_path: PathBuf,
        /// The final name there.
        name: OsString,
        /// The path as given (for messages).
        path: PathBuf,
        /// `.NAME.tmp.PID`.
        temp_name: OsString,
        /// Does `temp_name` exist (named fallback, or linked before the
        /// rename)? Removed on drop unless committed.
        named: bool,
    },
    /// Standard output.
    Stdout {
        /// The directory of the temporary file (for messages).
        dir_path: PathBuf,
        /// Bytes copied so far.
        sent: u64,
    },
}

/// The image being written: an unnamed file (or `.NAME.tmp.PID` where the
/// file system has no `O_TMPFILE`) that becomes the image on
/// [`TempImage::commit`]; on drop without commit nothing remains.
pub(crate) struct TempImage {
    file: File,
    place: Place,
    done: bool,
}

/// `O_TMPFILE` is not supported there (file system, or kernel).
fn no_tmpfile(e: Errno) -> bool {
    matches!(e, Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL)
}

impl TempImage {
    /// Check `path` ([`destination`]) and create the unnamed image file in
    /// its directory.
    pub(crate) fn create(path: &Path) -> Result<TempImage> {
        let dest = destination(path)?;
        let create_err = |source: io::Error| Error::CreateImage {
            dir: dest.dir.clone(),
            source,
        };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY)
            .open(&dest.dir)
            .map_err(create_err)?;
        remove_stale(&dir);
        let mut temp_name = OsString::from(".");
        temp_name.push(&dest.name);
        temp_name.push(format!(".tmp.{}", std::process::id()));
        let mode = Mode::from_bits_truncate(0o600);
        let rw = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let (fd, named) = match openat(dir.as_fd(), ".", OFlag::O_TMPFILE | rw, mode) {
            Ok(fd) => (fd, false),
            Err(e) if no_tmpfile(e) => {
                let fd = openat(
                    dir.as_fd(),
                    temp_name.as_os_str(),
                    OFlag::O_CREAT | OFlag::O_EXCL | rw,
                    mode,
                )
                .map_err(|e| create_err(e.into()))?;
                (fd, true)
            }
            Err(e) => return Err(create_err(e.into())),
        };
        Ok(TempImage {
            file: File::from(fd),
            place: Place::Dir {
                dir,
                dir_path: dest.dir,
                name: dest.name,
                path: dest.path,
                temp_name,
                named,
            },
            done: false,
        })
    }

    /// An unnamed file in `$TMPDIR` (default `/tmp`) for an image streamed
    /// to standard output (`-o -`); where the file system has no
    /// `O_TMPFILE`, a named file removed at once.
    pub(crate) fn for_stream() -> Result<TempImage> {
        let dir_path = std::env::temp_dir();
        let create_err = |source: io::Error| Error::CreateImage {
            dir: dir_path.clone(),
            source,
        };
        let mode = Mode::from_bits_truncate(0o600);
        let rw = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::open(&dir_path, OFlag::O_TMPFILE | rw, mode) {
            Ok(fd) => fd,
            Err(e) if no_tmpfile(e) => {
                let name = dir_path.join(format!(".kckpt-stream.tmp.{}", std::process::id()));
                let fd = nix::fcntl::open(&name, OFlag::O_CREAT | OFlag::O_EXCL | rw, mode)
                    .map_err(|e| create_err(e.into()))?;
                let _ = fs::remove_file(&name);
                fd
            }
            Err(e) => return Err(create_err(e.into())),
        };
        Ok(TempImage {
            file: File::from(fd),
            place: Place::Stdout { dir_path, sent: 0 },
            done: false,
        })
    }

    /// Another unnamed file, for a part of the image written before it is
    /// copied in (a process tree's sub-images): in the destination's
    /// directory when it supports `O_TMPFILE`, else (and for `-o -`) in
    /// `$TMPDIR`. Nothing remains of it once closed.
    pub(crate) fn scratch(&self) -> Result<File> {
        let mode = Mode::from_bits_truncate(0o600);
        let rw = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        if let Place::Dir { dir, .. } = &self.place {
            if let Ok(fd) = openat(dir.as_fd(), ".", OFlag::O_TMPFILE | rw, mode) {
                return Ok(File::from(fd));
            }
        }
        let dir_path = std::env::temp_dir();
        let create_err = |source: io::Error| Error::CreateImage {
            dir: dir_path.clone(),
            source,
        };
        match nix::fcntl::open(&dir_path, OFlag::O_TMPFILE | rw, mode) {
            Ok(fd) => Ok(File::from(fd)),
            Err(e) if no_tmpfile(e) => {
                let name = dir_path.join(format!(".kckpt-part.tmp.{}", std::process::id()));
                let fd = nix::fcntl::open(&name, OFlag::O_CREAT | OFlag::O_EXCL | rw, mode)
                    .map_err(|e| create_err(e.into()))?;
                let _ = fs::remove_file(&name);
                Ok(File::from(fd))
            }
            Err(e) => Err(create_err(e.into())),
        }
    }

    /// The final path, or for `-o -` the temporary file (for messages).
    pub(crate) fn path(&self) -> PathBuf {
        match &self.place {
            Place::Dir { path, .. } => path.clone(),
            Place::Stdout { dir_path, .. } => {
                PathBuf::from(format!("{} (temporary file for -o -)", dir_path.display()))
            }
        }
    }

    /// Has part of the image gone out on standard output already?
    pub(crate) fn stream_started(&self) -> bool {
        matches!(self.place, Place::Stdout { sent, .. } if sent > 0)
    }

    /// A new descriptor of the image file, to write it through.
    pub(crate) fn file(&self) -> Result<File> {
        self.file.try_clone().map_err(|source| Error::WriteImage {
            path: self.path(),
            source,
        })
    }

    /// A second descriptor of the file with `O_DIRECT` (reopened through
    /// `/proc/self/fd/N`), if the file system supports it. Not for `-o -`:
    /// the image is read back at once to be copied, from the page cache
    /// (see dumper/README.md, "Where images go", for the measurement).
    pub(crate) fn direct(&self) -> Option<File> {
        if matches!(self.place, Place::Stdout { .. }) {
            return None;
        }
        OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_DIRECT | nix::libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
            .ok()
    }

    /// Make the finished image appear: sync it, run `before` (the last
    /// chance to cancel), then link it under its name (replacing an
    /// existing file atomically) and sync the directory; or, for `-o -`,
    /// copy it to standard output (`before` runs between chunks).
    pub(crate) fn commit(&mut self, before: &dyn Fn() -> Result<()>) -> Result<()> {
        let path = self.path();
        let err = |source| Error::WriteImage {
            path: path.clone(),
            source,
        };
        match &mut self.place {
            Place::Stdout { sent, .. } => {
                let len = self.file.metadata().map_err(err)?.len();
                stream(&self.file, len, sent, before)?;
                self.done = true;
                Ok(())
            }
            Place::Dir {
                dir,
                dir_path,
                name,
                temp_name,
                named,
                ..
            } => {
                self.file.sync_all().map_err(err)?;
                before()?;
                if !*named {
                    let src = format!("/proc/self/fd/{}", self.file.as_raw_fd());
                    let link = |to: &OsStr| {
                        linkat(
                            AT_FDCWD,
                            src.as_str(),
                            dir.as_fd(),
                            to,
                            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
                        )
                    };
                    match link(name) {
                        Ok(()) => {
                            self.done = true;
                            return dir.sync_all().map_err(err);
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(err(e.into())),
                    }
                    // The name exists: link to the temporary name (a stale
                    // one of a recycled pid is replaced), then rename.
                    let mut linked = link(temp_name);
                    if linked == Err(Errno::EEXIST) {
                        let _ = unlinkat(
                            dir.as_fd(),
                            temp_name.as_os_str(),
                            UnlinkatFlags::NoRemoveDir,
                        );
                        linked = link(temp_name);
                    }
                    linked.map_err(|e| err(e.into()))?;
                    *named = true;
                }
                // It must still be a file (or nothing) to replace.
                if let Ok(st) = fstatat(
                    dir.as_fd(),
                    name.as_os_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
                    if fmt != SFlag::S_IFREG && fmt != SFlag::S_IFLNK {
                        return Err(Error::Output {
                            path: dir_path.join(&*name),
                            reason: format!("it became {} during the dump", mode_name(st.st_mode)),
                        });
                    }
                }
                renameat(
                    dir.as_fd(),
                    temp_name.as_os_str(),
                    dir.as_fd(),
                    name.as_os_str(),
                )
                .map_err(|e| err(e.into()))?;
                *named = false;
                self.done = true;
                dir.sync_all().map_err(err)
            }
        }
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        if let Place::Dir {
            dir,
            temp_name,
            named: true,
            ..
        } = &self.place
        {
            if !self.done {
                let _ = unlinkat(
                    dir.as_fd(),
                    temp_name.as_os_str(),
                    UnlinkatFlags::NoRemoveDir,
                );
            }
        }
    }
}

/// Bytes per `sendfile` at most (between two interruption checks). Before
/// each, standard output is polled until it can take more, so a reader
/// that stops reading does not make the dump deaf to SIGINT (blocked
/// signals do not interrupt a blocked write).
const STREAM_CHUNK: usize = 1 << 20;

/// Copy `len` bytes of `file` to standard output (holes as zeros), then
/// sync it if it is a regular file. `sent` counts what went out.
fn stream(file: &File, len: u64, sent: &mut u64, before: &dyn Fn() -> Result<()>) -> Result<()> {
    let out = io::stdout();
    let out = out.as_fd();
    let fail = |e: Errno| Error::Stream { source: e.into() };
    let mut offset: i64 = 0;
    let mut buf: Vec<u8> = Vec::new();
    let mut use_sendfile = true;
    while (offset as u64) < len {
        before()?;
        wait_writable(out)?;
        let want = STREAM_CHUNK.min((len - offset as u64) as usize);
        let n = if use_sendfile {
            let mut at = offset;
            match nix::sys::sendfile::sendfile64(out, file.as_fd(), Some(&mut at), want) {
                Ok(n) => n,
                // An O_APPEND file, or a kind sendfile cannot write to:
                // plain reads and writes.
                Err(Errno::EINVAL | Errno::ENOSYS) if offset == 0 => {
                    use_sendfile = false;
                    continue;
                }
                Err(Errno::EAGAIN) => {
                    wait_writable(out)?;
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(fail(e)),
            }
        } else {
            buf.resize(want, 0);
            let got =
                file.read_at(&mut buf, offset as u64)
                    .map_err(|source| Error::WriteImage {
                        path: PathBuf::from("standard output"),
                        source,
                    })?;
            let mut done = 0;
            while done < got {
                match nix::unistd::write(out, &buf[done..got]) {
                    Ok(n) => done += n,
                    Err(Errno::EAGAIN) => wait_writable(out)?,
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(fail(e)),
                }
                *sent = offset as u64 + done as u64;
            }
            got
        };
        if n == 0 {
            return Err(Error::WriteImage {
                path: PathBuf::from("standard output"),
                source: io::Error::from(io::ErrorKind::UnexpectedEof),
            });
        }
        offset += n as i64;
        *sent = offset as u64;
    }
    if let Ok(st) = fstat(out) {
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG {
            nix::unistd::fsync(out).map_err(fail)?;
        }
    }
    Ok(())
}

/// Wait until standard output can take more (checking for interruptions
/// every 100 ms).
fn wait_writable(out: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        interrupt::check()?;
        let mut fds = [PollFd::new(out, PollFlags::POLLOUT)];
        match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            // Writable, or an error the write will report.
            Ok(_) => return Ok(()),
            Err(e) => return Err(Error::Stream { source: e.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names() {
        assert_eq!(stale_pid(b".image.kckpt.tmp.1234"), Some(1234));
        assert_eq!(stale_pid(b".a.tmp.b.tmp.7"), Some(7));
        assert_eq!(stale_pid(b"image.kckpt.tmp.1234"), None);
        assert_eq!(stale_pid(b".image.kckpt.tmp."), None);
        assert_eq!(stale_pid(b".image.kckpt.tmp.12x"), None);
        assert_eq!(stale_pid(b"..tmp.12"), None);
    }

    #[test]
    fn image_headers() {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[9..16].copy_from_slice(&kckpt_image::records::IDENT_MARKER);
        h[16] = 4;
        assert!(is_image_header(&h));
        assert!(!is_image_header(&h[..17]));
        h[16] = 2;
        assert!(!is_image_header(&h), "an executable is not an image");
    }

    #[test]
    fn destinations() {
        let d = destination(Path::new("a.kckpt")).unwrap();
        assert_eq!(
            (d.dir, d.name),
            (PathBuf::from("."), OsString::from("a.kckpt"))
        );
        assert!(destination(Path::new("")).is_err());
        assert!(destination(Path::new("dir/")).is_err());
        assert!(destination(Path::new("/")).is_err());
        assert!(destination(Path::new("/dev/null")).is_err());
        assert!(destination(Path::new("/tmp")).is_err());
        let d = destination(Path::new("/nonexistent-dir/x")).unwrap();
        assert_eq!(d.dir, PathBuf::from("/nonexistent-dir"));
    }
}
