//! External descriptors (format 1.4): [`EXTERNAL_FD_KIND`], a descriptor
//! that led outside the dumped processes (a pipe, socket or named pipe
//! shared with a process that was not dumped) and that the user named at
//! dump time (`kckpt dump --external PID:FD`). The restore takes it from
//! the restorer: `KCKPT_INHERIT_FD="KEY=N,KEY=N"` (`kckpt restore
//! --inherit-fd KEY=N`) names, for each key, a descriptor `N` of the
//! process that runs the image.
//!
//! The record's `path` is its key: what `/proc/PID/fd/FD` read at dump
//! (`pipe:[INODE]`, `socket:[INODE]`, a named pipe's path); `flags` the
//! saved access mode and status flags, `fd_flags` its close-on-exec flag;
//! `args`, `pos`, `peer` and the data are zero.

/// `FdRecord::kind` of an external descriptor (format 1.4).
pub const EXTERNAL_FD_KIND: u32 = 40;

/// Most entries of a `KCKPT_INHERIT_FD` list (the restore of a tree keeps
/// one descriptor per entry at fixed numbers: see `stub/src/tree.rs`).
pub const MAX_INHERIT: usize = 16;

/// Is `key` usable as a key: not empty, at most 4095 bytes, and without
/// `,` (the list separator) or NUL.
pub fn key_ok(key: &[u8]) -> bool {
    !key.is_empty() && key.len() < 4096 && !key.iter().any(|&b| b == b',' || b == 0)
}

/// One `KEY=N` entry of a `KCKPT_INHERIT_FD` list: the key (everything
/// before the last `=`) and the descriptor, or `None` when malformed.
pub fn parse_entry(entry: &[u8]) -> Option<(&[u8], u32)> {
    let eq = entry.iter().rposition(|&b| b == b'=')?;
    let (key, num) = (&entry[..eq], &entry[eq + 1..]);
    if key.is_empty() || num.is_empty() || num.len() > 9 {
        return None;
    }
    let mut n = 0u32;
    for &d in num {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(d - b'0');
    }
    Some((key, n))
}

/// The entries of a `KCKPT_INHERIT_FD` list (empty entries skipped), in
/// order; a malformed one is `None`.
pub fn entries(list: &[u8]) -> impl Iterator<Item = Option<(&[u8], u32)>> {
    list.split(|&b| b == b',')
        .filter(|e| !e.is_empty())
        .map(parse_entry)
}

/// The first entry of `list` for `key`: its position among the entries
/// (as [`entries`] counts them) and its descriptor.
pub fn lookup(list: &[u8], key: &[u8]) -> Option<(usize, u32)> {
    entries(list)
        .enumerate()
        .find_map(|(i, e)| e.filter(|(k, _)| *k == key).map(|(_, n)| (i, n)))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn parses_lists() {
        let list = b"pipe:[12]=5,,/tmp/a=b=7,bad,socket:[3]=0";
        let all: Vec<_> = entries(list).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], Some((&b"pipe:[12]"[..], 5)));
        assert_eq!(all[1], Some((&b"/tmp/a=b"[..], 7)));
        assert_eq!(all[2], None);
        assert_eq!(lookup(list, b"socket:[3]"), Some((3, 0)));
        assert_eq!(lookup(list, b"pipe:[13]"), None);
        assert_eq!(parse_entry(b"k=x"), None);
        assert_eq!(parse_entry(b"=3"), None);
        assert_eq!(parse_entry(b"k=1234567890"), None);
        assert!(key_ok(b"pipe:[1]") && !key_ok(b"a,b") && !key_ok(b""));
    }
}
