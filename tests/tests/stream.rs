//! Images through pipes: `kckpt dump -o -` writes the image to standard
//! output once it is complete (a valid image byte for byte: piped into
//! `kckpt restore -`, or into a file that then runs as `./file` under
//! binfmt), and is refused when standard output is a terminal; a stream
//! that fails (the reader goes away, the disk is full) is a failed dump
//! that leaves the target running. `kckpt info -` and `kckpt restore -`
//! read an image from standard input (also lazily, mapped from the memfd
//! it is copied into); they refuse a terminal, and a FIFO, directory or
//! missing file given as the image with one line, without waiting.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The command line of a running process (to find it once restored).
fn cmdline(pid: i32) -> Vec<u8> {
    read_proc(pid, "cmdline").expect("cmdline")
}

/// The last count a counter printed before the dump killed it.
fn last_count(p: &mut Proc) -> u64 {
    p.drain(Duration::from_secs(30));
    let _ = p.wait_exit(Duration::from_secs(10));
    parse_counter(p.last_seen().expect("the counter printed nothing")).0
}

#[test]
fn a_streamed_dump_piped_into_restore_carries_on() {
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.wait_for("count 3", LINE_TIMEOUT, |l| parse_counter(l).0 >= 3);
    let cmd = cmdline(p.pid());
    let mut r = Proc::spawn(
        "dump | restore -",
        Command::new("sh")
            .args([
                "-c",
                r#""$KCKPT" dump -p "$PID" -o - | exec "$KCKPT" restore -"#,
            ])
            .env("KCKPT", kckpt())
            .env("PID", p.pid().to_string()),
    );
    let last = last_count(&mut p);
    r.wait_restored(&cmd);
    expect_counter_from(&mut r, last, 5);
}

#[test]
fn a_streamed_image_is_a_valid_file_and_runs_under_binfmt() {
    let dir = TestDir::new("stream-file");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.wait_for("count 3", LINE_TIMEOUT, |l| parse_counter(l).0 >= 3);
    let out = run(
        Command::new(kckpt()).args(["dump", "-p", &p.pid().to_string(), "-o", "-"]),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    // Only the summary line, on stderr: stdout is the image.
    assert!(dump_warnings(&out).is_empty(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to standard output"),
        "{}",
        show(&out)
    );
    let last = last_count(&mut p);
    let image = dir.join("streamed.kckpt");
    fs::write(&image, &out.stdout).unwrap();
    let info = info_json(&image);
    assert_eq!(info["file_size"].as_u64(), Some(out.stdout.len() as u64));
    let mut r = restore_binfmt(&image);
    expect_counter_from(&mut r, last, 5);
}

#[test]
fn info_reads_an_image_from_standard_input() {
    let dir = TestDir::new("stream-info");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.line(LINE_TIMEOUT);
    // Straight from a streaming dump.
    let out = run(
        Command::new("sh")
            .args([
                "-c",
                r#""$KCKPT" dump --leave-running -p "$PID" -o - | "$KCKPT" info --json -"#,
            ])
            .env("KCKPT", kckpt())
            .env("PID", p.pid().to_string()),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["pid"].as_i64(), Some(p.pid() as i64));
    // From a file redirected to standard input: the same description as
    // of the file itself.
    let image = dir.join("image.kckpt");
    dump(p.pid(), &image, true);
    let from_stdin = run(
        Command::new("sh")
            .args(["-c", r#"exec "$KCKPT" info - < "$IMAGE""#])
            .env("KCKPT", kckpt())
            .env("IMAGE", &image),
        CMD_TIMEOUT,
    );
    let from_file = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    assert!(from_stdin.status.success(), "{}", show(&from_stdin));
    let text = String::from_utf8_lossy(&from_stdin.stdout);
    assert!(text.contains("standard input"), "{text}");
    let rest = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(rest(&from_stdin), rest(&from_file));
    // Something that is not an image, on standard input.
    let out = run(
        Command::new("sh")
            .args(["-c", r#"echo hello | exec "$KCKPT" info -"#])
            .env("KCKPT", kckpt()),
        CMD_TIMEOUT,
    );
    assert_refused("info - (not an image)", &out, Some(1), &["standard input"]);
    let out = run(
        Command::new("sh")
            .args(["-c", r#"echo hello | exec "$KCKPT" restore -"#])
            .env("KCKPT", kckpt()),
        CMD_TIMEOUT,
    );
    assert_refused(
        "restore - (not an image)",
        &out,
        Some(1),
        &["standard input"],
    );
}

#[test]
fn a_lazy_restore_maps_the_image_from_its_memfd() {
    let dir = TestDir::new("stream-lazy");
    let image = dir.join("image.kckpt");
    let mut p = Proc::start(prog::MEMFILL, &["16"]);
    p.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
    let cmd = cmdline(p.pid());
    dump_kills(&mut p, &image);
    let mut r = Proc::spawn(
        "restore - (lazy)",
        Command::new("sh")
            .args(["-c", r#"exec "$KCKPT" restore - < "$IMAGE""#])
            .env("KCKPT", kckpt())
            .env("IMAGE", &image)
            .env("KCKPT_RESTORE_MODE", "mmap"),
    );
    r.wait_restored(&cmd);
    let line = r.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
    assert!(line.ends_with(" ok"), "{line}");
    let maps = maps(r.pid());
    assert!(
        maps.iter()
            .any(|l| l.contains("/memfd:kckpt-image (deleted)")),
        "no mapping of the memfd:\n{}",
        maps.join("\n")
    );
}

/// Run `cmd` (a shell command) with a pseudo-terminal as its standard
/// input, output and error; returns its exit status and what it printed.
fn on_a_terminal(cmd: &str) -> (i32, String) {
    let script = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", sys.argv[1]])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = run(
        Command::new(PYTHON3)
            .args(["-c", script, cmd])
            .env("KCKPT", kckpt()),
        CMD_TIMEOUT,
    );
    let code = out.status.code().expect("python exited");
    (code, String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}

#[test]
fn a_terminal_is_refused_as_output_and_as_input() {
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.line(LINE_TIMEOUT);
    for (cmd, keyword) in [
        (format!(r#""$KCKPT" dump -p {} -o -"#, p.pid()), "terminal"),
        (
            format!(r#""$KCKPT" dump --leave-running -p {} -o -"#, p.pid()),
            "terminal",
        ),
        (r#""$KCKPT" info -"#.to_owned(), "terminal"),
        (r#""$KCKPT" restore -"#.to_owned(), "terminal"),
    ] {
        let (code, text) = on_a_terminal(&cmd);
        assert_eq!(code, 1, "{cmd}: {text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{cmd}: {text}");
        assert!(
            lines[0].starts_with("kckpt: ") && lines[0].contains(keyword),
            "{cmd}: {text}"
        );
    }
    // Never seized: it runs on.
    p.line(LINE_TIMEOUT);
}

#[test]
fn a_failed_stream_leaves_the_target_running() {
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.line(LINE_TIMEOUT);
    let pid = p.pid().to_string();
    for leave_running in [false, true] {
        let mut args = vec!["dump", "-p", &pid, "-o", "-"];
        if leave_running {
            args.push("--leave-running");
        }
        // The reader goes away after 100 bytes (the image is larger than
        // a pipe holds).
        let mut dumper = only_stdio(Command::new(kckpt()).args(&args))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kckpt dump");
        let mut stdout = dumper.stdout.take().unwrap();
        let mut head = [0u8; 100];
        stdout.read_exact(&mut head).expect("the stream starts");
        assert_eq!(&head[..4], b"\x7fELF");
        drop(stdout);
        let mut err = String::new();
        dumper
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = dumper.wait().unwrap();
        let out = std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: err.into_bytes(),
        };
        assert_refused("reader gone", &out, Some(1), &["broken pipe"]);
        p.line(LINE_TIMEOUT);
        // A full disk.
        let out = run(
            Command::new("sh")
                .args(["-c", r#"exec "$KCKPT" "$@" > /dev/full"#, "sh"])
                .args(&args)
                .env("KCKPT", kckpt()),
            DUMP_TIMEOUT,
        );
        assert_refused("/dev/full", &out, Some(1), &["no space left"]);
        assert!(!matches!(state(p.pid()), Some('t' | 'T') | None));
        p.line(LINE_TIMEOUT);
    }
}

#[test]
fn images_that_are_not_regular_files_are_refused_at_once() {
    let dir = TestDir::new("stream-inputs");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let missing = dir.join("missing.kckpt");
    let cases: [(&Path, &[&str]); 4] = [
        (&fifo, &["FIFO"]),
        (dir.path(), &["directory"]),
        (&missing, &["no such file"]),
        (Path::new("/dev/zero"), &["character device"]),
    ];
    for (path, keywords) in cases {
        for sub in ["info", "restore"] {
            let out = run(Command::new(kckpt()).arg(sub).arg(path), CMD_TIMEOUT);
            assert_refused(
                &format!("{sub} {}", path.display()),
                &out,
                Some(1),
                keywords,
            );
        }
    }
    // Unreadable (root reads anything: as nobody then).
    let locked = dir.join("locked.kckpt");
    fs::write(&locked, b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    for sub in ["info", "restore"] {
        let mut cmd = if nix::unistd::geteuid().is_root() {
            require_tool("setpriv");
            kckpt_as(&NOBODY)
        } else {
            Command::new(kckpt())
        };
        let out = run(cmd.arg(sub).arg(&locked), CMD_TIMEOUT);
        assert_refused("unreadable", &out, Some(1), &["permission denied"]);
    }
}
