//! `kckpt restore --new-pid-ns` (and `KCKPT_NEW_PID_NS=1` on the binfmt
//! path): the restored process and its threads get back their original pid
//! and tids inside a new PID namespace, also for an unprivileged user (a
//! new user namespace, capabilities dropped before the process resumes).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Sorted thread ids of `pid` as its own PID namespace sees them (the last
/// `NSpid` field of each task).
fn inner_tids(pid: i32) -> Vec<i32> {
    let mut tids: Vec<i32> = fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task directory")
        .flatten()
        .map(|t| {
            let status = fs::read_to_string(t.path().join("status")).expect("status");
            let line = status
                .lines()
                .find(|l| l.starts_with("NSpid:"))
                .expect("NSpid line");
            line.split_whitespace().last().unwrap().parse().unwrap()
        })
        .collect();
    tids.sort_unstable();
    tids
}

fn outer_tids(pid: i32) -> Vec<i32> {
    let mut t: Vec<i32> = fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task directory")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    t.sort_unstable();
    t
}

fn status_field(pid: i32, name: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn ticks(line: &str) -> Vec<u64> {
    let mut f = line.split_whitespace();
    assert_eq!(f.next(), Some("tick"), "not a tick line: {line:?}");
    f.map(|n| n.parse().expect("counter")).collect()
}

/// Dump `threads 3` (run by `prefix`, e.g. `setpriv` to another user);
/// returns (saved tids, cmdline, last counters).
fn dumped(image: &Path, prefix: &[&str]) -> (Vec<i32>, Vec<u8>, Vec<u64>) {
    let mut p = Proc::spawn("threads 3", command_as(prefix, prog::THREADS).arg("3"));
    p.line(LINE_TIMEOUT);
    p.line(LINE_TIMEOUT);
    let saved = outer_tids(p.pid());
    assert_eq!(saved.len(), 4);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let last = ticks(&dump_and_kill(&mut p, image));
    (saved, cmdline, last)
}

fn check_restored(r: &mut Proc, saved: &[i32], cmdline: &[u8], last: &[u64]) {
    let first = ticks(&r.line(LINE_TIMEOUT));
    r.wait_restored(cmdline);
    let second = ticks(&r.line(LINE_TIMEOUT));
    for i in 0..3 {
        assert!(
            first[i] >= last[i] && second[i] > first[i],
            "{last:?} {first:?} {second:?}"
        );
    }
    let pid = r.pid();
    assert_eq!(inner_tids(pid), saved, "tids inside the new PID namespace");
    no_window(pid);
}

#[test]
fn new_pid_ns_unprivileged_gets_original_pid_and_tids() {
    require_tool("setpriv");
    let dir = TestDir::new("pidns-user");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("threads.kckpt");
    // The process of that user (the restorer could not take root's ids).
    let (saved, cmdline, last) = dumped(&image, &NOBODY);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    let mut r = Proc::spawn(
        "kckpt restore --new-pid-ns (uid 65534)",
        kckpt_as(&NOBODY)
            .args(["restore", "--new-pid-ns"])
            .arg(&image),
    );
    check_restored(&mut r, &saved, &cmdline, &last);
    // The stub created the user namespace: it dropped the capabilities it
    // had there (a root caller's restored process keeps root's).
    for tid in outer_tids(r.pid()) {
        assert_eq!(
            status_field(tid, "CapEff:"),
            "0000000000000000",
            "thread {tid} keeps capabilities"
        );
    }
    let uid = status_field(r.pid(), "Uid:");
    assert!(uid.starts_with("65534"), "restored with uid {uid}");
}

#[test]
fn new_pid_ns_binfmt_environment_variable() {
    let dir = TestDir::new("pidns-binfmt");
    let image = dir.join("threads.kckpt");
    let (saved, cmdline, last) = dumped(&image, &[]);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o700)).expect("chmod image");
    let script = "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
                  && \"$KCKPT\" binfmt register --stub \"$KCKPT_STUB\" >&2 \
                  && KCKPT_NEW_PID_NS=1 exec ./threads.kckpt";
    let mut r = Proc::spawn(
        "binfmt restore with KCKPT_NEW_PID_NS=1",
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .current_dir(dir.path())
            .env("KCKPT", kckpt())
            .env("KCKPT_STUB", stub()),
    );
    check_restored(&mut r, &saved, &cmdline, &last);
}

/// In a new PID namespace the process that ran the image stands in for
/// the restored one: a signal sent to it (as a supervisor would, knowing
/// only that pid) reaches the restored process's handler, and a SIGTERM
/// ends the restore the way it ends the restored process.
#[test]
fn new_pid_ns_relays_signals_to_the_restored_process() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let dir = TestDir::new("pidns-relay");
    let image = dir.join("sigusr1.kckpt");
    let mut p = Proc::start(prog::SIGUSR1, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    dump_and_kill(&mut p, &image);
    let mut r = Proc::spawn(
        "kckpt restore --new-pid-ns",
        Command::new(kckpt())
            .args(["restore", "--new-pid-ns"])
            .arg(&image),
    );
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick"));
    let outer = Pid::from_raw(r.spawned_pid());
    kill(outer, Signal::SIGUSR1).expect("SIGUSR1 to the image's process");
    let line = r.wait_for("got SIGUSR1", LINE_TIMEOUT, |l| !l.starts_with("tick"));
    assert_eq!(line, "got SIGUSR1 signo 10 altstack yes");
    r.wait_for("a tick after the handler", LINE_TIMEOUT, |l| {
        l.starts_with("tick")
    });
    kill(outer, Signal::SIGTERM).expect("SIGTERM");
    let status = r.wait_exit(LINE_TIMEOUT);
    assert_eq!(status.signal(), Some(15), "ended with {status}");
}
