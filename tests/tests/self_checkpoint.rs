//! Checkpointing from inside (`kckpt_checkpoint_self` in C through
//! `libkckpt.a` and `kckpt.h`, `kckpt::checkpoint_self` in Rust): a
//! program checkpoints itself mid-computation and goes on; the image, run
//! with `kckpt restore` or as `./IMAGE` through binfmt_misc, prints
//! `resumed` and then exactly what the original printed after `saved`.
//! `kckpt info` and gdb read such an image; a second thread is refused.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Compile `tests/programs/self_counter.c` against this profile's
/// `libkckpt.a` and the repository's `kckpt.h`, with Debian's gcc.
fn c_program(dir: &TestDir) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = dir.join("self_counter");
    let out = run(
        Command::new("gcc")
            .args(["-O2", "-g", "-Wall", "-I"])
            .arg(&root)
            .arg("-o")
            .arg(&exe)
            .arg(root.join("tests/programs/self_counter.c"))
            .arg(profile_file("libkckpt.a"))
            .arg("-lpthread"),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "gcc failed:\n{}", show(&out));
    exe
}

/// The Rust example `dumper/examples/self_counter.rs` (cargo test builds
/// the examples of the workspace).
fn rust_program() -> PathBuf {
    profile_file("examples/self_counter")
}

/// Run `program IMAGE 5` to its end; returns the lines it printed after
/// `saved` (the checkpoint succeeded and it went on running).
fn run_and_save(program: &Path, image: &Path) -> Vec<String> {
    let out = run(Command::new(program).arg(image).arg("5"), DUMP_TIMEOUT);
    let rest = lines_after_saved(&out);
    assert!(image.is_file(), "no image written");
    rest
}

/// `kckpt restore IMAGE`: `resumed`, then `rest`.
fn check_kckpt_restore(image: &Path, rest: &[String]) {
    let out = run(
        Command::new(kckpt()).arg("restore").arg(image),
        DUMP_TIMEOUT,
    );
    assert_resumed_then(&out, rest);
}

/// `./IMAGE` through binfmt_misc: `resumed`, then `rest`.
fn check_binfmt_restore(image: &Path, rest: &[String]) {
    let mut p = restore_binfmt(image);
    let first = p.line(LINE_TIMEOUT);
    assert_eq!(first, "resumed");
    for want in rest {
        let got = p.line(LINE_TIMEOUT);
        if &got != want {
            p.fail(&format!("expected {want:?}, got {got:?}"));
        }
    }
    let status = p.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "restored program exited with {status}");
}

#[test]
fn c_program_checkpoints_itself_and_resumes_both_ways() {
    require_tool("gcc");
    require_tool("unshare");
    let dir = TestDir::new("self-c");
    let program = c_program(&dir);
    let image = dir.join("self.kckpt");
    let rest = run_and_save(&program, &image);
    check_kckpt_restore(&image, &rest);
    check_binfmt_restore(&image, &rest);
}

#[test]
fn rust_program_checkpoints_itself_and_resumes_both_ways() {
    require_tool("unshare");
    let dir = TestDir::new("self-rust");
    let image = dir.join("self.kckpt");
    let rest = run_and_save(&rust_program(), &image);
    check_kckpt_restore(&image, &rest);
    check_binfmt_restore(&image, &rest);
}

#[test]
fn self_made_image_is_read_by_kckpt_info_and_gdb() {
    let gdb = require_tool("gdb");
    let dir = TestDir::new("self-info");
    let program = c_program(&dir);
    let image = dir.join("self.kckpt");
    run_and_save(&program, &image);
    let info = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{}", show(&info));
    let version = format!(
        "format version: {}.{}",
        kckpt_image::FORMAT_MAJOR,
        kckpt_image::FORMAT_MINOR
    );
    for want in [
        version.as_str(),
        "checksums:      crc32c; metadata ok",
        "threads:        1",
        "syscall none",
        "[heap]",
        "[stack]",
    ] {
        assert!(text.contains(want), "kckpt info lacks {want:?}:\n{text}");
    }
    let out = run(
        Command::new(gdb)
            .args(["-nx", "-batch", "-ex", "bt"])
            .arg(&program)
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_bt_in_main("gdb", &out);
}

#[test]
fn a_second_thread_is_refused_with_ebusy() {
    require_tool("gcc");
    let dir = TestDir::new("self-threads");
    let program = c_program(&dir);
    let image = dir.join("self.kckpt");
    let out = run(
        Command::new(&program).arg(&image).args(["2", "thread"]),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("failed Device or resource busy") && text.contains("threads"),
        "{}",
        show(&out)
    );
    assert!(!image.exists(), "an image was left behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_path_that_is_not_a_regular_file_is_refused_with_einval() {
    require_tool("gcc");
    let dir = TestDir::new("self-output");
    let program = c_program(&dir);
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    for (path, what) in [
        (Path::new("/dev/null"), "character device"),
        (fifo.as_path(), "FIFO"),
        (dir.path(), "directory"),
    ] {
        let out = run(Command::new(&program).arg(path).arg("2"), CMD_TIMEOUT);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("failed Invalid argument (kckpt: cannot write an image to")
                && text.contains(what),
            "{}: {}",
            path.display(),
            show(&out)
        );
    }
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}
