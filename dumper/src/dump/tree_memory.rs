//! Memory objects several processes of a tree map: which of them a tree
//! image cannot share again, named before anything is killed.
//!
//! Each process of a tree is restored from its own sub-image, so a memory
//! object that lives only in the kernel — shared anonymous memory
//! (`/dev/zero (deleted)`), a memfd, a SysV segment, a deleted file —
//! would come back as one private copy per process: writes of one would no
//! longer reach the others. Until the format can carry such objects once
//! for the whole tree, a tree whose processes map the same one of them is
//! refused, naming the object and the processes. Mappings of files that
//! exist on disk are shared again through the file itself, and private
//! mappings of kernel-only objects need nothing shared (copy-on-write pages
//! stay private to each process).

use std::collections::BTreeMap;

use super::procfs::MapEntry;

/// Does this mapping's object live only in the kernel (nothing on disk
/// each process could map again)?
fn kernel_only(e: &MapEntry) -> bool {
    e.name == "/dev/zero (deleted)"
        || e.name.starts_with("/memfd:")
        || e.name.starts_with("/SYSV")
        || e.name.ends_with(" (deleted)")
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

/// One refusal per kernel-only memory object that more than one process of
/// `procs` (pid and its mappings) maps: "shared memory NAME mapped by
/// processes A and B".
pub fn shared_memory_reasons(procs: &[(i32, Vec<MapEntry>)]) -> Vec<String> {
    let mut users: BTreeMap<(u64, u64), (String, Vec<i32>)> = BTreeMap::new();
    for (pid, maps) in procs {
        for e in maps {
            if let Some((key, name)) = shared_object(e) {
                let entry = users
                    .entry(key)
                    .or_insert_with(|| (name.to_owned(), Vec::new()));
                if !entry.1.contains(pid) {
                    entry.1.push(*pid);
                }
            }
        }
    }
    users
        .into_values()
        .filter(|(_, pids)| pids.len() > 1)
        .map(|(name, pids)| {
            let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
            let (last, rest) = list.split_last().expect("two or more");
            format!(
                "shared memory {name} mapped by processes {} and {last} (it would come back \
                 as one copy per process)",
                rest.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::procfs::parse_maps_line;

    fn maps(lines: &[&str]) -> Vec<MapEntry> {
        lines.iter().map(|l| parse_maps_line(l).unwrap()).collect()
    }

    #[test]
    fn kernel_only_objects_mapped_by_two_processes_are_named() {
        let shm = "7f0000000000-7f0000001000 rw-s 00000000 00:01 1234 /dev/zero (deleted)";
        let file = "7f0000002000-7f0000003000 rw-s 00000000 08:01 99 /home/u/data";
        let private = "7f0000004000-7f0000005000 rw-p 00000000 00:00 0 ";
        let a = (10, maps(&[shm, file, private]));
        let b = (11, maps(&[shm, file, private]));
        let reasons = shared_memory_reasons(&[a, b]);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("/dev/zero (deleted)"), "{reasons:?}");
        assert!(reasons[0].contains("processes 10 and 11"), "{reasons:?}");
    }

    #[test]
    fn objects_of_one_process_only_are_fine() {
        let memfd = "7f0000000000-7f0000001000 rw-s 00000000 00:01 77 /memfd:x (deleted)";
        let other = "7f0000000000-7f0000001000 rw-s 00000000 00:01 78 /memfd:x (deleted)";
        let reasons = shared_memory_reasons(&[(1, maps(&[memfd, memfd])), (2, maps(&[other]))]);
        assert!(reasons.is_empty(), "{reasons:?}");
    }
}
