//! Checkpointing the calling process from inside: [`checkpoint_self`] in
//! Rust, `kckpt_checkpoint_self()` in C (`kckpt.h`, `libkckpt.a`).
//!
//! The image is the same as `kckpt dump` writes; its thread resumes as if
//! the call had returned 1 (the registers are those the assembly entry
//! recorded: callee-saved ones, the caller's stack pointer, the return
//! address). Without ptrace everything is read from inside:
//!
//! 1. refuse a process with other threads (they keep running and their
//!    registers cannot be read from inside): [`Error::SelfThreads`], `EBUSY`;
//! 2. block every signal; record the previous mask, the pending signals
//!    (`/proc/self/status`), the dispositions (`rt_sigaction(sig, NULL,
//!    &old)`), sigaltstack, `PR_GET_TID_ADDRESS`, rseq (glibc's
//!    `__rseq_offset`/`__rseq_size`, confirmed by the kernel), the thread
//!    pointers, the XSAVE area (`xsave64`), the descriptors (the external
//!    dumper's code on `/proc/self`), limits, personality, dumpable;
//! 3. take the memory snapshot: `clone` without `CLONE_VM` (a fork without
//!    atfork handlers and without `SIGCHLD`) right after `brk(0)`. The
//!    child only waits, so its memory stays exactly this process's memory
//!    at that instant — whatever this process allocates afterwards, the
//!    image never mixes two states of the heap;
//! 4. write the image from the child's memory with the external dumper's
//!    page selection and writer (`/proc/CHILD/{smaps,pagemap}`,
//!    `process_vm_readv`); shared mappings (`MAP_SHARED`, memfd), and
//!    `MADV_DONTFORK`/`MADV_WIPEONFORK` areas, which a child does not
//!    inherit as they are, are read from this process instead;
//! 5. kill the child, put the signal mask back, return 0.

mod ffi;
mod sys;

use std::fs;
use std::path::Path;

use kckpt_arch::selfsave::SelfRegs;
use kckpt_image::records::{
    vma_kind, PendingSignalRecord, ProcessRecord, ThreadRecord, PENDING_SHARED,
};
use kckpt_image_write::{ImageMetadata, ImageWriter, StringTable, ThreadNotesOut};

use crate::dump::memory::{self, Memory};
use crate::dump::procfs::{self, MapEntry};
use crate::dump::{files, process, threads::Regsets, TempImage};
use crate::error::{Error, Result};

pub use ffi::{checkpoint_self, SelfCheckpoint};

/// Puts the signal mask back when dropped.
struct MaskGuard(u64);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        sys::set_mask(self.0);
    }
}

/// Signals 9 and 19 are never stored as pending.
fn storable(signo: u32) -> bool {
    (1..=64).contains(&signo) && signo != 9 && signo != 19
}

/// Pending signals (`SigPnd`: this thread, `ShdPnd`: the process) from
/// `/proc/self/status`. Their siginfo cannot be read without consuming
/// them: each gets `si_code` `SI_KERNEL`, as the external dumper does for
/// signals the kernel queued without one.
fn pending_signals(status: &str, tid: u32) -> Vec<PendingSignalRecord> {
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for (queue, bits) in [(tid, mask("SigPnd")), (PENDING_SHARED, mask("ShdPnd"))] {
        for signo in (1..=64u32).filter(|&s| bits & (1 << (s - 1)) != 0 && storable(s)) {
            let mut siginfo = [0u8; 128];
            siginfo[..4].copy_from_slice(&signo.to_le_bytes());
            siginfo[8..12].copy_from_slice(&0x80i32.to_le_bytes());
            out.push(PendingSignalRecord {
                tid: queue,
                signo,
                siginfo,
            });
        }
    }
    out
}

/// Resource limits, personality, dumpable and no_new_privs of this process.
fn process_record(pid: i32, status: &str) -> Result<ProcessRecord> {
    let parse_err = |name: &str, what: &str| Error::Parse {
        path: procfs::proc_path(pid, name),
        what: what.into(),
    };
    let limits = String::from_utf8_lossy(&procfs::read(pid, "limits")?).into_owned();
    let limits =
        process::parse_limits(&limits).ok_or_else(|| parse_err("limits", "unexpected line"))?;
    let personality = String::from_utf8_lossy(&procfs::read(pid, "personality")?).into_owned();
    let personality = u32::from_str_radix(personality.trim(), 16)
        .map_err(|_| parse_err("personality", "not a hexadecimal number"))?;
    let no_new_privs = status
        .lines()
        .find_map(|l| l.strip_prefix("NoNewPrivs:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut rec = ProcessRecord {
        personality,
        dumpable: sys::dumpable(),
        no_new_privs,
        rlimit_count: limits.len() as u32,
        ..ProcessRecord::default()
    };
    rec.rlimits[..limits.len()].copy_from_slice(&limits);
    Ok(rec)
}

/// Does a child of `clone` without `CLONE_VM` lack this area's contents?
/// Shared mappings are not copied into the child's page tables, and
/// `MADV_DONTFORK`/`MADV_WIPEONFORK` areas are absent or empty there.
fn read_from_parent(e: &MapEntry) -> bool {
    e.shared || e.vm_flags.iter().any(|f| f == "dc" || f == "wf")
}

/// The memory map of the snapshot: the child's areas, plus the
/// `MADV_DONTFORK` areas it does not have, taken from this process.
fn snapshot_maps(child: i32, me: i32) -> Result<Vec<MapEntry>> {
    let mut maps = procfs::maps(child)?;
    let own = procfs::maps(me)?;
    maps.extend(
        own.into_iter()
            .filter(|e| e.vm_flags.iter().any(|f| f == "dc")),
    );
    maps.sort_by_key(|e| e.start);
    maps.dedup_by_key(|e| e.start);
    Ok(maps)
}

/// Refuse a process with children (as `kckpt dump` does): a restored
/// process would not have them.
fn refuse_children(pid: i32) -> Result<()> {
    let tasks = fs::read_dir(procfs::proc_path(pid, "task")).map_err(|source| Error::Read {
        path: procfs::proc_path(pid, "task"),
        source,
    })?;
    let children: Vec<String> = tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if children.is_empty() {
        return Ok(());
    }
    Err(Error::Unsupported {
        pid,
        reason: format!("not supported: child process {}", children.join(", ")),
    })
}

/// The checkpoint proper, between the assembly entry and its return.
fn checkpoint(output: &Path, saved: &SelfRegs) -> Result<()> {
    let pid = std::process::id() as i32;
    let threads = procfs::thread_count(pid)?;
    if threads != 1 {
        return Err(Error::SelfThreads(threads));
    }
    if output.is_dir() {
        return Err(Error::CreateImage {
            dir: output.to_path_buf(),
            source: std::io::Error::from_raw_os_error(nix::libc::EISDIR),
        });
    }
    let status = String::from_utf8_lossy(&procfs::read(pid, "status")?).into_owned();
    let pending = pending_signals(&status, pid as u32);
    let sigmask = sys::block_all()?;
    let _mask = MaskGuard(sigmask);

    // Thread and process state, from inside.
    let tls = kckpt_arch::selfsave::thread_pointers();
    let regs = kckpt_arch::selfsave::image_regs(saved, tls);
    let mut scratch = vec![0u8; kckpt_arch::selfsave::scratch_len()];
    let mut regsets: Regsets = Vec::new();
    let saved_fp = kckpt_arch::selfsave::register_notes(saved, &mut scratch, &mut |o, t, b| {
        regsets.push((o, t, b.to_vec()))
    });
    if !saved_fp {
        return Err(Error::Unsupported {
            pid,
            reason: "this CPU has no XSAVE".into(),
        });
    }
    drop(scratch);
    let mut xstate = (0u64, 0u32);
    for (_, note_type, bytes) in &regsets {
        if let Some(x) = kckpt_arch::cpu_features(*note_type, bytes) {
            xstate = x;
        }
    }
    let signals = sys::sigactions()?;
    let altstack = sys::altstack()?;
    let clear_child_tid = sys::clear_child_tid()?;
    let (rseq_addr, rseq_len, rseq_sig) = sys::rseq(tls.0);
    let process = process_record(pid, &status)?;
    let stat = procfs::stat(pid)?;
    let cmdline_raw = procfs::read(pid, "cmdline")?;
    let exe = {
        let path = procfs::proc_path(pid, "exe");
        fs::read_link(&path).map_err(|source| Error::Read { path, source })?
    };
    let auxv = procfs::read(pid, "auxv")?;
    let comm = procfs::comm(pid)?;
    let (uid, gid) = procfs::uid_gid(pid)?;
    refuse_children(pid)?;

    // The memory snapshot. Its descriptor table is this process's at the
    // snapshot, without anything the checkpoint opens itself (the image,
    // /proc files, the pidfd the descriptor code uses).
    let (snapshot, brk) = sys::Snapshot::take()?;
    let child = snapshot.pid();
    let files = files::collect(child, false)?;
    let mut tmp = TempImage::create(output)?;
    let child_mem = Memory::open(child)?;
    let own_mem = Memory::open(pid)?;
    let maps = snapshot_maps(child, pid)?;
    let mut vdso_hash = 0;
    if let Some(vdso) = maps.iter().find(|m| m.kind() == vma_kind::VDSO) {
        let mut bytes = vec![0u8; vdso.len() as usize];
        own_mem.read(vdso.start, &mut bytes)?;
        vdso_hash = kckpt_image::fnv1a64(&bytes);
    }

    let page = crate::dump::page_size();
    let mut strings = StringTable::default();
    let mut mm = stat.mm();
    mm.brk = brk;
    mm.exe = strings.add(exe.as_os_str().as_encoded_bytes());
    mm.cmdline = strings.add(&procfs::cmdline_text(&cmdline_raw));

    let file = tmp.take_file();
    let write_err = |source| Error::WriteImage {
        path: output.to_path_buf(),
        source,
    };
    let sink = memory::DataSink::new(tmp.direct(), file.try_clone().map_err(write_err)?);
    let mut writer = ImageWriter::new(file, kckpt_arch::ELF_MACHINE, page);
    let source = |e: &MapEntry| -> &Memory {
        if read_from_parent(e) {
            &own_mem
        } else {
            &child_mem
        }
    };
    let (vmas, runs, _stats) = memory::dump_memory_from(
        &source,
        &maps,
        &mut writer,
        sink,
        &mut strings,
        page,
        output,
    )?;
    drop(snapshot);
    let files = files.write(&mut writer, &mut strings).map_err(write_err)?;

    let tid = pid as u32;
    let record = ThreadRecord {
        tid,
        syscall_state: kckpt_image::syscall_state::NONE,
        syscall_nr: -1,
        syscall_result: 1,
        tls: tls.0,
        tls2: tls.1,
        sigmask,
        altstack_sp: altstack.0,
        altstack_size: altstack.1,
        altstack_flags: altstack.2,
        rseq_sig,
        rseq_addr,
        rseq_len,
        reserved0: 0,
        clear_child_tid,
        name: crate::dump::procfs::thread_name(tid as i32),
        reserved: [0; 2],
    };
    let thread = ThreadNotesOut {
        prstatus: kckpt_arch::prstatus_bytes(&regs, tid, stat.ppid(), 0, sigmask).to_vec(),
        regsets,
        record,
    };
    let header = crate::dump::image_header(tid, page, stat.flags(), 1, xstate, vdso_hash);
    let prpsinfo = kckpt_arch::core_notes::prpsinfo_bytes(
        stat.state(),
        uid,
        gid,
        tid,
        stat.ppid(),
        &comm,
        &cmdline_raw,
    )
    .to_vec();
    let meta = ImageMetadata {
        header,
        mm,
        signals,
        vmas,
        runs,
        strings,
        auxv,
        prpsinfo,
        threads: vec![thread],
        process: Some(process),
        pending,
        files,
    };
    writer.finish(meta).map_err(write_err)?;
    tmp.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_masks_become_records() {
        let status = "SigPnd:\t0000000000000200\nShdPnd:\t0000000000000102\n";
        let p = pending_signals(status, 42);
        let got: Vec<(u32, u32)> = p.iter().map(|r| (r.tid, r.signo)).collect();
        // SIGUSR1 (10) on the thread; SIGINT (2) process-wide; SIGKILL never.
        assert_eq!(got, [(42, 10), (PENDING_SHARED, 2)]);
        assert_eq!(p[0].siginfo[8], 0x80);
    }

    #[test]
    fn shared_and_fork_flagged_areas_come_from_the_parent() {
        let mut e = MapEntry::default();
        assert!(!read_from_parent(&e));
        e.vm_flags = vec!["rd".into(), "wf".into()];
        assert!(read_from_parent(&e));
        e.vm_flags.clear();
        e.shared = true;
        assert!(read_from_parent(&e));
    }
}
