//! Owners of descriptors' I/O signals (issue 9, format 1.4,
//! `NT_KCKPT_FOWNERS`): a pipe and socketpairs with `O_ASYNC`, an owner
//! (`F_SETOWN` process, `F_SETOWN_EX` thread, `F_SETOWN` of its own
//! process group) and a signal (`F_SETSIG`)
//! send it again after a restore, with the siginfo naming the descriptor;
//! when the restore gives new pids, the process's own owners follow it and
//! an outside owner is named in a warning (zdtm file_fown).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

/// What `fown_signals.c` prints about its own descriptors.
const OWN: &str =
    "owners pipe=pid:self/sig10/async sock=tid:self/sig0/async group=pgrp:self/sig12/async";

fn go(r: &mut Proc) -> (String, String) {
    r.write_stdin("go\n");
    let owners = r.line(LINE_TIMEOUT);
    let signals = r.line(LINE_TIMEOUT);
    (owners, signals)
}

#[test]
fn async_descriptors_signal_their_owner_after_restore() {
    let dir = TestDir::new("fown");
    let image = dir.join("fown.kckpt");
    let mut p = Proc::start(prog::FOWN_SIGNALS, &[]);
    assert_eq!(p.line(LINE_TIMEOUT), OWN);
    assert_eq!(p.line(LINE_TIMEOUT), "ready");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let pid = p.pid();
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let owners = info["files"]["file_owners"].as_array().unwrap();
    assert_eq!(owners.len(), 3, "{owners:?}");
    assert_eq!(owners[0]["owner_type"], "process", "{owners:?}");
    assert_eq!(owners[0]["owner"], pid, "{owners:?}");
    assert_eq!(owners[0]["signal"], 10, "{owners:?}");
    assert_eq!(owners[1]["owner_type"], "thread", "{owners:?}");
    assert_eq!(owners[1]["signal"], 0, "{owners:?}");
    assert_eq!(owners[2]["owner_type"], "process group", "{owners:?}");
    assert_eq!(owners[2]["owner"], pid, "{owners:?}");
    assert_eq!(owners[2]["signal"], 12, "{owners:?}");

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    let (owners, signals) = go(&mut r);
    assert_eq!(owners, OWN);
    // SIGUSR1 (F_SETSIG) with si_fd the pipe's read end, SIGIO on the socket.
    assert_eq!(
        signals,
        "signals usr1=1 fd=ok io=1 usr2=1",
        "{}",
        r.stderr()
    );
    assert!(r.stderr().is_empty(), "no warning expected: {}", r.stderr());
    r.kill();
}

#[test]
fn new_pids_move_own_owners_and_name_an_outside_one() {
    require_tool("setpriv");
    let dir = TestDir::new("fown-user");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("fown.kckpt");
    // An owner outside the dump: this test process (the signal is
    // SIGWINCH, which it ignores).
    let outside = std::process::id().to_string();
    let mut p = Proc::spawn(
        "fown_signals (uid 65534)",
        command_as(&NOBODY, prog::FOWN_SIGNALS).arg(&outside),
    );
    let before = format!("{OWN} outside=pid:{outside}/sig28/async");
    assert_eq!(p.line(LINE_TIMEOUT), before);
    assert_eq!(p.line(LINE_TIMEOUT), "ready");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let saved = p.pid();
    dump_kills(&mut p, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");

    // Unprivileged: the process gets the restorer's pid.
    let mut r = Proc::spawn(
        "kckpt restore (uid 65534)",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    r.wait_restored(&cmdline);
    let (owners, signals) = go(&mut r);
    // Its own pipe and socket follow it to its new pid and thread id; its
    // process group does not come back (a new pid leads no group: the
    // restorer's group is not its own), and the outside owner is left out
    // (signals and O_ASYNC kept)...
    let own = OWN.replace("group=pgrp:self", "group=none");
    assert_eq!(owners, format!("{own} outside=none/sig28/async"));
    assert_eq!(
        signals,
        "signals usr1=1 fd=ok io=1 usr2=0",
        "{}",
        r.stderr()
    );
    // ... and both are named.
    let err = r.stderr_but_new_ids();
    for owner in [
        format!("process group {saved}"),
        format!("process {outside}"),
    ] {
        let line = format!("its I/O signals went to {owner}, which this restore");
        assert!(err.contains(&line), "{line}: {err}");
    }
    assert_eq!(err.lines().count(), 2, "{err}");
    r.kill();
}

/// Read `NAME PID` lines until "ready": the pids of `fown_tree.c`.
fn tree_pids(p: &mut Proc) -> Vec<(String, i32)> {
    let mut pids = Vec::new();
    loop {
        let line = p.line(LINE_TIMEOUT);
        if line == "ready" {
            return pids;
        }
        let (name, pid) = line.split_once(' ').expect("NAME PID");
        pids.push((name.to_owned(), pid.parse().expect("a pid")));
    }
}

#[test]
fn an_owner_forked_later_in_the_tree_gets_the_signal_after_restore() {
    let dir = TestDir::new("fown-tree");
    let image = dir.join("fown-tree.kckpt");
    let mut p = Proc::start(prog::FOWN_TREE, &[]);
    let pids = tree_pids(&mut p);
    assert_eq!(pids.len(), 3, "{pids:?}");
    let root = pids.iter().find(|(n, _)| n == "root").expect("root").1;
    let out = dump(root, &image, false);
    assert!(out.status.success(), "{}", show(&out));
    p.wait_exit(LINE_TIMEOUT);
    let info = info_json(&image);
    let procs = info["tree"]["processes"].as_array().expect("a tree image");
    assert_eq!(procs.len(), 3, "{procs:?}");

    // "b" keeps its pid, so "a" sets its saved owner as it is (were "b"
    // not forked yet then, "a" would set it after the tree's barrier).
    let mut r = restore(&image);
    r.write_stdin("go\n");
    let mut got = [r.line(LINE_TIMEOUT), r.line(LINE_TIMEOUT)];
    got.sort();
    assert_eq!(got, ["a owner b", "b usr1"], "{}", r.stderr());
    assert!(r.stderr().is_empty(), "no warning expected: {}", r.stderr());
    r.write_stdin("quit\n");
    let status = r.wait_exit(LINE_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "the image ends like its root: {status}"
    );
}
