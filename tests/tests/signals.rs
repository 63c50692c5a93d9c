//! Signal state survives a checkpoint: a SIGUSR1 handler (SA_SIGINFO,
//! SA_ONSTACK) still runs on its sigaltstack, and SIGUSR2 is still blocked.

mod common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

const BLOCKED: &str = "usr2-blocked yes usr2-pending no altstack yes";

fn is_tick(l: &str) -> bool {
    l.starts_with("tick ")
}

/// Send SIGUSR1 and expect the handler's line on the altstack.
fn check_usr1(p: &mut Proc) {
    kill(Pid::from_raw(p.pid()), Signal::SIGUSR1).expect("kill SIGUSR1");
    let line = p.wait_for("got SIGUSR1", LINE_TIMEOUT, |l| !is_tick(l));
    if line != "got SIGUSR1 signo 10 altstack yes" {
        p.fail(&format!("unexpected handler output {line:?}"));
    }
}

#[test]
fn sigusr1_handler_mask_and_altstack_survive() {
    let dir = TestDir::new("sigusr1");
    let image = dir.join("sigusr1.kckpt");
    let mut p = Proc::start(prog::SIGUSR1, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let tick = p.line(LINE_TIMEOUT);
    assert!(tick.ends_with(BLOCKED), "before the dump: {tick:?}");
    // The program works as the test expects before any checkpoint.
    check_usr1(&mut p);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    dump_and_kill(&mut p, &image);

    let mut r = restore(&image);
    let tick = r.wait_for("a tick", LINE_TIMEOUT, is_tick);
    if !tick.ends_with(BLOCKED) {
        r.fail(&format!(
            "after restore: {tick:?}, expected it to end with {BLOCKED:?}"
        ));
    }
    r.wait_restored(&cmdline);
    check_usr1(&mut r);

    // SIGUSR2 is blocked: it stays pending and does not kill the process.
    kill(Pid::from_raw(r.pid()), Signal::SIGUSR2).expect("kill SIGUSR2");
    let tick = r.wait_for("a tick with SIGUSR2 pending", LINE_TIMEOUT, |l| {
        is_tick(l) && l.contains("usr2-pending yes")
    });
    assert!(tick.contains("usr2-blocked yes"), "{tick:?}");
    check_usr1(&mut r);
}
