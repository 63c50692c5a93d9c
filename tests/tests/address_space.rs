//! The restored process looks like the original from /proc: the same memory
//! map (ranges, permissions, offsets, devices, inodes, names), the same
//! command line and environment, and the same command name.

mod common;

use std::process::Command;

use common::*;

/// Dump `program` with `--leave-running`, capture its /proc files, kill it
/// and restore; returns (original, restored) values of `files`.
fn compare_proc_files(name: &str, program: &str, files: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let dir = TestDir::new(name);
    let image = dir.join("image.kckpt");
    let mut p = Proc::spawn(
        name,
        Command::new(program)
            .args(["first-arg", "second arg"])
            .env("KCKPT_TEST_MARK", "environment survives"),
    );
    p.wait_for("count 3", LINE_TIMEOUT, |l| l.starts_with("count 3 "));
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| read_proc(p.pid(), f).expect("read /proc"))
        .collect();
    dump(p.pid(), &image, true);
    // Left running, and the dump left no trace in it.
    let line = p.line(LINE_TIMEOUT);
    assert!(line.starts_with("count "), "{line:?}");
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|f| read_proc(p.pid(), f).expect("read /proc"))
        .collect();
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&before[i]),
            String::from_utf8_lossy(&after[i]),
            "/proc/PID/{f} of the original changed across `kckpt dump --leave-running`"
        );
    }
    let cmdline = before[files.iter().position(|f| *f == "cmdline").unwrap()].clone();
    p.kill();

    let mut r = restore(&image);
    r.line(LINE_TIMEOUT);
    r.wait_restored(&cmdline);
    // Let the process run a little so nothing is caught mid-restore.
    r.line(LINE_TIMEOUT);
    let restored: Vec<Vec<u8>> = files
        .iter()
        .map(|f| read_proc(r.pid(), f).expect("read /proc"))
        .collect();
    before.into_iter().zip(restored).collect()
}

fn diff(a: &str, b: &str) -> String {
    let mut out = String::new();
    for l in a.lines().filter(|l| !b.lines().any(|m| m == *l)) {
        out += &format!("- {l}\n");
    }
    for l in b.lines().filter(|l| !a.lines().any(|m| m == *l)) {
        out += &format!("+ {l}\n");
    }
    out
}

fn maps_cmdline_environ_equal(name: &str, program: &str) {
    let files = ["maps", "cmdline", "environ"];
    let pairs = compare_proc_files(name, program, &files);
    for (f, (orig, restored)) in files.iter().zip(pairs) {
        let (a, b) = (
            String::from_utf8_lossy(&orig),
            String::from_utf8_lossy(&restored),
        );
        assert!(
            a == b,
            "/proc/PID/{f} differs after restore (- original, + restored):\n{}\noriginal:\n{a}\nrestored:\n{b}",
            diff(&a, &b)
        );
    }
}

#[test]
fn maps_cmdline_environ_equal_pie() {
    maps_cmdline_environ_equal("maps-pie", prog::COUNTER_PIE);
}

#[test]
fn maps_cmdline_environ_equal_static() {
    maps_cmdline_environ_equal("maps-static", prog::COUNTER_STATIC);
}

#[test]
fn command_name_equal() {
    let pairs = compare_proc_files("comm", prog::COUNTER_PIE, &["comm", "cmdline"]);
    let (orig, restored) = &pairs[0];
    assert_eq!(
        String::from_utf8_lossy(orig),
        String::from_utf8_lossy(restored),
        "/proc/PID/comm (what ps and top show) differs after restore"
    );
}
