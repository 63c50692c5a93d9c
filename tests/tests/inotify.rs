//! Inotify (issue 8, format 1.3): an instance comes back with its watches,
//! their wds (holes included) and masks, on a directory, a file and a
//! deleted file still open; unread events and a watched path gone at
//! restore are refused by name (zdtm inotify00, inotify04, inotify_irmap).

mod common;

use std::fs;

use common::*;

/// The events `inotify.c` reads after its "go", before any dump.
const EVENTS: &str = "events 1:100 3:2 3:8 4:8 4:8000 1:200";

fn start(dir: &TestDir, extra: &[&str]) -> (Proc, String) {
    let d = dir.join("watched");
    fs::create_dir_all(&d).unwrap();
    let mut args = vec![d.to_str().unwrap().to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = Proc::start(prog::INOTIFY, &argv);
    assert_eq!(p.line(LINE_TIMEOUT), "ready 1 3 4");
    let watches = p.line(LINE_TIMEOUT);
    assert!(watches.ends_with("(3 watches)"), "{watches}");
    (p, args.join("\0") + "\0")
}

#[test]
fn watches_come_back_with_their_wds_masks_and_events() {
    let dir = TestDir::new("inotify");
    let image = dir.join("inotify.kckpt");
    let (mut p, args) = start(&dir, &[]);
    let before = p.last_seen().unwrap().to_owned();
    dump_kills(&mut p, &image);

    let info = info_json(&image);
    let w = info["files"]["inotify_watches"].as_array().unwrap();
    let wds: Vec<u64> = w.iter().map(|w| w["wd"].as_u64().unwrap()).collect();
    assert_eq!(wds, [1, 3, 4], "{w:?}");
    // The deleted file through the descriptor that keeps it (fd 3).
    assert_eq!(w[2]["by_fd"], 3, "{w:?}");
    assert!(
        w[0]["path"].as_str().unwrap().ends_with("/watched"),
        "{w:?}"
    );

    let mut r = restore(&image);
    r.wait_restored(format!("{}\0{args}", prog::INOTIFY).as_bytes());
    r.write_stdin("go\n");
    // Same wds and masks (IN_ONESHOT included) as fdinfo showed before.
    assert_eq!(r.line(LINE_TIMEOUT), before);
    assert_eq!(r.line(LINE_TIMEOUT), "flags nonblock");
    // Events on the directory, the file and the deleted file, with the
    // saved wds, and nothing else (no IN_IGNORED of the skipped wd 2).
    assert_eq!(r.line(LINE_TIMEOUT), EVENTS);
}

#[test]
fn unread_events_are_refused_at_dump() {
    let dir = TestDir::new("inotify-unread");
    let image = dir.join("inotify.kckpt");
    let (mut p, _) = start(&dir, &["unread"]);
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "inotify with a queued event",
        &out,
        None,
        &["inotify with 16 bytes of unread events"],
    );
    assert!(p.exited().is_none(), "a refused dump must not kill");
    p.kill();
}

#[test]
fn a_watched_path_gone_at_restore_is_refused_by_name() {
    let dir = TestDir::new("inotify-gone");
    let image = dir.join("inotify.kckpt");
    let (mut p, _) = start(&dir, &[]);
    dump_kills(&mut p, &image);
    let file = dir.join("watched/f");
    fs::remove_file(&file).unwrap();
    let out = run(
        std::process::Command::new(kckpt())
            .arg("restore")
            .arg(&image),
        LINE_TIMEOUT,
    );
    assert_refused(
        "restore with a watched file removed",
        &out,
        None,
        &[&format!("watch 3 on {}", file.display())],
    );
}

#[test]
fn an_unprivileged_user_dumps_and_restores_its_watches() {
    require_tool("setpriv");
    let dir = TestDir::new("inotify-nobody");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let d = dir.join("watched");
    fs::create_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("inotify.kckpt");
    let mut p = Proc::spawn(
        "inotify as nobody",
        command_as(&NOBODY, prog::INOTIFY).arg(&d),
    );
    assert_eq!(p.line(LINE_TIMEOUT), "ready 1 3 4");
    let before = p.line(LINE_TIMEOUT);
    // Without CAP_DAC_READ_SEARCH: the file handles cannot be opened, the
    // paths are found near the process's open files.
    let out = run(
        kckpt_as(&NOBODY)
            .args(["dump", "-p", &p.pid().to_string(), "-o"])
            .arg(&image),
        LINE_TIMEOUT,
    );
    assert!(out.status.success(), "kckpt dump: {}", show(&out));
    p.drain(std::time::Duration::from_secs(10));
    let _ = p.wait_exit(std::time::Duration::from_secs(10));
    let mut r = Proc::spawn(
        "restore as nobody",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    r.wait_restored(format!("{}\0{}\0", prog::INOTIFY, d.display()).as_bytes());
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), before);
    assert_eq!(r.line(LINE_TIMEOUT), "flags nonblock");
    assert_eq!(r.line(LINE_TIMEOUT), EVENTS);
}

#[test]
fn a_bad_watch_record_is_refused() {
    let dir = TestDir::new("inotify-bad");
    let image = dir.join("inotify.kckpt");
    let (mut p, _) = start(&dir, &[]);
    dump_kills(&mut p, &image);
    let good = fs::read(&image).unwrap();
    let at = note_desc_range(&good, b"KCKPT", kckpt_image::inotify::NT_KCKPT_INOTIFY).start;
    // (field offset, value): wd 0, wd above MAX_WD, unknown mask bit, no
    // event, unknown flag, reserved not zero.
    for (off, v) in [
        (4, 0u32),
        (4, (1 << 20) + 1),
        (8, 0x0200_0300),
        (8, 0x8000_0000),
        (12, 2),
        (44, 1),
    ] {
        let mut bad = good.clone();
        bad[at + off..at + off + 4].copy_from_slice(&v.to_le_bytes());
        kckpt_image_write::reseal(&mut bad).unwrap();
        let path = dir.join("bad.kckpt");
        fs::write(&path, &bad).unwrap();
        let out = run(
            std::process::Command::new(kckpt()).arg("info").arg(&path),
            LINE_TIMEOUT,
        );
        assert_refused(
            &format!("field {off} = {v:#x}"),
            &out,
            None,
            &["inotify watch"],
        );
    }
}

#[test]
fn force_leaves_a_gone_watch_out_and_keeps_the_other_wds() {
    let dir = TestDir::new("inotify-force");
    let image = dir.join("inotify.kckpt");
    let (mut p, args) = start(&dir, &[]);
    dump_kills(&mut p, &image);
    let file = dir.join("watched/f");
    fs::remove_file(&file).unwrap();
    let mut r = Proc::spawn(
        "restore --force",
        std::process::Command::new(kckpt())
            .args(["restore", "--force"])
            .arg(&image),
    );
    r.wait_restored(format!("{}\0{args}", prog::INOTIFY).as_bytes());
    r.write_stdin("go\n");
    assert_eq!(r.line(LINE_TIMEOUT), "watches 4:80000008 1:300 (2 watches)");
    assert_eq!(r.line(LINE_TIMEOUT), "flags nonblock");
    // The program re-creates f only by opening it: no watch, no events.
    let events = r.line(LINE_TIMEOUT);
    assert!(events.starts_with("events 1:100 "), "{events}");
    assert!(!events.contains(" 3:"), "{events}");
    let err = r.stderr();
    assert!(
        err.contains("kckpt: warning: ") && err.contains(&format!("watch 3 on {}", file.display())),
        "{err}"
    );
}
