//! Descriptors that lead outside the dumped processes (`kckpt dump
//! --external`, `kckpt restore --inherit-fd`, `KCKPT_INHERIT_FD`):
//! `tests/programs/ext_reader.c` reads from a pipe at fd 5 that the test
//! feeds. The dump refuses it by name without `--external`; with it the
//! image records the descriptor as external (`kckpt info` shows its key);
//! the restore refuses with one line until the restorer names a
//! descriptor for the key, refuses the wrong end of a pipe, and with the
//! right one the restored process reads what the test writes into the new
//! pipe. Alone and as the child of a process tree.

mod common;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

const EXT_READER: &str = env!("KCKPT_PROG_EXT_READER");

/// A new pipe (read end, write end as a `File`).
fn pipe() -> (OwnedFd, File) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
    (r, File::from(w))
}

/// `pipe:[INODE]` of a pipe end.
fn key_of(end: &OwnedFd) -> String {
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", end.as_raw_fd()))
        .expect("stat pipe")
        .ino();
    format!("pipe:[{ino}]")
}

/// `sh -c 'exec N<>/proc/TEST/fd/FD; exec "$@"'`: `program` with this
/// test's descriptor `fd` opened again at `at` (`<` read, `>` write).
fn with_fd(fd: &impl AsRawFd, at: u32, dir: char, program: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec {at}{dir}\"$0\" && exec \"$@\""))
        .arg(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            fd.as_raw_fd()
        ))
        .arg(program);
    cmd
}

/// The reader (alone, or `tree`: its child reads) with the test's pipe at
/// fd 5; returns it, the write end and the reading process's pid.
fn start(mode: &[&str]) -> (Proc, File, OwnedFd, i32) {
    let (r, mut w) = pipe();
    let mut cmd = with_fd(&r, 5, '<', Path::new(EXT_READER));
    cmd.args(mode);
    let mut p = Proc::spawn("ext_reader", &mut cmd);
    let ready = p.line(LINE_TIMEOUT);
    let reader: i32 = ready
        .strip_prefix("ready ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| p.fail(&format!("expected `ready PID`, got {ready:?}")));
    w.write_all(b"before\n").expect("write");
    p.wait_for("got: before", LINE_TIMEOUT, |l| l == "got: before");
    (p, w, r, reader)
}

fn dump_with(pid: i32, image: &Path, extra: &[String]) -> std::process::Output {
    run(
        Command::new(kckpt())
            .args(["dump", "-p", &pid.to_string(), "-o"])
            .arg(image)
            .args(extra),
        DUMP_TIMEOUT,
    )
}

/// Restore `image` with `--inherit-fd` entries through `kckpt restore`
/// (`env`: through the stub and `KCKPT_INHERIT_FD` instead), this test's
/// descriptor `fd` opened again at 7 (`dir`: `<` or `>`).
fn restore_with(image: &Path, fd: &impl AsRawFd, dir: char, inherit: &str, env: bool) -> Command {
    let mut cmd = if env {
        let mut c = with_fd(fd, 7, dir, &stub());
        c.arg(image).env("KCKPT_INHERIT_FD", inherit);
        c
    } else {
        let mut c = with_fd(fd, 7, dir, &kckpt());
        c.args(["restore", "--inherit-fd", inherit]).arg(image);
        c
    };
    cmd.env_remove("KCKPT_INHERIT_FD");
    if env {
        cmd.env("KCKPT_INHERIT_FD", inherit);
    }
    cmd
}

fn case(tree: bool, env: bool, new_pid_ns: bool) {
    let dir = TestDir::new("external");
    let image = dir.join("ext.kckpt");
    let (mut p, _w, old_r, reader) = start(if tree { &["tree"] } else { &[] });
    let key = key_of(&old_r);
    let root = p.pid();

    // Refused by name without --external; the process goes on.
    let out = dump_with(root, &image, &[]);
    assert_refused(
        "dump without --external",
        &out,
        None,
        &["pipe to another process"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fd 5"),
        "{}",
        show(&out)
    );
    assert!(!image.exists());

    // A descriptor that is no such thing, or of a process not dumped.
    let out = dump_with(root, &image, &["--external".into(), format!("{reader}:77")]);
    assert_refused(
        "--external of a missing fd",
        &out,
        None,
        &["no descriptor 77"],
    );
    let out = dump_with(root, &image, &["--external".into(), "1:5".into()]);
    assert_refused("--external of another process", &out, None, &["not dumped"]);

    let named = if tree {
        format!("{reader}:5")
    } else {
        "5".to_owned()
    };
    let out = dump_with(root, &image, &["--external".into(), named]);
    assert!(out.status.success(), "dump --external: {}", show(&out));
    let _ = p.wait_exit(LINE_TIMEOUT);

    // kckpt info names it with its key.
    let mut info = Command::new(kckpt());
    info.args(["info", "--json"]).arg(&image);
    if tree {
        info.args(["--pid", &reader.to_string()]);
    }
    let info: serde_json::Value =
        serde_json::from_slice(&run(&mut info, CMD_TIMEOUT).stdout).expect("info json");
    let fd5 = info["files"]["fds"]
        .as_array()
        .and_then(|fds| fds.iter().find(|f| f["fd"] == 5).cloned())
        .unwrap_or_else(|| panic!("no fd 5 in {info}"));
    assert_eq!(fd5["kind"], "external", "{fd5}");
    assert_eq!(fd5["external_key"], key.as_str(), "{fd5}");
    let text = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    if !tree {
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!("--inherit-fd {key}=N")),
            "kckpt info: {text}"
        );
    }

    let (new_r, mut new_w) = pipe();
    let ns = |mut c: Command| {
        if new_pid_ns {
            c.env("KCKPT_NEW_PID_NS", "1");
        }
        c
    };
    // Without a descriptor for the key: one line naming fd and key.
    let mut plain = ns(restore_with(&image, &new_r, '<', "other=7", env));
    let out = run(&mut plain, CMD_TIMEOUT);
    assert_refused(
        "restore without --inherit-fd",
        &out,
        None,
        &["--inherit-fd"],
    );
    let line = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(line.contains("fd 5") && line.contains(&key), "{line}");
    if tree {
        assert!(line.contains(&format!("pid {reader}")), "{line}");
    }

    // The write end where a read end was.
    let inherit = format!("{key}=7");
    let mut wrong = ns(restore_with(&image, &new_w, '>', &inherit, env));
    let out = run(&mut wrong, CMD_TIMEOUT);
    assert_refused("restore with a write end", &out, None, &["wrong end"]);

    // The right one: the process reads the new pipe.
    let mut good = ns(restore_with(&image, &new_r, '<', &inherit, env));
    let mut r = Proc::spawn("restore --inherit-fd", &mut good);
    new_w.write_all(b"after\n").expect("write");
    r.wait_for("got: after", LINE_TIMEOUT, |l| l == "got: after");
    // Nothing else of this test's pipe reached it.
    drop(new_w);
    r.wait_for("eof", LINE_TIMEOUT, |l| l == "eof");
    let status = r.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "restored process ended with {status}");
}

#[test]
fn external_pipe_alone_by_kckpt_restore() {
    case(false, false, false);
}

#[test]
fn external_pipe_alone_by_environment() {
    case(false, true, false);
}

#[test]
fn external_pipe_of_a_tree_child() {
    case(true, false, false);
}

#[test]
fn external_pipe_of_a_tree_child_in_a_new_pid_namespace() {
    case(true, true, true);
}

/// `--inherit-fd` checks its own syntax and that the descriptor is open.
#[test]
fn inherit_fd_usage() {
    let dir = TestDir::new("external-usage");
    let image = dir.join("none.kckpt");
    std::fs::write(&image, b"x").unwrap();
    let out = run(
        Command::new(kckpt())
            .args(["restore", "--inherit-fd", "pipe:[1]=99"])
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_refused("--inherit-fd of a closed fd", &out, None, &["not open"]);
    let out = run(
        Command::new(kckpt())
            .args(["restore", "--inherit-fd", "pipe:[1]"])
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert!(!out.status.success(), "{}", show(&out));
}

/// An unprivileged user (nobody) dumps its reader of a pipe the test
/// feeds, with `--external 5`, and restores it, by running the stub with
/// `KCKPT_INHERIT_FD`, onto another pipe (opened at fd 5 by a root shell
/// before `setpriv`).
#[test]
fn external_pipe_as_nobody() {
    use std::os::unix::fs::PermissionsExt;
    require_tool("setpriv");
    let dir = TestDir::new("external-nobody");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("ext.kckpt");
    let (old_r, mut old_w) = pipe();
    let (new_r, mut new_w) = pipe();
    let key = key_of(&old_r);
    let as_nobody = |fd: &OwnedFd, program: &Path| {
        let mut c = with_fd(fd, 5, '<', Path::new(NOBODY[0]));
        c.args(&NOBODY[1..]).arg(program);
        c
    };
    let mut p = Proc::spawn("ext_reader", &mut as_nobody(&old_r, Path::new(EXT_READER)));
    let ready = p.line(LINE_TIMEOUT);
    assert!(ready.starts_with("ready "), "{ready}");
    old_w.write_all(b"before\n").unwrap();
    p.wait_for("got: before", LINE_TIMEOUT, |l| l == "got: before");

    let dump = |extra: &[&str]| {
        run(
            kckpt_as(&NOBODY)
                .args(["dump", "-p", &p.pid().to_string(), "-o"])
                .arg(&image)
                .args(extra),
            DUMP_TIMEOUT,
        )
    };
    let out = dump(&[]);
    assert_refused(
        "nobody's dump without --external",
        &out,
        None,
        &["pipe to another process"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--external"),
        "the refusal names --external: {}",
        show(&out)
    );
    let out = dump(&["--external", "5"]);
    assert!(
        out.status.success(),
        "nobody's dump --external 5: {}",
        show(&out)
    );
    let _ = p.wait_exit(LINE_TIMEOUT);

    // Without the variable: refused; with it, the new pipe is read.
    let out = run(as_nobody(&new_r, &stub()).arg(&image), CMD_TIMEOUT);
    assert_refused(
        "nobody's restore without KCKPT_INHERIT_FD",
        &out,
        Some(126),
        &["KCKPT_INHERIT_FD"],
    );
    let mut restore = as_nobody(&new_r, &stub());
    restore
        .arg(&image)
        .env("KCKPT_INHERIT_FD", format!("{key}=5"));
    let mut r = Proc::spawn("nobody's restore", &mut restore);
    new_w.write_all(b"after\n").unwrap();
    r.wait_for("got: after", LINE_TIMEOUT, |l| l == "got: after");
    drop(new_w);
    r.wait_for("eof", LINE_TIMEOUT, |l| l == "eof");
    let status = r.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "restored process ended with {status}");
}
