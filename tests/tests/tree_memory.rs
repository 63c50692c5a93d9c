//! Memory shared across a process tree (issue 9, `MEMORY` slots): shared
//! anonymous memory, a memfd (also kept open as a descriptor) and POSIX
//! semaphores (`sem_open` then `sem_unlink`: a deleted file of /dev/shm)
//! mapped by a parent and its children come back as one object for all of
//! them: writes of each are seen by the others after the restore.
//!
//! `tests/programs/treem_share.c` checks itself: after the restore the
//! root stops the children through the shared memory, each answers
//! through it, and the root checks the totals (`ok N` or `FAIL ...`).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const TREEM_SHARE: &str = env!("KCKPT_PROG_TREEM_SHARE");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Start `treem_share MODE` through `prefix` and wait until all three
/// processes count in the shared memory.
fn start(prefix: &[&str], mode: &str) -> Proc {
    let mut p = Proc::spawn("treem_share", command_as(prefix, TREEM_SHARE).arg(mode));
    let line = p.line(LINE_TIMEOUT);
    assert_eq!(line, "ready", "{}", p.stderr());
    // Let them count a while.
    std::thread::sleep(Duration::from_millis(200));
    p
}

/// Dump the tree (killing it).
fn dump_tree(prefix: &[&str], p: &mut Proc, image: &Path) {
    let kids = descendants(p.pid());
    assert_eq!(kids.len(), 2, "the root has two children: {kids:?}");
    let out = dump_as(prefix, p.pid(), image);
    assert!(out.status.success(), "dump failed: {}", show(&out));
    let status = p.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "the root was not killed: {status}");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while kids
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(std::time::Instant::now() < until, "a child is still there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The restored tree stops and checks itself: `ok N`, exit status 0.
fn check(r: &mut Proc) {
    // Let the restored processes count a while in the shared memory.
    std::thread::sleep(Duration::from_millis(300));
    r.write_stdin("check\n");
    let line = r.line(LINE_TIMEOUT);
    assert!(
        line.starts_with("ok "),
        "the restored tree: {line} ({})",
        r.stderr()
    );
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{status}: {}", r.stderr());
}

/// The `MEMORY` slots of `image` (`kckpt info --json`), all held by the
/// root.
fn memory_slots(image: &Path) -> usize {
    let memory = tree_slots(&info_json(image), "memory");
    for s in &memory {
        assert_eq!(s["holder"], 0, "held by the root: {s}");
        assert!(s["memory"]["size"].as_u64().unwrap_or(0) >= 4096, "{s}");
    }
    memory.len()
}

fn round_trip(mode: &str, slots: usize) {
    let dir = TestDir::new(&format!("treem_{mode}"));
    let image = dir.join("tree.kckpt");
    let mut p = start(&[], mode);
    dump_tree(&[], &mut p, &image);
    assert_eq!(memory_slots(&image), slots, "memory slots of {mode}");
    let mut r = restore(&image);
    check(&mut r);
}

#[test]
fn shared_anonymous_memory_is_shared_again_by_parent_and_children() {
    round_trip("anon", 1);
}

#[test]
fn a_memfd_mapped_by_parent_and_children_and_kept_open_is_one_object() {
    // The program checks that its descriptor and its mapping are still
    // one object.
    round_trip("memfd", 1);
}

#[test]
fn posix_semaphores_work_across_the_restored_tree() {
    // Two semaphores (two deleted files of /dev/shm) and the counters.
    round_trip("sem", 3);
}

#[test]
fn shared_memory_of_a_tree_restores_from_the_file_itself() {
    let dir = TestDir::new("treem_binfmt");
    let image = dir.join("tree.kckpt");
    let mut p = start(&[], "sem");
    dump_tree(&[], &mut p, &image);
    let mut r = restore_binfmt(&image);
    check(&mut r);
}

#[test]
fn nobody_dumps_and_restores_a_tree_sharing_memory() {
    require_tool("setpriv");
    let dir = TestDir::new("treem_nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("tree.kckpt");
    let mut p = start(&NOBODY, "anon");
    dump_tree(&NOBODY, &mut p, &image);
    let mut r = Proc::spawn(
        "kckpt restore as nobody",
        command_as(&NOBODY, kckpt()).arg("restore").arg(&image),
    );
    check(&mut r);
}

#[test]
fn info_names_the_shared_memory_slot() {
    let dir = TestDir::new("treem_info");
    let image = dir.join("tree.kckpt");
    let mut p = start(&[], "anon");
    dump_tree(&[], &mut p, &image);
    let out = run(
        Command::new(kckpt()).arg("info").arg(&image),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("shared memory (device"))
        .unwrap_or_else(|| panic!("no memory slot in: {text}"));
    assert!(
        line.contains("8192 bytes") && line.contains(&format!("held by pid {}", p.pid())),
        "{line}"
    );
}

#[test]
fn a_deleted_file_kept_open_and_mapped_by_the_tree_is_refused_by_name() {
    let dir = TestDir::new("treem_deleted");
    let image = dir.join("tree.kckpt");
    let mut p = start(&[], "deleted");
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "a deleted file mapped by parent and children",
        &out,
        None,
        &["deleted object"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/tmp/kckpt-treem-"),
        "names the file: {stderr}"
    );
    assert!(!image.exists(), "no image after a refusal");
    // Nothing was killed: it still counts and checks itself.
    check(&mut p);
}

#[test]
fn a_memfd_opened_again_by_each_child_is_one_object_with_their_own_descriptions() {
    // Format 1.9: each child's own open of the root's memfd (an open file
    // description of its own) is restored by the root with its memfd and
    // handed to the child (`ADOPTED` slot). The children check their
    // offsets, flags and that a write through their description shows in
    // the mapping; the root checks their marks.
    let dir = TestDir::new("treem_reopen");
    let image = dir.join("tree.kckpt");
    let mut p = start(&[], "reopen");
    dump_tree(&[], &mut p, &image);
    assert_eq!(memory_slots(&image), 1, "memory slots of reopen");
    let adopted = tree_slots(&info_json(&image), "adopted");
    assert_eq!(adopted.len(), 2, "one adopted slot per child: {adopted:?}");
    for s in &adopted {
        assert_eq!(s["holder"], 0, "held by the root: {s}");
    }
    let mut r = restore(&image);
    check(&mut r);
}

#[test]
fn a_memfd_opened_again_by_a_child_of_another_root_is_refused_by_name() {
    // Two roots of a group (no process of the tree is an ancestor of
    // both) each opening one memfd on their own: no process could restore
    // both descriptions, which would come back as two copies.
    let dir = TestDir::new("treem_reopen_roots");
    let image = dir.join("tree.kckpt");
    let mut a = Proc::spawn(
        "memfd_holder",
        std::process::Command::new("python3").args([
            "-c",
            "import os,sys,time\n\
             fd=os.memfd_create('roots')\n\
             os.write(fd,b'x'*100)\n\
             os.setpgid(0,0)\n\
             print(os.getpid(),fd,flush=True)\n\
             time.sleep(60)",
        ]),
    );
    let line = a.line(LINE_TIMEOUT);
    let (pid, fd) = line.split_once(' ').expect("pid and fd");
    let mut b = Proc::spawn(
        "memfd_opener",
        std::process::Command::new("python3").args([
            "-c",
            &format!(
                "import os,time\n\
                 os.setpgid(0,{pid})\n\
                 fd=os.open('/proc/{pid}/fd/{fd}',os.O_RDONLY)\n\
                 print('ready',flush=True)\n\
                 time.sleep(60)"
            ),
        ]),
    );
    assert_eq!(b.line(LINE_TIMEOUT), "ready", "{}", b.stderr());
    let out = run(
        Command::new(kckpt())
            .args(["dump", "--pgid", pid, "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert_refused(
        "a memfd opened separately by two roots",
        &out,
        None,
        &["separate opens", "no process of the tree restores both"],
    );
    assert!(!image.exists(), "no image after a refusal");
}
