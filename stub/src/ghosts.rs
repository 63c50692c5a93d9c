//! Re-creating the files whose content is in the image (format 1.3,
//! `NT_KCKPT_GHOSTS`), before the descriptors that use them:
//!
//! - a deleted file is created under its saved name when that name is free
//!   (so `/proc/PID/fd/N` shows the same `PATH (deleted)`) and unlinked at
//!   once; otherwise as an unnamed file (`O_TMPFILE`) in its saved
//!   directory, else in `/tmp`. Its content is written extent by extent
//!   (holes stay holes), its size, permissions, owner and times set;
//! - a deleted directory is made (empty: a deleted directory always is)
//!   under its saved name, or in `/tmp`, opened and removed;
//! - a file mapped shared that vanished since the dump is created again at
//!   its path with the saved content (nothing is done when it exists).
//!
//! Each deleted file or directory stays open (close-on-exec, above the
//! saved descriptors) until the memory is rebuilt: descriptors are opened
//! again through `/proc/self/fd/N` (each with its own open file
//! description, as saved), memory areas map it, the working directory is
//! entered with `fchdir`.

use core::sync::atomic::{AtomicUsize, Ordering};

use kckpt_image::ghosts::{extents_of, S_IFDIR, S_IFMT};
use kckpt_image::{ghost_flags, GhostRecord};
use linux_raw_sys::general as g;

use crate::gsys;
use crate::load::Image;
use crate::report::Msg;
use crate::sys::{self, Errno};

use kckpt_image::ghosts::MAX_GHOSTS;
/// The open descriptor of each ghost plus one, by index (0: none; zero
/// keeps the table in `.bss`, out of the stub's file).
static FDS: [AtomicUsize; MAX_GHOSTS] = [const { AtomicUsize::new(0) }; MAX_GHOSTS];

/// The descriptor of ghost `index`, if created.
fn fd_of(index: usize) -> Option<usize> {
    FDS.get(index)?.load(Ordering::Relaxed).checked_sub(1)
}

/// A NUL-terminated path built in a fixed buffer.
pub struct PathBuf {
    buf: [u8; 4096],
    len: usize,
}

impl PathBuf {
    /// An empty path.
    pub fn new() -> PathBuf {
        PathBuf {
            buf: [0; 4096],
            len: 0,
        }
    }
    /// `/proc/self/fd/N`.
    pub fn proc_fd(fd: u64) -> PathBuf {
        let mut p = PathBuf::new();
        p.push(b"/proc/self/fd/").dec(fd);
        p
    }
    /// Append bytes (cut at the buffer's end).
    pub fn push(&mut self, bytes: &[u8]) -> &mut PathBuf {
        let n = bytes.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }
    /// Append a decimal number.
    pub fn dec(&mut self, v: u64) -> &mut PathBuf {
        self.push(crate::report::decimal(v, &mut [0; 20]))
    }
    /// The path with its NUL.
    pub fn c(&mut self) -> &[u8] {
        self.buf[self.len] = 0;
        &self.buf[..self.len + 1]
    }
}

/// `/proc/self/fd/N` of ghost `index`, to open it again; `None` when it
/// was not created.
pub fn proc_path(index: usize) -> Option<PathBuf> {
    Some(PathBuf::proc_fd(fd_of(index)? as u64))
}

/// The descriptor of the deleted working directory, if the image has one.
pub fn cwd_fd(img: &Image) -> Option<usize> {
    let i = img
        .view
        .ghosts
        .iter()
        .position(|g| g.flags & ghost_flags::CWD != 0)?;
    fd_of(i)
}

fn ghost_msg(img: &Image, gh: &GhostRecord) -> Msg {
    let mut m = Msg::new();
    m.push(img.path).s(": the deleted ");
    m.s(if gh.mode & S_IFMT == S_IFDIR {
        "directory "
    } else {
        "file "
    });
    m.push(img.view.string(gh.path).unwrap_or(b""));
    m
}

/// The directory part of `path` (up to its last `/`), or `.`.
fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b".",
    }
}

/// A new regular file for `gh`, unlinked: under its name when free, else
/// unnamed in its directory or in `/tmp`.
fn create_file(path: &[u8]) -> Result<usize, Errno> {
    let mut p = PathBuf::new();
    p.push(path);
    let flags = g::O_RDWR | g::O_CREAT | g::O_EXCL | g::O_NOFOLLOW;
    if let Ok(fd) = gsys::openat(g::AT_FDCWD as isize, p.c(), flags, 0o600) {
        if gsys::unlink(p.c(), 0).is_ok() {
            return Ok(fd);
        }
        sys::close(fd);
    }
    let tmpfile = g::O_TMPFILE | g::O_RDWR;
    let mut dir = PathBuf::new();
    dir.push(parent(path));
    if let Ok(fd) = gsys::openat(g::AT_FDCWD as isize, dir.c(), tmpfile, 0o600) {
        return Ok(fd);
    }
    gsys::openat(g::AT_FDCWD as isize, b"/tmp\0", tmpfile, 0o600)
}

/// A new, removed directory for `gh`: under its name when possible, else
/// in `/tmp`.
fn create_dir(path: &[u8], index: usize) -> Result<usize, Errno> {
    let mut p = PathBuf::new();
    p.push(path);
    let open_flags = g::O_RDONLY | g::O_DIRECTORY | g::O_NOFOLLOW;
    if gsys::mkdir(p.c(), 0o700).is_ok() {
        if let Ok(fd) = sys::open(p.c(), open_flags) {
            if gsys::unlink(p.c(), g::AT_REMOVEDIR).is_ok() {
                return Ok(fd);
            }
            sys::close(fd);
        }
        let _ = gsys::unlink(p.c(), g::AT_REMOVEDIR);
    }
    let mut t = PathBuf::new();
    t.push(b"/tmp/.kckpt-deleted-dir-")
        .dec(u64::from(sys::getpid()))
        .push(b"-")
        .dec(index as u64);
    gsys::mkdir(t.c(), 0o700)?;
    let fd = sys::open(t.c(), open_flags);
    let _ = gsys::unlink(t.c(), g::AT_REMOVEDIR);
    fd
}

/// Write the saved content of `gh` into `fd` and set its size.
fn fill(img: &Image, gh: &GhostRecord, fd: usize) -> Result<(), Errno> {
    sys::ftruncate(fd, gh.size)?;
    for e in extents_of(&img.view, gh) {
        sys::lseek(fd, e.file_offset)?;
        sys::sendfile_all(fd, img.fd, img.at(e.data_offset), e.len)?;
    }
    sys::lseek(fd, 0)?;
    Ok(())
}

/// Create a vanished shared file again at its path (its directory too, if
/// that is missing), with its saved content, permissions and times.
fn recreate_vanished(img: &Image, gh: &GhostRecord) {
    let path = img.view.string(gh.path).unwrap_or(b"");
    let mut p = PathBuf::new();
    p.push(path);
    match sys::open(p.c(), g::O_RDONLY | g::O_NONBLOCK) {
        Ok(fd) => {
            sys::close(fd);
            return; // still there: mapped as it is (the inode is checked)
        }
        Err(e) if e.0 != linux_raw_sys::errno::ENOENT => return,
        Err(_) => {}
    }
    let flags = g::O_RDWR | g::O_CREAT | g::O_EXCL | g::O_NOFOLLOW;
    let mut created = gsys::openat(g::AT_FDCWD as isize, p.c(), flags, 0o600);
    if created == Err(Errno(linux_raw_sys::errno::ENOENT)) {
        let mut d = PathBuf::new();
        d.push(parent(path));
        let _ = gsys::mkdir(d.c(), 0o755);
        created = gsys::openat(g::AT_FDCWD as isize, p.c(), flags, 0o600);
    }
    let done = created.and_then(|fd| {
        let r = fill(img, gh, fd)
            .and_then(|_| gsys::fchmod(fd, gh.mode & 0o7777))
            .and_then(|_| {
                gsys::futimens(
                    fd,
                    (gh.atime_sec, gh.atime_nsec),
                    (gh.mtime_sec, gh.mtime_nsec),
                )
            });
        sys::close(fd);
        r
    });
    match done {
        Ok(_) => Msg::new()
            .push(img.path)
            .s(": the mapped file ")
            .push(path)
            .s(" was missing; re-created with its saved content")
            .warn(),
        Err(e) => Msg::new()
            .push(img.path)
            .s(": the mapped file ")
            .push(path)
            .s(" is missing and cannot be re-created")
            .errno(e)
            .fail(),
    }
}

/// Create every saved file and directory (before any descriptor is
/// rebuilt); their descriptors are parked at `floor` or above. Refuses
/// (exit 126, nothing of the process changed yet) when one cannot be made.
pub fn create_all(img: &Image, floor: usize) {
    if img.view.ghosts.len() > MAX_GHOSTS {
        crate::load::refuse(img.path, "too many saved files (more than 256)");
    }
    for (i, gh) in img.view.ghosts.iter().enumerate() {
        if gh.flags & ghost_flags::VANISHING != 0 {
            recreate_vanished(img, &gh);
            continue;
        }
        let path = img.view.string(gh.path).unwrap_or(b"");
        let dir = gh.mode & S_IFMT == S_IFDIR;
        let made = if dir {
            create_dir(path, i)
        } else {
            create_file(path).and_then(|fd| match fill(img, &gh, fd) {
                Ok(()) => Ok(fd),
                Err(e) => {
                    sys::close(fd);
                    Err(e)
                }
            })
        };
        let fd = made
            .and_then(|fd| {
                let high = sys::fcntl(fd, 1030 /* F_DUPFD_CLOEXEC */, floor);
                sys::close(fd);
                high
            })
            .unwrap_or_else(|e| {
                ghost_msg(img, &gh)
                    .s(" cannot be re-created")
                    .errno(e)
                    .fail()
            });
        FDS[i].store(fd + 1, Ordering::Relaxed);
    }
}

/// Give every re-created deleted file its saved permissions, owner and
/// times, once every descriptor is open (so the permissions never stood
/// in the way of reopening it). An owner this user cannot give is a
/// warning.
pub fn finish_all(img: &Image) {
    for (i, gh) in img.view.ghosts.iter().enumerate() {
        let Some(fd) = fd_of(i) else { continue };
        if gsys::fchown(fd, gh.uid, gh.gid).is_err() {
            ghost_msg(img, &gh)
                .s(" belonged to uid ")
                .dec(gh.uid.into())
                .s(" gid ")
                .dec(gh.gid.into())
                .s("; re-created as this user's")
                .warn();
        }
        let _ = gsys::fchmod(fd, gh.mode & 0o7777);
        let _ = gsys::futimens(
            fd,
            (gh.atime_sec, gh.atime_nsec),
            (gh.mtime_sec, gh.mtime_nsec),
        );
    }
}

/// Close the parked descriptors (after the memory is rebuilt).
pub fn close_all() {
    for slot in &FDS {
        if let Some(fd) = slot.swap(0, Ordering::Relaxed).checked_sub(1) {
            sys::close(fd);
        }
    }
}
