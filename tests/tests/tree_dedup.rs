//! Pages shared copy-on-write across a process tree are stored once
//! (format 1.6, issue 9): a sub-image refers to the bytes an earlier
//! process stored (`NT_KCKPT_PAGE_REFS`), found by pagemap frame numbers
//! as root and by content (confirmed byte for byte) unprivileged.
//!
//! `tests/programs/tree_dedup.c` fills N MiB of private memory with
//! pseudo-random data, forks 3 children that keep it but for one page each
//! (and the root writes one page after the fork), and checks itself after
//! the restore: every process compares the checksum of the whole area and
//! the value it wrote after the fork (so diverged pages must not have been
//! shared), the root prints `ok 4`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kckpt_image::pagerefs::{PageRefRecord, NT_KCKPT_PAGE_REFS};
use kckpt_image::read::{note_segment, parse_elf_header, read_record, record_bytes, EHDR_SIZE};

use common::*;

const TREE_DEDUP: &str = env!("KCKPT_PROG_TREE_DEDUP");
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// Start `tree_dedup MIB` through `prefix`, until it is ready.
fn start(prefix: &[&str], mib: u64) -> Proc {
    let mut p = Proc::spawn(
        "tree_dedup",
        command_as(prefix, TREE_DEDUP).arg(mib.to_string()),
    );
    let line = p.line(LINE_TIMEOUT);
    assert_eq!(line, "ready", "{}", p.stderr());
    p
}

/// Dump the tree of `p` through `prefix` into `image` (killing it).
fn dump_tree(prefix: &[&str], p: &mut Proc, image: &Path) {
    let kids = descendants(p.pid());
    assert_eq!(kids.len(), 3, "the root has three children: {kids:?}");
    let out = dump_as(prefix, p.pid(), image);
    assert!(out.status.success(), "dump failed: {}", show(&out));
    p.wait_exit(EXIT_TIMEOUT);
    assert!(
        all_gone(&kids, Duration::from_secs(10)),
        "a child is still there"
    );
}

/// Start and dump a tree of `mib` MiB as root.
fn dumped(dir: &TestDir, mib: u64) -> std::path::PathBuf {
    let image = dir.join("tree.kckpt");
    let mut p = start(&[], mib);
    dump_tree(&[], &mut p, &image);
    image
}

/// The restored tree checks itself: `ok 4`, exit status 0.
fn check(r: &mut Proc) {
    r.write_stdin("check\n");
    let lines = r.drain(EXIT_TIMEOUT);
    assert!(
        lines.iter().any(|l| l == "ok 4") && !lines.iter().any(|l| l.starts_with("FAIL")),
        "the restored tree: {lines:?} ({})",
        r.stderr()
    );
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{status}: {}", r.stderr());
}

/// The file's allocated size is about one copy of the area, and `kckpt
/// info` counts the other three as saved.
fn check_size_and_info(image: &Path, mib: u64) {
    let allocated = fs::metadata(image).unwrap().blocks() * 512;
    assert!(
        allocated <= mib * MIB * 3 / 2,
        "the image takes {allocated} bytes for 4 processes sharing {mib} MiB"
    );
    let info = info_json(image);
    let shared = &info["tree"]["shared_pages"];
    let saved = shared["saved_bytes"].as_u64().unwrap_or(0);
    assert!(saved >= 3 * (mib - 4) * MIB, "saved: {shared}");
    assert_eq!(
        shared["pages"].as_u64(),
        Some(shared["bytes"].as_u64().unwrap() / 4096)
    );
    let out = run(Command::new(kckpt()).arg("info").arg(image), CMD_TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pages shared between processes: ") && text.contains("MiB saved)"),
        "{text}"
    );
}

#[test]
fn a_tree_stores_its_shared_pages_once_by_frame_and_restores() {
    let dir = TestDir::new("dedup_root");
    let image = dumped(&dir, 64);
    check_size_and_info(&image, 64);
    let mut r = restore_binfmt(&image);
    check(&mut r);
    let mut r = restore(&image);
    check(&mut r);
}

#[test]
fn an_unprivileged_dump_shares_pages_by_content() {
    require_tool("setpriv");
    let dir = TestDir::new("dedup_nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("tree.kckpt");
    let mut p = start(&NOBODY, 64);
    dump_tree(&NOBODY, &mut p, &image);
    assert_eq!(fs::metadata(&image).unwrap().uid(), 65534);
    check_size_and_info(&image, 64);
    let mut r = Proc::spawn(
        "kckpt restore (verify)",
        Command::new(kckpt())
            .arg("restore")
            .arg(&image)
            .env("KCKPT_VERIFY", "1"),
    );
    check(&mut r);
}

#[test]
fn an_extracted_child_restores_alone_and_gdb_reads_it() {
    let gdb = require_tool("gdb");
    let dir = TestDir::new("dedup_extract");
    let image = dumped(&dir, 8);
    let info = info_json(&image);
    let child = info["tree"]["processes"][2]["pid"].as_u64().unwrap();
    assert!(
        info["tree"]["processes"][2]["shared_bytes"]
            .as_u64()
            .unwrap()
            > 7 * MIB
    );
    let alone = dir.join("child.kckpt");
    let out = run(
        Command::new(kckpt())
            .args(["extract", "--pid", &child.to_string()])
            .arg(&image)
            .arg(&alone),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = run(
        Command::new(kckpt()).args(["info", "--verify"]).arg(&alone),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = run(
        Command::new(gdb)
            .args(["-nx", "-batch", "-ex", "bt"])
            .arg(TREE_DEDUP)
            .arg(&alone),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('#') && (l.contains(" main (") || l.contains(" in main "))),
        "no frame in main:\n{}",
        show(&out)
    );
    // Alone, the child (the second) waits for SIGUSR1, checks its memory
    // and its own value, and says so.
    let mut r = restore(&alone);
    assert!(
        eventually(Duration::from_secs(10), || state(child as i32)
            .is_some_and(|s| s == 'S')
            && read_proc(child as i32, "cmdline")
                .is_some_and(|c| c.starts_with(TREE_DEDUP.as_bytes()))),
        "the child did not come back"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    assert_eq!(r.line(LINE_TIMEOUT), "ok child 1", "{}", r.stderr());
    let status = r.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{status}: {}", r.stderr());
}

/// The note segment of the image `bytes`.
fn notes_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let len = bytes.len() as u64;
    let elf = parse_elf_header(&bytes[..EHDR_SIZE], len, machine).expect("ELF header");
    let phoff = elf.phoff as usize;
    let (off, size) =
        note_segment(&bytes[phoff..phoff + elf.phdrs_size()], len).expect("note segment");
    off as usize..(off + size) as usize
}

/// The live processes' records of the tree image `bytes`: (range of the
/// record in `bytes`, image offset, image length), index order.
fn proc_records(bytes: &[u8]) -> Vec<(std::ops::Range<usize>, usize, usize)> {
    let r = note_desc_range(bytes, b"KCKPT", kckpt_image::tree::NT_KCKPT_TREE_PROCS);
    let size = std::mem::size_of::<kckpt_image::tree::TreeProcRecord>();
    (r.start..r.end)
        .step_by(size)
        .map(|at| {
            let rec: kckpt_image::tree::TreeProcRecord = read_record(&bytes[at..]).unwrap();
            (
                at..at + size,
                rec.image_offset as usize,
                rec.image_len as usize,
            )
        })
        .filter(|(_, _, len)| *len > 0)
        .collect()
}

/// The tree image `good` with the first page reference of its last
/// sub-image changed by `edit` (given the sub-image's offset and the file
/// length), that sub-image and the tree resealed and bound again, so that
/// only the reference is wrong.
fn with_ref(good: &[u8], edit: impl Fn(&mut PageRefRecord, u64, u64)) -> Vec<u8> {
    let mut bad = good.to_vec();
    let procs = proc_records(&bad);
    let (rec, off, len) = procs.last().cloned().unwrap();
    let sub = off..off + len;
    let refs = {
        let s = &bad[sub.clone()];
        let n = notes_range(s);
        let at = kckpt_image::checksum::note_spans(&s[n.clone()])
            .find(|(note, _)| note.is(b"KCKPT", NT_KCKPT_PAGE_REFS))
            .map(|(note, _)| note.desc.as_ptr() as usize - s.as_ptr() as usize)
            .expect("the last child shares pages");
        off + at
    };
    let mut r: PageRefRecord = read_record(&bad[refs..]).unwrap();
    edit(&mut r, off as u64, good.len() as u64);
    bad[refs..refs + 32].copy_from_slice(record_bytes(&r));
    kckpt_image_write::reseal(&mut bad[sub.clone()]).expect("reseal the sub-image");
    let s = &bad[sub.clone()];
    let n = notes_range(s);
    let sum = kckpt_image::checksum::note_spans(&s[n])
        .find(|(note, _)| note.is(b"KCKPT", kckpt_image::NT_KCKPT_CHECKSUMS))
        .map(|(note, _)| kckpt_image::checksum::crc32c(note.desc))
        .unwrap();
    let at = rec.start + std::mem::offset_of!(kckpt_image::tree::TreeProcRecord, image_sum);
    bad[at..at + 4].copy_from_slice(&sum.to_le_bytes());
    kckpt_image_write::reseal(&mut bad).expect("reseal");
    bad
}

/// `image` with the reference edited by `edit` is refused by `kckpt info`
/// and by the restore with one line naming `keywords`, before any process
/// runs.
fn refused(name: &str, edit: impl Fn(&mut PageRefRecord, u64, u64), keywords: &[&str]) {
    let dir = TestDir::new(name);
    let image = dumped(&dir, 4);
    let good = fs::read(&image).unwrap();
    let bad_path = dir.join("bad.kckpt");
    fs::write(&bad_path, with_ref(&good, edit)).unwrap();
    let out = run(
        Command::new(kckpt())
            .args(["info", "--verify"])
            .arg(&bad_path),
        CMD_TIMEOUT,
    );
    assert_refused("kckpt info", &out, None, keywords);
    let out = run(
        Command::new(kckpt())
            .arg("restore")
            .arg(&bad_path)
            .env("KCKPT_VERIFY", "1"),
        CMD_TIMEOUT,
    );
    assert_refused("kckpt restore", &out, Some(126), keywords);
    assert!(out.stdout.is_empty(), "something ran: {}", show(&out));
}

#[test]
fn a_reference_past_the_end_of_the_file_is_refused() {
    refused(
        "dedup_past_end",
        |r, _, len| r.outer_offset = len.next_multiple_of(4096) + 4096,
        &["corrupt", "not before"],
    );
}

#[test]
fn a_reference_into_its_own_sub_image_is_refused() {
    refused(
        "dedup_own",
        |r, sub, _| r.outer_offset = sub,
        &["corrupt", "not before"],
    );
}

#[test]
fn an_unaligned_reference_is_refused() {
    refused(
        "dedup_unaligned",
        |r, _, _| r.outer_offset += 8,
        &["corrupt", "unaligned"],
    );
}

#[test]
fn a_reference_over_stored_pages_is_refused() {
    // The child's own page (written after the fork) is stored: a reference
    // that covers it overlaps a run.
    refused(
        "dedup_overlap",
        |r, _, _| {
            r.start -= 4096;
            r.len += 4096;
        },
        &["corrupt", "stored pages"],
    );
}

#[test]
fn a_reference_with_a_wrong_checksum_is_refused() {
    refused(
        "dedup_sum",
        |r, _, _| r.sum ^= 1,
        &["corrupt", "shared with an earlier process", "checksum"],
    );
}

/// Without `KCKPT_VERIFY`, a shared page whose bytes do not match is still
/// one refusal before any process runs: the tree's restorer checks every
/// sub-image's shared pages before it forks (each process sharing the page
/// would otherwise fail late, each with its own line).
#[test]
fn a_corrupt_shared_page_is_one_refusal_before_any_process_runs() {
    let dir = TestDir::new("dedup_sum_default");
    let image = dumped(&dir, 4);
    let good = fs::read(&image).unwrap();
    let bad_path = dir.join("bad.kckpt");
    fs::write(&bad_path, with_ref(&good, |r, _, _| r.sum ^= 1)).unwrap();
    let out = run(
        Command::new(kckpt())
            .arg("restore")
            .arg(&bad_path)
            .env_remove("KCKPT_VERIFY"),
        CMD_TIMEOUT,
    );
    assert_refused(
        "kckpt restore",
        &out,
        Some(126),
        &["shared with an earlier process"],
    );
    assert!(out.stdout.is_empty(), "something ran: {}", show(&out));
}

#[test]
fn a_raw_sub_image_with_references_is_refused_alone() {
    let dir = TestDir::new("dedup_raw");
    let image = dumped(&dir, 4);
    let good = fs::read(&image).unwrap();
    let (_, off, len) = proc_records(&good).last().cloned().unwrap();
    let raw = dir.join("raw.kckpt");
    fs::write(&raw, &good[off..off + len]).unwrap();
    let out = run(Command::new(kckpt()).arg("info").arg(&raw), CMD_TIMEOUT);
    assert_refused("kckpt info", &out, None, &["kckpt extract"]);
    let out = run(Command::new(kckpt()).arg("restore").arg(&raw), CMD_TIMEOUT);
    assert_refused("kckpt restore", &out, Some(126), &["kckpt extract"]);
}

#[test]
fn a_reference_outside_the_memory_areas_is_refused() {
    refused(
        "dedup_outside",
        |r, _, _| r.start = 0x1000,
        &["corrupt", "outside a private memory area"],
    );
}

#[test]
fn an_empty_reference_is_refused() {
    refused(
        "dedup_empty",
        |r, _, _| r.len = 0,
        &["corrupt", "shared page"],
    );
}

#[test]
fn a_reference_with_reserved_bits_is_refused() {
    refused(
        "dedup_reserved",
        |r, _, _| r.reserved = 1,
        &["corrupt", "shared page"],
    );
}
