//! Terminals (issue 8): real interactive programs run in a pseudo-terminal
//! (tmux, on a private server socket), are dumped, and are restored in
//! another terminal of another size. The saved terminal mode is applied to
//! the new terminal (no double echo, keys reach the program one by one),
//! the program gets a SIGWINCH and redraws its screen at the new size, a
//! `/dev/tty` opened at fd 3 and above is the new controlling terminal,
//! and a job-control shell keeps working with its saved pid (new PID
//! namespace) and is refused by name without it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

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
        // A session that outlives the dumped ones (a server with no
        // session exits).
        t.session("keep", 80, 24, "sleep 600");
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

    /// A detached session `name` of `cols` x `rows` running `command`.
    fn session(&self, name: &str, cols: u32, rows: u32, command: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
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

    /// Type `keys` (tmux key names: `Enter`, `C-x`, or literal text).
    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self, name: &str) -> Vec<String> {
        let out = self.run(&["capture-pane", "-p", "-t", name]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Wait until the screen of `name` satisfies `pred`; fail with it.
    fn wait(&self, name: &str, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let screen = self.screen(name);
            if pred(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not on the screen of {name} within {LINE_TIMEOUT:?}:\n{}",
                    screen.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for a line of `name`'s screen containing `text`.
    fn wait_text(&self, name: &str, text: &str) -> Vec<String> {
        self.wait(name, text, |s| s.iter().any(|l| l.contains(text)))
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

/// The pane command that restores `image` (with `args`) and then shows
/// the restore's exit status.
fn restore_cmd(image: &Path, args: &str) -> String {
    format!(
        "{} restore {args} {}; echo EXIT=$?; sleep 600",
        kckpt().display(),
        image.display()
    )
}

/// Wait until a process of pane `name` (the pane's own or a descendant:
/// a new PID namespace puts two processes between) is named `comm`: the
/// stub names it last, after the terminal's mode was applied.
fn wait_restored(t: &Tmux, name: &str, comm: &str) {
    let pane = t.pane_pid(name);
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let mut all = descendants(pane);
        all.push(pane);
        let named = |p: &i32| {
            read_proc(*p, "comm").is_some_and(|c| String::from_utf8_lossy(&c).trim() == comm)
        };
        if all.iter().any(named) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no restored {comm} in pane {name}:\n{}",
            t.screen(name).join("\n")
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Dump the program of pane `name` (killing it).
fn dump_pane(t: &Tmux, name: &str, image: &Path) {
    let pid = t.pane_pid(name);
    dump(pid, image, false);
    // tmux reaps a pane's dead process up to about 2 s later; until then
    // the pid is a zombie's and a restore by root (which would give the
    // process its saved pid) waits for it or takes another pid.
    let start = Instant::now();
    while read_proc(pid, "stat").is_some() && start.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nano_restored_in_a_larger_terminal_redraws_and_keeps_its_raw_mode() {
    require_tool("nano");
    let dir = TestDir::new("tty-nano");
    let t = Tmux::new(&dir);
    let file = dir.join("note.txt");
    t.session(
        "a",
        80,
        24,
        &format!("nano --ignorercfiles {}", file.display()),
    );
    t.wait_text("a", "GNU nano");
    t.keys("a", &["hello from nano"]);
    t.wait_text("a", "hello from nano");
    let image = dir.join("nano.kckpt");
    dump_pane(&t, "a", &image);
    let info = info_json(&image);
    let term = &info["files"]["terminals"][0];
    assert_eq!(term["canonical"], false, "nano runs in raw mode: {term}");
    assert_eq!(
        (term["cols"].as_u64(), term["rows"].as_u64()),
        (Some(80), Some(24))
    );

    // Another terminal, 100x30, in the default (line, echo) mode: nano
    // redraws its whole screen for it without a key pressed (SIGWINCH).
    t.session("b", 100, 30, &restore_cmd(&image, ""));
    let screen = t.wait("b", "nano's screen at 100x30", |s| {
        s.len() == 30
            && s[0].contains("GNU nano")
            && s[0].trim_end().len() > 80
            && s[1].starts_with("hello from nano")
            && s[29].contains("Exit")
    });
    assert!(
        !screen.iter().any(|l| l.starts_with("kckpt:")),
        "no warning: {}",
        screen.join("\n")
    );
    // Keys reach nano one at a time (raw mode): ^O writes, ^X exits.
    t.keys("b", &[" and more", "C-o"]);
    t.wait_text("b", "File Name to Write");
    t.keys("b", &["Enter"]);
    t.wait_text("b", "Wrote 1 line");
    t.keys("b", &["C-x"]);
    t.wait_text("b", "EXIT=0");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "hello from nano and more\n"
    );
}

#[test]
fn less_reads_keys_from_dev_tty_reopened_as_the_new_controlling_terminal() {
    require_tool("less");
    let dir = TestDir::new("tty-less");
    let t = Tmux::new(&dir);
    let file = dir.join("numbers.txt");
    let text: String = (1..=400).map(|i| format!("number {i}\n")).collect();
    fs::write(&file, text).unwrap();
    t.session("a", 80, 24, &format!("less {}", file.display()));
    t.wait_text("a", "number 23");
    t.keys("a", &["Space"]);
    t.wait("a", "the second page", |s| s[0] == "number 24");
    let image = dir.join("less.kckpt");
    dump_pane(&t, "a", &image);
    let info = info_json(&image);
    let fds = info["files"]["fds"].as_array().unwrap();
    assert!(
        fds.iter().any(|f| f["fd"] == 3 && f["kind"] == "ctty"),
        "less reads keys from /dev/tty at fd 3: {fds:?}"
    );

    // Without a controlling terminal there is no /dev/tty to give it.
    require_tool("setsid");
    // (Without the capabilities that choose pids: the refusal alone.)
    let out = run(
        Command::new("setsid")
            .arg(require_tool("setpriv"))
            .arg("--bounding-set=-checkpoint_restore,-sys_admin")
            .arg(kckpt())
            .arg("restore")
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_refused(
        "restoring less with no controlling terminal",
        &out,
        Some(126),
        &["fd 3"],
    );

    t.session("b", 100, 30, &restore_cmd(&image, ""));
    // Redrawn for 30 rows (29 lines and the prompt) from where it was.
    t.wait("b", "less's page at 30 rows", |s| {
        s.first().map(String::as_str) == Some("number 24")
            && s.get(28).map(String::as_str) == Some("number 52")
    });
    t.keys("b", &["Space"]);
    t.wait("b", "the next page", |s| {
        s.first().map(String::as_str) == Some("number 53")
    });
    t.keys("b", &["q"]);
    t.wait_text("b", "EXIT=0");
}

#[test]
fn a_job_control_shell_needs_its_pid_and_works_with_it() {
    require_tool("bash");
    let dir = TestDir::new("tty-bash");
    let t = Tmux::new(&dir);
    t.session(
        "a",
        80,
        24,
        "env PS1='P> ' HISTFILE=/dev/null bash --norc --noprofile -i",
    );
    t.wait_text("a", "P>");
    t.keys("a", &["echo before", "Enter"]);
    t.wait("a", "before", |s| s.iter().any(|l| l == "before"));
    let pid = t.pane_pid("a");
    let image = dir.join("bash.kckpt");
    let out = dump(pid, &image, false);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("job-control shell: it needs its pid"),
        "the dump says how to restore it: {}",
        show(&out)
    );

    // With another pid, its next command would leave the terminal to a
    // process group that does not exist: refused by name. (Root without
    // the capabilities that choose pids: root would get the saved pid.)
    let out = run(
        Command::new(require_tool("setpriv"))
            .arg("--bounding-set=-checkpoint_restore,-sys_admin")
            .arg(kckpt())
            .arg("restore")
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_refused(
        "a job-control shell with another pid",
        &out,
        Some(126),
        &["job-control shell"],
    );

    t.session("b", 100, 30, &restore_cmd(&image, "--new-pid-ns"));
    wait_restored(&t, "b", "bash");
    t.keys("b", &["echo one", "Enter"]);
    let screen = t.wait("b", "one", |s| s.iter().any(|l| l == "one"));
    // Typed once, echoed once (the terminal is in readline's mode: a
    // terminal left in line mode echoes the line a second time).
    assert_eq!(
        screen.iter().filter(|l| l.contains("echo one")).count(),
        1,
        "{}",
        screen.join("\n")
    );
    // A child in the foreground, then the terminal back to the shell.
    t.keys("b", &["sleep 0.2; echo two $$", "Enter"]);
    t.wait_text("b", &format!("two {pid}"));
    t.keys("b", &["echo three", "Enter"]);
    t.wait("b", "three", |s| s.iter().any(|l| l == "three"));
    t.keys("b", &["exit", "Enter"]);
    t.wait_text("b", "EXIT=0");
    // The process that ran the image gave the terminal's foreground back
    // to the group of the pane's shell.
    let sh = t.pane_pid("b");
    let stat = String::from_utf8(read_proc(sh, "stat").unwrap()).unwrap();
    let f: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(
        f[2], f[5],
        "pgrp and the terminal's foreground group: {stat}"
    );
}

#[test]
fn vim_restored_in_a_larger_terminal_redraws_and_saves() {
    require_tool("vim");
    let dir = TestDir::new("tty-vim");
    let t = Tmux::new(&dir);
    let file = dir.join("note.txt");
    t.session(
        "a",
        80,
        24,
        &format!("vim -u NONE -N -n {}", file.display()),
    );
    t.wait_text("a", "~");
    t.keys("a", &["ihello from vim", "Escape"]);
    t.wait_text("a", "hello from vim");
    let image = dir.join("vim.kckpt");
    dump_pane(&t, "a", &image);
    t.session("b", 100, 30, &restore_cmd(&image, ""));
    let screen = t.wait("b", "vim's screen at 30 rows", |s| {
        s.len() == 30 && s[0] == "hello from vim" && s[28] == "~"
    });
    assert!(
        !screen.iter().any(|l| l.contains("E12")),
        "{}",
        screen.join("\n")
    );
    t.keys("b", &["A and more", "Escape", ":wq", "Enter"]);
    t.wait_text("b", "EXIT=0");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "hello from vim and more\n"
    );
}
