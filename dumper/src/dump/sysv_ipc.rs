//! SysV semaphore sets and message queues the dumped processes use
//! (format 1.11, `kckpt_image::sysv`), read while they are stopped:
//! - which: a set one of whose semaphores a process of the dump operated
//!   on last (`semctl GETPID`), a queue one of them sent to or received
//!   from last (`lspid`, `lrpid` of `/proc/sysvipc/msg`), in kckpt's IPC
//!   namespace. A SysV id is only an integer in the process's memory, so
//!   this is the evidence the kernel gives; an object the process uses
//!   but another process used last is not seen (`dumper/README.md`).
//! - refused by name: a process in another IPC namespace than kckpt's
//!   when that namespace holds any SysV object (a child of the dumper
//!   joins it to look: `fdsys::ipc_ns_has_objects`); an object that a
//!   live process outside the dump used last (the restore would make a
//!   copy of its own); a process of the dump with a semaphore undo list
//!   (`SEM_UNDO`) while semaphore sets exist, whose adjustments no
//!   interface reads (`--skip-unsupported` turns these three into
//!   warnings); a queue whose messages cannot be copied (`MSG_COPY`).
//! - content: the semaphores' values (`GETALL`), the messages in queue
//!   order (`msgrcv` with `MSG_COPY`, which leaves them queued), the
//!   queue's `msg_qbytes`.
//!
//! The restore re-creates them under their ids in a new IPC namespace,
//! with the shared memory segments (`sysv`).

use std::fs;
use std::path::Path;

use kckpt_image::sysv::{SysvMsgQueueRecord, SysvSemRecord, MAX_MESSAGE_BYTES, MAX_SETS};
use kckpt_image_write::SysvMeta;

use super::fdsys;
use crate::error::{Error, Result};

/// The rows of `/proc/sysvipc/NAME` (after the heading), as words.
fn rows(name: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/sysvipc/{name}")).unwrap_or_default();
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn num(row: &[String], i: usize) -> i64 {
    row.get(i).and_then(|w| w.parse().ok()).unwrap_or(-1)
}

fn octal(row: &[String], i: usize) -> u32 {
    row.get(i)
        .and_then(|w| u32::from_str_radix(w, 8).ok())
        .unwrap_or(0)
}

/// A live process outside `dump` that used the object last (`pid`, 0
/// for none).
fn outside(pid: i64, dump: &[i32]) -> Option<i64> {
    (pid > 0
        && !dump.iter().any(|&p| i64::from(p) == pid)
        && Path::new(&format!("/proc/{pid}")).exists())
    .then_some(pid)
}

/// The semaphore sets and message queues `pids` (the processes of the
/// dump in kckpt's IPC namespace; the first is named in refusals) use,
/// with their content, as the SysV notes' semaphore and message parts.
/// `skip`: an object also used outside is a warning, saved as it is.
pub fn collect(pids: &[i32], skip: bool, warnings: &mut Vec<String>) -> Result<SysvMeta> {
    let mut meta = SysvMeta::default();
    let Some(&first) = pids.first() else {
        return Ok(meta);
    };
    let (pids, foreign): (Vec<i32>, Vec<i32>) =
        pids.iter().partition(|&&p| super::sysv::in_kckpt_ipc_ns(p));
    let mut reasons = Vec::new();
    // Objects also used outside, undo lists, other namespaces' objects:
    // refused, or with `skip` warnings.
    let mut skippable = Vec::new();
    let mut seen = Vec::new();
    for pid in foreign {
        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/ipc")) else {
            continue;
        };
        if seen.contains(&ns) {
            continue;
        }
        match fdsys::ipc_ns_has_objects(pid) {
            Ok(false) => {}
            Ok(true) => skippable.push(format!(
                "SysV IPC objects of pid {pid}'s IPC namespace, another than kckpt's (not saved)"
            )),
            Err(e) => skippable.push(format!(
                "pid {pid}'s IPC namespace, another than kckpt's (SysV IPC objects there are not saved; cannot look into it: {})",
                e.desc()
            )),
        }
        seen.push(ns);
    }
    let also = |what: &str, by: i64| {
        format!(
            "{what} also used by pid {by} outside the dump (the restore makes a copy of its own)"
        )
    };
    // key semid perms nsems uid gid ...
    let sem_rows = if pids.is_empty() {
        Vec::new()
    } else {
        rows("sem")
    };
    let mut sets: Vec<(SysvSemRecord, Vec<u16>)> = Vec::new();
    for r in &sem_rows {
        let (id, n) = (num(r, 1), num(r, 3));
        if id < 0 || n <= 0 {
            continue;
        }
        let last: Vec<i64> = (0..n)
            .map(|i| fdsys::sem_last_pid(id as i32, i as i32).map_or(0, i64::from))
            .collect();
        if !last.iter().any(|&p| p > 0 && pids.contains(&(p as i32))) {
            continue;
        }
        let shown = format!("SysV semaphore set {id} (key {:#x})", num(r, 0) as i32);
        if let Some(by) = last.iter().find_map(|&p| outside(p, &pids)) {
            skippable.push(also(&shown, by));
        }
        let Some(values) = fdsys::sem_values(id as i32, n as usize) else {
            reasons.push(format!("{shown}: its values cannot be read (GETALL)"));
            continue;
        };
        sets.push((
            SysvSemRecord {
                id: id as u32,
                key: num(r, 0) as u32,
                mode: octal(r, 2) & 0o777,
                uid: num(r, 4) as u32,
                gid: num(r, 5) as u32,
                nsems: n as u32,
                ..Default::default()
            },
            values,
        ));
    }
    if !sem_rows.is_empty() {
        skippable.extend(fdsys::undo_lists(&pids).into_iter().map(|pid| {
            format!(
                "SysV semaphore undo list of pid {pid} (semop with SEM_UNDO, or a thread it started): its adjustments cannot be saved"
            )
        }));
    }
    sets.sort_by_key(|(s, _)| s.id);
    for (mut s, values) in sets {
        s.first_value = meta.sem_values.len() as u32;
        meta.sem_values.extend(values);
        meta.sem.push(s);
    }
    // key msqid perms cbytes qnum lspid lrpid uid gid ...
    let mut queues: Vec<&Vec<String>> = Vec::new();
    let msg_rows = if pids.is_empty() {
        Vec::new()
    } else {
        rows("msg")
    };
    for r in &msg_rows {
        let (lspid, lrpid) = (num(r, 5), num(r, 6));
        if [lspid, lrpid]
            .iter()
            .any(|&p| p > 0 && pids.contains(&(p as i32)))
        {
            queues.push(r);
        }
    }
    queues.sort_by_key(|r| num(r, 1));
    let mut total = 0u64;
    for r in queues {
        let (id, cbytes, qnum) = (num(r, 1) as i32, num(r, 3), num(r, 4));
        let shown = format!("SysV message queue {id} (key {:#x})", num(r, 0) as i32);
        if let Some(by) = [num(r, 5), num(r, 6)]
            .into_iter()
            .find_map(|p| outside(p, &pids))
        {
            skippable.push(also(&shown, by));
        }
        total += cbytes.max(0) as u64;
        if total > MAX_MESSAGE_BYTES {
            reasons.push(format!(
                "{shown}: the queues hold more than {} MiB of messages",
                MAX_MESSAGE_BYTES >> 20
            ));
            break;
        }
        let qbytes = match fdsys::msg_qbytes(id) {
            Ok(q) => q,
            Err(e) => {
                reasons.push(format!("{shown}: cannot read its size limit: {}", e.desc()));
                continue;
            }
        };
        let mut read = Vec::new();
        for i in 0..qnum.max(0) {
            match fdsys::msg_copy(id, i, cbytes.max(0) as usize) {
                Ok(m) => read.push(m),
                Err(e) => {
                    let why = if e == nix::errno::Errno::ENOSYS {
                        "the kernel lacks MSG_COPY (CONFIG_CHECKPOINT_RESTORE)".to_owned()
                    } else {
                        format!("message {i} cannot be copied (MSG_COPY): {}", e.desc())
                    };
                    reasons.push(format!("{shown}: {why}"));
                    break;
                }
            }
        }
        if read.len() as i64 != qnum.max(0) {
            continue;
        }
        let bytes: u64 = read.iter().map(|(_, t)| t.len() as u64).sum();
        if bytes > qbytes || read.len() as u64 > qbytes {
            reasons.push(format!(
                "{shown} holds {bytes} bytes in {} messages, more than its size limit {qbytes} (msg_qbytes lowered after they were queued)",
                read.len()
            ));
            continue;
        }
        for (mtype, text) in &read {
            meta.push_message(*mtype, text);
        }
        meta.msg.push(SysvMsgQueueRecord {
            id: id as u32,
            key: num(r, 0) as u32,
            mode: octal(r, 2) & 0o777,
            uid: num(r, 7) as u32,
            gid: num(r, 8) as u32,
            msg_count: read.len() as u32,
            qbytes,
            ..Default::default()
        });
    }
    if meta.sem.len() > MAX_SETS || meta.msg.len() > MAX_SETS {
        reasons.push(format!(
            "{} SysV semaphore sets and {} message queues (at most {MAX_SETS} of each)",
            meta.sem.len(),
            meta.msg.len()
        ));
    }
    if skip {
        warnings.extend(skippable.into_iter().map(|w| format!("warning: {w}")));
    } else {
        reasons.extend(skippable);
    }
    if !reasons.is_empty() {
        return Err(Error::Unsupported {
            pid: first,
            reason: reasons.join("; "),
        });
    }
    Ok(meta)
}
