//! Original PID and TIDs: with `KCKPT_NEW_PID_NS=1` the stub restores the
//! process inside a new PID namespace (and a new user namespace when it is
//! not root), where the saved pid and tids are free and `clone3` with
//! `set_tid` may choose them.
//!
//! The stub (`P`, the process that ran the image) creates the namespaces
//! with `unshare` and forks `C`, pid 1 of the new namespace. `C` mounts a
//! fresh `/proc` (in a new mount namespace; best effort) and forks `G` with
//! the saved pid; `G` goes on with the restore and becomes the restored
//! process, its threads get their saved tids or the restore fails. `C`
//! reaps every orphan of the namespace and, when `G` ends, passes its wait
//! status to `P` through a shared page and exits (which kills whatever is
//! left in the namespace); `P` ends the same way as `G` (same exit code or
//! signal). If `P` dies, `C` gets SIGKILL (`PR_SET_PDEATHSIG`), and with it
//! the whole namespace.
//!
//! Without a new PID namespace, a restorer that may choose pids gets the
//! saved pid too ([`original_pid`]): the stub forks the restored process
//! with `clone3(set_tid)` and stays as its relay.
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use linux_raw_sys::general as g;

use crate::load::{refuse, Image};
use crate::report::Msg;
use crate::sys;

/// Set when the stub created a user namespace: the capabilities it holds
/// there are dropped by every thread before the process resumes.
static DROP_CAPS: AtomicBool = AtomicBool::new(false);

/// Drop every capability of the calling thread if the stub created the
/// user namespace it runs in.
pub fn drop_caps() {
    if DROP_CAPS.load(Ordering::Relaxed) {
        // The ambient set first (a tree process got its capabilities
        // through it), then everything else.
        let _ = sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        sys::drop_caps();
    }
}

/// A tree process restored in a user namespace the stub created: its
/// capabilities there are dropped too before it resumes.
pub fn set_drop_caps() {
    DROP_CAPS.store(true, Ordering::Relaxed);
}

const PR_CAP_AMBIENT: u32 = 47;
const PR_CAP_AMBIENT_RAISE: usize = 2;
const PR_CAP_AMBIENT_CLEAR_ALL: usize = 4;
/// Highest capability number tried (`CAP_CHECKPOINT_RESTORE`, 40, and
/// room for later ones: raising an unknown one just fails).
const CAP_LAST: usize = 63;

/// Keep every capability this process has across `execve`: in a user
/// namespace where its uid is not 0, `execve` would clear them, and the
/// stubs of a process tree need them there (`clone3(set_tid)`, their
/// credentials, limits). Inheritable = permitted, then each permitted one
/// raised into the ambient set. [`drop_caps`] clears them all again.
pub fn keep_caps_across_exec() {
    let mut caps = crate::ksys::capget();
    caps.inheritable = caps.permitted;
    let _ = crate::ksys::capset(caps);
    for cap in 0..=CAP_LAST {
        if caps.permitted & (1u64 << cap) != 0 {
            let _ = sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
        }
    }
}

const PR_SET_PDEATHSIG: u32 = 1;
const SIGKILL: usize = 9;
const MS_NOSUID: usize = 2;
const MS_NODEV: usize = 4;
const MS_NOEXEC: usize = 8;
const MS_REC: usize = 0x4000;
const MS_PRIVATE: usize = 1 << 18;
/// Status word flag: `C` stored `G`'s wait status.
const HAVE_STATUS: u32 = 1 << 31;

/// `"ID ID 1"` for uid_map/gid_map.
fn id_map(id: u32, out: &mut [u8; 40]) -> &[u8] {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = id;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut len = 0;
    for _ in 0..2 {
        for i in (0..n).rev() {
            out[len] = digits[i];
            len += 1;
        }
        out[len] = b' ';
        len += 1;
    }
    out[len] = b'1';
    &out[..len + 1]
}

/// The saved tids: (main pid, highest tid); refuses tid 1 (pid 1 of the
/// new namespace is the stub's helper).
fn saved_ids(img: &Image) -> (u32, u32) {
    let pid = img.view.header.pid;
    let mut max = pid;
    for t in img.view.threads() {
        if t.record.tid <= 1 {
            refuse(
                img.path,
                "the saved process has pid or tid 1, which kckpt keeps for the new PID namespace's init",
            );
        }
        max = max.max(t.record.tid);
    }
    (pid, max)
}

/// Enter a new PID namespace as the saved pid (see the module comment);
/// returns, in `G`, the pids for the tracer's two helper processes (above
/// every saved tid, so they cannot take one).
pub fn enter_new_pid_ns(img: &Image, new_net: bool) -> [u32; 2] {
    let (pid, max) = saved_ids(img);
    let name = img
        .view
        .threads()
        .next()
        .map(|t| t.record.name)
        .unwrap_or_default();
    let word = new_namespaces(img.path, name, new_net);
    init(img, pid, word);
    [max + 1, max + 2]
}

/// Create the new user (when not root) and PID namespaces and fork `C`,
/// their pid 1; returns in `C` with the word `C` passes the restored
/// process's wait status through (`P` waits for `C` and ends like it, and
/// takes the command `name` of the process it stands in for, as the
/// relay does: `ps`, `jobs`, `pgrep` see that name). `new_net`: a new
/// network namespace too (`crate::netns`).
pub fn new_namespaces(path: &[u8], name: [u8; 16], new_net: bool) -> &'static AtomicU32 {
    let fail = |what: &str, e: sys::Errno| -> ! {
        Msg::new()
            .push(path)
            .s(": cannot restore the original pid: ")
            .s(what)
            .errno(e)
            .fail()
    };
    if sys::geteuid() != 0 {
        let (uid, gid) = (sys::geteuid(), sys::getegid());
        sys::unshare(g::CLONE_NEWUSER).unwrap_or_else(|e| fail("no new user namespace", e));
        let mut buf = [0u8; 40];
        sys::write_file(b"/proc/self/setgroups\0", b"deny")
            .and_then(|_| sys::write_file(b"/proc/self/uid_map\0", id_map(uid, &mut buf)))
            .and_then(|_| sys::write_file(b"/proc/self/gid_map\0", id_map(gid, &mut buf)))
            .unwrap_or_else(|e| fail("cannot map the user namespace's ids", e));
        DROP_CAPS.store(true, Ordering::Relaxed);
    }
    if new_net {
        crate::netns::enter(path);
    }
    sys::unshare(g::CLONE_NEWPID | g::CLONE_NEWNS)
        .unwrap_or_else(|e| fail("no new PID namespace", e));
    let page = sys::map_shared_page().unwrap_or_else(|e| fail("no shared page", e));
    let word: &'static AtomicU32 = page;
    match sys::fork() {
        Ok(0) => {
            let _ = sys::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
            // Signals `P` relays wait here until there is a process to
            // pass them to (pid 1 of a namespace would drop them).
            let _ = sys::set_sigmask(!0);
            mount_proc();
            word
        }
        Ok(child) => {
            take_name(name);
            parent(child, word)
        }
        Err(e) => fail("fork", e),
    }
}

/// Does `/proc` show this process's PID namespace (`/proc/self` names
/// this process's pid)?
pub fn proc_is_ours() -> bool {
    let mut buf = [0u8; 24];
    let n = crate::xsys::readlink(b"/proc/self\0", &mut buf).unwrap_or(0);
    let mut digits = [0u8; 20];
    n > 0 && buf[..n] == *crate::report::decimal(u64::from(sys::getpid()), &mut digits)
}

/// Did the stub create the user namespace it runs in?
pub fn in_own_user_ns() -> bool {
    DROP_CAPS.load(Ordering::Relaxed)
}

/// `C`: end the namespace, `P` ending with wait status `status`.
pub fn end_namespace(word: &AtomicU32, status: i32) -> ! {
    word.store(HAVE_STATUS | (status as u32 & 0xffff), Ordering::Release);
    sys::exit(0)
}

/// The status word of [`end_namespace`], for [`forward_from_init`].
static NS_WORD: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Remember `C`'s status word (tree restores).
pub fn set_namespace_word(word: &'static AtomicU32) {
    NS_WORD.store(word as *const AtomicU32 as usize, Ordering::Relaxed);
}

/// [`end_namespace`] with the remembered status word.
fn end_namespace_now(status: i32) -> ! {
    let word = NS_WORD.load(Ordering::Relaxed) as *const AtomicU32;
    // SAFETY: the word is the shared page `enter_new_pid_ns` mapped for
    // the life of this process, stored by `init` or the tree coordinator
    // before any call; a null one (never stored) is not dereferenced.
    #[allow(unsafe_code)]
    let word = unsafe { word.as_ref() };
    match word {
        Some(w) => end_namespace(w, status),
        None => sys::exit(0),
    }
}

/// A /proc of the new namespace, so /proc/PID of the restored process
/// matches its pid. Best effort: /proc/self works either way.
fn mount_proc() {
    if sys::mount(None, b"/\0", None, MS_REC | MS_PRIVATE).is_ok() {
        let _ = sys::mount(
            Some(b"proc\0"),
            b"/proc\0",
            Some(b"proc\0"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
        );
    }
}

/// `P`: stand in for the restored process until `C` ends, then end like
/// `G`. Every signal sent to `P` (`kill`, a supervisor's SIGTERM) goes on
/// to `C`, which passes it to the restored process ([`forward_from_init`]);
/// those a terminal sends to the whole process group (`SI_KERNEL`: SIGINT,
/// SIGQUIT, SIGWINCH...) reach the restored process directly and are not
/// passed on twice.
fn parent(child: usize, word: &AtomicU32) -> ! {
    let _ = sys::close_from(0);
    relay_loop(child as u32, child as i32, 0, &mut |waited| {
        let status = match waited {
            Ok((_, status)) => status,
            Err(_) => sys::exit(crate::report::EXIT_REFUSED),
        };
        crate::terminal::take_back_foreground();
        let w = word.load(Ordering::Acquire);
        let status = if w & HAVE_STATUS != 0 {
            (w & 0xffff) as i32
        } else {
            status
        };
        sys::exit_like(status)
    })
}

/// Stand in for process `to`, with every signal blocked: hand each wait
/// status of `wait_for` (`wait4` with `flags | WNOHANG`; `Err` once there
/// is nothing to wait for) to `on_wait`, which ends this process when the
/// relay is over; pass every other signal sent to this process on to `to`,
/// but SIGCHLD and those a terminal sends to the whole process group
/// (`SI_KERNEL`: `to` gets them itself). The relays of [`relay`],
/// `parent`, [`forward_from_init`] and the tree coordinator.
pub fn relay_loop(
    to: u32,
    wait_for: i32,
    flags: u32,
    on_wait: &mut dyn FnMut(Result<(u32, i32), sys::Errno>),
) -> ! {
    let _ = sys::set_sigmask(!0);
    let mut info = [0u8; 128];
    loop {
        loop {
            match sys::wait4(wait_for, flags | WNOHANG) {
                Ok((0, _)) => break,
                Ok((pid, status)) => on_wait(Ok((pid as u32, status))),
                Err(sys::Errno(linux_raw_sys::errno::EINTR)) => {}
                Err(e) => on_wait(Err(e)),
            }
        }
        match crate::ksys::sigwait(RELAYED, &mut info) {
            Ok((SIGCHLD, _)) | Err(_) | Ok((_, SI_KERNEL)) => {}
            Ok((sig, _)) => {
                let _ = crate::ksys::kill(to, sig);
            }
        }
    }
}

/// Every signal a relay passes on: all but SIGKILL and SIGSTOP.
const RELAYED: u64 = !((1u64 << (SIGKILL as u32 - 1)) | (1u64 << (SIGSTOP - 1)));

/// `C`, pid 1 of the namespace, once the restored processes exist: with
/// every signal blocked (pid 1 of a namespace gets a signal from the
/// parent namespace only when it does not leave it to the default
/// action, and a blocked one is kept), reap every process of the
/// namespace, pass each signal `P` relays to `target` (the restored
/// process, or the tree's status root), and return the wait status of
/// `target` once `done` says the namespace's work is over (it is given
/// each reaped pid and wait status).
pub fn forward_from_init(target: u32, mut done: impl FnMut(u32, i32) -> bool) -> ! {
    let mut status = 0;
    relay_loop(target, -1, g::__WALL, &mut |waited| match waited {
        Ok((pid, st)) => {
            if pid == target {
                status = st;
            }
            if done(pid, st) {
                end_namespace_now(status)
            }
        }
        Err(_) => end_namespace_now(status),
    })
}

/// `C`, pid 1 of the new namespace; returns only in `G`.
fn init(img: &Image, pid: u32, word: &AtomicU32) {
    let restored = match crate::threads::fork_with_pid(pid) {
        Ok(0) => return,
        Ok(g) => g,
        Err(e) => Msg::new()
            .push(img.path)
            .s(": cannot have the original pid ")
            .dec(pid.into())
            .s(" in the new PID namespace")
            .errno(e)
            .fail(),
    };
    let _ = sys::close_from(0);
    NS_WORD.store(word as *const AtomicU32 as usize, Ordering::Relaxed);
    forward_from_init(restored as u32, |pid, _| pid == restored as u32)
}

// ---------------------------------------------------------------------
// The original pid without a new PID namespace (issue 8).
// ---------------------------------------------------------------------

const SIGCHLD: u32 = 17;
const SIGSTOP: u32 = 19;
/// `si_code` of a signal the kernel generated (a terminal's SIGINT,
/// SIGTSTP, SIGWINCH: they reach the restored process directly too).
const SI_KERNEL: i32 = 0x80;
const WNOHANG: u32 = 1;
const WUNTRACED: u32 = 2;
/// Attempts at the saved pid while its previous owner is a zombie, 50 ms
/// apart (on some machines init reaps orphans about once a second).
const ZOMBIE_TRIES: u32 = 60;

/// Is `pid` on its way out: a zombie (`/proc/PID/stat` state `Z` or `X`),
/// or gone since `clone3` found it taken (reaped meanwhile)?
pub(crate) fn zombie(pid: u32) -> bool {
    let mut buf = [0u8; 512];
    match stat_fields(pid, &mut buf) {
        Err(e) => e.0 == linux_raw_sys::errno::ENOENT,
        Ok(f) => f.get(1).is_some_and(|&s| s == b'Z' || s == b'X'),
    }
}

/// `/proc/PID/stat` read into `buf`, from the last `)` on (" S ppid
/// ...": the space before field 3 first; the command name may hold any
/// byte). Empty when it has no `)`.
pub(crate) fn stat_fields(pid: u32, buf: &mut [u8]) -> Result<&[u8], sys::Errno> {
    let mut path = crate::ghosts::PathBuf::new();
    path.push(b"/proc/").dec(pid.into()).push(b"/stat");
    let fd = sys::open(path.c(), g::O_RDONLY)?;
    let len = crate::ksys::read(fd, buf).unwrap_or(0);
    sys::close(fd);
    let stat = &buf[..len];
    Ok(stat
        .iter()
        .rposition(|&c| c == b')')
        .map_or(&[][..], |i| &stat[i + 1..]))
}

/// Give the restored process its saved pid when this user may choose pids
/// (`CAP_CHECKPOINT_RESTORE` over the PID namespace, e.g. root) and it is
/// free: fork with `clone3(set_tid = [pid])`; the child executes the stub
/// again with the same arguments and environment (`argv`, `envp` of the
/// initial stack; so it is a process that executed the stub, as after any
/// restore, and finds it has its pid) and becomes the restored process;
/// this process stays as its parent and relays ([`relay`]). Without the
/// privilege nothing happens (the process gets the pid of whatever ran the
/// image, as documented); a pid that is taken is a warning naming it.
/// Returns in the process that becomes the restored one.
pub fn original_pid(img: &Image, argv: usize, envp: usize) {
    let pid = img.view.header.pid;
    if sys::getpid() == pid || crate::layout::emulated() {
        return;
    }
    let relay_pid = sys::getpid();
    for attempt in 0.. {
        match crate::threads::fork_with_pid(pid) {
            Ok(0) => {
                // The relay stands in for the process: killed (even with
                // SIGKILL, which it cannot forward), it takes the process
                // with it. A relay that died before this line is noticed.
                let _ = sys::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
                if sys::getppid() != relay_pid {
                    sys::exit_like(SIGKILL as i32);
                }
                // Only returns if it fails: then go on in this child.
                crate::ksys::execve(b"/proc/self/exe\0", argv, envp);
                return;
            }
            Ok(child) => relay(img, child as u32),
            Err(sys::Errno(linux_raw_sys::errno::EEXIST))
                if attempt < ZOMBIE_TRIES && zombie(pid) =>
            {
                crate::ksys::sleep_ms(50);
            }
            // Not allowed to choose pids: the documented default, which
            // [`report_new_ids`] names.
            Err(sys::Errno(linux_raw_sys::errno::EPERM)) => {
                NEW_PID.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                let mut m = Msg::new();
                m.push(img.path).s(": the saved pid ").dec(pid.into());
                if e.0 == linux_raw_sys::errno::EEXIST {
                    m.s(" is taken by another process");
                } else {
                    m.s(" cannot be had").errno(e);
                }
                m.s("; the process gets pid ")
                    .dec(sys::getpid().into())
                    .s(" (kckpt restore --new-pid-ns gives it its pid in a new PID namespace)")
                    .warn();
                return;
            }
        }
    }
}

/// Set when this user may not choose pids: the process gets a new pid.
static NEW_PID: AtomicBool = AtomicBool::new(false);

/// One warning naming what an unprivileged restore without a new PID
/// namespace gives the process instead of its saved values: another pid
/// and new thread ids (this user may not choose pids), and an executable
/// link (`/proc/PID/exe`) that names the stub (it may not change it).
/// Nothing when it has them all.
pub fn report_new_ids(img: &Image) {
    let pid = NEW_PID.load(Ordering::Relaxed);
    let exe = crate::exe::stays_stub(img);
    if !pid && !exe {
        return;
    }
    let mut m = Msg::new();
    m.push(img.path).s(": this user may not ");
    if pid {
        m.s("choose pids: the process gets pid ")
            .dec(sys::getpid().into())
            .s(" (saved ")
            .dec(img.view.header.pid.into())
            .s(")");
        if img.view.header.thread_count > 1 {
            m.s(" and new thread ids");
        }
        if exe {
            m.s(", nor ");
        }
    }
    if exe {
        m.s("change its executable link: /proc/PID/exe names kckpt-stub");
    }
    m.s(" (kckpt restore --new-pid-ns keeps ")
        .s(if pid && exe { "them" } else { "it" })
        .s(", in new PID and user namespaces)")
        .warn();
}

/// The process that ran the image, once its child has the saved pid: it
/// stands in for the restored process towards whoever started it (a
/// shell, a service manager, `./IMAGE; echo $?`). It holds no descriptor,
/// takes the saved command name, and until the child ends: forwards every
/// signal sent to it (`kill`, `sigqueue`...) to the child, but not those a
/// terminal sends to the whole process group (`SI_KERNEL`: the child gets
/// them itself); stops when the child stops (so job control sees the job
/// stopped; the `SIGCONT` of `fg` reaches both); and ends the way the child
/// ends (its exit status, or its signal).
fn relay(img: &Image, child: u32) -> ! {
    let _ = sys::close_from(0);
    let name = img
        .view
        .threads()
        .next()
        .map(|t| t.record.name)
        .unwrap_or_default();
    take_name(name);
    relay_loop(child, child as i32, WUNTRACED, &mut |waited| match waited {
        // Stopped: stop too, until a SIGCONT.
        Ok((_, status)) if status & 0xff == 0x7f => {
            let _ = crate::ksys::kill(sys::getpid(), SIGSTOP);
        }
        Ok((_, status)) => sys::exit_like(status),
        Err(_) => sys::exit(crate::report::EXIT_REFUSED),
    })
}

/// Take the command name (`comm`) `name` of the process a relay stands in
/// for (`ps`, `jobs`, `pgrep` see it); nothing for an empty one.
pub fn take_name(mut name: [u8; 16]) {
    name[15] = 0;
    if name[0] != 0 {
        let _ = sys::set_name(&name);
    }
}
