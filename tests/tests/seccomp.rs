//! Seccomp (format 1.8, `NT_KCKPT_SECCOMP`): filters and strict mode are
//! saved per thread and installed again by each restored thread.
//!
//! - two threads, no_new_privs, filter A inherited by both (getppid ->
//!   EPERM), filter B with SECCOMP_FILTER_FLAG_LOG in one (getsid ->
//!   EACCES): after a root restore the calls fail as before and each
//!   thread has as many filters (`Seccomp_filters:`); `kckpt info` shows
//!   them; filter A is shared again, so that a later TSYNC install works;
//! - the same process run and restored by nobody (late install, checked
//!   with the stub's cBPF interpreter), also with --new-pid-ns;
//! - filters without no_new_privs: refused by name for nobody, restored
//!   by root;
//! - a filter that denies munmap: refused by name for nobody, restored by
//!   root (the tracer suspends seccomp);
//! - a process tree (parent and child with their own filters), as root;
//! - strict mode restored as root: the process goes on reading and
//!   writing, and strict mode still kills anything else;
//! - a dumper without CAP_SYS_ADMIN refuses the filters by name;
//! - a corrupt note is refused by `kckpt info` with one line.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kckpt_image::records::NOTE_OWNER;
use kckpt_image::seccomp::NT_KCKPT_SECCOMP;

use common::*;

const BOTH: &str = "main getppid 1 getsid 0 filters 1 thread getppid 1 getsid 13 filters 2";

fn started(prefix: &[&str], mode: &str) -> Proc {
    let mut p = Proc::spawn(
        "seccomp_prog",
        command_as(prefix, prog::SECCOMP_PROG).arg(mode),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p
}

fn check(p: &mut Proc) -> String {
    p.write_stdin("check\n");
    p.line(LINE_TIMEOUT)
}

/// A scratch directory any user can use, and an image path in it.
fn open_dir(name: &str) -> (TestDir, PathBuf) {
    let dir = TestDir::new(name);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("seccomp.kckpt");
    (dir, image)
}

/// `kckpt restore ARGS IMAGE` as `prefix` (the image made readable).
fn restore_as(prefix: &[&str], args: &[&str], image: &Path) -> Proc {
    fs::set_permissions(image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    Proc::spawn(
        "kckpt restore",
        kckpt_as(prefix).arg("restore").args(args).arg(image),
    )
}

/// Nobody's `kckpt restore IMAGE` is refused with one line naming `why`
/// before anything changes (exit 126).
fn refused_for_nobody(image: &Path, what: &str, why: &str) {
    fs::set_permissions(image, fs::Permissions::from_mode(0o644)).expect("chmod image");
    let out = run(kckpt_as(&NOBODY).arg("restore").arg(image), CMD_TIMEOUT);
    assert_refused(what, &out, Some(126), &[why]);
}

/// `Seccomp:` and `Seccomp_filters:` of each task of `pid`.
fn seccomp_status(pid: i32) -> Vec<(String, String)> {
    tasks(pid)
        .iter()
        .map(|t| {
            let s = fs::read_to_string(format!("/proc/{pid}/task/{t}/status")).unwrap_or_default();
            let field = |k: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            (field("Seccomp:"), field("Seccomp_filters:"))
        })
        .collect()
}

fn filters_case(prefix: &[&str], name: &str, tsync: bool) {
    let (_dir, image) = open_dir(name);
    let mut p = started(prefix, "filters");
    assert_eq!(check(&mut p), BOTH);
    let before = seccomp_status(p.pid());
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);

    let info = info_json(&image);
    let threads = info["seccomp"].as_array().expect("seccomp in info");
    assert_eq!(threads.len(), 2, "{info:#}");
    assert_eq!(threads[0]["mode"], "filter");
    assert_eq!(threads[0]["filters"].as_array().unwrap().len(), 1);
    let f = threads[1]["filters"].as_array().unwrap();
    assert_eq!(f.len(), 2, "{info:#}");
    assert_eq!(f[0]["log"], false);
    assert_eq!(f[1]["log"], true);
    let text = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.lines().filter(|l| l.starts_with("seccomp:")).count() == 2,
        "{text}"
    );

    let mut r = restore_as(prefix, &[], &image);
    r.wait_restored(&cmdline);
    assert_eq!(check(&mut r), BOTH, "the filters act after the restore");
    assert_eq!(seccomp_status(r.pid()), before);
    no_window(r.pid());
    if tsync {
        // Filter A is shared by both threads again (the main thread
        // installed it before creating the other): the thread's TSYNC
        // install works and reaches the main thread.
        r.write_stdin("tsync\n");
        assert_eq!(r.line(LINE_TIMEOUT), "tsync 0 main filters 3");
    }
    r.kill();
}

#[test]
fn two_threads_filters_are_restored_by_root() {
    filters_case(&[], "seccomp-root", true);
}

#[test]
fn no_new_privs_filters_are_restored_by_their_user() {
    require_tool("setpriv");
    // Each thread installs its own copy (late): no TSYNC check.
    filters_case(&NOBODY, "seccomp-nobody", false);
}

/// Nobody restores in new PID and user namespaces (the stub's
/// capabilities there cannot suspend seccomp: installed late).
#[test]
fn no_new_privs_filters_are_restored_by_their_user_in_a_new_pid_namespace() {
    require_tool("setpriv");
    let (_dir, image) = open_dir("seccomp-pidns");
    let mut p = started(&NOBODY, "filters");
    assert_eq!(check(&mut p), BOTH);
    dump_kills(&mut p, &image);
    let mut r = restore_as(&NOBODY, &["--new-pid-ns"], &image);
    assert_eq!(check(&mut r), BOTH, "the filters act after the restore");
    r.kill();
}

/// Filters installed without no_new_privs (by a nobody with
/// CAP_SYS_ADMIN): nobody without it cannot install them again, refused
/// by name before anything changes; root can.
#[test]
fn filters_without_no_new_privs_are_refused_unprivileged_restored_by_root() {
    require_tool("setpriv");
    let (_dir, image) = open_dir("seccomp-nonnp");
    let with_admin = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+sys_admin",
        "--ambient-caps=+sys_admin",
    ];
    let mut p = started(&with_admin, "nonnp");
    assert_eq!(check(&mut p), BOTH);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    refused_for_nobody(
        &image,
        "unprivileged restore of filters without no_new_privs",
        "seccomp filter without no_new_privs: installing it needs CAP_SYS_ADMIN; restore as root",
    );
    let mut r = restore_as(&[], &[], &image);
    r.wait_restored(&cmdline);
    assert_eq!(check(&mut r), BOTH);
    r.kill();
}

/// A dumper without CAP_SYS_ADMIN cannot read the filters: refused by
/// name, the process left running; `--skip-unsupported` dumps it without
/// them, with a warning.
#[test]
fn an_unprivileged_dump_refuses_the_filters_by_name() {
    require_tool("setpriv");
    let (dir, image) = open_dir("seccomp-unpriv-dump");
    let mut p = started(&NOBODY, "filters");
    let out = dump_as(&NOBODY, p.pid(), &image);
    assert_refused(
        "unprivileged dump of filters",
        &out,
        Some(1),
        &["seccomp filter (not saved: needs CAP_SYS_ADMIN: dump as root)"],
    );
    assert!(!image.exists(), "a refused dump left an image");
    assert_eq!(check(&mut p), BOTH, "the process goes on with its filters");
    let skip = dir.join("skip.kckpt");
    let out = run(
        kckpt_as(&NOBODY)
            .args([
                "dump",
                "--skip-unsupported",
                "-p",
                &p.pid().to_string(),
                "-o",
            ])
            .arg(&skip),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("seccomp filter"),
        "{err}"
    );
    assert_eq!(
        info_json(&skip)["seccomp"].as_array().map(Vec::len),
        Some(0)
    );
    p.kill();
}

#[test]
fn a_filter_denying_the_tracers_munmap_is_refused_unprivileged_restored_by_root() {
    require_tool("setpriv");
    let (_dir, image) = open_dir("seccomp-munmap");
    let mut p = started(&NOBODY, "nomunmap");
    assert_eq!(check(&mut p), BOTH);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    refused_for_nobody(
        &image,
        "unprivileged restore of a filter denying munmap",
        "seccomp filter that does not allow the tracer's munmap",
    );
    let mut r = restore_as(&[], &[], &image);
    r.wait_restored(&cmdline);
    assert_eq!(check(&mut r), BOTH);
    no_window(r.pid());
    r.kill();
}

/// A tree: each process of it installs its own filters (the parent's
/// inherited by the child at fork, one more in the child).
#[test]
fn a_tree_with_filters_in_both_processes_is_restored() {
    let (_dir, image) = open_dir("seccomp-tree");
    let mut p = started(&[], "tree");
    let want = "parent getppid 1 getsid 0 filters 1 child getppid 1 getsid 13 filters 2";
    assert_eq!(check(&mut p), want);
    let child = descendants(p.pid());
    assert_eq!(child.len(), 1, "one child: {child:?}");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    assert!(!info["tree"].is_null(), "a tree image: {info:#}");
    // A tree's root comes back under the restore's relay (its saved pid).
    let mut r = restore_as(&[], &[], &image);
    assert_eq!(check(&mut r), want, "the filters act in both processes");
    r.kill();
}

#[test]
fn strict_mode_is_restored_by_root() {
    require_tool("setpriv");
    let (_dir, image) = open_dir("seccomp-strict");
    let mut p = started(&NOBODY, "strict");
    p.write_stdin("one\n");
    assert_eq!(p.line(LINE_TIMEOUT), "got one");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    assert_eq!(info["seccomp"][0]["mode"], "strict", "{info:#}");

    // Not for nobody: the tracer's munmap would be killed.
    refused_for_nobody(
        &image,
        "unprivileged restore of strict mode",
        "seccomp strict mode",
    );

    let mut r = restore_as(&[], &[], &image);
    r.wait_restored(&cmdline);
    // Resumed once it answers (its command line comes back before its
    // seccomp mode does).
    r.write_stdin("two\n");
    assert_eq!(r.line(LINE_TIMEOUT), "got two");
    assert_eq!(seccomp_status(r.pid())[0].0, "1");
    no_window(r.pid());
    r.write_stdin("quit\n");
    let status = r.wait_exit(LINE_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "strict mode program ends with exit(0)"
    );
}

#[test]
fn a_corrupt_seccomp_note_is_refused_with_one_line() {
    let (_dir, image) = open_dir("seccomp-corrupt");
    let mut p = started(&[], "filters");
    dump_kills(&mut p, &image);
    let good = fs::read(&image).expect("image");
    let desc = note_desc_range(&good, NOTE_OWNER, NT_KCKPT_SECCOMP);
    let edits: [(&str, usize, u32); 3] = [
        ("mode", 0, 7),
        ("filter count", 4, 9),
        ("instruction count", 12, 5000),
    ];
    for (what, at, v) in edits {
        let mut bad = good.clone();
        bad[desc.start + at..desc.start + at + 4].copy_from_slice(&v.to_le_bytes());
        let _ = kckpt_image_write::reseal(&mut bad);
        let path = image.with_extension(what.replace(' ', "-"));
        fs::write(&path, &bad).expect("write");
        for json in [false, true] {
            let mut cmd = Command::new(kckpt());
            cmd.arg("info").arg(&path);
            if json {
                cmd.arg("--json");
            }
            let out = run(&mut cmd, CMD_TIMEOUT);
            assert_refused(&format!("kckpt info ({what})"), &out, None, &["seccomp"]);
        }
        let out = run(Command::new(stub()).arg(&path), CMD_TIMEOUT);
        assert_refused(
            &format!("kckpt-stub ({what})"),
            &out,
            Some(126),
            &["seccomp"],
        );
    }
}
