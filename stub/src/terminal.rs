//! Terminals and the job (format 1.3, issue 8).
//!
//! - The saved mode of each terminal at fds 0-2 (`TERMINAL`) and of a
//!   controlling terminal at fd 3 and above (`CTTY`, reopened as
//!   `/dev/tty`) is applied to the terminal the restored process now has
//!   (`TCSETS2`): an editor or shell that had set raw mode finds it again.
//!   The restorer's line speed and line discipline stay (a serial console
//!   keeps its baud rate). The window size is the new terminal's own: it
//!   is set to the saved one only when the terminal has none (0x0), and the
//!   process gets a `SIGWINCH` (as from the kernel, `SI_KERNEL`) when it
//!   handles it, so it asks for the size and redraws a screen that is not
//!   the one it drew.
//! - A process that led its process group and has its saved pid again (a
//!   new PID namespace, or a privileged restore that gives the original
//!   pid) leads a group of its own again (`setpgid`), and becomes the
//!   foreground group of the terminal when it was the foreground job and
//!   whoever ran the image was in the foreground then: a job-control shell
//!   finds `getpgrp()` as it left it. The process that ran the image gives
//!   the terminal back to its own group when the restored process ends
//!   ([`take_back_foreground`]).
#![allow(unsafe_code)] // ioctl, setpgid and getpgid with pointers to live values.

use core::sync::atomic::{AtomicBool, Ordering};

use kckpt_arch::syscall::raw_syscall;
use kckpt_image::terminal::{TerminalRecord, NCCS};
use kckpt_image::{fd_kind, FdRecord};
use linux_raw_sys::general as g;
use linux_raw_sys::ioctl as io;

use crate::load::Image;
use crate::report::Msg;
use crate::state::ThreadState;
use crate::sys::{self, check, Errno, SysResult};

/// Whoever ran the image had the terminal's foreground when the stub
/// started (set by [`note_caller`]).
static CALLER_FOREGROUND: AtomicBool = AtomicBool::new(false);
/// A saved terminal mode was applied to a terminal: the process gets a
/// `SIGWINCH` ([`queue_sigwinch`]).
static SIGWINCH_DUE: AtomicBool = AtomicBool::new(false);

const SIGWINCH: u32 = 28;
const SIGTTOU: u32 = 22;
const SI_KERNEL: i32 = 0x80;
/// `c_cflag` bits of the line speed (`CBAUD`, which includes `CBAUDEX`,
/// and `CIBAUD`): the restorer's stay.
const SPEED_BITS: u32 = 0o010017 | 0o02003600000;

/// The kernel's `struct termios2` (x86_64 and aarch64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Termios2 {
    iflag: u32,
    oflag: u32,
    cflag: u32,
    lflag: u32,
    line: u8,
    cc: [u8; NCCS],
    ispeed: u32,
    ospeed: u32,
}

pub(crate) fn ioctl(fd: usize, request: u32, arg: usize) -> SysResult {
    // SAFETY: every caller passes a request whose argument is `arg`: a
    // pointer to a live value of the size the request reads or writes.
    check(unsafe { raw_syscall(g::__NR_ioctl as usize, [fd, request as usize, arg, 0, 0, 0]) })
}

pub(crate) fn getpgid(pid: usize) -> SysResult {
    // SAFETY: integer arguments only.
    check(unsafe { raw_syscall(g::__NR_getpgid as usize, [pid, 0, 0, 0, 0, 0]) })
}

fn setpgid(pid: usize, pgid: usize) -> SysResult {
    // SAFETY: integer arguments only.
    check(unsafe { raw_syscall(g::__NR_setpgid as usize, [pid, pgid, 0, 0, 0, 0]) })
}

fn tcgetpgrp(fd: usize) -> SysResult {
    let mut pgrp: i32 = 0;
    ioctl(fd, io::TIOCGPGRP, &mut pgrp as *mut i32 as usize).map(|_| pgrp as usize)
}

fn tcsetpgrp(fd: usize, pgrp: usize) -> SysResult {
    let pgrp = pgrp as i32;
    ioctl(fd, io::TIOCSPGRP, &pgrp as *const i32 as usize)
}

fn get_mode(fd: usize) -> Result<Termios2, Errno> {
    let mut t = Termios2::default();
    ioctl(fd, io::TCGETS2, &mut t as *mut Termios2 as usize)?;
    Ok(t)
}

/// The controlling terminal, `O_CLOEXEC` (`None` without one).
fn open_tty() -> Option<usize> {
    sys::open(b"/dev/tty\0", g::O_RDWR | g::O_NOCTTY | g::O_CLOEXEC).ok()
}

/// Before anything changes: is the caller's process group the foreground
/// group of its controlling terminal?
pub fn note_caller() {
    let Some(fd) = open_tty() else { return };
    let fg = matches!((tcgetpgrp(fd), getpgid(0)), (Ok(a), Ok(b)) if a == b && a != 0);
    CALLER_FOREGROUND.store(fg, Ordering::Relaxed);
    sys::close(fd);
}

/// Apply the saved mode of every terminal to the descriptor that now holds
/// it (see the module comment). A `TERMINAL` whose descriptor is no
/// longer a terminal (the image was run with `< file`) gets a warning.
pub fn apply_modes(img: &Image) {
    // A process of a restored tree is in a background group until the
    // coordinator gives its job the terminal: changing the mode from there
    // sends SIGTTOU (which stops it) unless the signal is blocked.
    let old = block_sigttou();
    apply_all(img);
    if let Some(old) = old {
        let _ = sys::set_sigmask(old);
    }
}

/// Block `SIGTTOU`; the previous mask.
pub(crate) fn block_sigttou() -> Option<u64> {
    let add: u64 = 1 << (SIGTTOU - 1);
    let mut old: u64 = 0;
    // SAFETY: the kernel reads 8 bytes from `add` and writes 8 to `old`.
    let r = unsafe {
        raw_syscall(
            g::__NR_rt_sigprocmask as usize,
            [
                g::SIG_BLOCK as usize,
                &add as *const u64 as usize,
                &mut old as *mut u64 as usize,
                8,
                0,
                0,
            ],
        )
    };
    check(r).ok().map(|_| old)
}

fn apply_all(img: &Image) {
    for t in img.view.terminals.iter() {
        let Some(r) = kckpt_image::files::find_fd(&img.view, t.fd) else {
            continue;
        };
        match get_mode(t.fd as usize) {
            Ok(now) => apply(img, &r, &t, now),
            Err(_) if r.kind == fd_kind::TERMINAL => {
                let mut m = Msg::new();
                m.push(img.path)
                    .s(": fd ")
                    .dec(t.fd.into())
                    .s(" was the terminal ");
                m.push(img.view.string(r.path).unwrap_or(&[]))
                    .s(", it is not a terminal now: its mode is not restored")
                    .warn();
            }
            Err(_) => {}
        }
    }
}

fn apply(img: &Image, r: &FdRecord, t: &TerminalRecord, now: Termios2) {
    let mut cc = [0u8; NCCS];
    cc.copy_from_slice(&t.cc[..NCCS]);
    let mode = Termios2 {
        iflag: t.iflag,
        oflag: t.oflag,
        cflag: (t.cflag & !SPEED_BITS) | (now.cflag & SPEED_BITS),
        lflag: t.lflag,
        cc,
        ..now
    };
    let fd = t.fd as usize;
    if let Err(e) = ioctl(fd, io::TCSETS2, &mode as *const Termios2 as usize) {
        let mut m = Msg::new();
        m.push(img.path).s(": fd ").dec(t.fd.into()).s(" (");
        m.push(img.view.string(r.path).unwrap_or(&[]))
            .s("): cannot restore the terminal's mode")
            .errno(e)
            .warn();
        return;
    }
    let mut ws = [0u16; 4];
    if ioctl(fd, io::TIOCGWINSZ, ws.as_mut_ptr() as usize).is_ok()
        && ws[0] == 0
        && ws[1] == 0
        && t.winsize[..2] != [0, 0]
    {
        let _ = ioctl(fd, io::TIOCSWINSZ, t.winsize.as_ptr() as usize);
    }
    SIGWINCH_DUE.store(true, Ordering::Relaxed);
}

/// Set the whole saved mode `t` (speed and line discipline included) on
/// `fd`: a new pseudo-terminal pair of a tree (`crate::pty`).
pub(crate) fn set_full_mode(fd: usize, t: &TerminalRecord) -> Result<(), Errno> {
    let mut cc = [0u8; NCCS];
    cc.copy_from_slice(&t.cc[..NCCS]);
    let mode = Termios2 {
        iflag: t.iflag,
        oflag: t.oflag,
        cflag: t.cflag,
        lflag: t.lflag,
        line: 0,
        cc,
        ispeed: t.ispeed,
        ospeed: t.ospeed,
    };
    ioctl(fd, io::TCSETS2, &mode as *const Termios2 as usize).map(|_| ())
}

/// Queue a `SIGWINCH` to the process when a terminal's mode was applied
/// and it handles the signal (call while every signal is blocked). The
/// kernel gives such a signal to the main thread unless it blocks it: if
/// that thread was saved inside a system call the handler interrupts
/// (`read` without `SA_RESTART`, `poll`...), its registers are changed so
/// that the call returns `-EINTR`, as it would have with the window
/// resized then (`thread`: the main thread's state).
pub fn queue_sigwinch(img: &Image, thread: &mut ThreadState<'_>) {
    const SA_RESTART: u64 = 0x1000_0000;
    let act = img.view.signals.actions[SIGWINCH as usize - 1];
    if !SIGWINCH_DUE.load(Ordering::Relaxed) || act.handler <= 1 {
        return;
    }
    let mut info = [0u8; 128];
    info[..4].copy_from_slice(&(SIGWINCH as i32).to_ne_bytes());
    info[8..12].copy_from_slice(&SI_KERNEL.to_ne_bytes());
    if crate::xsys::queue_signal(sys::getpid(), 0, SIGWINCH, &info).is_err() {
        return;
    }
    if thread.record.sigmask & (1 << (SIGWINCH - 1)) == 0 {
        let t = thread.record;
        kckpt_arch::interrupt_syscall(
            &mut thread.regs,
            t.syscall_state,
            t.syscall_result,
            act.flags & SA_RESTART != 0,
        );
    }
}

/// Refuse, before anything changes, to restore a job-control shell with
/// another pid (`saved_pid`: the restored process will have its saved
/// one): it led its process group, ignores `SIGTSTP`, `SIGTTIN` and
/// `SIGTTOU` as job-control shells do, and gives the terminal back to its
/// saved group after each command, which would not exist. With `force`, a
/// warning.
pub fn check_job(img: &Image, saved_pid: bool, force: bool) {
    const JOB_CONTROL: [u32; 3] = [20, 21, 22]; // SIGTSTP, SIGTTIN, SIGTTOU
    let Some(job) = img.view.job else { return };
    let actions = &img.view.signals.actions;
    let shell = JOB_CONTROL
        .iter()
        .all(|&sig| actions[sig as usize - 1].handler == 1);
    if saved_pid || !job.group_leader() || !shell || job.tty_nr == 0 {
        return;
    }
    let mut m = Msg::new();
    m.push(img.path)
        .s(": the process is a job-control shell (it led process group ")
        .dec(job.pgid.into())
        .s(" on its terminal and ignores SIGTSTP, SIGTTIN and SIGTTOU): with another pid it ");
    m.s("loses its terminal after its next command");
    if !force {
        m.s("; restore it with --new-pid-ns (KCKPT_NEW_PID_NS=1), or KCKPT_FORCE=1 goes on")
            .fail();
    }
    m.s(" (forced)").warn();
}

/// In the process being restored: lead a process group again and take the
/// terminal's foreground (see the module comment).
pub fn restore_job(img: &Image) {
    let Some(job) = img.view.job else { return };
    let me = sys::getpid();
    if !job.group_leader() || me != job.pid || getpgid(0) == Ok(me as usize) {
        return;
    }
    if setpgid(0, 0).is_err() {
        return;
    }
    if job.foreground() && CALLER_FOREGROUND.load(Ordering::Relaxed) {
        if let Some(fd) = open_tty() {
            let _ = tcsetpgrp(fd, me as usize);
            sys::close(fd);
        }
    }
}

/// The coordinator of a tree restore, once every process is ready and
/// before any resumes: when the tree was the foreground job of the
/// terminal it ran in (process 0's saved job: the terminal's foreground
/// group was a group led by a process of the tree) and whoever ran the
/// image has the foreground, that group takes the terminal
/// ([`take_back_foreground`] gives it back at the end).
pub fn give_foreground(v: &kckpt_image::ImageView<'_>) {
    let Some(job) = v.job else { return };
    let fg = job.tpgid;
    if job.tty_nr == 0 || fg == 0 || !CALLER_FOREGROUND.load(Ordering::Relaxed) {
        return;
    }
    if !v.tree_procs.iter().any(|p| p.pid == fg && p.pgid == fg) {
        return;
    }
    let Some(fd) = open_tty() else { return };
    let old = block_sigttou();
    let _ = tcsetpgrp(fd, fg as usize);
    if let Some(old) = old {
        let _ = sys::set_sigmask(old);
    }
    sys::close(fd);
}

/// In the process that ran the image, once the restored process (its
/// descendant in a new PID namespace) ended: give the terminal's
/// foreground back to this process's group if [`restore_job`] took it.
pub fn take_back_foreground() {
    if !CALLER_FOREGROUND.load(Ordering::Relaxed) {
        return;
    }
    let Some(fd) = open_tty() else { return };
    let ignore = sys::KernelSigaction {
        handler: 1,
        ..Default::default()
    };
    // Setting the foreground from a background group sends SIGTTOU.
    let _ = sys::set_sigaction(SIGTTOU, &ignore);
    if let Ok(me) = getpgid(0) {
        if tcgetpgrp(fd).is_ok_and(|fg| fg != me) {
            let _ = tcsetpgrp(fd, me);
        }
    }
    sys::close(fd);
}
