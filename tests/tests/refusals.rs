//! The dump refusals of issue 3, one test per kind, each against a real
//! process holding the resource (`programs/holder.c`): a UDP socket, an
//! inotify instance with unread events, an io_uring instance, a ptrace relationship (both
//! sides), a seccomp filter with a user notification listener, a SysV
//! semaphore undo list (`semop` with `SEM_UNDO`). Each refusal is one
//! `kckpt: ` line with exit status 1 naming the descriptor or feature, no
//! image is left, and the target goes on running. For descriptors,
//! `--skip-unsupported` dumps with a warning and the restored process finds
//! `/dev/null` at that number.

mod common;

use std::fs;
use std::process::Command;

use common::*;

/// `holder MODE ARGS`, up to its ready line; fails loudly when the program
/// could not set the resource up.
fn holder(mode: &str, args: &[&str]) -> (Proc, String) {
    let mut all = vec![mode];
    all.extend_from_slice(args);
    let mut p = Proc::start(prog::HOLDER, &all);
    let ready = p.line(LINE_TIMEOUT);
    if !ready.starts_with("ready") {
        p.fail(&format!("holder {mode} did not get ready: {ready:?}"));
    }
    p.wait_for("tick 2", LINE_TIMEOUT, |l| l.starts_with("tick 2 "));
    (p, ready)
}

/// The number after `key` in a line.
fn number(line: &str, key: &str) -> i64 {
    let f: Vec<&str> = line.split_whitespace().collect();
    f.iter()
        .position(|w| *w == key)
        .and_then(|i| f.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key} in {line:?}"))
}

/// The tick number of a holder line (`tick N link L`).
fn tick(p: &Proc, line: &str) -> u64 {
    if !line.starts_with("tick ") {
        p.fail(&format!("not a tick line: {line:?}"));
    }
    number(line, "tick") as u64
}

/// Dump `pid` without options: it must be refused with exit status 1 and
/// one line naming `what`; no image (nor temporary file) is left. Returns
/// the message.
fn refused(dir: &TestDir, pid: i32, what: &str) -> String {
    let image = dir.join("refused.kckpt");
    let out = dump_raw(pid, &image, false);
    assert_refused(what, &out, Some(1), &[what]);
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        msg.starts_with(&format!("kckpt: cannot dump pid {pid}: ")),
        "{msg}"
    );
    assert!(!image.exists(), "a refused dump left an image");
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "a refused dump left files: {left:?}");
    msg
}

/// The target was released as it was: it goes on printing lines.
fn still_running(p: &mut Proc) {
    let a = p.line(LINE_TIMEOUT);
    let b = p.line(LINE_TIMEOUT);
    assert_ne!(a, b, "the target repeats itself");
    assert_ne!(
        state(p.pid()),
        Some('t'),
        "the target was left traced-stopped"
    );
    assert_ne!(state(p.pid()), Some('T'), "the target was left stopped");
}

/// The descriptor kinds: refused naming `fd N (what)`, then dumped with
/// `--skip-unsupported` (a warning) and restored with `/dev/null` at N.
fn fd_refused_then_skipped(mode: &str, what: &str) {
    let dir = TestDir::new(&format!("refuse-{mode}"));
    let (mut p, ready) = holder(mode, &[]);
    let fd = number(&ready, "fd");
    let named = format!("fd {fd} ({what}"); // what may be a prefix
    let link = |pid: i32| {
        fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let before = link(p.pid());

    let msg = refused(&dir, p.pid(), what);
    assert!(
        msg.contains(&named),
        "the refusal should name {named}: {msg}"
    );
    assert!(msg.contains("--skip-unsupported"), "{msg}");
    still_running(&mut p);
    assert_eq!(link(p.pid()), before, "the target's fd {fd} changed");

    let image = dir.join("skipped.kckpt");
    let out = dump_skip_unsupported(p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    let warn = String::from_utf8_lossy(&out.stderr);
    assert!(
        warn.lines().any(|l| l.starts_with("kckpt: warning: ")
            && l.contains(&named)
            && l.contains("/dev/null")),
        "--skip-unsupported should warn about {named}: {warn}"
    );
    p.drain(std::time::Duration::from_secs(10));
    let last = tick(&p, p.last_seen().unwrap_or(""));

    let mut r = restore(&image);
    let line = r.line(LINE_TIMEOUT);
    assert_eq!(tick(&r, &line), last + 1, "{line}");
    if !line.ends_with(" link /dev/null") {
        r.fail(&format!(
            "fd {fd} should be /dev/null after the restore: {line:?}"
        ));
    }
    assert_eq!(link(r.pid()), "/dev/null");
    let err = r.stderr();
    assert!(
        err.contains("kckpt: warning: ") && err.contains(&named) && err.contains("/dev/null"),
        "the restore should warn about {named}: {err}"
    );
}

#[test]
fn udp_socket_with_an_option_not_restored_is_refused_or_skipped_as_dev_null() {
    fd_refused_then_skipped("udp", "UDP socket 127.0.0.1:");
}

#[test]
fn udp_socket_with_corked_data_is_refused_or_skipped_as_dev_null() {
    // (A UDP socket shut down is restored since format 1.7.)
    fd_refused_then_skipped("udp_cork", "UDP socket 127.0.0.1:");
}

#[test]
fn unix_socket_with_an_option_not_restored_is_refused_or_skipped_as_dev_null() {
    fd_refused_then_skipped(
        "unix_unconn",
        "unix stream socket (not bound) with option SO_PRIORITY (not restored)",
    );
}

#[test]
fn inotify_with_unread_events_is_refused_or_skipped_as_dev_null() {
    fd_refused_then_skipped("inotify", "inotify with 32 bytes of unread events");
}

#[test]
fn io_uring_is_refused_or_skipped_as_dev_null() {
    let disabled = fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "0".to_owned());
    assert_eq!(
        disabled, "0",
        "io_uring is disabled on this machine (kernel.io_uring_disabled = {disabled}): \
         the io_uring refusal cannot be tested; set it to 0"
    );
    fd_refused_then_skipped("io_uring", "io_uring");
}

#[test]
fn ptrace_relationship_is_refused_on_both_sides() {
    let dir = TestDir::new("refuse-ptrace");
    let mut tracee = Proc::start(prog::COUNTER_PIE, &[]);
    tracee.line(LINE_TIMEOUT);
    let (mut tracer, _) = holder("tracer", &[&tracee.pid().to_string()]);
    let status = fs::read_to_string(format!("/proc/{}/status", tracee.pid())).unwrap();
    assert!(
        status.contains(&format!("TracerPid:\t{}\n", tracer.pid())),
        "the holder does not trace the counter:\n{status}"
    );

    // The tracer: it traces another process.
    let msg = refused(&dir, tracer.pid(), "ptrace");
    assert!(
        msg.contains(&format!("ptrace of pid {}", tracee.pid())),
        "the refusal should name the traced pid {}: {msg}",
        tracee.pid()
    );
    still_running(&mut tracer);

    // The tracee: someone else traces it (named, rather than EPERM).
    let msg = refused(&dir, tracee.pid(), "ptrace");
    assert!(
        msg.contains(&format!("traced by pid {} (holder)", tracer.pid())),
        "the refusal should name the tracer {}: {msg}",
        tracer.pid()
    );
    let a = parse_counter(&tracee.line(LINE_TIMEOUT)).0;
    let b = parse_counter(&tracee.line(LINE_TIMEOUT)).0;
    assert_eq!(b, a + 1, "the traced counter should go on counting");
    // --skip-unsupported cannot help: the dumper cannot trace it.
    let out = dump_skip_unsupported(tracee.pid(), &dir.join("skip.kckpt"));
    assert_refused(
        "traced, --skip-unsupported",
        &out,
        Some(1),
        &["traced by pid"],
    );
    still_running(&mut tracer);
}

/// Seccomp filters are saved (tests/seccomp.rs), but not one with a user
/// notification listener: its supervisor is not part of the dump.
#[test]
fn a_seccomp_filter_with_a_user_notification_listener_is_refused() {
    let dir = TestDir::new("refuse-seccomp");
    let (mut p, _) = holder("seccomp_notif", &[]);
    let msg = refused(
        &dir,
        p.pid(),
        "seccomp filter with a user notification listener",
    );
    assert!(
        msg.contains("seccomp filter with a user notification listener"),
        "{msg}"
    );
    still_running(&mut p);
}

/// A process in a mount namespace of its own (made with `unshare`, as
/// root): its mounts would not be there at restore, so it is refused by
/// name and left running.
#[test]
fn a_mount_namespace_of_its_own_is_refused() {
    let dir = TestDir::new("refuse-mntns");
    let (mut p, _) = holder("mntns", &[]);
    let msg = refused(&dir, p.pid(), "mount namespace");
    assert!(msg.contains("mount namespace of its own"), "{msg}");
    still_running(&mut p);
}

/// Removes a SysV object (`ipcrm -s|-q ID`) when dropped.
struct Ipc(&'static str, i64);

impl Drop for Ipc {
    fn drop(&mut self) {
        let _ = Command::new("ipcrm")
            .args([self.0, &self.1.to_string()])
            .status();
    }
}

/// `holder MODE` holds a SysV object (removed with `ipcrm FLAG ID`): the
/// dump is refused naming `what` and `named ID`, the target runs on.
fn sysv_refused(mode: &str, flag: &'static str, what: &str) -> (String, i32) {
    require_tool("ipcrm");
    let dir = TestDir::new(&format!("refuse-{mode}"));
    let (mut p, ready) = holder(mode, &[]);
    let id = number(&ready, "id");
    let _rm = Ipc(flag, id);
    let msg = refused(&dir, p.pid(), what);
    still_running(&mut p);
    (msg, p.pid())
}

/// `SEM_UNDO` adjustments are invisible: a process with an undo list is
/// refused while semaphore sets exist (sets and queues are saved, format
/// 1.11: `sysv_ipc.rs`).
#[test]
fn sysv_semaphore_undo_list_is_refused() {
    let (msg, pid) = sysv_refused("sem_undo", "-s", "SysV semaphore undo list");
    assert!(
        msg.contains(&format!("SysV semaphore undo list of pid {pid} ")),
        "the refusal should name the process: {msg}"
    );
}

/// A program its user may execute but not read (mode 0111, as zdtm's
/// dumpable02 runs itself): a restore by that user could not map it
/// again, so the dump (even by root) refuses it by name, and the process
/// goes on.
#[test]
fn execute_only_program_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    require_tool("setpriv");
    let dir = TestDir::new("exec-only");
    let bin_dir = TestDir::new("exec-only-bin");
    fs::set_permissions(bin_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let program = bin_dir.join("counter");
    fs::copy(prog::COUNTER_PIE, &program).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o111)).unwrap();
    let mut p = Proc::spawn("counter as nobody", &mut command_as(&NOBODY, &program));
    p.line(LINE_TIMEOUT);
    let msg = refused(&dir, p.pid(), "not readable");
    assert!(
        msg.contains("mode 0111") && msg.contains("uid 65534"),
        "{msg}"
    );
    still_running(&mut p);
}

/// A socketpair made by a child that exited (sharing the descriptor
/// table, as zdtm's sock_peercred does): its peer credentials name a
/// process outside the dump, which the restore cannot give back. Refused
/// naming `SO_PEERCRED`; with `--skip-unsupported` a warning and the pair
/// is restored (with the restorer's credentials).
#[test]
fn unix_socket_whose_peer_credentials_name_an_exited_process_is_refused_or_warned() {
    let dir = TestDir::new("refuse-peercred");
    let (mut p, ready) = holder("peercred", &[]);
    let fd = number(&ready, "fd");
    let named = format!("fd {fd} (unix socket with peer credentials (SO_PEERCRED) pid ");
    let msg = refused(&dir, p.pid(), "SO_PEERCRED");
    assert!(
        msg.contains(&named),
        "the refusal should name {named}: {msg}"
    );
    assert!(msg.contains("a process outside the dump"), "{msg}");
    still_running(&mut p);

    let image = dir.join("skipped.kckpt");
    let out = dump_skip_unsupported(p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    let warn = String::from_utf8_lossy(&out.stderr);
    assert!(
        warn.lines()
            .any(|l| l.starts_with("kckpt: warning: ") && l.contains(&named)),
        "--skip-unsupported should warn about {named}: {warn}"
    );
    p.drain(std::time::Duration::from_secs(10));
    let last = tick(&p, p.last_seen().unwrap_or(""));
    let mut r = restore(&image);
    let line = r.line(LINE_TIMEOUT);
    assert_eq!(tick(&r, &line), last + 1, "{line}");
    assert!(
        line.contains(" link socket:["),
        "fd {fd} should be a socket after the restore: {line:?}"
    );
}
