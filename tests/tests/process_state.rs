//! Process state beyond memory survives a checkpoint
//! (`tests/programs/procstate.c`): resource limits, personality, the
//! command name, dumpable 0 and no_new_privs 1, and pending signals of
//! both queues with their siginfo (an rt signal queued twice with values
//! by sigqueue, a thread-directed rt signal, SIGUSR1 by kill, SIGUSR2 by
//! tgkill) — delivered after the restore exactly as an uncheckpointed run
//! delivers them. `kckpt info` reports did_exec.

mod common;

use common::*;

/// Send a command and read its one-line answer.
fn ask(p: &mut Proc, cmd: &str) -> String {
    p.write_stdin(&format!("{cmd}\n"));
    p.line(LINE_TIMEOUT)
}

/// What an uncheckpointed process reports: state, map, deliveries.
fn reference() -> (String, String, Vec<String>) {
    let mut p = Proc::start(prog::PROCSTATE, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let state = ask(&mut p, "state");
    let map = ask(&mut p, "map");
    let got = deliveries(&mut p);
    (state, map, got)
}

#[test]
fn limits_personality_flags_and_pending_signals_survive() {
    let (ref_state, ref_map, ref_got) = reference();
    // The program did what the test relies on.
    for want in [
        "nofile 100 ",
        "core 1048576 2097152",
        "personality 0x440000",
        "dumpable 0 nnp 1 comm procstate-nm",
    ] {
        assert!(ref_state.contains(want), "{want:?} not in {ref_state:?}");
    }
    assert_eq!(ref_map, "map r-x", "READ_IMPLIES_EXEC");
    assert_eq!(ref_got.len(), 5, "five deliveries: {ref_got:?}");
    assert!(
        ref_got.iter().any(|l| l.contains("value 4242"))
            && ref_got.iter().any(|l| l.contains("value 777")),
        "{ref_got:?}"
    );

    let dir = TestDir::new("procstate");
    let image = dir.join("procstate.kckpt");
    let mut p = Proc::start(prog::PROCSTATE, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    assert_eq!(ask(&mut p, "state"), ref_state);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_kills(&mut p, &image);

    let info = info_json(&image);
    assert_eq!(info["did_exec"], true, "{info}");
    assert_eq!(info["process"]["no_new_privs"], 1, "{info}");
    assert_eq!(info["process"]["dumpable"], 0, "{info}");
    assert_eq!(
        info["pending_signals"].as_array().map(Vec::len),
        Some(5),
        "{info}"
    );

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    let state = ask(&mut r, "state");
    if state != ref_state {
        r.fail(&format!(
            "state after restore {state:?}, expected {ref_state:?}"
        ));
    }
    let map = ask(&mut r, "map");
    if map != ref_map {
        r.fail(&format!("after restore {map:?}, expected {ref_map:?}"));
    }
    let status =
        String::from_utf8_lossy(&read_proc(r.pid(), "status").unwrap_or_default()).into_owned();
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    let got = deliveries(&mut r);
    if got != ref_got {
        r.fail(&format!(
            "deliveries after restore:\n{got:#?}\nexpected:\n{ref_got:#?}"
        ));
    }
}

/// A process that forked without exec: did_exec is recorded as false; the
/// restored process has executed the stub, so its PF_FORKNOEXEC is clear
/// (documented behaviour).
#[test]
fn did_exec_is_recorded_and_not_restored() {
    let dir = TestDir::new("forknoexec");
    let image = dir.join("child.kckpt");
    let mut p = Proc::start(prog::PROCSTATE, &["fork"]);
    let line = p.line(LINE_TIMEOUT);
    let child: i32 = line
        .strip_prefix("child ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| p.fail(&format!("expected `child PID`, got {line:?}")));
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let flags = |pid: i32| -> u64 {
        let stat = String::from_utf8_lossy(&read_proc(pid, "stat").expect("stat")).into_owned();
        let rest = stat.rsplit_once(") ").expect("stat format").1;
        rest.split_whitespace()
            .nth(6)
            .and_then(|f| f.parse().ok())
            .expect("flags field")
    };
    assert_ne!(flags(child) & 0x40, 0, "the forked child has PF_FORKNOEXEC");
    let cmdline = read_proc(child, "cmdline").expect("cmdline");
    dump(child, &image, false);
    let info = info_json(&image);
    assert_eq!(info["did_exec"], false, "{info}");

    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    assert!(ask(&mut r, "state").starts_with("state nofile 100 "));
    assert_eq!(
        flags(r.pid()) & 0x40,
        0,
        "a restored process has executed the stub"
    );
}
