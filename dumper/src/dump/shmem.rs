//! Which pages of a mapping whose file cannot be reopened (shared anonymous
//! memory, memfds, deleted files) hold data. pagemap only shows the pages
//! this process has in its page tables; pages of the object that it never
//! touched (written with `write(2)`, or by a forked child) would be missed.
//! `/proc/PID/map_files/START-END` opens the object itself, and
//! `lseek(SEEK_DATA/SEEK_HOLE)` lists its populated ranges (swapped-out
//! shmem pages included). Opening map_files needs `CAP_SYS_ADMIN` (or
//! `CAP_CHECKPOINT_RESTORE`); without it only pagemap is used.

use std::fs::File;
use std::os::fd::AsFd;

use nix::unistd::{lseek, Whence};

use super::procfs::MapEntry;

/// Address ranges `[start, end)` of `e` (page aligned) backed by data in
/// its object, or `None` when the object cannot be opened.
pub fn data_ranges(pid: i32, e: &MapEntry, page: u64) -> Option<Vec<(u64, u64)>> {
    let path = format!("/proc/{pid}/map_files/{:x}-{:x}", e.start, e.end);
    let file = File::open(path).ok()?;
    Some(file_data_ranges(&file, e, page))
}

/// Address ranges `[start, end)` of `e` (page aligned) backed by data in
/// `file`, the object it maps.
pub fn file_data_ranges(file: &File, e: &MapEntry, page: u64) -> Vec<(u64, u64)> {
    let (first, last) = (e.offset, e.offset + e.len());
    data_segments(file, first, last)
        .into_iter()
        .map(|(data, hole)| {
            let start = data / page * page;
            let end = hole.div_ceil(page) * page;
            (e.start + (start - first), e.start + (end.min(last) - first))
        })
        .collect()
}

/// The byte ranges `[data, hole)` of `file` within `[from, to)` that hold
/// data, from `lseek(SEEK_DATA/SEEK_HOLE)`.
pub fn data_segments(file: &File, from: u64, to: u64) -> Vec<(u64, u64)> {
    let fd = file.as_fd();
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let Ok(data) = lseek(fd, pos as i64, Whence::SeekData) else {
            break; // ENXIO: no data after pos
        };
        let data = data as u64;
        if data >= to {
            break;
        }
        let hole = lseek(fd, data as i64, Whence::SeekHole)
            .map(|h| h as u64)
            .unwrap_or(to)
            .min(to);
        if hole <= data {
            break;
        }
        out.push((data, hole));
        pos = hole;
    }
    out
}

/// Is `addr` inside one of `ranges` (sorted)?
pub fn contains(ranges: &[(u64, u64)], addr: u64) -> bool {
    let i = ranges.partition_point(|r| r.1 <= addr);
    ranges.get(i).is_some_and(|r| r.0 <= addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_lookup() {
        let r = [(0x1000, 0x3000), (0x5000, 0x6000)];
        assert!(!contains(&r, 0));
        assert!(contains(&r, 0x1000));
        assert!(contains(&r, 0x2fff));
        assert!(!contains(&r, 0x3000));
        assert!(contains(&r, 0x5000));
        assert!(!contains(&r, 0x6000));
        assert!(!contains(&[], 0x6000));
    }
}
