//! An image is a core file gdb understands: `gdb -batch -ex bt PROGRAM IMAGE`
//! shows the program's `main` in the backtrace, and `info threads` the
//! saved threads and no others.

mod common;

use std::process::Command;

use common::*;

#[test]
fn gdb_backtrace_shows_main() {
    let gdb = require_tool("gdb");
    let dir = TestDir::new("gdb");
    let image = dir.join("counter.kckpt");
    counter_dumped(prog::COUNTER_PIE, &image, 2);
    let out = run(
        Command::new(gdb)
            .args(["-nx", "-batch", "-ex", "bt"])
            .arg(prog::COUNTER_PIE)
            .arg(&image),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('#') && (l.contains(" main (") || l.contains(" in main "))),
        "no frame in main:\n{}",
        show(&out)
    );
}

/// A process of five threads: gdb lists five, numbered 1 to 5 (an image
/// whose areas without stored pages had program headers at offset 0 showed
/// thread ids from 14 on: 13 phantom threads per real one).
#[test]
fn gdb_info_threads_lists_the_saved_threads() {
    let gdb = require_tool("gdb");
    let dir = TestDir::new("gdb-threads");
    let image = dir.join("threads.kckpt");
    let mut p = Proc::start(prog::THREADS, &["4"]);
    p.line(LINE_TIMEOUT);
    dump_kills(&mut p, &image);
    let saved = info_json(&image)["threads"]
        .as_array()
        .map(|t| t.len())
        .unwrap_or(0);
    assert_eq!(saved, 5, "the image's threads");
    let out = run(
        Command::new(gdb)
            .args(["-nx", "-batch", "-ex", "info threads"])
            .arg(prog::THREADS)
            .arg(&image),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // "* 1    LWP 123 ..." / "  2    LWP 124 ...": the ids gdb gave.
    let ids: Vec<u32> = text
        .lines()
        .filter(|l| l.contains("LWP "))
        .filter_map(|l| {
            l.trim_start_matches(['*', ' '])
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=5).collect::<Vec<u32>>(),
        "gdb's threads:\n{}",
        show(&out)
    );
}
