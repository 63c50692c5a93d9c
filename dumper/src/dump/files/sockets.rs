//! Sockets among a process's descriptors: what each one is (a TCP
//! listener or (1.6) other TCP socket neither listening nor connected, a
//! UDP socket with its queued datagrams, a Unix listener, one end of a socketpair whose
//! other end the process holds, with its unread bytes), the record it is
//! restored from, or why it is refused.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, MsgFlags};

use kckpt_image::inet::{INET_LISTEN_FD_KIND, UDP_FD_KIND};
use kckpt_image::records::*;
use kckpt_image::unixsock::UNIX_LISTEN_FD_KIND;

use super::super::{fdsys, inet, unixsock};
use super::{Class, Fd};
use crate::error::{Error, Result};

/// Classifies the socket at `fds[i]` (a `SOCKETPAIR` placeholder kind set
/// from its link), `copy` a `pidfd_getfd` copy of it: fills in its kind,
/// arguments, record and data, or marks it unsupported in `classes`.
/// Losses that `--skip-unsupported` would accept go to `lossy`.
pub(super) fn classify(
    fds: &mut [Fd],
    classes: &mut [Class],
    lossy: &mut Vec<(i32, String)>,
    i: usize,
    pid: i32,
    tree_pids: &[i32],
    copy: OwnedFd,
) -> Result<()> {
    let ino = fds[i].ino;
    let opt = |o| fdsys::sockopt_int(copy.as_raw_fd(), o).unwrap_or(-1);
    use nix::libc;
    let (domain, ty, proto) = (
        opt(libc::SO_DOMAIN),
        opt(libc::SO_TYPE),
        opt(libc::SO_PROTOCOL),
    );
    let inet = matches!(domain, libc::AF_INET | libc::AF_INET6);
    let tcp = proto == libc::IPPROTO_TCP && ty == libc::SOCK_STREAM;
    let udp = proto == libc::IPPROTO_UDP && ty == libc::SOCK_DGRAM;
    let what = if inet && (tcp || udp) {
        // (1.5) TCP listeners and UDP sockets.
        let outside = unixsock::outside_holder(ino, pid, tree_pids);
        // Sockets not bound (and TCP sockets a failed connect closed) are
        // in no table sock_diag reads.
        let diag = inet::diag(domain, proto, ino).or_else(|| inet::unbound(&copy, tcp));
        let got = match diag {
            Some(_) if outside.is_some() => {
                let (p, comm) = outside.unwrap_or_default();
                Err(format!(
                    "{} socket also held by pid {p} ({comm}), outside the dump",
                    if tcp { "TCP" } else { "UDP" }
                ))
            }
            Some(d) => inet::record(&copy, tcp, &d),
            None => Err(format!(
                "{} socket sock_diag does not report",
                if tcp { "TCP" } else { "UDP" }
            )),
        };
        match got {
            Ok(saved) => {
                fds[i].rec.kind = if tcp {
                    INET_LISTEN_FD_KIND
                } else {
                    UDP_FD_KIND
                };
                fds[i].rec.args = [u64::from(saved.rec.family), 0, 0, 0];
                if let Some(what) = saved.lossy {
                    lossy.push((fds[i].rec.fd as i32, what));
                }
                fds[i].path = saved.rec.encode().to_vec();
                fds[i].data = saved.data;
                return Ok(());
            }
            Err(what) => Some(what),
        }
    } else if inet {
        Some(inet::other_name(domain, ty, proto))
    } else if domain == libc::AF_UNIX {
        let ty = ty as u32;
        let diag = unixsock::diag(ino);
        if let Some(d) = diag.as_ref().filter(|d| unixsock::is_listener(d)) {
            let outside = unixsock::outside_holder(ino, pid, tree_pids);
            let got = match outside {
                Some((p, comm)) => Err(format!(
                    "listening unix socket also held by pid {p} ({comm}), \
                     outside the dump"
                )),
                None => unixsock::listener(pid, &copy, d),
            };
            match got {
                Ok((name, args)) => {
                    fds[i].rec.kind = UNIX_LISTEN_FD_KIND;
                    fds[i].rec.args = args;
                    fds[i].path = name;
                }
                Err(what) => {
                    classes[i] = Class::Unsupported(what);
                    fds[i].rec.kind = fd_kind::PLACEHOLDER;
                }
            }
            return Ok(());
        }
        if let Some(what) = diag
            .as_ref()
            .and_then(|d| unixsock::accepted_refusal(d, pid, tree_pids))
        {
            classes[i] = Class::Unsupported(what);
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
            return Ok(());
        }
        let peer = diag.map(|d| (d.peer, d.name.is_some()));
        // Inode 0 is no socket: the socket is not connected.
        let peer_fd = peer
            .filter(|&(p, named)| !named && p != 0)
            .and_then(|(p, _)| index_of_ino(fds, p, i))
            .filter(|&j| fds[j].rec.kind == fd_kind::SOCKETPAIR);
        match peer_fd {
            Some(j) if p_ok(ty) => {
                fds[i].rec.peer = fds[j].rec.fd;
                fds[i].rec.args[0] = u64::from(ty);
                None
            }
            _ if peer.is_some_and(|(_, named)| named) => Some("named unix socket".to_owned()),
            _ if peer.is_some_and(|(p, _)| p == 0) => Some("unix socket, not connected".to_owned()),
            _ => Some("unix socket connected outside the process".to_owned()),
        }
    } else {
        Some(other_family(domain, proto))
    };
    if let Some(what) = what {
        classes[i] = Class::Unsupported(what);
        fds[i].rec.kind = fd_kind::PLACEHOLDER;
        return Ok(());
    }
    let queued = peek_socket(&copy).map_err(|e| Error::Unsupported {
        pid,
        reason: format!(
            "cannot read the socket at fd {}: {}",
            fds[i].rec.fd,
            crate::error::io_text(&e)
        ),
    })?;
    let stream = fds[i].rec.args[0] == 1;
    match queued {
        Some((_, true)) => {
            classes[i] =
                Class::Unsupported("socketpair with descriptors in flight, SCM_RIGHTS".into());
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
        }
        Some((bytes, false)) if stream => fds[i].data = bytes,
        Some(_) => {
            classes[i] = Class::Unsupported("socketpair with unread datagrams".into());
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
        }
        None => {}
    }
    Ok(())
}

/// The name a socket of a family kckpt does not restore is refused by:
/// netlink sockets by protocol (a fresh socket would lose the port id,
/// the multicast groups subscribed and the messages queued, so none is
/// re-created), packet sockets.
fn other_family(domain: i32, proto: i32) -> String {
    use nix::libc;
    match domain {
        libc::AF_NETLINK => {
            let name = match proto {
                libc::NETLINK_ROUTE => "NETLINK_ROUTE",
                libc::NETLINK_USERSOCK => "NETLINK_USERSOCK",
                libc::NETLINK_SOCK_DIAG => "NETLINK_SOCK_DIAG",
                libc::NETLINK_NFLOG => "NETLINK_NFLOG",
                libc::NETLINK_XFRM => "NETLINK_XFRM",
                libc::NETLINK_SELINUX => "NETLINK_SELINUX",
                libc::NETLINK_ISCSI => "NETLINK_ISCSI",
                libc::NETLINK_AUDIT => "NETLINK_AUDIT",
                libc::NETLINK_FIB_LOOKUP => "NETLINK_FIB_LOOKUP",
                libc::NETLINK_CONNECTOR => "NETLINK_CONNECTOR",
                libc::NETLINK_NETFILTER => "NETLINK_NETFILTER",
                libc::NETLINK_KOBJECT_UEVENT => "NETLINK_KOBJECT_UEVENT",
                libc::NETLINK_GENERIC => "NETLINK_GENERIC",
                libc::NETLINK_CRYPTO => "NETLINK_CRYPTO",
                _ => "",
            };
            if name.is_empty() {
                format!("netlink socket of protocol {proto}")
            } else {
                format!("netlink socket ({name})")
            }
        }
        libc::AF_PACKET => "packet socket (AF_PACKET)".to_owned(),
        _ => format!("socket of family {domain}"),
    }
}

/// The other descriptor (not `skip`, not a dup or reopen) of socket inode
/// `ino`.
fn index_of_ino(fds: &[Fd], ino: u64, skip: usize) -> Option<usize> {
    fds.iter().enumerate().position(|(k, f)| {
        k != skip && f.ino == ino && f.rec.dup_of == FD_NO_DUP && f.rec.kind != fd_kind::REOPEN
    })
}

/// Bytes waiting in a socket's receive queue (`MSG_PEEK`), and whether
/// descriptors are in flight among them (`SCM_RIGHTS`: the peek installs
/// copies in this process, closed at once; kckpt cannot send them again).
fn peek_socket(sock: &OwnedFd) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    use std::io::IoSliceMut;
    let mut buf = vec![0u8; 16 << 20];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 253]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let got = socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    );
    let (n, rights) = match got {
        Ok(msg) => {
            let mut rights = false;
            for c in msg.cmsgs()? {
                if let socket::ControlMessageOwned::ScmRights(fds) = c {
                    rights = true;
                    fds.into_iter().for_each(fdsys::close_received);
                }
            }
            (msg.bytes, rights)
        }
        Err(nix::errno::Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    buf.truncate(n);
    Ok(Some((buf, rights)))
}

/// Socket types of a socketpair kckpt restores: stream, datagram,
/// seqpacket.
fn p_ok(ty: u32) -> bool {
    matches!(ty, 1 | 2 | 5)
}
