//! Procfs files of other processes of the tree (format 1.8, `PROCFS`
//! `args[0]` 1): a parent holding `/proc/CHILD/stat` open and its child
//! holding `/proc/PARENT/status` get them back, opened once every process
//! of the tree exists, and each still reads the other process's entry
//! (trees keep their pids). The same file of a process outside the dump
//! stays refused (ghosts.rs).

mod common;

use std::process::Command;

use common::*;

const TREE: &str = r#"
import os, signal, sys, time
child = os.fork()
if child == 0:
    fd = os.open("/proc/%d/status" % os.getppid(), os.O_RDONLY)
    # Waits with SIGUSR1 blocked (a handler and pause() would miss a
    # signal that comes between them).
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    print("child ready", flush=True)
    while True:
        signal.sigwait([signal.SIGUSR1])
        os.lseek(fd, 0, 0)
        text = os.read(fd, 4096).decode()
        pid = [l.split()[1] for l in text.splitlines() if l.startswith("Pid:")][0]
        print("child sees", pid, flush=True)
fd = os.open("/proc/%d/stat" % child, os.O_RDONLY)
time.sleep(0.3)
print("parent", os.getpid(), "child", child, flush=True)
print("ready", flush=True)
for line in sys.stdin:
    os.lseek(fd, 0, 0)
    print("parent sees", os.read(fd, 4096).split()[0].decode(), flush=True)
    os.kill(child, signal.SIGUSR1)
"#;

#[test]
fn procfs_files_of_each_other_come_back_in_a_tree() {
    let dir = TestDir::new("tree_procfs");
    let mut p = Proc::spawn("python tree", Command::new(PYTHON3).args(["-c", TREE]));
    let (mut parent, mut child) = (String::new(), String::new());
    loop {
        let line = p.line(LINE_TIMEOUT);
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["ready"] => break,
            ["child", "ready"] => {}
            ["parent", pp, "child", c] => {
                parent = pp.to_string();
                child = c.to_string();
            }
            _ => p.fail(&format!("unexpected line {line:?}")),
        }
    }
    let image = dir.join("tree.kckpt");
    dump_kills(&mut p, &image);
    let info = run(
        Command::new(kckpt()).args(["info", "--json"]).arg(&image),
        CMD_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains(&format!("/proc/{child}/stat")), "{text}");
    let mut r = restore(&image);
    r.write_stdin("check\n");
    let mut seen = vec![r.line(LINE_TIMEOUT), r.line(LINE_TIMEOUT)];
    seen.sort();
    assert_eq!(
        seen,
        [
            format!("child sees {parent}"),
            format!("parent sees {child}")
        ],
        "{}",
        r.stderr()
    );
    r.kill();
}
