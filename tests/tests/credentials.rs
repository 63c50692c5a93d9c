//! Credentials are per thread and survive a checkpoint
//! (`tests/programs/creds.c`): uids and gids (real, effective, saved, fs),
//! supplementary groups, the five capability sets and securebits, different
//! in each thread — restored exactly by root; refused by name for a user
//! who cannot take the saved ids (or, forced, restored with that user's
//! ids and a warning); an unprivileged user restores its own process with
//! nothing to change, and gets a warning for supplementary groups it
//! cannot set.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

/// Both threads' `cred` lines.
fn creds(p: &mut Proc) -> (String, String) {
    p.write_stdin("state\n");
    let main = p.line(LINE_TIMEOUT);
    let thread = p.line(LINE_TIMEOUT);
    assert!(main.starts_with("cred main ") && thread.starts_with("cred thread "));
    (main, thread)
}

fn started(prefix: &[&str], args: &[&str]) -> Proc {
    let mut p = Proc::spawn("creds", command_as(prefix, prog::CREDS).args(args));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p
}

/// A scratch directory and image path any user can read.
fn open_dir(name: &str) -> (TestDir, std::path::PathBuf) {
    let dir = TestDir::new(name);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("creds.kckpt");
    (dir, image)
}

fn restore_as(prefix: &[&str], extra: &[&str], image: &std::path::Path) -> Proc {
    fs::set_permissions(image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    Proc::spawn(
        "kckpt restore (another user)",
        kckpt_as(prefix).arg("restore").args(extra).arg(image),
    )
}

#[test]
fn per_thread_credentials_survive_a_root_restore() {
    let (_dir, image) = open_dir("creds-root");
    let mut p = started(&[], &[]);
    let (main, thread) = creds(&mut p);
    // What the program set up.
    for want in [
        "uid 4000 4000 4000 4000 gid 3000 3000 3000 3000 groups 27 100 4242 ",
        "eff 0000000000000000 bnd 000001fffebfffff ",
        "secure 1",
    ] {
        assert!(main.contains(want), "{want:?} not in {main:?}");
    }
    for want in [
        "uid 1001 1002 1003 1004 gid 2001 2002 2003 2004 groups 27 100 4242 ",
        "inh 0000000000000400 prm 0000000000002400 eff 0000000000000400 ",
        "amb 0000000000000400 secure 16",
    ] {
        assert!(thread.contains(want), "{want:?} not in {thread:?}");
    }
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    assert_eq!(info["kernel_state"]["threads"][1]["uid"][3], 1004, "{info}");

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    let (main2, thread2) = creds(&mut r);
    assert_eq!(main2, main, "main thread");
    assert_eq!(thread2, thread, "second thread");
    assert!(r.stderr().is_empty(), "no warning expected: {}", r.stderr());
    // dumpable is set after the credentials (a change of ids resets it).
    let status = String::from_utf8(read_proc(r.pid(), "status").unwrap()).unwrap();
    assert!(status.contains("Uid:\t4000\t4000\t4000\t4000"), "{status}");
    r.write_stdin("exit 0\n");
    assert!(r.wait_exit(LINE_TIMEOUT).success());
}

#[test]
fn ids_another_user_cannot_take_are_refused_or_forced() {
    require_tool("setpriv");
    let (_dir, image) = open_dir("creds-refused");
    let mut p = started(&[], &[]);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    let out = run(kckpt_as(&NOBODY).arg("restore").arg(&image), CMD_TIMEOUT);
    assert_refused(
        "restore of another user's process",
        &out,
        Some(126),
        &["ran as uid 4000 gid 3000; this user (uid 65534) cannot take those ids"],
    );

    let mut r = restore_as(&NOBODY, &["--force"], &image);
    r.wait_restored(&cmdline);
    let (main, thread) = creds(&mut r);
    assert!(main.contains("uid 65534 65534 65534 65534 "), "{main}");
    assert!(thread.contains("uid 65534 65534 65534 65534 "), "{thread}");
    let err = r.stderr_but_new_ids();
    assert!(
        err.lines().count() == 1
            && err.starts_with("kckpt: warning: ")
            && err.contains("restored with this user's credentials (forced)"),
        "{err}"
    );
}

#[test]
fn unprivileged_restore_of_own_process_changes_nothing() {
    require_tool("setpriv");
    let (_dir, image) = open_dir("creds-user");
    let mut p = started(&NOBODY, &["plain"]);
    let before = creds(&mut p);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    let mut r = restore_as(&NOBODY, &[], &image);
    r.wait_restored(&cmdline);
    assert_eq!(creds(&mut r), before);
    let err = r.stderr_but_new_ids();
    assert!(err.is_empty(), "no other warning expected: {err}");
}

/// A process with supplementary groups restored by the same user without
/// them (a new login session, say): setgroups needs CAP_SETGID, so the
/// process runs without them and the restore says so.
#[test]
fn groups_an_unprivileged_user_cannot_set_are_a_warning() {
    require_tool("setpriv");
    let (_dir, image) = open_dir("creds-groups");
    let with_groups = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--groups=27,100",
    ];
    let mut p = started(&with_groups, &["plain"]);
    let (main, _) = creds(&mut p);
    assert!(main.contains("groups 27 100 "), "{main}");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    let mut r = restore_as(&NOBODY, &[], &image);
    r.wait_restored(&cmdline);
    let (main2, _) = creds(&mut r);
    assert!(main2.contains("groups - inh "), "{main2}");
    let err = r.stderr_but_new_ids();
    assert!(
        err.lines().count() == 2
            && err.lines().all(|l| l.starts_with("kckpt: warning: ")
                && l.contains("cannot restore its supplementary groups: Operation not permitted")),
        "one warning per thread expected: {err}"
    );
}
