//! Owners of descriptors' I/O signals (format 1.4, `NT_KCKPT_FOWNERS`):
//! `F_SETOWN_EX` and `F_SETSIG` again on every saved descriptor, once the
//! threads exist (a thread owner is one of them) and the process group is
//! restored. `O_ASYNC` came back with the descriptor's flags.
//!
//! A saved owner id is set as it is when the restore kept the process's
//! pid (a tree, a new PID namespace, a free pid); otherwise the process
//! itself, its threads and its own process group are named by their new
//! ids, and any other owner is left out with a warning (signalling
//! whatever process has that number now would be worse).
#![allow(unsafe_code)] // F_SETOWN_EX reads a struct from a pointer.

use kckpt_arch::syscall::raw_syscall;
use kckpt_image::files::find_fd;
use kckpt_image::owner_type;
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::sys::{self, check, Errno};

const F_SETSIG: u32 = 10;
const F_SETOWN_EX: u32 = 15;

/// The id to set for a saved owner, `None` when it cannot be named now.
fn owner_now(img: &Image, kind: u32, saved: u32, tid_now: &dyn Fn(u32) -> u32) -> Option<u32> {
    let saved_pid = img.view.threads().next().map_or(0, |t| t.record.tid);
    let pid = sys::getpid();
    if pid == saved_pid || saved == 0 {
        return Some(saved);
    }
    match kind {
        owner_type::PID if saved == saved_pid => Some(pid),
        owner_type::TID if img.view.threads().any(|t| t.record.tid == saved) => {
            Some(tid_now(saved))
        }
        // Its own group only when it leads one again.
        owner_type::PGRP
            if img
                .view
                .job
                .is_some_and(|j| j.pgid == saved && j.pgid == j.pid)
                && crate::terminal::getpgid(0) == Ok(pid as usize) =>
        {
            Some(pid)
        }
        _ => None,
    }
}

fn set(fd: usize, kind: u32, id: u32, signal: u32) -> Result<(), Errno> {
    let owner: [i32; 2] = [kind as i32, id as i32];
    // SAFETY: F_SETOWN_EX reads one `struct f_owner_ex` (two ints) from
    // `owner`, which outlives the call.
    check(unsafe {
        raw_syscall(
            g::__NR_fcntl as usize,
            [fd, F_SETOWN_EX as usize, owner.as_ptr() as usize, 0, 0, 0],
        )
    })?;
    sys::fcntl(fd, F_SETSIG, signal as usize).map(|_| ())
}

/// The owner id `F_GETOWN_EX` reports for `fd` now (0: none).
fn current_owner(fd: usize) -> u32 {
    const F_GETOWN_EX: usize = 16;
    let mut owner: [i32; 2] = [0; 2];
    // SAFETY: F_GETOWN_EX writes one `struct f_owner_ex` (two ints) to
    // `owner`, which outlives the call.
    let r = check(unsafe {
        raw_syscall(
            g::__NR_fcntl as usize,
            [fd, F_GETOWN_EX, owner.as_mut_ptr() as usize, 0, 0, 0],
        )
    });
    if r.is_ok() {
        owner[1] as u32
    } else {
        0
    }
}

/// Set every saved owner again; one that cannot be is a warning. In a
/// process tree (`tree`), an owner that does not exist yet (another
/// process of the tree, forked later) is left for [`retry`] after the
/// barrier, when every process exists.
pub fn restore(img: &Image, tid_now: &dyn Fn(u32) -> u32, tree: bool) {
    set_all(img, tid_now, if tree { Pass::Defer } else { Pass::Only });
}

/// After a tree's barrier: the owners [`restore`] left because they did
/// not exist yet.
pub fn retry(img: &Image, tid_now: &dyn Fn(u32) -> u32) {
    set_all(img, tid_now, Pass::Retry);
}

#[derive(PartialEq)]
enum Pass {
    /// The only one (a single process).
    Only,
    /// A tree's first: missing owners wait for [`Pass::Retry`].
    Defer,
    /// After the barrier: only the owners still missing.
    Retry,
}

fn set_all(img: &Image, tid_now: &dyn Fn(u32) -> u32, pass: Pass) {
    for o in img.view.fowners.iter() {
        if pass == Pass::Retry && (o.owner == 0 || current_owner(o.fd as usize) != 0) {
            continue; // set by the first pass (or warned about)
        }
        let now = owner_now(img, o.owner_type, o.owner, tid_now);
        let r = match now {
            Some(id) => set(o.fd as usize, o.owner_type, id, o.signal),
            // The signal still, for an owner the program sets again.
            None => sys::fcntl(o.fd as usize, F_SETSIG, o.signal as usize)
                .and(Err(Errno(linux_raw_sys::errno::ESRCH))),
        };
        let Err(e) = r else { continue };
        if pass == Pass::Defer && now.is_some() && e.0 == linux_raw_sys::errno::ESRCH {
            continue;
        }
        let mut m = Msg::new();
        m.push(img.path).s(": fd ").dec(o.fd.into());
        if let Some(path) = find_fd(&img.view, o.fd).and_then(|r| img.view.string(r.path).ok()) {
            if !path.is_empty() {
                m.s(" (").push(path).s(")");
            }
        }
        m.s(": its I/O signals went to ").s(match o.owner_type {
            owner_type::TID => "thread ",
            owner_type::PGRP => "process group ",
            _ => "process ",
        });
        m.dec(o.owner.into());
        if now.is_none() {
            m.s(", which this restore (new pids) cannot name; restored without an owner (kckpt restore --new-pid-ns keeps pids)")
                .warn();
        } else {
            m.s("; cannot set it again")
                .errno(e)
                .s("; restored without an owner")
                .warn();
        }
    }
}
