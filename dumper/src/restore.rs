//! `kckpt restore FILE`: find the restore stub and execute it in place of
//! kckpt (same pid), after a first check that the image opens.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the stub binary installed next to `kckpt`.
pub const STUB_NAME: &str = "kckpt-stub";

/// The stub to use: `$KCKPT_STUB`, else `kckpt-stub` next to this program.
pub fn stub_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KCKPT_STUB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(STUB_NAME)))
        .unwrap_or_else(|| PathBuf::from(STUB_NAME))
}

fn cstring(bytes: &[u8], path: &Path) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Stub {
        path: path.to_path_buf(),
        source: std::io::Error::from_raw_os_error(nix::libc::EINVAL),
    })
}

/// Execute the stub on `image`; returns only on failure. With
/// `new_pid_ns` the stub restores the original pid and tids in a new PID
/// namespace (`KCKPT_NEW_PID_NS=1`, see `stub/src/ids.rs`); `force` sets
/// `KCKPT_FORCE=1` (go on when a saved file was deleted or shrank).
pub fn restore(image: &Path, new_pid_ns: bool, force: bool) -> Result<()> {
    if force {
        std::env::set_var("KCKPT_FORCE", "1");
    }
    File::open(image).map_err(|source| Error::OpenImage {
        path: image.to_path_buf(),
        source,
    })?;
    let stub = stub_path();
    if !stub.is_file() {
        return Err(Error::Stub {
            path: stub,
            source: std::io::Error::from_raw_os_error(nix::libc::ENOENT),
        });
    }
    let prog = cstring(stub.as_os_str().as_bytes(), &stub)?;
    let arg = cstring(OsString::from(image).as_bytes(), &stub)?;
    if new_pid_ns {
        std::env::set_var("KCKPT_NEW_PID_NS", "1");
    }
    let err = nix::unistd::execv(&prog, &[prog.clone(), arg]).unwrap_err();
    Err(Error::Stub {
        path: stub,
        source: std::io::Error::from_raw_os_error(err as i32),
    })
}
