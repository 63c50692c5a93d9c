//! SysV IPC objects: shared memory (format 1.10), semaphore sets and
//! message queues (1.11; `kckpt_image::sysv`).
//!
//! - [`create`]: before anything else changes, the process that restores
//!   the image (the single process, or a tree's coordinator before it
//!   forks the roots) moves into a new IPC namespace (`unshare`: needs
//!   `CAP_SYS_ADMIN`, which root has, and the stub's own user namespace
//!   with `--new-pid-ns`), where no id is taken: each object gets its
//!   saved id (`/proc/sys/kernel/{shm,sem,msg}_next_id`), key, owner and
//!   mode (`IPC_SET`; a queue also its `msg_qbytes`), then its content:
//!   a segment's through an attachment of its own, and `SHM_LOCK` when it
//!   was locked; a set's values (`SETALL`); a queue's messages in order
//!   (`msgsnd`, straight from the note, which holds each as the
//!   `struct msgbuf` it takes), after raising the namespace's `msgmax`
//!   and `msgmnb` where the image's messages and queues need more than
//!   the defaults. The namespace's owner may fill an object
//!   whatever its mode (`CAP_IPC_OWNER` there). Every process of a tree
//!   inherits the namespace.
//! - [`check_attachments`]: before its address space changes, every
//!   process checks that each segment it attaches exists and covers its
//!   areas (`IPC_STAT`).
//! - [`attach`]: each attachment is made again at its address: `shmat`
//!   anywhere (read-only when the area could not be made writable), the
//!   area's part moved into place (`mremap` of size 0 duplicates a shared
//!   mapping: the copy is an attachment, counted in `shm_nattch`, and
//!   `shmdt` at the saved attach address finds it), the first attachment
//!   detached.
//! - [`remove_destroyed`]: once every process has attached its segments,
//!   those removed before the dump (`SHM_DEST`) are removed again
//!   (`IPC_RMID`; attached, they live on until the last detach).
#![allow(unsafe_code)] // shmat, and the raw IPC syscalls' buffers.

use kckpt_image::sysv::{self, shm_mode};
use kckpt_image::{ImageView, VmaRecord};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::memory::Failure;
use crate::report::{decimal, Msg};
use crate::sys::{self, sc, Errno, SysResult};

const IPC_CREAT: usize = 0o1000;
const IPC_EXCL: usize = 0o2000;
const IPC_RMID: usize = 0;
const IPC_SET: usize = 1;
const IPC_STAT: usize = 2;
const SHM_LOCK: usize = 11;
const SHM_RDONLY: usize = 0o10000;
const SETALL: usize = 17;
const IPC_NOWAIT: usize = 0o4000;
const CLONE_NEWIPC: u32 = 0x0800_0000;

/// `struct ipc64_perm` (generic 64-bit layout: x86_64 and aarch64).
#[repr(C)]
#[derive(Default)]
struct Perm {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    seq: u16,
    pad: u16,
    unused: [u64; 2],
}

/// Room for `struct shmid64_ds`, `semid64_ds` and `msqid64_ds` (generic
/// 64-bit layout: `IPC_SET` reads the `Perm`, and of a queue
/// `msg_qbytes`, `rest[5]`).
#[repr(C)]
#[derive(Default)]
struct IpcDs {
    perm: Perm,
    rest: [u64; 10],
}

/// `struct shmid64_ds` (generic 64-bit layout).
#[repr(C)]
#[derive(Default)]
struct ShmidDs {
    perm: Perm,
    segsz: u64,
    times: [i64; 3],
    cpid: i32,
    lpid: i32,
    nattch: u64,
    unused: [u64; 2],
}

fn shmctl(id: u32, cmd: usize, ds: &mut ShmidDs) -> SysResult {
    let p = ds as *mut ShmidDs as usize;
    // SAFETY: `ds` is a live buffer of the kernel's `shmid64_ds` size;
    // IPC_STAT writes it, IPC_SET reads it, the others ignore it.
    unsafe { sc(g::__NR_shmctl, [id as usize, cmd, p, 0, 0, 0]) }
}

/// `shmat(id, NULL, flags)`: the address.
fn shmat_anywhere(id: u32, flags: usize) -> SysResult {
    // SAFETY: the kernel picks an unused range (address NULL), which
    // nothing of the stub uses.
    unsafe { sc(g::__NR_shmat, [id as usize, 0, flags, 0, 0, 0]) }
}

fn shmdt(addr: usize) {
    // SAFETY: `addr` is an attachment the caller made and no longer uses.
    let _ = unsafe { sc(g::__NR_shmdt, [addr, 0, 0, 0, 0, 0]) };
}

/// One line naming SysV object `id` (`kind`: "shared memory segment "...).
fn fail(img: &Image, kind: &str, id: u32, what: &str, e: Errno) -> ! {
    Msg::new()
        .push(img.path)
        .s(": SysV ")
        .s(kind)
        .dec(id.into())
        .s(": ")
        .s(what)
        .errno(e)
        .fail()
}

const SEGMENT: &str = "shared memory segment ";

/// Make SysV object `id` of `kind` with `get` (`shmget`, `semget`,
/// `msgget`, whose first argument is the key) and `args`, its id chosen
/// through `next_id` (`/proc/sys/kernel/..._next_id`).
fn make(img: &Image, kind: &str, next_id: &[u8], id: u32, get: u32, args: [usize; 3]) {
    let mut buf = [0u8; 20];
    if let Err(e) = sys::write_file(next_id, decimal(id.into(), &mut buf)) {
        fail(
            img,
            kind,
            id,
            "cannot choose its id (/proc/sys/kernel/*_next_id)",
            e,
        )
    }
    // SAFETY: integer arguments.
    let got = unsafe { sc(get, [args[0], args[1], args[2], 0, 0, 0]) }
        .unwrap_or_else(|e| fail(img, kind, id, "cannot create it", e));
    if got != id as usize {
        fail(
            img,
            kind,
            id,
            "got another id",
            Errno(linux_raw_sys::errno::EEXIST),
        );
    }
}

/// `IPC_SET` of `ds` on object `id` through `ctl`: `semctl(id, 0,
/// IPC_SET, ds)` (`cmd_at` 2), or `msgctl`/`shmctl(id, IPC_SET, ds)`
/// (`cmd_at` 1).
fn set_owner(img: &Image, kind: &str, id: u32, ctl: u32, cmd_at: usize, ds: &mut IpcDs) {
    let mut a = [id as usize, 0, 0, 0, 0, 0];
    a[cmd_at] = IPC_SET;
    a[cmd_at + 1] = ds as *mut IpcDs as usize;
    // SAFETY: `ds` is a live buffer at least as large as the kernel's
    // `shmid64_ds`/`semid64_ds`/`msqid64_ds`, which IPC_SET reads.
    if let Err(e) = unsafe { sc(ctl, a) } {
        fail(
            img,
            kind,
            id,
            "cannot give it its owner, group, mode (and a queue's size limit) with IPC_SET",
            e,
        )
    }
}

/// Re-create the image's SysV objects in a new IPC namespace (nothing
/// when it has none). Refuses with one line on any failure, before the
/// address space changes.
pub fn create(img: &Image) {
    let v = &img.view;
    if v.sysv_shm.is_empty() && v.sysv_sem.is_empty() && v.sysv_msg.is_empty() {
        return;
    }
    if let Err(e) = sys::unshare(CLONE_NEWIPC) {
        Msg::new()
            .push(img.path)
            .s(": SysV IPC objects come back in a new IPC namespace, which needs CAP_SYS_ADMIN: restore as root or with --new-pid-ns")
            .errno(e)
            .fail()
    }
    let key = |k: u32| k as i32 as isize as usize;
    for s in v.sysv_sem.iter() {
        const SET: &str = "semaphore set ";
        let mode = (s.mode & 0o777) as usize;
        let flags = IPC_CREAT | IPC_EXCL | mode;
        let next = b"/proc/sys/kernel/sem_next_id\0";
        make(
            img,
            SET,
            next,
            s.id,
            g::__NR_semget,
            [key(s.key), s.nsems as usize, flags],
        );
        let mut ds = IpcDs::default();
        (ds.perm.uid, ds.perm.gid, ds.perm.mode) = (s.uid, s.gid, s.mode);
        set_owner(img, SET, s.id, g::__NR_semctl, 2, &mut ds);
        let values = sysv::values_of(v, &s).as_ptr() as usize;
        // SAFETY: SETALL reads `nsems` u16 values, which validation
        // found in the note at `values`.
        if let Err(e) = unsafe { sc(g::__NR_semctl, [s.id as usize, 0, SETALL, values, 0, 0]) } {
            fail(img, SET, s.id, "cannot set its values (SETALL)", e)
        }
    }
    // A new namespace's limits are the kernel's defaults (MSGMAX 8192
    // bytes a message, MSGMNB 16384 a queue): raised to what the image
    // holds, as the dump's namespace had them (its owner may).
    let longest = sysv::messages(v.sysv_messages)
        .flatten()
        .map(|m| m.0.len)
        .max();
    let largest = v.sysv_msg.iter().map(|q| q.qbytes).max();
    for (limit, default, path) in [
        (longest, 8192, &b"/proc/sys/kernel/msgmax\0"[..]),
        (largest, 16384, b"/proc/sys/kernel/msgmnb\0"),
    ] {
        if let Some(n) = limit.filter(|&n| n > default) {
            let mut buf = [0u8; 20];
            let _ = sys::write_file(path, decimal(n, &mut buf));
        }
    }
    let mut msgs = sysv::messages(v.sysv_messages);
    for q in v.sysv_msg.iter() {
        const QUEUE: &str = "message queue ";
        let flags = IPC_CREAT | IPC_EXCL | (q.mode & 0o777) as usize;
        let next = b"/proc/sys/kernel/msg_next_id\0";
        make(
            img,
            QUEUE,
            next,
            q.id,
            g::__NR_msgget,
            [key(q.key), flags, 0],
        );
        let mut ds = IpcDs::default();
        (ds.perm.uid, ds.perm.gid, ds.perm.mode) = (q.uid, q.gid, q.mode);
        ds.rest[5] = q.qbytes;
        set_owner(img, QUEUE, q.id, g::__NR_msgctl, 1, &mut ds);
        for _ in 0..q.msg_count {
            let Some(Some((h, at, _))) = msgs.next() else {
                break; // validation counted them
            };
            let buf = v.sysv_messages.as_ptr() as usize + at;
            let a = [q.id as usize, buf, h.len as usize, IPC_NOWAIT, 0, 0];
            // SAFETY: msgsnd reads the `long` mtype and `len` bytes of
            // text at `buf`, inside the validated note.
            if let Err(e) = unsafe { sc(g::__NR_msgsnd, a) } {
                fail(
                    img,
                    QUEUE,
                    q.id,
                    "cannot queue its messages again (msgsnd)",
                    e,
                )
            }
        }
    }
    for s in v.sysv_shm.iter() {
        let flags = IPC_CREAT | IPC_EXCL | (s.mode & 0o777) as usize;
        let next = b"/proc/sys/kernel/shm_next_id\0";
        make(
            img,
            SEGMENT,
            next,
            s.id,
            g::__NR_shmget,
            [key(s.key), s.size as usize, flags],
        );
        let mut ds = IpcDs::default();
        (ds.perm.uid, ds.perm.gid, ds.perm.mode) = (s.uid, s.gid, s.mode & 0o777);
        set_owner(img, SEGMENT, s.id, g::__NR_shmctl, 1, &mut ds);
        if s.extent_count > 0 {
            let at = shmat_anywhere(s.id, 0)
                .unwrap_or_else(|e| fail(img, SEGMENT, s.id, "cannot attach it", e));
            for e in sysv::extents_of(v, &s) {
                // SAFETY: validation keeps the extent inside the segment,
                // which is attached at `at` (writable) for this loop.
                let r = unsafe {
                    sys::pread_raw(
                        img.fd,
                        at + e.file_offset as usize,
                        e.len as usize,
                        e.data_offset,
                    )
                };
                if !matches!(r, Ok(n) if n == e.len as usize) {
                    shmdt(at);
                    fail(
                        img,
                        SEGMENT,
                        s.id,
                        "cannot read its content from the image",
                        r.err().unwrap_or(Errno(linux_raw_sys::errno::EIO)),
                    )
                }
            }
            shmdt(at);
        }
        if s.mode & shm_mode::LOCKED != 0 {
            if let Err(e) = shmctl(s.id, SHM_LOCK, &mut ShmidDs::default()) {
                fail(img, SEGMENT, s.id, "cannot lock it in memory (SHM_LOCK)", e)
            }
        }
    }
}

/// Before the address space changes: a single process attaches only
/// segments of its own table ([`create`] made them, validation checked
/// their sizes; an image without the table is refused); a process of a
/// tree (whose image has no table) finds every segment it attaches, large
/// enough for its areas.
pub fn check_attachments(img: &Image, tree_proc: bool) {
    let v = &img.view;
    let page = u64::from(v.header.page_size);
    for vma in v.vmas.iter().filter(sysv::is_attachment) {
        if !tree_proc {
            if sysv::find(v, vma.inode).is_none() {
                Msg::new()
                    .push(img.path)
                    .s(": memory at ")
                    .hex(vma.start)
                    .s(" is an attachment of SysV shared memory segment ")
                    .dec(vma.inode)
                    .s(", which the image does not hold (a process of a tree restored on its own?)")
                    .fail()
            }
            continue;
        }
        let mut ds = ShmidDs::default();
        let r = shmctl(vma.inode as u32, IPC_STAT, &mut ds);
        let end = vma.file_pgoff + (vma.end - vma.start);
        if r.is_err() || ds.segsz.next_multiple_of(page) < end {
            Msg::new()
                .push(img.path)
                .s(": SysV shared memory segment ")
                .dec(vma.inode)
                .s(" for memory at ")
                .hex(vma.start)
                .s(" is missing or too small")
                .errno(r.err().unwrap_or(Errno(linux_raw_sys::errno::EINVAL)))
                .fail()
        }
    }
}

/// Attach `vma`'s segment at its saved place with its protection.
pub fn attach(vma: &VmaRecord) -> Result<(), Failure> {
    let at = |what| {
        move |errno| Failure {
            what,
            addr: vma.start,
            errno,
        }
    };
    let writable = vma.prot & kckpt_image::prot::WRITE != 0
        || vma.flags & kckpt_image::vma_flags::MAYWRITE != 0;
    let flags = if writable { 0 } else { SHM_RDONLY };
    let base = shmat_anywhere(vma.inode as u32, flags).map_err(at("attaching a SysV segment"))?;
    let len = (vma.end - vma.start) as usize;
    let from = base + vma.file_pgoff as usize;
    // SAFETY: `mremap(from, 0, len, MAYMOVE|FIXED, start)` duplicates the
    // shared attachment at the VMA's saved place, outside the stub's
    // window (validation), where nothing else is mapped any more.
    let r = unsafe {
        sc(
            g::__NR_mremap,
            [
                from,
                0,
                len,
                (g::MREMAP_MAYMOVE | g::MREMAP_FIXED) as usize,
                vma.start as usize,
                0,
            ],
        )
    };
    shmdt(base);
    r.map_err(at("placing a SysV segment"))?;
    // SAFETY: changes only the protection of the area just placed.
    unsafe { sys::mprotect(vma.start as usize, len, vma.prot) }
        .map_err(at("protecting a SysV segment"))?;
    Ok(())
}

/// Remove again the segments that had been removed while attached.
pub fn remove_destroyed(v: &ImageView<'_>) {
    for s in v.sysv_shm.iter().filter(|s| s.mode & shm_mode::DEST != 0) {
        let _ = shmctl(s.id, IPC_RMID, &mut ShmidDs::default());
    }
}
