//! (1.7) Files in flight: the descriptors queued in the process's Unix
//! sockets with `SCM_RIGHTS` messages. Peeking a queue installs a copy of
//! each in this (the dumper's) descriptor table; each distinct open file
//! description becomes
//! - the lowest descriptor of the process with that open file description
//!   (`kcmp(KCMP_FILE)` across the two processes), when it has one: the
//!   message names that descriptor, which is restored anyway;
//! - otherwise a synthetic descriptor above every descriptor of the
//!   process (`fd_flags::IN_FLIGHT`), described by the same code as the
//!   process's own descriptors from the copy kept here (its
//!   `/proc/self/fd/N`, `fdinfo`, a dup of it where a `pidfd_getfd` copy
//!   would be used): two messages carrying one file name one number, a
//!   pipe end only in flight pairs with the other end by inode as usual.
//!
//! Unix sockets in flight are walked in turn (their own queues may carry
//! more), until no new file turns up. Each queue is read here once, with
//! the numbers of what rides in it, and kept for the socket's record (a
//! second walk would miss a zero-length datagram the first one saw).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::libc;

use super::super::{fdsys, unixsave};

/// The files in flight of one process.
#[derive(Default)]
pub(super) struct InFlight {
    /// The process.
    pid: i32,
    /// The process's descriptors, ascending.
    real: Vec<i32>,
    /// (synthetic number, the copy held here), ascending.
    copies: Vec<(u32, OwnedFd)>,
    /// Synthetic number → the socket (a descriptor of the process or
    /// another synthetic one) in whose queue it was found first.
    carrier: HashMap<u32, u32>,
    /// The queues read, by socket number, until their socket takes them.
    queues: RefCell<HashMap<u32, unixsave::Queued>>,
    /// Synthetic number → another process of the dump holding that open
    /// file description.
    shared: HashMap<u32, i32>,
}

/// `SO_DOMAIN`, `SO_TYPE` of socket `fd` (-1 when not a socket).
fn domain_type(fd: i32) -> (i32, i32) {
    let opt = |o| fdsys::sockopt_int(fd, o).unwrap_or(-1);
    (opt(libc::SO_DOMAIN), opt(libc::SO_TYPE))
}

impl InFlight {
    /// Walk the queue of every Unix socket of process `pid` (descriptors
    /// `numbers`, ascending; `getfd` copies one) and of every Unix socket
    /// found in flight. A queue that cannot be read is left to the
    /// socket's own save, which names the reason. `tree`: the pids of the
    /// dump (another one holding a file in flight is noted); `slot`: the
    /// descriptors that are copies of a tree's shared slot (their socket,
    /// and its queue, is the holder's record). Synthetic numbers start
    /// above every descriptor and at `floor` or above.
    pub(super) fn gather(
        pid: i32,
        numbers: &[i32],
        getfd: &dyn Fn(i32) -> crate::error::Result<OwnedFd>,
        tree: &[i32],
        slot: &dyn Fn(i32) -> bool,
        floor: u32,
    ) -> InFlight {
        let mut me = InFlight {
            pid,
            real: numbers.to_vec(),
            ..InFlight::default()
        };
        let mut next = numbers.last().map_or(0, |&n| n as u32 + 1).max(floor);
        // (descriptor number, copy) of the sockets left to walk.
        let mut todo: Vec<(u32, OwnedFd)> = Vec::new();
        for &fd in numbers {
            let is_socket = fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy().starts_with("socket:["));
            if !is_socket || slot(fd) {
                continue;
            }
            if let Ok(copy) = getfd(fd) {
                todo.push((fd as u32, copy));
            }
        }
        while let Some((carrier, sock)) = todo.pop() {
            let (domain, ty) = domain_type(sock.as_raw_fd());
            if domain != libc::AF_UNIX {
                continue;
            }
            let mut found: Vec<(u32, OwnedFd)> = Vec::new();
            let mut number = |copies: Vec<OwnedFd>| -> Result<Vec<u32>, String> {
                let mut out = Vec::with_capacity(copies.len());
                for c in copies {
                    let seen = found
                        .iter()
                        .find(|(_, f)| same_here(f.as_raw_fd(), c.as_raw_fd()))
                        .map(|(n, _)| *n);
                    match seen.or_else(|| me.resolve(c.as_raw_fd())) {
                        Some(n) => out.push(n),
                        None => {
                            out.push(next);
                            found.push((next, c));
                            next += 1;
                        }
                    }
                }
                Ok(out)
            };
            let shown = fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd()))
                .ok()
                .and_then(|m| super::super::unixsock::diag(m.ino()))
                .map_or_else(|| "unix socket".to_owned(), |d| unixsave::describe(&d));
            let got = unixsave::queue_of(&sock, ty, &shown, &mut number);
            me.queues.borrow_mut().insert(carrier, got);
            for (n, c) in found {
                me.carrier.insert(n, carrier);
                let holder = holder_in(tree, pid, c.as_raw_fd())
                    .or_else(|| in_flight_elsewhere(tree, pid, &c));
                if let Some(p) = holder {
                    me.shared.insert(n, p);
                }
                if let Ok(again) = c.try_clone() {
                    todo.push((n, again));
                }
                me.copies.push((n, c));
            }
        }
        me
    }

    /// The descriptor number in the image of the file of `copy` (a
    /// descriptor of this process): the process's lowest descriptor with
    /// that open file description, or its synthetic number.
    pub(super) fn resolve(&self, copy: i32) -> Option<u32> {
        let here = std::process::id() as i32;
        self.real
            .iter()
            .find(|&&fd| fdsys::same_file_of(self.pid, fd, here, copy))
            .map(|&fd| fd as u32)
            .or_else(|| {
                self.copies
                    .iter()
                    .find(|(_, c)| same_here(c.as_raw_fd(), copy))
                    .map(|(n, _)| *n)
            })
    }

    /// Another process of the dump that holds the open file description
    /// of synthetic `fd` (it would come back as a file of its own).
    pub(super) fn shared_with(&self, fd: i32) -> Option<i32> {
        self.shared.get(&u32::try_from(fd).ok()?).copied()
    }

    /// The queue of socket `fd` as [`InFlight::gather`] read it (once).
    pub(super) fn take_queue(&self, fd: u32) -> Option<unixsave::Queued> {
        self.queues.borrow_mut().remove(&fd)
    }

    /// The synthetic numbers, ascending.
    pub(super) fn numbers(&self) -> impl Iterator<Item = i32> + '_ {
        self.copies.iter().map(|(n, _)| *n as i32)
    }

    /// Whether `fd` is a synthetic number.
    pub(super) fn is_synthetic(&self, fd: i32) -> bool {
        self.copy(fd).is_some()
    }

    /// The copy held here for synthetic number `fd`.
    pub(super) fn copy(&self, fd: i32) -> Option<&OwnedFd> {
        let n = u32::try_from(fd).ok()?;
        self.copies.iter().find(|(k, _)| *k == n).map(|(_, c)| c)
    }

    /// Where the file of descriptor `fd` can be read: (pid, descriptor)
    /// of the process, or of this one for a synthetic number.
    pub(super) fn at(&self, fd: i32) -> (i32, i32) {
        match self.copy(fd) {
            Some(c) => (std::process::id() as i32, c.as_raw_fd()),
            None => (self.pid, fd),
        }
    }

    /// The descriptor of the process through whose queue synthetic `fd`
    /// is reached (itself when it is not synthetic).
    pub(super) fn carrier_of(&self, fd: u32) -> u32 {
        let mut at = fd;
        for _ in 0..=self.copies.len() {
            match self.carrier.get(&at) {
                Some(&c) => at = c,
                None => break,
            }
        }
        at
    }
}

/// A process of `tree` other than `pid` with a descriptor of the open file
/// description of `copy` (a descriptor of this process).
fn holder_in(tree: &[i32], pid: i32, copy: i32) -> Option<i32> {
    let here = std::process::id() as i32;
    tree.iter().copied().filter(|&p| p != pid).find(|&p| {
        fs::read_dir(format!("/proc/{p}/fd")).is_ok_and(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .any(|fd| fdsys::same_file_of(p, fd, here, copy))
        })
    })
}

/// In a tree (`tree` not empty): another process of it whose queues
/// carry the open file description of `copy` too (the processes' files
/// in flight are kept here until the next dump of another tree).
fn in_flight_elsewhere(tree: &[i32], pid: i32, copy: &OwnedFd) -> Option<i32> {
    static SEEN: std::sync::Mutex<Vec<(i32, OwnedFd)>> = std::sync::Mutex::new(Vec::new());
    if tree.is_empty() {
        return None;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.retain(|(p, _)| tree.contains(p));
    let other = seen
        .iter()
        .find(|(p, c)| *p != pid && same_here(c.as_raw_fd(), copy.as_raw_fd()))
        .map(|(p, _)| *p);
    if let Ok(c) = copy.try_clone() {
        seen.push((pid, c));
    }
    other
}

/// Descriptors `a` and `b` of this process are one open file description.
fn same_here(a: i32, b: i32) -> bool {
    let here = std::process::id() as i32;
    fdsys::same_file_of(here, a, here, b)
}

/// Why socket `copy` (in flight) is refused: a TCP connection (restored
/// after the queues are refilled, from a repair of the process's own
/// descriptor).
pub(super) fn refused_socket(copy: &OwnedFd) -> Option<String> {
    let fd = copy.as_raw_fd();
    let (domain, ty) = domain_type(fd);
    let proto = fdsys::sockopt_int(fd, libc::SO_PROTOCOL).unwrap_or(-1);
    let inet = matches!(domain, libc::AF_INET | libc::AF_INET6);
    let connected = nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(fd).is_ok();
    (inet && ty == libc::SOCK_STREAM && proto == libc::IPPROTO_TCP && connected)
        .then(|| "TCP connection".to_owned())
}
