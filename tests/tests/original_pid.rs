//! A restorer that may choose pids (root) gives the process its original
//! pid without a new PID namespace: the stub forks it with `clone3`
//! (`set_tid`) and stays as its parent, relaying signals, stops and the
//! exit status; a pid that is taken is a warning (the process gets a new
//! one), a pid still held by a zombie is waited for, and an unprivileged
//! restore keeps the restorer's pid without a word.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn started() -> Proc {
    let mut p = Proc::start(prog::KSTATE, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p
}

fn ask(p: &mut Proc, cmd: &str) -> String {
    p.write_stdin(&format!("{cmd}\n"));
    p.line(LINE_TIMEOUT)
}

fn wait_state(pid: i32, want: char) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while state(pid) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {want}: {:?}",
            state(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(restored pid, relay pid)` of a restore run as root.
fn restored(r: &mut Proc, cmdline: &[u8]) -> (i32, i32) {
    let relay = r.spawned_pid();
    r.wait_restored(cmdline);
    (r.pid(), relay)
}

#[test]
fn root_restore_gets_the_original_pid_and_relays_its_end() {
    let dir = TestDir::new("origpid");
    let image = dir.join("kstate.kckpt");
    let mut p = started();
    let saved = p.pid();
    let cmdline = read_proc(saved, "cmdline").expect("cmdline");
    let before = ask(&mut p, "state");
    dump_kills(&mut p, &image);

    let mut r = restore(&image);
    let (pid, relay) = restored(&mut r, &cmdline);
    assert_eq!(pid, saved, "the original pid");
    assert_ne!(relay, saved);
    assert_eq!(ask(&mut r, "state"), before);
    // The relay took the saved name, holds no descriptor and is the parent.
    let comm = read_proc(relay, "comm").expect("relay comm");
    assert_eq!(comm, b"kstate\n");
    assert_eq!(
        fs::read_dir(format!("/proc/{relay}/fd")).unwrap().count(),
        0
    );
    let status = String::from_utf8(read_proc(pid, "status").unwrap()).unwrap();
    assert!(status.contains(&format!("PPid:\t{relay}\n")), "{status}");
    assert!(r.stderr().is_empty(), "no warning expected: {}", r.stderr());

    // A stop of the restored process stops the relay (job control sees the
    // job stopped); SIGCONT to the relay is passed on.
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    wait_state(relay, 'T');
    kill(Pid::from_raw(relay), Signal::SIGCONT).unwrap();
    wait_state(relay, 'S');
    assert_eq!(ask(&mut r, "state"), before, "it runs again");

    // Its exit status is the relay's.
    r.write_stdin("exit 7\n");
    let status = r.wait_exit(LINE_TIMEOUT);
    assert_eq!(status.code(), Some(7), "{status}");
}

#[test]
fn signals_sent_to_the_relay_reach_the_process() {
    let dir = TestDir::new("origpid-signal");
    let image = dir.join("kstate.kckpt");
    let mut p = started();
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    let mut r = restore(&image);
    let (pid, relay) = restored(&mut r, &cmdline);
    kill(Pid::from_raw(relay), Signal::SIGTERM).unwrap();
    let status = r.wait_exit(LINE_TIMEOUT);
    assert_eq!(
        status.signal(),
        Some(15),
        "the relay ends as the process did: {status}"
    );
    assert!(read_proc(pid, "stat").is_none_or(|s| String::from_utf8_lossy(&s).contains(") Z")));
}

#[test]
fn taken_pid_is_a_warning_and_a_new_pid() {
    let dir = TestDir::new("origpid-taken");
    let image = dir.join("kstate.kckpt");
    let mut p = started();
    let saved = p.pid();
    let cmdline = read_proc(saved, "cmdline").expect("cmdline");
    dump(saved, &image, true);
    let mut r = restore(&image);
    let (pid, relay) = restored(&mut r, &cmdline);
    assert_eq!(pid, relay, "no fork: the restorer's pid");
    assert!(ask(&mut r, "state").starts_with("state subreaper 1 "));
    let err = r.stderr();
    assert!(
        err.lines().count() == 1
            && err.starts_with("kckpt: warning: ")
            && err.contains(&format!(
                "the saved pid {saved} is taken by another process"
            ))
            && err.contains(&format!("the process gets pid {relay}"))
            && err.contains("--new-pid-ns"),
        "{err}"
    );
    assert!(
        ask(&mut p, "state").starts_with("state "),
        "the original runs on"
    );
}

/// The dumped process is a zombie until its parent (this test) reaps it,
/// 400 ms after the restore started: the stub waits for its pid.
#[test]
fn pid_of_a_zombie_is_waited_for() {
    let dir = TestDir::new("origpid-zombie");
    let image = dir.join("kstate.kckpt");
    let mut p = started();
    let saved = p.pid();
    let cmdline = read_proc(saved, "cmdline").expect("cmdline");
    dump(saved, &image, false);
    wait_state(saved, 'Z');
    let mut r = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(400));
            p.wait_exit(LINE_TIMEOUT);
        });
        restore(&image)
    });
    let (pid, _) = restored(&mut r, &cmdline);
    assert_eq!(pid, saved);
    assert!(r.stderr().is_empty(), "no warning expected: {}", r.stderr());
}

#[test]
fn unprivileged_restore_keeps_the_restorers_pid() {
    require_tool("setpriv");
    let dir = TestDir::new("origpid-user");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("kstate.kckpt");
    let mut p = Proc::spawn("kstate (uid 65534)", &mut command_as(&NOBODY, prog::KSTATE));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    let mut r = Proc::spawn(
        "kckpt restore (uid 65534)",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    let (pid, relay) = restored(&mut r, &cmdline);
    assert_eq!(pid, relay);
    assert!(ask(&mut r, "state").starts_with("state subreaper 1 "));
    // Said once, with both pids.
    let err = r.stderr_but_new_ids();
    assert!(err.is_empty(), "no other warning expected: {err}");
    let saved = format!(
        "the process gets pid {pid} (saved {}) and new thread ids",
        p.spawned_pid()
    );
    assert!(r.stderr().contains(&saved), "{saved}: {}", r.stderr());
}
