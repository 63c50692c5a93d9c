//! Open file descriptions shared between processes of a tree (format 1.4
//! slots).
//!
//! Every descriptor of every live process is grouped by the object it is
//! open on (`stat` of `/proc/PID/fd/N`: device and inode), then by open
//! file description (`kcmp(KCMP_FILE)`). A description used by one process
//! only is dumped as before. Otherwise:
//!
//! - a pipe used by several processes (either end), whose ends nobody
//!   outside the tree holds, becomes a `PIPE_READ`/`PIPE_WRITE` slot pair
//!   held by the lowest common ancestor of all its users (the restorer
//!   when they are in different root subtrees); its bytes in flight are
//!   peeked (`tee` from a `pidfd_getfd` copy: nothing is consumed) and
//!   every user's descriptors are `TREE_SHARED`;
//! - a pipe that also leads outside the tree is left to each process's own
//!   dump (standard descriptors: the restorer's; others refused as "pipe
//!   to another process", naming the outside process when found). It
//!   leads outside when a process outside holds it (a `/proc/*/fd` scan)
//!   or, when the tree holds only one of its ends, when that end still has
//!   a partner (`poll` on a copy: processes of other users are invisible
//!   to an unprivileged dump). A pipe whose two ends are both in the tree
//!   and also held by a process the dumper cannot see is not detected;
//! - any other description becomes a `HOLDER_FD` slot when the lowest
//!   common ancestor of its users is itself a user (the holder restores it
//!   as its own descriptor; the other users' descriptors are
//!   `TREE_SHARED`); otherwise it is refused by name;
//! - a named pipe opened separately by several processes of the tree is
//!   refused: each open would be restored on its own and its buffered
//!   bytes could not come back exactly once;
//! - (1.7) the two ends of a connected Unix socket held by different
//!   processes (no process holds both), a datagram socket connected to a
//!   socket of an ancestor, and a client whose connection a listener of an
//!   ancestor has not accepted: the lowest common ancestor
//!   of their holders restores each end it does not hold itself at a
//!   descriptor of its own image above its own ones, with its own Unix
//!   sockets (one pair of that process, `files::sockets`), and hands it
//!   to the processes holding it as an `UNIX_END` slot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use nix::fcntl::{fcntl, FcntlArg};

use kckpt_image::records::FD_NO_DUP;
use kckpt_image::tree::{slot_kind, TreeSlotRecord, TreeUseRecord, HOLDER_RESTORER, NO_PARENT};

use super::fdsys;
use super::procfs::MapEntry;
use super::tree::Node;
use crate::error::{Error, Result};

/// What one process's descriptor dump needs to know about its tree.
#[derive(Clone, Debug, Default)]
pub struct TreeFds {
    /// Pids of the tree's live processes.
    pub pids: Vec<i32>,
    /// Its descriptors that are slots (descriptor -> slot): recorded as
    /// `TREE_SHARED`.
    pub slots: HashMap<u32, u32>,
    /// Pipes that lead outside the tree: inode -> a process outside holding
    /// it (pid, command name), or (0, "") when the other end is open in a
    /// process this user cannot see.
    pub outside: HashMap<u64, (i32, String)>,
    /// (1.7) Unix socket ends of other processes this process restores for
    /// them (`UNIX_END` slots).
    pub adopted: Vec<Adopted>,
}

/// (1.7) A Unix socket end a process restores for its descendants.
#[derive(Clone, Debug, Default)]
pub struct Adopted {
    /// The descriptor number it has in the restoring process's image.
    pub fd: u32,
    /// A process holding it, and its descriptor there (read at dump).
    pub pid: i32,
    /// See `pid`.
    pub src_fd: i32,
    /// Its slot's kind: `UNIX_END` or (1.9) `ADOPTED`.
    pub kind: u32,
}

/// The tree's shared descriptions.
#[derive(Debug, Default)]
pub struct Sharing {
    /// The slots (`data_offset` not yet set).
    pub slots: Vec<TreeSlotRecord>,
    /// The bytes in flight of each slot (empty but for pipe read ends).
    pub data: Vec<Vec<u8>>,
    /// The uses, sorted by process and descriptor.
    pub uses: Vec<TreeUseRecord>,
    /// Per process (parallel to the nodes; zombies: default).
    pub per_proc: Vec<TreeFds>,
    /// Bytes taken out of pseudo-terminal pairs, put back unless kept.
    pub drained: Vec<super::pty::Drained>,
    /// The next descriptor number each holder of adopted descriptions
    /// gives one (above its own).
    next_adopted: HashMap<usize, u32>,
}

/// One descriptor of one process.
#[derive(Clone, Debug)]
struct Entry {
    proc: usize,
    pid: i32,
    fd: i32,
    link: String,
    flags: u32,
    fifo: bool,
    /// Device number of a character device (0 otherwise).
    rdev: u64,
    /// A terminal outside the tree, or a pseudo-terminal slave.
    tty: bool,
    /// A pseudo-terminal master.
    master: bool,
}

/// Every descriptor of every live process, grouped by (device, inode).
fn entries(nodes: &[Node]) -> BTreeMap<(u64, u64), Vec<Entry>> {
    let mut groups: BTreeMap<(u64, u64), Vec<Entry>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate().filter(|(_, n)| n.zombie.is_none()) {
        let Ok(dir) = fs::read_dir(format!("/proc/{}/fd", n.pid)) else {
            continue;
        };
        let mut fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        fds.sort_unstable();
        for fd in fds {
            let path = format!("/proc/{}/fd/{fd}", n.pid);
            let (Ok(link), Ok(meta)) = (fs::read_link(&path), fs::metadata(&path)) else {
                continue;
            };
            let info =
                fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", n.pid)).unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
                .unwrap_or(0);
            let chr = meta.file_type().is_char_device();
            let rdev = if chr { meta.rdev() } else { 0 };
            let link = link.to_string_lossy().into_owned();
            groups
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(Entry {
                    proc: i,
                    pid: n.pid,
                    fd,
                    fifo: meta.file_type().is_fifo() && link.starts_with('/'),
                    link,
                    flags,
                    rdev,
                    tty: chr && terminal_dev(rdev),
                    master: chr && super::terminal::is_pty_master(rdev),
                });
        }
    }
    groups
}

/// A terminal device: a pseudo-terminal slave, `/dev/tty`, the console, a
/// virtual console or serial line. Unless it is the slave of a pair whose
/// master the tree holds, it is a terminal outside the tree (the terminal
/// a shell job runs in): each process records it as its own
/// `TERMINAL`/`CTTY` descriptor, restored from the restorer's terminal,
/// never as a slot.
fn terminal_dev(rdev: u64) -> bool {
    let major = nix::sys::stat::major(rdev);
    major == 4
        || super::terminal::is_dev_tty(rdev)
        || (major == 5 && nix::sys::stat::minor(rdev) == 1)
        || super::terminal::is_pty_slave(rdev)
}

/// Split `group` into open file descriptions (kcmp).
fn descriptions(group: &[Entry]) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = Vec::new();
    for e in group {
        match out
            .iter_mut()
            .find(|d| fdsys::same_file_of(d[0].pid, d[0].fd, e.pid, e.fd))
        {
            Some(d) => d.push(e.clone()),
            None => out.push(vec![e.clone()]),
        }
    }
    out
}

/// Is `a` an ancestor of `b`, or `b` itself?
fn ancestor_or_self(nodes: &[Node], a: usize, mut b: usize) -> bool {
    loop {
        if a == b {
            return true;
        }
        match nodes[b].parent {
            NO_PARENT => return false,
            p => b = p as usize,
        }
    }
}

/// The lowest common ancestor of `procs` (each counts as its own
/// ancestor), `None` when they are in different root subtrees.
pub(super) fn lca(nodes: &[Node], procs: &[usize]) -> Option<usize> {
    let mut at = *procs.first()?;
    loop {
        if procs.iter().all(|&p| ancestor_or_self(nodes, at, p)) {
            return Some(at);
        }
        match nodes[at].parent {
            NO_PARENT => return None,
            p => at = p as usize,
        }
    }
}

/// The distinct processes of `entries`, in table order.
fn procs_of(entries: &[Entry]) -> Vec<usize> {
    let mut p: Vec<usize> = entries.iter().map(|e| e.proc).collect();
    p.sort_unstable();
    p.dedup();
    p
}

/// `pipe:[INODE]` -> INODE.
fn pipe_ino(link: &str) -> Option<u64> {
    link.strip_prefix("pipe:[")?.strip_suffix(']')?.parse().ok()
}

/// Processes outside the tree (not `tree`, not this one) holding one of
/// the pipes `inodes`: inode -> (pid, command name). Processes whose
/// descriptors this user cannot read are missed.
pub(super) fn outside_holders(
    tree: &HashSet<i32>,
    inodes: &HashSet<u64>,
) -> HashMap<u64, (i32, String)> {
    let mut out = HashMap::new();
    if inodes.is_empty() {
        return out;
    }
    let me = std::process::id() as i32;
    let procs = fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in procs.filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok()) {
        if p == me || tree.contains(&p) {
            continue;
        }
        let Ok(dir) = fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        for e in dir.flatten() {
            let Some(ino) = fs::read_link(e.path())
                .ok()
                .and_then(|l| pipe_ino(&l.to_string_lossy()))
            else {
                continue;
            };
            if inodes.contains(&ino) && !out.contains_key(&ino) {
                let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                out.insert(ino, (p, comm.trim().to_owned()));
            }
        }
    }
    out
}

/// Does the pipe end `e` have a partner end open anywhere (a reader for a
/// write end, a writer for a read end)? Asked of a `pidfd_getfd` copy. In
/// doubt (no copy), yes.
fn partner_alive(e: &Entry) -> bool {
    let Ok(pidfd) = fdsys::pidfd_open(e.pid) else {
        return true;
    };
    let Ok(copy) = fdsys::pidfd_getfd(pidfd.as_raw_fd(), e.fd) else {
        return true;
    };
    !fdsys::pipe_partner_gone(copy.as_fd(), e.flags & 3 == 1)
}

/// Find the tree's shared descriptions (see the module documentation);
/// refusals name the process and the descriptor.
pub fn analyze(nodes: &[Node], maps: &[Option<Vec<MapEntry>>]) -> Result<Sharing> {
    let groups = entries(nodes);
    let tree: HashSet<i32> = nodes
        .iter()
        .filter(|n| n.zombie.is_none())
        .map(|n| n.pid)
        .collect();
    // Pipes the tree does not hold entirely in one process with both ends.
    let mut open_pipes = HashSet::new();
    for g in groups.values() {
        let Some(ino) = g.first().and_then(|e| pipe_ino(&e.link)) else {
            continue;
        };
        let both_in_one = procs_of(g).len() == 1
            && g.iter().any(|e| e.flags & 3 == 1)
            && g.iter().any(|e| e.flags & 3 != 1);
        if !both_in_one {
            open_pipes.insert(ino);
        }
    }
    let mut outside = outside_holders(&tree, &open_pipes);
    // Holders this user cannot see in /proc: a pipe whose only end in the
    // tree still has a partner (poll: no POLLERR on a write end, no
    // POLLHUP on a read end) leads outside.
    for g in groups.values() {
        let Some(ino) = g.first().and_then(|e| pipe_ino(&e.link)) else {
            continue;
        };
        let writes = g.iter().filter(|e| e.flags & 3 == 1).count();
        let one_end = writes == 0 || writes == g.len();
        if one_end && !outside.contains_key(&ino) && partner_alive(&g[0]) {
            outside.insert(ino, (0, String::new()));
        }
    }
    let mut out = Sharing {
        per_proc: nodes
            .iter()
            .map(|_| TreeFds {
                pids: tree.iter().copied().collect(),
                outside: outside.clone(),
                ..TreeFds::default()
            })
            .collect(),
        ..Sharing::default()
    };
    let masters = pty_masters(&groups)?;
    let adopted = unix_ends(nodes, &groups, &mut out);
    for (&key, g) in groups.iter() {
        if g[0].master || g[0].tty || adopted.contains(&key) {
            continue; // pseudo-terminal pairs below; other terminals: each its own
        }
        if procs_of(g).len() < 2 {
            continue;
        }
        match pipe_ino(&g[0].link) {
            Some(ino) if outside.contains_key(&ino) => {}
            Some(_) => pipe_slots(nodes, g, &mut out)?,
            None if g[0].fifo && descriptions(g).len() > 1 => fifo_slots(nodes, key, g, &mut out)?,
            None => holder_slots(nodes, g, &mut out)?,
        }
    }
    let live_pairs: HashSet<(u64, u64)> = masters
        .iter()
        .map(|(_, n)| super::pty::slave_dev(*n))
        .collect();
    for g in groups.values() {
        let e = &g[0];
        if e.tty
            && super::terminal::is_pty_slave(e.rdev)
            && e.link.ends_with(" (deleted)")
            && !live_pairs.contains(&devno(e.rdev))
        {
            hung_up_slots(nodes, g, &mut out);
        }
    }
    for (master, n) in masters {
        let dev = super::pty::slave_dev(n);
        let slaves: Vec<Entry> = groups
            .values()
            .flatten()
            .filter(|e| e.tty && !e.master && devno(e.rdev) == dev)
            .cloned()
            .collect();
        pty_slots(nodes, &master, n, &slaves, &mut out)?;
    }
    memory_slots(nodes, maps, &groups, &mut out)?;
    out.uses.sort_unstable_by_key(|u| (u.proc, u.fd));
    Ok(out)
}

fn devno(rdev: u64) -> (u64, u64) {
    (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
}

/// A `pidfd_getfd` copy of descriptor `e`.
fn copy_of(e: &Entry) -> Result<std::os::fd::OwnedFd> {
    let fail = |err: nix::Error| Error::Unsupported {
        pid: e.pid,
        reason: format!("cannot copy its fd {} ({}): {}", e.fd, e.link, err.desc()),
    };
    let pidfd = fdsys::pidfd_open(e.pid).map_err(fail)?;
    fdsys::pidfd_getfd(pidfd.as_raw_fd(), e.fd).map_err(fail)
}

/// Every pseudo-terminal master description the tree holds, with the
/// number of its pair.
fn pty_masters(groups: &BTreeMap<(u64, u64), Vec<Entry>>) -> Result<Vec<(Vec<Entry>, u32)>> {
    let mut out = Vec::new();
    for g in groups.values().filter(|g| g[0].master) {
        for d in descriptions(g) {
            let copy = copy_of(&d[0])?;
            let n = super::pty::number(&copy).map_err(|err| Error::Unsupported {
                pid: d[0].pid,
                reason: format!(
                    "fd {} ({}): pseudo-terminal master without a number: {}",
                    d[0].fd,
                    d[0].link,
                    err.desc()
                ),
            })?;
            out.push((d, n));
        }
    }
    Ok(out)
}

/// The session whose controlling terminal is pair `n`: (index of its
/// leader, foreground process group), `None` when no process of the tree
/// has it; refused when the leader is not a live process of the tree, or
/// when no live process of the tree is in the foreground group.
fn pty_session(nodes: &[Node], n: u32, master: &Entry) -> Result<Option<(usize, u32)>> {
    let (major, minor) = super::pty::slave_dev(n);
    let rdev = nix::sys::stat::makedev(major, minor);
    let live = |i: &usize| nodes[*i].zombie.is_none();
    let Some(member) = (0..nodes.len())
        .filter(live)
        .find(|&i| super::terminal::is_ctty(rdev, nodes[i].stat.num(7)))
    else {
        return Ok(None);
    };
    let sid = nodes[member].stat.num(6) as i32;
    let refuse = |why: String| Error::Unsupported {
        pid: master.pid,
        reason: format!(
            "not supported: fd {} is the master of pseudo-terminal /dev/pts/{n}, {why}",
            master.fd
        ),
    };
    let Some(leader) = (0..nodes.len()).filter(live).find(|&i| nodes[i].pid == sid) else {
        return Err(refuse(format!(
            "the controlling terminal of session {sid}, whose leader is not a live process              of the tree"
        )));
    };
    let fg = nodes[leader].stat.text(8).parse::<i64>().unwrap_or(-1);
    let fg = u32::try_from(fg).unwrap_or(0);
    let in_fg = (0..nodes.len())
        .filter(live)
        .any(|i| nodes[i].stat.num(5) == u64::from(fg) && nodes[i].stat.num(6) == sid as u64);
    if fg != 0 && !in_fg {
        return Err(refuse(format!(
            "whose foreground process group {fg} has no live process in the tree"
        )));
    }
    Ok(Some((leader, fg)))
}

/// A pseudo-terminal pair whose master the tree holds: a `PTY_MASTER`
/// slot (its state as data) and a `PTY_SLAVE` slot per description of
/// the slave, held by the lowest common ancestor of their users and of
/// the session leader whose controlling terminal it is. Refused when bytes
/// are buffered in either direction (they cannot be read without being
/// consumed).
fn pty_slots(
    nodes: &[Node],
    master: &[Entry],
    n: u32,
    slaves: &[Entry],
    out: &mut Sharing,
) -> Result<()> {
    let m = &master[0];
    let refuse = |e: &Entry, why: String| Error::Unsupported {
        pid: e.pid,
        reason: format!("not supported: fd {} ({}): {why}", e.fd, e.link),
    };
    let copy = copy_of(m)?;
    let mut state = super::pty::state(&copy, n)
        .ok_or_else(|| refuse(m, "cannot read the pseudo-terminal's mode".to_owned()))?;
    let (uid, gid, mode) = super::pty::slave_owner(&copy).map_err(|err| {
        refuse(
            m,
            format!("cannot read the owner of /dev/pts/{n}: {}", err.desc()),
        )
    })?;
    state.owner = kckpt_image::tree::PTY_OWNER_SAVED | mode;
    state.uid = uid;
    state.gid = gid;
    // Bytes unread in either direction are taken out (reading is the
    // only way to see them) and put back if the dump fails or the
    // process keeps running (`pty::Drained`).
    let read_err = |e: &Entry, err: nix::Error| {
        refuse(
            e,
            format!(
                "cannot read the unread bytes of /dev/pts/{n}: {}",
                err.desc()
            ),
        )
    };
    let pending = super::pty::unread(&copy).unwrap_or(0);
    if pending > 0 && state.packet != 0 {
        return Err(refuse(
            m,
            format!("pseudo-terminal master in packet mode with {pending} bytes its reader has not read"),
        ));
    }
    let slave_descs = descriptions(slaves);
    let slave_copy = match slave_descs.first() {
        Some(s) => Some(copy_of(&s[0])?),
        None => super::pty::open_slave(&copy).ok(),
    };
    let canon = state.term.lflag & nix::libc::ICANON != 0;
    let out_bytes: Vec<u8> = if pending > 0 {
        super::pty::drain(&copy, kckpt_image::tree::PTY_MAX_OUT as usize, false)
            .map_err(|err| read_err(m, err))?
            .concat()
    } else {
        Vec::new()
    };
    let mut lines = Vec::new();
    if let Some(sc) = &slave_copy {
        match super::pty::drain(sc, 4095, !canon) {
            Ok(l) => lines = l,
            Err(err) => {
                drop(super::pty::Drained::new(
                    copy,
                    state.term,
                    out_bytes,
                    Vec::new(),
                    0,
                ));
                return Err(read_err(m, err));
            }
        }
    }
    let count: usize = lines.iter().map(Vec::len).sum();
    let escaped = if state.term.lflag & nix::libc::EXTPROC != 0 && !lines.is_empty() {
        None
    } else {
        super::pty::escape_input(&state.term, &lines)
    };
    let drained = (!out_bytes.is_empty() || !lines.is_empty()).then(|| {
        super::pty::Drained::new(
            copy,
            state.term,
            out_bytes.clone(),
            escaped.clone().unwrap_or_default(),
            count as u32,
        )
    });
    let Some(input) = escaped else {
        return Err(refuse(
            m,
            format!(
                "pseudo-terminal /dev/pts/{n} with {count} bytes of input not read, in a mode \
                 (external processing, or a line ended by an end-of-file character no longer \
                 set) they cannot be put back in"
            ),
        ));
    };
    if input.len() as u64 > kckpt_image::tree::PTY_MAX_IN {
        return Err(refuse(
            m,
            format!("pseudo-terminal /dev/pts/{n} with {count} bytes of input not read (too many)"),
        ));
    }
    if let Some(d) = drained {
        out.drained.push(d);
    }
    let mut users: Vec<usize> = procs_of(master);
    users.extend(procs_of(slaves));
    if let Some((leader, fg)) = pty_session(nodes, n, m)? {
        state.session = leader as u32;
        state.fg_pgid = fg;
        users.push(leader);
    }
    let holder = lca(nodes, &users).map_or(HOLDER_RESTORER, |h| h as u32);
    let master_slot = out.slots.len() as u32;
    out.slots.push(TreeSlotRecord {
        kind: slot_kind::PTY_MASTER,
        holder,
        holder_fd: FD_NO_DUP,
        peer: u32::MAX,
        flags: m.flags & 0o4000,
        pipe_size: out_bytes.len() as u32,
        size: input.len() as u64,
        ..TreeSlotRecord::default()
    });
    let mut data = kckpt_image::read::record_bytes(&state).to_vec();
    data.extend_from_slice(&out_bytes);
    data.extend_from_slice(&input);
    out.data.push(data);
    use_slot(out, master, master_slot);
    slave_slots(out, holder, master_slot, &slave_descs);
    Ok(())
}

/// One `PTY_SLAVE` slot per open file description of the slave in
/// `descs`, of the master at slot `master_slot`, held by `holder`.
fn slave_slots(out: &mut Sharing, holder: u32, master_slot: u32, descs: &[Vec<Entry>]) {
    for d in descs {
        let slot = out.slots.len() as u32;
        out.slots.push(TreeSlotRecord {
            kind: slot_kind::PTY_SLAVE,
            holder,
            holder_fd: FD_NO_DUP,
            peer: master_slot,
            flags: d[0].flags & 0o4003,
            ..TreeSlotRecord::default()
        });
        out.data.push(Vec::new());
        use_slot(out, d, slot);
    }
}

/// The slave of a pair whose master was closed everywhere (its devpts
/// node is gone, `/dev/pts/N (deleted)`; every description of it is hung
/// up): a `PTY_MASTER` slot flagged `PTY_MASTER_CLOSED` and a `PTY_SLAVE`
/// slot per description, held by the lowest common ancestor of their
/// users; the restore opens a pair and its slaves, then closes the master.
fn hung_up_slots(nodes: &[Node], slaves: &[Entry], out: &mut Sharing) {
    let holder = lca(nodes, &procs_of(slaves)).map_or(HOLDER_RESTORER, |h| h as u32);
    let state = kckpt_image::tree::PtyRecord {
        index: nix::sys::stat::minor(slaves[0].rdev) as u32,
        session: NO_PARENT,
        ..Default::default()
    };
    let master_slot = out.slots.len() as u32;
    out.slots.push(TreeSlotRecord {
        kind: slot_kind::PTY_MASTER,
        holder,
        holder_fd: FD_NO_DUP,
        peer: u32::MAX,
        flags: kckpt_image::tree::PTY_MASTER_CLOSED,
        ..TreeSlotRecord::default()
    });
    out.data
        .push(kckpt_image::read::record_bytes(&state).to_vec());
    slave_slots(out, holder, master_slot, &descriptions(slaves));
}

/// `socket:[INODE]` -> INODE.
fn socket_ino(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// (1.7) Unix socket ends whose holders another process restores (see
/// the module documentation): `UNIX_END` slots, and each holder's
/// [`Adopted`] ends. Returns the groups (device, inode) made slots here.
fn unix_ends(
    nodes: &[Node],
    groups: &BTreeMap<(u64, u64), Vec<Entry>>,
    out: &mut Sharing,
) -> HashSet<(u64, u64)> {
    use super::unixsock;
    let socks: BTreeMap<u64, ((u64, u64), &Vec<Entry>)> = groups
        .iter()
        .filter_map(|(k, g)| Some((socket_ino(&g[0].link)?, (*k, g))))
        .collect();
    let diags: HashMap<u64, unixsock::UnixDiag> = socks
        .keys()
        .filter_map(|&ino| Some((ino, unixsock::diag(ino)?)))
        .collect();
    // Named listeners and their processes: an end accepted on one is
    // bound to its name again, which only the holder of the listener (as
    // a connection it accepts again) or a process restored before the
    // listener's (a path: its file is then stale) can do.
    let listeners: Vec<(&[u8], Vec<usize>)> = diags
        .iter()
        .filter(|(_, d)| unixsock::is_listener(d))
        .filter_map(|(ino, d)| Some((d.name.as_deref()?, procs_of(socks[ino].1))))
        .collect();
    let bind_ok = |h: usize, d: &unixsock::UnixDiag| {
        let Some(name) = d.name.as_deref().filter(|n| !n.is_empty()) else {
            return true;
        };
        listeners.iter().filter(|(n, _)| *n == name).all(|(_, lp)| {
            lp.contains(&h) || (name[0] != 0 && lp.iter().all(|&p| ancestor_or_self(nodes, h, p)))
        })
    };
    let mut done: HashSet<u64> = HashSet::new();
    let mut adopted = HashSet::new();
    let disjoint = |a: &[usize], b: &[usize]| !a.iter().any(|p| b.contains(p));
    for (&ino, &(_, g)) in &socks {
        if done.contains(&ino) {
            continue;
        }
        let Some(d) = diags.get(&ino) else {
            continue;
        };
        let procs = procs_of(g);
        if d.peer != 0 && d.peer != ino {
            // A pair: each end names the other.
            let Some(&(_, pg)) = socks.get(&d.peer) else {
                continue;
            };
            let pprocs = procs_of(pg);
            if !disjoint(&procs, &pprocs) {
                continue;
            }
            let all: Vec<usize> = procs.iter().chain(&pprocs).copied().collect();
            let Some(h) = lca(nodes, &all) else { continue };
            let Some(pd) = diags.get(&d.peer) else {
                continue;
            };
            if pd.peer != ino {
                // A datagram socket connected to a socket another process
                // holds (not connected back): restored by that process
                // when it is the common ancestor, connected again to the
                // peer's name there.
                if i32::from(d.ty) == nix::libc::SOCK_DGRAM && pprocs.contains(&h) {
                    done.insert(ino);
                    adopt(nodes, out, h, g, slot_kind::UNIX_END);
                    adopted.insert(socks[&ino].0);
                }
                continue;
            }
            if !bind_ok(h, d) || !bind_ok(h, pd) {
                continue; // accepted on a listener `h` restores no earlier
            }
            for (e, eg, eprocs) in [(ino, g, &procs), (d.peer, pg, &pprocs)] {
                done.insert(e);
                if !eprocs.contains(&h) {
                    adopt(nodes, out, h, eg, slot_kind::UNIX_END);
                    adopted.insert(socks[&e].0);
                }
            }
        } else if unixsock::is_listener(d) {
            // Clients of connections it has not accepted, held by
            // descendants of its process.
            for &c in &d.icons {
                let c = u64::from(c);
                let Some(&(ckey, cg)) = socks.get(&c).filter(|_| !done.contains(&c)) else {
                    continue;
                };
                let cprocs = procs_of(cg);
                let all: Vec<usize> = procs.iter().chain(&cprocs).copied().collect();
                let h = lca(nodes, &all).filter(|h| procs.contains(h));
                if let Some(h) = h.filter(|_| disjoint(&procs, &cprocs)) {
                    done.insert(c);
                    adopt(nodes, out, h, cg, slot_kind::UNIX_END);
                    adopted.insert(ckey);
                }
            }
        }
    }
    adopted
}

/// Process `h` restores the open file description of `group` (a Unix
/// socket end, `UNIX_END`, or (1.9) a separate open of a memfd or deleted
/// file, `ADOPTED`) at a descriptor above its own: a slot of `kind` that
/// every descriptor of `group` uses.
fn adopt(nodes: &[Node], out: &mut Sharing, h: usize, group: &[Entry], kind: u32) {
    let fd = out
        .next_adopted
        .entry(h)
        .or_insert_with(|| highest_fd(nodes[h].pid) + 1);
    let number = *fd;
    *fd += 1;
    let slot = out.slots.len() as u32;
    out.slots.push(TreeSlotRecord {
        kind,
        holder: h as u32,
        holder_fd: number,
        peer: u32::MAX,
        ..TreeSlotRecord::default()
    });
    out.data.push(Vec::new());
    use_slot(out, group, slot);
    out.per_proc[h].adopted.push(Adopted {
        fd: number,
        pid: group[0].pid,
        src_fd: group[0].fd,
        kind,
    });
}

/// The highest descriptor number process `pid` uses, also as the number
/// an epoll item was added with (its restore uses that number for a
/// moment).
fn highest_fd(pid: i32) -> u32 {
    let mut max = 2u32;
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return max;
    };
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        max = max.max(fd);
        let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        for l in info.lines().filter_map(|l| l.strip_prefix("tfd:")) {
            if let Some(t) = l
                .split_whitespace()
                .next()
                .and_then(|t| t.parse::<u32>().ok())
            {
                max = max.max(t);
            }
        }
    }
    max
}

/// Record `entries` as uses of `slot`.
fn use_slot(out: &mut Sharing, entries: &[Entry], slot: u32) {
    for e in entries {
        out.uses.push(TreeUseRecord {
            proc: e.proc as u32,
            fd: e.fd as u32,
            slot,
            reserved: 0,
        });
        out.per_proc[e.proc].slots.insert(e.fd as u32, slot);
    }
}

/// A pipe used by several processes of the tree: a slot per end held.
fn pipe_slots(nodes: &[Node], group: &[Entry], out: &mut Sharing) -> Result<()> {
    let descs = descriptions(group);
    let end = |d: &Vec<Entry>| d[0].flags & 3;
    if let Some(d) = descs.iter().find(|d| end(d) == 2) {
        return Err(Error::Unsupported {
            pid: d[0].pid,
            reason: format!(
                "not supported: fd {} ({}) is a pipe opened for reading and writing, shared \
                 with other processes",
                d[0].fd, d[0].link
            ),
        });
    }
    let reads: Vec<&Vec<Entry>> = descs.iter().filter(|d| end(d) == 0).collect();
    let writes: Vec<&Vec<Entry>> = descs.iter().filter(|d| end(d) == 1).collect();
    if reads.len() > 1 || writes.len() > 1 {
        let e = &group[0];
        return Err(Error::Unsupported {
            pid: e.pid,
            reason: format!(
                "not supported: fd {} ({}) is a pipe with several open file descriptions of \
                 one end (opened again through /proc), shared with other processes",
                e.fd, e.link
            ),
        });
    }
    let holder = lca(nodes, &procs_of(group)).map_or(HOLDER_RESTORER, |h| h as u32);
    let base = out.slots.len() as u32;
    let read_slot = reads.first().map(|_| base);
    let write_slot = writes
        .first()
        .map(|_| base + u32::from(read_slot.is_some()));
    if let (Some(d), Some(slot)) = (reads.first(), read_slot) {
        let e = &d[0];
        let (data, size) = peek(e)?;
        out.slots.push(TreeSlotRecord {
            kind: slot_kind::PIPE_READ,
            holder,
            holder_fd: FD_NO_DUP,
            peer: write_slot.unwrap_or(u32::MAX),
            flags: e.flags & 0o44000,
            pipe_size: size,
            data_offset: 0,
            data_len: 0,
            ..Default::default()
        });
        out.data.push(data);
        use_slot(out, d, slot);
    }
    if let (Some(d), Some(slot)) = (writes.first(), write_slot) {
        out.slots.push(TreeSlotRecord {
            kind: slot_kind::PIPE_WRITE,
            holder,
            holder_fd: FD_NO_DUP,
            peer: read_slot.unwrap_or(u32::MAX),
            flags: d[0].flags & 0o44000,
            ..TreeSlotRecord::default()
        });
        out.data.push(Vec::new());
        use_slot(out, d, slot);
    }
    Ok(())
}

/// The bytes in flight of the pipe whose read end is `e` (not consumed)
/// and its capacity.
fn peek(e: &Entry) -> Result<(Vec<u8>, u32)> {
    let fail = |what: String| Error::Unsupported {
        pid: e.pid,
        reason: format!("cannot read the pipe at fd {}: {what}", e.fd),
    };
    let pidfd = fdsys::pidfd_open(e.pid).map_err(|err| fail(err.desc().to_owned()))?;
    let copy =
        fdsys::pidfd_getfd(pidfd.as_raw_fd(), e.fd).map_err(|err| fail(err.desc().to_owned()))?;
    let data = super::files::peek_pipe(&copy).map_err(|err| fail(crate::error::io_text(&err)))?;
    let size = fcntl(copy.as_fd(), FcntlArg::F_GETPIPE_SZ)
        .unwrap_or(0)
        .max(0) as u32;
    Ok((data, size))
}

/// (1.7) A named pipe processes of the tree opened separately (several
/// open file descriptions): a `FIFO` slot (its path and buffered bytes)
/// held by their common ancestor and a `FIFO_OPEN` slot per description,
/// of which every descriptor is a use. Refused by name when no process of
/// the tree is their common ancestor, when it was deleted, or when a
/// process outside the tree has it open too.
fn fifo_slots(nodes: &[Node], key: (u64, u64), group: &[Entry], out: &mut Sharing) -> Result<()> {
    let descs = descriptions(group);
    let procs = procs_of(group);
    let e = &group[0];
    let refuse = |why: String| Error::Unsupported {
        pid: e.pid,
        reason: format!(
            "not supported: fd {} (named pipe {}) opened separately by processes {} of the \
             tree: {why}",
            e.fd,
            e.link,
            procs
                .iter()
                .map(|&p| nodes[p].pid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let Some(holder) = lca(nodes, &procs) else {
        return Err(refuse(
            "no process of the tree is an ancestor of them all".into(),
        ));
    };
    let path = e.link.as_bytes();
    if e.link.ends_with(" (deleted)") || !e.link.starts_with('/') || path.len() >= 4096 {
        return Err(refuse("its path is gone".into()));
    }
    let tree: HashSet<i32> = nodes.iter().map(|n| n.pid).collect();
    let others = super::special::other_holders(e.pid, &HashSet::from([key]));
    if let Some((other, _)) = others.iter().find(|(p, _)| !tree.contains(p)) {
        return Err(refuse(format!(
            "process {other}, outside the tree, has it open too"
        )));
    }
    // Its bytes, through a description that reads if there is one.
    let reader = group.iter().find(|e| e.flags & 3 != 1).unwrap_or(e);
    let cannot = |what: String| refuse(format!("cannot read its bytes: {what}"));
    let pidfd = fdsys::pidfd_open(reader.pid).map_err(|err| cannot(err.desc().to_owned()))?;
    let copy = fdsys::pidfd_getfd(pidfd.as_raw_fd(), reader.fd)
        .map_err(|err| cannot(err.desc().to_owned()))?;
    let (bytes, size) = super::special::fifo_data(reader.pid, reader.fd, reader.flags, &copy)
        .map_err(|err| cannot(crate::error::io_text(&err)))?;
    let fifo = out.slots.len() as u32;
    out.slots.push(TreeSlotRecord {
        kind: slot_kind::FIFO,
        holder: holder as u32,
        holder_fd: FD_NO_DUP,
        peer: u32::MAX,
        pipe_size: size as u32,
        size: path.len() as u64,
        ..TreeSlotRecord::default()
    });
    out.data.push([path, &bytes].concat());
    for d in descs {
        let slot = out.slots.len() as u32;
        out.slots.push(TreeSlotRecord {
            kind: slot_kind::FIFO_OPEN,
            holder: holder as u32,
            holder_fd: FD_NO_DUP,
            peer: fifo,
            flags: d[0].flags & 0o4003,
            ..TreeSlotRecord::default()
        });
        out.data.push(Vec::new());
        use_slot(out, &d, slot);
    }
    Ok(())
}

/// Any other object used by several processes: a `HOLDER_FD` slot per
/// description used by several, when a user is the common ancestor.
fn holder_slots(nodes: &[Node], group: &[Entry], out: &mut Sharing) -> Result<()> {
    let mut descs = descriptions(group);
    // Objects only the kernel holds (a memfd, shared anonymous memory, a
    // deleted file, (1.9) an exited process's pidfs inode): several
    // descriptions of one come back as one object only when one process,
    // the holder of each, restores them all (as a single process's
    // descriptors of one memfd or deleted file); otherwise each would be a
    // copy of its own.
    let link = &group[0].link;
    // (1.9) Pidfds of an exited process, opened separately: one stand-in
    // process, restored by one process for all of them.
    let dead_pidfd = link == "anon_inode:[pidfd]" && pidfd_of_exited(&group[0]);
    let kernel_only = dead_pidfd
        || link.starts_with("/memfd:")
        || (link.starts_with('/') && link.ends_with(" (deleted)"));
    let common = lca(nodes, &procs_of(group));
    let one_holder = common.is_some_and(|h| descs.iter().all(|d| d.iter().any(|e| e.proc == h)));
    if kernel_only && descs.len() > 1 && !one_holder {
        // (1.9) Their common ancestor restores them all, those it does not
        // hold itself for the others (`ADOPTED` slots); but shared
        // anonymous memory held as descriptors is read per descriptor:
        // two descriptions would be two copies.
        let adoptable = !link.starts_with("/dev/zero (deleted)");
        let Some(h) = common.filter(|_| adoptable) else {
            let (a, b) = (&descs[0][0], &descs[1][0]);
            return Err(Error::Unsupported {
                pid: a.pid,
                reason: format!(
                    "not supported: fd {} ({}) and fd {} of process {} are separate opens of one \
                     object only the kernel holds (a memfd, a deleted file, shared memory or an \
                     exited process's pidfd), and no process of the tree restores both: each \
                     would come back as a copy of its own",
                    a.fd, a.link, b.fd, b.pid
                ),
            });
        };
        let (held, others): (Vec<_>, Vec<_>) = descs
            .into_iter()
            .partition(|d| d.iter().any(|e| e.proc == h));
        for d in &others {
            adopt(nodes, out, h, d, slot_kind::ADOPTED);
        }
        descs = held;
    }
    for d in descs {
        let procs = procs_of(&d);
        if procs.len() < 2 {
            continue;
        }
        let holder = lca(nodes, &procs).filter(|h| procs.contains(h));
        let Some(holder) = holder else {
            if let Some(slot) = file_slot(&d[0]) {
                out.slots.push(slot.0);
                out.data.push(slot.1);
                use_slot(out, &d, out.slots.len() as u32 - 1);
                continue;
            }
            let e = &d[0];
            let other = d.iter().find(|o| o.proc != e.proc).map_or(0, |o| o.pid);
            return Err(Error::Unsupported {
                pid: e.pid,
                reason: format!(
                    "not supported: fd {} ({}) shared with process {other}, and no common \
                     ancestor holds it",
                    e.fd, e.link
                ),
            });
        };
        let holder_fd = d
            .iter()
            .filter(|e| e.proc == holder)
            .map(|e| e.fd)
            .min()
            .unwrap_or(0);
        let slot = out.slots.len() as u32;
        out.slots.push(TreeSlotRecord {
            kind: slot_kind::HOLDER_FD,
            holder: holder as u32,
            holder_fd: holder_fd as u32,
            peer: u32::MAX,
            ..TreeSlotRecord::default()
        });
        out.data.push(Vec::new());
        let users: Vec<Entry> = d.into_iter().filter(|e| e.proc != holder).collect();
        use_slot(out, &users, slot);
    }
    Ok(())
}

/// Is the pidfd of `e` one of a process that has exited and been reaped
/// (fdinfo `Pid: -1`)?
fn pidfd_of_exited(e: &Entry) -> bool {
    fs::read_to_string(format!("/proc/{}/fdinfo/{}", e.pid, e.fd))
        .is_ok_and(|i| i.lines().any(|l| l.split_whitespace().eq(["Pid:", "-1"])))
}

/// (1.5) A `FILE` slot held by the restorer for the description of `e`
/// (its path as data) when it is a regular file opened by an absolute path
/// that still leads to it: the users of a description with no common
/// ancestor holding it share it through the restorer (`(a | b) 2> log`).
fn file_slot(e: &Entry) -> Option<(TreeSlotRecord, Vec<u8>)> {
    let fd_path = format!("/proc/{}/fd/{}", e.pid, e.fd);
    let meta = fs::metadata(&fd_path).ok()?;
    let at_path = fs::metadata(&e.link).ok()?;
    let usable = meta.is_file()
        && e.link.starts_with('/')
        && e.link.len() < 4096
        && !e.link.contains('\0')
        && (at_path.dev(), at_path.ino()) == (meta.dev(), meta.ino());
    let flags = e.flags & kckpt_image::tree::FILE_SLOT_FLAGS;
    if !usable || flags & 3 == 3 {
        return None;
    }
    let info = fs::read_to_string(format!("/proc/{}/fdinfo/{}", e.pid, e.fd)).ok()?;
    let pos = info
        .lines()
        .find_map(|l| l.strip_prefix("pos:"))
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    Some((
        TreeSlotRecord {
            kind: slot_kind::FILE,
            holder: HOLDER_RESTORER,
            holder_fd: FD_NO_DUP,
            peer: u32::MAX,
            flags,
            size: pos,
            ..TreeSlotRecord::default()
        },
        e.link.as_bytes().to_vec(),
    ))
}

/// `(dev, inode)` of `stat` as `/proc/PID/maps` writes the device
/// (major << 32 | minor).
fn maps_key(key: (u64, u64)) -> (u64, u64) {
    let (dev, ino) = key;
    let major = u64::from(nix::sys::stat::major(dev) as u32);
    let minor = u64::from(nix::sys::stat::minor(dev) as u32);
    ((major << 32) | minor, ino)
}

/// A `MEMORY` slot for every kernel-only memory object that two or more
/// processes of the tree use (map, or hold as a descriptor while another
/// maps it), held by the lowest common ancestor of them all. A memfd that
/// is also a descriptor is the holder's descriptor (one open file
/// description, which the holder restores itself): the stub uses it for
/// the slot (its other descriptions, (1.9) those of other processes too,
/// are opened again from it by the holder: `holder_slots`). Refused by
/// name: any other object that is also a descriptor (a deleted file,
/// shared anonymous memory opened through `/proc/PID/map_files`), and a
/// memfd descriptor the holder does not hold.
fn memory_slots(
    nodes: &[Node],
    maps: &[Option<Vec<MapEntry>>],
    groups: &BTreeMap<(u64, u64), Vec<Entry>>,
    out: &mut Sharing,
) -> Result<()> {
    let objects = super::tree_memory::memory_objects(maps, super::page_size());
    let by_key: HashMap<(u64, u64), &Vec<Entry>> =
        groups.iter().map(|(k, v)| (maps_key(*k), v)).collect();
    for o in objects {
        let fds: &[Entry] = by_key.get(&o.key).map_or(&[], |v| v.as_slice());
        let mut users = o.procs.clone();
        users.extend(procs_of(fds));
        users.sort_unstable();
        users.dedup();
        if users.len() < 2 {
            continue;
        }
        let Some(holder) = lca(nodes, &users) else {
            let e = &nodes[users[0]];
            return Err(Error::Unsupported {
                pid: e.pid,
                reason: format!(
                    "not supported: shared memory {} used by processes of different root \
                     subtrees ({}), which have no common ancestor in the tree to hold it",
                    o.name,
                    o.pids(nodes)
                ),
            });
        };
        if let Some(e) = fds.first() {
            let held = fds.iter().any(|f| f.proc == holder);
            if !o.memfd() || !held {
                let why = if !o.memfd() {
                    "a descriptor of a deleted object"
                } else {
                    "a memfd descriptor that their common ancestor does not hold"
                };
                return Err(Error::Unsupported {
                    pid: e.pid,
                    reason: format!(
                        "not supported: fd {} ({}) is the shared memory {} mapped by {}: {why} \
                         cannot be shared again with the mappings",
                        e.fd,
                        e.link,
                        o.name,
                        o.pids(nodes)
                    ),
                });
            }
        }
        out.slots.push(TreeSlotRecord {
            kind: slot_kind::MEMORY,
            holder: holder as u32,
            holder_fd: FD_NO_DUP,
            peer: u32::MAX,
            dev: o.key.0,
            inode: o.key.1,
            size: o.size,
            ..TreeSlotRecord::default()
        });
        out.data.push(Vec::new());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pid: i32, parent: u32) -> Node {
        let fields = vec!["0"; 52].join(" ");
        Node {
            pid,
            parent,
            stat: super::super::procfs::Stat::parse(&format!("{pid} (x) S {fields}")).unwrap(),
            zombie: None,
            comm: [0; 16],
            gone: false,
        }
    }

    #[test]
    fn lowest_common_ancestors() {
        // 0 -> 1 -> 3, 0 -> 2; 4 another root.
        let nodes = [
            node(10, NO_PARENT),
            node(11, 0),
            node(12, 0),
            node(13, 1),
            node(14, NO_PARENT),
        ];
        assert_eq!(lca(&nodes, &[3, 2]), Some(0));
        assert_eq!(lca(&nodes, &[1, 3]), Some(1));
        assert_eq!(lca(&nodes, &[3]), Some(3));
        assert_eq!(lca(&nodes, &[2, 4]), None);
    }

    #[test]
    fn pipe_inodes_from_links() {
        assert_eq!(pipe_ino("pipe:[123]"), Some(123));
        assert_eq!(pipe_ino("socket:[123]"), None);
        assert_eq!(pipe_ino("/tmp/pipe:[1]"), None);
    }
}
