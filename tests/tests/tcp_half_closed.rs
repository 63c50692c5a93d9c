//! Half-closed TCP connections (format 1.7, fd kind 44 in states
//! fin-wait1, fin-wait2, close-wait, last-ack, closing).
//!
//! `tcp_half.c` holds both ends of a connection over loopback in one
//! process (or, `tree`, each in a process of its own) and puts them in a
//! state pair; after the restore it checks both ends have the same states,
//! sequence numbers (`TCP_QUEUE_SEQ`, counting the FINs) and queue lengths,
//! then carries them to their close checking
//! every byte (end of file after the peer's FIN, writes from a close-wait
//! end read by its fin-wait2 peer, `EPIPE` after a shutdown). Both ends are
//! restored from one image, so the order of repair mode and the raw
//! segments must let neither end reset the other. As root (TCP repair needs
//! `CAP_NET_ADMIN`, the raw segments `CAP_NET_RAW`); otherwise a SKIP line
//! with the count of skips.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const TCP_HALF: &str = env!("KCKPT_PROG_TCP_HALF");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

static SKIPS: AtomicUsize = AtomicUsize::new(0);

/// Root (TCP repair, raw packets)? Otherwise a SKIP line, counted.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let n = SKIPS.fetch_add(1, Ordering::SeqCst) + 1;
    println!(
        "SKIP {test}: needs root (CAP_NET_ADMIN for TCP repair, CAP_NET_RAW) [{n} skipped in tcp_half_closed]"
    );
    false
}

/// `tcp_half MODE FAMILY [tree]` up to "ready": the ends' states before
/// the dump.
fn start(mode: &str, family: &str, extra: &[&str]) -> (Proc, String) {
    let mut p = Proc::spawn(
        "tcp_half",
        Command::new(TCP_HALF).args([mode, family]).args(extra),
    );
    let states = p.wait_for("states", LINE_TIMEOUT, |l| {
        assert!(!l.starts_with("FAIL"), "{l}");
        l.starts_with("states")
    });
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    (p, states)
}

/// The states of the image's connections, as `kckpt info` names them.
fn saved_states(image: &std::path::Path) -> Vec<String> {
    let info = info_json(image);
    let fds = info["files"]["fds"].as_array().expect("fds");
    fds.iter()
        .filter(|f| f["kind"] == "tcp connection")
        .map(|f| f["socket"]["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Dump `mode` over `family` with the ends in states `a` and `b` (kernel
/// numbers and names), restore it, and let the program check both ends.
fn carries_on(mode: &str, family: &str, a: (u8, &str), b: (u8, &str)) {
    carries_on_in(mode, family, a, b, &[]);
}

/// [`carries_on`], `extra` the program's last arguments (`tree`: each end
/// in a process of its own, each checking it: two "ok" lines).
fn carries_on_in(mode: &str, family: &str, a: (u8, &str), b: (u8, &str), extra: &[&str]) {
    let dir = TestDir::new(&format!("tcp_half_{mode}_{family}{}", extra.join("")));
    let image = dir.join("half.kckpt");
    let (mut p, states) = start(mode, family, extra);
    assert_eq!(states, format!("states {} {}", a.0, b.0), "set-up");
    dump_kills(&mut p, &image);
    let mut saved = saved_states(&image);
    saved.sort();
    // A tree: `kckpt info` shows the first process's, a's.
    let mut want = vec![a.1.to_owned()];
    if extra.is_empty() {
        want.push(b.1.to_owned());
    }
    want.sort();
    assert_eq!(saved, want, "states in the image");
    let mut r = restore(&image);
    r.write_stdin("go\n");
    let mut ok = 0;
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            r.fail(&format!("after the restore: {line}"));
        }
        ok += usize::from(line.starts_with(&format!("ok {mode}")));
    }
    let want = if extra.is_empty() { 1 } else { 2 };
    assert_eq!(ok, want, "ok lines: {}", r.stderr());
    assert!(r.wait_exit(EXIT_TIMEOUT).success(), "{}", r.stderr());
}

#[test]
fn fin_wait2_and_close_wait_carry_on() {
    if root_or_skip("fin_wait2_and_close_wait_carry_on") {
        carries_on("fin_wait2", "4", (5, "fin-wait2"), (8, "close-wait"));
    }
}

#[test]
fn fin_wait2_and_close_wait_carry_on_over_ipv6() {
    if root_or_skip("fin_wait2_and_close_wait_carry_on_over_ipv6") {
        carries_on("fin_wait2", "6", (5, "fin-wait2"), (8, "close-wait"));
    }
}

#[test]
fn fin_wait2_and_close_wait_carry_on_over_ipv4_mapped_ipv6() {
    if root_or_skip("fin_wait2_and_close_wait_carry_on_over_ipv4_mapped_ipv6") {
        carries_on("fin_wait2", "m", (5, "fin-wait2"), (8, "close-wait"));
    }
}

#[test]
fn fin_wait1_with_its_fin_unsent_carries_on() {
    if root_or_skip("fin_wait1_with_its_fin_unsent_carries_on") {
        carries_on("fin_wait1", "4", (4, "fin-wait1"), (1, "established"));
    }
}

#[test]
fn last_ack_and_fin_wait2_carry_on() {
    if root_or_skip("last_ack_and_fin_wait2_carry_on") {
        carries_on("last_ack", "4", (9, "last-ack"), (5, "fin-wait2"));
    }
}

#[test]
fn last_ack_and_fin_wait2_carry_on_over_ipv6() {
    if root_or_skip("last_ack_and_fin_wait2_carry_on_over_ipv6") {
        carries_on("last_ack", "6", (9, "last-ack"), (5, "fin-wait2"));
    }
}

#[test]
fn closing_and_fin_wait2_carry_on() {
    if root_or_skip("closing_and_fin_wait2_carry_on") {
        carries_on("closing", "4", (11, "closing"), (5, "fin-wait2"));
    }
}

#[test]
fn closing_and_fin_wait2_carry_on_over_ipv4_mapped_ipv6() {
    if root_or_skip("closing_and_fin_wait2_carry_on_over_ipv4_mapped_ipv6") {
        carries_on("closing", "m", (11, "closing"), (5, "fin-wait2"));
    }
}

/// A connection shut down for reading (no FIN in): not restored, refused
/// naming the connection and the direction.
#[test]
fn an_end_shut_down_for_reading_is_refused() {
    let dir = TestDir::new("tcp_half_shut_rd");
    let image = dir.join("half.kckpt");
    let (mut p, _) = start("shut_rd", "4", &[]);
    let out = dump_raw(p.pid(), &image, false);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TCP connection 127.0.0.1:") && err.contains("shut down for reading"),
        "{err}"
    );
    assert!(p.exited().is_none(), "a refused dump left it running");
    p.kill();
}

#[test]
fn fin_wait2_and_close_wait_in_two_processes_carry_on() {
    if root_or_skip("fin_wait2_and_close_wait_in_two_processes_carry_on") {
        carries_on_in(
            "fin_wait2",
            "4",
            (5, "fin-wait2"),
            (8, "close-wait"),
            &["tree"],
        );
    }
}

#[test]
fn last_ack_and_fin_wait2_in_two_processes_carry_on() {
    if root_or_skip("last_ack_and_fin_wait2_in_two_processes_carry_on") {
        carries_on_in(
            "last_ack",
            "6",
            (9, "last-ack"),
            (5, "fin-wait2"),
            &["tree"],
        );
    }
}

#[test]
fn closing_and_fin_wait2_in_two_processes_carry_on() {
    if root_or_skip("closing_and_fin_wait2_in_two_processes_carry_on") {
        carries_on_in("closing", "4", (11, "closing"), (5, "fin-wait2"), &["tree"]);
    }
}

#[test]
fn fin_wait1_in_two_processes_carries_on() {
    if root_or_skip("fin_wait1_in_two_processes_carries_on") {
        carries_on_in(
            "fin_wait1",
            "m",
            (4, "fin-wait1"),
            (1, "established"),
            &["tree"],
        );
    }
}

/// Without `CAP_NET_RAW` (the raw packets) the restore is refused before
/// anything changes, in one line naming the connection; `--tcp-close`
/// restores the connections reset (the program then sees `ECONNRESET`).
#[test]
fn without_cap_net_raw_the_restore_names_the_connection() {
    if !root_or_skip("without_cap_net_raw_the_restore_names_the_connection") {
        return;
    }
    let setpriv = require_tool("setpriv");
    let dir = TestDir::new("tcp_half_noraw");
    let image = dir.join("half.kckpt");
    let (mut p, _) = start("fin_wait2", "4", &[]);
    dump_kills(&mut p, &image);
    let out = run(
        Command::new(setpriv)
            .arg("--bounding-set=-net_raw")
            .arg(kckpt())
            .arg("restore")
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(out.stdout.is_empty(), "nothing ran: {}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains("(TCP connection 127.0.0.1:")
            && lines[0].contains("in state ")
            && lines[0].contains("needs CAP_NET_RAW")
            && lines[0].contains("--tcp-close"),
        "{err}"
    );
    let mut r = Proc::spawn(
        "kckpt restore --tcp-close",
        Command::new(kckpt())
            .args(["restore", "--tcp-close"])
            .arg(&image),
    );
    r.write_stdin("go\n");
    let lines = r.drain(LINE_TIMEOUT);
    assert!(
        lines.iter().any(|l| l.contains("Connection reset by peer")),
        "reset: {lines:?}"
    );
}

/// Both ends of a loopback connection, each shut down for writing and the
/// other's FIN taken: the connection ended (state close, `tcp_done`), the
/// program keeps both descriptors. No privilege needed: they come back as
/// sockets shut down both ways (a read gives end of file, a write `EPIPE`)
/// but not bound, which the dump names (format 1.9; `--skip-unsupported`
/// dumps them with a warning). One with bytes still to read is refused.
#[test]
fn tcp_connections_that_ended_come_back_shut_down_or_are_named() {
    const SCRIPT: &str = r#"
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); s.close()
if sys.argv[1] == "unread":
    c.sendall(b"left")
    time.sleep(0.1)
c.shutdown(socket.SHUT_WR); a.shutdown(socket.SHUT_WR)
time.sleep(0.3)
print("ready", flush=True)
sys.stdin.readline()
out = []
for x in (c, a):
    out.append(repr(x.recv(16)))
    try:
        x.send(b"x")
        out.append("sent")
    except OSError as e:
        out.append("send errno %d" % e.errno)
print(" ".join(out), flush=True)
"#;
    let dir = TestDir::new("tcp-ended");
    let image = dir.join("ended.kckpt");
    let start = |mode: &str| {
        let mut p = Proc::spawn(
            "python3",
            Command::new("python3").args(["-c", SCRIPT, mode]),
        );
        assert_eq!(p.line(LINE_TIMEOUT), "ready", "{}", p.stderr());
        p
    };
    // Refused by default, naming what would change.
    let mut p = start("ended");
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "ended TCP connections",
        &out,
        None,
        &["TCP connection that ended", "getsockname gives port 0"],
    );
    assert!(!image.exists());
    // With --skip-unsupported: a warning, and both come back shut down.
    let out = dump_skip_unsupported(p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TCP connection that ended"),
        "{}",
        show(&out)
    );
    p.wait_exit(LINE_TIMEOUT);
    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(
        r.line(LINE_TIMEOUT),
        "b'' send errno 32 b'' send errno 32",
        "{}",
        r.stderr()
    );
    // Bytes the program had not read: refused even so.
    let mut p = start("unread");
    let image2 = dir.join("unread.kckpt");
    let out = dump_skip_unsupported(p.pid(), &image2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("with 4 bytes not read yet"),
        "{}",
        show(&out)
    );
    p.kill();
}
