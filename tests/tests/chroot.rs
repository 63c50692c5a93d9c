//! A process whose root directory was changed with `chroot` (format 1.5)
//! comes back in it; a restorer that may not `chroot` is refused before
//! anything changes. (zdtm chroot was restored outside its chroot.)

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn a_process_in_a_chroot_comes_back_in_it() {
    let dir = TestDir::new("chroot");
    let jail = dir.join("jail");
    fs::create_dir(&jail).unwrap();
    fs::write(jail.join("inside"), "inside the chroot\n").unwrap();
    let image = dir.join("chrooted.kckpt");
    let jail_s = jail.to_str().unwrap();
    let mut p = Proc::start(prog::CHROOTED, &[jail_s]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    dump_and_kill(&mut p, &image);
    let info = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("root:") && l.contains(jail_s) && l.ends_with("(chroot)")),
        "kckpt info shows the root directory: {text}"
    );

    // Without CAP_SYS_CHROOT: refused, nothing restored.
    let out = run(
        Command::new(require_tool("setpriv"))
            .arg("--bounding-set=-sys_chroot")
            .arg(kckpt())
            .arg("restore")
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_refused(
        "a chroot without CAP_SYS_CHROOT",
        &out,
        Some(126),
        &["needs CAP_SYS_CHROOT"],
    );

    let mut r = restore(&image);
    r.write_stdin("check\n");
    let line = r.line(LINE_TIMEOUT);
    if line != "ok" {
        r.fail(&format!("after the restore: {line}"));
    }
    let status = r.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "chrooted exited with {status}");
}
