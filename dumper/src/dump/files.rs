//! File descriptors, working directory and umask of the stopped target
//! (format 1.1 notes `NT_KCKPT_FS`, `NT_KCKPT_FDS`, `NT_KCKPT_EPOLL`), and
//! the refusal of what kckpt cannot restore.
//!
//! Sources: `/proc/PID/fd/N` (readlink: the kind), `/proc/PID/fdinfo/N`
//! (offset, flags, kind-specific state), `getsockopt` on a `pidfd_getfd`
//! copy and `sock_diag` (socket kinds and socketpair peers), `kcmp` (dup'ed
//! descriptors) and `pidfd_getfd` copies of the target's descriptors to
//! peek at unread pipe and socket bytes (`tee`, `MSG_PEEK`: nothing is
//! consumed, so `--leave-running` leaves them in place) and read memfds.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};

use nix::fcntl::{fcntl, FcntlArg, OFlag, SpliceFFlags};

use kckpt_image::ghost_fd_kind;
use kckpt_image::ghosts::procfs_of;
use kckpt_image::inotify::{InotifyWatchRecord, INOTIFY_FD_KIND};
use kckpt_image::records::*;
use kckpt_image::sockfilter::{filter_flags, SockFilterRecord};
use kckpt_image::special_fd_kind;
use kckpt_image::terminal::{JobRecord, TerminalRecord};
use kckpt_image::tree::slot_kind;
use kckpt_image::{self_fd_kind, EPOLL_SRC_CLOSED};
use kckpt_image_write::{FilesMeta, ImageWriter, StringTable};

mod inflight;
mod sockets;

use super::fdsys;
use super::procfs;
use super::terminal;
use super::threads::task_ids;
use crate::error::{Error, Result};

/// Devices reopened by path.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Largest memfd whose content is stored (bigger ones are refused).
const MAX_MEMFD: u64 = 1 << 30;

/// One descriptor being dumped.
#[derive(Clone, Debug, Default)]
struct Fd {
    rec: FdRecord,
    path: Vec<u8>,
    data: Vec<u8>,
    /// Pipe or socket inode.
    ino: u64,
    /// Memfd inode (two open files of one memfd: `REOPEN`).
    memfd_ino: u64,
    /// Named pipe: (device, inode) (two open files of one: `REOPEN`).
    fifo: Option<(u64, u64)>,
    /// TERMINAL, CTTY: the terminal's mode (its `fd` filled in at write).
    term: Option<TerminalRecord>,
    /// Inotify: its watches as fdinfo lists them (1.3).
    watches: Vec<super::inotify::Watch>,
    /// (device, inode) of the file at a path (link starting with `/`).
    dev_ino: Option<(u64, u64)>,
    /// (1.7) A Unix socket of another process of the tree restored here
    /// for it (`UNIX_END` slot), or (1.9) its separate open of a memfd or
    /// deleted file (`ADOPTED` slot): that process and its descriptor.
    source: Option<(i32, i32)>,
}

/// What [`collect`] found: the records without string references and data
/// offsets, which [`Files::write`] fills in.
#[derive(Debug, Default)]
pub struct Files {
    /// The pids of every process of the dump (this one alone outside a
    /// tree).
    pub tree_pids: Vec<i32>,
    fds: Vec<Fd>,
    epoll: Vec<EpollItemRecord>,
    cwd: Vec<u8>,
    /// The root directory when it is not `/` (1.5).
    root: Vec<u8>,
    fs: FsRecord,
    job: JobRecord,
    /// One line per descriptor or feature dumped with `--skip-unsupported`.
    pub warnings: Vec<String>,
    /// Deleted files and small shared files whose content is saved (1.3).
    pub ghosts: super::ghosts::Ghosts,
    /// File locks (1.3).
    locks: Vec<kckpt_image::LockRecord>,
    /// Socket filters (1.8): fd, instructions, locked.
    sock_filters: Vec<(u32, Vec<u8>, bool)>,
    /// (1.8) The `NT_KCKPT_SECCOMP` note of each thread under seccomp,
    /// by tid (`take_seccomp`).
    seccomp: Vec<(u32, Vec<u8>)>,
    /// Inotify watches and their paths (1.3).
    inotify: Vec<(InotifyWatchRecord, Vec<u8>)>,
    /// Owners of the descriptors' I/O signals (1.4).
    fowners: Vec<kckpt_image::FownRecord>,
    /// The process's mappings, read once here for the checks above and
    /// then for its image (empty when they could not be read).
    pub maps: Vec<procfs::MapEntry>,
}

/// What a `/proc/PID/fd/N` link says.
enum Class {
    File {
        deleted: bool,
    },
    Path,
    /// A deleted file or directory (1.3: its content is saved).
    Ghost,
    /// A procfs file: the path to reopen (1.3).
    Procfs(String),
    /// (1.8) A procfs file of another process, `owner` (restored if it is
    /// a process of the tree being dumped; else refused: `why`).
    ProcfsOther {
        owner: i32,
        why: String,
    },
    /// Shared anonymous memory (`/dev/zero (deleted)`, 1.3).
    Shmem,
    Pipe(u64),
    Socket(u64),
    Memfd(Vec<u8>, u64),
    /// A named pipe (1.3): whether its name was removed, its device and
    /// inode, its permission bits.
    Fifo {
        deleted: bool,
        key: (u64, u64),
        mode: u32,
    },
    /// A memory device at another path than the [`DEVICES`] (1.3):
    /// major, minor, permission bits, whether its name was removed.
    MemDevice(u64, u64, u32, bool),
    /// A symbolic link held with `O_PATH` (1.3), whether it was removed.
    Symlink(bool),
    /// A character device other than the [`DEVICES`]: a terminal or not
    /// (`TCGETS2` on a copy decides) with its device number.
    CharDev(u64),
    /// A terminal: its mode and device number.
    Terminal(TerminalRecord, u64),
    Eventfd,
    Epoll,
    /// A pidfd (1.3: of the process itself only).
    Pidfd,
    /// A namespace descriptor (`net:[ino]`, 1.3): the `/proc/self/ns`
    /// path of the process's own namespace, and its inode.
    Ns(String, u64),
    Timerfd,
    Signalfd,
    /// An inotify instance (1.3).
    Inotify,
    Unsupported(String),
}

fn fdinfo_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim())
}

fn hex(v: Option<&str>) -> u64 {
    v.and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        .unwrap_or(0)
}

fn dec(v: Option<&str>) -> u64 {
    v.and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// The class of a descriptor of process `pid` with link `link` and, for a
/// link starting with `/`, the metadata of `/proc/PID/fd/FD` (`None` if it
/// cannot be read); `at` (pid, descriptor) where its file is read (the
/// process's, or the dumper's copy of a file in flight).
fn classify(pid: i32, at: (i32, i32), link: &str, meta: Option<&fs::Metadata>) -> Class {
    if let Some(ino) = link
        .strip_prefix("pipe:[")
        .and_then(|s| s.strip_suffix(']'))
    {
        return Class::Pipe(ino.parse().unwrap_or(0));
    }
    if let Some(ino) = link
        .strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
    {
        return Class::Socket(ino.parse().unwrap_or(0));
    }
    if let Some(anon) = link.strip_prefix("anon_inode:") {
        return match anon {
            "[eventfd]" => Class::Eventfd,
            "[eventpoll]" => Class::Epoll,
            "[timerfd]" => Class::Timerfd,
            "[signalfd]" => Class::Signalfd,
            "[pidfd]" => Class::Pidfd,
            "inotify" => Class::Inotify,
            "[io_uring]" => Class::Unsupported("io_uring".into()),
            other => Class::Unsupported(other.trim_matches(['[', ']']).to_owned()),
        };
    }
    if let Some(name) = link.strip_prefix("/memfd:") {
        let name = name.strip_suffix(" (deleted)").unwrap_or(name);
        let ino = meta.map_or(0, |m| m.ino());
        return Class::Memfd(name.as_bytes().to_vec(), ino);
    }
    if let Some(class) = namespace(pid, link) {
        return class;
    }
    if !link.starts_with('/') {
        return Class::Unsupported(link.to_owned());
    }
    let Some(meta) = meta else {
        return Class::Unsupported(link.to_owned());
    };
    if let Some(class) = classify_special(pid, at, link, meta) {
        return class;
    }
    let ft = meta.file_type();
    let gone = meta.nlink() == 0 && link.ends_with(" (deleted)");
    if ft.is_fifo() {
        return Class::Fifo {
            deleted: gone,
            key: (meta.dev(), meta.ino()),
            mode: meta.mode() & 0o7777,
        };
    }
    if ft.is_symlink() {
        return Class::Symlink(gone);
    }
    if ft.is_char_device() && !DEVICES.contains(&link) {
        if let Some((major, minor)) = super::special::mem_device(meta.rdev()) {
            return Class::MemDevice(major, minor, meta.mode() & 0o7777, gone);
        }
    }
    if ft.is_file() {
        let deleted = meta.nlink() == 0 && link.ends_with(" (deleted)");
        Class::File { deleted }
    } else if ft.is_dir() || (ft.is_char_device() && DEVICES.contains(&link)) {
        Class::Path
    } else if ft.is_char_device() {
        Class::CharDev(meta.rdev())
    } else {
        Class::Unsupported(format!("device {link}"))
    }
}

/// A namespace descriptor (`net:[4026531833]`): the process's own
/// namespace of that kind (the same link as `/proc/PID/ns/NAME`) is
/// reopened as `/proc/self/ns/NAME`; another one is refused.
fn namespace(pid: i32, link: &str) -> Option<Class> {
    let (kind, rest) = link.split_once(":[")?;
    let ino: u64 = rest.strip_suffix(']')?.parse().ok()?;
    let names = kckpt_image::selffd::NS_NAMES;
    if !names.contains(&kind.as_bytes()) {
        return None;
    }
    // Its own kind first: `pid:[X]` is `pid`, or `pid_for_children`
    // when only that one matches.
    let own = names
        .iter()
        .filter_map(|n| std::str::from_utf8(n).ok())
        .filter(|n| n.starts_with(kind))
        .find(|n| {
            fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .is_ok_and(|l| l.as_os_str().as_encoded_bytes() == link.as_bytes())
        });
    Some(match own {
        Some(name) => Class::Ns(format!("/proc/self/ns/{name}"), ino),
        None => Class::Unsupported(format!("namespace {link}, not one of the process's own")),
    })
}

/// Kinds of format 1.3 told apart by the file system or the name: procfs
/// files, cgroup directories (refused), shared anonymous memory, SysV
/// shared memory (refused) and deleted files and directories (ghosts).
fn classify_special(pid: i32, at: (i32, i32), link: &str, meta: &fs::Metadata) -> Option<Class> {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    const DEBUGFS_MAGIC: i64 = 0x6462_6720;
    const TRACEFS_MAGIC: i64 = 0x7472_6163;
    let fs_type = nix::sys::statfs::statfs(format!("/proc/{}/fd/{}", at.0, at.1).as_str())
        .map(|s| s.filesystem_type().0)
        .unwrap_or(0);
    let deleted = link.ends_with(" (deleted)");
    if fs_type == PROC_SUPER_MAGIC && link.starts_with("/proc/") {
        if deleted {
            // The directory of a process that has exited: as any deleted
            // directory.
            return Some(if meta.is_dir() {
                Class::Ghost
            } else {
                Class::Unsupported(format!("procfs file {link} of a process that has exited"))
            });
        }
        let tids = task_ids(pid).unwrap_or_default();
        return Some(match super::ghosts::procfs_path(pid, &tids, link) {
            Ok(path) => Class::Procfs(path),
            Err(why) => match super::ghosts::procfs_owner(link) {
                Some(owner) if owner != pid && !tids.contains(&owner) => {
                    Class::ProcfsOther { owner, why }
                }
                _ => Class::Unsupported(why),
            },
        });
    }
    if meta.is_dir() && matches!(fs_type, CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC) {
        return Some(Class::Unsupported(format!("cgroup directory {link}")));
    }
    if meta.is_file()
        && !deleted
        && matches!(
            fs_type,
            CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC | SYSFS_MAGIC | DEBUGFS_MAGIC | TRACEFS_MAGIC
        )
    {
        // Files of pseudo file systems have no size: reopened by path
        // without the size check of regular files.
        return Some(Class::Procfs(link.to_owned()));
    }
    if link == "/dev/zero (deleted)" && meta.is_file() {
        return Some(Class::Shmem);
    }
    if link.starts_with("/SYSV") && meta.is_file() {
        // Opened through /proc/PID/map_files: a descriptor of the segment.
        return Some(Class::Unsupported(
            "descriptor of a SysV shared memory segment".to_owned(),
        ));
    }
    if deleted && (meta.is_file() || meta.is_dir()) {
        return Some(Class::Ghost);
    }
    None
}

/// Copy the bytes waiting in a pipe without consuming them: `tee` into a
/// scratch pipe of the same capacity, then read that.
pub(super) fn peek_pipe(read_end: &OwnedFd) -> std::io::Result<Vec<u8>> {
    let size = fcntl(read_end.as_fd(), FcntlArg::F_GETPIPE_SZ)? as usize;
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    fcntl(w.as_fd(), FcntlArg::F_SETPIPE_SZ(size as i32))?;
    let n = match nix::fcntl::tee(read_end, &w, size, SpliceFFlags::SPLICE_F_NONBLOCK) {
        Ok(n) => n,
        Err(nix::errno::Errno::EAGAIN) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut out = vec![0u8; n];
    let mut done = 0;
    while done < n {
        match nix::unistd::read(&r, &mut out[done..])? {
            0 => break,
            k => done += k,
        }
    }
    out.truncate(done);
    Ok(out)
}

fn read_memfd(file: &fs::File, size: u64) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; size as usize];
    file.read_exact_at(&mut out, 0)?;
    Ok(out)
}

/// A copy of the target's descriptor `fd` (status flags `flags`; its file
/// at `at`, (pid, descriptor)) that can be read: `pidfd_getfd` unless it
/// is write-only or `O_PATH`, then `/proc/PID/fd/FD` opened for reading.
fn readable_copy(
    at: (i32, i32),
    fd: i32,
    flags: u32,
    getfd: &dyn Fn(i32) -> Result<OwnedFd>,
) -> Result<fs::File> {
    let path_only = flags & OFlag::O_PATH.bits() as u32 != 0;
    if flags & 3 != 1 && !path_only {
        return Ok(fs::File::from(getfd(fd)?));
    }
    let (pid, afd) = at;
    fs::File::open(format!("/proc/{pid}/fd/{afd}")).map_err(|e| Error::Unsupported {
        pid,
        reason: format!(
            "cannot read the file at fd {fd}: {}",
            crate::error::io_text(&e)
        ),
    })
}

/// Save the deleted file or directory `path` at descriptor `fd` (its
/// metadata `meta`) as a ghost: its index, or why it cannot be.
fn ghost_fd(
    ghosts: &mut super::ghosts::Ghosts,
    at: (i32, i32),
    fd: i32,
    path: &str,
    meta: &fs::Metadata,
    flags: u32,
    getfd: &dyn Fn(i32) -> Result<OwnedFd>,
) -> std::result::Result<u64, String> {
    let readable = flags & 3 != 1 && flags & OFlag::O_PATH.bits() as u32 == 0;
    ghosts.add_fd(at.0, at.1, path.as_bytes(), meta, || {
        readable
            .then(|| getfd(fd).ok().map(fs::File::from))
            .flatten()
    })
}

/// The locks an `fdinfo` text lists for descriptor `fd` (those taken
/// through its open file description; `writable`: it is open for
/// writing), or why they cannot be restored (an NFS delegation). Lines of
/// waiters (`->`) are left out: the waiting thread makes its call again
/// after a restore.
///
/// A lease being broken (`BREAKING`) shows the type it is going to: its
/// own type is write when it goes to read (a reader broke a write lease),
/// else (going to none: a writer broke it) write on a descriptor open for
/// writing (a read lease needs no writer, itself included), read on one
/// open read-only (a write lease there would behave the same from now on:
/// gone when the break ends).
fn locks_of(
    fd: u32,
    info: &str,
    writable: bool,
) -> std::result::Result<Vec<kckpt_image::LockRecord>, String> {
    use kckpt_image::locks::lease_break;
    use kckpt_image::{lock_kind, lock_type, LockRecord};
    let mut out = Vec::new();
    for line in info.lines().filter_map(|l| l.strip_prefix("lock:")) {
        // 1: POSIX  ADVISORY  WRITE 123 fe:00:456 10 19
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.get(1) == Some(&"->") {
            continue;
        }
        let kind = match w.get(1).copied() {
            Some("FLOCK") => lock_kind::FLOCK,
            Some("POSIX") => lock_kind::POSIX,
            Some("OFDLCK") => lock_kind::OFD,
            Some("LEASE") if !matches!(w.get(2), Some(&"ACTIVE") | Some(&"BREAKING")) => {
                return Err(format!("file lease in state {}", w.get(2).unwrap_or(&"?")))
            }
            Some("LEASE") => lock_kind::LEASE,
            Some("DELEG") => return Err("file delegation".to_owned()),
            other => return Err(format!("file lock of kind {}", other.unwrap_or("?"))),
        };
        let breaking = kind == lock_kind::LEASE && w.get(2) == Some(&"BREAKING");
        let (ty, to) = match (breaking, w.get(3).copied()) {
            (false, Some("READ")) => (lock_type::READ, lease_break::NONE),
            (false, Some("WRITE")) => (lock_type::WRITE, lease_break::NONE),
            (true, Some("READ")) => (lock_type::WRITE, lease_break::TO_READ),
            (true, Some("UNLCK")) if writable => (lock_type::WRITE, lease_break::TO_NONE),
            (true, Some("UNLCK")) => (lock_type::READ, lease_break::TO_NONE),
            (_, other) => return Err(format!("file lock of type {}", other.unwrap_or("?"))),
        };
        let (start, len) = if matches!(kind, lock_kind::FLOCK | lock_kind::LEASE) {
            (0, 0)
        } else {
            let start: u64 = w.get(6).and_then(|s| s.parse().ok()).unwrap_or(0);
            match w.get(7).copied() {
                Some("EOF") | None => (start, 0),
                Some(end) => {
                    let end: u64 = end.parse().unwrap_or(start);
                    (start, end.saturating_sub(start) + 1)
                }
            }
        };
        out.push(LockRecord {
            fd,
            kind,
            lock_type: ty,
            lease_break: to,
            start,
            len,
        });
    }
    Ok(out)
}

/// Things about the process (not one descriptor) that kckpt cannot restore,
/// from its `status` text and its mappings `entries` among others.
fn unsupported_features(
    pid: i32,
    status: &str,
    entries: &[procfs::MapEntry],
    tree_pids: Option<&[i32]>,
) -> Vec<String> {
    let in_tree = tree_pids.is_some();
    let mut out = Vec::new();
    let children: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if !children.is_empty() && !in_tree {
        out.push(format!("child process {}", children.join(", ")));
    }
    let tids = task_ids(pid).unwrap_or_default();
    let mut traced: Vec<i32> = Vec::new();
    for (tid, tracer) in all_tracers() {
        if tids.contains(&tracer) && !traced.contains(&tid) {
            traced.push(tid);
        }
    }
    traced.sort_unstable();
    for tid in traced {
        out.push(format!("ptrace of pid {tid}"));
    }
    let uncovered = entries.iter().find(|e| {
        !e.shared
            && e.name == "/dev/zero (deleted)"
            && !super::memory::covered_by_shared(entries, e)
    });
    if let Some(at) = uncovered.map(|e| e.start) {
        // Opened through /proc/PID/map_files and mapped privately: the
        // pages it has not written are the object's, saved only through
        // its shared mappings.
        out.push(format!(
            "private mapping of shared anonymous memory at {at:#x} whose object is not mapped shared over it"
        ));
    }
    // SysV IPC objects are saved (`sysv`, `sysv_ipc`: they name what
    // they refuse).
    out.extend(super::kstate::unsupported(
        pid,
        tree_pids.unwrap_or_default(),
    ));
    out.extend(unreadable_mapped_files(status, entries));
    out
}

/// Mapped files the process's own user may not read (an execute-only
/// program it executed: mode 0111): the restore reopens every mapped
/// file, and a restore by that user would be refused after the dump
/// killed the process. A process with `CAP_DAC_OVERRIDE` or
/// `CAP_DAC_READ_SEARCH` (root) is not checked.
fn unreadable_mapped_files(status: &str, entries: &[procfs::MapEntry]) -> Vec<String> {
    let ids = |key| -> Vec<u32> {
        fdinfo_field(status, key)
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let caps = super::process::effective_caps(status);
    let (uid, gid, groups) = (ids("Uid"), ids("Gid"), ids("Groups"));
    let (Some(&fsuid), Some(&fsgid)) = (uid.get(3), gid.get(3)) else {
        return Vec::new();
    };
    if caps & 0b110 != 0 {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for e in entries.iter().filter(|e| e.name.starts_with('/')) {
        let Ok(m) = fs::metadata(&e.name) else {
            continue; // deleted or replaced: other checks name it
        };
        if m.ino() != e.inode || !m.is_file() {
            continue;
        }
        let bit = if m.uid() == fsuid {
            0o400
        } else if m.gid() == fsgid || groups.contains(&m.gid()) {
            0o040
        } else {
            0o004
        };
        let what = format!(
            "mapped file {} (mode {:04o}) not readable by the process's user (uid {fsuid}): a restore by that user could not map it",
            e.name,
            m.mode() & 0o7777
        );
        if m.mode() & bit == 0 && !out.contains(&what) {
            out.push(what);
        }
    }
    out
}

/// `(tid, TracerPid)` of every traced task of the system (the tasks this
/// process can see in `/proc`).
fn all_tracers() -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    let procs = fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in procs.filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok()) {
        for tid in task_ids(p).unwrap_or_default() {
            let status =
                fs::read_to_string(format!("/proc/{p}/task/{tid}/status")).unwrap_or_default();
            let tracer = dec(fdinfo_field(&status, "TracerPid")) as i32;
            if tracer != 0 {
                out.push((tid, tracer));
            }
        }
    }
    out
}

/// A thread of `pid` that another process traces, with that tracer's pid
/// and command name: `PTRACE_SEIZE` would fail with `EPERM`.
pub fn traced_by(pid: i32) -> Option<(i32, i32, String)> {
    task_ids(pid)
        .unwrap_or_default()
        .into_iter()
        .find_map(|tid| {
            let status =
                fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
            let tracer = dec(fdinfo_field(&status, "TracerPid")) as i32;
            (tracer != 0).then(|| {
                let comm = fs::read_to_string(format!("/proc/{tracer}/comm")).unwrap_or_default();
                (tid, tracer, comm.trim().to_owned())
            })
        })
}

/// Inspect the stopped target's descriptors, working directory and umask.
/// Anything kckpt cannot restore is refused with one error naming every
/// offending descriptor and feature, or with `skip_unsupported` recorded as
/// a placeholder (`/dev/null` at restore) plus a warning. `tree`: the
/// process is dumped with its children (a process tree), which are not
/// refused then; its descriptors shared with other processes of the tree
/// are `TREE_SHARED` records of their slots.
// The loops walk `files.fds`, `classes` and `infos` (parallel) by index.
#[allow(clippy::needless_range_loop)]
pub fn collect(
    pid: i32,
    skip_unsupported: bool,
    ghost_limit: u64,
    tree: Option<&super::shared::TreeFds>,
    external: &[u32],
) -> Result<Files> {
    let mut files = Files {
        tree_pids: tree.map_or_else(|| vec![pid], |t| t.pids.clone()),
        ghosts: super::ghosts::Ghosts::new(ghost_limit),
        ..Files::default()
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let maps = procfs::maps(pid).unwrap_or_default();
    let mut unsupported: Vec<(Option<i32>, String)> =
        unsupported_features(pid, &status, &maps, tree.map(|t| &t.pids[..]))
            .into_iter()
            .map(|f| (None, f))
            .collect();
    // Seccomp is per thread (a filter installed by one thread without
    // TSYNC is in no other's status): each thread's note, read once here
    // (the threads are seized), or what cannot be saved, by name.
    for tid in task_ids(pid).unwrap_or_default() {
        match super::seccomp::note(tid) {
            Ok(Some(note)) => files.seccomp.push((tid as u32, note)),
            Ok(None) => {}
            Err(reason) if unsupported.iter().any(|(_, r)| *r == reason) => {}
            Err(reason) => unsupported.push((None, reason)),
        }
    }

    files.fs.umask = fdinfo_field(&status, "Umask")
        .and_then(|v| u32::from_str_radix(v, 8).ok())
        .unwrap_or(0o022);
    let cwd_path = procfs::proc_path(pid, "cwd");
    let cwd = fs::read_link(&cwd_path).map_err(|source| Error::Read {
        path: cwd_path,
        source,
    })?;
    let mut cwd = cwd.as_os_str().as_encoded_bytes().to_vec();
    if let Some(stripped) = cwd.strip_suffix(b" (deleted)") {
        let cwd_fs = nix::sys::statfs::statfs(format!("/proc/{pid}/cwd").as_str())
            .map(|s| s.filesystem_type().0)
            .unwrap_or(0);
        // A removed directory, or that of a process that has exited
        // (procfs keeps its link count).
        if let Some(m) = fs::metadata(format!("/proc/{pid}/cwd"))
            .ok()
            .filter(|m| m.nlink() == 0 || cwd_fs == 0x9fa0)
        {
            files.fs.flags |= fs_flags::CWD_DELETED;
            cwd = stripped.to_vec();
            files.ghosts.add_cwd(&cwd, &m);
        }
    }
    files.cwd = cwd;
    // The root directory (1.5): changed by `chroot`, restored with it.
    let root_path = procfs::proc_path(pid, "root");
    let root = fs::read_link(&root_path).map_err(|source| Error::Read {
        path: root_path,
        source,
    })?;
    let root = root.as_os_str().as_encoded_bytes();
    if root.ends_with(b" (deleted)") {
        return Err(Error::Unsupported {
            pid,
            reason: format!(
                "its root directory (chroot) {} was deleted",
                String::from_utf8_lossy(root)
            ),
        });
    }
    if root != b"/" {
        files.root = root.to_vec();
    }
    files.job = terminal::job(pid, &procfs::stat(pid)?);
    if terminal::job_control_shell(&files.job, &status) {
        files.warnings.push(
            "warning: the process is a job-control shell: it needs its pid again, \
             restore it with kckpt restore --new-pid-ns (KCKPT_NEW_PID_NS=1)"
                .to_owned(),
        );
    }
    files.ghosts.add_vanishing(&maps);
    files.maps = maps;

    let fd_dir = procfs::proc_path(pid, "fd");
    let mut numbers: Vec<i32> = fs::read_dir(&fd_dir)
        .map_err(|source| Error::Read {
            path: fd_dir.clone(),
            source,
        })?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    numbers.sort_unstable();

    let pidfd = fdsys::pidfd_open(pid).map_err(|e| Error::Unsupported {
        pid,
        reason: format!("pidfd_open failed: {}", e.desc()),
    })?;
    let getfd_real = |fd: i32| {
        fdsys::pidfd_getfd(pidfd.as_raw_fd(), fd).map_err(|e| Error::Unsupported {
            pid,
            reason: format!("cannot copy its fd {fd} (pidfd_getfd): {}", e.desc()),
        })
    };
    // (1.7) Files in flight in the queues of its Unix sockets: described
    // as descriptors above every one it holds, read from the copies the
    // peeks left here (`inflight`).
    // Synthetic numbers come above the Unix ends of other processes it
    // restores for them (`adopted`, numbered above its own).
    let floor = tree
        .into_iter()
        .flat_map(|t| t.adopted.iter().map(|a| a.fd + 1))
        .max()
        .unwrap_or(0);
    let flight = inflight::InFlight::gather(
        pid,
        &numbers,
        &getfd_real,
        tree.map_or(&[][..], |t| &t.pids[..]),
        &|fd| tree.is_some_and(|t| t.slots.contains_key(&(fd as u32))),
        floor,
    );
    // (1.9) Separate opens of a memfd or deleted file by other processes
    // of the tree, restored here with this process's own (one object):
    // classified as its own descriptors are, read where they are.
    let adopted_files: HashMap<i32, (i32, i32)> = tree
        .map_or(&[][..], |t| &t.adopted[..])
        .iter()
        .filter(|a| a.kind == slot_kind::ADOPTED)
        .map(|a| (a.fd as i32, (a.pid, a.src_fd)))
        .collect();
    let mut adopted_numbers: Vec<i32> = adopted_files.keys().copied().collect();
    adopted_numbers.sort_unstable();
    numbers.extend(adopted_numbers);
    numbers.extend(flight.numbers());
    let getfd = |fd: i32| match flight.copy(fd) {
        Some(c) => c.try_clone().map_err(|e| Error::Unsupported {
            pid,
            reason: format!(
                "cannot copy a descriptor in flight: {}",
                crate::error::io_text(&e)
            ),
        }),
        None => match adopted_files.get(&fd) {
            Some(&(src, sfd)) => adopted_copy(src, sfd),
            None => getfd_real(fd),
        },
    };
    let mut classes = Vec::new();
    let mut lossy: Vec<(i32, String, bool)> = Vec::new();
    let mut links = Vec::new();
    let mut infos = Vec::new();
    // Exited processes' pidfs inodes -> the first pidfd of each.
    let mut dead_pidfds: std::collections::HashMap<u64, u32> = Default::default();
    for &fd in &numbers {
        // Where its file is read: the process's descriptor, or (in
        // flight) this process's copy.
        let (apid, afd) = adopted_files
            .get(&fd)
            .copied()
            .unwrap_or_else(|| flight.at(fd));
        let Ok(link) = fs::read_link(format!("/proc/{apid}/fd/{afd}")) else {
            continue; // closed meanwhile (cannot happen while stopped)
        };
        let link = link.to_string_lossy().into_owned();
        let info = fs::read_to_string(format!("/proc/{apid}/fdinfo/{afd}")).unwrap_or_default();
        let flags = fdinfo_field(&info, "flags")
            .and_then(|v| u32::from_str_radix(v, 8).ok())
            .unwrap_or(0);
        let rec = FdRecord {
            fd: fd as u32,
            flags: flags & !(OFlag::O_CLOEXEC.bits() as u32),
            fd_flags: if flags & OFlag::O_CLOEXEC.bits() as u32 != 0 {
                fd_flags::CLOEXEC
            } else {
                0
            },
            pos: dec(fdinfo_field(&info, "pos")),
            dup_of: FD_NO_DUP,
            peer: FD_NO_DUP,
            ..Default::default()
        };
        // One stat per descriptor at a path: its class, a ghost and the
        // inotify watches on it use it.
        let meta = if link.starts_with('/') {
            fs::metadata(format!("/proc/{apid}/fd/{afd}")).ok()
        } else {
            None
        };
        let mut rec = rec;
        if flight.is_synthetic(fd) {
            rec.fd_flags = fd_flags::IN_FLIGHT;
        }
        let source = adopted_files.get(&fd).copied();
        if source.is_some() {
            rec.fd_flags = fd_flags::CLOEXEC | fd_flags::TREE_ONLY;
        }
        let mut d = Fd {
            rec,
            dev_ino: meta.as_ref().map(|m| (m.dev(), m.ino())),
            source,
            ..Default::default()
        };
        if let Some(&slot) = tree.and_then(|t| t.slots.get(&(fd as u32))) {
            // Shared with other processes of the tree: the inherited slot.
            d.rec.kind = kckpt_image::tree::TREE_SHARED_FD_KIND;
            d.rec.args[0] = u64::from(slot);
            d.path = link.as_bytes().to_vec();
            classes.push(Class::Path);
            links.push(link);
            infos.push(info);
            files.fds.push(d);
            continue;
        }
        let class = match classify(pid, (apid, afd), &link, meta.as_ref()) {
            Class::CharDev(rdev) => char_device(&getfd(fd)?, rdev, &link),
            other => other,
        };
        let mut class = match class {
            // Above 2, only the controlling terminal when it is a pseudo-
            // terminal (reopened as the restorer's /dev/tty).
            Class::Terminal(_, rdev)
                if fd > 2
                    && !(terminal::is_dev_tty(rdev)
                        || terminal::is_ctty(rdev, files.job.tty_nr)
                            && terminal::is_pty_slave(rdev)) =>
            {
                let why = if terminal::is_ctty(rdev, files.job.tty_nr) {
                    "the controlling terminal, not a pseudo-terminal"
                } else {
                    "not the controlling terminal"
                };
                Class::Unsupported(format!("terminal {link} ({why})"))
            }
            other => other,
        };
        let mut refused: Option<String> = None;
        match &class {
            Class::File { deleted } => {
                d.rec.kind = fd_kind::FILE;
                let p = link.strip_suffix(" (deleted)").filter(|_| *deleted);
                d.path = p.unwrap_or(&link).as_bytes().to_vec();
                if *deleted {
                    d.rec.fd_flags |= fd_flags::DELETED;
                }
            }
            Class::Path => {
                d.rec.kind = fd_kind::PATH;
                d.path = link.as_bytes().to_vec();
            }
            Class::Ghost => {
                let path = link.strip_suffix(" (deleted)").unwrap_or(&link);
                d.path = path.as_bytes().to_vec();
                d.rec.kind = ghost_fd_kind::GHOST;
                match meta.as_ref() {
                    // Unlinked from this name, linked under another.
                    Some(m) if m.nlink() > 0 && m.is_file() => {
                        match super::ghosts::other_link(path, m) {
                            Some(other) => {
                                d.rec.kind = fd_kind::FILE;
                                d.path = other.into_bytes();
                            }
                            None => {
                                refused = Some(format!(
                                    "file {path} unlinked from that name but linked \
                                     elsewhere, under a name kckpt cannot find"
                                ))
                            }
                        }
                    }
                    Some(m) => {
                        let flags = d.rec.flags;
                        match ghost_fd(&mut files.ghosts, (apid, afd), fd, path, m, flags, &getfd) {
                            Ok(i) => d.rec.args[0] = i,
                            Err(what) => refused = Some(what),
                        }
                    }
                    // Not reached: a ghost is classed from its metadata.
                    None => refused = Some(format!("deleted file {path}: no metadata")),
                }
            }
            Class::Procfs(path) => {
                d.rec.kind = ghost_fd_kind::PROCFS;
                d.path = path.as_bytes().to_vec();
            }
            // Opened again once the whole tree exists (trees keep their
            // pids).
            Class::ProcfsOther { owner, why } => {
                let own = [pid];
                let tree_pids = tree.map_or(&own[..], |t| &t.pids[..]);
                if tree.is_some_and(|t| t.pids.contains(owner)) {
                    d.rec.kind = ghost_fd_kind::PROCFS;
                    d.path = link.as_bytes().to_vec();
                    d.rec.args = [procfs_of::TREE, *owner as u64, 0, 0];
                } else {
                    // (1.9) Of a process the dump leaves alone: opened
                    // again while that process lives.
                    match outside_start(pid, *owner, tree_pids, tree.is_some()) {
                        Ok(start) => {
                            d.rec.kind = ghost_fd_kind::PROCFS;
                            d.path = link.as_bytes().to_vec();
                            d.rec.args = [procfs_of::OUTSIDE, *owner as u64, start, 0];
                        }
                        Err("") => refused = Some(why.clone()),
                        Err(more) => refused = Some(format!("{why} ({more})")),
                    }
                }
            }
            Class::Shmem => {
                d.rec.kind = ghost_fd_kind::SHMEM;
                d.path = b"/dev/zero (deleted)".to_vec();
                let copy = readable_copy((apid, afd), fd, d.rec.flags, &getfd)?;
                let size = copy.metadata().map(|m| m.len()).unwrap_or(0);
                if size > MAX_MEMFD {
                    refused = Some(format!("shared memory of {size} bytes"));
                } else {
                    d.rec.args[0] = size;
                    d.data = read_memfd(&copy, size).map_err(|e| Error::Unsupported {
                        pid,
                        reason: format!(
                            "cannot read the shared memory at fd {fd}: {}",
                            crate::error::io_text(&e)
                        ),
                    })?;
                }
            }
            Class::Pipe(ino) => {
                d.rec.kind = fd_kind::PIPE;
                d.ino = *ino;
            }
            Class::Fifo { deleted, key, mode } => {
                d.rec.kind = special_fd_kind::FIFO;
                d.path = strip_deleted(&link, *deleted);
                d.fifo = Some(*key);
                d.rec.args[1] = u64::from(*mode);
                if *deleted {
                    d.rec.fd_flags |= fd_flags::DELETED;
                }
            }
            Class::MemDevice(major, minor, mode, deleted) => {
                d.rec.kind = special_fd_kind::DEVICE;
                d.path = strip_deleted(&link, *deleted);
                d.rec.args[..3].copy_from_slice(&[*major, *minor, u64::from(*mode)]);
                if *deleted {
                    d.rec.fd_flags |= fd_flags::DELETED;
                }
            }
            Class::Symlink(deleted) => {
                d.rec.kind = special_fd_kind::SYMLINK;
                d.path = strip_deleted(&link, *deleted);
                if *deleted {
                    d.rec.fd_flags |= fd_flags::DELETED;
                }
                let copy = getfd(fd)?;
                match nix::fcntl::readlinkat(copy.as_fd(), "") {
                    Ok(t) if !t.is_empty() && t.len() < 4096 => {
                        d.data = t.as_encoded_bytes().to_vec()
                    }
                    _ => refused = Some(format!("symbolic link {link} (its target unreadable)")),
                }
            }
            Class::Socket(ino) => {
                d.ino = *ino;
                d.rec.kind = fd_kind::SOCKETPAIR;
            }
            Class::Memfd(name, ino) => {
                d.rec.kind = fd_kind::MEMFD;
                d.path = name.clone();
                d.memfd_ino = *ino;
            }
            Class::Terminal(t, rdev) => {
                // fd 0-2: the restorer's terminal with this mode; above:
                // the controlling terminal, reopened as /dev/tty.
                d.rec.kind = if fd <= 2 {
                    fd_kind::TERMINAL
                } else {
                    fd_kind::CTTY
                };
                d.path = link.as_bytes().to_vec();
                d.term = Some(TerminalRecord {
                    flags: terminal::flags_for(*rdev, &files.job),
                    ..*t
                });
            }
            Class::Eventfd => {
                d.rec.kind = fd_kind::EVENTFD;
                d.rec.args[0] = hex(fdinfo_field(&info, "eventfd-count"));
                d.rec.args[1] = dec(fdinfo_field(&info, "eventfd-semaphore"));
            }
            Class::Epoll => {
                d.rec.kind = fd_kind::EPOLL;
                let mut inodes = None;
                let mut seen: Vec<u32> = Vec::new();
                for line in info.lines().filter(|l| l.starts_with("tfd:")) {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    // tfd: N events: X data: Y  pos:P ino:I sdev:S
                    let get = |k: &str| f.iter().position(|w| *w == k).and_then(|i| f.get(i + 1));
                    let tfd: u32 = get("tfd:").and_then(|s| s.parse().ok()).unwrap_or(0);
                    let ino = f
                        .iter()
                        .find_map(|w| w.strip_prefix("ino:"))
                        .map_or(0, |s| u64::from_str_radix(s, 16).unwrap_or(0));
                    // Items added with the same number: the kernel (and
                    // kcmp's `toff`) counts them in this order.
                    let toff = seen.iter().filter(|&&t| t == tfd).count() as u32;
                    seen.push(tfd);
                    let at = |n: i32| flight.at(n);
                    let src = epoll_source((apid, afd), tfd, toff, ino, &numbers, &at, &mut inodes);
                    let item = EpollItemRecord {
                        epfd: fd as u32,
                        tfd,
                        events: hex(get("events:").copied()) as u32,
                        src: src.unwrap_or(0),
                        data: hex(get("data:").copied()),
                    };
                    if src.is_none() {
                        unsupported.push((
                            Some(fd),
                            format!(
                                "epoll watching fd {tfd}, which was closed since, \
                                 with its file at no other descriptor"
                            ),
                        ));
                    }
                    files.epoll.push(item);
                }
            }
            Class::Timerfd => {
                d.rec.kind = fd_kind::TIMERFD;
                d.rec.args = super::timers::timerfd_args(apid, afd, &getfd(fd)?)?;
            }
            Class::Signalfd => {
                d.rec.kind = fd_kind::SIGNALFD;
                d.rec.args[0] = hex(fdinfo_field(&info, "sigmask"));
            }
            Class::Inotify => {
                d.rec.kind = INOTIFY_FD_KIND;
                let queued = super::inotify::unread(&getfd(fd)?);
                if queued > 0 {
                    refused = Some(format!("inotify with {queued} bytes of unread events"));
                }
                d.watches = super::inotify::parse(&info);
            }
            Class::Pidfd => {
                d.rec.kind = self_fd_kind::PIDFD;
                d.rec.pos = 0;
                let tree_pids = tree.map_or(&[][..], |t| &t.pids[..]);
                let copy = getfd(fd)?;
                match pidfd_args(pid, &info, d.rec.flags, tree_pids, &copy) {
                    Ok(args) => d.rec.args = args,
                    Err(why) => refused = Some(why),
                }
                // Pidfds opened separately on one exited process share
                // its pidfs inode: one stand-in at restore.
                if d.rec.args[0] == kckpt_image::selffd::pidfd_target::DEAD {
                    let ino = nix::sys::stat::fstat(&copy).map_or(0, |st| st.st_ino);
                    if let Some(other) = dead_pidfd_elsewhere(ino, pid, tree_pids) {
                        refused = Some(format!(
                            "pidfd of an exited process that process {other} of the tree \
                             also holds (one stand-in for both is not restored)"
                        ));
                    }
                    match dead_pidfds.get(&ino) {
                        Some(&first) if ino != 0 => {
                            d.rec.args[2] =
                                kckpt_image::selffd::pidfd_target::SAME_AS | u64::from(first)
                        }
                        _ => {
                            dead_pidfds.insert(ino, fd as u32);
                        }
                    }
                }
            }
            Class::Ns(path, ino) => {
                d.rec.kind = self_fd_kind::NSFD;
                d.path = path.as_bytes().to_vec();
                d.rec.args[0] = *ino;
            }
            Class::Unsupported(_) | Class::CharDev(_) => d.rec.kind = fd_kind::PLACEHOLDER,
        }
        if flight.is_synthetic(fd) && refused.is_none() {
            let shared = flight.shared_with(fd);
            let of_tree = kckpt_image::files::of_tree_process(&d.rec);
            refused = match &class {
                // Made once the whole tree exists, after the queues.
                _ if of_tree && d.rec.kind == self_fd_kind::PIDFD => {
                    Some("pidfd of another process of the tree".to_owned())
                }
                _ if of_tree => Some(format!("procfs file {link} of another process of the tree")),
                _ if shared.is_some() => Some(format!(
                    "{link} also held by pid {} of the dump, or in flight in its queues (its \
                     open file description would not be shared)",
                    shared.unwrap_or(0)
                )),
                Class::Fifo { .. } => Some(format!("named pipe {link}")),
                Class::Inotify => Some("inotify instance".to_owned()),
                Class::Terminal(..) => Some(format!("terminal {link}")),
                _ => None,
            };
        }
        if let Some(what) = refused {
            class = Class::Unsupported(what);
            d.rec.kind = fd_kind::PLACEHOLDER;
            d.rec.fd_flags &= !fd_flags::DELETED;
        }
        classes.push(class);
        links.push(link);
        infos.push(info);
        files.fds.push(d);
    }

    // (1.7) Unix sockets of other processes of the tree restored here.
    for a in tree.map_or(&[][..], |t| &t.adopted[..]) {
        if a.kind != slot_kind::UNIX_END {
            continue;
        }
        let (src, sfd) = (a.pid, a.src_fd);
        let link = fs::read_link(format!("/proc/{src}/fd/{sfd}"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let info = fs::read_to_string(format!("/proc/{src}/fdinfo/{sfd}")).unwrap_or_default();
        let flags = fdinfo_field(&info, "flags")
            .and_then(|v| u32::from_str_radix(v, 8).ok())
            .unwrap_or(2);
        let ino = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        files.fds.push(Fd {
            rec: FdRecord {
                fd: a.fd,
                kind: fd_kind::SOCKETPAIR,
                flags: flags & !(OFlag::O_CLOEXEC.bits() as u32),
                fd_flags: fd_flags::CLOEXEC | fd_flags::TREE_ONLY,
                dup_of: FD_NO_DUP,
                peer: FD_NO_DUP,
                ..Default::default()
            },
            ino,
            source: Some((src, sfd)),
            ..Default::default()
        });
        classes.push(Class::Socket(ino));
        links.push(link);
        infos.push(String::new());
    }

    // Shared open file descriptions (dup): same link, kcmp says equal.
    // (Files in flight are each their own already.)
    for i in 0..files.fds.len() {
        if files.fds[i].source.is_some() || flight.is_synthetic(files.fds[i].rec.fd as i32) {
            continue;
        }
        for j in 0..i {
            if links[i] == links[j]
                && files.fds[j].rec.dup_of == FD_NO_DUP
                && fdsys::same_file(pid, files.fds[i].rec.fd as i32, files.fds[j].rec.fd as i32)
            {
                files.fds[i].rec.dup_of = files.fds[j].rec.fd;
                break;
            }
        }
    }

    // File locks (1.3), through the descriptor that took each.
    for i in 0..files.fds.len() {
        let r = files.fds[i].rec;
        let lockable = matches!(r.kind, fd_kind::FILE | fd_kind::PATH | ghost_fd_kind::GHOST);
        if r.dup_of != FD_NO_DUP || !lockable {
            continue;
        }
        match locks_of(r.fd, &infos[i], r.flags & 3 != 0) {
            // A file in flight is closed before its locks would be taken;
            // one restored here for another process would take them here.
            Ok(l) if !l.is_empty() && flight.is_synthetic(r.fd as i32) => {
                classes[i] = Class::Unsupported("file with a lock (flock, OFD lock)".into());
                files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
            }
            Ok(l) if !l.is_empty() && files.fds[i].source.is_some() => {
                classes[i] = Class::Unsupported("memfd or deleted file with a lock".into());
                files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
            }
            Ok(mut l) => files.locks.append(&mut l),
            Err(what) => {
                classes[i] = Class::Unsupported(what);
                files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
            }
        }
    }

    let tree_pids = tree.map_or(&[][..], |t| &t.pids[..]);
    fifos(pid, &mut files, &mut classes, &getfd, tree_pids)?;
    // Inotify watches (1.3): each inode through a descriptor of the
    // process open on it, or a path (not a file in flight: closed before
    // the watches are added).
    let open: Vec<(u32, u64, u64)> = files
        .fds
        .iter()
        .filter(|f| {
            f.rec.dup_of == FD_NO_DUP
                && f.rec.fd_flags & fd_flags::IN_FLIGHT == 0
                && matches!(
                    f.rec.kind,
                    fd_kind::FILE | fd_kind::PATH | ghost_fd_kind::GHOST
                )
        })
        .filter_map(|f| f.dev_ino.map(|(dev, ino)| (f.rec.fd, dev, ino)))
        .collect();
    for i in 0..files.fds.len() {
        let r = files.fds[i].rec;
        if r.dup_of != FD_NO_DUP || r.kind != INOTIFY_FD_KIND {
            continue;
        }
        match super::inotify::resolve(pid, r.fd, &files.fds[i].watches, &open) {
            Ok(w) => files.inotify.extend(w.into_iter().map(|w| (w.rec, w.path))),
            Err(what) => {
                classes[i] = Class::Unsupported(what);
                files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
            }
        }
    }

    // Pipe and socket peers inside the process.
    let index_of_ino = |fds: &[Fd], ino: u64, skip: usize, want_write: Option<bool>| {
        fds.iter().enumerate().position(|(k, f)| {
            k != skip
                && f.ino == ino
                && f.rec.dup_of == FD_NO_DUP
                && f.rec.kind != fd_kind::REOPEN
                && want_write.is_none_or(|w| (f.rec.flags & 3 == 1) == w)
        })
    };
    for i in 0..files.fds.len() {
        let (kind, ino, dup) = (
            files.fds[i].rec.kind,
            files.fds[i].ino,
            files.fds[i].rec.dup_of,
        );
        if dup != FD_NO_DUP {
            continue;
        }
        match kind {
            fd_kind::PIPE => {
                let write = files.fds[i].rec.flags & 3 == 1;
                // Another open file description of an end the process
                // already holds (opened again through /proc/PID/fd): its
                // own flags (O_NONBLOCK) and identity.
                if let Some(j) = index_of_ino(&files.fds, ino, i, Some(write)).filter(|&j| j < i) {
                    reopen_of(&mut files.fds, i, j);
                    continue;
                }
                let outside = tree.and_then(|t| t.outside.get(&ino));
                match index_of_ino(&files.fds, ino, i, Some(!write)) {
                    Some(j) => files.fds[i].rec.peer = files.fds[j].rec.fd,
                    // (1.5) The other end is closed everywhere (a reader
                    // whose writers all exited, e.g. make's pipe from a
                    // job that just ended): restored as a pipe whose other
                    // end is closed, with the bytes still unread.
                    None if outside.is_none()
                        && fdsys::pipe_partner_gone(
                            getfd(files.fds[i].rec.fd as i32)?.as_fd(),
                            write,
                        ) =>
                    {
                        files.fds[i].rec.peer = FD_NO_DUP;
                    }
                    None => {
                        // A single process: look for the holder now.
                        let found = match outside {
                            Some(o) => Some(o.clone()),
                            None => super::shared::outside_holders(
                                &std::collections::HashSet::from([pid]),
                                &std::collections::HashSet::from([ino]),
                            )
                            .remove(&ino),
                        };
                        let why = match found {
                            Some((p, comm)) if p != 0 => match outside {
                                Some(_) => format!("pipe to another process (pid {p}, {comm})"),
                                None => "pipe to another process".to_owned(),
                            },
                            // Root sees every process: nobody holds the
                            // other end, only the kernel does.
                            // (1.7: the queues of its own sockets are
                            // read, their files in flight are here.)
                            _ if nix::unistd::geteuid().is_root() => "pipe whose other end no \
                                process holds (in flight in the queue of a Unix socket the dump \
                                does not hold, SCM_RIGHTS, or registered in an io_uring)"
                                .to_owned(),
                            _ => "pipe to another process (held by a process kckpt cannot see, \
                                  or in flight in the queue of a Unix socket the dump does not \
                                  hold)"
                                .to_owned(),
                        };
                        classes[i] = Class::Unsupported(why);
                        files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
                    }
                }
                if !write && files.fds[i].rec.kind == fd_kind::PIPE {
                    let copy = getfd(files.fds[i].rec.fd as i32)?;
                    files.fds[i].data = peek_pipe(&copy).map_err(|e| Error::Unsupported {
                        pid,
                        reason: format!(
                            "cannot read the pipe at fd {}: {}",
                            files.fds[i].rec.fd,
                            crate::error::io_text(&e)
                        ),
                    })?;
                    files.fds[i].rec.args[0] =
                        fcntl(copy.as_fd(), FcntlArg::F_GETPIPE_SZ).unwrap_or(0) as u64;
                }
            }
            fd_kind::SOCKETPAIR => {
                let tree_pids = tree.map_or(&[][..], |t| &t.pids[..]);
                let copy = match files.fds[i].source {
                    Some((src, sfd)) => adopted_copy(src, sfd)?,
                    None => getfd(files.fds[i].rec.fd as i32)?,
                };
                if flight.is_synthetic(files.fds[i].rec.fd as i32) {
                    // Made after the queues are refilled: not in flight.
                    if let Some(what) = inflight::refused_socket(&copy) {
                        classes[i] = Class::Unsupported(what);
                        files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
                        continue;
                    }
                }
                // Its filter and lock (1.8), through the same copy; kept
                // if it stays a socket (`Files::write`).
                let filter = fdsys::socket_filter(copy.as_raw_fd());
                sockets::classify(
                    &mut files.fds,
                    &mut classes,
                    &mut lossy,
                    i,
                    pid,
                    tree_pids,
                    copy,
                    &flight,
                )?;
                if files.fds[i].rec.kind != fd_kind::PLACEHOLDER {
                    sock_filter(&mut files, &mut classes[i], i, pid, &flight, filter);
                }
            }
            fd_kind::MEMFD => {
                let same = files.fds[..i].iter().position(|f| {
                    f.rec.kind == fd_kind::MEMFD
                        && f.rec.dup_of == FD_NO_DUP
                        && f.memfd_ino != 0
                        && f.memfd_ino == files.fds[i].memfd_ino
                });
                if let Some(j) = same {
                    reopen_of(&mut files.fds, i, j);
                    continue;
                }
                let copy = fs::File::from(getfd(files.fds[i].rec.fd as i32)?);
                let meta = copy.metadata().ok();
                let size = meta.as_ref().map_or(0, |m| m.len());
                if size > MAX_MEMFD {
                    classes[i] = Class::Unsupported(format!("memfd of {size} bytes"));
                    files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
                    continue;
                }
                let seals = fcntl(copy.as_fd(), FcntlArg::F_GET_SEALS).unwrap_or(1);
                // 1.3: its inode, so areas mapping it use the same memfd.
                files.fds[i].rec.args[3] = meta.as_ref().map(|m| m.ino()).unwrap_or(0);
                // 1.3: its permissions (fchmod works on memfds), marked
                // present by bit 32.
                files.fds[i].rec.args[2] = meta
                    .map(|m| (1 << 32) | u64::from(m.mode() & 0o7777))
                    .unwrap_or(0);
                files.ghosts.add_memfd(files.fds[i].rec.args[3]);
                files.fds[i].rec.args[0] = size;
                files.fds[i].rec.args[1] = seals as u64;
                files.fds[i].data = read_memfd(&copy, size).map_err(|e| Error::Unsupported {
                    pid,
                    reason: format!(
                        "cannot read the memfd at fd {}: {}",
                        files.fds[i].rec.fd,
                        crate::error::io_text(&e)
                    ),
                })?;
            }
            _ => {}
        }
    }

    // (1.7) What rides in the queues must exist when they are refilled.
    for i in 0..files.fds.len() {
        let r = files.fds[i].rec;
        if flight.is_synthetic(r.fd as i32) && !kckpt_image::files::in_flight_kind_ok(r.kind) {
            let what = match r.kind {
                fd_kind::REOPEN => "another open file description of a pipe, memfd or named \
                                    pipe the process holds"
                    .to_owned(),
                k => format!("descriptor of kind {k}"),
            };
            classes[i] = Class::Unsupported(what);
            files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
            files.fds[i].rec.args = [0; 4];
            files.fds[i].rec.peer = FD_NO_DUP;
            files.fds[i].data.clear();
        }
    }
    sockets::check_in_flight(&mut files.fds, &mut classes);
    // (1.6) Unix socket pairs: refused together, plain ones as
    // socketpairs, ends accepted on a listener of the process.
    sockets::finish_unix(&mut files.fds, &mut classes);
    // (1.7) A refused socket restored here for another process: named as
    // that process's.
    for (f, c) in files.fds.iter().zip(classes.iter_mut()) {
        if let (Some((src, sfd)), Class::Unsupported(what)) = (f.source, &mut *c) {
            *what = format!("{what}; it is fd {sfd} of pid {src}, restored by this process for it");
        }
    }

    // A peer that became a placeholder takes its partner with it.
    for i in (0..files.fds.len()).chain(0..files.fds.len()) {
        let r = files.fds[i].rec;
        let alone = r.kind == fd_kind::PIPE && r.peer == FD_NO_DUP;
        if matches!(r.kind, fd_kind::PIPE | fd_kind::SOCKETPAIR) && r.dup_of == FD_NO_DUP && !alone
        {
            let peer = files.fds.iter().position(|f| f.rec.fd == r.peer);
            if peer.is_none_or(|j| files.fds[j].rec.kind != r.kind) {
                classes[i] =
                    Class::Unsupported("pipe or socket whose other end is unsupported".into());
                files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
            }
        }
        if r.kind == fd_kind::REOPEN && r.dup_of == FD_NO_DUP {
            let of = files.fds.iter().position(|f| f.rec.fd as u64 == r.args[0]);
            let reopenable =
                |k| matches!(k, fd_kind::PIPE | fd_kind::MEMFD | special_fd_kind::FIFO);
            if of.is_none_or(|j| !reopenable(files.fds[j].rec.kind)) {
                classes[i] = Class::Unsupported(format!(
                    "another open file description of fd {}, which is unsupported",
                    r.args[0]
                ));
                files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
                files.fds[i].rec.args = [0; 4];
            }
        }
    }

    mark_external(pid, &mut files.fds, &mut classes, external)?;

    // Standard descriptors: files and devices are reopened like any other
    // descriptor (`--stdio=inherit` at restore takes the restorer's
    // instead), terminals are the restorer's with their saved mode, and
    // what led outside the process (a pipe or socket to another process, a
    // named pipe, another device) is the restorer's: `INHERITED`, with
    // what it was in `path` for `kckpt info`.
    for i in 0..files.fds.len() {
        let r = files.fds[i].rec;
        if r.fd <= 2 && r.dup_of == FD_NO_DUP && r.kind == fd_kind::PLACEHOLDER {
            let what = match &classes[i] {
                Class::Unsupported(what) => what.clone(),
                _ => String::new(),
            };
            files.fds[i].rec.kind = fd_kind::INHERITED;
            files.fds[i].rec.args = [0; 4];
            files.fds[i].path = what.into_bytes();
            files.fds[i].data.clear();
            classes[i] = Class::Path;
        }
    }
    for i in 0..files.fds.len() {
        let r = files.fds[i].rec;
        if r.dup_of == FD_NO_DUP {
            continue;
        }
        let orig = files
            .fds
            .iter()
            .position(|f| f.rec.fd == r.dup_of)
            .expect("dup_of names an earlier descriptor");
        let o = files.fds[orig].clone();
        files.fds[i].rec = FdRecord {
            fd: r.fd,
            dup_of: r.dup_of,
            fd_flags: (r.fd_flags & fd_flags::CLOEXEC) | (o.rec.fd_flags & !fd_flags::CLOEXEC),
            ..o.rec
        };
        files.fds[i].path = o.path.clone();
        files.fds[i].data.clear();
        files.fds[i].rec.args = o.rec.args;
        if r.fd <= 2 && matches!(o.rec.kind, fd_kind::INHERITED | fd_kind::TERMINAL) {
            // `2>&1`: fd 2 stays the restorer's own stderr, not its stdout.
            files.fds[i].rec.dup_of = FD_NO_DUP;
            files.fds[i].term = o.term;
        }
        // Reported (or inherited) through the original.
        classes[i] = Class::Path;
    }

    files.fowners = file_owners(&files.fds, &getfd);
    // (1.7) A file in flight is closed before owners are set again.
    for o in &files.fowners {
        if flight.is_synthetic(o.fd as i32) {
            if let Some(i) = files.fds.iter().position(|f| f.rec.fd == o.fd) {
                classes[i] = Class::Unsupported(
                    "file with an owner for I/O signals (F_SETOWN, F_SETSIG)".into(),
                );
                files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
                files.fds[i].rec.args = [0; 4];
                files.fds[i].data.clear();
            }
        }
    }
    files.fowners.retain(|o| !flight.is_synthetic(o.fd as i32));

    // (1.5) Sockets restored without their queued input: refused, or
    // with --skip-unsupported a warning.
    let mut lossy_fds = Vec::new();
    for (fd, what, warn) in lossy {
        let fd = flight.carrier_of(fd as u32) as i32;
        if skip_unsupported || warn {
            files.warnings.push(format!(
                "warning: fd {fd} ({what}): restored without them, they are lost"
            ));
        } else {
            lossy_fds.push(fd);
            unsupported.push((Some(fd), what));
        }
    }
    for (i, class) in classes.iter().enumerate() {
        if let Class::Unsupported(what) = class {
            let fd = files.fds[i].rec.fd;
            files.fds[i].path = what.as_bytes().to_vec();
            if flight.is_synthetic(fd as i32) {
                // Named by the socket whose queue holds it.
                let by = flight.carrier_of(fd);
                unsupported.push((
                    Some(by as i32),
                    format!("descriptor in flight in its queue (SCM_RIGHTS): {what}"),
                ));
            } else {
                unsupported.push((Some(fd as i32), what.clone()));
            }
        }
    }
    if !unsupported.is_empty() {
        let list: Vec<String> = unsupported
            .iter()
            .map(|(fd, what)| match fd {
                Some(fd) => format!("fd {fd} ({what})"),
                None => what.clone(),
            })
            .collect();
        if !skip_unsupported {
            // A descriptor that leads outside: `--external` (the first).
            let outside = unsupported.iter().find_map(|(fd, what)| {
                let leads_out = what.contains("another process") || what.contains("outside");
                fd.filter(|_| leads_out)
            });
            let hint = outside.map_or(String::new(), |fd| {
                format!("; --external {pid}:{fd} takes such a descriptor from the restorer")
            });
            return Err(Error::Unsupported {
                pid,
                reason: format!(
                    "not supported: {}{hint}; --skip-unsupported dumps anyway, {}",
                    list.join(", "),
                    skip_consequence(&unsupported, &lossy_fds)
                ),
            });
        }
        for (fd, what) in &unsupported {
            files.warnings.push(match fd {
                Some(fd) => format!("warning: fd {fd} ({what}) will be restored as /dev/null"),
                None => format!("warning: {what} is not saved"),
            });
        }
    }
    // Adopted ends were added after the files in flight, whose numbers
    // are above theirs: records in descriptor order.
    files.fds.sort_by_key(|f| f.rec.fd);
    Ok(files)
}

/// (1.9) The start time (`/proc/PID/stat` field 22) of process `owner`,
/// whose procfs file process `pid` holds, when it is a process outside
/// the dump (no thread of `tree_pids`, nor a zombie) that the dumper sees
/// at that pid (`pid` is in the dumper's PID namespace), and the image
/// will be restored in this PID namespace: a single process, or a `tree`
/// dumped by a user who may choose pids (`CAP_CHECKPOINT_RESTORE` or
/// `CAP_SYS_ADMIN`; others restore a tree in a new PID namespace, where
/// that pid is another process). Else why not, if more than that it is
/// another process's file (`""`).
fn outside_start(pid: i32, owner: i32, tree_pids: &[i32], tree: bool) -> Result<u64, &'static str> {
    let ns = |p: &str| fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    if ns("self").is_none() || ns("self") != ns(&pid.to_string()) {
        return Err("");
    }
    let status = fs::read_to_string(format!("/proc/{owner}/status")).map_err(|_| "")?;
    let tgid: i32 = fdinfo_field(&status, "Tgid")
        .and_then(|v| v.parse().ok())
        .ok_or("")?;
    // Not the tree's nor the dumper's; not a zombie (reaped soon, or one
    // of the tree's, made again with another start time).
    if tree_pids.contains(&tgid) || tgid == pid || tgid == std::process::id() as i32 {
        return Err("");
    }
    let stat = procfs::stat(owner).map_err(|_| "")?;
    if stat.state() == b'Z' {
        return Err("");
    }
    use super::process::{effective_caps, CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN};
    let me = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if tree && effective_caps(&me) & (1 << CAP_SYS_ADMIN | 1 << CAP_CHECKPOINT_RESTORE) == 0 {
        return Err(
            "this user restores a tree in a new PID namespace, where that pid is another process",
        );
    }
    Ok(stat.num(22))
}

/// Keep the filter of socket `files.fds[i]` (`socket_filter`'s answer)
/// for the image, or refuse the socket when its filter cannot come back:
/// one in flight, or one only handed to other processes of the tree, is
/// closed before the filters are attached; an eBPF one cannot be read.
fn sock_filter(
    files: &mut Files,
    class: &mut Class,
    i: usize,
    pid: i32,
    flight: &inflight::InFlight,
    filter: std::result::Result<(Vec<u8>, bool), String>,
) {
    let r = files.fds[i].rec;
    let refused = match filter {
        Ok((insns, locked)) if insns.is_empty() && !locked => return,
        Ok(_) if flight.is_synthetic(r.fd as i32) => {
            "socket in flight with a socket filter".to_owned()
        }
        Ok(_) if r.fd_flags & fd_flags::TREE_ONLY != 0 => {
            let (src, sfd) = files.fds[i].source.unwrap_or((pid, r.fd as i32));
            format!(
                "unix socket (fd {sfd} of process {src}) with a socket filter, restored by an ancestor"
            )
        }
        Ok((insns, locked)) => return files.sock_filters.push((r.fd, insns, locked)),
        Err(what) => what,
    };
    *class = Class::Unsupported(refused);
    files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
}

/// (1.7) A copy of descriptor `fd` of process `pid` of the tree.
fn adopted_copy(pid: i32, fd: i32) -> Result<OwnedFd> {
    let fail = |e: nix::errno::Errno| Error::Unsupported {
        pid,
        reason: format!("cannot copy its fd {fd} (pidfd_getfd): {}", e.desc()),
    };
    let pidfd = fdsys::pidfd_open(pid).map_err(fail)?;
    fdsys::pidfd_getfd(pidfd.as_raw_fd(), fd).map_err(fail)
}

/// The signal owner (`F_SETOWN_EX`, `F_SETSIG`) of each open file
/// description, read through a copy of its first descriptor (dups share
/// it). Descriptors that cannot be copied or asked have none.
fn file_owners(
    fds: &[Fd],
    getfd: &impl Fn(i32) -> Result<OwnedFd>,
) -> Vec<kckpt_image::FownRecord> {
    fds.iter()
        .filter(|f| f.rec.dup_of == FD_NO_DUP)
        .filter_map(|f| {
            let copy = getfd(f.rec.fd as i32).ok()?;
            let (owner_type, owner, signal) = fdsys::file_owner(copy.as_raw_fd())?;
            Some(kckpt_image::FownRecord {
                fd: f.rec.fd,
                owner_type,
                owner: owner.max(0) as u32,
                signal,
            })
        })
        .collect()
}

/// `kckpt dump --external`: the descriptors `external` of `pid` (a
/// duplicate stands for its original) become `EXTERNAL` records keyed by
/// what `/proc/PID/fd/FD` reads, instead of being refused. Only a
/// descriptor kckpt would otherwise refuse (one that leads outside the
/// dumped processes) may be external: naming another one, or one the
/// process does not have, is refused.
fn mark_external(pid: i32, fds: &mut [Fd], classes: &mut [Class], external: &[u32]) -> Result<()> {
    use kckpt_image::external::{key_ok, EXTERNAL_FD_KIND};
    let usage = |fd: u32, what: &str| Error::Usage(format!("--external {pid}:{fd}: {what}"));
    for &fd in external {
        let Some(mut i) = fds.iter().position(|f| f.rec.fd == fd) else {
            return Err(usage(fd, &format!("process {pid} has no descriptor {fd}")));
        };
        if fds[i].rec.dup_of != FD_NO_DUP {
            let orig = fds[i].rec.dup_of;
            i = fds.iter().position(|f| f.rec.fd == orig).unwrap_or(i);
        }
        if fds[i].rec.kind == EXTERNAL_FD_KIND {
            continue; // named twice, or through a duplicate
        }
        if !matches!(classes[i], Class::Unsupported(_)) {
            return Err(usage(
                fd,
                "it does not lead outside the dumped processes (kckpt restores it); \
                 only a descriptor the dump would refuse can be external",
            ));
        }
        let link = fs::read_link(format!("/proc/{pid}/fd/{}", fds[i].rec.fd))
            .map_err(|e| usage(fd, &crate::error::io_text(&e)))?;
        let key = link.as_os_str().as_encoded_bytes().to_vec();
        if !key_ok(&key) {
            return Err(usage(
                fd,
                "its name contains a comma or is too long to be a key",
            ));
        }
        let f = &mut fds[i];
        f.rec.kind = EXTERNAL_FD_KIND;
        f.rec.args = [0; 4];
        f.rec.pos = 0;
        f.rec.peer = FD_NO_DUP;
        f.rec.fd_flags &= fd_flags::CLOEXEC;
        f.path = key;
        f.data.clear();
        f.term = None;
        classes[i] = Class::Path;
    }
    Ok(())
}

/// What `--skip-unsupported` would do with `unsupported` (descriptors:
/// `Some(fd)`, process features: `None`), for the end of the refusal line.
/// Descriptors in `lossy` are restored without the part named (queued
/// input, peer credentials...), the others as `/dev/null`.
fn skip_consequence(unsupported: &[(Option<i32>, String)], lossy: &[i32]) -> &'static str {
    let null = unsupported
        .iter()
        .any(|(fd, _)| fd.is_some_and(|f| !lossy.contains(&f)));
    let part = unsupported
        .iter()
        .any(|(fd, _)| fd.is_some_and(|f| lossy.contains(&f)));
    let features = unsupported.iter().any(|(fd, _)| fd.is_none());
    match (null, part, features) {
        (false, false, _) => "without saving them",
        (true, false, false) => "with such descriptors restored as /dev/null",
        (true, false, true) => "with such descriptors restored as /dev/null and the rest not saved",
        (false, true, false) => "with such descriptors restored without what is named",
        (false, true, true) => {
            "with such descriptors restored without what is named and the rest not saved"
        }
        (true, true, false) => {
            "with such descriptors restored as /dev/null or, where part of one is named, without that part"
        }
        (true, true, true) => {
            "with such descriptors restored as /dev/null or, where part of one is named, without \
             that part, and the rest not saved"
        }
    }
}

/// `EpollItemRecord::src` of the `toff`-th item added with number `tfd`
/// to epoll `epfd` of process `ep_pid` (fdinfo `ino` `ino`): 0 when `tfd` is still its file,
/// else `EPOLL_SRC_CLOSED | N` for the lowest descriptor `N` of `numbers`
/// holding the file (`kcmp(KCMP_EPOLL_TFD)`; (1.7) a file in flight's
/// synthetic number too: `at` says where each is read); `None` when no
/// descriptor holds it. Without kcmp, the inode of `tfd` decides as
/// before 1.3. `inodes` caches each descriptor's inode.
fn epoll_source(
    (ep_pid, epfd): (i32, i32),
    tfd: u32,
    toff: u32,
    ino: u64,
    numbers: &[i32],
    at: &dyn Fn(i32) -> (i32, i32),
    inodes: &mut Option<Vec<(u64, i32)>>,
) -> Option<u32> {
    let ino_of = |n: i32| {
        let (p, f) = at(n);
        fs::metadata(format!("/proc/{p}/fd/{f}")).map_or(0, |m| m.ino())
    };
    // `tfd` itself (a synthetic number too: its file is there then).
    let (tp, tf) = at(tfd as i32);
    match fdsys::epoll_target_is(tp, tf, ep_pid, epfd, tfd, toff) {
        Some(true) => return Some(0),
        Some(false) => {}
        None => return (i32::try_from(tfd).is_ok_and(|t| ino_of(t) == ino)).then_some(0),
    }
    let inodes = inodes.get_or_insert_with(|| numbers.iter().map(|&n| (ino_of(n), n)).collect());
    inodes
        .iter()
        .filter(|&&(i, n)| i == ino && at(n) != (ep_pid, epfd))
        .find(|&&(_, n)| {
            let (p, f) = at(n);
            fdsys::epoll_target_is(p, f, ep_pid, epfd, tfd, toff) == Some(true)
        })
        .map(|&(_, n)| EPOLL_SRC_CLOSED | n as u32)
}

/// Another process of this dump (the tree `tree_pids`) holding a pidfd
/// of the exited process whose pidfs inode is `ino` (the first one seen),
/// if any: each process of a tree would get its own stand-in, a different
/// inode. What earlier dumps of this process (the library's) noted about
/// processes outside this tree is forgotten.
fn dead_pidfd_elsewhere(ino: u64, pid: i32, tree_pids: &[i32]) -> Option<i32> {
    static SEEN: std::sync::Mutex<Vec<(u64, i32)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.retain(|&(_, p)| p == pid || tree_pids.contains(&p));
    match seen.iter().find(|&&(i, _)| i == ino) {
        Some(&(_, p)) if p != pid && ino != 0 => Some(p),
        Some(_) => None,
        None => {
            seen.push((ino, pid));
            None
        }
    }
}

/// The `args` of the pidfd `copy` (a copy of the process's descriptor)
/// with `fdinfo` text `info` and status `flags`, or why it cannot be
/// restored: a pidfd of the process itself, of another process of the
/// dumped tree (`tree_pids`) or of a process that has exited and been
/// reaped (`Pid: -1`) can, without `PIDFD_THREAD`.
fn pidfd_args(
    pid: i32,
    info: &str,
    flags: u32,
    tree_pids: &[i32],
    copy: &OwnedFd,
) -> std::result::Result<[u64; 4], String> {
    use kckpt_image::selffd::pidfd_target;
    // PIDFD_THREAD is O_EXCL; pidfds are read-write.
    if flags & !(OFlag::O_NONBLOCK.bits() as u32) != OFlag::O_RDWR.bits() as u32 {
        return Err("pidfd with PIDFD_THREAD".to_owned());
    }
    let of: Option<i64> = fdinfo_field(info, "Pid").and_then(|v| v.parse().ok());
    match of {
        Some(p) if p == i64::from(pid) => Ok([pidfd_target::SELF, 0, 0, 0]),
        Some(p) if tree_pids.iter().any(|&t| i64::from(t) == p) => {
            Ok([pidfd_target::TREE, p as u64, 0, 0])
        }
        Some(-1) => {
            let status = fdsys::pidfd_exit_status(copy.as_raw_fd()).map_or(0, |s| {
                pidfd_target::STATUS_KNOWN | u64::from(s as u32 & 0xffff)
            });
            Ok([pidfd_target::DEAD, status, 0, 0])
        }
        Some(p) if p > 0 => Err(format!("pidfd of process {p}, outside the dump")),
        _ => Err("pidfd of a process outside its PID namespace".to_owned()),
    }
}

/// A character device other than the known ones: a terminal (its mode;
/// not a pseudo-terminal master), or a device kckpt cannot restore.
fn char_device(copy: &OwnedFd, rdev: u64, link: &str) -> Class {
    if terminal::is_pty_master(rdev) {
        return Class::Unsupported(format!("pseudo-terminal master {link}"));
    }
    match terminal::terminal_state(copy) {
        Some(t) => Class::Terminal(t, rdev),
        None => Class::Unsupported(format!("device {link}")),
    }
}

/// `link` without its ` (deleted)` when `deleted`.
fn strip_deleted(link: &str, deleted: bool) -> Vec<u8> {
    let p = link.strip_suffix(" (deleted)").filter(|_| deleted);
    p.unwrap_or(link).as_bytes().to_vec()
}

/// Named pipes: the first descriptor of each holds its buffered bytes, the
/// others (not `dup`s) become `REOPEN` of it; one another process also
/// holds is refused by name (not one of `tree_pids`, processes of the same
/// tree sharing the description).
#[allow(clippy::needless_range_loop)]
fn fifos(
    pid: i32,
    files: &mut Files,
    classes: &mut [Class],
    getfd: &dyn Fn(i32) -> Result<OwnedFd>,
    tree_pids: &[i32],
) -> Result<()> {
    let mut keys = std::collections::HashSet::new();
    for i in 0..files.fds.len() {
        let f = &files.fds[i];
        let Some(key) = f.fifo else { continue };
        if f.rec.dup_of != FD_NO_DUP || f.rec.kind != special_fd_kind::FIFO {
            continue;
        }
        let first = files.fds[..i].iter().position(|o| {
            o.fifo == Some(key) && o.rec.dup_of == FD_NO_DUP && o.rec.kind == special_fd_kind::FIFO
        });
        if let Some(j) = first {
            reopen_of(&mut files.fds, i, j);
            continue;
        }
        keys.insert(key);
        let fd = f.rec.fd as i32;
        let copy = getfd(fd)?;
        let (data, size) = super::special::fifo_data(pid, fd, f.rec.flags, &copy).map_err(|e| {
            Error::Unsupported {
                pid,
                reason: format!(
                    "cannot read the named pipe at fd {fd}: {}",
                    crate::error::io_text(&e)
                ),
            }
        })?;
        files.fds[i].data = data;
        files.fds[i].rec.args[0] = size;
    }
    if keys.is_empty() {
        return Ok(());
    }
    // Processes of the tree hold it through the same open file description
    // (`shared::analyze` refuses separate opens).
    let mut shared = super::special::other_holders(pid, &keys);
    shared.retain(|(p, _)| !tree_pids.contains(p));
    for i in 0..files.fds.len() {
        let Some(key) = files.fds[i].fifo else {
            continue;
        };
        let r = files.fds[i].rec;
        if r.dup_of != FD_NO_DUP || !matches!(r.kind, special_fd_kind::FIFO | fd_kind::REOPEN) {
            continue;
        }
        if let Some((other, _)) = shared.iter().find(|(_, k)| *k == key) {
            let path = String::from_utf8_lossy(&files.fds[i].path).into_owned();
            classes[i] = Class::Unsupported(format!(
                "named pipe {path} shared with another process (pid {other})"
            ));
            files.fds[i].rec.kind = fd_kind::PLACEHOLDER;
            files.fds[i].rec.args = [0; 4];
            files.fds[i].rec.fd_flags &= !fd_flags::DELETED;
            files.fds[i].data.clear();
        }
    }
    Ok(())
}

/// Make descriptor `i` another open file description of the object of
/// descriptor `j` (`REOPEN`): no data of its own.
fn reopen_of(fds: &mut [Fd], i: usize, j: usize) {
    let of = fds[j].rec.fd;
    let path = fds[j].path.clone();
    let f = &mut fds[i];
    f.rec.kind = fd_kind::REOPEN;
    f.rec.fd_flags &= !fd_flags::DELETED;
    f.rec.args = [u64::from(of), 0, 0, 0];
    f.rec.peer = FD_NO_DUP;
    f.path = path;
    f.data.clear();
}

impl Files {
    /// The seccomp note of thread `tid`, if it has one (taken out).
    pub fn take_seccomp(&mut self, tid: u32) -> Option<Vec<u8>> {
        let at = self.seccomp.iter().position(|(t, _)| *t == tid)?;
        Some(self.seccomp.swap_remove(at).1)
    }

    /// The highest descriptor number (-1 without any).
    pub fn max_fd(&self) -> i64 {
        self.fds
            .iter()
            .map(|f| i64::from(f.rec.fd))
            .max()
            .unwrap_or(-1)
    }

    /// The job's pid is `pid` (a self-checkpoint collects the descriptors
    /// of its snapshot child, whose group, session and terminal are the
    /// process's own).
    pub fn set_job_pid(&mut self, pid: i32) {
        self.job.pid = pid as u32;
    }

    /// Store the data (page-aligned regions after the memory data) and the
    /// strings; returns the notes' contents.
    pub fn write(
        self,
        writer: &mut ImageWriter,
        strings: &mut StringTable,
    ) -> std::io::Result<FilesMeta> {
        let mut fds = Vec::with_capacity(self.fds.len());
        let mut terminals = Vec::new();
        for mut f in self.fds {
            if let (Some(t), FD_NO_DUP) = (f.term, f.rec.dup_of) {
                terminals.push(TerminalRecord { fd: f.rec.fd, ..t });
            }
            f.rec.path = strings.add(&f.path);
            if !f.data.is_empty() {
                let offset = writer.reserve_region(f.data.len() as u64);
                writer.write_data(offset, &f.data)?;
                f.rec.data_offset = offset;
                f.rec.data_len = f.data.len() as u64;
            }
            fds.push(f.rec);
        }
        let fs = FsRecord {
            cwd: strings.add(&self.cwd),
            root: if self.root.is_empty() {
                StrRef::default()
            } else {
                strings.add(&self.root)
            },
            ..self.fs
        };
        let (ghosts, extents) = self.ghosts.write(writer, strings)?;
        // Watches of instances still restored as such (not placeholders).
        let inotify = self
            .inotify
            .into_iter()
            .filter(|(w, _)| {
                fds.iter()
                    .any(|f| f.fd == w.fd && f.kind == INOTIFY_FD_KIND)
            })
            .map(|(w, path)| InotifyWatchRecord {
                path: strings.add(&path),
                ..w
            })
            .collect();
        // Filters of sockets still restored as such (not placeholders),
        // by fd.
        let mut sock_filters = self.sock_filters;
        sock_filters.sort_by_key(|f| f.0);
        let sock_filters = sock_filters
            .into_iter()
            .filter(|(fd, _, _)| {
                fds.iter().any(|f| {
                    f.fd == *fd
                        && f.dup_of == FD_NO_DUP
                        && kckpt_image::sockfilter::socket_kind(f.kind)
                })
            })
            .map(|(fd, insns, locked)| SockFilterRecord {
                fd,
                flags: if locked { filter_flags::LOCKED } else { 0 },
                count: (insns.len() / 8) as u32,
                reserved: 0,
                insns: strings.add(&insns),
            })
            .collect();
        Ok(FilesMeta {
            fs: Some(fs),
            sock_filters,
            fds,
            epoll: self.epoll,
            terminals,
            job: Some(self.job),
            ghosts,
            extents,
            locks: self.locks,
            fowners: self.fowners,
            inotify,
            guards: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_lines_are_parsed() {
        let info = "pos:\t0\nlock:\t1: FLOCK  ADVISORY  WRITE 20119 fe:00:10117329 0 EOF\n\
                    lock:\t2: POSIX  ADVISORY  WRITE 20119 fe:00:10117346 10 19\n\
                    lock:\t3: OFDLCK ADVISORY  READ -1 fe:00:10117361 0 EOF\n\
                    lock:\t4: -> POSIX  ADVISORY  WRITE 20120 fe:00:10117346 0 EOF\n";
        let l = locks_of(9, info, true).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].kind, l[0].lock_type), (1, 1));
        assert_eq!((l[1].kind, l[1].start, l[1].len), (2, 10, 10));
        assert_eq!((l[2].kind, l[2].lock_type, l[2].len), (3, 0, 0));
        let lease = |line: &str, writable| {
            let l = locks_of(4, line, writable).unwrap()[0];
            (l.kind, l.lock_type, l.lease_break, l.len)
        };
        let active = "lock:\t1: LEASE  ACTIVE    READ 1 fe:00:1 0 EOF\n";
        assert_eq!(lease(active, false), (4, 0, 0, 0));
        let to_read = "lock:\t1: LEASE  BREAKING  READ 1 fe:00:1 0 EOF\n";
        assert_eq!(lease(to_read, false), (4, 1, 1, 0));
        let to_none = "lock:\t1: LEASE  BREAKING  UNLCK 1 fe:00:1 0 EOF\n";
        assert_eq!(lease(to_none, true), (4, 1, 2, 0));
        assert_eq!(lease(to_none, false), (4, 0, 2, 0));
        let deleg = "lock:\t1: DELEG  ACTIVE    READ 1 fe:00:1 0 EOF\n";
        assert!(locks_of(4, deleg, false)
            .unwrap_err()
            .contains("delegation"));
    }

    #[test]
    fn the_refusal_says_what_skipping_does() {
        let fd = (Some(3), "TCP socket".to_owned());
        let child = (None, "child process 43".to_owned());
        assert_eq!(
            skip_consequence(std::slice::from_ref(&fd), &[]),
            "with such descriptors restored as /dev/null"
        );
        assert_eq!(
            skip_consequence(std::slice::from_ref(&child), &[]),
            "without saving them"
        );
        assert!(skip_consequence(&[fd.clone(), child.clone()], &[]).ends_with("the rest not saved"));
        // A socket restored without its queued connections, say.
        assert_eq!(
            skip_consequence(std::slice::from_ref(&fd), &[3]),
            "with such descriptors restored without what is named"
        );
        let other = (Some(4), "inotify".to_owned());
        assert!(skip_consequence(&[fd, other], &[3]).contains("/dev/null or, where part"));
    }
}
