//! Where `kckpt dump -o PATH` writes, and what a dump leaves behind: a
//! path that does not exist is created; a regular file is replaced
//! atomically (its old inode is never written: a hard link to it keeps the
//! old contents), through symbolic links too (the link stays); a device,
//! FIFO (whose reader is never woken), socket, directory or dangling link
//! is refused with one line before the target is touched. A dump killed
//! at any moment leaves no file in the directory; temporary names left by
//! killed dumps are removed by the next one; on a file system without
//! `O_TMPFILE` (FUSE: bindfs) the named temporary file of before is used.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The names in `dir`, sorted (hidden ones too).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `kckpt info` accepts `path`.
fn valid_image(path: &Path) {
    let out = run(Command::new(kckpt()).arg("info").arg(path), CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "kckpt info {}: {}",
        path.display(),
        show(&out)
    );
}

/// The target is not stopped and still prints.
fn still_running(p: &mut Proc) {
    assert!(
        !matches!(state(p.pid()), Some('t' | 'T') | None),
        "the target is stopped or gone: {:?}",
        state(p.pid())
    );
    p.line(LINE_TIMEOUT);
}

#[test]
fn output_paths_are_created_replaced_or_refused() {
    let dir = TestDir::new("output-paths");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.line(LINE_TIMEOUT);
    let pid = p.pid();

    // A new name: created, mode 0600.
    let new = dir.join("new.kckpt");
    dump(pid, &new, true);
    valid_image(&new);
    assert_eq!(fs::metadata(&new).unwrap().mode() & 0o777, 0o600);

    // An existing regular file: replaced by a new inode; the old one,
    // still reachable through a hard link, is untouched.
    let old = dir.join("old.kckpt");
    fs::write(&old, b"previous contents").unwrap();
    fs::hard_link(&old, dir.join("old-link")).unwrap();
    let old_ino = fs::metadata(&old).unwrap().ino();
    dump(pid, &old, true);
    valid_image(&old);
    assert_ne!(fs::metadata(&old).unwrap().ino(), old_ino);
    assert_eq!(
        fs::read(dir.join("old-link")).unwrap(),
        b"previous contents"
    );

    // A symbolic link to a regular file: the file is replaced, the link
    // stays a link to it.
    let target = dir.join("target.kckpt");
    fs::write(&target, b"x").unwrap();
    let link = dir.join("link.kckpt");
    std::os::unix::fs::symlink("target.kckpt", &link).unwrap();
    dump(pid, &link, true);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("target.kckpt"));
    valid_image(&target);

    let before = listing(dir.path());
    let refused = |what: &str, path: &Path, keywords: &[&str]| {
        let out = dump_raw(pid, path, true);
        assert_refused(what, &out, Some(1), keywords);
    };
    // Devices, a directory, a socket, dangling and special links.
    refused("/dev/null", Path::new("/dev/null"), &["character device"]);
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    refused("a directory", dir.path(), &["directory"]);
    refused("/", Path::new("/"), &["directory"]);
    refused(
        "a trailing slash",
        &dir.path().join("new-dir/"),
        &["ends with /"],
    );
    let sock_path = dir.join("sock");
    let _sock = std::os::unix::net::UnixListener::bind(&sock_path).expect("bind");
    refused("a socket", &sock_path, &["socket"]);
    let dangling = dir.join("dangling.kckpt");
    std::os::unix::fs::symlink("nowhere.kckpt", &dangling).unwrap();
    refused("a dangling link", &dangling, &["dangling"]);
    assert!(
        !dir.join("nowhere.kckpt").exists(),
        "created through the link"
    );
    let to_null = dir.join("null-link");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    refused("a link to /dev/null", &to_null, &["character device"]);
    let to_dir = dir.join("dir-link");
    std::os::unix::fs::symlink(dir.path(), &to_dir).unwrap();
    refused("a link to a directory", &to_dir, &["directory"]);
    refused(
        "a missing directory",
        &dir.join("missing/x.kckpt"),
        &["no such file"],
    );

    // A FIFO: refused before it is opened for writing, so a reader
    // waiting in open(2) is never woken.
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let mut reader = Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    refused("a FIFO", &fifo, &["FIFO"]);
    thread::sleep(Duration::from_millis(200));
    let waiting = reader.try_wait().expect("wait").is_none();
    let _ = reader.kill();
    let _ = reader.wait();
    assert!(waiting, "kckpt opened the FIFO (its reader finished)");

    let mut after = listing(dir.path());
    after.retain(|n| n != "sock" && n != "dangling.kckpt" && n != "null-link");
    after.retain(|n| n != "dir-link" && n != "fifo");
    assert_eq!(after, before, "a refused dump changed the directory");
    still_running(&mut p);
}

/// Start `kckpt dump --leave-running` of `pid` into `image`.
fn start_dump(pid: i32, image: &Path) -> std::process::Child {
    Command::new(kckpt())
        .args(["dump", "--leave-running", "-p", &pid.to_string(), "-o"])
        .arg(image)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kckpt dump")
}

/// Whatever is in the directory of `image` is nothing, or the complete
/// image (it gets its name only once complete and synced); the image is
/// then removed.
fn nothing_or_complete(image: &Path, when: &str) {
    let dir = image.parent().unwrap();
    let names = listing(dir);
    if names.is_empty() {
        return;
    }
    assert_eq!(names, ["image.kckpt"], "{when}");
    valid_image(image);
    fs::remove_file(image).unwrap();
}

/// memfill 64, ready.
fn memfill() -> Proc {
    let mut p = Proc::start(prog::MEMFILL, &["64"]);
    p.wait_for("ready", Duration::from_secs(60), |l| l.starts_with("ready"));
    p
}

#[test]
fn images_are_written_unnamed_and_a_killed_dump_leaves_nothing() {
    let dir = TestDir::new("output-killed");
    let image = dir.join("image.kckpt");
    let mut p = memfill();
    // How long a whole dump takes here.
    let t = Instant::now();
    dump(p.pid(), &image, true);
    let whole = t.elapsed();
    fs::remove_file(&image).unwrap();

    // While it is written, the image has no name in the directory; once
    // it has one, it is complete.
    let mut dumper = start_dump(p.pid(), &image);
    let deadline = Instant::now() + DUMP_TIMEOUT;
    let mut seen = false;
    while dumper.try_wait().expect("wait").is_none() {
        let names = listing(dir.path());
        if names.is_empty() {
            seen |= unnamed_file_size(dumper.id(), dir.path()).is_some_and(|n| n > 0);
        } else {
            assert_eq!(names, ["image.kckpt"]);
            valid_image(&image);
        }
        assert!(Instant::now() < deadline, "the dump does not end");
        thread::sleep(Duration::from_millis(1));
    }
    assert!(
        seen,
        "the dumper held no unnamed file in {}",
        dir.path().display()
    );
    valid_image(&image);
    fs::remove_file(&image).unwrap();

    // SIGKILL at moments spread over a whole dump (and past it): either
    // the complete image exists, or nothing at all.
    let steps = 12;
    let mut killed_writing = 0;
    for i in 0..steps {
        let delay = whole * i / (steps - 2);
        let mut dumper = start_dump(p.pid(), &image);
        thread::sleep(delay);
        // Copying memory: every system call run inside the target is done.
        let writing = listing(dir.path()).is_empty()
            && unnamed_file_size(dumper.id(), dir.path()).is_some_and(|n| n > 0);
        killed_writing += usize::from(writing);
        let _ = dumper.kill();
        let status = dumper.wait().expect("reap the dumper");
        nothing_or_complete(&image, &format!("killed after {delay:?} ({status})"));
        // The kernel detached the target: it runs on, memory intact.
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(state(p.pid()), Some('t' | 'T')) {
            assert!(Instant::now() < deadline, "the target stays stopped");
            thread::sleep(Duration::from_millis(5));
        }
        match p.next_line(LINE_TIMEOUT) {
            Some(_) => {
                let line = p.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
                assert!(line.ends_with(" ok"), "memory changed: {line}");
            }
            // Killed while a system call ran inside the target (before
            // the memory copy) the target may not survive: that is
            // tests/tests/dumper_killed.rs's business, not this test's.
            None if !writing => p = memfill(),
            None => p.fail(&format!("died when its dumper was killed after {delay:?}")),
        }
    }
    assert!(
        killed_writing > 0,
        "no dump was killed while writing its image (a whole dump took {whole:?})"
    );
}

#[test]
fn stale_temporary_names_are_removed_by_the_next_dump() {
    let dir = TestDir::new("output-stale");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.line(LINE_TIMEOUT);
    let image = dir.join("image.kckpt");
    dump(p.pid(), &image, true);
    let bytes = fs::read(&image).unwrap();
    // A pid that is gone.
    let mut gone = Command::new("true").spawn().expect("true");
    let dead = gone.id();
    gone.wait().unwrap();
    let me = std::process::id();
    let write = |name: &str, data: &[u8]| fs::write(dir.join(name), data).unwrap();
    write(&format!(".image.kckpt.tmp.{dead}"), &bytes); // killed between link and rename
    write(&format!(".other.kckpt.tmp.{dead}"), &[0u8; 4096]); // killed named fallback
    write(&format!(".notes.txt.tmp.{dead}"), b"a user's file"); // not an image
    write(&format!(".live.kckpt.tmp.{me}"), &bytes); // its process is alive
    write(&format!("image.kckpt.tmp.{dead}"), &bytes); // not a hidden temporary name
    dump(p.pid(), &dir.join("next.kckpt"), true);
    let names = listing(dir.path());
    assert_eq!(
        names,
        [
            format!(".live.kckpt.tmp.{me}"),
            format!(".notes.txt.tmp.{dead}"),
            "image.kckpt".to_owned(),
            format!("image.kckpt.tmp.{dead}"),
            "next.kckpt".to_owned(),
        ]
    );
}

#[test]
fn without_o_tmpfile_the_named_temporary_file_is_used() {
    let bindfs = require_tool("bindfs");
    let dir = TestDir::new("output-fuse");
    let src = dir.join("src");
    let mnt = dir.join("mnt");
    fs::create_dir(&src).unwrap();
    fs::create_dir(&mnt).unwrap();
    let mut p = Proc::start(prog::MEMFILL, &["64"]);
    p.wait_for("ready", Duration::from_secs(60), |l| l.starts_with("ready"));
    // In a private mount namespace (a user namespace too when not root):
    // bindfs (FUSE) has no O_TMPFILE. One dump; one killed as soon as its
    // temporary name appears; then another dump, which removes that name.
    let script = r#"
        set -u
        "$BINDFS" "$SRC" "$MNT" || exit 10
        trap 'umount "$MNT"' EXIT
        "$KCKPT" dump --leave-running -p "$PID" -o "$MNT/image.kckpt" || exit 11
        "$KCKPT" info "$MNT/image.kckpt" >/dev/null || exit 12
        "$KCKPT" dump --leave-running -p "$PID" -o "$MNT/killed.kckpt" 2>/dev/null &
        d=$!
        n=0
        while [ ! -e "$MNT/.killed.kckpt.tmp.$d" ]; do
            n=$((n + 1)); [ $n -lt 5000 ] || exit 13
            sleep 0.001
        done
        kill -9 $d; wait $d
        ls -A "$SRC" > "$OUT/after-kill"
        "$KCKPT" dump --leave-running -p "$PID" -o "$MNT/next.kckpt" || exit 14
        ls -A "$SRC" > "$OUT/after-next"
    "#;
    let mut ns = vec!["--mount"];
    if !nix::unistd::geteuid().is_root() {
        ns.extend(["--user", "--map-root-user"]);
    }
    let out = run(
        Command::new("unshare")
            .args(&ns)
            .args(["sh", "-c", script])
            .env("BINDFS", &bindfs)
            .env("SRC", &src)
            .env("MNT", &mnt)
            .env("OUT", dir.path())
            .env("KCKPT", kckpt())
            .env("PID", p.pid().to_string()),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    let after_kill = read("after-kill");
    assert!(
        after_kill
            .lines()
            .any(|n| n.starts_with(".killed.kckpt.tmp.")),
        "the named temporary file was not used: {after_kill:?}"
    );
    assert_eq!(
        read("after-next").lines().collect::<Vec<_>>(),
        ["image.kckpt", "next.kckpt"]
    );
    valid_image(&src.join("image.kckpt"));
    still_running(&mut p);
}
