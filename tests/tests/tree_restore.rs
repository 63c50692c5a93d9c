//! Restoring a process tree (issue 9): `kckpt restore` and `./IMAGE` bring
//! back every process of the tree with its pid, parent, process group and
//! session, zombies with their wait status, pipes between processes with
//! the bytes in flight; the image's exit status is the root's; privileged
//! (root: original pids in this PID namespace), forced or unprivileged
//! (`nobody`: a new PID and user namespace); a corrupt sub-image is refused
//! with one line before any process of the tree exists.
//!
//! The programs check themselves (`tests/programs/treer_*.c`): each
//! process compares its state after the restore with what it noted before
//! the dump and prints `ok NAME` or `FAIL NAME ...`.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const TREER_TREE: &str = env!("KCKPT_PROG_TREER_TREE");
const TREER_PIPE: &str = env!("KCKPT_PROG_TREER_PIPE");
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Read `NAME PID` lines into a map until `last` was read and every one
/// of `names` has a pid.
fn pids_until(p: &mut Proc, last: &str, names: &[&str]) -> HashMap<String, i32> {
    let mut pids = HashMap::new();
    let mut done = false;
    while !(done && names.iter().all(|n| pids.contains_key(*n))) {
        let line = p.line(LINE_TIMEOUT);
        if line == last {
            done = true;
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [name, pid] => {
                let pid = pid
                    .parse()
                    .unwrap_or_else(|_| p.fail(&format!("unexpected line {line:?}")));
                pids.insert((*name).to_owned(), pid);
            }
            _ => p.fail(&format!("unexpected line {line:?}")),
        }
    }
    pids
}

/// Start `treer_tree` through `prefix` (e.g. [`NOBODY`]) and wait until
/// it is ready; the zombie is one.
fn start_tree(prefix: &[&str]) -> (Proc, HashMap<String, i32>) {
    let mut p = Proc::spawn("treer_tree", &mut command_as(prefix, TREER_TREE));
    let pids = pids_until(&mut p, "ready", &["root", "zombie", "a", "g", "b"]);
    assert_eq!(state(pids["zombie"]), Some('Z'), "the zombie is no zombie");
    (p, pids)
}

/// Dump the tree of `pids` rooted at `root` into `image` (killing it) as
/// `prefix`; wait until every pid is free again.
fn dump_tree(prefix: &[&str], p: &mut Proc, pids: &HashMap<String, i32>, root: &str, image: &Path) {
    let out = dump_as(prefix, pids[root], image);
    assert!(out.status.success(), "dump failed: {}", show(&out));
    let status = p.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success(), "the root was not killed: {status}");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while pids
        .values()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            std::time::Instant::now() < until,
            "a dumped process is still there"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Let the restored `treer_tree` check itself: every process says `ok`,
/// none `FAIL`, the root reaps the zombie with its status; the restore
/// ends with the root's exit status 3.
fn check_tree(r: &mut Proc) {
    r.write_stdin("check\n");
    let mut ok = Vec::new();
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            r.fail(&format!("wrong state after the restore: {line}"));
        }
        if let Some(name) = line.strip_prefix("ok ") {
            ok.push(name.to_owned());
        }
    }
    ok.sort();
    assert_eq!(
        ok,
        ["a", "b", "g", "root"],
        "not every process checked itself"
    );
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(3),
        "the image ends like its root: {status}"
    );
}

#[test]
fn a_tree_comes_back_with_its_pids_groups_sessions_and_zombie() {
    let dir = TestDir::new("treer_priv");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree(&[]);
    dump_tree(&[], &mut p, &pids, "root", &image);
    let mut r = restore(&image);
    // Privileged: the original pids, in this PID namespace.
    for name in ["root", "a", "g", "b"] {
        wait_for_pid(&mut r, pids[name]);
    }
    assert_eq!(
        read_proc(pids["root"], "stat")
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .and_then(|s| s.rsplit(')').next().map(|t| t.trim().to_owned()))
            .and_then(|t| t.split(' ').nth(1).map(str::to_owned)),
        Some(r.spawned_pid().to_string()),
        "the root's parent is the process that restored it"
    );
    check_tree(&mut r);
}

#[test]
fn the_restorer_passes_signals_on_to_the_root_and_ends_like_it() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::os::unix::process::ExitStatusExt;
    let dir = TestDir::new("treer_relay");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree(&[]);
    dump_tree(&[], &mut p, &pids, "root", &image);
    let mut r = restore(&image);
    for name in ["root", "a", "g", "b"] {
        wait_for_pid(&mut r, pids[name]);
    }
    // It shows the root's command name (once the tree resumed).
    let until = std::time::Instant::now() + LINE_TIMEOUT;
    while read_proc(r.spawned_pid(), "comm").as_deref() != Some(&b"treer_tree\n"[..]) {
        assert!(
            std::time::Instant::now() < until,
            "the restorer keeps its name"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM to the process that ran the image reaches the root (default
    // action: it dies), and the restorer ends the same way.
    kill(Pid::from_raw(r.spawned_pid()), Signal::SIGTERM).unwrap();
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.signal(), Some(15), "{status}");
    assert!(
        read_proc(pids["root"], "cmdline").is_none(),
        "the root is still there"
    );
    // The others were not its to end.
    for name in ["a", "g", "b"] {
        assert!(read_proc(pids[name], "cmdline").is_some(), "{name} is gone");
        let _ = kill(Pid::from_raw(pids[name]), Signal::SIGKILL);
    }
}

#[test]
fn a_forced_new_pid_namespace_restores_the_tree() {
    let dir = TestDir::new("treer_ns");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree(&[]);
    dump_tree(&[], &mut p, &pids, "root", &image);
    let mut r = Proc::spawn(
        "kckpt restore --new-pid-ns",
        Command::new(kckpt())
            .arg("restore")
            .arg(&image)
            .env("KCKPT_NEW_PID_NS", "1"),
    );
    check_tree(&mut r);
}

#[test]
fn sub_images_restore_with_mapped_pages_and_full_verification() {
    // Every sub-image offset (memory mapped from the file, every chunk
    // checked up front) is relative to the sub-image.
    let dir = TestDir::new("treer_mmap");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree(&[]);
    dump_tree(&[], &mut p, &pids, "root", &image);
    let mut r = Proc::spawn(
        "kckpt restore (mmap, verify)",
        Command::new(kckpt())
            .arg("restore")
            .arg(&image)
            .env("KCKPT_RESTORE_MODE", "mmap")
            .env("KCKPT_VERIFY", "1"),
    );
    check_tree(&mut r);
}

#[test]
fn nobody_restores_a_tree_in_new_pid_and_user_namespaces() {
    require_tool("setpriv");
    let dir = TestDir::new("treer_nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree(&NOBODY);
    // Dumped by root: the restore is what runs as nobody here (an
    // unprivileged dump cannot see that the test holds the other ends of
    // the stdio pipes).
    dump_tree(&[], &mut p, &pids, "root", &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).unwrap();
    let mut r = Proc::spawn(
        "kckpt restore as nobody",
        command_as(&NOBODY, kckpt()).arg("restore").arg(&image),
    );
    check_tree(&mut r);
}

#[test]
fn the_image_exit_status_is_the_roots_in_a_script() {
    require_tool("unshare");
    let dir = TestDir::new("treer_status");
    let image = dir.join("job.kckpt");
    let (mut p, pids) = start_tree(&[]);
    dump_tree(&[], &mut p, &pids, "root", &image);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o700)).unwrap();
    // `./job.kckpt; echo $?` through binfmt_misc in a user namespace (so
    // the stub may not choose pids in this PID namespace and takes a new
    // one).
    let script = "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
                  && \"$KCKPT\" binfmt register --stub \"$KCKPT_STUB\" >&2 \
                  && { ./job.kckpt; echo \"status $?\"; }";
    let mut r = Proc::spawn(
        "./job.kckpt; echo $?",
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .current_dir(dir.path())
            .env("KCKPT", kckpt())
            .env("KCKPT_STUB", stub()),
    );
    r.write_stdin("check\n");
    let mut lines = Vec::new();
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line.starts_with("status ") {
            assert_eq!(line, "status 3", "{lines:?} {}", r.stderr());
            break;
        }
        assert!(!line.starts_with("FAIL"), "{line}");
        lines.push(line);
    }
    assert!(lines.iter().any(|l| l == "done"), "{lines:?}");
    assert!(r.wait_exit(EXIT_TIMEOUT).success());
}

#[test]
fn a_pipe_between_parent_and_child_keeps_its_bytes_in_flight() {
    let dir = TestDir::new("treer_pipe");
    let image = dir.join("pipe.kckpt");
    let mut p = Proc::start(TREER_PIPE, &[]);
    let pids = pids_until(&mut p, "ready", &["parent", "child"]);
    dump_tree(&[], &mut p, &pids, "parent", &image);
    let mut r = restore(&image);
    r.write_stdin("go\n");
    let mut ok = false;
    loop {
        let line = r.line(LINE_TIMEOUT);
        if line == "done" {
            break;
        }
        if line.starts_with("FAIL") {
            r.fail(&format!("wrong pipe contents after the restore: {line}"));
        }
        ok |= line == "ok child";
    }
    assert!(ok, "the child did not check the pipe");
    assert!(r.wait_exit(EXIT_TIMEOUT).success());
}

#[test]
fn a_file_opened_before_fork_keeps_one_offset_for_parent_and_child() {
    let dir = TestDir::new("treer_share");
    let image = dir.join("share.kckpt");
    let file = dir.join("shared.txt");
    let mut p = Proc::start(TREER_PIPE, &["share", file.to_str().unwrap()]);
    let pids = pids_until(&mut p, "ready", &["parent", "child"]);
    dump_tree(&[], &mut p, &pids, "parent", &image);
    assert_eq!(fs::read_to_string(&file).unwrap(), "P0\nC0\n");
    let mut r = restore(&image);
    r.write_stdin("go\n");
    loop {
        let line = r.line(LINE_TIMEOUT);
        assert!(!line.starts_with("FAIL"), "{line}");
        if line == "done" {
            break;
        }
    }
    assert!(r.wait_exit(EXIT_TIMEOUT).success());
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "P0\nC0\nP1\nC1\nP2\n",
        "the parent and the child do not share the file's offset"
    );
}

#[test]
fn a_sub_image_alone_with_a_shared_descriptor_is_refused_by_name() {
    let dir = TestDir::new("treer_alone");
    let image = dir.join("pipe.kckpt");
    let mut p = Proc::start(TREER_PIPE, &[]);
    let pids = pids_until(&mut p, "ready", &["parent", "child"]);
    dump_tree(&[], &mut p, &pids, "parent", &image);
    // The child's image as `kckpt extract` writes it (its pages shared
    // with the parent copied in, format 1.6): a complete image whose pipe
    // end is a slot of the tree.
    let sub = dir.join("child.kckpt");
    let out = run(
        Command::new(kckpt())
            .args(["extract", "--pid", &pids["child"].to_string()])
            .arg(&image)
            .arg(&sub),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = run(Command::new(kckpt()).arg("restore").arg(&sub), CMD_TIMEOUT);
    assert_refused(
        "a sub-image alone",
        &out,
        Some(126),
        &["is shared with another process of the tree: restore the whole image"],
    );
}

/// `sh -c 'treer_pipe produce N | treer_pipe filter > out'` run through:
/// the expected output.
fn pipeline_output(dir: &Path, n: u32) -> Vec<u8> {
    let out = dir.join("expected.txt");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "\"$P\" produce {n} | \"$P\" filter > {}",
            out.display()
        ))
        .env("P", TREER_PIPE)
        .status()
        .expect("sh");
    assert!(status.success());
    fs::read(out).unwrap()
}

/// A pipeline `produce | filter > out` under a shell, dumped with the
/// shell (`-p`: the pipe between the siblings is held by the shell) while
/// it runs, restored by `restore`: the shell says `end`, and the output
/// file is that of an uninterrupted run.
fn shell_pipeline(name: &str, restore: impl Fn(&Path) -> Proc) {
    let dir = TestDir::new(name);
    let image = dir.join("job.kckpt");
    let out = dir.join("out.txt");
    let expected = pipeline_output(dir.path(), 150);
    let mut sh = Proc::spawn(
        "shell pipeline",
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "\"$P\" produce 150 | \"$P\" filter > {}; echo end",
                out.display()
            ))
            .env("P", TREER_PIPE),
    );
    std::thread::sleep(Duration::from_millis(800));
    let dumped = dump(sh.spawned_pid(), &image, false);
    assert!(dumped.status.success(), "{}", show(&dumped));
    sh.wait_exit(EXIT_TIMEOUT);
    let partial = fs::read(&out).unwrap();
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "dumped too early or too late ({} of {} bytes)",
        partial.len(),
        expected.len()
    );
    let mut r = restore(&image);
    assert_eq!(r.line(Duration::from_secs(30)), "end");
    assert!(r.wait_exit(EXIT_TIMEOUT).success());
    assert!(fs::read(&out).unwrap() == expected, "the output differs");
}

#[test]
fn a_shell_pipeline_dumped_with_its_shell_writes_the_same_file() {
    shell_pipeline("treer_shell_pipeline", restore);
}

#[test]
fn a_tree_restores_from_standard_input() {
    // `kckpt restore -`: the image is a memfd the stub reads as
    // /proc/self/fd/N, which each tree process passes on to its children.
    shell_pipeline("treer_stdin", |image| {
        Proc::spawn(
            "kckpt restore - < image",
            Command::new("sh")
                .arg("-c")
                .arg("exec \"$KCKPT\" restore - < \"$IMAGE\"")
                .env("KCKPT", kckpt())
                .env("IMAGE", image),
        )
    });
}

#[test]
fn a_pipeline_dumped_by_group_writes_the_same_file() {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let dir = TestDir::new("treer_pipeline");
    let image = dir.join("job.kckpt");
    let out = dir.join("out.txt");
    let expected = pipeline_output(dir.path(), 150);
    // `produce | filter > out` as a job-control shell starts it: two
    // siblings in a process group of their own, led by the first.
    let mut producer = only_stdio(&mut Command::new(TREER_PIPE))
        .args(["produce", "150"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Not the test run's stderr: when that is a file (a CI log), the
        // two stages would share its open file description with no
        // common ancestor in the dump, which is refused by name.
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = producer.id() as i32;
    let mut filter = only_stdio(&mut Command::new(TREER_PIPE))
        .arg("filter")
        .stdin(Stdio::from(producer.stdout.take().unwrap()))
        .stdout(fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .process_group(pgid)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let dumped = run(
        Command::new(kckpt())
            .args(["dump", "--pgid", &pgid.to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(dumped.status.success(), "dump --pgid: {}", show(&dumped));
    assert!(!producer.wait().unwrap().success());
    assert!(!filter.wait().unwrap().success());
    let partial = fs::read(&out).unwrap();
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "dumped too early or too late ({} of {} bytes)",
        partial.len(),
        expected.len()
    );
    let restored = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        Duration::from_secs(60),
    );
    assert!(restored.status.success(), "{}", show(&restored));
    assert!(fs::read(&out).unwrap() == expected, "the output differs");
}

#[test]
fn a_process_killed_during_the_restore_fails_it_and_the_tree_is_killed() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let dir = TestDir::new("treer_killed");
    let image = dir.join("big.kckpt");
    let mut p = Proc::start(TREER_PIPE, &["big", "128"]);
    let pids = pids_until(&mut p, "ready", &["parent", "child"]);
    dump_tree(&[], &mut p, &pids, "parent", &image);
    let mut r = restore(&image);
    // The child (128 MiB to read back) is killed as soon as it exists: a
    // stub that dies without a word (as a crash would).
    // Root restores with the original pids: the child is the process with
    // its pid whose parent has the parent's (not another test's process
    // that took the pid meanwhile).
    let child = pids["child"];
    let ppid_of = |pid: i32| {
        read_proc(pid, "stat").and_then(|s| {
            let s = String::from_utf8_lossy(&s).into_owned();
            let rest = s.rsplit(')').next()?.to_owned();
            rest.split_whitespace().nth(1)?.parse::<i32>().ok()
        })
    };
    let until = std::time::Instant::now() + LINE_TIMEOUT;
    while ppid_of(child) != Some(pids["parent"]) {
        assert!(
            std::time::Instant::now() < until,
            "the child was never forked"
        );
        std::thread::yield_now();
    }
    kill(Pid::from_raw(child), Signal::SIGKILL).unwrap();
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(126), "{}", r.stderr());
    let err = r.stderr();
    assert!(
        err.lines().count() == 1 && err.contains("ended during the restore"),
        "{err}"
    );
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}", pids["parent"])).exists() {
        assert!(
            std::time::Instant::now() < until,
            "the parent was not killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_bash_loop_of_subshells_and_commands_finishes_as_if_uninterrupted() {
    let bash = require_tool("bash");
    let dir = TestDir::new("treer_bash");
    let image = dir.join("script.kckpt");
    let out = dir.join("out.txt");
    let script =
        "for i in $(seq 1 40); do (echo \"line $i\" | tr a-z A-Z; sleep 0.05); done; echo end";
    let mut sh = Proc::spawn(
        "bash loop",
        Command::new(&bash).args(["-c", &format!("exec > {}; {script}", out.display())]),
    );
    std::thread::sleep(Duration::from_millis(1200));
    let dumped = dump(sh.spawned_pid(), &image, false);
    assert!(dumped.status.success(), "{}", show(&dumped));
    sh.wait_exit(EXIT_TIMEOUT);
    let partial = fs::read_to_string(&out).unwrap();
    assert!(
        partial.contains("LINE 1\n") && !partial.contains("end"),
        "dumped too early or too late: {partial:?}"
    );
    let restored = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        CMD_TIMEOUT,
    );
    assert!(restored.status.success(), "{}", show(&restored));
    let expected: String = (1..=40).map(|i| format!("LINE {i}\n")).collect::<String>() + "end\n";
    assert_eq!(fs::read_to_string(&out).unwrap(), expected);
}

/// The byte range of the note segment of the image `bytes`.
fn notes_range(bytes: &[u8]) -> std::ops::Range<usize> {
    use kckpt_image::read::{note_segment, parse_elf_header, EHDR_SIZE};
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let len = bytes.len() as u64;
    let elf = parse_elf_header(&bytes[..EHDR_SIZE], len, machine).expect("ELF header");
    let phoff = elf.phoff as usize;
    let (off, size) =
        note_segment(&bytes[phoff..phoff + elf.phdrs_size()], len).expect("note segment");
    off as usize..(off + size) as usize
}

/// The sub-image of process `pid` in the tree image `bytes`: its range.
fn sub_image(bytes: &[u8], pid: i32) -> std::ops::Range<usize> {
    let r = notes_range(bytes);
    let notes = &bytes[r];
    let (note, _) = kckpt_image::checksum::note_spans(notes)
        .find(|(n, _)| {
            n.is(
                kckpt_image::NOTE_OWNER,
                kckpt_image::tree::NT_KCKPT_TREE_PROCS,
            )
        })
        .expect("a process table");
    let size = std::mem::size_of::<kckpt_image::tree::TreeProcRecord>();
    for rec in note.desc.chunks_exact(size) {
        let word = |at: usize| u32::from_le_bytes(rec[at..at + 4].try_into().unwrap());
        let quad = |at: usize| u64::from_le_bytes(rec[at..at + 8].try_into().unwrap());
        if word(0) as i32 == pid {
            let (off, len) = (quad(32) as usize, quad(40) as usize);
            assert!(len > 0, "no sub-image for {pid}");
            return off..off + len;
        }
    }
    panic!("pid {pid} not in the tree");
}

/// The offset of the first stored memory byte in the image `bytes`.
fn first_run(bytes: &[u8]) -> usize {
    use kckpt_image::checksum::check_image;
    use kckpt_image::read::{parse_elf_header, EHDR_SIZE};
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let len = bytes.len() as u64;
    let elf = parse_elf_header(&bytes[..EHDR_SIZE], len, machine).expect("ELF header");
    let phoff = elf.phoff as usize;
    let phdrs = &bytes[phoff..phoff + elf.phdrs_size()];
    let notes = &bytes[notes_range(bytes)];
    let (view, _) = check_image(&bytes[..EHDR_SIZE], phdrs, notes, machine, len).expect("valid");
    let run = view.runs.iter().find(|r| r.len > 0).expect("a memory run");
    run.offset as usize
}

/// Restore `image` and expect a one-line refusal naming `keywords`, with
/// status 126, and no process of the tree ever started (nothing on stdout).
fn assert_tree_refused(image: &Path, keywords: &[&str]) -> Output {
    let out = run(Command::new(kckpt()).arg("restore").arg(image), CMD_TIMEOUT);
    assert_refused("corrupt sub-image", &out, Some(126), keywords);
    assert!(out.stdout.is_empty(), "something ran: {}", show(&out));
    out
}

#[test]
fn a_corrupt_sub_image_is_refused_before_anything_runs() {
    let dir = TestDir::new("treer_corrupt");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree(&[]);
    dump_tree(&[], &mut p, &pids, "root", &image);
    let good = fs::read(&image).unwrap();

    // A byte of the grandchild's registers: its own metadata checksum.
    let g = sub_image(&good, pids["g"]);
    let mut bad = good.clone();
    let regs = note_desc_range(&bad[g.clone()], b"CORE", 1);
    bad[g.start + regs.start + 100] ^= 0x40;
    kckpt_image_write::reseal(&mut bad).expect("reseal");
    let bad_path = dir.join("bad1.kckpt");
    fs::write(&bad_path, &bad).unwrap();
    assert_tree_refused(&bad_path, &["corrupt"]);

    // The same change with the sub-image resealed too: it is consistent on
    // its own, but no longer the one the tree recorded (`image_sum`).
    let mut bad = good.clone();
    bad[g.start + regs.start + 100] ^= 0x40;
    kckpt_image_write::reseal(&mut bad[g.clone()]).expect("reseal the sub-image");
    kckpt_image_write::reseal(&mut bad).expect("reseal");
    let bad_path = dir.join("bad2.kckpt");
    fs::write(&bad_path, &bad).unwrap();
    assert_tree_refused(&bad_path, &["corrupt", "checksums"]);

    // A byte of the grandchild's saved memory: its data checksum, checked
    // by that process while it rebuilds its memory, before the barrier;
    // it says why, the others are killed, nothing resumed.
    let mut bad = good.clone();
    let run = first_run(&bad[g.clone()]);
    bad[g.start + run] ^= 0x01;
    let bad_path = dir.join("bad3.kckpt");
    fs::write(&bad_path, &bad).unwrap();
    assert_tree_refused(&bad_path, &["checksum"]);
    for name in ["root", "a", "g", "b"] {
        let pid = pids[name];
        assert!(
            read_proc(pid, "cmdline").is_none_or(|c| !c.starts_with(TREER_TREE.as_bytes())),
            "process {name} ({pid}) is still there"
        );
    }

    // The good image still restores.
    let mut r = restore(&image);
    check_tree(&mut r);
}

#[test]
fn a_group_or_session_that_cannot_be_rebuilt_is_refused() {
    let dir = TestDir::new("treer_groups");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree(&[]);
    dump_tree(&[], &mut p, &pids, "root", &image);
    let good = fs::read(&image).unwrap();
    let table = note_desc_range(
        &good,
        kckpt_image::NOTE_OWNER,
        kckpt_image::tree::NT_KCKPT_TREE_PROCS,
    );
    let size = std::mem::size_of::<kckpt_image::tree::TreeProcRecord>();
    let at = good[table.clone()]
        .chunks_exact(size)
        .position(|r| i32::from_le_bytes(r[..4].try_into().unwrap()) == pids["a"])
        .expect("a in the table")
        * size
        + table.start;
    // "a" in a group no process of the tree leads, not its parent's (as
    // when its group's leader has exited), then in a session that is not
    // its parent's: fork/setsid/setpgid cannot give either back.
    for (field, keyword) in [(8, "process group"), (12, "session")] {
        let mut bad = good.clone();
        bad[at + field..at + field + 4].copy_from_slice(&1u32.to_le_bytes());
        kckpt_image_write::reseal(&mut bad).expect("reseal");
        let path = dir.join("bad.kckpt");
        fs::write(&path, &bad).unwrap();
        let out = assert_tree_refused(&path, &[keyword]);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be rebuilt"),
            "{}",
            show(&out)
        );
    }
}

/// Wait until `pid` is restored: its command line is the program's.
fn wait_for_pid(r: &mut Proc, pid: i32) {
    let until = std::time::Instant::now() + LINE_TIMEOUT;
    while std::time::Instant::now() < until {
        if read_proc(pid, "cmdline").is_some_and(|c| c.starts_with(TREER_TREE.as_bytes())) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    r.fail(&format!("process {pid} was not restored"));
}

/// A process group whose leader exited and was reaped while its members,
/// children of the same process (a shell's job `a | b` after `a` ended),
/// live on or are zombies: format 1.9 records the leader as `gone` and the
/// restore makes the group again with a stand-in of that pid, killed and
/// reaped before the tree resumes (as root in this PID namespace, and as
/// nobody in new PID and user namespaces).
#[test]
fn a_group_whose_leader_was_reaped_comes_back_with_its_members() {
    require_tool("setpriv");
    const SCRIPT: &str = r#"
import os, sys, time
r, w = os.pipe()
c = os.fork()
if c == 0:
    os.setpgid(0, 0)
    os.write(w, b"x")
    time.sleep(0.5)
    os._exit(0)
os.read(r, 1)
g = os.fork()
if g == 0:
    os.setpgid(0, c)
    while True:
        time.sleep(1)
z = os.fork()
if z == 0:
    os.setpgid(0, c)
    os._exit(5)
os.waitpid(c, 0)
while os.waitid(os.P_PID, z, os.WEXITED | os.WNOWAIT) is None:
    pass
print("ready", c, g, z, flush=True)
sys.stdin.readline()
bad = []
if os.getpgid(g) != c or os.getpgid(z) != c:
    bad.append("groups %d %d" % (os.getpgid(g), os.getpgid(z)))
try:
    os.kill(c, 0)
    bad.append("a process has the leader's pid")
except ProcessLookupError:
    pass
if os.waitpid(z, 0)[1] != 5 << 8:
    bad.append("zombie status")
os.kill(g, 9)
os.waitpid(g, 0)
try:
    bad.append("another child %r" % (os.waitpid(-1, os.WNOHANG),))
except ChildProcessError:
    pass
print("FAIL " + ", ".join(bad) if bad else "ok", flush=True)
"#;
    let dir = TestDir::new("treer_gone");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("tree.kckpt");
    // The system's Python: nobody restores it too (not one under /root).
    let python = require_tool("/usr/bin/python3");
    // Run as nobody, which both restorers may be.
    let mut p = Proc::spawn("python3", command_as(&NOBODY, python).args(["-c", SCRIPT]));
    let line = p.line(LINE_TIMEOUT);
    let leader: i32 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}: {}", p.stderr()));
    let out = dump(p.pid(), &image, false);
    assert!(out.status.success(), "dump: {}", show(&out));
    p.wait_exit(LINE_TIMEOUT);
    let info = info_json(&image);
    let procs = info["tree"]["processes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let gone: Vec<_> = procs.iter().filter(|q| q["state"] == "gone").collect();
    assert_eq!(gone.len(), 1, "{procs:?}");
    assert_eq!(gone[0]["pid"], leader);
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).unwrap();
    for prefix in [&[][..], &NOBODY[..]] {
        let mut r = Proc::spawn(
            "kckpt restore",
            command_as(prefix, kckpt()).arg("restore").arg(&image),
        );
        r.write_stdin("go\n");
        assert_eq!(r.line(LINE_TIMEOUT), "ok", "{prefix:?}: {}", r.stderr());
        let status = r.wait_exit(EXIT_TIMEOUT);
        assert_eq!(status.code(), Some(0), "{prefix:?}: {}", r.stderr());
    }
}
