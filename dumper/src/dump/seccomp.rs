//! A thread's seccomp state (`NT_KCKPT_SECCOMP`, format 1.8): its mode
//! from `/proc/PID/task/TID/status` and, in filter mode, each filter's
//! classic BPF program (`PTRACE_SECCOMP_GET_FILTER`, which needs
//! CAP_SYS_ADMIN) and flags (`PTRACE_SECCOMP_GET_METADATA`). Read while
//! the thread is seized. What kckpt cannot restore is refused by name:
//! a filter with a user notification listener (`SECCOMP_RET_USER_NOTIF`
//! in its code), a flag other than `SECCOMP_FILTER_FLAG_LOG`, and
//! anything the dumper lacks the privilege to read.

use std::fs;

use kckpt_image::read::record_bytes;
use kckpt_image::seccomp::{
    has_user_notif, SeccompFilterRecord, SeccompRecord, FILTER_FLAG_LOG, MAX_INSNS,
    MAX_INSNS_PER_PATH, MODE_FILTER, MODE_NONE, MODE_STRICT,
};
use nix::errno::Errno;

use super::process::{status_field, CAP_SYS_ADMIN};

/// Most filters read from one thread.
const MAX_FILTERS: usize = (MAX_INSNS_PER_PATH / 5) as usize;

/// `Seccomp:` of thread `tid` (0 none, 1 strict, 2 filter; 0 when unknown).
pub fn mode_of(tid: i32) -> u32 {
    fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|t| status_field(&t, "Seccomp")?.parse().ok())
        .unwrap_or(MODE_NONE)
}

/// May this dumper read filters and suspend seccomp in its tracees
/// (`CAP_SYS_ADMIN` effective, no seccomp of its own)?
pub fn can_suspend() -> bool {
    why_not().is_none()
}

/// Why this dumper may not read filters or suspend seccomp, if it may not.
fn why_not() -> Option<&'static str> {
    let text = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap = super::process::effective_caps(&text);
    if status_field(&text, "Seccomp") != Some("0") {
        // A process checkpointing itself (libkckpt) is its own dumper.
        Some("the dumper runs under seccomp itself")
    } else if cap & (1 << CAP_SYS_ADMIN) == 0 {
        Some("needs CAP_SYS_ADMIN: dump as root")
    } else {
        None
    }
}

/// The `NT_KCKPT_SECCOMP` descriptor of seized thread `tid` (`None`: no
/// seccomp), or the name of what kckpt cannot restore.
pub fn note(tid: i32) -> Result<Option<Vec<u8>>, String> {
    let mode = mode_of(tid);
    let what = match mode {
        MODE_NONE => return Ok(None),
        MODE_STRICT => "seccomp strict mode",
        MODE_FILTER => "seccomp filter",
        other => return Err(format!("seccomp mode {other}")),
    };
    if let Some(why) = why_not() {
        return Err(format!("{what} (not saved: {why})"));
    }
    if mode == MODE_STRICT {
        let rec = SeccompRecord {
            mode,
            filter_count: 0,
        };
        return Ok(Some(record_bytes(&rec).to_vec()));
    }
    // Index 0 is the oldest filter (the kernel's `get_nth_filter` counts
    // from the first installed), the order they are stored in.
    let mut filters: Vec<(u32, Vec<u8>)> = Vec::new();
    for index in 0.. {
        if index >= MAX_FILTERS {
            return Err("seccomp filter (too many filters)".to_owned());
        }
        let insns = match super::ptrace::seccomp_filter(tid, index) {
            Ok(b) => b,
            Err(Errno::ENOENT) if index > 0 => break,
            Err(e) => return Err(format!("seccomp filter (PTRACE_SECCOMP_GET_FILTER: {e})")),
        };
        let flags = super::ptrace::seccomp_flags(tid, index)
            .map_err(|e| format!("seccomp filter (PTRACE_SECCOMP_GET_METADATA: {e})"))?;
        if flags & !u64::from(FILTER_FLAG_LOG) != 0 {
            return Err(format!("seccomp filter with flags {flags:#x}"));
        }
        if has_user_notif(&insns) {
            return Err(
                "seccomp filter with a user notification listener (SECCOMP_RET_USER_NOTIF)"
                    .to_owned(),
            );
        }
        let n = insns.len() / 8;
        if n == 0 || n > MAX_INSNS as usize {
            return Err(format!("seccomp filter of {n} instructions"));
        }
        filters.push((flags as u32, insns));
    }
    let rec = SeccompRecord {
        mode,
        filter_count: filters.len() as u32,
    };
    let mut out = record_bytes(&rec).to_vec();
    for (flags, insns) in &filters {
        let f = SeccompFilterRecord {
            flags: *flags,
            insn_count: (insns.len() / 8) as u32,
        };
        out.extend_from_slice(record_bytes(&f));
        out.extend_from_slice(insns);
    }
    Ok(Some(out))
}
