//! Inotify watches (format 1.3, `NT_KCKPT_INOTIFY`). Every watched path is
//! tried on a scratch instance once the descriptors exist (a path gone or
//! unreadable is a clean refusal, before the address space changes); the
//! watches themselves are added once the memory is rebuilt and the
//! descriptors the stub used for it are closed, so opening and closing
//! mapped and deleted files queues no events and fires no `IN_ONESHOT`
//! watch. A watch on a deleted file goes through `/proc/self/fd/N` of the
//! descriptor open on it.
//!
//! The kernel numbers the watches of an instance upwards from 1 and never
//! reuses a number before wrapping (`idr_alloc_cyclic`), so the watches are
//! added in wd order and a hole (a watch the program had removed) is
//! skipped by adding and removing a watch on a private memfd; the
//! `IN_IGNORED` event that removal queues is read back at once.

use kckpt_image::files::find_fd;
use kckpt_image::inotify::{watch_flags, InotifyWatchRecord};
use linux_raw_sys::general as g;

use crate::ghosts::PathBuf;
use crate::load::Image;
use crate::report::Msg;
use crate::sys::{self, Errno};

const F_SETFL: u32 = 4;
const IN_OPEN: u32 = 0x20;
const IN_DONT_FOLLOW: u32 = 0x0200_0000;
const MFD_CLOEXEC: u32 = 1;

fn msg(img: &Image, w: &InotifyWatchRecord) -> Msg {
    let mut m = Msg::new();
    m.push(img.path)
        .s(": fd ")
        .dec(w.fd.into())
        .s(" (inotify): watch ")
        .dec(w.wd.into())
        .s(" on ")
        .push(img.view.string(w.path).unwrap_or(&[]));
    m
}

/// Take watch number `wd` of `fd` with a watch on the dummy inode and
/// remove it again, reading back its `IN_IGNORED` event.
fn skip(img: &Image, w: &InotifyWatchRecord, dummy: &[u8], wd: u32) {
    let fd = w.fd as usize;
    match sys::inotify_add_watch(fd, dummy, IN_OPEN) {
        Ok(got) if got == wd as usize => {
            let _ = sys::inotify_rm_watch(fd, got);
            let mut ev = [0u8; 16];
            let _ = crate::ksys::read(fd, &mut ev);
        }
        Ok(got) => msg(img, w)
            .s(": cannot skip watch number ")
            .dec(wd.into())
            .s(" (the kernel gave ")
            .dec(got as u64)
            .s(")")
            .fail(),
        Err(e) => msg(img, w)
            .s(": cannot skip watch number ")
            .dec(wd.into())
            .errno(e)
            .fail(),
    }
}

/// Add one saved watch; `Err` when the kernel refuses it.
fn add(img: &Image, w: &InotifyWatchRecord) -> Result<usize, Errno> {
    let (mut path, mask) = if w.flags & watch_flags::BY_FD != 0 {
        (PathBuf::proc_fd(w.target_fd.into()), w.mask)
    } else {
        let mut p = PathBuf::new();
        p.push(img.view.string(w.path).unwrap_or(&[]));
        // The saved path names the inode itself: never follow a final
        // symbolic link.
        (p, w.mask | IN_DONT_FOLLOW)
    };
    sys::inotify_add_watch(w.fd as usize, path.c(), mask)
}

/// Try every watched path on a scratch instance: a path the kernel
/// refuses fails the restore, unless `force` (then [`add_watches`] leaves
/// that watch out with a warning).
pub fn check_paths(img: &Image, force: bool) {
    if img.view.inotify.is_empty() || force {
        return;
    }
    let Ok(scratch) = sys::inotify_init1(g::O_CLOEXEC) else {
        return; // the instances themselves were created: not expected
    };
    for w in img.view.inotify.iter() {
        if w.flags & watch_flags::BY_FD != 0 {
            continue;
        }
        let scratch_w = InotifyWatchRecord {
            fd: scratch as u32,
            ..w
        };
        if let Err(e) = add(img, &scratch_w) {
            msg(img, &w)
                .s(": cannot watch it")
                .errno(e)
                .s(" (missing or not readable?); --force restores the inotify without this watch")
                .fail();
        }
    }
    sys::close(scratch);
}

/// Add every saved watch with its wd. A watch the kernel refuses (its
/// path is gone) fails the restore, or with `force` is left out (its
/// number skipped) with a warning.
pub fn add_watches(img: &Image, force: bool) {
    let v = &img.view;
    if v.inotify.is_empty() {
        return;
    }
    let dummy_fd = sys::memfd_create(b"kckpt-inotify\0", MFD_CLOEXEC).unwrap_or_else(|e| {
        Msg::new()
            .push(img.path)
            .s(": inotify: memfd_create")
            .errno(e)
            .fail()
    });
    let mut dummy = PathBuf::proc_fd(dummy_fd as u64);
    let dummy = dummy.c();
    let mut current: Option<(u32, u32)> = None; // (fd, saved flags)
    let mut next = 1u32;
    for w in v.inotify.iter() {
        if current.is_none_or(|(fd, _)| fd != w.fd) {
            if let Some((fd, flags)) = current {
                let _ = sys::fcntl(fd as usize, F_SETFL, flags as usize);
            }
            let flags = find_fd(v, w.fd).map_or(0, |r| r.flags);
            // Non-blocking while the skipped watches' events are read.
            let _ = sys::fcntl(w.fd as usize, F_SETFL, (flags | g::O_NONBLOCK) as usize);
            current = Some((w.fd, flags));
            next = 1;
        }
        while next < w.wd {
            skip(img, &w, dummy, next);
            next += 1;
        }
        match add(img, &w) {
            Ok(got) if got == w.wd as usize => {}
            Ok(got) => msg(img, &w)
                .s(": the kernel gave it number ")
                .dec(got as u64)
                .s(" (the path now names an inode already watched?)")
                .fail(),
            Err(e) if force => {
                msg(img, &w)
                    .s(": cannot watch it")
                    .errno(e)
                    .s("; restored without this watch (--force): the program gets no events for it")
                    .warn();
                skip(img, &w, dummy, w.wd);
            }
            Err(e) => msg(img, &w).s(": cannot watch it").errno(e).fail(),
        }
        next = w.wd + 1;
    }
    if let Some((fd, flags)) = current {
        let _ = sys::fcntl(fd as usize, F_SETFL, flags as usize);
    }
    sys::close(dummy_fd);
}
