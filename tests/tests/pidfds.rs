//! Pidfds of other processes (format 1.7): a pidfd of a child in the
//! dumped tree (with a copy and an epoll item watching it) still signals
//! that child and sees it exit after restore; pidfds of a child that had
//! exited and been reaped come back as pidfds of an exited process (one
//! inode for both, readable, `ESRCH`, the same exit status), also (format
//! 1.9) when a parent and its child each opened one; a pidfd of a
//! process outside the dump is refused by name.

mod common;

use common::*;

#[test]
fn pidfds_of_a_child_and_of_an_exited_child_work_after_restore() {
    let dir = TestDir::new("pidfds");
    let image = dir.join("pidfds.kckpt");
    let mut p = Proc::start(prog::PIDFDS, &["tree"]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let procs = info["tree"]["processes"].as_array().expect("a tree image");
    assert_eq!(procs.len(), 2, "the holder and its live child: {procs:?}");

    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "child ok", "{}", r.stderr());
    assert_eq!(r.line(LINE_TIMEOUT), "dead ok", "{}", r.stderr());
    let status = r.wait_exit(LINE_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{status}: {}", r.stderr());
}

#[test]
fn pidfds_a_parent_and_its_child_opened_on_one_exited_process_are_one_again() {
    let dir = TestDir::new("pidfds-two");
    let image = dir.join("pidfds.kckpt");
    let mut p = Proc::start(prog::PIDFDS, &["two"]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    dump_kills(&mut p, &image);
    let adopted = tree_slots(&info_json(&image), "adopted").len();
    assert_eq!(adopted, 1, "the child's pidfd, restored by its parent");
    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "two ok", "{}", r.stderr());
    let status = r.wait_exit(LINE_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{status}: {}", r.stderr());
}

#[test]
fn a_pidfd_of_a_process_outside_the_dump_is_refused_by_name() {
    let dir = TestDir::new("pidfd-outside");
    let mut p = Proc::start(prog::PIDFDS, &["outside"]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let out = dump_raw(p.pid(), &dir.join("img.kckpt"), false);
    let parent = std::process::id();
    assert_refused(
        "dump of a process holding its parent's pidfd",
        &out,
        None,
        &[&format!("pidfd of process {parent}, outside the dump")],
    );
    assert!(state(p.pid()).is_some_and(|s| s != 'Z'), "left running");
}
