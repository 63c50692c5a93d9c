//! Descriptors in flight in Unix socket queues (`SCM_RIGHTS`, format 1.7,
//! issue 10): `scm_rights.c` queues messages carrying pipe ends (held or
//! closed), a regular file at an offset, two descriptors in one message,
//! a socket and an epoll instance, a socket whose own queue carries a
//! pipe end, on datagram, stream and seqpacket sockets and on a datagram
//! socket whose peer closed; it is dumped,
//! killed and restored, then receives every message and checks what came
//! with it the way a program would (pipe bytes, the same open file
//! description as a held end, file offset, `O_NONBLOCK`, epoll items,
//! and an epoll item of the process whose file is only in flight).
//! One runs in a tree of two, one as nobody. `kckpt info` names the
//! descriptors in flight. A TCP connection in
//! flight is refused by name, and so is a file in flight that another
//! process of the dump holds (its open file description would not be
//! shared after the restore).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

const SCM_RIGHTS: &str = env!("KCKPT_PROG_SCM_RIGHTS");

/// `scm_rights MODE DIR`, once it is ready.
fn start(mode: &str, dir: &TestDir) -> Proc {
    start_cmd(Command::new(SCM_RIGHTS).arg(mode).arg(dir.path()))
}

/// `cmd` (which runs `scm_rights`), once it is ready.
fn start_cmd(cmd: &mut Command) -> Proc {
    let mut p = Proc::spawn("scm_rights", cmd);
    let line = p.line(LINE_TIMEOUT);
    if line != "ready" {
        p.fail(&format!("not ready: {line}"));
    }
    p
}

/// Dump MODE, restore it, check it; at least `min` checks pass and none
/// fails. Returns `kckpt info --json` of the image.
fn comes_back(mode: &str, min: usize) -> serde_json::Value {
    let dir = TestDir::new(&format!("scm_{mode}"));
    let p = start(mode, &dir);
    comes_back_from(p, &dir, min)
}

/// [`comes_back`] of the started `p`.
fn comes_back_from(p: Proc, dir: &TestDir, min: usize) -> serde_json::Value {
    comes_back_as(&[], p, dir, min)
}

/// [`comes_back_from`], dumped and restored as `prefix` ([`NOBODY`]).
fn comes_back_as(prefix: &[&str], mut p: Proc, dir: &TestDir, min: usize) -> serde_json::Value {
    let image = dir.join("img.kckpt");
    let out = dump_as(prefix, p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    p.wait_exit(std::time::Duration::from_secs(10));
    let info = info_json(&image);
    let r = Proc::spawn("kckpt restore", kckpt_as(prefix).arg("restore").arg(&image));
    checks_out(r, min);
    info
}

/// The restored program receives and checks: at least `min` checks pass
/// and none fails.
fn checks_out(mut r: Proc, min: usize) {
    r.write_stdin("check\n");
    let mut lines = Vec::new();
    loop {
        let l = r.line(LINE_TIMEOUT);
        if l == "done" {
            break;
        }
        lines.push(l);
    }
    let bad: Vec<&String> = lines.iter().filter(|l| !l.starts_with("ok ")).collect();
    if !bad.is_empty() || lines.len() < min {
        r.fail(&format!("after the restore: {bad:?} (of {lines:?})"));
    }
    let status = r.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "scm_rights exited with {status}");
}

/// `image` rewritten to say format 1.`minor` (metadata checksums again).
fn say_minor(image: &std::path::Path, minor: u16) {
    let mut bytes = fs::read(image).unwrap();
    let at = bytes
        .windows(10)
        .position(|w| w[..8] == *b"KCKPTHDR" && w[8..] == 1u16.to_le_bytes())
        .expect("the kckpt header");
    bytes[at + 10..at + 12].copy_from_slice(&minor.to_le_bytes());
    kckpt_image_write::reseal(&mut bytes).expect("reseal");
    fs::write(image, bytes).unwrap();
}

/// The descriptors of `info` (`kckpt info --json`).
fn fds(info: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = vec![info];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Array(a)) = m.get("fds") {
                    out.extend(a.iter().cloned());
                }
                stack.extend(m.values());
            }
            serde_json::Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
    out
}

/// How many records are in flight only, and the sum of the sockets'
/// `in_flight` counts.
fn in_flight(info: &serde_json::Value) -> (usize, u64) {
    let fds = fds(info);
    let records = fds.iter().filter(|f| f["in_flight"] == true).count();
    let carried = fds
        .iter()
        .filter_map(|f| f["socket"]["in_flight"].as_u64())
        .sum();
    (records, carried)
}

#[test]
fn datagrams_carrying_pipe_ends_and_a_file_come_back() {
    let info = comes_back("dgram", 8);
    // The read end and the file exist only in flight; the write end is
    // the held descriptor.
    assert_eq!(in_flight(&info), (2, 3), "{info:#}");
}

#[test]
fn a_queue_whose_peer_closed_keeps_its_descriptors() {
    let info = comes_back("gone", 8);
    assert_eq!(in_flight(&info), (2, 3), "{info:#}");
}

#[test]
fn a_stream_is_cut_after_the_piece_that_carries_a_descriptor() {
    let info = comes_back("stream", 3);
    assert_eq!(in_flight(&info), (1, 1), "{info:#}");
}

#[test]
fn a_seqpacket_message_carrying_both_ends_of_a_pipe_comes_back() {
    let info = comes_back("seqpacket", 6);
    assert_eq!(in_flight(&info), (2, 2), "{info:#}");
}

#[test]
fn a_socket_and_an_epoll_in_flight_to_a_named_socket_come_back() {
    let info = comes_back("named", 5);
    assert_eq!(in_flight(&info), (2, 2), "{info:#}");
}

#[test]
fn a_socket_in_flight_keeps_the_descriptors_in_its_own_queue() {
    let info = comes_back("nested", 5);
    // The inner socket and the pipe's read end exist only in flight.
    assert_eq!(in_flight(&info), (2, 2), "{info:#}");
}

#[test]
fn an_epoll_item_whose_file_is_only_in_flight_comes_back() {
    let info = comes_back("epollsrc", 5);
    assert_eq!(in_flight(&info), (1, 1), "{info:#}");
}

#[test]
fn in_a_process_tree_the_descriptors_in_flight_come_back() {
    // `sh` waits for it: a tree of two, dumped and restored as one image.
    let dir = TestDir::new("scm_tree_dgram");
    let script = format!("\"{SCM_RIGHTS}\" dgram \"$0\"; exit $?");
    let p = start_cmd(Command::new("sh").arg("-c").arg(script).arg(dir.path()));
    comes_back_from(p, &dir, 8);
}

#[test]
fn as_nobody_the_descriptors_in_flight_come_back() {
    require_tool("setpriv");
    let dir = TestDir::new("scm_nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let p = start_cmd(command_as(&NOBODY, SCM_RIGHTS).arg("dgram").arg(dir.path()));
    comes_back_as(&NOBODY, p, &dir, 8);
}

#[test]
fn a_format_1_6_image_with_queued_datagrams_still_restores() {
    let dir = TestDir::new("scm_plain_1_6");
    let image = dir.join("img.kckpt");
    let mut p = start("plain", &dir);
    dump(p.pid(), &image, false);
    p.wait_exit(std::time::Duration::from_secs(10));
    say_minor(&image, 6);
    let out = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("format version: 1.6"),
        "{}",
        show(&out)
    );
    checks_out(restore(&image), 3);
}

#[test]
fn a_format_1_6_image_with_descriptors_in_flight_is_refused() {
    let dir = TestDir::new("scm_dgram_1_6");
    let image = dir.join("img.kckpt");
    let mut p = start("dgram", &dir);
    dump(p.pid(), &image, false);
    p.wait_exit(std::time::Duration::from_secs(10));
    say_minor(&image, 6);
    let out = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    assert!(
        !out.status.success(),
        "1.6 cannot say IN_FLIGHT: {}",
        show(&out)
    );
    // fd_flags IN_FLIGHT is a bit of 1.7.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown descriptor flags"),
        "{}",
        show(&out)
    );
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    assert!(!out.status.success(), "restored: {}", show(&out));
}

#[test]
fn a_file_in_flight_in_the_queues_of_two_processes_of_the_dump_is_refused() {
    let dir = TestDir::new("scm_twice");
    let mut p = start("twice", &dir);
    let child = descendants(p.pid());
    assert_eq!(child.len(), 1, "one child: {child:?}");
    let out = dump_raw(p.pid(), &dir.join("x.kckpt"), false);
    // Whichever of the two is dumped second names the other.
    let (a, b) = (
        format!("also held by pid {} of the dump, or in flight", p.pid()),
        format!("also held by pid {} of the dump, or in flight", child[0]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && (err.contains(&a) || err.contains(&b)),
        "{}",
        show(&out)
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.kill();
}

#[test]
fn a_socket_shared_with_a_child_keeps_its_descriptors_in_flight() {
    comes_back("shared", 3);
}

#[test]
fn info_says_how_many_descriptors_are_in_flight() {
    let dir = TestDir::new("scm_info");
    let image = dir.join("img.kckpt");
    let mut p = start("dgram", &dir);
    dump(p.pid(), &image, false);
    p.wait_exit(std::time::Duration::from_secs(10));
    let out = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 descriptors in flight"),
        "no count of the descriptors in flight:\n{text}"
    );
    assert_eq!(
        text.matches("in flight only").count(),
        2,
        "the two files only in flight are not marked:\n{text}"
    );
}

#[test]
fn a_tcp_connection_in_flight_is_refused_by_name() {
    let dir = TestDir::new("scm_tcp");
    let mut p = start("tcp", &dir);
    let out = dump_raw(p.pid(), &dir.join("x.kckpt"), false);
    assert_refused(
        "a TCP connection in flight",
        &out,
        Some(1),
        &["TCP connection", "in flight in its queue (SCM_RIGHTS)"],
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.kill();
}

#[test]
fn a_file_in_flight_that_another_process_of_the_dump_holds_is_refused_naming_it() {
    let dir = TestDir::new("scm_tree");
    let mut p = start("tree", &dir);
    let child = descendants(p.pid());
    assert_eq!(child.len(), 1, "one child: {child:?}");
    let out = dump_raw(p.pid(), &dir.join("x.kckpt"), false);
    let held = format!("also held by pid {} of the dump", child[0]);
    assert_refused(
        "a file in flight shared in the tree",
        &out,
        Some(1),
        &[&held, "in flight in its queue (SCM_RIGHTS)"],
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.kill();
}
