//! Unix sockets between the processes of a tree, and connections a
//! listener has not accepted yet (format 1.7: tree slot `UNIX_END`,
//! `UnixRecord` peer kind `PENDING`).
//!
//! `tests/programs/unix_tree.c` sets each case up, is dumped with its
//! child (killed), restored through the tree restorer (`kckpt restore`),
//! and checks itself: what each end had queued for the other (with the
//! message boundaries of datagram and seqpacket pairs), names, the order
//! in which `accept` returns waiting connections, and that every
//! connection still carries data both ways; each process prints `ok NAME`
//! or `FAIL NAME why`; a child's datagram socket connected to its
//! parent's is connected again. Refused by name at dump: a waiting connection
//! whose client had sent data (it cannot be read before the connection is
//! accepted), a pair whose two processes have no common ancestor in the
//! dump (`--pgid` of two siblings).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const UNIX_TREE: &str = env!("KCKPT_PROG_UNIX_TREE");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Start `unix_tree ARGS` and read its `NAME PID` lines until `ready`.
fn start(args: &[&str]) -> (Proc, HashMap<String, i32>) {
    let mut p = Proc::start(UNIX_TREE, args);
    let mut pids = HashMap::new();
    loop {
        let line = p.line(LINE_TIMEOUT);
        if line == "ready" {
            return (p, pids);
        }
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [name, pid] if pid.parse::<i32>().is_ok() => {
                pids.insert((*name).to_owned(), pid.parse().unwrap());
            }
            _ => p.fail(&format!("unexpected line {line:?}")),
        }
    }
}

/// Dump the tree of the parent into `image` (killing it) and wait until
/// every pid is free again.
fn dump_tree(p: &mut Proc, pids: &HashMap<String, i32>, image: &Path) {
    dump(pids["parent"], image, false);
    let status = p.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "the parent was not killed: {status}");
    let until = Instant::now() + Duration::from_secs(10);
    while pids
        .values()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(Instant::now() < until, "a dumped process is still there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The kinds of the image's tree slots (`kckpt info --json`).
fn slot_kinds(image: &Path) -> Vec<String> {
    let info = info_json(image);
    info["tree"]["slots"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s["kind"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Restore `image`, let it check itself: every one of `names` says `ok`,
/// none `FAIL`, the parent ends with 0.
fn restore_and_check(image: &Path, names: &[&str]) {
    let mut r = restore(image);
    r.write_stdin("check\n");
    let mut ok = Vec::new();
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            r.fail(&format!("wrong state after the restore: {line}"));
        }
        if let Some(name) = line.strip_prefix("ok ") {
            ok.push(name.to_owned());
        }
    }
    ok.sort();
    assert_eq!(ok, names, "not every process checked itself");
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "the restored parent failed: {status}");
}

/// Dump `unix_tree ARGS` with its child and check it after the restore;
/// the image has `ends` `UNIX_END` slots.
fn comes_back(dir: &TestDir, args: &[&str], ends: usize, names: &[&str]) {
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start(args);
    dump_tree(&mut p, &pids, &image);
    let kinds = slot_kinds(&image);
    assert_eq!(
        kinds.iter().filter(|k| *k == "unix_end").count(),
        ends,
        "{args:?}: UNIX_END slots in {kinds:?}"
    );
    restore_and_check(&image, names);
}

#[test]
fn a_socketpair_of_each_type_split_between_parent_and_child_keeps_its_queues() {
    for ty in ["stream", "dgram", "seqpacket"] {
        let dir = TestDir::new(&format!("unix_tree_pair_{ty}"));
        comes_back(&dir, &["pair", ty], 1, &["child", "parent"]);
    }
}

#[test]
fn the_parents_image_alone_is_refused_it_holds_its_childs_end() {
    let dir = TestDir::new("unix_tree_alone");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start(&["pair", "stream"]);
    dump_tree(&mut p, &pids, &image);
    // The parent's own image, as `kckpt extract` writes it: the child's
    // end is a descriptor it restores only for the tree (TREE_ONLY).
    let alone = dir.join("parent.kckpt");
    let out = run(
        std::process::Command::new(kckpt())
            .args(["extract", "--pid", &pids["parent"].to_string()])
            .arg(&image)
            .arg(&alone),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = run(
        std::process::Command::new(kckpt())
            .arg("restore")
            .arg(&alone),
        CMD_TIMEOUT,
    );
    assert_refused(
        "the parent alone",
        &out,
        Some(126),
        &["is shared with another process of the tree: restore the whole image"],
    );
}

#[test]
fn a_child_connected_to_the_parents_listener_comes_back_accepted() {
    let dir = TestDir::new("unix_tree_accept");
    let path = dir.join("l.sock").display().to_string();
    comes_back(&dir, &["accept", &path], 1, &["child", "parent"]);
}

#[test]
fn a_childs_datagram_socket_connected_to_the_parents_comes_back_connected() {
    let dir = TestDir::new("unix_tree_dgram");
    let path = dir.join("d.sock").display().to_string();
    comes_back(&dir, &["dgram-child", &path], 1, &["child", "parent"]);
}

#[test]
fn a_connection_between_two_children_comes_back_through_their_parent() {
    // The listener's child restores after the parent bound the accepted
    // end to the path: the listener finds its file stale and binds again.
    let dir = TestDir::new("unix_tree_accept_siblings");
    let path = dir.join("l.sock").display().to_string();
    comes_back(&dir, &["accept-siblings", &path], 2, &["a", "b", "parent"]);
}

#[test]
fn a_connection_between_two_children_on_an_abstract_listener_is_refused() {
    // The parent would bind the accepted end to the abstract name the
    // listener of its child needs.
    let dir = TestDir::new("unix_tree_accept_abstract");
    let name = format!("@kckpt-ut-sib-{}", std::process::id());
    let (mut p, pids) = start(&["accept-siblings", &name]);
    let out = dump_raw(pids["parent"], &dir.join("x.kckpt"), false);
    assert_refused(
        "accept-siblings abstract",
        &out,
        None,
        &["or a connection accepted on a listener of another process"],
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.write_stdin("check\n");
    assert!(p.wait_exit(EXIT_TIMEOUT).success());
}

#[test]
fn connections_waiting_to_be_accepted_come_back_in_their_order() {
    let dir = TestDir::new("unix_tree_pending_self");
    let name = format!("kckpt-ut-self-{}", std::process::id());
    let image = dir.join("one.kckpt");
    let (mut p, pids) = start(&["pending-self", &name]);
    dump(pids["parent"], &image, false);
    assert!(!p.wait_exit(EXIT_TIMEOUT).success());
    restore_and_check(&image, &["parent"]);
}

#[test]
fn a_childs_connection_waiting_on_the_parents_listener_comes_back() {
    let dir = TestDir::new("unix_tree_pending_child");
    let name = format!("kckpt-ut-child-{}", std::process::id());
    comes_back(&dir, &["pending-child", &name], 1, &["child", "parent"]);
}

#[test]
fn a_waiting_connection_whose_client_sent_data_is_refused_by_name() {
    let dir = TestDir::new("unix_tree_pending_data");
    let name = format!("kckpt-ut-data-{}", std::process::id());
    let (mut p, pids) = start(&["pending-data", &name]);
    let out = dump_raw(pids["parent"], &dir.join("x.kckpt"), false);
    assert_refused(
        "pending-data",
        &out,
        None,
        &["not accepted yet, with data it sent waiting in the connection"],
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.kill();
}

#[test]
fn a_pair_between_two_roots_of_a_group_is_refused_naming_the_other() {
    let dir = TestDir::new("unix_tree_siblings");
    let (mut p, pids) = start(&["siblings", "stream"]);
    let (a, b) = (pids["a"], pids["b"]);
    let out = run(
        std::process::Command::new(kckpt())
            .args(["dump", "--pgid", &a.to_string(), "-o"])
            .arg(dir.join("x.kckpt")),
        DUMP_TIMEOUT,
    );
    assert_refused(
        "siblings",
        &out,
        None,
        &[
            &format!("held by pid {b} of the dump (not restored"),
            &format!("held by pid {a} of the dump (not restored"),
        ],
    );
    assert!(p.exited().is_none(), "a refused dump left them running");
    p.kill();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(b),
        nix::sys::signal::Signal::SIGKILL,
    );
}
