//! One-line messages on stderr: `kckpt: ...`, built without allocation.
//! Bytes from outside (paths, names read from the image) are escaped
//! ([`Msg::push`]), so a message is always exactly one line.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::{self, Errno};

/// Where messages go: fd 2, or the caller's stderr kept at a higher
/// descriptor while fd 2 is the restored process's own ([`keep_stderr`]).
static ERR_FD: AtomicUsize = AtomicUsize::new(2);

/// A tree process: the ready pipe's write end and its index (index in
/// the low 31 bits, bit 31 set: "failed"); 0 when none.
static TREE_READY: AtomicUsize = AtomicUsize::new(0);
static TREE_INDEX: AtomicUsize = AtomicUsize::new(0);

/// A tree process: from now on a failure also tells the coordinator
/// (`F` and the index on the ready pipe `fd`) before the process exits.
pub fn tree_failures_to(fd: usize, index: u32) {
    TREE_INDEX.store(index as usize, Ordering::Relaxed);
    TREE_READY.store(fd, Ordering::Relaxed);
}

/// Tell the coordinator that this tree process failed (it printed why).
pub fn tree_failed() {
    let fd = TREE_READY.swap(0, Ordering::Relaxed);
    if fd != 0 {
        let word = TREE_INDEX.load(Ordering::Relaxed) as u32 | 1 << 31;
        let _ = sys::write(fd, &word.to_le_bytes());
    }
}

/// From now on, write messages to `fd` (a copy of the caller's stderr;
/// close-on-exec).
pub fn keep_stderr(fd: usize) {
    ERR_FD.store(fd, Ordering::Relaxed);
}

/// Close the copy of stderr (right before the final jump: the restored
/// process has exactly its saved descriptors).
pub fn close_stderr() {
    let fd = ERR_FD.swap(2, Ordering::Relaxed);
    if fd != 2 {
        sys::close(fd);
    }
}

/// Write a whole line to the caller's stderr.
pub fn line(text: &[u8]) {
    sys::write_all(ERR_FD.load(Ordering::Relaxed), text);
}

/// `v` in decimal: the digits, written at the end of `buf`.
pub fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[at..];
        }
    }
}

/// Exit status of the stub when it refuses an image or a restore fails.
pub const EXIT_REFUSED: i32 = 126;
/// Exit status for a usage error.
pub const EXIT_USAGE: i32 = 2;

/// A message being built in a fixed buffer (longer text is cut).
pub struct Msg {
    buf: [u8; 1024],
    len: usize,
}

impl Msg {
    /// A message starting with `kckpt: `.
    pub fn new() -> Msg {
        let mut m = Msg {
            buf: [0; 1024],
            len: 0,
        };
        m.raw(b"kckpt: ");
        m
    }

    /// Nothing after `kckpt: ` yet?
    pub fn is_empty(&self) -> bool {
        self.len <= 7
    }

    /// Append bytes from outside, a path or a string from the image (a
    /// trailing NUL is dropped), escaped by `kckpt_image::escape`: control
    /// bytes, backslashes and bytes that are not UTF-8 as `\xNN`.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Msg {
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        kckpt_image::escape::escaped(bytes, |piece| {
            self.raw(piece);
        });
        self
    }

    /// Append bytes as they are.
    fn raw(&mut self, bytes: &[u8]) -> &mut Msg {
        // Keep room for the newline.
        let room = self.buf.len() - 1 - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// Append text (the stub's own, printed as it is).
    pub fn s(&mut self, text: &str) -> &mut Msg {
        self.raw(text.as_bytes())
    }

    /// Append `0x` and a hexadecimal number.
    pub fn hex(&mut self, v: u64) -> &mut Msg {
        let mut digits = [0u8; 16];
        let mut n = 0;
        let mut v = v;
        loop {
            digits[15 - n] = b"0123456789abcdef"[(v & 15) as usize];
            n += 1;
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.s("0x").raw(&digits[16 - n..])
    }

    /// Append a decimal number.
    pub fn dec(&mut self, v: u64) -> &mut Msg {
        self.raw(decimal(v, &mut [0; 20]))
    }

    /// Append `: <error text>`.
    pub fn errno(&mut self, e: Errno) -> &mut Msg {
        self.s(": ");
        match errno_text(e) {
            Some(t) => self.s(t),
            None => self.s("error ").dec(u64::from(e.0)),
        }
    }

    /// Print the line on stderr and exit with `code`.
    pub fn exit(&mut self, code: i32) -> ! {
        self.buf[self.len] = b'\n';
        line(&self.buf[..self.len + 1]);
        tree_failed();
        sys::exit(code)
    }

    /// Print the line (`kckpt: ...`) and go on.
    pub fn say(&mut self) {
        self.buf[self.len] = b'\n';
        line(&self.buf[..self.len + 1]);
    }

    /// Print the line as a warning (`kckpt: warning: ...`) and go on.
    pub fn warn(&mut self) {
        let mut line = Msg::new();
        line.s("warning: ").raw(&self.buf[7..self.len]);
        line.buf[line.len] = b'\n';
        self::line(&line.buf[..line.len + 1]);
    }

    /// Print the line and exit with [`EXIT_REFUSED`].
    pub fn fail(&mut self) -> ! {
        self.exit(EXIT_REFUSED)
    }
}

fn errno_text(e: Errno) -> Option<&'static str> {
    use linux_raw_sys::errno::*;
    Some(match e.0 {
        EPERM => "Operation not permitted",
        ENOENT => "No such file or directory",
        EIO => "Input/output error",
        EBADF => "Bad file descriptor",
        ENOMEM => "Cannot allocate memory",
        EACCES => "Permission denied",
        EFAULT => "Bad address",
        EBUSY => "Device or resource busy",
        EEXIST => "File exists",
        EADDRINUSE => "Address already in use",
        ENOTDIR => "Not a directory",
        EISDIR => "Is a directory",
        EINVAL => "Invalid argument",
        ENFILE | EMFILE => "Too many open files",
        ETXTBSY => "Text file busy",
        EFBIG => "File too large",
        ENOSPC => "No space left on device",
        EROFS => "Read-only file system",
        ENAMETOOLONG => "File name too long",
        ELOOP => "Too many levels of symbolic links",
        ENOSYS => "Function not implemented",
        ENODEV => "No such device",
        EOVERFLOW => "Value too large for defined data type",
        _ => return None,
    })
}
