//! binfmt_misc registration of the kckpt stub.
//!
//! One entry per architecture (`kckpt-x86_64`, `kckpt-aarch64`) makes the
//! kernel run the stub whenever a kckpt image of that architecture is
//! executed. The entry matches the first 20 bytes of the image's ELF header:
//! the ELF identification, kckpt's marker in the `e_ident` padding (so plain
//! core dumps are not claimed), `e_type = ET_CORE` and `e_machine`. Every byte
//! of the magic comes from the constants of `kckpt-image`.
//!
//! The only flag is `F`: the kernel opens the stub when the entry is
//! registered, so images run inside containers and chroots that do not contain
//! the stub. `C` is never used: it would run an image with the credentials of
//! the image file, a privilege escalation.
//!
//! Since Linux 6.7 binfmt_misc can be mounted inside a user namespace, and
//! such a mount has its own registrations; tests use that so they never touch
//! the machine's entries.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kckpt_image::read::{machine_name, EM_AARCH64, EM_X86_64, ET_CORE};
use kckpt_image::records::{IDENT_MARKER, IDENT_MARKER_OFFSET};

/// Where binfmt_misc is mounted.
pub const BINFMT_MISC_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Length of the matched magic: `e_ident` (16 bytes), `e_type` and `e_machine`.
pub const MAGIC_LEN: usize = 20;

/// Why a binfmt_misc operation failed. Every message is one sentence that
/// names the path involved and the operating system's error.
#[derive(Debug, thiserror::Error)]
pub enum BinfmtError {
    /// binfmt_misc was not mounted and mounting it failed.
    #[error("cannot mount binfmt_misc on {path}: {}", errno_text(.source))]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The error of `mount(2)`.
        source: nix::Error,
    },
    /// The stub could not be found or resolved to an absolute path.
    #[error("cannot use {path} as the kckpt stub: {}", io_text(.source))]
    Stub {
        /// The stub path as given.
        path: PathBuf,
        /// Why it could not be resolved.
        source: io::Error,
    },
    /// The stub's path cannot be written into a registration line.
    #[error(
        "cannot register the stub {path}: its path must be valid UTF-8 without ':' or line breaks"
    )]
    UnusablePath {
        /// The (absolute) stub path.
        path: PathBuf,
    },
    /// kckpt has no image format for this machine.
    #[error("cannot handle ELF machine {machine}: kckpt images exist only for x86_64 and aarch64")]
    UnsupportedMachine {
        /// The `e_machine` value asked for.
        machine: u16,
    },
    /// Writing a binfmt_misc control file failed.
    #[error("cannot write to {path}: {}", io_text(.source))]
    Write {
        /// The control file.
        path: PathBuf,
        /// The error of `write(2)` (or `open(2)`).
        source: io::Error,
    },
    /// Reading a binfmt_misc entry failed.
    #[error("cannot read {path}: {}", io_text(.source))]
    Read {
        /// The entry file.
        path: PathBuf,
        /// The error of `read(2)` (or `open(2)`).
        source: io::Error,
    },
    /// An entry file did not have the expected layout.
    #[error("cannot understand {path}: it has no \"{field}\" line")]
    Parse {
        /// The entry file.
        path: PathBuf,
        /// The line that is missing.
        field: &'static str,
    },
}

/// The text of an OS error without Rust's "(os error N)" suffix.
fn io_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => errno_text(&nix::Error::from_raw(code)).to_owned(),
        None => err.to_string(),
    }
}

/// The description of an errno ("Operation not permitted").
fn errno_text(err: &nix::Error) -> &'static str {
    err.desc()
}

/// The state of a registered entry, as `/proc/sys/fs/binfmt_misc/NAME` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryStatus {
    /// The entry is enabled (images are run).
    pub enabled: bool,
    /// The interpreter (stub) path given at registration.
    pub interpreter: String,
    /// The flags letters (e.g. `F`).
    pub flags: String,
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.enabled { "enabled" } else { "disabled" };
        let flags = if self.flags.is_empty() {
            "none"
        } else {
            &self.flags
        };
        write!(
            f,
            "{state}, interpreter {}, flags {flags}",
            self.interpreter
        )
    }
}

/// The name of the binfmt_misc entry for `machine`: `kckpt-x86_64`,
/// `kckpt-aarch64` (`kckpt-em<N>` for machines kckpt does not know).
pub fn entry_name(machine: u16) -> String {
    match machine {
        EM_X86_64 | EM_AARCH64 => format!("kckpt-{}", machine_name(machine)),
        other => format!("kckpt-em{other}"),
    }
}

/// The first [`MAGIC_LEN`] bytes of every kckpt image for `machine`.
pub fn image_magic(machine: u16) -> [u8; MAGIC_LEN] {
    let mut magic = [0u8; MAGIC_LEN];
    // ELF magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE.
    magic[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    // EI_ABIVERSION (byte 8) stays 0; kckpt's marker fills the padding.
    magic[IDENT_MARKER_OFFSET..IDENT_MARKER_OFFSET + IDENT_MARKER.len()]
        .copy_from_slice(&IDENT_MARKER);
    magic[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
    magic[18..20].copy_from_slice(&machine.to_le_bytes());
    magic
}

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

/// The line written to binfmt_misc's `register` file (also the content of a
/// `binfmt.d` file): `:NAME:M:0:MAGIC:MASK:STUB:F`, magic and mask as `\xHH`
/// escapes. `stub` is written as given: pass an absolute path.
pub fn register_line(machine: u16, stub: &Path) -> String {
    format!(
        ":{}:M:0:{}:{}:{}:F",
        entry_name(machine),
        escape(&image_magic(machine)),
        escape(&[0xff; MAGIC_LEN]),
        stub.display()
    )
}

fn check_machine(machine: u16) -> Result<(), BinfmtError> {
    match machine {
        EM_X86_64 | EM_AARCH64 => Ok(()),
        machine => Err(BinfmtError::UnsupportedMachine { machine }),
    }
}

fn dir() -> &'static Path {
    Path::new(BINFMT_MISC_DIR)
}

fn entry_path(machine: u16) -> PathBuf {
    dir().join(entry_name(machine))
}

/// Mount binfmt_misc on [`BINFMT_MISC_DIR`] unless it is mounted already
/// (its `register` file exists only when it is).
pub fn ensure_mounted() -> Result<(), BinfmtError> {
    if dir().join("register").exists() {
        return Ok(());
    }
    use nix::mount::{mount, MsFlags};
    mount(
        Some("binfmt_misc"),
        dir(),
        Some("binfmt_misc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|source| BinfmtError::Mount {
        path: dir().to_path_buf(),
        source,
    })
}

/// Write `text` to an existing binfmt_misc control file in one `write(2)`
/// (never created: binfmt_misc refuses new files with EACCES).
fn write_raw(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    let written = file.write(text.as_bytes())?;
    if written != text.len() {
        return Err(io::Error::from_raw_os_error(nix::libc::EIO));
    }
    Ok(())
}

fn write_control(path: &Path, text: &str) -> Result<(), BinfmtError> {
    write_raw(path, text).map_err(|source| BinfmtError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Register `stub` as the interpreter of kckpt images for `machine`,
/// replacing an existing entry of the same name. Mounts binfmt_misc first if
/// needed. `stub` is resolved to an absolute path.
pub fn register(machine: u16, stub: &Path) -> Result<(), BinfmtError> {
    check_machine(machine)?;
    let abs = fs::canonicalize(stub).map_err(|source| BinfmtError::Stub {
        path: stub.to_path_buf(),
        source,
    })?;
    if !abs.is_file() {
        return Err(BinfmtError::Stub {
            path: stub.to_path_buf(),
            source: io::Error::from_raw_os_error(nix::libc::EISDIR),
        });
    }
    match abs.to_str() {
        Some(s) if !s.contains([':', '\n', '\r']) => {}
        _ => return Err(BinfmtError::UnusablePath { path: abs }),
    }
    ensure_mounted()?;
    unregister(machine)?;
    write_control(&dir().join("register"), &register_line(machine, &abs))
}

/// Remove the entry for `machine`. `Ok(false)` when there was none.
pub fn unregister(machine: u16) -> Result<bool, BinfmtError> {
    check_machine(machine)?;
    ensure_mounted()?;
    let path = entry_path(machine);
    match write_raw(&path, "-1") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(BinfmtError::Write { path, source }),
    }
}

/// The entry for `machine`, `None` when it is not registered.
pub fn status(machine: u16) -> Result<Option<EntryStatus>, BinfmtError> {
    check_machine(machine)?;
    ensure_mounted()?;
    let path = entry_path(machine);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(BinfmtError::Read { path, source }),
    };
    parse_entry(&text)
        .map(Some)
        .map_err(|field| BinfmtError::Parse { path, field })
}

/// Parse the text of an entry file; the error names the missing line.
fn parse_entry(text: &str) -> Result<EntryStatus, &'static str> {
    let mut enabled = None;
    let mut interpreter = None;
    let mut flags = None;
    for line in text.lines() {
        match line {
            "enabled" => enabled = Some(true),
            "disabled" => enabled = Some(false),
            _ => {
                if let Some(rest) = line.strip_prefix("interpreter ") {
                    interpreter = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("flags:") {
                    flags = Some(rest.trim().to_owned());
                }
            }
        }
    }
    Ok(EntryStatus {
        enabled: enabled.ok_or("enabled")?,
        interpreter: interpreter.ok_or("interpreter")?,
        flags: flags.ok_or("flags")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86_LINE: &str = concat!(
        ":kckpt-x86_64:M:0:",
        "\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00",
        "\\x4b\\x43\\x4b\\x50\\x54\\x00\\x01",
        "\\x04\\x00\\x3e\\x00:",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff:",
        "/usr/lib/kckpt/kckpt-stub:F"
    );

    #[test]
    fn x86_64_line_is_exact() {
        let line = register_line(EM_X86_64, Path::new("/usr/lib/kckpt/kckpt-stub"));
        assert_eq!(line, X86_LINE);
    }

    #[test]
    fn aarch64_line_differs_only_in_name_and_machine() {
        let line = register_line(EM_AARCH64, Path::new("/usr/lib/kckpt/kckpt-stub"));
        let expected = X86_LINE
            .replace("kckpt-x86_64", "kckpt-aarch64")
            .replace("\\x04\\x00\\x3e\\x00", "\\x04\\x00\\xb7\\x00");
        assert_eq!(line, expected);
    }

    #[test]
    fn line_has_eight_fields_and_only_flag_f() {
        let line = register_line(EM_X86_64, Path::new("/stub"));
        let fields: Vec<&str> = line.split(':').collect();
        // Leading empty field, then name, type, offset, magic, mask, interpreter, flags.
        assert_eq!(fields.len(), 8, "{line}");
        assert_eq!(fields[2], "M");
        assert_eq!(fields[3], "0");
        assert_eq!(fields[6], "/stub");
        assert_eq!(fields[7], "F");
        // Magic and mask are 20 escaped bytes each and fit binfmt_misc's buffer.
        assert_eq!(fields[4].len(), MAGIC_LEN * 4);
        assert_eq!(fields[5].len(), MAGIC_LEN * 4);
    }

    #[test]
    fn magic_matches_the_image_writer_header() {
        let magic = image_magic(EM_X86_64);
        assert_eq!(&magic[..4], b"\x7fELF");
        assert_eq!(&magic[9..16], &IDENT_MARKER);
        assert_eq!(u16::from_le_bytes([magic[16], magic[17]]), ET_CORE);
        assert_eq!(u16::from_le_bytes([magic[18], magic[19]]), EM_X86_64);
    }

    #[test]
    fn magic_is_the_start_of_a_written_image() {
        for machine in [EM_X86_64, EM_AARCH64] {
            let header = kckpt_image_write::elf_header(machine, 64, 1);
            assert_eq!(header[..MAGIC_LEN], image_magic(machine));
        }
    }

    #[test]
    fn entry_names() {
        assert_eq!(entry_name(EM_X86_64), "kckpt-x86_64");
        assert_eq!(entry_name(EM_AARCH64), "kckpt-aarch64");
        assert_eq!(entry_name(3), "kckpt-em3");
    }

    #[test]
    fn parse_entry_file() {
        let text = "enabled\ninterpreter /usr/bin/true\nflags: F\noffset 0\nmagic 7f454c46\nmask ffffffff\n";
        let st = parse_entry(text).unwrap();
        assert_eq!(
            st,
            EntryStatus {
                enabled: true,
                interpreter: "/usr/bin/true".into(),
                flags: "F".into()
            }
        );
        assert_eq!(
            st.to_string(),
            "enabled, interpreter /usr/bin/true, flags F"
        );
        let st = parse_entry("disabled\ninterpreter /x\nflags: \n").unwrap();
        assert!(!st.enabled);
        assert_eq!(st.to_string(), "disabled, interpreter /x, flags none");
        assert_eq!(parse_entry("enabled\nflags: F\n"), Err("interpreter"));
    }

    #[test]
    fn error_messages_are_sentences_with_path_and_os_error() {
        let e = BinfmtError::Mount {
            path: BINFMT_MISC_DIR.into(),
            source: nix::Error::EPERM,
        };
        assert_eq!(
            e.to_string(),
            "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc: Operation not permitted"
        );
        let e = BinfmtError::Write {
            path: "/proc/sys/fs/binfmt_misc/register".into(),
            source: io::Error::from_raw_os_error(nix::libc::EINVAL),
        };
        assert_eq!(
            e.to_string(),
            "cannot write to /proc/sys/fs/binfmt_misc/register: Invalid argument"
        );
    }

    #[test]
    fn register_refuses_bad_stub_without_touching_binfmt() {
        let err = register(EM_X86_64, Path::new("/nonexistent/kckpt-stub")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot use /nonexistent/kckpt-stub as the kckpt stub: No such file or directory"
        );
        let err = register(3, Path::new("/bin/true")).unwrap_err();
        assert!(matches!(
            err,
            BinfmtError::UnsupportedMachine { machine: 3 }
        ));
    }
}
