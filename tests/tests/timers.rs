//! Timers survive a checkpoint (`timers.c`): interval timers with their
//! time left and period; POSIX timers with their ids (holes between them),
//! clocks, notification (signal with its value, none, a given thread,
//! glibc's SIGEV_THREAD helper), time left, period, and signals that were
//! queued at dump time (delivered once, with their siginfo, when the
//! process unblocks them); timerfds with their next expiry (also one that
//! expired and was not read), settime flags (absolute, cancel on set) and
//! unread expirations. The process checks itself after the restore; the
//! test compares what it reports before and after.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use common::*;

/// One `report` line: `NAME key value key value ...`.
type Report = HashMap<String, HashMap<String, i64>>;

fn report(p: &mut Proc) -> Report {
    p.write_stdin("report\n");
    let mut out = Report::new();
    loop {
        let line = p.line(LINE_TIMEOUT);
        if line == "end" {
            return out;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default().to_owned();
        let words: Vec<&str> = words.collect();
        let fields = words
            .chunks(2)
            .map(|kv| {
                let v = kv.get(1).and_then(|v| v.parse().ok());
                (kv[0].to_owned(), v.unwrap_or_else(|| p.fail(&line)))
            })
            .collect();
        out.insert(name, fields);
    }
}

/// Send `cmd` and expect `"{cmd} ok"`.
fn expect_ok(p: &mut Proc, cmd: &str) {
    p.write_stdin(&format!("{cmd}\n"));
    let line = p.line(LINE_TIMEOUT);
    if line != format!("{cmd} ok") {
        p.fail(&format!("after restore: {line}"));
    }
}

/// Field `key` of timer `name`.
fn get(r: &Report, name: &str, key: &str) -> i64 {
    match r.get(name).and_then(|f| f.get(key)) {
        Some(&v) => v,
        None => panic!("no {key} for {name} in {r:?}"),
    }
}

/// `after` is `before` less at most `elapsed_ms` (the time the process ran
/// between the two reports: a restored timer's time left counts from the
/// restore).
fn assert_left(before: &Report, after: &Report, name: &str, elapsed_ms: i64) {
    let (b, a) = (get(before, name, "value_ms"), get(after, name, "value_ms"));
    assert!(
        a <= b + 5 && a >= b - elapsed_ms - 50,
        "{name}: {a} ms left after the restore, {b} ms before, {elapsed_ms} ms between"
    );
}

/// Start `timers MODE` (through `prefix`, e.g. setpriv), report, dump it
/// (kill), restore it (with `env`, through `prefix`); returns the restored
/// process, the reports before and after, and the milliseconds between.
fn round_trip(
    dir: &TestDir,
    mode: &str,
    prefix: &[&str],
    env: &[(&str, &str)],
) -> (Proc, Report, Report, i64) {
    let image = dir.join("timers.kckpt");
    let mut p = Proc::spawn(mode, command_as(prefix, prog::TIMERS).arg(mode));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let before = report(&mut p);
    let start = Instant::now();
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let out = dump_as(prefix, p.pid(), &image);
    assert!(out.status.success(), "kckpt dump: {}", show(&out));
    p.drain(std::time::Duration::from_secs(10));
    let mut cmd = kckpt_as(prefix);
    cmd.arg("restore").arg(&image).envs(env.iter().copied());
    let mut r = Proc::spawn("restore", &mut cmd);
    r.wait_restored(&cmdline);
    let after = report(&mut r);
    let elapsed = start.elapsed().as_millis() as i64;
    (r, before, after, elapsed)
}

#[test]
fn interval_timers_keep_their_time_and_period() {
    let dir = TestDir::new("itimers");
    let (mut r, before, after, elapsed) = round_trip(&dir, "itimers", &[], &[]);
    assert_left(&before, &after, "real", elapsed);
    assert_left(&before, &after, "prof", elapsed);
    for name in ["real", "virtual", "prof"] {
        assert_eq!(
            get(&before, name, "interval_ms"),
            get(&after, name, "interval_ms"),
            "{name}"
        );
    }
    // ITIMER_VIRTUAL (every 50 ms of CPU time) still fires.
    expect_ok(&mut r, "tick");
}

/// The POSIX timer checks of a restored `timers posix`.
fn check_posix(mut r: Proc, before: &Report, after: &Report, elapsed: i64) {
    for name in ["A", "B", "C", "D", "E", "F", "G", "H"] {
        for key in ["id", "interval_ms"] {
            assert_eq!(
                get(before, name, key),
                get(after, name, key),
                "{name} {key}: before {before:?} after {after:?}"
            );
        }
    }
    for name in ["A", "C", "F"] {
        assert_left(before, after, name, elapsed);
    }
    assert_eq!(get(after, "G", "value_ms"), 0, "G fired before the dump");
    // Periodic timers fire, with the right siginfo, in the right thread
    // (D: SIGEV_THREAD_ID to the worker; E: glibc's SIGEV_THREAD helper).
    expect_ok(&mut r, "tick");
    // G's and H's signals were queued at dump time: still pending, then
    // delivered once each with their siginfo; H goes on.
    expect_ok(&mut r, "pending");
}

#[test]
fn posix_timers_keep_their_ids_clocks_signals_and_time() {
    let dir = TestDir::new("posix-timers");
    let (r, before, after, elapsed) = round_trip(&dir, "posix", &[], &[]);
    let info = info_json(&dir.join("timers.kckpt"));
    let posix = info["timers"]["posix"]
        .as_array()
        .expect("posix timers in kckpt info");
    assert_eq!(posix.len(), 8, "{posix:?}");
    let pending: Vec<bool> = posix.iter().map(|t| t["signal_pending"] == true).collect();
    // G and H (the last two) had their signals queued (B, D and E may
    // have, too: they fire every 20-30 ms); A, C (no signal) and F not.
    assert_eq!(
        (pending[0], pending[2], pending[5], pending[6], pending[7]),
        (false, false, false, true, true),
        "{posix:?}"
    );
    check_posix(r, &before, &after, elapsed);
}

#[test]
fn posix_timers_get_their_ids_in_order_without_the_prctl() {
    // The path of kernels before 6.15: timers created in id order, the ids
    // in between deleted.
    let dir = TestDir::new("posix-timers-order");
    let env = [("KCKPT_TIMER_IDS", "in-order")];
    let (r, before, after, elapsed) = round_trip(&dir, "posix", &[], &env);
    check_posix(r, &before, &after, elapsed);
}

#[test]
fn an_unprivileged_user_restores_timers() {
    require_tool("setpriv");
    let dir = TestDir::new("posix-timers-user");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let (r, before, after, elapsed) = round_trip(&dir, "posix", &NOBODY, &[]);
    check_posix(r, &before, &after, elapsed);
}

#[test]
fn timerfds_keep_next_expiry_flags_and_unread_expirations() {
    let dir = TestDir::new("timerfds");
    let (mut r, before, after, elapsed) = round_trip(&dir, "timerfd", &[], &[]);
    for name in ["tfd1", "tfd2", "tfd3", "tfd4"] {
        for key in ["clock", "flags", "interval_ms"] {
            assert_eq!(
                get(&before, name, key),
                get(&after, name, key),
                "{name} {key}"
            );
        }
    }
    assert_eq!(get(&before, "tfd2", "flags"), 3, "absolute, cancel on set");
    assert_eq!(get(&before, "tfd3", "flags"), 1, "absolute");
    // Timerfd 1 expired and was not read: the kernel shows 0 left until it
    // is read; the restored one has its next expiry and its expiration.
    assert_eq!(get(&before, "tfd1", "value_ms"), 0);
    assert_eq!(get(&before, "tfd1", "ticks"), 1);
    assert!(get(&after, "tfd1", "ticks") >= 1, "{after:?}");
    let next = get(&after, "tfd1", "value_ms");
    assert!(next > 0 && next <= 1000, "tfd1 next expiry in {next} ms");
    assert_left(&before, &after, "tfd2", elapsed);
    assert_left(&before, &after, "tfd3", elapsed);
    expect_ok(&mut r, "read");
}

#[test]
fn a_restore_without_cap_wake_alarm_refuses_an_alarm_timerfd() {
    let setpriv = require_tool("setpriv");
    let dir = TestDir::new("timerfd-alarm");
    let image = dir.join("alarm.kckpt");
    let mut p = Proc::start(prog::TIMERS, &["alarm"]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    dump_kills(&mut p, &image);
    let out = run(
        Command::new(setpriv)
            .args(["--inh-caps=-wake_alarm", "--bounding-set=-wake_alarm"])
            .arg(kckpt())
            .arg("restore")
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_refused(
        "restore without CAP_WAKE_ALARM",
        &out,
        Some(126),
        &["fd 3", "timerfd_create", "not permitted"],
    );
    // Whoever may use the clock restores it.
    let mut r = restore(&image);
    r.write_stdin("report\n");
    assert_eq!(r.line(LINE_TIMEOUT), "end");
}
