//! Named pipes, memory character devices and symbolic links held by a
//! descriptor (format 1.3, fd kinds 23-25). `docs/FORMAT.md` describes
//! them; `fd_flags::DELETED` marks one whose name was removed before the
//! dump (re-created at restore under a temporary name, then unlinked).

/// `fd_kind` values of this module.
pub mod special_fd_kind {
    /// A named pipe (FIFO): `path` its name, `flags` the open mode; the
    /// data region holds the bytes buffered in the pipe (on the first
    /// descriptor of that pipe only: the others are `REOPEN` of it);
    /// `args[0]` the pipe size (`F_GETPIPE_SZ`), `args[1]` its permission
    /// bits (07777), used when it is re-created.
    pub const FIFO: u32 = 23;
    /// A memory character device (major 1, minors 3, 5, 7, 8, 9: null,
    /// zero, full, random, urandom) at any path: `args[0]` the major,
    /// `args[1]` the minor, `args[2]` the node's permission bits (07777).
    pub const DEVICE: u32 = 24;
    /// A symbolic link opened with `O_PATH | O_NOFOLLOW`: `path` its name,
    /// the data region its target (at most 4095 bytes).
    pub const SYMLINK: u32 = 25;
}

/// Minors of major 1 a [`special_fd_kind::DEVICE`] may have.
pub const MEM_MINORS: [u64; 5] = [3, 5, 7, 8, 9];

/// The standard path of memory device `(major, minor)`, NUL-terminated.
pub fn mem_device_path(major: u64, minor: u64) -> Option<&'static [u8]> {
    if major != 1 {
        return None;
    }
    Some(match minor {
        3 => b"/dev/null\0",
        5 => b"/dev/zero\0",
        7 => b"/dev/full\0",
        8 => b"/dev/random\0",
        9 => b"/dev/urandom\0",
        _ => return None,
    })
}

/// Kind-specific checks of a primary (not `dup`) record of these kinds.
pub fn args_ok(kind: u32, args: [u64; 4], data_len: u64) -> bool {
    match kind {
        special_fd_kind::FIFO => {
            args[1] & !0o7777 == 0 && args[2..] == [0; 2] && data_len <= args[0]
        }
        special_fd_kind::DEVICE => {
            mem_device_path(args[0], args[1]).is_some()
                && args[2] & !0o7777 == 0
                && args[3] == 0
                && data_len == 0
        }
        special_fd_kind::SYMLINK => args == [0; 4] && data_len > 0 && data_len < 4096,
        _ => false,
    }
}
