//! Pseudo-terminal pairs held inside a restored tree (slot kinds
//! `PTY_MASTER` and `PTY_SLAVE`, issue 9).
//!
//! The holder opens a new pair (`/dev/ptmx`), unlocks it, applies the
//! saved mode, window size and packet mode, opens each slave description
//! from the master (`TIOCGPTPEER`: no path, no race with another pair),
//! locks it again when it was locked, and puts every end at its slot. The
//! session leader whose controlling terminal the slave was takes it again
//! (`TIOCSCTTY` on a slave opened from the inherited master slot) before it
//! forks its children; the first live process of the saved foreground
//! group makes its group the foreground one (`TIOCSPGRP`). The new pair
//! has the number the kernel gives (`/dev/pts/M`, not the saved `N`).

use kckpt_image::tree::{slot_kind, PtyRecord, TreeSlotRecord, NO_PARENT};
use kckpt_image::ImageView;
use linux_raw_sys::general as g;
use linux_raw_sys::ioctl as io;

use crate::report::Msg;
use crate::sys::{self, Errno};
use crate::terminal::{block_sigttou, ioctl, set_full_mode};

const F_DUPFD_CLOEXEC: u32 = 1030;

/// The saved state of the pair of master slot `s`, read from the image
/// file `fd` (outer offsets).
pub fn read(fd: usize, s: &TreeSlotRecord) -> Result<PtyRecord, Errno> {
    let mut buf = [0u8; core::mem::size_of::<PtyRecord>()];
    if s.data_len < buf.len() as u64 || sys::pread(fd, &mut buf, s.data_offset)? != buf.len() {
        return Err(Errno(linux_raw_sys::errno::EIO));
    }
    kckpt_image::read::read_record(&buf).ok_or(Errno(linux_raw_sys::errno::EIO))
}

/// `P`: every pair's saved state is readable and sane (before anything
/// changes); refuses with one line.
pub fn check_all(path: &[u8], fd: usize, v: &ImageView<'_>) {
    for (k, s) in v.tree_slots.iter().enumerate() {
        if s.kind != slot_kind::PTY_MASTER {
            continue;
        }
        let ok = read(fd, &s).is_ok_and(|p| {
            (p.owner & !(kckpt_image::tree::PTY_OWNER_SAVED | 0o7777) == 0)
                && (p.owner != 0 || (p.uid, p.gid) == (0, 0))
                && (p.owner == 0 || p.owner & kckpt_image::tree::PTY_OWNER_SAVED != 0)
                && p.term.fd == 0
                && p.term.flags == 0
                && p.term.reserved0 == 0
                && p.term.reserved == [0; 2]
                && p.packet <= 1
                && p.locked <= 1
                && (p.session == NO_PARENT || (p.session as usize) < v.tree_procs.len())
        });
        if !ok {
            Msg::new()
                .push(path)
                .s(": image is corrupt (the pseudo-terminal of slot ")
                .dec(k as u64)
                .s(")")
                .fail();
        }
    }
}

/// Create the pair of master slot `k` (`s`) and its slave slots at
/// `base + slot`, ends parked at `floor` and above meanwhile; `fd`: the
/// image file.
pub fn create(
    v: &ImageView<'_>,
    k: u32,
    s: &TreeSlotRecord,
    fd: usize,
    base: u32,
    floor: u32,
) -> Result<(), (u32, Errno)> {
    let rec = read(fd, s).map_err(|e| (k, e))?;
    let opened = sys::open(
        b"/dev/ptmx\0",
        g::O_RDWR | g::O_NOCTTY | g::O_CLOEXEC | (s.flags & g::O_NONBLOCK),
    )
    .map_err(|e| (k, e))?;
    let master = sys::fcntl(opened, F_DUPFD_CLOEXEC, floor as usize);
    sys::close(opened);
    let master = master.map_err(|e| (k, e))?;
    let zero: i32 = 0;
    let one: i32 = 1;
    if s.flags & kckpt_image::tree::PTY_MASTER_CLOSED != 0 {
        // Its slaves, hung up when the master is closed.
        let r = ioctl(master, io::TIOCSPTLCK, &zero as *const i32 as usize)
            .map_err(|e| (k, e))
            .and_then(|_| open_slaves(v, k, master, base));
        sys::close(master);
        return r;
    }
    let setup = || -> Result<(), Errno> {
        ioctl(master, io::TIOCSPTLCK, &zero as *const i32 as usize)?;
        set_full_mode(master, &rec.term)?;
        ioctl(master, io::TIOCSWINSZ, rec.term.winsize.as_ptr() as usize)?;
        if rec.packet != 0 {
            ioctl(master, io::TIOCPKT, &one as *const i32 as usize)?;
        }
        Ok(())
    };
    setup().map_err(|e| (k, e))?;
    if rec.owner != 0 {
        // The slave's owner and mode (its inode in devpts, shared by
        // every description of it).
        let flags = (g::O_RDWR | g::O_NOCTTY | g::O_CLOEXEC | g::O_NONBLOCK) as usize;
        let slave = ioctl(master, io::TIOCGPTPEER, flags).map_err(|e| (k, e))?;
        let r = crate::gsys::fchown(slave, rec.uid, rec.gid)
            .and_then(|_| crate::gsys::fchmod(slave, rec.owner & 0o7777));
        sys::close(slave);
        r.map_err(|e| (k, e))?;
    }
    open_slaves(v, k, master, base)?;
    if s.pipe_size != 0 || s.size != 0 {
        put_back(fd, s, master, &rec).map_err(|e| (k, e))?;
    }
    if rec.locked != 0 {
        let _ = ioctl(master, io::TIOCSPTLCK, &one as *const i32 as usize);
    }
    crate::tree::put(master, base + k).map_err(|e| (k, e))
}

/// A tree process (`index`, pid `pid`, group `pgid`, session `sid`),
/// after it created its slots: take the controlling terminal of the
/// session it leads, and the foreground for its group (see the module
/// comment). `fd`: the image file.
pub fn take_terminal(v: &ImageView<'_>, index: u32, fd: usize, base: u32, path: &[u8]) {
    let me = v.tree_procs.get(index as usize).unwrap_or_default();
    for (k, s) in v.tree_slots.iter().enumerate() {
        if s.kind != slot_kind::PTY_MASTER {
            continue;
        }
        let Ok(rec) = read(fd, &s) else { continue };
        let Some(leader) = v.tree_procs.get(rec.session as usize) else {
            continue;
        };
        let fail = |what: &str, e: Errno| -> ! {
            crate::tree::proc_msg(path, index, me.pid)
                .s(": ")
                .s(what)
                .s(" (pseudo-terminal of slot ")
                .dec(k as u64)
                .s(")")
                .errno(e)
                .fail()
        };
        if rec.session == index {
            let master = (base + k as u32) as usize;
            let flags = (g::O_RDWR | g::O_NOCTTY | g::O_CLOEXEC) as usize;
            let slave = ioctl(master, io::TIOCGPTPEER, flags)
                .unwrap_or_else(|e| fail("cannot open the slave", e));
            if let Err(e) = ioctl(slave, io::TIOCSCTTY, 0) {
                fail("cannot make it its controlling terminal", e);
            }
            sys::close(slave);
        }
        let first = v
            .tree_procs
            .iter()
            .position(|p| {
                p.state == kckpt_image::tree::proc_state::LIVE
                    && p.pgid == rec.fg_pgid
                    && p.sid == leader.pid
            })
            .is_some_and(|i| i as u32 == index);
        if rec.fg_pgid != 0 && first && me.pgid != leader.pgid {
            let Ok(tty) = sys::open(b"/dev/tty\0", g::O_RDWR | g::O_NOCTTY | g::O_CLOEXEC) else {
                fail(
                    "has no controlling terminal",
                    Errno(linux_raw_sys::errno::ENXIO),
                )
            };
            let old = block_sigttou();
            let pgrp = me.pgid as i32;
            let r = ioctl(tty, io::TIOCSPGRP, &pgrp as *const i32 as usize);
            if let Some(old) = old {
                let _ = sys::set_sigmask(old);
            }
            sys::close(tty);
            if let Err(e) = r {
                fail("cannot make its group the foreground one", e);
            }
        }
    }
}

/// Write `len` bytes of the image file `fd` at `at` to `to`; returns how
/// many bytes of input they are as `FIONREAD` counts them on the slave
/// (`canon`: the escapes and end-of-file characters of the saved mode
/// `t` are not).
fn copy_out(
    fd: usize,
    mut at: u64,
    mut len: u64,
    to: usize,
    canon: Option<&kckpt_image::terminal::TerminalRecord>,
) -> Result<u64, Errno> {
    let lnext = canon.map_or(0, kckpt_image::tree::pty_lnext);
    let eof = canon.map_or(0, |t| t.cc[g::VEOF as usize]);
    let mut escaped = false;
    let mut count = 0;
    let mut buf = [0u8; 512];
    while len > 0 {
        let n = (len as usize).min(buf.len());
        if sys::pread(fd, &mut buf[..n], at)? != n {
            return Err(Errno(linux_raw_sys::errno::EIO));
        }
        for &b in &buf[..n] {
            if canon.is_none() || escaped {
                count += 1;
                escaped = false;
            } else if b == lnext {
                escaped = true;
            } else if eof == 0 || b != eof {
                count += 1;
            }
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let w = sys::write(to, rest)?;
            rest = &rest[w..];
        }
        at += n as u64;
        len -= n as u64;
    }
    Ok(count)
}

/// (1.5) Put back the unread bytes of pair `master` (slot `s`, saved
/// state `rec`, image file `fd`): with the slave in the mode of
/// `pty_inject_mode`, the master's unread bytes are written to a slave
/// description and the slave's unread input to the master; once the
/// kernel has moved all of that input into the slave's buffer (`FIONREAD`,
/// up to 2 s), the saved mode is set again.
fn put_back(fd: usize, s: &TreeSlotRecord, master: usize, rec: &PtyRecord) -> Result<(), Errno> {
    let t = &rec.term;
    set_full_mode(master, &kckpt_image::tree::pty_inject_mode(t))?;
    let flags = (g::O_RDWR | g::O_NOCTTY | g::O_CLOEXEC) as usize;
    let slave = ioctl(master, io::TIOCGPTPEER, flags)?;
    let at = s.data_offset + core::mem::size_of::<PtyRecord>() as u64;
    let canon = (t.lflag & g::ICANON != 0).then_some(t);
    let r = copy_out(fd, at, u64::from(s.pipe_size), slave, None).and_then(|_| {
        let want = copy_out(fd, at + u64::from(s.pipe_size), s.size, master, canon)?;
        for _ in 0..2000 {
            let mut n: i32 = 0;
            ioctl(slave, io::FIONREAD, &mut n as *mut i32 as usize)?;
            if n as u64 >= want {
                return Ok(());
            }
            crate::ksys::sleep_ms(1);
        }
        Err(Errno(linux_raw_sys::errno::ETIMEDOUT))
    });
    sys::close(slave);
    r?;
    set_full_mode(master, t)
}

/// Open every `PTY_SLAVE` slot of master slot `k` (at `master`) at
/// `base + slot`.
fn open_slaves(v: &ImageView<'_>, k: u32, master: usize, base: u32) -> Result<(), (u32, Errno)> {
    for (j, sl) in v.tree_slots.iter().enumerate() {
        if sl.kind != slot_kind::PTY_SLAVE || sl.peer != k {
            continue;
        }
        let flags = sl.flags | g::O_NOCTTY | g::O_CLOEXEC;
        let peer = ioctl(master, io::TIOCGPTPEER, flags as usize).map_err(|e| (j as u32, e))?;
        crate::tree::put(peer, base + j as u32).map_err(|e| (j as u32, e))?;
    }
    Ok(())
}
