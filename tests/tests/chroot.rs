//! A process in a `chroot` (format 1.5, `FsRecord.root`; zdtm `chroot`):
//! restored in the same root directory, it opens the files of that root
//! by their paths there, and `kckpt info` names the root.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

const CHROOTED: &str = env!("KCKPT_PROG_CHROOTED");

#[test]
fn a_process_in_a_chroot_is_restored_in_it() {
    let dir = TestDir::new("chroot");
    let root = dir.join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("inside"), "in the root\n").unwrap();
    let mut p = Proc::start(CHROOTED, &[root.to_str().unwrap()]);
    let ready = p.line(LINE_TIMEOUT);
    assert!(ready.starts_with("ready "), "{ready:?}");
    p.write_stdin("go\n");
    assert_eq!(p.line(LINE_TIMEOUT), "inside: in the root");
    let image = dir.join("chroot.kckpt");
    dump(p.pid(), &image, false);
    p.wait_exit(Duration::from_secs(30));
    let info = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains(&format!("root:           {} (chroot)", root.display())),
        "kckpt info names the root directory: {text}"
    );
    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(
        r.line(LINE_TIMEOUT),
        "inside: in the root",
        "after the restore"
    );
    r.kill();
}
