//! The settings of the process's cgroups (`NT_KCKPT_CGROUP_PROPS`): the
//! owner-writable files of each saved cgroup directory that hold a value
//! the stub can write back into a cgroup it has to create again.
//!
//! Left out: membership files (`cgroup.procs`, `tasks`,
//! `cgroup.threads`), actions rather than settings (`cgroup.kill`,
//! `memory.reclaim`, `memory.force_empty`, `cgroup.event_control`,
//! pressure triggers `*.pressure`), `release_agent` (a command the
//! kernel runs as root: never written back from an image), and
//! `cgroup.freeze` (a cgroup re-created frozen would stop the restored
//! process before it runs). A file that cannot be read (write-only ones)
//! is left out; one larger than [`MAX_PROP_VALUE`] is left out with a
//! warning naming it. The device list of a v1 `devices` cgroup is set
//! through write-only files (`devices.allow`, `devices.deny`): its
//! read-only `devices.list` is saved instead, and written back as "deny
//! everything, then allow each line".

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kckpt_image::cgroup_props::{CgroupPropRecord, MAX_PROP_VALUE};
use kckpt_image_write::StringTable;

/// Files that are not settings (see the module documentation).
fn excluded(name: &str) -> bool {
    matches!(
        name,
        "cgroup.procs"
            | "tasks"
            | "cgroup.threads"
            | "cgroup.kill"
            | "cgroup.freeze"
            | "cgroup.event_control"
            | "memory.reclaim"
            | "memory.force_empty"
            | "release_agent"
    ) || name.ends_with(".pressure")
}

/// The settings of the cgroup directory `dir` (record `index`), sorted by
/// name; `warnings` gets a line for each one too large to save.
pub fn settings(
    index: u32,
    dir: &Path,
    strings: &mut StringTable,
    warnings: &mut Vec<String>,
) -> Vec<CgroupPropRecord> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name() == "devices.list"
                || e.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o200 != 0)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !excluded(n))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Ok(value) = fs::read(dir.join(&name)) else {
            continue;
        };
        if value.len() > MAX_PROP_VALUE {
            warnings.push(format!(
                "warning: cgroup setting {}/{name} ({} bytes) is larger than {MAX_PROP_VALUE} \
                 bytes: not saved (a cgroup re-created at restore gets its default)",
                dir.display(),
                value.len()
            ));
            continue;
        }
        if value.contains(&0) {
            continue;
        }
        out.push(CgroupPropRecord {
            cgroup: index,
            flags: 0,
            name: strings.add(name.as_bytes()),
            value: strings.add(&value),
            reserved: [0; 2],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_membership_are_not_settings() {
        for n in [
            "cgroup.procs",
            "tasks",
            "cgroup.freeze",
            "io.pressure",
            "release_agent",
        ] {
            assert!(excluded(n), "{n}");
        }
        for n in [
            "pids.max",
            "net_prio.ifpriomap",
            "notify_on_release",
            "cpuset.cpus",
        ] {
            assert!(!excluded(n), "{n}");
        }
    }
}
