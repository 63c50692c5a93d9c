//! Socket filters (format 1.8, `NT_KCKPT_SOCK_FILTERS`): the classic BPF
//! program a socket had attached (`SO_ATTACH_FILTER`, read back with
//! `SO_GET_FILTER`) and whether it was locked (`SO_LOCK_FILTER`), per
//! socket; attached again by the stub once the socket's queues are back.

use crate::read::{FormatError, ImageView};
use crate::records::{Record, StrRef};
// Classic BPF programs as for seccomp: at most `BPF_MAXINSNS` 8-byte
// instructions (`struct sock_filter`).
use crate::seccomp::{INSN_SIZE, MAX_INSNS};

/// Note type of the socket filter table: an array of [`SockFilterRecord`]
/// sorted by fd.
pub const NT_KCKPT_SOCK_FILTERS: u32 = 0x4b43_0065;

/// `SockFilterRecord::flags` bits.
pub mod filter_flags {
    /// `SO_LOCK_FILTER` was on: the filter cannot be changed or removed.
    pub const LOCKED: u32 = 1 << 0;
}

/// The filter of one socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockFilterRecord {
    /// A primary descriptor record of a socket kind (`SOCKETPAIR`,
    /// `UNIX_LISTEN`, `INET_LISTEN`, `UDP`, `TCP_CONN`, `UNIX_SOCKET`).
    pub fd: u32,
    /// [`filter_flags`] bits.
    pub flags: u32,
    /// Instructions (0: no filter, only the lock).
    pub count: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The instructions, `count` × 8 bytes of the string table.
    pub insns: StrRef,
}
// SAFETY: repr(C); 4*4 + 8 = 24, no padding.
unsafe impl Record for SockFilterRecord {}

/// Descriptor kinds that can hold a filter.
pub fn socket_kind(kind: u32) -> bool {
    matches!(
        kind,
        crate::records::fd_kind::SOCKETPAIR
            | crate::unixsock::UNIX_LISTEN_FD_KIND
            | crate::inet::INET_LISTEN_FD_KIND
            | crate::inet::UDP_FD_KIND
            | crate::tcp::TCP_CONN_FD_KIND
            | crate::unixsock::UNIX_SOCKET_FD_KIND
    )
}

/// Every record names a primary socket descriptor, sorted by fd without
/// repeats, known flags, a filter of at most [`MAX_INSNS`] instructions
/// stored whole, or a lock alone; none before 1.8.
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad = FormatError::BadField("socket filter: bad descriptor, flags or instructions");
    if view.header.format_minor < 8 && !view.sock_filters.is_empty() {
        return Err(bad);
    }
    let mut last: Option<u32> = None;
    for f in view.sock_filters.iter() {
        let fd = crate::files::find_fd(view, f.fd).ok_or(bad)?;
        let bytes = view.string(f.insns)?;
        if last.is_some_and(|l| l >= f.fd)
            || fd.dup_of != crate::records::FD_NO_DUP
            || !socket_kind(fd.kind)
            || f.flags & !filter_flags::LOCKED != 0
            || f.reserved != 0
            || f.count > MAX_INSNS
            || (f.count == 0 && f.flags == 0)
            || bytes.len() as u64 != u64::from(f.count) * INSN_SIZE as u64
        {
            return Err(bad);
        }
        last = Some(f.fd);
    }
    Ok(())
}
