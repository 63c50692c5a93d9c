//! Memory beyond private mappings survives a checkpoint: shared anonymous
//! memory, a memfd mapped twice, a `MAP_SHARED` file mapping, `PROT_NONE`
//! guard areas, a transparent-huge-page area and areas with madvise/mlock
//! flags (`tests/programs/memkinds.c`). Checked from inside (contents, and
//! sharing with a forked child) and from outside: `/proc/PID/maps` and the
//! `VmFlags` of `/proc/PID/smaps` are the same before and after.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use common::*;

/// `/proc/PID/maps` with the inode of shared memory objects blanked: a
/// restored shared anonymous area or memfd is a new object of the same
/// size and name, so its inode number differs.
fn maps_normalized(pid: i32) -> Vec<String> {
    maps(pid)
        .into_iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            let name = f.get(5).map(|s| s.trim_start()).unwrap_or("");
            if name.starts_with("/dev/zero (deleted)") || name.starts_with("/memfd:") {
                format!("{} {} {} {} INODE {name}", f[0], f[1], f[2], f[3])
            } else {
                l
            }
        })
        .collect()
}

/// Range -> (VmFlags, AnonHugePages kB) from `/proc/PID/smaps`.
fn smaps_flags(pid: i32) -> BTreeMap<String, (String, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read smaps");
    let mut out = BTreeMap::new();
    let mut range = String::new();
    let mut huge = 0;
    for line in text.lines() {
        let first = line.split(' ').next().unwrap_or("");
        if first.contains('-') && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            range = first.to_owned();
            huge = 0;
        } else if let Some(kb) = line.strip_prefix("AnonHugePages:") {
            huge = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            let mut f: Vec<&str> = flags.split_whitespace().collect();
            f.sort_unstable();
            out.insert(range.clone(), (f.join(" "), huge));
        }
    }
    out
}

fn diff(a: &[String], b: &[String]) -> String {
    let mut out = String::new();
    for l in a.iter().filter(|l| !b.contains(l)) {
        out += &format!("- {l}\n");
    }
    for l in b.iter().filter(|l| !a.contains(l)) {
        out += &format!("+ {l}\n");
    }
    out
}

/// `check0` leaves the areas only a child or `write(2)` filled untouched
/// (out of the process's page tables, invisible to pagemap) until after
/// the restore, where `check` reads them too.
fn check(p: &mut Proc, when: &str, command: &str) {
    p.write_stdin(&format!("{command}\n"));
    let line = p.line(LINE_TIMEOUT);
    if line != "check ok" {
        p.fail(&format!("{when}: {line:?}"));
    }
}

#[test]
fn shared_memfd_guard_thp_and_madvise_areas_survive() {
    let dir = TestDir::new("memkinds");
    let image = dir.join("memkinds.kckpt");
    let data = dir.path().to_str().expect("utf-8 path").to_owned();
    let mut p = Proc::spawn("memkinds", Command::new(prog::MEMKINDS).arg(&data));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    check(&mut p, "before the dump", "check0");
    let maps_before = maps_normalized(p.pid());
    let flags_before = smaps_flags(p.pid());
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    // The program set up every kind it claims to.
    let joined = maps_before.join("\n");
    for want in [
        "rw-s 00000000 00:01 INODE /dev/zero (deleted)",
        "/memfd:kckpt-memfd (deleted)",
        "shared.dat",
        "---p",
    ] {
        assert!(joined.contains(want), "no {want:?} in maps:\n{joined}");
    }
    let all_flags: String = flags_before
        .values()
        .map(|(f, _)| f.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for want in ["dd", "hg", "nh", "dc", "wf", "lo", "lf", "sr", "rr"] {
        assert!(
            all_flags.split(' ').any(|f| f == want),
            "no area with VmFlags {want}: {flags_before:?}"
        );
    }

    dump(p.pid(), &image, true);
    check(&mut p, "after dump --leave-running", "check0");
    assert_eq!(
        maps_normalized(p.pid()),
        maps_before,
        "the dump changed the maps"
    );
    p.kill();

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    check(&mut r, "after restore", "check");
    let maps_after = maps_normalized(r.pid());
    assert!(
        maps_after == maps_before,
        "/proc/PID/maps differs after restore (- original, + restored):\n{}",
        diff(&maps_before, &maps_after)
    );
    let flags_after = smaps_flags(r.pid());
    let mut bad = String::new();
    for (range, (flags, huge)) in &flags_before {
        match flags_after.get(range) {
            Some((f, _)) if f != flags => {
                bad += &format!("{range}: VmFlags {flags} before, {f} after\n")
            }
            Some((_, h)) if *huge > 0 && *h == 0 => {
                bad += &format!("{range}: {huge} kB of huge pages before, none after\n")
            }
            None => bad += &format!("{range}: missing after restore\n"),
            _ => {}
        }
    }
    assert!(bad.is_empty(), "smaps differs after restore:\n{bad}");
    // Still the same after running for a while.
    check(&mut r, "again after restore", "check");
}
