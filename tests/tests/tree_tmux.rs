//! A tmux server with two windows, dumped and attached again after the
//! restore (issue 9, "Measured by").
//!
//! `tmux -S SOCK -f /dev/null` runs a server with two windows: window 0 an
//! interactive bash running a counting loop typed into it, window 1 a
//! counting loop of its own (a line every 0.2 s), no client attached. The
//! server and its tree (the panes' shells and their `sleep`s) are dumped
//! (killed), the stale socket file is left where it was, and the image is
//! restored: as root by executing it (`./FILE`, binfmt_misc) and as
//! nobody with `kckpt restore` (the socket directory being nobody's).
//! Then `tmux -S SOCK` reaches the restored server through its listening
//! socket (fd kind 41, bound again to the same path): `list-windows` shows
//! both windows, each counter goes on from where it was (its earlier lines
//! still on the screen, no restart at 1), `send-keys` reaches window 0's
//! shell, a client on a terminal of its own (`script`) attaches and
//! detaches, and `kill-server` ends the restored tree. Before that, with
//! a client attached, the dump is refused naming the client's connection
//! and the server goes on.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A tmux server of the test's own, run through `prefix`; killed on drop
/// (when the test failed before `kill-server`).
struct Tmux {
    socket: PathBuf,
    prefix: Vec<&'static str>,
}

impl Tmux {
    fn start(dir: &Path, prefix: &[&'static str]) -> Tmux {
        require_tool("tmux");
        require_tool("bash");
        let t = Tmux {
            socket: dir.join("tmux.sock"),
            prefix: prefix.to_vec(),
        };
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "w",
            "-x",
            "80",
            "-y",
            "24",
            "env PS1='P> ' HISTFILE=/dev/null bash --norc --noprofile -i",
        ]);
        t.wait_screen("w:0", |s| s.lines().any(|l| l.starts_with("P>")));
        t.run(&["send-keys", "-t", "w:0", LOOP_A, "Enter"]);
        t.run(&["new-window", "-t", "w:1", LOOP_B]);
        t
    }

    fn try_run(&self, args: &[&str]) -> Output {
        run(
            command_as(&self.prefix, "tmux")
                .arg("-S")
                .arg(&self.socket)
                .args(["-f", "/dev/null"])
                .args(args)
                .env_remove("TMUX")
                // Without SHELL, tmux runs panes with the user's login
                // shell: nobody's is nologin (CI runs with no SHELL).
                .env("SHELL", "/bin/sh"),
            CMD_TIMEOUT,
        )
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(out.status.success(), "tmux {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self, window: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", window])
    }

    /// Wait until the screen of `window` satisfies `ok`; its text.
    fn wait_screen(&self, window: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let screen = self.screen(window);
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited in vain on the screen of {window}:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn server_pid(&self) -> i32 {
        self.run(&["display-message", "-p", "#{pid}"])
            .trim()
            .parse()
            .expect("server pid")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.try_run(&["kill-server"]);
    }
}

/// Window 0's loop, typed into its shell: lines `a N`.
const LOOP_A: &str = "a=0; while :; do a=$((a+1)); echo \"a $a\"; sleep 0.2; done";
/// Window 1's command: lines `b N`.
const LOOP_B: &str = "b=0; while :; do b=$((b+1)); echo \"b $b\"; sleep 0.2; done";

/// The numbers of the lines `TAG N` on a screen, in order.
fn counts(screen: &str, tag: &str) -> Vec<u64> {
    screen
        .lines()
        .filter_map(|l| {
            l.trim_end()
                .strip_prefix(tag)?
                .strip_prefix(' ')?
                .parse()
                .ok()
        })
        .collect()
}

fn last_count(screen: &str, tag: &str) -> u64 {
    counts(screen, tag).last().copied().unwrap_or(0)
}

/// Count from at least 5 in both windows; the last numbers seen.
fn running(t: &Tmux) -> (u64, u64) {
    let a = t.wait_screen("w:0", |s| last_count(s, "a") >= 5);
    let b = t.wait_screen("w:1", |s| last_count(s, "b") >= 5);
    (last_count(&a, "a"), last_count(&b, "b"))
}

/// Dump the server's tree (killing it); wait until its processes are gone.
/// The socket file's (permission bits, owner).
fn socket_file(t: &Tmux) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(&t.socket).expect("the socket file");
    assert!(meta.file_type().is_socket(), "a socket file at the path");
    (meta.mode() & 0o7777, meta.uid())
}

fn dump_server(t: &Tmux, image: &Path) -> ((u64, u64), (u32, u32)) {
    let pid = t.server_pid();
    let mut pids = descendants(pid);
    pids.push(pid);
    assert!(pids.len() >= 3, "the server and its two shells: {pids:?}");
    let seen = running(t);
    let file = socket_file(t);
    dump(pid, image, false);
    assert!(
        all_gone(&pids, Duration::from_secs(10)),
        "a dumped process is still there"
    );
    // Killed: its socket file stays, with nobody listening.
    assert_eq!(socket_file(t), file);
    (seen, file)
}

/// The counters of both windows go on from where they were: numbers
/// following each other with no restart, past those seen before the dump.
fn check_counting(t: &Tmux, seen: (u64, u64)) {
    for (window, tag, before) in [("w:0", "a", seen.0), ("w:1", "b", seen.1)] {
        let screen = t.wait_screen(window, |s| last_count(s, tag) > before + 3);
        let n = counts(&screen, tag);
        assert!(
            n.windows(2).all(|w| w[1] == w[0] + 1) && n.contains(&before),
            "{window} counts on from {before} without a gap or restart:\n{screen}"
        );
    }
}

/// The restored server answers: both windows, counters going on,
/// `send-keys` reaching window 0's shell; `kill-server` ends it all.
fn check_attached(t: &Tmux, (seen, file): ((u64, u64), (u32, u32)), r: &mut Proc) {
    // The restore is under way: wait until the server answers.
    let deadline = Instant::now() + LINE_TIMEOUT;
    while !t.try_run(&["has-session", "-t", "w"]).status.success() {
        if let Some(status) = r.exited() {
            panic!("the restore ended ({status}): {}", r.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "the restored server does not answer: {}",
            r.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(socket_file(t), file, "the socket file's mode and owner");
    assert_eq!(socket_file(t), file, "the socket file's mode and owner");
    let windows = t.run(&["list-windows", "-t", "w", "-F", "#{window_index}"]);
    assert_eq!(windows.split_whitespace().collect::<Vec<_>>(), ["0", "1"]);
    check_counting(t, seen);
    t.run(&["send-keys", "-t", "w:0", "C-c"]);
    t.wait_screen("w:0", |s| s.lines().any(|l| l.trim_end() == "P>"));
    t.run(&["send-keys", "-t", "w:0", "echo hi-$((40+2))", "Enter"]);
    t.wait_screen("w:0", |s| s.lines().any(|l| l.trim_end() == "hi-42"));
    attach_and_detach(t);
    let pid = t.server_pid();
    let mut pids = descendants(pid);
    pids.push(pid);
    t.run(&["kill-server"]);
    let status = r.wait_exit(EXIT_TIMEOUT);
    let until = Instant::now() + Duration::from_secs(10);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            Instant::now() < until,
            "a restored process outlived kill-server ({status})"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client on a terminal of its own (`script`) attached to window 1
/// (it passes its terminal's descriptors over the socket), and its tty.
fn attach(t: &Tmux) -> (Proc, String) {
    require_tool("script");
    let attach = format!("tmux -S {} attach -t w:1", t.socket.display());
    let c = Proc::spawn(
        "tmux attach",
        command_as(&t.prefix, "script")
            .args(["-q", "-c", &attach, "/dev/null"])
            .env("TERM", "xterm")
            .env("SHELL", "/bin/sh")
            .env_remove("TMUX"),
    );
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let list = t.run(&["list-clients", "-F", "#{client_tty} #{session_name}"]);
        if let Some(tty) = list.split_whitespace().next() {
            assert!(
                list.trim_end().ends_with(" w"),
                "the client's session: {list}"
            );
            return (c, tty.to_owned());
        }
        assert!(
            Instant::now() < deadline,
            "no client attached: {}",
            c.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Detach the client `(c, tty)`; it says so and ends.
fn detach(t: &Tmux, (mut c, tty): (Proc, String)) {
    t.run(&["detach-client", "-t", &tty]);
    let lines = c.drain(Duration::from_secs(5));
    assert!(
        lines.iter().any(|l| l.contains("[detached")),
        "the client says it was detached: {lines:?}"
    );
    let status = c.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "the client after detaching: {status}");
}

fn attach_and_detach(t: &Tmux) {
    let client = attach(t);
    detach(t, client);
}

/// With a client attached, the dump is refused naming the client's
/// connection (it cannot come back without its client), and the server
/// goes on.
fn refused_with_a_client(t: &Tmux, image: &Path) {
    let client = attach(t);
    let pid = t.server_pid();
    let out = dump_raw(pid, image, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the dump was refused");
    assert!(
        err.contains(&format!(
            "named unix socket accepted on {}, its client pid",
            t.socket.display()
        )) && err.contains("(tmux: client) outside the dump"),
        "the refusal names the client's connection: {err}"
    );
    assert!(!image.exists(), "no image after a refusal");
    detach(t, client);
    assert_eq!(t.server_pid(), pid, "the server goes on");
}

#[test]
fn a_tmux_server_with_two_windows_is_attached_again_after_running_its_image() {
    let dir = TestDir::new("tree_tmux");
    let image = dir.join("tmux.kckpt");
    let t = Tmux::start(dir.path(), &[]);
    refused_with_a_client(&t, &image);
    let seen = dump_server(&t, &image);
    let info = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&info.stdout);
    let sock = t.socket.display().to_string();
    assert!(
        text.lines()
            .any(|l| l.contains("unix listen") && l.contains("backlog") && l.ends_with(&sock)),
        "kckpt info shows the listening socket: {text}"
    );
    let mut r = restore_binfmt(&image);
    check_attached(&t, seen, &mut r);
}

#[test]
fn a_tmux_server_of_a_user_comes_back_for_that_user() {
    require_tool("setpriv");
    let dir = TestDir::new("tree_tmux_nobody");
    let home = dir.join("nobody");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let t = Tmux::start(&home, &NOBODY);
    let image = dir.join("tmux.kckpt");
    // Dumped by root; restored by nobody (new PID and user namespaces).
    let seen = dump_server(&t, &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).unwrap();
    let mut r = Proc::spawn(
        "kckpt restore as nobody",
        command_as(&NOBODY, kckpt()).arg("restore").arg(&image),
    );
    check_attached(&t, seen, &mut r);
}
