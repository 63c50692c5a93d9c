//! Process attributes kept by a dump and restore (issue 9, zdtm stopped*,
//! pdeath_sig, sched_policy00, sched_prio00): a process in group stop comes
//! back stopped by the same signal (its parent's `waitpid(WUNTRACED)` sees
//! it; `SIGCONT` resumes it); every thread keeps its parent-death signal,
//! scheduling policy (`SCHED_BATCH`, `SCHED_IDLE`, `SCHED_FIFO` as root)
//! and nice value, as root and as nobody; `SCHED_DEADLINE` is named at
//! dump; a nice value the restorer may not set
//! is refused by name, or with `KCKPT_FORCE=1` a warning.
//!
//! `tests/programs/attrs_tree.c` checks itself: `ok NAME` or `FAIL NAME`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const ATTRS_TREE: &str = env!("KCKPT_PROG_ATTRS_TREE");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Start `attrs_tree STOPSIG` through `prefix`; its pid and its child's
/// once the child is stopped.
fn start(prefix: &[&str], stopsig: i32, extra: &[&str]) -> (Proc, i32) {
    let mut cmd = command_as(prefix, ATTRS_TREE);
    cmd.arg(stopsig.to_string()).args(extra);
    // A group of its own, whose leader's parent (this test) is in the same
    // session: never an orphaned process group, where the kernel discards
    // SIGTSTP (a test run whose starting shell has exited would hang).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut p = Proc::spawn("attrs_tree", &mut cmd);
    let line = p.line(LINE_TIMEOUT);
    let child = line
        .strip_prefix("child ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| p.fail(&format!("unexpected line {line:?}")));
    assert_eq!(p.line(LINE_TIMEOUT), "ready");
    assert_eq!(state(child), Some('T'), "the child is not stopped");
    (p, child)
}

/// Dump the tree of `p` into `image` as `prefix` (killing it).
fn dump_it(prefix: &[&str], p: &mut Proc, image: &Path) {
    let out = dump_as(prefix, p.spawned_pid(), image);
    assert!(out.status.success(), "dump failed: {}", show(&out));
    let status = p.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "the root was not killed: {status}");
}

/// Let the restored tree check itself.
fn check(r: &mut Proc) {
    r.write_stdin("check\n");
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            failed.push(line);
        } else if let Some(name) = line.strip_prefix("ok ") {
            ok.push(name.to_owned());
        }
    }
    if !failed.is_empty() {
        r.fail(&format!("wrong state after the restore: {failed:?}"));
    }
    ok.sort();
    assert_eq!(ok, ["child", "root", "stopped"], "not every check ran");
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "the image ends like its root: {status}");
}

fn round_trip(prefix: &[&str], stopsig: i32, name: &str) {
    round_trip_with(prefix, stopsig, name, &[]);
}

fn round_trip_with(prefix: &[&str], stopsig: i32, name: &str, extra: &[&str]) {
    let dir = TestDir::new(name);
    // nobody writes the image there.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("attrs.kckpt");
    let (mut p, child) = start(prefix, stopsig, extra);
    dump_it(prefix, &mut p, &image);
    let mut r = Proc::spawn(
        "kckpt restore",
        command_as(prefix, kckpt()).arg("restore").arg(&image),
    );
    if prefix.is_empty() && stopsig == Signal::SIGSTOP as i32 {
        // Root: the child has its pid again, and stops untraced (`T`).
        let until = std::time::Instant::now() + LINE_TIMEOUT;
        while state(child) != Some('T') {
            assert!(
                std::time::Instant::now() < until,
                "the restored child is not stopped: {:?}",
                state(child)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    check(&mut r);
}

#[test]
fn a_child_stopped_by_sigstop_comes_back_stopped_with_its_attributes() {
    round_trip(&[], libc_sig(Signal::SIGSTOP), "attrs_stop");
}

#[test]
fn a_child_stopped_by_sigtstp_comes_back_stopped_by_sigtstp() {
    round_trip(&[], libc_sig(Signal::SIGTSTP), "attrs_tstp");
}

#[test]
fn a_real_time_policy_comes_back_for_root() {
    // The root runs SCHED_FIFO 1 (only a privileged user may).
    round_trip_with(&[], libc_sig(Signal::SIGSTOP), "attrs_rt", &["rt"]);
}

#[test]
fn attributes_come_back_for_nobody() {
    require_tool("setpriv");
    round_trip(&NOBODY, libc_sig(Signal::SIGSTOP), "attrs_nobody");
}

fn libc_sig(s: Signal) -> i32 {
    s as i32
}

/// `/proc/PID/stat` field 19 (nice).
fn nice_of(pid: i32) -> Option<i64> {
    let stat = String::from_utf8(read_proc(pid, "stat")?).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

#[test]
fn a_single_stopped_process_comes_back_stopped_with_its_nice_value() {
    let dir = TestDir::new("attrs_single");
    let image = dir.join("counter.kckpt");
    let mut p = Proc::spawn(
        "nice counter",
        Command::new("nice").args(["-n", "4", prog::COUNTER_PIE]),
    );
    p.wait_for("count 2", LINE_TIMEOUT, |l| parse_counter(l).0 >= 2);
    let pid = p.spawned_pid();
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    while state(pid) != Some('T') {
        std::thread::sleep(Duration::from_millis(10));
    }
    let last = parse_counter(&dump_and_kill(&mut p, &image)).0;
    let mut r = restore(&image);
    r.wait_restored(format!("{}\0", prog::COUNTER_PIE).as_bytes());
    let restored = r.pid();
    // Stopped untraced (the stub's tracer sent SIGSTOP as it detached).
    let until = std::time::Instant::now() + LINE_TIMEOUT;
    while state(restored) != Some('T') {
        assert!(
            std::time::Instant::now() < until,
            "the restored process is not stopped: {:?}",
            state(restored)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(nice_of(restored), Some(4), "nice value");
    assert!(
        r.next_line(Duration::from_millis(1500)).is_none(),
        "a stopped process printed"
    );
    // Stopped and no longer traced: it can be dumped again as it is.
    let again = dir.join("again.kckpt");
    let out = dump_raw(restored, &again, true);
    assert!(out.status.success(), "second dump: {}", show(&out));
    assert_eq!(state(restored), Some('T'), "left stopped");
    assert_eq!(
        info_json(&again)["kernel_state"]["stop_signal"],
        19,
        "the second image records the stop"
    );
    for target in [r.spawned_pid(), restored] {
        let _ = kill(Pid::from_raw(target), Signal::SIGCONT);
    }
    expect_counter_from(&mut r, last, 2);
    r.kill();
}

#[test]
fn a_lower_nice_value_than_the_restorer_may_set_is_refused_or_forced() {
    require_tool("setpriv");
    let dir = TestDir::new("attrs_nice");
    let image = dir.join("counter.kckpt");
    let mut p = Proc::spawn(
        "nice counter",
        Command::new("nice").args(["-n", "-3", prog::COUNTER_PIE]),
    );
    p.wait_for("count 2", LINE_TIMEOUT, |l| parse_counter(l).0 >= 2);
    let last = parse_counter(&dump_and_kill(&mut p, &image)).0;
    // Root without CAP_SYS_NICE (RLIMIT_NICE 0).
    let prefix = [
        "setpriv",
        "--bounding-set=-sys_nice",
        "--inh-caps=-sys_nice",
    ];
    let out = run(
        command_as(&prefix, kckpt()).arg("restore").arg(&image),
        EXIT_TIMEOUT,
    );
    assert_refused("restore without CAP_SYS_NICE", &out, None, &["nice"]);
    let mut r = Proc::spawn(
        "forced restore",
        command_as(&prefix, kckpt())
            .arg("restore")
            .arg(&image)
            .env("KCKPT_FORCE", "1"),
    );
    expect_counter_from(&mut r, last, 2);
    assert!(r.stderr().contains("nice"), "no warning: {}", r.stderr());
    r.kill();
}

#[test]
fn sched_deadline_is_named_at_dump_and_skipped_with_a_warning() {
    let chrt = require_tool("chrt");
    let dir = TestDir::new("attrs_deadline");
    let image = dir.join("deadline.kckpt");
    let mut p = Proc::spawn(
        "chrt -d sleep",
        Command::new(chrt).args([
            "-d",
            "--sched-runtime",
            "1000000",
            "--sched-deadline",
            "10000000",
            "--sched-period",
            "10000000",
            "0",
            "sleep",
            "100",
        ]),
    );
    let pid = p.spawned_pid();
    let until = std::time::Instant::now() + LINE_TIMEOUT;
    while read_proc(pid, "comm").as_deref() != Some(&b"sleep\n"[..]) {
        assert!(
            std::time::Instant::now() < until,
            "chrt did not start sleep"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = dump_raw(pid, &image, false);
    assert_refused("SCHED_DEADLINE", &out, None, &["SCHED_DEADLINE"]);
    assert!(p.exited().is_none(), "a refused dump killed the process");
    let out = dump_skip_unsupported(pid, &image);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SCHED_DEADLINE scheduling of thread"),
        "no warning: {}",
        show(&out)
    );
    p.kill();
}
