//! aarch64 under QEMU user emulation (`qemu-aarch64` on this x86_64 host):
//! a static aarch64 C program linked with the aarch64 `libkckpt.a`
//! checkpoints itself mid-computation and goes on; the image is an
//! `EM_AARCH64` core with the standard aarch64 register notes, and
//! `gdb-multiarch` shows where the program was. A second thread is still
//! refused (QEMU's own helper thread is not counted). The aarch64 stub
//! restores the image under QEMU, directly and through `kckpt restore`;
//! truncated and x86_64 images, and a CPU without the saved HWCAPs, are
//! refused by it with one line. An aarch64 image runs as `./IMAGE`
//! through binfmt_misc (kckpt's aarch64 entry, then QEMU's).
//!
//! The aarch64 `libkckpt.a` is built with `cargo build --target
//! aarch64-unknown-linux-gnu -p kckpt --lib` of the test's profile (a no-op
//! when `scripts/test.sh` built it already).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const TARGET: &str = "aarch64-unknown-linux-gnu";

/// Build `package` (`kind` is `--lib` or `--bin NAME`) for `target` with
/// this profile; returns `target/<target>/<profile>/artifact`.
fn cross_build(target: &str, args: &[&str], artifact: &str) -> PathBuf {
    let dir = profile_dir();
    let profile = dir.file_name().and_then(|s| s.to_str()).unwrap_or("debug");
    let target_dir = dir.parent().expect("target directory");
    let out_file = target_dir.join(target).join(profile).join(artifact);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--target", target])
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    if profile == "release" {
        cmd.arg("--release");
    }
    let out = run(&mut cmd, std::time::Duration::from_secs(600));
    assert!(out.status.success(), "cargo build failed:\n{}", show(&out));
    assert!(out_file.is_file(), "{} not built", out_file.display());
    out_file
}

/// The aarch64 `libkckpt.a` of this profile, built if needed.
fn aarch64_lib() -> PathBuf {
    cross_build(TARGET, &["-p", "kckpt", "--lib"], "libkckpt.a")
}

/// The aarch64 `kckpt-stub` of this profile, built if needed.
fn aarch64_stub() -> PathBuf {
    cross_build(
        "aarch64-unknown-linux-musl",
        &["-p", "kckpt-stub"],
        "kckpt-stub",
    )
}

/// `tests/programs/self_counter.c`, static, for aarch64.
fn c_program(dir: &TestDir) -> PathBuf {
    let gcc = require_tool("aarch64-linux-gnu-gcc");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = dir.join("self_counter_aarch64");
    let out = run(
        Command::new(gcc)
            .args(["-static", "-O2", "-g", "-Wall", "-I"])
            .arg(&root)
            .arg("-o")
            .arg(&exe)
            .arg(root.join("tests/programs/self_counter.c"))
            .arg(aarch64_lib())
            .arg("-lpthread"),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "gcc failed:\n{}", show(&out));
    exe
}

fn qemu(program: &Path) -> Command {
    let mut cmd = Command::new(require_tool("qemu-aarch64"));
    cmd.arg(program);
    cmd
}

#[test]
fn aarch64_program_checkpoints_itself_under_qemu() {
    let dir = TestDir::new("arm-self");
    let program = c_program(&dir);
    let image = dir.join("self.kckpt");
    let out = run(qemu(&program).arg(&image).arg("5"), DUMP_TIMEOUT);
    let rest = lines_after_saved(&out);

    // The aarch64 stub restores it under QEMU: `resumed`, then exactly
    // what the original printed after `saved`.
    let out = run(qemu(&aarch64_stub()).arg(&image), DUMP_TIMEOUT);
    assert_resumed_then(&out, &rest);

    // `kckpt restore IMAGE` runs it through qemu-aarch64 and the aarch64
    // stub (built beside kckpt: target/aarch64-unknown-linux-musl/<profile>).
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        DUMP_TIMEOUT,
    );
    assert_resumed_then(&out, &rest);

    // Without qemu-aarch64 in PATH: one clear line.
    let out = run(
        Command::new(kckpt())
            .arg("restore")
            .arg(&image)
            .env("PATH", "/nonexistent"),
        CMD_TIMEOUT,
    );
    assert_refused("no qemu", &out, None, &["qemu-aarch64"]);

    // `./IMAGE` through binfmt_misc: in a user and mount namespace with
    // its own binfmt_misc, QEMU's entry for aarch64 executables (as
    // Debian's qemu-user-binfmt registers it, flag F) and kckpt's entries
    // (`kckpt binfmt register` adds kckpt-aarch64 with the aarch64 stub
    // built beside kckpt): kernel -> aarch64 stub -> qemu-aarch64.
    check_binfmt_chain(&image, &rest);

    // A CPU without every saved HWCAP (QEMU's default CPU is `max`; a
    // Cortex-A53 has far fewer features): refused with one line.
    let out = run(
        Command::new(require_tool("qemu-aarch64"))
            .args(["-cpu", "cortex-a53"])
            .arg(aarch64_stub())
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_refused("missing HWCAPs", &out, Some(126), &["HWCAP"]);

    // A truncated aarch64 image is refused with one line, exit 126.
    let truncated = dir.join("truncated.kckpt");
    let bytes = std::fs::read(&image).expect("image");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let out = run(qemu(&aarch64_stub()).arg(&truncated), CMD_TIMEOUT);
    assert_refused("truncated", &out, Some(126), &["truncated"]);

    // An EM_AARCH64 core file with kckpt's marker.
    let bytes = std::fs::read(&image).expect("image");
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(&bytes[9..16], b"KCKPT\0\x01");
    assert_eq!(u16::from_le_bytes([bytes[16], bytes[17]]), 4, "ET_CORE");
    assert_eq!(
        u16::from_le_bytes([bytes[18], bytes[19]]),
        183,
        "EM_AARCH64"
    );

    let notes = run(
        Command::new(require_tool("readelf")).arg("-n").arg(&image),
        CMD_TIMEOUT,
    );
    let notes = String::from_utf8_lossy(&notes.stdout);
    for want in [
        "NT_PRSTATUS",
        "NT_FPREGSET",
        "NT_ARM_TLS",
        "NT_ARM_SYSTEM_CALL",
        "NT_AUXV",
    ] {
        assert!(notes.contains(want), "readelf -n lacks {want}:\n{notes}");
    }

    let out = run(
        Command::new(require_tool("gdb-multiarch"))
            .args(["-nx", "-batch", "-ex", "bt"])
            .arg(&program)
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_bt_in_main("gdb-multiarch", &out);

    // kckpt info describes images of either architecture; --verify
    // checks here the data checksums the aarch64 dumper computed with the
    // CRC32 extension under QEMU.
    let out = run(
        Command::new(kckpt())
            .arg("info")
            .arg(&image)
            .args(["--json", "--verify"]),
        CMD_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "kckpt info of an aarch64 image:\n{}",
        show(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["arch"], "aarch64", "{json:#}");
    assert_eq!(json["checksums"]["data"], "ok", "{json:#}");
}

/// Run `./IMAGE` as described in the test above; it must print `resumed`
/// and then `rest`.
fn check_binfmt_chain(image: &Path, rest: &[String]) {
    use std::os::unix::fs::PermissionsExt;
    aarch64_stub();
    std::fs::set_permissions(image, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let qemu_entry = r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:";
    let script = "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        && printf '%s\n' \"$QEMU_ENTRY$QEMU:F\" > /proc/sys/fs/binfmt_misc/register \
        && \"$KCKPT\" binfmt register --stub \"$KCKPT_STUB\" >&2 \
        && exec \"./$KCKPT_IMAGE\"";
    let out = run(
        Command::new(require_tool("unshare"))
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .current_dir(image.parent().expect("dir"))
            .env("QEMU_ENTRY", qemu_entry)
            .env("QEMU", require_tool("qemu-aarch64"))
            .env("KCKPT", kckpt())
            .env("KCKPT_STUB", stub())
            .env("KCKPT_IMAGE", image.file_name().expect("name")),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("registered kckpt-aarch64"), "{}", show(&out));
    assert_resumed_then(&out, rest);
}

/// The Rust example `dumper/examples/self_counter.rs` built for aarch64
/// (static: `.cargo/config.toml`) checkpoints itself under QEMU;
/// `kckpt restore` prints `resumed` and then what the original printed
/// after `saved`.
#[test]
fn aarch64_rust_program_checkpoints_itself_and_is_restored() {
    let dir = TestDir::new("arm-self-rust");
    let program = cross_build(
        TARGET,
        &["-p", "kckpt", "--example", "self_counter"],
        "examples/self_counter",
    );
    aarch64_stub();
    let image = dir.join("self.kckpt");
    let out = run(qemu(&program).arg(&image).arg("5"), DUMP_TIMEOUT);
    let rest = lines_after_saved(&out);
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        DUMP_TIMEOUT,
    );
    assert_resumed_then(&out, &rest);
}

/// An x86_64 image given to the aarch64 stub: refused with one line.
#[test]
fn x86_64_image_is_refused_by_the_aarch64_stub() {
    let dir = TestDir::new("arm-x86-image");
    let image = dir.join("x86.kckpt");
    let out = run(
        Command::new(profile_file("examples/self_counter"))
            .arg(&image)
            .arg("2"),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = run(qemu(&aarch64_stub()).arg(&image), CMD_TIMEOUT);
    assert_refused("x86_64 image", &out, Some(126), &["another architecture"]);
}

#[test]
fn aarch64_second_thread_is_refused_under_qemu() {
    let dir = TestDir::new("arm-self-threads");
    let program = c_program(&dir);
    let image = dir.join("self.kckpt");
    let out = run(
        qemu(&program).arg(&image).args(["2", "thread"]),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("failed Device or resource busy") && text.contains("2 threads"),
        "{}",
        show(&out)
    );
    assert!(!image.exists(), "an image was left behind");
}
