//! The coordinator of a process-tree restore (see [`crate::tree`]): the
//! process that ran the image in privileged mode, or pid 1 of the new PID
//! namespace.
//!
//! It creates the slots the restorer holds (pipes whose ends are used in
//! different root subtrees) and the barrier pipes, forks each root with its
//! saved pid, then reads one word per live process from the ready pipe.
//! A process that fails says why on stderr and writes its index with bit
//! 31 set; a process that dies without a word is noticed by polling (once
//! a second, every process that must exist by then is looked for). Any
//! failure: every process is killed (the roots get SIGKILL; every other
//! process has SIGKILL as parent-death signal until it resumes, or dies
//! with the namespace) and the restore ends with status 126. Otherwise one
//! go byte per process, and everybody resumes at once. Then it waits for
//! the roots and ends the way the tree's `status_proc` (or the root above
//! it) ends; in privileged mode it relays signals to that root meanwhile,
//! like the single-process relay (`ids::relay`).

use core::sync::atomic::AtomicU32;

use kckpt_image::tree::{proc_state, HOLDER_RESTORER, NO_PARENT};
use kckpt_image::ImageView;
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::sys::{self, Errno};
use crate::tree::{self, Exec};

const F_DUPFD_CLOEXEC: u32 = 1030;
const POLLIN: i16 = 1;
const POLLHUP: i16 = 0x10;
const WNOHANG: u32 = 1;
const WUNTRACED: u32 = 2;
const SIGKILL: u32 = 9;
const SIGSTOP: u32 = 19;
/// Bit 31 of a ready word: the process failed.
const FAILED: u32 = 1 << 31;

/// A set of process indices (at most `kckpt_image::tree::MAX_PROCS`).
struct Set([u64; 64]);

impl Set {
    fn has(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn add(&mut self, i: u32) -> bool {
        let Some(w) = self.0.get_mut(i as usize / 64) else {
            return false;
        };
        let new = *w & (1 << (i % 64)) == 0;
        *w |= 1 << (i % 64);
        new
    }
}

/// Restore the tree. `word`: `Some` in the new namespace (pid 1; the
/// wait status goes to `P` through it). In privileged mode, returns only
/// when the first root cannot get its pid because this process may not
/// choose pids (then the caller tries a new PID namespace).
pub fn run(img: &mut Image, exec: Exec, word: Option<&'static AtomicU32>) {
    let Some(t) = img.view.tree else { return };
    let b = t.slot_base + t.slots;
    tree::raise_nofile();
    let end = tree::kept_end(b);
    let fd = sys::fcntl(img.fd, F_DUPFD_CLOEXEC, end as usize).unwrap_or_else(|e| {
        Msg::new()
            .push(img.path)
            .s(": cannot use descriptor numbers up to ")
            .dec(end.into())
            .s(" (RLIMIT_NOFILE)")
            .errno(e)
            .fail()
    });
    // Above the slots and the barrier, which may take its number.
    sys::close(img.fd);
    img.fd = fd;
    // (1.10) The tree's SysV segments, in a new IPC namespace every
    // process inherits.
    crate::sysv::create(img);
    let exec = exec.through(fd);
    // The restorer's external descriptors, before the slots may take
    // their numbers.
    crate::external::place_for_tree(b + 4);
    let v = &img.view;
    if let Err((k, e)) = tree::create_pipe_slots(v, HOLDER_RESTORER, fd) {
        Msg::new()
            .push(img.path)
            .s(": shared descriptor slot ")
            .dec(k.into())
            .s(": cannot create the pipe or pseudo-terminal")
            .errno(e)
            .fail();
    }
    barrier_pipes(img.path, b);
    let mut first = true;
    for (i, rec) in v.tree_procs.iter().enumerate() {
        if rec.parent != NO_PARENT {
            continue;
        }
        match tree::spawn(v, exec, i as u32) {
            Ok(_) => first = false,
            Err(Errno(linux_raw_sys::errno::EPERM)) if first && word.is_none() => {
                // Not allowed to choose pids: undo, and try a namespace.
                let _ = sys::close_range(t.slot_base, b + 3);
                return;
            }
            Err(e) => {
                let mut m = tree::proc_msg(img.path, i as u32, rec.pid);
                m.s(": cannot have its pid").errno(e);
                abort(v, word, m)
            }
        }
    }
    if t.slots > 0 {
        let _ = sys::close_range(t.slot_base, b - 1);
    }
    crate::external::close_tree_copies(b + 4);
    sys::close(b as usize + 1);
    sys::close(b as usize + 2);
    sys::close(img.fd);
    if let Err(why) = wait_ready(v, b as usize) {
        let mut m = Msg::new();
        match why {
            Failed::Reported => {}
            Failed::Ended(i) => {
                let pid = v.tree_procs.get(i as usize).map_or(0, |p| p.pid);
                m = tree::proc_msg(img.path, i, pid);
                m.s(" ended during the restore");
            }
            Failed::AllEnded => {
                m.push(img.path)
                    .s(": every process of the tree ended during the restore");
            }
        }
        abort(v, word, m);
    }
    let live = v
        .tree_procs
        .iter()
        .filter(|p| p.state == proc_state::LIVE)
        .count();
    // Every process has attached its segments.
    crate::sysv::remove_destroyed(v);
    crate::terminal::give_foreground(v);
    let go = [b'G'; 64];
    let mut left = live;
    while left > 0 {
        let n = left.min(go.len());
        sys::write_all(b as usize + 3, &go[..n]);
        left -= n;
    }
    sys::close(b as usize + 3);
    sys::close(b as usize);
    match word {
        Some(w) => reap_namespace(v, w),
        None => relay(v),
    }
}

/// The two barrier pipes at `b` .. `b + 3` (not close-on-exec).
fn barrier_pipes(path: &[u8], b: u32) {
    let fail = |e| -> ! {
        Msg::new()
            .push(path)
            .s(": cannot create the barrier pipes")
            .errno(e)
            .fail()
    };
    for at in [b, b + 2] {
        let ends = tree::pipe_above(0, b + 4).unwrap_or_else(|e| fail(e));
        for (end, to) in [(ends[0], at), (ends[1], at + 1)] {
            if let Err(e) = tree::put(end, to) {
                fail(e)
            }
        }
    }
}

/// Does `/proc` show this PID namespace (`/proc/self/stat` starts with
/// this process's pid)?
fn proc_matches() -> bool {
    let mut buf = [0u8; 32];
    let Ok(fd) = sys::open(b"/proc/self/stat\0", g::O_RDONLY) else {
        return false;
    };
    let n = crate::ksys::read(fd, &mut buf).unwrap_or(0);
    sys::close(fd);
    let mut digits = [0u8; 20];
    let me = crate::report::decimal(sys::getpid() as u64, &mut digits);
    buf[..n].starts_with(me) && buf.get(me.len()) == Some(&b' ')
}

/// Has process `i` (which must exist by now) died?
fn gone(v: &ImageView<'_>, i: u32, proc_ok: bool) -> bool {
    let rec = v.tree_procs.get(i as usize).unwrap_or_default();
    if rec.parent == NO_PARENT {
        return !matches!(sys::wait4(rec.pid as i32, WNOHANG | g::__WALL), Ok((0, _)));
    }
    crate::ksys::kill(rec.pid, 0) == Err(Errno(linux_raw_sys::errno::ESRCH))
        || (proc_ok && crate::ids::zombie(rec.pid))
}

/// Why the barrier failed.
enum Failed {
    /// A process failed and said why.
    Reported,
    /// Process `i` ended without a word.
    Ended(u32),
    /// Every process ended.
    AllEnded,
}

/// Read the ready words until every live process is ready.
fn wait_ready(v: &ImageView<'_>, b: usize) -> Result<(), Failed> {
    let live = v
        .tree_procs
        .iter()
        .filter(|p| p.state == proc_state::LIVE)
        .count();
    let proc_ok = proc_matches();
    let mut ready = Set([0; 64]);
    let mut count = 0;
    let mut buf = [0u8; 512];
    while count < live {
        let events = crate::xsys::poll_one(b, POLLIN, 1000).unwrap_or(0);
        if events & (POLLIN | POLLHUP) != 0 {
            let n = crate::ksys::read(b, &mut buf).unwrap_or(0);
            if n == 0 {
                return Err(Failed::AllEnded);
            }
            for w in buf[..n].chunks_exact(4) {
                let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                if w & FAILED != 0 {
                    return Err(Failed::Reported);
                }
                if ready.add(w) {
                    count += 1;
                }
            }
            continue;
        }
        for (i, rec) in v.tree_procs.iter().enumerate() {
            let i = i as u32;
            let exists = rec.parent == NO_PARENT || ready.has(rec.parent);
            if rec.state == proc_state::LIVE && !ready.has(i) && exists && gone(v, i, proc_ok) {
                return Err(Failed::Ended(i));
            }
        }
    }
    Ok(())
}

/// Kill the tree, say why (unless the failing process did) and exit 126.
fn abort(v: &ImageView<'_>, word: Option<&'static AtomicU32>, mut m: Msg) -> ! {
    if word.is_none() {
        for rec in v.tree_procs.iter().filter(|p| p.parent == NO_PARENT) {
            if !matches!(sys::wait4(rec.pid as i32, WNOHANG | g::__WALL), Ok((0, _))) {
                continue; // already ended (reaped now), or never forked
            }
            let _ = crate::ksys::kill(rec.pid, SIGKILL);
            let _ = sys::wait4(rec.pid as i32, g::__WALL);
        }
    }
    if m.is_empty() {
        sys::exit(crate::report::EXIT_REFUSED)
    }
    // In the namespace, exiting kills every process in it.
    m.fail()
}

/// The index of the root whose end is the image's: `status_proc` or the
/// root above it.
pub fn status_root(v: &ImageView<'_>) -> u32 {
    let mut i = v.tree.map_or(0, |t| t.status_proc);
    for _ in 0..v.tree_procs.len() {
        match v.tree_procs.get(i as usize) {
            Some(p) if p.parent != NO_PARENT => i = p.parent,
            _ => break,
        }
    }
    i
}

/// pid 1 of the namespace: reap every process and pass on the signals
/// the image's process relays to the status root until all roots ended,
/// then end the namespace with the status root's wait status.
fn reap_namespace(v: &ImageView<'_>, word: &'static AtomicU32) -> ! {
    let _ = sys::close_from(0);
    crate::ids::set_namespace_word(word);
    let root_pid = v
        .tree_procs
        .get(status_root(v) as usize)
        .map_or(0, |p| p.pid);
    let procs = v.tree_procs;
    let mut roots = procs.iter().filter(|p| p.parent == NO_PARENT).count();
    crate::ids::forward_from_init(root_pid, move |pid, _| {
        if procs.iter().any(|p| p.pid == pid && p.parent == NO_PARENT) {
            roots -= 1;
        }
        roots == 0
    })
}

/// Privileged mode: stand in for the status root (take its command name,
/// relay its signals, stop when it stops), wait for every root, end like
/// the status root.
fn relay(v: &ImageView<'_>) -> ! {
    let _ = sys::close_from(0);
    let root = v
        .tree_procs
        .get(status_root(v) as usize)
        .unwrap_or_default();
    let root_pid = root.pid;
    // Its command name, as the single-process relay takes (`ps`, `jobs`).
    crate::ids::take_name(root.name);
    let mut status = 0;
    crate::ids::relay_loop(
        root_pid,
        -1,
        WUNTRACED | g::__WALL,
        &mut |waited| match waited {
            Ok((pid, st)) if st & 0xff == 0x7f => {
                if pid == root_pid {
                    let _ = crate::ksys::kill(sys::getpid(), SIGSTOP);
                }
            }
            Ok((pid, st)) => {
                if pid == root_pid {
                    status = st;
                }
            }
            Err(_) => {
                crate::terminal::take_back_foreground();
                sys::exit_like(status)
            }
        },
    )
}
