//! A parent-less pipeline inside one process (`tests/programs/pingpong.c`):
//! two threads ping-pong numbers over a SOCK_STREAM socketpair with several
//! messages in flight, so unread bytes sit in the socket queues at the
//! checkpoint. After the restore (default dump, which kills the target) the
//! ping-pong carries on from where it was: the program checks every number
//! it receives and prints BAD on a lost, duplicated, reordered or corrupt
//! message, and its progress count continues at the next hundred.

mod common;

use common::*;

fn count(p: &Proc, line: &str) -> u64 {
    line.strip_prefix("count ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| p.fail(&format!("expected `count N`, got {line:?}")))
}

fn pipeline_case(binfmt: bool) {
    let dir = TestDir::new("pipeline");
    let image = dir.join("pingpong.kckpt");
    let mut p = Proc::start(prog::PINGPONG, &[]);
    p.wait_for("count 300", LINE_TIMEOUT, |l| l == "count 300");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let last = dump_and_kill(&mut p, &image);
    let last = count(&p, &last);
    assert!(last >= 300, "last count {last}");

    // Eight messages of 16 bytes are always in flight and each thread holds
    // at most one: at least six sit unread in the socket queues.
    let info = info_json(&image);
    let ends: Vec<&serde_json::Value> = info["files"]["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .filter(|f| f["kind"] == "socketpair")
        .collect();
    assert_eq!(ends.len(), 2, "two socketpair ends: {info}");
    let unread: u64 = ends.iter().filter_map(|f| f["data_bytes"].as_u64()).sum();
    assert!(unread >= 6 * 16, "{unread} unread bytes saved: {info}");

    let mut r = if binfmt {
        restore_binfmt(&image)
    } else {
        restore(&image)
    };
    for i in 1..=5 {
        let line = r.line(LINE_TIMEOUT);
        if i == 1 {
            r.wait_restored(&cmdline);
        }
        if count(&r, &line) != last + 100 * i {
            r.fail(&format!(
                "expected `count {}`, got {line:?}",
                last + 100 * i
            ));
        }
    }
    if let Some(status) = r.exited() {
        r.fail(&format!("exited with {status}"));
    }
}

#[test]
fn socketpair_ping_pong_between_threads_continues() {
    pipeline_case(false);
}

#[test]
fn socketpair_ping_pong_between_threads_continues_binfmt() {
    pipeline_case(true);
}
