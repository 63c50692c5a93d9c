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
    let held = fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .find_map(|pid| unnamed_file_size(pid, dir));
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

/// Output lines of `injectee` are "T N ok"; anything else is a failure.
fn expect_rounds(p: &mut Proc, rounds: usize, what: &str) {
    let mut seen = [0usize; 2];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.iter().any(|&n| n < rounds) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = p.next_line(left) else {
            p.fail(&format!("{what}: the target stopped making progress"));
        };
        let mut f = line.split_whitespace();
        match (f.next(), f.next(), f.next()) {
            (Some(t @ ("0" | "1")), Some(_), Some("ok")) => seen[usize::from(t == "1")] += 1,
            _ => p.fail(&format!("{what}: the target reports {line:?}")),
        }
    }
}

/// Not stopped, not traced, and both threads carry on checking their state.
fn assert_unharmed(p: &mut Proc, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = fs::read_to_string(format!("/proc/{}/status", p.pid())).unwrap_or_default();
        let traced = status
            .lines()
            .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"));
        let stopped = state(p.pid()).is_some_and(|s| s == 't' || s == 'T');
        if !traced && !stopped {
            break;
        }
        if Instant::now() > deadline {
            p.fail(&format!("{what}: the target is still stopped or traced"));
        }
        thread::sleep(Duration::from_millis(10));
    }
    // Drop what was printed before the dump, then see fresh rounds.
    while p.next_line(Duration::from_millis(1)).is_some() {}
    expect_rounds(p, 3, what);
}

/// `kckpt dump` with `KCKPT_TEST_DIE_AT=point`, which must end by SIGKILL.
fn dump_dying_at(pid: i32, image: &std::path::Path, leave_running: bool, point: &str) {
    let mut cmd = Command::new(kckpt());
    cmd.args(["dump", "-p", &pid.to_string(), "-o"])
        .arg(image)
        .env("KCKPT_TEST_DIE_AT", point);
    if leave_running {
        cmd.arg("--leave-running");
    }
    let out = run(&mut cmd, DUMP_TIMEOUT);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "the dump should have died at {point}:\n{}",
        show(&out)
    );
}

/// The files in `dir`.
fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The dumper SIGKILLed at exact moments: while the target's threads are
/// merely seized, as each kind of injected system call enters the kernel
/// and stops at its exit (first, middle and last calls of the main thread,
/// first and last calls of the worker thread), while memory is copied, once the image
/// is written but not linked, and once it is linked but the target not yet
/// killed or resumed. Each time, in both modes: the target's two threads
/// run on with every register, xmm register, blocked mask, alternate stack,
/// clear-child-tid address and handler as they were (injectee checks them
/// after every system call), and the output directory holds nothing, or
/// once the image was linked, only the complete image.
#[test]
fn target_unharmed_when_the_dumper_dies_at_any_point() {
    let dir = TestDir::new("dumper-dies-at");
    let image = dir.join("image.kckpt");
    let mut p = Proc::start(prog::INJECTEE, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    expect_rounds(&mut p, 2, "before the dumps");
    // 62 rt_sigaction, sigaltstack, PR_GET_TID_ADDRESS, PR_GET_SECUREBITS,
    // brk, PR_GET_DUMPABLE, PR_GET_CHILD_SUBREAPER, PR_GET_THP_DISABLE and
    // membarrier in the main thread (calls 1-70), sigaltstack,
    // PR_GET_TID_ADDRESS and PR_GET_SECUREBITS in the worker (71-73).
    let points = [
        "seized",
        "inject-entry:1",
        "inject-exit:1",
        "inject-entry:30",
        "inject-exit:63",
        "inject-exit:64",
        "inject-exit:66",
        "inject-exit:68",
        "inject-exit:70",
        "inject-entry:71",
        "inject-exit:73",
        "copy:1",
        "copy:2",
        "written",
        "committed",
    ];
    for leave_running in [true, false] {
        for point in points {
            let what = format!(
                "dumper killed at {point} ({})",
                if leave_running {
                    "--leave-running"
                } else {
                    "default mode"
                }
            );
            dump_dying_at(p.pid(), &image, leave_running, point);
            assert_unharmed(&mut p, &what);
            let left = dir_entries(dir.path());
            if point == "committed" {
                assert_eq!(left, ["image.kckpt"], "{what}: the output directory");
                let out = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
                assert!(out.status.success(), "{what}: the image: {}", show(&out));
                fs::remove_file(&image).expect("remove the image");
            } else {
                assert!(left.is_empty(), "{what}: the dump left {left:?} behind");
            }
        }
    }
    // After all that, a whole dump still works and restores.
    dump(p.pid(), &image, false);
    let mut r = restore(&image);
    expect_rounds(&mut r, 3, "restored");
}

/// The same in a process whose memory has no `syscall; ret` or
/// `rt_sigreturn` sequence (no libc): the dumper falls back to bare
/// injected calls, and the dump, the restore and a dumper killed outside
/// the calls all still work.
#[test]
fn process_without_libc_is_dumped_with_bare_calls() {
    let bytes = fs::read(prog::NOLIBC).expect("read nolibc");
    for seq in [
        &[0x0f, 0x05, 0xc3][..],
        &[0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05],
    ] {
        assert!(
            !bytes.windows(seq.len()).any(|w| w == seq),
            "nolibc must not contain {seq:x?}: this test would not test the fallback"
        );
    }
    let dir = TestDir::new("dumper-bare");
    let image = dir.join("image.kckpt");
    let mut p = Proc::start(prog::NOLIBC, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let tick = |l: &str| l.strip_prefix("tick ").and_then(|n| n.parse::<u64>().ok());
    for point in ["seized", "copy:1", "written"] {
        dump_dying_at(p.pid(), &image, false, point);
        while p.next_line(Duration::from_millis(1)).is_some() {}
        let a = p.line(LINE_TIMEOUT);
        let b = p.line(LINE_TIMEOUT);
        assert_eq!(
            tick(&b),
            tick(&a).map(|n| n + 1),
            "after a dumper killed at {point}: {a:?} then {b:?}"
        );
        assert!(dir_entries(dir.path()).is_empty(), "{point}: files left");
    }
    dump(p.pid(), &image, true);
    let last = tick(&p.line(LINE_TIMEOUT)).expect("a tick");
    dump(p.pid(), &image, false);
    let mut r = restore(&image);
    let first = tick(&r.line(LINE_TIMEOUT)).expect("a tick after restore");
    assert!(first > last, "restored at tick {first}, last seen {last}");
    assert_eq!(tick(&r.line(LINE_TIMEOUT)), Some(first + 1));
}

/// Random moments over the first 60 ms of a dump, both modes: the target
/// never dies unless a complete image exists (and then only in the default
/// mode), and is never left stopped. `scripts/kill-dumper.sh` runs the same
/// at length.
/// The target exits within two seconds (it was killed).
fn gone_soon(p: &mut Proc) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if p.exited().is_some() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn target_survives_dumpers_killed_at_random_moments() {
    let dir = TestDir::new("dumper-random-kill");
    let image = dir.join("image.kckpt");
    let mut seed = std::process::id() as u64 | 1;
    let mut rand = move |max: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % max
    };
    for leave_running in [true, false] {
        for trial in 0..20 {
            let mut p = Proc::start(prog::INJECTEE, &[]);
            p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
            expect_rounds(&mut p, 1, "before the dump");
            let mut cmd = Command::new(kckpt());
            cmd.args(["dump", "-p", &p.pid().to_string(), "-o"])
                .arg(&image);
            if leave_running {
                cmd.arg("--leave-running");
            }
            let mut dumper = only_stdio(&mut cmd)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start kckpt dump");
            let delay = rand(60_000);
            thread::sleep(Duration::from_micros(delay));
            let _ = dumper.kill();
            let finished = dumper.wait().expect("reap the dumper").success();
            let what =
                format!("trial {trial}, killed after {delay} µs (leave_running {leave_running})");
            let left = dir_entries(dir.path());
            // Killed once the image was in place and the target killed,
            // before it could exit: as if it had finished.
            let dead = !leave_running
                && left == ["image.kckpt"]
                && state(p.pid()).is_none_or(|s| s == 'Z');
            if !leave_running && (finished || dead) {
                assert_eq!(left, ["image.kckpt"], "{what}");
                p.wait_exit(Duration::from_secs(10));
            } else if !leave_running && left == ["image.kckpt"] && gone_soon(&mut p) {
                // The image was complete and the dumper had killed the
                // target when it was killed itself (before it exited).
            } else {
                assert_unharmed(&mut p, &what);
                assert!(
                    left.is_empty() || left == ["image.kckpt"],
                    "{what}: left {left:?}"
                );
            }
            let _ = fs::remove_file(&image);
        }
    }
}
