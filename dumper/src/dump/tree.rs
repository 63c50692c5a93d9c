//! Process trees (format 1.4): finding the processes of a tree, freezing
//! them all before any is read, and placing the other processes' images
//! (sub-images) inside the root's image file.
//!
//! Order of the process table: parents before children, depth first;
//! siblings by pid, except that a process-group leader comes before the
//! members of its group among its siblings (they sort at the leader's pid),
//! so `setpgid` at restore finds the group.
//!
//! Freezing: the root's threads are seized first (by the caller); then the
//! children of every seized process are listed again
//! (`/proc/PID/task/*/children`) and the newcomers seized, until a round
//! finds none (a stopped process creates no children). Zombies are not
//! seized: their exit status (field 52 of `/proc/PID/stat`) is recorded.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::AsFd;

use kckpt_image::tree::{proc_state, TreeProcRecord, TreeRecord, NO_PARENT, SUB_IMAGE_ALIGN};
use kckpt_image_write::{ImageWriter, TreeMeta};

use super::procfs;
use super::ptrace::Tracee;
use super::threads;
use crate::error::{Error, Result};

/// One process of the tree, as found.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its pid.
    pub pid: i32,
    /// Index of its parent in the table, or [`NO_PARENT`].
    pub parent: u32,
    /// `/proc/PID/stat` before it was seized (zombies: when found).
    pub stat: procfs::Stat,
    /// A zombie: its wait status. (1.9) Also `Some(0)` for a group
    /// leader that was reaped ([`Node::gone`]): neither has anything to
    /// dump.
    pub zombie: Option<u32>,
    /// Its command name, NUL-padded.
    pub comm: [u8; 16],
    /// (1.9) Not a process: the leader, reaped, of a process group its
    /// parent's children are in (`proc_state::GONE`).
    pub gone: bool,
}

impl Node {
    fn pgid(&self) -> u32 {
        self.stat.num(5) as u32
    }
}

/// The children of `pid` (of all its threads), sorted.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Does `pid` have a child (live or zombie)?
pub fn has_children(pid: i32) -> bool {
    !children(pid).is_empty()
}

/// Siblings in table order: by pid, a group leader before its members.
fn order_siblings(kids: &mut [(i32, procfs::Stat)]) {
    let pids: Vec<i32> = kids.iter().map(|k| k.0).collect();
    kids.sort_by_key(|(pid, st)| {
        let pgid = st.num(5) as i32;
        let group = if pids.contains(&pgid) { pgid } else { *pid };
        (group, *pid != pgid, *pid)
    });
}

/// The trees under `roots` as `/proc` shows them now: `stats` holds the
/// stat read before a process was seized (kept), others are read here. A
/// root that is gone, or already found under an earlier root, is left out.
fn discover(roots: &[i32], stats: &HashMap<i32, procfs::Stat>) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for &root in roots {
        if nodes.iter().any(|n| n.pid == root) {
            continue;
        }
        let stat = match stats.get(&root) {
            Some(s) => s.clone(),
            None => match procfs::stat(root) {
                Ok(s) if s.state() != b'Z' => s,
                _ => continue,
            },
        };
        nodes.push(Node {
            pid: root,
            parent: NO_PARENT,
            stat,
            zombie: None,
            comm: comm_of(root),
            gone: false,
        });
        visit(nodes.len() - 1, &mut nodes, stats);
    }
    nodes
}

/// Append the descendants of `nodes[at]`, depth first.
fn visit(at: usize, nodes: &mut Vec<Node>, stats: &HashMap<i32, procfs::Stat>) {
    if nodes.len() > kckpt_image::tree::MAX_PROCS as usize {
        return;
    }
    let mut kids: Vec<(i32, procfs::Stat)> = children(nodes[at].pid)
        .into_iter()
        .filter_map(|c| {
            let fresh = procfs::stat(c).ok();
            // Once seized, its stat of before is the one kept; a zombie's
            // state is always read afresh.
            let st = match (stats.get(&c), &fresh) {
                (_, Some(f)) if f.state() == b'Z' => fresh.clone(),
                (Some(s), _) => Some(s.clone()),
                _ => fresh,
            }?;
            Some((c, st))
        })
        .collect();
    // (1.9) Groups of its children whose leader was reaped (no process has
    // that pid: a pid stays taken while a group has it): a stand-in each.
    let parent_pgid = nodes[at].pgid();
    let known = |g: i32| kids.iter().any(|k| k.0 == g) || nodes.iter().any(|n| n.pid == g);
    let mut gone: Vec<i32> = Vec::new();
    for (pid, st) in &kids {
        let g = st.num(5) as i32;
        if g != *pid
            && g > 0
            && g as u32 != parent_pgid
            && !known(g)
            && !gone.contains(&g)
            && !std::path::Path::new(&format!("/proc/{g}")).exists()
        {
            gone.push(g);
        }
    }
    for &g in &gone {
        if let Some(stat) = gone_stat(g, nodes[at].pid, &nodes[at].stat) {
            kids.push((g, stat));
        }
    }
    order_siblings(&mut kids);
    for (pid, stat) in kids {
        let is_gone = gone.contains(&pid);
        let zombie = (stat.state() == b'Z' || is_gone).then(|| stat.num(52) as u32);
        nodes.push(Node {
            pid,
            parent: at as u32,
            comm: if is_gone { [0; 16] } else { comm_of(pid) },
            stat,
            zombie,
            gone: is_gone,
        });
        let me = nodes.len() - 1;
        if zombie.is_none() {
            visit(me, nodes, stats);
        }
    }
}

/// The `/proc/PID/stat` a reaped group leader `pgid` would have as a
/// child of `parent` (`parent_stat` its stat): state `X`, its own group,
/// the parent's session, no exit signal, exit code 0.
fn gone_stat(pgid: i32, parent: i32, parent_stat: &procfs::Stat) -> Option<procfs::Stat> {
    let mut fields = vec!["0".to_owned(); 50];
    fields[0] = "X".to_owned(); // field 3
    fields[1] = parent.to_string(); // 4: ppid
    fields[2] = pgid.to_string(); // 5: pgrp
    fields[3] = parent_stat.num(6).to_string(); // 6: session
    procfs::Stat::parse(&format!("{pgid} (gone) {}", fields.join(" ")))
}

/// The frozen tree: its processes in table order and, for each live one,
/// its seized threads (main thread first); `None` for zombies.
pub struct Frozen {
    /// The processes.
    pub nodes: Vec<Node>,
    /// Parallel to `nodes`.
    pub tracees: Vec<Option<Vec<Tracee>>>,
    /// Parallel to `nodes`: the mappings of each live process, read once
    /// for the memory objects they share (empty for a single process,
    /// which shares nothing).
    pub maps: Vec<Option<Vec<procfs::MapEntry>>>,
}

/// What to dump: one process and its descendants, or a process group or
/// session (every member whose parent is not in it, with descendants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `-p PID`.
    Pid(i32),
    /// `--pgid PGID`.
    Pgid(i32),
    /// `--session SID`.
    Session(i32),
}

impl Scope {
    /// `TreeRecord::flags` of a tree dumped this way.
    pub fn flags(self) -> u32 {
        match self {
            Scope::Pid(_) => 0,
            Scope::Pgid(_) => kckpt_image::tree::tree_flags::PGID,
            Scope::Session(_) => kckpt_image::tree::tree_flags::SESSION,
        }
    }

    /// The roots of the tree now: for a group or session, its live
    /// members none of whose ancestors is a member, the one whose tree
    /// holds the group or session leader first, then by pid.
    pub fn roots(self) -> Vec<i32> {
        let (field, id) = match self {
            Scope::Pid(pid) => return vec![pid],
            Scope::Pgid(id) => (5, id),
            Scope::Session(id) => (6, id),
        };
        if id <= 0 {
            return Vec::new();
        }
        let mut parent: HashMap<i32, i32> = HashMap::new();
        let mut members = Vec::new();
        let procs = fs::read_dir("/proc").into_iter().flatten().flatten();
        for pid in procs.filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok()) {
            let Ok(st) = procfs::stat(pid) else { continue };
            parent.insert(pid, st.ppid() as i32);
            if st.num(field) as i32 == id && st.state() != b'Z' {
                members.push(pid);
            }
        }
        let mut roots: Vec<i32> = members
            .iter()
            .copied()
            .filter(|&m| {
                let mut at = parent.get(&m).copied().unwrap_or(0);
                for _ in 0..parent.len() {
                    if at <= 1 {
                        return true;
                    }
                    if members.contains(&at) {
                        return false;
                    }
                    at = parent.get(&at).copied().unwrap_or(0);
                }
                true
            })
            .collect();
        // The root whose tree holds the leader first (it must exist before
        // the members join its group or session), then by pid.
        let mut leader_root = id;
        for _ in 0..parent.len() {
            if roots.contains(&leader_root) || leader_root <= 1 {
                break;
            }
            leader_root = parent.get(&leader_root).copied().unwrap_or(0);
        }
        roots.sort_unstable_by_key(|&r| (r != leader_root, r));
        roots
    }

    /// What the scope names, for messages.
    pub fn describe(self) -> String {
        match self {
            Scope::Pid(pid) => format!("process {pid}"),
            Scope::Pgid(id) => format!("process group {id}"),
            Scope::Session(id) => format!("session {id}"),
        }
    }
}

/// Refuse a process suspended in `vfork` (its child shares its memory
/// until it execs or exits): `PTRACE_INTERRUPT` cannot stop it (it sleeps
/// killably until the child is done), and separate processes could not
/// rebuild the pair. Checked before it is seized.
pub fn refuse_vfork_parent(pid: i32) -> Result<()> {
    for c in children(pid) {
        if super::fdsys::shares(c, pid, 1) {
            return Err(Error::Unsupported {
                pid: c,
                reason: format!(
                    "not supported: it shares its memory with its parent {pid} (vfork or \
                     CLONE_VM), which separate processes cannot rebuild"
                ),
            });
        }
    }
    Ok(())
}

/// The pids of the trees of `scope` now (roots and all descendants).
pub fn all_pids(scope: Scope) -> Vec<i32> {
    let mut out = scope.roots();
    let mut at = 0;
    while at < out.len() && out.len() <= kckpt_image::tree::MAX_PROCS as usize {
        let kids = children(out[at]);
        out.extend(
            kids.into_iter()
                .filter(|k| !out.contains(k))
                .collect::<Vec<_>>(),
        );
        at += 1;
    }
    out
}

/// Seize every live process of the trees of `scope` (`seized`: processes
/// already seized, with their stat from before), listing them again until
/// no newcomer appears. Every error resumes whatever was seized (the
/// tracees' `Drop`).
pub fn freeze(scope: Scope, seized: Vec<(i32, procfs::Stat, Vec<Tracee>)>) -> Result<Frozen> {
    let mut stats: HashMap<i32, procfs::Stat> = HashMap::new();
    let mut held: HashMap<i32, Vec<Tracee>> = HashMap::new();
    for (pid, stat, t) in seized {
        stats.insert(pid, stat);
        held.insert(pid, t);
    }
    let first = scope.roots().first().copied().unwrap_or(0);
    for _round in 0..1000 {
        let nodes = discover(&scope.roots(), &stats);
        let me = std::process::id() as i32;
        if let Some(n) = nodes.iter().find(|n| n.pid == me) {
            return Err(Error::Usage(format!(
                "kckpt itself (pid {}) would be in the dump of {}: run it from outside \
                 (another session or process group)",
                n.pid,
                scope.describe()
            )));
        }
        if nodes.len() > kckpt_image::tree::MAX_PROCS as usize {
            return Err(Error::Unsupported {
                pid: first,
                reason: format!(
                    "the process tree has more than {} processes",
                    kckpt_image::tree::MAX_PROCS
                ),
            });
        }
        let mut added = false;
        for n in nodes.iter().filter(|n| n.zombie.is_none()) {
            if held.contains_key(&n.pid) {
                continue;
            }
            if let Some((tid, tracer, comm)) = super::files::traced_by(n.pid) {
                return Err(Error::Unsupported {
                    pid: n.pid,
                    reason: format!(
                        "ptrace: {} is traced by pid {tracer} ({comm}), which must detach first",
                        if tid == n.pid {
                            "it".to_owned()
                        } else {
                            format!("its thread {tid}")
                        }
                    ),
                });
            }
            refuse_vfork_parent(n.pid)?;
            let before = procfs::stat(n.pid).ok();
            match threads::seize_all(n.pid) {
                Ok(t) => {
                    held.insert(n.pid, t);
                    if let Some(b) = before {
                        stats.insert(n.pid, b);
                    }
                    added = true;
                }
                // It exited (or became a zombie) meanwhile: the next round
                // sees it as it is now.
                Err(_) if procfs::stat(n.pid).is_ok_and(|s| s.state() != b'Z') => {
                    return Err(Error::Unsupported {
                        pid: n.pid,
                        reason: "it could not be stopped (ptrace seize failed)".into(),
                    });
                }
                Err(_) => added = true,
            }
        }
        if !added {
            if nodes.is_empty() {
                return Err(Error::Usage(format!(
                    "no process to dump in {}",
                    scope.describe()
                )));
            }
            let mut tracees = Vec::with_capacity(nodes.len());
            for n in &nodes {
                tracees.push(if n.zombie.is_some() {
                    None
                } else {
                    held.remove(&n.pid)
                });
            }
            check_relations(&nodes)?;
            let live = nodes.iter().filter(|n| n.zombie.is_none()).count();
            let maps = if live > 1 {
                tree_maps(&nodes)?
            } else {
                Vec::new()
            };
            check_shared_memory(&nodes, &maps)?;
            // Seized processes that left the tree (their parent died) are
            // resumed by the drop of `held`.
            return Ok(Frozen {
                nodes,
                tracees,
                maps,
            });
        }
    }
    Err(Error::Unsupported {
        pid: first,
        reason: "its descendants kept multiplying while they were being stopped".into(),
    })
}

/// Refuse, by name, what `fork`, `setsid` and `setpgid` in table order
/// cannot rebuild: a process sharing its memory, descriptor table, `fs` or
/// signal handlers with its parent (`kcmp`: a vfork child, a `clone`
/// without `CLONE_THREAD`), a process in the session of a process of the tree that
/// is neither itself nor inherited from its parent (its parent changed
/// session after forking it), or in the group of a process of the tree
/// that comes later in the table.
fn check_relations(nodes: &[Node]) -> Result<()> {
    let index = |pid: u32| nodes.iter().position(|n| n.pid as u32 == pid);
    for (i, n) in nodes.iter().enumerate() {
        if n.parent != NO_PARENT && n.zombie.is_none() {
            let parent = nodes[n.parent as usize].pid;
            let shared = [
                (1, "its memory (vfork or CLONE_VM)"),
                (2, "its descriptor table (CLONE_FILES)"),
                (3, "its working directory and umask (CLONE_FS)"),
                (4, "its signal handlers (CLONE_SIGHAND)"),
            ];
            for (kind, what) in shared {
                if super::fdsys::shares(n.pid, parent, kind) {
                    return Err(Error::Unsupported {
                        pid: n.pid,
                        reason: format!(
                            "not supported: it shares {what} with its parent {parent}, \
                             which separate processes cannot rebuild"
                        ),
                    });
                }
            }
        }
        let sid = n.stat.num(6) as u32;
        let pgid = n.pgid();
        let parent_sid =
            (n.parent != NO_PARENT).then(|| nodes[n.parent as usize].stat.num(6) as u32);
        // A session that is neither its own nor its parent's (for a root:
        // one led by a process of the tree) cannot be had by fork+setsid.
        let foreign_sid = sid != n.pid as u32
            && match parent_sid {
                Some(p) => p != sid,
                None => index(sid).is_some(),
            };
        if foreign_sid {
            return Err(Error::Unsupported {
                pid: n.pid,
                reason: format!(
                    "not supported: it is in session {sid}, neither its own nor inherited \
                     from a parent in the tree (its parent changed session after forking it, \
                     or it was reparented): setsid cannot rebuild that"
                ),
            });
        }
        // What the restore checks (`stub/src/tree.rs` `check_groups`), so
        // that no tree is killed whose image the restore would refuse.
        let parent = (n.parent != NO_PARENT).then(|| &nodes[n.parent as usize]);
        if pgid != n.pid as u32 && index(pgid).is_none() && parent.is_some_and(|p| p.pgid() != pgid)
        {
            return Err(Error::Unsupported {
                pid: n.pid,
                reason: format!(
                    "not supported: it is in process group {pgid}, whose leader is not \
                     dumped (a process outside the tree) and which is not its parent's: \
                     setpgid cannot rebuild that"
                ),
            });
        }
        if let Some(leader) = index(pgid).filter(|&l| nodes[l].gone && l != i) {
            if nodes[leader].parent != n.parent {
                return Err(Error::Unsupported {
                    pid: n.pid,
                    reason: format!(
                        "not supported: it is in process group {pgid}, whose leader exited, \
                         with members that are not all children of one process: setpgid \
                         cannot rebuild that"
                    ),
                });
            }
        }
        if let Some(leader) = index(pgid) {
            if leader > i {
                return Err(Error::Unsupported {
                    pid: n.pid,
                    reason: format!(
                        "not supported: it is in process group {pgid}, whose leader comes \
                         after it in the process tree (neither its ancestor nor in an earlier \
                         subtree): setpgid cannot rebuild that"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Refuse a tree whose processes map the same kernel-only memory object
/// that a `MEMORY` slot cannot carry (processes with no common ancestor in
/// the tree: [`super::tree_memory`]); the others become
/// slots (`shared::analyze`).
fn check_shared_memory(nodes: &[Node], maps: &[Option<Vec<procfs::MapEntry>>]) -> Result<()> {
    let objects = super::tree_memory::memory_objects(maps, super::page_size());
    let reasons = super::tree_memory::shared_memory_reasons(nodes, &objects);
    match reasons.first() {
        None => Ok(()),
        Some(_) => Err(Error::Unsupported {
            pid: nodes[0].pid,
            reason: format!("not supported: {}", reasons.join(", ")),
        }),
    }
}

/// The mappings of every live process of the tree (`None` for zombies).
fn tree_maps(nodes: &[Node]) -> Result<Vec<Option<Vec<procfs::MapEntry>>>> {
    nodes
        .iter()
        .map(|n| match n.zombie {
            Some(_) => Ok(None),
            None => Ok(Some(procfs::maps(n.pid)?)),
        })
        .collect()
}

/// `TreeRecord::status_proc`: the root for `-p`; the last root in table
/// order for `--pgid` (the last stage of a pipeline, whose status a shell
/// reports); the session leader for `--session` when it is in the tree,
/// else the first root.
pub fn status_proc(nodes: &[Node], group: Option<Scope>) -> u32 {
    match group {
        None | Some(Scope::Pid(_)) => 0,
        Some(Scope::Pgid(_)) => nodes
            .iter()
            .rposition(|n| n.parent == NO_PARENT)
            .unwrap_or(0) as u32,
        Some(Scope::Session(sid)) => nodes.iter().position(|n| n.pid == sid).unwrap_or(0) as u32,
    }
}

/// A sub-image placed in the root's file: where, its length and
/// `image_sum`.
pub struct SubImage {
    /// Its offset in the file (a multiple of [`SUB_IMAGE_ALIGN`]).
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// CRC-32C of its `NT_KCKPT_CHECKSUMS` descriptor.
    pub sum: u32,
}

/// Reserve a 64 KiB-aligned region of `writer` for the sub-image of `len`
/// bytes in `file` and copy it in; returns its offset.
pub fn place_sub(writer: &mut ImageWriter, file: &File, len: u64) -> std::io::Result<u64> {
    let at = writer.reserve_region(len + SUB_IMAGE_ALIGN);
    let at = at.next_multiple_of(SUB_IMAGE_ALIGN);
    copy_into(file, writer.file(), at, len)?;
    Ok(at)
}

/// What the root's image needs to carry the tree: the processes, their
/// sub-images (by table index) and the slot base.
pub struct TreePlan {
    /// The processes, in table order.
    pub nodes: Vec<Node>,
    /// Thread counts, parallel to `nodes` (0 for zombies).
    pub threads: Vec<u32>,
    /// Sub-images of the live processes but the root, by table index.
    pub subs: HashMap<usize, SubImage>,
    /// The shared descriptions (slots) and their uses.
    pub sharing: super::shared::Sharing,
    /// `TreeRecord::slot_base`.
    pub slot_base: u32,
    /// `TreeRecord::status_proc`.
    pub status_proc: u32,
    /// `TreeRecord::flags`.
    pub flags: u32,
}

/// The tree notes (the sub-images are placed already, [`place_sub`]);
/// pipe data is written here.
pub fn place(writer: &mut ImageWriter, plan: &TreePlan) -> std::io::Result<TreeMeta> {
    let mut procs = Vec::with_capacity(plan.nodes.len());
    for (i, n) in plan.nodes.iter().enumerate() {
        let mut rec = TreeProcRecord {
            pid: n.pid as u32,
            parent: n.parent,
            pgid: n.pgid(),
            sid: n.stat.num(6) as u32,
            exit_signal: n.stat.num(38) as u32,
            state: if n.gone {
                proc_state::GONE
            } else if n.zombie.is_some() {
                proc_state::ZOMBIE
            } else {
                proc_state::LIVE
            },
            wait_status: n.zombie.unwrap_or(0),
            threads: plan.threads[i],
            name: n.comm,
            ..TreeProcRecord::default()
        };
        if let Some(sub) = plan.subs.get(&i) {
            rec.image_offset = sub.offset;
            rec.image_len = sub.len;
            rec.image_sum = sub.sum;
        }
        procs.push(rec);
    }
    // The bytes in flight of split pipes, checksummed as data regions.
    let mut slots = plan.sharing.slots.clone();
    for (slot, data) in slots.iter_mut().zip(&plan.sharing.data) {
        if !data.is_empty() {
            let at = writer.reserve_region(data.len() as u64);
            writer.write_data(at, data)?;
            slot.data_offset = at;
            slot.data_len = data.len() as u64;
        }
    }
    Ok(TreeMeta {
        tree: TreeRecord {
            procs: procs.len() as u32,
            slots: slots.len() as u32,
            slot_base: plan.slot_base,
            status_proc: plan.status_proc,
            flags: plan.flags,
            reserved: [0; 3],
        },
        procs,
        slots,
        uses: plan.sharing.uses.clone(),
    })
}

/// The command name of `pid`, NUL-padded (empty if it is gone).
fn comm_of(pid: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(c) = procfs::comm(pid) {
        let n = c.len().min(15);
        out[..n].copy_from_slice(&c[..n]);
    }
    out
}

/// Copy `len` bytes of `from` (from its start) to `to` at `at`: only its
/// data ranges (`SEEK_DATA`/`SEEK_HOLE`: the holes of unstored pages stay
/// holes), each with `copy_file_range`, falling back to reads and writes.
fn copy_into(from: &File, to: &File, at: u64, len: u64) -> std::io::Result<()> {
    use nix::unistd::{lseek, Whence};
    let mut pos = 0u64;
    while pos < len {
        let start = match lseek(from.as_fd(), pos as i64, Whence::SeekData) {
            Ok(s) => s as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) => pos,
        };
        if start >= len {
            break;
        }
        let end = lseek(from.as_fd(), start as i64, Whence::SeekHole)
            .map_or(len, |e| e as u64)
            .min(len);
        copy_range(from, to, start, at + start, end - start)?;
        pos = end;
    }
    Ok(())
}

/// Copy `len` bytes of `from` at `src` to `to` at `dst`.
fn copy_range(from: &File, to: &File, src: u64, dst: u64, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut done = 0u64;
    while done < len {
        let mut off_in = (src + done) as i64;
        let mut off_out = (dst + done) as i64;
        let want = (len - done).min(1 << 30) as usize;
        match nix::fcntl::copy_file_range(
            from.as_fd(),
            Some(&mut off_in),
            to.as_fd(),
            Some(&mut off_out),
            want,
        ) {
            Ok(0) => {
                return Err(std::io::Error::other(
                    "a process's image ended before its length",
                ))
            }
            Ok(n) => done += n as u64,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => {
                let mut buf = vec![0u8; 1 << 20];
                while done < len {
                    let n = (len - done).min(buf.len() as u64) as usize;
                    from.read_exact_at(&mut buf[..n], src + done)?;
                    to.write_all_at(&buf[..n], dst + done)?;
                    done += n as u64;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/PID/stat` line with `ppid`, `pgid` and `sid`.
    fn stat(pid: i32, ppid: i32, pgid: i32, sid: i32) -> procfs::Stat {
        let mut fields = vec!["0".to_owned(); 52];
        fields[0] = "S".into();
        fields[1] = ppid.to_string();
        fields[2] = pgid.to_string();
        fields[3] = sid.to_string();
        procfs::Stat::parse(&format!("{pid} (x) {}", fields.join(" "))).unwrap()
    }

    fn node(pid: i32, parent: u32, pgid: i32, sid: i32) -> Node {
        Node {
            pid,
            parent,
            stat: stat(pid, 0, pgid, sid),
            zombie: None,
            comm: [0; 16],
            gone: false,
        }
    }

    #[test]
    fn a_group_leader_comes_before_its_sibling_members() {
        let mut kids = vec![
            (5, stat(5, 1, 7, 1)),
            (6, stat(6, 1, 6, 1)),
            (7, stat(7, 1, 7, 1)),
            (8, stat(8, 1, 1, 1)),
        ];
        order_siblings(&mut kids);
        let order: Vec<i32> = kids.iter().map(|k| k.0).collect();
        assert_eq!(order, [6, 7, 5, 8]);
    }

    #[test]
    fn status_process_by_scope() {
        let nodes = [
            node(10, NO_PARENT, 10, 1),
            node(11, 0, 10, 1),
            node(12, NO_PARENT, 10, 1),
        ];
        assert_eq!(status_proc(&nodes, None), 0);
        assert_eq!(status_proc(&nodes, Some(Scope::Pgid(10))), 2);
        assert_eq!(status_proc(&nodes, Some(Scope::Session(12))), 2);
        assert_eq!(status_proc(&nodes, Some(Scope::Session(99))), 0);
    }

    #[test]
    fn groups_and_sessions_that_cannot_be_rebuilt_are_found() {
        // Pids above the largest pid_max (4194304): kcmp finds no such
        // processes. 21 is in 20's session, inherited from 20: fine; 22 (child of 21,
        // which made a session of its own) is still in 20's: refused.
        let ok = [
            node(4194420, NO_PARENT, 4194420, 4194420),
            node(4194421, 0, 4194420, 4194420),
        ];
        check_relations(&ok).unwrap();
        let bad = [
            node(4194420, NO_PARENT, 4194420, 4194420),
            node(4194421, 0, 4194421, 4194421),
            node(4194422, 1, 4194420, 4194420),
        ];
        let e = check_relations(&bad).unwrap_err().to_string();
        assert!(
            e.contains("pid 4194422") && e.contains("session 4194420"),
            "{e}"
        );
        // 31 is in the group of 32, a later sibling's child.
        let late = [
            node(4194430, NO_PARENT, 1, 1),
            node(4194431, 0, 4194432, 1),
            node(4194433, 0, 1, 1),
            node(4194432, 2, 4194432, 1),
        ];
        let e = check_relations(&late).unwrap_err().to_string();
        assert!(
            e.contains("pid 4194431") && e.contains("group 4194432"),
            "{e}"
        );
        // 42, a child of 40, is in the group of 41, not in the tree (a
        // process outside it), and 40 is not in it.
        let outside = [
            node(4194440, NO_PARENT, 4194440, 1),
            node(4194442, 0, 4194441, 1),
        ];
        let e = check_relations(&outside).unwrap_err().to_string();
        assert!(
            e.contains("pid 4194442") && e.contains("group 4194441") && e.contains("outside"),
            "{e}"
        );
        // zdtm's zombie01 (1.9): 41 exited and was reaped, a gone record
        // under 40; 42, 40's child, is in its group; 43, 42's child, too,
        // which a stand-in 40 forks cannot give it.
        let mut leader = node(4194441, 0, 4194441, 1);
        leader.gone = true;
        leader.zombie = Some(0);
        let mut gone = vec![
            node(4194440, NO_PARENT, 4194440, 1),
            leader,
            node(4194442, 0, 4194441, 1),
        ];
        check_relations(&gone).expect("members under the gone leader's parent");
        gone.push(node(4194443, 2, 4194441, 1));
        let e = check_relations(&gone).unwrap_err().to_string();
        assert!(
            e.contains("pid 4194443") && e.contains("group 4194441") && e.contains("exited"),
            "{e}"
        );
        // A session neither its own nor its parent's (not in the tree).
        let sess = [
            node(4194450, NO_PARENT, 4194450, 4194450),
            node(4194451, 0, 4194451, 7),
        ];
        let e = check_relations(&sess).unwrap_err().to_string();
        assert!(e.contains("pid 4194451") && e.contains("session 7"), "{e}");
    }
}
