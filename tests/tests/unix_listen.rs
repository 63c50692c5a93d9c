//! Listening Unix sockets bound to a name (fd kind 41).
//!
//! A small Python server listens on a path (or an abstract name) with a
//! backlog of 7, `SO_PASSCRED` and `O_NONBLOCK`, and answers each client
//! with a line carrying its own count, then closes it. After dump (kill)
//! and restore: `kckpt info` shows the socket; a new client is answered
//! by the restored server (its count goes on), which reports the socket
//! type, options and flags it sees. Refused: at dump, a connection
//! waiting to be accepted (the server left running); at restore, a
//! regular file at the path (left as it was), a live listener there.
//! Listeners whose path was removed or taken by another socket's file
//! (zdtm del_standalone_un) get their name back without a file.

mod common;

use std::fs;
use std::io::Read;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// argv: name ('@' + name: abstract), "accept" or "noaccept".
const SERVER: &str = r#"
import fcntl, os, select, socket, sys
name = sys.argv[1]
addr = "\0" + name[1:] if name.startswith("@") else name
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(addr)
s.listen(7)
s.setblocking(False)
n = 0
print("ready", flush=True)
while True:
    if sys.argv[2] == "noaccept":
        select.select([], [], [], 0.2)
        continue
    r, _, _ = select.select([s], [], [], 0.2)
    if not r:
        continue
    c, _ = s.accept()
    n += 1
    opt = s.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED)
    ty = s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    acc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    nb = 1 if fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK else 0
    try:
        c.sendall(f"served {n} type {ty} listening {acc} passcred {opt} nonblock {nb} name {s.getsockname()!r}\n".encode())
    except OSError:
        pass  # a client that went away (the restore's probe)
    c.close()
    print("served", n, flush=True)
"#;

fn start(name: &str, mode: &str) -> Proc {
    start_in(Path::new("/"), name, mode)
}

/// [`start`] in working directory `cwd`.
fn start_in(cwd: &Path, name: &str, mode: &str) -> Proc {
    let mut p = Proc::spawn(
        "unix server",
        Command::new(PYTHON3)
            .args(["-c", SERVER, name, mode])
            .current_dir(cwd),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p
}

fn connect(name: &str) -> UnixStream {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let got = match name.strip_prefix('@') {
            Some(a) => SocketAddr::from_abstract_name(a.as_bytes())
                .and_then(|addr| UnixStream::connect_addr(&addr)),
            None => UnixStream::connect(name),
        };
        match got {
            Ok(s) => return s,
            Err(e) => assert!(Instant::now() < deadline, "connect to {name}: {e}"),
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Connect, read the server's line.
fn ask(name: &str) -> String {
    let mut s = connect(name);
    s.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("the server's answer");
    text.trim_end().to_owned()
}

/// Serve twice, dump (kill), restore: the third client is served by the
/// restored server with the same socket.
fn comes_back(dir: &TestDir, name: &str) {
    let mut p = start(name, "accept");
    assert!(ask(name).starts_with("served 1 "));
    assert!(ask(name).starts_with("served 2 "));
    let image = dir.join("server.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let fds = info["files"]["fds"].as_array().expect("fds");
    let l = fds
        .iter()
        .find(|f| f["kind"] == "unix listen")
        .unwrap_or_else(|| panic!("no listening socket in {fds:?}"));
    let shown = name.strip_prefix('@').unwrap_or(name);
    assert_eq!(l["path"], shown);
    assert_eq!(l["listen"]["backlog"], 7);
    assert_eq!(l["listen"]["abstract"], name.starts_with('@'));
    assert_eq!(l["listen"]["options"], serde_json::json!(["SO_PASSCRED"]));
    let mut r = restore(&image);
    let answer = ask(name);
    assert!(
        answer.starts_with("served 3 type 1 listening 1 passcred 1 nonblock 1 name "),
        "{answer}"
    );
    r.wait_for("served 3", LINE_TIMEOUT, |l| l == "served 3");
    r.kill();
}

#[test]
fn a_listening_socket_on_a_path_comes_back_on_that_path() {
    let dir = TestDir::new("unix_listen_path");
    let name = dir.join("server.sock").display().to_string();
    comes_back(&dir, &name);
}

#[test]
fn a_listening_socket_with_an_abstract_name_comes_back() {
    let dir = TestDir::new("unix_listen_abstract");
    let name = format!("@kckpt-test-{}", std::process::id());
    comes_back(&dir, &name);
}

#[test]
fn a_connection_waiting_to_be_accepted_is_refused_at_dump() {
    let dir = TestDir::new("unix_listen_pending");
    let name = dir.join("server.sock").display().to_string();
    let mut p = start(&name, "noaccept");
    let _waiting = connect(&name);
    let image = dir.join("server.kckpt");
    let out = dump_raw(p.pid(), &image, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the dump was refused");
    assert!(
        err.contains(&format!(
            "listening unix socket {name} with 1 connection(s) waiting to be accepted"
        )),
        "the refusal names the socket: {err}"
    );
    assert!(
        p.exited().is_none(),
        "a refused dump left the server running"
    );
    p.kill();
}

#[test]
fn a_path_taken_by_a_file_or_a_live_listener_refuses_the_restore() {
    let dir = TestDir::new("unix_listen_taken");
    let name = dir.join("server.sock").display().to_string();
    let mut p = start(&name, "accept");
    let image = dir.join("server.kckpt");
    dump(p.pid(), &image, true);
    // The original still listens there.
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cannot listen on {name} again: a live socket listens there"
        )),
        "{err}"
    );
    // (The restore's probe may have been a client of its own.)
    let answer = ask(&name);
    assert!(
        answer.starts_with("served "),
        "the original still serves: {answer}"
    );
    p.kill();
    // A regular file instead of the socket: left alone.
    fs::remove_file(&name).unwrap();
    fs::write(&name, b"data").unwrap();
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cannot listen on {name} again: another kind of file is there"
        )),
        "{err}"
    );
    assert_eq!(fs::read(Path::new(&name)).unwrap(), b"data");
}

/// A pre-forked server: parent and child accept on one listening socket.
const PREFORK: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(5)
who = "child" if os.fork() == 0 else "parent"
if who == "parent":
    print("ready", flush=True)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    c.sendall(f"{who} {n}\n".encode())
    c.close()
"#;

/// Ask until both processes answered; the last count of each.
fn both_answer(name: &str, after: (u64, u64)) -> (u64, u64) {
    let (mut parent, mut child) = (0, 0);
    let deadline = Instant::now() + LINE_TIMEOUT;
    while parent == 0 || child == 0 {
        assert!(Instant::now() < deadline, "both processes answer");
        let answer = ask(name);
        let (who, n) = answer.split_once(' ').expect("WHO N");
        let n: u64 = n.parse().expect("count");
        let (last, floor) = match who {
            "parent" => (&mut parent, after.0),
            _ => (&mut child, after.1),
        };
        assert!(n > floor && n > *last, "{who} counts on: {n} after {floor}");
        *last = n;
    }
    (parent, child)
}

#[test]
fn a_listening_socket_shared_by_a_parent_and_its_child_comes_back_shared() {
    let dir = TestDir::new("unix_listen_prefork");
    let name = dir.join("server.sock").display().to_string();
    let mut p = Proc::spawn(
        "prefork server",
        Command::new(PYTHON3).args(["-c", PREFORK, &name]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let before = both_answer(&name, (0, 0));
    let image = dir.join("prefork.kckpt");
    dump_kills(&mut p, &image);
    let text = String::from_utf8_lossy(
        &run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT).stdout,
    )
    .into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains("slot") && l.contains("fd 3 of its holder")),
        "the listener is a slot of the tree: {text}"
    );
    let mut r = restore(&image);
    both_answer(&name, before);
    for pid in descendants(r.spawned_pid()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    r.kill();
}

/// Refused at dump, the process left running: what the restore would
/// refuse once the process is gone (a holder outside the dump still
/// listening; another file at the path).
#[test]
fn a_listener_the_restore_could_not_bind_again_is_refused_at_dump() {
    let dir = TestDir::new("unix_listen_refused");
    let name = dir.join("server.sock").display().to_string();
    let mut p = Proc::spawn(
        "prefork server",
        Command::new(PYTHON3).args(["-c", PREFORK, &name]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let child = descendants(p.pid())[0];
    let image = dir.join("child.kckpt");
    let out = dump_raw(child, &image, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(
        err.contains(&format!(
            "listening unix socket also held by pid {} (python3), outside the dump",
            p.pid()
        )),
        "{err}"
    );
    let answer = ask(&name);
    assert!(
        answer.starts_with("parent ") || answer.starts_with("child "),
        "{answer}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGKILL,
    );
    p.kill();

    let mut p = start(&dir.join("two.sock").display().to_string(), "accept");
    let two = dir.join("two.sock");
    fs::remove_file(&two).unwrap();
    fs::create_dir(&two).unwrap();
    let out = dump_raw(p.pid(), &image, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(
        err.contains(&format!(
            "listening unix socket {} (a directory at its path now)",
            two.display()
        )),
        "{err}"
    );
    assert!(
        p.exited().is_none(),
        "a refused dump left the server running"
    );
    p.kill();
}

/// A name bound relative to the working directory is bound again from
/// the saved working directory, whoever restores it from where: the
/// program still sees its relative name.
#[test]
fn a_listening_socket_bound_to_a_relative_path_comes_back_there() {
    let dir = TestDir::new("unix_listen_relative");
    let mut p = start_in(dir.path(), "server.sock", "accept");
    let full = dir.join("server.sock").display().to_string();
    assert!(ask(&full).starts_with("served 1 "));
    let image = dir.join("server.kckpt");
    dump_kills(&mut p, &image);
    let mut r = restore(&image);
    let answer = ask(&full);
    assert!(
        answer.starts_with("served 2 ") && answer.ends_with(" name 'server.sock'"),
        "{answer}"
    );
    r.kill();
    // Moved away from where its name leads: refused at dump.
    let mut p = start_in(dir.path(), "two.sock", "accept");
    fs::create_dir(dir.join("elsewhere")).unwrap();
    fs::rename(dir.join("two.sock"), dir.join("elsewhere/two.sock")).unwrap();
    let out = dump_raw(p.pid(), &image, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                "listening unix socket two.sock (bound to a relative path that does not lead to it"
            ),
        "{err}"
    );
    p.kill();
}

/// Three listeners (zdtm del_standalone_un): `a` on DIR/sock; `b` bound
/// to DIR/sock while `a`'s file was moved aside, then `a`'s file moved
/// back over `b`'s (b's path leads to `a`); `c` bound to DIR/gone, which
/// was removed. On each stdin line: every socket's name and whether it
/// listens, what DIR holds, and which socket accepts a client of DIR/sock.
const DETACHED: &str = r#"
import os, socket, sys
d = sys.argv[1]
path, tmp, gone = d + "/sock", d + "/tmp", d + "/gone"
def listener(p):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(p)
    s.listen(3)
    s.setblocking(False)
    return s
a = listener(path)
os.rename(path, tmp)
b = listener(path)
os.rename(tmp, path)
c = listener(gone)
os.unlink(gone)
print("ready", flush=True)
for _ in sys.stdin:
    out = []
    for n, s in (("a", a), ("b", b), ("c", c)):
        acc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        out.append(f"{n}={os.path.basename(s.getsockname())}:{acc}")
    out.append("dir=" + ",".join(sorted(os.listdir(d))))
    k = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    k.connect(path)
    for n, s in (("a", a), ("b", b), ("c", c)):
        try:
            s.accept()[0].close()
            out.append("accepted-by=" + n)
        except BlockingIOError:
            pass
    k.close()
    print(" ".join(out), flush=True)
"#;

/// What `DETACHED` prints, before the dump and after the restore.
const DETACHED_STATE: &str = "a=sock:1 b=sock:1 c=gone:1 dir=sock accepted-by=a";

#[test]
fn listeners_whose_path_was_removed_or_taken_come_back_without_a_file() {
    let dir = TestDir::new("unix_listen_detached");
    let d = dir.join("d");
    fs::create_dir(&d).unwrap();
    let d = d.display().to_string();
    let mut p = Proc::spawn(
        "detached listeners",
        Command::new(PYTHON3).args(["-c", DETACHED, &d]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p.write_stdin("check\n");
    assert_eq!(p.line(LINE_TIMEOUT), DETACHED_STATE);
    let image = dir.join("detached.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let fds = info["files"]["fds"].as_array().expect("fds");
    let detached: Vec<bool> = fds
        .iter()
        .filter(|f| f["kind"] == "unix listen")
        .map(|f| f["listen"]["detached"] == true)
        .collect();
    // `a` leads from its path; `b` (path taken) and `c` (removed) do not.
    assert_eq!(detached, [false, true, true], "{fds:?}");

    let mut r = restore(&image);
    r.write_stdin("check\n");
    // Every socket has its name and listens; the directory holds only the
    // file of `a` (no file for `c`, nothing left aside), which leads to `a`.
    assert_eq!(r.line(LINE_TIMEOUT), DETACHED_STATE, "{}", r.stderr());
    assert!(r.stderr().is_empty(), "no warning expected: {}", r.stderr());
    r.kill();
}

#[test]
fn a_detached_listener_leaves_a_live_socket_at_its_path_alone() {
    let dir = TestDir::new("unix_listen_detached_live");
    let d = dir.join("d");
    fs::create_dir(&d).unwrap();
    let d = d.display().to_string();
    let mut p = Proc::spawn(
        "detached listeners",
        Command::new(PYTHON3).args(["-c", DETACHED, &d]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let image = dir.join("detached.kckpt");
    // Left running: its `a` still listens at DIR/sock during the restore,
    // which then refuses `a` by name, and leaves the path to it.
    dump(p.pid(), &image, true);
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cannot listen on {d}/sock again: a live socket listens there"
        )),
        "{err}"
    );
    p.write_stdin("check\n");
    let after = p.line(LINE_TIMEOUT);
    assert!(after.ends_with("dir=sock accepted-by=a"), "{after}");
    p.kill();
}

/// Root restores nobody's server: the socket file it binds again is
/// nobody's as before (bound by root, it would be root's, mode 755, and
/// nobody could not connect to its own server).
#[test]
fn a_socket_file_bound_again_by_root_keeps_its_owner() {
    require_tool("setpriv");
    if !nix::unistd::geteuid().is_root() {
        panic!("this test restores as root: run the tests as root (scripts/test.sh does)");
    }
    let dir = TestDir::new("unix_listen_owner");
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let name = dir.join("s.sock").to_str().unwrap().to_owned();
    let mut p = Proc::spawn(
        "unix server",
        command_as(&NOBODY, PYTHON3).args(["-c", SERVER, &name, "accept"]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let owner = |path: &str| {
        let m = fs::metadata(path).unwrap();
        (
            std::os::unix::fs::MetadataExt::uid(&m),
            std::os::unix::fs::MetadataExt::mode(&m) & 0o777,
        )
    };
    let before = owner(&name);
    assert_eq!(before.0, 65534);
    let nobody_asks = || {
        let out = run(
            command_as(&NOBODY, PYTHON3).args([
                "-c",
                "import socket,sys,time\n\
                 for i in range(100):\n\
                 \x20   s=socket.socket(socket.AF_UNIX)\n\
                 \x20   try:\n\
                 \x20       s.connect(sys.argv[1]); break\n\
                 \x20   except (FileNotFoundError, ConnectionRefusedError):\n\
                 \x20       time.sleep(0.1)\n\
                 print(s.recv(300).decode().strip())",
                &name,
            ]),
            CMD_TIMEOUT,
        );
        assert!(out.status.success(), "nobody's client: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(nobody_asks().starts_with("served 1 "));
    let image = dir.join("server.kckpt");
    dump_kills(&mut p, &image);
    let mut r = restore(&image);
    // (the client tries again until the restore has bound the socket)
    let answer = nobody_asks();
    assert!(answer.starts_with("served 2 "), "{answer}");
    assert_eq!(owner(&name), before, "owner and mode of the socket file");
    r.kill();
}
