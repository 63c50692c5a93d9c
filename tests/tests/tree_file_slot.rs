//! A file description shared by processes of a group dump that have no
//! common ancestor in it (`(a | b) 2> log` dumped with `--pgid`: two roots
//! writing to one description of `log`) is held by the restorer (format
//! 1.5, `FILE` slot): after the restore both go on writing through one
//! description, at one file position, and no line is written over another.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const TICKER: &str = env!("KCKPT_PROG_STDERR_TICKER");
const LINES: usize = 150;

fn ticker(name: &str, log: &fs::File, pgid: u32) -> std::process::Child {
    only_stdio(&mut Command::new(TICKER))
        .args([name, &LINES.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().unwrap())
        .process_group(pgid as i32)
        .spawn()
        .unwrap()
}

#[test]
fn a_log_shared_by_two_roots_of_a_group_is_one_description_again() {
    let dir = TestDir::new("tree_file_slot");
    let image = dir.join("job.kckpt");
    let path = dir.join("log");
    let log = fs::File::create(&path).unwrap();
    let mut a = ticker("a", &log, 0);
    let pgid = a.id();
    let mut b = ticker("b", &log, pgid);
    drop(log);
    std::thread::sleep(Duration::from_millis(600));
    let dumped = run(
        Command::new(kckpt())
            .args(["dump", "--pgid", &pgid.to_string(), "-o"])
            .arg(&image),
        DUMP_TIMEOUT,
    );
    assert!(dumped.status.success(), "dump --pgid: {}", show(&dumped));
    assert!(!a.wait().unwrap().success());
    assert!(!b.wait().unwrap().success());
    let partial = fs::read_to_string(&path).unwrap().lines().count();
    assert!(
        partial > 0 && partial < 2 * LINES,
        "dumped too early or too late ({partial} lines)"
    );
    let info = info_json(&image);
    let slots = info["tree"]["slots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        slots
            .iter()
            .any(|s| s["kind"] == "file" && s["holder"].is_null()),
        "a restorer-held file slot: {slots:?}"
    );
    let restored = run(
        Command::new(kckpt()).arg("restore").arg(&image),
        Duration::from_secs(60),
    );
    assert!(restored.status.success(), "{}", show(&restored));
    let text = fs::read_to_string(&path).unwrap();
    let mut got: Vec<&str> = text.lines().collect();
    got.sort_unstable();
    let mut want: Vec<String> = (0..LINES)
        .flat_map(|i| [format!("a {i}"), format!("b {i}")])
        .collect();
    want.sort_unstable();
    assert_eq!(got, want, "every line of both, once, none written over");
}
