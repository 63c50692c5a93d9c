//! Socket filters (format 1.8, `NT_KCKPT_SOCK_FILTERS`): a UDP socket and
//! one end of a Unix datagram pair, each with a classic BPF filter that
//! drops datagrams not starting with `A` (the UDP one locked with
//! `SO_LOCK_FILTER`), and one accepted datagram queued in each. After
//! dump and restore the queued datagrams are there (not judged again),
//! the filters drop and keep as before, and the lock holds.

mod common;

use std::process::Command;

use common::*;

const PROGRAM: &str = r#"
import ctypes, socket, struct, sys
SO_ATTACH_FILTER, SO_DETACH_FILTER, SO_LOCK_FILTER = 26, 27, 44
keep = []
def only_a(offset):
    # ldb [offset]; jeq #'A', 0, 1; ret #-1; ret #0
    prog = [(0x30, 0, 0, offset), (0x15, 0, 1, 0x41), (0x06, 0, 0, 0xffffffff), (0x06, 0, 0, 0)]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    keep.append(buf)
    return struct.pack("HL", len(prog), ctypes.addressof(buf))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, only_a(8))  # after the UDP header
u.setsockopt(socket.SOL_SOCKET, SO_LOCK_FILTER, 1)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
b.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, only_a(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"A-before", u.getsockname())
a.send(b"A-before")
for x in (u, b):
    x.settimeout(2)
print("ready", flush=True)
for line in sys.stdin:
    got = []
    for msg in (b"B-dropped", b"A-kept"):
        s.sendto(msg, u.getsockname())
        a.send(msg)
    for x in (u, b):
        got += [x.recv(100).decode(), x.recv(100).decode()]
    locked = u.getsockopt(socket.SOL_SOCKET, SO_LOCK_FILTER)
    try:
        u.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        detach = "detached"
    except PermissionError:
        detach = "EPERM"
    print(" ".join(got), "locked", locked, "detach", detach, flush=True)
"#;

const EXPECTED: &str = "A-before A-kept A-before A-kept locked 1 detach EPERM";

#[test]
fn socket_filters_and_their_lock_come_back_and_filter_as_before() {
    let dir = TestDir::new("sock_filters");
    let mut p = Proc::spawn(
        "filtered sockets",
        Command::new(PYTHON3).args(["-c", PROGRAM]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let image = dir.join("filters.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let filters = info["files"]["socket_filters"]
        .as_array()
        .expect("socket_filters");
    let shown: Vec<(u64, bool)> = filters
        .iter()
        .map(|f| (f["instructions"].as_u64().unwrap(), f["locked"] == true))
        .collect();
    assert_eq!(shown, [(4, true), (4, false)], "{filters:?}");
    let text = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("4 instructions (locked)"), "{text}");
    let mut r = restore(&image);
    r.write_stdin("check\n");
    assert_eq!(r.line(LINE_TIMEOUT), EXPECTED, "{}", r.stderr());
    r.kill();

    // The same program not dumped says the same (the test's own check).
    let mut q = Proc::spawn(
        "filtered sockets",
        Command::new(PYTHON3).args(["-c", PROGRAM]),
    );
    q.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    q.write_stdin("check\n");
    assert_eq!(q.line(LINE_TIMEOUT), EXPECTED);
    q.kill();
}

/// An eBPF socket filter (`SO_ATTACH_BPF`) cannot be read back: the dump
/// refuses it by name (before format 1.8 it was taken for no filter and
/// lost), the process left running.
#[test]
fn an_ebpf_socket_filter_is_refused_by_name() {
    let dir = TestDir::new("sock_filters_ebpf");
    let mut p = Proc::start(prog::BPF_FILTER, &[]);
    let line = p.line(LINE_TIMEOUT);
    let fd = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| p.fail(&format!("not ready (CAP_BPF needed): {line}")))
        .to_owned();
    let image = dir.join("ebpf.kckpt");
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "an eBPF socket filter",
        &out,
        None,
        &[&format!("fd {fd} (socket filter that is an eBPF program")],
    );
    assert!(!image.exists());
    // Left running: not a zombie, not stopped.
    let state = std::fs::read_to_string(format!("/proc/{}/stat", p.pid())).unwrap();
    assert!(state.contains(") S "), "{state}");
    p.kill();
}
