//! Established TCP connections (fd kind 44): TCP repair and `--tcp-close`.
//!
//! `tcp_conn.c` holds connections with data in flight both ways and
//! checks every byte after the restore. As root (TCP repair needs
//! `CAP_NET_ADMIN`): a parent and child connected over loopback (IPv4,
//! IPv6) dumped and restored carry on; a client of a server outside the
//! dump carries on and the server sees neither FIN nor RST; with
//! `--leave-running` the connection carries on and a restore while it
//! lives is refused in one line. Without the capability (as nobody, or
//! root of a user namespace): the dump is refused naming each connection,
//! `--tcp-close` saves them as reset ones; an image saved with repair is
//! refused at restore naming the connection, or with `KCKPT_TCP_CLOSE=1`
//! restored reset (the program reads `ECONNRESET`). Tests needing root
//! print a SKIP line with the count of skips when not run as root.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const TCP_CONN: &str = env!("KCKPT_PROG_TCP_CONN");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

static SKIPS: AtomicUsize = AtomicUsize::new(0);

/// Root (TCP repair)? Otherwise a SKIP line, counted.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let n = SKIPS.fetch_add(1, Ordering::SeqCst) + 1;
    println!(
        "SKIP {test}: needs root (CAP_NET_ADMIN for TCP repair) [{n} skipped in tcp_connections]"
    );
    false
}

/// A running `tcp_conn tree*`: the parent, the child, the listener's port
/// and the child's (the connection is `127.0.0.1:LISTEN <-> :CHILD`).
struct Tree {
    p: Proc,
    parent: i32,
    child: i32,
    listen: u16,
    cport: u16,
}

fn start_tree(prefix: &[&str], args: &[&str]) -> Tree {
    let mut p = Proc::spawn("tcp_conn", command_as(prefix, TCP_CONN).args(args));
    let (mut parent, mut child, mut listen, mut cport) = (0, 0, 0, 0);
    loop {
        let line = p.line(LINE_TIMEOUT);
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["ready"] => break,
            ["parent", pid] => parent = pid.parse().unwrap(),
            ["child", pid] => child = pid.parse().unwrap(),
            ["ports", l, c, "queued", _] => {
                listen = l.parse().unwrap();
                cport = c.parse().unwrap();
            }
            _ => p.fail(&format!("unexpected line {line:?}")),
        }
    }
    assert!(parent > 0 && child > 0 && listen > 0 && cport > 0);
    Tree {
        p,
        parent,
        child,
        listen,
        cport,
    }
}

/// Sockets of this host on local `port` (TCP, IPv4 and IPv6, any state,
/// from /proc/net/tcp*): none after a silent close.
fn sockets_on(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let local = line.split_whitespace().nth(1).unwrap_or("");
            let p = local.rsplit(':').next().unwrap_or("");
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                found.push(line.trim().to_owned());
            }
        }
    }
    found
}

/// `kckpt dump` of the tree through `prefix` with `extra` flags: succeeds,
/// both processes are gone.
fn dump_tree(prefix: &[&str], t: &mut Tree, image: &Path, extra: &[&str]) {
    let out = run(
        kckpt_as(prefix)
            .args(["dump", "-p", &t.parent.to_string(), "-o"])
            .arg(image)
            .args(extra),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "dump failed: {}", show(&out));
    let status = t.p.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "the root was not killed: {status}");
    assert!(
        all_gone(&[t.parent, t.child], Duration::from_secs(10)),
        "a dumped process is still there"
    );
}

/// Read the restored tree's lines to `done`: each of `expect` seen (a
/// prefix), no FAIL; the restore exits 0.
fn finish(r: &mut Proc, expect: &[&str]) {
    r.write_stdin("go\n");
    let mut seen = vec![false; expect.len()];
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            r.fail(&format!("after the restore: {line}"));
        }
        for (s, e) in seen.iter_mut().zip(expect) {
            *s |= line.starts_with(e);
        }
    }
    for (s, e) in seen.iter().zip(expect) {
        assert!(*s, "no line {e:?}: {}", r.stderr());
    }
    assert!(r.wait_exit(EXIT_TIMEOUT).success(), "{}", r.stderr());
}

fn conn_info(info: &serde_json::Value) -> &serde_json::Value {
    let fds = info["files"]["fds"].as_array().expect("fds");
    let f = fds
        .iter()
        .find(|f| f["kind"] == "tcp connection")
        .unwrap_or_else(|| panic!("no tcp connection in {fds:?}"));
    &f["socket"]
}

fn tree_carries_on(name: &str, mode: &str, ip: &str) {
    let dir = TestDir::new(name);
    let image = dir.join("tree.kckpt");
    let mut t = start_tree(&[], &[mode]);
    let (a, b) = (sockets_on(t.listen), sockets_on(t.cport));
    assert!(
        a.len() == 2 && b.len() == 1,
        "listener and both ends: {a:?} {b:?}"
    );
    dump_tree(&[], &mut t, &image, &[]);
    // Closed in repair mode: no FIN, no RST, nothing left in TIME_WAIT.
    assert_eq!(sockets_on(t.listen), Vec::<String>::new());
    assert_eq!(sockets_on(t.cport), Vec::<String>::new());
    let info = info_json(&image);
    let s = conn_info(&info);
    assert_eq!(s["state"], "established");
    assert_eq!(s["restored"], "tcp repair");
    assert_eq!(s["local"], format!("{ip}:{}", t.listen));
    assert_eq!(s["peer"], format!("{ip}:{}", t.cport));
    assert_eq!(s["queued_to_read"], 5000, "the child's bytes, unread");
    assert!(
        s["not_sent"].as_u64().unwrap_or(0) > 0,
        "the parent's bytes the child had no room for: {s}"
    );
    let mut r = restore(&image);
    finish(&mut r, &["ok parent", "ok child"]);
}

#[test]
fn a_connected_parent_and_child_on_ipv4_carry_on_with_every_byte() {
    if root_or_skip("a_connected_parent_and_child_on_ipv4_carry_on_with_every_byte") {
        tree_carries_on("tcp_tree4", "tree4", "127.0.0.1");
    }
}

#[test]
fn a_connected_parent_and_child_on_ipv6_carry_on_with_every_byte() {
    if root_or_skip("a_connected_parent_and_child_on_ipv6_carry_on_with_every_byte") {
        tree_carries_on("tcp_tree6", "tree6", "[::1]");
    }
}

/// A server of the test's own and `tcp_conn client` connected to it, past
/// its "hello" and with "queued" sent to it (unread).
fn start_client(prefix: &[&str], ip: &str, extra: &[&str]) -> (Proc, TcpListener, TcpStream) {
    let server = TcpListener::bind((ip, 0)).expect("listen");
    let port = server.local_addr().unwrap().port().to_string();
    let mut p = Proc::spawn(
        "tcp_conn client",
        command_as(prefix, TCP_CONN)
            .args(["client", ip, &port])
            .args(extra),
    );
    let (mut c, _) = server.accept().expect("accept");
    c.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    let mut hello = [0u8; 6];
    c.read_exact(&mut hello).expect("hello");
    assert_eq!(&hello, b"hello\n");
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    c.write_all(b"queued\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    (p, server, c)
}

/// The server's end saw nothing: no FIN (a read would return 0), no RST.
fn server_saw_nothing(c: &TcpStream) {
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    match (&*c).read(&mut b) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the server's end noticed the dump: {other:?}"),
    }
    c.set_nonblocking(false).unwrap();
}

/// The client's "after", then "bye" to it.
fn server_talks(c: &mut TcpStream) {
    let mut after = [0u8; 6];
    c.read_exact(&mut after)
        .expect("the client's line after the restore");
    assert_eq!(&after, b"after\n");
    c.write_all(b"bye\n").unwrap();
}

fn client_carries_on(name: &str, ip: &str) {
    let dir = TestDir::new(name);
    let image = dir.join("client.kckpt");
    let (mut p, _server, mut c) = start_client(&[], ip, &[]);
    dump_kills(&mut p, &image);
    server_saw_nothing(&c);
    let mut r = restore(&image);
    r.write_stdin("go\n");
    server_talks(&mut c);
    r.wait_for("ok client", LINE_TIMEOUT, |l| {
        assert!(!l.starts_with("FAIL"), "{l}");
        l.starts_with("ok client")
    });
    assert!(r.wait_exit(EXIT_TIMEOUT).success(), "{}", r.stderr());
}

#[test]
fn a_client_of_a_server_outside_the_dump_carries_on() {
    if root_or_skip("a_client_of_a_server_outside_the_dump_carries_on") {
        client_carries_on("tcp_client4", "127.0.0.1");
    }
}

#[test]
fn a_client_of_a_server_outside_the_dump_carries_on_over_ipv6() {
    if root_or_skip("a_client_of_a_server_outside_the_dump_carries_on_over_ipv6") {
        client_carries_on("tcp_client6", "::1");
    }
}

#[test]
fn leave_running_takes_the_connection_out_of_repair_mode() {
    if !root_or_skip("leave_running_takes_the_connection_out_of_repair_mode") {
        return;
    }
    let dir = TestDir::new("tcp_leave");
    let image = dir.join("client.kckpt");
    let (mut p, _server, mut c) = start_client(&[], "127.0.0.1", &[]);
    let out = dump(p.pid(), &image, true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("carries on (--leave-running)"), "{err}");
    server_saw_nothing(&c);
    // The connection still lives: restoring it again is refused at once.
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(out.stdout.is_empty(), "nothing ran: {}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let refusal: Vec<&str> = err.lines().filter(|l| !l.contains("warning")).collect();
    assert_eq!(refusal.len(), 1, "one line: {err}");
    assert!(
        refusal[0].contains("(TCP connection 127.0.0.1:")
            && refusal[0].contains("that connection exists"),
        "{err}"
    );
    // The original carries on (repair mode would make its write fail).
    p.write_stdin("go\n");
    server_talks(&mut c);
    p.wait_for("ok client", LINE_TIMEOUT, |l| {
        assert!(!l.starts_with("FAIL"), "{l}");
        l.starts_with("ok client keepalive 1")
    });
    assert!(p.wait_exit(EXIT_TIMEOUT).success());
}

#[test]
fn without_cap_net_admin_the_dump_names_each_connection_and_tcp_close_resets_them() {
    require_tool("setpriv");
    let dir = TestDir::new("tcp_nobody");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("tree.kckpt");
    let mut t = start_tree(&NOBODY, &["tree4", "reset"]);
    let out = dump_as(&NOBODY, t.parent, &image);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let (l, c) = (t.listen, t.cport);
    assert!(
        err.contains(&format!("TCP connection 127.0.0.1:{l} -> 127.0.0.1:{c}")),
        "the parent's end named: {err}"
    );
    assert!(
        err.contains("CAP_NET_ADMIN") && err.contains("--tcp-close"),
        "{err}"
    );
    assert!(!image.exists(), "no image");
    assert!(
        t.p.exited().is_none(),
        "a refused dump left the tree running"
    );
    // The child's end is named too (dumped alone).
    let out = dump_as(&NOBODY, t.child, &image);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        err.contains(&format!("TCP connection 127.0.0.1:{c} -> 127.0.0.1:{l}")),
        "the child's end named: {err}"
    );
    // --tcp-close: saved, restored reset; each end reads ECONNRESET.
    dump_tree(&NOBODY, &mut t, &image, &["--tcp-close"]);
    assert_eq!(
        conn_info(&info_json(&image))["restored"],
        "reset (--tcp-close)"
    );
    let mut r = Proc::spawn(
        "kckpt restore",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    finish(&mut r, &["reset parent", "reset child"]);
}

#[test]
fn tcp_close_as_root_saves_reset_connections() {
    if !root_or_skip("tcp_close_as_root_saves_reset_connections") {
        return;
    }
    let dir = TestDir::new("tcp_close_root");
    let image = dir.join("tree.kckpt");
    let mut t = start_tree(&[], &["tree6", "reset"]);
    dump_tree(&[], &mut t, &image, &["--tcp-close"]);
    let s = conn_info(&info_json(&image)).clone();
    assert_eq!(s["restored"], "reset (--tcp-close)", "{s}");
    assert_eq!(s["queued_to_read"], 0);
    let mut r = restore(&image);
    finish(&mut r, &["reset parent", "reset child"]);
}

/// Nobody's `kckpt restore IMAGE` fails with one line (warnings apart)
/// holding each of `words`; its output.
fn nobody_refused(image: &Path, words: &[&str]) -> std::process::Output {
    let out = run(kckpt_as(&NOBODY).arg("restore").arg(image), CMD_TIMEOUT);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let refusal: Vec<&str> = err.lines().filter(|l| !l.contains("warning")).collect();
    assert_eq!(refusal.len(), 1, "one line: {err}");
    for w in words {
        assert!(refusal[0].contains(w), "no {w:?} in: {err}");
    }
    out
}

/// The line of `tcp_conn client` restored reset: its first read fails.
const CLIENT_RESET: &str = "FAIL client recv queued: Connection reset by peer";

#[test]
fn a_repair_image_restored_by_nobody_is_refused_or_reset_with_tcp_close() {
    if !root_or_skip("a_repair_image_restored_by_nobody_is_refused_or_reset_with_tcp_close") {
        return;
    }
    require_tool("setpriv");
    let dir = TestDir::new("tcp_restore_nobody");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("client.kckpt");
    // Nobody's client, dumped by root with TCP repair.
    let (mut p, _server, c) = start_client(&NOBODY, "127.0.0.1", &[]);
    let port = c.local_addr().unwrap().port();
    dump_kills(&mut p, &image);
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = nobody_refused(
        &image,
        &[
            &format!("-> 127.0.0.1:{port})"),
            "needs CAP_NET_ADMIN",
            "--tcp-close",
        ],
    );
    assert!(out.stdout.is_empty(), "nothing ran: {}", show(&out));
    // `kckpt restore --tcp-close`: the program finds its connection reset.
    let mut r = Proc::spawn(
        "kckpt restore",
        kckpt_as(&NOBODY)
            .args(["restore", "--tcp-close"])
            .arg(&image),
    );
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), CLIENT_RESET, "{}", r.stderr());
    r.wait_exit(EXIT_TIMEOUT);
}

#[test]
fn the_image_run_in_a_user_namespace_needs_cap_net_admin_or_kckpt_tcp_close() {
    if !root_or_skip("the_image_run_in_a_user_namespace_needs_cap_net_admin_or_kckpt_tcp_close") {
        return;
    }
    let dir = TestDir::new("tcp_restore_userns");
    let image = dir.join("client.kckpt");
    let (mut p, _server, _c) = start_client(&[], "127.0.0.1", &[]);
    dump_kills(&mut p, &image);
    // Root of a user namespace has no CAP_NET_ADMIN over the host's
    // network: `./client.kckpt` (binfmt_misc) is refused in one line...
    let mut r = restore_binfmt(&image);
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success());
    // (stderr is read by a thread: it may come after the exit)
    let refused = eventually(Duration::from_secs(5), || {
        r.stderr()
            .lines()
            .any(|l| l.contains("(TCP connection 127.0.0.1:") && l.contains("needs CAP_NET_ADMIN"))
    });
    assert!(refused, "{}", r.stderr());
    // ...and with KCKPT_TCP_CLOSE=1 restored with its connection reset.
    let mut r = restore_binfmt_env(&image, &[("KCKPT_TCP_CLOSE", "1")]);
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), CLIENT_RESET, "{}", r.stderr());
    r.wait_exit(EXIT_TIMEOUT);
}

/// The warning of a restore that made a network namespace by itself.
const OWN_NET: &str = "restored in a new network namespace with only a loopback interface";

/// Root dumps nobody's connected tree with TCP repair; nobody restores
/// it: a tree is restored in new namespaces then, and as every
/// connection's peer is in the image, in a network namespace of its own
/// too (loopback only), where nobody may use TCP repair. Every byte
/// arrives; the warning says the sockets are out of this network.
#[test]
fn nobody_restores_a_connected_tree_in_a_network_namespace_of_its_own() {
    if !root_or_skip("nobody_restores_a_connected_tree_in_a_network_namespace_of_its_own") {
        return;
    }
    require_tool("setpriv");
    let dir = TestDir::new("tcp_tree_own_net");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("tree.kckpt");
    let mut t = start_tree(&NOBODY, &["tree6"]);
    dump_tree(&[], &mut t, &image, &[]);
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut r = Proc::spawn(
        "kckpt restore",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    finish(&mut r, &["ok parent", "ok child"]);
    assert!(r.stderr().contains(OWN_NET), "{}", r.stderr());
}

/// `tcp_conn self4|self6` as `who`, up to its "ready": the process and
/// its listener's port.
fn start_self(who: &[&str], mode: &str) -> (Proc, u16) {
    let mut p = Proc::spawn("tcp_conn", command_as(who, TCP_CONN).arg(mode));
    let mut port = 0;
    loop {
        let line = p.line(LINE_TIMEOUT);
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["ready"] => break,
            ["self", _] => {}
            ["port", n] => port = n.parse().unwrap(),
            _ => p.fail(&format!("unexpected line {line:?}")),
        }
    }
    assert!(port > 0);
    (p, port)
}

/// One process connected to itself, dumped by root: nobody's plain
/// restore is refused in one line naming the connection and the ways
/// out; with `--new-pid-ns` the stub makes a network namespace too by
/// itself (the connection's both ends are in the image) and the process
/// carries on.
#[test]
fn a_process_connected_to_itself_comes_back_for_nobody_with_new_pid_ns() {
    if !root_or_skip("a_process_connected_to_itself_comes_back_for_nobody_with_new_pid_ns") {
        return;
    }
    require_tool("setpriv");
    let dir = TestDir::new("tcp_self_own_net");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("self.kckpt");
    let (mut p, port) = start_self(&NOBODY, "self4");
    dump_kills(&mut p, &image);
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    nobody_refused(
        &image,
        &[
            &format!("127.0.0.1:{port}"),
            "needs CAP_NET_ADMIN",
            "--tcp-close",
            "--new-net-ns",
        ],
    );
    let mut r = Proc::spawn(
        "kckpt restore --new-pid-ns",
        kckpt_as(&NOBODY)
            .args(["restore", "--new-pid-ns"])
            .arg(&image),
    );
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "ok self", "{}", r.stderr());
    assert!(r.wait_exit(EXIT_TIMEOUT).success(), "{}", r.stderr());
    assert!(r.stderr().contains(OWN_NET), "{}", r.stderr());
}

/// `kckpt restore --new-net-ns` (root here) restores a process connected
/// to itself over IPv6 in a network namespace of its own without a
/// warning (asked for); the restored process is in another network
/// namespace than this one.
#[test]
fn new_net_ns_restores_a_connection_in_a_network_namespace_of_its_own() {
    if !root_or_skip("new_net_ns_restores_a_connection_in_a_network_namespace_of_its_own") {
        return;
    }
    let dir = TestDir::new("tcp_self_new_net");
    let image = dir.join("self.kckpt");
    let (mut p, _port) = start_self(&[], "self6");
    dump_kills(&mut p, &image);
    let mut r = Proc::spawn(
        "kckpt restore --new-net-ns",
        Command::new(kckpt())
            .args(["restore", "--new-net-ns"])
            .arg(&image),
    );
    // The restored process: a descendant of the restore whose command
    // is tcp_conn's.
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let theirs = eventually(Duration::from_secs(10), || {
        descendants(r.pid()).into_iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "tcp_conn\n")
                && std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l != ours)
        })
    });
    assert!(theirs, "no restored process in another network namespace");
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "ok self", "{}", r.stderr());
    assert!(r.wait_exit(EXIT_TIMEOUT).success(), "{}", r.stderr());
    assert!(!r.stderr().contains("warning"), "{}", r.stderr());
}

/// The way a user without root restores a connected tree (README): the
/// whole tree runs in a user and network namespace of its own (loopback
/// only), where the user has CAP_NET_ADMIN; kckpt dumps and restores it
/// from inside with TCP repair.
#[test]
fn a_user_saves_and_restores_a_connected_tree_in_its_own_network_namespace() {
    tree_in_own_namespaces("tcp_userns", false);
}

/// The same, the image run as `./tree.kckpt` (binfmt_misc registered in
/// the namespaces: a mount namespace too).
#[test]
fn a_connected_tree_comes_back_from_its_file_in_its_own_network_namespace() {
    tree_in_own_namespaces("tcp_userns_binfmt", true);
}

fn tree_in_own_namespaces(name: &str, binfmt: bool) {
    require_tool("unshare");
    require_tool("ip");
    let dir = TestDir::new(name);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = r#"
        set -e
        ip link set lo up
        cd "$DIR"
        mkfifo in
        "$PROG" tree4 < in > out 2>&1 &
        exec 3> in
        n=0
        until grep -q '^ready$' out; do
            n=$((n + 1)); [ $n -lt 500 ] || exit 11
            sleep 0.02
        done
        PARENT=$(awk '/^parent/ { print $2 }' out)
        "$KCKPT" dump -p "$PARENT" -o tree.kckpt || exit 12
        wait || true
        exec 3>&-
        rm in; mkfifo in
        if [ -n "$BINFMT" ]; then
            mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
            "$KCKPT" binfmt register --stub "$KCKPT_STUB" >&2
            chmod 700 tree.kckpt
            ./tree.kckpt < in &
        else
            "$KCKPT" restore tree.kckpt < in &
        fi
        R=$!
        exec 3> in
        echo go >&3
        wait $R || exit 13
        echo restored
    "#;
    // As nobody when the tests run as root: no privilege is used.
    let prefix: &[&str] = if nix::unistd::geteuid().is_root() {
        require_tool("setpriv");
        &NOBODY
    } else {
        &[]
    };
    let mut ns = vec!["--user", "--map-root-user", "--net"];
    if binfmt {
        ns.push("--mount");
    }
    let out = run(
        command_as(prefix, "unshare")
            .args(&ns)
            .args(["sh", "-c", script])
            .env("DIR", dir.path())
            .env("PROG", TCP_CONN)
            .env("KCKPT", kckpt())
            .env("KCKPT_STUB", stub())
            .env("BINFMT", if binfmt { "1" } else { "" }),
        DUMP_TIMEOUT,
    );
    let lines = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("restored"),
        "{}\nthe tree's output:\n{lines}",
        show(&out)
    );
    assert!(!lines.contains("FAIL"), "{lines}");
    for l in ["ok parent sent", "ok child sent", "done"] {
        assert!(lines.contains(l), "no {l:?} in the tree's output:\n{lines}");
    }
}

#[test]
fn a_dumper_killed_after_reading_the_connection_leaves_it_working() {
    if !root_or_skip("a_dumper_killed_after_reading_the_connection_leaves_it_working") {
        return;
    }
    let dir = TestDir::new("tcp_dumper_killed");
    let image = dir.join("client.kckpt");
    let (mut p, _server, mut c) = start_client(&[], "127.0.0.1", &[]);
    let out = run(
        Command::new(kckpt())
            .args(["dump", "-p", &p.pid().to_string(), "-o"])
            .arg(&image)
            .env("KCKPT_TEST_DIE_AT", "written"),
        DUMP_TIMEOUT,
    );
    assert!(
        !out.status.success(),
        "the dumper was to die: {}",
        show(&out)
    );
    assert!(!image.exists());
    server_saw_nothing(&c);
    // Out of repair mode: the program's write works.
    p.write_stdin("go\n");
    server_talks(&mut c);
    p.wait_for("ok client", LINE_TIMEOUT, |l| {
        assert!(!l.starts_with("FAIL"), "{l}");
        l.starts_with("ok client")
    });
    assert!(p.wait_exit(EXIT_TIMEOUT).success());
}

/// `kckpt dump` of the client `p` (512 MiB to save), started and waited
/// for until it writes memory, long after it read the connection.
fn dump_writing_memory(p: &Proc, image: &Path) -> std::process::Child {
    let dump = Command::new(kckpt())
        .args(["dump", "-p", &p.pid().to_string(), "-o"])
        .arg(image)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kckpt dump");
    // Memory is written after the descriptors are read: wait until the
    // image being written holds 64 MiB (allocated blocks: its length may be
    // set ahead).
    let fds = format!("/proc/{}/fd", dump.id());
    let writing = eventually(DUMP_TIMEOUT, || {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(&fds)
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::metadata(e.path())
                        .is_ok_and(|m| m.is_file() && m.blocks() * 512 > 64 << 20)
                })
            })
            .unwrap_or(false)
    });
    assert!(writing, "the dumper never wrote memory");
    dump
}

/// Data that comes while a connection is saved fails that try; the dump
/// tries again from the start (the processes were resumed meanwhile) and
/// saves the data with the rest.
#[test]
fn data_from_the_peer_during_the_dump_is_saved_by_the_next_try() {
    if !root_or_skip("data_from_the_peer_during_the_dump_is_saved_by_the_next_try") {
        return;
    }
    let dir = TestDir::new("tcp_changed_once");
    let image = dir.join("client.kckpt");
    let (mut p, _server, mut c) = start_client(&[], "127.0.0.1", &["512"]);
    let mut dump = dump_writing_memory(&p, &image);
    assert!(
        dump.try_wait().unwrap().is_none(),
        "the dump ended before the server sent: too fast to test"
    );
    c.write_all(b"late\n").unwrap();
    let out = dump.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    p.drain(Duration::from_secs(10));
    p.wait_exit(Duration::from_secs(10));
    let info = info_json(&image);
    assert_eq!(
        conn_info(&info)["queued_to_read"],
        12,
        "\"queued\\n\" and \"late\\n\", unread"
    );
}

/// A peer that sends all the time fails every try: the dump gives up
/// after three, naming the connection, and the connection carries on.
#[test]
fn data_from_the_peer_during_every_try_fails_the_dump_and_the_connection_carries_on() {
    if !root_or_skip(
        "data_from_the_peer_during_every_try_fails_the_dump_and_the_connection_carries_on",
    ) {
        return;
    }
    let dir = TestDir::new("tcp_changed");
    let image = dir.join("client.kckpt");
    let (mut p, _server, mut c) = start_client(&[], "127.0.0.1", &["512"]);
    let dump = dump_writing_memory(&p, &image);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = c.try_clone().unwrap();
    let stop_writing = stop.clone();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        while !stop_writing.load(std::sync::atomic::Ordering::Relaxed) {
            writer.write_all(b"x").unwrap();
            sent += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        sent
    });
    let out = dump.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("TCP connection 127.0.0.1:"), "{err}");
    assert!(err.contains("changed while it was saved"), "{err}");
    assert!(err.contains("3 times"), "{err}");
    assert!(!image.exists());
    assert!(sent > 0);
    // The process was resumed with its connection out of repair mode.
    p.write_stdin("go\n");
    let mut after = [0u8; 6];
    c.read_exact(&mut after).expect("the client's line");
    assert_eq!(&after, b"after\n");
    p.kill();
}

/// (1.7) A half-closed connection is saved in its state (restores:
/// `tcp_half_closed.rs`).
#[test]
fn a_half_closed_connection_is_saved_in_its_state() {
    if !root_or_skip("a_half_closed_connection_is_saved_in_its_state") {
        return;
    }
    let dir = TestDir::new("tcp_close_wait");
    let image = dir.join("client.kckpt");
    let (mut p, _server, c) = start_client(&[], "127.0.0.1", &[]);
    let (local, peer) = (c.peer_addr().unwrap(), c.local_addr().unwrap());
    // The server closes its end: the client's is in CLOSE_WAIT.
    drop(c);
    std::thread::sleep(Duration::from_millis(100));
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let s = conn_info(&info);
    assert_eq!(s["state"], "close-wait");
    assert_eq!(s["local"], local.to_string());
    assert_eq!(s["peer"], peer.to_string());
    assert_eq!(s["queued_to_read"], 7, "\"queued\\n\", unread");
}

/// Urgent data: a peek (and `SIOCINQ`) stops at the urgent mark, TCP
/// repair does not save the mark: refused, not saved short.
#[test]
fn urgent_data_in_a_receive_queue_is_refused() {
    if !root_or_skip("urgent_data_in_a_receive_queue_is_refused") {
        return;
    }
    let dir = TestDir::new("tcp_oob");
    let image = dir.join("oob.kckpt");
    let code = "import socket,time\n\
                s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
                c=socket.create_connection(s.getsockname()); a,_=s.accept()\n\
                a.send(b'abc'); a.send(b'!', socket.MSG_OOB); a.send(b'def')\n\
                time.sleep(0.2)\n\
                print('ready', c.getsockname()[1], flush=True)\n\
                time.sleep(60)\n";
    let mut p = Proc::start(PYTHON3, &["-c", code]);
    let line = p.line(LINE_TIMEOUT);
    let port = line.strip_prefix("ready ").expect("ready");
    let out = dump_raw(p.pid(), &image, false);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("(TCP connection 127.0.0.1:{port} -> "))
            && err.contains("urgent data (MSG_OOB)"),
        "{err}"
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.kill();
}

/// A congestion control the program chose (`TCP_CONGESTION`) is not
/// restored: named at dump.
#[test]
fn a_congestion_control_the_program_chose_is_refused_by_name() {
    if !root_or_skip("a_congestion_control_the_program_chose_is_refused_by_name") {
        return;
    }
    let dir = TestDir::new("tcp_cc");
    let image = dir.join("cc.kckpt");
    let code = "import socket,time\n\
                s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
                c=socket.create_connection(s.getsockname()); a,_=s.accept()\n\
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b'reno')\n\
                print('ready', c.getsockname()[1], flush=True)\n\
                time.sleep(60)\n";
    let mut p = Proc::start(PYTHON3, &["-c", code]);
    let line = p.line(LINE_TIMEOUT);
    let port = line.strip_prefix("ready ").expect("ready");
    let out = dump_raw(p.pid(), &image, false);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("(TCP connection 127.0.0.1:{port} -> "))
            && err.contains("congestion control reno (TCP_CONGESTION"),
        "{err}"
    );
    p.kill();
}
