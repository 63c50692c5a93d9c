//! Image integrity (format 1.2 checksums) on real images: a flipped bit in
//! every note, in the ELF header and in the program headers is refused by
//! `kckpt info` and by the stub before it changes anything; a flipped bit
//! in stored memory or descriptor data is found by `kckpt info --verify`
//! and by the stub (descriptor data before anything changes, memory as it
//! is read, or up front with `KCKPT_VERIFY=1`); images without data
//! checksums (`KCKPT_NO_CHECKSUM=1`) and format 1.1 images without any
//! still restore.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kckpt_image::checksum::{check_image, note_name, note_spans};
use kckpt_image::read::{note_segment, parse_elf_header, EHDR_SIZE, EM_X86_64};
use kckpt_image::records::*;

use common::*;

/// Exit status of the stub when it refuses an image or a restore fails.
const STUB_REFUSES: i32 = 126;
/// A refusal before anything changes takes well under this.
const QUICK: Duration = Duration::from_secs(10);

/// An image of `files_epoll` (every kckpt note but the pending signals,
/// pipe, socketpair and memfd data) and one of `procstate` (pending
/// signals, process record), each read once.
fn images() -> &'static [(PathBuf, Vec<u8>); 2] {
    static IMAGES: OnceLock<[(PathBuf, Vec<u8>); 2]> = OnceLock::new();
    IMAGES.get_or_init(|| {
        // Leaked: the images live as long as the test binary.
        let dir = Box::leak(Box::new(TestDir::new("integrity")));
        let epoll = dir.join("epoll.kckpt");
        let mut p = Proc::start(prog::FILES_EPOLL, &[]);
        p.wait_for("tick 3", LINE_TIMEOUT, |l| l.starts_with("tick 3 "));
        dump_and_kill(&mut p, &epoll);
        let state = dir.join("procstate.kckpt");
        let mut p = Proc::start(prog::PROCSTATE, &[]);
        p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
        dump_kills(&mut p, &state);
        let read = |p: PathBuf| {
            let bytes = fs::read(&p).expect("read image");
            (p, bytes)
        };
        [read(epoll), read(state)]
    })
}

/// The program header table and the note segment of an image.
fn parts(img: &[u8]) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let elf = parse_elf_header(img, img.len() as u64, EM_X86_64).expect("ELF header");
    let ph = elf.phoff as usize..elf.phoff as usize + elf.phdrs_size();
    let (off, size) = note_segment(&img[ph.clone()], img.len() as u64).expect("notes");
    (ph, off as usize..(off + size) as usize)
}

/// Write `bytes` as an image in a new test directory.
fn write_image(name: &str, bytes: &[u8]) -> (TestDir, PathBuf) {
    let dir = TestDir::new(name);
    let path = dir.join("bad.kckpt");
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    (dir, path)
}

fn info(path: &Path, verify: bool) -> Output {
    let mut cmd = Command::new(kckpt());
    cmd.arg("info");
    if verify {
        cmd.arg("--verify");
    }
    run(cmd.arg(path), CMD_TIMEOUT)
}

/// The stub run on `path` with `env`, and how long it took.
fn stub_run(path: &Path, env: &[(&str, &str)]) -> (Output, Duration) {
    let mut cmd = Command::new(stub());
    cmd.arg(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = run(&mut cmd, DUMP_TIMEOUT);
    (out, t.elapsed())
}

/// `kckpt info` and the stub both refuse `bytes` with `expected` in their
/// one line; the stub before it changed anything (quickly, and without
/// "after the address space was replaced").
fn metadata_refused(name: &str, bytes: &[u8], expected: &str) {
    let (_dir, path) = write_image(name, bytes);
    let out = info(&path, false);
    assert_refused(&format!("kckpt info ({name})"), &out, None, &[expected]);
    let (out, took) = stub_run(&path, &[]);
    assert_refused(
        &format!("kckpt-stub ({name})"),
        &out,
        Some(STUB_REFUSES),
        &[expected],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("address space was replaced") && out.stdout.is_empty(),
        "the stub went on before refusing ({name}): {}",
        show(&out)
    );
    assert!(took < QUICK, "the stub took {took:?} to refuse ({name})");
}

#[test]
fn a_flipped_bit_in_every_note_is_refused_by_info_and_by_the_stub() {
    let mut seen = Vec::new();
    for (path, img) in images() {
        let (_, notes) = parts(img);
        let spans: Vec<(usize, usize, &'static str)> = note_spans(&img[notes.clone()])
            .map(|(n, _)| {
                let desc = n.desc.as_ptr() as usize - img.as_ptr() as usize;
                (desc, n.desc.len(), note_name(n.owner, n.kind))
            })
            .collect();
        for (i, &(desc, len, name)) in spans.iter().enumerate() {
            // One note of each kind per image (the thread notes repeat).
            if spans[..i].iter().any(|s| s.2 == name) {
                continue;
            }
            seen.push(name);
            let mut bad = img.clone();
            bad[desc + len / 2] ^= 0x04;
            let expected = format!("image is corrupt (checksum of {name} does not match)");
            metadata_refused(&format!("note-{i}"), &bad, &expected);
        }
        println!("{}: {} notes checked", path.display(), spans.len());
    }
    for want in [
        "note NT_KCKPT_HEADER",
        "note NT_KCKPT_MM",
        "note NT_KCKPT_SIGNALS",
        "note NT_KCKPT_PROCESS",
        "note NT_KCKPT_PENDING",
        "note NT_KCKPT_STRINGS",
        "note NT_KCKPT_VMAS",
        "note NT_KCKPT_RUNS",
        "note NT_KCKPT_FS",
        "note NT_KCKPT_FDS",
        "note NT_KCKPT_EPOLL",
        "note NT_KCKPT_THREAD",
        "note NT_KCKPT_CHECKSUMS",
        "note NT_PRPSINFO",
        "note NT_AUXV",
        "note NT_FILE",
        "note NT_PRSTATUS",
        "note NT_PRFPREG",
        "note NT_X86_XSTATE",
    ] {
        assert!(
            seen.contains(&want),
            "no {want} in the test images: {seen:?}"
        );
    }
}

#[test]
fn a_flipped_bit_in_the_elf_header_or_program_headers_is_refused() {
    let (_, img) = &images()[0];
    // e_flags: no structural check looks at it.
    let mut bad = img.clone();
    bad[48] ^= 1;
    metadata_refused(
        "ehdr",
        &bad,
        "image is corrupt (checksum of the ELF header does not match)",
    );
    // p_vaddr of the first PT_LOAD: the stub restores from the VMA table,
    // so only the checksum notices.
    let (ph, _) = parts(img);
    let mut bad = img.clone();
    bad[ph.start + 56 + 16 + 1] ^= 0x10;
    metadata_refused(
        "phdrs",
        &bad,
        "image is corrupt (checksum of the program header table does not match)",
    );
}

/// Where stored data lies in an image.
struct Regions {
    /// The longest memory run: file offset, address, its VMA's name.
    run: (u64, u64, String),
    /// The memfd's data: file offset, descriptor.
    memfd: Option<(u64, u32)>,
    /// The pipe's unread bytes: file offset, descriptor.
    pipe: Option<(u64, u32)>,
}

fn regions(img: &[u8]) -> Regions {
    let (ph, notes) = parts(img);
    let (view, sums) = check_image(
        &img[..EHDR_SIZE],
        &img[ph],
        &img[notes],
        EM_X86_64,
        img.len() as u64,
    )
    .expect("a good image");
    assert!(sums.is_some_and(|s| s.has_data()), "no data checksums");
    let mut best = (0u64, 0u64, String::new(), 0u64);
    for vma in view.vmas.iter() {
        for run in view.runs_of(&vma) {
            if run.len > best.3 {
                let name = String::from_utf8_lossy(view.string(vma.name).unwrap()).into_owned();
                best = (run.offset, run.start, name, run.len);
            }
        }
    }
    let data = |kind: u32| {
        view.fds
            .iter()
            .find(|f| f.kind == kind && f.data_len > 0)
            .map(|f| (f.data_offset, f.fd))
    };
    Regions {
        run: (best.0, best.1, best.2),
        memfd: data(fd_kind::MEMFD),
        pipe: data(fd_kind::PIPE),
    }
}

#[test]
fn flipped_memory_is_found_by_info_verify_and_the_stub() {
    let (_, img) = &images()[0];
    let (offset, addr, name) = regions(img).run;
    let mut bad = img.clone();
    bad[offset as usize + 100] ^= 0x01;
    let (_dir, path) = write_image("memory", &bad);
    // The metadata is intact: plain `info` accepts it.
    let out = info(&path, false);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("checksums:      crc32c; metadata ok; data not checked"),
        "{text}"
    );
    let expected = format!("memory {addr:#x}-");
    let out = info(&path, true);
    assert_refused("kckpt info --verify", &out, None, &[&expected]);
    let line = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        line.contains(&format!(
            "({}) at file offset {offset}",
            if name.is_empty() { "anonymous" } else { &name }
        )) && line.contains("does not match its checksum"),
        "{line}"
    );
    // Eager restore: found as the run is read, after the address space
    // was replaced; still one line and 126.
    let (out, _) = stub_run(&path, &[]);
    assert_refused("kckpt-stub", &out, Some(STUB_REFUSES), &[&expected]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("after the address space was replaced") && text.contains("image is corrupt"),
        "{text}"
    );
    // With KCKPT_VERIFY=1 (either mode) before anything changes.
    for mode in ["read", "mmap"] {
        let (out, took) = stub_run(
            &path,
            &[("KCKPT_VERIFY", "1"), ("KCKPT_RESTORE_MODE", mode)],
        );
        assert_refused(
            "kckpt-stub, KCKPT_VERIFY=1",
            &out,
            Some(STUB_REFUSES),
            &[&expected],
        );
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("address space was replaced"), "{text}");
        assert!(took < QUICK, "took {took:?}");
    }
}

#[test]
fn flipped_descriptor_data_is_refused_before_anything_changes() {
    let (_, img) = &images()[0];
    let r = regions(img);
    for (what, region) in [("memfd", r.memfd), ("pipe", r.pipe)] {
        let (offset, fd) = region.unwrap_or_else(|| panic!("no {what} data in the image"));
        let mut bad = img.clone();
        bad[offset as usize] ^= 0x20;
        let (_dir, path) = write_image(what, &bad);
        let expected =
            format!("data of fd {fd} at file offset {offset} does not match its checksum");
        let out = info(&path, false);
        assert!(out.status.success(), "{}", show(&out));
        let out = info(&path, true);
        assert_refused(
            &format!("kckpt info --verify ({what})"),
            &out,
            None,
            &[&expected],
        );
        let (out, took) = stub_run(&path, &[]);
        assert_refused(
            &format!("kckpt-stub ({what})"),
            &out,
            Some(STUB_REFUSES),
            &[&expected],
        );
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("address space was replaced"), "{text}");
        assert!(took < QUICK, "took {took:?}");
    }
}

#[test]
fn good_images_verify_and_restore() {
    let (path, _) = &images()[0];
    let out = info(path, true);
    assert!(out.status.success(), "{}", show(&out));
    let json = run(
        Command::new(kckpt())
            .args(["info", "--json", "--verify"])
            .arg(path),
        CMD_TIMEOUT,
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let c = &json["checksums"];
    assert_eq!(
        (
            c["algorithm"].as_str(),
            c["metadata"].as_str(),
            c["data"].as_str()
        ),
        (Some("crc32c"), Some("ok"), Some("ok")),
        "{json:#}"
    );
    assert_eq!(info_json(path)["checksums"]["data"], "unchecked");
    // A restore checks every chunk it reads, and the process runs.
    let mut r = restore(path);
    r.wait_for("a tick", LINE_TIMEOUT, |l| {
        l.starts_with("tick ") && l.ends_with(" ok")
    });
}

#[test]
fn images_without_data_checksums_restore() {
    let dir = TestDir::new("no-checksum");
    let image = dir.join("plain.kckpt");
    let mut p = Proc::start(prog::MEMFILL, &["16"]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l.starts_with("ready"));
    let out = run(
        Command::new(kckpt())
            .env("KCKPT_NO_CHECKSUM", "1")
            .args(["dump", "-p", &p.pid().to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    p.kill();
    let json = info_json(&image);
    assert_eq!(json["checksums"]["metadata"], "ok", "{json:#}");
    assert_eq!(json["checksums"]["data"], "absent", "{json:#}");
    assert_eq!(json["checksums"]["data_chunks"], 0, "{json:#}");
    let out = info(&image, true);
    assert!(out.status.success(), "{}", show(&out));
    let mut r = restore(&image);
    r.wait_for("a checked round", LINE_TIMEOUT, |l| {
        l.starts_with("round ") && l.ends_with(" ok")
    });
}

#[test]
fn format_1_1_images_without_checksums_are_read_and_restored() {
    let (_, img) = &images()[0];
    let (ph, notes) = parts(img);
    // Drop the checksum note (the last one) and say 1.1.
    let last = note_spans(&img[notes.clone()]).last().expect("notes");
    assert!(last.0.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS));
    let mut old = img.clone();
    let size = (notes.len() - last.1.len()) as u64;
    old[ph.start + 32..ph.start + 40].copy_from_slice(&size.to_le_bytes()); // PT_NOTE p_filesz
    let minor = notes.start + 12 + 8 + std::mem::offset_of!(ImageHeader, format_minor);
    old[minor..minor + 2].copy_from_slice(&1u16.to_le_bytes());
    let (_dir, path) = write_image("format-1.1", &old);
    let out = info(&path, true);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("format version: 1.1"), "{text}");
    assert!(
        text.contains("checksums:      none (an image of format 1.1 or older)"),
        "{text}"
    );
    let mut r = restore(&path);
    r.wait_for("a tick", LINE_TIMEOUT, |l| {
        l.starts_with("tick ") && l.ends_with(" ok")
    });
    // The same image saying 1.2 is refused: its checksums are missing.
    old[minor..minor + 2].copy_from_slice(&2u16.to_le_bytes());
    let (_dir2, path) = write_image("format-1.2-without", &old);
    let out = info(&path, false);
    assert_refused(
        "kckpt info (1.2 without checksums)",
        &out,
        None,
        &["checksums"],
    );
}
