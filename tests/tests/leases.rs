//! File leases (format 1.8, `LockRecord` kind 4): a read lease and a
//! write lease come back as leases the kernel enforces (an `open` that
//! conflicts fails with `EWOULDBLOCK` and the holder gets `SIGIO`); a
//! lease being broken is refused at dump by name, the process left
//! running.

mod common;

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Takes a read lease on argv[1] and a write lease on argv[2] (both
/// opened read-only), counts SIGIO; on "check" prints the lease types
/// (`F_GETLEASE`: 0 read, 1 write, 2 none) and the count.
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

#[test]
fn a_lease_being_broken_is_refused_by_name() {
    let dir = TestDir::new("leases-breaking");
    let (mut p, _a, b) = start(&dir);
    let err = open_nonblocking(&dir.join("b.txt")).expect_err("b opened despite the lease");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EWOULDBLOCK), "{err}");
    let out = dump_raw(p.pid(), &dir.join("breaking.kckpt"), false);
    assert_refused(
        "a lease being broken",
        &out,
        None,
        &[&format!("fd {b} (file lease being broken)")],
    );
    assert!(!dir.join("breaking.kckpt").exists());
    // Left running.
    assert_eq!(check(&mut p), "leases 0 0 sigio 1");
    p.kill();
}
