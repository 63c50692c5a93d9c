//! Processes stopped inside system calls resume them: nanosleep (restarted
//! with a restart block), read(2) on a pipe, and brk/sbrk keep working.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sleeper_in_nanosleep_wakes_after_restore() {
    let dir = TestDir::new("sleeper");
    let image = dir.join("sleeper.kckpt");
    let mut p = Proc::start(prog::SLEEPER, &[]);
    p.wait_for("sleeping", LINE_TIMEOUT, |l| l == "sleeping");
    // Let it enter nanosleep.
    std::thread::sleep(Duration::from_millis(300));
    let last = dump_and_kill(&mut p, &image);
    assert_eq!(last, "sleeping", "woke before the dump finished");

    let start = Instant::now();
    let mut r = restore(&image);
    let line = r.line(Duration::from_secs(20));
    if line != "woke" {
        r.fail(&format!("expected `woke`, got {line:?}"));
    }
    // The 3 s sleep is re-issued (in full or for what was left), not skipped.
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "woke after {:?}: the sleep was not resumed",
        start.elapsed()
    );
    let status = r.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "sleeper exited with {status}");
}

#[test]
fn pipe_reader_blocked_in_read_resumes() {
    let dir = TestDir::new("pipe-read");
    let image = dir.join("pipe.kckpt");
    let mut p = Proc::start(prog::PIPE_READ, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p.write_stdin("before\n");
    p.wait_for("read: before", LINE_TIMEOUT, |l| l == "read: before");
    std::thread::sleep(Duration::from_millis(200));
    let last = dump_and_kill(&mut p, &image);
    assert_eq!(last, "read: before", "printed more while blocked");

    let mut r = restore(&image);
    // Nothing happens until there is something to read.
    if let Some(line) = r.next_line(Duration::from_millis(500)) {
        r.fail(&format!("printed {line:?} before any input"));
    }
    r.write_stdin("after restore\n");
    let line = r.line(LINE_TIMEOUT);
    if line != "read: after restore" {
        r.fail(&format!("expected `read: after restore`, got {line:?}"));
    }
    r.write_stdin("again\n");
    let line = r.line(LINE_TIMEOUT);
    if line != "read: again" {
        r.fail(&format!("expected `read: again`, got {line:?}"));
    }
}

fn parse_round(line: &str) -> (u64, u64, &str) {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        ["round", n, "blocks", _, "brk", brk, verdict] => (
            n.parse().expect("round"),
            u64::from_str_radix(brk.trim_start_matches("0x"), 16).expect("brk"),
            verdict,
        ),
        _ => panic!("not a malloc_brk line: {line:?}"),
    }
}

#[test]
fn heap_and_brk_keep_working_after_restore() {
    let dir = TestDir::new("malloc-brk");
    let image = dir.join("heap.kckpt");
    let mut p = Proc::start(prog::MALLOC_BRK, &[]);
    p.wait_for("round 10", LINE_TIMEOUT, |l| l.starts_with("round 10 "));
    let last_line = dump_and_kill(&mut p, &image);
    let (last, mut brk, _) = parse_round(&last_line);

    let mut r = restore(&image);
    for i in 1..=10 {
        let line = r.line(LINE_TIMEOUT);
        if !line.starts_with("round ") {
            r.fail(&format!("the heap stopped working: {line:?}"));
        }
        let (n, now, verdict) = parse_round(&line);
        if n != last + i || verdict != "ok" {
            r.fail(&format!("expected round {} ok, got {line:?}", last + i));
        }
        if now <= brk {
            r.fail(&format!("brk did not grow: {now:#x} after {brk:#x}"));
        }
        brk = now;
    }
}
