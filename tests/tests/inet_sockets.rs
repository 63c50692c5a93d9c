//! TCP listeners and UDP sockets over IPv4 and IPv6 (fd kinds 42 and 43).
//!
//! `inet_server.c` listens (or receives) on an ephemeral loopback port with
//! options set and answers "opts" with the options it reads back from its
//! socket. After dump (kill) and restore (from `./FILE` and with `kckpt
//! restore`, as root and as nobody): the same port answers a new client,
//! the options read back are the saved ones, `kckpt info` shows the
//! socket. A connection waiting to be accepted is named in a warning when
//! its client is outside the dump, refused when the client is in it.
//! Refused at restore: a port taken since (one line, nothing runs). A
//! connected UDP socket stays connected to its peer.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn start(prefix: &[&str], args: &[&str]) -> (Proc, u16) {
    let mut p = Proc::spawn(
        "inet server",
        command_as(prefix, prog::INET_SERVER).args(args),
    );
    let line = p.line(LINE_TIMEOUT);
    let port = line
        .strip_prefix("ready port ")
        .unwrap_or_else(|| p.fail(&format!("not ready: {line}")))
        .parse()
        .expect("port");
    (p, port)
}

/// Send `text` to the TCP server at `addr`, read its whole answer.
fn tcp_ask(addr: SocketAddr, text: &str) -> String {
    let deadline = Instant::now() + LINE_TIMEOUT;
    let mut s = loop {
        match TcpStream::connect_timeout(&addr, LINE_TIMEOUT) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "connect to {addr}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    s.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    s.write_all(text.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("the server's answer");
    answer
}

/// Send `text` from `s` to the UDP server at `to`, return its answer.
fn udp_ask(s: &UdpSocket, to: SocketAddr, text: &str) -> String {
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + LINE_TIMEOUT;
    let mut buf = [0u8; 1024];
    loop {
        s.send_to(text.as_bytes(), to).unwrap();
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            assert_eq!(from, to, "the answer comes from the server's port");
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(Instant::now() < deadline, "no answer from {to}");
    }
}

fn socket_info<'a>(info: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    let fds = info["files"]["fds"].as_array().expect("fds");
    let f = fds
        .iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} socket in {fds:?}"));
    &f["socket"]
}

/// A TCP server on `addr` (port 0: its own) dumped as `prefix` and
/// restored by `how`: the same port answers, with the same options.
fn tcp_comes_back(name: &str, mode: &str, ip: &str, prefix: &[&str], binfmt: bool) {
    let dir = TestDir::new(name);
    let (mut p, port) = start(prefix, &[mode]);
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    assert_eq!(tcp_ask(addr, "hello"), "echo hello");
    let opts = tcp_ask(addr, "opts");
    assert!(
        opts.contains("reuseaddr 1 keepalive 1 rcvbuf 65536 sndtimeo 2.500000 linger 1/3 nodelay 1 keepidle 77 keepintvl 11 keepcnt 5")
            && opts.contains("nonblock 1 cloexec 0 acceptconn 1"),
        "{opts}"
    );
    let image = dir.join("server.kckpt");
    if prefix.is_empty() {
        dump_kills(&mut p, &image);
    } else {
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let out = dump_as(prefix, p.pid(), &image);
        assert!(out.status.success(), "{}", show(&out));
        p.wait_exit(Duration::from_secs(10));
    }
    let info = info_json(&image);
    let s = socket_info(&info, "tcp");
    assert_eq!(s["local"], addr.to_string());
    assert_eq!(s["backlog"], 7);
    assert_eq!(s["state"], "listen");
    assert_eq!(s["family"], if addr.is_ipv4() { "ipv4" } else { "ipv6" });
    assert_eq!(s["keepidle"], 77);
    let mut r = if binfmt {
        restore_binfmt(&image)
    } else {
        Proc::spawn("kckpt restore", kckpt_as(prefix).arg("restore").arg(&image))
    };
    assert_eq!(tcp_ask(addr, "again"), "echo again");
    assert_eq!(tcp_ask(addr, "opts"), opts, "the options read back");
    r.wait_for("served 4", LINE_TIMEOUT, |l| l == "served 4");
    r.kill();
}

#[test]
fn a_tcp_listener_on_ipv4_comes_back_from_its_file() {
    tcp_comes_back("inet_tcp4", "tcp4", "127.0.0.1", &[], true);
}

#[test]
fn a_tcp_listener_on_ipv6_comes_back_with_kckpt_restore() {
    tcp_comes_back("inet_tcp6", "tcp6", "[::1]", &[], false);
}

#[test]
fn a_tcp_listener_comes_back_as_nobody() {
    require_tool("setpriv");
    tcp_comes_back("inet_tcp4_nobody", "tcp4", "127.0.0.1", &NOBODY, false);
}

#[test]
fn a_port_taken_at_restore_is_refused_in_one_line() {
    let dir = TestDir::new("inet_taken");
    let (mut p, port) = start(&[], &["tcp4"]);
    let image = dir.join("server.kckpt");
    dump_kills(&mut p, &image);
    let _thief = TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(out.stdout.is_empty(), "nothing ran: {}", show(&out));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&format!("(TCP listener 127.0.0.1:{port}): cannot bind 127.0.0.1:{port} again: the port is in use")),
        "{err}"
    );
}

/// A connection waiting to be accepted cannot come back (no repair mode
/// for a listener's queue). Its client outside the dump gets a reset:
/// the dump goes on and names it in a warning.
#[test]
fn a_connection_waiting_to_be_accepted_from_outside_is_named_in_a_warning() {
    let dir = TestDir::new("inet_pending");
    let (mut p, port) = start(&[], &["tcp4", "noaccept"]);
    let mut waiting = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let image = dir.join("server.kckpt");
    // The handshake completes in the kernel: wait until it is queued.
    std::thread::sleep(Duration::from_millis(200));
    let out = dump_raw(p.pid(), &image, false);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: fd 3 (TCP listener 127.0.0.1:{port} with 1 connection(s) waiting to be accepted, from outside the dump: their clients get a reset)"
        )),
        "{err}"
    );
    assert_eq!(socket_info(&info_json(&image), "tcp")["queued_lost"], 1);
    p.wait_exit(Duration::from_secs(10));
    // The killed listener reset the waiting connection.
    waiting.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    let mut b = [0u8; 1];
    let got = std::io::Read::read(&mut waiting, &mut b);
    assert!(
        matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            || matches!(got, Ok(0)),
        "{got:?}"
    );
    // The listener comes back, with nothing waiting.
    let _r = restore(&image);
    assert!(
        eventually(LINE_TIMEOUT, || TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "the restored listener takes no connection"
    );
}

/// A waiting connection whose client is a socket of the dump is refused
/// (that client's connection would lead nowhere after the restore);
/// `--skip-unsupported` saves it with a warning.
#[test]
fn a_connection_waiting_to_be_accepted_from_inside_the_dump_is_refused() {
    let dir = TestDir::new("inet_pending_self");
    let (mut p, port) = start(&[], &["tcp4", "selfconnect"]);
    let image = dir.join("server.kckpt");
    std::thread::sleep(Duration::from_millis(200));
    let out = dump_raw(p.pid(), &image, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        err.contains(&format!(
            "(TCP listener 127.0.0.1:{port} with 1 connection(s) waiting to be accepted, one of them from pid {} of the dump)",
            p.pid()
        )),
        "{err}"
    );
    assert!(
        p.exited().is_none(),
        "a refused dump left the server running"
    );
    let out = dump_skip_unsupported(p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("they are lost"), "{err}");
    assert_eq!(socket_info(&info_json(&image), "tcp")["queued_lost"], 1);
    p.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_udp_server_comes_back_and_answers() {
    let dir = TestDir::new("inet_udp");
    let (mut p, port) = start(&[], &["udp4"]);
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let me = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(udp_ask(&me, to, "hi"), "echo hi");
    let opts = udp_ask(&me, to, "opts");
    assert!(opts.contains("broadcast 1"), "{opts}");
    let image = dir.join("udp.kckpt");
    dump_kills(&mut p, &image);
    let s = socket_info(&info_json(&image), "udp").clone();
    assert_eq!(s["state"], "bound");
    assert_eq!(s["local"], to.to_string());
    let mut r = restore_binfmt(&image);
    assert_eq!(udp_ask(&me, to, "again"), "echo again");
    assert_eq!(udp_ask(&me, to, "opts"), opts);
    r.kill();
}

#[test]
fn a_connected_udp_socket_stays_connected() {
    let dir = TestDir::new("inet_udpconn");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_port = peer.local_addr().unwrap().port().to_string();
    let (mut p, port) = start(&[], &["udpconn", &peer_port]);
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(udp_ask(&peer, to, "hi"), "echo hi");
    let image = dir.join("udpconn.kckpt");
    dump_kills(&mut p, &image);
    let s = socket_info(&info_json(&image), "udp").clone();
    assert_eq!(s["state"], "connected");
    assert_eq!(s["peer"], peer.local_addr().unwrap().to_string());
    let mut r = restore(&image);
    // A stranger's datagram is not delivered to a connected socket.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"stranger", to).unwrap();
    assert_eq!(udp_ask(&peer, to, "again"), "echo again");
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        stranger.recv_from(&mut [0u8; 64]).is_err(),
        "the stranger got an answer"
    );
    r.wait_for("served 2", LINE_TIMEOUT, |l| l == "served 2");
    r.kill();
}

/// The fds of `kind` in `kckpt info --json`, by fd number.
fn sockets_of<'a>(info: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    info["files"]["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// `sock_opts.c` as nobody: a TCP listener with every option kckpt
/// restores set (buffer sizes, timeouts, linger, keepalive times,
/// `IP_TOS`, `IP_TTL`, `SO_PRIORITY`, `SO_OOBINLINE`, `SO_DONTROUTE`,
/// `SO_RCVLOWAT`, `IP_PKTINFO`, `IP_FREEBIND`, cork, nodelay,
/// non-blocking, close-on-exec), an IPv6 one with `IPV6_V6ONLY`,
/// `IPV6_UNICAST_HOPS`, `IPV6_TCLASS`, `IPV6_RECVPKTINFO`, TCP sockets unbound and bound-not-listening (bound to
/// device `lo` too), a UDP socket with four datagrams queued (one empty,
/// one from another port, one from itself, one from another UDP socket of
/// the program, restored before it): dumped and restored by nobody, the program finds each socket
/// as it was, datagrams in order with their senders.
#[test]
fn sockets_in_every_state_come_back_with_their_options_as_nobody() {
    require_tool("setpriv");
    let dir = TestDir::new("inet_sock_opts");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut p = Proc::spawn("sock_opts", &mut command_as(&NOBODY, prog::SOCK_OPTS));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    // No self-check before the dump: it would peek at the empty datagram,
    // which the kernel then hides from every later peek (the dump's).
    let image = dir.join("opts.kckpt");
    let out = dump_as(&NOBODY, p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    p.wait_exit(Duration::from_secs(10));

    let info = info_json(&image);
    let tcp = sockets_of(&info, "tcp");
    let states: Vec<_> = tcp.iter().map(|f| f["socket"]["state"].clone()).collect();
    assert_eq!(
        states,
        ["listen", "listen", "unbound", "bound"].map(serde_json::Value::from),
        "{tcp:?}"
    );
    let t4 = &tcp[0]["socket"];
    assert_eq!(t4["tos"], 0x28);
    assert_eq!(t4["ttl"], 33);
    assert_eq!(t4["priority"], 5);
    assert_eq!(t4["rcvlowat"], 10);
    let t6 = &tcp[1]["socket"];
    assert_eq!(
        (t6["hops"].clone(), t6["tclass"].clone()),
        (17.into(), 0x40.into())
    );
    assert_eq!(tcp[3]["socket"]["device"], "lo");
    let udp = &sockets_of(&info, "udp")[1]["socket"];
    assert_eq!(udp["queued_datagrams"], 4, "{udp}");
    assert_eq!(udp["queued_bytes"], 18, "{udp}");

    let mut r = Proc::spawn(
        "kckpt restore",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    r.self_check();
    r.kill();
}

/// A TCP socket whose connect was refused: refused at dump by name (the
/// port `getsockname` still gives cannot come back); with
/// `--skip-unsupported` a warning, and it comes back not bound, every
/// other socket as it was, `SO_MARK` too (root).
#[test]
fn a_socket_whose_connect_failed_is_named_and_comes_back_unbound() {
    let dir = TestDir::new("inet_refused");
    let mut p = Proc::spawn(
        "sock_opts refused",
        Command::new(prog::SOCK_OPTS).arg("refused"),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    p.self_check();
    let image = dir.join("refused.kckpt");
    let out = dump_raw(p.pid(), &image, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        err.contains("(TCP socket whose connect failed, with the port getsockname still gave ("),
        "{err}"
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.self_check();
    let out = dump_skip_unsupported(p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TCP socket whose connect failed"), "{err}");
    p.wait_exit(Duration::from_secs(10));
    let mut r = restore(&image);
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    r.self_check();
    r.kill();
}

/// A queued datagram whose sender's port is taken at restore: one line
/// naming it, before anything runs.
#[test]
fn a_queued_datagram_whose_sender_port_is_taken_refuses_the_restore() {
    let dir = TestDir::new("inet_dgram_busy");
    let (mut p, port) = start(&[], &["udp4", "wait"]);
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"queued", to).unwrap();
    let image = dir.join("udp.kckpt");
    dump_kills(&mut p, &image);
    let s = socket_info(&info_json(&image), "udp").clone();
    assert_eq!(s["queued_datagrams"], 1, "{s}");
    // The sender still holds its port.
    let out = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(out.stdout.is_empty(), "nothing ran: {}", show(&out));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let from = sender.local_addr().unwrap();
    assert!(
        err.contains(&format!(
            "cannot send its queued datagrams again from {from}: the sender's port is in use"
        )),
        "{err}"
    );
    // Once the sender is gone, the datagram comes back with its sender.
    drop(sender);
    let mut r = restore(&image);
    // Restored (descriptors come before the command line): the helper
    // socket that sent the datagram again is closed.
    r.wait_restored(format!("{}\0udp4\0wait\0", prog::INET_SERVER).as_bytes());
    let me = UdpSocket::bind(from).expect("the sender's port again");
    r.write_stdin("go\n");
    assert_eq!(udp_ask(&me, to, "after"), "echo queued");
    r.kill();
}

/// Sockets of other families and protocols are refused by name: a
/// netlink route socket (a fresh one would lose its port id, groups and
/// queued messages), a packet socket, a raw socket, an ICMP (ping) socket.
#[test]
fn netlink_packet_and_raw_sockets_and_a_ping_socket_with_replies_are_refused_by_name() {
    require_tool("unshare");
    let dir = TestDir::new("inet_others");
    // In a network namespace of its own, where ping sockets are allowed
    // for every group (`net.ipv4.ping_group_range` is per namespace; a
    // machine's own may be "1 0", none).
    let script = "import socket,time\n\
                  open('/proc/sys/net/ipv4/ping_group_range','w').write('0 2147483647')\n\
                  a=socket.socket(socket.AF_NETLINK,socket.SOCK_RAW,socket.NETLINK_ROUTE)\n\
                  b=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                  c=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_UDP)\n\
                  import fcntl,struct\n\
                  i=fcntl.ioctl(a,0x8913,struct.pack('16sH14x',b'lo',0))\n\
                  fcntl.ioctl(a,0x8914,struct.pack('16sH14x',b'lo',struct.unpack('16sH14x',i)[1]|1))\n\
                  d=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,socket.IPPROTO_ICMP)\n\
                  d.sendto(struct.pack('!BBHHH',8,0,0,0,1)+b'kckpt',('127.0.0.1',0))\n\
                  time.sleep(0.2)\n\
                  print('ready',a.fileno(),b.fileno(),c.fileno(),d.fileno(),flush=True)\n\
                  time.sleep(600)";
    let mut p = Proc::spawn(
        "python3 sockets",
        Command::new("unshare").args(["--net", PYTHON3, "-c", script]),
    );
    let line = p.line(LINE_TIMEOUT);
    let fds: Vec<&str> = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| p.fail(&format!("not ready: {line}")))
        .split(' ')
        .collect();
    let out = dump_raw(p.pid(), &dir.join("others.kckpt"), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    for (fd, name) in fds.iter().zip([
        "netlink socket (NETLINK_ROUTE)",
        "packet socket (AF_PACKET)",
        "raw IPv4 socket (protocol 17)",
        "ICMP (ping) socket with echo replies not read yet",
    ]) {
        assert!(err.contains(&format!("fd {fd} ({name}")), "{err}");
    }
    p.kill();
}

/// ICMP (ping) sockets (format 1.9: UDP records with `args[1]` 1 or 58)
/// come back bound to their identifier, connected, answering pings. All
/// in a network namespace of its own, where `net.ipv4.ping_group_range`
/// may allow them (it is per namespace; a machine's own may be "1 0"):
/// `tests`'s driver script brings loopback up there, starts the program,
/// dumps and restores it, and prints what the program answers.
#[test]
fn ping_sockets_come_back_bound_and_answering() {
    require_tool("unshare");
    const PROGRAM: &str = r#"
import socket, struct, sys
A, D = socket.AF_INET, socket.SOCK_DGRAM
a = socket.socket(A, D, socket.IPPROTO_ICMP); a.bind(("127.0.0.1", 4242))
b = socket.socket(A, D, socket.IPPROTO_ICMP)
c = socket.socket(A, D, socket.IPPROTO_ICMP); c.connect(("127.0.0.1", 0))
v = socket.socket(socket.AF_INET6, D, socket.IPPROTO_ICMPV6); v.bind(("::1", 77))
for s in (a, b, c, v):
    s.settimeout(5)
print("ready", flush=True)
sys.stdin.readline()
def ping(s, dest, kind):
    pkt = struct.pack("!BBHHH", kind, 0, 0, 0, 1) + b"kckpt"
    if dest:
        s.sendto(pkt, dest)
    else:
        s.send(pkt)
    return s.recv(64)[0]
print(a.getsockname()[1], ping(a, ("127.0.0.1", 0), 8), ping(b, ("127.0.0.1", 0), 8),
      ping(c, None, 8), v.getsockname()[1], ping(v, ("::1", 0), 128), flush=True)
"#;
    const DRIVER: &str = r#"
import fcntl, socket, struct, subprocess, sys
kckpt, prog, image = sys.argv[1:4]
s = socket.socket()
i = fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))
fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", struct.unpack("16sH14x", i)[1] | 1))
open("/proc/sys/net/ipv4/ping_group_range", "w").write("0 2147483647")
p = subprocess.Popen([sys.executable, prog], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert p.stdout.readline().strip() == "ready"
d = subprocess.run([kckpt, "dump", "-q", "-p", str(p.pid), "-o", image], capture_output=True, text=True)
if d.returncode:
    p.kill()
print("dump", d.returncode, d.stderr.strip().replace(chr(10), " | "), flush=True)
p.wait()
r = subprocess.Popen([kckpt, "restore", image], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
r.stdin.write("go" + chr(10))
r.stdin.flush()
print("restored", r.stdout.readline().strip(), flush=True)
r.wait(10)
print("stderr", r.stderr.read().strip().replace(chr(10), " | "), flush=True)
"#;
    let dir = TestDir::new("inet_ping");
    let (prog, driver) = (dir.join("ping.py"), dir.join("driver.py"));
    std::fs::write(&prog, PROGRAM).unwrap();
    std::fs::write(&driver, DRIVER).unwrap();
    let out = run(
        Command::new("unshare")
            .args(["--net", PYTHON3])
            .arg(&driver)
            .arg(kckpt())
            .arg(&prog)
            .arg(dir.join("ping.kckpt")),
        DUMP_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(text.contains("dump 0 \n"), "{}", show(&out));
    // Identifier 4242, echo replies (type 0; ICMPv6 129), ::1's 77.
    assert!(
        text.contains("restored 4242 0 0 0 77 129\n"),
        "{}",
        show(&out)
    );
}

/// A socket with an error not read yet (a connected UDP socket that got
/// "connection refused" for its datagram) is refused by name: the error
/// would be lost, and a dump may not read it (that would take it from the
/// process).
#[test]
fn a_socket_with_an_unread_error_is_refused() {
    let dir = TestDir::new("inet_sk_err");
    let script = "import socket,time\n\
                  f=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                  f.bind(('127.0.0.1',0))\n\
                  port=f.getsockname()[1]\n\
                  f.close()\n\
                  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                  s.connect(('127.0.0.1',port))\n\
                  s.send(b'x')\n\
                  time.sleep(0.2)\n\
                  print('ready',s.fileno(),flush=True)\n\
                  time.sleep(600)";
    let mut p = Proc::spawn(
        "python3 udp error",
        Command::new(PYTHON3).args(["-c", script]),
    );
    let line = p.line(LINE_TIMEOUT);
    let fd = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| p.fail(&format!("not ready: {line}")))
        .to_owned();
    let out = dump_raw(p.pid(), &dir.join("err.kckpt"), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        err.contains(&format!("fd {fd} (UDP socket 127.0.0.1:"))
            && err.contains("with an error not read yet (SO_ERROR, not restored))"),
        "{err}"
    );
    p.kill();
}

/// UDP sockets shut down for writing and for reading (format 1.7) come
/// back shut down, with the datagram queued before the dump.
#[test]
fn udp_sockets_shut_down_stay_shut_down() {
    let dir = TestDir::new("inet_udp_shutdown");
    let image = dir.join("img.kckpt");
    let script = "import socket,sys\n\
                  a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                  b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                  a.bind(('127.0.0.1',0)); b.bind(('127.0.0.1',0))\n\
                  a.connect(b.getsockname()); b.connect(a.getsockname())\n\
                  a.shutdown(socket.SHUT_WR); b.shutdown(socket.SHUT_RD)\n\
                  b.send(b'queued')\n\
                  print('ready',flush=True)\n\
                  sys.stdin.readline()\n\
                  got=a.recv(64)\n\
                  try:\n a.send(b'x'); print('FAIL a sent',flush=True)\n\
                  except BrokenPipeError: pass\n\
                  print('ok' if got==b'queued' else 'FAIL got %r'%got,flush=True)";
    let mut p = Proc::spawn(
        "python3 udp shutdown",
        Command::new(PYTHON3).args(["-c", script]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    dump_kills(&mut p, &image);
    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "ok", "{}", r.stderr());
}

/// A UDP socket that joined a multicast group is refused naming the group
/// (kckpt does not restore memberships; the kernel lists groups per
/// device, and the dump asks each of the socket).
#[test]
fn a_multicast_member_is_refused_naming_its_group() {
    for (mode, group) in [("v4", "239.1.2.3 on lo"), ("v6", "ff15::1234 on lo")] {
        let dir = TestDir::new(&format!("inet_mcast_{mode}"));
        let mut p = Proc::start(prog::MULTICAST, &[mode]);
        p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
        let out = dump_raw(p.pid(), &dir.join("img.kckpt"), false);
        assert_refused(
            &format!("dump of a multicast member ({mode})"),
            &out,
            None,
            &[&format!(
                "member of multicast group {group} (IP_ADD_MEMBERSHIP, not restored)"
            )],
        );
        assert!(state(p.pid()).is_some_and(|s| s != 'Z'), "left running");
        p.kill();
    }
}

/// `kckpt info` shows every socket with family, type, state and queued
/// bytes: here the two ends of a socketpair, one with 5 bytes to read.
#[test]
fn info_shows_socketpair_ends_with_their_queued_bytes() {
    let dir = TestDir::new("inet_info_pair");
    let script = "import socket,time\n\
                  a,b=socket.socketpair()\n\
                  a.send(b'hello')\n\
                  print('ready',flush=True)\n\
                  time.sleep(600)";
    let mut p = Proc::spawn(
        "python3 socketpair",
        Command::new(PYTHON3).args(["-c", script]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let image = dir.join("pair.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let ends = sockets_of(&info, "socketpair");
    let queued: Vec<_> = ends
        .iter()
        .map(|f| f["socket"]["queued_bytes"].clone())
        .collect();
    assert_eq!(queued, [0, 5].map(serde_json::Value::from), "{ends:?}");
    assert!(ends.iter().all(|f| f["socket"]["family"] == "unix"
        && f["socket"]["type"] == "stream"
        && f["socket"]["state"] == "connected"));
    let out = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unix stream connected, queued 5 bytes"),
        "{text}"
    );
}

/// UDP-Lite sockets (format 1.9: `args[1]` 136) come back as UDP-Lite with
/// their checksum coverage, their connections and queued datagrams; a
/// UDP-Lite socket and a UDP one connected to port 0 (which Linux allows)
/// stay so. Unprivileged: restored as nobody.
#[test]
fn udp_lite_sockets_come_back_with_their_coverage() {
    require_tool("setpriv");
    let dir = TestDir::new("inet_udplite");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let image = dir.join("lite.kckpt");
    let script = "import socket,sys\n\
                  L=136\n\
                  a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,L); a.bind(('127.0.0.1',0))\n\
                  b=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM,L); b.bind(('::1',0))\n\
                  c=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,L); c.bind(('127.0.0.1',0))\n\
                  c.connect(a.getsockname()); a.connect(c.getsockname())\n\
                  a.setsockopt(L,10,20); a.setsockopt(L,11,12)\n\
                  c.send(b'lite')\n\
                  z=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,L); z.connect(('0.0.0.0',0))\n\
                  u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.connect(('127.0.0.1',0))\n\
                  st=lambda s,t: [l.split()[3] for l in open('/proc/self/net/'+t).read().splitlines()[1:] if int(l.split()[1].split(':')[1],16)==s.getsockname()[1]]\n\
                  print('ready',flush=True)\n\
                  sys.stdin.readline()\n\
                  out=[a.recv(16), a.getpeername()==c.getsockname(), a.getsockopt(L,10), a.getsockopt(L,11),\n\
                       a.getsockopt(socket.SOL_SOCKET,socket.SO_PROTOCOL), b.getsockopt(socket.SOL_SOCKET,socket.SO_PROTOCOL),\n\
                       st(z,'udplite'), z.send(b'x'), st(u,'udp'), u.send(b'y'), u.getsockopt(socket.SOL_SOCKET,socket.SO_PROTOCOL)]\n\
                  c.send(b'again'); out.append(a.recv(16))\n\
                  print(*out,flush=True)";
    let mut p = Proc::spawn(
        "python3 udplite",
        command_as(&NOBODY, PYTHON3).args(["-c", script]),
    );
    assert_eq!(p.line(LINE_TIMEOUT), "ready", "{}", p.stderr());
    let out = dump(p.pid(), &image, false);
    assert!(out.status.success(), "{}", show(&out));
    p.wait_exit(LINE_TIMEOUT);
    let info = info_json(&image);
    let lite = sockets_of(&info, "udp")
        .into_iter()
        .filter(|s| s["socket"]["type"] == "udplite")
        .count();
    assert_eq!(lite, 4, "{info:#}");
    std::fs::set_permissions(&image, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut r = Proc::spawn(
        "restore as nobody",
        command_as(&NOBODY, kckpt()).arg("restore").arg(&image),
    );
    r.write_stdin("go\n");
    assert_eq!(
        r.line(LINE_TIMEOUT),
        "b'lite' True 20 12 136 136 ['01'] 1 ['01'] 1 17 b'again'",
        "{}",
        r.stderr()
    );
}
