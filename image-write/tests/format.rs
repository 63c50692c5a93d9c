//! The image format: one round trip through the writer and the reader, then
//! one test per way the reader must refuse an image.

mod common;

use std::fs::{self, File};
use std::path::PathBuf;

use kckpt_image::read::{note_segment, parse_elf_header, Notes, EHDR_SIZE, EM_AARCH64, EM_X86_64};
use kckpt_image::*;
use kckpt_image_write::{ImageMetadata, ImageWriter, StringTable, ThreadNotesOut};

const PAGE: u64 = 4096;

fn temp_path(name: &str) -> PathBuf {
    common::temp_image("format", name)
}

/// Writes a small image: two VMAs, the first with two runs of data.
fn sample_image(name: &str) -> (PathBuf, Vec<u8>) {
    let path = temp_path(name);
    let file = File::create(&path).unwrap();
    let mut writer = ImageWriter::new(file, EM_X86_64, PAGE);
    let mut strings = StringTable::default();
    let heap_name = strings.add(b"[heap]");
    let lib_name = strings.add(b"/usr/lib/libdemo.so");
    let region = writer.reserve_region(4 * PAGE);
    writer.write_data(region, &[0xaa; PAGE as usize]).unwrap();
    writer
        .write_data(region + 2 * PAGE, &[0xbb; 2 * PAGE as usize])
        .unwrap();
    let base = 0x10_0000u64;
    let runs = vec![
        RunRecord {
            start: base,
            len: PAGE,
            offset: region,
        },
        RunRecord {
            start: base + 2 * PAGE,
            len: 2 * PAGE,
            offset: region + 2 * PAGE,
        },
    ];
    let vmas = vec![
        VmaRecord {
            start: base,
            end: base + 4 * PAGE,
            stored_bytes: 3 * PAGE,
            first_run: 0,
            run_count: 2,
            prot: prot::READ | prot::WRITE,
            kind: vma_kind::HEAP,
            name: heap_name,
            ..Default::default()
        },
        VmaRecord {
            start: 0x7000_0000,
            end: 0x7000_0000 + 2 * PAGE,
            first_run: 2,
            prot: prot::READ | prot::EXEC,
            kind: vma_kind::FILE,
            inode: 42,
            name: lib_name,
            ..Default::default()
        },
    ];
    let meta = ImageMetadata {
        header: ImageHeader {
            flags: HEADER_DID_EXEC,
            vdso_hash: 99,
            ..common::x86_64_header()
        },
        mm: MmRecord {
            start_brk: base,
            brk: base + 4 * PAGE,
            exe: lib_name,
            cmdline: heap_name,
            ..Default::default()
        },
        signals: SignalsRecord {
            actions: [SigactionRecord::default(); 64],
        },
        vmas,
        runs,
        strings,
        auxv: vec![0; 16],
        prpsinfo: vec![0; 136],
        threads: vec![ThreadNotesOut {
            prstatus: vec![1; 336],
            regsets: vec![(LINUX_OWNER, nt::X86_XSTATE, vec![2; 832])],
            record: ThreadRecord {
                tid: 1234,
                tls: 0x5000,
                // No sigaltstack, as the dumpers write it (an enabled one
                // must be at least MINSIGSTKSZ).
                altstack_flags: SS_DISABLE,
                ..Default::default()
            },
        }],
        process: Some(ProcessRecord {
            personality: 0x0040_0000,
            dumpable: 0,
            no_new_privs: 1,
            rlimit_count: RLIMIT_COUNT as u32,
            rlimits: [RlimitRecord {
                cur: 7,
                max: RLIM_INFINITY,
            }; RLIMIT_COUNT],
            ..Default::default()
        }),
        pending: vec![sample_pending(1234, 34), sample_pending(PENDING_SHARED, 10)],
        files: Default::default(),
        timers: Default::default(),
        kstate: Default::default(),
        tree: None,
        page_refs: Vec::new(),
        sysv: Default::default(),
    };
    writer.finish(meta).unwrap();
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

fn sample_pending(tid: u32, signo: u32) -> PendingSignalRecord {
    let mut siginfo = [0u8; 128];
    siginfo[..4].copy_from_slice(&signo.to_le_bytes());
    PendingSignalRecord {
        tid,
        signo,
        siginfo,
    }
}

/// Runs the reader the way the stub does: header, program headers, notes.
fn parse(bytes: &[u8]) -> Result<(), FormatError> {
    parse_with(bytes, |_| Ok(()))
}

fn parse_with(
    bytes: &[u8],
    check: impl FnOnce(&ImageView) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    check(&common::view(bytes)?)
}

/// Offset of the KCKPT header note's descriptor in the file.
fn header_desc_offset(bytes: &[u8]) -> usize {
    let elf = parse_elf_header(bytes, bytes.len() as u64, EM_X86_64).unwrap();
    let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
    let (off, _) = note_segment(table, bytes.len() as u64).unwrap();
    // First note: 12-byte header + "KCKPT\0" padded to 8.
    off as usize + 12 + 8
}

#[test]
fn round_trip() {
    let (path, bytes) = sample_image("round-trip");
    parse_with(&bytes, |view| {
        assert_eq!(view.header.pid, 1234);
        assert_eq!(view.header.thread_count, 1);
        assert_eq!(view.vmas.len(), 2);
        assert_eq!(view.runs.len(), 2);
        assert_eq!(view.stored_bytes(), 3 * PAGE);
        assert_eq!(view.string(view.mm.exe).unwrap(), b"/usr/lib/libdemo.so");
        let heap = view.vmas.get(0).unwrap();
        let runs: Vec<_> = view.runs_of(&heap).collect();
        assert_eq!(runs[1].start, heap.start + 2 * PAGE);
        assert_eq!(bytes[runs[1].offset as usize], 0xbb);
        let threads: Vec<_> = view.threads().collect();
        assert_eq!(threads.len(), 1);
        assert_eq!(threads[0].record.tls, 0x5000);
        assert_eq!(
            threads[0]
                .regset(LINUX_OWNER, nt::X86_XSTATE)
                .unwrap()
                .len(),
            832
        );
        assert!(view.notes().any(|n| n.unwrap().is(CORE_OWNER, nt::FILE)));
        let process = view.process.unwrap();
        assert_eq!(
            (process.personality, process.no_new_privs),
            (0x0040_0000, 1)
        );
        assert_eq!(process.rlimits[15].cur, 7);
        let pending: Vec<_> = view.pending.iter().collect();
        assert_eq!(
            pending,
            [sample_pending(1234, 34), sample_pending(PENDING_SHARED, 10)]
        );
        Ok(())
    })
    .unwrap();
    // Memory data is sparse: the unstored page between the runs is a hole.
    let elf = parse_elf_header(&bytes, bytes.len() as u64, EM_X86_64).unwrap();
    assert!(elf.phnum == 3, "one PT_NOTE and a PT_LOAD per VMA");
    fs::remove_file(path).unwrap();
}

#[test]
fn notes_are_readable_by_a_generic_note_walker() {
    let (path, bytes) = sample_image("walker");
    let elf = parse_elf_header(&bytes, bytes.len() as u64, EM_X86_64).unwrap();
    let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
    let (off, size) = note_segment(table, bytes.len() as u64).unwrap();
    let kinds: Vec<u32> = Notes::new(&bytes[off as usize..(off + size) as usize])
        .map(|n| n.unwrap().kind)
        .collect();
    assert_eq!(kinds[0], NT_KCKPT_HEADER);
    assert!(
        kinds.contains(&nt::PRSTATUS) && kinds.contains(&nt::AUXV) && kinds.contains(&nt::PRPSINFO)
    );
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_non_elf() {
    assert_eq!(
        parse(b"#!/bin/sh\necho hello, this is not an image\n"),
        Err(FormatError::NotElf)
    );
}

#[test]
fn rejects_truncated_header() {
    let (path, bytes) = sample_image("trunc-header");
    assert_eq!(parse(&bytes[..40]), Err(FormatError::Truncated));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_truncated_file() {
    let (path, bytes) = sample_image("trunc-file");
    let cut = &bytes[..bytes.len() / 2];
    assert_eq!(parse(cut), Err(FormatError::Truncated));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_plain_core() {
    let (path, mut bytes) = sample_image("plain-core");
    bytes[9..16].fill(0);
    assert_eq!(parse(&bytes), Err(FormatError::PlainCore));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_executables() {
    let (path, mut bytes) = sample_image("exec");
    bytes[16] = 3; // ET_DYN
    assert_eq!(parse(&bytes), Err(FormatError::NotCore));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_other_architecture() {
    let (path, mut bytes) = sample_image("arch");
    bytes[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    let err = parse(&bytes).unwrap_err();
    assert_eq!(
        err,
        FormatError::WrongMachine {
            found: EM_AARCH64,
            expected: EM_X86_64
        }
    );
    assert_eq!(
        err.to_string(),
        "image was saved on another architecture (aarch64, this is x86_64)"
    );
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_future_major_version() {
    let (path, mut bytes) = sample_image("major");
    let at = header_desc_offset(&bytes) + 8;
    bytes[at..at + 2].copy_from_slice(&(FORMAT_MAJOR + 1).to_le_bytes());
    let err = parse(&bytes).unwrap_err();
    assert_eq!(
        err,
        FormatError::UnsupportedVersion {
            major: FORMAT_MAJOR + 1,
            minor: FORMAT_MINOR
        }
    );
    let want = format!(
        "format version {}.{FORMAT_MINOR} is not supported",
        FORMAT_MAJOR + 1
    );
    assert!(err.to_string().contains(&want), "{err}");
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_newer_minor_version() {
    let (path, mut bytes) = sample_image("minor");
    let at = header_desc_offset(&bytes) + 10;
    bytes[at..at + 2].copy_from_slice(&(FORMAT_MINOR + 1).to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(FormatError::UnsupportedVersion { .. })
    ));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_bad_header_magic() {
    let (path, mut bytes) = sample_image("magic");
    let at = header_desc_offset(&bytes);
    bytes[at] ^= 0xff;
    assert_eq!(parse(&bytes), Err(FormatError::BadHeader));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_note_running_past_its_segment() {
    let (path, mut bytes) = sample_image("note");
    let at = header_desc_offset(&bytes) - 20 + 4; // descsz of the first note
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse(&bytes), Err(FormatError::BadNote));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_overlapping_vmas() {
    let (path, bytes) = sample_image("overlap");
    let mut bytes = bytes;
    patch_vma(&mut bytes, 1, |v| v.start = 0x10_0000 + PAGE);
    assert_eq!(parse(&bytes), Err(FormatError::BadVma));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_run_outside_its_vma() {
    let (path, mut bytes) = sample_image("run");
    patch_vma(&mut bytes, 0, |v| v.end = v.start + 2 * PAGE);
    assert_eq!(parse(&bytes), Err(FormatError::BadRun));
    fs::remove_file(path).unwrap();
}

#[test]
fn rejects_run_data_past_end_of_file() {
    let (path, bytes) = sample_image("past-end");
    // Drop the first data page's region from the length the reader is told:
    // parse against a file length that ends inside the data.
    let len = PAGE + 10;
    let elf = parse_elf_header(&bytes, bytes.len() as u64, EM_X86_64).unwrap();
    let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
    let (off, size) = note_segment(table, bytes.len() as u64).unwrap();
    let err =
        ImageView::parse(&bytes[off as usize..(off + size) as usize], EM_X86_64, len).unwrap_err();
    assert_eq!(err, FormatError::RunPastEnd);
    fs::remove_file(path).unwrap();
}

#[test]
fn header_is_first_bytes_of_ehdr() {
    let (path, bytes) = sample_image("ehdr");
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(&bytes[9..16], &IDENT_MARKER);
    assert!(bytes.len() > EHDR_SIZE);
    fs::remove_file(path).unwrap();
}

/// Rewrite VMA record `index` in place.
fn patch_vma(bytes: &mut [u8], index: usize, f: impl FnOnce(&mut VmaRecord)) {
    let elf = parse_elf_header(bytes, bytes.len() as u64, EM_X86_64).unwrap();
    let table = bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()].to_vec();
    let (off, size) = note_segment(&table, bytes.len() as u64).unwrap();
    let segment = &bytes[off as usize..(off + size) as usize];
    let desc_at = {
        let note = Notes::new(segment)
            .map(Result::unwrap)
            .find(|n| n.is(NOTE_OWNER, NT_KCKPT_VMAS))
            .unwrap();
        note.desc.as_ptr() as usize - segment.as_ptr() as usize
    };
    let rec_at = off as usize + desc_at + index * std::mem::size_of::<VmaRecord>();
    let mut vma: VmaRecord = kckpt_image::read::read_record(&bytes[rec_at..]).unwrap();
    f(&mut vma);
    bytes[rec_at..rec_at + std::mem::size_of::<VmaRecord>()]
        .copy_from_slice(kckpt_image::read::record_bytes(&vma));
}

/// Format 1.1: a pending signal must name a saved thread (or the shared
/// queue) and carry its own number in `si_signo`.
#[test]
fn rejects_bad_pending_signals() {
    let (path, bytes) = sample_image("bad-pending");
    fs::remove_file(path).unwrap();
    let range = {
        let elf = parse_elf_header(&bytes, bytes.len() as u64, EM_X86_64).unwrap();
        let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
        let (off, size) = note_segment(table, bytes.len() as u64).unwrap();
        let seg = &bytes[off as usize..(off + size) as usize];
        let note = Notes::new(seg)
            .map(Result::unwrap)
            .find(|n| n.is(NOTE_OWNER, NT_KCKPT_PENDING))
            .unwrap();
        let start = note.desc.as_ptr() as usize - bytes.as_ptr() as usize;
        start..start + note.desc.len()
    };
    let patch = |at: usize, v: u32| {
        let mut b = bytes.clone();
        b[range.start + at..range.start + at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    assert_eq!(parse(&patch(0, 999)), Err(FormatError::BadPendingSignal));
    assert_eq!(parse(&patch(4, 9)), Err(FormatError::BadPendingSignal));
    assert_eq!(parse(&patch(8, 35)), Err(FormatError::BadPendingSignal));
    assert_eq!(parse(&patch(4, 65)), Err(FormatError::BadPendingSignal));
    assert_eq!(parse(&patch(0, 1234)), Ok(()));
}

#[test]
fn rejects_field_values_the_format_forbids() {
    let (path, bytes) = sample_image("fields");
    fs::remove_file(path).unwrap();
    assert_eq!(parse(&bytes), Ok(()));
    let vma = std::mem::size_of::<VmaRecord>();
    // (note, offset in its descriptor, field width, new value, problem)
    let cases: &[(u32, usize, usize, u64, &str)] = &[
        (NT_KCKPT_HEADER, 14, 2, 1, "header: reserved"),
        (NT_KCKPT_HEADER, 44, 4, 1, "header: reserved"),
        (NT_KCKPT_HEADER, 152, 8, 1, "header: reserved"),
        (NT_KCKPT_HEADER, 20, 4, 2, "header: unknown flags"),
        (NT_KCKPT_MM, 40, 8, 0x10_0000 - PAGE, "mm:"), // brk below start_brk
        (NT_KCKPT_MM, 48, 8, 8, "mm:"),                // start_stack in page 0
        (NT_KCKPT_VMAS, 64, 4, 9, "memory area: unknown kind"),
        (
            NT_KCKPT_VMAS,
            vma + 64,
            4,
            0x42,
            "memory area: unknown kind",
        ),
        (NT_KCKPT_VMAS, 68, 4, 1, "memory area: reserved"),
        (NT_KCKPT_VMAS, 56, 4, 8, "memory area: unknown protection"),
        (NT_KCKPT_VMAS, 60, 4, 1 << 12, "memory area: unknown flags"),
        (
            NT_KCKPT_VMAS,
            60,
            4,
            (1 << 3) | (1 << 4),
            "memory area: contradictory",
        ),
        (NT_KCKPT_VMAS, 60, 4, 1 << 18, "memory area: contradictory"),
        (NT_KCKPT_VMAS, 60, 4, 3, "memory area: contradictory"), // shared + growsdown
        (NT_KCKPT_VMAS, 16, 8, PAGE, "memory area: file fields"), // the heap's
        (
            NT_KCKPT_VMAS,
            vma + 16,
            8,
            100,
            "memory area: bad file offset",
        ),
        (NT_KCKPT_SIGNALS, 8, 8, 0x0020_0000, "signal action"),
        (
            NT_KCKPT_THREAD,
            4,
            4,
            3,
            "thread: unknown system call state",
        ),
        (NT_KCKPT_THREAD, 84, 4, 1, "thread: reserved"),
        (NT_KCKPT_THREAD, 120, 8, 1, "thread: reserved"),
        (NT_KCKPT_HEADER, 24, 4, 1235, "thread: ids"), // pid: not the main tid
        (NT_KCKPT_THREAD, 64, 4, 0, "thread: bad signal stack"), // enabled, size 0
        (NT_KCKPT_THREAD, 72, 8, 0x7000_0000, "thread: bad rseq"), // read-only area
        (
            NT_KCKPT_THREAD,
            24,
            8,
            1 << 47,
            "thread: bad thread pointer",
        ),
        (NT_KCKPT_PROCESS, 4, 4, 3, "process: bad personality"),
        (
            NT_KCKPT_PROCESS,
            0,
            4,
            0x1000_0000,
            "process: bad personality",
        ),
        (NT_KCKPT_PROCESS, 16, 8, 1, "process: reserved"),
        (NT_KCKPT_PROCESS, 48 + 8, 8, 6, "process: resource limit"), // max 6 < cur 7
    ];
    for &(kind, at, width, value, problem) in cases {
        let mut bad = bytes.clone();
        let off = common::kckpt_desc_offset(&bad, kind) + at;
        bad[off..off + width].copy_from_slice(&value.to_le_bytes()[..width]);
        match parse(&bad) {
            Err(FormatError::BadField(what)) => assert!(
                what.starts_with(problem),
                "{kind:#x}+{at}: {what:?}, expected {problem:?}"
            ),
            other => panic!("{kind:#x}+{at} = {value:#x}: {other:?}, expected {problem:?}"),
        }
    }
}
