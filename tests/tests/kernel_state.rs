//! Per-process and per-thread kernel state survives a checkpoint
//! (`tests/programs/kstate.c`): child subreaper, THP disable,
//! `oom_score_adj`, `loginuid`, membarrier registrations, an aio context
//! with its head and tail (and it still works: one more request moves the
//! tail, `io_getevents` reads the events), every thread's robust futex
//! list — restored by root and by an unprivileged user, and what an
//! unprivileged user cannot set (`loginuid` that is set already) is a
//! warning naming it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

fn ask(p: &mut Proc, cmd: &str) -> String {
    p.write_stdin(&format!("{cmd}\n"));
    p.line(LINE_TIMEOUT)
}

/// Start `kstate` (through `prefix`, e.g. setpriv), wait for `ready`.
fn started(prefix: &[&str], args: &[&str]) -> Proc {
    let mut p = Proc::spawn("kstate", command_as(prefix, prog::KSTATE).args(args));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p
}

/// The expected state line of a fresh `kstate` whose ring reads `nr`.
fn check_reference(state: &str, loginuid: &str) {
    for want in [
        "subreaper 1 ",
        "thp 1 ",
        "oom 500 ",
        "membarrier 0x14 ",
        "head 1 tail 3 ",
        "robust main same thread same",
        &format!("loginuid {loginuid} "),
    ] {
        assert!(state.contains(want), "{want:?} not in {state:?}");
    }
}

#[test]
fn kernel_state_survives_a_root_restore() {
    let dir = TestDir::new("kstate-root");
    let image = dir.join("kstate.kckpt");
    let mut p = started(&[], &["loginuid"]);
    let before = ask(&mut p, "state");
    check_reference(&before, "4242");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    assert_eq!(info["kernel_state"]["child_subreaper"], 1, "{info}");
    assert_eq!(
        info["kernel_state"]["aio_rings"].as_array().map(Vec::len),
        Some(1),
        "{info}"
    );

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    let after = ask(&mut r, "state");
    if after != before {
        r.fail(&format!("state after restore {after:?}, before {before:?}"));
    }
    let aio = ask(&mut r, "aio");
    assert_eq!(aio, "aio ok 3", "{aio}");
    assert!(r.stderr().is_empty(), "no warning expected: {}", r.stderr());
}

#[test]
fn kernel_state_survives_an_unprivileged_restore() {
    require_tool("setpriv");
    let dir = TestDir::new("kstate-user");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("kstate.kckpt");
    let mut p = started(&NOBODY, &[]);
    let before = ask(&mut p, "state");
    let loginuid = String::from_utf8(read_proc(p.pid(), "loginuid").unwrap()).unwrap();
    check_reference(&before, loginuid.trim());
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");

    let mut r = Proc::spawn(
        "kckpt restore (uid 65534)",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    r.wait_restored(&cmdline);
    let after = ask(&mut r, "state");
    if after != before {
        r.fail(&format!("state after restore {after:?}, before {before:?}"));
    }
    assert_eq!(ask(&mut r, "aio"), "aio ok 3");
    let err = r.stderr_but_new_ids();
    assert!(err.is_empty(), "no other warning expected: {err}");
}

/// A loginuid the restorer cannot set (it has one of its own, and no
/// CAP_AUDIT_CONTROL): a warning naming it, and the process runs.
#[test]
fn loginuid_that_cannot_be_set_is_a_warning() {
    require_tool("setpriv");
    let dir = TestDir::new("kstate-loginuid");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("kstate.kckpt");
    // An unset loginuid may be set once without privilege: the process
    // (uid 65534) sets 4242.
    let mut p = started(&NOBODY, &["loginuid"]);
    assert!(ask(&mut p, "state").contains("loginuid 4242 "));
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    // The restorer: loginuid 77 (set by root), then uid 65534.
    let script = "echo 77 > /proc/self/loginuid && exec setpriv --reuid=65534 --regid=65534 \
                  --clear-groups \"$KCKPT\" restore \"$IMAGE\"";
    let mut r = Proc::spawn(
        "kckpt restore (loginuid 77, uid 65534)",
        Command::new("sh")
            .args(["-c", script])
            .env("KCKPT", kckpt())
            .env("IMAGE", &image),
    );
    r.wait_restored(&cmdline);
    let after = ask(&mut r, "state");
    assert!(after.contains("loginuid 77 "), "{after}");
    assert!(after.contains("subreaper 1 thp 1 oom 500 "), "{after}");
    let err = r.stderr_but_new_ids();
    assert!(
        err.lines().count() == 1
            && err.starts_with("kckpt: warning: ")
            && err.contains("loginuid to 4242")
            && err.contains("it stays 77"),
        "{err}"
    );
}

/// A restore in a new user namespace (`--new-pid-ns` as an unprivileged
/// user), where `/proc/self/loginuid` cannot be written: the stub sets the
/// saved loginuid before it creates the namespace (seen from outside;
/// inside, a loginuid the namespace does not map reads as unset).
#[test]
fn loginuid_is_set_before_a_new_user_namespace() {
    require_tool("setpriv");
    let dir = TestDir::new("kstate-userns");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("kstate.kckpt");
    let mut p = started(&NOBODY, &["loginuid"]);
    assert!(ask(&mut p, "state").contains("loginuid 4242 "));
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    // The restorer: unset loginuid (as the test's own), uid 65534.
    let mut r = Proc::spawn(
        "kckpt restore --new-pid-ns (uid 65534)",
        kckpt_as(&NOBODY)
            .arg("restore")
            .arg("--new-pid-ns")
            .arg(&image),
    );
    r.wait_restored(&cmdline);
    let outside = String::from_utf8(read_proc(r.pid(), "loginuid").unwrap()).unwrap();
    assert_eq!(outside.trim(), "4242", "the restored process's loginuid");
    // Inside, 4242 is not mapped (only 65534 is): it reads as unset, and
    // the restore says so.
    let inside = ask(&mut r, "state");
    assert!(
        inside.contains("subreaper 1 thp 1 oom 500 loginuid 4294967295 "),
        "{inside}"
    );
    let err = r.stderr();
    assert!(
        err.lines().count() == 1
            && err.starts_with("kckpt: warning: ")
            && err.contains("loginuid 4242 is not mapped in the new user namespace"),
        "{err}"
    );
}
