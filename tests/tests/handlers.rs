//! Every signal disposition comes back exactly: a handler of its own for
//! each signal 1-64 but SIGKILL and SIGSTOP (SIGTRAP included, whose
//! handler the kernel resets when the restore's own `int3` handshake traps
//! with every signal blocked), SIG_IGN and SIG_DFL ones, flags (SA_SIGINFO,
//! SA_RESTART, SA_NODEFER, SA_RESETHAND, SA_ONSTACK, SA_NOCLDSTOP,
//! SA_NOCLDWAIT) and masks; signals 32 and 33 too. After the restore the
//! program compares every `rt_sigaction` with what it read before the
//! dump, then raises each handled signal (SIGTRAP also with a real trap).

mod common;

use common::*;

fn round_trip(name: &str, args: &[&str]) {
    let dir = TestDir::new(name);
    let image = dir.join("handlers.kckpt");
    let mut p = Proc::start(prog::HANDLERS, args);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    // The checks pass before any checkpoint.
    p.write_stdin("check\n");
    assert_eq!(p.line(LINE_TIMEOUT), "check ok");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_and_kill(&mut p, &image);

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    r.write_stdin("check\n");
    let line = r.line(LINE_TIMEOUT);
    if line != "check ok" {
        r.fail(&format!("after restore: {line}"));
    }
    r.write_stdin("raise\n");
    let line = r.line(LINE_TIMEOUT);
    if line != "raise ok" {
        r.fail(&format!("after restore: {line}"));
    }
    // Still all there after the deliveries (SA_RESETHAND ones set again).
    r.write_stdin("check\n");
    assert_eq!(r.line(LINE_TIMEOUT), "check ok");
}

#[test]
fn every_disposition_survives() {
    round_trip("handlers", &[]);
}

#[test]
fn every_disposition_survives_with_two_threads() {
    round_trip("handlers-threads", &["thread"]);
}
