//! Process-wide kernel state of format 1.3 (`NT_KCKPT_KSTATE`,
//! `NT_KCKPT_AIO`, `NT_KCKPT_CGROUPS`), restored in this order:
//!
//! 1. before memory: THP disable (`PR_SET_THP_DISABLE`, so the rebuilt
//!    memory gets huge pages only as the saved process would);
//! 2. after memory, before the other threads exist (they inherit what is
//!    per thread): aio rings ([`aio`]), membarrier registrations,
//!    `oom_score_adj`, `loginuid`, child subreaper, the process's cgroups
//!    (a re-created one with its saved settings, [`join_cgroups`]);
//! 3. each other thread joins its own cgroup when it differs
//!    ([`join_cgroups`] with its tid).
//!
//! What needs a privilege the restorer lacks is reported with one
//! `kckpt: warning:` line naming it, and the restore goes on (lowering
//! `oom_score_adj` needs `CAP_SYS_RESOURCE`, changing a set `loginuid`
//! `CAP_AUDIT_CONTROL`, another cgroup write access to it): the restorer's
//! own value stays, as for any program it starts. Membarrier registrations
//! and aio rings need none; a failure there ends the restore.
#![allow(unsafe_code)] // The aio ring the kernel maps: header words, events.

use kckpt_image::kstate::{kstate_flags, AioRingRecord, CgroupRecord, AIO_RING_HEADER};
use linux_raw_sys::general as g;

use crate::ksys::{self, Iocb};
use crate::load::Image;
use crate::memory::Failure;
use crate::report::Msg;
use crate::sys::{self, Errno};

const PR_SET_CHILD_SUBREAPER: u32 = 36;
const PR_SET_THP_DISABLE: u32 = 41;
const PR_GET_THP_DISABLE: u32 = 42;

fn failed(what: &'static str, addr: u64) -> impl FnOnce(Errno) -> Failure {
    move |errno| Failure { what, addr, errno }
}

/// THP disable, before the memory is rebuilt (a failure is a warning).
pub fn before_memory(img: &Image) {
    let Some(k) = img.view.kstate else { return };
    let now = sys::prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0).unwrap_or(0) as u32;
    if now != k.thp_disable {
        let on = (k.thp_disable & 1) as usize;
        let flags = (k.thp_disable & !1) as usize;
        if let Err(e) = sys::prctl(PR_SET_THP_DISABLE, on, flags, 0, 0) {
            Msg::new()
                .push(img.path)
                .s(": cannot set THP disable to ")
                .dec(k.thp_disable.into())
                .errno(e)
                .warn();
        }
    }
}

/// The process-wide state restored once memory is back (see the module
/// documentation).
pub fn after_memory(img: &Image) -> Result<(), Failure> {
    for ring in img.view.aio.iter() {
        aio(&ring)?;
    }
    let Some(k) = img.view.kstate else {
        return join_cgroups(img, 0);
    };
    if k.flags & kstate_flags::HAVE_MEMBARRIER != 0 {
        for bit in [2u32, 4, 6, 8] {
            if k.membarrier & (1 << bit) != 0 {
                ksys::membarrier(1 << bit).map_err(failed("membarrier registration", 1 << bit))?;
            }
        }
    }
    if k.flags & kstate_flags::HAVE_OOM_SCORE_ADJ != 0 {
        proc_value(
            img,
            b"/proc/self/oom_score_adj\0",
            "oom_score_adj",
            k.oom_score_adj.into(),
        );
    }
    if k.flags & kstate_flags::HAVE_LOGINUID != 0
        && !LOGINUID_SET.load(core::sync::atomic::Ordering::Relaxed)
    {
        proc_value(img, b"/proc/self/loginuid\0", "loginuid", k.loginuid.into());
    }
    if k.child_subreaper != 0 {
        sys::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            .map_err(failed("PR_SET_CHILD_SUBREAPER", 0))?;
    }
    join_cgroups(img, 0)
}

/// Before the restore enters a user namespace it created, where
/// `/proc/self/loginuid` cannot be written: set the saved `loginuid` now
/// (children inherit it); a failure is reported later, where it is
/// restored as usual.
pub fn loginuid_before_userns(img: &Image) {
    let Some(k) = img.view.kstate else { return };
    if k.flags & kstate_flags::HAVE_LOGINUID != 0 && sys::geteuid() != 0 {
        if set_proc_value(b"/proc/self/loginuid\0", k.loginuid.into(), None) {
            // Inside the namespace the file shows it as the overflow id
            // when it is not mapped there: not read again.
            LOGINUID_SET.store(true, core::sync::atomic::Ordering::Relaxed);
        }
        // The new namespace maps only this user's uid.
        if k.loginuid != u32::MAX && k.loginuid != sys::geteuid() {
            Msg::new()
                .push(img.path)
                .s(": the process's loginuid ")
                .dec(k.loginuid.into())
                .s(" is not mapped in the new user namespace: it reads /proc/self/loginuid as unset (4294967295)")
                .warn();
        }
    }
}

/// The saved loginuid was set before entering the user namespace.
static LOGINUID_SET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// [`set_proc_value`], a refusal being a warning naming `what`.
fn proc_value(img: &Image, path: &[u8], what: &str, v: i64) {
    set_proc_value(path, v, Some((img, what)));
}

/// Write the number to the `/proc/self` file `path` unless it holds it
/// already; whether it holds it now. A refusal is a warning naming `what`
/// when `report` is given.
fn set_proc_value(path: &[u8], v: i64, report: Option<(&Image, &str)>) -> bool {
    let mut digits = [0; 20];
    let digits = crate::report::decimal(v.unsigned_abs(), &mut digits);
    let n = digits.len();
    let mut buf = [b'-'; 21];
    buf[1..=n].copy_from_slice(digits);
    let text = &buf[usize::from(v >= 0)..=n];
    let mut now = [0u8; 24];
    let now = sys::read_small(path, &mut now);
    let current = now.strip_suffix(b"\n").unwrap_or(now);
    if current == text {
        return true;
    }
    let Err(e) = sys::write_file(path, text) else {
        return true;
    };
    if let Some((img, what)) = report {
        Msg::new()
            .push(img.path)
            .s(": cannot set ")
            .s(what)
            .s(" to ")
            .push(text)
            .errno(e)
            .s("; it stays ")
            .push(current)
            .warn();
    }
    false
}

/// Batches of dummy requests submitted at once.
const BATCH: usize = 64;

/// Re-create one aio context at its saved address with its saved head and
/// tail: `io_setup` of the same size, as many synchronous one-byte writes
/// to `/dev/null` as move the in-kernel tail to the saved one (a full turn
/// first when the tail had wrapped below the head, so the kernel counts
/// completed events as before), the head set directly (as `io_getevents`
/// would move it), the saved events copied over, and the ring moved onto
/// the saved area with `mremap` (which replaces the copy the memory
/// restore left there, and which the kernel follows: the context id is
/// the ring's address).
fn aio(r: &AioRingRecord) -> Result<(), Failure> {
    let ctx = ksys::io_setup(r.nr_events).map_err(failed("io_setup", r.addr))?;
    let ring = ctx as *mut u32;
    // SAFETY: `ctx` is the kernel's new ring mapping, at least one page
    // long; its header is four u32s then more.
    let nr = unsafe { core::ptr::read_volatile(ring.add(1)) };
    if nr != r.ring_nr {
        return Err(Failure {
            what: "re-creating an aio context of the saved size",
            addr: r.addr,
            errno: Errno(linux_raw_sys::errno::EINVAL),
        });
    }
    let (head, tail) = (r.head, r.tail);
    let count = if tail < head { nr + tail } else { tail } as usize;
    if count > 0 {
        let null =
            sys::open(b"/dev/null\0", g::O_WRONLY).map_err(failed("opening /dev/null", 0))?;
        let byte = [0u8; 1];
        let iocb = Iocb {
            fildes: null as u32,
            opcode: 1, // IOCB_CMD_PWRITE
            buf: byte.as_ptr() as u64,
            nbytes: 1,
            ..Iocb::default()
        };
        let list = [&iocb as *const Iocb; BATCH];
        let mut done = 0usize;
        while done < count {
            let n = (count - done).min(BATCH).min(nr as usize - 1);
            // SAFETY: every entry points at `iocb`, whose one-byte buffer
            // outlives the synchronous write to /dev/null.
            let r = unsafe { ksys::io_submit(ctx, &list[..n]) };
            match r {
                Ok(k) if k > 0 => done += k,
                Ok(_) => {
                    sys::close(null);
                    return Err(failed("moving an aio ring's tail", ctx as u64)(Errno(
                        linux_raw_sys::errno::EAGAIN,
                    )));
                }
                Err(e) => {
                    sys::close(null);
                    return Err(failed("moving an aio ring's tail", ctx as u64)(e));
                }
            }
            // Consume what was just completed (as io_getevents would), up
            // to the saved head, so the ring never fills up.
            let h = if done < head as usize {
                done as u32
            } else {
                head
            };
            // SAFETY: the head word of the live ring.
            unsafe { core::ptr::write_volatile(ring.add(2), h) };
        }
        sys::close(null);
    }
    // SAFETY: the head word of the live ring.
    unsafe { core::ptr::write_volatile(ring.add(2), head) };
    let len = r.len as usize;
    let skip = AIO_RING_HEADER as usize;
    // SAFETY: both areas are `len` bytes: the new ring, and the saved ring's
    // copy that the memory restore mapped at `r.addr` (the reader checked
    // that a shared area of exactly that size was saved there); they do
    // not overlap (the kernel placed the new ring where nothing was).
    unsafe {
        core::ptr::copy_nonoverlapping(
            (r.addr as usize + skip) as *const u8,
            (ctx + skip) as *mut u8,
            len - skip,
        );
        sys::mremap_fixed(ctx, len, r.addr as usize)
    }
    .map_err(failed("moving an aio ring to its saved address", r.addr))?;
    Ok(())
}

/// The cgroup records of the process (`tid` 0) or of saved thread `tid`.
fn cgroups_of(img: &Image, tid: u32) -> impl Iterator<Item = CgroupRecord> + '_ {
    img.view.cgroups.iter().filter(move |c| c.tid == tid)
}

/// Is `line` one of `/proc/thread-self/cgroup`'s (`self` for the process)?
fn in_cgroup(line: &[u8], thread: bool) -> bool {
    let path: &[u8] = if thread {
        b"/proc/thread-self/cgroup\0"
    } else {
        b"/proc/self/cgroup\0"
    };
    let mut buf = [0u8; 4096];
    sys::read_small(path, &mut buf)
        .split(|&c| c == b'\n')
        .any(|l| l == line)
}

/// Put the calling thread (`tid` != 0: only it) or the whole process
/// (`tid` 0) into its saved cgroups where it is not there already,
/// creating a cgroup directory that no longer exists. A cgroup that
/// cannot be joined is a warning naming it.
pub fn join_cgroups(img: &Image, tid: u32) -> Result<(), Failure> {
    for c in cgroups_of(img, tid) {
        let (Ok(line), Ok(dir)) = (img.view.string(c.line), img.view.string(c.dir)) else {
            continue;
        };
        let empty = c.flags & kckpt_image::kstate::cgroup_flags::EMPTY != 0;
        if !empty && in_cgroup(line, tid != 0) {
            continue;
        }
        let v2 = c.flags & kckpt_image::kstate::cgroup_flags::V2 != 0;
        let file: &[u8] = match (tid != 0, v2) {
            (false, _) => b"/cgroup.procs\0",
            (true, true) => b"/cgroup.threads\0",
            (true, false) => b"/tasks\0",
        };
        // A directory below 4000 bytes, `/`, a name of at most 255 and NUL.
        let mut path = [0u8; 4352];
        let n = dir.len();
        path[..n].copy_from_slice(dir);
        // Create what is missing (mkdir -p), as the saved process's, only
        // inside a mounted cgroup hierarchy, and write its saved settings
        // back before the process joins; say so. A cgroup that exists
        // keeps the settings it has now.
        path[n] = 0;
        if ksys::fs_type(&path[..n + 1]).is_err() {
            if !mkdir_p(&mut path[..n + 1]) {
                Msg::new()
                    .push(img.path)
                    .s(": cgroup ")
                    .push(line)
                    .s(": its hierarchy is not mounted at ")
                    .push(dir)
                    .s(" here; the process stays in the restorer's cgroup")
                    .warn();
                continue;
            }
            let (saved, failed) = write_settings(img, line, dir, &mut path);
            let mut m = Msg::new();
            m.push(img.path)
                .s(": cgroup ")
                .push(line)
                .s(" was missing: created again with its ")
                .dec(saved)
                .s(" saved settings");
            if failed > 0 {
                m.s(", ")
                    .dec(failed)
                    .s(" of them not written back (see above)");
            }
            m.warn();
        }
        if empty {
            continue; // (1.7) made again if missing; nobody joins it
        }
        path[n..n + file.len()].copy_from_slice(file);
        // `0` in cgroup.procs or tasks moves the writer itself.
        if let Err(e) = sys::write_file(&path[..n + file.len()], b"0") {
            Msg::new()
                .push(img.path)
                .s(": cannot put the process back into cgroup ")
                .push(line)
                .s(" (")
                .push(dir)
                .s(")")
                .errno(e)
                .s("; it stays in the restorer's")
                .warn();
        }
    }
    Ok(())
}

/// Write the saved settings of the cgroup directory `dir` (just created
/// again: `path` holds it) back, one line per `write` (without its
/// newline), skipping the lines the new cgroup shows already (its
/// defaults). A line the kernel refuses (a `net_prio.ifpriomap` line of
/// an interface gone, a value shown in a form it does not take back) is a
/// warning naming it. Gives the number of settings and of those not
/// written back in full.
fn write_settings(img: &Image, line: &[u8], dir: &[u8], path: &mut [u8; 4352]) -> (u64, u64) {
    let (mut saved, mut failed) = (0, 0);
    let n = dir.len();
    for p in img.view.cgroup_props.iter() {
        let owner = img.view.cgroups.get(p.cgroup as usize);
        if owner.and_then(|c| img.view.string(c.dir).ok()) != Some(dir) {
            continue;
        }
        let (Ok(name), Ok(value)) = (img.view.string(p.name), img.view.string(p.value)) else {
            continue;
        };
        saved += 1;
        // `dir/name` NUL-terminated in `path`: its length without the NUL.
        let file_of = |path: &mut [u8; 4352], name: &[u8]| {
            let end = n + 1 + name.len();
            path[n] = b'/';
            path[n + 1..end].copy_from_slice(name);
            path[end] = 0;
            end
        };
        // A v1 device list (`devices.list`, read-only): deny everything,
        // then allow each saved line.
        let devices = name == b"devices.list";
        if devices {
            let end = file_of(path, b"devices.deny");
            let _ = sys::write_file(&path[..=end], b"a");
        }
        let name: &[u8] = if devices { b"devices.allow" } else { name };
        let end = file_of(path, name);
        let file = &path[..=end];
        let mut buf = [0u8; 4096];
        let now = if devices {
            &[][..]
        } else {
            sys::read_small(file, &mut buf)
        };
        let mut ok = true;
        for l in value.split(|&c| c == b'\n') {
            if l.is_empty() || now.split(|&c| c == b'\n').any(|x| x == l) {
                continue;
            }
            if let Err(e) = sys::write_file(file, l) {
                ok = false;
                Msg::new()
                    .push(img.path)
                    .s(": cgroup ")
                    .push(line)
                    .s(": cannot write its setting ")
                    .push(name)
                    .s(" \"")
                    .push(l)
                    .s("\" back")
                    .errno(e)
                    .warn();
            }
        }
        failed += u64::from(!ok);
    }
    path[n] = 0;
    (saved, failed)
}

/// `mkdir -p` of the NUL-terminated `path` (mode 0755), only below an
/// existing directory of a cgroup file system (v1 or v2): false, creating
/// nothing, when the deepest existing ancestor is not one.
fn mkdir_p(path: &mut [u8]) -> bool {
    const CGROUP_SUPER_MAGIC: u64 = 0x27e0eb;
    const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
    let end = path.len() - 1;
    // The deepest existing ancestor.
    let mut cut = end;
    while cut > 1 {
        cut -= 1;
        if path[cut] != b'/' {
            continue;
        }
        path[cut] = 0;
        let t = ksys::fs_type(&path[..=cut]);
        path[cut] = b'/';
        match t {
            Ok(CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC) => break,
            Ok(_) => return false,
            Err(_) => {}
        }
    }
    if cut <= 1 {
        return false;
    }
    for i in cut + 1..end {
        if path[i] == b'/' {
            path[i] = 0;
            let _ = crate::gsys::mkdir(&path[..=i], 0o755);
            path[i] = b'/';
        }
    }
    crate::gsys::mkdir(path, 0o755).is_ok()
}
