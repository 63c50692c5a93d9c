//! Format 1.2 checksums through the writer and the reader: a round trip
//! (every checksum verifies, the data chunk sums match the data), a flip
//! in each note, in the ELF header and in the program headers refused by
//! name, flipped data found in its chunk, images without data checksums,
//! format 1.1 images without any, and `reseal`.

mod common;

use std::fs::File;
use std::path::PathBuf;

use kckpt_image::checksum::{
    check_chunks, check_image, chunk_count, note_name, note_spans, regions, verify_metadata,
    RegionKind, Sums,
};
use kckpt_image::read::{note_segment, parse_elf_header, EHDR_SIZE, EM_X86_64};
use kckpt_image::*;
use kckpt_image_write::{
    chunk_sums, reseal, FilesMeta, ImageMetadata, ImageWriter, RegionHasher, StringTable,
    ThreadNotesOut,
};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

fn temp_path(name: &str) -> PathBuf {
    common::temp_image("sums", name)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// An image with a 2.5 MiB memory run (several chunks), a one-page run
/// and a descriptor with 1 MiB + 5 bytes of data (a short last chunk).
fn image(name: &str, data_sums: bool) -> Vec<u8> {
    let path = temp_path(name);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let mut writer = ImageWriter::new(file, EM_X86_64, PAGE);
    if !data_sums {
        writer.without_data_sums();
    }
    let mut strings = StringTable::default();
    let heap = strings.add(b"[heap]");
    let base = 0x10_0000u64;
    let big = 5 * MIB / 2;
    let region = writer.reserve_region(4 * MIB);
    // The big run arrives in pages, as the dumper's memory writer sends it.
    let data = pattern(big as usize, 1);
    std::os::unix::fs::FileExt::write_all_at(writer.file(), &data, region).unwrap();
    let mut h = RegionHasher::new();
    for page in data.chunks(PAGE as usize) {
        h.update(page);
    }
    let (len, sums) = h.finish();
    assert_eq!(sums, chunk_sums(&data));
    if writer.data_sums() {
        writer.add_sums(region, len, sums);
    }
    let small_at = region + 3 * MIB;
    writer
        .write_data(small_at, &pattern(PAGE as usize, 2))
        .unwrap();
    let fd_data = pattern(MIB as usize + 5, 3);
    let fd_at = writer.reserve_region(fd_data.len() as u64);
    writer.write_data(fd_at, &fd_data).unwrap();
    let runs = vec![
        RunRecord {
            start: base,
            len: big,
            offset: region,
        },
        RunRecord {
            start: base + 3 * MIB,
            len: PAGE,
            offset: small_at,
        },
    ];
    let vmas = vec![VmaRecord {
        start: base,
        end: base + 4 * MIB,
        stored_bytes: big + PAGE,
        first_run: 0,
        run_count: 2,
        prot: prot::READ | prot::WRITE,
        kind: vma_kind::HEAP,
        name: heap,
        ..Default::default()
    }];
    let memfd = strings.add(b"demo");
    let fds = vec![FdRecord {
        fd: 3,
        kind: fd_kind::MEMFD,
        flags: 2,
        path: memfd,
        dup_of: FD_NO_DUP,
        peer: FD_NO_DUP,
        data_offset: fd_at,
        data_len: fd_data.len() as u64,
        args: [fd_data.len() as u64, 0, 0, 0],
        ..Default::default()
    }];
    let meta = ImageMetadata {
        header: ImageHeader {
            pid: 77,
            kernel_release: [0; 64],
            ..common::x86_64_header()
        },
        mm: MmRecord {
            exe: heap,
            cmdline: heap,
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
            regsets: vec![
                (CORE_OWNER, nt::PRFPREG, vec![3; 512]),
                (LINUX_OWNER, nt::X86_XSTATE, vec![2; 832]),
            ],
            record: ThreadRecord {
                tid: 77,
                // No sigaltstack, as the dumpers write it.
                altstack_flags: SS_DISABLE,
                ..Default::default()
            },
        }],
        process: Some(ProcessRecord::default()),
        pending: Vec::new(),
        files: FilesMeta {
            fs: Some(FsRecord {
                cwd: heap,
                ..Default::default()
            }),
            fds,
            ..Default::default()
        },
        timers: Default::default(),
        kstate: Default::default(),
        tree: None,
        page_refs: Vec::new(),
        sysv: Default::default(),
    };
    common::finish_and_read(writer, meta, &path)
}

/// The three metadata parts of an image: ELF header, program headers,
/// notes (as byte ranges of the file).
fn parts(bytes: &[u8]) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let elf = parse_elf_header(bytes, bytes.len() as u64, EM_X86_64).unwrap();
    let ph = elf.phoff as usize..elf.phoff as usize + elf.phdrs_size();
    let (off, size) = note_segment(&bytes[ph.clone()], bytes.len() as u64).unwrap();
    (ph, off as usize..(off + size) as usize)
}

fn verify(bytes: &[u8]) -> Result<Option<Sums<'_>>, FormatError> {
    let (ph, notes) = parts(bytes);
    verify_metadata(&bytes[..EHDR_SIZE], &bytes[ph], &bytes[notes])
}

fn check(bytes: &[u8]) -> Result<(), FormatError> {
    let (ph, notes) = parts(bytes);
    check_image(
        &bytes[..EHDR_SIZE],
        &bytes[ph],
        &bytes[notes],
        EM_X86_64,
        bytes.len() as u64,
    )
    .map(|_| ())
}

/// The first data chunk that does not match, as (region, chunk) indexes.
fn bad_chunk(bytes: &[u8]) -> Option<(RegionKind, u64)> {
    let (view, sums) = common::check(bytes).unwrap();
    let sums = sums.unwrap();
    for r in regions(&view, sums.chunk_shift()) {
        let data = &bytes[r.offset as usize..(r.offset + r.len) as usize];
        if let Err(i) = check_chunks(&sums, r.first_chunk, data) {
            return Some((r.kind, i));
        }
    }
    None
}

#[test]
fn round_trip_verifies_every_checksum() {
    let bytes = image("round-trip", true);
    let sums = verify(&bytes).unwrap().expect("a 1.2 image has checksums");
    assert!(sums.has_data());
    let chunk = 1u64 << DEFAULT_CHUNK_SHIFT;
    assert_eq!(sums.chunk_size(), chunk);
    let want = chunk_count(5 * MIB / 2, DEFAULT_CHUNK_SHIFT)
        + 1
        + chunk_count(MIB + 5, DEFAULT_CHUNK_SHIFT);
    assert_eq!(sums.data_count() as u64, want);
    assert_eq!(chunk_count(5 * MIB / 2, 20), 3);
    check(&bytes).unwrap();
    assert_eq!(bad_chunk(&bytes), None);
    // The checksum note is the last note.
    let (_, notes) = parts(&bytes);
    let last = note_spans(&bytes[notes]).last().unwrap().0;
    assert!(last.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS));
}

#[test]
fn a_flip_in_any_note_is_refused_naming_it() {
    let good = image("notes", true);
    let (_, notes) = parts(&good);
    let spans: Vec<(usize, usize, &'static str)> = note_spans(&good[notes.clone()])
        .map(|(n, span)| {
            let at = span.as_ptr() as usize - good.as_ptr() as usize;
            let desc = n.desc.as_ptr() as usize - good.as_ptr() as usize;
            (desc, at + span.len(), note_name(n.owner, n.kind))
        })
        .collect();
    assert!(spans.len() >= 15, "{} notes", spans.len());
    for &(desc, end, name) in &spans {
        // First, middle and last byte of the descriptor.
        for at in [desc, (desc + end) / 2, end - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert_eq!(
                verify(&bad).map(|_| ()),
                Err(FormatError::BadChecksum(name)),
                "flip at {at} in {name}"
            );
        }
    }
    let mut bad = good.clone();
    let fds = spans.iter().find(|s| s.2 == "note NT_KCKPT_FDS").unwrap();
    bad[fds.0 + 1] ^= 1;
    assert_eq!(
        verify(&bad).unwrap_err().to_string(),
        "image is corrupt (checksum of note NT_KCKPT_FDS does not match)"
    );
}

#[test]
fn a_flip_in_the_elf_header_or_program_headers_is_refused() {
    let good = image("headers", true);
    // e_flags (48) and e_shoff (40): no structural check looks at them.
    for at in [40, 48, 62] {
        let mut bad = good.clone();
        bad[at] ^= 4;
        assert_eq!(
            verify(&bad).map(|_| ()),
            Err(FormatError::BadChecksum("the ELF header")),
            "flip at {at}"
        );
    }
    let (ph, _) = parts(&good);
    // p_vaddr of the PT_LOAD (second program header).
    let mut bad = good.clone();
    bad[ph.start + 56 + 16 + 2] ^= 1;
    assert_eq!(
        verify(&bad).map(|_| ()),
        Err(FormatError::BadChecksum("the program header table"))
    );
}

#[test]
fn flipped_data_is_found_in_its_chunk() {
    let good = image("data", true);
    let (view, _) = common::check(&good).unwrap();
    let run = view.runs.get(0).unwrap();
    let fd = view.fds.get(0).unwrap();
    // Metadata stays good: only `info --verify` and the stub's reads see it.
    for (at, want) in [
        (
            run.offset + 5,
            (
                RegionKind::Memory {
                    vma: 0,
                    addr: run.start,
                },
                0,
            ),
        ),
        (
            run.offset + 2 * MIB + 17,
            (
                RegionKind::Memory {
                    vma: 0,
                    addr: run.start,
                },
                (2 * MIB + 17) >> DEFAULT_CHUNK_SHIFT,
            ),
        ),
        (
            fd.data_offset + MIB + 4,
            (RegionKind::Fd { fd: 3 }, (MIB + 4) >> DEFAULT_CHUNK_SHIFT),
        ),
    ] {
        let mut bad = good.clone();
        bad[at as usize] ^= 0x80;
        check(&bad).unwrap();
        assert_eq!(bad_chunk(&bad), Some(want), "flip at {at}");
    }
}

#[test]
fn no_data_checksums_when_asked() {
    let bytes = image("no-data", false);
    let sums = verify(&bytes).unwrap().unwrap();
    assert!(!sums.has_data());
    assert_eq!(sums.data_count(), 0);
    check(&bytes).unwrap();
}

#[test]
fn format_1_1_images_have_no_checksums_and_are_read() {
    let mut bytes = image("old", true);
    let (ph, notes) = parts(&bytes);
    // Drop the checksum note (the last) and say 1.1.
    let last_len = note_spans(&bytes[notes.clone()]).last().unwrap().1.len();
    let filesz_at = ph.start + 32; // first program header: PT_NOTE
    let size = (notes.len() - last_len) as u64;
    bytes[filesz_at..filesz_at + 8].copy_from_slice(&size.to_le_bytes());
    let minor_at = notes.start + 12 + 8 + 10;
    bytes[minor_at..minor_at + 2].copy_from_slice(&1u16.to_le_bytes());
    assert!(verify(&bytes).unwrap().is_none());
    check(&bytes).unwrap();
    // A 1.2 image without it is refused.
    bytes[minor_at..minor_at + 2].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(
        verify(&bytes).map(|_| ()),
        Err(FormatError::MissingNote("checksums"))
    );
}

#[test]
fn the_version_is_judged_before_the_checksums() {
    let mut bytes = image("version", true);
    let (_, notes) = parts(&bytes);
    let minor_at = notes.start + 12 + 8 + 10;
    bytes[minor_at..minor_at + 2].copy_from_slice(&(FORMAT_MINOR + 1).to_le_bytes());
    assert_eq!(
        verify(&bytes).map(|_| ()),
        Err(FormatError::UnsupportedVersion {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR + 1
        })
    );
}

#[test]
fn reseal_makes_an_edited_image_verify_again() {
    let mut bytes = image("reseal", true);
    let (_, notes) = parts(&bytes);
    let time_at = notes.start + 12 + 8 + std::mem::offset_of!(ImageHeader, created_unix);
    bytes[time_at] ^= 1;
    bytes[48] ^= 1; // e_flags
    assert!(verify(&bytes).is_err());
    reseal(&mut bytes).unwrap();
    check(&bytes).unwrap();
    assert_eq!(bad_chunk(&bytes), None);
}
