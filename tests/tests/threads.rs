//! A multi-threaded process is either checkpointed and restored with every
//! thread running again, or refused cleanly at dump time (multi-threaded
//! processes are documented as not supported yet). Never a broken image.

mod common;

use common::*;

fn counters(line: &str) -> Vec<u64> {
    let mut f = line.split_whitespace();
    assert_eq!(f.next(), Some("tick"), "not a tick line: {line:?}");
    f.map(|n| n.parse().expect("counter")).collect()
}

#[test]
fn threads_restore_with_all_threads_or_refuse_cleanly() {
    let dir = TestDir::new("threads");
    let image = dir.join("threads.kckpt");
    let mut p = Proc::start(prog::THREADS, &["3"]);
    p.line(LINE_TIMEOUT);
    p.line(LINE_TIMEOUT);
    let out = dump_raw(p.pid(), &image, false);
    if !out.status.success() {
        assert_refused("dump of a multi-threaded process", &out, None, &["thread"]);
        assert!(!image.exists(), "a refused dump left an image");
        // The refused target keeps running.
        p.line(LINE_TIMEOUT);
        return;
    }
    p.drain(std::time::Duration::from_secs(10));
    let last = counters(p.last_seen().unwrap());
    let mut r = restore(&image);
    let first = counters(&r.line(LINE_TIMEOUT));
    let second = counters(&r.line(LINE_TIMEOUT));
    assert_eq!(first.len(), 3, "{first:?}");
    for i in 0..3 {
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
}
