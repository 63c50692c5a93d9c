//! TCP connections after the restore carry data at the speed they did
//! (issue 10), and busy connections can be dumped.
//!
//! `tcp_flow.c` holds both ends of a connection over loopback: a receiver
//! whose program set `SO_RCVBUF` to 4096 and a sender whose queue is full
//! (or, `busy`, both ends each other's sender and receiver, every buffer
//! full both ways). After the restore it drains everything, checking
//! every byte, and prints how long it took: a bound generous enough for a
//! loaded machine (the original drains 3 MB in about 0.15 s; restored
//! without its segment size bounded to half the peer's window, the sender
//! only sent one window per persist timer, about 20 KB/s). As root (TCP
//! repair needs `CAP_NET_ADMIN`); otherwise a SKIP line with the count of
//! skips.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const TCP_FLOW: &str = env!("KCKPT_PROG_TCP_FLOW");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a restored connection may take to drain.
const DRAIN_BOUND: f64 = 20.0;

static SKIPS: AtomicUsize = AtomicUsize::new(0);

/// Root (TCP repair)? Otherwise a SKIP line, counted.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let n = SKIPS.fetch_add(1, Ordering::SeqCst) + 1;
    println!("SKIP {test}: needs root (CAP_NET_ADMIN for TCP repair) [{n} skipped in tcp_flow]");
    false
}

/// `tcp_flow ARGS` up to "ready": the bytes queued before the dump.
fn start(args: &[&str]) -> (Proc, u64) {
    let mut p = Proc::spawn("tcp_flow", Command::new(TCP_FLOW).args(args));
    let ready = p.wait_for("ready", LINE_TIMEOUT, |l| {
        assert!(!l.starts_with("FAIL"), "{l}");
        l.starts_with("ready")
    });
    let queued = ready[6..].parse().expect("ready N");
    (p, queued)
}

/// After "go": the seconds `p` took to drain `total` bytes (every one
/// checked), and it exits 0.
fn drain(p: &mut Proc, total: u64) -> f64 {
    p.write_stdin("go\n");
    let mut secs = None;
    loop {
        let line = p.line(Duration::from_secs(180));
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            p.fail(&format!("draining: {line}"));
        }
        if let Some(rest) = line.strip_prefix("drained ") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(w[0].parse::<u64>().unwrap(), total, "{line}");
            secs = Some(w[2].parse::<f64>().unwrap());
        }
    }
    assert!(p.wait_exit(EXIT_TIMEOUT).success(), "{}", p.stderr());
    secs.expect("a drained line")
}

/// Dump `args` with its queues full, restore it, time the drain.
fn drains_after_restore(name: &str, args: &[&str], total: u64) {
    let dir = TestDir::new(name);
    let image = dir.join("flow.kckpt");
    let (mut p, queued) = start(args);
    assert!(queued > 1 << 20, "queued only {queued} bytes");
    dump_kills(&mut p, &image);
    let mut r = restore(&image);
    let secs = drain(&mut r, total);
    println!("{name}: {total} bytes drained in {secs:.3} s after the restore");
    assert!(
        secs < DRAIN_BOUND,
        "{total} bytes took {secs:.1} s after the restore (more than {DRAIN_BOUND} s)"
    );
}

/// The program without a dump drains well within the bound (else the
/// bound says nothing about the restore).
#[test]
fn the_original_drains_within_the_bound() {
    let (mut p, _) = start(&["4", "3000000"]);
    let secs = drain(&mut p, 3_000_000);
    assert!(secs < DRAIN_BOUND / 4.0, "the original took {secs:.1} s");
}

#[test]
fn a_slow_receiver_is_fed_at_full_speed_after_the_restore() {
    if root_or_skip("a_slow_receiver_is_fed_at_full_speed_after_the_restore") {
        drains_after_restore("tcp_flow_slow4", &["4", "3000000"], 3_000_000);
    }
}

#[test]
fn a_slow_receiver_is_fed_at_full_speed_after_the_restore_over_ipv6() {
    if root_or_skip("a_slow_receiver_is_fed_at_full_speed_after_the_restore_over_ipv6") {
        drains_after_restore("tcp_flow_slow6", &["6", "3000000"], 3_000_000);
    }
}

/// Both ends in the dump, every buffer full both ways and data still
/// moving when the processes are stopped (CRIU's socket-tcpbuf-local):
/// the dump waits until the connection is quiet, then saves it; three
/// times in a row (before that wait, most such dumps failed "changed while
/// it was saved" or "its receive queue kept changing").
#[test]
fn a_busy_pair_with_full_buffers_both_ways_is_dumped_and_carries_on() {
    if !root_or_skip("a_busy_pair_with_full_buffers_both_ways_is_dumped_and_carries_on") {
        return;
    }
    for round in 0..3 {
        let dir = TestDir::new(&format!("tcp_flow_busy{round}"));
        let image = dir.join("busy.kckpt");
        let (mut p, _) = start(&["4", "0", "busy"]);
        let out = dump_raw(p.pid(), &image, false);
        assert!(out.status.success(), "round {round}: {}", show(&out));
        p.drain(Duration::from_secs(10));
        let _ = p.wait_exit(Duration::from_secs(10));
        busy_pair_finishes(&mut restore(&image), &format!("round {round}"));
    }
}

/// After "go": the restored busy pair `r` reads both ways to the end,
/// every byte checked, says "ok" and exits 0.
fn busy_pair_finishes(r: &mut Proc, what: &str) {
    r.write_stdin("go\n");
    let mut ok = false;
    loop {
        let line = r.line(Duration::from_secs(90));
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            r.fail(&format!("{what} after the restore: {line}"));
        }
        ok |= line == "ok";
    }
    assert!(ok, "{what}: {}", r.stderr());
    assert!(r.wait_exit(EXIT_TIMEOUT).success(), "{}", r.stderr());
}

/// The busy pair of a user, its receive queues of several MB, restored by
/// that user in a network namespace of its own (`--new-net-ns`, where it
/// has `CAP_NET_ADMIN` for TCP repair but not `SO_RCVBUFFORCE`): each
/// queue must fit in twice `net.core.rmem_max` (the program asked for
/// buffers of 7/16 of that, which the kernel doubles: queues up to 7/8 of
/// the limit), which it does only when the stub refills it in pieces of
/// whole pages (one page at a time, the kernel's accounting of the queue
/// needed a quarter more; CRIU's socket-tcpbuf-local, restored by its
/// user).
#[test]
fn a_busy_pair_of_a_user_comes_back_in_its_own_network_namespace() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_skip("a_busy_pair_of_a_user_comes_back_in_its_own_network_namespace") {
        return;
    }
    require_tool("setpriv");
    let dir = TestDir::new("tcp_flow_busy_nobody");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let image = dir.join("busy.kckpt");
    let rmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("net.core.rmem_max")
        .trim()
        .parse()
        .expect("a number");
    let wmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .expect("net.core.wmem_max")
        .trim()
        .parse()
        .expect("a number");
    let buf = (rmem_max.min(wmem_max) * 7 / 8).to_string();
    let mut p = Proc::spawn(
        "tcp_flow busy (uid 65534)",
        command_as(&NOBODY, TCP_FLOW).args(["4", &buf, "busy"]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| {
        assert!(!l.starts_with("FAIL"), "{l}");
        l.starts_with("ready")
    });
    let out = dump_raw(p.pid(), &image, false);
    assert!(out.status.success(), "{}", show(&out));
    p.drain(Duration::from_secs(10));
    let _ = p.wait_exit(Duration::from_secs(10));
    let info = info_json(&image);
    let biggest = info["files"]["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .filter_map(|f| f["socket"]["queued_to_read"].as_u64())
        .max()
        .unwrap_or(0);
    println!("largest receive queue saved: {biggest} bytes");
    assert!(biggest > 1 << 20, "queues of only {biggest} bytes");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut r = Proc::spawn(
        "kckpt restore --new-net-ns (uid 65534)",
        kckpt_as(&NOBODY)
            .args(["restore", "--new-net-ns"])
            .arg(&image),
    );
    busy_pair_finishes(&mut r, "restored by its user");
}
