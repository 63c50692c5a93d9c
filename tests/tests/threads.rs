//! Multi-threaded processes: every thread is restored and keeps running
//! (C workers, python3 threads with a lock, a MAP_SHARED counter shared by
//! two threads), the restored process has as many tasks as the saved one,
//! and the stub's window is gone afterwards.

mod common;

use std::fs;

use common::*;

fn counters(line: &str) -> Vec<u64> {
    let mut f = line.split_whitespace();
    assert_eq!(f.next(), Some("tick"), "not a tick line: {line:?}");
    f.map(|n| n.parse().expect("counter")).collect()
}

/// The names of a process's threads (`/proc/PID/task/*/comm`), sorted.
fn thread_names(pid: i32) -> Vec<String> {
    let mut names: Vec<String> = tasks(pid)
        .iter()
        .map(|t| {
            fs::read_to_string(format!("/proc/{pid}/task/{t}/comm"))
                .unwrap_or_default()
                .trim_end()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

fn threads_case(binfmt: bool) {
    let dir = TestDir::new("threads");
    let image = dir.join("threads.kckpt");
    let mut p = Proc::start(prog::THREADS, &["4"]);
    p.line(LINE_TIMEOUT);
    p.line(LINE_TIMEOUT);
    let saved = tasks(p.pid());
    assert_eq!(saved.len(), 5, "threads 4 should have 5 tasks: {saved:?}");
    let names = thread_names(p.pid());
    assert!(names.iter().any(|n| n == "worker-3"), "{names:?}");
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let last = counters(&dump_and_kill(&mut p, &image));
    let mut r = if binfmt {
        restore_binfmt(&image)
    } else {
        restore(&image)
    };
    let first = counters(&r.line(LINE_TIMEOUT));
    r.wait_restored(&cmdline);
    let second = counters(&r.line(LINE_TIMEOUT));
    assert_eq!(first.len(), 4, "{first:?}");
    for i in 0..4 {
        assert!(
            first[i] >= last[i],
            "thread {i} went back from {} to {}",
            last[i],
            first[i]
        );
        assert!(
            second[i] > first[i],
            "thread {i} does not run after restore ({} then {})",
            first[i],
            second[i]
        );
    }
    let now = tasks(r.pid());
    assert_eq!(now.len(), 5, "restored process tasks: {now:?}");
    assert_eq!(thread_names(r.pid()), names, "thread names after restore");
    no_window(r.pid());
}

#[test]
fn threads_4_all_keep_counting() {
    threads_case(false);
}

#[test]
fn threads_4_all_keep_counting_binfmt() {
    threads_case(true);
}

/// python3 with three worker threads updating shared counters under a
/// lock; main prints `n consistent c0 c1 c2` every 100 ms.
const PYTHON_THREADS: &str = "\
import threading, time
lock = threading.Lock()
counts = [0, 0, 0]
total = [0]
def work(i):
    while True:
        with lock:
            counts[i] += 1
            total[0] += 1
        time.sleep(0.001)
for i in range(3):
    threading.Thread(target=work, args=(i,), daemon=True).start()
n = 0
while True:
    n += 1
    with lock:
        print(n, sum(counts) == total[0], *counts, flush=True)
    time.sleep(0.1)
";

fn python_line(line: &str) -> (u64, bool, Vec<u64>) {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 5, "not a python threads line: {line:?}");
    (
        f[0].parse().expect("n"),
        f[1] == "True",
        f[2..].iter().map(|c| c.parse().expect("count")).collect(),
    )
}

#[test]
fn python_threads_with_a_lock_keep_running() {
    let dir = TestDir::new("python-threads");
    let image = dir.join("py.kckpt");
    let mut p = Proc::start(PYTHON3, &["-u", "-c", PYTHON_THREADS]);
    p.wait_for("10", LINE_TIMEOUT, |l| l.starts_with("10 "));
    assert_eq!(tasks(p.pid()).len(), 4);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let (last, _, last_counts) = python_line(&dump_and_kill(&mut p, &image));
    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    let mut prev = last_counts;
    for i in 1..=5 {
        let line = r.line(LINE_TIMEOUT);
        let (n, consistent, counts) = python_line(&line);
        if n != last + i || !consistent {
            r.fail(&format!(
                "expected line {} consistent, got {line:?}",
                last + i
            ));
        }
        if i > 1 && counts.iter().zip(&prev).any(|(c, p)| c <= p) {
            r.fail(&format!(
                "a worker thread stopped: {prev:?} then {counts:?}"
            ));
        }
        prev = counts;
    }
    assert_eq!(tasks(r.pid()).len(), 4);
    no_window(r.pid());
}

fn shared(line: &str) -> (u64, u64) {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        ["shared", a, b] => (a.parse().expect("a"), b.parse().expect("b")),
        _ => panic!("not a shared line: {line:?}"),
    }
}

#[test]
fn shared_anonymous_counter_between_two_threads() {
    let dir = TestDir::new("shared-threads");
    let image = dir.join("shared.kckpt");
    let mut p = Proc::start(prog::SHARED_THREADS, &[]);
    p.wait_for("a count", LINE_TIMEOUT, |l| shared(l).0 >= 100);
    let cmdline = read_proc(p.pid(), "cmdline").expect("cmdline");
    let (last, _) = shared(&dump_and_kill(&mut p, &image));
    let mut r = restore(&image);
    r.wait_restored(&cmdline);
    let mut prev = last;
    for _ in 0..5 {
        let line = r.line(LINE_TIMEOUT);
        let (a, b) = shared(&line);
        if a < prev || b > a || b + 1000 < a {
            r.fail(&format!(
                "shared counter inconsistent after {prev}: {line:?}"
            ));
        }
        prev = a;
    }
    let (a, b) = shared(&r.line(LINE_TIMEOUT));
    assert!(
        a > last && b > last,
        "the threads stopped counting: {last} -> {a} {b}"
    );
    let maps = maps(r.pid());
    assert!(
        maps.iter().any(|l| l.contains(" rw-s ")),
        "no shared mapping after restore:\n{}",
        maps.join("\n")
    );
    no_window(r.pid());
}
