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
