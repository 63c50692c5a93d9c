//! SysV shared memory the dumped processes use (format 1.10,
//! `kckpt_image::sysv`): which segments (attached by one of them, or
//! created or last attached or detached by one: `cpid`, `lpid`), what is
//! refused (a segment also attached outside the dump, huge pages, another
//! IPC namespace than kckpt's), and their content, read through a
//! read-only attachment of the dumper's own. The restore re-creates them
//! under their ids in a new IPC namespace.
#![allow(unsafe_code)] // shmat/shmdt: maps a segment into the dumper.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use kckpt_image::sysv::{shm_mode, SysvShmRecord, MAX_SEGMENTS, MAX_SEGMENT_SIZE};
use kckpt_image::ExtentRecord;
use kckpt_image_write::{ImageWriter, SysvMeta};
use nix::libc;

use super::procfs::MapEntry;
use crate::error::{Error, Result};

/// Is `e` an attachment of a SysV segment (`/SYSV<key> (deleted)`, its
/// inode the segment's id)?
pub fn is_attachment(e: &MapEntry) -> bool {
    e.shared && e.name.starts_with("/SYSV")
}

/// Is process `pid` in kckpt's own IPC namespace, the one
/// `/proc/sysvipc` shows? (`false` when either link cannot be read.)
pub fn in_kckpt_ipc_ns(pid: i32) -> bool {
    let me = fs::read_link("/proc/self/ns/ipc").ok();
    me.is_some() && me == fs::read_link(format!("/proc/{pid}/ns/ipc")).ok()
}

/// One row of `/proc/sysvipc/shm`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    key: i32,
    id: u32,
    mode: u32,
    size: u64,
    cpid: i32,
    lpid: i32,
    nattch: u64,
    uid: u32,
    gid: u32,
}

/// Parse `/proc/sysvipc/shm` (key shmid perms size cpid lpid nattch uid
/// gid ...; perms in octal, with `SHM_DEST` and `SHM_LOCKED`).
fn parse_rows(text: &str) -> Vec<Row> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some(Row {
                key: w.first()?.parse().ok()?,
                id: w.get(1)?.parse().ok()?,
                mode: u32::from_str_radix(w.get(2)?, 8).ok()?,
                size: w.get(3)?.parse().ok()?,
                cpid: w.get(4)?.parse().ok()?,
                lpid: w.get(5)?.parse().ok()?,
                nattch: w.get(6)?.parse().ok()?,
                uid: w.get(7)?.parse().ok()?,
                gid: w.get(8)?.parse().ok()?,
            })
        })
        .collect()
}

/// The segments `procs` (pid, mappings) use, checked and sorted by id;
/// `skip`: what would be refused is a warning instead (the segment saved
/// as it is). Refusals come before anything is written, with the first
/// pid as the target.
pub fn collect(
    procs: &[(i32, &[MapEntry])],
    skip: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<SysvShmRecord>> {
    let Some(&(first, _)) = procs.first() else {
        return Ok(Vec::new());
    };
    let mut reasons = Vec::new();
    let mut in_my_ns = Vec::new();
    // Per segment id: the dump's attachments (one per VMA, as the kernel
    // counts them) and whether one is in huge pages.
    let mut attached: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
    for &(pid, maps) in procs {
        let mut own = maps.iter().filter(|e| is_attachment(e)).peekable();
        if !in_kckpt_ipc_ns(pid) {
            if own.peek().is_some() {
                reasons.push(format!(
                    "SysV shared memory attached by pid {pid} in another IPC namespace than kckpt's"
                ));
            }
            continue;
        }
        in_my_ns.push(pid);
        for e in own {
            let a = attached.entry(e.inode).or_default();
            a.0 += 1;
            a.1 |= e.vm_flags.iter().any(|f| f == "ht");
        }
    }
    let mut out = Vec::new();
    if !in_my_ns.is_empty() {
        let text = fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
        for row in parse_rows(&text) {
            let (ours, huge) = attached.remove(&u64::from(row.id)).unwrap_or_default();
            if ours == 0 && !in_my_ns.contains(&row.cpid) && !in_my_ns.contains(&row.lpid) {
                continue;
            }
            let shown = format!("SysV shared memory segment {} (key {:#x})", row.id, row.key);
            if huge {
                reasons.push(format!("{shown} in huge pages (SHM_HUGETLB)"));
                continue;
            }
            if row.size == 0 || row.size > MAX_SEGMENT_SIZE {
                reasons.push(format!("{shown} of {} bytes", row.size));
                continue;
            }
            if row.nattch > ours {
                let outside = format!(
                    "{shown} attached {} time(s) outside the dump (the restore makes a copy of its own)",
                    row.nattch - ours
                );
                if skip {
                    warnings.push(format!("warning: {outside}"));
                } else {
                    reasons.push(outside);
                }
            }
            out.push(SysvShmRecord {
                id: row.id,
                key: row.key as u32,
                size: row.size,
                mode: row.mode & (0o777 | shm_mode::DEST | shm_mode::LOCKED),
                uid: row.uid,
                gid: row.gid,
                ..Default::default()
            });
        }
    }
    // Attached segments the table did not list (removed meanwhile).
    reasons.extend(
        attached
            .keys()
            .map(|id| format!("SysV shared memory segment {id} not found in /proc/sysvipc/shm")),
    );
    if out.len() > MAX_SEGMENTS {
        reasons.push(format!(
            "{} SysV shared memory segments (at most {MAX_SEGMENTS})",
            out.len()
        ));
    }
    if !reasons.is_empty() {
        return Err(Error::Unsupported {
            pid: first,
            reason: reasons.join("; "),
        });
    }
    out.sort_by_key(|s| s.id);
    Ok(out)
}

/// Largest extent (as for saved files): one data region each.
const MAX_EXTENT: u64 = 8 << 20;

/// A read-only attachment of the dumper's own, detached on drop.
struct Attached {
    addr: *mut libc::c_void,
}

impl Attached {
    fn new(id: u32) -> std::io::Result<Attached> {
        // SAFETY: the kernel picks a free address (NULL); nothing else in
        // the dumper uses the range it maps.
        let addr = unsafe { libc::shmat(id as i32, std::ptr::null(), libc::SHM_RDONLY) };
        if addr as isize == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Attached { addr })
    }

    /// The segment's `len` bytes.
    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: the attachment maps the whole segment, `len` bytes (its
        // size), readable, for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, len) }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: `addr` is the attachment `new` made; nothing refers to
        // it after `self`.
        unsafe { libc::shmdt(self.addr) };
    }
}

/// The ranges of the segment mapped at `addr` (length `size`) that hold
/// data: `SEEK_DATA` through `/proc/self/map_files` where the dumper may
/// open it, else everything.
fn data_ranges(addr: usize, size: u64, page: u64) -> Vec<(u64, u64)> {
    let end = addr as u64 + size.next_multiple_of(page);
    match fs::File::open(format!("/proc/self/map_files/{addr:x}-{end:x}")) {
        Ok(f) => super::shmem::data_segments(&f, 0, size),
        Err(_) => vec![(0, size)],
    }
}

/// The ranges `[start, end)` of `bytes` within `from..to` made of whole
/// pages (the last one may be short) that are not all zeros, each at most
/// `MAX_EXTENT` long.
fn nonzero_runs(bytes: &[u8], from: u64, to: u64, page: u64) -> Vec<(u64, u64)> {
    let size = bytes.len() as u64;
    let mut out = Vec::new();
    let mut run: Option<u64> = None;
    let mut at = from / page * page;
    let to = to.min(size);
    while at < to {
        let next = (at + page).min(size);
        let data = !super::memory::is_zero(&bytes[at as usize..next as usize]);
        match run {
            Some(start) if !data || at - start >= MAX_EXTENT => {
                out.push((start, at));
                run = data.then_some(at);
            }
            None if data => run = Some(at),
            _ => {}
        }
        at = next;
    }
    out.extend(run.map(|start| (start, at)));
    out
}

/// Store the content of `segments` (their pages that are not zero) and
/// return the notes, with `sem_msg`'s semaphore and message parts
/// (`sysv_ipc`); `pid`: the dump's target, for messages.
pub fn write(
    segments: &[SysvShmRecord],
    sem_msg: SysvMeta,
    writer: &mut ImageWriter,
    page: u64,
    output: &Path,
    pid: i32,
) -> Result<SysvMeta> {
    let mut meta = SysvMeta {
        shm: Vec::new(),
        extents: Vec::new(),
        ..sem_msg
    };
    for &seg in segments {
        let mut rec = seg;
        let att = Attached::new(rec.id).map_err(|e| Error::Unsupported {
            pid,
            reason: format!("cannot read SysV shared memory segment {}: {e}", rec.id),
        })?;
        let bytes = att.bytes(rec.size as usize);
        rec.first_extent = meta.extents.len() as u32;
        for (from, to) in data_ranges(att.addr as usize, rec.size, page) {
            for (start, end) in nonzero_runs(bytes, from, to, page) {
                let data = &bytes[start as usize..end as usize];
                let data_offset = writer.reserve_region(data.len() as u64);
                writer
                    .write_data(data_offset, data)
                    .map_err(|source| Error::WriteImage {
                        path: output.to_path_buf(),
                        source,
                    })?;
                meta.extents.push(ExtentRecord {
                    file_offset: start,
                    len: data.len() as u64,
                    data_offset,
                });
            }
        }
        rec.extent_count = meta.extents.len() as u32 - rec.first_extent;
        meta.shm.push(rec);
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_proc_sysvipc_shm() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    0          3  1640                  8192 27470 27471      1     0     7     0     0 1796226717          0 1796226717                     0                     0\n";
        let rows = parse_rows(text);
        assert_eq!(
            rows,
            vec![Row {
                key: 0,
                id: 3,
                mode: 0o1640,
                size: 8192,
                cpid: 27470,
                lpid: 27471,
                nattch: 1,
                uid: 0,
                gid: 7,
            }]
        );
    }

    #[test]
    fn nonzero_runs_skip_zero_pages_and_split_long_runs() {
        let page = 4096u64;
        let mut bytes = vec![0u8; 5 * 4096 + 100];
        bytes[4096] = 1; // page 1
        bytes[2 * 4096 + 7] = 1; // page 2
        bytes[5 * 4096 + 99] = 1; // the short last page
        let size = bytes.len() as u64;
        assert_eq!(
            nonzero_runs(&bytes, 0, size, page),
            vec![(4096, 3 * 4096), (5 * 4096, size)]
        );
        // A range starting inside a page takes the whole page.
        assert_eq!(
            nonzero_runs(&bytes, 4097, 4098, page),
            vec![(4096, 2 * 4096)]
        );
        let big = vec![1u8; (MAX_EXTENT + 4096) as usize];
        assert_eq!(
            nonzero_runs(&big, 0, big.len() as u64, page),
            vec![(0, MAX_EXTENT), (MAX_EXTENT, MAX_EXTENT + 4096)]
        );
    }
}
