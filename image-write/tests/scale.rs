//! The reader's work grows linearly with the image: a crafted image with
//! many threads and many pending signals is checked at once (the pending
//! check once looked each record's thread up from the start: 6 s for the
//! image below, minutes for a 64 MiB one).

mod common;

use std::fs::File;
use std::time::{Duration, Instant};

use kckpt_image::read::{note_segment, parse_elf_header, EM_X86_64};
use kckpt_image::*;
use kckpt_image_write::{ImageMetadata, ImageWriter, StringTable, ThreadNotesOut};

const THREADS: u32 = 4000;
const PENDING: usize = 40_000;

#[test]
fn many_threads_and_pending_signals_are_checked_in_linear_time() {
    let path = common::temp_image("scale", "pending");
    let writer = ImageWriter::new(File::create(&path).unwrap(), EM_X86_64, 4096);
    let pid = 1000;
    let threads = (0..THREADS)
        .map(|i| ThreadNotesOut {
            prstatus: vec![0; 336],
            regsets: Vec::new(),
            record: ThreadRecord {
                tid: pid + i,
                altstack_flags: SS_DISABLE,
                ..Default::default()
            },
        })
        .collect();
    let mut siginfo = [0u8; 128];
    siginfo[..4].copy_from_slice(&10u32.to_le_bytes());
    // Every record names the last thread: the worst case of a lookup.
    let last = PendingSignalRecord {
        tid: pid + THREADS - 1,
        signo: 10,
        siginfo,
    };
    let meta = ImageMetadata {
        header: ImageHeader {
            pid,
            xcr0: 3,
            xstate_size: 0,
            created_unix: 0,
            kernel_release: [0; 64],
            ..common::x86_64_header()
        },
        mm: MmRecord::default(),
        signals: SignalsRecord {
            actions: [SigactionRecord::default(); 64],
        },
        vmas: Vec::new(),
        runs: Vec::new(),
        strings: StringTable::default(),
        auxv: Vec::new(),
        prpsinfo: vec![0; 136],
        threads,
        process: None,
        pending: vec![last; PENDING],
        files: Default::default(),
        timers: Default::default(),
        kstate: Default::default(),
        tree: None,
        page_refs: Vec::new(),
        sysv: Default::default(),
    };
    let bytes = common::finish_and_read(writer, meta, &path);

    let started = Instant::now();
    let len = bytes.len() as u64;
    let elf = parse_elf_header(&bytes, len, EM_X86_64).unwrap();
    let table = &bytes[elf.phoff as usize..elf.phoff as usize + elf.phdrs_size()];
    let (off, size) = note_segment(table, len).unwrap();
    let view = ImageView::parse(&bytes[off as usize..(off + size) as usize], EM_X86_64, len);
    let took = started.elapsed();
    let view = view.unwrap();
    assert_eq!(view.header.thread_count, THREADS);
    assert_eq!(view.pending.len(), PENDING);
    assert!(took < Duration::from_secs(2), "the reader took {took:?}");
}
