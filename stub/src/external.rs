//! External descriptors (format 1.4, `kckpt_image::external`): taken from
//! the restorer, which names them in `KCKPT_INHERIT_FD="KEY=N,KEY=N"`.
//!
//! A single process: every descriptor `N` an external record needs is
//! checked (open, and open for reading where the record was a read end,
//! for writing where it was a write end) before anything changes, copied
//! above the saved descriptor numbers before `files::restore` closes the
//! caller's descriptors, then duplicated into place with the saved
//! close-on-exec flag and status flags (which changes them in the
//! restorer's open file description too: it is the same one).
//!
//! A tree: the coordinator puts entry `j` of the list at the fixed number
//! `B + 4 + j` (`B`: the first barrier descriptor) before it creates the
//! slots, so that every process of the tree inherits them through its
//! ancestors; each process takes its own from there and closes them all
//! once its children are forked.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kckpt_image::external::{entries, lookup, EXTERNAL_FD_KIND, MAX_INHERIT};
use kckpt_image::{FdRecord, FD_NO_DUP};

use crate::load::Image;
use crate::report::Msg;
use crate::sys::{self, Errno};

const F_DUPFD_CLOEXEC: u32 = 1030;
const F_GETFL: u32 = 3;
const O_ACCMODE: u32 = 3;
const O_RDWR: u32 = 2;

static LIST_PTR: AtomicUsize = AtomicUsize::new(0);
static LIST_LEN: AtomicUsize = AtomicUsize::new(0);
/// The coordinator placed the entries (a retry in a new PID namespace
/// finds them in place).
static PLACED: AtomicBool = AtomicBool::new(false);

/// Remember the `KCKPT_INHERIT_FD` value (on the initial stack, which stays
/// mapped until the address space is replaced, after every use here).
pub fn set_list(value: &'static [u8]) {
    LIST_PTR.store(value.as_ptr() as usize, Ordering::Relaxed);
    LIST_LEN.store(value.len(), Ordering::Relaxed);
}

#[allow(unsafe_code)] // The slice `set_list` stored.
fn list() -> &'static [u8] {
    let (ptr, len) = (
        LIST_PTR.load(Ordering::Relaxed),
        LIST_LEN.load(Ordering::Relaxed),
    );
    if ptr == 0 {
        return &[];
    }
    // SAFETY: `set_list` stored a `'static` slice of the initial stack,
    // which is still mapped whenever this runs (before memory changes).
    unsafe { core::slice::from_raw_parts(ptr as *const u8, len) }
}

/// Refuse a malformed list (one line, before anything changes).
pub fn check_list() {
    let l = list();
    if entries(l).any(|e| e.is_none()) || entries(l).count() > MAX_INHERIT {
        Msg::new()
            .s("KCKPT_INHERIT_FD must be KEY=N entries separated by commas (at most 16)")
            .exit(crate::report::EXIT_USAGE);
    }
}

/// Where a tree keeps entry `j`: `base + j`, `base` = `B + 4`.
pub fn tree_fd(base: u32, j: usize) -> usize {
    base as usize + j
}

/// The coordinator: put every entry of the list whose descriptor is open
/// at its fixed number `base + j` (not close-on-exec), all copied above
/// `base + MAX_INHERIT` first so that none replaces another's source.
/// The image descriptor must already be above that range.
pub fn place_for_tree(base: u32) {
    if PLACED.swap(true, Ordering::Relaxed) {
        return;
    }
    let mut tmp = [usize::MAX; MAX_INHERIT];
    let high = base as usize + MAX_INHERIT;
    for (j, e) in entries(list()).enumerate().take(MAX_INHERIT) {
        if let Some((_, n)) = e {
            if let Ok(fd) = sys::fcntl(n as usize, F_DUPFD_CLOEXEC, high) {
                tmp[j] = fd;
            }
        }
    }
    for (j, &fd) in tmp.iter().enumerate() {
        if fd != usize::MAX {
            let _ = crate::tree::put(fd, base + j as u32);
        }
    }
}

/// Close the tree's copies `[base, base + MAX_INHERIT)`.
pub fn close_tree_copies(base: u32) {
    let _ = sys::close_range(base, base + MAX_INHERIT as u32 - 1);
}

/// `kckpt: IMAGE[: process I (pid P) of the tree]: fd N (KEY)` prefix.
fn msg(img: &Image, r: &FdRecord, who: Option<(u32, u32)>) -> Msg {
    let mut m = match who {
        Some((i, pid)) => crate::tree::proc_msg(img.path, i, pid),
        None => {
            let mut m = Msg::new();
            m.push(img.path);
            m
        }
    };
    m.s(": fd ")
        .dec(r.fd.into())
        .s(" (")
        .push(img.view.string(r.path).unwrap_or(&[]))
        .s(")");
    m
}

/// The list entry of external record `r` and the descriptor that holds it
/// now (`N` alone; `base + j` in a tree process), checked: open, and open
/// the way `r` was. Refuses with one line otherwise.
fn source(img: &Image, r: &FdRecord, tree: Option<(u32, u32, u32)>) -> (usize, usize) {
    let key = img.view.string(r.path).unwrap_or(&[]);
    let who = tree.map(|t| (t.1, t.2));
    let Some((j, n)) = lookup(list(), key).filter(|e| e.0 < MAX_INHERIT) else {
        let mut m = msg(img, r, who);
        m.s(": led outside the dumped processes (kckpt dump --external); ")
            .s("name the descriptor to put there: kckpt restore --inherit-fd ")
            .push(key)
            .s("=N, or KCKPT_INHERIT_FD=")
            .push(key)
            .s("=N when running the image")
            .fail()
    };
    let fd = tree.map_or(n as usize, |t| tree_fd(t.0, j));
    let flags = match sys::fcntl(fd, F_GETFL, 0) {
        Ok(f) => f as u32,
        Err(e) => {
            let mut m = msg(img, r, who);
            m.s(": the restorer's descriptor ")
                .dec(n.into())
                .s(" (KCKPT_INHERIT_FD) is not open")
                .errno(e)
                .fail()
        }
    };
    let (want, have) = (r.flags & O_ACCMODE, flags & O_ACCMODE);
    if want != have && have != O_RDWR {
        let mode = |m| match m {
            0 => "reading",
            1 => "writing",
            _ => "reading and writing",
        };
        let mut m = msg(img, r, who);
        m.s(": the restorer's descriptor ")
            .dec(n.into())
            .s(" is open for ")
            .s(mode(have))
            .s(" only, where the process had it open for ")
            .s(mode(want))
            .s(" (the wrong end of a pipe?)")
            .fail();
    }
    (j, fd)
}

/// Check every external record of `img` (a single process, before
/// anything changes).
pub fn check(img: &Image) {
    for r in img.view.fds.iter() {
        if r.kind == EXTERNAL_FD_KIND && r.dup_of == FD_NO_DUP {
            source(img, &r, None);
        }
    }
}

/// The restorer's descriptors the external records of `img` need, held
/// through `files::restore` (closed by [`Held::close`]).
pub struct Held {
    fds: [usize; MAX_INHERIT],
    /// Copies of this process (single process), to close at the end.
    own: bool,
}

impl Held {
    /// Take them: a single process copies each above `floor` (before the
    /// caller's descriptors are closed); a tree process (`tree`: `B + 4`,
    /// its index and pid) uses the inherited copies in place.
    pub fn take(img: &Image, floor: usize, tree: Option<(u32, u32, u32)>) -> Held {
        let mut held = Held {
            fds: [usize::MAX; MAX_INHERIT],
            own: tree.is_none(),
        };
        for r in img.view.fds.iter() {
            if r.kind != EXTERNAL_FD_KIND || r.dup_of != FD_NO_DUP {
                continue;
            }
            let (j, fd) = source(img, &r, tree);
            if held.fds[j] != usize::MAX {
                continue;
            }
            held.fds[j] = if held.own {
                sys::fcntl(fd, F_DUPFD_CLOEXEC, floor).unwrap_or_else(|e| {
                    msg(img, &r, None)
                        .s(": cannot copy the restorer's descriptor")
                        .errno(e)
                        .fail()
                })
            } else {
                fd
            };
        }
        held
    }

    /// The descriptors to keep open while the caller's are closed.
    pub fn keep(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.fds
            .iter()
            .filter(|&&fd| fd != usize::MAX)
            .map(|&fd| (fd as u32, fd as u32 + 1))
    }

    /// A close-on-exec copy of the descriptor for external record `r`.
    pub fn copy(&self, key: &[u8]) -> Result<usize, Errno> {
        let j = lookup(list(), key).map_or(usize::MAX, |e| e.0);
        match self.fds.get(j) {
            Some(&fd) if fd != usize::MAX => sys::fcntl(fd, F_DUPFD_CLOEXEC, 0),
            _ => Err(Errno(linux_raw_sys::errno::EBADF)),
        }
    }

    /// Close this process's own copies (a tree's are closed after its
    /// children are forked: [`close_tree_copies`]).
    pub fn close(&self) {
        if self.own {
            for &fd in self.fds.iter().filter(|&&fd| fd != usize::MAX) {
                sys::close(fd);
            }
        }
    }
}
