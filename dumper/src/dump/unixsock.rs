//! Unix sockets as `sock_diag` reports them, and listening Unix sockets
//! bound to a name (format 1.4, fd kind 41,
//! `kckpt_image::unixsock`).
//!
//! `sock_diag` (`SOCK_DIAG_BY_FAMILY`, `AF_UNIX`, one inode) gives the
//! state, the bound name (`UNIX_DIAG_NAME`), the peer (`UNIX_DIAG_PEER`),
//! the socket file's device and inode (`UNIX_DIAG_VFS`) and, for a
//! listener, the connections waiting to be accepted and the backlog
//! (`UNIX_DIAG_RQLEN`: receive queue length, `sk_max_ack_backlog`) and
//! the inodes of their clients in backlog order (`UNIX_DIAG_ICONS`; 0
//! for a client closed since).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::libc;
use nix::sys::socket::{self, sockopt, MsgFlags};

use kckpt_image::unixsock::{unix_flags, unix_opts, MAX_NAME, MODE_RECORDED};

use super::fdsys;

/// `TCP_LISTEN`, the state of a listening Unix socket.
const LISTEN: u8 = 10;

/// What `sock_diag` says about one Unix socket.
#[derive(Clone, Debug, Default)]
pub struct UnixDiag {
    /// Socket type (`SOCK_STREAM`...).
    pub ty: u8,
    /// State (`TCP_LISTEN`, `TCP_ESTABLISHED`...).
    pub state: u8,
    /// Bound name, as the kernel holds it (abstract: starts with NUL).
    pub name: Option<Vec<u8>>,
    /// Peer socket inode (0: none).
    pub peer: u64,
    /// Socket file (device, inode), for a socket bound to a path.
    pub vfs: Option<(u32, u32)>,
    /// Receive queue: for a listener, the connections not yet accepted.
    pub rqueue: u32,
    /// For a listener, its backlog.
    pub wqueue: u32,
    /// `sk_shutdown` (`UNIX_DIAG_SHUTDOWN`: 1 receive, 2 send).
    pub shutdown: u8,
    /// For a listener, the inode of the client of each connection waiting
    /// to be accepted, in the order `accept` takes them (0: closed).
    pub icons: Vec<u32>,
}

/// `sock_diag` of Unix socket inode `ino`.
pub fn diag(ino: u64) -> Option<UnixDiag> {
    const NLM_F_REQUEST: u16 = 1;
    const UDIAG_SHOW_NAME: u32 = 1;
    const UDIAG_SHOW_VFS: u32 = 2;
    const UDIAG_SHOW_PEER: u32 = 4;
    const UDIAG_SHOW_ICONS: u32 = 8;
    const UDIAG_SHOW_RQLEN: u32 = 16;
    let show =
        UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
    let mut req = Vec::with_capacity(24);
    req.extend_from_slice(&[1, 0, 0, 0]); // AF_UNIX, protocol, pad
    req.extend_from_slice(&u32::MAX.to_le_bytes()); // all states
    req.extend_from_slice(&(ino as u32).to_le_bytes());
    req.extend_from_slice(&show.to_le_bytes());
    req.extend_from_slice(&u32::MAX.to_le_bytes()); // no cookie
    req.extend_from_slice(&u32::MAX.to_le_bytes());
    let nl = super::fdsys::sock_diag_request(NLM_F_REQUEST, &req)?;
    let mut buf = vec![0u8; 8192];
    let n = socket::recv(nl.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
    parse(buf.get(..n)?)
}

/// Parse one `SOCK_DIAG_BY_FAMILY` answer (`nlmsghdr`, `unix_diag_msg`,
/// attributes).
fn parse(msg: &[u8]) -> Option<UnixDiag> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    let u16_at = |o: usize| Some(u16::from_le_bytes(msg.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(msg.get(o..o + 4)?.try_into().ok()?));
    if u16_at(4)? != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    let len = (u32_at(0)? as usize).min(msg.len());
    let mut d = UnixDiag {
        ty: *msg.get(17)?,
        state: *msg.get(18)?,
        ..UnixDiag::default()
    };
    let mut at = 16 + 16; // nlmsghdr + unix_diag_msg
    while at + 4 <= len {
        let alen = usize::from(u16_at(at)?);
        let kind = u16_at(at + 2)?;
        if alen < 4 || at + alen > len {
            break;
        }
        match kind {
            0 => d.name = Some(msg[at + 4..at + alen].to_vec()),
            1 => d.vfs = Some((u32_at(at + 8)?, u32_at(at + 4)?)),
            2 => d.peer = u64::from(u32_at(at + 4)?),
            3 => {
                d.icons = (at + 4..at + alen - 3)
                    .step_by(4)
                    .filter_map(u32_at)
                    .collect()
            }
            4 => (d.rqueue, d.wqueue) = (u32_at(at + 4)?, u32_at(at + 8)?),
            6 => d.shutdown = *msg.get(at + 4)?,
            _ => {}
        }
        at += (alen + 3) & !3;
    }
    Some(d)
}

/// Whether `d` is a listening socket (kind 41 or a refusal of one).
pub fn is_listener(d: &UnixDiag) -> bool {
    d.state == LISTEN
}

/// A listening socket's record fields: (name for `path`, `args`), or the
/// reason it is refused. `sock` is a copy of the descriptor, `pid` its
/// process (its root directory holds the socket file), `held` the socket
/// inodes the process's image holds (1.7: connections waiting to be
/// accepted are restored when each client is one of them: the client
/// connects again, `unixsave`).
pub fn listener(
    pid: i32,
    sock: &OwnedFd,
    d: &UnixDiag,
    held: &[u64],
    tree: &[i32],
) -> Result<(Vec<u8>, [u64; 4]), String> {
    let Some(raw) = d.name.as_deref().filter(|n| !n.is_empty()) else {
        return Err("listening unix socket without a name".into());
    };
    let (abstract_name, name) = match raw.strip_prefix(&[0]) {
        Some(rest) => (true, rest.to_vec()),
        // The kernel keeps a path name with its NUL.
        None => (false, raw.split(|&b| b == 0).next().unwrap_or(raw).to_vec()),
    };
    let shown = String::from_utf8_lossy(&name).into_owned();
    let shown = if abstract_name {
        format!("@{shown}")
    } else {
        shown
    };
    if !matches!(i32::from(d.ty), libc::SOCK_STREAM | libc::SOCK_SEQPACKET) {
        return Err(format!("listening unix socket {shown} of type {}", d.ty));
    }
    if name.contains(&0) || name.len() as u64 > MAX_NAME {
        return Err(format!(
            "listening unix socket {shown} (its name holds a NUL)"
        ));
    }
    let relative = !abstract_name && !name.starts_with(b"/");
    if d.rqueue > 0 {
        pending_refusal(&shown, d, pid, held, tree)?;
    }
    let fd = sock.as_raw_fd();
    let on = |o| fdsys::sockopt_int(fd, o).is_ok_and(|v| v != 0);
    let mut opts = 0;
    if on(libc::SO_PASSCRED) {
        opts |= unix_opts::PASSCRED;
    }
    if on(libc::SO_PASSSEC) {
        opts |= unix_opts::PASSSEC;
    }
    // Options that change what accept() does and are not restored.
    let timeo = socket::getsockopt(sock, sockopt::ReceiveTimeout)
        .map(|t| t.tv_sec() != 0 || t.tv_usec() != 0)
        .unwrap_or(true);
    if timeo {
        return Err(format!(
            "listening unix socket {shown} with SO_RCVTIMEO (not restored)"
        ));
    }
    let mut args = [u64::from(d.ty), u64::from(d.wqueue), opts, 0];
    if abstract_name {
        args[0] |= unix_flags::ABSTRACT;
    } else {
        // A relative name is bound again from the working directory: it
        // must lead to the socket's own file from there now.
        let base = if relative { "cwd/" } else { "root" };
        args[3] = match file_mode(pid, base, &name, d.vfs) {
            Ok(None) if relative => {
                return Err(format!(
                    "listening unix socket {shown} (bound to a relative path that does not lead to it from its working directory)"
                ))
            }
            Ok(Some(mode)) => mode,
            // Removed or replaced: its name comes back without a file.
            Ok(None) => {
                args[0] |= unix_flags::DETACHED;
                0
            }
            // The restore would refuse the path: refused before any kill.
            Err(kind) => {
                return Err(format!(
                    "listening unix socket {shown} ({kind} at its path now)"
                ))
            }
        };
        if relative {
            args[0] |= unix_flags::RELATIVE;
        }
    }
    if d.rqueue > 0 && args[0] & unix_flags::DETACHED != 0 {
        return Err(format!(
            "listening unix socket {shown} with {} connection(s) waiting to be accepted, \
             its path no longer leading to it (they could not connect to it again)",
            d.rqueue
        ));
    }
    Ok((name, args))
}

/// (1.7) Why the connections waiting on listener `d` (shown as `shown`)
/// cannot come back: each client must be a socket of the image (`held`),
/// which connects again at restore. A client closed since, or held
/// elsewhere, is named.
fn pending_refusal(
    shown: &str,
    d: &UnixDiag,
    pid: i32,
    held: &[u64],
    tree: &[i32],
) -> Result<(), String> {
    let n = d.rqueue;
    let head =
        format!("listening unix socket {shown} with {n} connection(s) waiting to be accepted");
    if d.icons.len() != n as usize {
        return Err(format!("{head} (sock_diag does not list their clients)"));
    }
    for &c in &d.icons {
        if c == 0 {
            return Err(format!(
                "{head}, one from a client closed since (what it sent cannot be read \
                 without accepting it)"
            ));
        }
        if held.contains(&u64::from(c)) {
            continue;
        }
        let by = match outside_holder(u64::from(c), pid, tree) {
            Some((p, comm)) => format!("held by pid {p} ({comm}) outside the dump"),
            None => match tree_holder(u64::from(c), pid, tree) {
                Some(p) => format!(
                    "held by pid {p} of the dump, which the listener's process is not an \
                     ancestor of"
                ),
                None => "held outside the process (in flight, or by a process this user \
                         cannot see)"
                    .to_owned(),
            },
        };
        return Err(format!("{head}, one from a client {by}"));
    }
    Ok(())
}

/// (1.7) The listener among `candidates` (descriptor, socket inode) that
/// the connection of client `ino` waits on, and its place in that
/// listener's backlog.
pub fn pending_on(ino: u64, candidates: &[(u32, u64)]) -> Option<(u32, u32)> {
    candidates.iter().find_map(|&(fd, l)| {
        let d = diag(l).filter(is_listener)?;
        let pos = d.icons.iter().position(|&c| u64::from(c) == ino)?;
        Some((fd, pos as u32))
    })
}

/// How a name is shown: a path as it is, an abstract name after `@`.
pub fn shown(raw: &[u8]) -> String {
    match raw.strip_prefix(&[0]) {
        Some(rest) => format!("@{}", String::from_utf8_lossy(rest)),
        None => String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or(raw)).into_owned(),
    }
}

/// The refusal of a connected socket that has a name and a peer held
/// outside the dump: a connection accepted on a listener (the listener's
/// name) whose client is another process (e.g. a tmux client attached
/// to its server). `None` for anything else.
pub fn accepted_refusal(d: &UnixDiag, pid: i32, tree: &[i32]) -> Option<String> {
    let name = d.name.as_deref().filter(|n| !n.is_empty())?;
    if is_listener(d) || d.peer == 0 {
        return None;
    }
    let (p, comm) = outside_holder(d.peer, pid, tree)?;
    Some(format!(
        "named unix socket accepted on {}, its client pid {p} ({comm}) outside the dump",
        shown(name)
    ))
}

/// Another process of the dump (in `tree`, not `pid`) holding socket
/// inode `ino`.
pub fn tree_holder(ino: u64, pid: i32, tree: &[i32]) -> Option<i32> {
    let want = format!("socket:[{ino}]");
    tree.iter().copied().filter(|&p| p != pid).find(|p| {
        std::fs::read_dir(format!("/proc/{p}/fd")).is_ok_and(|dir| {
            dir.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
        })
    })
}

/// A process outside the dump (not `pid`, not in `tree`, not this one)
/// holding socket inode `ino`: (pid, command name). Processes whose
/// descriptors this user cannot read are missed.
pub fn outside_holder(ino: u64, pid: i32, tree: &[i32]) -> Option<(i32, String)> {
    let me = std::process::id() as i32;
    let want = format!("socket:[{ino}]");
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in procs.filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok()) {
        if p == me || p == pid || tree.contains(&p) {
            continue;
        }
        let Ok(dir) = std::fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        let holds = dir
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want.as_str()));
        if holds {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            return Some((p, comm.trim().to_owned()));
        }
    }
    None
}

/// The permission bits of the socket file at `name` in `pid`'s root
/// (`base` "root") or working directory ("cwd/"),
/// with [`MODE_RECORDED`], when it is still the socket's own file;
/// `None` when the path is free or holds another socket's file or (1.8)
/// another kind of file but a directory (the socket is detached from its
/// path); 0 when `sock_diag` gave no inode to compare; a directory there
/// otherwise.
pub fn file_mode(
    pid: i32,
    base: &str,
    name: &[u8],
    vfs: Option<(u32, u32)>,
) -> Result<Option<u64>, &'static str> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    let mut path = format!("/proc/{pid}/{base}").into_bytes();
    path.extend_from_slice(name);
    let Ok(meta) = std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&path)) else {
        return Ok(None);
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err("a directory");
    }
    // (1.8) A named pipe, a file or a symbolic link made there since: the
    // socket is detached from its path, like one whose file is another
    // socket's (the restore moves what is there aside for its `bind`).
    if !ft.is_socket() {
        return Ok(None);
    }
    let Some((dev, ino)) = vfs else {
        return Ok(Some(0));
    };
    // sock_diag gives the kernel's own encoding (major << 20 | minor).
    let (major, minor) = (dev >> 20, dev & 0xf_ffff);
    let dev_ok = libc::major(meta.dev()) == major && libc::minor(meta.dev()) == minor;
    Ok((meta.ino() == u64::from(ino) && dev_ok)
        .then(|| MODE_RECORDED | u64::from(meta.mode() & 0o7777)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listener_answer() {
        let mut m = vec![0u8; 32];
        m[0..4].copy_from_slice(&72u32.to_le_bytes());
        m[4..6].copy_from_slice(&20u16.to_le_bytes());
        m[16] = 1; // AF_UNIX
        m[17] = 1; // stream
        m[18] = LISTEN;
        // UNIX_DIAG_NAME "/t/s"
        m.extend_from_slice(&8u16.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(b"/t/s");
        // UNIX_DIAG_VFS ino 7 dev 9
        m.extend_from_slice(&12u16.to_le_bytes());
        m.extend_from_slice(&1u16.to_le_bytes());
        m.extend_from_slice(&7u32.to_le_bytes());
        m.extend_from_slice(&9u32.to_le_bytes());
        // UNIX_DIAG_RQLEN 2 waiting, backlog 128
        m.extend_from_slice(&12u16.to_le_bytes());
        m.extend_from_slice(&4u16.to_le_bytes());
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice(&128u32.to_le_bytes());
        let d = parse(&m).unwrap();
        assert!(is_listener(&d));
        assert_eq!(d.name.as_deref(), Some(&b"/t/s"[..]));
        assert_eq!(d.vfs, Some((9, 7)));
        assert_eq!((d.rqueue, d.wqueue), (2, 128));
    }
}
