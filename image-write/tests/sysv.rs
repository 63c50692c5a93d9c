//! Format 1.11 SysV semaphore sets and message queues through the writer
//! and the reader: the tables round-trip (values, messages in order with
//! their types and texts), and the reader refuses each kind of
//! inconsistent record.

mod common;

use std::fs::File;

use kckpt_image::read::EM_X86_64;
use kckpt_image::sysv::{messages, values_of, SysvMsgQueueRecord, SysvSemRecord};
use kckpt_image::*;
use kckpt_image_write::{ImageMetadata, ImageWriter, StringTable, SysvMeta, ThreadNotesOut};

const PAGE: u64 = 4096;
const BASE: u64 = 0x10_0000;

/// Two sets (2 and 1 semaphores) and two queues (two messages, then
/// none).
fn sysv() -> SysvMeta {
    let mut m = SysvMeta {
        sem: vec![
            SysvSemRecord {
                id: 3,
                key: 0x1234,
                mode: 0o640,
                nsems: 2,
                first_value: 0,
                ..Default::default()
            },
            SysvSemRecord {
                id: 9,
                mode: 0o600,
                nsems: 1,
                first_value: 2,
                ..Default::default()
            },
        ],
        sem_values: vec![5, 32767, 0],
        msg: vec![
            SysvMsgQueueRecord {
                id: 1,
                key: 0x1234,
                mode: 0o620,
                msg_count: 2,
                qbytes: 16384,
                ..Default::default()
            },
            SysvMsgQueueRecord {
                id: 2,
                mode: 0o600,
                qbytes: 100,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    m.push_message(1, b"alpha");
    m.push_message(7, b"");
    m
}

/// An image holding [`sysv`] changed by `edit`, written and read back.
fn image(name: &str, edit: impl FnOnce(&mut SysvMeta)) -> Vec<u8> {
    let path = common::temp_image("sysv", name);
    let writer = ImageWriter::new(File::create(&path).unwrap(), EM_X86_64, PAGE);
    let mut strings = StringTable::default();
    let heap = strings.add(b"[heap]");
    let mut sysv = sysv();
    edit(&mut sysv);
    let meta = ImageMetadata {
        header: ImageHeader {
            xstate_size: 0,
            ..common::x86_64_header()
        },
        mm: MmRecord {
            start_brk: BASE,
            brk: BASE,
            exe: heap,
            cmdline: heap,
            ..Default::default()
        },
        signals: SignalsRecord {
            actions: [SigactionRecord::default(); 64],
        },
        vmas: Vec::new(),
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
        files: Default::default(),
        timers: Default::default(),
        kstate: Default::default(),
        tree: None,
        page_refs: Vec::new(),
        sysv,
    };
    common::finish_and_read(writer, meta, &path)
}

#[test]
fn sets_and_queues_round_trip() {
    let bytes = image("ok", |_| {});
    let (view, _) = common::check(&bytes).unwrap();
    let sets: Vec<SysvSemRecord> = view.sysv_sem.iter().collect();
    assert_eq!(sets, sysv().sem);
    let values: Vec<Vec<u8>> = sets.iter().map(|s| values_of(&view, s).to_vec()).collect();
    assert_eq!(
        values,
        [
            [5u16, 32767]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect::<Vec<u8>>(),
            0u16.to_ne_bytes().to_vec()
        ]
    );
    assert_eq!(view.sysv_msg.len(), 2);
    let msgs: Vec<(i64, Vec<u8>)> = messages(view.sysv_messages)
        .map(|m| m.map(|(h, _, text)| (h.mtype, text.to_vec())).unwrap())
        .collect();
    assert_eq!(msgs, [(1, b"alpha".to_vec()), (7, Vec::new())]);
    // Each message's `struct msgbuf` (mtype then text) is where the stub
    // passes it to msgsnd.
    let (_, at, _) = messages(view.sysv_messages).next().unwrap().unwrap();
    assert_eq!(&view.sysv_messages[at..at + 8], &1i64.to_ne_bytes());
    assert_eq!(&view.sysv_messages[at + 8..at + 13], b"alpha");
}

#[test]
fn inconsistent_records_are_refused() {
    type Edit = fn(&mut SysvMeta);
    let cases: &[(&str, Edit)] = &[
        ("sets out of order", |m| m.sem[1].id = 3),
        ("empty set", |m| m.sem[1].nsems = 0),
        ("too many semaphores", |m| m.sem[1].nsems = 32001),
        ("set mode bits", |m| m.sem[0].mode |= 0o1000),
        ("set reserved", |m| m.sem[0].reserved = 1),
        ("values not partitioned", |m| m.sem[1].first_value = 1),
        ("a value missing", |m| {
            m.sem_values.pop();
        }),
        ("a value too large", |m| m.sem_values[0] = 32768),
        ("queues out of order", |m| m.msg[1].id = 1),
        ("queue mode bits", |m| m.msg[0].mode |= 0o4000),
        ("queue reserved", |m| m.msg[0].reserved = 1),
        ("a message missing", |m| m.msg[1].msg_count = 1),
        ("a message too many", |m| m.msg[0].msg_count = 1),
        ("more bytes than qbytes", |m| m.msg[0].qbytes = 4),
        ("more messages than qbytes", |m| m.msg[0].qbytes = 1),
        ("message type 0", |m| {
            m.messages.clear();
            m.push_message(0, b"alpha");
            m.push_message(7, b"");
        }),
        ("truncated message", |m| {
            m.messages.truncate(m.messages.len() - 3);
        }),
        ("message longer than its note", |m| m.messages[0] = 200),
        ("id above i32::MAX", |m| m.msg[1].id = 1 << 31),
    ];
    for (name, edit) in cases {
        let bytes = image(&name.replace(' ', "-"), edit);
        assert!(
            common::check(&bytes).is_err(),
            "{name}: the reader accepted it"
        );
    }
}
