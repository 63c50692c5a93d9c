//! Real servers, tried as a new user would (issue 10): an idle
//! `redis-server` listening on TCP (IPv4 and IPv6) and on a Unix socket,
//! holding keys, dumped with `kckpt dump -p PID -o redis.kckpt` and
//! restored with `./redis.kckpt` (binfmt_misc in a user namespace), answers
//! `redis-cli -p` and `redis-cli -s` with its keys; Python's `http.server`
//! serves a file after the same round trip. Both run as root (the test
//! process) and talk over loopback.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A TCP port free on every address, IPv4 and IPv6 (a dual-stack socket
/// bound to `[::]:0`), given back at once.
fn free_port() -> u16 {
    TcpListener::bind("[::]:0")
        .expect("bind [::]:0")
        .local_addr()
        .unwrap()
        .port()
}

/// `redis-cli ARGS...`, retried until it answers (the server may not
/// listen yet); its output, trimmed.
fn redis_cli(args: &[&str]) -> String {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let out = run(Command::new("redis-cli").args(args), CMD_TIMEOUT);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !text.starts_with("Could not connect") && !text.is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "redis-cli {args:?} got no answer: {}",
            show(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_idle_redis_server_answers_on_tcp_and_unix_socket_after_restore() {
    require_tool("redis-server");
    require_tool("redis-cli");
    let dir = TestDir::new("servers_redis");
    let port = free_port().to_string();
    let sock = dir.join("redis.sock");
    let sock = sock.to_str().expect("a UTF-8 path");
    let mut server = Proc::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--port", &port, "--unixsocket", sock])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .current_dir(dir.path()),
    );
    assert_eq!(redis_cli(&["-p", &port, "PING"]), "PONG");
    assert_eq!(redis_cli(&["-p", &port, "SET", "greeting", "hello"]), "OK");
    assert_eq!(redis_cli(&["-s", sock, "SET", "answer", "42"]), "OK");
    assert_eq!(
        redis_cli(&["-p", &port, "RPUSH", "list", "a", "b", "c"]),
        "3"
    );
    let image = dir.join("redis.kckpt");
    dump_kills(&mut server, &image);
    assert!(
        TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err(),
        "the dumped server still answers"
    );

    let info = info_json(&image);
    let kinds: Vec<&str> = info["files"]["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"tcp") && kinds.contains(&"unix listen"),
        "{kinds:?}"
    );

    let mut restored = restore_binfmt(&image);
    assert_eq!(redis_cli(&["-p", &port, "GET", "greeting"]), "hello");
    assert_eq!(redis_cli(&["-s", sock, "GET", "answer"]), "42");
    assert_eq!(
        redis_cli(&["-h", "::1", "-p", &port, "LRANGE", "list", "0", "-1"]),
        "a\nb\nc"
    );
    // It still takes writes, on both.
    assert_eq!(redis_cli(&["-s", sock, "INCR", "answer"]), "43");
    assert_eq!(redis_cli(&["-p", &port, "GET", "answer"]), "43");
    assert!(
        restored.exited().is_none(),
        "the restored server exited: {}",
        restored.stderr()
    );
    restored.kill();
}

/// `GET /NAME` from `127.0.0.1:port`, the whole answer (headers and body).
fn http_get(port: u16, name: &str) -> String {
    let deadline = Instant::now() + LINE_TIMEOUT;
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "connect to port {port}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    s.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    write!(
        s,
        "GET /{name} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("the server's answer");
    answer
}

#[test]
fn python_http_server_serves_a_file_after_restore() {
    let dir = TestDir::new("servers_http");
    let body = "kckpt restored this server\n";
    std::fs::write(dir.join("page.txt"), body).unwrap();
    let port = free_port();
    let mut server = Proc::spawn(
        "python3 -m http.server",
        Command::new(PYTHON3)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir.path()),
    );
    let first = http_get(port, "page.txt");
    assert!(
        first.starts_with("HTTP/1.0 200") && first.ends_with(body),
        "{first}"
    );
    let image = dir.join("http.kckpt");
    dump_kills(&mut server, &image);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the dumped server still answers"
    );
    let mut restored = restore_binfmt(&image);
    let again = http_get(port, "page.txt");
    assert!(
        again.starts_with("HTTP/1.0 200") && again.ends_with(body),
        "{again}"
    );
    assert!(
        http_get(port, "missing.txt").starts_with("HTTP/1.0 404"),
        "a missing file is still a 404"
    );
    restored.kill();
}
