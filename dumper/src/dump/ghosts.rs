//! Files whose content goes into the image (format 1.3, `NT_KCKPT_GHOSTS`):
//! deleted files and directories the target holds open or has as its
//! working directory ("ghosts"), and small files it maps shared and
//! writable, which may be gone by the time of a restore (a JVM's
//! `/tmp/hsperfdata_USER/PID`).
//!
//! A ghost is one inode: several descriptors of it, the areas mapping it
//! and the working directory all point at the one record. The content is
//! read with `lseek(SEEK_DATA/SEEK_HOLE)`, so holes stay holes, through a
//! `pidfd_getfd` copy of a descriptor (or `/proc/PID/fd/N` opened for
//! reading when the target's descriptor is write-only or `O_PATH`), and
//! is limited to `--ghost-limit` bytes of data per file: a larger deleted
//! file is refused by name before anything happens to the target.

use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

use kckpt_image::ghosts::{ghost_flags, ExtentRecord, GhostRecord, MAX_GHOSTS, S_IFDIR, S_IFMT};
use kckpt_image_write::{ImageWriter, StringTable};

use super::procfs::MapEntry;

/// Default of `--ghost-limit`: bytes of data stored per deleted file (as
/// CRIU's default).
pub const DEFAULT_GHOST_LIMIT: u64 = 1 << 20;
/// Largest file mapped shared and writable whose content is stored in case
/// it vanishes (a JVM's `hsperfdata` file is 32 KiB).
pub const VANISHING_LIMIT: u64 = 64 << 10;
/// Largest extent record: longer data ranges are cut (each extent is read
/// into memory and hashed as one region).
const MAX_EXTENT: u64 = 8 << 20;

/// One file being saved.
#[derive(Debug)]
struct Ghost {
    rec: GhostRecord,
    path: Vec<u8>,
    /// Data ranges of the file: (offset, length).
    extents: Vec<(u64, u64)>,
    /// Where to read them from at write time.
    source: Option<File>,
}

/// The files whose content is saved.
#[derive(Debug, Default)]
pub struct Ghosts {
    list: Vec<Ghost>,
    limit: u64,
    /// Inodes of the memfds descriptors hold (their content is saved with
    /// the descriptor, and areas mapping them map the restored memfd).
    memfds: Vec<u64>,
}

/// `st_dev` as `/proc/PID/maps` writes it (`major << 32 | minor`).
fn maps_dev(dev: u64) -> u64 {
    (nix::sys::stat::major(dev) << 32) | nix::sys::stat::minor(dev)
}

/// Data ranges `(offset, len)` of `file` up to `size`, from
/// `SEEK_DATA`/`SEEK_HOLE`, cut into pieces of at most [`MAX_EXTENT`].
fn data_ranges(file: &File, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for (data, hole) in super::shmem::data_segments(file, 0, size) {
        let mut at = data;
        while at < hole {
            let n = (hole - at).min(MAX_EXTENT);
            out.push((at, n));
            at += n;
        }
    }
    out
}

/// A human size: `1.5 MiB`, `300 KiB`, `12 bytes`.
pub fn size_text(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// Parse a `--ghost-limit` value: bytes, or with a K, M or G suffix
/// (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size suffix in {s:?} (K, M or G)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("not a size: {s:?}"))
}

fn times(meta: &fs::Metadata) -> (i64, u64, i64, u64) {
    (
        meta.atime(),
        meta.atime_nsec() as u64,
        meta.mtime(),
        meta.mtime_nsec() as u64,
    )
}

impl Ghosts {
    /// No ghost yet; deleted files may store `limit` bytes of data each.
    pub fn new(limit: u64) -> Ghosts {
        Ghosts {
            list: Vec::new(),
            limit,
            memfds: Vec::new(),
        }
    }

    /// A descriptor holds the memfd `inode` (its content is saved).
    pub fn add_memfd(&mut self, inode: u64) {
        self.memfds.push(inode);
    }

    /// Is the memfd an area maps held by a descriptor? A private area of
    /// it then stores only the pages the process wrote: the others come
    /// from the restored memfd, as they came from the memfd.
    pub fn holds_memfd(&self, inode: u64) -> bool {
        self.memfds.contains(&inode)
    }

    /// Is there anything to write?
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn find(&self, dev: u64, inode: u64) -> Option<usize> {
        self.list
            .iter()
            .position(|g| g.rec.dev == dev && g.rec.inode == inode)
    }

    fn record(meta: &fs::Metadata, flags: u32) -> GhostRecord {
        let (atime_sec, atime_nsec, mtime_sec, mtime_nsec) = times(meta);
        let dir = meta.is_dir();
        GhostRecord {
            dev: maps_dev(meta.dev()),
            inode: meta.ino(),
            size: if dir { 0 } else { meta.len() },
            mode: meta.mode() & (S_IFMT | 0o7777),
            flags,
            uid: meta.uid(),
            gid: meta.gid(),
            atime_sec,
            atime_nsec,
            mtime_sec,
            mtime_nsec,
            ..GhostRecord::default()
        }
    }

    /// The deleted file or directory `path` (without ` (deleted)`) that
    /// the target holds as descriptor `fd`, whose status is `meta` (through
    /// `/proc/PID/fd/FD`). `copy` opens a copy of the descriptor for
    /// reading, when its access mode allows. Returns the ghost's index, or
    /// why it cannot be saved (over the limit, unreadable).
    pub fn add_fd(
        &mut self,
        pid: i32,
        fd: i32,
        path: &[u8],
        meta: &fs::Metadata,
        copy: impl FnOnce() -> Option<File>,
    ) -> Result<u64, String> {
        let dev = maps_dev(meta.dev());
        if let Some(i) = self.find(dev, meta.ino()) {
            return Ok(i as u64);
        }
        if self.list.len() >= MAX_GHOSTS {
            return Err(format!(
                "deleted file, one more than the {MAX_GHOSTS} kckpt saves"
            ));
        }
        let mut g = Ghost {
            rec: Self::record(meta, ghost_flags::DELETED),
            path: path.to_vec(),
            extents: Vec::new(),
            source: None,
        };
        if !meta.is_dir() {
            let file = copy()
                .or_else(|| {
                    fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
                        .open(format!("/proc/{pid}/fd/{fd}"))
                        .ok()
                })
                .ok_or_else(|| "deleted file that cannot be read to save its content".to_owned())?;
            g.extents = data_ranges(&file, meta.len());
            let stored: u64 = g.extents.iter().map(|e| e.1).sum();
            if stored > self.limit {
                return Err(format!(
                    "deleted file {} with {} of data, over the --ghost-limit of {}",
                    String::from_utf8_lossy(path),
                    size_text(stored),
                    size_text(self.limit)
                ));
            }
            g.source = Some(file);
        }
        self.list.push(g);
        Ok(self.list.len() as u64 - 1)
    }

    /// The deleted working directory `path` with status `meta`.
    pub fn add_cwd(&mut self, path: &[u8], meta: &fs::Metadata) {
        let i = match self.find(maps_dev(meta.dev()), meta.ino()) {
            Some(i) => i,
            None => {
                self.list.push(Ghost {
                    rec: Self::record(meta, ghost_flags::DELETED),
                    path: path.to_vec(),
                    extents: Vec::new(),
                    source: None,
                });
                self.list.len() - 1
            }
        };
        self.list[i].rec.flags |= ghost_flags::CWD;
    }

    /// Files of at most [`VANISHING_LIMIT`] bytes that `maps` maps shared
    /// and writable (or may-write), not deleted: their content is saved so
    /// a restore can re-create them if they are gone by then. A file that
    /// cannot be opened through its path as the mapped inode is left out
    /// (the memory code deals with it).
    pub fn add_vanishing(&mut self, maps: &[MapEntry]) {
        for e in maps {
            let writable = e.prot & 2 != 0 || e.vm_flags.iter().any(|f| f == "mw");
            if !e.shared || !writable || !e.name.starts_with('/') || e.name.ends_with(" (deleted)")
            {
                continue;
            }
            if self
                .list
                .iter()
                .any(|g| g.rec.inode == e.inode && g.path == e.name.as_bytes())
            {
                continue;
            }
            if self.list.len() >= MAX_GHOSTS / 2 {
                break; // the rest is left for deleted files
            }
            let Ok(file) = File::open(&e.name) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file()
                || meta.ino() != e.inode
                || maps_dev(meta.dev()) != e.dev
                || meta.len() > VANISHING_LIMIT
            {
                continue;
            }
            let extents = data_ranges(&file, meta.len());
            self.list.push(Ghost {
                rec: Self::record(&meta, ghost_flags::VANISHING),
                path: e.name.as_bytes().to_vec(),
                extents,
                source: Some(file),
            });
        }
    }

    /// The (dev, inode) of the deleted file a memory area maps, when its
    /// content is saved: the area is then mapped from the re-created file.
    pub fn for_mapping(&self, e: &MapEntry) -> Option<(u64, u64)> {
        let path = e.name.strip_suffix(" (deleted)")?;
        self.list
            .iter()
            .find(|g| {
                g.rec.flags & ghost_flags::DELETED != 0
                    && g.rec.mode & S_IFMT != S_IFDIR
                    && g.rec.inode == e.inode
                    && g.path == path.as_bytes()
            })
            .map(|g| (g.rec.dev, g.rec.inode))
    }

    /// Store the content (page-aligned data regions) and the paths; returns
    /// the ghost and extent tables.
    pub fn write(
        self,
        writer: &mut ImageWriter,
        strings: &mut StringTable,
    ) -> std::io::Result<(Vec<GhostRecord>, Vec<ExtentRecord>)> {
        let mut ghosts = Vec::with_capacity(self.list.len());
        let mut extents = Vec::new();
        for g in self.list {
            let mut rec = g.rec;
            rec.path = strings.add(&g.path);
            rec.first_extent = extents.len() as u32;
            for (off, len) in g.extents {
                let Some(src) = &g.source else { break };
                let mut buf = vec![0u8; len as usize];
                let mut done = 0usize;
                while done < buf.len() {
                    match src.read_at(&mut buf[done..], off + done as u64)? {
                        0 => break, // shrank meanwhile: zeros
                        n => done += n,
                    }
                }
                let data_offset = writer.reserve_region(len);
                writer.write_data(data_offset, &buf)?;
                extents.push(ExtentRecord {
                    file_offset: off,
                    len,
                    data_offset,
                });
            }
            rec.extent_count = extents.len() as u32 - rec.first_extent;
            ghosts.push(rec);
        }
        Ok((ghosts, extents))
    }
}

/// Another name of the file `meta` that was unlinked from `path` but
/// still has links: a name in the same directory with the same inode
/// (`link(a, b); unlink(a)`). Other directories are not searched.
pub fn other_link(path: &str, meta: &fs::Metadata) -> Option<String> {
    let dir = std::path::Path::new(path).parent()?;
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let m = fs::symlink_metadata(e.path()).ok()?;
        (m.is_file() && m.ino() == meta.ino() && m.dev() == meta.dev())
            .then(|| e.path().to_string_lossy().into_owned())
    })
}

/// The process whose procfs directory `link` (`/proc/PID/...`) is in.
pub fn procfs_owner(link: &str) -> Option<i32> {
    let rest = link.strip_prefix("/proc/")?;
    rest.split('/').next()?.parse().ok()
}

/// The description of a descriptor on the target's own procfs entries, as
/// the path to reopen in the restored process, or why it cannot be.
/// `/proc/PID/task/PID/...` becomes `/proc/thread-self/...` and
/// `/proc/PID/...` `/proc/self/...` (PID is the target); procfs paths
/// outside any process directory stay as they are.
pub fn procfs_path(pid: i32, tids: &[i32], link: &str) -> Result<String, String> {
    let rest = link.strip_prefix("/proc/").unwrap_or("");
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(owner) = first.parse::<i32>() else {
        return Ok(link.to_owned());
    };
    if owner != pid {
        return Err(if tids.contains(&owner) {
            format!("procfs file {link} of one of its threads")
        } else {
            format!("procfs file {link} of another process")
        });
    }
    let task = format!("task/{pid}");
    if tail == task {
        return Ok("/proc/thread-self".to_owned());
    }
    if let Some(t) = tail.strip_prefix(&format!("{task}/")) {
        return Ok(format!("/proc/thread-self/{t}"));
    }
    if tail.starts_with("task/") {
        return Err(format!("procfs file {link} of one of its threads"));
    }
    Ok(if tail.is_empty() {
        "/proc/self".to_owned()
    } else {
        format!("/proc/self/{tail}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(size_text(1 << 20), "1.0 MiB");
        assert_eq!(size_text(12), "12 bytes");
    }

    #[test]
    fn procfs_paths_follow_the_process() {
        let tids = [100, 101];
        assert_eq!(
            procfs_path(100, &tids, "/proc/100/maps").unwrap(),
            "/proc/self/maps"
        );
        assert_eq!(procfs_path(100, &tids, "/proc/100").unwrap(), "/proc/self");
        assert_eq!(
            procfs_path(100, &tids, "/proc/100/task/100/stat").unwrap(),
            "/proc/thread-self/stat"
        );
        assert_eq!(
            procfs_path(100, &tids, "/proc/meminfo").unwrap(),
            "/proc/meminfo"
        );
        assert!(procfs_path(100, &tids, "/proc/101/stat").is_err());
        assert!(procfs_path(100, &tids, "/proc/100/task/101/stat").is_err());
        assert!(procfs_path(100, &tids, "/proc/7/maps")
            .unwrap_err()
            .contains("another process"));
    }
}
