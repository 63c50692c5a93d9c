//! Guard regions (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13): pages where
//! any access faults, which `/proc/PID/mem` cannot read (`EIO`). Found with
//! the `PAGEMAP_SCAN` ioctl of `/proc/PID/pagemap` (`PAGE_IS_GUARD`, Linux
//! 6.14), never read, and saved as ranges (`NT_KCKPT_GUARDS`) that the
//! stub installs again. A kernel whose `PAGEMAP_SCAN` does not know
//! `PAGE_IS_GUARD` refuses the scan (`EINVAL`): it has no guard regions to
//! save... or an older 6.13, whose guards are then read as faults.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::libc;

/// `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;
/// `PAGE_IS_GUARD`.
const PAGE_IS_GUARD: u64 = 1 << 8;

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// The guard ranges `[start, end)` inside `[start, end)` of the process
/// whose pagemap is `pagemap`, sorted; empty when the kernel cannot tell.
pub fn scan(pagemap: &File, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut regions = [PageRegion::default(); 256];
    let mut at = start;
    while at < end {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            start: at,
            end,
            vec: regions.as_mut_ptr() as u64,
            vec_len: regions.len() as u64,
            category_mask: PAGE_IS_GUARD,
            return_mask: PAGE_IS_GUARD,
            ..PmScanArg::default()
        };
        // SAFETY: `arg` and `regions` are live and sized as the kernel's
        // `struct pm_scan_arg` and `struct page_region[vec_len]`; the
        // kernel writes at most `vec_len` regions and `walk_end`.
        let n = unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut arg) };
        if n < 0 {
            return out;
        }
        for r in &regions[..n as usize] {
            match out.last_mut() {
                Some(last) if last.1 == r.start => last.1 = r.end,
                _ => out.push((r.start, r.end)),
            }
        }
        if arg.walk_end <= at {
            break;
        }
        at = arg.walk_end;
    }
    out
}
