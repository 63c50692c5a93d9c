//! Terminals and the job of the stopped target (format 1.3 notes
//! `NT_KCKPT_TERMINALS` and `NT_KCKPT_JOB`; issue 8): which character
//! devices are terminals (they answer `TCGETS2` and are not a pseudo-
//! terminal master), their mode and window size, and the process group,
//! session and controlling terminal of `/proc/PID/stat`.
#![allow(unsafe_code)] // Two ioctls that fill plain C structures.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;

use kckpt_image::terminal::{terminal_flags, JobRecord, TerminalRecord, NCCS};

use super::procfs::Stat;

/// Mode and window size of the terminal `fd` (a copy of the target's
/// descriptor), `None` when it is not a terminal.
pub fn terminal_state(fd: &OwnedFd) -> Option<TerminalRecord> {
    // SAFETY: termios2 and winsize are plain C structures; all-zero is a
    // valid value of each.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    // SAFETY: TCGETS2 writes one `struct termios2` into `t`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS2, &raw mut t) };
    Errno::result(r).ok()?;
    // SAFETY: as above.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into `ws`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &raw mut ws) };
    if Errno::result(r).is_err() {
        ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
    }
    let mut cc = [0u8; 32];
    let n = NCCS.min(t.c_cc.len());
    cc[..n].copy_from_slice(&t.c_cc[..n]);
    Some(TerminalRecord {
        iflag: t.c_iflag,
        oflag: t.c_oflag,
        cflag: t.c_cflag,
        lflag: t.c_lflag,
        line: u32::from(t.c_line),
        ispeed: t.c_ispeed,
        ospeed: t.c_ospeed,
        cc,
        winsize: [ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel],
        ..TerminalRecord::default()
    })
}

/// A pseudo-terminal master (`/dev/ptmx`, `/dev/pts/ptmx`: device 5:2) is
/// not a terminal the process reads and writes as one.
pub fn is_pty_master(rdev: u64) -> bool {
    nix::sys::stat::major(rdev) == 5 && nix::sys::stat::minor(rdev) == 2
}

/// A pseudo-terminal slave (`/dev/pts/N`: majors 136-143), the terminal of
/// a terminal emulator, tmux or ssh session, which follows whoever
/// restores; a virtual console or serial line (`/dev/tty5`, `/dev/ttyS0`)
/// is a device of its own.
pub fn is_pty_slave(rdev: u64) -> bool {
    (136..=143).contains(&nix::sys::stat::major(rdev))
}

/// `/dev/tty` (device 5:0): whatever the opener's controlling terminal was.
pub fn is_dev_tty(rdev: u64) -> bool {
    nix::sys::stat::major(rdev) == 5 && nix::sys::stat::minor(rdev) == 0
}

/// The `(major, minor)` of a `tty_nr` of `/proc/PID/stat` (the kernel's
/// `new_encode_dev`).
fn tty_nr_dev(tty_nr: u64) -> (u64, u64) {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    (major, minor)
}

/// Is device `rdev` the controlling terminal `tty_nr` (0: none)?
pub fn is_ctty(rdev: u64, tty_nr: u64) -> bool {
    tty_nr != 0 && tty_nr_dev(tty_nr) == (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
}

/// The target's job: pid, process group, session, the foreground group of
/// its controlling terminal and that terminal (`/proc/PID/stat` fields
/// 5-8; a tpgid of -1 means no controlling terminal).
pub fn job(pid: i32, stat: &Stat) -> JobRecord {
    let tpgid = stat.text(8).parse::<i64>().unwrap_or(-1);
    JobRecord {
        pid: pid as u32,
        pgid: stat.num(5) as u32,
        sid: stat.num(6) as u32,
        tpgid: u32::try_from(tpgid).unwrap_or(0),
        tty_nr: stat.num(7),
        ..JobRecord::default()
    }
}

/// A job-control shell: it leads its process group on a terminal and
/// ignores `SIGTSTP`, `SIGTTIN` and `SIGTTOU` (`SigIgn:` of
/// `/proc/PID/status`), as bash, zsh and dash do interactively. It keeps its
/// process group id and needs its pid at restore (`stub/src/terminal.rs`).
pub fn job_control_shell(job: &JobRecord, status: &str) -> bool {
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let stop_signals = (1 << (20 - 1)) | (1 << (21 - 1)) | (1 << (22 - 1));
    job.group_leader() && job.tty_nr != 0 && ignored & stop_signals == stop_signals
}

/// `terminal_flags` of a terminal `rdev` of a process whose job is `job`.
pub fn flags_for(rdev: u64, job: &JobRecord) -> u32 {
    let mut flags = 0;
    if is_dev_tty(rdev) || is_ctty(rdev, job.tty_nr) {
        flags |= terminal_flags::CTTY;
        if job.foreground() {
            flags |= terminal_flags::FOREGROUND;
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tty_nr_is_decoded_as_the_kernel_encodes_it() {
        // /dev/pts/3: 136:3; /dev/pts/300: 136:300; /dev/ttyS0: 4:64.
        assert_eq!(tty_nr_dev(34819), (136, 3));
        assert_eq!(tty_nr_dev((136 << 8) | 44 | (256 << 12)), (136, 300));
        assert!(is_ctty(
            nix::sys::stat::makedev(136, 300),
            (136 << 8) | 44 | (256 << 12)
        ));
        assert!(!is_ctty(nix::sys::stat::makedev(136, 3), 0));
        assert!(is_pty_master(nix::sys::stat::makedev(5, 2)));
        assert!(is_dev_tty(nix::sys::stat::makedev(5, 0)));
    }
}
