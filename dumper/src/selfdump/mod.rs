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
//!    dumper's code on `/proc/self`), limits, personality, dumpable, the
//!    interval and POSIX timers (`getitimer`, `/proc/self/timers`,
//!    `timer_gettime`);
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
        process::status_field(status, key)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
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

/// Running under user-mode emulation (`qemu-aarch64` on an x86_64 host):
/// `/proc/sys/kernel/arch`, which QEMU passes through, names another
/// architecture than the one this code was built for. QEMU emulates
/// `/proc/self/{maps,stat,auxv,cmdline,exe}` for the guest but not `smaps`,
/// `pagemap`, `task/` or another process's files, which show the host
/// process (QEMU itself, with its own threads and mappings).
pub(crate) fn emulated() -> bool {
    fs::read_to_string("/proc/sys/kernel/arch").is_ok_and(|a| a.trim() != kckpt_arch::NAME)
}

/// The guest's threads under emulation: QEMU's helper threads (its RCU
/// thread) block nearly every host signal for good. A guest thread does so
/// only for a moment (QEMU blocks every host signal while it emulates a
/// guest's signal-mask change, a thread's start among them, and unblocks
/// them before the guest runs again), so a thread counts as a helper only
/// when every one of [`HELPER_READS`] reads, a millisecond apart, shows it.
fn guest_thread_count(pid: i32) -> Result<usize> {
    let path = procfs::proc_path(pid, "task");
    let tasks = fs::read_dir(&path).map_err(|source| Error::Read { path, source })?;
    Ok(tasks
        .flatten()
        .filter(|t| {
            let status = t.path().join("status");
            !(0..HELPER_READS).all(|i| {
                if i > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                // A thread that ended meanwhile is no thread.
                fs::read_to_string(&status).map_or(true, |s| host_helper_thread(&s))
            })
        })
        .count())
}

/// How many times a thread that looks like QEMU's helper is read before it
/// is taken for one (see [`guest_thread_count`]).
const HELPER_READS: u32 = 50;

/// Does this `/proc/PID/task/TID/status` text show a QEMU helper thread
/// (more than 32 host signals blocked)?
fn host_helper_thread(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m.count_ones() > 32)
}

/// The snapshot's memory map under emulation: the guest's areas (QEMU's
/// `/proc/self/maps`: protections and names as the guest sees them), each
/// with the VmFlags of the host area of the snapshot child holding it.
/// QEMU places a 64-bit guest at its own addresses (guest base 0); if not,
/// this is refused. `guest_text` was read just before the snapshot was
/// taken (see [`read_guest_maps`]).
fn emulated_maps(guest_text: &[u8], child: i32) -> Result<Vec<MapEntry>> {
    let guest = procfs::parse_smaps(&String::from_utf8_lossy(guest_text)).unwrap_or_default();
    let host = procfs::maps(child)?;
    merge_guest_maps(guest, &host).map_err(|g| Error::Unsupported {
        pid: std::process::id() as i32,
        reason: format!(
            "the emulator does not map this process at its own addresses ({:x}-{:x} {})",
            g.start, g.end, g.name
        ),
    })
}

/// See [`emulated_maps`]: `Err` (the area) when a guest area is not covered by host
/// areas (QEMU may split one guest area into several host areas, e.g. where
/// it write-protects pages holding translated code).
fn merge_guest_maps(
    mut guest: Vec<MapEntry>,
    host: &[MapEntry],
) -> std::result::Result<Vec<MapEntry>, MapEntry> {
    for g in &mut guest {
        let mut at = g.start;
        let mut first = None;
        while at < g.end {
            let Some(h) = host.iter().find(|h| h.start <= at && at < h.end) else {
                return Err(g.clone());
            };
            first.get_or_insert(h);
            at = h.end;
        }
        let Some(h) = first else {
            return Err(g.clone());
        };
        g.vm_flags = h
            .vm_flags
            .iter()
            .filter(|f| !matches!(f.as_str(), "rd" | "wr" | "ex" | "mr" | "mw" | "me"))
            .cloned()
            .collect();
        g.resident_kb = None;
    }
    Ok(guest)
}

/// The guest's `/proc/self/maps` (QEMU makes it at `open`), read into a
/// buffer reserved beforehand and large enough not to grow: the heap must
/// not move between this and the snapshot, or the guest map would not be
/// the snapshot's. The buffer is `mmap`ed by malloc (over its threshold),
/// so it is part of the map it reads.
fn read_guest_maps() -> Result<Vec<u8>> {
    use std::io::Read;
    const MAX: usize = 4 << 20;
    let err = |source| Error::Read {
        path: "/proc/self/maps".into(),
        source,
    };
    let mut buf = vec![0u8; MAX];
    let mut file = fs::File::open("/proc/self/maps").map_err(err)?;
    let mut len = 0;
    loop {
        let n = file.read(&mut buf[len..]).map_err(err)?;
        if n == 0 {
            break;
        }
        len += n;
        if len == MAX {
            return Err(err(std::io::Error::from_raw_os_error(nix::libc::EFBIG)));
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// QEMU's `/proc/self/stat` has 44 fields (the mm fields past
/// `start_stack` are zeros or missing): pad it to what [`procfs::Stat`] reads.
fn emulated_stat(pid: i32) -> Result<procfs::Stat> {
    let mut text = String::from_utf8_lossy(&procfs::read(pid, "stat")?).into_owned();
    let have = text
        .rsplit_once(')')
        .map_or(0, |(_, r)| r.split_whitespace().count());
    for _ in have..50 {
        text.push_str(" 0");
    }
    procfs::Stat::parse(&text).ok_or_else(|| Error::Unsupported {
        pid,
        reason: "unreadable /proc/self/stat".into(),
    })
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
    let emu = emulated();
    let threads = if emu {
        guest_thread_count(pid)?
    } else {
        procfs::thread_count(pid)?
    };
    if threads != 1 {
        return Err(Error::SelfThreads(threads));
    }
    // Refuse what is not a new name or a regular file before any work.
    crate::dump::destination(output)?;
    let status = String::from_utf8_lossy(&procfs::read(pid, "status")?).into_owned();
    let mut pending = pending_signals(&status, pid as u32);
    let sigmask = sys::block_all()?;
    let _mask = MaskGuard(sigmask);
    let timers = crate::dump::timers::collect_self(&mut pending, emu)?;

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
    // QEMU does not emulate PR_GET_TID_ADDRESS (EINVAL): a single-threaded
    // process started by exec has none set.
    let clear_child_tid = match sys::clear_child_tid() {
        Err(_) if emu => 0,
        other => other?,
    };
    let (rseq_addr, rseq_len, rseq_sig) = sys::rseq(tls.0);
    let process = process_record(pid, &status)?;
    let stat = if emu {
        emulated_stat(pid)?
    } else {
        procfs::stat(pid)?
    };
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
    let guest_maps = if emu { read_guest_maps()? } else { Vec::new() };
    let (snapshot, brk) = sys::Snapshot::take(if emu { nix::libc::SIGCHLD } else { 0 })?;
    let child = snapshot.pid();
    // The process carries on: its connections leave repair mode at the end.
    let _repair = crate::dump::tcp_repair::Guard;
    let mut files = files::collect(
        child,
        false,
        crate::dump::ghosts::DEFAULT_GHOST_LIMIT,
        None,
        &[],
    )?;
    files.set_job_pid(pid);
    let mut tmp = TempImage::create(output)?;
    let child_mem = Memory::open(child)?;
    let own_mem = Memory::open(pid)?;
    let maps = if emu {
        emulated_maps(&guest_maps, child)?
    } else {
        snapshot_maps(child, pid)?
    };
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

    let file = tmp.file()?;
    let write_err = |source| Error::WriteImage {
        path: output.to_path_buf(),
        source,
    };
    let sink = memory::DataSink::new(tmp.direct(), tmp.file()?);
    let mut writer = ImageWriter::new(file, kckpt_arch::ELF_MACHINE, page);
    let source = |e: &MapEntry| -> &Memory {
        if read_from_parent(e) {
            &own_mem
        } else {
            &child_mem
        }
    };
    let (vmas, runs, stats) = memory::dump_memory_from(
        &source,
        &maps,
        &mut writer,
        sink,
        &mut strings,
        page,
        output,
        mm.start_brk..mm.brk,
        &files.ghosts,
        None,
    )?;
    drop(snapshot);
    let mut files = files.write(&mut writer, &mut strings).map_err(write_err)?;
    let kstate = self_kstate(pid, &own_mem, &mut strings, emu)?;
    regsets.push((
        kckpt_image::NOTE_OWNER,
        kckpt_image::kstate::NT_KCKPT_TASK,
        crate::dump::kstate::task_note(pid, pid, sys::securebits(), sys::pdeath_signal())?,
    ));
    files.guards = stats.guards;

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
    let mut header = crate::dump::image_header(tid, page, stat.flags(), 1, xstate, vdso_hash);
    crate::dump::set_hwcaps(&mut header, &auxv);
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
        timers,
        kstate,
        tree: None,
        page_refs: Vec::new(),
        sysv: Default::default(),
    };
    writer.finish(meta).map_err(write_err)?;
    tmp.commit(&|| Ok(()))
}

/// The kernel-state notes of the calling process (`crate::dump::kstate`,
/// what it reports itself instead of injected queries). The aio rings are
/// read from the process's own maps and memory (a fork's copy of a ring is
/// no context).
fn self_kstate(
    pid: i32,
    own_mem: &Memory,
    strings: &mut StringTable,
    emu: bool,
) -> Result<kckpt_image_write::KstateMeta> {
    use crate::dump::kstate;
    let mut rec = if emu {
        kckpt_image::kstate::KstateRecord::default()
    } else {
        sys::kernel_state()
    };
    kstate::from_proc(pid, &mut rec)?;
    let aio = kstate::aio_rings(pid, own_mem, &procfs::maps(pid)?)?;
    let (cgroups, cgroup_props, warnings) = kstate::cgroups(pid, &[pid], &[pid], strings)?;
    warnings.iter().for_each(|w| eprintln!("kckpt: {w}"));
    Ok(kckpt_image_write::KstateMeta {
        kstate: Some(rec),
        aio,
        cgroups,
        cgroup_props,
    })
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
    fn qemu_helper_threads_are_not_guest_threads() {
        assert!(host_helper_thread("Name:\tx\nSigBlk:\tfffffffe7ffbfa77\n"));
        assert!(!host_helper_thread("SigBlk:\t0000000000000000\n"));
        assert!(!host_helper_thread("SigBlk:\t0000000000010002\n"));
        assert!(!host_helper_thread("Name:\tx\n"));
    }

    #[test]
    fn guest_maps_take_host_flags() {
        let line = |l: &str| procfs::parse_maps_line(l).unwrap();
        let guest = vec![line("400000-47e000 r-xp 00000000 fe:00 10 /bin/prog")];
        let mut h = line("00400000-0047e000 r--p 00000000 fe:00 10 /bin/prog");
        h.vm_flags = ["rd", "mr", "dd"].map(String::from).to_vec();
        let merged = merge_guest_maps(guest.clone(), &[h]).unwrap();
        assert_eq!(merged[0].prot, guest[0].prot);
        assert_eq!(merged[0].vm_flags, ["dd"]);
        assert!(merge_guest_maps(guest.clone(), &[]).is_err());
        // Split in two host areas: covered.
        let a = line("00400000-00410000 r--p 00000000 fe:00 10 /bin/prog");
        let b = line("00410000-0047e000 r--p 00010000 fe:00 10 /bin/prog");
        assert!(merge_guest_maps(guest.clone(), &[a.clone(), b]).is_ok());
        // A hole: not covered.
        assert!(merge_guest_maps(guest, &[a]).is_err());
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
