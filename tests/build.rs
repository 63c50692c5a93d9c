//! Compiles the C test programs in `programs/` into `OUT_DIR` and exports
//! their paths to the tests as `KCKPT_PROG_<NAME>` environment variables.
//! Also sets `cfg(kckpt_no_avx512)` when this CPU lacks AVX-512F, so the zmm
//! test is ignored with a reason instead of failing or passing vacuously.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (exported name, source, extra flags)
const PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("COUNTER_PIE", "counter.c", &["-fPIE", "-pie"]),
    ("COUNTER_NOPIE", "counter.c", &["-fno-pie", "-no-pie"]),
    ("COUNTER_STATIC", "counter.c", &["-static"]),
    ("MEMFILL", "memfill.c", &["-fPIE", "-pie"]),
    ("THREADS", "threads.c", &["-fPIE", "-pie", "-lpthread"]),
    (
        "SHARED_THREADS",
        "shared_threads.c",
        &["-fPIE", "-pie", "-lpthread"],
    ),
    ("SIGUSR1", "sigusr1.c", &["-fPIE", "-pie"]),
    ("PIPE_READ", "pipe_read.c", &["-fPIE", "-pie"]),
    ("PIPE_ALONE", "pipe_alone.c", &["-fPIE", "-pie"]),
    ("CHROOTED", "chrooted.c", &["-static"]),
    ("SLEEPER", "sleeper.c", &["-fPIE", "-pie"]),
    ("YMM", "ymm.c", &["-fPIE", "-pie"]),
    ("ZMM", "zmm.c", &["-fPIE", "-pie"]),
    ("MALLOC_BRK", "malloc_brk.c", &["-fPIE", "-pie"]),
    ("MEMKINDS", "memkinds.c", &["-fPIE", "-pie"]),
    ("PROCSTATE", "procstate.c", &["-fPIE", "-pie"]),
    ("KSTATE", "kstate.c", &["-fPIE", "-pie", "-lpthread"]),
    ("CREDS", "creds.c", &["-fPIE", "-pie", "-lpthread"]),
    ("FILES_LOG", "files_log.c", &["-fPIE", "-pie"]),
    ("FILES_EPOLL", "files_epoll.c", &["-fPIE", "-pie"]),
    ("THREADSIG", "threadsig.c", &["-fPIE", "-pie", "-lpthread"]),
    ("PINGPONG", "pingpong.c", &["-fPIE", "-pie", "-lpthread"]),
    ("HOLDER", "holder.c", &["-fPIE", "-pie"]),
    ("INET_SERVER", "inet_server.c", &["-fPIE", "-pie"]),
    ("TCP_CONN", "tcp_conn.c", &["-fPIE", "-pie"]),
    ("TCP_HALF", "tcp_half.c", &["-fPIE", "-pie"]),
    ("TCP_FLOW", "tcp_flow.c", &["-fPIE", "-pie"]),
    ("BPF_FILTER", "bpf_filter.c", &["-fPIE", "-pie"]),
    ("SOCK_OPTS", "sock_opts.c", &["-fPIE", "-pie"]),
    ("INJECTEE", "injectee.c", &["-fPIE", "-pie", "-lpthread"]),
    ("HANDLERS", "handlers.c", &["-fPIE", "-pie", "-lpthread"]),
    ("TIMERS", "timers.c", &["-fPIE", "-pie", "-lpthread"]),
    ("STDIO_COPY", "stdio_copy.c", &["-fPIE", "-pie"]),
    ("OFD", "ofd.c", &["-fPIE", "-pie"]),
    ("GHOSTS", "ghosts.c", &["-fPIE", "-pie"]),
    ("INOTIFY", "inotify.c", &["-fPIE", "-pie"]),
    ("FOWN_SIGNALS", "fown_signals.c", &["-fPIE", "-pie"]),
    ("FOWN_TREE", "fown_tree.c", &["-fPIE", "-pie"]),
    ("PIDFDS", "pidfds.c", &["-fPIE", "-pie"]),
    ("MULTICAST", "multicast.c", &["-fPIE", "-pie"]),
    ("SIGCHLD", "sigchld.c", &["-fPIE", "-pie"]),
    ("SPECIAL", "special.c", &["-fPIE", "-pie"]),
    ("SELF_OBJECTS", "self_objects.c", &["-fPIE", "-pie"]),
    ("TREE_BASIC", "tree_basic.c", &["-fPIE", "-pie"]),
    ("EXT_READER", "ext_reader.c", &["-fPIE", "-pie"]),
    ("TREE_SHARE", "tree_share.c", &["-fPIE", "-pie"]),
    ("TREE_DEDUP", "tree_dedup.c", &["-fPIE", "-pie"]),
    ("TREER_TREE", "treer_tree.c", &["-fPIE", "-pie"]),
    ("TREER_PIPE", "treer_pipe.c", &["-fPIE", "-pie"]),
    ("TREET_PTY", "treet_pty.c", &["-fPIE", "-pie"]),
    ("PTY_ALONE", "pty_alone.c", &["-fPIE", "-pie"]),
    ("UNIX_TREE", "unix_tree.c", &["-fPIE", "-pie"]),
    ("CHROOTED", "chrooted.c", &["-fPIE", "-pie"]),
    ("SCM_RIGHTS", "scm_rights.c", &["-fPIE", "-pie"]),
    ("STDERR_TICKER", "stderr_ticker.c", &["-fPIE", "-pie"]),
    ("UNIX_KINDS", "unix_kinds.c", &["-fPIE", "-pie"]),
    ("SYSV_SHM", "sysv_shm.c", &["-fPIE", "-pie"]),
    ("SYSV_IPC", "sysv_ipc.c", &["-fPIE", "-pie"]),
    (
        "ATTRS_TREE",
        "attrs_tree.c",
        &["-fPIE", "-pie", "-lpthread"],
    ),
    (
        "TREEM_SHARE",
        "treem_share.c",
        &["-fPIE", "-pie", "-lpthread"],
    ),
    (
        "SECCOMP_PROG",
        "seccomp_prog.c",
        &["-fPIE", "-pie", "-lpthread"],
    ),
    (
        "NOLIBC",
        "nolibc.c",
        &["-nostdlib", "-static", "-fno-stack-protector"],
    ),
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-changed=build.rs");
    // Headers the programs include.
    println!("cargo:rerun-if-changed=programs/sysv_common.h");
    for (name, source, flags) in PROGRAMS {
        let src = manifest.join("programs").join(source);
        println!("cargo:rerun-if-changed={}", src.display());
        let exe = out.join(name.to_ascii_lowercase());
        compile(&cc, &src, &exe, flags);
        println!("cargo:rustc-env=KCKPT_PROG_{name}={}", exe.display());
    }

    println!("cargo::rustc-check-cfg=cfg(kckpt_no_avx512)");
    if !cpu_has_avx512f() {
        println!("cargo:rustc-cfg=kckpt_no_avx512");
    }
}

fn compile(cc: &str, src: &Path, exe: &Path, flags: &[&str]) {
    // -g: gdb shows source lines for the test programs; it changes no code.
    let mut cmd = Command::new(cc);
    cmd.args(["-O2", "-g", "-Wall", "-o"]).arg(exe).arg(src);
    // Libraries go after the source.
    cmd.args(flags);
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run the C compiler `{cc}` ({e}): the end-to-end tests need it to build \
             their test programs; install gcc and libc6-dev (bash scripts/test.sh does that)"
        ),
    };
    if !output.status.success() {
        panic!(
            "`{cc}` failed to compile {} ({:?}):\n{}",
            src.display(),
            flags,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// AVX-512F in the CPU flags and in the kernel's view (`/proc/cpuinfo` lists
/// `avx512f` only when the kernel enabled it).
fn cpu_has_avx512f() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "avx512f"))
        })
        .unwrap_or(false)
}
