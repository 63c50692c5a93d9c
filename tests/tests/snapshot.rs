//! `kckpt snapshot` (issue 11): images of a running process at intervals
//! under rotating names, the newest `--keep` kept, the process left
//! running; the newest restores and carries on from its count. A
//! snapshot that fails never removes a good image: a process kckpt
//! refuses leaves the directory's images as they were, and the command
//! fails with the refusal.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The `snapshot-NNNNNN.kckpt` names in `dir`, sorted.
fn names(dir: &TestDir) -> Vec<String> {
    let mut n: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn snapshots_rotate_and_the_newest_restores() {
    let dir = TestDir::new("snapshot");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.wait_for("count 2", LINE_TIMEOUT, |l| parse_counter(l).0 >= 2);
    let out = run(
        Command::new(kckpt())
            .args(["snapshot", "-p", &p.pid().to_string()])
            .args(["--every", "300ms", "--keep", "2", "--count", "4", "-o"])
            .arg(dir.path()),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("kckpt: snapshot "))
            .count(),
        4,
        "one line per snapshot: {err}"
    );
    assert_eq!(
        names(&dir),
        ["snapshot-000003.kckpt", "snapshot-000004.kckpt"],
        "the newest two"
    );
    // Left running: it counts on.
    assert!(p.exited().is_none(), "the process was not left running");
    p.wait_for("count 8", LINE_TIMEOUT, |l| parse_counter(l).0 >= 8);
    p.kill();
    let mut r = restore(&dir.join("snapshot-000004.kckpt"));
    let (n, _) = parse_counter(&r.line(LINE_TIMEOUT));
    assert!(n > 2, "the newest image's count: {n}");
    // A second run numbers on from the highest image there.
    let mut q = Proc::start(prog::COUNTER_PIE, &[]);
    q.line(LINE_TIMEOUT);
    let out = run(
        Command::new(kckpt())
            .args(["snapshot", "-p", &q.pid().to_string()])
            .args(["--every", "100ms", "--keep", "2", "--count", "1", "-o"])
            .arg(dir.path()),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        names(&dir),
        ["snapshot-000004.kckpt", "snapshot-000005.kckpt"]
    );
}

#[test]
fn a_refused_snapshot_keeps_the_images_there() {
    require_tool("ipcrm");
    let dir = TestDir::new("snapshot-refused");
    fs::write(dir.join("snapshot-000007.kckpt"), b"an older image").unwrap();
    // A process with a SysV semaphore undo list while sets exist: refused.
    let mut p = Proc::start(prog::HOLDER, &["sem_undo"]);
    let ready = p.line(LINE_TIMEOUT);
    let id = ready
        .strip_prefix("ready id ")
        .unwrap_or_else(|| p.fail(&format!("holder: {ready:?}")))
        .to_owned();
    let out = run(
        Command::new(kckpt())
            .args(["snapshot", "-p", &p.pid().to_string()])
            .args(["--every", "100ms", "--keep", "1", "-o"])
            .arg(dir.path()),
        Duration::from_secs(60),
    );
    let _ = Command::new("ipcrm").args(["-s", &id]).status();
    assert_refused(
        "a refused snapshot",
        &out,
        Some(1),
        &["SysV semaphore undo list"],
    );
    assert_eq!(
        names(&dir),
        ["snapshot-000007.kckpt"],
        "nothing removed, nothing left"
    );
    assert_eq!(
        fs::read(dir.join("snapshot-000007.kckpt")).unwrap(),
        b"an older image"
    );
    assert!(p.exited().is_none(), "the process goes on");
}
