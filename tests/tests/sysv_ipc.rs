//! SysV semaphore sets and message queues (format 1.11): a process, or a
//! tree, that uses them in kckpt's own IPC namespace is dumped with them
//! and restored in a new IPC namespace with the same ids, keys, modes,
//! owners, semaphore values, messages (types, texts, order) and queue
//! size limits.
//!
//! `tests/programs/sysv_ipc.c` checks all of that itself before each
//! `tick N ns INODE` line (`BAD ...` and exit 1 otherwise): in mode
//! `single` a set whose semaphore 1 counts the ticks, a keyed queue with a
//! lowered `msg_qbytes` and three messages (one empty) and a private queue
//! with one; on SIGUSR1 it receives every message and checks each. In
//! mode `tree` a child sends its count through a queue and a semaphore to
//! its parent. The tests check from outside that the ticks carry on and
//! that the IPC namespace is a new one.
//!
//! Covered: a root restore, an unprivileged one with `--new-pid-ns`, a
//! tree, `kckpt info` (text and `--json`), and the refusal of a set that a
//! process outside the dump used last. (A process with a semaphore undo
//! list is refused: `refusals.rs`.) Each test removes its keyed objects
//! from the host namespace when it ends.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const SYSV_IPC: &str = env!("KCKPT_PROG_SYSV_IPC");

/// Removes the keyed set and queue of `key` and the queues of the ids
/// given from the test's (host) IPC namespace when dropped: the dump
/// kills the process but its SysV objects stay.
struct Remove(i32, Vec<i64>);

impl Drop for Remove {
    fn drop(&mut self) {
        let key = self.0.to_string();
        let mut args = vec!["-S".to_owned(), key.clone(), "-Q".to_owned(), key];
        for id in &self.1 {
            args.extend(["-q".to_owned(), id.to_string()]);
        }
        // ipcrm stops at the first object that is not there: one at a time.
        for pair in args.chunks(2) {
            let _ = Command::new("ipcrm")
                .args(pair)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn new_key() -> i32 {
    random_sysv_key()
}

/// The inode of the IPC namespace link `link`.
fn ns_inode(link: &str) -> u64 {
    ipc_ns_inode(Path::new(link))
}

/// `tick N ns INODE [child C]`: (N, INODE, C).
fn parse_tick(line: &str) -> Option<(u64, u64, Option<u64>)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        ["tick", n, "ns", ns] => Some((n.parse().ok()?, ns.parse().ok()?, None)),
        ["tick", n, "ns", ns, "child", c] => {
            Some((n.parse().ok()?, ns.parse().ok()?, Some(c.parse().ok()?)))
        }
        _ => None,
    }
}

/// Read `count` tick lines numbered on from `after` (when given); `extra`
/// other lines that may come in between (`received`) are returned.
fn ticks(
    p: &mut Proc,
    after: Option<u64>,
    count: u64,
    extra: &[&str],
) -> ((u64, u64, Option<u64>), Vec<String>) {
    let (mut prev, mut last, mut seen) = (after, None, Vec::new());
    let mut got = 0;
    while got < count {
        let line = p.line(LINE_TIMEOUT);
        if extra.contains(&line.as_str()) {
            seen.push(line);
            continue;
        }
        let Some(t) = parse_tick(&line) else {
            p.fail(&format!("expected a tick line, got {line:?}"))
        };
        if prev.is_some_and(|n| t.0 != n + 1) {
            p.fail(&format!("tick {} after tick {}", t.0, prev.unwrap_or(0)));
        }
        prev = Some(t.0);
        last = Some(t);
        got += 1;
    }
    (last.expect("count > 0"), seen)
}

/// The ids of the `ready ID...` line.
fn ready(p: &mut Proc, n: usize) -> Vec<i64> {
    let line = p.line(LINE_TIMEOUT);
    let ids: Vec<i64> = line
        .strip_prefix("ready ")
        .map(|r| {
            r.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if ids.len() != n {
        p.fail(&format!("expected `ready` and {n} ids, got {line:?}"));
    }
    ids
}

/// Start `single` through `prefix`, let it tick, dump it as root (killing
/// it): its command line, last tick and the objects' guard.
fn dump_single(prefix: &[&str], image: &Path) -> (Vec<u8>, u64, u64, Remove) {
    let key = new_key();
    let mut p = Proc::spawn(
        "sysv_ipc single",
        command_as(prefix, SYSV_IPC).args(["single", &key.to_string()]),
    );
    let ids = ready(&mut p, 3);
    let rm = Remove(key, vec![ids[2]]);
    let ((_, ns, _), _) = ticks(&mut p, None, 3, &[]);
    assert_eq!(
        ns,
        ns_inode("/proc/self/ns/ipc"),
        "runs in kckpt's IPC namespace"
    );
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let line = dump_and_kill(&mut p, image);
    let Some((n, ns, _)) = parse_tick(&line) else {
        p.fail(&format!(
            "the last line before the dump is not a tick: {line:?}"
        ))
    };
    (cmdline, n, ns, rm)
}

/// The restored `single` ticks on in a new IPC namespace, receives every
/// message on SIGUSR1 (checking each) and ticks on.
fn check_restored(r: &mut Proc, cmdline: &[u8], last: u64, old_ns: u64) {
    let ((n, ns, _), _) = ticks(r, Some(last), 1, &[]);
    if ns == old_ns || ns == ns_inode("/proc/self/ns/ipc") {
        r.fail(&format!(
            "not in a new IPC namespace: {ns} (before the dump {old_ns})"
        ));
    }
    r.wait_restored(cmdline);
    let ((n, _, _), _) = ticks(r, Some(n), 2, &[]);
    kill(Pid::from_raw(r.pid()), Signal::SIGUSR1).expect("SIGUSR1");
    let ((n, _, _), seen) = ticks(r, Some(n), 3, &["received"]);
    if seen != ["received"] {
        r.fail("no `received` line after SIGUSR1");
    }
    ticks(r, Some(n), 2, &[]);
}

#[test]
fn root_restores_semaphores_and_messages_in_a_new_ipc_namespace() {
    let dir = TestDir::new("sysv-ipc-root");
    let image = dir.join("single.kckpt");
    let (cmdline, last, ns, _rm) = dump_single(&[], &image);
    let mut r = restore(&image);
    check_restored(&mut r, &cmdline, last, ns);
}

#[test]
fn nobody_restores_semaphores_and_messages_with_new_pid_ns() {
    require_tool("setpriv");
    let dir = TestDir::new("sysv-ipc-nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let image = dir.join("single.kckpt");
    let (cmdline, last, ns, _rm) = dump_single(&NOBODY, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    let mut r = Proc::spawn(
        "kckpt restore --new-pid-ns (uid 65534)",
        kckpt_as(&NOBODY)
            .args(["restore", "--new-pid-ns"])
            .arg(&image),
    );
    check_restored(&mut r, &cmdline, last, ns);
}

#[test]
fn info_shows_the_sets_and_queues() {
    let dir = TestDir::new("sysv-ipc-info");
    let image = dir.join("single.kckpt");
    let (_, last, _, _rm) = dump_single(&[], &image);
    let out = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    assert!(out.status.success(), "kckpt info: {}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "1 semaphore set(s), 2 message queue(s)",
        &format!("values 5 {last} 32767"),
        "mode 620",
        "qbytes 4000: 3 message(s), 305 bytes",
        "qbytes 16384: 1 message(s), 7 bytes",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let info = info_json(&image);
    let queues = info["sysv_msg"].as_array().expect("a sysv_msg array");
    let keyed = queues
        .iter()
        .find(|q| q["qbytes"] == 4000)
        .unwrap_or_else(|| panic!("no queue with qbytes 4000: {info}"));
    let types: Vec<(i64, u64)> = keyed["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["mtype"].as_i64().unwrap_or(0),
                m["len"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        types,
        [(1, 5), (7, 0), (3, 300)],
        "the keyed queue's messages in order"
    );
    let sets = info["sysv_sem"].as_array().expect("a sysv_sem array");
    assert_eq!(sets.len(), 1, "{info}");
    assert_eq!(sets[0]["values"], serde_json::json!([5, last, 32767]));
    assert_eq!(sets[0]["mode"], "640");
}

#[test]
fn a_tree_passing_messages_and_counts_goes_on() {
    let dir = TestDir::new("sysv-ipc-tree");
    let image = dir.join("tree.kckpt");
    let key = new_key();
    let _rm = Remove(key, Vec::new());
    let mut p = Proc::start(SYSV_IPC, &["tree", &key.to_string()]);
    ready(&mut p, 2);
    let kids = descendants(p.pid());
    assert_eq!(kids.len(), 1, "one child: {kids:?}");
    ticks(&mut p, None, 3, &[]);
    let line = dump_and_kill(&mut p, &image);
    let Some((last, old_ns, Some(count))) = parse_tick(&line) else {
        p.fail(&format!(
            "the last line before the dump is not a tick: {line:?}"
        ))
    };
    assert!(
        all_gone(&kids, Duration::from_secs(10)),
        "the child outlived the dump"
    );
    let mut r = restore(&image);
    let ((n, ns, first), _) = ticks(&mut r, Some(last), 1, &[]);
    if ns == old_ns || ns == ns_inode("/proc/self/ns/ipc") {
        r.fail(&format!(
            "not in a new IPC namespace: {ns} (before the dump {old_ns})"
        ));
    }
    // The parent checks that the counts follow on; they carry on from
    // where they were.
    let ((_, _, later), _) = ticks(&mut r, Some(n), 5, &[]);
    assert_eq!(
        first,
        Some(count + 1),
        "the first message after the restore"
    );
    assert_eq!(later, Some(count + 6));
    for pid in descendants(r.spawned_pid()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[test]
fn a_set_used_last_by_a_process_outside_the_dump_is_refused() {
    let dir = TestDir::new("sysv-ipc-outside");
    let image = dir.join("single.kckpt");
    let key = new_key();
    let mut p = Proc::start(SYSV_IPC, &["single", &key.to_string()]);
    let ids = ready(&mut p, 3);
    let _rm = Remove(key, vec![ids[2]]);
    let mut outside = Proc::start(SYSV_IPC, &["touch", &key.to_string()]);
    let line = outside.line(LINE_TIMEOUT);
    assert_eq!(line, format!("touched {}", ids[0]), "{}", outside.stderr());
    let ((n, _, _), _) = ticks(&mut p, None, 2, &[]);
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "a set used outside the dump",
        &out,
        Some(1),
        &["SysV semaphore set"],
    );
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains(&format!(
            "also used by pid {} outside the dump",
            outside.pid()
        )),
        "{msg}"
    );
    assert!(!image.exists(), "no image after a refusal");
    ticks(&mut p, Some(n), 3, &[]);
}

#[test]
fn a_process_in_another_ipc_namespace_holding_objects_is_refused() {
    require_tool("unshare");
    let dir = TestDir::new("sysv-ipc-foreign");
    let image = dir.join("single.kckpt");
    let key = new_key();
    // `unshare` execs the program: the same pid, in an IPC namespace of
    // its own (its objects go with it).
    let mut p = Proc::spawn(
        "sysv_ipc single in a new IPC namespace",
        Command::new("unshare").args(["--ipc", SYSV_IPC, "single", &key.to_string()]),
    );
    ready(&mut p, 3);
    let ((n, ns, _), _) = ticks(&mut p, None, 2, &[]);
    assert_ne!(ns, ns_inode("/proc/self/ns/ipc"), "unshare --ipc made none");
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "SysV objects in another IPC namespace",
        &out,
        Some(1),
        &["another than kckpt's"],
    );
    assert!(!image.exists(), "no image after a refusal");
    ticks(&mut p, Some(n), 3, &[]);
}

/// A namespace whose `msgmax` and `msgmnb` were raised holds a 20000-byte
/// message in a queue of 40000 bytes; kckpt dumps it from inside that
/// namespace (`nsenter`), and the restore (in a new namespace, with the
/// kernel's defaults of 8192 and 16384) raises them to fit.
#[test]
fn large_messages_and_queue_limits_come_back() {
    require_tool("unshare");
    let nsenter = require_tool("nsenter");
    let dir = TestDir::new("sysv-ipc-big");
    let image = dir.join("big.kckpt");
    let key = new_key();
    let script = format!(
        "echo 65536 > /proc/sys/kernel/msgmax && echo 65536 > /proc/sys/kernel/msgmnb && exec {SYSV_IPC} big {key}"
    );
    let mut p = Proc::spawn(
        "sysv_ipc big in a new IPC namespace",
        Command::new("unshare").args(["--ipc", "sh", "-c", &script]),
    );
    ready(&mut p, 1);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    ticks(&mut p, None, 2, &[]);
    let out = run(
        Command::new(nsenter)
            .arg(format!("--ipc=/proc/{}/ns/ipc", p.pid()))
            .arg(kckpt())
            .args(["dump", "-p", &p.pid().to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "kckpt dump inside the namespace: {}",
        show(&out)
    );
    p.drain(Duration::from_secs(10));
    p.wait_exit(Duration::from_secs(10));
    let Some((last, _, _)) = p.last_seen().and_then(parse_tick) else {
        p.fail("the last line before the dump is not a tick")
    };
    let mut r = restore(&image);
    let ((n, _, _), _) = ticks(&mut r, Some(last), 2, &[]);
    r.wait_restored(&cmdline);
    kill(Pid::from_raw(r.pid()), Signal::SIGUSR1).expect("SIGUSR1");
    let (_, seen) = ticks(&mut r, Some(n), 3, &["received"]);
    if seen != ["received"] {
        r.fail("no `received` line after SIGUSR1");
    }
}
