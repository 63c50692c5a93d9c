//! Sockets among a process's descriptors: what each one is (a TCP
//! listener or (1.6) other TCP socket neither listening nor connected, a
//! UDP socket with its queued datagrams, an established TCP connection, a
//! Unix listener or other Unix socket, one end of a socketpair whose
//! other end the process holds, with its unread bytes), the record it is
//! restored from, or why it is refused.

use std::os::fd::{AsRawFd, OwnedFd};

use kckpt_image::inet::{INET_LISTEN_FD_KIND, UDP_FD_KIND};
use kckpt_image::records::*;
use kckpt_image::tcp::TCP_CONN_FD_KIND;
use kckpt_image::unixsock::{
    messages, name_kind, peer_kind, sock_flags, unix_flags, UnixRecord, UNIX_LISTEN_FD_KIND,
    UNIX_SOCKET_FD_KIND,
};

use super::super::{fdsys, inet, tcp_repair, unixsave, unixsock};
use super::inflight::InFlight;
use super::{Class, Fd};
use crate::error::Result;

/// Classifies the socket at `fds[i]` (a `SOCKETPAIR` placeholder kind set
/// from its link), `copy` a `pidfd_getfd` copy of it: fills in its kind,
/// arguments, record and data, or marks it unsupported in `classes`.
/// Losses that `--skip-unsupported` would accept go to `lossy` (with
/// `true`: a loss named in a warning whatever the option); `flight`
/// numbers the descriptors in flight in a Unix socket's queue.
#[allow(clippy::too_many_arguments)]
pub(super) fn classify(
    fds: &mut [Fd],
    classes: &mut [Class],
    lossy: &mut Vec<(i32, String, bool)>,
    i: usize,
    pid: i32,
    tree_pids: &[i32],
    copy: OwnedFd,
    flight: &InFlight,
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
    // (1.9) UDP-Lite is UDP with a checksum coverage.
    let lite = proto == libc::IPPROTO_UDPLITE;
    // (1.9) An ICMP (ping) socket: a UDP record with its protocol.
    let ping = ty == libc::SOCK_DGRAM
        && (domain == libc::AF_INET && proto == libc::IPPROTO_ICMP
            || domain == libc::AF_INET6 && proto == libc::IPPROTO_ICMPV6);
    let udp = (proto == libc::IPPROTO_UDP || lite) && ty == libc::SOCK_DGRAM || ping;
    let what = if inet && (tcp || udp) {
        // (1.5) TCP listeners and UDP sockets.
        let outside = unixsock::outside_holder(ino, pid, tree_pids);
        // Sockets not bound (and TCP sockets a failed connect closed) are
        // in no table sock_diag reads.
        let diag = if ping {
            inet::ping_diag(pid, domain, ino)
        } else {
            inet::diag(domain, proto, ino)
        }
        .or_else(|| inet::unbound(&copy, tcp));
        // (1.6) Connections: neither listening nor closed.
        let conn = diag
            .as_ref()
            .filter(|d| tcp && outside.is_none() && !matches!(d.state, 7 | 10));
        if let Some(d) = conn {
            let what = match tcp_repair::record(&copy, d, ino, pid) {
                Ok(c) => {
                    fds[i].rec.kind = TCP_CONN_FD_KIND;
                    fds[i].rec.args = [u64::from(d.family), c.mode, 0, 0];
                    fds[i].path = c.path;
                    fds[i].data = c.data;
                    return Ok(());
                }
                Err(what) => what,
            };
            classes[i] = Class::Unsupported(what);
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
            return Ok(());
        }
        let got = match &diag {
            Some(_) if outside.is_some() => {
                let (p, comm) = outside.unwrap_or_default();
                Err(format!(
                    "{} also held by pid {p} ({comm}), outside the dump",
                    inet::noun(proto)
                ))
            }
            // Echo replies come from the network: none can be queued again.
            Some(d) if ping && d.rqueue > 0 => Err(format!(
                "ICMP (ping) socket with echo replies not read yet ({} bytes queued, not \
                 restored)",
                d.rqueue
            )),
            Some(d) => inet::record(&copy, proto, d),
            None => Err(format!("{} sock_diag does not report", inet::noun(proto))),
        };
        match got {
            Ok(saved) => {
                fds[i].rec.kind = if tcp {
                    INET_LISTEN_FD_KIND
                } else {
                    UDP_FD_KIND
                };
                // (1.9) UDP-Lite's and ICMP's protocol; UDP-Lite's coverage.
                let other = if lite || ping { proto as u64 } else { 0 };
                let cscov = if lite { inet::udplite_cscov(&copy) } else { 0 };
                fds[i].rec.args = [u64::from(saved.rec.family), other, cscov, 0];
                if let Some(what) = saved.lossy {
                    // (1.11) Connections waiting to be accepted: their
                    // clients get a reset. Named in a warning when no
                    // process of the dump is one; else refused (that
                    // client's connection would lead nowhere).
                    let listening = tcp && saved.rec.state == kckpt_image::inet::STATE_LISTEN;
                    let ours = if listening {
                        let dump = if tree_pids.is_empty() {
                            &[pid][..]
                        } else {
                            tree_pids
                        };
                        diag.as_ref()
                            .map(inet::pending_clients)
                            .and_then(|inodes| held_by(dump, &inodes))
                    } else {
                        None
                    };
                    match ours {
                        Some(p) if listening => lossy.push((
                            fds[i].rec.fd as i32,
                            format!("{what}, one of them from pid {p} of the dump"),
                            false,
                        )),
                        None if listening => lossy.push((
                            fds[i].rec.fd as i32,
                            format!("{what}, from outside the dump: their clients get a reset"),
                            true,
                        )),
                        _ => lossy.push((fds[i].rec.fd as i32, what, false)),
                    }
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
        if let Some(what) = peer_credentials_lost(&copy, pid, tree_pids) {
            lossy.push((fds[i].rec.fd as i32, what, false));
        }
        let diag = unixsock::diag(ino);
        if let Some(d) = diag.as_ref().filter(|d| unixsock::is_listener(d)) {
            let outside = unixsock::outside_holder(ino, pid, tree_pids);
            let got = match outside {
                Some((p, comm)) => Err(format!(
                    "listening unix socket also held by pid {p} ({comm}), \
                     outside the dump"
                )),
                None => {
                    let held: Vec<u64> = fds
                        .iter()
                        .filter(|f| f.ino != 0 && f.rec.dup_of == FD_NO_DUP)
                        .map(|f| f.ino)
                        .collect();
                    unixsock::listener(pid, &copy, d, &held, tree_pids)
                }
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
        // (1.6) Every other Unix socket: fd kind 45 (a plain socketpair
        // becomes kind 5 again in `finish_unix`).
        let Some(d) = diag else {
            classes[i] = Class::Unsupported("unix socket sock_diag does not report".into());
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
            return Ok(());
        };
        let peer = unix_peer(fds, i, &copy, &d, pid, tree_pids);
        if fds[i].rec.fd <= 2 && matches!(peer, unixsave::Peer::Outside(..)) {
            // fd 0-2 connected to another process (a journal stream, a
            // pipe-like socket from a supervisor): the restorer's own,
            // as for a pipe (`INHERITED`).
            classes[i] = Class::Unsupported("unix socket connected outside the process".into());
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
            return Ok(());
        }
        let pair = match peer {
            unixsave::Peer::Pair(fd) => fd,
            _ => FD_NO_DUP,
        };
        let shown = unixsave::describe(&d);
        let mut rights = |copies: Vec<OwnedFd>| -> std::result::Result<Vec<u32>, String> {
            copies
                .iter()
                .map(|c| {
                    flight.resolve(c.as_raw_fd()).ok_or_else(|| {
                        format!("{shown} with a descriptor in flight that appeared during the dump")
                    })
                })
                .collect()
        };
        let queued = flight.take_queue(fds[i].rec.fd);
        match unixsave::save(pid, &copy, &d, peer, queued, &mut rights) {
            Ok(saved) => {
                fds[i].rec.kind = UNIX_SOCKET_FD_KIND;
                fds[i].rec.args = [u64::from(d.ty), 0, 0, 0];
                fds[i].rec.peer = pair;
                fds[i].path = saved.path;
                fds[i].data = saved.data;
                if let Some(what) = saved.lost {
                    lossy.push((fds[i].rec.fd as i32, what, false));
                }
            }
            Err(what) => {
                classes[i] = Class::Unsupported(what);
                fds[i].rec.kind = fd_kind::PLACEHOLDER;
            }
        }
        return Ok(());
    } else {
        Some(other_family(domain, proto))
    };
    if let Some(what) = what {
        classes[i] = Class::Unsupported(what);
        fds[i].rec.kind = fd_kind::PLACEHOLDER;
        return Ok(());
    }
    Ok(())
}

/// Why the peer credentials (`SO_PEERCRED`) of Unix socket `sock` would
/// not come back: the restore creates each socket in the process of the
/// dump that made it, with that process's pid and effective ids, so a
/// socket whose credentials name a process outside the dump (a child that
/// made the pair and exited, a peer outside), or ids its maker no longer
/// has (made before a `setuid`), would report other ones. `None`: not
/// connected, or nothing lost.
fn peer_credentials_lost(sock: &OwnedFd, pid: i32, tree_pids: &[i32]) -> Option<String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred = getsockopt(sock, PeerCredentials).ok()?;
    let maker = cred.pid();
    if maker <= 0 {
        return None;
    }
    let (uid, gid) = (cred.uid(), cred.gid());
    let in_dump = maker == pid || tree_pids.contains(&maker);
    let ids = in_dump
        .then(|| super::super::procfs::effective_uid_gid(maker).ok())
        .flatten();
    if ids == Some((uid, gid)) {
        return None;
    }
    Some(format!(
        "unix socket with peer credentials (SO_PEERCRED) pid {maker} uid {uid} \
         gid {gid}{}; a restored socket reports those of the process that \
         re-creates it",
        if in_dump {
            ""
        } else {
            ", a process outside the dump"
        }
    ))
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

/// What the Unix socket at `fds[i]` (`sock_diag`: `d`) is connected to.
fn unix_peer(
    fds: &[Fd],
    i: usize,
    copy: &OwnedFd,
    d: &unixsock::UnixDiag,
    pid: i32,
    tree_pids: &[i32],
) -> unixsave::Peer {
    use nix::libc;
    use unixsave::Peer;
    let ino = fds[i].ino;
    if d.peer == 0 {
        if d.state != unixsave::ESTABLISHED {
            return Peer::None;
        }
        // A released peer has no inode any more. A stream or seqpacket
        // socket learns it (both directions shut down); one with no
        // shutdown is connected to a connection a listener has not
        // accepted yet (it has no inode either). A datagram socket is
        // "established" also when another one connected to it: it still
        // has a (dead) peer only if getpeername answers.
        let dgram = i32::from(d.ty) == libc::SOCK_DGRAM;
        if !dgram && d.shutdown & 3 != 3 {
            // (1.7) A connection a listener of the process (or, in a
            // tree, one restored by this process) has not accepted yet.
            let candidates: Vec<(u32, u64)> = fds
                .iter()
                .filter(|f| {
                    f.ino != 0
                        && f.ino != ino
                        && f.rec.dup_of == FD_NO_DUP
                        && matches!(
                            f.rec.kind,
                            fd_kind::SOCKETPAIR | UNIX_LISTEN_FD_KIND | fd_kind::PLACEHOLDER
                        )
                })
                .map(|f| (f.rec.fd, f.ino))
                .collect();
            if let Some((l, pos)) = unixsock::pending_on(ino, &candidates) {
                return Peer::Pending(l, pos);
            }
        }
        let gone = if dgram {
            let connected = nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(
                copy.as_raw_fd(),
            )
            .is_ok();
            if !connected {
                return Peer::None;
            }
            true
        } else {
            d.shutdown & 3 == 3
        };
        return if gone {
            Peer::Gone
        } else {
            Peer::Outside(None, None)
        };
    }
    if d.peer == ino {
        // A datagram socket connected to itself (zdtm sockets_dgram):
        // connected again to its own name.
        return Peer::Name(d.name.clone(), None);
    }
    let pd = unixsock::diag(d.peer);
    let here = fds.iter().enumerate().position(|(k, f)| {
        k != i
            && f.ino == d.peer
            && f.rec.dup_of == FD_NO_DUP
            && matches!(
                f.rec.kind,
                fd_kind::SOCKETPAIR | UNIX_SOCKET_FD_KIND | fd_kind::PLACEHOLDER
            )
    });
    match here {
        Some(j) if pd.as_ref().is_some_and(|p| p.peer == ino) => Peer::Pair(fds[j].rec.fd),
        Some(j) => Peer::Name(pd.and_then(|p| p.name), Some(fds[j].rec.fd)),
        None => {
            let name = pd.and_then(|p| p.name);
            match unixsock::outside_holder(d.peer, pid, tree_pids) {
                Some(h) => Peer::Outside(name, Some(h)),
                // Another process of the dump holds it (a pair across
                // processes is not restored as a pair yet).
                None => match unixsock::tree_holder(d.peer, pid, tree_pids) {
                    Some(p) => Peer::InTree(name, p),
                    None => Peer::Outside(name, None),
                },
            }
        }
    }
}

/// After every descriptor is classified: a kind-45 pair end whose other
/// end is refused is refused too; a pair of plain ends (stream, no name,
/// option or shutdown) is a `SOCKETPAIR` as before 1.6; an end bound to
/// the name of a listener the process holds is marked as accepted on it
/// (restored by a connection to that listener).
pub(super) fn finish_unix(fds: &mut [Fd], classes: &mut [Class]) {
    let is45 = |f: &Fd| f.rec.kind == UNIX_SOCKET_FD_KIND && f.rec.dup_of == FD_NO_DUP;
    let pair_of = |fds: &[Fd], i: usize| -> Option<usize> {
        let r = UnixRecord::parse(&fds[i].path)?;
        if r.peer_kind != peer_kind::PAIR {
            return None;
        }
        Some(
            fds.iter()
                .position(|f| f.rec.fd == fds[i].rec.peer)
                .unwrap_or(usize::MAX),
        )
    };
    // A datagram socket connected to a refused socket of the process.
    for _ in 0..2 {
        for i in 0..fds.len() {
            let target = if is45(&fds[i]) {
                UnixRecord::parse(&fds[i].path).map_or(0, |r| r.target)
            } else {
                0
            };
            if target != 0 && !fds.iter().any(|f| f.rec.fd == target - 1 && is45(f)) {
                classes[i] = Class::Unsupported(
                    "unix socket connected to a socket of the process that is unsupported".into(),
                );
                fds[i].rec.kind = fd_kind::PLACEHOLDER;
                fds[i].data.clear();
            }
        }
    }
    // (1.7) A client waiting on a listener that is refused.
    for i in 0..fds.len() {
        let Some(r) = Some(&fds[i])
            .filter(|f| is45(f))
            .and_then(|f| UnixRecord::parse(&f.path))
            .filter(|r| r.peer_kind == peer_kind::PENDING)
        else {
            continue;
        };
        let l = r.listener;
        let listening = fds.iter().any(|f| {
            f.rec.fd == l && f.rec.kind == UNIX_LISTEN_FD_KIND && f.rec.dup_of == FD_NO_DUP
        });
        if !listening {
            classes[i] = Class::Unsupported(format!(
                "unix socket waiting to be accepted on fd {l}, which is unsupported"
            ));
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
            fds[i].data.clear();
        }
    }
    for i in 0..fds.len() {
        if !is45(&fds[i]) {
            continue;
        }
        let Some(j) = pair_of(fds, i) else { continue };
        let ok = fds
            .get(j)
            .is_some_and(|o| is45(o) && o.rec.peer == fds[i].rec.fd);
        if !ok {
            classes[i] = Class::Unsupported("unix socket whose other end is unsupported".into());
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
            fds[i].rec.peer = FD_NO_DUP;
            fds[i].data.clear();
        }
    }
    for i in 0..fds.len() {
        if !is45(&fds[i]) {
            continue;
        }
        let Some(j) = pair_of(fds, i).filter(|&j| j > i && j < fds.len()) else {
            continue;
        };
        let (a, b) = (fds[i].path.clone(), fds[j].path.clone());
        let (Some(ra), Some(rb)) = (UnixRecord::parse(&a), UnixRecord::parse(&b)) else {
            continue;
        };
        if ra.plain() && rb.plain() {
            for k in [i, j] {
                let bytes: Vec<u8> = messages(&fds[k].data)
                    .flatten()
                    .flat_map(|m| m.payload.iter().copied())
                    .collect();
                fds[k].rec.kind = fd_kind::SOCKETPAIR;
                fds[k].rec.args = [u64::from(ra.ty), 0, 0, 0];
                fds[k].path.clear();
                fds[k].data = bytes;
            }
            continue;
        }
        for (k, r) in [(i, ra), (j, rb)] {
            if r.name_kind == name_kind::NONE {
                continue;
            }
            let listener = fds.iter().find(|f| {
                let flags = f.rec.args[0] >> 32;
                let want_abstract = r.name_kind == name_kind::ABSTRACT;
                f.rec.kind == UNIX_LISTEN_FD_KIND
                    && f.rec.dup_of == FD_NO_DUP
                    && f.path == r.name
                    && f.rec.args[0] & 0xffff_ffff == u64::from(r.ty)
                    && (flags & (unix_flags::ABSTRACT >> 32) != 0) == want_abstract
                    && flags & ((unix_flags::DETACHED | unix_flags::RELATIVE) >> 32) == 0
            });
            if let Some(l) = listener.map(|l| l.rec.fd) {
                let mut r = r.clone();
                r.flags |= sock_flags::ACCEPTED;
                r.listener = l;
                fds[k].path = r.encode().bytes().to_vec();
                break;
            }
        }
    }
}

/// (1.7) Every descriptor in flight in a kind-45 socket's queue must exist
/// when the stub sends the queue again: not a TCP connection, another
/// open file description of a pipe (`REOPEN`) nor a pidfd of another
/// process of the tree, all made after the queues; a socket whose peer closed sends its queue as it is made, so a
/// Unix socket in flight there whose own peer closed too must come before
/// it. The socket is refused otherwise, naming what is in flight.
pub(super) fn check_in_flight(fds: &mut [Fd], classes: &mut [Class]) {
    let is45 = |f: &Fd| f.rec.kind == UNIX_SOCKET_FD_KIND && f.rec.dup_of == FD_NO_DUP;
    let gone = |f: &Fd| {
        is45(f) && UnixRecord::parse(&f.path).is_some_and(|r| r.peer_kind == peer_kind::GONE)
    };
    for i in 0..fds.len() {
        if !is45(&fds[i]) {
            continue;
        }
        let mut why = None;
        for m in messages(&fds[i].data).flatten() {
            for n in m.rights() {
                let Some(o) = fds.iter().find(|f| f.rec.fd == n) else {
                    why = Some("a descriptor kckpt did not save".to_owned());
                    break;
                };
                let tree_pidfd = o.rec.kind == kckpt_image::self_fd_kind::PIDFD
                    && o.rec.args[0] == kckpt_image::selffd::pidfd_target::TREE;
                why = match o.rec.kind {
                    TCP_CONN_FD_KIND => Some("a TCP connection".to_owned()),
                    _ if tree_pidfd => Some("a pidfd of another process of the tree".to_owned()),
                    fd_kind::REOPEN => {
                        Some("another open file description of a pipe or memfd".to_owned())
                    }
                    _ if gone(&fds[i]) && gone(o) && n > fds[i].rec.fd => {
                        Some("a unix socket whose peer closed too, restored after it".to_owned())
                    }
                    _ => None,
                };
                if why.is_some() {
                    break;
                }
            }
            if why.is_some() {
                break;
            }
        }
        if let Some(what) = why {
            let shown = UnixRecord::parse(&fds[i].path)
                .map(|r| {
                    let ty = unixsave::type_name(r.ty as u8);
                    format!("unix {ty} socket")
                })
                .unwrap_or_else(|| "unix socket".to_owned());
            classes[i] = Class::Unsupported(format!(
                "{shown} with {what} in flight in its queue (SCM_RIGHTS; not restored)"
            ));
            fds[i].rec.kind = fd_kind::PLACEHOLDER;
            fds[i].rec.peer = FD_NO_DUP;
            fds[i].data.clear();
        }
    }
}

/// The first of `pids` that holds a socket of `inodes` (a
/// `socket:[INODE]` descriptor).
fn held_by(pids: &[i32], inodes: &[u64]) -> Option<i32> {
    if inodes.is_empty() {
        return None;
    }
    pids.iter().copied().find(|p| {
        std::fs::read_dir(format!("/proc/{p}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .any(|l| {
                let l = l.to_string_lossy();
                l.strip_prefix("socket:[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| inodes.contains(&n))
            })
    })
}
