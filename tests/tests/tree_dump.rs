//! `kckpt dump -p PID` of a process tree (issue 9): the process and all
//! its descendants in one image (format 1.4 tree notes, sub-images inside
//! the file), all frozen, then all killed or all resumed together;
//! `--no-children` keeps the single-process behaviour.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use kckpt_image::checksum::{check_image, crc32c, note_spans};
use kckpt_image::read::{note_segment, parse_elf_header, ImageView, EHDR_SIZE};
use kckpt_image::records::{NOTE_OWNER, NT_KCKPT_CHECKSUMS};
use kckpt_image::tree::{proc_state, TreeProcRecord, NO_PARENT};

const TREE_BASIC: &str = env!("KCKPT_PROG_TREE_BASIC");

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

/// Wait until `pid` is gone (reaped).
fn gone(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_tree_is_dumped_and_killed() {
    let dir = TestDir::new("tree_kill");
    let image = dir.join("tree.kckpt");
    let (mut p, pids) = start_tree();
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
