//! Signal state survives a checkpoint: a SIGUSR1 handler (SA_SIGINFO,
//! SA_ONSTACK) still runs on its sigaltstack, and SIGUSR2 is still blocked;
//! the restore adds no SIGCHLD of its own (zdtm sigpending).

mod common;

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

const BLOCKED: &str = "usr2-blocked yes usr2-pending no altstack yes";

fn is_tick(l: &str) -> bool {
    l.starts_with("tick ")
}

/// Send SIGUSR1 and expect the handler's line on the altstack.
fn check_usr1(p: &mut Proc) {
    kill(Pid::from_raw(p.pid()), Signal::SIGUSR1).expect("kill SIGUSR1");
    let line = p.wait_for("got SIGUSR1", LINE_TIMEOUT, |l| !is_tick(l));
    if line != "got SIGUSR1 signo 10 altstack yes" {
        p.fail(&format!("unexpected handler output {line:?}"));
    }
}

#[test]
fn sigusr1_handler_mask_and_altstack_survive() {
    let dir = TestDir::new("sigusr1");
    let image = dir.join("sigusr1.kckpt");
    let mut p = Proc::start(prog::SIGUSR1, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let tick = p.line(LINE_TIMEOUT);
    assert!(tick.ends_with(BLOCKED), "before the dump: {tick:?}");
    // The program works as the test expects before any checkpoint.
    check_usr1(&mut p);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_and_kill(&mut p, &image);

    let mut r = restore(&image);
    let tick = r.wait_for("a tick", LINE_TIMEOUT, is_tick);
    if !tick.ends_with(BLOCKED) {
        r.fail(&format!(
            "after restore: {tick:?}, expected it to end with {BLOCKED:?}"
        ));
    }
    r.wait_restored(&cmdline);
    check_usr1(&mut r);

    // SIGUSR2 is blocked: it stays pending and does not kill the process.
    kill(Pid::from_raw(r.pid()), Signal::SIGUSR2).expect("kill SIGUSR2");
    let tick = r.wait_for("a tick with SIGUSR2 pending", LINE_TIMEOUT, |l| {
        is_tick(l) && l.contains("usr2-pending yes")
    });
    assert!(tick.contains("usr2-blocked yes"), "{tick:?}");
    check_usr1(&mut r);
}

/// `sigchld.c MODE` started, dumped (by root) and restored, both as
/// nobody: in new PID and user namespaces, where every process of a tree
/// restores with all signals blocked until it resumes. Its answer to one
/// stdin line.
fn sigchld_as_nobody(mode: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    require_tool("setpriv");
    let dir = TestDir::new(&format!("sigchld-{mode}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("img.kckpt");
    let mut p = Proc::spawn("sigchld", command_as(&NOBODY, prog::SIGCHLD).arg(mode));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let out = dump(p.pid(), &image, false);
    assert!(out.status.success(), "{}", show(&out));
    let _ = p.wait_exit(LINE_TIMEOUT);
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut r = Proc::spawn(
        "kckpt restore as nobody",
        command_as(&NOBODY, kckpt()).arg("restore").arg(&image),
    );
    r.write_stdin("go\n");
    let line = r.line(LINE_TIMEOUT);
    let _ = r.wait_exit(LINE_TIMEOUT);
    format!(
        "{line}{}",
        r.stderr()
            .lines()
            .filter(|l| !l.contains("warning"))
            .collect::<String>()
    )
}

/// The restore forks a helper (the tracer that removes the stub) whose
/// parent exits: that must not leave a SIGCHLD of the stub's pending in
/// the restored process, which has a SIGCHLD handler and a live child.
#[test]
fn the_restore_sends_no_sigchld_of_its_own() {
    for _ in 0..3 {
        assert_eq!(sigchld_as_nobody("none"), "sigchld 0");
    }
}

/// A zombie child whose SIGCHLD the process had already handled: making
/// the zombie again at restore does not send it a second time.
#[test]
fn a_handled_zombies_sigchld_is_not_sent_again() {
    for _ in 0..3 {
        assert_eq!(sigchld_as_nobody("handled"), "sigchld 1");
    }
}

/// A pending SIGCHLD of a zombie child keeps its siginfo (the child's pid
/// and status), not that of a helper of the restore.
#[test]
fn a_pending_sigchld_keeps_its_zombie_childs_siginfo() {
    for _ in 0..6 {
        assert_eq!(sigchld_as_nobody("zombie"), "ok");
    }
}

/// A process saved in `pause()` with a `SIGUSR1` handler gets the signal
/// while the restore ends (sent while the stub still blocks every
/// signal): the handler runs and `pause()` returns (`EINTR`), as the
/// kernel does for a signal that interrupts the call. Resumed with the
/// call about to be issued again, the handler would run first and
/// `pause()` would then sleep through the signal.
#[test]
fn a_signal_that_comes_as_the_restore_ends_interrupts_the_saved_pause() {
    const WAITER: &str = "import os, signal\n\
        signal.signal(signal.SIGUSR1, lambda s, f: None)\n\
        print('ready', os.getpid(), flush=True)\n\
        signal.pause()\n\
        print('woke', flush=True)\n";
    let dir = TestDir::new("signal-at-restore");
    let mut p = Proc::spawn(
        "pause",
        std::process::Command::new(PYTHON3).args(["-c", WAITER]),
    );
    let line = p.line(LINE_TIMEOUT);
    let pid: i32 = line
        .strip_prefix("ready ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| p.fail(&format!("not ready: {line}")));
    // In pause() (state S), then dumped.
    assert!(eventually(LINE_TIMEOUT, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") S "))
    }));
    let image = dir.join("pause.kckpt");
    dump_kills(&mut p, &image);
    let mut r = restore(&image);
    // The restored process (root: the saved pid) while the stub blocks
    // every signal (SIGUSR1, bit 9, blocked; the program blocks nothing).
    let blocked = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|m| m & (1 << 9) != 0)
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut sent = false;
    while !sent && std::time::Instant::now() < until {
        for target in [pid, r.pid()] {
            let now = std::fs::read_to_string(format!("/proc/{target}/status"));
            if now.is_ok_and(|s| blocked(&s)) {
                let _ = kill(Pid::from_raw(target), Signal::SIGUSR1);
                sent = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(sent, "never saw the restore with every signal blocked");
    assert_eq!(r.line(LINE_TIMEOUT), "woke", "{}", r.stderr());
    r.wait_exit(LINE_TIMEOUT);
}
