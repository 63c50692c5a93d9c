//! Helpers shared by the end-to-end tests: where the binaries and test
//! programs are, scratch directories, processes with line-by-line output and
//! timeouts, and the `kckpt` commands (dump, restore, binfmt restore).
//!
//! Every wait has a timeout and every spawned process is killed and reaped
//! when its guard is dropped, so a failing test never hangs or leaks.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Time allowed for a `kckpt dump` of a small process.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed for the next output line of a running test program.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for a short command (`kckpt info`, `readelf`, a refusal).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Paths of the compiled test programs (see `tests/build.rs`).
pub mod prog {
    /// `counter.c` built as PIE.
    pub const COUNTER_PIE: &str = env!("KCKPT_PROG_COUNTER_PIE");
    /// `counter.c` built without PIE.
    pub const COUNTER_NOPIE: &str = env!("KCKPT_PROG_COUNTER_NOPIE");
    /// `counter.c` linked statically.
    pub const COUNTER_STATIC: &str = env!("KCKPT_PROG_COUNTER_STATIC");
    /// `memfill.c`.
    pub const MEMFILL: &str = env!("KCKPT_PROG_MEMFILL");
    /// `threads.c`.
    pub const THREADS: &str = env!("KCKPT_PROG_THREADS");
    /// `shared_threads.c`.
    pub const SHARED_THREADS: &str = env!("KCKPT_PROG_SHARED_THREADS");
    /// `sigusr1.c`.
    pub const SIGUSR1: &str = env!("KCKPT_PROG_SIGUSR1");
    /// `pipe_read.c`.
    pub const PIPE_READ: &str = env!("KCKPT_PROG_PIPE_READ");
    /// `chrooted.c`, static: a process in a chroot.
    pub const CHROOTED: &str = env!("KCKPT_PROG_CHROOTED");
    /// `unix_kinds.c`: Unix sockets of fd kind 45, self-checking.
    pub const UNIX_KINDS: &str = env!("KCKPT_PROG_UNIX_KINDS");
    /// `pipe_alone.c`: pipe ends whose other end is closed.
    pub const PIPE_ALONE: &str = env!("KCKPT_PROG_PIPE_ALONE");
    /// `sleeper.c`.
    pub const SLEEPER: &str = env!("KCKPT_PROG_SLEEPER");
    /// `ymm.c`.
    pub const YMM: &str = env!("KCKPT_PROG_YMM");
    /// `zmm.c`.
    pub const ZMM: &str = env!("KCKPT_PROG_ZMM");
    /// `malloc_brk.c`.
    pub const MALLOC_BRK: &str = env!("KCKPT_PROG_MALLOC_BRK");
    /// `memkinds.c`.
    pub const MEMKINDS: &str = env!("KCKPT_PROG_MEMKINDS");
    /// `procstate.c`.
    pub const PROCSTATE: &str = env!("KCKPT_PROG_PROCSTATE");
    /// `kstate.c`: per-process and per-thread kernel state.
    pub const KSTATE: &str = env!("KCKPT_PROG_KSTATE");
    /// `creds.c`: per-thread credentials.
    pub const CREDS: &str = env!("KCKPT_PROG_CREDS");
    /// `seccomp_prog.c`.
    pub const SECCOMP_PROG: &str = env!("KCKPT_PROG_SECCOMP_PROG");
    /// `files_log.c`.
    pub const FILES_LOG: &str = env!("KCKPT_PROG_FILES_LOG");
    /// `files_epoll.c`.
    pub const FILES_EPOLL: &str = env!("KCKPT_PROG_FILES_EPOLL");
    /// `threadsig.c`.
    pub const THREADSIG: &str = env!("KCKPT_PROG_THREADSIG");
    /// `pingpong.c`.
    pub const PINGPONG: &str = env!("KCKPT_PROG_PINGPONG");
    /// `holder.c`: holds one resource kckpt refuses (UDP socket, inotify,
    /// io_uring, ptrace, seccomp, SysV semaphore or message queue).
    pub const HOLDER: &str = env!("KCKPT_PROG_HOLDER");
    /// A TCP or UDP server with options set (`inet_server.c`).
    pub const INET_SERVER: &str = env!("KCKPT_PROG_INET_SERVER");
    /// TCP and UDP sockets in every state kckpt restores, options set,
    /// datagrams queued; checks itself on SIGUSR1 (`sock_opts.c`).
    pub const SOCK_OPTS: &str = env!("KCKPT_PROG_SOCK_OPTS");
    /// `bpf_filter.c`.
    pub const BPF_FILTER: &str = env!("KCKPT_PROG_BPF_FILTER");
    /// Two threads checking registers, mask, altstack, tid address and a
    /// handler after every system call (`injectee.c`).
    pub const INJECTEE: &str = env!("KCKPT_PROG_INJECTEE");
    /// A distinct disposition for every signal 1-64 (`handlers.c`).
    pub const HANDLERS: &str = env!("KCKPT_PROG_HANDLERS");
    /// Interval timers, POSIX timers, timerfds (`timers.c`).
    pub const TIMERS: &str = env!("KCKPT_PROG_TIMERS");
    /// A static program without libc (`nolibc.c`).
    pub const NOLIBC: &str = env!("KCKPT_PROG_NOLIBC");
    /// Copies stdin to stdout slowly, numbering lines (`stdio_copy.c`).
    pub const STDIO_COPY: &str = env!("KCKPT_PROG_STDIO_COPY");
    /// `self_objects.c`: epoll items on closed numbers, a pidfd of itself,
    /// its own namespaces, a private mapping of shared anonymous memory.
    pub const SELF_OBJECTS: &str = env!("KCKPT_PROG_SELF_OBJECTS");
    /// Several open file descriptions of pipes and a memfd (`ofd.c`).
    pub const OFD: &str = env!("KCKPT_PROG_OFD");
    /// An inotify instance with watch holes and a deleted file (`inotify.c`).
    pub const INOTIFY: &str = env!("KCKPT_PROG_INOTIFY");
    /// Pipe and socket descriptors with O_ASYNC, owners and signals
    /// (`fown_signals.c`).
    pub const FOWN_SIGNALS: &str = env!("KCKPT_PROG_FOWN_SIGNALS");
    /// A pipe whose I/O signal owner is a younger sibling (`fown_tree.c`).
    pub const FOWN_TREE: &str = env!("KCKPT_PROG_FOWN_TREE");
    /// Pidfds of a child, of an exited child, of the parent (`pidfds.c`).
    pub const PIDFDS: &str = env!("KCKPT_PROG_PIDFDS");
    /// A UDP socket member of a multicast group on lo (`multicast.c`).
    pub const MULTICAST: &str = env!("KCKPT_PROG_MULTICAST");
    /// A SIGCHLD handler, with or without a zombie child (`sigchld.c`).
    pub const SIGCHLD: &str = env!("KCKPT_PROG_SIGCHLD");
}

/// The Debian python3 (not a pyenv shim that may sit first in PATH).
pub const PYTHON3: &str = "/usr/bin/python3";
/// The python loop of the test plan: prints 1, 2, 3... every 100 ms.
pub const PYTHON_LOOP: &str =
    "import time\nn=0\nwhile True: n+=1; print(n, flush=True); time.sleep(0.1)";

/// The directory of the test binary's profile (`target/<profile>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary is not in target/<profile>/deps")
        .to_path_buf()
}

fn built_tool(name: &str) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(name);
    if !path.is_file() {
        let profile = dir.file_name().and_then(|s| s.to_str()).unwrap_or("");
        let flag = if profile == "release" {
            " --release"
        } else {
            ""
        };
        panic!(
            "{} does not exist: run `cargo build{flag}` first (the end-to-end tests run the \
             kckpt binaries of the same profile as the tests)",
            path.display()
        );
    }
    path
}

/// The `kckpt` CLI next to the test binary.
pub fn kckpt() -> PathBuf {
    built_tool("kckpt")
}

/// The `kckpt-stub` restore program next to the test binary.
pub fn stub() -> PathBuf {
    built_tool("kckpt-stub")
}

/// A file of the build profile's directory (`target/<profile>/NAME`):
/// `libkckpt.a`, `examples/self_counter`...
pub fn profile_file(name: &str) -> PathBuf {
    built_tool(name)
}

/// Fail loudly when an external tool the test needs is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is not installed; bash scripts/test.sh installs every tool the tests need");
}

/// A command prefix that runs the rest as nobody (uid and gid 65534, no
/// supplementary groups). A test using it calls `require_tool("setpriv")`
/// first, so that a missing `setpriv` fails it by name.
pub const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// `program` run through `prefix` (a command and its arguments that execute
/// the rest, e.g. [`NOBODY`]), or directly when `prefix` is empty.
pub fn command_as(prefix: &[&str], program: impl AsRef<OsStr>) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The `kckpt` CLI run through `prefix` (see [`command_as`]).
pub fn kckpt_as(prefix: &[&str]) -> Command {
    command_as(prefix, kckpt())
}

/// A scratch directory under `/tmp/kckpt-tests`, removed on drop. When the
/// test fails it is kept (and named); a later test run removes it after an
/// hour.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// A new empty directory for the test `name`.
    pub fn new(name: &str) -> TestDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        static CLEAN: std::sync::Once = std::sync::Once::new();
        let root = std::env::temp_dir().join("kckpt-tests");
        fs::create_dir_all(&root).expect("create /tmp/kckpt-tests");
        CLEAN.call_once(|| remove_stale(&root));
        let path = root.join(format!(
            "{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create test directory");
        TestDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// Remove directories older than an hour left by test processes that no
/// longer exist (named `NAME-PID-SEQ`).
fn remove_stale(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if let (Some(pid), true) = (pid, old) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Read a pipe to its end on a thread; the result arrives on the receiver.
fn collect<R: Read + Send + 'static>(mut r: R) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Poll `cond` every 20 ms until it holds (`true`) or `timeout` passes
/// (`false`).
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Are all of `pids` gone from /proc within `timeout`?
pub fn all_gone(pids: &[i32], timeout: Duration) -> bool {
    eventually(timeout, || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
    })
}

/// Wait for `child` up to `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Start `cmd` with no descriptors but 0-2: a descriptor the test runner
/// inherited without close-on-exec (a job pipe of the shell that started
/// cargo) would otherwise be a pipe to another process in every dump
/// target, which kckpt refuses (issue 3).
#[allow(unsafe_code)]
pub fn only_stdio(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls
    // close_range, which is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            nix::libc::close_range(3, u32::MAX, 0);
            Ok(())
        })
    }
}

/// Run a command to completion with captured output; kill it and fail the
/// test if it takes longer than `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = only_stdio(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let out = collect(child.stdout.take().expect("stdout"));
    let err = collect(child.stderr.take().expect("stderr"));
    let status = match wait_timeout(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
            panic!(
                "{desc} did not finish within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
    };
    // A grandchild holding the pipes open must not hang the test either.
    let stdout = out
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let stderr = err
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Stdout and stderr of an output, for failure messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running process whose stdout is read line by line. Killed and reaped on
/// drop.
pub struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    target: i32,
    eof: bool,
}

impl Proc {
    /// Spawn `cmd` with piped stdin, stdout and stderr.
    pub fn spawn(what: &str, cmd: &mut Command) -> Proc {
        let mut child = only_stdio(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let target = child.id() as i32;
        Proc {
            what: what.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            target,
            eof: false,
        }
    }

    /// Start a test program (a path) or a system program with arguments.
    pub fn start(program: &str, args: &[&str]) -> Proc {
        let name = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_owned());
        Proc::spawn(&name, Command::new(program).args(args))
    }

    /// Pid of the process the test is about (the spawned one, unless
    /// [`Proc::wait_restored`] found a child).
    ///
    /// A restore by root gives the process its original pid in a child of
    /// the stub, which stays as a relay (docs/RESTORE.md section 8): once
    /// that child is restored, it is the process the test is about.
    pub fn pid(&self) -> i32 {
        if self.target == self.spawned_pid() {
            if let Some(c) = relayed_child(self.target) {
                return c;
            }
        }
        self.target
    }

    /// Ask a self-checking test program for its own check (`SIGUSR1`): it
    /// prints `FAIL ...` lines for what is wrong, then `check done`; fail
    /// the test with them.
    pub fn self_check(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("SIGUSR1");
        let mut failures = Vec::new();
        loop {
            let l = self.line(LINE_TIMEOUT);
            if l == "check done" {
                break;
            }
            if l.starts_with("FAIL") {
                failures.push(l);
            }
        }
        if !failures.is_empty() {
            self.fail(&format!("wrong state: {failures:?}"));
        }
    }

    /// Pid of the process spawned (for a restore: the stub, which may stay
    /// as the relay).
    pub fn spawned_pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// For a restore run: wait until the restored process shows `cmdline`
    /// and make it [`Proc::pid`]. That is the spawned process itself when
    /// `kckpt restore` (or the binfmt path) executes the stub, otherwise a
    /// descendant of it (a new PID namespace puts two processes between).
    pub fn wait_restored(&mut self, cmdline: &[u8]) {
        let me = self.child.id() as i32;
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            if read_proc(me, "cmdline").as_deref() == Some(cmdline) {
                self.target = me;
                return;
            }
            let children = descendants(me)
                .into_iter()
                .filter(|&c| read_proc(c, "cmdline").as_deref() == Some(cmdline))
                .collect::<Vec<_>>();
            if let [c] = children[..] {
                self.target = c;
                return;
            }
            if let Some(status) = self.exited() {
                self.fail(&format!("exited with {status} before it was restored"));
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "no restored process with cmdline {:?} (pid {me} has {:?})",
                    String::from_utf8_lossy(cmdline),
                    read_proc(me, "cmdline").map(|b| String::from_utf8_lossy(&b).into_owned())
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next line, `None` on timeout or end of output.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        if self.eof {
            return None;
        }
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                None
            }
        }
    }

    /// The next line; fails the test on timeout or end of output.
    pub fn line(&mut self, timeout: Duration) -> String {
        match self.next_line(timeout) {
            Some(l) => l,
            None => self.fail(&format!("no output line within {timeout:?}")),
        }
    }

    /// Skip lines until one satisfies `pred` and return it.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(l) if pred(&l) => return l,
                Some(_) => {}
                None => self.fail(&format!("no line {what} within {timeout:?}")),
            }
        }
    }

    /// Read every remaining line until the output ends (the process died).
    pub fn drain(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.fail(&format!("output did not end within {timeout:?}"));
            }
            if let Some(l) = self.next_line(left) {
                out.push(l);
            }
        }
        out
    }

    /// The last line read so far (drained lines included).
    pub fn last_seen(&self) -> Option<&str> {
        self.seen.last().map(String::as_str)
    }

    /// Write to the process's standard input.
    pub fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(text.as_bytes()).expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Wait for the spawned process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, timeout) {
            Some(s) => s,
            None => self.fail(&format!("did not exit within {timeout:?}")),
        }
    }

    /// Has the spawned process exited (and been reaped)?
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("waitpid")
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The stderr of an unprivileged restore without a new PID namespace,
    /// which names the new pid (and the executable link) in one warning:
    /// that warning is checked, the other lines returned.
    pub fn stderr_but_new_ids(&self) -> String {
        let err = self.stderr();
        let (ids, rest): (Vec<&str>, Vec<&str>) = err.lines().partition(|l| {
            l.starts_with("kckpt: warning: ")
                && l.contains(": this user may not choose pids: the process gets pid ")
                && l.ends_with(
                    "(kckpt restore --new-pid-ns keeps them, in new PID and user namespaces)",
                )
        });
        assert_eq!(ids.len(), 1, "one warning naming the new pid: {err}");
        rest.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Fail the test with the process's recent output.
    pub fn fail(&self, msg: &str) -> ! {
        let start = self.seen.len().saturating_sub(15);
        panic!(
            "{} (pid {}): {msg}\nlast output lines:\n{}\nstderr:\n{}",
            self.what,
            self.target,
            self.seen[start..].join("\n"),
            self.stderr()
        );
    }

    /// Kill (SIGKILL) and reap.
    pub fn kill(&mut self) {
        if self.target == self.child.id() as i32 {
            // A relay whose restored child was never looked up.
            if let Some(c) = relayed_child(self.target) {
                self.target = c;
            }
        }
        if self.target != self.child.id() as i32 {
            let _ = kill(Pid::from_raw(self.target), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Is `pid` running `kckpt-stub` (its command line, which a restored
/// process replaces with its own)?
fn runs_stub(pid: i32) -> bool {
    read_proc(pid, "cmdline").is_some_and(|c| {
        let argv0 = c.split(|&b| b == 0).next().unwrap_or_default();
        argv0.ends_with(b"kckpt-stub")
    })
}

/// When `pid` is the stub relaying for a process restored with its
/// original pid: that process, once restored (its command line is no
/// longer the stub's).
pub fn relayed_child(pid: i32) -> Option<i32> {
    if !runs_stub(pid) {
        return None;
    }
    match descendants_1(pid)[..] {
        [c] if !runs_stub(c) && read_proc(c, "cmdline").is_some() => Some(c),
        _ => None,
    }
}

/// The children of `pid` (of all its threads).
fn descendants_1(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let children = fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            children
                .split_whitespace()
                .filter_map(|s| s.parse::<i32>().ok()),
        );
    }
    out
}

/// Every descendant of `pid` (children of all its threads, recursively).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|s| s.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// Thread ids of `pid`, sorted (empty if it is gone).
pub fn tasks(pid: i32) -> Vec<i32> {
    let mut t: Vec<i32> = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    t.sort_unstable();
    t
}

/// Contents of `/proc/PID/NAME`, `None` if unreadable.
pub fn read_proc(pid: i32, name: &str) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/{name}")).ok()
}

/// The size of an unnamed (`O_TMPFILE`) file in `dir` that process `pid`
/// holds open (`/proc/PID/fd/N` -> `DIR/#INODE (deleted)`).
pub fn unnamed_file_size(pid: u32, dir: &Path) -> Option<u64> {
    let prefix = format!("{}/#", dir.display());
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find_map(|fd| {
            let link = fs::read_link(fd.path()).ok()?;
            let link = link.to_string_lossy();
            (link.starts_with(&prefix) && link.ends_with(" (deleted)"))
                .then(|| fs::metadata(fd.path()).map(|m| m.len()).unwrap_or(0))
        })
}

/// Make a named pipe at `path` (mode 0600).
pub fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// `/proc/PID/maps` as lines.
pub fn maps(pid: i32) -> Vec<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/maps: {e}"));
    text.lines().map(str::to_owned).collect()
}

/// The restored process `pid` no longer maps the stub's window (`6b6b...`).
pub fn no_window(pid: i32) {
    let maps = maps(pid);
    assert!(
        !maps.iter().any(|l| l.starts_with("6b6b")),
        "the stub's window is still mapped:\n{}",
        maps.join("\n")
    );
}

/// The state letter of `/proc/PID/stat` (R, S, T, t, Z...).
pub fn state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// `kckpt dump -p PID -o PATH [--leave-running]`, required to succeed.
pub fn dump(pid: i32, path: &Path, leave_running: bool) -> Output {
    let out = dump_raw(pid, path, leave_running);
    assert!(
        out.status.success(),
        "kckpt dump -p {pid} -o {} failed:\n{}",
        path.display(),
        show(&out)
    );
    assert!(path.is_file(), "kckpt dump succeeded but wrote no image");
    out
}

/// `kckpt dump`, whatever its outcome.
pub fn dump_raw(pid: i32, path: &Path, leave_running: bool) -> Output {
    let mut cmd = Command::new(kckpt());
    cmd.args(["dump", "-p", &pid.to_string(), "-o"]).arg(path);
    if leave_running {
        cmd.arg("--leave-running");
    }
    run(&mut cmd, DUMP_TIMEOUT)
}

/// `kckpt dump -p PID -o PATH` run through `prefix` (see [`command_as`]),
/// whatever its outcome.
pub fn dump_as(prefix: &[&str], pid: i32, path: &Path) -> Output {
    run(
        kckpt_as(prefix)
            .args(["dump", "-p", &pid.to_string(), "-o"])
            .arg(path),
        DUMP_TIMEOUT,
    )
}

/// `kckpt dump --skip-unsupported -p PID -o PATH`, whatever its outcome.
pub fn dump_skip_unsupported(pid: i32, path: &Path) -> Output {
    run(
        Command::new(kckpt())
            .args(["dump", "--skip-unsupported", "-p", &pid.to_string(), "-o"])
            .arg(path),
        DUMP_TIMEOUT,
    )
}

/// `kckpt info --json IMAGE`, required to succeed and print JSON.
pub fn info_json(image: &Path) -> serde_json::Value {
    let out = run(
        Command::new(kckpt()).args(["info", "--json"]).arg(image),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "kckpt info: {}", show(&out));
    serde_json::from_slice(&out.stdout).expect("kckpt info --json prints JSON")
}

/// The tree slots of `kind` (`"adopted"`, `"memory"`...) in `kckpt info
/// --json` output `info`.
pub fn tree_slots(info: &serde_json::Value, kind: &str) -> Vec<serde_json::Value> {
    info["tree"]["slots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["kind"] == kind)
        .cloned()
        .collect()
}

/// `procstate`/`threadsig`: send `go`, return the delivery lines up to
/// `done`.
pub fn deliveries(p: &mut Proc) -> Vec<String> {
    p.write_stdin("go\n");
    let mut out = Vec::new();
    loop {
        let l = p.line(LINE_TIMEOUT);
        if l == "done" {
            return out;
        }
        out.push(l);
    }
}

/// Dump `p` with the default (kill after a complete image) and check the
/// target died.
pub fn dump_kills(p: &mut Proc, path: &Path) {
    dump(p.pid(), path, false);
    p.drain(Duration::from_secs(10));
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(
        status.signal().is_some() || !status.success(),
        "the dump target should have been killed, it exited with {status}"
    );
}

/// [`dump_kills`], then the last line the target printed.
pub fn dump_and_kill(p: &mut Proc, path: &Path) -> String {
    dump_kills(p, path);
    match p.last_seen() {
        Some(line) => line.to_owned(),
        None => p.fail("printed nothing before the dump"),
    }
}

/// `kckpt restore PATH`, with the restored process's output read line by line.
pub fn restore(path: &Path) -> Proc {
    Proc::spawn(
        "kckpt restore",
        Command::new(kckpt()).arg("restore").arg(path),
    )
}

/// Execute the image itself (`./NAME` in its directory) through binfmt_misc,
/// in a new user and mount namespace with its own binfmt_misc instance where
/// `kckpt binfmt register --stub <stub>` installed the handler.
pub fn restore_binfmt(path: &Path) -> Proc {
    restore_binfmt_env(path, &[])
}

/// [`restore_binfmt`] with more environment variables.
pub fn restore_binfmt_env(path: &Path, env: &[(&str, &str)]) -> Proc {
    require_tool("unshare");
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).expect("chmod image");
    let dir = path.parent().expect("image directory");
    let name = path.file_name().expect("image name");
    let script = "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
                  && \"$KCKPT\" binfmt register --stub \"$KCKPT_STUB\" >&2 \
                  && exec \"./$KCKPT_IMAGE\"";
    Proc::spawn(
        "binfmt restore",
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .current_dir(dir)
            .env("KCKPT", kckpt())
            .env("KCKPT_STUB", stub())
            .env("KCKPT_IMAGE", name)
            .envs(env.iter().copied()),
    )
}

/// `(count, acc)` of a counter line `count N acc X`.
pub fn parse_counter(line: &str) -> (u64, String) {
    let mut f = line.split_whitespace();
    match (f.next(), f.next(), f.next(), f.next(), f.next()) {
        (Some("count"), Some(n), Some("acc"), Some(acc), None) => {
            (n.parse().expect("count number"), acc.to_owned())
        }
        _ => panic!("not a counter line: {line:?}"),
    }
}

/// The acc value counter prints with count `n` (n * 0.5, one decimal).
pub fn counter_acc(n: u64) -> String {
    format!("{}.{}", n / 2, if n % 2 == 1 { 5 } else { 0 })
}

/// Check that a restored counter carries on at `last + 1` with matching acc,
/// for `lines` lines.
pub fn expect_counter_from(p: &mut Proc, last: u64, lines: u64) {
    for i in 1..=lines {
        let line = p.line(LINE_TIMEOUT);
        let (n, acc) = parse_counter(&line);
        if n != last + i || acc != counter_acc(n) {
            p.fail(&format!(
                "expected `count {} acc {}`, got {line:?}",
                last + i,
                counter_acc(last + i)
            ));
        }
    }
}

/// Start a counter, let it count to `upto`, dump (killing it) and return the
/// last count it printed.
pub fn counter_dumped(program: &str, image: &Path, upto: u64) -> u64 {
    let mut p = Proc::start(program, &[]);
    p.wait_for(&format!("count {upto}"), LINE_TIMEOUT, |l| {
        parse_counter(l).0 >= upto
    });
    parse_counter(&dump_and_kill(&mut p, image)).0
}

/// Assert a clean refusal: non-zero exit (exactly `code` if given, never a
/// signal), exactly one stderr line starting with `kckpt: `, no panic, and
/// the line mentions one of `keywords` (case-insensitive).
pub fn assert_refused(what: &str, out: &Output, code: Option<i32>, keywords: &[&str]) {
    let ctx = || format!("{what}:\n{}", show(out));
    let Some(got) = out.status.code() else {
        panic!("killed by a signal instead of refusing: {}", ctx());
    };
    assert_ne!(got, 0, "exit status 0, expected a refusal: {}", ctx());
    if let Some(code) = code {
        assert_eq!(got, code, "wrong exit status: {}", ctx());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "a panic: {}", ctx());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line: {}", ctx());
    assert!(
        lines[0].starts_with("kckpt: "),
        "stderr line must start with `kckpt: `: {}",
        ctx()
    );
    let lower = lines[0].to_lowercase();
    assert!(
        keywords.iter().any(|k| lower.contains(&k.to_lowercase())),
        "the message should mention one of {keywords:?}: {}",
        ctx()
    );
}

/// The byte range of the descriptor of the first note `kind` from `owner`
/// in an image (parsed with kckpt-image's reader).
pub fn note_desc_range(image: &[u8], owner: &[u8], kind: u32) -> std::ops::Range<usize> {
    use kckpt_image::read::{note_segment, parse_elf_header, Notes, EM_X86_64};
    let len = image.len() as u64;
    let elf = parse_elf_header(image, len, EM_X86_64).expect("valid ELF header");
    let phoff = elf.phoff as usize;
    let table = &image[phoff..phoff + elf.phdrs_size()];
    let (off, size) = note_segment(table, len).expect("note segment");
    let segment = &image[off as usize..(off + size) as usize];
    for note in Notes::new(segment) {
        let note = note.expect("valid note");
        if note.is(owner, kind) {
            let start = note.desc.as_ptr() as usize - image.as_ptr() as usize;
            return start..start + note.desc.len();
        }
    }
    panic!("no note {kind:#x} from {}", String::from_utf8_lossy(owner));
}

/// The stdout lines of a self-checkpointing run (`self_counter IMAGE 5`)
/// after its `saved` line; checks it succeeded, printed `step 5 ...` just
/// before `saved` and ended with `done ...`.
pub fn lines_after_saved(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "{}", show(out));
    let all: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let at = all
        .iter()
        .position(|l| l == "saved")
        .unwrap_or_else(|| panic!("no `saved` line:\n{}", show(out)));
    assert!(all[at - 1].starts_with("step 5 "), "{all:?}");
    assert!(all.last().unwrap().starts_with("done "), "{all:?}");
    all[at + 1..].to_vec()
}

/// `gdb` (named `tool` in the message) ran `bt` on an image of
/// `self_counter.c`: its innermost frame must be `main`.
pub fn assert_bt_in_main(tool: &str, out: &Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("#0") && l.contains("main (") && l.contains("self_counter.c")),
        "{tool} should show main as the innermost frame:\n{}",
        show(out)
    );
}

/// A restored self-checkpointed program ran to success and printed
/// `resumed`, then exactly `rest` (what the original printed after `saved`).
pub fn assert_resumed_then(out: &Output, rest: &[String]) {
    assert!(out.status.success(), "{}", show(out));
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.first(), Some(&"resumed"), "{}", show(out));
    assert_eq!(&got[1..], rest, "{}", show(out));
}

/// A random SysV IPC key (positive, not `IPC_PRIVATE`) for a test
/// program that creates its objects with `IPC_EXCL`; `ipcrm` must be
/// there to remove them afterwards.
pub fn random_sysv_key() -> i32 {
    use std::sync::atomic::AtomicU32;
    use std::time::{SystemTime, UNIX_EPOCH};
    require_tool("ipcrm");
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = nanos
        ^ (std::process::id() << 11)
        ^ SEQ
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9);
    0x1000_0000 + (mix % 0x6fff_0000) as i32
}

/// The inode of the IPC namespace link `link` (`ipc:[INODE]`).
pub fn ipc_ns_inode(link: &Path) -> u64 {
    let target = fs::read_link(link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    let text = target.to_string_lossy().into_owned();
    text.strip_prefix("ipc:[")
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not an ipc namespace link: {text}"))
}

/// The lines of a successful `kckpt dump`'s stderr other than its
/// summary line (`kckpt: saved N process(es) to ...`): its warnings.
pub fn dump_warnings(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("kckpt: saved "))
        .map(str::to_owned)
        .collect()
}
