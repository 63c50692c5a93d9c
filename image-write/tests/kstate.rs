//! The kernel-state notes of format 1.3 (`kckpt_image::kstate`): a round
//! trip through the writer and the reader, then one test per value the
//! reader must refuse.

mod common;

use std::fs::File;

use kckpt_image::cgroup_props::CgroupPropRecord;
use kckpt_image::kstate::*;
use kckpt_image::read::EM_X86_64;
use kckpt_image::*;
use kckpt_image_write::{
    reseal, task_note, ImageMetadata, ImageWriter, KstateMeta, StringTable, ThreadNotesOut,
};

const PAGE: u64 = 4096;
const RING: u64 = 0x7000_0000;

/// What the sample image holds; tests change one thing.
struct Sample {
    kstate: KstateRecord,
    task: TaskRecord,
    groups: Vec<u32>,
    aio: AioRingRecord,
    /// (tid, line, dir) of each cgroup record.
    cgroups: Vec<(u32, &'static str, &'static str)>,
    /// (cgroup index, name, value) of each cgroup setting.
    props: Vec<(u32, &'static str, &'static str)>,
}

fn sample() -> Sample {
    Sample {
        kstate: KstateRecord {
            flags: kstate_flags::HAVE_MEMBARRIER | kstate_flags::HAVE_OOM_SCORE_ADJ,
            child_subreaper: 1,
            thp_disable: 3,
            oom_score_adj: -17,
            loginuid: LOGINUID_UNSET,
            membarrier: (1 << 2) | (1 << 4),
            stop_signal: 20,
            ..KstateRecord::default()
        },
        task: TaskRecord {
            uid: [1, 2, 3, 4],
            gid: [5, 6, 7, 8],
            cap_permitted: 0x400,
            robust_list: 0x5000_0000,
            robust_len: 24,
            pdeath_signal: 10,
            sched_policy: kckpt_image::kstate::SCHED_SAVED | 3,
            nice: 5,
            ..TaskRecord::default()
        },
        groups: vec![27, 100],
        aio: AioRingRecord {
            addr: RING,
            len: PAGE,
            nr_events: 62,
            ring_nr: 127,
            head: 1,
            tail: 3,
            reserved: 0,
        },
        cgroups: vec![
            (0, "4:memory:/a", "/sys/fs/cgroup/memory/a"),
            (1236, "4:memory:/a/b", "/sys/fs/cgroup/memory/a/b"),
        ],
        props: vec![
            (0, "memory.limit_in_bytes", "1048576\n"),
            (1, "notify_on_release", "1\n"),
        ],
    }
}

fn thread(tid: u32, task: &[u8]) -> ThreadNotesOut {
    ThreadNotesOut {
        prstatus: vec![1; 336],
        regsets: vec![(NOTE_OWNER, NT_KCKPT_TASK, task.to_vec())],
        record: ThreadRecord {
            tid,
            altstack_flags: SS_DISABLE,
            ..Default::default()
        },
    }
}

fn write(name: &str, s: &Sample) -> Vec<u8> {
    let path = common::temp_image("kstate", name);
    let writer = ImageWriter::new(File::create(&path).unwrap(), EM_X86_64, PAGE);
    let mut strings = StringTable::default();
    let ring_name = strings.add(b"/[aio] (deleted)");
    let cgroups = s
        .cgroups
        .iter()
        .map(|&(tid, line, dir)| CgroupRecord {
            tid,
            flags: 0,
            line: strings.add(line.as_bytes()),
            dir: strings.add(dir.as_bytes()),
            reserved: 0,
        })
        .collect();
    let cgroup_props = s
        .props
        .iter()
        .map(|&(cgroup, name, value)| CgroupPropRecord {
            cgroup,
            flags: 0,
            name: strings.add(name.as_bytes()),
            value: strings.add(value.as_bytes()),
            reserved: [0; 2],
        })
        .collect();
    let task = task_note(s.task, &s.groups);
    let meta = ImageMetadata {
        header: ImageHeader {
            ..common::x86_64_header()
        },
        mm: MmRecord {
            cmdline: ring_name,
            exe: ring_name,
            ..Default::default()
        },
        signals: SignalsRecord {
            actions: [SigactionRecord::default(); 64],
        },
        vmas: vec![VmaRecord {
            start: RING,
            end: RING + PAGE,
            prot: prot::READ | prot::WRITE,
            flags: vma_flags::SHARED | vma_flags::FILE_UNAVAILABLE,
            kind: vma_kind::FILE,
            name: ring_name,
            ..Default::default()
        }],
        runs: Vec::new(),
        strings,
        auxv: vec![0; 16],
        prpsinfo: vec![0; 136],
        threads: vec![thread(1234, &task), thread(1236, &task)],
        process: None,
        pending: Vec::new(),
        files: Default::default(),
        timers: Default::default(),
        kstate: KstateMeta {
            kstate: Some(s.kstate),
            aio: vec![s.aio],
            cgroups,
            cgroup_props,
        },
        tree: None,
        page_refs: Vec::new(),
        sysv: Default::default(),
    };
    common::finish_and_read(writer, meta, &path)
}

fn with_view<T>(bytes: &[u8], f: impl FnOnce(&ImageView<'_>) -> T) -> Result<T, FormatError> {
    common::view(bytes).map(|v| f(&v))
}

fn refused(name: &str, s: &Sample) -> FormatError {
    let mut bytes = write(name, s);
    reseal(&mut bytes).unwrap();
    match with_view(&bytes, |_| ()) {
        Ok(()) => panic!("{name}: accepted"),
        Err(e) => e,
    }
}

#[test]
fn round_trip() {
    let s = sample();
    let bytes = write("round-trip", &s);
    with_view(&bytes, |v| {
        assert_eq!(v.kstate, Some(s.kstate));
        assert_eq!(v.aio.get(0), Some(s.aio));
        assert_eq!(v.cgroups.len(), 2);
        let c = v.cgroups.get(1).unwrap();
        assert_eq!(c.tid, 1236);
        assert_eq!(v.string(c.dir).unwrap(), b"/sys/fs/cgroup/memory/a/b");
        assert_eq!(v.cgroup_props.len(), 2);
        let p = v.cgroup_props.get(1).unwrap();
        assert_eq!(p.cgroup, 1);
        assert_eq!(v.string(p.name).unwrap(), b"notify_on_release");
        assert_eq!(v.string(p.value).unwrap(), b"1\n");
        for t in v.threads() {
            let (rec, groups) = parse_task(t.regset(NOTE_OWNER, NT_KCKPT_TASK).unwrap()).unwrap();
            assert_eq!(rec.group_count, 2);
            assert_eq!(
                TaskRecord {
                    group_count: 0,
                    ..rec
                },
                s.task
            );
            assert_eq!((group(groups, 0), group(groups, 1)), (Some(27), Some(100)));
        }
    })
    .unwrap();
}

#[test]
fn bad_kernel_state_values_are_refused() {
    let mut s = sample();
    s.kstate.membarrier |= 1 << 3; // an execution command, not a registration
    assert_eq!(
        refused("membarrier", &s),
        FormatError::BadField("kernel state: bad values")
    );
    let mut s = sample();
    s.kstate.oom_score_adj = 1001;
    assert!(matches!(refused("oom", &s), FormatError::BadField(_)));
    let mut s = sample();
    s.kstate.reserved[1] = 1;
    assert!(matches!(refused("reserved", &s), FormatError::BadField(_)));
    let mut s = sample();
    s.kstate.stop_signal = 10; // SIGUSR1 stops nothing
    assert!(matches!(refused("stop", &s), FormatError::BadField(_)));
}

#[test]
fn bad_task_records_are_refused() {
    let mut s = sample();
    s.task.robust_len = 16;
    assert!(matches!(refused("robust", &s), FormatError::BadField(_)));
    for (name, edit) in [
        (
            "pdeathsig",
            (|t: &mut TaskRecord| t.pdeath_signal = 65) as fn(&mut TaskRecord),
        ),
        ("deadline", |t| t.sched_policy = SCHED_SAVED | 6),
        ("nice", |t| t.nice = 20),
        ("priority", |t| t.sched_priority = 1),
        ("fifo without priority", |t| {
            t.sched_policy = SCHED_SAVED | 1
        }),
        ("unsaved", |t| t.sched_policy = 3),
    ] {
        let mut s = sample();
        edit(&mut s.task);
        assert!(
            matches!(refused(name, &s), FormatError::BadField(_)),
            "{name}"
        );
    }
    let mut s = sample();
    s.groups = vec![0; MAX_GROUPS as usize + 1];
    assert_eq!(
        refused("groups", &s),
        FormatError::BadRecordSize("task"),
        "more groups than NGROUPS_MAX"
    );
}

#[test]
fn aio_rings_must_match_a_saved_shared_area() {
    for (name, edit) in [
        (
            "head",
            (|a: &mut AioRingRecord| a.head = 127) as fn(&mut AioRingRecord),
        ),
        ("tail", |a| a.tail = 200),
        ("nr", |a| a.ring_nr = 255),
        ("address", |a| a.addr += PAGE),
        ("length", |a| a.len = 2 * PAGE),
        ("events", |a| a.nr_events = 0),
    ] {
        let mut s = sample();
        edit(&mut s.aio);
        assert_eq!(
            refused(name, &s),
            FormatError::BadField("aio ring: bad address, size, head or tail"),
            "{name}"
        );
    }
}

#[test]
fn cgroup_records_come_in_order_and_name_saved_threads() {
    let mut s = sample();
    s.cgroups.reverse();
    assert!(matches!(refused("order", &s), FormatError::BadField(_)));
    let mut s = sample();
    s.cgroups[1].0 = 999;
    assert!(matches!(refused("thread", &s), FormatError::BadField(_)));
    let mut s = sample();
    s.cgroups[0].2 = "relative/dir";
    assert!(matches!(refused("relative", &s), FormatError::BadField(_)));
}

#[test]
fn bad_cgroup_settings_are_refused() {
    let bad =
        FormatError::BadField("cgroup setting: bad cgroup index, name, value or reserved field");
    let mut s = sample();
    s.props[1].0 = 2; // only 2 cgroup records
    assert_eq!(refused("prop-index", &s), bad);
    let mut s = sample();
    s.props[0].1 = "../../etc/passwd";
    assert_eq!(refused("prop-slash", &s), bad);
    let mut s = sample();
    s.props[0].1 = "..";
    assert_eq!(refused("prop-dotdot", &s), bad);
    let mut s = sample();
    s.props[0].1 = "";
    assert_eq!(refused("prop-empty", &s), bad);
    let mut s = sample();
    s.props[0].2 = "1\u{0}2";
    assert_eq!(refused("prop-nul", &s), bad);
    let long = "7\n".repeat(2049);
    let mut s = sample();
    s.props[0].2 = long.leak();
    assert_eq!(refused("prop-long", &s), bad);
}
