//! Dump a running program, restore it with `kckpt restore`, and check it
//! carries on exactly where it was: counters (PIE, non-PIE, static), memory
//! contents, an interpreter (python3), a sleeping coreutils `sleep`; the same
//! image restored twice; a restored process checkpointed again.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn counter_resumes(program: &str, name: &str) {
    let dir = TestDir::new(name);
    let image = dir.join("counter.kckpt");
    let last = counter_dumped(program, &image, 5);
    let mut r = restore(&image);
    expect_counter_from(&mut r, last, 5);
}

#[test]
fn counter_pie_resumes_at_next_count() {
    counter_resumes(prog::COUNTER_PIE, "counter-pie");
}

#[test]
fn counter_nopie_resumes_at_next_count() {
    counter_resumes(prog::COUNTER_NOPIE, "counter-nopie");
}

#[test]
fn counter_static_resumes_at_next_count() {
    counter_resumes(prog::COUNTER_STATIC, "counter-static");
}

fn memfill_sum(line: &str) -> Option<&str> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        ["ready", "sum", sum] => Some(sum),
        ["round", _, "sum", sum, "ok"] => Some(sum),
        _ => None,
    }
}

fn round_of(line: &str) -> u64 {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        ["round", n, "sum", _, _] => n.parse().expect("round number"),
        _ => panic!("not a round line: {line:?}"),
    }
}

#[test]
fn memfill_64_keeps_its_checksum() {
    let dir = TestDir::new("memfill");
    let image = dir.join("memfill.kckpt");
    let mut p = Proc::start(prog::MEMFILL, &["64"]);
    let ready = p.wait_for("ready", Duration::from_secs(60), |l| l.starts_with("ready"));
    let sum = memfill_sum(&ready).expect("sum").to_owned();
    p.wait_for("round 2 ok", LINE_TIMEOUT, |l| l.starts_with("round 2 "));
    let last = round_of(&dump_and_kill(&mut p, &image));

    let mut r = restore(&image);
    for i in 1..=3 {
        let line = r.line(LINE_TIMEOUT);
        if memfill_sum(&line) != Some(sum.as_str()) || round_of(&line) != last + i {
            r.fail(&format!(
                "expected `round {} sum {sum} ok`, got {line:?}",
                last + i
            ));
        }
    }
}

#[test]
fn python_loop_keeps_counting() {
    let dir = TestDir::new("python");
    let image = dir.join("python.kckpt");
    let mut p = Proc::start(PYTHON3, &["-u", "-c", PYTHON_LOOP]);
    p.wait_for("5", LINE_TIMEOUT, |l| l == "5");
    let last: u64 = dump_and_kill(&mut p, &image).parse().unwrap();
    let mut r = restore(&image);
    for i in 1..=5 {
        let line = r.line(LINE_TIMEOUT);
        if line != (last + i).to_string() {
            r.fail(&format!("expected {}, got {line:?}", last + i));
        }
    }
}

#[test]
fn sleep_1000_still_asleep_after_restore() {
    let dir = TestDir::new("sleep");
    let image = dir.join("sleep.kckpt");
    let mut p = Proc::start("sleep", &["1000"]);
    let cmdline = wait_cmdline(p.pid(), b"sleep\x001000\x00");
    dump_kills(&mut p, &image);

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    // Just resumed, it may still be on its way back into nanosleep (R)
    // on a busy machine: it must get there, then stay asleep.
    let deadline = Instant::now() + Duration::from_secs(5);
    while state(r.pid()) == Some('R') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..30 {
        if let Some(status) = r.exited() {
            r.fail(&format!("exited with {status} instead of sleeping"));
        }
        match state(r.pid()) {
            Some('S') => {}
            other => r.fail(&format!("state {other:?}, expected S (sleeping)")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until /proc/PID/cmdline is `expected` (the program has exec'ed).
fn wait_cmdline(pid: i32, expected: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let got = read_proc(pid, "cmdline").unwrap_or_default();
        if got == expected {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} cmdline {got:?} never became {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn same_image_restored_twice() {
    let dir = TestDir::new("twice");
    let image = dir.join("counter.kckpt");
    let last = counter_dumped(prog::COUNTER_PIE, &image, 3);
    for _ in 0..2 {
        let mut r = restore(&image);
        expect_counter_from(&mut r, last, 3);
        r.kill();
    }
}

#[test]
fn restored_process_dumped_and_restored_again() {
    let dir = TestDir::new("again");
    let first = dir.join("first.kckpt");
    let second = dir.join("second.kckpt");
    let last = counter_dumped(prog::COUNTER_PIE, &first, 3);
    let mut r = restore(&first);
    expect_counter_from(&mut r, last, 3);
    r.wait_restored(format!("{}\0", prog::COUNTER_PIE).as_bytes());
    let last = parse_counter(&dump_and_kill(&mut r, &second)).0;
    let mut r2 = restore(&second);
    expect_counter_from(&mut r2, last, 5);
}

/// A restore by a user who may not choose pids (nobody, in the machine's
/// PID namespace) still removes the stub's window: its tracer helper is
/// forked with any pid.
#[test]
fn an_unprivileged_restore_removes_the_stubs_window() {
    use std::os::unix::fs::PermissionsExt;
    require_tool("setpriv");
    let dir = TestDir::new("nobody-window");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join("sleep.kckpt");
    let mut p = Proc::spawn("sleep", command_as(&NOBODY, "sleep").arg("1000"));
    let cmdline = wait_cmdline(p.pid(), b"sleep\x001000\x00");
    let out = dump_as(&NOBODY, p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    let _ = p.wait_exit(LINE_TIMEOUT);
    let mut r = Proc::spawn(
        "kckpt restore as nobody",
        kckpt_as(&NOBODY).arg("restore").arg(&image),
    );
    r.wait_restored(&cmdline);
    let deadline = Instant::now() + Duration::from_secs(5);
    while maps(r.pid()).iter().any(|l| l.starts_with("6b6b")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    no_window(r.pid());
    r.kill();
}
