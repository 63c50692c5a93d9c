//! Standard streams (issue 8): a descriptor 0-2 that was a file or device
//! is reopened from the image (path, offset, flags) like any other, so a
//! program whose output was redirected to a file and that is dumped
//! mid-way writes the same file, byte for byte, as an uninterrupted run
//! when restored with a plain `kckpt restore IMG`; terminals and pipes or
//! sockets to other processes stay those of whoever restores;
//! `--stdio=inherit` (`KCKPT_STDIO=inherit`) takes the restorer's
//! descriptors instead; `kckpt info` says what each of 0-2 was.

mod common;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Input for `stdio_copy`: 240 lines.
fn input(dir: &TestDir) -> PathBuf {
    let path = dir.join("input.txt");
    let text: String = (1..=240)
        .map(|i| format!("input line {i} {}\n", "x".repeat(i % 37)))
        .collect();
    fs::write(&path, text).unwrap();
    path
}

/// Start `cmd` with stdin, stdout and stderr as given and no other
/// descriptor.
fn spawn(cmd: &mut Command, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> std::process::Child {
    only_stdio(cmd)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn")
}

/// Wait until `path` holds at least `bytes` bytes.
fn wait_size(path: &Path, bytes: u64, what: &str) {
    let deadline = Instant::now() + LINE_TIMEOUT;
    while fs::metadata(path).map_or(0, |m| m.len()) < bytes {
        assert!(
            Instant::now() < deadline,
            "{what}: {} stays short",
            path.display()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Wait for a child, failing after `timeout`.
fn wait_child(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    match wait_timeout(child, timeout) {
        Some(s) => s,
        None => panic!("did not finish within {timeout:?}"),
    }
}

/// The restore command, with its standard streams captured (they must stay
/// unused when the process writes its own files).
fn plain_restore(image: &Path, args: &[&str]) -> std::process::Output {
    run(
        Command::new(kckpt()).arg("restore").args(args).arg(image),
        Duration::from_secs(60),
    )
}

/// `stdio_copy < input > out 2> err` (or `2>&1`, or `>>`), dumped after
/// `lines` lines, restored with a plain `kckpt restore`: `out` is what an
/// uninterrupted run writes.
fn copy_dumped_mid_way(name: &str, append: bool, stderr_to_out: bool) {
    let dir = TestDir::new(name);
    let input = input(&dir);
    let reference = dir.join("reference.txt");
    let out = dir.join("out.txt");
    let err = dir.join("err.txt");
    if append {
        // `>>` onto existing content.
        fs::write(&reference, "before\n").unwrap();
        fs::write(&out, "before\n").unwrap();
    }
    let open_out = |path: &Path| -> File {
        let mut o = OpenOptions::new();
        o.write(true).create(true);
        if append {
            o.append(true);
        } else {
            o.truncate(true);
        }
        o.open(path).unwrap()
    };
    let streams = |o: File, e: &Path| -> (Stdio, Stdio, Stdio) {
        let err = if stderr_to_out {
            Stdio::from(o.try_clone().unwrap())
        } else {
            Stdio::from(File::create(e).unwrap())
        };
        (
            Stdio::from(File::open(&input).unwrap()),
            Stdio::from(o),
            err,
        )
    };

    // The uninterrupted run.
    let (i, o, e) = streams(open_out(&reference), &dir.join("reference.err"));
    let mut child = spawn(&mut Command::new(prog::STDIO_COPY), i, o, e);
    assert!(wait_child(&mut child, Duration::from_secs(60)).success());
    let expected = fs::read(&reference).unwrap();
    assert!(expected.len() > 8000, "the copy is long enough to be cut");

    // Dumped mid-way (killed), restored with `kckpt restore IMG`.
    let (i, o, e) = streams(open_out(&out), &err);
    let mut child = spawn(&mut Command::new(prog::STDIO_COPY), i, o, e);
    wait_size(&out, 3000, name);
    let image = dir.join("copy.kckpt");
    dump(child.id() as i32, &image, false);
    let status = wait_child(&mut child, Duration::from_secs(10));
    assert!(
        !status.success(),
        "the dump should have killed it: {status}"
    );
    let at_dump = fs::read(&out).unwrap();
    assert!(
        at_dump.len() < expected.len() && expected.starts_with(&at_dump),
        "dumped mid-way: {} of {} bytes written",
        at_dump.len(),
        expected.len()
    );

    let info = info_json(&image);
    let stdio = &info["files"]["stdio"];
    assert!(
        stdio[0]["was"].as_str().unwrap().contains("input.txt"),
        "{stdio}"
    );
    assert!(
        stdio[1]["was"].as_str().unwrap().contains("out.txt"),
        "{stdio}"
    );

    let r = plain_restore(&image, &[]);
    assert!(r.status.success(), "{}", show(&r));
    assert!(
        r.stdout.is_empty(),
        "the restored process wrote to the restorer's stdout: {}",
        show(&r)
    );
    let got = fs::read(&out).unwrap();
    assert!(
        got == expected,
        "{name}: the restored output differs from an uninterrupted run ({} vs {} bytes)",
        got.len(),
        expected.len()
    );
    if !stderr_to_out {
        let progress = fs::read_to_string(&err).unwrap();
        assert!(progress.ends_with("copied 240\n"), "{progress}");
        assert_eq!(
            progress.lines().count(),
            24,
            "stderr (a file too) went on where it was: {progress}"
        );
    }
}

#[test]
fn stdin_and_stdout_files_are_reopened_at_their_offsets() {
    copy_dumped_mid_way("stdio-files", false, false);
}

#[test]
fn stdout_appended_and_stderr_shared_with_it_are_identical() {
    copy_dumped_mid_way("stdio-append", true, true);
}

/// The xorshift64 numbers after `seed` (test data, the same every run).
fn xorshift(seed: u64) -> impl Iterator<Item = u64> {
    std::iter::successors(Some(seed), |&x| {
        let x = x ^ (x << 13);
        let x = x ^ (x >> 7);
        Some(x ^ (x << 17))
    })
    .skip(1)
}

#[test]
fn sort_output_file_is_written_by_the_restored_sort() {
    let sort = require_tool("sort");
    let dir = TestDir::new("stdio-sort");
    let input = dir.join("in.txt");
    let mut text = String::with_capacity(24 << 20);
    for (i, x) in xorshift(0x9e37_79b9_7f4a_7c15).take(1_200_000).enumerate() {
        text.push_str(&format!("{:016x} {i}\n", x));
    }
    fs::write(&input, &text).unwrap();
    let expected_path = dir.join("expected.txt");
    let args = |out: &Path| {
        vec![
            "--parallel=1".to_owned(),
            "-S".to_owned(),
            "400M".to_owned(),
            "-o".to_owned(),
            out.display().to_string(),
            input.display().to_string(),
        ]
    };
    let reference = run(
        Command::new(&sort).args(args(&expected_path)),
        Duration::from_secs(120),
    );
    assert!(reference.status.success(), "{}", show(&reference));

    let out = dir.join("out.txt");
    let mut child = spawn(
        Command::new(&sort).args(args(&out)),
        Stdio::null(),
        Stdio::null(),
        Stdio::piped(),
    );
    // sort opens the output on fd 1 first, reads the input, sorts, and
    // writes at the end: dump once fd 1 is the output file.
    let pid = child.id() as i32;
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let link = fs::read_link(format!("/proc/{pid}/fd/1")).unwrap_or_default();
        if link == out {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sort never opened {}",
            out.display()
        );
        thread::sleep(Duration::from_millis(2));
    }
    let image = dir.join("sort.kckpt");
    dump(pid, &image, false);
    let _ = wait_child(&mut child, Duration::from_secs(10));
    assert_eq!(
        fs::metadata(&out).unwrap().len(),
        0,
        "sort had already written its output before the dump: the input is too small"
    );

    let r = plain_restore(&image, &[]);
    assert!(r.status.success(), "{}", show(&r));
    assert!(r.stdout.is_empty(), "{}", show(&r));
    assert!(
        fs::read(&out).unwrap() == fs::read(&expected_path).unwrap(),
        "the restored sort's output differs from an uninterrupted run"
    );
}

#[test]
fn gzip_to_a_redirected_stdout_is_byte_identical() {
    let gzip = require_tool("gzip");
    let dir = TestDir::new("stdio-gzip");
    let input = dir.join("data.bin");
    let mut data = Vec::with_capacity(12 << 20);
    let mut xs = xorshift(0x1234_5678_9abc_def1);
    while data.len() < 12 << 20 {
        let x = xs.next().unwrap();
        // Compressible but not trivially: a few distinct bytes.
        data.extend_from_slice(&[b'a' + (x % 7) as u8, b' ', b'0' + (x % 10) as u8]);
    }
    fs::write(&input, &data).unwrap();
    let reference = dir.join("reference.gz");
    let mut child = spawn(
        Command::new(&gzip).args(["-c", "-6"]).arg(&input),
        Stdio::null(),
        Stdio::from(File::create(&reference).unwrap()),
        Stdio::null(),
    );
    assert!(wait_child(&mut child, Duration::from_secs(120)).success());
    let expected = fs::read(&reference).unwrap();

    let out = dir.join("out.gz");
    let mut child = spawn(
        Command::new(&gzip).args(["-c", "-6"]).arg(&input),
        Stdio::null(),
        Stdio::from(File::create(&out).unwrap()),
        Stdio::null(),
    );
    wait_size(&out, 64 << 10, "gzip");
    let image = dir.join("gzip.kckpt");
    dump(child.id() as i32, &image, false);
    let _ = wait_child(&mut child, Duration::from_secs(10));
    let at_dump = fs::metadata(&out).unwrap().len();
    assert!(
        at_dump < expected.len() as u64,
        "gzip finished before the dump ({at_dump} bytes)"
    );
    let r = plain_restore(&image, &[]);
    assert!(r.status.success(), "{}", show(&r));
    assert!(r.stdout.is_empty(), "{}", show(&r));
    assert!(
        fs::read(&out).unwrap() == expected,
        "the restored gzip's output differs from an uninterrupted run"
    );
}

/// Dump `stdio_copy N > out` mid-way; returns (image, out, lines at dump).
fn generated_dumped(dir: &TestDir, extra: &[&str]) -> (PathBuf, PathBuf) {
    let out = dir.join("out.txt");
    let mut args = vec!["200"];
    args.extend_from_slice(extra);
    let mut child = spawn(
        Command::new(prog::STDIO_COPY).args(&args),
        Stdio::null(),
        Stdio::from(File::create(&out).unwrap()),
        Stdio::piped(),
    );
    wait_size(&out, 1500, "stdio_copy");
    let image = dir.join("gen.kckpt");
    dump(child.id() as i32, &image, false);
    let _ = wait_child(&mut child, Duration::from_secs(10));
    (image, out)
}

#[test]
fn stdio_inherit_takes_the_restorers_descriptors() {
    let dir = TestDir::new("stdio-inherit");
    let (image, out) = generated_dumped(&dir, &[]);
    let at_dump = fs::read(&out).unwrap();
    let r = plain_restore(&image, &["--stdio=inherit"]);
    assert!(r.status.success(), "{}", show(&r));
    assert_eq!(fs::read(&out).unwrap(), at_dump, "the file was written to");
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.ends_with("200: generated line 200 of 200\n")
            && !text.contains("1: generated line 1 "),
        "the rest of the output goes to the restorer's stdout: {}",
        show(&r)
    );

    // The same through the environment, for `./IMAGE`.
    let (image, out) = generated_dumped(&dir, &[]);
    let at_dump = fs::read(&out).unwrap();
    let mut p = restore_binfmt_env(&image, &[("KCKPT_STDIO", "inherit")]);
    let lines = p.drain(Duration::from_secs(30));
    assert_eq!(
        lines.last().map(String::as_str),
        Some("200: generated line 200 of 200")
    );
    assert_eq!(fs::read(&out).unwrap(), at_dump);
}

#[test]
fn a_truncated_output_file_is_refused_with_the_way_out() {
    let dir = TestDir::new("stdio-truncated");
    let (image, out) = generated_dumped(&dir, &[]);
    // `kckpt restore IMG > out.txt`: the shell truncated it first.
    File::create(&out).unwrap();
    let r = plain_restore(&image, &[]);
    assert_refused(
        "restore onto a truncated stdout file",
        &r,
        Some(126),
        &["--stdio=inherit"],
    );
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("fd 1 ("),
        "{}",
        show(&r)
    );

    let bad = run(
        Command::new(kckpt())
            .arg("restore")
            .arg(&image)
            .env("KCKPT_STDIO", "both"),
        CMD_TIMEOUT,
    );
    assert_refused("KCKPT_STDIO=both", &bad, Some(2), &["KCKPT_STDIO"]);
}

#[test]
fn a_closed_stdin_stays_closed() {
    let dir = TestDir::new("stdio-closed");
    let (image, out) = generated_dumped(&dir, &["close0"]);
    let info = info_json(&image);
    assert_eq!(info["files"]["stdio"][0]["was"], "closed", "{info}");
    let r = plain_restore(&image, &[]);
    assert!(r.status.success(), "{}", show(&r));
    assert!(
        String::from_utf8_lossy(&r.stderr).ends_with("fd0 closed\n"),
        "{}",
        show(&r)
    );
    assert!(fs::read_to_string(&out)
        .unwrap()
        .ends_with("200: generated line 200 of 200\n"));
}

/// A new pseudo-terminal: (master, slave), neither the controlling
/// terminal of this process.
#[allow(unsafe_code)]
fn openpty() -> (File, File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let open = |path: &str| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let master = open("/dev/ptmx");
    let (mut unlock, mut n): (nix::libc::c_int, nix::libc::c_uint) = (0, 0);
    // SAFETY: TIOCSPTLCK reads one int, TIOCGPTN writes one unsigned int.
    unsafe {
        assert_eq!(
            nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSPTLCK, &raw mut unlock),
            0
        );
        assert_eq!(
            nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCGPTN, &raw mut n),
            0
        );
    }
    let slave = open(&format!("/dev/pts/{n}"));
    (master, slave)
}

/// Everything read from a pseudo-terminal master until `until` shows up
/// (carriage returns removed), on a thread; fails after a timeout.
fn read_master(master: File) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut file = master;
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk: Vec<u8> = buf[..n].iter().copied().filter(|&b| b != b'\r').collect();
                    if tx.send(chunk).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn collect_until(rx: &std::sync::mpsc::Receiver<Vec<u8>>, got: &mut Vec<u8>, until: &str) {
    let deadline = Instant::now() + LINE_TIMEOUT;
    while !String::from_utf8_lossy(got).contains(until) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => got.extend_from_slice(&chunk),
            Err(_) => panic!(
                "{until:?} never came through the terminal; got:\n{}",
                String::from_utf8_lossy(got)
            ),
        }
    }
}

#[test]
fn a_terminal_is_the_restorers_or_reopened_by_its_path_with_stdio_saved() {
    let dir = TestDir::new("stdio-terminal");
    let (master, slave) = openpty();
    let rx = read_master(master);
    let mut child = spawn(
        Command::new(prog::STDIO_COPY).arg("200"),
        Stdio::null(),
        Stdio::from(slave.try_clone().unwrap()),
        Stdio::piped(),
    );
    let mut seen = Vec::new();
    collect_until(&rx, &mut seen, "20: generated line 20 ");
    let image = dir.join("tty.kckpt");
    dump(child.id() as i32, &image, false);
    let _ = wait_child(&mut child, Duration::from_secs(10));
    let info = info_json(&image);
    let stdout = &info["files"]["stdio"][1];
    assert!(
        stdout["was"]
            .as_str()
            .unwrap()
            .starts_with("terminal /dev/pts/"),
        "{stdout}"
    );

    // Default: the restorer's stdout (a pipe here), with a warning that its
    // terminal mode could not be applied.
    let r = plain_restore(&image, &[]);
    assert!(r.status.success(), "{}", show(&r));
    assert!(
        String::from_utf8_lossy(&r.stdout).ends_with("200: generated line 200 of 200\n"),
        "{}",
        show(&r)
    );
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not a terminal now"),
        "{}",
        show(&r)
    );

    // --stdio=saved: the terminal reopened by its path; nothing on the
    // restorer's stdout; the stderr pipe to the test cannot be reopened.
    let r = plain_restore(&image, &["--stdio=saved"]);
    assert_refused(
        "--stdio=saved with stderr a pipe to another process",
        &r,
        Some(126),
        &["fd 2 (pipe to another process)"],
    );
    // The same program with stderr on the terminal too.
    let mut child = spawn(
        Command::new(prog::STDIO_COPY).arg("200"),
        Stdio::null(),
        Stdio::from(slave.try_clone().unwrap()),
        Stdio::from(slave.try_clone().unwrap()),
    );
    seen.clear();
    collect_until(&rx, &mut seen, "copied 20\n");
    let image = dir.join("tty2.kckpt");
    dump(child.id() as i32, &image, false);
    let _ = wait_child(&mut child, Duration::from_secs(10));
    let r = plain_restore(&image, &["--stdio=saved"]);
    assert!(r.status.success(), "{}", show(&r));
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{}", show(&r));
    // "copied 200" is written after line 200: wait for it, the last line,
    // since the terminal's reader may hand over the two in separate chunks.
    collect_until(&rx, &mut seen, "copied 200\n");
    assert!(String::from_utf8_lossy(&seen).contains("200: generated line 200 of 200\n"));
    drop(slave);
}

#[test]
fn an_unprivileged_user_restores_its_redirected_output() {
    require_tool("setpriv");
    let nobody = |cmd: &str| command_as(&NOBODY, cmd);
    let dir = TestDir::new("stdio-nobody");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = dir.join("out.txt");
    let file = File::create(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
    let mut child = spawn(
        nobody(prog::STDIO_COPY).arg("150"),
        Stdio::null(),
        Stdio::from(file),
        Stdio::piped(),
    );
    wait_size(&out, 1500, "stdio_copy as nobody");
    let image = dir.join("nobody.kckpt");
    let d = run(
        nobody(kckpt().to_str().unwrap())
            .args(["dump", "-p", &child.id().to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(d.status.success(), "{}", show(&d));
    let _ = wait_child(&mut child, Duration::from_secs(10));
    let r = run(
        nobody(kckpt().to_str().unwrap()).arg("restore").arg(&image),
        Duration::from_secs(60),
    );
    assert!(r.status.success(), "{}", show(&r));
    assert!(r.stdout.is_empty(), "{}", show(&r));
    let expected: String = (1..=150)
        .map(|i| format!("{i}: generated line {i} of 150\n"))
        .collect();
    assert_eq!(fs::read_to_string(&out).unwrap(), expected);
}
