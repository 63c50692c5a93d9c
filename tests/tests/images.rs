//! The image file itself: standard core notes readelf lists, kckpt's notes,
//! `kckpt info` (text and JSON), mode 0600, and the size of the stub.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::*;

/// One counter image shared by the tests of this file, and the pid it had.
fn image() -> &'static (PathBuf, i32) {
    static IMAGE: OnceLock<(PathBuf, i32)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        // Leaked on purpose: the image lives as long as the test binary; the
        // next test run removes the directory.
        let dir = Box::leak(Box::new(TestDir::new("images")));
        let path = dir.join("counter.kckpt");
        let mut p = Proc::start(prog::COUNTER_PIE, &[]);
        p.wait_for("count 2", LINE_TIMEOUT, |l| l.starts_with("count 2 "));
        let pid = p.pid();
        dump_and_kill(&mut p, &path);
        (path, pid)
    })
}

#[test]
fn readelf_lists_core_and_kckpt_notes() {
    let readelf = require_tool("readelf");
    let out = run(Command::new(readelf).arg("-n").arg(&image().0), CMD_TIMEOUT);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for note in [
        "NT_PRSTATUS",
        "NT_PRPSINFO",
        "NT_AUXV",
        "NT_FILE",
        "NT_X86_XSTATE",
    ] {
        assert!(text.contains(note), "readelf -n shows no {note}:\n{text}");
    }
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("KCKPT")),
        "readelf -n shows no KCKPT note:\n{text}"
    );
}

#[test]
fn image_mode_is_0600() {
    let mode = fs::metadata(&image().0).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o600,
        "image mode {mode:o}: it holds the process's secrets"
    );
}

#[test]
fn info_text_names_pid_and_architecture() {
    let (path, pid) = image();
    let out = run(Command::new(kckpt()).arg("info").arg(path), CMD_TIMEOUT);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("x86_64"), "no architecture in:\n{text}");
    assert!(text.contains(&pid.to_string()), "no pid {pid} in:\n{text}");
    assert!(text.lines().count() >= 3, "too little information:\n{text}");
}

/// Does any value in `v` satisfy `pred`?
fn any_value(v: &serde_json::Value, pred: &dyn Fn(&serde_json::Value) -> bool) -> bool {
    pred(v)
        || match v {
            serde_json::Value::Array(a) => a.iter().any(|x| any_value(x, pred)),
            serde_json::Value::Object(o) => o.values().any(|x| any_value(x, pred)),
            _ => false,
        }
}

#[test]
fn info_json_is_valid_and_complete() {
    let (path, pid) = image();
    let out = run(
        Command::new(kckpt()).arg("info").arg(path).arg("--json"),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kckpt info --json is not JSON ({e}):\n{}", show(&out)));
    assert!(json.is_object(), "not a JSON object: {json}");
    assert!(
        any_value(&json, &|v| v.as_i64() == Some(i64::from(*pid))),
        "no pid {pid} in {json:#}"
    );
    assert!(
        any_value(&json, &|v| v.as_str() == Some("x86_64")),
        "no \"x86_64\" in {json:#}"
    );
    assert!(
        any_value(&json, &|v| v
            .as_str()
            .is_some_and(|s| s.contains(prog::COUNTER_PIE))),
        "the program path is not in {json:#}"
    );
}

#[test]
fn stub_stripped_size_is_small() {
    let strip = require_tool("strip");
    let dir = TestDir::new("stub-size");
    let copy = dir.join("kckpt-stub");
    fs::copy(stub(), &copy).unwrap();
    let out = run(Command::new(strip).arg(&copy), CMD_TIMEOUT);
    assert!(out.status.success(), "{}", show(&out));
    let size = fs::metadata(&copy).unwrap().len();
    println!("stub stripped size: {size} bytes");
    assert!(
        size < 288 * 1024,
        "stripped stub is {size} bytes, over 288 KiB"
    );
}
