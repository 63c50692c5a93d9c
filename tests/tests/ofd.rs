//! Open file descriptions (issue 8): two descriptors share one after a
//! restore if and only if they did before (kcmp `KCMP_FILE`), and a pipe
//! end or memfd opened a second time through `/proc/self/fd` is a second
//! open file description of the same object, with its own flags and
//! offset (`REOPEN` records), not a dup (zdtm pipe01, pipe02).

mod common;

use std::fs;

use common::*;

/// `ofd.c`'s `go` line: every descriptor's mode, O_NONBLOCK and offset, and
/// the pairs that share an open file description.
fn state(p: &mut Proc) -> String {
    p.write_stdin("go\n");
    let line = p.line(LINE_TIMEOUT);
    assert!(line.starts_with("state "), "{line}");
    line
}

#[test]
fn second_open_file_descriptions_keep_their_flags_offsets_and_objects() {
    let dir = TestDir::new("ofd");
    let file = dir.join("data.txt");
    fs::write(&file, "abcdef").unwrap();
    let image = dir.join("ofd.kckpt");
    let mut p = Proc::start(prog::OFD, &[file.to_str().unwrap()]);
    assert_eq!(p.line(LINE_TIMEOUT), "ready");
    let before = state(&mut p);
    // The program's own view, as the kernel gives it.
    assert!(
        before.contains("pw:w+nb") && before.contains("pr2:r+nb") && before.contains("pw2:w@"),
        "{before}"
    );
    assert!(before.ends_with("share pr=prdup"), "{before}");
    dump_kills(&mut p, &image);

    let info = info_json(&image);
    let fds = info["files"]["fds"].as_array().unwrap();
    let reopens: Vec<_> = fds
        .iter()
        .filter(|f| f["kind"] == "reopen")
        .map(|f| f["reopens"].as_u64().unwrap())
        .collect();
    assert_eq!(reopens.len(), 3, "pr2, pw2 and m2 are reopens: {fds:?}");

    let mut r = restore(&image);
    r.wait_restored(format!("{}\0{}\0", prog::OFD, file.display()).as_bytes());
    assert_eq!(state(&mut r), before, "flags, offsets or sharing changed");
    r.write_stdin("use\n");
    assert_eq!(
        r.line(LINE_TIMEOUT),
        "pipe queuedvia-pw2 pr2-empty EAGAIN memfd 0123XY6789 file aZZdef",
        "a second description reaches another object than the first"
    );
}
