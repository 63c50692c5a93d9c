//! Per-process and per-thread kernel state (format 1.3, issue 8): what a
//! process set with `prctl` or through `/proc/PID` and relies on, each
//! thread's credentials and robust futex list, its asynchronous I/O
//! contexts and its cgroups.
//!
//! - From `/proc`: `oom_score_adj`, `loginuid`, every thread's `Uid:`,
//!   `Gid:`, `Groups:` and `Cap*:` (`/proc/PID/task/TID/status`), cgroups
//!   (`/proc/PID/task/TID/cgroup`, the mount points from the dumper's own
//!   `/proc/self/mountinfo`); what about them cannot be restored is
//!   refused with the other features ([`unsupported`]).
//! - From the dumper, by system call: `get_robust_list(tid)` (allowed to a
//!   tracer).
//! - By harmless queries run inside the target ([`super::inject`]):
//!   `PR_GET_CHILD_SUBREAPER`, `PR_GET_THP_DISABLE`,
//!   `membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)` in the main thread and
//!   `PR_GET_SECUREBITS` in every thread (`threads::own_state`).
//! - aio rings: the `/[aio] (deleted)` mappings, whose header (`nr`,
//!   `head`, `tail`, magic) is read from the target's memory.

#![allow(unsafe_code)] // get_robust_list (no wrapper in nix).

use std::fs;

use kckpt_image::kstate::{
    kstate_flags, AioRingRecord, CgroupRecord, KstateRecord, TaskRecord, AIO_RING_HEADER,
    LOGINUID_UNSET, MEMBARRIER_REGISTRATIONS,
};
use kckpt_image_write::StringTable;

use super::inject::Session;
use super::memory::Memory;
use super::nr;
use super::procfs::{self, MapEntry};
use crate::error::{Error, Result};

const PR_GET_CHILD_SUBREAPER: u64 = 37;
const PR_GET_THP_DISABLE: u64 = 42;
/// `MEMBARRIER_CMD_GET_REGISTRATIONS` (Linux 6.3).
const MEMBARRIER_CMD_GET_REGISTRATIONS: u64 = 1 << 9;
/// `SCHED_DEADLINE`.
const SCHED_DEADLINE: i32 = 6;
/// `SCHED_RESET_ON_FORK`.
const SCHED_RESET_ON_FORK: u32 = kckpt_image::kstate::SCHED_RESET_ON_FORK;

/// `PR_GET_SECUREBITS`.
pub const PR_GET_SECUREBITS: u64 = 27;

/// Run the process-wide queries in the main thread's `session`:
/// `PR_GET_CHILD_SUBREAPER`, `PR_GET_THP_DISABLE` and the membarrier
/// registrations (unknown before Linux 6.3: `EINVAL`).
pub fn injected(session: &mut Session<'_>, pid: i32) -> Result<KstateRecord> {
    let out = session.out();
    let r = session.call(nr::PRCTL, [PR_GET_CHILD_SUBREAPER, out, 0, 0, 0, 0])?;
    let failed = |what: &str, r: i64| Error::Unsupported {
        pid,
        reason: format!("{what} in the process failed with {r}"),
    };
    if r < 0 {
        return Err(failed("prctl(PR_GET_CHILD_SUBREAPER)", r));
    }
    let subreaper = super::u64_at(&session.read_out(8)?, 0) as u32;
    let thp = session.call(nr::PRCTL, [PR_GET_THP_DISABLE, 0, 0, 0, 0, 0])?;
    if thp < 0 {
        return Err(failed("prctl(PR_GET_THP_DISABLE)", thp));
    }
    let membarrier = session.call(
        nix::libc::SYS_membarrier as u64,
        [MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0, 0, 0, 0],
    )?;
    let mut rec = KstateRecord {
        child_subreaper: u32::from(subreaper & 1 != 0),
        thp_disable: thp as u32,
        ..KstateRecord::default()
    };
    if membarrier >= 0 {
        rec.flags |= kstate_flags::HAVE_MEMBARRIER;
        let regs = membarrier as u32;
        if regs & !MEMBARRIER_REGISTRATIONS != 0 {
            return Err(Error::Unsupported {
                pid,
                reason: format!(
                    "membarrier registrations {regs:#x} (kckpt knows {MEMBARRIER_REGISTRATIONS:#x})"
                ),
            });
        }
        rec.membarrier = regs;
    }
    Ok(rec)
}

/// Complete `rec` with what `/proc/PID` shows: `oom_score_adj` and
/// `loginuid`.
pub fn from_proc(pid: i32, rec: &mut KstateRecord) -> Result<()> {
    let text = |name: &str| -> Result<String> {
        Ok(String::from_utf8_lossy(&procfs::read(pid, name)?)
            .trim()
            .to_owned())
    };
    let adj = text("oom_score_adj")?;
    rec.oom_score_adj = adj.parse().map_err(|_| Error::Parse {
        path: procfs::proc_path(pid, "oom_score_adj"),
        what: format!("not a number: {adj:?}"),
    })?;
    rec.flags |= kstate_flags::HAVE_OOM_SCORE_ADJ;
    // Without CONFIG_AUDIT there is no loginuid file.
    if let Ok(uid) = text("loginuid") {
        rec.loginuid = uid.parse().unwrap_or(LOGINUID_UNSET);
        rec.flags |= kstate_flags::HAVE_LOGINUID;
    }
    Ok(())
}

/// `get_robust_list(tid)`: (head, length).
fn robust_list(pid: i32, tid: i32) -> Result<(u64, u64)> {
    let (mut head, mut len) = (0u64, 0u64);
    // SAFETY: the kernel writes one pointer and one size_t into the two
    // live locals.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_get_robust_list,
            tid,
            &mut head as *mut u64,
            &mut len as *mut u64,
        )
    };
    match (r, nix::errno::Errno::last()) {
        (0, _) => Ok((head, len)),
        // QEMU user emulation has none (nor set_robust_list): nothing to
        // restore there.
        (_, nix::errno::Errno::ENOSYS) => Ok((0, 0)),
        (_, source) => Err(Error::Ptrace {
            what: "get_robust_list",
            pid,
            source,
        }),
    }
}

fn ids(status: &str, key: &str) -> Option<[u32; 4]> {
    let mut out = [0u32; 4];
    let mut f = super::process::status_field(status, key)?.split_whitespace();
    for v in &mut out {
        *v = f.next()?.parse().ok()?;
    }
    Some(out)
}

fn caps(status: &str, key: &str) -> Option<u64> {
    u64::from_str_radix(super::process::status_field(status, key)?, 16).ok()
}

/// Parse the credentials of a task's `status`: (record, groups).
pub fn parse_creds(status: &str) -> Option<(TaskRecord, Vec<u32>)> {
    let groups = super::process::status_field(status, "Groups")?
        .split_whitespace()
        .map(|g| g.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    let rec = TaskRecord {
        uid: ids(status, "Uid")?,
        gid: ids(status, "Gid")?,
        cap_inheritable: caps(status, "CapInh")?,
        cap_permitted: caps(status, "CapPrm")?,
        cap_effective: caps(status, "CapEff")?,
        cap_bounding: caps(status, "CapBnd")?,
        // Since Linux 4.3.
        cap_ambient: caps(status, "CapAmb").unwrap_or(0),
        ..TaskRecord::default()
    };
    Some((rec, groups))
}

/// The `NT_KCKPT_TASK` descriptor of thread `tid` of `pid`: its
/// credentials (`securebits` from `PR_GET_SECUREBITS` run in it) and its
/// robust futex list.
pub fn task_note(pid: i32, tid: i32, securebits: u32, pdeath_signal: u32) -> Result<Vec<u8>> {
    let name = format!("task/{tid}/status");
    let status = String::from_utf8_lossy(&procfs::read(pid, &name)?).into_owned();
    let (mut rec, groups) = parse_creds(&status).ok_or_else(|| Error::Parse {
        path: procfs::proc_path(pid, &name),
        what: "no Uid, Gid, Groups or Cap lines".into(),
    })?;
    rec.securebits = securebits;
    (rec.robust_list, rec.robust_len) = robust_list(pid, tid)?;
    rec.pdeath_signal = pdeath_signal;
    (rec.sched_policy, rec.sched_priority, rec.nice) = scheduling(pid, tid)?;
    Ok(kckpt_image_write::task_note(rec, &groups))
}

/// Thread `tid`'s scheduling policy ([`kckpt_image::kstate::SCHED_SAVED`]
/// set), real-time priority and nice value, read from outside.
/// `SCHED_DEADLINE` (its runtime and period) is not saved: all 0.
fn scheduling(pid: i32, tid: i32) -> Result<(u32, u32, i32)> {
    use kckpt_image::kstate::SCHED_SAVED;
    let gone = |what: &str| Error::Unsupported {
        pid,
        reason: format!(
            "{what} of thread {tid} failed: {}",
            std::io::Error::last_os_error()
        ),
    };
    // SAFETY: plain system calls on a thread id; no memory is passed.
    let policy = unsafe { nix::libc::sched_getscheduler(tid) };
    if policy < 0 {
        return Err(gone("sched_getscheduler"));
    }
    let policy = policy as u32;
    if !matches!(policy & !SCHED_RESET_ON_FORK, 0 | 1 | 2 | 3 | 5) {
        // SCHED_DEADLINE: named by `unsupported` (refused, or with
        // --skip-unsupported the thread gets the restorer's policy).
        return Ok((0, 0, 0));
    }
    let mut param = nix::libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param the call fills.
    if unsafe { nix::libc::sched_getparam(tid, &mut param) } < 0 {
        return Err(gone("sched_getparam"));
    }
    nix::errno::Errno::clear();
    // SAFETY: a plain system call; -1 is a valid nice value, errno tells.
    let nice = unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS, tid as u32) };
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(gone("getpriority"));
    }
    Ok((
        SCHED_SAVED | policy,
        param.sched_priority.max(0) as u32,
        nice,
    ))
}

/// The kernel's `AIO_RING_MAGIC`, `AIO_RING_COMPAT_FEATURES`,
/// `AIO_RING_INCOMPAT_FEATURES`.
const AIO_RING_MAGIC: u32 = 0xa10a_10a1;

/// Is `m` an aio ring (`io_setup`)?
pub fn is_aio_ring(m: &MapEntry) -> bool {
    m.shared && m.name == "/[aio] (deleted)"
}

/// The aio rings of the process (mappings `/[aio] (deleted)`), their
/// headers read from its memory. A ring whose header kckpt does not know
/// is refused.
pub fn aio_rings(pid: i32, mem: &Memory, maps: &[MapEntry]) -> Result<Vec<AioRingRecord>> {
    let mut out = Vec::new();
    for m in maps.iter().filter(|m| is_aio_ring(m)) {
        let mut h = [0u8; AIO_RING_HEADER as usize];
        mem.read(m.start, &mut h)?;
        let word = |i: usize| u32::from_le_bytes(h[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]));
        let (nr, head, tail) = (word(1), word(2), word(3));
        let expect = (m.len() - AIO_RING_HEADER) / AIO_RING_HEADER;
        if word(4) != AIO_RING_MAGIC
            || word(5) != 1
            || word(6) != 0
            || u64::from(word(7)) != AIO_RING_HEADER
            || u64::from(nr) != expect
            || head >= nr
            || tail >= nr
        {
            return Err(Error::Unsupported {
                pid,
                reason: format!(
                    "aio context {:#x}: a ring header kckpt does not know (nr {nr}, head {head}, tail {tail})",
                    m.start
                ),
            });
        }
        out.push(AioRingRecord {
            addr: m.start,
            len: m.len(),
            // io_setup(n) makes room for 2 * max(n, 4 * CPUs) + 2 events,
            // rounded up to whole pages: (nr - 2) / 2 gives back this size
            // (nr is what the pages hold) on any machine with up to nr / 8
            // CPUs.
            nr_events: ((nr.saturating_sub(2)) / 2).max(1),
            ring_nr: nr,
            head,
            tail,
            reserved: 0,
        });
    }
    Ok(out)
}

/// A mounted cgroup hierarchy: its mount point, the cgroup path it
/// shows (the mount's root), v2 or the v1 options naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CgroupMount {
    point: String,
    root: String,
    v2: bool,
    /// v1: controllers and `name=` of the super options.
    names: Vec<String>,
}

/// Undo mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup mounts of `/proc/self/mountinfo` text.
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let v2 = r[0] == "cgroup2";
        if !v2 && r[0] != "cgroup" {
            continue;
        }
        out.push(CgroupMount {
            point: unescape(l[4]),
            root: unescape(l[3]),
            v2,
            names: r[2].split(',').map(str::to_owned).collect(),
        });
    }
    out
}

/// Where the cgroup `path` of hierarchy `controllers` (`memory`,
/// `name=systemd`, empty for v2) is in the file system: a mount of that
/// hierarchy whose root is `path` or above it.
fn cgroup_dir(mounts: &[CgroupMount], controllers: &str, path: &str) -> Option<String> {
    let want: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
    mounts
        .iter()
        .filter(|m| {
            if want.is_empty() {
                m.v2
            } else {
                !m.v2 && want.iter().all(|c| m.names.iter().any(|n| n == c))
            }
        })
        .find_map(|m| {
            let rest = if m.root == "/" {
                Some(path)
            } else {
                path.strip_prefix(m.root.as_str())
                    .filter(|r| r.is_empty() || r.starts_with('/'))
            }?;
            let rest = rest.trim_end_matches('/');
            Some(format!("{}{}", m.point.trim_end_matches('/'), rest))
        })
}

/// One line of `/proc/PID/cgroup`: (hierarchy id, controllers, path).
fn cgroup_line(line: &str) -> Option<(&str, &str, &str)> {
    let (id, rest) = line.split_once(':')?;
    let (controllers, path) = rest.split_once(':')?;
    Some((id, controllers, path))
}

/// One cgroup of the process (`tid` 0) or of a thread that is elsewhere.
struct Cgroup {
    tid: u32,
    line: String,
    dir: String,
    path: String,
    v2: bool,
    /// (1.7) A sub-cgroup no process of the dump is in.
    empty: bool,
}

/// The cgroups of the process and of its threads that are elsewhere, each
/// with where it is mounted here. A hierarchy mounted nowhere in the
/// dumper's mount namespace is left out: kckpt could not put the process
/// back there either.
fn located_cgroups(pid: i32, tids: &[i32]) -> Result<Vec<Cgroup>> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Read {
        path: "/proc/self/mountinfo".into(),
        source,
    })?;
    let mounts = cgroup_mounts(&mountinfo);
    let read = |tid: i32| -> Result<String> {
        let name = format!("task/{tid}/cgroup");
        Ok(String::from_utf8_lossy(&procfs::read(pid, &name)?).into_owned())
    };
    let main = read(pid)?;
    let mut out = Vec::new();
    let mut add = |tid: u32, line: &str| {
        let Some((_, controllers, path)) = cgroup_line(line) else {
            return;
        };
        if let Some(dir) = cgroup_dir(&mounts, controllers, path) {
            out.push(Cgroup {
                tid,
                line: line.to_owned(),
                dir,
                path: path.to_owned(),
                v2: controllers.is_empty(),
                empty: false,
            });
        }
    };
    main.lines().for_each(|line| add(0, line));
    for &tid in tids.iter().filter(|&&t| t != pid) {
        let Ok(text) = read(tid) else {
            continue; // it exited meanwhile: it is not in the image either
        };
        for line in text.lines().filter(|l| !main.lines().any(|m| m == *l)) {
            add(tid as u32, line);
        }
    }
    Ok(out)
}

/// What kckpt cannot restore about the process's cgroups, for the refusal
/// line of the dump (`files::collect`): a cgroup namespace of its own, and
/// cgroups of its that are a tree kckpt would not rebuild — one with
/// sub-cgroups that no thread of it nor of the other processes of the
/// dump (`tree`) is in (a process managing cgroups below its own), or one owned by another user than its parent cgroup (a
/// delegated cgroup, whose ownership a re-created directory would lack).
/// The root cgroup of a hierarchy is never refused. Also a thread under
/// `SCHED_DEADLINE` (its runtime, deadline and period are not saved), and
/// a mount namespace other than its parent's.
pub fn unsupported(pid: i32, tree: &[i32]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let ns = |p: &str| fs::read_link(p).ok();
    let (mine, its) = (
        ns("/proc/self/ns/cgroup"),
        ns(&format!("/proc/{pid}/ns/cgroup")),
    );
    let tids = super::threads::task_ids(pid).unwrap_or_default();
    let mut out: Vec<String> = tids
        .iter()
        .filter(|&&tid| {
            // SAFETY: a plain system call on a thread id.
            let policy = unsafe { nix::libc::sched_getscheduler(tid) };
            policy >= 0 && policy & !(SCHED_RESET_ON_FORK as i32) == SCHED_DEADLINE
        })
        .map(|tid| format!("SCHED_DEADLINE scheduling of thread {tid}"))
        .collect();
    // A mount namespace of its own (not its parent's, as after
    // `unshare(CLONE_NEWNS)`): its mounts (and what a path names in them)
    // would not be there at restore, in the restorer's namespace.
    let ppid = super::procfs::stat(pid).map_or(0, |s| s.ppid());
    let mnt = (
        (ppid > 0)
            .then(|| ns(&format!("/proc/{ppid}/ns/mnt")))
            .flatten(),
        ns(&format!("/proc/{pid}/ns/mnt")),
    );
    if mnt.0.is_some() && mnt.1.is_some() && mnt.0 != mnt.1 {
        out.push("mount namespace of its own (its mounts are not restored)".to_owned());
    }
    if mine.is_some() && its.is_some() && mine != its {
        out.push("cgroup namespace".to_owned());
        return out;
    }
    let Ok(cgroups) = located_cgroups(pid, &tids) else {
        return out;
    };
    let dumped = dumped_dirs(pid, &cgroups, tree);
    for c in cgroups.iter().filter(|c| c.path != "/") {
        // Sub-cgroups no process of the dump is in are saved (1.7), up
        // to a limit.
        let subs = empty_subs(&c.dir, &dumped).len() > MAX_EMPTY_SUBS;
        let owner = |p: &std::path::Path| fs::metadata(p).map(|m| (m.uid(), m.gid())).ok();
        let dir = std::path::Path::new(&c.dir);
        let parent = dir.parent().and_then(owner);
        let delegated = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .chain(std::iter::once(dir.to_path_buf()))
            .any(|p| owner(&p) != parent);
        let what = match (subs, delegated) {
            (true, _) => "with more than 256 sub-cgroups no process of the dump is in",
            (false, true) => "owned by another user than its parent",
            (false, false) => continue,
        };
        out.push(format!("cgroup {} {what}", c.line));
    }
    out
}

/// Most sub-cgroups of one cgroup saved as `EMPTY` records (more are
/// refused at dump), and how deep they are looked for.
const MAX_EMPTY_SUBS: usize = 256;
const MAX_EMPTY_DEPTH: usize = 8;

/// The cgroup directories of the process (`cgroups`) and of every other
/// process of the dump (`tree`).
fn dumped_dirs(pid: i32, cgroups: &[Cgroup], tree: &[i32]) -> Vec<String> {
    cgroups
        .iter()
        .map(|c| c.dir.clone())
        .chain(tree.iter().filter(|&&p| p != pid).flat_map(|&p| {
            let tids = super::threads::task_ids(p).unwrap_or_default();
            let theirs = located_cgroups(p, &tids).unwrap_or_default();
            theirs.into_iter().map(|c| c.dir)
        }))
        .collect()
}

/// The sub-cgroups of `dir` (depth first, parents before children, at
/// most [`MAX_EMPTY_SUBS`] + 1 of them) no process of the dump is in:
/// neither one of `dumped` nor above one. Those above one are walked into
/// (they are made again with it, but their other sub-cgroups are not);
/// those that are one are left to that process.
fn empty_subs(dir: &str, dumped: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_owned(), 0)];
    while let Some((d, depth)) = todo.pop() {
        let mut subs: Vec<String> = fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path().to_string_lossy().into_owned())
            .collect();
        subs.sort();
        for sub in subs.into_iter().rev() {
            let path = std::path::Path::new(&sub);
            if dumped.iter().any(|o| o == &sub) {
                continue;
            }
            if !dumped
                .iter()
                .any(|o| std::path::Path::new(o).starts_with(path))
            {
                out.push(sub.clone());
            }
            if out.len() > MAX_EMPTY_SUBS {
                return out;
            }
            if depth < MAX_EMPTY_DEPTH {
                todo.push((sub, depth + 1));
            }
        }
    }
    out
}

/// What [`cgroups`] saves: the `NT_KCKPT_CGROUPS` records, the settings
/// of those cgroups (`NT_KCKPT_CGROUP_PROPS`) and warnings about settings
/// left out.
pub type SavedCgroups = (
    Vec<CgroupRecord>,
    Vec<kckpt_image::cgroup_props::CgroupPropRecord>,
    Vec<String>,
);

/// The `NT_KCKPT_CGROUPS` records: the cgroups of the process and of its
/// threads that are elsewhere ([`located_cgroups`]), the process's first;
/// and the settings of each cgroup directory but a hierarchy's root
/// (saved once per directory, for its first record).
pub fn cgroups(
    pid: i32,
    tids: &[i32],
    tree: &[i32],
    strings: &mut StringTable,
) -> Result<SavedCgroups> {
    let mut located = located_cgroups(pid, tids)?;
    // (1.7) Sub-cgroups no process of the dump is in, after the
    // process's own records (before its threads').
    let dumped = dumped_dirs(pid, &located, tree);
    let own = located.iter().take_while(|c| c.tid == 0).count();
    let mut empty = Vec::new();
    for c in located[..own].iter().filter(|c| c.path != "/") {
        for sub in empty_subs(&c.dir, &dumped).into_iter().take(MAX_EMPTY_SUBS) {
            if empty.iter().any(|e: &Cgroup| e.dir == sub) {
                continue;
            }
            let rel = &sub[c.dir.len()..];
            let (id, controllers, path) = cgroup_line(&c.line).unwrap_or_default();
            let path = format!("{}{rel}", path.trim_end_matches('/'));
            empty.push(Cgroup {
                tid: 0,
                line: format!("{id}:{controllers}:{path}"),
                dir: sub,
                path,
                v2: c.v2,
                empty: true,
            });
        }
    }
    located.splice(own..own, empty);
    let (mut props, mut warnings) = (Vec::new(), Vec::new());
    for (i, c) in located.iter().enumerate() {
        if c.path != "/" && !located[..i].iter().any(|o| o.dir == c.dir) {
            props.extend(super::cgroup_props::settings(
                i as u32,
                std::path::Path::new(&c.dir),
                strings,
                &mut warnings,
            ));
        }
    }
    let records = located
        .into_iter()
        .map(|c| CgroupRecord {
            tid: c.tid,
            flags: if c.v2 {
                kckpt_image::kstate::cgroup_flags::V2
            } else {
                0
            } | if c.empty {
                kckpt_image::kstate::cgroup_flags::EMPTY
            } else {
                0
            },
            line: strings.add(c.line.as_bytes()),
            dir: strings.add(c.dir.as_bytes()),
            reserved: 0,
        })
        .collect();
    Ok((records, props, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_status() {
        let status = "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\n\
                      Groups:\t27 100 \nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t0000000000000400\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";
        let (rec, groups) = parse_creds(status).unwrap();
        assert_eq!(rec.uid, [1000, 1001, 1002, 1003]);
        assert_eq!(rec.gid, [5, 6, 7, 8]);
        assert_eq!(groups, [27, 100]);
        assert_eq!(rec.cap_permitted, 0x1ff_ffff_ffff);
        assert_eq!(rec.cap_effective, 0x400);
        let none = status.replace("Groups:\t27 100 ", "Groups:\t");
        assert_eq!(parse_creds(&none).unwrap().1, Vec::<u32>::new());
    }

    #[test]
    fn cgroup_directories_from_mountinfo() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                  35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                  50 31 0:39 /sub /mnt/my\\040cg rw - cgroup cgroup rw,cpu,cpuacct\n";
        let m = cgroup_mounts(mi);
        assert_eq!(m.len(), 4);
        assert_eq!(
            cgroup_dir(&m, "memory", "/a/b").as_deref(),
            Some("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            cgroup_dir(&m, "name=systemd", "/").as_deref(),
            Some("/sys/fs/cgroup/systemd")
        );
        assert_eq!(
            cgroup_dir(&m, "", "/user.slice").as_deref(),
            Some("/sys/fs/cgroup/unified/user.slice")
        );
        assert_eq!(
            cgroup_dir(&m, "cpu,cpuacct", "/sub/x").as_deref(),
            Some("/mnt/my cg/x")
        );
        assert_eq!(cgroup_dir(&m, "cpu,cpuacct", "/other"), None);
        assert_eq!(cgroup_dir(&m, "pids", "/"), None);
        assert_eq!(cgroup_line("4:memory:/a:b"), Some(("4", "memory", "/a:b")));
    }
}
