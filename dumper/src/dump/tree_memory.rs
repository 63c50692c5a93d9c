//! Memory objects several processes of a tree use: which become `MEMORY`
//! slots (one object for the whole tree at restore), and which are still
//! refused, named before anything is killed.
//!
//! Each process of a tree is restored from its own sub-image, so a memory
//! object that lives only in the kernel — shared anonymous memory
//! (`/dev/zero (deleted)`), a memfd, a deleted file such as
//! a POSIX semaphore in `/dev/shm` — would come back as one private copy
//! per process. Such an object mapped by two or more processes becomes a
//! `MEMORY` slot instead: its holder (the lowest common ancestor of the
//! processes using it) creates one memfd of the object's size before it
//! forks its children, and every process maps its VMAs of that object from
//! it ([`memory_objects`], `shared::analyze` makes the slots). Still
//! refused ([`shared_memory_reasons`]): objects whose users have no common
//! ancestor in the tree (processes of different root subtrees of
//! `--pgid`/`--session`). SysV segments are none of these: they are
//! re-created under their ids in the tree's new IPC namespace, where every
//! process attaches them again (`sysv`).
//! Mappings of files that exist on disk are shared again through the file
//! itself, and private mappings of deleted files need nothing shared
//! (their pages are stored).

use std::collections::BTreeMap;

use super::procfs::MapEntry;
use super::shared::lca;
use super::tree::Node;

/// Does this mapping's object live only in the kernel (nothing on disk
/// each process could map again)?
fn kernel_only(e: &MapEntry) -> bool {
    e.name == "/dev/zero (deleted)"
        || e.name.starts_with("/memfd:")
        || (e.name.ends_with(" (deleted)") && !super::sysv::is_attachment(e))
}

/// The object a mapping shares with other processes, if it is a
/// kernel-only object: `(dev, inode)` and its name for messages.
fn shared_object(e: &MapEntry) -> Option<((u64, u64), &str)> {
    // A private mapping of a kernel-only object still reads the object's
    // pages it has not written: it depends on the object as much.
    (kernel_only(e)
        && (e.shared || e.name == "/dev/zero (deleted)" || e.name.starts_with("/memfd:")))
    .then_some(((e.dev, e.inode), e.name.as_str()))
}

/// A kernel-only memory object mapped by processes of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// `(dev, inode)` as in `/proc/PID/maps` (and the VMA records).
    pub key: (u64, u64),
    /// Its name in maps, for messages.
    pub name: String,
    /// The processes (table indices) mapping it, in table order.
    pub procs: Vec<usize>,
    /// The highest file offset any of them maps, page-rounded.
    pub size: u64,
}

impl Object {
    /// A memfd (its descriptor can be the object itself).
    pub fn memfd(&self) -> bool {
        self.name.starts_with("/memfd:")
    }

    /// `processes A, B and C` (pids).
    pub fn pids(&self, nodes: &[Node]) -> String {
        let list: Vec<String> = self
            .procs
            .iter()
            .map(|&p| nodes[p].pid.to_string())
            .collect();
        match list.split_last() {
            Some((last, rest)) if !rest.is_empty() => {
                format!("processes {} and {last}", rest.join(", "))
            }
            _ => format!("process {}", list.join("")),
        }
    }
}

/// Every kernel-only object mapped by a process of the tree; `maps` is
/// parallel to `nodes` (`None` for zombies).
pub fn memory_objects(maps: &[Option<Vec<MapEntry>>], page: u64) -> Vec<Object> {
    let mut out: BTreeMap<(u64, u64), Object> = BTreeMap::new();
    for (i, list) in maps.iter().enumerate() {
        for e in list.iter().flatten() {
            let Some((key, name)) = shared_object(e) else {
                continue;
            };
            let o = out.entry(key).or_insert_with(|| Object {
                key,
                name: name.to_owned(),
                procs: Vec::new(),
                size: 0,
            });
            if !o.procs.contains(&i) {
                o.procs.push(i);
            }
            o.size = o.size.max((e.offset + e.len()).next_multiple_of(page));
        }
    }
    out.into_values().collect()
}

/// One refusal per kernel-only memory object that several processes of
/// the tree map and that a `MEMORY` slot cannot carry: an object whose
/// processes have no common ancestor in the tree.
pub fn shared_memory_reasons(nodes: &[Node], objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| o.procs.len() > 1)
        .filter_map(|o| {
            let name = &o.name;
            let pids = o.pids(nodes);
            if lca(nodes, &o.procs).is_none() {
                Some(format!(
                    "shared memory {name} mapped by {pids}, which have no common ancestor in \
                     the tree to hold it"
                ))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::procfs::parse_maps_line;
    use kckpt_image::tree::NO_PARENT;

    fn maps(lines: &[&str]) -> Option<Vec<MapEntry>> {
        Some(lines.iter().map(|l| parse_maps_line(l).unwrap()).collect())
    }

    fn node(pid: i32, parent: u32) -> Node {
        let fields = vec!["0"; 52].join(" ");
        Node {
            pid,
            parent,
            stat: crate::dump::procfs::Stat::parse(&format!("{pid} (x) S {fields}")).unwrap(),
            zombie: None,
            comm: [0; 16],
            gone: false,
        }
    }

    const SHM: &str = "7f0000000000-7f0000002000 rw-s 00001000 00:01 1234 /dev/zero (deleted)";
    const FILE: &str = "7f0000002000-7f0000003000 rw-s 00000000 08:01 99 /home/u/data";
    const PRIVATE: &str = "7f0000004000-7f0000005000 rw-p 00000000 00:00 0 ";

    #[test]
    fn kernel_only_objects_are_found_with_their_size() {
        let objs = memory_objects(&[maps(&[SHM, FILE, PRIVATE]), None, maps(&[SHM])], 4096);
        assert_eq!(objs.len(), 1, "{objs:?}");
        assert_eq!(objs[0].key, (1, 1234));
        assert_eq!(objs[0].procs, [0, 2]);
        assert_eq!(objs[0].size, 0x3000);
    }

    #[test]
    fn shared_objects_with_a_common_ancestor_are_not_refused() {
        let nodes = [node(10, NO_PARENT), node(11, 0), node(12, 0)];
        let objs = memory_objects(&[maps(&[SHM]), maps(&[SHM]), maps(&[SHM])], 4096);
        assert!(shared_memory_reasons(&nodes, &objs).is_empty());
    }

    #[test]
    fn objects_of_separate_roots_are_named_and_sysv_is_no_slot() {
        let sysv = "7f0000000000-7f0000001000 rw-s 00000000 00:01 77 /SYSV00000000 (deleted)";
        let nodes = [node(10, NO_PARENT), node(11, NO_PARENT)];
        let objs = memory_objects(&[maps(&[sysv, SHM]), maps(&[sysv, SHM])], 4096);
        let reasons = shared_memory_reasons(&nodes, &objs);
        assert_eq!(objs.len(), 1, "{objs:?}");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].contains("/dev/zero (deleted)") && reasons[0].contains("no common ancestor"),
            "{reasons:?}"
        );
    }
}
