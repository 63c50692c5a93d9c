//! The root directory of a process that had changed it with `chroot`
//! (format 1.5, `FsRecord.root`). [`check`], before anything changes,
//! refuses an image whose root directory is gone or that this restorer may
//! not `chroot` into (`CAP_SYS_CHROOT`, which root has, and the stub in the
//! user namespace it creates); [`enter`], once nothing is opened by path
//! any more (descriptors, mapped files, inotify watches, cgroups), enters
//! it. Every saved path is a full one (the dumper reads them from outside
//! the `chroot`), so everything before works as for any process.
use linux_raw_sys::general as g;

use crate::load::{refuse, Image};
use crate::memory::Failure;
use crate::report::Msg;
use crate::sys;

const CAP_SYS_CHROOT: u32 = 18;

/// The saved root directory, NUL-terminated in `buf`, when it is not `/`.
fn saved<'a>(img: &Image, buf: &'a mut [u8; 4096]) -> Option<&'a [u8]> {
    let fs = img.view.fs?;
    let root = img.view.string(fs.root).ok().filter(|r| !r.is_empty())?;
    if root.len() >= buf.len() {
        refuse(img.path, "the root directory's path is too long");
    }
    buf[..root.len()].copy_from_slice(root);
    buf[root.len()] = 0;
    Some(&buf[..=root.len()])
}

/// Refuse before anything changes when the saved root directory cannot be
/// entered: missing, or no `CAP_SYS_CHROOT` (`own_userns`: the restore
/// goes on in a user namespace the stub creates, where it has it).
pub fn check(img: &Image, own_userns: bool) {
    let mut buf = [0u8; 4096];
    let Some(root) = saved(img, &mut buf) else {
        return;
    };
    let path = &root[..root.len() - 1];
    match sys::open(root, g::O_PATH | g::O_DIRECTORY | g::O_CLOEXEC) {
        Ok(fd) => sys::close(fd),
        Err(e) => Msg::new()
            .push(img.path)
            .s(": the process's root directory (chroot) ")
            .push(path)
            .s(" cannot be opened")
            .errno(e)
            .fail(),
    }
    if !own_userns && crate::ksys::capget().effective & (1 << CAP_SYS_CHROOT) == 0 {
        Msg::new()
            .push(img.path)
            .s(": the process ran in a chroot at ")
            .push(path)
            .s(", which needs CAP_SYS_CHROOT: restore it as root, or with kckpt restore --new-pid-ns (KCKPT_NEW_PID_NS=1)")
            .fail();
    }
}

/// Enter the saved root directory (the working directory, set before,
/// stays where it is).
pub fn enter(img: &Image) -> Result<(), Failure> {
    let mut buf = [0u8; 4096];
    match saved(img, &mut buf) {
        Some(root) => sys::chroot(root).map(drop).map_err(|errno| Failure {
            what: "chroot into the saved root directory",
            addr: 0,
            errno,
        }),
        None => Ok(()),
    }
}
