//! `kckpt restore FILE`: find the restore stub and execute it in place of
//! kckpt (same pid), after a first check that the image opens and is a
//! regular file (`-`: standard input, through a memfd; `crate::input`).

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the stub binary installed next to `kckpt`.
pub const STUB_NAME: &str = "kckpt-stub";

/// The stub to use: `$KCKPT_STUB`, else `kckpt-stub` next to this program
/// (a build tree, `cargo install`), else `../lib/kckpt/kckpt-stub` from it
/// (the package: `/usr/bin/kckpt`, `/usr/lib/kckpt/kckpt-stub`).
pub fn stub_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KCKPT_STUB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    else {
        return PathBuf::from(STUB_NAME);
    };
    let next = dir.join(STUB_NAME);
    let packaged = dir.join("../lib/kckpt").join(STUB_NAME);
    if !next.is_file() && packaged.is_file() {
        return packaged;
    }
    next
}

/// A foreign architecture whose images run under user emulation here.
pub(crate) struct Foreign {
    /// `uname -m` name.
    pub arch: &'static str,
    /// The user-mode emulator in `PATH`.
    pub emulator: &'static str,
    /// Rust target of its stub (`target/<triple>/<profile>/kckpt-stub`).
    pub triple: &'static str,
}

/// The architecture of the image's ELF header (`e_machine`), when it is
/// another one than this program's and kckpt has a stub for it.
pub(crate) fn foreign(machine: u16) -> Option<Foreign> {
    (machine != kckpt_arch::ELF_MACHINE && machine == kckpt_image::read::EM_AARCH64).then_some(
        Foreign {
            arch: "aarch64",
            emulator: "qemu-aarch64",
            triple: "aarch64-unknown-linux-musl",
        },
    )
}

/// `e_machine` of the image (0 when it is too short: the stub refuses it).
fn image_machine(file: &File) -> u16 {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 20];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) => u16::from_le_bytes([head[18], head[19]]),
        Err(_) => 0,
    }
}

/// The stub of a foreign architecture: `$KCKPT_STUB_<ARCH>`, else
/// `kckpt-stub-<arch>` next to this program, else the cargo build of it
/// beside this program's (`target/<triple>/<profile>/kckpt-stub` when this
/// program is `target/<profile>/kckpt`).
pub fn foreign_stub_path(arch: &str, triple: &str) -> PathBuf {
    let var = format!("KCKPT_STUB_{}", arch.to_uppercase());
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    let next = dir.join(format!("{STUB_NAME}-{arch}"));
    if next.is_file() {
        return next;
    }
    let packaged = dir.join("../lib/kckpt").join(format!("{STUB_NAME}-{arch}"));
    if packaged.is_file() {
        return packaged;
    }
    if let (Some(profile), Some(target)) = (dir.file_name(), dir.parent()) {
        let built = target.join(triple).join(profile).join(STUB_NAME);
        if built.is_file() {
            return built;
        }
    }
    next
}

/// Find `name` in `PATH`.
fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn cstring(bytes: &[u8], path: &Path) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Stub {
        path: path.to_path_buf(),
        source: std::io::Error::from_raw_os_error(nix::libc::EINVAL),
    })
}

/// `kckpt restore --inherit-fd KEY=N...`: added to `KCKPT_INHERIT_FD`
/// (before the entries already there, which they override), after
/// checking that each `N` is an open descriptor of this process.
pub fn add_inherit_fds(entries: &[String]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    for e in entries {
        let (_, fd) = kckpt_image::external::parse_entry(e.as_bytes())
            .ok_or_else(|| Error::Usage(format!("--inherit-fd {e}: not KEY=N")))?;
        if std::fs::read_link(format!("/proc/self/fd/{fd}")).is_err() {
            return Err(Error::Usage(format!(
                "--inherit-fd {e}: descriptor {fd} is not open"
            )));
        }
    }
    let mut list = entries.join(",");
    if let Some(old) = std::env::var_os("KCKPT_INHERIT_FD").filter(|v| !v.is_empty()) {
        list.push(',');
        list.push_str(&old.to_string_lossy());
    }
    let count = kckpt_image::external::entries(list.as_bytes()).count();
    if count > kckpt_image::external::MAX_INHERIT {
        return Err(Error::Usage(format!(
            "at most {} descriptors can be inherited (--inherit-fd and KCKPT_INHERIT_FD)",
            kckpt_image::external::MAX_INHERIT
        )));
    }
    std::env::set_var("KCKPT_INHERIT_FD", list);
    Ok(())
}

/// Execute the stub on `image`; returns only on failure. With
/// `new_pid_ns` the stub restores the original pid and tids in a new PID
/// namespace (`KCKPT_NEW_PID_NS=1`, see `stub/src/ids.rs`); `force` sets
/// `KCKPT_FORCE=1` (go on when a saved file was deleted or shrank);
/// `stdio` sets `KCKPT_STDIO` (where descriptors 0-2 come from; `None`
/// leaves a `KCKPT_STDIO` of the environment as it is).
///
/// `-` reads the image from standard input into a memfd that the stub
/// inherits and opens as `/proc/self/fd/N`.
pub fn restore(
    image: &Path,
    new_pid_ns: bool,
    force: bool,
    stdio: Option<crate::cli::Stdio>,
) -> Result<()> {
    let input = crate::input::open(image, true)?;
    let machine = image_machine(&input.file);
    // The stub opens the image by path: the memfd's own for `-`.
    let memfd_path;
    let image = if input.from_stdin {
        use std::os::fd::AsRawFd;
        crate::info::validate(&input.file, &input.name)?;
        memfd_path = PathBuf::from(format!("/proc/self/fd/{}", input.file.as_raw_fd()));
        memfd_path.as_path()
    } else {
        drop(input);
        image
    };
    if force {
        std::env::set_var("KCKPT_FORCE", "1");
    }
    if let Some(stdio) = stdio {
        std::env::set_var("KCKPT_STDIO", stdio.env_value());
    }
    let (emulator, stub) = match foreign(machine) {
        Some(f) => {
            let emulator = in_path(f.emulator).ok_or_else(|| Error::NoEmulator {
                image: image.to_path_buf(),
                arch: f.arch,
                emulator: f.emulator,
            })?;
            (Some(emulator), foreign_stub_path(f.arch, f.triple))
        }
        None => (None, stub_path()),
    };
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
    // An aarch64 image on x86_64: `qemu-aarch64 STUB IMAGE`.
    let err = match emulator {
        Some(emu) => {
            let emu = cstring(emu.as_os_str().as_bytes(), &emu)?;
            nix::unistd::execv(&emu, &[emu.clone(), prog, arg]).unwrap_err()
        }
        None => nix::unistd::execv(&prog, &[prog.clone(), arg]).unwrap_err(),
    };
    Err(Error::Stub {
        path: stub,
        source: std::io::Error::from_raw_os_error(err as i32),
    })
}
