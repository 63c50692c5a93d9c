//! The file-descriptor part of `kckpt info` (format 1.1 notes).

use serde_json::{json, Value};

use kckpt_image::ghosts::{extents_of, ghost_fd_kind, S_IFDIR, S_IFMT};
use kckpt_image::inet::{InetRecord, INET_LISTEN_FD_KIND, UDP_FD_KIND};
use kckpt_image::records::*;
use kckpt_image::tcp::TCP_CONN_FD_KIND;
use kckpt_image::unixsock::{UnixRecord, UNIX_LISTEN_FD_KIND, UNIX_SOCKET_FD_KIND};
use kckpt_image::{ghost_flags, lock_kind, special_fd_kind, ImageView};

use crate::info::Show;

fn kind_name(kind: u32) -> &'static str {
    match kind {
        fd_kind::INHERITED => "inherited",
        fd_kind::FILE => "file",
        fd_kind::PATH => "path",
        fd_kind::PIPE => "pipe",
        fd_kind::SOCKETPAIR => "socketpair",
        fd_kind::MEMFD => "memfd",
        fd_kind::EVENTFD => "eventfd",
        fd_kind::EPOLL => "epoll",
        fd_kind::TIMERFD => "timerfd",
        fd_kind::SIGNALFD => "signalfd",
        fd_kind::PLACEHOLDER => "/dev/null (unsupported)",
        fd_kind::TERMINAL => "terminal",
        fd_kind::CTTY => "ctty",
        fd_kind::REOPEN => "reopen",
        ghost_fd_kind::GHOST => "deleted",
        ghost_fd_kind::PROCFS => "procfs",
        ghost_fd_kind::SHMEM => "shmem",
        kckpt_image::inotify::INOTIFY_FD_KIND => "inotify",
        special_fd_kind::FIFO => "named pipe",
        special_fd_kind::DEVICE => "device",
        special_fd_kind::SYMLINK => "symlink",
        kckpt_image::self_fd_kind::PIDFD => "pidfd of itself",
        kckpt_image::self_fd_kind::NSFD => "own namespace",
        kckpt_image::tree::TREE_SHARED_FD_KIND => "tree shared",
        kckpt_image::external::EXTERNAL_FD_KIND => "external",
        UNIX_LISTEN_FD_KIND => "unix listen",
        INET_LISTEN_FD_KIND => "tcp",
        UDP_FD_KIND => "udp",
        TCP_CONN_FD_KIND => "tcp connection",
        UNIX_SOCKET_FD_KIND => "unix socket",
        _ => "?",
    }
}

/// Whose procfs file a `PROCFS` record is (`args[0]`, format 1.8/1.9).
fn procfs_of_json(args: [u64; 4]) -> Value {
    use kckpt_image::ghosts::procfs_of;
    match args[0] {
        procfs_of::TREE => json!({"whose": "tree", "pid": args[1]}),
        procfs_of::OUTSIDE => json!({"whose": "outside", "pid": args[1], "start": args[2]}),
        _ => json!({"whose": "own"}),
    }
}

/// A listening Unix socket's values (fd kind 41) for `--json`.
fn listen_json(a: [u64; 4]) -> Value {
    use kckpt_image::unixsock::{unix_flags, unix_opts, MODE_RECORDED};
    let mut options = Vec::new();
    if a[2] & unix_opts::PASSCRED != 0 {
        options.push("SO_PASSCRED");
    }
    if a[2] & unix_opts::PASSSEC != 0 {
        options.push("SO_PASSSEC");
    }
    json!({
        "type": if a[0] & 0xffff_ffff == 5 { "seqpacket" } else { "stream" },
        "abstract": a[0] & unix_flags::ABSTRACT != 0,
        "detached": a[0] & unix_flags::DETACHED != 0,
        "backlog": a[1],
        "options": options,
        "mode": (a[3] & MODE_RECORDED != 0).then(|| format!("{:o}", a[3] & 0o7777)),
    })
}

/// A TCP or UDP socket's values (fd kinds 42, 43; `args` the record's:
/// (1.9) a UDP-Lite or ICMP socket's protocol and coverage); `data_len`
/// its data's (queued datagrams with their headers).
fn inet_json(kind: u32, args: [u64; 4], path: &[u8], data_len: u64) -> Value {
    use kckpt_image::inet::{inet_opts as o, AF_INET, DATAGRAM_HEADER_LEN, STATE_ESTABLISHED};
    use kckpt_image::inet::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDPLITE};
    use kckpt_image::inet::{STATE_CLOSE, STATE_LISTEN};
    let Some(x) = InetRecord::parse(kind, path) else {
        return Value::Null;
    };
    let addr = |a: &[u8; 16], port: u16| {
        if x.family == AF_INET {
            format!("{}:{port}", std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            format!("[{}]:{port}", std::net::Ipv6Addr::from(*a))
        }
    };
    let names = [
        (o::REUSEADDR, "SO_REUSEADDR"),
        (o::REUSEPORT, "SO_REUSEPORT"),
        (o::KEEPALIVE, "SO_KEEPALIVE"),
        (o::NODELAY, "TCP_NODELAY"),
        (
            o::CORK,
            if kind == UDP_FD_KIND {
                "UDP_CORK"
            } else {
                "TCP_CORK"
            },
        ),
        (o::V6ONLY, "IPV6_V6ONLY"),
        (o::BROADCAST, "SO_BROADCAST"),
        (o::PASSCRED, "SO_PASSCRED"),
        (o::LINGER, "SO_LINGER"),
        (o::TOS, "IP_TOS"),
        (o::TTL, "IP_TTL"),
        (o::PRIORITY, "SO_PRIORITY"),
        (o::TCLASS, "IPV6_TCLASS"),
        (o::HOPS, "IPV6_UNICAST_HOPS"),
        (o::BINDTODEVICE, "SO_BINDTODEVICE"),
        (o::OOBINLINE, "SO_OOBINLINE"),
        (o::DONTROUTE, "SO_DONTROUTE"),
        (o::NO_CHECK, "SO_NO_CHECK"),
        (o::FREEBIND, "IP_FREEBIND"),
        (o::PKTINFO, "IP_PKTINFO"),
        (o::RECVPKTINFO, "IPV6_RECVPKTINFO"),
        (o::RCVLOWAT, "SO_RCVLOWAT"),
        (o::MARK, "SO_MARK"),
    ];
    let options: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| x.opts & bit != 0)
        .map(|&(_, n)| n)
        .collect();
    let tcp = kind != UDP_FD_KIND;
    let nz = |v: u32| (v != 0).then_some(v);
    let nz64 = |v: u64| (v != 0).then_some(v);
    let set = |bit: u32, v: u32| (x.opts & bit != 0).then_some(v);
    let headers = u64::from(x.datagrams) * DATAGRAM_HEADER_LEN as u64;
    let device = x
        .device
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| char::from(c));
    let udp_proto = if kind == UDP_FD_KIND { args[1] } else { 0 };
    let mut v = json!({
        "family": if x.family == AF_INET { "ipv4" } else { "ipv6" },
        "type": match udp_proto {
            _ if tcp => "tcp",
            IPPROTO_UDPLITE => "udplite",
            IPPROTO_ICMP | IPPROTO_ICMPV6 => "icmp",
            _ => "udp",
        },
        "state": match x.state {
            STATE_LISTEN => "listen",
            s if kind == TCP_CONN_FD_KIND => crate::dump::inet::state_name(s as u8),
            STATE_ESTABLISHED => "connected",
            STATE_CLOSE if x.local_port != 0 => "bound",
            _ => "unbound",
        },
        "local": (x.local_port != 0).then(|| addr(&x.local, x.local_port)),
        "peer": (x.state == STATE_ESTABLISHED || kind == TCP_CONN_FD_KIND)
            .then(|| addr(&x.peer, x.peer_port)),
        "backlog": (x.state == STATE_LISTEN).then_some(x.backlog),
        "queued_lost": x.lost,
        "queued_datagrams": (!tcp).then_some(x.datagrams),
        "queued_bytes": data_len.saturating_sub(headers),
        "options": options,
        "linger_secs": (x.opts & o::LINGER != 0).then_some(x.linger),
        "keepidle": nz(x.keepidle),
        "keepintvl": nz(x.keepintvl),
        "keepcnt": nz(x.keepcnt),
        "rcvbuf": nz(x.rcvbuf),
        "sndbuf": nz(x.sndbuf),
        "rcvtimeo_us": nz64(x.rcvtimeo),
        "sndtimeo_us": nz64(x.sndtimeo),
        "tos": set(o::TOS, x.tos.into()),
        "ttl": set(o::TTL, x.ttl.into()),
        "priority": set(o::PRIORITY, x.priority),
        "tclass": set(o::TCLASS, x.tclass.into()),
        "hops": set(o::HOPS, x.hops.into()),
        "rcvlowat": set(o::RCVLOWAT, x.rcvlowat),
        "mark": set(o::MARK, x.mark),
        "device": (x.opts & o::BINDTODEVICE != 0).then(|| device.collect::<String>()),
    });
    if udp_proto == IPPROTO_UDPLITE {
        let (send, recv) = kckpt_image::inet::udplite_cscov(args);
        v["udplite_cscov"] = json!({"send": send, "recv": recv});
    }
    v
}

/// An established TCP connection's values (fd kind 44): those of its
/// `InetRecord`, how it is restored, and its repair state.
fn tcp_json(args: [u64; 4], path: &[u8]) -> Value {
    use kckpt_image::tcp::{conn_mode, tcp_opts as o};
    let Some((_, t)) = kckpt_image::tcp::parse(args[1], path) else {
        return Value::Null;
    };
    let mut v = inet_json(
        TCP_CONN_FD_KIND,
        args,
        &path[..kckpt_image::inet::INET_RECORD_LEN],
        0,
    );
    let repair = args[1] == conn_mode::REPAIR;
    let extra = json!({
        "restored": if repair { "tcp repair" } else { "reset (--tcp-close)" },
        "queued_to_read": t.inq_len,
        "queued_to_send": t.outq_len,
        "not_sent": t.unsent_len,
        "mss": repair.then_some(t.mss),
        "sack": t.options & o::SACK != 0,
        "timestamps": t.options & o::TIMESTAMPS != 0,
        "wscale": (t.options & o::WSCALE != 0).then(|| json!([t.snd_wscale, t.rcv_wscale])),
    });
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

/// A Unix socket's values (fd kind 45) for `--json`.
fn unix_json(path: &[u8], peer_fd: u32, data_len: u64) -> Value {
    use kckpt_image::unixsock::{name_kind, peer_kind, shut, sock_flags as f};
    let Some(x) = UnixRecord::parse(path) else {
        return Value::Null;
    };
    let name = |kind: u8, n: &[u8]| match kind {
        name_kind::NONE => None,
        name_kind::ABSTRACT => Some(format!("@{}", String::from_utf8_lossy(n))),
        _ => Some(String::from_utf8_lossy(n).into_owned()),
    };
    let mut options = Vec::new();
    if x.flags & f::PASSCRED != 0 {
        options.push("SO_PASSCRED");
    }
    if x.flags & f::PASSSEC != 0 {
        options.push("SO_PASSSEC");
    }
    if x.flags & f::REUSEADDR != 0 {
        options.push("SO_REUSEADDR");
    }
    let nz = |v: u32| (v != 0).then_some(v);
    let nz64 = |v: u64| (v != 0).then_some(v);
    let peer_kind_n = if x.peer_abstract {
        name_kind::ABSTRACT
    } else {
        name_kind::PATH
    };
    json!({
        "family": "unix",
        "type": match x.ty { 1 => "stream", 2 => "datagram", _ => "seqpacket" },
        "name": name(x.name_kind, x.name),
        "detached": x.flags & f::DETACHED != 0,
        "state": match x.peer_kind {
            peer_kind::PAIR => "connected",
            peer_kind::NAME => "connected",
            peer_kind::GONE => "peer closed",
            peer_kind::PENDING => "waiting to be accepted",
            _ if x.name_kind != name_kind::NONE => "bound",
            _ => "unconnected",
        },
        "peer_fd": (x.peer_kind == peer_kind::PAIR).then_some(peer_fd),
        "peer": (x.peer_kind == peer_kind::NAME).then(|| name(peer_kind_n, x.peer_name)),
        "peer_outside": x.flags & f::OUTSIDE != 0,
        "accepted_on_fd": (x.flags & f::ACCEPTED != 0).then_some(x.listener),
        "waiting_on_fd": (x.peer_kind == peer_kind::PENDING).then_some(x.listener),
        "backlog_place": (x.peer_kind == peer_kind::PENDING).then_some(x.queue_pos),
        "shutdown": match x.shutdown { 0 => None, shut::RCV => Some("read"),
            shut::SEND => Some("write"), _ => Some("both") },
        "queued_messages": x.messages,
        "queued_bytes": data_len,
        "in_flight": x.in_flight,
        "options": options,
        "rcvbuf": nz(x.rcvbuf),
        "sndbuf": nz(x.sndbuf),
        "rcvtimeo_us": nz64(x.rcvtimeo),
        "sndtimeo_us": nz64(x.sndtimeo),
        "peek_off": (x.peek_off >= 0).then_some(x.peek_off),
    })
}

/// One line for a Unix socket of kind 45 (`path` of `kckpt info`).
fn unix_text(v: &Value) -> String {
    let mut s = format!(
        "unix {} {}",
        v["type"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?")
    );
    if let Some(n) = v["name"].as_str() {
        s += &format!(" {n}");
    }
    if let Some(p) = v["peer_fd"].as_u64() {
        s += &format!(" <-> fd {p}");
    }
    if let Some(p) = v["peer"].as_str() {
        s += &format!(" -> {p}");
    }
    if let Some(l) = v["waiting_on_fd"].as_u64() {
        s += &format!(" on fd {l} (place {} of its backlog)", v["backlog_place"]);
    }
    if let Some(sh) = v["shutdown"].as_str() {
        s += &format!(" shut down for {sh}");
    }
    s += &format!(" queued {} message(s)", v["queued_messages"]);
    match v["in_flight"].as_u64().unwrap_or(0) {
        0 => {}
        1 => s += ", 1 descriptor in flight",
        n => s += &format!(", {n} descriptors in flight"),
    }
    s
}

/// The `socket` values of a socket of another kind than 42 and 43, null
/// for what is not a socket: one arm per kind (the kinds other sessions
/// add fill in theirs).
fn socket_json(r: kckpt_image::FdRecord) -> Value {
    let unix_type = |t: u64| match t & 0xffff_ffff {
        1 => "stream",
        2 => "dgram",
        5 => "seqpacket",
        _ => "?",
    };
    match r.kind {
        UNIX_LISTEN_FD_KIND => json!({
            "family": "unix",
            "type": unix_type(r.args[0]),
            "state": "listen",
            "backlog": r.args[1],
            "queued_bytes": 0,
        }),
        fd_kind::SOCKETPAIR => json!({
            "family": "unix",
            "type": unix_type(r.args[0]),
            "state": "connected",
            "peer_fd": (r.peer != FD_NO_DUP).then_some(r.peer),
            "queued_bytes": r.data_len,
        }),
        _ => Value::Null,
    }
}

/// One line for a TCP listener or UDP socket (`path` of `kckpt info`).
fn inet_text(v: &Value) -> String {
    let mut s = format!(
        "{} {} {}",
        v["family"].as_str().unwrap_or("?"),
        v["type"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?")
    );
    if let Some(l) = v["local"].as_str() {
        s += &format!(" {l}");
    }
    if let Some(p) = v["peer"].as_str() {
        s += &format!(" -> {p}");
    }
    if let Some(b) = v["backlog"].as_u64().filter(|_| v["state"] == "listen") {
        s += &format!(" backlog {b}");
    }
    match (v["queued_datagrams"].as_u64(), v["queued_to_read"].as_u64()) {
        (Some(n), _) => s += &format!(" queued {n} datagram(s), {} bytes", v["queued_bytes"]),
        (None, Some(r)) => {
            s += &format!(
                " queued {r} bytes to read, {} to send ({})",
                v["queued_to_send"],
                v["restored"].as_str().unwrap_or("?")
            )
        }
        (None, None) => s += " queued 0",
    }
    if v["queued_lost"].as_u64().unwrap_or(0) != 0 {
        s += &format!(" (lost at dump: {})", v["queued_lost"]);
    }
    let opts: Vec<&str> = v["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !opts.is_empty() {
        s += &format!(" options {}", opts.join(","));
    }
    s
}

/// `{"cwd", "umask", "fds": [...]}`, or null for a format 1.0 image;
/// strings as `show` says.
pub fn describe(view: &ImageView<'_>, show: Show) -> Value {
    let Some(fs) = view.fs else {
        return Value::Null;
    };
    let text = |r| show.str(view.string(r).unwrap_or(&[]));
    let fds: Vec<Value> = view
        .fds
        .iter()
        .map(|r| {
            let inet = matches!(r.kind, INET_LISTEN_FD_KIND | UDP_FD_KIND | TCP_CONN_FD_KIND)
                && r.dup_of == FD_NO_DUP;
            let unix = r.kind == UNIX_SOCKET_FD_KIND && r.dup_of == FD_NO_DUP;
            let raw = view.string(r.path).unwrap_or(&[]);
            let socket = if r.kind == TCP_CONN_FD_KIND && inet {
                tcp_json(r.args, raw)
            } else if inet {
                inet_json(r.kind, r.args, raw, r.data_len)
            } else if unix {
                unix_json(raw, r.peer, r.data_len)
            } else if r.dup_of == FD_NO_DUP {
                socket_json(r)
            } else {
                Value::Null
            };
            json!({
                "fd": r.fd,
                "kind": kind_name(r.kind),
                "path": if inet {
                    inet_text(&socket)
                } else if unix {
                    unix_text(&socket)
                } else {
                    text(r.path)
                },
                "socket": socket,
                "flags": format!("{:o}", r.flags),
                "cloexec": r.fd_flags & fd_flags::CLOEXEC != 0,
                "tree_only": r.fd_flags & fd_flags::TREE_ONLY != 0,
                "pos": r.pos,
                "dup_of": (r.dup_of != FD_NO_DUP).then_some(r.dup_of),
                "peer": (r.peer != FD_NO_DUP).then_some(r.peer),
                "other_end_closed": r.kind == fd_kind::PIPE
                    && r.dup_of == FD_NO_DUP
                    && r.peer == FD_NO_DUP,
                "data_bytes": r.data_len,
                "reopens": (r.kind == fd_kind::REOPEN).then_some(r.args[0]),
                "deleted": r.fd_flags & fd_flags::DELETED != 0,
                "in_flight": r.fd_flags & fd_flags::IN_FLIGHT != 0,
                "device": (r.kind == special_fd_kind::DEVICE)
                    .then(|| format!("{}:{}", r.args[0], r.args[1])),
                "slot": (r.kind == kckpt_image::tree::TREE_SHARED_FD_KIND).then_some(r.args[0]),
                "external_key": (r.kind == kckpt_image::external::EXTERNAL_FD_KIND)
                    .then(|| text(r.path)),
                "listen": (r.kind == UNIX_LISTEN_FD_KIND && r.dup_of == FD_NO_DUP)
                    .then(|| listen_json(r.args)),
                "procfs_of": (r.kind == ghost_fd_kind::PROCFS).then(|| procfs_of_json(r.args)),
            })
        })
        .collect();
    let ghosts: Vec<Value> = view
        .ghosts
        .iter()
        .map(|g| {
            let stored: u64 = extents_of(view, &g).map(|e| e.len).sum();
            json!({
                "path": text(g.path),
                "kind": if g.mode & S_IFMT == S_IFDIR { "directory" } else { "file" },
                "deleted": g.flags & ghost_flags::DELETED != 0,
                "cwd": g.flags & ghost_flags::CWD != 0,
                "mode": format!("{:o}", g.mode & 0o7777),
                "size": g.size,
                "stored_bytes": stored,
            })
        })
        .collect();
    let locks: Vec<Value> = view
        .locks
        .iter()
        .map(|l| {
            json!({
                "fd": l.fd,
                "kind": match l.kind {
                    lock_kind::FLOCK => "flock",
                    lock_kind::POSIX => "posix",
                    lock_kind::LEASE => "lease",
                    _ => "ofd",
                },
                "type": if l.lock_type == 0 { "read" } else { "write" },
                "breaking": match l.lease_break {
                    kckpt_image::locks::lease_break::TO_READ => Some("to read"),
                    kckpt_image::locks::lease_break::TO_NONE => Some("to none"),
                    _ => None,
                },
                "start": l.start,
                "len": l.len,
            })
        })
        .collect();
    let owners: Vec<Value> = view
        .fowners
        .iter()
        .map(|o| {
            json!({
                "fd": o.fd,
                "owner_type": match o.owner_type {
                    kckpt_image::owner_type::TID => "thread",
                    kckpt_image::owner_type::PGRP => "process group",
                    _ => "process",
                },
                "owner": o.owner,
                "signal": o.signal,
            })
        })
        .collect();
    json!({
        "cwd": text(fs.cwd),
        "root": (fs.root.len != 0).then(|| text(fs.root)),
        "umask": format!("{:03o}", fs.umask),
        "fds": fds,
        "epoll_items": view.epoll.len(),
        "stdio": stdio(view, show),
        "terminals": terminals(view),
        "job": view.job.map(|j| json!({
            "pid": j.pid,
            "pgid": j.pgid,
            "sid": j.sid,
            "foreground": j.foreground(),
            "tty_nr": j.tty_nr,
        })),
        "saved_files": ghosts,
        "locks": locks,
        "socket_filters": view.sock_filters.iter().map(|f| json!({
            "fd": f.fd,
            "instructions": f.count,
            "locked": f.flags & kckpt_image::sockfilter::filter_flags::LOCKED != 0,
        })).collect::<Vec<_>>(),
        "file_owners": owners,
        "inotify_watches": inotify(view, show),
    })
}

/// `[{"fd", "wd", "mask", "path", "by_fd"}]`: the inotify watches.
fn inotify(view: &ImageView<'_>, show: Show) -> Value {
    use kckpt_image::inotify::watch_flags;
    view.inotify
        .iter()
        .map(|w| {
            json!({
                "fd": w.fd,
                "wd": w.wd,
                "mask": format!("{:#x}", w.mask),
                "path": show.str(view.string(w.path).unwrap_or(&[])),
                "by_fd": (w.flags & watch_flags::BY_FD != 0).then_some(w.target_fd),
            })
        })
        .collect()
}

/// What each of fds 0-2 was and where the restore takes it from:
/// `[{"fd", "was", "restore"}]`.
fn stdio(view: &ImageView<'_>, show: Show) -> Value {
    let text = |r| show.str(view.string(r).unwrap_or(&[]));
    let list: Vec<Value> = (0..3u32)
        .map(|fd| {
            let Some(r) = kckpt_image::files::find_fd(view, fd) else {
                return json!({"fd": fd, "was": "closed", "restore": "closed"});
            };
            let (was, restore) = match r.kind {
                fd_kind::INHERITED | fd_kind::TERMINAL if r.dup_of != FD_NO_DUP => (
                    format!("fd {}'s open file", r.dup_of),
                    format!("a dup of fd {}", r.dup_of),
                ),
                fd_kind::INHERITED => {
                    let what = text(r.path);
                    (
                        if what.is_empty() {
                            "not recorded (an image older than format 1.3)".to_owned()
                        } else {
                            what
                        },
                        "the caller's".to_owned(),
                    )
                }
                fd_kind::TERMINAL => (
                    format!("terminal {}", text(r.path)),
                    "the caller's, with the saved terminal mode; --stdio=saved: reopened"
                        .to_owned(),
                ),
                fd_kind::FILE | fd_kind::PATH if r.dup_of != FD_NO_DUP => (
                    format!("{} (fd {}'s open file)", text(r.path), r.dup_of),
                    format!("a dup of fd {}; --stdio=inherit: the caller's", r.dup_of),
                ),
                fd_kind::FILE => (
                    format!("file {} at offset {}", text(r.path), r.pos),
                    "reopened from the image; --stdio=inherit: the caller's".to_owned(),
                ),
                fd_kind::PATH => (
                    text(r.path),
                    "reopened from the image; --stdio=inherit: the caller's".to_owned(),
                ),
                kckpt_image::tree::TREE_SHARED_FD_KIND => (
                    format!(
                        "shared with other processes of the tree (slot {})",
                        r.args[0]
                    ),
                    "the tree's shared description; refused when restored alone".to_owned(),
                ),
                kckpt_image::external::EXTERNAL_FD_KIND => (
                    format!("external {}", text(r.path)),
                    format!("the caller's fd named by --inherit-fd {}=N", text(r.path)),
                ),
                kind => (
                    kind_name(kind).to_owned(),
                    "rebuilt from the image".to_owned(),
                ),
            };
            json!({"fd": fd, "was": was, "restore": restore})
        })
        .collect();
    Value::Array(list)
}

/// The saved terminal modes: `[{"fd", "rows", "cols", "raw", "echo", ...}]`.
fn terminals(view: &ImageView<'_>) -> Value {
    use kckpt_image::terminal::terminal_flags;
    const ICANON: u32 = 0o2;
    const ECHO: u32 = 0o10;
    let list: Vec<Value> = view
        .terminals
        .iter()
        .map(|t| {
            json!({
                "fd": t.fd,
                "rows": t.winsize[0],
                "cols": t.winsize[1],
                "canonical": t.lflag & ICANON != 0,
                "echo": t.lflag & ECHO != 0,
                "controlling": t.flags & terminal_flags::CTTY != 0,
                "lflag": format!("{:o}", t.lflag),
                "iflag": format!("{:o}", t.iflag),
            })
        })
        .collect();
    Value::Array(list)
}

/// Text lines for [`describe`]'s value.
pub fn format_text(out: &mut String, d: &Value) {
    use std::fmt::Write as _;
    if d.is_null() {
        return;
    }
    let _ = writeln!(
        out,
        "cwd:            {} (umask {})",
        d["cwd"].as_str().unwrap_or(""),
        d["umask"].as_str().unwrap_or("")
    );
    if let Some(root) = d["root"].as_str() {
        let _ = writeln!(out, "root:           {root} (chroot)");
    }
    let names = ["stdin:", "stdout:", "stderr:"];
    for s in d["stdio"].as_array().into_iter().flatten() {
        let fd = s["fd"].as_u64().unwrap_or(0) as usize;
        let _ = writeln!(
            out,
            "{:<15} {} ({})",
            names.get(fd).unwrap_or(&"?"),
            s["was"].as_str().unwrap_or(""),
            s["restore"].as_str().unwrap_or("")
        );
    }
    for t in d["terminals"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "terminal:       fd {} {}x{}, {}{}{}",
            t["fd"],
            t["cols"],
            t["rows"],
            if t["canonical"] == true {
                "line mode"
            } else {
                "raw (-icanon)"
            },
            if t["echo"] == true {
                ", echo"
            } else {
                ", -echo"
            },
            if t["controlling"] == true {
                ", controlling terminal"
            } else {
                ""
            },
        );
    }
    if let Some(j) = d["job"].as_object() {
        let _ = writeln!(
            out,
            "job:            pgid {} sid {}{}",
            j["pgid"],
            j["sid"],
            if j["foreground"] == true {
                ", the terminal's foreground"
            } else {
                ""
            }
        );
    }
    let fds = d["fds"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "descriptors:    {}", fds.len());
    for f in &fds {
        let mut extra = String::new();
        let of = &f["procfs_of"];
        match of["whose"].as_str() {
            Some("tree") => {
                let _ = write!(extra, " of pid {} of the tree", of["pid"]);
            }
            Some("outside") => {
                let _ = write!(
                    extra,
                    " of pid {} outside the dump (opened again while the process that started at \
                     tick {} lives)",
                    of["pid"], of["start"]
                );
            }
            _ => {}
        }
        if let Some(n) = f["dup_of"].as_u64() {
            let _ = write!(extra, " dup of {n}");
        }
        if f["other_end_closed"] == true {
            extra.push_str(" other end closed");
        }
        if f["in_flight"] == true {
            extra.push_str(" in flight only (SCM_RIGHTS; closed once sent again)");
        }
        if let Some(n) = f["peer"].as_u64() {
            let _ = write!(extra, " peer {n}");
        }
        if let Some(n) = f["reopens"].as_u64() {
            let _ = write!(extra, " of fd {n}");
        }
        if f["data_bytes"].as_u64().unwrap_or(0) > 0 {
            let _ = write!(extra, " data {} bytes", f["data_bytes"]);
        }
        let sock = &f["socket"];
        if sock["family"] == "unix" && sock["state"] == "connected" {
            let _ = write!(
                extra,
                " unix {} connected, queued {} bytes",
                sock["type"].as_str().unwrap_or("?"),
                sock["queued_bytes"]
            );
        }
        if let Some(n) = f["slot"].as_u64() {
            let _ = write!(extra, " slot {n}");
        }
        if let Some(dev) = f["device"].as_str() {
            let _ = write!(extra, " device {dev}");
        }
        if let Some(l) = f["listen"].as_object() {
            let _ = write!(
                extra,
                " {} backlog {}{}{}",
                l["type"].as_str().unwrap_or(""),
                l["backlog"],
                if l["abstract"] == true {
                    " abstract"
                } else {
                    ""
                },
                l["mode"]
                    .as_str()
                    .map(|m| format!(" mode {m}"))
                    .unwrap_or_default(),
            );
            for o in l["options"].as_array().into_iter().flatten() {
                let _ = write!(extra, " {}", o.as_str().unwrap_or(""));
            }
            if l["detached"] == true {
                let _ = write!(extra, " (path no longer its own: bound without a file)");
            }
        }
        if f["deleted"] == true {
            extra.push_str(" deleted");
        }
        if let Some(key) = f["external_key"].as_str() {
            let _ = write!(extra, " (restore with --inherit-fd {key}=N)");
        }
        let _ = writeln!(
            out,
            "  {:>4} {:<11} flags {:>7} pos {}{}{}{} {}",
            f["fd"].as_u64().unwrap_or(0),
            f["kind"].as_str().unwrap_or(""),
            f["flags"].as_str().unwrap_or(""),
            f["pos"],
            if f["cloexec"] == true { " cloexec" } else { "" },
            if f["tree_only"] == true {
                " (restored for a descendant: tree slot)"
            } else {
                ""
            },
            extra,
            f["path"].as_str().unwrap_or(""),
        );
    }
    for g in d["saved_files"].as_array().cloned().unwrap_or_default() {
        let what = match (g["deleted"] == true, g["kind"].as_str()) {
            (true, Some("directory")) if g["cwd"] == true => "deleted working directory",
            (true, Some("directory")) => "deleted directory",
            (true, _) => "deleted file",
            (false, _) => "shared file (re-created if missing)",
        };
        let _ = writeln!(
            out,
            "saved file:     {} {} (mode {}, {} bytes, {} stored)",
            what,
            g["path"].as_str().unwrap_or(""),
            g["mode"].as_str().unwrap_or(""),
            g["size"],
            g["stored_bytes"],
        );
    }
    for o in d["file_owners"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            out,
            "signal owner:   fd {} -> {} {} (signal {})",
            o["fd"],
            o["owner_type"].as_str().unwrap_or(""),
            o["owner"],
            if o["signal"] == 0 {
                "SIGIO".to_owned()
            } else {
                o["signal"].to_string()
            },
        );
    }
    for f in d["socket_filters"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            out,
            "socket filter:  fd {} {} instructions{}",
            f["fd"],
            f["instructions"],
            if f["locked"] == true { " (locked)" } else { "" },
        );
    }
    for l in d["locks"].as_array().cloned().unwrap_or_default() {
        let range = if l["kind"] == "flock" {
            String::new()
        } else if l["kind"] == "lease" {
            match l["breaking"].as_str() {
                Some(to) => format!(" (being broken, {to})"),
                None => String::new(),
            }
        } else if l["len"] == 0 {
            format!(" from {} to the end", l["start"])
        } else {
            format!(" bytes {}+{}", l["start"], l["len"])
        };
        let _ = writeln!(
            out,
            "lock:           fd {} {} {}{}",
            l["fd"],
            l["kind"].as_str().unwrap_or(""),
            l["type"].as_str().unwrap_or(""),
            range
        );
    }
}
