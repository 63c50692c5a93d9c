//! Validation of the file-descriptor notes (format 1.1): `NT_KCKPT_FS`,
//! `NT_KCKPT_FDS` and `NT_KCKPT_EPOLL`. All three are optional; an image
//! without them restores only the inherited descriptors 0-2.

use crate::ghosts::ghost_fd_kind;
use crate::read::{FormatError, ImageView};
use crate::records::*;
use crate::selffd::{self_fd_kind, EPOLL_SRC_CLOSED};
use crate::special::special_fd_kind;

/// Largest descriptor number an image may hold (the kernel's `NR_OPEN`).
pub const MAX_FD: u32 = 1 << 20;

/// Check every record: descriptors sorted and unique, known kinds, strings
/// and stored data inside the image, `dup_of` and `peer` naming existing
/// descriptors of the right kind, epoll items naming existing descriptors.
pub fn validate(view: &ImageView<'_>, file_len: u64) -> Result<(), FormatError> {
    let bad = FormatError::BadFiles;
    if let Some(fs) = view.fs {
        view.string(fs.cwd).map_err(|_| bad)?;
        view.string(fs.root).map_err(|_| bad)?;
    }
    let mut prev: Option<u32> = None;
    let mut in_flight = false;
    for r in view.fds.iter() {
        if prev.is_some_and(|p| r.fd <= p) || r.fd >= MAX_FD {
            return Err(bad);
        }
        prev = Some(r.fd);
        // (1.7) Files in flight come after every descriptor the process
        // held, each its own open file description of a kind restored
        // before the Unix sockets' queues are refilled.
        if r.fd_flags & fd_flags::IN_FLIGHT != 0 {
            in_flight = true;
            let tree_pidfd =
                r.kind == self_fd_kind::PIDFD && r.args[0] == crate::selffd::pidfd_target::TREE;
            if r.dup_of != FD_NO_DUP || !in_flight_kind_ok(r.kind) || tree_pidfd {
                return Err(bad);
            }
        } else if in_flight {
            return Err(bad);
        }
        let known = fd_kind::known(r.kind)
            || (ghost_fd_kind::GHOST..=ghost_fd_kind::SHMEM).contains(&r.kind)
            || r.kind == crate::inotify::INOTIFY_FD_KIND
            || r.kind == crate::tree::TREE_SHARED_FD_KIND
            || r.kind == crate::external::EXTERNAL_FD_KIND
            || r.kind == crate::unixsock::UNIX_LISTEN_FD_KIND
            || (view.header.format_minor >= 6 && r.kind == crate::unixsock::UNIX_SOCKET_FD_KIND)
            || (view.header.format_minor >= 5
                && matches!(
                    r.kind,
                    crate::inet::INET_LISTEN_FD_KIND | crate::inet::UDP_FD_KIND
                ))
            || (view.header.format_minor >= 6 && r.kind == crate::tcp::TCP_CONN_FD_KIND)
            || (special_fd_kind::FIFO..=special_fd_kind::SYMLINK).contains(&r.kind)
            || matches!(r.kind, self_fd_kind::PIDFD | self_fd_kind::NSFD);
        if !known {
            return Err(bad);
        }
        view.string(r.path).map_err(|_| bad)?;
        let end = r.data_offset.checked_add(r.data_len).ok_or(bad)?;
        if end > file_len {
            return Err(FormatError::Truncated);
        }
        if r.dup_of != FD_NO_DUP {
            let orig = find_fd(view, r.dup_of).ok_or(bad)?;
            if r.dup_of >= r.fd || orig.dup_of != FD_NO_DUP || orig.kind != r.kind {
                return Err(bad);
            }
        } else if r.kind == fd_kind::REOPEN {
            // The object of a lower or higher primary descriptor of a kind
            // that can be opened again through /proc/self/fd.
            let fd = u32::try_from(r.args[0]).map_err(|_| bad)?;
            let of = find_fd(view, fd).ok_or(bad)?;
            if fd == r.fd
                || of.dup_of != FD_NO_DUP
                || !matches!(
                    of.kind,
                    fd_kind::PIPE | fd_kind::MEMFD | special_fd_kind::FIFO
                )
            {
                return Err(bad);
            }
        } else if r.kind == fd_kind::PIPE && r.peer == FD_NO_DUP {
            // (1.5) A pipe end whose other end was closed everywhere.
            if view.header.format_minor < 5 {
                return Err(bad);
            }
        } else if r.kind == crate::unixsock::UNIX_SOCKET_FD_KIND {
            unix_peer_ok(view, &r)?;
        } else if matches!(r.kind, fd_kind::PIPE | fd_kind::SOCKETPAIR) {
            let peer = find_fd(view, r.peer).ok_or(bad)?;
            if r.peer == r.fd
                || peer.peer != r.fd
                || peer.kind != r.kind
                || peer.dup_of != FD_NO_DUP
            {
                return Err(bad);
            }
        }
    }
    for item in view.epoll.iter() {
        let ep = find_fd(view, item.epfd).ok_or(bad)?;
        // The watched file's descriptor: `tfd`, or (1.3) another one
        // when `tfd` was closed since.
        let watched = if item.src == 0 {
            item.tfd
        } else if item.src & EPOLL_SRC_CLOSED != 0 && item.tfd < MAX_FD {
            item.src & !EPOLL_SRC_CLOSED
        } else {
            return Err(bad);
        };
        if ep.kind != fd_kind::EPOLL || watched == item.epfd || find_fd(view, watched).is_none() {
            return Err(bad);
        }
    }
    Ok(())
}

/// (1.7) Kinds a file in flight (`fd_flags::IN_FLIGHT`) may have: any
/// restored before the queues of the Unix sockets are refilled (not
/// `REOPEN`, not a TCP connection) and not taken from the restorer.
pub fn in_flight_kind_ok(kind: u32) -> bool {
    !matches!(
        kind,
        fd_kind::REOPEN
            | fd_kind::INHERITED
            | fd_kind::TERMINAL
            | fd_kind::CTTY
            | crate::tcp::TCP_CONN_FD_KIND
            | crate::external::EXTERNAL_FD_KIND
            | crate::tree::TREE_SHARED_FD_KIND
    )
}

/// (1.6) A kind-45 Unix socket: the other end of a pair is a kind-45
/// primary record of the same type naming this one back; the listener of
/// an accepted end a kind-41 primary record.
fn unix_peer_ok(view: &ImageView<'_>, r: &FdRecord) -> Result<(), FormatError> {
    use crate::unixsock::{peer_kind, sock_flags, UnixRecord, UNIX_LISTEN_FD_KIND};
    let bad = FormatError::BadFiles;
    let me = UnixRecord::parse(view.string(r.path).map_err(|_| bad)?).ok_or(bad)?;
    if me.target != 0 {
        // A socket of the process it is connected to by name.
        let t = find_fd(view, me.target - 1).ok_or(bad)?;
        if t.kind != r.kind || t.dup_of != FD_NO_DUP || t.fd == r.fd {
            return Err(bad);
        }
    }
    if me.peer_kind != peer_kind::PAIR {
        return if r.peer == FD_NO_DUP {
            Ok(())
        } else {
            Err(bad)
        };
    }
    let peer = find_fd(view, r.peer).ok_or(bad)?;
    let other = UnixRecord::parse(view.string(peer.path).map_err(|_| bad)?).ok_or(bad)?;
    let both_accepted = me.flags & other.flags & sock_flags::ACCEPTED != 0;
    if r.peer == r.fd
        || peer.kind != r.kind
        || peer.peer != r.fd
        || peer.dup_of != FD_NO_DUP
        || other.ty != me.ty
        || both_accepted
    {
        return Err(bad);
    }
    if me.flags & sock_flags::ACCEPTED != 0 {
        let l = find_fd(view, me.listener).ok_or(bad)?;
        if l.kind != UNIX_LISTEN_FD_KIND
            || l.dup_of != FD_NO_DUP
            || l.args[0] & 0xffff_ffff != u64::from(me.ty)
        {
            return Err(bad);
        }
    }
    Ok(())
}

/// A descriptor on another process of the tree, opened once every
/// process of the tree exists: (1.7) a pidfd of it, (1.8) a procfs file
/// of it.
pub fn of_tree_process(r: &FdRecord) -> bool {
    (r.kind == self_fd_kind::PIDFD && r.args[0] == crate::selffd::pidfd_target::TREE)
        || (r.kind == ghost_fd_kind::PROCFS && r.args[0] == crate::ghosts::procfs_of::TREE)
}

/// The record of descriptor `fd`, if the image has one.
pub fn find_fd(view: &ImageView<'_>, fd: u32) -> Option<FdRecord> {
    let (mut lo, mut hi) = (0usize, view.fds.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let r = view.fds.get(mid)?;
        match r.fd.cmp(&fd) {
            core::cmp::Ordering::Equal => return Some(r),
            core::cmp::Ordering::Less => lo = mid + 1,
            core::cmp::Ordering::Greater => hi = mid,
        }
    }
    None
}
