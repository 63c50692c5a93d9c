//! Every thread of the target: freezing them all (the task list is read
//! again until no new thread appeared, since a running thread may create
//! one meanwhile), the per-thread state (registers, xstate, signal mask,
//! rseq, and — by system calls run in that very thread — sigaltstack and
//! clear-child-tid), and releasing them all at the end.

use std::fs;

use nix::errno::Errno;

use kckpt_image::records::ThreadRecord;
use kckpt_image_write::ThreadNotesOut;

use super::memory::Memory;
use super::nr;
use super::procfs::{self, MapEntry};
use super::ptrace::Tracee;
use crate::error::{Error, Result};

/// Thread ids of `pid` (entries of `/proc/PID/task`), sorted, main first.
pub fn task_ids(pid: i32) -> Result<Vec<i32>> {
    let path = procfs::proc_path(pid, "task");
    let dir = fs::read_dir(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let mut tids: Vec<i32> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    tids.sort_unstable_by_key(|&t| (t != pid, t));
    Ok(tids)
}

/// Seize and interrupt every thread of `pid`; the main thread is first.
/// Threads that exit before they are seized are left out; threads created
/// meanwhile are found by listing the tasks again until the list is stable
/// (once all listed threads are stopped, none can create another).
pub fn seize_all(pid: i32) -> Result<Vec<Tracee>> {
    let mut tracees = vec![Tracee::seize(pid)?];
    for _round in 0..1000 {
        let mut added = false;
        for tid in task_ids(pid)? {
            if tracees.iter().any(|t| t.pid() == tid) {
                continue;
            }
            match Tracee::seize(tid) {
                Ok(t) => {
                    tracees.push(t);
                    added = true;
                }
                // It exited between the listing and the seize.
                Err(Error::Trace {
                    source: Errno::ESRCH,
                    ..
                }) => {}
                Err(Error::TargetDied { .. })
                    if std::path::Path::new(&format!("/proc/{pid}")).exists() => {}
                Err(e) => return Err(e),
            }
        }
        if !added {
            return Ok(tracees);
        }
    }
    Err(Error::Unsupported {
        pid,
        reason: "its threads kept multiplying while it was being stopped".into(),
    })
}

/// Kill every thread (the whole process) and reap the tracer
/// notifications: the other threads first, the main thread (whose exit is
/// reported only once the group is empty) last.
pub fn kill_all(tracees: Vec<Tracee>) {
    for t in tracees.into_iter().rev() {
        t.kill();
    }
}

/// Put every thread's registers back and detach, main thread last.
pub fn resume_all(tracees: Vec<Tracee>) -> Result<()> {
    let mut first_err = None;
    for t in tracees.into_iter().rev() {
        if let Err(e) = t.resume() {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// State a thread reports only about itself: (sigaltstack base, size,
/// flags) and the clear-child-tid address.
pub struct ThreadSelf {
    /// `sigaltstack`: base, size, flags.
    pub altstack: (u64, u64, u32),
    /// `PR_GET_TID_ADDRESS`.
    pub clear_child_tid: u64,
}

/// Run `sigaltstack` and `PR_GET_TID_ADDRESS` in the thread `tracee` (its
/// scratch bytes below its own stack pointer are put back).
pub fn thread_self(
    tracee: &mut Tracee,
    mem: &Memory,
    maps: &[MapEntry],
    insn: u64,
) -> Result<ThreadSelf> {
    const ALT: u64 = 0;
    const TIDADDR: u64 = 32;
    let pid = tracee.pid();
    let scratch =
        super::scratch_area(tracee.regs().sp(), maps).ok_or_else(|| Error::Unsupported {
            pid,
            reason: "no writable memory to run system calls with".into(),
        })?;
    let mut saved = vec![0u8; 64];
    mem.read(scratch, &mut saved)?;
    let result = (|| -> Result<ThreadSelf> {
        tracee.syscall(insn, nr::SIGALTSTACK, [0, scratch + ALT, 0, 0, 0, 0])?;
        tracee.syscall(
            insn,
            nr::PRCTL,
            [nr::PR_GET_TID_ADDRESS, scratch + TIDADDR, 0, 0, 0, 0],
        )?;
        let mut out = vec![0u8; 64];
        mem.read(scratch, &mut out)?;
        let at = |o: u64| {
            let o = o as usize;
            u64::from_le_bytes(out[o..o + 8].try_into().unwrap_or_default())
        };
        Ok(ThreadSelf {
            altstack: (at(ALT), at(ALT + 16), at(ALT + 8) as u32),
            clear_child_tid: at(TIDADDR),
        })
    })();
    let restored = mem.write(scratch, &saved);
    let state = result?;
    restored?;
    Ok(state)
}

/// Register notes other than NT_PRSTATUS: (owner, type, descriptor).
pub type Regsets = Vec<(&'static [u8], u32, Vec<u8>)>;

/// The register notes of a thread other than NT_PRSTATUS.
pub fn registers(tracee: &Tracee) -> Result<Regsets> {
    let mut regsets = Vec::new();
    for spec in kckpt_arch::REGSETS {
        if let Some(bytes) = tracee.regset(spec)? {
            regsets.push((spec.owner, spec.note_type, bytes));
        }
    }
    Ok(regsets)
}

/// The notes of one thread.
pub fn thread_notes(
    tracee: &Tracee,
    regsets: Regsets,
    own: &ThreadSelf,
    ppid: u32,
) -> Result<ThreadNotesOut> {
    let live = *tracee.regs();
    let sigmask = tracee.sigmask()?;
    let rseq = tracee.rseq()?;
    let mut image_regs = live;
    let syscall_state = kckpt_arch::rewind_for_image(&mut image_regs);
    let tid = tracee.pid() as u32;
    let (syscall_nr, syscall_result, tls, tls2) = kckpt_arch::thread_values(&live, |note| {
        regsets
            .iter()
            .find(|(_, t, _)| *t == note)
            .map(|(_, _, b)| b.as_slice())
    });
    let record = ThreadRecord {
        tid,
        syscall_state,
        syscall_nr,
        syscall_result,
        tls,
        tls2,
        sigmask,
        altstack_sp: own.altstack.0,
        altstack_size: own.altstack.1,
        altstack_flags: own.altstack.2,
        rseq_sig: rseq.sig,
        rseq_addr: rseq.addr,
        rseq_len: rseq.len,
        reserved0: 0,
        clear_child_tid: own.clear_child_tid,
        name: super::procfs::thread_name(tid as i32),
        reserved: [0; 2],
    };
    Ok(ThreadNotesOut {
        prstatus: kckpt_arch::prstatus_bytes(&image_regs, tid, ppid, 0, sigmask).to_vec(),
        regsets,
        record,
    })
}
