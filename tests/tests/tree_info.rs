//! `kckpt info`, `kckpt info --pid`, `kckpt extract` and gdb on process-tree
//! images (format 1.4).
//!
//! The tree images are assembled here from two ordinary single-process
//! dumps of `counter`: the second image is appended (64 KiB aligned) to the
//! first one's data, a few bytes of pipe data follow it, and the first
//! image's notes get the four tree notes: process 0 the first counter,
//! process 1 the second (a sub-image, whose descriptors 0-2 that can be
//! are made `TREE_SHARED`), process 2 a zombie that exited with status 3;
//! slot 0 fd 1 of process 0, slot 1 a pipe held by the restorer with 5
//! bytes in flight. So these tests do not depend on the dump of trees.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use kckpt_image::checksum::{crc32c, note_spans};
use kckpt_image::read::{
    note_segment, parse_elf_header, program_headers, read_record, record_bytes, EHDR_SIZE, PT_LOAD,
};
use kckpt_image::records::*;
use kckpt_image::tree::*;
use kckpt_image_write::NoteBuf;

use common::*;

/// Size of an ELF64 program header.
const PHDR_SIZE: usize = 56;
/// Pid of the zombie of the assembled trees (not a live process's: any
/// unique value > 1 will do in a record).
const ZOMBIE_PID: u32 = 3_999_999;
/// The pipe bytes in flight of slot 1.
const PIPE_DATA: &[u8] = b"hello";

/// The parts of an image in memory.
struct Parsed {
    bytes: Vec<u8>,
    phoff: usize,
    phdrs_len: usize,
    notes_at: usize,
    notes_len: usize,
}

fn parse(bytes: Vec<u8>) -> Parsed {
    let len = bytes.len() as u64;
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let elf = parse_elf_header(&bytes, len, machine).expect("ELF header");
    let phoff = elf.phoff as usize;
    let phdrs_len = elf.phdrs_size();
    let (off, size) = note_segment(&bytes[phoff..phoff + phdrs_len], len).expect("notes");
    Parsed {
        bytes,
        phoff,
        phdrs_len,
        notes_at: off as usize,
        notes_len: size as usize,
    }
}

impl Parsed {
    fn notes(&self) -> &[u8] {
        &self.bytes[self.notes_at..self.notes_at + self.notes_len]
    }

    fn desc(&self, kind: u32) -> Option<(usize, usize)> {
        let base = self.notes().as_ptr() as usize;
        note_spans(self.notes())
            .find(|(n, _)| n.is(NOTE_OWNER, kind))
            .map(|(n, _)| {
                (
                    self.notes_at + (n.desc.as_ptr() as usize - base),
                    n.desc.len(),
                )
            })
    }

    fn header(&self) -> ImageHeader {
        let (at, len) = self.desc(NT_KCKPT_HEADER).expect("header note");
        read_record(&self.bytes[at..at + len]).expect("header record")
    }
}

/// Make the descriptors 0-2 of `image` that can be (no data, not a dup,
/// not duplicated) `TREE_SHARED` of slots `[slot for fd 0, 1, 2]`; returns
/// them as (fd, slot).
fn share_fds(image: &mut Parsed, slots: [u32; 3]) -> Vec<(u32, u32)> {
    let (at, len) = image.desc(NT_KCKPT_FDS).expect("fds note");
    let size = std::mem::size_of::<FdRecord>();
    let recs: Vec<FdRecord> = image.bytes[at..at + len]
        .chunks_exact(size)
        .map(|c| read_record(c).unwrap())
        .collect();
    let mut shared = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let duped = recs.iter().any(|o| o.dup_of == r.fd);
        if r.fd > 2 || r.dup_of != FD_NO_DUP || duped || r.data_len > 0 {
            continue;
        }
        let mut n = *r;
        n.kind = TREE_SHARED_FD_KIND;
        n.args = [u64::from(slots[r.fd as usize]), 0, 0, 0];
        n.peer = FD_NO_DUP;
        n.data_offset = 0;
        let o = at + i * size;
        image.bytes[o..o + size].copy_from_slice(record_bytes(&n));
        shared.push((r.fd, slots[r.fd as usize]));
    }
    kckpt_image_write::reseal(&mut image.bytes).expect("reseal sub-image");
    shared
}

/// A tree image assembled from the single-process images `root` and
/// `child` (see the module documentation); returns it and the child's
/// shared descriptors.
fn assemble(root: &Path, child: &Path) -> (Vec<u8>, Vec<(u32, u32)>) {
    let a = parse(fs::read(root).unwrap());
    let mut b = parse(fs::read(child).unwrap());
    let shared = share_fds(&mut b, [1, 0, 0]);
    let b_sum = crc32c({
        let (at, len) = b.desc(NT_KCKPT_CHECKSUMS).expect("checksum note");
        &b.bytes[at..at + len]
    });
    let (ha, hb) = (a.header(), b.header());
    // The root's data, then the sub-image, then the pipe data.
    let mut out = a.bytes[..a.notes_at].to_vec();
    let sub_at = (out.len() as u64).next_multiple_of(SUB_IMAGE_ALIGN);
    out.resize(sub_at as usize, 0);
    out.extend_from_slice(&b.bytes);
    let pipe_at = out.len().next_multiple_of(4096);
    out.resize(pipe_at, 0);
    out.extend_from_slice(PIPE_DATA);
    let mut name = [0u8; 16];
    name[..7].copy_from_slice(b"counter");
    let procs = [
        TreeProcRecord {
            pid: ha.pid,
            parent: NO_PARENT,
            pgid: ha.pid,
            sid: ha.pid,
            exit_signal: 17,
            state: proc_state::LIVE,
            threads: ha.thread_count,
            name,
            ..Default::default()
        },
        TreeProcRecord {
            pid: hb.pid,
            parent: 0,
            pgid: ha.pid,
            sid: ha.pid,
            exit_signal: 17,
            state: proc_state::LIVE,
            threads: hb.thread_count,
            image_offset: sub_at,
            image_len: b.bytes.len() as u64,
            image_sum: b_sum,
            name,
            ..Default::default()
        },
        TreeProcRecord {
            pid: ZOMBIE_PID,
            parent: 0,
            pgid: ha.pid,
            sid: ha.pid,
            exit_signal: 17,
            state: proc_state::ZOMBIE,
            wait_status: 3 << 8,
            name: *b"zombie\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        },
    ];
    let slots = [
        TreeSlotRecord {
            kind: slot_kind::HOLDER_FD,
            holder: 0,
            holder_fd: 1,
            peer: u32::MAX,
            ..Default::default()
        },
        TreeSlotRecord {
            kind: slot_kind::PIPE_READ,
            holder: HOLDER_RESTORER,
            holder_fd: FD_NO_DUP,
            peer: u32::MAX,
            pipe_size: 65536,
            data_offset: pipe_at as u64,
            data_len: PIPE_DATA.len() as u64,
            ..Default::default()
        },
    ];
    let uses: Vec<TreeUseRecord> = shared
        .iter()
        .map(|&(fd, slot)| TreeUseRecord {
            proc: 1,
            fd,
            slot,
            reserved: 0,
        })
        .collect();
    let tree = TreeRecord {
        procs: 3,
        slots: 2,
        slot_base: 1000,
        status_proc: 0,
        ..Default::default()
    };
    let mut extra = NoteBuf::default();
    extra.push_record(NOTE_OWNER, NT_KCKPT_TREE, &tree);
    let table = |recs: Vec<&[u8]>| recs.concat();
    extra.push(
        NOTE_OWNER,
        NT_KCKPT_TREE_PROCS,
        &table(procs.iter().map(record_bytes).collect()),
    );
    extra.push(
        NOTE_OWNER,
        NT_KCKPT_TREE_SLOTS,
        &table(slots.iter().map(record_bytes).collect()),
    );
    extra.push(
        NOTE_OWNER,
        NT_KCKPT_TREE_USES,
        &table(uses.iter().map(record_bytes).collect()),
    );
    // The pipe data is a data region of the tree image (checksummed last).
    let pipe_sum = kckpt_image::checksum::chunk_sum(PIPE_DATA);
    let mut notes = with_notes(a.notes(), extra.as_bytes(), &[pipe_sum]);
    // Notes and program headers after everything, as the writer does.
    let notes_at = out.len().next_multiple_of(8);
    let phoff = (notes_at + notes.len()).next_multiple_of(8);
    let mut phdrs = a.bytes[a.phoff..a.phoff + a.phdrs_len].to_vec();
    let note_entry = program_headers(&phdrs)
        .position(|p| p.p_type == 4)
        .expect("PT_NOTE");
    let e = note_entry * PHDR_SIZE;
    phdrs[e + 8..e + 16].copy_from_slice(&(notes_at as u64).to_le_bytes());
    phdrs[e + 32..e + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    let mut ehdr = a.bytes[..EHDR_SIZE].to_vec();
    ehdr[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
    kckpt_image_write::reseal_parts(&ehdr, &phdrs, &mut notes).expect("reseal tree image");
    out[..EHDR_SIZE].copy_from_slice(&ehdr);
    out.resize(notes_at, 0);
    out.extend_from_slice(&notes);
    out.resize(phoff, 0);
    out.extend_from_slice(&phdrs);
    (out, shared)
}

/// The note segment `notes` with `extra` (encoded notes) before its
/// checksum note, which grows by one note checksum per note added and by
/// the data checksums `data_sums` (appended).
fn with_notes(notes: &[u8], extra: &[u8], data_sums: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sums = None;
    for (n, span) in note_spans(notes) {
        if n.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS) {
            sums = Some(n.desc);
        } else {
            out.extend_from_slice(span);
        }
    }
    let added = note_spans(extra).count();
    out.extend_from_slice(extra);
    let desc = sums.expect("checksum note");
    let mut rec: ChecksumsRecord = read_record(desc).unwrap();
    let data_at = rec.sums_offset as usize + 4 * rec.note_count as usize;
    let data = &desc[data_at..desc.len() - 4];
    rec.note_count += added as u32;
    rec.data_count += data_sums.len() as u32;
    let mut new = record_bytes(&rec).to_vec();
    new.resize(rec.sums_offset as usize + 4 * rec.note_count as usize, 0);
    new.extend_from_slice(data);
    for s in data_sums {
        new.extend_from_slice(&s.to_le_bytes());
    }
    new.extend_from_slice(&[0; 4]);
    let mut last = NoteBuf::default();
    last.push(NOTE_OWNER, NT_KCKPT_CHECKSUMS, &new);
    out.extend_from_slice(last.as_bytes());
    out
}

/// Two counters dumped, and the tree image made of them in `dir`:
/// (tree path, root pid, child pid, child's shared fds).
fn tree_image(dir: &TestDir) -> (std::path::PathBuf, u32, u32, Vec<(u32, u32)>) {
    let (a, b) = (dir.join("a.kckpt"), dir.join("b.kckpt"));
    counter_dumped(prog::COUNTER_PIE, &a, 2);
    counter_dumped(prog::COUNTER_PIE, &b, 3);
    let (tree, shared) = assemble(&a, &b);
    assert!(
        !shared.is_empty(),
        "no descriptor 0-2 of counter could be shared"
    );
    let path = dir.join("tree.kckpt");
    fs::write(&path, tree).unwrap();
    let pid = |p: &Path| parse(fs::read(p).unwrap()).header().pid;
    (path.clone(), pid(&a), pid(&b), shared)
}

fn kckpt_out(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd = Command::new(kckpt());
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    run(&mut cmd, CMD_TIMEOUT)
}

fn ok_text(what: &str, out: &Output) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", show(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// gdb's backtrace of `image` (run as `prog`) has a frame in main.
fn gdb_sees_main(prog: &str, image: &Path) {
    let gdb = require_tool("gdb");
    let out = run(
        Command::new(gdb)
            .args(["-nx", "-batch", "-ex", "bt"])
            .arg(prog)
            .arg(image),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('#') && (l.contains(" main (") || l.contains(" in main "))),
        "gdb shows no frame in main for {}:\n{}",
        image.display(),
        show(&out)
    );
}

#[test]
fn info_lists_the_tree() {
    let dir = TestDir::new("tree-info");
    let (tree, root, child, shared) = tree_image(&dir);
    let text = ok_text("kckpt info", &kckpt_out(&["info"], &[&tree]));
    assert!(
        text.contains("tree:           3 processes")
            && text.contains(&format!("status of pid {root}")),
        "{text}"
    );
    let row = |pid: u32| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&pid.to_string()))
            .unwrap_or_else(|| panic!("no row for pid {pid}:\n{text}"))
            .to_owned()
    };
    let child_row = row(child);
    assert!(
        child_row.contains(&root.to_string()) && child_row.contains("live"),
        "{child_row}"
    );
    assert!(row(ZOMBIE_PID).contains("zombie, exit status 3"), "{text}");
    let users: Vec<String> = shared
        .iter()
        .filter(|s| s.1 == 0)
        .map(|s| format!("{child}:{}", s.0))
        .collect();
    let slot0 = text
        .lines()
        .find(|l| l.trim_start().starts_with("slot 0"))
        .unwrap_or_else(|| panic!("no slot 0 line:\n{text}"));
    assert!(slot0.contains(&format!("held by pid {root}")), "{slot0}");
    for u in &users {
        assert!(slot0.contains(u.as_str()), "{slot0} lacks {u}");
    }
    assert!(
        text.contains("held by the restorer") && text.contains("5 bytes in flight"),
        "{text}"
    );
    // The details are the root's.
    assert!(
        text.contains(&format!("\npid:            {root}\n")),
        "{text}"
    );

    let v = info_json(&tree);
    let t = &v["tree"];
    let procs = t["processes"].as_array().expect("tree.processes");
    let pids: Vec<u64> = procs.iter().map(|p| p["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids, [root, child, ZOMBIE_PID].map(u64::from));
    assert_eq!(procs[1]["ppid"], root);
    assert_eq!(procs[1]["state"], "live");
    assert!(procs[1]["image_len"].as_u64().unwrap() > 0);
    assert_eq!(procs[2]["state"], "zombie");
    assert_eq!(procs[2]["wait_status"], 3 << 8);
    assert_eq!(t["status_pid"], root);
    assert_eq!(t["slots"][1]["kind"], "pipe_read");
    assert_eq!(t["slots"][1]["holder"], serde_json::Value::Null);
    assert_eq!(v["pid"], root);
}

#[test]
fn info_pid_shows_a_sub_image() {
    let dir = TestDir::new("tree-info-pid");
    let (tree, root, child, shared) = tree_image(&dir);
    let pid = child.to_string();
    let text = ok_text(
        "kckpt info --pid",
        &kckpt_out(&["info", "--pid", &pid], &[&tree]),
    );
    assert!(
        text.contains(&format!("\npid:            {child}\n")),
        "{text}"
    );
    assert!(
        text.contains("sub-image:      process 1 of the tree"),
        "{text}"
    );
    let out = kckpt_out(&["info", "--json", "--pid", &pid], &[&tree]);
    let v: serde_json::Value = serde_json::from_str(&ok_text("info --json --pid", &out)).unwrap();
    assert_eq!(v["pid"], child);
    assert_eq!(v["sub_image"]["index"], 1);
    // Its shared descriptors are named as such.
    let fds = v["files"]["fds"].as_array().unwrap();
    for (fd, slot) in &shared {
        let f = fds.iter().find(|f| f["fd"] == *fd).unwrap();
        assert_eq!(f["kind"], "tree shared");
        assert_eq!(f["slot"], *slot);
    }
    // --pid of the root: the root's details; of a single-process image:
    // its own pid only.
    let out = kckpt_out(&["info", "--pid", &root.to_string()], &[&tree]);
    assert!(ok_text("info --pid root", &out).contains(&format!("\npid:            {root}\n")));
    let b = dir.join("b.kckpt");
    ok_text(
        "info --pid own",
        &kckpt_out(&["info", "--pid", &pid], &[&b]),
    );
    let out = kckpt_out(&["info", "--pid", &root.to_string()], &[&b]);
    assert_refused(
        "info --pid on a single image",
        &out,
        Some(1),
        &["single-process"],
    );
    let out = kckpt_out(&["info", "--pid", &ZOMBIE_PID.to_string()], &[&tree]);
    assert_refused("info --pid zombie", &out, Some(1), &["zombie"]);
    let out = kckpt_out(&["info", "--pid", "1"], &[&tree]);
    assert_refused(
        "info --pid absent",
        &out,
        Some(1),
        &["no process with pid 1"],
    );
}

#[test]
fn verify_covers_every_sub_image() {
    let dir = TestDir::new("tree-verify");
    let (tree, _root, child, _) = tree_image(&dir);
    ok_text("info --verify", &kckpt_out(&["info", "--verify"], &[&tree]));
    let good = fs::read(&tree).unwrap();
    let v = info_json(&tree);
    let sub_at = v["tree"]["processes"][1]["image_offset"].as_u64().unwrap() as usize;
    // A byte of the child's memory: only --verify sees it.
    let b = parse(fs::read(dir.join("b.kckpt")).unwrap());
    let load = program_headers(&b.bytes[b.phoff..b.phoff + b.phdrs_len])
        .find(|p| p.p_type == PT_LOAD && p.p_filesz > 0)
        .expect("a stored memory area");
    let mut bad = good.clone();
    bad[sub_at + load.p_offset as usize] ^= 0x40;
    let path = dir.join("bad-data.kckpt");
    fs::write(&path, &bad).unwrap();
    ok_text("info without --verify", &kckpt_out(&["info"], &[&path]));
    let out = kckpt_out(&["info", "--verify"], &[&path]);
    assert_refused(
        "sub-image data",
        &out,
        Some(1),
        &[&format!("(process 1, pid {child})")],
    );
    // A byte of the pipe's bytes in flight: --verify names the slot's
    // descriptor.
    let pipe_at = v["tree"]["slots"][1]["data_offset"].as_u64().unwrap() as usize;
    let mut bad = good.clone();
    bad[pipe_at] ^= 0x01;
    fs::write(&path, &bad).unwrap();
    ok_text("info without --verify", &kckpt_out(&["info"], &[&path]));
    let out = kckpt_out(&["info", "--verify"], &[&path]);
    assert_refused("pipe data", &out, Some(1), &["data of fd 1001"]);
    // A byte of the child's notes: refused at once.
    let mut bad = good.clone();
    bad[sub_at + b.notes_at + 40] ^= 0x01;
    fs::write(&path, &bad).unwrap();
    let out = kckpt_out(&["info"], &[&path]);
    assert_refused("sub-image metadata", &out, Some(1), &["process 1"]);
    // A sub-image resealed after a change: its image_sum no longer matches.
    let mut bad = good.clone();
    let sub_len = b.bytes.len();
    let mut sub = bad[sub_at..sub_at + sub_len].to_vec();
    let h = b.desc(NT_KCKPT_HEADER).unwrap().0;
    sub[h + std::mem::offset_of!(ImageHeader, created_unix)] ^= 0x01;
    kckpt_image_write::reseal(&mut sub).unwrap();
    bad[sub_at..sub_at + sub_len].copy_from_slice(&sub);
    fs::write(&path, &bad).unwrap();
    let out = kckpt_out(&["info"], &[&path]);
    assert_refused("image_sum", &out, Some(1), &["image_sum"]);
}

#[test]
fn extract_a_child_for_gdb_and_info() {
    let dir = TestDir::new("tree-extract-child");
    let (tree, _root, child, shared) = tree_image(&dir);
    let out_path = dir.join("child.core");
    let out = kckpt_out(
        &["extract", "--pid", &child.to_string()],
        &[&tree, &out_path],
    );
    ok_text("extract child", &out);
    // The sub-image as it is in the tree.
    let v = info_json(&tree);
    let p = &v["tree"]["processes"][1];
    let (at, len) = (
        p["image_offset"].as_u64().unwrap() as usize,
        p["image_len"].as_u64().unwrap() as usize,
    );
    let extracted = fs::read(&out_path).unwrap();
    assert_eq!(extracted, fs::read(&tree).unwrap()[at..at + len]);
    gdb_sees_main(prog::COUNTER_PIE, &out_path);
    let text = ok_text(
        "info of the extracted child",
        &kckpt_out(&["info"], &[&out_path]),
    );
    assert!(
        text.contains(&format!("\npid:            {child}\n")),
        "{text}"
    );
    let named: Vec<String> = shared
        .iter()
        .map(|(fd, slot)| format!("fd {fd} (slot {slot})"))
        .collect();
    let line = text
        .lines()
        .find(|l| l.starts_with("tree:"))
        .unwrap_or_else(|| panic!("no tree line:\n{text}"));
    assert!(line.contains("extracted from a process tree"), "{line}");
    for n in &named {
        assert!(line.contains(n.as_str()), "{line} lacks {n}");
    }
    // As nobody, to a directory nobody may write: one line.
    require_tool("setpriv");
    let out = run(
        kckpt_as(&NOBODY)
            .args(["extract", "--pid", &child.to_string()])
            .arg(&tree)
            .arg(dir.join("nobody.core")),
        CMD_TIMEOUT,
    );
    assert_refused("extract as nobody", &out, Some(1), &["permission denied"]);
    // As nobody, an image it may read, to a directory it may write: works.
    use std::os::unix::fs::PermissionsExt;
    let open = dir.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&tree, fs::Permissions::from_mode(0o644)).unwrap();
    let mine = open.join("child.core");
    let out = run(
        kckpt_as(&NOBODY)
            .args(["extract", "--pid", &child.to_string()])
            .arg(&tree)
            .arg(&mine),
        CMD_TIMEOUT,
    );
    ok_text("extract as nobody", &out);
    assert_eq!(fs::read(&mine).unwrap(), extracted);
    let out = run(
        kckpt_as(&NOBODY)
            .args(["info", "--verify", "--pid", &child.to_string()])
            .arg(&tree),
        CMD_TIMEOUT,
    );
    assert!(ok_text("info --pid as nobody", &out).contains(&format!("\npid:            {child}\n")));
}

#[test]
fn extract_the_root_drops_the_tree() {
    let dir = TestDir::new("tree-extract-root");
    let (tree, root, _child, _) = tree_image(&dir);
    let out_path = dir.join("root.core");
    let out = kckpt_out(
        &["extract", "--pid", &root.to_string()],
        &[&tree, &out_path],
    );
    ok_text("extract root", &out);
    let v = info_json(&out_path);
    assert_eq!(v["pid"], root);
    assert_eq!(v["tree"], serde_json::Value::Null, "tree notes left: {v}");
    // No tree note, and neither the sub-image nor the pipe data.
    let img = parse(fs::read(&out_path).unwrap());
    for kind in [
        NT_KCKPT_TREE,
        NT_KCKPT_TREE_PROCS,
        NT_KCKPT_TREE_SLOTS,
        NT_KCKPT_TREE_USES,
    ] {
        assert!(img.desc(kind).is_none(), "note {kind:#x} left");
    }
    let b = fs::read(dir.join("b.kckpt")).unwrap();
    let sub_at = info_json(&tree)["tree"]["processes"][1]["image_offset"]
        .as_u64()
        .unwrap() as usize;
    let head = &b[..4096];
    assert!(
        img.bytes.get(sub_at..sub_at + 4096) != Some(head),
        "the sub-image is still there"
    );
    assert!(
        !img.bytes.windows(PIPE_DATA.len()).any(|w| w == PIPE_DATA),
        "the pipe data is still there"
    );
    ok_text(
        "info --verify root",
        &kckpt_out(&["info", "--verify"], &[&out_path]),
    );
    gdb_sees_main(prog::COUNTER_PIE, &out_path);
}

#[test]
fn extract_refusals_are_one_line() {
    let dir = TestDir::new("tree-extract-refusals");
    let (tree, _root, child, _) = tree_image(&dir);
    let out_path = dir.join("x.core");
    let out = kckpt_out(
        &["extract", "--pid", &ZOMBIE_PID.to_string()],
        &[&tree, &out_path],
    );
    assert_refused(
        "extract a zombie",
        &out,
        Some(1),
        &["zombie", "exit status 3"],
    );
    let out = kckpt_out(&["extract", "--pid", "1"], &[&tree, &out_path]);
    assert_refused("extract pid 1", &out, Some(1), &["no process with pid 1"]);
    assert!(!out_path.exists(), "a refused extract left a file");
    // A single-process image: its own pid is a copy, another refused.
    let b = dir.join("b.kckpt");
    let out = kckpt_out(&["extract", "--pid", &child.to_string()], &[&b, &out_path]);
    ok_text("extract own pid", &out);
    assert_eq!(fs::read(&out_path).unwrap(), fs::read(&b).unwrap());
    let out = kckpt_out(&["extract", "--pid", "1"], &[&b, &dir.join("y.core")]);
    assert_refused(
        "extract other pid",
        &out,
        Some(1),
        &["single-process image"],
    );
}

/// The pids `tree_basic` (the dump tests' tree) reports, by name: root,
/// zombie, a, g, b; once all are there and the root said `ready`.
fn start_tree_basic() -> (Proc, std::collections::HashMap<String, u32>) {
    let mut p = Proc::start(env!("KCKPT_PROG_TREE_BASIC"), &[]);
    let mut seen = std::collections::HashMap::new();
    let mut ready = false;
    while !(ready && ["a", "g", "b"].iter().all(|k| seen.contains_key(*k))) {
        let line = p.line(LINE_TIMEOUT);
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["ready"] => ready = true,
            ["root", r, "zombie", z] => {
                seen.insert("root".to_owned(), r.parse().unwrap());
                seen.insert("zombie".to_owned(), z.parse().unwrap());
            }
            [name, pid] => {
                seen.insert((*name).to_owned(), pid.parse().unwrap());
            }
            _ => p.fail(&format!("unexpected line {line:?}")),
        }
    }
    (p, seen)
}

#[test]
fn a_dumped_tree_is_listed_and_extracted() {
    let dir = TestDir::new("tree-info-dumped");
    let (mut p, pids) = start_tree_basic();
    let image = dir.join("tree.kckpt");
    dump_kills(&mut p, &image);
    let v = info_json(&image);
    let procs = v["tree"]["processes"].as_array().expect("tree.processes");
    let listed: Vec<u64> = procs.iter().map(|p| p["pid"].as_u64().unwrap()).collect();
    for name in ["root", "zombie", "a", "g", "b"] {
        assert!(
            listed.contains(&u64::from(pids[name])),
            "{name} not listed: {v}"
        );
    }
    let by_pid = |name: &str| {
        procs
            .iter()
            .find(|p| p["pid"] == pids[name])
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(by_pid("g")["ppid"], pids["a"]);
    assert_eq!(by_pid("zombie")["exit"], "exit status 7");
    assert_eq!(by_pid("b")["pgid"], pids["b"]);
    let text = ok_text(
        "info --verify",
        &kckpt_out(&["info", "--verify"], &[&image]),
    );
    assert!(text.contains("tree:           5 processes"), "{text}");
    // The grandchild alone, for gdb and kckpt info.
    let g = dir.join("g.core");
    let out = kckpt_out(&["extract", "--pid", &pids["g"].to_string()], &[&image, &g]);
    ok_text("extract g", &out);
    let gv = info_json(&g);
    assert_eq!(gv["pid"], pids["g"]);
    gdb_sees_main(env!("KCKPT_PROG_TREE_BASIC"), &g);
    // The root alone.
    let r = dir.join("root.core");
    let out = kckpt_out(
        &["extract", "--pid", &pids["root"].to_string()],
        &[&image, &r],
    );
    ok_text("extract root", &out);
    assert_eq!(info_json(&r)["tree"], serde_json::Value::Null);
    assert!(fs::metadata(&r).unwrap().len() < fs::metadata(&image).unwrap().len());
    gdb_sees_main(env!("KCKPT_PROG_TREE_BASIC"), &r);
    let out = kckpt_out(
        &["extract", "--pid", &pids["zombie"].to_string()],
        &[&image, &dir.join("z.core")],
    );
    assert_refused(
        "extract the zombie",
        &out,
        Some(1),
        &["zombie", "exit status 7"],
    );
}

#[test]
fn a_dumped_pipe_is_listed_and_its_ends_named_when_extracted() {
    let dir = TestDir::new("tree-info-pipe");
    // tree_share pipe: the root holds the read end (fd R), its child the
    // write end (fd W) and wrote "in-flight" into it.
    let mut p = Proc::start(env!("KCKPT_PROG_TREE_SHARE"), &["pipe"]);
    let mut said = std::collections::HashMap::new();
    loop {
        let line = p.line(LINE_TIMEOUT);
        if line == "ready" {
            break;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let [name, pid, fd, _] = w.as_slice() else {
            p.fail(&format!("unexpected line {line:?}"));
        };
        said.insert(
            (*name).to_owned(),
            (pid.parse::<u32>().unwrap(), fd.parse::<u32>().unwrap()),
        );
    }
    let ((root, r_fd), (child, w_fd)) = (said["root"], said["child"]);
    let image = dir.join("pipe.kckpt");
    dump_kills(&mut p, &image);
    let text = ok_text("kckpt info", &kckpt_out(&["info"], &[&image]));
    let slot_line = |what: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with("slot") && l.contains(what))
            .unwrap_or_else(|| panic!("no {what} slot:\n{text}"))
            .to_owned()
    };
    let read = slot_line("pipe read end");
    assert!(
        read.contains(&format!("held by pid {root}"))
            && read.contains(&format!("{root}:{r_fd}"))
            && read.contains("9 bytes in flight"),
        "{read}"
    );
    assert!(
        slot_line("pipe write end").contains(&format!("{child}:{w_fd}")),
        "{text}"
    );
    // Each process alone names its shared end.
    for (pid, fd, name) in [(root, r_fd, "root"), (child, w_fd, "child")] {
        let out_path = dir.join(&format!("{name}.core"));
        let out = kckpt_out(
            &["extract", "--pid", &pid.to_string()],
            &[&image, &out_path],
        );
        ok_text("extract", &out);
        let text = ok_text(
            "info of an extracted process",
            &kckpt_out(&["info"], &[&out_path]),
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("tree:"))
            .unwrap_or_else(|| panic!("{name}: no tree line:\n{text}"));
        assert!(
            line.contains("extracted from a process tree") && line.contains(&format!("fd {fd} ")),
            "{name}: {line}"
        );
        if pid == root {
            // The root's file without the tree's pipe data where it was.
            let slots = &info_json(&image)["tree"]["slots"];
            let at = slots[0]["data_offset"]
                .as_u64()
                .or_else(|| slots[1]["data_offset"].as_u64())
                .expect("the pipe's data offset") as usize;
            let bytes = fs::read(&out_path).unwrap();
            assert_ne!(
                bytes.get(at..at + 9),
                Some(&b"in-flight"[..]),
                "the tree's pipe data is in the extracted root"
            );
        }
        gdb_sees_main(env!("KCKPT_PROG_TREE_SHARE"), &out_path);
    }
}
