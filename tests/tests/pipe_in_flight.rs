//! A pipe whose other end no process holds, only the kernel (sent in a
//! Unix socket message, SCM_RIGHTS, then closed: zdtm scm00, scm09), is
//! refused by that cause, not as a "pipe to another process" (there is
//! none, and `--external` could not help).

mod common;

use common::*;

const PIPE_IN_FLIGHT: &str = env!("KCKPT_PROG_PIPE_IN_FLIGHT");

#[test]
fn a_pipe_whose_other_end_is_in_flight_is_refused_by_that_cause() {
    let dir = TestDir::new("pipe_in_flight");
    let mut p = Proc::start(PIPE_IN_FLIGHT, &[]);
    let ready = p.line(LINE_TIMEOUT);
    let fd = ready.strip_prefix("ready ").expect("ready line");
    let out = dump_raw(p.pid(), &dir.join("refused.kckpt"), false);
    let what = format!(
        "fd {fd} (pipe whose other end no process holds (in flight in a Unix socket message"
    );
    assert_refused("a pipe end in flight", &out, Some(1), &[&what]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("--external"),
        "no --external hint: {}",
        show(&out)
    );
    p.kill();
}
