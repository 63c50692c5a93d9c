//! SysV shared memory segments (`shmget`/`shmat`): a process with attached
//! segments in kckpt's own IPC namespace is dumped with them, and restored
//! in a new IPC namespace with the same ids, keys, sizes, modes, owners,
//! contents, attach addresses and protections, and the `IPC_RMID` mark of
//! a segment removed while attached.
//!
//! `tests/programs/sysv_shm.c` checks all of that itself before each
//! `tick N ns INODE` line (`BAD ...` and exit 1 otherwise): in mode
//! `single` a keyed segment attached read-write and read-only plus a
//! removed private one, with a counter that must go up by exactly one per
//! tick (so the restored memory is the segment's); on SIGUSR1 it detaches
//! the read-only attach and checks `shm_nattch`. The tests check from
//! outside that the ticks carry on, that the IPC namespace (its inode on
//! each tick) is a new one and that the `/SYSV` mappings are the same.
//!
//! Covered: a root restore, an unprivileged one with `--new-pid-ns` (and
//! the refusal of a plain unprivileged restore), the refusal of a dump
//! whose segment is attached by a process outside it, a process tree
//! sharing a segment, and `kckpt info` (text and `--json`). Each test
//! removes its keyed segment from the host namespace when it ends (a
//! [`RemoveKey`] guard).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const SYSV_SHM: &str = env!("KCKPT_PROG_SYSV_SHM");

/// Removes the segment of `key` from the test's (host) IPC namespace
/// (`ipcrm -M KEY`) when dropped, the test failed or not: the dump kills
/// the process but its keyed segments stay. A restored process's segments
/// are in a namespace of its own, gone with it.
struct RemoveKey(i32);

impl Drop for RemoveKey {
    fn drop(&mut self) {
        let _ = Command::new("ipcrm")
            .args(["-M", &self.0.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// SIGKILLs the given processes when dropped (`Proc` kills only the root
/// of a tree).
struct KillAll(Vec<i32>);

impl Drop for KillAll {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A random SysV key (unlikely to be taken: the program creates its
/// segment with `IPC_EXCL` and says `FAILED` if it is), and its
/// [`RemoveKey`] guard.
fn new_key() -> (i32, RemoveKey) {
    let key = random_sysv_key();
    (key, RemoveKey(key))
}

/// The page size (the program's segment sizes are in pages).
fn page_size() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    let size = sysconf(SysconfVar::PAGE_SIZE).expect("sysconf");
    size.expect("a page size") as u64
}

/// The inode of an IPC namespace link (`ipc:[INODE]`).
fn ns_inode(link: &Path) -> u64 {
    ipc_ns_inode(link)
}

/// The IPC namespace of the test (and of the `kckpt` it runs).
fn host_ipc_ns() -> u64 {
    ns_inode(Path::new("/proc/self/ns/ipc"))
}

/// A tick line: `tick N ns INODE` (`single`), `tick N ns INODE child C`
/// (`tree`).
#[derive(Debug, Clone, Copy)]
struct Tick {
    n: u64,
    ns: u64,
    child: Option<u64>,
}

fn parse_tick(line: &str) -> Option<Tick> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        ["tick", n, "ns", ns] => Some(Tick {
            n: n.parse().ok()?,
            ns: ns.parse().ok()?,
            child: None,
        }),
        ["tick", n, "ns", ns, "child", c] => Some(Tick {
            n: n.parse().ok()?,
            ns: ns.parse().ok()?,
            child: Some(c.parse().ok()?),
        }),
        _ => None,
    }
}

/// Read `count` tick lines, numbered on from `after` when given, and
/// return the last. Anything else (a `BAD` line) fails the test.
fn ticks(p: &mut Proc, after: Option<u64>, count: u64) -> Tick {
    let mut prev = after;
    let mut last = None;
    for _ in 0..count {
        let line = p.line(LINE_TIMEOUT);
        let Some(t) = parse_tick(&line) else {
            p.fail(&format!("expected a tick line, got {line:?}"))
        };
        if prev.is_some_and(|n| t.n != n + 1) {
            p.fail(&format!("tick {} after tick {}", t.n, prev.unwrap_or(0)));
        }
        prev = Some(t.n);
        last = Some(t);
    }
    last.expect("count > 0")
}

/// The ids of a `ready ID...` line.
fn ready(p: &mut Proc) -> Vec<i64> {
    let line = p.line(LINE_TIMEOUT);
    let ids: Option<Vec<i64>> = line.strip_prefix("ready ").map(|r| {
        r.split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    });
    match ids {
        Some(ids) if !ids.is_empty() => ids,
        _ => p.fail(&format!("expected `ready ID...`, got {line:?}")),
    }
}

/// `sysv_shm single KEY OUTSIDE` run through `prefix`, up to its ready
/// line: the process, the keyed and the private segment's ids.
fn start_single(prefix: &[&str], key: i32, outside: u32) -> (Proc, i64, i64) {
    let mut p = Proc::spawn(
        "sysv_shm single",
        command_as(prefix, SYSV_SHM).args(["single", &key.to_string(), &outside.to_string()]),
    );
    let ids = ready(&mut p);
    if ids.len() != 2 {
        p.fail(&format!("two ids expected: {ids:?}"));
    }
    (p, ids[0], ids[1])
}

/// The SysV attachments of `pid` as `/proc/PID/maps` shows them: address
/// range, permissions, inode (the shmid) and name (`/SYSV<key>`).
fn sysv_maps(pid: i32) -> Vec<String> {
    maps(pid)
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 6 && f[5].starts_with("/SYSV"))
        .map(|f| format!("{} {} {} {}", f[0], f[1], f[4], f[5]))
        .collect()
}

/// What a `single` process looked like when it was dumped.
struct Dumped {
    cmdline: Vec<u8>,
    maps: Vec<String>,
    last: Tick,
    keyed: i64,
    private: i64,
}

/// Start `single` (through `prefix`), let it tick in the host's IPC
/// namespace, dump it as root (killing it).
fn dump_single(prefix: &[&str], key: i32, image: &Path) -> Dumped {
    let (mut p, keyed, private) = start_single(prefix, key, 0);
    let t = ticks(&mut p, None, 3);
    assert_eq!(
        t.ns,
        host_ipc_ns(),
        "the program runs in kckpt's IPC namespace"
    );
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let maps = sysv_maps(p.pid());
    assert_eq!(maps.len(), 3, "three attaches: {maps:?}");
    let line = dump_and_kill(&mut p, image);
    let Some(last) = parse_tick(&line) else {
        p.fail(&format!(
            "the last line before the dump is not a tick: {line:?}"
        ))
    };
    Dumped {
        cmdline,
        maps,
        last,
        keyed,
        private,
    }
}

/// The restored `single` carries on: the next tick, in a new IPC
/// namespace, the same SysV mappings, a few more ticks; then SIGUSR1
/// detaches the read-only attach, which the process checks.
fn check_restored(r: &mut Proc, d: &Dumped) {
    let first = ticks(r, Some(d.last.n), 1);
    if first.ns == d.last.ns || first.ns == host_ipc_ns() {
        r.fail(&format!(
            "not in a new IPC namespace: {} (before the dump {}, the test's {})",
            first.ns,
            d.last.ns,
            host_ipc_ns()
        ));
    }
    r.wait_restored(&d.cmdline);
    let pid = r.pid();
    assert_eq!(
        ns_inode(Path::new(&format!("/proc/{pid}/ns/ipc"))),
        first.ns
    );
    assert_eq!(
        sysv_maps(pid),
        d.maps,
        "the SysV attaches after the restore"
    );
    let t = ticks(r, Some(first.n), 3);

    kill(Pid::from_raw(pid), Signal::SIGUSR1).expect("SIGUSR1");
    let mut n = t.n;
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "detached" {
            break;
        }
        match parse_tick(&line) {
            Some(t) if t.n == n + 1 => n = t.n,
            _ => r.fail(&format!("expected `detached`, got {line:?}")),
        }
    }
    ticks(r, Some(n), 3);
    let left: Vec<String> = d
        .maps
        .iter()
        .filter(|m| !m.contains(" r--s "))
        .cloned()
        .collect();
    assert_eq!(left.len(), 2, "one read-only attach: {:?}", d.maps);
    assert_eq!(sysv_maps(pid), left, "the attaches after the shmdt");
}

#[test]
fn root_restores_segments_in_a_new_ipc_namespace() {
    let dir = TestDir::new("sysv-root");
    let image = dir.join("single.kckpt");
    let (key, _rm) = new_key();
    let d = dump_single(&[], key, &image);
    let mut r = restore(&image);
    check_restored(&mut r, &d);
}

#[test]
fn nobody_restores_segments_with_new_pid_ns() {
    require_tool("setpriv");
    let dir = TestDir::new("sysv-nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let image = dir.join("single.kckpt");
    let (key, _rm) = new_key();
    // The process and its segments are nobody's; root dumps it.
    let d = dump_single(&NOBODY, key, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    let mut r = Proc::spawn(
        "kckpt restore --new-pid-ns (uid 65534)",
        kckpt_as(&NOBODY)
            .args(["restore", "--new-pid-ns"])
            .arg(&image),
    );
    check_restored(&mut r, &d);
}

#[test]
fn nobody_restoring_segments_without_new_pid_ns_is_refused() {
    require_tool("setpriv");
    let dir = TestDir::new("sysv-nobody-plain");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let image = dir.join("single.kckpt");
    let (key, _rm) = new_key();
    dump_single(&NOBODY, key, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    // A restore that wrongly goes ahead runs until this timeout.
    let out = run(
        kckpt_as(&NOBODY).arg("restore").arg(&image),
        Duration::from_secs(20),
    );
    assert_refused(
        "plain restore of SysV segments by nobody",
        &out,
        None,
        &["SysV IPC objects"],
    );
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("--new-pid-ns"), "names --new-pid-ns: {msg}");
}

#[test]
fn a_segment_attached_outside_the_dump_is_refused() {
    let dir = TestDir::new("sysv-outside");
    let image = dir.join("single.kckpt");
    let (key, _rm) = new_key();
    // `single KEY 1` expects one attachment more than its own.
    let (mut p, keyed, _) = start_single(&[], key, 1);
    let mut outside = Proc::start(SYSV_SHM, &["attach", &key.to_string()]);
    let line = outside.line(LINE_TIMEOUT);
    assert_eq!(line, format!("attached {keyed}"), "{}", outside.stderr());
    let t = ticks(&mut p, None, 2);
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "a segment attached outside the dump",
        &out,
        Some(1),
        &["SysV shared memory segment"],
    );
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("outside the dump"), "{msg}");
    assert!(!image.exists(), "no image after a refusal");
    // Untouched: it goes on counting in its segments and checking them.
    ticks(&mut p, Some(t.n), 3);
}

#[test]
fn a_tree_sharing_a_segment_shares_it_again() {
    let dir = TestDir::new("sysv-tree");
    let image = dir.join("tree.kckpt");
    let (key, _rm) = new_key();
    let mut p = Proc::start(SYSV_SHM, &["tree", &key.to_string()]);
    ready(&mut p);
    let kids = descendants(p.pid());
    let _kill = KillAll(kids.clone());
    assert_eq!(kids.len(), 1, "one child: {kids:?}");
    ticks(&mut p, None, 3);
    let line = dump_and_kill(&mut p, &image);
    let Some(last) = parse_tick(&line) else {
        p.fail(&format!(
            "the last line before the dump is not a tick: {line:?}"
        ))
    };
    assert!(
        all_gone(&kids, Duration::from_secs(10)),
        "the child outlived the dump"
    );
    // The root's own image, without the tree's pipe data, still carries
    // the segment's content with its checksums.
    let root = dir.join("root.kckpt");
    let out = run(
        Command::new(kckpt())
            .args(["extract", "--pid", &p.pid().to_string()])
            .arg(&image)
            .arg(&root),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "kckpt extract: {}", show(&out));
    let out = run(
        Command::new(kckpt()).args(["info", "--verify"]).arg(&root),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "kckpt info --verify: {}", show(&out));

    let mut r = restore(&image);
    let first = ticks(&mut r, Some(last.n), 1);
    let _kill_restored = KillAll(descendants(r.spawned_pid()));
    if first.ns == last.ns || first.ns == host_ipc_ns() {
        r.fail(&format!("not in a new IPC namespace: {first:?}, {last:?}"));
    }
    // Each process checks that the other counts (and the parent that
    // the segment has its 3 attaches); the parent shows the child's count.
    let later = ticks(&mut r, Some(first.n), 10);
    let (before, after) = (first.child.unwrap_or(0), later.child.unwrap_or(0));
    assert!(
        before >= last.child.unwrap_or(0) && after > before,
        "the child's counter: {last:?}, then {first:?}, then {later:?}"
    );
}

#[test]
fn info_lists_the_segments() {
    let dir = TestDir::new("sysv-info");
    let image = dir.join("single.kckpt");
    let (key, _rm) = new_key();
    let d = dump_single(&[], key, &image);
    let page = page_size();

    let out = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    assert!(out.status.success(), "kckpt info: {}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text
        .find("SysV IPC")
        .unwrap_or_else(|| panic!("no `SysV IPC` in:\n{text}"));
    let after = &text[at..];
    let words: Vec<&str> = after
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for id in [d.keyed, d.private] {
        assert!(
            words.contains(&id.to_string().as_str()),
            "segment {id} not listed after `SysV IPC`:\n{text}"
        );
    }
    let key_forms = [
        key.to_string(),
        format!("{key:x}"),
        format!("{key:#x}"),
        format!("{key:08x}"),
    ];
    assert!(
        key_forms.iter().any(|k| words.contains(&k.as_str())),
        "key {key:#x} not listed:\n{text}"
    );

    let info = info_json(&image);
    let segments = info["sysv_shm"]
        .as_array()
        .unwrap_or_else(|| panic!("no `sysv_shm` array: {info}"));
    assert_eq!(segments.len(), 2, "{segments:?}");
    let find = |id: i64| {
        segments
            .iter()
            .find(|s| s["id"].as_i64() == Some(id))
            .unwrap_or_else(|| panic!("no segment {id}: {segments:?}"))
    };
    // (id, key, size, mode & 0777, removed)
    let want = [
        (d.keyed, i64::from(key), 5 * page, 0o600, false),
        (d.private, 0, 3 * page, 0o640, true),
    ];
    for (id, key, size, mode, removed) in want {
        let s = find(id);
        assert_eq!(s["key"].as_i64(), Some(key), "key: {s}");
        assert_eq!(s["size"].as_u64(), Some(size), "size: {s}");
        // The permission bits in octal, as for saved files.
        let got = s["mode"]
            .as_str()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or_else(|| panic!("mode: {s}"));
        assert_eq!(got, mode, "mode: {s}");
        assert_eq!(s["removed"].as_bool(), Some(removed), "removed: {s}");
    }
}
