//! Real multi-process jobs, dumped mid-way with their whole process tree and
//! restored by executing the image (`./job.kckpt` through binfmt_misc),
//! each compared with an uninterrupted run of the same job (issue 9):
//! a bash script running subshells, pipelines and external commands;
//! `make -j2` building a small C project; a Python `multiprocessing.Pool`;
//! a two-stage pipeline dumped with `--pgid`.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use common::*;

/// Wait until `cond` holds, or fail with `what`.
fn wait_until(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    assert!(eventually(timeout, cond), "timed out waiting for {what}");
}

fn lines_in(path: &Path) -> usize {
    fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// `kckpt dump` with extra arguments, required to succeed.
fn dump_with(args: &[&str], image: &Path) {
    let out = run(
        Command::new(kckpt())
            .arg("dump")
            .args(args)
            .arg("-o")
            .arg(image),
        DUMP_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "kckpt dump {args:?} failed:\n{}",
        show(&out)
    );
}

/// Restore `image` through binfmt_misc and wait for it to end; its exit
/// status is the root process's.
fn run_image(image: &Path, timeout: Duration) -> std::process::ExitStatus {
    let mut r = restore_binfmt(image);
    let status = r.wait_exit(timeout);
    if !status.success() {
        r.fail(&format!("the restored job ended with {status}"));
    }
    status
}

const SCRIPT: &str = r#"
out=$1
for i in $(seq 1 60); do
    x=$( (echo "sub $i"; sleep 0.05) | tr a-z A-Z )
    n=$(expr $i \* 3)
    echo "$x $n" >> "$out"
    sleep 0.05
done
echo done >> "$out"
"#;

fn script_expected() -> String {
    let mut s = String::new();
    for i in 1..=60 {
        s.push_str(&format!("SUB {i} {}\n", i * 3));
    }
    s.push_str("done\n");
    s
}

#[test]
fn bash_script_with_subshells_and_commands() {
    let dir = TestDir::new("tree-bash");
    let script = dir.join("job.sh");
    fs::write(&script, SCRIPT).unwrap();
    let out = dir.join("out.txt");
    let mut job = Command::new("bash");
    job.arg(&script).arg(&out).process_group(0);
    let mut p = Proc::spawn("bash job", &mut job);
    wait_until("20 lines of output", Duration::from_secs(30), || {
        lines_in(&out) >= 20
    });
    let image = dir.join("job.kckpt");
    dump(p.pid(), &image, false);
    p.wait_exit(Duration::from_secs(10));
    let at_dump = lines_in(&out);
    assert!(at_dump < 61, "the script finished before the dump");
    run_image(&image, Duration::from_secs(60));
    assert_eq!(fs::read_to_string(&out).unwrap(), script_expected());
}

/// A C project whose compilation takes a few seconds on two cores.
fn write_project(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut objs = Vec::new();
    for f in 0..6 {
        let mut src = String::new();
        for i in 0..400 {
            src.push_str(&format!(
                "int f{f}_{i}(int x) {{ int a = x; for (int k = 0; k < {i} % 17 + 3; k++) \
                 a = a * 31 + k * {f} + (a >> 3); return a ^ {i}; }}\n"
            ));
        }
        src.push_str(&format!(
            "int part{f}(int x) {{ int s = 0;\n{}  return s; }}\n",
            (0..400)
                .map(|i| format!("  s += f{f}_{i}(x);\n"))
                .collect::<String>()
        ));
        fs::write(dir.join(format!("p{f}.c")), src).unwrap();
        objs.push(format!("p{f}.o"));
    }
    let mut main = String::from("#include <stdio.h>\n");
    for f in 0..6 {
        main.push_str(&format!("int part{f}(int);\n"));
    }
    main.push_str("int main(void) { int s = 0;\n");
    for f in 0..6 {
        main.push_str(&format!("  s += part{f}(7);\n"));
    }
    main.push_str("  printf(\"%d\\n\", s); return 0; }\n");
    fs::write(dir.join("main.c"), main).unwrap();
    objs.push("main.o".into());
    fs::write(
        dir.join("Makefile"),
        format!(
            "prog: {objs}\n\tcc -o prog {objs}\n%.o: %.c\n\tcc -O2 -c -o $@ $<\n",
            objs = objs.join(" ")
        ),
    )
    .unwrap();
}

#[test]
fn make_j2_builds_after_restore() {
    require_tool("make");
    require_tool("cc");
    let dir = TestDir::new("tree-make");
    let reference = dir.join("ref/proj");
    write_project(&reference);
    let out = run(
        Command::new("make")
            .args(["-s", "-j2"])
            .current_dir(&reference),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "reference build: {}", show(&out));

    let work = dir.join("work/proj");
    write_project(&work);
    let mut job = Command::new("make");
    job.args(["-s", "-j2"]).current_dir(&work).process_group(0);
    let mut p = Proc::spawn("make -j2", &mut job);
    wait_until("a first object file", Duration::from_secs(120), || {
        work.join("p0.o").exists() || work.join("p1.o").exists()
    });
    assert!(
        !work.join("prog").exists(),
        "the build finished before the dump"
    );
    let image = work.join("../make.kckpt");
    dump(p.pid(), &image, false);
    p.wait_exit(Duration::from_secs(10));
    run_image(&image, Duration::from_secs(300));
    let built = fs::read(work.join("prog")).expect("the restored build made prog");
    assert_eq!(
        built,
        fs::read(reference.join("prog")).unwrap(),
        "the restored build's binary differs from an uninterrupted build's"
    );
}

const POOL: &str = r#"
import multiprocessing, sys, time
def part(k):
    time.sleep(0.2)
    return sum(i * i for i in range(k * 1000, (k + 1) * 1000))
if __name__ == "__main__":
    out = sys.argv[1]
    with multiprocessing.Pool(2) as pool:
        total = 0
        for n, v in enumerate(pool.imap(part, range(40))):
            total += v
            with open(out, "a") as f:
                f.write(f"{n}\n")
    with open(out, "a") as f:
        f.write(f"total {total}\n")
"#;

#[test]
fn python_multiprocessing_pool_sum() {
    let dir = TestDir::new("tree-pool");
    let script = dir.join("pool.py");
    fs::write(&script, POOL).unwrap();
    let out = dir.join("progress.txt");
    let mut job = Command::new(PYTHON3);
    job.arg(&script).arg(&out).process_group(0);
    let mut p = Proc::spawn("python pool", &mut job);
    wait_until("10 parts done", Duration::from_secs(60), || {
        lines_in(&out) >= 10
    });
    let image = dir.join("pool.kckpt");
    dump(p.pid(), &image, false);
    p.wait_exit(Duration::from_secs(10));
    run_image(&image, Duration::from_secs(120));
    let expected: u64 = (0..40_000u64).map(|i| i * i).sum();
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines().last(),
        Some(format!("total {expected}").as_str()),
        "{text}"
    );
}

#[test]
fn pipeline_dumped_by_process_group() {
    let dir = TestDir::new("tree-pgid");
    let out = dir.join("out.txt");
    // `set -m`: the pipeline is a job of its own process group.
    let line = format!(
        "set -m; (for i in $(seq 1 300); do echo line $i; sleep 0.02; done) | tr a-z A-Z > {}; wait",
        out.display()
    );
    let mut p = Proc::spawn("bash pipeline", Command::new("bash").args(["-c", &line]));
    // The job's process group: that of `tr`.
    let mut tr = 0;
    wait_until("tr", Duration::from_secs(10), || {
        tr = descendants(p.spawned_pid())
            .into_iter()
            .find(|&c| read_proc(c, "comm").as_deref() == Some(b"tr\n"))
            .unwrap_or(0);
        tr != 0
    });
    sleep(Duration::from_secs(2));
    let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(tr)))
        .unwrap()
        .as_raw();
    assert_ne!(pgid, p.spawned_pid(), "the pipeline has its own group");
    let image = dir.join("pipe.kckpt");
    dump_with(&["--pgid", &pgid.to_string()], &image);
    p.wait_exit(Duration::from_secs(10));
    run_image(&image, Duration::from_secs(60));
    let expected: String = (1..=300).map(|i| format!("LINE {i}\n")).collect();
    assert_eq!(fs::read_to_string(&out).unwrap(), expected);
}
