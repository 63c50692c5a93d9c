//! Issue 8 records (format 1.3): descriptor kinds `TERMINAL`, `CTTY` and
//! `REOPEN`, the notes `NT_KCKPT_TERMINALS` and `NT_KCKPT_JOB`. A round
//! trip through the writer and the reader, then the values the reader
//! must refuse.

mod common;

use std::fs::File;

use kckpt_image::read::EM_X86_64;
use kckpt_image::terminal::*;
use kckpt_image::*;
use kckpt_image_write::{FilesMeta, ImageMetadata, ImageWriter, StringTable, ThreadNotesOut};

const PAGE: u64 = 4096;

fn fd(fd: u32, kind: u32, path: StrRef) -> FdRecord {
    FdRecord {
        fd,
        kind,
        flags: 2,
        path,
        dup_of: FD_NO_DUP,
        peer: FD_NO_DUP,
        ..Default::default()
    }
}

/// An image with a file at fd 0, terminals at 1 and 2 (2 a dup), the
/// controlling terminal at 3, a pipe 4/5 with a second description of its
/// read end at 6, and a memfd at 7 opened again at 8.
fn sample() -> Vec<u8> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = common::temp_image("terminal", &seq.to_string());
    let mut writer = ImageWriter::new(File::create(&path).unwrap(), EM_X86_64, PAGE);
    let mut strings = StringTable::default();
    let heap = strings.add(b"[heap]");
    let file = strings.add(b"/tmp/out.txt");
    let pts = strings.add(b"/dev/pts/3");
    let tty = strings.add(b"/dev/tty");
    let empty = strings.add(b"");
    let mem = strings.add(b"buf");
    let region = writer.reserve_region(PAGE);
    writer.write_data(region, &[0xaa; PAGE as usize]).unwrap();
    let base = 0x10_0000u64;
    let mut fds = vec![
        FdRecord {
            pos: 100,
            flags: 1,
            ..fd(0, fd_kind::FILE, file)
        },
        fd(1, fd_kind::TERMINAL, pts),
        FdRecord {
            dup_of: 1,
            ..fd(2, fd_kind::TERMINAL, pts)
        },
        fd(3, fd_kind::CTTY, tty),
        FdRecord {
            flags: 0,
            peer: 5,
            ..fd(4, fd_kind::PIPE, empty)
        },
        FdRecord {
            flags: 1,
            peer: 4,
            ..fd(5, fd_kind::PIPE, empty)
        },
        FdRecord {
            flags: 0o4000,
            args: [4, 0, 0, 0],
            ..fd(6, fd_kind::REOPEN, empty)
        },
        FdRecord {
            args: [0, 0, 0, 0],
            ..fd(7, fd_kind::MEMFD, mem)
        },
        FdRecord {
            pos: 3,
            args: [7, 0, 0, 0],
            ..fd(8, fd_kind::REOPEN, mem)
        },
    ];
    fds[0].fd_flags = 0;
    let mut cc = [0u8; 32];
    cc[..NCCS].copy_from_slice(&[3; NCCS]);
    let term = |fd, flags| TerminalRecord {
        fd,
        flags,
        lflag: 0o5060,
        cflag: 0o277,
        cc,
        winsize: [24, 80, 0, 0],
        ..Default::default()
    };
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
        vmas: vec![VmaRecord {
            start: base,
            end: base + PAGE,
            stored_bytes: PAGE,
            first_run: 0,
            run_count: 1,
            prot: prot::READ | prot::WRITE,
            kind: vma_kind::HEAP,
            name: heap,
            ..Default::default()
        }],
        runs: vec![RunRecord {
            start: base,
            len: PAGE,
            offset: region,
        }],
        strings,
        auxv: vec![0; 16],
        prpsinfo: vec![0; 136],
        threads: vec![ThreadNotesOut {
            prstatus: vec![1; 336],
            regsets: vec![(LINUX_OWNER, nt::X86_XSTATE, vec![2; 832])],
            record: ThreadRecord {
                tid: 77,
                altstack_flags: 2,
                ..Default::default()
            },
        }],
        process: None,
        pending: Vec::new(),
        files: FilesMeta {
            fs: Some(FsRecord {
                cwd: file,
                ..Default::default()
            }),
            fds,
            epoll: Vec::new(),
            terminals: vec![
                term(1, terminal_flags::CTTY | terminal_flags::FOREGROUND),
                term(3, terminal_flags::CTTY),
            ],
            job: Some(JobRecord {
                pid: 77,
                pgid: 77,
                sid: 70,
                tpgid: 77,
                tty_nr: 34819,
                ..Default::default()
            }),
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

fn parse_then<T>(bytes: &[u8], f: impl FnOnce(&ImageView) -> T) -> Result<T, FormatError> {
    common::check(bytes).map(|(view, _)| f(&view))
}

#[test]
fn terminals_job_and_reopens_round_trip() {
    let bytes = sample();
    let (terminals, job, kinds) = parse_then(&bytes, |v| {
        (
            v.terminals.iter().collect::<Vec<_>>(),
            v.job,
            v.fds.iter().map(|r| r.kind).collect::<Vec<_>>(),
        )
    })
    .unwrap();
    assert_eq!(terminals.len(), 2);
    assert_eq!(terminals[0].fd, 1);
    assert_eq!(terminals[0].winsize, [24, 80, 0, 0]);
    assert_eq!(terminals[1].flags, terminal_flags::CTTY);
    let job = job.unwrap();
    assert!(job.group_leader() && !job.session_leader() && job.foreground());
    assert_eq!(
        kinds,
        [
            fd_kind::FILE,
            fd_kind::TERMINAL,
            fd_kind::TERMINAL,
            fd_kind::CTTY,
            fd_kind::PIPE,
            fd_kind::PIPE,
            fd_kind::REOPEN,
            fd_kind::MEMFD,
            fd_kind::REOPEN
        ]
    );
}

#[test]
fn bad_terminal_job_and_reopen_values_are_refused() {
    let bytes = sample();
    let fd_size = std::mem::size_of::<FdRecord>();
    let term_size = std::mem::size_of::<TerminalRecord>();
    // (note, offset in its descriptor, width, value, expected)
    let bad_files = Err(FormatError::BadFiles);
    let field = |what| Err(FormatError::BadField(what));
    type Case = (u32, usize, usize, u64, Result<(), FormatError>);
    let cases: Vec<Case> = vec![
        // A REOPEN of a file (only pipes and memfds are reopened).
        (NT_KCKPT_FDS, 6 * fd_size + 56, 8, 0, bad_files),
        // ... of itself, of a missing descriptor.
        (NT_KCKPT_FDS, 6 * fd_size + 56, 8, 6, bad_files),
        (NT_KCKPT_FDS, 6 * fd_size + 56, 8, 99, bad_files),
        // ... with other arguments.
        (
            NT_KCKPT_FDS,
            6 * fd_size + 64,
            8,
            1,
            field("fd: bad kind-specific values"),
        ),
        // A TERMINAL above 2 that is not a dup.
        (
            NT_KCKPT_FDS,
            3 * fd_size + 4,
            4,
            u64::from(fd_kind::TERMINAL),
            field("fd: inherited descriptor above 2"),
        ),
        // An unknown kind between the known ones.
        (NT_KCKPT_FDS, 3 * fd_size + 4, 4, 12, bad_files),
        (NT_KCKPT_FDS, 3 * fd_size + 4, 4, 23, bad_files),
        // A terminal record naming a file, or out of order.
        (NT_KCKPT_TERMINALS, 0, 4, 0, bad_files),
        (NT_KCKPT_TERMINALS, term_size, 4, 1, bad_files),
        (
            NT_KCKPT_TERMINALS,
            4,
            4,
            4,
            field("terminal: unknown flags"),
        ),
        (
            NT_KCKPT_TERMINALS,
            36,
            4,
            1,
            field("terminal: reserved field not zero"),
        ),
        (
            NT_KCKPT_TERMINALS,
            40 + NCCS,
            1,
            1,
            field("terminal: control characters past NCCS"),
        ),
        // The job of another pid; reserved fields.
        (NT_KCKPT_JOB, 0, 4, 78, bad_files),
        (
            NT_KCKPT_JOB,
            24,
            8,
            1,
            field("job: reserved field not zero"),
        ),
    ];
    for (kind, at, width, value, expected) in cases {
        let mut bad = bytes.clone();
        let off = common::kckpt_desc_offset(&bad, kind) + at;
        bad[off..off + width].copy_from_slice(&value.to_le_bytes()[..width]);
        kckpt_image_write::reseal(&mut bad).unwrap();
        let got = parse_then(&bad, |_| ());
        assert_eq!(got, expected, "{kind:#x}+{at} = {value}");
    }
}
