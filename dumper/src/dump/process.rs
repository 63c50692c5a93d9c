//! Process state beyond memory and handlers (format 1.1): resource limits
//! (`/proc/PID/limits`), personality (`/proc/PID/personality`),
//! no_new_privs (`/proc/PID/status`), dumpable (`prctl(PR_GET_DUMPABLE)`
//! run inside the target), and the pending signals of every thread's queue
//! and of the process-wide one with their siginfo (`PTRACE_PEEKSIGINFO`),
//! completed from the `SigPnd` and `ShdPnd` masks for signals the kernel
//! queued without a siginfo.

use kckpt_image::records::{
    PendingSignalRecord, ProcessRecord, RlimitRecord, PENDING_SHARED, RLIMIT_COUNT, RLIM_INFINITY,
};

use super::procfs;
use super::ptrace::Tracee;
use crate::error::{Error, Result};

/// `si_code` of a signal the kernel sent (used for pending bits that have
/// no queued siginfo).
const SI_KERNEL: i32 = 0x80;

/// Parse `/proc/PID/limits`: one line per resource in `RLIMIT_*` order,
/// soft and hard limit after the 25-column name.
pub fn parse_limits(text: &str) -> Option<Vec<RlimitRecord>> {
    let value = |v: &str| -> Option<u64> {
        if v == "unlimited" {
            Some(RLIM_INFINITY)
        } else {
            v.parse().ok()
        }
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let rest = line.get(25..)?;
        let mut f = rest.split_whitespace();
        let (cur, max) = (value(f.next()?)?, value(f.next()?)?);
        out.push(RlimitRecord { cur, max });
    }
    (!out.is_empty() && out.len() <= RLIMIT_COUNT).then_some(out)
}

/// A hexadecimal field (`SigPnd`, `ShdPnd`) or a decimal one
/// (`NoNewPrivs`) of `/proc/PID/status`.
pub(crate) fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// `CAP_SYS_ADMIN`, `CAP_CHECKPOINT_RESTORE`: bit numbers in
/// [`effective_caps`].
pub(crate) const CAP_SYS_ADMIN: u32 = 21;
/// See [`CAP_SYS_ADMIN`].
pub(crate) const CAP_CHECKPOINT_RESTORE: u32 = 40;

/// The effective capabilities (`CapEff`) of a `/proc/PID/status` text (0
/// when it has none).
pub(crate) fn effective_caps(status: &str) -> u64 {
    status_field(status, "CapEff")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0)
}

/// Collect the process record; `dumpable` is what `prctl(PR_GET_DUMPABLE)`
/// returned inside the target.
pub fn process_record(pid: i32, dumpable: i64) -> Result<ProcessRecord> {
    let parse_err = |name: &str, what: &str| Error::Parse {
        path: procfs::proc_path(pid, name),
        what: what.into(),
    };
    let limits = String::from_utf8_lossy(&procfs::read(pid, "limits")?).into_owned();
    let limits = parse_limits(&limits).ok_or_else(|| parse_err("limits", "unexpected line"))?;
    let personality = String::from_utf8_lossy(&procfs::read(pid, "personality")?).into_owned();
    let personality = u32::from_str_radix(personality.trim(), 16)
        .map_err(|_| parse_err("personality", "not a hexadecimal number"))?;
    let status = String::from_utf8_lossy(&procfs::read(pid, "status")?).into_owned();
    let no_new_privs = status_field(&status, "NoNewPrivs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut rec = ProcessRecord {
        personality,
        dumpable: u32::try_from(dumpable).unwrap_or(1),
        no_new_privs,
        rlimit_count: limits.len() as u32,
        ..ProcessRecord::default()
    };
    rec.rlimits[..limits.len()].copy_from_slice(&limits);
    Ok(rec)
}

fn siginfo_signo(info: &[u8; 128]) -> u32 {
    u32::from_le_bytes([info[0], info[1], info[2], info[3]])
}

/// A siginfo for a pending signal the kernel did not queue one for.
fn kernel_siginfo(signo: u32) -> [u8; 128] {
    let mut info = [0u8; 128];
    info[..4].copy_from_slice(&signo.to_le_bytes());
    info[8..12].copy_from_slice(&SI_KERNEL.to_le_bytes());
    info
}

/// The records of one queue, completed with the bits of its pending mask
/// (`mask` bit n-1 = signal n) that have no queued siginfo.
fn queue_records(tid: u32, queued: Vec<[u8; 128]>, mask: u64) -> Vec<PendingSignalRecord> {
    let mut out: Vec<PendingSignalRecord> = queued
        .into_iter()
        .map(|siginfo| PendingSignalRecord {
            tid,
            signo: siginfo_signo(&siginfo),
            siginfo,
        })
        .filter(|r| (1..=64).contains(&r.signo) && r.signo != 9 && r.signo != 19)
        .collect();
    for signo in 1..=64u32 {
        if mask & (1 << (signo - 1)) != 0
            && signo != 9
            && signo != 19
            && !out.iter().any(|r| r.signo == signo)
        {
            out.push(PendingSignalRecord {
                tid,
                signo,
                siginfo: kernel_siginfo(signo),
            });
        }
    }
    out
}

/// The pending signals of every thread's own queue (in the order of
/// `tracees`, main thread first) and then of the process-wide queue. Each
/// thread queue comes from `PTRACE_PEEKSIGINFO` on that thread, completed
/// with `SigPnd` of `/proc/PID/task/TID/status`; the shared one with
/// `PTRACE_PEEKSIGINFO_SHARED` and `ShdPnd`. Call before running anything
/// in the target (it could dequeue some).
pub fn pending_signals(tracees: &[Tracee]) -> Result<Vec<PendingSignalRecord>> {
    let Some(main) = tracees.first() else {
        return Ok(Vec::new());
    };
    let pid = main.pid();
    let mask = |status: &str, key| {
        status_field(status, key)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    let mut shared_mask = 0;
    for t in tracees {
        let tid = t.pid();
        let status = procfs::read(pid, &format!("task/{tid}/status"))?;
        let status = String::from_utf8_lossy(&status);
        if tid == pid {
            shared_mask = mask(&status, "ShdPnd");
        }
        out.extend(queue_records(
            tid as u32,
            t.peek_siginfo(false)?,
            mask(&status, "SigPnd"),
        ));
    }
    out.extend(queue_records(
        PENDING_SHARED,
        main.peek_siginfo(true)?,
        shared_mask,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_text() {
        let text = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             63446                63446                processes 
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       63446                63446                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
";
        let l = parse_limits(text).unwrap();
        assert_eq!(l.len(), 16);
        assert_eq!(
            l[3],
            RlimitRecord {
                cur: 8388608,
                max: RLIM_INFINITY
            }
        );
        assert_eq!(
            l[7],
            RlimitRecord {
                cur: 1024,
                max: 524288
            }
        );
        assert_eq!(l[14], RlimitRecord { cur: 0, max: 0 });
        assert!(parse_limits("Limit\nMax cpu time  x y\n").is_none());
    }

    #[test]
    fn masks_complete_the_queues() {
        let mut usr1 = [0u8; 128];
        usr1[0] = 10;
        let r = queue_records(7, vec![usr1], (1 << 9) | (1 << 1) | (1 << 8));
        let signos: Vec<u32> = r.iter().map(|r| r.signo).collect();
        // SIGUSR1 from the queue; SIGINT has no siginfo; SIGKILL is never stored.
        assert_eq!(signos, [10, 2]);
        assert_eq!(r[1].siginfo[8], 0x80);
        assert!(r.iter().all(|r| r.tid == 7));
        assert_eq!(
            status_field("SigPnd:\t0000000000000200\n", "SigPnd"),
            Some("0000000000000200")
        );
    }
}
