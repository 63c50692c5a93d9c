//! Terminals in process trees (issue 9).
//!
//! - A shell job (`cat | tr a-z A-Z` started from an interactive bash in a
//!   tmux pane), dumped with `--pgid`, is restored in another pane in the
//!   foreground: it reads what is typed there (a background group would be
//!   stopped by SIGTTIN), and the pane's shell has the terminal back when
//!   the job ends.
//! - A pseudo-terminal pair held inside the tree (`treet_pty`: a small
//!   multiplexer, the "shell" whose controlling terminal the slave is, and
//!   the shell's foreground "job") comes back as a new pair with the saved
//!   mode and window size; the shell leads its session on it again and the
//!   job's group is the foreground one; bytes flow both ways. As root
//!   (original pids) and as nobody (new PID and user namespaces).
//! - `script -q -c LOOP /dev/null` and the shell it runs on its pair go on
//!   counting after the restore, on a pseudo-terminal again.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const TREET_PTY: &str = env!("KCKPT_PROG_TREET_PTY");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// `/proc/PID/stat` fields after the command name (field 3 is index 0).
fn stat_fields(pid: i32) -> Vec<String> {
    let stat = String::from_utf8(read_proc(pid, "stat").expect("stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    rest.split(' ').map(str::to_owned).collect()
}

/// Start `treet_pty` through `prefix`: (process, mux, shell, job pids).
fn start_pty(prefix: &[&str]) -> (Proc, i32, i32, i32) {
    let mut p = Proc::spawn("treet_pty", &mut command_as(prefix, TREET_PTY));
    let mut pids = [0i32; 3];
    while pids.contains(&0) {
        let line = p.line(LINE_TIMEOUT);
        let w: Vec<&str> = line.split_whitespace().collect();
        let at = match w.first() {
            Some(&"mux") => 0,
            Some(&"shell") if w.get(2) == Some(&"ready") => 1,
            Some(&"job") => 2,
            _ => continue,
        };
        pids[at] = w[1].parse().expect("pid");
    }
    (p, pids[0], pids[1], pids[2])
}

/// The shell's report line `shell N ...`: N.
fn tick(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("shell ")?;
    rest.split(' ').next()?.parse().ok()
}

/// Dump the multiplexer's tree (killing it) and wait until its pids are
/// free.
fn dump_pty(p: &mut Proc, pids: [i32; 3], image: &Path) -> u64 {
    let last = p.wait_for("a shell report", LINE_TIMEOUT, |l| tick(l).is_some());
    dump(pids[0], image, false);
    let status = p.wait_exit(EXIT_TIMEOUT);
    assert!(
        !status.success(),
        "the multiplexer was not killed: {status}"
    );
    assert!(
        all_gone(&pids, Duration::from_secs(10)),
        "a dumped process is still there"
    );
    tick(&last).unwrap()
}

/// The restored tree works: the shell goes on counting with the saved
/// mode and size, leading its session in the background; the job answers
/// what the multiplexer writes to the master, in the foreground.
fn check_restored(r: &mut Proc, last: u64) {
    let line = r.wait_for("a later shell report", LINE_TIMEOUT, |l| {
        tick(l).is_some_and(|n| n > last)
    });
    assert!(
        line.ends_with("rows 33 cols 101 echo 0 intr 7 fg 0 sid 1"),
        "the shell's terminal after the restore: {line}"
    );
    r.write_stdin("hello\n");
    r.wait_for("the job's answer", LINE_TIMEOUT, |l| l == "pong hello");
    let line = r.wait_for("the job's report", LINE_TIMEOUT, |l| {
        l.starts_with("job 1 ")
    });
    assert_eq!(
        line, "job 1 rows 33 cols 101 echo 0 intr 7 fg 1 sid 0",
        "the job's terminal after the restore"
    );
}

#[test]
fn a_pseudo_terminal_pair_inside_the_tree_comes_back_with_its_session_and_foreground() {
    let dir = TestDir::new("treet_pty");
    let image = dir.join("pty.kckpt");
    let (mut p, mux, shell, job) = start_pty(&[]);
    let last = dump_pty(&mut p, [mux, shell, job], &image);
    let info = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("pseudo-terminal master") && text.contains("pseudo-terminal slave of slot"),
        "kckpt info names the pair: {text}"
    );
    let mut r = restore(&image);
    check_restored(&mut r, last);
    // Original pids: the shell leads a session whose controlling terminal
    // is a pseudo-terminal and whose foreground group is the job's.
    let f = stat_fields(shell);
    assert_eq!(f[3], shell.to_string(), "the shell's session: {f:?}");
    assert_ne!(f[4], "0", "the shell has a controlling terminal: {f:?}");
    assert_eq!(
        f[5],
        job.to_string(),
        "the terminal's foreground group: {f:?}"
    );
    assert_eq!(stat_fields(job)[2], job.to_string(), "the job's group");
    r.kill();
    for pid in [mux, shell, job] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn nobody_restores_a_pseudo_terminal_pair_in_new_namespaces() {
    require_tool("setpriv");
    let dir = TestDir::new("treet_pty_nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("pty.kckpt");
    let (mut p, mux, shell, job) = start_pty(&NOBODY);
    // Dumped by root (an unprivileged dump cannot see that the test holds
    // the other ends of the stdio pipes); restored by nobody.
    let last = dump_pty(&mut p, [mux, shell, job], &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).unwrap();
    let mut r = Proc::spawn(
        "kckpt restore as nobody",
        command_as(&NOBODY, kckpt()).arg("restore").arg(&image),
    );
    check_restored(&mut r, last);
    r.kill();
}

/// A tmux server of the test's own (`tmux -S SOCKET`), killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn new(dir: &TestDir) -> Tmux {
        require_tool("tmux");
        let t = Tmux {
            socket: dir.join("tmux.sock"),
        };
        t.session("keep", "sleep 600");
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = run(
            Command::new("tmux")
                .arg("-S")
                .arg(&self.socket)
                .args(["-f", "/dev/null"])
                .args(args)
                .env_remove("TMUX"),
            CMD_TIMEOUT,
        );
        assert!(out.status.success(), "tmux {args:?}: {}", show(&out));
        out
    }

    fn session(&self, name: &str, command: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "80",
            "-y",
            "24",
            command,
        ]);
    }

    fn pane_pid(&self, name: &str) -> i32 {
        let out = self.run(&["display-message", "-p", "-t", name, "#{pane_pid}"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid")
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn wait_line(&self, name: &str, text: &str) {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let out = self.run(&["capture-pane", "-p", "-t", name]);
            let screen = String::from_utf8_lossy(&out.stdout).into_owned();
            if screen.lines().any(|l| l.trim_end() == text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} not on the screen of {name}:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .env_remove("TMUX")
            .output();
    }
}

#[test]
fn a_shell_job_is_restored_in_the_foreground_of_the_restorers_terminal() {
    require_tool("bash");
    let dir = TestDir::new("treet_job");
    let t = Tmux::new(&dir);
    t.session(
        "a",
        "env PS1='P> ' HISTFILE=/dev/null bash --norc --noprofile -i",
    );
    t.wait_line("a", "P>");
    t.keys("a", &["cat | tr a-z A-Z", "Enter"]);
    t.keys("a", &["hello", "Enter"]);
    t.wait_line("a", "HELLO");
    let sh = t.pane_pid("a");
    let pgid: i32 = stat_fields(sh)[5].parse().unwrap();
    assert_ne!(pgid, sh, "the job is in the foreground");
    let image = dir.join("job.kckpt");
    let out = run(
        Command::new(kckpt())
            .args(["dump", "--pgid", &pgid.to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "dump --pgid: {}", show(&out));
    t.wait_line("a", "P>");

    t.session(
        "b",
        &format!(
            "{} restore {}; echo EXIT=$?; sleep 600",
            kckpt().display(),
            image.display()
        ),
    );
    // Typed into the new pane: read by the restored cat only when its
    // group is the terminal's foreground group.
    let deadline = Instant::now() + LINE_TIMEOUT;
    let pane = t.pane_pid("b");
    while stat_fields(pane)[5] != pgid.to_string() {
        assert!(Instant::now() < deadline, "the job never took the terminal");
        thread::sleep(Duration::from_millis(20));
    }
    t.keys("b", &["world", "Enter"]);
    t.wait_line("b", "WORLD");
    t.keys("b", &["C-d"]);
    t.wait_line("b", "EXIT=0");
    // The terminal is the pane's shell's again.
    let f = stat_fields(pane);
    assert_eq!(
        f[2], f[5],
        "pgrp and the terminal's foreground group: {f:?}"
    );
}

#[test]
fn script_and_the_shell_on_its_pseudo_terminal_are_restored() {
    let script = require_tool("script");
    let mut p = Proc::spawn(
        "script",
        Command::new(script).args([
            "-q",
            "-c",
            "n=0; while :; do n=$((n+1)); echo tick $n $(tty); sleep 0.2; done",
            "/dev/null",
        ]),
    );
    let count =
        |l: &str| -> Option<u64> { l.strip_prefix("tick ")?.split(' ').next()?.parse().ok() };
    let first = p.wait_for("a tick", LINE_TIMEOUT, |l| count(l).is_some());
    let dir = TestDir::new("treet_script");
    let image = dir.join("script.kckpt");
    let pid = p.spawned_pid();
    let _ = dump(pid, &image, false);
    let last = p
        .drain(EXIT_TIMEOUT)
        .iter()
        .filter_map(|l| count(l))
        .max()
        .unwrap_or_else(|| count(&first).unwrap());
    // Reaped, so that its pid is free for the restore.
    let status = p.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "script was not killed: {status}");
    let mut r = restore(&image);
    let line = r.wait_for("a later tick", LINE_TIMEOUT, |l| {
        count(l).is_some_and(|n| n > last)
    });
    assert!(
        line.trim_end()
            .split(' ')
            .nth(2)
            .is_some_and(|t| t.starts_with("/dev/pts/")),
        "the shell's stdin is a pseudo-terminal again: {line}"
    );
    r.kill();
}
