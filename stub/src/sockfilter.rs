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

const SO_ATTACH_FILTER: usize = 26;
const SO_LOCK_FILTER: usize = 44;
const AF_UNIX: usize = 1;

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const u8,
}

fn attach_to(fd: usize, f: &SockFilterRecord, insns: &[u8]) -> Result<usize, Errno> {
    let prog = SockFprog {
        len: f.count as u16,
        filter: insns.as_ptr(),
    };
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
        let probe = crate::inet::call(
            g::__NR_socket,
            [AF_UNIX, (SOCK_DGRAM | g::O_CLOEXEC) as usize, 0, 0, 0, 0],
        )
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

/// Instructions of the filter `fd` has now (0: none).
fn attached(fd: usize) -> u32 {
    let mut len: u32 = 0;
    let r = crate::inet::call(
        g::__NR_getsockopt,
        [
            fd,
            SOL_SOCKET,
            SO_ATTACH_FILTER,
            0,
            &mut len as *mut u32 as usize,
            0,
        ],
    );
    if r.is_ok() {
        len
    } else {
        0
    }
}
