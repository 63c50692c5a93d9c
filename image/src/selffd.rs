//! Descriptors of the process's own kernel objects (format 1.3): a pidfd
//! of the process itself and a namespace descriptor of one of its own
//! namespaces. Both are opened again for the restored process.

/// `fd_kind` values of this module.
pub mod self_fd_kind {
    /// A pidfd of the process itself (`pidfd_open(getpid(), flags)`):
    /// reopened for the restored process, whatever its pid. `flags` keeps
    /// `O_NONBLOCK` (`PIDFD_NONBLOCK`) and `O_EXCL` (`PIDFD_THREAD`).
    /// (1.7) `args[0]` [`super::pidfd_target`] says whose.
    pub const PIDFD: u32 = 26;
    /// A descriptor of one of the process's own namespaces (`net:[ino]`,
    /// opened from `/proc/PID/ns/KIND`): `path` is `/proc/self/ns/KIND`,
    /// reopened at restore; `args[0]` the namespace's inode at dump time.
    pub const NSFD: u32 = 27;
}

/// (1.7) `args[0]` of a `PIDFD` record: whose pidfd it is.
pub mod pidfd_target {
    /// The process itself (`args` all 0; every image before 1.7).
    pub const SELF: u64 = 0;
    /// Another process of the tree: `args[1]` its saved pid. Opened once
    /// the process restoring it has forked its children (the holder waits
    /// until that pid exists: every process of the tree is created before
    /// any resumes).
    pub const TREE: u64 = 1;
    /// A process that had exited and been reaped: `args[1]` its wait
    /// status (bits 0-15) with [`STATUS_KNOWN`] when the kernel reported
    /// it (`PIDFD_GET_INFO` with `PIDFD_INFO_EXIT`); restored as the pidfd
    /// of a stand-in child that ends that way and is reaped at once.
    pub const DEAD: u64 = 2;
    /// `args[1]` bit of a `DEAD` pidfd: the wait status was read.
    pub const STATUS_KNOWN: u64 = 1 << 32;
    /// `args[2]` bit of a `DEAD` pidfd opened separately on the same
    /// process as the `DEAD` pidfd at descriptor `args[2]` low 32 bits
    /// (the same pidfs inode): opened on the same stand-in. 0: the first.
    pub const SAME_AS: u64 = 1 << 32;
}

/// Are `args` those of a `PIDFD` record of an image of minor `minor`?
pub fn pidfd_args_ok(a: [u64; 4], minor: u32) -> bool {
    let rest = a[2..] == [0, 0];
    match a[0] {
        pidfd_target::SELF => a[1] == 0 && rest,
        pidfd_target::TREE => minor >= 7 && (1..=i32::MAX as u64).contains(&a[1]) && rest,
        pidfd_target::DEAD => {
            let same = a[2] == 0 || a[2] & !0xffff_ffff == pidfd_target::SAME_AS;
            minor >= 7 && a[1] & !(pidfd_target::STATUS_KNOWN | 0xffff) == 0 && same && a[3] == 0
        }
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::pidfd_args_ok;
    use super::pidfd_target::{DEAD, SAME_AS, SELF, STATUS_KNOWN, TREE};

    #[test]
    fn pidfd_args_by_target_and_version() {
        assert!(pidfd_args_ok([SELF, 0, 0, 0], 3));
        assert!(!pidfd_args_ok([SELF, 5, 0, 0], 7));
        assert!(pidfd_args_ok([TREE, 42, 0, 0], 7));
        assert!(!pidfd_args_ok([TREE, 42, 0, 0], 6), "a 1.6 image has none");
        assert!(!pidfd_args_ok([TREE, 0, 0, 0], 7), "pid 0");
        assert!(!pidfd_args_ok([TREE, 1 << 31, 0, 0], 7), "pid beyond i32");
        assert!(pidfd_args_ok([DEAD, STATUS_KNOWN | 0x700, 0, 0], 7));
        assert!(pidfd_args_ok([DEAD, 0, SAME_AS | 4, 0], 7));
        assert!(
            !pidfd_args_ok([DEAD, 0x10000, 0, 0], 7),
            "status of 16 bits"
        );
        assert!(!pidfd_args_ok([DEAD, 0, 4, 0], 7), "a link without its bit");
        assert!(!pidfd_args_ok([DEAD, 0, 0, 1], 7));
        assert!(!pidfd_args_ok([3, 0, 0, 0], 7), "unknown target");
    }
}
