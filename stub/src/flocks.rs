//! File locks (format 1.3, `NT_KCKPT_LOCKS`): `flock`, POSIX and OFD
//! record locks, and (1.8) leases, taken again through the restored
//! descriptors.
//!
//! Taken once every descriptor exists, before the address space changes,
//! so a lock another process holds now is a clean refusal; POSIX locks are
//! taken a second time once the memory is rebuilt, because the kernel
//! drops a process's POSIX locks on a file whenever it closes any
//! descriptor of that file, and the stub closes the ones it used to map
//! files.

use kckpt_image::files::find_fd;
use kckpt_image::locks::lease_break;
use kckpt_image::{lock_kind, lock_type};
use linux_raw_sys::general as g;

use crate::gsys;
use crate::load::Image;
use crate::report::Msg;
use crate::sys;

/// Start the break of a lease being broken at dump again, as the
/// conflicting `open` of another process did: an `open` of the file
/// through `/proc/self/fd/N` for reading (`TO_READ`) or writing
/// (`TO_NONE`), non-blocking, which fails with `EWOULDBLOCK` and leaves
/// the lease breaking (its break timer starts again). The break signals
/// the lease's owner, which `F_SETLEASE` made this process (`crate::fown`
/// sets the saved owner and signal later): that `SIGIO` is blocked and
/// taken, as the process had already had its break signal (or has it
/// pending in the image).
fn break_again(fd: usize, how: u32) -> Result<(), sys::Errno> {
    let mode = match how {
        lease_break::NONE => return Ok(()),
        lease_break::TO_READ => g::O_RDONLY,
        _ => g::O_WRONLY,
    };
    let mut path = crate::ghosts::PathBuf::proc_fd(fd as u64);
    const SIGIO: u64 = 1 << (29 - 1);
    let old = sys::block_signals(SIGIO)?;
    let r = match sys::open(path.c(), mode | g::O_NONBLOCK | g::O_CLOEXEC) {
        Err(e) if e.0 == linux_raw_sys::errno::EWOULDBLOCK => Ok(()),
        Err(e) => Err(e),
        Ok(other) => {
            // Nothing conflicted: the lease is not what was saved.
            sys::close(other);
            Err(sys::Errno(linux_raw_sys::errno::EINVAL))
        }
    };
    crate::ksys::drain_signals(SIGIO);
    let _ = sys::set_sigmask(old);
    r
}

/// Take every saved lock. `first`: before the address space changes (a
/// failure refuses the restore unless `force`); otherwise only the POSIX
/// locks again (a failure is a warning).
pub fn take(img: &Image, force: bool, first: bool) {
    for l in img.view.locks.iter() {
        if !first && l.kind != lock_kind::POSIX {
            continue;
        }
        let fd = l.fd as usize;
        let write = l.lock_type == lock_type::WRITE;
        let r = match l.kind {
            lock_kind::FLOCK => gsys::flock(fd, write),
            lock_kind::LEASE => gsys::lease(fd, write).and_then(|r| {
                break_again(fd, l.lease_break)?;
                Ok(r)
            }),
            kind => gsys::record_lock(fd, kind == lock_kind::OFD, write, l.start, l.len),
        };
        let Err(e) = r else { continue };
        let mut m = Msg::new();
        m.push(img.path).s(": fd ").dec(l.fd.into());
        if let Some(rec) = find_fd(&img.view, l.fd) {
            let path = img.view.string(rec.path).unwrap_or(&[]);
            if !path.is_empty() {
                m.s(" (").push(path).s(")");
            }
        }
        m.s(": cannot take its ").s(match l.kind {
            lock_kind::FLOCK => "flock",
            lock_kind::POSIX => "POSIX",
            lock_kind::LEASE => "lease",
            _ => "OFD",
        });
        m.s(match (l.kind == lock_kind::LEASE, write) {
            (true, true) => " (write)",
            (true, false) => " (read)",
            (false, true) => " write lock",
            (false, false) => " read lock",
        });
        if l.lease_break != lease_break::NONE {
            m.s(", being broken,");
        }
        m.s(" again").errno(e);
        if first && !force {
            m.s(" (held by another process?); --force goes on without it: the program then believes it holds a lock it does not")
                .fail();
        }
        m.s("; restored without it").warn();
    }
}
