//! An image is a core file gdb understands: `gdb -batch -ex bt PROGRAM IMAGE`
//! shows the program's `main` in the backtrace.

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
