//! File leases (format 1.8, `LockRecord` kind 4): a read lease and a
//! write lease come back as leases the kernel enforces (an `open` that
//! conflicts fails with `EWOULDBLOCK` and the holder gets `SIGIO`); a
//! lease being broken comes back being broken, without a second signal.

mod common;

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Takes a read lease on argv[1] and a write lease on argv[2] (both
/// opened read-only), counts SIGIO; on "check" prints the lease types
/// (`F_GETLEASE`: 0 read, 1 write, 2 none; a lease being broken shows
/// what it goes to) and the count; on "downgrade" makes the lease on
/// argv[2] a read lease (what a holder does when its lease is broken by a
/// reader).
const HOLDER: &str = r#"
import fcntl, os, signal, sys
F_SETLEASE, F_GETLEASE = 1024, 1025
got = []
signal.signal(signal.SIGIO, lambda s, f: got.append(s))
a = os.open(sys.argv[1], os.O_RDONLY)
b = os.open(sys.argv[2], os.O_RDONLY)
fcntl.fcntl(a, F_SETLEASE, fcntl.F_RDLCK)
fcntl.fcntl(b, F_SETLEASE, fcntl.F_WRLCK)
print("ready", a, b, flush=True)
for line in sys.stdin:
    if line.strip() == "check":
        print("leases", fcntl.fcntl(a, F_GETLEASE), fcntl.fcntl(b, F_GETLEASE),
              "sigio", len(got), flush=True)
    if line.strip() == "downgrade":
        fcntl.fcntl(b, F_SETLEASE, fcntl.F_RDLCK)
        print("downgraded", flush=True)
"#;

fn start(dir: &TestDir) -> (Proc, String, String) {
    let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
    fs::write(&a, "read lease").unwrap();
    fs::write(&b, "write lease").unwrap();
    let mut p = Proc::spawn(
        "lease holder",
        Command::new(PYTHON3).args(["-c", HOLDER, a.to_str().unwrap(), b.to_str().unwrap()]),
    );
    let line = p.line(LINE_TIMEOUT);
    let w: Vec<&str> = line.split(' ').collect();
    assert_eq!(w.len(), 3, "{line}");
    assert_eq!(w[0], "ready", "{line}");
    (p, w[1].to_owned(), w[2].to_owned())
}

fn check(p: &mut Proc) -> String {
    p.write_stdin("check\n");
    p.line(LINE_TIMEOUT)
}

/// An `open` for reading that must not wait: `EWOULDBLOCK` while a write
/// lease is held (the kernel starts breaking it).
fn open_nonblocking(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
}

#[test]
fn read_and_write_leases_come_back_and_are_broken_like_before() {
    let dir = TestDir::new("leases");
    let (mut p, a, b) = start(&dir);
    assert_eq!(check(&mut p), "leases 0 1 sigio 0");
    let image = dir.join("leases.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let locks = info["files"]["locks"].as_array().expect("locks");
    let kinds: Vec<String> = locks
        .iter()
        .map(|l| format!("{} {} {}", l["fd"], l["kind"], l["type"]))
        .collect();
    assert_eq!(
        kinds,
        [
            format!("{a} \"lease\" \"read\""),
            format!("{b} \"lease\" \"write\"")
        ],
        "{locks:?}"
    );
    let mut r = restore(&image);
    assert_eq!(check(&mut r), "leases 0 1 sigio 0", "{}", r.stderr());
    // A reader of b must wait for the holder: the write lease is the
    // kernel's again, and its break sends SIGIO.
    let err = open_nonblocking(&dir.join("b.txt")).expect_err("b opened despite the lease");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EWOULDBLOCK), "{err}");
    let broken = eventually(LINE_TIMEOUT, || check(&mut r) == "leases 0 0 sigio 1");
    assert!(
        broken,
        "the write lease was not being broken: {}",
        check(&mut r)
    );
    r.kill();
}

/// A write lease being broken by a reader (its holder had the signal,
/// the break has not ended) comes back breaking, without a second signal:
/// a reader still has to wait, and once the holder downgrades it, gets in.
#[test]
fn a_lease_being_broken_comes_back_breaking() {
    let dir = TestDir::new("leases-breaking");
    let (mut p, _a, b) = start(&dir);
    let b_path = dir.join("b.txt");
    let err = open_nonblocking(&b_path).expect_err("b opened despite the lease");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EWOULDBLOCK), "{err}");
    assert!(eventually(LINE_TIMEOUT, || check(&mut p) == "leases 0 0 sigio 1"));
    let image = dir.join("breaking.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let lock = &info["files"]["locks"][1];
    assert_eq!(lock["fd"].to_string(), b, "{lock}");
    assert_eq!(lock["type"], "write", "{lock}");
    assert_eq!(lock["breaking"], "to read", "{lock}");
    let text = run(Command::new(kckpt()).arg("info").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("fd {b} lease write (being broken, to read)")),
        "{text}"
    );
    let mut r = restore(&image);
    assert_eq!(check(&mut r), "leases 0 0 sigio 1", "{}", r.stderr());
    let err = open_nonblocking(&b_path).expect_err("b opened while its lease breaks");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EWOULDBLOCK), "{err}");
    r.write_stdin("downgrade\n");
    assert_eq!(r.line(LINE_TIMEOUT), "downgraded");
    open_nonblocking(&b_path).expect("b opened for reading once downgraded");
    assert_eq!(check(&mut r), "leases 0 0 sigio 1", "no second signal");
    r.kill();
}
