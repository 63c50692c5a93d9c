//! Format 1.3 records of issue 8 through the writer and the reader: ghost
//! files with their extents (data regions covered by the checksums),
//! descriptors and areas naming them, file locks, guard regions; and the
//! reader's refusal of each kind of inconsistent record.

mod common;

use std::fs::File;

use kckpt_image::checksum::{regions, RegionKind};
use kckpt_image::ghosts::{ghost_fd_kind, S_IFDIR, S_IFREG};
use kckpt_image::read::EM_X86_64;
use kckpt_image::*;
use kckpt_image_write::{FilesMeta, ImageMetadata, ImageWriter, StringTable, ThreadNotesOut};

const PAGE: u64 = 4096;
const BASE: u64 = 0x10_0000;

/// An image with one heap area, one shared area of a deleted file, a
/// ghost for that file (two extents) and a deleted directory, descriptors
/// of both, a lock and a guard region; `edit` changes the records first.
fn image(name: &str, edit: impl FnOnce(&mut Vec<VmaRecord>, &mut FilesMeta)) -> Vec<u8> {
    let path = common::temp_image("ghosts", name);
    let mut writer = ImageWriter::new(File::create(&path).unwrap(), EM_X86_64, PAGE);
    let mut strings = StringTable::default();
    let heap = strings.add(b"[heap]");
    let file = strings.add(b"/tmp/x/data (deleted)");
    let ghost_path = strings.add(b"/tmp/x/data");
    let dir_path = strings.add(b"/tmp/x/sub");
    let a = writer.reserve_region(PAGE);
    writer.write_data(a, &[1; PAGE as usize]).unwrap();
    let b = writer.reserve_region(100);
    writer.write_data(b, &[2; 100]).unwrap();
    let mut vmas = vec![
        VmaRecord {
            start: BASE,
            end: BASE + 4 * PAGE,
            prot: prot::READ | prot::WRITE,
            kind: vma_kind::HEAP,
            name: heap,
            first_run: 0,
            ..Default::default()
        },
        VmaRecord {
            start: 0x7000_0000,
            end: 0x7000_0000 + PAGE,
            prot: prot::READ,
            kind: vma_kind::FILE,
            flags: vma_flags::SHARED | vma_flags::GHOST | vma_flags::MAYWRITE,
            dev: 0xfe_0000_0000,
            inode: 77,
            name: file,
            ..Default::default()
        },
    ];
    let mut files = FilesMeta {
        fs: Some(FsRecord {
            cwd: dir_path,
            ..Default::default()
        }),
        fds: vec![
            FdRecord {
                fd: 3,
                kind: ghost_fd_kind::GHOST,
                flags: 2,
                pos: 5,
                path: ghost_path,
                dup_of: FD_NO_DUP,
                peer: FD_NO_DUP,
                args: [0, 0, 0, 0],
                ..Default::default()
            },
            FdRecord {
                fd: 4,
                kind: ghost_fd_kind::GHOST,
                path: dir_path,
                dup_of: FD_NO_DUP,
                peer: FD_NO_DUP,
                args: [1, 0, 0, 0],
                ..Default::default()
            },
        ],
        ghosts: vec![
            GhostRecord {
                dev: 0xfe_0000_0000,
                inode: 77,
                size: 1 << 20,
                mode: S_IFREG | 0o640,
                flags: ghost_flags::DELETED,
                path: ghost_path,
                first_extent: 0,
                extent_count: 2,
                ..Default::default()
            },
            GhostRecord {
                inode: 78,
                mode: S_IFDIR | 0o755,
                flags: ghost_flags::DELETED | ghost_flags::CWD,
                path: dir_path,
                first_extent: 2,
                ..Default::default()
            },
        ],
        extents: vec![
            ExtentRecord {
                file_offset: 0,
                len: PAGE,
                data_offset: a,
            },
            ExtentRecord {
                file_offset: 65536,
                len: 100,
                data_offset: b,
            },
        ],
        locks: vec![LockRecord {
            fd: 3,
            kind: lock_kind::POSIX,
            lock_type: lock_type::WRITE,
            start: 10,
            len: 10,
            ..Default::default()
        }],
        guards: vec![GuardRecord {
            start: BASE + PAGE,
            len: PAGE,
        }],
        ..Default::default()
    };
    edit(&mut vmas, &mut files);
    let meta = ImageMetadata {
        header: ImageHeader {
            xstate_size: 0,
            ..common::x86_64_header()
        },
        mm: MmRecord {
            start_brk: BASE,
            brk: BASE + 4 * PAGE,
            exe: heap,
            cmdline: heap,
            ..Default::default()
        },
        signals: SignalsRecord {
            actions: [SigactionRecord::default(); 64],
        },
        vmas,
        runs: Vec::new(),
        strings,
        auxv: vec![0; 16],
        prpsinfo: vec![0; 136],
        threads: vec![ThreadNotesOut {
            prstatus: vec![1; 336],
            regsets: Vec::new(),
            record: ThreadRecord {
                tid: 1234,
                altstack_flags: SS_DISABLE,
                ..Default::default()
            },
        }],
        process: None,
        pending: Vec::new(),
        files,
        timers: Default::default(),
        kstate: Default::default(),
        tree: None,
        page_refs: Vec::new(),
        sysv: Default::default(),
    };
    common::finish_and_read(writer, meta, &path)
}

/// The reader's verdict: checksums, structure and fields (registers apart).
fn read(bytes: &[u8]) -> Result<(usize, usize, usize, Vec<RegionKind>), FormatError> {
    let (view, sums) = common::check(bytes)?;
    let shift = sums.map(|s| s.chunk_shift()).unwrap_or(18);
    let kinds = regions(&view, shift).map(|r| r.kind).collect();
    Ok((
        view.ghosts.len(),
        view.locks.len(),
        view.guards.len(),
        kinds,
    ))
}

#[test]
fn ghosts_locks_and_guards_round_trip_with_their_data_checksummed() {
    let (ghosts, locks, guards, kinds) = read(&image("ok", |_, _| {})).unwrap();
    assert_eq!((ghosts, locks, guards), (2, 1, 1));
    assert_eq!(
        kinds,
        vec![
            RegionKind::Ghost {
                ghost: 0,
                file_offset: 0
            },
            RegionKind::Ghost {
                ghost: 0,
                file_offset: 65536
            }
        ]
    );
}

#[test]
fn inconsistent_records_are_refused() {
    type Edit = fn(&mut Vec<VmaRecord>, &mut FilesMeta);
    let cases: &[(&str, Edit)] = &[
        ("extent past the size", |_, f| {
            f.extents[1].file_offset = 1 << 20
        }),
        ("overlapping extents", |_, f| f.extents[1].file_offset = 10),
        ("extents not partitioned", |_, f| {
            f.ghosts[1].first_extent = 1
        }),
        ("directory with data", |_, f| f.ghosts[1].size = 5),
        ("unknown ghost flag", |_, f| f.ghosts[0].flags |= 1 << 9),
        ("deleted and vanishing", |_, f| {
            f.ghosts[0].flags |= ghost_flags::VANISHING
        }),
        ("working directory a file", |_, f| {
            f.ghosts[0].flags |= ghost_flags::CWD
        }),
        ("a socket's mode", |_, f| f.ghosts[0].mode = 0o140644),
        ("reserved field", |_, f| f.ghosts[0].reserved[1] = 1),
        ("descriptor of no ghost", |_, f| f.fds[0].args[0] = 5),
        ("area of no ghost", |v, _| v[1].inode = 99),
        ("ghost area also unavailable", |v, _| {
            v[1].flags |= vma_flags::FILE_UNAVAILABLE
        }),
        ("may-write on anonymous memory", |v, _| {
            v[0].flags |= vma_flags::MAYWRITE
        }),
        ("lock on a missing descriptor", |_, f| f.locks[0].fd = 9),
        ("lock of unknown kind", |_, f| f.locks[0].kind = 5),
        ("lease on a ghost", |_, f| {
            f.locks[0].kind = lock_kind::LEASE;
            f.locks[0].start = 0;
            f.locks[0].len = 0;
        }),
        ("lease with a range", |_, f| {
            f.locks[0].kind = lock_kind::LEASE
        }),
        ("socket filter on a file", |_, f| {
            f.sock_filters = vec![sockfilter::SockFilterRecord {
                fd: 3,
                flags: sockfilter::filter_flags::LOCKED,
                ..Default::default()
            }]
        }),
        ("socket filter on a missing descriptor", |_, f| {
            f.sock_filters = vec![sockfilter::SockFilterRecord {
                fd: 9,
                flags: sockfilter::filter_flags::LOCKED,
                ..Default::default()
            }]
        }),
        ("flock with a range", |_, f| {
            f.locks[0].kind = lock_kind::FLOCK;
        }),
        ("lock range overflow", |_, f| f.locks[0].len = u64::MAX),
        ("guard outside the areas", |_, f| {
            f.guards[0].start = 0x5000_0000
        }),
        ("unaligned guard", |_, f| f.guards[0].len = 100),
        ("empty guard", |_, f| f.guards[0].len = 0),
    ];
    for (what, edit) in cases {
        let bytes = image(what, edit);
        assert!(read(&bytes).is_err(), "{what}: accepted");
    }
}
