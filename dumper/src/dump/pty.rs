//! Pseudo-terminal pairs held inside a process tree (issue 9): the state
//! of a master (`/dev/ptmx`) read from a `pidfd_getfd` copy, for its
//! `PTY_MASTER` slot (`kckpt_image::tree::PtyRecord`).
#![allow(unsafe_code)] // ioctls that fill one integer.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;

use kckpt_image::terminal::TerminalRecord;
use kckpt_image::tree::{PtyRecord, NO_PARENT};

/// One `int` out of ioctl `request` on `fd`.
fn get_int(fd: &OwnedFd, request: libc::Ioctl) -> nix::Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: each request used here writes one `int` into `v`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, &raw mut v) };
    Errno::result(r).map(|_| v)
}

/// Does process `pid` hold a pseudo-terminal master (device 5:2), or the
/// slave of a pair whose master is closed (`/dev/pts/N (deleted)`)?
pub fn holds_master(pid: i32) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::metadata(e.path()).is_ok_and(|m| {
            let rdev = m.rdev();
            m.file_type().is_char_device()
                && (super::terminal::is_pty_master(rdev)
                    || (super::terminal::is_pty_slave(rdev)
                        && std::fs::read_link(e.path())
                            .is_ok_and(|l| l.to_string_lossy().ends_with(" (deleted)"))))
        })
    })
}

/// The number `N` of the pair whose master is `master` (`/dev/pts/N`).
pub fn number(master: &OwnedFd) -> nix::Result<u32> {
    get_int(master, libc::TIOCGPTN).map(|n| n as u32)
}

/// `(major, minor)` of the slave of pair `n`.
pub fn slave_dev(n: u32) -> (u64, u64) {
    (136, u64::from(n))
}

/// `(uid, gid, mode)` of the slave of `master`, from a description opened
/// with `O_PATH` (`TIOCGPTPEER`: not an open of the terminal, no effect on
/// the pair).
pub fn slave_owner(master: &OwnedFd) -> nix::Result<(u32, u32, u32)> {
    let flags = libc::O_PATH | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new
    // descriptor, owned below.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = Errno::result(r)?;
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(&fd)?;
    Ok((st.st_uid, st.st_gid, st.st_mode & 0o7777))
}

/// Bytes waiting to be read on `fd` (`FIONREAD`): on a master, what the
/// slave side wrote; on a slave, the input its readers have not read.
pub fn unread(fd: &OwnedFd) -> nix::Result<u32> {
    get_int(fd, libc::FIONREAD).map(|n| n.max(0) as u32)
}

/// Mode, window size, packet and lock state of the pair of `master`
/// (numbered `n`); `session` and `fg_pgid` are filled by the caller.
pub fn state(master: &OwnedFd, n: u32) -> Option<PtyRecord> {
    let term = super::terminal::terminal_state(master)?;
    Some(PtyRecord {
        term,
        index: n,
        packet: u32::from(get_int(master, libc::TIOCGPKT).unwrap_or(0) != 0),
        locked: u32::from(get_int(master, libc::TIOCGPTLCK).unwrap_or(0) != 0),
        session: NO_PARENT,
        fg_pgid: 0,
        owner: 0,
        uid: 0,
        gid: 0,
    })
}

/// Set mode `t` (termios part) on the pair of `master`.
fn set_mode(master: &OwnedFd, t: &TerminalRecord) -> nix::Result<()> {
    // SAFETY: termios2 is a plain C structure; all-zero is valid.
    let mut m: libc::termios2 = unsafe { std::mem::zeroed() };
    m.c_iflag = t.iflag;
    m.c_oflag = t.oflag;
    m.c_cflag = t.cflag;
    m.c_lflag = t.lflag;
    m.c_line = t.line as u8;
    let n = m.c_cc.len().min(t.cc.len());
    m.c_cc[..n].copy_from_slice(&t.cc[..n]);
    m.c_ispeed = t.ispeed;
    m.c_ospeed = t.ospeed;
    // SAFETY: TCSETS2 reads one `struct termios2`.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TCSETS2, &raw const m) };
    Errno::result(r).map(drop)
}

/// A new description of the slave of `master` (`TIOCGPTPEER`, not made a
/// controlling terminal).
pub fn open_slave(master: &OwnedFd) -> nix::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new
    // descriptor, owned below.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = Errno::result(r)?;
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Read everything `fd` has to give now, one `read` per element (a line in
/// canonical mode; an empty one is a line ended by end-of-file), with
/// `O_NONBLOCK` set on its open file description meanwhile (the flags are
/// put back). At most `limit` bytes; `raw`: an empty read is the end (a
/// non-canonical mode with `VMIN` 0).
pub fn drain(fd: &OwnedFd, limit: usize, raw: bool) -> nix::Result<Vec<Vec<u8>>> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let old = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(old | OFlag::O_NONBLOCK))?;
    let mut out = Vec::new();
    let mut total = 0;
    let mut buf = vec![0u8; 4096];
    let r = loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) if raw => break Ok(()),
            Ok(n) => {
                total += n;
                out.push(buf[..n].to_vec());
                if total > limit || out.len() > limit {
                    break Err(Errno::EOVERFLOW);
                }
            }
            Err(Errno::EAGAIN) => break Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => break Err(e),
        }
    };
    let _ = fcntl(fd, FcntlArg::F_SETFL(old));
    r.map(|()| out)
}

const VEOF: usize = 4;
const VEOL: usize = 11;
const VEOL2: usize = 16;

/// The slave's unread input `lines` (as [`drain`] read them) as they are
/// written back to the master under `pty_inject_mode(t)`: in canonical
/// mode, every byte that would end a line or is the literal-next
/// character escaped by it, each line's terminator as it was (`\n`, or
/// an end-of-line character) or the end-of-file character for a line
/// ended by one. `None` when a line ended by end-of-file cannot be
/// written back (no end-of-file character set any more).
pub fn escape_input(t: &TerminalRecord, lines: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    if t.lflag & libc::ICANON == 0 {
        lines.iter().for_each(|l| out.extend_from_slice(l));
        return Some(out);
    }
    let lnext = kckpt_image::tree::pty_lnext(t);
    let (eof, eol, eol2) = (t.cc[VEOF], t.cc[VEOL], t.cc[VEOL2]);
    let ends = |b: u8| b == b'\n' || (b != 0 && (b == eol || b == eol2));
    for l in lines {
        let (body, term) = match l.split_last() {
            Some((&last, body)) if ends(last) => (body, last),
            _ if eof != 0 => (l.as_slice(), eof),
            _ => return None,
        };
        for &b in body {
            if ends(b) || b == lnext || (eof != 0 && b == eof) {
                out.push(lnext);
            }
            out.push(b);
        }
        out.push(term);
    }
    Some(out)
}

/// Bytes taken out of a live pair at dump time ([`drain`]): written back
/// the way the restore does when the dump fails or the process keeps
/// running (dropped without [`Drained::keep`]).
pub struct Drained {
    pub master: OwnedFd,
    pub term: TerminalRecord,
    /// What the master's reader had not read.
    pub out: Vec<u8>,
    /// The slave's unread input, escaped ([`escape_input`]).
    pub input: Vec<u8>,
    /// How many bytes of input `FIONREAD` shows once it is back.
    pub count: u32,
    kept: bool,
}

impl Drained {
    pub fn new(
        master: OwnedFd,
        term: TerminalRecord,
        out: Vec<u8>,
        input: Vec<u8>,
        count: u32,
    ) -> Self {
        Self {
            master,
            term,
            out,
            input,
            count,
            kept: false,
        }
    }

    /// The image holds the bytes and the process is gone: nothing to put
    /// back.
    pub fn keep(mut self) {
        self.kept = true;
    }

    fn put_back(&self) -> nix::Result<()> {
        set_mode(
            &self.master,
            &kckpt_image::tree::pty_inject_mode(&self.term),
        )?;
        let slave = open_slave(&self.master)?;
        let write_all = |fd: &OwnedFd, mut b: &[u8]| -> nix::Result<()> {
            while !b.is_empty() {
                let n = nix::unistd::write(fd, b)?;
                b = &b[n..];
            }
            Ok(())
        };
        write_all(&slave, &self.out)?;
        write_all(&self.master, &self.input)?;
        for _ in 0..2000 {
            if unread(&slave)? >= self.count {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        set_mode(&self.master, &self.term)
    }
}

impl std::fmt::Debug for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Drained({} + {} bytes)",
            self.out.len(),
            self.input.len()
        )
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        if !self.kept {
            if let Err(e) = self.put_back() {
                eprintln!(
                    "kckpt: warning: could not put back the unread bytes of a pseudo-terminal: {}",
                    e.desc()
                );
            }
        }
    }
}
