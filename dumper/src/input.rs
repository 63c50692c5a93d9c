//! Opening an image to read (`kckpt info`, `kckpt restore`): a regular
//! file (anything else is refused with one line, without blocking on a
//! FIFO), or `-` for standard input, which is copied into a memfd first
//! (zero pages are left as holes, so a sparse image stays sparse in
//! memory) and then read like a file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sys::memfd::{memfd_create, MFdFlags};

use crate::error::{Error, Result};

/// An open image.
#[derive(Debug)]
pub struct Input {
    /// The file (for `-`, a memfd holding what standard input gave).
    pub file: File,
    /// How to name it in messages: the path, or `standard input`.
    pub name: PathBuf,
    /// Read from standard input?
    pub from_stdin: bool,
}

/// Is `path` the `-` that means standard input?
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Open the image `path` (`-`: standard input, copied into a memfd that
/// stays open across `execve` when `inheritable`).
pub fn open(path: &Path, inheritable: bool) -> Result<Input> {
    if is_stdin(path) {
        return from_stdin(inheritable);
    }
    let open_err = |source| Error::OpenImage {
        path: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(open_err)?;
    let ft = file.metadata().map_err(open_err)?.file_type();
    if !ft.is_file() {
        let what = crate::dump::output::kind_name(ft);
        let hint = if ft.is_fifo() || ft.is_char_device() {
            "; use - to read an image from standard input"
        } else {
            ""
        };
        return Err(Error::Usage(format!(
            "{}: it is {what}, not an image file{hint}",
            path.display()
        )));
    }
    Ok(Input {
        file,
        name: path.to_path_buf(),
        from_stdin: false,
    })
}

/// Bytes read from standard input at once.
const CHUNK: usize = 1 << 20;

fn from_stdin(inheritable: bool) -> Result<Input> {
    let name = PathBuf::from("standard input");
    let err = |source: io::Error| Error::OpenImage {
        path: name.clone(),
        source,
    };
    let stdin = io::stdin();
    if nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
        return Err(Error::Usage(
            "standard input is a terminal: pipe or redirect an image into kckpt to read it \
             from there"
                .into(),
        ));
    }
    let flags = if inheritable {
        MFdFlags::empty()
    } else {
        MFdFlags::MFD_CLOEXEC
    };
    let file = File::from(memfd_create("kckpt-image", flags).map_err(|e| err(e.into()))?);
    let mut input = stdin.lock();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let mut filled = 0;
        // Fill the buffer (a pipe gives at most its capacity per read).
        while filled < buf.len() {
            match input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(e)),
            }
        }
        if filled == 0 {
            break;
        }
        write_sparse(&file, &buf[..filled], len).map_err(err)?;
        len += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    file.set_len(len).map_err(err)?;
    Ok(Input {
        file,
        name,
        from_stdin: true,
    })
}

/// Write `data` at `offset`, skipping 4 KiB blocks that are all zero (they
/// stay holes).
fn write_sparse(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    const BLOCK: usize = 4096;
    let zero = |b: &[u8]| b.iter().all(|&x| x == 0);
    let mut at = 0;
    while at < data.len() {
        let end = (at + BLOCK).min(data.len());
        if zero(&data[at..end]) {
            at = end;
            continue;
        }
        let mut stop = end;
        while stop < data.len() && !zero(&data[stop..(stop + BLOCK).min(data.len())]) {
            stop = (stop + BLOCK).min(data.len());
        }
        file.write_all_at(&data[at..stop], offset + at as u64)?;
        at = stop;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_stay_holes() {
        let f = File::from(memfd_create("t", MFdFlags::MFD_CLOEXEC).unwrap());
        let mut data = vec![0u8; 5 * 4096 + 100];
        data[4096] = 1;
        data[5 * 4096 + 99] = 2;
        write_sparse(&f, &data, 8192).unwrap();
        f.set_len(8192 + data.len() as u64).unwrap();
        let mut back = vec![9u8; data.len()];
        f.read_exact_at(&mut back, 8192).unwrap();
        assert_eq!(back, data);
        // Only two 4 KiB blocks hold data.
        use std::os::unix::fs::MetadataExt;
        assert!(f.metadata().unwrap().blocks() <= 2 * 8);
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        for p in ["/dev/null", "/", "/proc/self/fd/0"] {
            if let Err(e) = open(Path::new(p), false) {
                assert!(e.to_string().contains("it is"), "{p}: {e}");
            }
        }
        assert!(open(Path::new("/nonexistent/x"), false).is_err());
    }
}
