//! Every thread of the target: freezing them all (the task list is read
//! again until no new thread appeared, since a running thread may create
//! one meanwhile), the per-thread state (registers, xstate, signal mask,
//! rseq, and — by system calls run in that very thread — sigaltstack and
//! clear-child-tid), and releasing them all at the end.

use std::fs;

use nix::errno::Errno;

use kckpt_image::records::ThreadRecord;
use kckpt_image_write::ThreadNotesOut;

use super::inject::{Session, Site};
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
    /// `PR_GET_SECUREBITS` (credentials are per thread).
    pub securebits: u32,
    /// `PR_GET_PDEATHSIG` (per thread).
    pub pdeath_signal: u32,
}

/// Run `sigaltstack` and `PR_GET_TID_ADDRESS` in the thread `tracee`
/// (see [`super::inject`]), whose register sets are `regsets`.
pub fn thread_self(
    tracee: &mut Tracee,
    mem: &Memory,
    maps: &[MapEntry],
    site: Site,
    regsets: &Regsets,
) -> Result<ThreadSelf> {
    let mut session = Session::open(tracee, mem, maps, site, regsets)?;
    let own = own_state(&mut session)?;
    session.close()?;
    Ok(own)
}

/// The calling thread's own state, by system calls in `session`.
pub fn own_state(session: &mut Session<'_>) -> Result<ThreadSelf> {
    let out = session.out();
    session.call(nr::SIGALTSTACK, [0, out, 0, 0, 0, 0])?;
    // stack_t: ss_sp, ss_flags (int and padding), ss_size.
    let alt = session.read_out(24)?;
    session.call(nr::PRCTL, [nr::PR_GET_TID_ADDRESS, out, 0, 0, 0, 0])?;
    let tid_address = session.read_out(8)?;
    let securebits = session.call(nr::PRCTL, [super::kstate::PR_GET_SECUREBITS, 0, 0, 0, 0, 0])?;
    // PR_GET_PDEATHSIG (2) writes an int.
    let pdeath = session.call(nr::PRCTL, [2, out, 0, 0, 0, 0])?;
    let pdeath_signal = if pdeath < 0 {
        0
    } else {
        super::u64_at(&session.read_out(8)?, 0) as u32
    };
    Ok(ThreadSelf {
        altstack: (
            super::u64_at(&alt, 0),
            super::u64_at(&alt, 16),
            super::u64_at(&alt, 8) as u32,
        ),
        clear_child_tid: super::u64_at(&tid_address, 0),
        securebits: securebits.max(0) as u32,
        pdeath_signal,
    })
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

/// The notes of one thread of process `pid`: its registers, its
/// `NT_KCKPT_TASK` (credentials, robust list), (1.8) its `NT_KCKPT_SECCOMP`
/// (`seccomp`, read with the descriptors: `Files::take_seccomp`) and its
/// `ThreadRecord`.
pub fn thread_notes(
    pid: i32,
    tracee: &Tracee,
    mut regsets: Regsets,
    own: &ThreadSelf,
    ppid: u32,
    seccomp: Option<Vec<u8>>,
) -> Result<ThreadNotesOut> {
    let live = *tracee.regs();
    let sigmask = tracee.sigmask()?;
    let rseq = tracee.rseq()?;
    let mut image_regs = live;
    let syscall_state = kckpt_arch::rewind_for_image(&mut image_regs);
    let tid = tracee.pid() as u32;
    let task = super::kstate::task_note(pid, tid as i32, own.securebits, own.pdeath_signal)?;
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
    // After the register sets, before the ThreadRecord that ends the group.
    regsets.push((
        kckpt_image::NOTE_OWNER,
        kckpt_image::kstate::NT_KCKPT_TASK,
        task,
    ));
    // Its seccomp state (format 1.8); what cannot be restored was refused
    // (or, skipped as unsupported, is not saved).
    if let Some(seccomp) = seccomp {
        regsets.push((
            kckpt_image::NOTE_OWNER,
            kckpt_image::seccomp::NT_KCKPT_SECCOMP,
            seccomp,
        ));
    }
    Ok(ThreadNotesOut {
        prstatus: kckpt_arch::prstatus_bytes(&image_regs, tid, ppid, 0, sigmask).to_vec(),
        regsets,
        record,
    })
}
