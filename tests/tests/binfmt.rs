//! Executing an image runs it through binfmt_misc: `./counter.kckpt` in a
//! user namespace with its own binfmt_misc instance (never the machine's).

mod common;

use std::process::Command;

use common::*;

#[test]
fn image_runs_as_a_program_via_binfmt() {
    require_tool("unshare");
    let dir = TestDir::new("binfmt");
    let image = dir.join("counter.kckpt");
    let last = counter_dumped(prog::COUNTER_PIE, &image, 3);
    let mut r = restore_binfmt(&image);
    expect_counter_from(&mut r, last, 5);
}

#[test]
fn binfmt_register_status_unregister_commands() {
    require_tool("unshare");
    let script = "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        && \"$KCKPT\" binfmt register --stub \"$KCKPT_STUB\" \
        && echo '--- status' && \"$KCKPT\" binfmt status \
        && echo '--- entry' && cat /proc/sys/fs/binfmt_misc/kckpt-x86_64 \
        && echo '--- unregister' && \"$KCKPT\" binfmt unregister \
        && echo '--- after' && ls /proc/sys/fs/binfmt_misc";
    let out = run(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .env("KCKPT", kckpt())
            .env("KCKPT_STUB", stub()),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", show(&out));
    let section = |name: &str| -> String {
        let start = text
            .find(&format!("--- {name}\n"))
            .unwrap_or_else(|| panic!("no section {name}: {}", show(&out)));
        let body = &text[start + name.len() + 5..];
        body[..body.find("--- ").unwrap_or(body.len())].to_owned()
    };
    let stub_path = std::fs::canonicalize(stub()).unwrap();
    let status = section("status");
    assert!(
        status.contains("enabled") && status.contains(stub_path.to_str().unwrap()),
        "`kckpt binfmt status` should say enabled and name the stub:\n{status}"
    );
    let entry = section("entry");
    assert!(entry.contains("flags: F\n"), "only flag F: {entry}");
    let after = section("after");
    assert!(!after.contains("kckpt-x86_64"), "still registered: {after}");
}
