//! The C API, `int kckpt_checkpoint_self(const char *path)` (declared in
//! `kckpt.h`), and the Rust wrapper around it.
//!
//! The exported symbol is the assembly entry of
//! `kckpt_arch::self_checkpoint_entry!`: it records the caller's
//! callee-saved registers and calls [`entry_impl`]. The image it writes
//! resumes at the entry's return address with the return value 1; the
//! process that wrote it gets 0 from `entry_impl`, or -1 with `errno`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr, CString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kckpt_arch::selfsave::SelfRegs;

use crate::error::{Error, Result};

kckpt_arch::self_checkpoint_entry!(entry_impl);

extern "C" {
    /// The assembly entry defined above.
    fn kckpt_checkpoint_self(path: *const c_char) -> c_int;
}

/// The error of the last failed checkpoint, for the Rust wrapper.
static LAST_ERROR: Mutex<Option<Error>> = Mutex::new(None);
/// Its message, for `kckpt_last_error()`.
static LAST_MESSAGE: Mutex<Option<CString>> = Mutex::new(None);

/// `const char *kckpt_last_error(void)`: the one-line message of the last
/// failed `kckpt_checkpoint_self` (NULL if none failed), valid until the
/// next failure.
#[no_mangle]
pub extern "C" fn kckpt_last_error() -> *const c_char {
    match LAST_MESSAGE.lock() {
        Ok(m) => m.as_ref().map_or(std::ptr::null(), |m| m.as_ptr()),
        Err(_) => std::ptr::null(),
    }
}

/// What `kckpt_checkpoint_self` runs once it has recorded the registers.
extern "C" fn entry_impl(path: *const c_char, regs: *const SelfRegs) -> c_int {
    if path.is_null() || regs.is_null() {
        nix::errno::Errno::set_raw(nix::libc::EFAULT);
        return -1;
    }
    // SAFETY: `path` is the caller's NUL-terminated string (C API
    // contract); `regs` points at the entry's record on its stack, alive
    // until this function returns.
    let (path, regs) = unsafe { (CStr::from_ptr(path), *regs) };
    let path = PathBuf::from(std::ffi::OsString::from_vec(path.to_bytes().to_vec()));
    match super::checkpoint(&path, &regs) {
        Ok(()) => 0,
        Err(e) => {
            let errno = e.errno();
            if let Ok(mut m) = LAST_MESSAGE.lock() {
                *m = CString::new(format!("kckpt: {e}")).ok();
            }
            if let Ok(mut last) = LAST_ERROR.lock() {
                *last = Some(e);
            }
            nix::errno::Errno::set_raw(errno);
            -1
        }
    }
}

/// The two ways [`checkpoint_self`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfCheckpoint {
    /// This process wrote the image and goes on running.
    Saved,
    /// This process was restored from the image.
    Resumed,
}

/// Checkpoint the calling process into the image `path` (mode 0600,
/// written to a temporary file and renamed into place).
///
/// Returns [`SelfCheckpoint::Saved`] in the process that wrote the image,
/// and [`SelfCheckpoint::Resumed`] when a process restored from the image
/// (`./path` or `kckpt restore path`) comes back from this call. Fails with
/// [`Error::SelfThreads`] when the process has other threads. See the
/// README's "Checkpointing from inside" section.
pub fn checkpoint_self(path: impl AsRef<Path>) -> Result<SelfCheckpoint> {
    let c = CString::new(path.as_ref().as_os_str().as_bytes())
        .map_err(|_| Error::Usage("the image path contains a NUL byte".into()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the whole call; the
    // entry preserves every register the ABI says a call preserves.
    let r = unsafe { kckpt_checkpoint_self(c.as_ptr()) };
    match r {
        0 => Ok(SelfCheckpoint::Saved),
        1 => Ok(SelfCheckpoint::Resumed),
        _ => {
            let last = LAST_ERROR.lock().ok().and_then(|mut l| l.take());
            Err(last.unwrap_or_else(|| Error::SelfCall {
                what: "kckpt_checkpoint_self",
                source: std::io::Error::last_os_error(),
            }))
        }
    }
}
