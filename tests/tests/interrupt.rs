//! SIGINT, SIGTERM, SIGHUP or SIGQUIT sent to `kckpt dump` cancel it:
//! in both modes (the default kill included: the target is killed only
//! once the image is complete) the target goes on running with its memory
//! intact, no file is left, and kckpt exits with 128 + the signal number
//! after one line saying so. Also while a streamed image (`-o -`) waits
//! for a reader that stopped reading. A signal kckpt was started ignoring
//! (`nohup`) does not cancel anything.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

/// Start `kckpt dump` of `pid` into `dir/image.kckpt`, or to a pipe with
/// its temporary file in `dir` (`$TMPDIR`) when `stream`.
fn start_dump(pid: i32, dir: &Path, leave_running: bool, stream: bool) -> Child {
    let mut cmd = Command::new(kckpt());
    cmd.args(["dump", "-p", &pid.to_string(), "-o"]);
    if stream {
        cmd.arg("-").env("TMPDIR", dir).stdout(Stdio::piped());
    } else {
        cmd.arg(dir.join("image.kckpt")).stdout(Stdio::null());
    }
    if leave_running {
        cmd.arg("--leave-running");
    }
    only_stdio(&mut cmd)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kckpt dump")
}

/// Wait for the dumper to exit; its exit code and stderr.
fn finish(mut dumper: Child) -> (Option<i32>, String) {
    let mut stderr = dumper.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let Some(status) = wait_timeout(&mut dumper, Duration::from_secs(30)) else {
        let _ = dumper.kill();
        let _ = dumper.wait();
        panic!("the interrupted dump does not end");
    };
    (status.code(), reader.join().unwrap())
}

/// The exit line names the signal and what was left.
fn check_line(err: &str, code: Option<i32>, signal: Signal, pid: i32, outcome: &str) {
    assert_eq!(code, Some(128 + signal as i32), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    let expected = format!(
        "kckpt: interrupted by {}: process {pid} left running, {outcome}",
        signal.as_str()
    );
    assert_eq!(lines[0], expected);
}

/// The target runs (not stopped) and its memory is intact.
fn runs_intact(p: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(state(p.pid()), Some('t' | 'T')) {
        assert!(Instant::now() < deadline, "the target stays stopped");
        thread::sleep(Duration::from_millis(5));
    }
    assert!(state(p.pid()).is_some(), "the target is gone");
    // A round that started after the dump ended.
    p.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
    let line = p.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
    assert!(line.ends_with(" ok"), "the target's memory changed: {line}");
}

#[test]
fn a_signal_mid_dump_cancels_it_and_leaves_the_target_running() {
    let dir = TestDir::new("interrupt");
    let mut p = Proc::start(prog::MEMFILL, &["512"]);
    p.wait_for("ready", Duration::from_secs(60), |l| l.starts_with("ready"));
    let cases = [
        (Signal::SIGINT, false, false),
        (Signal::SIGINT, true, false),
        (Signal::SIGTERM, false, false),
        (Signal::SIGTERM, true, false),
        (Signal::SIGHUP, false, true),
        (Signal::SIGQUIT, true, true),
    ];
    for (signal, leave_running, stream) in cases {
        let what = format!("{signal} leave_running={leave_running} stream={stream}");
        let dumper = start_dump(p.pid(), dir.path(), leave_running, stream);
        // Once it copies memory (the target stopped meanwhile).
        let deadline = Instant::now() + Duration::from_secs(60);
        while unnamed_file_size(dumper.id(), dir.path()).is_none_or(|n| n <= 8 << 20) {
            assert!(
                Instant::now() < deadline,
                "{what}: the dump never started writing"
            );
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            state(p.pid()),
            Some('t'),
            "{what}: the target should be stopped"
        );
        kill(Pid::from_raw(dumper.id() as i32), signal).unwrap();
        let (code, err) = finish(dumper);
        check_line(&err, code, signal, p.pid(), "no image written");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert!(left.is_empty(), "{what}: left {left:?}");
        runs_intact(&mut p);
    }
}

#[test]
fn a_signal_while_the_stream_waits_for_its_reader_cancels_it() {
    let dir = TestDir::new("interrupt-stream");
    let mut p = Proc::start(prog::MEMFILL, &["1"]);
    p.wait_for("ready", Duration::from_secs(60), |l| l.starts_with("ready"));
    for leave_running in [false, true] {
        let mut dumper = start_dump(p.pid(), dir.path(), leave_running, true);
        // The image is complete once the stream starts; the reader then
        // stops reading and the dumper waits with a full pipe.
        let mut out = dumper.stdout.take().unwrap();
        let mut head = [0u8; 4];
        out.read_exact(&mut head).expect("the stream starts");
        assert_eq!(&head, b"\x7fELF");
        thread::sleep(Duration::from_millis(300));
        assert!(dumper.try_wait().unwrap().is_none(), "the dump ended");
        kill(Pid::from_raw(dumper.id() as i32), Signal::SIGINT).unwrap();
        let (code, err) = finish(dumper);
        drop(out);
        check_line(
            &err,
            code,
            Signal::SIGINT,
            p.pid(),
            "the image stream is incomplete",
        );
        runs_intact(&mut p);
    }
}

#[test]
fn an_ignored_signal_does_not_cancel_the_dump() {
    let dir = TestDir::new("interrupt-ignored");
    let image = dir.join("image.kckpt");
    let mut p = Proc::start(prog::MEMFILL, &["512"]);
    p.wait_for("ready", Duration::from_secs(60), |l| l.starts_with("ready"));
    // As `nohup` starts it: SIGHUP ignored (inherited through exec).
    let mut dumper = only_stdio(
        Command::new("sh")
            .args([
                "-c",
                r#"trap '' HUP; exec "$KCKPT" dump --leave-running -p "$PID" -o "$IMAGE""#,
            ])
            .env("KCKPT", kckpt())
            .env("PID", p.pid().to_string())
            .env("IMAGE", &image),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start kckpt dump");
    let deadline = Instant::now() + Duration::from_secs(60);
    while unnamed_file_size(dumper.id(), dir.path()).is_none_or(|n| n <= 8 << 20) {
        assert!(Instant::now() < deadline, "the dump never started writing");
        assert!(dumper.try_wait().unwrap().is_none(), "the dump ended early");
        thread::sleep(Duration::from_millis(2));
    }
    kill(Pid::from_raw(dumper.id() as i32), Signal::SIGHUP).unwrap();
    let (code, err) = finish(dumper);
    assert_eq!(code, Some(0), "stderr: {err}");
    let info = info_json(&image);
    assert!(info["stored_bytes"].as_u64().unwrap() >= 512 << 20);
    runs_intact(&mut p);
}
