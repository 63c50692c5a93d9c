//! Images never depend on images: after a lazy restore
//! (`KCKPT_RESTORE_MODE=mmap`) untouched memory is a private mapping of
//! the image file; a dump of that process stores such areas in full as
//! the anonymous memory (or heap) they were, so the new image stands
//! alone. Dumping onto the very image the process maps replaces it
//! atomically and works; the image can then be deleted. Streaming onto a
//! file the target maps is refused. Also when the image was deleted
//! before the dump, as root (read through `/proc/PID/map_files`) and as
//! an unprivileged user (read from the process).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// `kckpt restore IMAGE` with `KCKPT_RESTORE_MODE=mmap`, run through
/// `prefix` (e.g. setpriv), found once it shows `cmdline`.
fn lazy_restore(image: &Path, cmdline: &[u8], prefix: &[&str]) -> Proc {
    restore_as(image, cmdline, prefix, true)
}

/// `kckpt restore IMAGE` (lazily or not) through `prefix`.
fn restore_as(image: &Path, cmdline: &[u8], prefix: &[&str], lazy: bool) -> Proc {
    let mut cmd = kckpt_as(prefix);
    cmd.arg("restore").arg(image);
    if lazy {
        cmd.env("KCKPT_RESTORE_MODE", "mmap");
    }
    let mut r = Proc::spawn("restore", &mut cmd);
    r.wait_restored(cmdline);
    r
}

/// The next memfill round of `p` (one that started after now) is `ok`.
fn memfill_ok(p: &mut Proc) {
    p.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
    let line = p.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
    if !line.ends_with(" ok") {
        p.fail(&format!("memory differs after restore: {line}"));
    }
}

/// `p` maps `image` (a lazy restore).
fn maps_image(p: &Proc, image: &Path) -> bool {
    let name = image.to_string_lossy().into_owned();
    maps(p.pid()).iter().any(|l| l.contains(name.as_str()))
}

/// The image's memory areas that still name `file`.
fn areas_naming(image: &Path, file: &Path) -> Vec<serde_json::Value> {
    let json = info_json(image);
    let name = file.to_string_lossy();
    json["vmas"]
        .as_array()
        .expect("vmas")
        .iter()
        .filter(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(name.as_ref()))
        })
        .cloned()
        .collect()
}

/// Dump `p` (killing it), as `prefix` (e.g. setpriv) when given.
fn dump_kill_as(p: &mut Proc, image: &Path, prefix: &[&str]) {
    let out = dump_as(prefix, p.pid(), image);
    assert!(out.status.success(), "kckpt dump: {}", show(&out));
    assert!(
        dump_warnings(&out).is_empty(),
        "no warning expected: {}",
        show(&out)
    );
    p.drain(Duration::from_secs(30));
}

#[test]
fn a_lazily_restored_process_dumps_onto_its_own_image() {
    let dir = TestDir::new("image-backed");
    let image = dir.join("image.kckpt");
    let other = dir.join("other.kckpt");
    let mut p = Proc::start(prog::MEMFILL, &["64"]);
    p.wait_for("a round", Duration::from_secs(60), |l| {
        l.starts_with("round ")
    });
    let cmdline = read_proc(p.pid(), "cmdline").unwrap();
    dump_kills(&mut p, &image);

    let mut r = lazy_restore(&image, &cmdline, &[]);
    memfill_ok(&mut r);
    assert!(maps_image(&r, &image), "the restore was not lazy");

    // Streaming onto the image it maps: refused, the image untouched.
    let before = fs::read(&image).unwrap();
    let out = run(
        Command::new("sh")
            .args(["-c", r#"exec "$KCKPT" dump -p "$PID" -o - >> "$IMAGE""#])
            .env("KCKPT", kckpt())
            .env("PID", r.pid().to_string())
            .env("IMAGE", &image),
        DUMP_TIMEOUT,
    );
    assert_refused("-o - >> image", &out, Some(1), &["maps"]);
    assert!(fs::read(&image).unwrap() == before, "the image changed");
    memfill_ok(&mut r);

    // Onto the same name: replaced atomically, and self-contained.
    dump_kill_as(&mut r, &image, &[]);
    let naming = areas_naming(&image, &image);
    assert!(naming.is_empty(), "areas still name the image: {naming:?}");
    let stored = info_json(&image)["stored_bytes"].as_u64().unwrap();
    assert!(stored >= 64 << 20, "only {stored} bytes stored");

    // Lazily again, then to another name after deleting the first image.
    let mut r = lazy_restore(&image, &cmdline, &[]);
    memfill_ok(&mut r);
    fs::remove_file(&image).unwrap();
    memfill_ok(&mut r);
    // The image is deleted: read through /proc/PID/map_files (root).
    dump_kill_as(&mut r, &other, &[]);
    let naming = areas_naming(&other, &image);
    assert!(naming.is_empty(), "areas still name the image: {naming:?}");
    let mut r = restore(&other);
    r.wait_restored(&cmdline);
    memfill_ok(&mut r);
}

#[test]
fn lazily_restored_heap_stays_heap() {
    let dir = TestDir::new("image-backed-heap");
    let image = dir.join("heap.kckpt");
    let mut p = Proc::start(prog::MALLOC_BRK, &[]);
    p.wait_for("round 20", LINE_TIMEOUT, |l| l.starts_with("round 20 "));
    let cmdline = read_proc(p.pid(), "cmdline").unwrap();
    dump_kills(&mut p, &image);
    let mut r = lazy_restore(&image, &cmdline, &[]);
    let line = r.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
    assert!(line.ends_with(" ok"), "{line}");
    assert!(maps_image(&r, &image), "the restore was not lazy");
    let stat = String::from_utf8(read_proc(r.pid(), "stat").unwrap()).unwrap();
    let start_brk: u64 = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(44)
        .unwrap()
        .parse()
        .unwrap();
    dump_kill_as(&mut r, &image, &[]);
    let brk = r
        .last_seen()
        .and_then(|l| l.split(" brk ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|b| u64::from_str_radix(b.trim_start_matches("0x"), 16).ok())
        .expect("a brk in the last line");
    let json = info_json(&image);
    let in_heap: Vec<&serde_json::Value> = json["vmas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| (start_brk..brk).contains(&v["start"].as_u64().unwrap()))
        .collect();
    assert!(!in_heap.is_empty(), "no area in [{start_brk:#x}, {brk:#x})");
    for v in &in_heap {
        assert_eq!(v["kind"], "heap", "{v}");
    }
    assert!(in_heap.iter().any(|v| v["stored_bytes"].as_u64() > Some(0)));
    // It runs on, heap intact and growing.
    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    for _ in 0..5 {
        let line = r.wait_for("a round", LINE_TIMEOUT, |l| l.starts_with("round "));
        assert!(line.ends_with(" ok"), "{line}");
    }
}

#[test]
fn an_unprivileged_user_dumps_a_process_whose_image_is_deleted() {
    require_tool("setpriv");
    let dir = TestDir::new("image-backed-user");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("image.kckpt");
    let other = dir.join("other.kckpt");
    let mut p = Proc::spawn(
        "memfill as nobody",
        command_as(&NOBODY, prog::MEMFILL).arg("16"),
    );
    p.wait_for("a round", Duration::from_secs(60), |l| {
        l.starts_with("round ")
    });
    // setpriv executes memfill: same pid.
    let pid = p.pid();
    let cmdline = read_proc(pid, "cmdline").unwrap();
    let out = dump_as(&NOBODY, pid, &image);
    assert!(out.status.success(), "{}", show(&out));
    p.drain(Duration::from_secs(30));

    let mut r = lazy_restore(&image, &cmdline, &NOBODY);
    memfill_ok(&mut r);
    assert!(maps_image(&r, &image), "the restore was not lazy");
    fs::remove_file(&image).unwrap();
    // Without map_files access the deleted image cannot be opened: every
    // page of those areas is read from the process.
    dump_kill_as(&mut r, &other, &NOBODY);
    let naming = areas_naming(&other, &image);
    assert!(
        naming
            .iter()
            .all(|v| v["kind"] != "file" || v["flags"].to_string().contains("file_unavailable")),
        "{naming:?}"
    );
    let mut r = restore_as(&other, &cmdline, &NOBODY, false);
    memfill_ok(&mut r);
}
