//! Terminals and the process's job (format 1.3, issue 8):
//! `NT_KCKPT_TERMINALS`, the mode and window size of every terminal the
//! process held at fds 0-2 or as its controlling terminal at fd 3 and
//! above (descriptor kinds `TERMINAL` and `CTTY`), and `NT_KCKPT_JOB`, its
//! process group, session and whether it was the foreground job of its
//! controlling terminal. Both notes are optional; an image without them
//! restores no terminal mode and changes no process group.

use crate::files::find_fd;
use crate::read::{FormatError, ImageView};
use crate::records::{fd_kind, Record, FD_NO_DUP};

/// Note type of the array of [`TerminalRecord`], sorted by descriptor
/// (format 1.3, optional).
pub const NT_KCKPT_TERMINALS: u32 = 0x4b43_0070;
/// Note type of [`JobRecord`] (format 1.3, optional).
pub const NT_KCKPT_JOB: u32 = 0x4b43_0071;

/// Control characters a terminal mode carries (`NCCS` of the kernel's
/// `struct termios` on x86_64 and aarch64).
pub const NCCS: usize = 19;

/// `TerminalRecord::flags` bits.
pub mod terminal_flags {
    /// The terminal was the process's controlling terminal.
    pub const CTTY: u32 = 1 << 0;
    /// It was the foreground process group's terminal and the process was
    /// in that group (it could read the terminal).
    pub const FOREGROUND: u32 = 1 << 1;
}

/// The mode and window size of one terminal, as `TCGETS2` and
/// `TIOCGWINSZ` returned them at dump time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TerminalRecord {
    /// The descriptor (a `TERMINAL` or `CTTY` record, not a dup).
    pub fd: u32,
    /// `terminal_flags::*`.
    pub flags: u32,
    /// `c_iflag`.
    pub iflag: u32,
    /// `c_oflag`.
    pub oflag: u32,
    /// `c_cflag` (speed bits included; the restore keeps the restorer's).
    pub cflag: u32,
    /// `c_lflag`.
    pub lflag: u32,
    /// `c_line`, the line discipline (0: N_TTY).
    pub line: u32,
    /// `c_ispeed`.
    pub ispeed: u32,
    /// `c_ospeed`.
    pub ospeed: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// `c_cc`: the first [`NCCS`] bytes, the rest zero.
    pub cc: [u8; 32],
    /// `struct winsize`: rows, columns, x pixels, y pixels.
    pub winsize: [u16; 4],
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
// SAFETY: repr(C); 10*4 + 32 + 8 + 16 = 96, no padding.
unsafe impl Record for TerminalRecord {}

/// The process's place among process groups and sessions, in the dumper's
/// PID namespace (`/proc/PID/stat` fields 5-8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobRecord {
    /// The process's pid (the header's `pid`).
    pub pid: u32,
    /// Its process group.
    pub pgid: u32,
    /// Its session.
    pub sid: u32,
    /// The foreground process group of its controlling terminal, 0 when it
    /// had none.
    pub tpgid: u32,
    /// The controlling terminal's device number as `/proc/PID/stat` shows
    /// it (`tty_nr`), 0 when none.
    pub tty_nr: u64,
    /// Reserved, zero.
    pub reserved: [u64; 3],
}
// SAFETY: repr(C); 4*4 + 8 + 24 = 48, no padding.
unsafe impl Record for JobRecord {}

const _: () = {
    assert!(core::mem::size_of::<TerminalRecord>() == 96);
    assert!(core::mem::size_of::<JobRecord>() == 48);
};

impl JobRecord {
    /// It led its process group.
    pub fn group_leader(&self) -> bool {
        self.pid != 0 && self.pgid == self.pid
    }

    /// It led its session.
    pub fn session_leader(&self) -> bool {
        self.pid != 0 && self.sid == self.pid
    }

    /// Its group was the foreground group of its controlling terminal.
    pub fn foreground(&self) -> bool {
        self.tty_nr != 0 && self.tpgid != 0 && self.tpgid == self.pgid
    }
}

/// Structural checks: terminals sorted by descriptor, each naming a
/// primary `TERMINAL` or `CTTY` record; the job's pid is the header's.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad = FormatError::BadFiles;
    let mut prev: Option<u32> = None;
    for t in view.terminals.iter() {
        if prev.is_some_and(|p| t.fd <= p) {
            return Err(bad);
        }
        prev = Some(t.fd);
        let r = find_fd(view, t.fd).ok_or(bad)?;
        if !matches!(r.kind, fd_kind::TERMINAL | fd_kind::CTTY) || r.dup_of != FD_NO_DUP {
            return Err(bad);
        }
    }
    if let Some(job) = view.job {
        if job.pid != view.header.pid {
            return Err(bad);
        }
    }
    Ok(())
}

/// Field checks (`check.rs` runs them): reserved fields zero, known flags,
/// control characters past [`NCCS`] zero.
pub fn check_fields(view: &ImageView<'_>) -> Result<(), FormatError> {
    let field = |ok: bool, what: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(FormatError::BadField(what))
        }
    };
    for t in view.terminals.iter() {
        field(
            t.reserved0 == 0 && t.reserved == [0; 2],
            "terminal: reserved field not zero",
        )?;
        field(
            t.flags & !(terminal_flags::CTTY | terminal_flags::FOREGROUND) == 0,
            "terminal: unknown flags",
        )?;
        field(
            t.cc[NCCS..].iter().all(|&c| c == 0),
            "terminal: control characters past NCCS",
        )?;
    }
    if let Some(job) = view.job {
        field(job.reserved == [0; 3], "job: reserved field not zero")?;
    }
    Ok(())
}

/// The saved mode of descriptor `fd`, if the image has one.
pub fn find_terminal(view: &ImageView<'_>, fd: u32) -> Option<TerminalRecord> {
    view.terminals.iter().find(|t| t.fd == fd)
}
