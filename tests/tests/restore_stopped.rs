//! `kckpt restore --stopped` (issue 11): the restored process stops
//! (`SIGSTOP`) before its first instruction and its pid is printed, so
//! `gdb -p PID` attaches to a live copy of the saved process; `SIGCONT`
//! lets it carry on where it was.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[test]
fn a_process_restored_stopped_waits_for_gdb_and_sigcont() {
    let gdb = require_tool("gdb");
    let dir = TestDir::new("restore-stopped");
    let image = dir.join("counter.kckpt");
    let last = counter_dumped(prog::COUNTER_PIE, &image, 2);
    let mut r = Proc::spawn(
        "kckpt restore --stopped",
        Command::new(kckpt())
            .args(["restore", "--stopped"])
            .arg(&image),
    );
    // The printed pid (the restored process: a root restore gives it its
    // saved pid in a child of the command), then the stop.
    assert!(
        eventually(LINE_TIMEOUT, || r
            .stderr()
            .contains(" stops before its first instruction")),
        "no line about the stop: {}",
        r.stderr()
    );
    let said = r.stderr();
    let pid: i32 = said
        .split("kckpt: pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {said:?}"));
    assert!(said.contains(&format!("gdb -p {pid} ")), "{said}");
    assert!(
        eventually(LINE_TIMEOUT, || state(pid) == Some('T')),
        "pid {pid} did not stop: state {:?}",
        state(pid)
    );
    // Stopped: it prints nothing.
    assert_eq!(r.next_line(Duration::from_millis(500)), None, "it ran");
    // gdb attaches to the live copy and sees the program's code.
    let out = run(
        Command::new(gdb)
            .args(["-nx", "-batch", "-ex", "bt", "-p", &pid.to_string()])
            .arg(prog::COUNTER_PIE),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('#') && l.contains("main")),
        "gdb's backtrace has no main:\n{}",
        show(&out)
    );
    // gdb detached and left it stopped; SIGCONT lets it run on.
    kill(Pid::from_raw(pid), Signal::SIGCONT).expect("SIGCONT");
    let line = r.line(LINE_TIMEOUT);
    let (n, _) = parse_counter(&line);
    assert_eq!(n, last + 1, "it carries on where it was: {line}");
}
