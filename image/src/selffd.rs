//! Descriptors of the process's own kernel objects (format 1.3): a pidfd
//! of the process itself and a namespace descriptor of one of its own
//! namespaces. Both are opened again for the restored process.

/// `fd_kind` values of this module.
pub mod self_fd_kind {
    /// A pidfd of the process itself (`pidfd_open(getpid(), flags)`):
    /// reopened for the restored process, whatever its pid. `flags` keeps
    /// `O_NONBLOCK` (`PIDFD_NONBLOCK`) and `O_EXCL` (`PIDFD_THREAD`).
    pub const PIDFD: u32 = 26;
    /// A descriptor of one of the process's own namespaces (`net:[ino]`,
    /// opened from `/proc/PID/ns/KIND`): `path` is `/proc/self/ns/KIND`,
    /// reopened at restore; `args[0]` the namespace's inode at dump time.
    pub const NSFD: u32 = 27;
}

/// Namespace file names of `/proc/self/ns` an `NSFD` record may name.
pub const NS_NAMES: &[&[u8]] = &[
    b"cgroup",
    b"ipc",
    b"mnt",
    b"net",
    b"pid",
    b"pid_for_children",
    b"time",
    b"time_for_children",
    b"user",
    b"uts",
];

/// Is `path` `/proc/self/ns/NAME` for a known `NAME`?
pub fn ns_path_ok(path: &[u8]) -> bool {
    path.strip_prefix(b"/proc/self/ns/")
        .is_some_and(|name| NS_NAMES.contains(&name))
}

/// `EpollItemRecord::src` (1.3): bit set when the item's `tfd` was closed
/// after it was added; the low bits name the descriptor holding the
/// watched file.
pub const EPOLL_SRC_CLOSED: u32 = 1 << 31;
