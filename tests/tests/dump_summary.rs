//! A successful `kckpt dump` prints one summary line on stderr (issue
//! 11): processes, the image and its size, memory stored and not, time,
//! what became of the processes; `-q` prints nothing. On a terminal, a
//! dump that takes a while draws a progress bar first (`script` gives it
//! one; `KCKPT_PROGRESS_AFTER_MS=0` draws it at once).

mod common;

use std::process::Command;

use common::*;

#[test]
fn a_dump_prints_one_summary_line_and_quiet_none() {
    let dir = TestDir::new("dump-summary");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.wait_for("count 2", LINE_TIMEOUT, |l| parse_counter(l).0 >= 2);
    let image = dir.join("a.kckpt");
    let out = dump(p.pid(), &image, true);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    let line = lines[0];
    assert!(
        line.starts_with(&format!(
            "kckpt: saved 1 process(es) to {} (",
            image.display()
        )),
        "{line}"
    );
    for part in [
        " of memory stored, ",
        " mapped not stored",
        " ms; left running",
    ] {
        assert!(line.contains(part), "no {part:?} in {line}");
    }
    let quiet = dir.join("q.kckpt");
    let out = run(
        Command::new(kckpt())
            .args([
                "dump",
                "-q",
                "--leave-running",
                "-p",
                &p.pid().to_string(),
                "-o",
            ])
            .arg(&quiet),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(out.stderr.is_empty(), "-q: {}", show(&out));
    assert!(quiet.is_file());
    p.kill();
}

#[test]
fn a_dump_on_a_terminal_draws_a_progress_bar() {
    let script = require_tool("script");
    let dir = TestDir::new("dump-progress");
    let mut p = Proc::start(prog::MEMFILL, &["512"]);
    p.wait_for("ready", std::time::Duration::from_secs(60), |l| {
        l.starts_with("ready")
    });
    let image = dir.join("m.kckpt");
    let typescript = dir.join("typescript");
    let cmd = format!(
        "{} dump --leave-running -p {} -o {}",
        kckpt().display(),
        p.pid(),
        image.display()
    );
    let out = run(
        Command::new(script)
            .args(["-qfec", &cmd])
            .arg(&typescript)
            .env("KCKPT_PROGRESS_AFTER_MS", "0"),
        DUMP_TIMEOUT,
    );
    assert!(out.status.success(), "{}", show(&out));
    let screen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(
        screen.contains("of memory examined"),
        "no progress bar on the terminal:\n{screen}"
    );
    assert!(screen.contains("kckpt: saved 1 process(es)"), "{screen}");
    // Not on a pipe: the summary alone.
    let out = dump(p.pid(), &dir.join("n.kckpt"), true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("examined"), "a bar on a pipe: {err}");
    p.kill();
}
