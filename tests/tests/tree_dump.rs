//! `kckpt dump -p PID` of a process tree (issue 9): the process and all
//! its descendants in one image (format 1.4 tree notes, sub-images inside
//! the file), all frozen, then all killed or all resumed together;
//! `--no-children` keeps the single-process behaviour.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use kckpt_image::checksum::{check_image, crc32c, note_spans};
use kckpt_image::read::{note_segment, parse_elf_header, ImageView, EHDR_SIZE};
use kckpt_image::records::{NOTE_OWNER, NT_KCKPT_CHECKSUMS};
use kckpt_image::tree::{proc_state, TreeProcRecord, NO_PARENT};

const TREE_BASIC: &str = env!("KCKPT_PROG_TREE_BASIC");

/// SIGKILLs the given processes when dropped (a failed or refusing test
/// leaves no tree behind; `Proc` kills only the root).
struct KillAll(Vec<i32>);

impl Drop for KillAll {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A [`KillAll`] of the descendants of `pid` now.
fn kill_tree_later(pid: i32) -> KillAll {
    KillAll(descendants(pid))
}

/// The pids `tree_basic` reports: root, zombie, a, g, b.
struct Pids {
    root: i32,
    zombie: i32,
    a: i32,
    g: i32,
    b: i32,
}

/// Start `tree_basic` and wait until every process said its pid and the
/// zombie is one.
fn start_tree() -> (Proc, Pids) {
    let mut p = Proc::start(TREE_BASIC, &[]);
    let mut seen: HashMap<String, i32> = HashMap::new();
    let mut ready = false;
    while !(ready && ["a", "g", "b"].iter().all(|k| seen.contains_key(*k))) {
        let line = p.line(LINE_TIMEOUT);
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["ready"] => ready = true,
            ["root", r, "zombie", z] => {
                seen.insert("root".into(), r.parse().unwrap());
                seen.insert("zombie".into(), z.parse().unwrap());
            }
            [name, pid] => {
                seen.insert((*name).to_owned(), pid.parse().unwrap());
            }
            _ => p.fail(&format!("unexpected line {line:?}")),
        }
    }
    let pids = Pids {
        root: seen["root"],
        zombie: seen["zombie"],
        a: seen["a"],
        g: seen["g"],
        b: seen["b"],
    };
    assert_eq!(pids.root, p.pid());
    assert_eq!(state(pids.zombie), Some('Z'), "the zombie is no zombie");
    (p, pids)
}

/// The metadata of the image in `bytes` (checked: checksums, structure,
/// tree tables).
fn view(bytes: &[u8]) -> ImageView<'_> {
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let len = bytes.len() as u64;
    let elf = parse_elf_header(&bytes[..EHDR_SIZE], len, machine).expect("ELF header");
    let phoff = elf.phoff as usize;
    let phdrs = &bytes[phoff..phoff + elf.phdrs_size()];
    let (off, size) = note_segment(phdrs, len).expect("note segment");
    let notes = &bytes[off as usize..(off + size) as usize];
    check_image(&bytes[..EHDR_SIZE], phdrs, notes, machine, len)
        .expect("the image passes the reader's checks")
        .0
}

/// CRC-32C of the `NT_KCKPT_CHECKSUMS` descriptor of the image `bytes`.
fn checksum_note_sum(bytes: &[u8]) -> u32 {
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let len = bytes.len() as u64;
    let elf = parse_elf_header(&bytes[..EHDR_SIZE], len, machine).expect("ELF header");
    let phoff = elf.phoff as usize;
    let phdrs = &bytes[phoff..phoff + elf.phdrs_size()];
    let (off, size) = note_segment(phdrs, len).expect("note segment");
    let notes = &bytes[off as usize..(off + size) as usize];
    let (note, _) = note_spans(notes)
        .find(|(n, _)| n.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS))
        .expect("a checksum note");
    crc32c(note.desc)
}

/// Check the tree tables of `image` against `pids`; returns the records.
fn check_tree(image: &Path, pids: &Pids) -> Vec<TreeProcRecord> {
    let bytes = fs::read(image).expect("read the image");
    let v = view(&bytes);
    let tree = v.tree.expect("a tree header");
    assert_eq!(v.header.pid as i32, pids.root);
    let procs: Vec<TreeProcRecord> = v.tree_procs.iter().collect();
    assert_eq!(tree.procs, 5, "{procs:?}");
    assert_eq!(tree.status_proc, 0);
    assert_eq!(tree.slots, 0);
    assert!(tree.slot_base >= 3, "slot base {}", tree.slot_base);
    let index = |pid: i32| {
        procs
            .iter()
            .position(|p| p.pid as i32 == pid)
            .unwrap_or_else(|| panic!("pid {pid} not in the tree: {procs:?}"))
    };
    let (r, z, a, g, b) = (
        index(pids.root),
        index(pids.zombie),
        index(pids.a),
        index(pids.g),
        index(pids.b),
    );
    assert_eq!(r, 0);
    assert_eq!(procs[r].parent, NO_PARENT);
    for (child, parent) in [(z, r), (a, r), (b, r), (g, a)] {
        assert_eq!(procs[child].parent as usize, parent, "{procs:?}");
        assert!(parent < child);
    }
    // Siblings by pid.
    let mut kids = [z, a, b];
    kids.sort_by_key(|&i| procs[i].pid);
    assert!(kids.windows(2).all(|w| w[0] < w[1]), "{procs:?}");
    assert_eq!(procs[z].state, proc_state::ZOMBIE);
    assert_eq!(procs[z].wait_status, 7 << 8);
    assert_eq!((procs[z].image_offset, procs[z].image_len), (0, 0));
    for i in [r, a, g, b] {
        assert_eq!(procs[i].state, proc_state::LIVE);
        assert_eq!(procs[i].threads, 1);
        assert_eq!(procs[i].exit_signal, 17);
        assert_eq!(&procs[i].name[..11], b"tree_basic\0");
    }
    // The root stays in the test's group; its children inherit it.
    for i in [z, a, g] {
        assert_eq!(procs[i].pgid, procs[r].pgid, "{procs:?}");
    }
    assert_eq!(procs[b].pgid as i32, pids.b);
    for p in &procs {
        assert_eq!(p.sid, procs[r].sid);
    }
    // Every sub-image is a complete image of its own, bound by its sum.
    for i in [a, g, b] {
        let p = procs[i];
        assert_eq!(p.image_offset % 65536, 0);
        let sub = &bytes[p.image_offset as usize..(p.image_offset + p.image_len) as usize];
        let sv = view(sub);
        assert_eq!(sv.header.pid, p.pid);
        assert!(sv.tree.is_none());
        assert_eq!(checksum_note_sum(sub), p.image_sum);
    }
    procs
}

/// A clean one-line refusal (exit 1) that mentions every one of `words`.
fn refused_with_all(what: &str, out: &std::process::Output, words: &[&str]) {
    assert_refused(what, out, Some(1), &words[..1]);
    let line = String::from_utf8_lossy(&out.stderr);
    for w in words {
        assert!(line.contains(w), "{what}: {w:?} not in {line}");
    }
}

/// Wait until `pid` is gone (reaped).
fn gone(pid: i32) -> bool {
    all_gone(&[pid], Duration::from_secs(10))
}

#[test]
fn a_tree_is_dumped_and_killed() {
    let dir = TestDir::new("tree_kill");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree();
    let _kill = kill_tree_later(pids.root);
    dump(pids.root, &image, false);
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "the root was not killed: {status}");
    for pid in [pids.a, pids.g, pids.b, pids.zombie] {
        assert!(gone(pid), "process {pid} is still there after the dump");
    }
    check_tree(&image, &pids);

    // gdb opens the image as the root process.
    let gdb = require_tool("gdb");
    let out = run(
        Command::new(gdb)
            .args(["-nx", "-batch", "-ex", "bt"])
            .arg(TREE_BASIC)
            .arg(&image),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('#') && (l.contains(" main (") || l.contains(" in main "))),
        "no frame in main:\n{}",
        show(&out)
    );
    // readelf lists the tree notes.
    let readelf = require_tool("readelf");
    let out = run(Command::new(readelf).arg("-n").arg(&image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text.contains("0x4b430090") && text.contains("0x4b430093"),
        "{text}"
    );
}

#[test]
fn a_tree_left_running_keeps_running() {
    let dir = TestDir::new("tree_leave");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree();
    let _kill = kill_tree_later(pids.root);
    dump(pids.root, &image, true);
    check_tree(&image, &pids);
    for pid in [pids.root, pids.a, pids.g, pids.b] {
        let s = state(pid);
        assert!(
            matches!(s, Some('S') | Some('R')),
            "process {pid} is {s:?} after --leave-running"
        );
    }
    assert_eq!(state(pids.zombie), Some('Z'));
    assert!(p.exited().is_none());
    p.kill();
}

#[test]
fn no_children_refuses_a_parent_by_name() {
    let dir = TestDir::new("tree_nochildren");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree();
    let _kill = kill_tree_later(pids.root);
    let out = run(
        Command::new(kckpt())
            .args(["dump", "--no-children", "-p", &pids.root.to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert_refused("--no-children", &out, Some(1), &["child process"]);
    assert!(!image.exists());
    assert!(matches!(state(pids.root), Some('S') | Some('R')));
    p.kill();
}

#[test]
fn a_single_process_has_no_tree_notes() {
    let dir = TestDir::new("tree_single");
    let image = dir.join("one.kckpt");
    counter_dumped(prog::COUNTER_PIE, &image, 2);
    let bytes = fs::read(&image).unwrap();
    let v = view(&bytes);
    assert!(v.tree.is_none() && v.tree_procs.is_empty());
}

const TREE_SHARE: &str = env!("KCKPT_PROG_TREE_SHARE");

/// One line of `tree_share`: name, pid and two numbers (descriptors).
#[derive(Clone, Copy, Debug)]
struct Said {
    pid: i32,
    a: i32,
}

/// Start `tree_share MODE ARGS...` and read its lines up to `ready`.
fn start_share(args: &[&str]) -> (Proc, Vec<(String, Said)>) {
    let mut p = Proc::start(TREE_SHARE, args);
    let mut said = Vec::new();
    loop {
        let line = p.line(LINE_TIMEOUT);
        if line == "ready" {
            break;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let [name, pid, a, _b] = w.as_slice() else {
            p.fail(&format!("unexpected line {line:?}"));
        };
        said.push((
            (*name).to_owned(),
            Said {
                pid: pid.parse().unwrap(),
                a: a.parse().unwrap(),
            },
        ));
    }
    (p, said)
}

fn said<'a>(all: &'a [(String, Said)], name: &str) -> &'a Said {
    &all.iter().find(|(n, _)| n == name).expect(name).1
}

/// The image's tree tables and each process's descriptor records, by pid.
struct TreeView {
    procs: Vec<TreeProcRecord>,
    slots: Vec<kckpt_image::tree::TreeSlotRecord>,
    uses: Vec<kckpt_image::tree::TreeUseRecord>,
    fds: HashMap<u32, Vec<kckpt_image::records::FdRecord>>,
    bytes: Vec<u8>,
}

fn tree_view(image: &Path) -> TreeView {
    let bytes = fs::read(image).expect("read the image");
    let v = view(&bytes);
    let procs: Vec<TreeProcRecord> = v.tree_procs.iter().collect();
    let slots = v.tree_slots.iter().collect();
    let uses = v.tree_uses.iter().collect();
    let mut fds = HashMap::new();
    fds.insert(v.header.pid, v.fds.iter().collect());
    for p in procs.iter().filter(|p| p.image_len > 0) {
        let sub = &bytes[p.image_offset as usize..(p.image_offset + p.image_len) as usize];
        fds.insert(p.pid, view(sub).fds.iter().collect());
    }
    TreeView {
        procs,
        slots,
        uses,
        fds,
        bytes,
    }
}

impl TreeView {
    fn index(&self, pid: i32) -> u32 {
        self.procs
            .iter()
            .position(|p| p.pid as i32 == pid)
            .unwrap_or_else(|| panic!("pid {pid} not in {:?}", self.procs)) as u32
    }
    fn fd(&self, pid: i32, fd: i32) -> kckpt_image::records::FdRecord {
        *self.fds[&(pid as u32)]
            .iter()
            .find(|r| r.fd as i32 == fd)
            .unwrap_or_else(|| panic!("no fd {fd} in process {pid}"))
    }
    /// The slot process `pid` uses at `fd` (its record says the same).
    fn slot_of(&self, pid: i32, fd: i32) -> u32 {
        let proc = self.index(pid);
        let u = self
            .uses
            .iter()
            .find(|u| u.proc == proc && u.fd as i32 == fd)
            .unwrap_or_else(|| panic!("no use of fd {fd} by {pid}: {:?}", self.uses));
        let r = self.fd(pid, fd);
        assert_eq!(r.kind, kckpt_image::tree::TREE_SHARED_FD_KIND, "{r:?}");
        assert_eq!(r.args[0], u64::from(u.slot));
        u.slot
    }
}

#[test]
fn a_pipe_between_parent_and_child_keeps_its_bytes() {
    use kckpt_image::tree::slot_kind;
    let dir = TestDir::new("tree_pipe");
    let image = dir.join("tree.kckpt");
    let (mut p, all) = start_share(&["pipe"]);
    let _kill = kill_tree_later(p.pid());
    let (root, child) = (*said(&all, "root"), *said(&all, "child"));
    dump(root.pid, &image, true);
    let t = tree_view(&image);
    assert_eq!(t.slots.len(), 2, "{:?}", t.slots);
    let r = t.slot_of(root.pid, root.a) as usize;
    let w = t.slot_of(child.pid, child.a) as usize;
    let (rs, ws) = (t.slots[r], t.slots[w]);
    assert_eq!(rs.kind, slot_kind::PIPE_READ);
    assert_eq!(ws.kind, slot_kind::PIPE_WRITE);
    assert_eq!((rs.peer as usize, ws.peer as usize), (w, r));
    assert_eq!((rs.holder, ws.holder), (0, 0), "the root holds the pipe");
    assert!(rs.pipe_size >= 4096);
    let data = &t.bytes[rs.data_offset as usize..(rs.data_offset + rs.data_len) as usize];
    assert_eq!(data, b"in-flight");
    // Nothing was consumed: the root still reads the bytes.
    p.write_stdin("go\n");
    assert_eq!(p.line(LINE_TIMEOUT), "got in-flight");
    p.kill();
}

#[test]
fn a_file_opened_before_fork_is_held_by_the_parent() {
    use kckpt_image::tree::slot_kind;
    let dir = TestDir::new("tree_file");
    let image = dir.join("tree.kckpt");
    let data = dir.join("shared.txt");
    let (mut p, all) = start_share(&["file", data.to_str().unwrap()]);
    let _kill = kill_tree_later(p.pid());
    let (root, child) = (*said(&all, "root"), *said(&all, "child"));
    dump(root.pid, &image, false);
    p.wait_exit(Duration::from_secs(10));
    let t = tree_view(&image);
    assert_eq!(t.slots.len(), 1, "{:?}", t.slots);
    let s = t.slots[0];
    assert_eq!(s.kind, slot_kind::HOLDER_FD);
    assert_eq!((s.holder, s.holder_fd as i32), (0, root.a));
    // The holder's own record is the file; the child's is the slot, with
    // the shared offset for information.
    let own = t.fd(root.pid, root.a);
    assert_eq!(own.kind, kckpt_image::records::fd_kind::FILE);
    assert_eq!(own.pos, 5);
    assert_eq!(t.slot_of(child.pid, child.a), 0);
    assert_eq!(t.fd(child.pid, child.a).pos, 5);
    assert!(t.uses.iter().all(|u| u.proc != 0), "{:?}", t.uses);
}

#[test]
fn a_pipe_between_siblings_is_held_by_their_parent() {
    use kckpt_image::tree::slot_kind;
    let dir = TestDir::new("tree_siblings");
    let image = dir.join("tree.kckpt");
    let (mut p, all) = start_share(&["siblings"]);
    let _kill = kill_tree_later(p.pid());
    let (root, a, b) = (*said(&all, "root"), *said(&all, "a"), *said(&all, "b"));
    dump(root.pid, &image, false);
    p.wait_exit(Duration::from_secs(10));
    let t = tree_view(&image);
    assert_eq!(t.slots.len(), 2, "{:?}", t.slots);
    let w = t.slot_of(a.pid, a.a) as usize;
    let r = t.slot_of(b.pid, b.a) as usize;
    assert_eq!(t.slots[w].kind, slot_kind::PIPE_WRITE);
    assert_eq!(t.slots[r].kind, slot_kind::PIPE_READ);
    assert_eq!((t.slots[r].holder, t.slots[w].holder), (0, 0));
    let s = t.slots[r];
    assert_eq!(
        &t.bytes[s.data_offset as usize..(s.data_offset + s.data_len) as usize],
        b"xyz"
    );
    assert!(
        t.fds[&(root.pid as u32)]
            .iter()
            .all(|f| f.kind != kckpt_image::tree::TREE_SHARED_FD_KIND),
        "the root uses no slot"
    );
}

#[test]
fn a_file_shared_by_siblings_only_is_dumped_as_a_restorer_slot() {
    // (1.5) Siblings share a file their parent does not hold: the restorer
    // opens it (a FILE slot) and it reaches them through their parent.
    let dir = TestDir::new("tree_sibfile");
    let image = dir.join("tree.kckpt");
    let data = dir.join("shared.txt");
    let (mut p, all) = start_share(&["sibfile", data.to_str().unwrap()]);
    let _kill = kill_tree_later(p.pid());
    let root = *said(&all, "root");
    let out = dump_raw(root.pid, &image, true);
    assert!(out.status.success(), "{}", show(&out));
    let t = tree_view(&image);
    assert!(
        t.slots.iter().any(|s| s.kind == 7 && s.holder == u32::MAX),
        "a FILE slot held by the restorer: {:?}",
        t.slots
    );
    p.kill();
}

/// `kckpt dump ARGS... -o IMAGE`, whatever its outcome.
fn dump_args(args: &[&str], image: &Path) -> std::process::Output {
    run(
        Command::new(kckpt())
            .arg("dump")
            .args(args)
            .arg("-o")
            .arg(image),
        DUMP_TIMEOUT,
    )
}

#[test]
fn a_process_group_is_dumped_with_pgid() {
    use kckpt_image::tree::{slot_kind, tree_flags, HOLDER_RESTORER};
    let dir = TestDir::new("tree_pgid");
    let image = dir.join("job.kckpt");
    let (mut p, all) = start_share(&["pipeline"]);
    let _kill = kill_tree_later(p.pid());
    let (root, a, b) = (*said(&all, "root"), *said(&all, "a"), *said(&all, "b"));
    let out = dump_args(&["--pgid", &a.pid.to_string()], &image);
    assert!(out.status.success(), "{}", show(&out));
    // Both stages are gone; their parent, outside the group, is not.
    assert!(gone_or_zombie(a.pid) && gone_or_zombie(b.pid));
    assert!(matches!(state(root.pid), Some('S') | Some('R')));
    let t = tree_view(&image);
    let bytes = fs::read(&image).unwrap();
    let tree = view(&bytes).tree.unwrap();
    assert_eq!(tree.flags, tree_flags::PGID);
    assert_eq!(t.procs.len(), 2);
    assert_eq!(t.index(a.pid), 0, "the group leader first");
    assert_eq!(t.index(b.pid), 1);
    assert!(t.procs.iter().all(|p| p.parent == NO_PARENT));
    assert!(t.procs.iter().all(|p| p.pgid as i32 == a.pid));
    assert_eq!(tree.status_proc, 1, "the last stage's status");
    let w = t.slot_of(a.pid, a.a) as usize;
    let r = t.slot_of(b.pid, b.a) as usize;
    assert_eq!(t.slots[w].kind, slot_kind::PIPE_WRITE);
    assert_eq!(t.slots[r].kind, slot_kind::PIPE_READ);
    assert_eq!(t.slots[r].holder, HOLDER_RESTORER);
    let s = t.slots[r];
    assert_eq!(
        &t.bytes[s.data_offset as usize..(s.data_offset + s.data_len) as usize],
        b"xyz"
    );
    p.kill();
}

/// `pid` is reaped or a zombie (its parent is alive and did not wait).
fn gone_or_zombie(pid: i32) -> bool {
    eventually(Duration::from_secs(10), || {
        matches!(state(pid), None | Some('Z'))
    })
}

#[test]
fn a_session_is_dumped_with_session() {
    use kckpt_image::tree::tree_flags;
    let dir = TestDir::new("tree_session");
    let image = dir.join("session.kckpt");
    let (mut p, all) = start_share(&["session"]);
    let _kill = kill_tree_later(p.pid());
    let (root, child) = (*said(&all, "root"), *said(&all, "child"));
    let out = dump_args(
        &["--session", &root.pid.to_string(), "--leave-running"],
        &image,
    );
    assert!(out.status.success(), "{}", show(&out));
    let t = tree_view(&image);
    let bytes = fs::read(&image).unwrap();
    let tree = view(&bytes).tree.unwrap();
    assert_eq!(tree.flags, tree_flags::SESSION);
    assert_eq!(tree.status_proc, 0);
    assert_eq!((t.index(root.pid), t.index(child.pid)), (0, 1));
    assert!(t.procs.iter().all(|p| p.sid as i32 == root.pid));
    p.kill();
}

#[test]
fn a_session_not_inherited_from_the_parent_is_refused() {
    let dir = TestDir::new("tree_badsession");
    let image = dir.join("session.kckpt");
    let (mut p, all) = start_share(&["badsession"]);
    let _kill = kill_tree_later(p.pid());
    let (root, child) = (*said(&all, "root"), *said(&all, "child"));
    let grandchild = child.a;
    for args in [
        vec!["--session".to_owned(), root.pid.to_string()],
        vec!["-p".to_owned(), root.pid.to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = dump_args(&args, &image);
        refused_with_all(
            "a session changed after fork",
            &out,
            &[
                &format!("cannot dump pid {grandchild}:"),
                &format!("session {}", root.pid),
                "setsid",
            ],
        );
        assert!(!image.exists());
    }
    for pid in [root.pid, child.pid, grandchild] {
        assert!(matches!(state(pid), Some('S') | Some('R')), "{pid}");
    }
    p.kill();
}

#[test]
fn an_empty_group_is_refused() {
    let dir = TestDir::new("tree_nogroup");
    let image = dir.join("none.kckpt");
    // Pid 0 of no group; a pid far above pid_max.
    for id in ["0", "2147483600"] {
        let out = dump_args(&["--pgid", id], &image);
        assert_refused("an empty group", &out, Some(1), &["no process"]);
    }
}

#[test]
fn an_unprivileged_user_dumps_its_own_tree() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    require_tool("setpriv");
    let dir = TestDir::new("tree_nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let image = dir.join("tree.kckpt");
    let mut p = Proc::spawn("tree_share", command_as(&NOBODY, TREE_SHARE).arg("pipe"));
    let _kill = kill_tree_later(p.pid());
    let mut said = Vec::new();
    loop {
        let line = p.line(LINE_TIMEOUT);
        if line == "ready" {
            break;
        }
        said.push(line);
    }
    let pid_of = |name: &str| -> i32 {
        let l = said.iter().find(|l| l.starts_with(name)).expect(name);
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let (root, child) = (pid_of("root "), pid_of("child "));
    let out = run(
        kckpt_as(&NOBODY)
            .args(["dump", "-p", &root.to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(gone(child));
    p.wait_exit(Duration::from_secs(10));
    let t = tree_view(&image);
    assert_eq!(t.procs.len(), 2, "{:?} {said:?}", t.procs);
    assert_eq!(t.slots.len(), 2);
    assert!(fs::metadata(&image).unwrap().uid() == 65534);
}

#[test]
fn a_vfork_child_is_refused_by_name() {
    let dir = TestDir::new("tree_vfork");
    let image = dir.join("tree.kckpt");
    let (mut p, all) = start_share(&["vfork"]);
    let _kill = kill_tree_later(p.pid());
    let (root, child) = (*said(&all, "root"), *said(&all, "child"));
    let out = dump_raw(root.pid, &image, false);
    refused_with_all(
        "a vfork child",
        &out,
        &[
            &format!("cannot dump pid {}:", child.pid),
            "shares its memory",
            &format!("parent {}", root.pid),
        ],
    );
    assert!(!image.exists());
    assert!(state(child.pid).is_some_and(|s| s != 'Z'));
    p.kill();
}

#[test]
fn a_named_pipe_opened_by_two_processes_comes_back_with_its_bytes_once() {
    let dir = TestDir::new("tree_fifo");
    let image = dir.join("tree.kckpt");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let (mut p, all) = start_share(&["fifo", fifo.to_str().unwrap()]);
    let _kill = kill_tree_later(p.pid());
    let (root, child) = (*said(&all, "root"), *said(&all, "child"));
    let out = dump_raw(root.pid, &image, false);
    assert!(out.status.success(), "{}", show(&out));
    p.wait_exit(LINE_TIMEOUT);
    // One FIFO slot (path and bytes) and one FIFO_OPEN per description.
    let info = info_json(&image);
    let kinds: Vec<&str> = info["tree"]["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["fifo", "fifo_open", "fifo_open"], "{info}");

    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "got in-fifo", "{}", r.stderr());
    assert_eq!(r.line(LINE_TIMEOUT), "empty", "the bytes came back twice");
    // The child's description is its own: the root's O_NONBLOCK is not
    // on it.
    let flags = |pid: i32, fd: i32| {
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
        let line = info
            .lines()
            .find(|l| l.starts_with("flags:"))
            .expect("flags");
        u32::from_str_radix(line[6..].trim(), 8).expect("octal")
    };
    assert_ne!(
        flags(root.pid, root.a) & 0o4000,
        0,
        "the root's description"
    );
    assert_eq!(
        flags(child.pid, child.a) & 0o4000,
        0,
        "the child's description"
    );
    r.kill();
}
