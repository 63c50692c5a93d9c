//! A process alone holding both ends of a pseudo-terminal pair (issue 9,
//! format 1.5: a tree of one process with a `PTY_MASTER` slot;
//! `programs/pty_alone.c`): after a dump and a restore it finds the same
//! unread bytes both ways (canonical input lines, one ended by ^D and one
//! holding a literal ^D; echo and output on the master), the slave's
//! owner, mode and window, the slave as its controlling terminal, and a
//! working pair, exactly as a run never dumped reports them. A dump that
//! fails after taking those bytes out, and a `--leave-running` dump, put
//! them back. A slave whose master was closed (hung up) comes back hung
//! up.

mod common;

use std::time::Duration;

use common::*;

const PTY_ALONE: &str = env!("KCKPT_PROG_PTY_ALONE");

/// Start `pty_alone ARGS` up to its ready line.
fn start(args: &[&str]) -> Proc {
    let mut p = Proc::start(PTY_ALONE, args);
    let line = p.line(LINE_TIMEOUT);
    if !line.starts_with("ready ") {
        p.fail(&format!("not ready: {line:?}"));
    }
    p
}

/// Ask for a report and read it up to "end".
fn report(p: &mut Proc) -> Vec<String> {
    p.write_stdin("go\n");
    let mut out = Vec::new();
    loop {
        let l = p.line(LINE_TIMEOUT);
        if l == "end" {
            return out;
        }
        out.push(l);
    }
}

/// What a process never dumped reports.
fn reference() -> Vec<String> {
    let mut p = start(&[]);
    let r = report(&mut p);
    p.kill();
    assert!(
        r.iter().any(|l| l.starts_with("line ") && l != "line 0 ")
            && r.iter()
                .any(|l| l.starts_with("master ") && l != "master -1 ")
            && r.iter()
                .any(|l| l == "owner 1234 2345 mode 604 rows 30 cols 90 ctty 1 echo 1 icanon 1"),
        "the reference run has unread bytes both ways: {r:?}"
    );
    r
}

#[test]
fn a_process_holding_both_ends_of_a_pair_is_restored_with_its_unread_bytes() {
    let want = reference();
    let dir = TestDir::new("pty_alone");
    let image = dir.join("pty.kckpt");
    let mut p = start(&[]);
    dump(p.pid(), &image, false);
    let status = p.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "the process was not killed: {status}");
    let mut r = restore(&image);
    assert_eq!(report(&mut r), want, "the restored process's pair");
    r.kill();
}

#[test]
fn a_refused_dump_puts_the_unread_bytes_back() {
    let want = reference();
    let dir = TestDir::new("pty_alone_refused");
    let mut p = start(&["tcp"]);
    let out = dump_raw(p.pid(), &dir.join("refused.kckpt"), false);
    assert_refused("a TCP socket", &out, Some(1), &["tcp"]);
    assert_eq!(report(&mut p), want, "the pair after the refused dump");
    p.kill();
}

#[test]
fn a_dump_that_leaves_the_process_running_puts_the_unread_bytes_back() {
    let want = reference();
    let dir = TestDir::new("pty_alone_running");
    let mut p = start(&[]);
    dump(p.pid(), &dir.join("pty.kckpt"), true);
    assert_eq!(report(&mut p), want, "the pair after the dump");
    p.kill();
}

#[test]
fn a_slave_whose_master_was_closed_comes_back_hung_up() {
    let mut p = start(&["hangup"]);
    let want = report(&mut p);
    p.kill();
    assert_eq!(
        want,
        ["read 0 0 write -1 5 sid 0 tty 0"],
        "a hung-up slave before any dump"
    );
    let dir = TestDir::new("pty_alone_hangup");
    let image = dir.join("pty.kckpt");
    let mut p = start(&["hangup"]);
    dump(p.pid(), &image, false);
    p.wait_exit(Duration::from_secs(30));
    let mut r = restore(&image);
    assert_eq!(report(&mut r), want, "the restored slave");
    r.kill();
}
