//! Pending signals of every thread survive a checkpoint
//! (`tests/programs/threadsig.c`): with every signal blocked, two worker
//! threads hold thread-directed signals (SIGUSR2 by tgkill, rt signals with
//! values by pthread_sigqueue, the same rt signal with different values in
//! each worker), the main thread one of its own and the process two
//! process-wide ones. After the restore each thread unblocks and receives
//! exactly what an uncheckpointed run receives — same thread, signal,
//! si_code, value and sender — whether the threads get their saved tids or
//! new ones (binfmt in a user namespace cannot choose tids; with
//! `--leave-running` the saved tids are still taken). A target dumped with
//! `--leave-running` still has them all.

mod common;

use common::*;

/// What an uncheckpointed process receives.
fn reference() -> Vec<String> {
    let mut p = Proc::start(prog::THREADSIG, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let got = deliveries(&mut p);
    // The program did what the test relies on: every thread got its own.
    for want in [
        "t0 got 37 code -1 value 555 pid-self yes",
        "t0 got 10 code 0 value 0 pid-self yes",
        "t0 got 36 code -1 value 4242 pid-self yes",
        "t1 got 12 code -6 value 0 pid-self yes",
        "t1 got 37 code -1 value 777 pid-self yes",
        "t1 got 37 code -1 value 778 pid-self yes",
        "t2 got 37 code -1 value 999 pid-self yes",
        "t2 got 38 code -1 value 888 pid-self yes",
    ] {
        assert!(got.iter().any(|l| l == want), "{want:?} not in {got:#?}");
    }
    assert_eq!(got.len(), 8, "{got:#?}");
    got
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    /// Default dump (kill), `kckpt restore`.
    Kill,
    /// Default dump, `./IMAGE` through binfmt_misc in a user namespace.
    Binfmt,
    /// `--leave-running`: the target goes on; `kckpt restore` while it
    /// still holds every saved tid.
    LeaveRunning,
}

fn thread_signals_case(case: Case) {
    let ref_got = reference();
    let dir = TestDir::new("threadsig");
    let image = dir.join("threadsig.kckpt");
    let mut p = Proc::start(prog::THREADSIG, &[]);
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let saved_tids = tasks(p.pid());
    assert_eq!(saved_tids.len(), 3, "{saved_tids:?}");
    if case == Case::LeaveRunning {
        dump(p.pid(), &image, true);
    } else {
        dump_kills(&mut p, &image);
    }

    let info = info_json(&image);
    let pending = info["pending_signals"].as_array().expect("pending_signals");
    assert_eq!(pending.len(), 8, "{info}");

    let mut r = if case == Case::Binfmt {
        restore_binfmt(&image)
    } else {
        restore(&image)
    };
    r.wait_restored(&cmdline);
    if case == Case::LeaveRunning {
        // The command line is back once the memory is; the threads are
        // made after it.
        eventually(LINE_TIMEOUT, || tasks(r.pid()).len() == 3);
        let now = tasks(r.pid());
        assert_eq!(now.len(), 3, "{now:?}");
        assert!(
            now.iter().all(|t| !saved_tids.contains(t)),
            "the saved tids {saved_tids:?} are taken, yet the restored threads have {now:?}"
        );
    }
    let got = deliveries(&mut r);
    if got != ref_got {
        r.fail(&format!(
            "deliveries after restore:\n{got:#?}\nexpected:\n{ref_got:#?}"
        ));
    }
    if case == Case::LeaveRunning {
        let got = deliveries(&mut p);
        if got != ref_got {
            p.fail(&format!(
                "deliveries in the target left running:\n{got:#?}\nexpected:\n{ref_got:#?}"
            ));
        }
    }
}

#[test]
fn pending_signals_of_every_thread_survive() {
    thread_signals_case(Case::Kill);
}

#[test]
fn pending_signals_of_every_thread_survive_binfmt() {
    thread_signals_case(Case::Binfmt);
}

#[test]
fn pending_signals_of_every_thread_survive_leave_running_new_tids() {
    thread_signals_case(Case::LeaveRunning);
}
