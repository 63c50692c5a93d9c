//! Inotify instances (format 1.3, `NT_KCKPT_INOTIFY`): their watches from
//! `/proc/PID/fdinfo/N`, and a path or descriptor for each watched inode.
//!
//! fdinfo names a watched inode by device, inode number and file handle.
//! The inode is found again, cheapest first: a descriptor of the process
//! open on it (restored as `/proc/self/fd/N`: this covers deleted files),
//! the working directory, the directories above it and above the files the
//! process has open and their entries (one level: what a user without
//! privileges can find), then `open_by_handle_at` on a mount of that
//! device (needs `CAP_DAC_READ_SEARCH`) and the path of what it opened.
//! Events already queued and not read cannot be saved without consuming
//! them: such an instance is refused.
#![allow(unsafe_code)]

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use kckpt_image::inotify::{watch_flags, InotifyWatchRecord, MAX_WD, WATCH_MASK_KNOWN};
use kckpt_image::FD_NO_DUP;
use nix::libc;

/// One watch as fdinfo lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub wd: u32,
    /// Userspace device number (`makedev`).
    pub dev: u64,
    pub ino: u64,
    pub mask: u32,
    pub handle_type: i32,
    pub handle: Vec<u8>,
}

/// A resolved watch: its record (path not yet in the string table) and
/// the path.
pub struct Resolved {
    pub rec: InotifyWatchRecord,
    pub path: Vec<u8>,
}

fn hexbytes(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The watches of an fdinfo text, sorted by wd.
pub fn parse(info: &str) -> Vec<Watch> {
    let mut out: Vec<Watch> = info
        .lines()
        .filter_map(|l| l.strip_prefix("inotify "))
        .filter_map(|l| {
            let get = |k: &str| l.split_whitespace().find_map(|w| w.strip_prefix(k));
            let hex = |k: &str| get(k).and_then(|v| u64::from_str_radix(v, 16).ok());
            // sdev is the kernel's dev_t: 12 bits of major, 20 of minor.
            let sdev = hex("sdev:")?;
            Some(Watch {
                wd: hex("wd:")? as u32,
                dev: libc::makedev((sdev >> 20) as u32, (sdev & 0xfffff) as u32),
                ino: hex("ino:")?,
                mask: hex("mask:")? as u32,
                handle_type: get("fhandle-type:")
                    .and_then(|v| i32::from_str_radix(v, 16).ok())
                    .unwrap_or(0),
                handle: get("f_handle:").and_then(hexbytes).unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by_key(|w| w.wd);
    out
}

/// Bytes of events queued and not read (`FIONREAD` on a copy).
pub fn unread(copy: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to `n`.
    let r = unsafe { libc::ioctl(copy.as_raw_fd(), libc::FIONREAD, &raw mut n) };
    if r < 0 {
        0
    } else {
        n
    }
}

/// `open_by_handle_at(mount_fd, handle, O_PATH)`.
fn open_handle(mount_fd: &OwnedFd, w: &Watch) -> Option<OwnedFd> {
    // struct file_handle: u32 handle_bytes, i32 handle_type, bytes.
    let mut fh = Vec::with_capacity(8 + w.handle.len());
    fh.extend_from_slice(&(w.handle.len() as u32).to_ne_bytes());
    fh.extend_from_slice(&w.handle_type.to_ne_bytes());
    fh.extend_from_slice(&w.handle);
    // SAFETY: `fh` is a complete struct file_handle the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd.as_raw_fd(),
            fh.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a fresh descriptor owned by nothing else.
    (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r as i32) })
}

fn matches(path: &str, w: &Watch) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.dev() == w.dev && m.ino() == w.ino)
}

/// The path of `w`'s inode through its file handle, on any mount of its
/// device the process sees (in its root).
fn path_by_handle(pid: i32, w: &Watch) -> Option<String> {
    if w.handle.is_empty() {
        return None;
    }
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let want = format!(
        "{}:{}",
        libc::major(w.dev as libc::dev_t),
        libc::minor(w.dev as libc::dev_t)
    );
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(2) != Some(&want.as_str()) {
            continue;
        }
        let Some(mnt) = f.get(4) else { continue };
        let Ok(mount) = fs::File::open(format!("/proc/{pid}/root{mnt}")) else {
            continue;
        };
        let Some(fd) = open_handle(&OwnedFd::from(mount), w) else {
            continue;
        };
        let Ok(path) = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            continue;
        };
        let path = path.to_string_lossy().into_owned();
        if !path.ends_with(" (deleted)") && matches(&path, w) {
            return Some(path);
        }
    }
    None
}

/// Most directories whose entries [`nearby`] lists, and most entries.
const NEARBY_DIRS: usize = 64;
const NEARBY_ENTRIES: usize = 1 << 16;

/// Paths near the process, with their (device, inode): its working
/// directory, the directories above it and above its open files, and the
/// entries of the working directory and of the open files' directories.
fn nearby(pid: i32, open: &[(u32, u64, u64)]) -> Vec<(u64, u64, String)> {
    let link = |what: String| {
        fs::read_link(format!("/proc/{pid}/{what}"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| p.starts_with('/') && !p.ends_with(" (deleted)"))
    };
    let mut dirs: Vec<String> = Vec::new();
    let mut add_dir = |d: &str| {
        if !dirs.iter().any(|x| x == d) && dirs.len() < NEARBY_DIRS {
            dirs.push(d.to_owned());
        }
    };
    let cwd = link("cwd".into());
    if let Some(c) = &cwd {
        add_dir(c);
    }
    for (fd, _, _) in open {
        let Ok(p) = fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
            continue;
        };
        let p = p.to_string_lossy();
        let p = p.strip_suffix(" (deleted)").unwrap_or(&p);
        if let Some(parent) = std::path::Path::new(p).parent() {
            add_dir(&parent.to_string_lossy());
        }
    }
    let mut out = Vec::new();
    let mut push = |p: String| {
        if let Ok(m) = fs::symlink_metadata(&p) {
            out.push((m.dev(), m.ino(), p));
        }
    };
    for d in &dirs {
        for a in std::path::Path::new(d).ancestors() {
            push(a.to_string_lossy().into_owned());
        }
        let Ok(entries) = fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten().take(NEARBY_ENTRIES) {
            push(e.path().to_string_lossy().into_owned());
        }
    }
    out
}

/// Records for the watches of inotify fd `fd`: `open` lists the
/// descriptors of the process a watch may be restored through (fd,
/// device, inode). A watch whose inode cannot be found is an error naming
/// it.
pub fn resolve(
    pid: i32,
    fd: u32,
    watches: &[Watch],
    open: &[(u32, u64, u64)],
) -> Result<Vec<Resolved>, String> {
    let mut near: Option<Vec<(u64, u64, String)>> = None;
    let mut out = Vec::new();
    for w in watches {
        if w.wd == 0 || w.wd > MAX_WD {
            return Err(format!(
                "inotify watch descriptor {} (above {MAX_WD})",
                w.wd
            ));
        }
        if w.mask & !WATCH_MASK_KNOWN != 0 {
            return Err(format!("inotify watch with mask {:#x}", w.mask));
        }
        let mut rec = InotifyWatchRecord {
            fd,
            wd: w.wd,
            mask: w.mask,
            dev: (u64::from(libc::major(w.dev as libc::dev_t)) << 32)
                | u64::from(libc::minor(w.dev as libc::dev_t)),
            ino: w.ino,
            target_fd: FD_NO_DUP,
            ..Default::default()
        };
        let by_fd = open.iter().find(|o| o.1 == w.dev && o.2 == w.ino);
        let path = if let Some(&(t, _, _)) = by_fd {
            rec.flags = watch_flags::BY_FD;
            rec.target_fd = t;
            fs::read_link(format!("/proc/{pid}/fd/{t}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else if let Some(p) = near
            .get_or_insert_with(|| nearby(pid, open))
            .iter()
            .find(|n| n.0 == w.dev && n.1 == w.ino)
        {
            p.2.clone()
        } else if let Some(p) = path_by_handle(pid, w) {
            p
        } else {
            return Err(format!(
                "inotify watch on inode {} of device {}:{} (its path cannot be found{})",
                w.ino,
                libc::major(w.dev as libc::dev_t),
                libc::minor(w.dev as libc::dev_t),
                if nix::unistd::geteuid().is_root() {
                    ""
                } else {
                    "; as root kckpt can look it up by its file handle"
                }
            ));
        };
        out.push(Resolved {
            rec,
            path: path.into_bytes(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_watches_are_parsed() {
        let info = "pos:\t0\nflags:\t04000\nmnt_id:\t17\nino:\t1038\n\
            inotify wd:3 ino:263 sdev:fe00001 mask:4000020 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:6302000000000000\n\
            inotify wd:1 ino:3c4a7 sdev:800010 mask:80000100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a7c4030000000000\n";
        let w = parse(info);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].wd, w[0].ino, w[0].mask), (1, 0x3c4a7, 0x8000_0100));
        assert_eq!(w[0].dev, libc::makedev(8, 16));
        assert_eq!(w[1].dev, libc::makedev(254, 1));
        assert_eq!(w[1].handle, vec![0x63, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(w[1].handle_type, 1);
    }
}
