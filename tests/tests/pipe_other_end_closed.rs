//! Pipe ends whose other end is closed everywhere (format 1.5): a read end
//! whose writers all exited, with bytes still unread, and a write end whose
//! reader is gone come back as such (the bytes, then end of file; `EPIPE`),
//! not refused as "pipe to another process" (make's pipe to a job that just
//! ended was).

mod common;

use std::process::Command;

use common::*;

#[test]
fn pipe_ends_whose_other_end_is_closed_come_back_so() {
    let dir = TestDir::new("pipe_alone");
    let image = dir.join("alone.kckpt");
    let mut p = Proc::start(prog::PIPE_ALONE, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    dump_and_kill(&mut p, &image);
    let info = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&info.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("other end closed"))
            .count(),
        2,
        "kckpt info names both ends: {text}"
    );
    let mut r = restore(&image);
    r.write_stdin("check\n");
    let mut lines = Vec::new();
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "done" {
            break;
        }
        lines.push(line);
    }
    assert_eq!(lines, ["ok read", "ok write"], "after the restore");
    let status = r.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "pipe_alone exited with {status}");
}
