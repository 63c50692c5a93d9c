//! Per-process and per-thread kernel state (format 1.3, issue 8): the
//! process's prctl and /proc settings (`NT_KCKPT_KSTATE`), each thread's
//! credentials and robust futex list (`NT_KCKPT_TASK`, one in every thread
//! group), asynchronous I/O rings (`NT_KCKPT_AIO`) and cgroup membership
//! (`NT_KCKPT_CGROUPS`). Every note is optional: an image without them is
//! restored with the restorer's values, as before.

use crate::read::{FormatError, ImageView};
use crate::records::{vma_flags, Record, StrRef};

/// Note type of [`KstateRecord`] (process-wide kernel state); optional.
pub const NT_KCKPT_KSTATE: u32 = 0x4b43_0050;
/// Note type of a thread's [`TaskRecord`] followed by its supplementary
/// groups (`u32` each); one in every thread group, before its
/// `NT_KCKPT_THREAD`; optional.
pub const NT_KCKPT_TASK: u32 = 0x4b43_0051;
/// Note type of the array of [`AioRingRecord`]; optional.
pub const NT_KCKPT_AIO: u32 = 0x4b43_0052;
/// Note type of the array of [`CgroupRecord`]; optional.
pub const NT_KCKPT_CGROUPS: u32 = 0x4b43_0053;

/// `KstateRecord::flags` bits.
pub mod kstate_flags {
    /// `membarrier` holds the registrations
    /// (`MEMBARRIER_CMD_GET_REGISTRATIONS`, Linux 6.3+); without it they
    /// are unknown and none is restored.
    pub const HAVE_MEMBARRIER: u32 = 1 << 0;
    /// `loginuid` holds `/proc/PID/loginuid` (absent without audit).
    pub const HAVE_LOGINUID: u32 = 1 << 1;
    /// `oom_score_adj` holds `/proc/PID/oom_score_adj`.
    pub const HAVE_OOM_SCORE_ADJ: u32 = 1 << 2;
}

/// `membarrier` registration commands kckpt restores
/// (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`, `..._PRIVATE_EXPEDITED`,
/// `..._PRIVATE_EXPEDITED_SYNC_CORE`, `..._PRIVATE_EXPEDITED_RSEQ`).
pub const MEMBARRIER_REGISTRATIONS: u32 = (1 << 2) | (1 << 4) | (1 << 6) | (1 << 8);

/// `loginuid` of a process that has none (`AUDIT_UID_UNSET`).
pub const LOGINUID_UNSET: u32 = u32::MAX;

/// Process-wide kernel state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KstateRecord {
    /// `kstate_flags::*`.
    pub flags: u32,
    /// `PR_GET_CHILD_SUBREAPER`: 0 or 1.
    pub child_subreaper: u32,
    /// `PR_GET_THP_DISABLE`: bit 0 THP disabled, bits 1.. the flags it was
    /// set with (`PR_THP_DISABLE_EXCEPT_ADVISED`, Linux 6.18).
    pub thp_disable: u32,
    /// `/proc/PID/oom_score_adj`, -1000..=1000.
    pub oom_score_adj: i32,
    /// `/proc/PID/loginuid` ([`LOGINUID_UNSET`]: none).
    pub loginuid: u32,
    /// `membarrier` registrations: a subset of [`MEMBARRIER_REGISTRATIONS`].
    pub membarrier: u32,
    /// The process was in group stop (state `T` before kckpt seized it):
    /// the signal that stopped it (`SIGSTOP`, `SIGTSTP`, `SIGTTIN`,
    /// `SIGTTOU`); 0: running. The restored process stops again with it
    /// right before it resumes.
    pub stop_signal: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
// SAFETY: repr(C); 6 * 4 + 24 = 48, no padding.
unsafe impl Record for KstateRecord {}

/// One thread's credentials and robust futex list. The note continues
/// with `group_count` supplementary group ids (`u32`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskRecord {
    /// Real, effective, saved and filesystem user ids (`Uid:` of
    /// `/proc/PID/task/TID/status`).
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem group ids (`Gid:`).
    pub gid: [u32; 4],
    /// `CapInh`.
    pub cap_inheritable: u64,
    /// `CapPrm`.
    pub cap_permitted: u64,
    /// `CapEff`.
    pub cap_effective: u64,
    /// `CapBnd`.
    pub cap_bounding: u64,
    /// `CapAmb`.
    pub cap_ambient: u64,
    /// `PR_GET_SECUREBITS`.
    pub securebits: u32,
    /// Number of supplementary groups after the record.
    pub group_count: u32,
    /// `get_robust_list`: the list head (0: none).
    pub robust_list: u64,
    /// `get_robust_list`: its length.
    pub robust_len: u64,
    /// `PR_GET_PDEATHSIG`: the thread's parent-death signal (0: none).
    pub pdeath_signal: u32,
    /// `sched_getscheduler`: [`SCHED_SAVED`] | the policy (`SCHED_OTHER`
    /// 0, `FIFO` 1, `RR` 2, `BATCH` 3, `IDLE` 5) | [`SCHED_RESET_ON_FORK`];
    /// 0 (no [`SCHED_SAVED`]): not saved, the thread keeps the restorer's
    /// policy and nice value.
    pub sched_policy: u32,
    /// `sched_getparam`: the real-time priority (1..=99 for FIFO and RR,
    /// else 0).
    pub sched_priority: u32,
    /// `getpriority(PRIO_PROCESS, tid)`: the nice value, -20..=19.
    pub nice: i32,
}
// SAFETY: repr(C); 32 + 5 * 8 + 8 + 16 + 16 = 112, every field naturally aligned.
unsafe impl Record for TaskRecord {}

/// `TaskRecord::sched_policy`: the scheduling fields hold saved values.
pub const SCHED_SAVED: u32 = 1 << 31;
/// `TaskRecord::sched_policy`: `SCHED_RESET_ON_FORK` (the kernel's value).
pub const SCHED_RESET_ON_FORK: u32 = 0x4000_0000;
/// `SCHED_FIFO`, `SCHED_RR`: the real-time policies (priority 1..=99).
pub const SCHED_FIFO: u32 = 1;
/// See [`SCHED_FIFO`].
pub const SCHED_RR: u32 = 2;

/// Are the scheduling fields of `r` consistent?
fn sched_ok(r: &TaskRecord) -> bool {
    if r.sched_policy & SCHED_SAVED == 0 {
        return r.sched_policy == 0 && r.sched_priority == 0 && r.nice == 0;
    }
    let policy = r.sched_policy & !(SCHED_SAVED | SCHED_RESET_ON_FORK);
    let rt = policy == SCHED_FIFO || policy == SCHED_RR;
    matches!(policy, 0 | 1 | 2 | 3 | 5)
        && (-20..=19).contains(&r.nice)
        && if rt {
            (1..=99).contains(&r.sched_priority)
        } else {
            r.sched_priority == 0
        }
}

/// Signals that put a process in group stop.
pub fn is_stop_signal(sig: u32) -> bool {
    (19..=22).contains(&sig)
}

/// Most supplementary groups a thread may have (`NGROUPS_MAX`).
pub const MAX_GROUPS: u32 = 65536;

/// One asynchronous I/O context (`io_setup`): its ring is the shared
/// mapping `/[aio] (deleted)` at `addr`, which the image also stores as
/// shared memory (its events); the stub creates a context of the same
/// size, moves its in-kernel tail to `tail` and its head to `head`,
/// copies the events and moves it to `addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AioRingRecord {
    /// The ring's address (the context id).
    pub addr: u64,
    /// The ring's mapping length.
    pub len: u64,
    /// The `nr_events` to give `io_setup` for a ring of this length.
    pub nr_events: u32,
    /// `nr` of the ring header: events the ring holds.
    pub ring_nr: u32,
    /// `head` of the ring header.
    pub head: u32,
    /// `tail` of the ring header.
    pub tail: u32,
    /// Reserved, zero.
    pub reserved: u64,
}
// SAFETY: repr(C); 8 + 8 + 4 * 4 + 8 = 40, no padding.
unsafe impl Record for AioRingRecord {}

/// Size of the kernel's `struct aio_ring` header and of one `io_event`.
pub const AIO_RING_HEADER: u64 = 32;

/// `CgroupRecord::flags` bits.
pub mod cgroup_flags {
    /// cgroup v2 (the unified hierarchy): a thread joins with
    /// `cgroup.threads`, the process with `cgroup.procs`; v1: `tasks`
    /// and `cgroup.procs`.
    pub const V2: u32 = 1 << 0;
    /// (1.7) A sub-cgroup (at any depth) of one of the process's cgroups
    /// that no process of the dump is in: created again with its saved
    /// settings when it is missing at restore; nobody joins it. `tid` 0.
    pub const EMPTY: u32 = 1 << 1;
}

/// The cgroup of the process (`tid` 0) or of one thread whose cgroup
/// differs from the process's, in one hierarchy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupRecord {
    /// 0 for the process (the main thread), else a saved thread id.
    pub tid: u32,
    /// `cgroup_flags::*`.
    pub flags: u32,
    /// The line of `/proc/PID/cgroup` (`4:memory:/a/b`), for messages
    /// and to see whether the restorer is there already.
    pub line: StrRef,
    /// The cgroup's directory at dump time (mount point + path).
    pub dir: StrRef,
    /// Reserved, zero.
    pub reserved: u64,
}
// SAFETY: repr(C); 4 + 4 + 8 + 8 + 8 = 32, no padding.
unsafe impl Record for CgroupRecord {}

const _: () = {
    assert!(core::mem::size_of::<KstateRecord>() == 48);
    assert!(core::mem::size_of::<TaskRecord>() == 112);
    assert!(core::mem::size_of::<AioRingRecord>() == 40);
    assert!(core::mem::size_of::<CgroupRecord>() == 32);
};

/// A thread's [`TaskRecord`] and its groups (little-endian `u32`s),
/// from its `NT_KCKPT_TASK` descriptor; `None` if malformed.
pub fn parse_task(desc: &[u8]) -> Option<(TaskRecord, &[u8])> {
    let size = core::mem::size_of::<TaskRecord>();
    let rec: TaskRecord = crate::read::read_record(desc)?;
    let n = rec.group_count as usize;
    if rec.group_count > MAX_GROUPS {
        return None;
    }
    let groups = desc.get(size..size.checked_add(n * 4)?)?;
    Some((rec, groups))
}

/// The `i`-th group of a group list from [`parse_task`].
pub fn group(groups: &[u8], i: usize) -> Option<u32> {
    let b = groups.get(i * 4..i * 4 + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Most aio rings an image may hold.
pub const MAX_AIO_RINGS: usize = 4096;
/// Most cgroup records an image may hold.
pub const MAX_CGROUPS: usize = 4096;
/// Longest cgroup directory (leaves room for `/cgroup.threads` in a
/// 4096-byte path).
pub const MAX_CGROUP_DIR: usize = 4000;

/// Is `[addr, addr + len)` exactly one saved shared area?
fn shared_area(view: &ImageView<'_>, addr: u64, len: u64) -> bool {
    crate::check::vma_from(view, addr).is_some_and(|v| {
        v.start == addr && v.end.wrapping_sub(v.start) == len && v.flags & vma_flags::SHARED != 0
    })
}

fn ensure(ok: bool, what: &'static str) -> Result<(), FormatError> {
    if ok {
        Ok(())
    } else {
        Err(FormatError::BadField(what))
    }
}

/// Check the kernel-state notes of `view` (structure and field values).
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let k = view.kstate.unwrap_or_default();
    ensure(
        k.reserved == [0; 2]
            && k.reserved0 == 0
            && (k.stop_signal == 0 || is_stop_signal(k.stop_signal))
            && k.flags & !0x7 == 0
            && k.child_subreaper <= 1
            && k.membarrier & !MEMBARRIER_REGISTRATIONS == 0
            && (-1000..=1000).contains(&k.oom_score_adj)
            && view.aio.len() <= MAX_AIO_RINGS
            && view.cgroups.len() <= MAX_CGROUPS,
        "kernel state: bad values",
    )?;
    for t in view.threads() {
        let Some(desc) = t.regset(crate::records::NOTE_OWNER, NT_KCKPT_TASK) else {
            continue;
        };
        let (r, _) = parse_task(desc).ok_or(FormatError::BadRecordSize("task"))?;
        ensure(
            (r.robust_list == 0 || r.robust_len == 24) && r.pdeath_signal <= 64 && sched_ok(&r),
            "task: bad robust futex list, parent-death signal or scheduling policy",
        )?;
    }
    let page = u64::from(view.header.page_size);
    for a in view.aio.iter() {
        // The ring must be a saved shared area of exactly its size.
        let nr = a.len.saturating_sub(AIO_RING_HEADER) / AIO_RING_HEADER;
        ensure(
            a.reserved == 0
                && a.len > 0
                && a.len.is_multiple_of(page)
                && shared_area(view, a.addr, a.len)
                && u64::from(a.ring_nr) == nr
                && a.head < a.ring_nr
                && a.tail < a.ring_nr
                && a.nr_events > 0,
            "aio ring: bad address, size, head or tail",
        )?;
    }
    // The process's records first, then the threads' in thread order
    // (one walk over the threads, as for pending signals).
    let mut threads = view.threads().skip(1);
    let mut current = 0u32;
    for c in view.cgroups.iter() {
        let dir = view.string(c.dir)?;
        view.string(c.line)?;
        if c.tid != 0 && c.tid != current {
            current = threads
                .by_ref()
                .map(|t| t.record.tid)
                .find(|&tid| tid == c.tid)
                .unwrap_or(0);
        }
        ensure(
            c.reserved == 0
                && c.flags & !(cgroup_flags::V2 | cgroup_flags::EMPTY) == 0
                && (c.flags & cgroup_flags::EMPTY == 0
                    || (c.tid == 0 && view.header.format_minor >= 7))
                && dir.first() == Some(&b'/')
                && dir.len() < MAX_CGROUP_DIR
                && !crate::check::has_nul(dir)
                // Process records (tid 0) before every thread's.
                && c.tid == current,
            "cgroup: bad flags, directory, thread or order",
        )?;
    }
    Ok(())
}
