//! cgroup membership survives a checkpoint: a process and one of its
//! threads in cgroups of their own (a cgroup v1 hierarchy of this machine,
//! the thread in a cgroup below the process's) are put back into them by
//! a root restore, which re-creates the directories removed meanwhile
//! with their saved settings (a saved value the kernel refuses is a
//! warning naming it, a v1 device list too); sub-cgroups no process of
//! the dump is in are made again, empty, when they are gone (format 1.7),
//! and a sub-cgroup a child of a dumped tree is in comes back with the
//! child.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// A mounted cgroup v1 hierarchy with a controller (`pids` preferred):
/// (mount point, controller).
fn v1_hierarchy() -> Option<(PathBuf, String)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if r.first() == Some(&"cgroup") && l.get(3) == Some(&"/") {
            let controller = r[2]
                .split(',')
                .find(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("name="))
                .map(str::to_owned);
            if let Some(c) = controller {
                found.push((PathBuf::from(l[4]), c));
            }
        }
    }
    found.sort_by_key(|(_, c)| c != "pids");
    found.into_iter().next()
}

/// A cgroup directory removed (with its sub-directories) when dropped.
struct Cgroup(PathBuf);

impl Cgroup {
    /// A new cgroup `kckpt-TAG-PID` in the first cgroup v1 hierarchy with a
    /// controller, with the sub-cgroups `subs`; its name and the controller.
    fn create(tag: &str, subs: &[&str]) -> (Cgroup, String, String) {
        let Some((mount, controller)) = v1_hierarchy() else {
            panic!("no cgroup v1 hierarchy with a controller is mounted here");
        };
        let name = format!("kckpt-{tag}-{}", std::process::id());
        let cg = Cgroup(mount.join(&name));
        fs::create_dir(&cg.0).expect("create a cgroup");
        for sub in subs {
            fs::create_dir(cg.0.join(sub)).expect("create a sub-cgroup");
        }
        (cg, name, controller)
    }
}

impl Drop for Cgroup {
    /// Remove the directories once their processes are gone (a killed
    /// process that init reaps stays in its cgroup until then: up to a
    /// second on some machines).
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let _ = fs::remove_dir(self.0.join("sub"));
            let _ = fs::remove_dir(self.0.join("empty/deeper"));
            let _ = fs::remove_dir(self.0.join("empty"));
            if fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            if std::time::Instant::now() > deadline {
                eprintln!("cannot remove the test cgroup {}", self.0.display());
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

fn cgroup_line(pid: i32, tid: i32, controller: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/cgroup")).expect("cgroup file");
    text.lines()
        .find(|l| l.split(':').nth(1) == Some(controller))
        .unwrap_or_else(|| panic!("no {controller} line in {text}"))
        .to_owned()
}

fn started_in(cg: &Cgroup) -> (Proc, i32) {
    let mut p = Proc::start(prog::KSTATE, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let pid = p.pid();
    fs::write(cg.0.join("cgroup.procs"), pid.to_string()).expect("join the cgroup");
    let thread = *tasks(pid)
        .iter()
        .find(|&&t| t != pid)
        .expect("second thread");
    (p, thread)
}

#[test]
fn process_and_thread_cgroups_are_rejoined_and_recreated() {
    let (cg, name, controller) = Cgroup::create("test", &["sub"]);
    let (mut p, thread) = started_in(&cg);
    let pid = p.pid();
    fs::write(cg.0.join("sub/tasks"), thread.to_string()).expect("move the thread");
    let main_line = cgroup_line(pid, pid, &controller);
    let thread_line = cgroup_line(pid, thread, &controller);
    assert!(main_line.ends_with(&format!(":/{name}")), "{main_line}");
    assert!(
        thread_line.ends_with(&format!(":/{name}/sub")),
        "{thread_line}"
    );
    let cmdline = read_proc(pid, "cmdline").expect("cmdline");
    let dir = TestDir::new("cgroups");
    let image = dir.join("kstate.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    assert_eq!(
        info["kernel_state"]["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["cgroup"].as_str().unwrap_or("").contains(&name))
            .count(),
        2,
        "{info}"
    );
    // Gone before the restore: the stub creates them again.
    fs::remove_dir(cg.0.join("sub")).expect("remove the sub-cgroup");
    fs::remove_dir(&cg.0).expect("remove the cgroup");

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    // Its threads answer (the command line is back before they exist).
    r.write_stdin("state\n");
    assert!(r.line(LINE_TIMEOUT).starts_with("state "));
    let pid = r.pid();
    let thread = *tasks(pid)
        .iter()
        .find(|&&t| t != pid)
        .expect("second thread");
    assert_eq!(cgroup_line(pid, pid, &controller), main_line);
    assert_eq!(cgroup_line(pid, thread, &controller), thread_line);
    // The removed cgroups were made again, each with a warning saying so
    // (their saved settings, defaults here, all written back).
    let err = r.stderr();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("was missing: created again with its ")
                && l.ends_with(" saved settings")),
        "{err}"
    );
    r.kill();
}

/// A setting of `controller`'s v1 hierarchy other than its default:
/// (file, value written, value read back).
fn a_setting(controller: &str) -> (&'static str, &'static str, &'static str) {
    match controller {
        "pids" => ("pids.max", "7", "7"),
        "cpu" => ("cpu.shares", "512", "512"),
        "memory" => ("memory.limit_in_bytes", "268435456", "268435456"),
        "blkio" => ("blkio.weight", "300", "300"),
        _ => ("notify_on_release", "1", "1"),
    }
}

/// Dump a process in a cgroup with two settings changed, remove the
/// cgroup, restore; with `refused` the saved `notify_on_release` is made
/// a value the kernel refuses (`z`) in the image first.
fn recreated_with_settings(tag: &str, refused: bool) {
    let (cg, name, controller) = Cgroup::create(tag, &[]);
    let (file, value, shown) = a_setting(&controller);
    fs::write(cg.0.join(file), value).expect("set a setting");
    fs::write(cg.0.join("notify_on_release"), "1").expect("set notify_on_release");
    let (mut p, _) = started_in(&cg);
    let line = cgroup_line(p.pid(), p.pid(), &controller);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let dir = TestDir::new(tag);
    let image = dir.join("img.kckpt");
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let saved = info["kernel_state"]["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cgroup"].as_str().unwrap_or("").contains(&name))
        .unwrap_or_else(|| panic!("{info}"))["settings"]
        .clone();
    assert_eq!(
        saved[file].as_str(),
        Some(format!("{shown}\n").as_str()),
        "{saved}"
    );
    assert!(saved.get("cgroup.procs").is_none() && saved.get("tasks").is_none());
    if refused {
        let mut bytes = fs::read(&image).unwrap();
        let key = b"notify_on_release\x001\n\x00";
        let at = bytes
            .windows(key.len())
            .position(|w| w == key)
            .expect("the saved notify_on_release");
        bytes[at + key.len() - 3] = b'z';
        kckpt_image_write::reseal(&mut bytes).expect("reseal");
        fs::write(&image, bytes).unwrap();
    }
    // Removed before the restore (the dump killed the process): the stub
    // makes it again with the saved settings before the process joins.
    let path = cg.0.clone();
    drop(cg);
    assert!(!path.exists(), "the cgroup is still there");
    let cg = Cgroup(path);

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    // It answers: the restore is done (cgroups are joined after the
    // command line is back).
    r.write_stdin("state\n");
    assert!(r.line(LINE_TIMEOUT).starts_with("state "));
    let pid = r.pid();
    assert_eq!(cgroup_line(pid, pid, &controller), line);
    let read = |f: &str| fs::read_to_string(cg.0.join(f)).expect("read a setting");
    assert_eq!(read(file).trim_end(), shown);
    let err = r.stderr();
    if refused {
        // The default stays, and a warning names the cgroup, file, line.
        assert_eq!(read("notify_on_release").trim_end(), "0");
        assert!(
            err.contains(&format!(
                "cgroup {line}: cannot write its setting notify_on_release \"z\" back"
            )) && err.contains("saved settings, 1 of them not written back"),
            "{err}"
        );
    } else {
        assert_eq!(read("notify_on_release").trim_end(), "1");
        assert!(
            err.contains(&format!(
                "cgroup {line} was missing: created again with its "
            )) && !err.contains("not written back")
                && !err.contains("cannot write"),
            "{err}"
        );
    }
    r.kill();
}

#[test]
fn a_recreated_cgroup_gets_its_saved_settings_back() {
    recreated_with_settings("cg-settings", false);
}

#[test]
fn a_saved_setting_the_kernel_refuses_is_a_warning_naming_it() {
    recreated_with_settings("cg-bad-setting", true);
}

/// A cgroup with a sub-cgroup no process is in (two levels deep): both
/// levels are saved and made again, empty, when they are gone at restore.
#[test]
fn empty_sub_cgroups_are_made_again() {
    let (cg, name, controller) = Cgroup::create("tree", &["empty", "empty/deeper"]);
    let (mut p, _) = started_in(&cg);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let dir = TestDir::new("cgroup-tree");
    let image = dir.join("img.kckpt");
    dump_kills(&mut p, &image);
    fs::remove_dir(cg.0.join("empty/deeper")).expect("remove");
    fs::remove_dir(cg.0.join("empty")).expect("remove");
    fs::remove_dir(&cg.0).expect("remove");
    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    r.write_stdin("state\n");
    assert!(r.line(LINE_TIMEOUT).starts_with("state "));
    assert!(
        cgroup_line(r.pid(), r.pid(), &controller).ends_with(&format!(":/{name}")),
        "{}",
        r.stderr()
    );
    assert!(cg.0.join("empty/deeper").is_dir(), "{}", r.stderr());
    let err = r.stderr();
    assert!(
        err.contains(&format!(":{controller}:/{name}/empty/deeper was missing")),
        "{err}"
    );
    r.kill();
    let _ = fs::remove_dir(cg.0.join("empty/deeper"));
}

/// A re-created v1 `devices` cgroup gets its device list back (saved from
/// the read-only `devices.list`, written as "deny all, allow each").
#[test]
fn a_recreated_devices_cgroup_gets_its_device_list_back() {
    let mount = PathBuf::from("/sys/fs/cgroup/devices");
    assert!(
        mount.join("devices.list").exists(),
        "no cgroup v1 devices hierarchy at {}",
        mount.display()
    );
    let cg = Cgroup(mount.join(format!("kckpt-devices-{}", std::process::id())));
    fs::create_dir(&cg.0).expect("create a cgroup");
    fs::write(cg.0.join("devices.deny"), "a").expect("deny all");
    // What a program needs to run (and the stub to restore it).
    for allow in [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 136:* rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
    ] {
        fs::write(cg.0.join("devices.allow"), allow).expect("allow");
    }
    let list = fs::read_to_string(cg.0.join("devices.list")).expect("list");
    let (mut p, _) = started_in(&cg);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let dir = TestDir::new("cgroup-devices");
    let image = dir.join("img.kckpt");
    dump_kills(&mut p, &image);
    fs::remove_dir(&cg.0).expect("remove");
    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    r.write_stdin("state\n");
    assert!(r.line(LINE_TIMEOUT).starts_with("state "), "{}", r.stderr());
    assert_eq!(
        fs::read_to_string(cg.0.join("devices.list")).expect("list"),
        list,
        "{}",
        r.stderr()
    );
    r.kill();
}

/// A tree whose root is in a cgroup and whose child is in a sub-cgroup of
/// it: the sub-cgroup is the child's own, so it comes back with it (only
/// sub-cgroups no process of the dump is in are refused).
#[test]
fn a_sub_cgroup_a_child_of_the_tree_is_in_comes_back_with_it() {
    let (cg, name, controller) = Cgroup::create("subtree", &["sub"]);
    let mut p = Proc::spawn(
        "sh",
        Command::new("/bin/sh").args(["-c", "sleep 1000 & echo child $!; wait"]),
    );
    let line = p.wait_for("child", LINE_TIMEOUT, |l| l.starts_with("child "));
    let child: i32 = line[6..].trim().parse().expect("child pid");
    fs::write(cg.0.join("cgroup.procs"), p.pid().to_string()).expect("join the cgroup");
    fs::write(cg.0.join("sub/cgroup.procs"), child.to_string()).expect("join the sub-cgroup");
    let (root_line, child_line) = (
        cgroup_line(p.pid(), p.pid(), &controller),
        cgroup_line(child, child, &controller),
    );
    assert!(
        child_line.ends_with(&format!(":/{name}/sub")),
        "{child_line}"
    );
    let dir = TestDir::new("cgroup-subtree");
    let image = dir.join("tree.kckpt");
    dump_kills(&mut p, &image);
    // Removed meanwhile: both are made again, the sub-cgroup below its
    // parent.
    fs::remove_dir(cg.0.join("sub")).expect("remove the sub-cgroup");
    fs::remove_dir(&cg.0).expect("remove the cgroup");

    let mut r = restore(&image);
    let find = |all: &[i32], prefix: &[u8]| {
        all.iter()
            .copied()
            .find(|&c| read_proc(c, "cmdline").is_some_and(|c| c.starts_with(prefix)))
    };
    let mut found = None;
    assert!(
        eventually(LINE_TIMEOUT, || {
            let all = descendants(r.spawned_pid());
            found = find(&all, b"/bin/sh\0").zip(find(&all, b"sleep\0"));
            found.is_some()
        }),
        "the restored tree did not appear: {}",
        r.stderr()
    );
    let (root, child) = found.expect("found");
    // The command line is back before the process is put in its cgroups:
    // wait until it runs (the tree resumes all at once).
    let lines = || {
        (
            cgroup_line(root, root, &controller),
            cgroup_line(child, child, &controller),
        )
    };
    eventually(LINE_TIMEOUT, || state(root).is_some_and(|s| s == 'S'));
    eventually(LINE_TIMEOUT, || {
        lines() == (root_line.clone(), child_line.clone())
    });
    assert_eq!(lines(), (root_line.clone(), child_line.clone()));
    for pid in [child, root] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    r.kill();
}
