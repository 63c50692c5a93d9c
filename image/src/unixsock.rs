//! Listening Unix sockets bound to a name (format 1.4, fd kind 41).
//!
//! A record of kind [`UNIX_LISTEN_FD_KIND`] is a Unix stream or seqpacket
//! socket that was listening, with no connection waiting to be accepted,
//! bound to a path or an abstract name. `path` holds the name (for an
//! abstract name: its bytes after the leading NUL); `flags` the file
//! status flags (`O_RDWR`, maybe `O_NONBLOCK`);
//! - `args[0]`: the socket type (1 stream, 5 seqpacket), with
//!   [`unix_flags::ABSTRACT`] set for an abstract name,
//!   [`unix_flags::RELATIVE`] for a relative path,
//!   [`unix_flags::DETACHED`] for a path that no longer led to the
//!   socket's own file;
//! - `args[1]`: the backlog given to `listen` (`sock_diag` reports it);
//! - `args[2]`: [`unix_opts`] bits, the socket options restored;
//! - `args[3]`: the socket file's permission bits (07777) with bit 32 set
//!   (0: not recorded: an abstract name, or a file that was not the
//!   socket's any more).
//!
//! No data region. Restored by `socket`, `bind` to the name (a stale
//! socket file nobody listens on is removed first; anything else at the
//! path refuses the restore), `listen(backlog)`. A `DETACHED` one is
//! bound with whatever is at its path moved aside for the moment (a
//! rename in the same directory), and the file `bind` made is removed
//! again.

/// The fd kind of a listening Unix socket.
pub const UNIX_LISTEN_FD_KIND: u32 = 41;

/// Bits of `args[0]` above the socket type.
pub mod unix_flags {
    /// The name is abstract (no file): `path` is the name after its NUL.
    pub const ABSTRACT: u64 = 1 << 32;
    /// The name is a relative path: bound from the process's working
    /// directory (`NT_KCKPT_FS`), as it was at dump time.
    pub const RELATIVE: u64 = 1 << 33;
    /// The path no longer led to the socket's own file at dump (removed,
    /// or replaced by another socket's file): the socket gets its name
    /// back and the path is left as the restore finds it (format 1.4).
    pub const DETACHED: u64 = 1 << 34;
}

/// Socket options kept (`args[2]`).
pub mod unix_opts {
    /// `SO_PASSCRED`.
    pub const PASSCRED: u64 = 1 << 0;
    /// `SO_PASSSEC`.
    pub const PASSSEC: u64 = 1 << 1;
    /// All known bits.
    pub const KNOWN: u64 = PASSCRED | PASSSEC;
}

/// Bit 32 of `args[3]`: the permission bits are recorded.
pub const MODE_RECORDED: u64 = 1 << 32;

/// Longest name (`sun_path` holds 108 bytes; a path needs its NUL, an
/// abstract name its leading NUL).
pub const MAX_NAME: u64 = 107;

/// Kind-specific checks of a primary record of this kind.
pub fn args_ok(args: [u64; 4], name_len: usize, data_len: u64) -> bool {
    let ty = args[0] & 0xffff_ffff;
    let abstract_name = args[0] & unix_flags::ABSTRACT != 0;
    let relative = args[0] & unix_flags::RELATIVE != 0;
    let detached = args[0] & unix_flags::DETACHED != 0;
    matches!(ty, 1 | 5)
        && args[0] >> 32 & !7 == 0
        && !(abstract_name && relative)
        && !(detached && (abstract_name || relative || args[3] != 0))
        && args[1] <= i32::MAX as u64
        && args[2] & !unix_opts::KNOWN == 0
        && (args[3] == 0 || (!abstract_name && args[3] & !0o7777 == MODE_RECORDED))
        && name_len > 0
        && name_len as u64 <= MAX_NAME
        && data_len == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_values_of_a_listener() {
        let ok = [1, 128, unix_opts::PASSCRED, MODE_RECORDED | 0o600];
        assert!(args_ok(ok, 10, 0));
        assert!(args_ok([5 | unix_flags::ABSTRACT, 0, 0, 0], 1, 0));
        // Datagram, unknown flag bits, option bits, mode bits, a mode on
        // an abstract name, no name, a long name, data.
        assert!(!args_ok([2, 128, 0, 0], 10, 0));
        assert!(args_ok([1 | unix_flags::RELATIVE, 128, 0, 0], 10, 0));
        assert!(!args_ok([1 | 1 << 35, 128, 0, 0], 10, 0));
        // Detached: a path, no mode, not relative.
        let detached = unix_flags::DETACHED;
        assert!(args_ok([1 | detached, 128, 0, 0], 10, 0));
        assert!(!args_ok([1 | detached, 128, 0, MODE_RECORDED], 10, 0));
        assert!(!args_ok(
            [1 | detached | unix_flags::ABSTRACT, 1, 0, 0],
            10,
            0
        ));
        assert!(!args_ok(
            [1 | detached | unix_flags::RELATIVE, 1, 0, 0],
            10,
            0
        ));
        let both = unix_flags::ABSTRACT | unix_flags::RELATIVE;
        assert!(!args_ok([1 | both, 128, 0, 0], 10, 0));
        assert!(!args_ok([1, 128, 4, 0], 10, 0));
        assert!(!args_ok([1, 128, 0, 0o600], 10, 0));
        assert!(!args_ok(
            [1 | unix_flags::ABSTRACT, 1, 0, MODE_RECORDED],
            10,
            0
        ));
        assert!(!args_ok(ok, 0, 0));
        assert!(!args_ok(ok, 108, 0));
        assert!(!args_ok(ok, 10, 1));
        assert!(!args_ok([1, 1 << 31, 0, 0], 10, 0));
    }
}
