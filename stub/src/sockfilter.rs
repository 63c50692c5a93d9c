//! Socket filters (format 1.8, `NT_KCKPT_SOCK_FILTERS`): each classic BPF
//! program attached again (`SO_ATTACH_FILTER`), then the lock
//! (`SO_LOCK_FILTER`), right before the process resumes: after every queue
//! is back and the TCP send queues and raw segments are out (a filter
//! attached earlier would judge the restored datagrams, messages and the
//! peer's FIN again). [`check`], before anything changes: each program is
//! attached to a throwaway socket, so one this kernel rejects refuses the
//! restore in one line.

use kckpt_image::sockfilter::{filter_flags, SockFilterRecord};
use linux_raw_sys::general as g;

use crate::load::Image;
use crate::report::Msg;
use crate::sockopts::*;
use crate::sys::{self, Errno};

/// `struct sock_fprog`: a classic BPF program, for `SO_ATTACH_FILTER` and
/// for seccomp (`crate::seccomp`).
#[repr(C)]
pub(crate) struct SockFprog {
    len: u16,
    filter: *const u8,
}

impl SockFprog {
    /// The program of `count` instructions at `insns` (validated with the
    /// image: `count` × 8 bytes, at most 4096).
    pub(crate) fn new(count: u32, insns: &[u8]) -> SockFprog {
        SockFprog {
            len: count as u16,
            filter: insns.as_ptr(),
        }
    }
}

fn attach_to(fd: usize, f: &SockFilterRecord, insns: &[u8]) -> Result<usize, Errno> {
    let prog = SockFprog::new(f.count, insns);
    crate::inet::call(
        g::__NR_setsockopt,
        [
            fd,
            SOL_SOCKET,
            SO_ATTACH_FILTER,
            &prog as *const SockFprog as usize,
            core::mem::size_of::<SockFprog>(),
            0,
        ],
    )
}

fn fail(img: &Image, f: &SockFilterRecord, what: &str, e: Errno) -> ! {
    Msg::new()
        .push(img.path)
        .s(": fd ")
        .dec(f.fd.into())
        .s(": ")
        .s(what)
        .errno(e)
        .fail()
}

/// Before anything changes: this kernel takes every saved program.
pub fn check(img: &Image) {
    for f in img.view.sock_filters.iter().filter(|f| f.count > 0) {
        let insns = img.view.string(f.insns).unwrap_or(&[]);
        let probe = crate::unixsock::socket(SOCK_DGRAM)
            .unwrap_or_else(|e| fail(img, &f, "a socket to check its filter on", e));
        let r = attach_to(probe, &f, insns);
        sys::close(probe);
        if let Err(e) = r {
            fail(
                img,
                &f,
                "this kernel refuses its socket filter (SO_ATTACH_FILTER)",
                e,
            )
        }
    }
}

/// Attach every saved filter and lock; a socket a process of the tree
/// restored already (shared) has its filter: not attached twice.
pub fn attach(img: &Image) {
    for f in img.view.sock_filters.iter() {
        let fd = f.fd as usize;
        let insns = img.view.string(f.insns).unwrap_or(&[]);
        if f.count > 0 && attached(fd) != f.count {
            if let Err(e) = attach_to(fd, &f, insns) {
                fail(img, &f, "cannot attach its socket filter again", e)
            }
        }
        if f.flags & filter_flags::LOCKED != 0 {
            if let Err(e) = crate::inet::set(fd, SOL_SOCKET, SO_LOCK_FILTER, 1) {
                fail(
                    img,
                    &f,
                    "cannot lock its socket filter again (SO_LOCK_FILTER)",
                    e,
                )
            }
        }
    }
}

/// Instructions of the filter `fd` has now (0: none): `SO_GET_FILTER`
/// with no room gives only their count.
fn attached(fd: usize) -> u32 {
    crate::inet::get_bytes(fd, SOL_SOCKET, SO_ATTACH_FILTER, &mut []).unwrap_or(0) as u32
}
