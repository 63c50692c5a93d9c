//! The dumper killed with SIGKILL in the middle of a dump (while it copies
//! memory, the target stopped): the target is not left stopped and carries
//! on, and nothing appears under the image's final name.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The size of the dumper's temporary file in `dir`, if it exists yet: the
/// unnamed (`O_TMPFILE`) file a process holds open, which
/// `/proc/PID/fd/N` shows as `DIR/#INODE (deleted)`, or a named
/// `.image.kckpt.tmp.PID` where the file system has no `O_TMPFILE`.
fn temp_file_size(dir: &std::path::Path) -> Option<u64> {
    let unnamed = format!("{}/#", dir.display());
    let procs = fs::read_dir("/proc").ok()?.flatten();
    let held = procs
        .filter(|p| p.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|p| fs::read_dir(p.path().join("fd")).ok())
        .flat_map(|fds| fds.flatten())
        .find_map(|fd| {
            let link = fs::read_link(fd.path()).ok()?;
            let link = link.to_string_lossy();
            (link.starts_with(&unnamed) && link.ends_with(" (deleted)"))
                .then(|| fs::metadata(fd.path()).map(|m| m.len()).unwrap_or(0))
        });
    held.or_else(|| {
        fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with(".image.kckpt.tmp."))
                .then(|| e.metadata().map(|m| m.len()).unwrap_or(0))
        })
    })
}

#[test]
fn target_runs_on_when_the_dumper_is_killed_mid_dump() {
    let dir = TestDir::new("dumper-killed");
    let image = dir.join("image.kckpt");
    let mut p = Proc::start(prog::MEMFILL, &["512"]);
    p.wait_for("ready", Duration::from_secs(60), |l| l.starts_with("ready"));
    let mut dumper = Command::new(kckpt())
        .args(["dump", "-p", &p.pid().to_string(), "-o"])
        .arg(&image)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kckpt dump");
    // Kill it once it is writing memory (the target is stopped meanwhile).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if temp_file_size(dir.path()).is_some_and(|n| n > 8 << 20) {
            break;
        }
        if let Some(status) = dumper.try_wait().expect("wait") {
            panic!("the dump ended ({status}) before it could be killed mid-way");
        }
        assert!(
            Instant::now() < deadline,
            "the dump never started writing memory"
        );
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        state(p.pid()),
        Some('t'),
        "the target should be stopped by the dumper"
    );
    dumper.kill().expect("SIGKILL the dumper");
    dumper.wait().expect("reap the dumper");
    // The kernel detaches a dead tracer's tracees: the target runs again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(p.pid()).is_some_and(|s| s == 't' || s == 'T') {
        assert!(Instant::now() < deadline, "the target is still stopped");
        thread::sleep(Duration::from_millis(10));
    }
    let line = p.wait_for("a checksum line", Duration::from_secs(30), |l| {
        l.starts_with("round ")
    });
    assert!(
        line.ends_with(" ok"),
        "the target's memory changed: {line:?}"
    );
    assert!(
        !image.exists(),
        "a killed dump left a file under the final name"
    );
}
