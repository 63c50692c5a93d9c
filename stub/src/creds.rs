//! Each thread's credentials and robust futex list (format 1.3,
//! `NT_KCKPT_TASK`; credentials are per thread in Linux, and the raw
//! system calls change only the calling thread's).
//!
//! - [`check`], before anything changes: the saved user and group ids
//!   must be ones this process may take (`CAP_SETUID`/`CAP_SETGID`, e.g.
//!   root, or ids it already holds, as `setresuid` allows); otherwise the
//!   restore is refused naming them, or, forced (`KCKPT_FORCE=1`), goes
//!   on with the restorer's credentials and a warning.
//! - [`robust_list`], with the other per-thread state: `set_robust_list`.
//! - [`restore`], last in each thread, after everything that needs the
//!   restorer's privileges (choosing tids, cgroups, `oom_score_adj`...):
//!   the bounding set (dropping needs `CAP_SETPCAP`), supplementary
//!   groups, gids, uids (keeping the permitted capabilities across the
//!   change of uid), ambient capabilities, securebits, then the
//!   capability sets. The main thread goes last, and sets `dumpable`
//!   afterwards (a change of credentials resets it).
//!
//! Groups, capabilities and securebits that this user cannot set (an
//! unprivileged restore of a process that had more) are a warning naming
//! them: the process runs with less privilege than it had, and finds out
//! from its own failures.

use core::sync::atomic::{AtomicBool, Ordering};

use kckpt_image::kstate::{group, parse_task, TaskRecord, NT_KCKPT_TASK};
use kckpt_image::NOTE_OWNER;

use crate::ksys::{self, Caps};
use crate::load::Image;
use crate::memory::Failure;
use crate::report::Msg;
use crate::sys::{self, Errno};

/// The restore keeps the restorer's credentials (forced, or inside the
/// user namespace of `--new-pid-ns`, where the ids are mapped 1:1).
static KEEP: AtomicBool = AtomicBool::new(false);

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const PR_CAPBSET_READ: u32 = 23;
const PR_CAPBSET_DROP: u32 = 24;
const PR_SET_KEEPCAPS: u32 = 8;
const PR_SET_PDEATHSIG: u32 = 1;
const PR_GET_SECUREBITS: u32 = 27;
const PR_SET_SECUREBITS: u32 = 28;
const PR_CAP_AMBIENT: u32 = 47;
const PR_CAP_AMBIENT_IS_SET: usize = 1;
const PR_CAP_AMBIENT_RAISE: usize = 2;
const PR_CAP_AMBIENT_CLEAR_ALL: usize = 4;

/// The task note of thread `index` (0: main), if the image has one.
pub fn task_of(img: &Image, index: usize) -> Option<(TaskRecord, &'static [u8])> {
    let t = img.view.threads().nth(index)?;
    parse_task(t.regset(NOTE_OWNER, NT_KCKPT_TASK)?)
}

/// The current real, effective, saved and filesystem uids (`gid`: gids).
fn current_ids(gid: bool) -> [u32; 4] {
    let [r, e, s] = ksys::getres(gid);
    // An invalid id changes nothing and returns the current one.
    let fs = if gid {
        ksys::setfsgid(u32::MAX)
    } else {
        ksys::setfsuid(u32::MAX)
    };
    [r, e, s, fs]
}

/// Can this thread take `saved` ids (with the capability `cap`, or as
/// `setresuid` allows anyone: each id one it holds)?
fn can_take(saved: &[u32; 4], now: &[u32; 4], caps: &Caps, cap: u32) -> bool {
    saved == now
        || caps.effective & (1 << cap) != 0
        || (saved[..3].iter().all(|id| now[..3].contains(id)) && saved[..3].contains(&saved[3]))
}

/// Before anything changes: refuse (or, `force`d, warn and keep the
/// restorer's credentials) when a thread's saved ids cannot be taken.
/// `keep`: the restore runs in a user namespace of its own, where only
/// the restorer's ids exist (they are the saved ones or the check fails).
pub fn check(img: &Image, force: bool, keep: bool) {
    let caps = ksys::capget();
    let (uid, gid) = (current_ids(false), current_ids(true));
    for (i, t) in img.view.threads().enumerate() {
        let Some((rec, _)) = task_of(img, i) else {
            continue;
        };
        let ok = can_take(&rec.uid, &uid, &caps, CAP_SETUID)
            && can_take(&rec.gid, &gid, &caps, CAP_SETGID)
            && (!keep || (rec.uid == uid && rec.gid == gid));
        if ok {
            continue;
        }
        let mut m = Msg::new();
        m.push(img.path).s(": ");
        if i == 0 {
            m.s("the process");
        } else {
            m.s("its thread ").dec(t.record.tid.into());
        }
        m.s(" ran as uid ");
        ids(&mut m, &rec.uid).s(" gid ");
        ids(&mut m, &rec.gid)
            .s("; this user (uid ")
            .dec(uid[1].into())
            .s(") cannot take those ids");
        if !force {
            m.s(" (restore as root; KCKPT_FORCE=1 or kckpt restore --force runs it with this user's ids)")
                .fail();
        }
        m.s("; restored with this user's credentials (forced)")
            .warn();
        KEEP.store(true, Ordering::Relaxed);
        return;
    }
    if keep {
        KEEP.store(true, Ordering::Relaxed);
    }
    peer_credentials(img, &uid, &gid);
}

/// Unix sockets are re-created before the saved ids are taken, so their
/// peer credentials (`SO_PEERCRED`: pid, effective uid and gid) are the
/// restorer's: a warning when those differ from the saved effective ids
/// (root restoring another user's process).
fn peer_credentials(img: &Image, uid: &[u32; 4], gid: &[u32; 4]) {
    use kckpt_image::records::fd_kind::SOCKETPAIR;
    use kckpt_image::unixsock::{UNIX_LISTEN_FD_KIND, UNIX_SOCKET_FD_KIND};
    let Some((rec, _)) = task_of(img, 0) else {
        return;
    };
    if rec.uid[1] == uid[1] && rec.gid[1] == gid[1] {
        return;
    }
    let unix = img.view.fds.iter().any(|r| {
        matches!(
            r.kind,
            SOCKETPAIR | UNIX_LISTEN_FD_KIND | UNIX_SOCKET_FD_KIND
        )
    });
    if unix {
        Msg::new()
            .push(img.path)
            .s(": its unix sockets report uid ")
            .dec(uid[1].into())
            .s(" gid ")
            .dec(gid[1].into())
            .s(" as their peer credentials (SO_PEERCRED), the restorer's, not the saved uid ")
            .dec(rec.uid[1].into())
            .s(" gid ")
            .dec(rec.gid[1].into())
            .warn();
    }
}

/// `R/E/S/F`, or one number when all four are equal.
fn ids<'m>(m: &'m mut Msg, v: &[u32; 4]) -> &'m mut Msg {
    if v.iter().all(|&x| x == v[0]) {
        return m.dec(v[0].into());
    }
    for (i, &x) in v.iter().enumerate() {
        if i > 0 {
            m.s("/");
        }
        m.dec(x.into());
    }
    m
}

/// `set_robust_list` for the calling thread, thread `index` of the image.
pub fn robust_list(img: &Image, index: usize) -> Result<(), Failure> {
    let Some((t, _)) = task_of(img, index) else {
        return Ok(());
    };
    if t.robust_list == 0 {
        return Ok(());
    }
    ksys::set_robust_list(t.robust_list, t.robust_len).map_err(|errno| Failure {
        what: "set_robust_list",
        addr: t.robust_list,
        errno,
    })?;
    Ok(())
}

fn warn(img: &Image, tid: u32, what: &str, e: Errno) {
    Msg::new()
        .push(img.path)
        .s(": thread ")
        .dec(tid.into())
        .s(": cannot restore its ")
        .s(what)
        .errno(e)
        .warn();
}

/// Take the saved credentials of thread `index` (see the module
/// documentation); the calling thread only.
pub fn restore(img: &Image, index: usize) -> Result<(), Failure> {
    let Some((t, groups)) = task_of(img, index) else {
        return Ok(());
    };
    let tid = img.view.threads().nth(index).map_or(0, |t| t.record.tid);
    if KEEP.load(Ordering::Relaxed) {
        // In a user namespace the stub made: the same ids, and the
        // capabilities go with `ids::drop_caps`; the bounding set (full in
        // a new user namespace) is the saved one again. (Kept for another
        // reason, forced: nothing here may change it.)
        if crate::ids::in_own_user_ns() {
            bounding_set(img, tid, t.cap_bounding);
        }
        return Ok(());
    }
    // A change of ids clears the parent-death signal, which ties a process
    // restored with its original pid to its relay (`ids.rs`): set again.
    let death_signal = sys::parent_death_signal();
    let result = change_ids(img, tid, &t, groups);
    if death_signal != 0 {
        let _ = sys::prctl(PR_SET_PDEATHSIG, death_signal as usize, 0, 0, 0);
    }
    result
}

/// The ids, groups and capabilities of `t` for the calling thread.
fn change_ids(img: &Image, tid: u32, t: &TaskRecord, groups: &[u8]) -> Result<(), Failure> {
    bounding_set(img, tid, t.cap_bounding);
    if !same_groups(groups) {
        if let Err(e) = ksys::setgroups(groups) {
            warn(img, tid, "supplementary groups", e);
        }
    }
    let fail = |what| {
        move |errno| Failure {
            what,
            addr: u64::from(tid),
            errno,
        }
    };
    if current_ids(true) != t.gid {
        ksys::setresgid([t.gid[0], t.gid[1], t.gid[2]]).map_err(fail("setresgid"))?;
        ksys::setfsgid(t.gid[3]);
    }
    if current_ids(false) != t.uid {
        // Keep the permitted set across the change (the saved sets are
        // applied below).
        let _ = sys::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
        ksys::setresuid([t.uid[0], t.uid[1], t.uid[2]]).map_err(fail("setresuid"))?;
        // The change cleared the effective set: CAP_SETUID back (if it is
        // permitted) for another fsuid.
        let now = ksys::capget();
        let _ = ksys::capset(Caps {
            effective: now.permitted,
            ..now
        });
        ksys::setfsuid(t.uid[3]);
    }
    capabilities(img, tid, t);
    Ok(())
}

/// Are the current supplementary groups `groups` (in order)?
fn same_groups(groups: &[u8]) -> bool {
    let mut now = [0u32; 256];
    let Ok(n) = ksys::getgroups(&mut now) else {
        return false; // more than 256: set them
    };
    n == groups.len() / 4 && (0..n).all(|i| group(groups, i) == Some(now[i]))
}

/// Drop from the bounding set what the saved one lacks.
fn bounding_set(img: &Image, tid: u32, saved: u64) {
    for cap in 0..64u32 {
        if saved & (1 << cap) != 0 {
            continue;
        }
        // EINVAL past the kernel's last capability.
        if sys::prctl(PR_CAPBSET_READ, cap as usize, 0, 0, 0) == Ok(1) {
            if let Err(e) = sys::prctl(PR_CAPBSET_DROP, cap as usize, 0, 0, 0) {
                warn(img, tid, "capability bounding set", e);
                return;
            }
        }
    }
}

/// The ambient capabilities of the calling thread.
fn ambient() -> u64 {
    (0..64u32)
        .filter(|&c| sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c as usize, 0, 0) == Ok(1))
        .fold(0, |m, c| m | 1 << c)
}

/// Ambient capabilities, securebits and the three capability sets.
fn capabilities(img: &Image, tid: u32, t: &TaskRecord) {
    let want = Caps {
        effective: t.cap_effective,
        permitted: t.cap_permitted,
        inheritable: t.cap_inheritable,
    };
    let secure = || sys::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0).unwrap_or(0) as u32;
    let now = ksys::capget();
    if now == want && secure() == t.securebits && ambient() == t.cap_ambient {
        return;
    }
    // Everything permitted made effective (CAP_SETPCAP for what follows),
    // the saved inheritable set (ambient capabilities need it).
    let _ = ksys::capset(Caps {
        effective: now.permitted,
        permitted: now.permitted,
        inheritable: t.cap_inheritable,
    });
    if ambient() != t.cap_ambient {
        let _ = sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        for cap in (0..64u32).filter(|c| t.cap_ambient & (1 << c) != 0) {
            let _ = sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap as usize, 0, 0);
        }
    }
    if secure() != t.securebits {
        if let Err(e) = sys::prctl(PR_SET_SECUREBITS, t.securebits as usize, 0, 0, 0) {
            warn(img, tid, "securebits", e);
        }
    }
    let r = ksys::capset(want);
    if r.is_err() || ksys::capget() != want || ambient() != t.cap_ambient {
        warn(
            img,
            tid,
            "capabilities",
            r.err().unwrap_or(Errno(linux_raw_sys::errno::EPERM)),
        );
    }
}
