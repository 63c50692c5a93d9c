//! Issue 8: deleted files and directories the process holds ("ghosts"),
//! its deleted working directory, its own procfs files, file locks, a
//! read-only shared mapping that may become writable, a small shared file
//! that vanished before the restore, and the `--ghost-limit` refusal
//! (`tests/programs/ghosts.c` checks everything from inside after the
//! restore).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const GHOSTS: &str = env!("KCKPT_PROG_GHOSTS");

/// Start `ghosts all DIR` (as `prefix`), dump it (killing it), restore
/// it, check it from inside and from outside.
fn all_kinds(prefix: &[&str], name: &str) {
    let dir = TestDir::new(name);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let work = dir.join("work");
    fs::create_dir(&work).unwrap();
    fs::set_permissions(&work, fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("ghosts.kckpt");
    let mut p = Proc::spawn(
        "ghosts all",
        command_as(prefix, GHOSTS).args(["all", work.to_str().unwrap()]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p.self_check();
    let out = dump_as(prefix, p.pid(), &image);
    assert!(out.status.success(), "kckpt dump: {}", show(&out));
    assert!(
        dump_warnings(&out).is_empty(),
        "no warning expected: {}",
        show(&out)
    );
    p.drain(Duration::from_secs(10));
    let _ = p.wait_exit(Duration::from_secs(10));

    let info = info_json(&image);
    let saved = info["files"]["saved_files"]
        .as_array()
        .expect("saved_files");
    let data = saved
        .iter()
        .find(|g| g["path"].as_str().is_some_and(|p| p.ends_with("/data.bin")))
        .expect("data.bin saved");
    assert_eq!(data["size"], 2 << 20, "{data}");
    // The holes are not stored: 8 KiB + 4 KiB of data.
    assert!(data["stored_bytes"].as_u64().unwrap() <= 64 << 10, "{data}");
    assert_eq!(info["files"]["locks"].as_array().unwrap().len(), 3);

    let mut r = Proc::spawn("restore", kckpt_as(prefix).arg("restore").arg(&image));
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    r.self_check();
    // The locks are real: another open file description cannot take them.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(work.join("flock"))
        .unwrap();
    let taken = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock);
    assert!(taken.is_err(), "the restored flock is not held");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(work.join("posix"))
        .unwrap();
    let fl = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 12,
        l_len: 1,
        l_pid: 0,
    };
    let r2 = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_OFD_SETLK(&fl));
    assert!(r2.is_err(), "the restored POSIX lock is not held");
    // A second restore of the same image works too (nothing it needs was
    // consumed by the first).
    r.kill();
    let mut again = Proc::spawn("restore again", kckpt_as(prefix).arg("restore").arg(&image));
    again.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    again.self_check();
}

#[test]
fn deleted_files_directories_cwd_procfs_locks_and_mappings_come_back() {
    all_kinds(&[], "ghosts-all");
}

#[test]
fn an_unprivileged_user_restores_its_deleted_files() {
    require_tool("setpriv");
    all_kinds(&NOBODY, "ghosts-nobody");
}

#[test]
fn a_deleted_file_over_the_limit_is_refused_before_the_process_is_touched() {
    let dir = TestDir::new("ghosts-big");
    let image = dir.join("big.kckpt");
    let work = dir.path().to_str().unwrap().to_owned();
    let size = (3u64 << 20).to_string();
    let mut p = Proc::start(GHOSTS, &["big", &work, &size]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let out = dump_raw(p.pid(), &image, false);
    assert_refused("big deleted file", &out, Some(1), &["ghost-limit"]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("fd 3 (") && msg.contains("/big") && msg.contains("3.0 MiB"),
        "{msg}"
    );
    assert!(!image.exists());
    // Still running.
    p.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));

    // With a larger limit it is saved and restored.
    let out = run(
        Command::new(kckpt())
            .args([
                "dump",
                "--ghost-limit",
                "4M",
                "-p",
                &p.pid().to_string(),
                "-o",
            ])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    p.drain(Duration::from_secs(10));
    let mut r = restore(&image);
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    let st = fs::metadata(format!("/proc/{}/fd/3", r.pid())).unwrap();
    assert_eq!(st.len(), 3 << 20);
    let content = fs::read(format!("/proc/{}/fd/3", r.pid())).unwrap();
    assert!(content.iter().all(|&b| b == b'x'));
}

/// A Java virtual machine maps `/tmp/hsperfdata_USER/PID` (32 KiB) shared
/// and deletes it when it exits: its image restores again and again, the
/// file re-created when missing.
#[test]
fn a_java_process_restores_more_than_once() {
    let java = require_tool("java");
    let javac = require_tool("javac");
    let dir = TestDir::new("ghosts-java");
    fs::write(
        dir.join("Counter.java"),
        "public class Counter { public static void main(String[] a) throws Exception {\n\
         for (long i = 0; i < 100000; i++) { System.out.println(\"n \" + i); Thread.sleep(100); } } }\n",
    )
    .unwrap();
    let out = run(
        Command::new(&javac)
            .arg("Counter.java")
            .current_dir(dir.path()),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "javac: {}", show(&out));
    let image = dir.join("java.kckpt");
    let cp = dir.path().to_str().unwrap().to_owned();
    let mut p = Proc::spawn(
        "java Counter",
        Command::new(&java).args(["-Xint", "-XX:+UseSerialGC", "-cp", &cp, "Counter"]),
    );
    p.wait_for("n 3", Duration::from_secs(60), |l| l == "n 3");
    let perf = format!("/tmp/hsperfdata_{}/{}", whoami(), p.pid());
    assert!(
        maps(p.pid()).iter().any(|l| l.ends_with(&perf)),
        "the JVM does not map {perf}"
    );
    let last = dump_and_kill(&mut p, &image);
    let n: u64 = last.trim_start_matches("n ").parse().unwrap();
    for round in 0..3 {
        let mut r = restore(&image);
        let line = r.line(Duration::from_secs(30));
        assert_eq!(line, format!("n {}", n + 1), "round {round}");
        r.wait_for("two more lines", LINE_TIMEOUT, |l| {
            l == format!("n {}", n + 3)
        });
        if round > 0 {
            assert!(
                r.stderr().contains("re-created"),
                "round {round}: {}",
                r.stderr()
            );
        }
        // SIGTERM: the JVM exits normally and deletes its file.
        kill(Pid::from_raw(r.pid()), Signal::SIGTERM).unwrap();
        r.drain(Duration::from_secs(30));
        let _ = r.wait_exit(Duration::from_secs(30));
        assert!(
            !std::path::Path::new(&perf).exists(),
            "round {round}: the JVM left {perf}"
        );
    }
}

/// The user name of this process (as the JVM names its directory).
fn whoami() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[test]
fn a_procfs_file_of_a_process_outside_the_dump_is_opened_again_while_it_lives() {
    // Format 1.9: /proc/1/status (fd 4, next to a read lease on fd 3)
    // names pid 1 and its start time; the restore opens it again.
    let dir = TestDir::new("ghosts-lease");
    let image = dir.join("lease.kckpt");
    let work = dir.path().to_str().unwrap().to_owned();
    let mut p = Proc::start(GHOSTS, &["lease", &work]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let out = dump(p.pid(), &image, false);
    assert!(out.status.success(), "dump: {}", show(&out));
    p.wait_exit(LINE_TIMEOUT);
    let info = info_json(&image);
    let fd4 = info["files"]["fds"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["fd"] == 4)
        .cloned()
        .unwrap_or_default();
    assert_eq!(fd4["path"], "/proc/1/status", "{fd4}");
    assert_eq!(fd4["procfs_of"]["whose"], "outside", "{fd4}");
    assert_eq!(fd4["procfs_of"]["pid"], 1, "{fd4}");
    let text = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("of pid 1 outside the dump"),
        "{}",
        show(&text)
    );
    let mut r = restore(&image);
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    let link = fs::read_link(format!("/proc/{}/fd/4", r.pid())).unwrap();
    assert_eq!(link.to_str(), Some("/proc/1/status"));
}

#[test]
fn a_procfs_file_of_a_process_that_exited_since_the_dump_refuses_the_restore() {
    let dir = TestDir::new("ghosts-procfs-gone");
    let image = dir.join("gone.kckpt");
    let mut outside = Command::new("sleep").arg("600").spawn().unwrap();
    let script = format!(
        "import os,time\nfd=os.open('/proc/{}/status',os.O_RDONLY)\nprint('ready',flush=True)\ntime.sleep(600)",
        outside.id()
    );
    let mut p = Proc::spawn("python3", Command::new("python3").args(["-c", &script]));
    assert_eq!(p.line(LINE_TIMEOUT), "ready", "{}", p.stderr());
    let out = dump(p.pid(), &image, false);
    assert!(out.status.success(), "dump: {}", show(&out));
    p.wait_exit(LINE_TIMEOUT);
    outside.kill().unwrap();
    outside.wait().unwrap();
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        DUMP_TIMEOUT,
    );
    assert_refused(
        "a procfs file of a process that exited",
        &out,
        None,
        &["procfs file of process", "not the process it was at dump"],
    );
}

#[test]
fn a_shared_file_that_vanished_is_recreated_at_each_restore() {
    let dir = TestDir::new("ghosts-vanish");
    let image = dir.join("vanish.kckpt");
    let work = dir.path().to_str().unwrap().to_owned();
    let perf = dir.join("perfdata");
    let mut p = Proc::start(GHOSTS, &["vanish", &work]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p.wait_for("tick 3", LINE_TIMEOUT, |l| l == "tick 3");
    dump_kills(&mut p, &image);
    let saved = fs::read(&perf).unwrap();
    for round in 0..2 {
        // The program deletes its file when it exits (a JVM does).
        fs::remove_file(&perf).unwrap();
        let mut r = restore(&image);
        r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
        r.self_check();
        let warning = r.stderr();
        assert!(
            warning.contains("re-created") && warning.contains("perfdata"),
            "round {round}: a warning names the re-created file: {warning:?}"
        );
        let now = fs::read(&perf).unwrap();
        assert_eq!(now.len(), 32768);
        assert_eq!(&now[..4], b"perf");
        assert_eq!(&now[..8], &saved[..8]);
        r.kill();
    }
}

/// A parent and its child, each with its own open file description of one
/// deleted file (opened twice before the unlink; the parent keeps one,
/// the child the other, at another offset): format 1.9 restores both in
/// the parent, one file with both descriptions, and hands the child its
/// own (`ADOPTED` slot). After the restore the child writes through its
/// description at its offset; the parent sees the byte through its own.
#[test]
fn a_deleted_file_opened_separately_by_parent_and_child_is_one_file_again() {
    const SCRIPT: &str = r#"
import os, sys
path = sys.argv[1]
a = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
b = os.open(path, os.O_RDWR)
os.write(a, b"hello")
os.unlink(path)
os.lseek(b, 2, os.SEEK_SET)
go_r, go_w = os.pipe()
up_r, up_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(a)
    os.write(up_w, b"r")
    os.read(go_r, 1)
    os.write(b, b"X")
    os._exit(0 if os.lseek(b, 0, os.SEEK_CUR) == 3 else 1)
os.close(b)
os.read(up_r, 1)
print("ready", flush=True)
sys.stdin.readline()
os.write(go_w, b"g")
_, status = os.waitpid(pid, 0)
got = os.pread(a, 16, 0)
at = os.lseek(a, 0, os.SEEK_CUR)
if status == 0 and got == b"heXlo" and at == 5:
    print("ok", flush=True)
else:
    print("FAIL", status, got, at, flush=True)
"#;
    let dir = TestDir::new("ghost_two_opens");
    let image = dir.join("tree.kckpt");
    let file = dir.join("data");
    let mut p = Proc::spawn(
        "python3",
        Command::new("python3").args(["-c", SCRIPT]).arg(&file),
    );
    assert_eq!(p.line(LINE_TIMEOUT), "ready", "{}", p.stderr());
    let out = dump(p.pid(), &image, false);
    assert!(out.status.success(), "dump: {}", show(&out));
    p.wait_exit(LINE_TIMEOUT);
    let adopted = tree_slots(&info_json(&image), "adopted");
    assert_eq!(adopted.len(), 1, "the child's description: {adopted:?}");
    assert!(!file.exists(), "the file stays deleted");
    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "ok", "{}", r.stderr());
}
