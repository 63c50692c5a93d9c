//! Issue 8: named pipes (with their buffered bytes, several open file
//! descriptions of one pipe, a deleted one), memory devices at other paths
//! (a deleted device node), symbolic links held with `O_PATH` (one
//! deleted), and what stays refused: a named pipe another process holds,
//! another device, a named pipe missing at restore
//! (`tests/programs/special.c` checks everything from inside).

mod common;

use std::fs;
use std::process::Command;

use common::*;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

const SPECIAL: &str = env!("KCKPT_PROG_SPECIAL");

fn start(args: &[&str]) -> Proc {
    let mut p = Proc::spawn("special", Command::new(SPECIAL).args(args));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p
}

fn restored(image: &std::path::Path) -> Proc {
    let mut r = restore(image);
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    r
}

#[test]
fn named_pipes_devices_and_symlinks_come_back() {
    let dir = TestDir::new("special-all");
    let image = dir.join("special.kckpt");
    let mut p = start(&["all", dir.path().to_str().unwrap()]);
    p.self_check();
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let fds = info["files"]["fds"].as_array().expect("fds");
    let kind = |fd: u64| {
        fds.iter()
            .find(|f| f["fd"] == fd)
            .map(|f| f["kind"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(kind(3).as_deref(), Some("named pipe"));
    assert_eq!(kind(4).as_deref(), Some("reopen"));
    assert_eq!(kind(7).as_deref(), Some("device"));
    assert_eq!(kind(10).as_deref(), Some("symlink"));

    let mut r = restored(&image);
    // Twice: each check reads the buffered bytes and writes them back.
    r.self_check();
    r.self_check();
    // Nothing the restore needs was consumed: a second restore works once
    // the first has let go of the named pipe.
    r.kill();
    let mut again = restored(&image);
    again.self_check();
    // The deleted pipe, node and link were made again and unlinked.
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "special.kckpt")
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        ["fifo", "full", "link"],
        "files left in the directory"
    );
}

#[test]
fn a_leave_running_dump_keeps_the_bytes_and_a_restore_beside_it_is_refused() {
    let dir = TestDir::new("special-leave");
    let image = dir.join("special.kckpt");
    let mut p = start(&["all", dir.path().to_str().unwrap()]);
    dump(p.pid(), &image, true);
    // The original still has every byte of its pipes.
    p.self_check();
    // Its named pipe still holds them: the restored process would read
    // them twice.
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        DUMP_TIMEOUT,
    );
    // (A warning about the taken pid comes first.)
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert_eq!(out.status.code(), Some(126), "{}", show(&out));
    assert!(
        last.starts_with("kckpt: ") && last.contains("already holds 1000 bytes"),
        "{}",
        show(&out)
    );
    p.kill();
}

#[test]
fn a_named_pipe_another_process_holds_is_refused_at_dump() {
    let dir = TestDir::new("special-shared");
    let fifo = dir.join("shared");
    mkfifo(&fifo);
    let mut p = start(&["open", fifo.to_str().unwrap()]);
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let out = dump_raw(p.pid(), &dir.join("x.kckpt"), false);
    assert_refused(
        "shared named pipe",
        &out,
        None,
        &["shared with another process"],
    );
    drop(held);
    // Refused before anything was done to it.
    p.self_check();
    p.kill();
}

#[test]
fn a_named_pipe_missing_at_restore_is_refused_by_name() {
    let dir = TestDir::new("special-missing");
    let fifo = dir.join("gone");
    mkfifo(&fifo);
    let image = dir.join("x.kckpt");
    let mut p = start(&["open", fifo.to_str().unwrap()]);
    dump_kills(&mut p, &image);
    fs::remove_file(&fifo).unwrap();
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        DUMP_TIMEOUT,
    );
    assert_refused(
        "missing named pipe",
        &out,
        Some(126),
        &["gone", "deleted since the dump"],
    );
}

#[test]
fn another_device_stays_refused_by_name() {
    let dir = TestDir::new("special-kmsg");
    let node = dir.join("kmsg");
    // 1:11 is /dev/kmsg: not one of the memory devices kckpt reopens.
    mknod(
        &node,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(1, 11),
    )
    .unwrap();
    let mut p = start(&["open", node.to_str().unwrap()]);
    let out = dump_raw(p.pid(), &dir.join("x.kckpt"), false);
    assert_refused("kmsg", &out, None, &["device"]);
    p.self_check();
    p.kill();
}

#[test]
fn without_cap_mknod_a_deleted_device_node_is_the_standard_one_with_a_warning() {
    let dir = TestDir::new("special-null");
    let image = dir.join("null.kckpt");
    let mut p = start(&["null", dir.path().to_str().unwrap()]);
    p.self_check();
    dump_kills(&mut p, &image);
    // Root of a new user namespace: no CAP_MKNOD for device nodes.
    let mut r = Proc::spawn(
        "restore in a user namespace",
        Command::new("unshare")
            .args(["--user", "--map-root-user"])
            .arg(kckpt())
            .arg("restore")
            .arg(&image),
    );
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    // The same device (fstat's st_rdev), the deleted pipe's bytes.
    r.self_check();
    let err = r.stderr();
    assert!(
        err.contains("fd 3") && err.contains("opened as /dev/null"),
        "expected a warning naming fd 3 and /dev/null: {err}"
    );
    r.kill();
}
