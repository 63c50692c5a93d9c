//! Dumping a live process: the order of operations (refuse early, freeze,
//! collect registers and in-process state, stream memory, write metadata,
//! link into place, then kill or resume) and the guarantees around it
//! (the target is never left stopped, no partial image stays behind, a
//! Ctrl-C cancels the dump and leaves the target as it was: `interrupt`,
//! `output`).

mod cgroup_props;
pub mod dedup;
mod fdsys;
pub mod files;
pub mod ghosts;
mod guards;
pub(crate) mod inet;
pub mod inject;
mod inotify;
pub mod interrupt;
pub mod kstate;
pub mod memory;
pub(crate) mod output;
pub mod process;
pub mod procfs;
pub mod ptrace;
mod pty;
mod seccomp;
pub mod shared;
pub mod shmem;
mod special;
pub mod sysv;
mod sysv_ipc;
pub(crate) mod tcp_repair;
pub mod terminal;
pub mod threads;
pub(crate) mod timers;
pub mod tree;
pub mod tree_memory;
mod unixsave;
mod unixsock;

use std::fs::{self, File};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use kckpt_image::kstate::KstateRecord;
use kckpt_image::records::*;
use kckpt_image_write::{ImageMetadata, ImageWriter, StringTable};

use crate::error::{Error, Result};
use memory::Memory;
pub(crate) use output::{destination, is_image_header, TempImage};
use procfs::MapEntry;
use ptrace::Tracee;

/// How to dump.
#[derive(Clone, Copy, Debug, Default)]
pub struct DumpOptions {
    /// Resume the target after the dump instead of killing it.
    pub leave_running: bool,
    /// Dump descriptors of unsupported kinds as placeholders (`/dev/null`
    /// at restore) instead of refusing.
    pub skip_unsupported: bool,
    /// Bytes of data saved at most per deleted file the process holds
    /// (`--ghost-limit`); `None`: [`ghosts::DEFAULT_GHOST_LIMIT`].
    pub ghost_limit: Option<u64>,
    /// Dump the process alone and refuse it when it has children
    /// (`--no-children`; the default dumps its descendants too).
    pub no_children: bool,
    /// Dump a process group or session instead of the process `pid`
    /// (`--pgid`, `--session`).
    pub group: Option<tree::Scope>,
    /// Descriptors that lead outside the dumped processes and that the
    /// restorer provides (`--external [PID:]FD`; no pid: the root).
    pub external: &'static [(Option<i32>, u32)],
    /// Save established TCP connections as connections restored reset
    /// (`--tcp-close`) instead of with TCP repair.
    pub tcp_close: bool,
}

/// The descriptors of `pid` named by `--external` (`root`: the process a
/// bare `FD` means).
fn external_of(options: &DumpOptions, root: i32, pid: i32) -> Vec<u32> {
    options
        .external
        .iter()
        .filter(|(p, _)| p.unwrap_or(root) == pid)
        .map(|&(_, fd)| fd)
        .collect()
}

/// Refuse an `--external PID:FD` whose process is not among `pids`.
fn check_external_pids(options: &DumpOptions, pids: &[i32]) -> Result<()> {
    for (p, fd) in options.external {
        if let Some(p) = p.filter(|p| !pids.contains(p)) {
            return Err(Error::Usage(format!(
                "--external {p}:{fd}: process {p} is not dumped"
            )));
        }
    }
    Ok(())
}

/// What a successful dump did.
#[derive(Clone, Debug, Default)]
pub struct DumpSummary {
    /// Bytes of memory stored in the image.
    pub stored_bytes: u64,
    /// Bytes of memory of a tree's processes not stored again: pages an
    /// earlier process of the tree stored (format 1.6).
    pub shared_bytes: u64,
    /// Bytes of memory mapped by the processes saved (stored or not: clean
    /// file pages, zero pages).
    pub mapped_bytes: u64,
    /// Processes saved.
    pub processes: u32,
    /// Warnings about what was skipped (`--skip-unsupported`), one line each.
    pub warnings: Vec<String>,
}

/// Checkpoint process `pid` into the image `output` (`-` for standard
/// output: the image is streamed there once complete).
///
/// Without `leave_running` the target is killed (SIGKILL, while still
/// stopped) once the image is complete and in place. On any error, and on
/// SIGINT, SIGTERM, SIGHUP or SIGQUIT before that ([`Error::Interrupted`]),
/// the target is resumed as it was and no file is left behind.
pub fn dump(pid: i32, output: &Path, options: &DumpOptions) -> Result<DumpSummary> {
    // A group or session: its first root stands for it in messages.
    let pid = match options.group {
        Some(scope) => match scope.roots().first() {
            Some(&root) => root,
            None => {
                return Err(Error::Usage(format!(
                    "no process to dump in {}",
                    scope.describe()
                )))
            }
        },
        None => pid,
    };
    if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::NoProcess(pid));
    }
    let before = procfs::stat(pid).map_err(|_| Error::NoProcess(pid))?;
    tcp_repair::set_close(options.tcp_close);
    let interrupts = interrupt::Interrupts::block();
    let stream = output.as_os_str() == "-";
    let mut tmp = if stream {
        output::check_stdout()?;
        let scope = options.group.unwrap_or(tree::Scope::Pid(pid));
        if options.no_children {
            output::check_stdout_not_used_by(pid)?;
        } else {
            for p in tree::all_pids(scope) {
                output::check_stdout_not_used_by(p)?;
            }
        }
        TempImage::for_stream()?
    } else {
        TempImage::create(output)?
    };
    let mut result = dump_into(pid, &before, &mut tmp, options);
    // A TCP connection that moved while it was saved: the processes were
    // resumed, nothing was written under the final name; a file image is
    // tried again, from the start, twice at most.
    for _ in 0..CHANGED_RETRIES {
        if stream || !matches!(result, Err(Error::Changed { .. })) {
            break;
        }
        drop(tmp);
        std::thread::sleep(std::time::Duration::from_millis(200));
        tmp = TempImage::create(output)?;
        result = dump_into(pid, &before, &mut tmp, options);
    }
    if let Err(Error::Changed { pid, reason }) = result {
        result = Err(Error::Changed {
            pid,
            reason: format!(
                "{reason}, {} times; the dump may be tried again",
                CHANGED_RETRIES + 1
            ),
        });
    }
    let streamed = tmp.stream_started();
    // No temporary name may outlive a signal delivered below.
    drop(tmp);
    if result.is_err() {
        // The dump failed anyway: a signal that came meanwhile must not
        // kill kckpt before it says why.
        while interrupt::check().is_err() {}
    }
    drop(interrupts);
    result.map_err(|e| match e {
        Error::Interrupted { signal, .. } => Error::Interrupted {
            signal,
            outcome: format!(
                "process {pid} left {}, {}",
                if before.state() == b'T' {
                    "stopped"
                } else {
                    "running"
                },
                if streamed {
                    "the image stream is incomplete"
                } else {
                    "no image written"
                }
            ),
        },
        e => e,
    })
}

/// How many times [`dump`] tries again after `Error::Changed`.
const CHANGED_RETRIES: usize = 2;

/// [`dump`] once the image file exists: seize, write, commit, then kill or
/// resume. Every error (an interruption too) resumes the target, through
/// the tracees' `Drop`.
fn dump_into(
    pid: i32,
    before: &procfs::Stat,
    tmp: &mut TempImage,
    options: &DumpOptions,
) -> Result<DumpSummary> {
    interrupt::check()?;
    let frozen = match options.group {
        Some(scope) => tree::freeze(scope, Vec::new())?,
        None => {
            tree::refuse_vfork_parent(pid)?;
            let tracees = seize_target(pid)?;
            if options.no_children {
                return dump_one(pid, before, tracees, tmp, options);
            }
            tree::freeze(tree::Scope::Pid(pid), vec![(pid, before.clone(), tracees)])?
        }
    };
    // A process alone that holds a pseudo-terminal master is a tree of
    // one: its pair is a `PTY_MASTER` slot like a tree's.
    if frozen.nodes.len() > 1 || pty::holds_master(frozen.nodes[0].pid) {
        return dump_tree(frozen, tmp, options);
    }
    let tree::Frozen { nodes, tracees, .. } = frozen;
    let tracees = tracees
        .into_iter()
        .next()
        .flatten()
        .ok_or(Error::NoProcess(pid))?;
    dump_one(nodes[0].pid, &nodes[0].stat, tracees, tmp, options)
}

/// Seize every thread of `pid`, refusing a process someone else traces.
fn seize_target(pid: i32) -> Result<Vec<Tracee>> {
    let traced = |tid: i32, tracer: i32, comm: &str| Error::Unsupported {
        pid,
        reason: format!(
            "ptrace: {} is traced by pid {tracer} ({comm}), which must detach first",
            if tid == pid {
                "it".to_owned()
            } else {
                format!("its thread {tid}")
            }
        ),
    };
    if let Some((tid, tracer, comm)) = files::traced_by(pid) {
        return Err(traced(tid, tracer, &comm));
    }
    threads::seize_all(pid).map_err(|e| match (&e, files::traced_by(pid)) {
        // Someone attached between the check and the seize.
        (
            Error::Trace {
                source: nix::errno::Errno::EPERM,
                ..
            },
            Some((tid, tracer, comm)),
        ) if tracer != std::process::id() as i32 => traced(tid, tracer, &comm),
        _ => e,
    })
}

/// Write the single-process image of the frozen `pid` (format 1.3 layout),
/// commit it, then kill or resume it.
fn dump_one(
    pid: i32,
    before: &procfs::Stat,
    mut tracees: Vec<Tracee>,
    tmp: &mut TempImage,
    options: &DumpOptions,
) -> Result<DumpSummary> {
    // Dropped before `tracees` (a parameter): on an error, connections
    // leave repair mode before the process is resumed.
    let _repair = tcp_repair::Guard;
    let output = tmp.path();
    let ghost_limit = options.ghost_limit.unwrap_or(ghosts::DEFAULT_GHOST_LIMIT);
    check_external_pids(options, &[pid])?;
    let files = files::collect(
        pid,
        options.skip_unsupported,
        ghost_limit,
        None,
        &external_of(options, pid, pid),
    )?;
    let mut sysv_warnings = Vec::new();
    let segments = sysv::collect(
        &[(pid, &files.maps)],
        options.skip_unsupported,
        &mut sysv_warnings,
    )?;
    let sem_msg = sysv_ipc::collect(&[pid], options.skip_unsupported, &mut sysv_warnings)?;
    interrupt::check()?;
    let file = tmp.file()?;
    let sink = memory::DataSink::new(tmp.direct(), tmp.file()?);
    let mut p = prepare_image(&mut tracees, before, file, sink, &output, files, None)?;
    p.meta.sysv = sysv::write(&segments, sem_msg, &mut p.writer, page_size(), &output, pid)?;
    p.summary.warnings.extend(sysv_warnings);
    let written = finish_image(p, &output, None)?;
    finish(vec![Some(tracees)], tmp, options)?;
    Ok(written.summary)
}

/// Commit the written image, then kill (children first) or resume every
/// process of `tracees`.
fn finish(
    tracees: Vec<Option<Vec<Tracee>>>,
    tmp: &mut TempImage,
    options: &DumpOptions,
) -> Result<()> {
    crate::testing::die_at("written");
    interrupt::check()?;
    // Connections in repair mode again, and as they were saved.
    tcp_repair::arm_and_verify()?;
    tmp.commit(&interrupt::check)?;
    crate::testing::die_at("committed");
    if options.leave_running {
        // Connections carry on: out of repair mode before the processes run.
        tcp_repair::leave_running();
        let mut first_err = None;
        for t in tracees.into_iter().flatten() {
            if let Err(e) = threads::resume_all(t) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    } else {
        for t in tracees.into_iter().rev().flatten() {
            threads::kill_all(t);
        }
        // Closed in repair mode: the peers see no FIN or RST.
        tcp_repair::settle(true);
        Ok(())
    }
}

/// [`dump_into`] for a process with descendants, all frozen: the
/// descriptors of every process are checked (refusals) before any image is
/// written; then every live process but the root is written into an
/// unnamed file of its own, and the root's image carries them all.
fn dump_tree(
    frozen: tree::Frozen,
    tmp: &mut TempImage,
    options: &DumpOptions,
) -> Result<DumpSummary> {
    let output = tmp.path();
    let ghost_limit = options.ghost_limit.unwrap_or(ghosts::DEFAULT_GHOST_LIMIT);
    let tree::Frozen {
        nodes,
        mut tracees,
        maps,
    } = frozen;
    // Dropped before `tracees`: see `dump_one`.
    let _repair = tcp_repair::Guard;
    // One unnamed file per sub-image stays open until the root's image
    // takes them all: allow as many descriptors as the hard limit does.
    fdsys::raise_nofile();
    let live: Vec<i32> = nodes
        .iter()
        .filter(|n| n.zombie.is_none())
        .map(|n| n.pid)
        .collect();
    check_external_pids(options, &live)?;
    let mut sharing = shared::analyze(&nodes, &maps)?;
    // Bytes taken out of pseudo-terminal pairs: put back (on drop) unless
    // the image holds them and the processes are gone.
    let mut drained = std::mem::take(&mut sharing.drained);
    interrupt::check()?;
    let mut all_files = Vec::with_capacity(nodes.len());
    for ((n, t), fds) in nodes.iter().zip(&tracees).zip(&sharing.per_proc) {
        all_files.push(match t {
            Some(_) => Some(files::collect(
                n.pid,
                options.skip_unsupported,
                ghost_limit,
                Some(fds),
                &external_of(options, nodes[0].pid, n.pid),
            )?),
            None => None,
        });
        interrupt::check()?;
    }
    // SysV shared memory of every live process, checked before anything
    // is written.
    let mut sysv_warnings = Vec::new();
    let procs: Vec<(i32, &[procfs::MapEntry])> = nodes
        .iter()
        .zip(&maps)
        .filter_map(|(n, m)| m.as_deref().map(|m| (n.pid, m)))
        .collect();
    let segments = sysv::collect(&procs, options.skip_unsupported, &mut sysv_warnings)?;
    let live: Vec<i32> = procs.iter().map(|&(pid, _)| pid).collect();
    let sem_msg = sysv_ipc::collect(&live, options.skip_unsupported, &mut sysv_warnings)?;
    drop(procs);
    let slot_base = all_files
        .iter()
        .flatten()
        .map(files::Files::max_fd)
        .max()
        .unwrap_or(-1)
        + 1;
    let status_proc = tree::status_proc(&nodes, options.group);
    let write_err = |source| Error::WriteImage {
        path: output.clone(),
        source,
    };
    // The root first: its memory and descriptor data go at the start of
    // the file, and later processes share the pages it stored.
    let root_files = all_files[0].take().ok_or(Error::NoProcess(nodes[0].pid))?;
    let root_stat = nodes[0].stat.clone();
    let page = page_size();
    let mut index = dedup::Index::new(tmp.file()?, page);
    // Only for measuring what sharing saves (scripts, the report of
    // issue 9): every process stores all its pages.
    let share = std::env::var_os("KCKPT_NO_DEDUP").is_none_or(|v| v != "1");
    let file = tmp.file()?;
    let sink = memory::DataSink::new(tmp.direct(), tmp.file()?);
    let root = tracees[0].as_mut().ok_or(Error::NoProcess(nodes[0].pid))?;
    let mut session = dedup::Session::new(&index);
    let mut root_image = prepare_image(
        root,
        &root_stat,
        file,
        sink,
        &output,
        root_files,
        Some(&mut session),
    )?;
    root_image.meta.sysv = sysv::write(
        &segments,
        sem_msg,
        &mut root_image.writer,
        page,
        &output,
        nodes[0].pid,
    )?;
    root_image.summary.warnings.extend(sysv_warnings);
    let stored_pages = std::mem::take(&mut session.stored);
    index.add(&stored_pages, 0, nodes[0].pid)?;
    drop(stored_pages);
    // Then every other live process, each placed in the file as soon as
    // it is written, so the next ones can share its pages too.
    let mut warnings = Vec::new();
    let mut stored = 0;
    let mut shared = 0;
    let mut mapped = 0;
    let mut count = 1;
    let mut subs = std::collections::HashMap::new();
    for i in 1..nodes.len() {
        let (Some(t), Some(f)) = (tracees[i].as_mut(), all_files[i].take()) else {
            continue;
        };
        let file = tmp.scratch()?;
        let sink = memory::DataSink::new(None, clone_file(&file, &output)?);
        let mut session = dedup::Session::new(&index);
        let mut p = prepare_image(
            t,
            &nodes[i].stat,
            file,
            sink,
            &output,
            f,
            share.then_some(&mut session),
        )?;
        p.meta.page_refs = std::mem::take(&mut session.refs);
        shared += p.meta.page_refs.iter().map(|r| r.len).sum::<u64>();
        let pages = std::mem::take(&mut session.stored);
        drop(session);
        let w = finish_image(p, &output, None)?;
        let len = w.file.metadata().map_err(write_err)?.len();
        let at = tree::place_sub(&mut root_image.writer, &w.file, len).map_err(write_err)?;
        index.add(&pages, at, nodes[i].pid)?;
        stored += w.summary.stored_bytes;
        mapped += w.summary.mapped_bytes;
        count += 1;
        warnings.extend(
            w.summary
                .warnings
                .iter()
                .map(|l| format!("process {}: {l}", nodes[i].pid)),
        );
        subs.insert(
            i,
            tree::SubImage {
                offset: at,
                len,
                sum: w.sum,
            },
        );
        interrupt::check()?;
    }
    drop(index);
    let threads = tracees
        .iter()
        .map(|t| t.as_ref().map_or(0, |t| t.len() as u32))
        .collect();
    let plan = tree::TreePlan {
        nodes,
        threads,
        subs,
        sharing,
        slot_base: slot_base as u32,
        status_proc,
        flags: options.group.map_or(0, tree::Scope::flags),
    };
    let w = finish_image(root_image, &output, Some(&plan))?;
    drop(plan);
    if options.leave_running {
        drained.clear(); // put back while the processes are still stopped
    }
    finish(tracees, tmp, options)?;
    drained.into_iter().for_each(pty::Drained::keep);
    let mut all_warnings = w.summary.warnings;
    all_warnings.extend(warnings);
    Ok(DumpSummary {
        stored_bytes: stored + w.summary.stored_bytes,
        shared_bytes: shared,
        mapped_bytes: mapped + w.summary.mapped_bytes,
        processes: count,
        warnings: all_warnings,
    })
}

/// A second descriptor of `file`.
fn clone_file(file: &File, output: &Path) -> Result<File> {
    file.try_clone().map_err(|source| Error::WriteImage {
        path: output.to_path_buf(),
        source,
    })
}

/// Syscall numbers used in the target.
mod nr {
    pub const BRK: u64 = nix::libc::SYS_brk as u64;
    pub const RT_SIGACTION: u64 = nix::libc::SYS_rt_sigaction as u64;
    pub const SIGALTSTACK: u64 = nix::libc::SYS_sigaltstack as u64;
    pub const PRCTL: u64 = nix::libc::SYS_prctl as u64;
    pub const PR_GET_TID_ADDRESS: u64 = 40;
    pub const PR_GET_DUMPABLE: u64 = 3;
}

/// State only the process itself can report, gathered by system calls run
/// inside it ([`inject`]).
struct InProcess {
    signals: SignalsRecord,
    own: threads::ThreadSelf,
    brk: u64,
    dumpable: i64,
    kstate: KstateRecord,
}

/// Run the process-wide queries (every signal's `rt_sigaction`, `brk`,
/// `PR_GET_DUMPABLE`) and the main thread's own ones in the main thread.
fn in_process_state(
    tracee: &mut Tracee,
    mem: &Memory,
    maps: &[MapEntry],
    site: inject::Site,
    regsets: &threads::Regsets,
) -> Result<InProcess> {
    let pid = tracee.pid();
    let mut session = inject::Session::open(tracee, mem, maps, site, regsets)?;
    let out = session.out();
    let mut signals = SignalsRecord {
        actions: [SigactionRecord::default(); 64],
    };
    for (sig, action) in (1..=64u64).zip(signals.actions.iter_mut()) {
        if sig == 9 || sig == 19 {
            continue;
        }
        let r = session.call(nr::RT_SIGACTION, [sig, 0, out, 8, 0, 0])?;
        if r == -(nix::libc::EINVAL as i64) {
            continue;
        }
        if r < 0 {
            return Err(Error::Unsupported {
                pid,
                reason: format!("rt_sigaction({sig}) in the process failed with {r}"),
            });
        }
        let b = session.read_out(32)?;
        *action = SigactionRecord {
            handler: u64_at(&b, 0),
            flags: u64_at(&b, 8),
            restorer: u64_at(&b, 16),
            mask: u64_at(&b, 24),
        };
    }
    let own = threads::own_state(&mut session)?;
    let brk = session.call(nr::BRK, [0; 6])? as u64;
    let dumpable = session.call(nr::PRCTL, [nr::PR_GET_DUMPABLE, 0, 0, 0, 0, 0])?;
    let kstate = kstate::injected(&mut session, pid)?;
    session.close()?;
    Ok(InProcess {
        signals,
        own,
        brk,
        dumpable,
        kstate,
    })
}

/// The little-endian u64 at `at` of `bytes` (0 past the end).
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

pub(crate) fn kernel_release() -> [u8; 64] {
    let mut out = [0u8; 64];
    if let Ok(u) = nix::sys::utsname::uname() {
        let r = u.release().as_encoded_bytes();
        let n = r.len().min(63);
        out[..n].copy_from_slice(&r[..n]);
    }
    out
}

pub(crate) fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|v| v as u64)
        .unwrap_or(4096)
}

/// The offset of the first instruction `insn` at an `align`ed offset.
fn find_insn(bytes: &[u8], insn: &[u8], align: usize) -> Option<usize> {
    bytes
        .windows(insn.len())
        .enumerate()
        .step_by(align.max(1))
        .find(|(_, w)| *w == insn)
        .map(|(at, _)| at)
}

/// The vDSO's hash (0 without one) and the address of a `syscall`
/// instruction to run the dumper's system calls with: in the `[vdso]`, or
/// in another executable mapping when the process has none.
fn syscall_site(pid: i32, mem: &Memory, maps: &[MapEntry]) -> Result<(u64, u64)> {
    let find = |bytes: &[u8]| find_insn(bytes, kckpt_arch::SYSCALL_INSN, kckpt_arch::INSN_ALIGN);
    let mut vdso_hash = 0;
    if let Some(vdso) = maps.iter().find(|m| m.kind() == vma_kind::VDSO) {
        let mut bytes = vec![0u8; vdso.len() as usize];
        mem.read(vdso.start, &mut bytes)?;
        vdso_hash = fnv1a64(&bytes);
        if let Some(at) = find(&bytes) {
            return Ok((vdso_hash, vdso.start + at as u64));
        }
    }
    for m in maps
        .iter()
        .filter(|m| m.prot & prot::EXEC != 0 && m.kind() != vma_kind::VSYSCALL)
    {
        let mut bytes = vec![0u8; m.len() as usize];
        if mem.read(m.start, &mut bytes).is_ok() {
            if let Some(at) = find(&bytes) {
                return Ok((vdso_hash, m.start + at as u64));
            }
        }
    }
    Err(Error::Unsupported {
        pid,
        reason: "no syscall instruction in its executable memory".into(),
    })
}

/// A written image: what the dump did, its file, and the CRC-32C of its
/// checksum note's descriptor (its `image_sum` as a sub-image).
struct Written {
    summary: DumpSummary,
    file: File,
    sum: u32,
}

/// An image whose memory and descriptor data are written, its metadata
/// not yet.
struct Prepared {
    writer: ImageWriter,
    meta: ImageMetadata,
    summary: DumpSummary,
}

/// Write the metadata of a prepared image; with `tree`, the image is a
/// tree's root and carries the other processes' images (placed already).
fn finish_image(p: Prepared, output: &Path, tree: Option<&tree::TreePlan>) -> Result<Written> {
    let write_err = |source| Error::WriteImage {
        path: output.to_path_buf(),
        source,
    };
    let Prepared {
        mut writer,
        mut meta,
        summary,
    } = p;
    if let Some(plan) = tree {
        meta.tree = Some(tree::place(&mut writer, plan).map_err(write_err)?);
    }
    let (file, sum) = writer.finish_summed(meta).map_err(write_err)?;
    Ok(Written { summary, file, sum })
}

/// Collect everything about one process and write its memory (pages
/// stored by an earlier process of a tree are shared through `dedup`) and
/// descriptor data into `file`.
fn prepare_image(
    tracees: &mut [Tracee],
    before: &procfs::Stat,
    file: File,
    sink: memory::DataSink,
    output: &Path,
    mut files: files::Files,
    dedup: Option<&mut dedup::Session<'_>>,
) -> Result<Prepared> {
    // Before any system call runs in the target (it could dequeue some).
    let pending = process::pending_signals(tracees)?;
    let (tracee, others) = tracees.split_first_mut().ok_or(Error::NoProcess(0))?;
    let pid = tracee.pid();
    let page = page_size();

    // Registers (of the main thread; the others' below).
    let regsets = threads::registers(tracee)?;
    let (mut xcr0, mut xstate_size) = (0u64, 0u32);
    for (_, note_type, bytes) in &regsets {
        if let Some((x, s)) = kckpt_arch::cpu_features(*note_type, bytes) {
            (xcr0, xstate_size) = (x, s);
        }
    }

    // Memory map (as `files::collect` read it; again if it could not)
    // and the vDSO (its bytes are hashed; its `syscall` instruction runs
    // the dumper's system calls).
    let maps = match std::mem::take(&mut files.maps) {
        m if m.is_empty() => procfs::maps(pid)?,
        m => m,
    };
    let mut mem = Memory::open(pid)?;
    if dedup.is_some() {
        // A process of a tree: its pages shared with the others stay
        // shared (and are found by frame).
        mem.without_pinning();
    }
    let (vdso_hash, insn) = syscall_site(pid, &mem, &maps)?;
    let site = inject::find_site(&mem, &maps, insn);
    crate::testing::die_at("seized");
    let state = in_process_state(tracee, &mem, &maps, site, &regsets)?;
    let timers = timers::collect(tracee, others, &mem, &maps, site, &regsets, &pending)?;
    // One read of /proc/PID/stat serves every thread note and the mm record.
    let stat = procfs::stat(pid)?;
    let ppid = stat.ppid();
    let seccomp = files.take_seccomp(pid as u32);
    let mut thread_notes = vec![threads::thread_notes(
        pid, tracee, regsets, &state.own, ppid, seccomp,
    )?];
    for t in others.iter_mut() {
        let regsets = threads::registers(t)?;
        let own = threads::thread_self(t, &mem, &maps, site, &regsets)?;
        let seccomp = files.take_seccomp(t.pid() as u32);
        thread_notes.push(threads::thread_notes(pid, t, regsets, &own, ppid, seccomp)?);
    }
    let process = process::process_record(pid, state.dumpable)?;
    let mut kstate_rec = state.kstate;
    kstate::from_proc(pid, &mut kstate_rec)?;
    // In group stop before kckpt came (or stopping as it came: the
    // interrupt stop reports the stop signal): stopped again at restore.
    if before.state() == b'T' || tracee.group_stop().is_some() {
        kstate_rec.stop_signal = tracee
            .group_stop()
            .map(|sig| sig as u32)
            .filter(|&sig| kckpt_image::kstate::is_stop_signal(sig))
            .unwrap_or(nix::libc::SIGSTOP as u32);
    }
    let aio = kstate::aio_rings(pid, &mem, &maps)?;

    // /proc facts.
    let mut mm = stat.mm();
    mm.brk = state.brk;
    let cmdline_raw = procfs::read(pid, "cmdline")?;
    let exe = {
        let path = procfs::proc_path(pid, "exe");
        fs::read_link(&path).map_err(|source| Error::Read { path, source })?
    };
    let auxv = procfs::read(pid, "auxv")?;
    let comm = procfs::comm(pid)?;
    let (uid, gid) = procfs::uid_gid(pid)?;

    let mut strings = StringTable::default();
    mm.exe = strings.add(exe.as_os_str().as_encoded_bytes());
    mm.cmdline = strings.add(&procfs::cmdline_text(&cmdline_raw));
    let tids: Vec<i32> = std::iter::once(pid)
        .chain(others.iter().map(|t| t.pid()))
        .collect();
    let (cgroups, cgroup_props, cgroup_warnings) =
        kstate::cgroups(pid, &tids, &files.tree_pids, &mut strings)?;

    // Memory data first, then metadata.
    let mut writer = ImageWriter::new(file, kckpt_arch::ELF_MACHINE, page);
    let (vmas, runs, stats) = memory::dump_memory(
        &mem,
        &maps,
        &mut writer,
        sink,
        &mut strings,
        page,
        output,
        mm.start_brk..mm.brk,
        &files.ghosts,
        dedup,
    )?;
    let mut warnings = files.warnings.clone();
    warnings.extend(cgroup_warnings);
    let mut files = files
        .write(&mut writer, &mut strings)
        .map_err(|source| Error::WriteImage {
            path: output.to_path_buf(),
            source,
        })?;

    files.guards = stats.guards.clone();
    let mut header = image_header(
        pid as u32,
        page,
        stat.flags(),
        thread_notes.len() as u32,
        (xcr0, xstate_size),
        vdso_hash,
    );
    set_hwcaps(&mut header, &auxv);
    let prpsinfo = kckpt_arch::core_notes::prpsinfo_bytes(
        before.state(),
        uid,
        gid,
        pid as u32,
        stat.ppid(),
        &comm,
        &cmdline_raw,
    )
    .to_vec();
    let meta = ImageMetadata {
        header,
        mm,
        signals: state.signals,
        vmas,
        runs,
        strings,
        auxv,
        prpsinfo,
        threads: thread_notes,
        process: Some(process),
        pending,
        files,
        timers,
        kstate: kckpt_image_write::KstateMeta {
            kstate: Some(kstate_rec),
            aio,
            cgroups,
            cgroup_props,
        },
        tree: None,
        page_refs: Vec::new(),
        sysv: Default::default(),
    };
    let mapped_bytes = meta.vmas.iter().map(|v| v.end - v.start).sum();
    Ok(Prepared {
        writer,
        meta,
        summary: DumpSummary {
            stored_bytes: stats.stored,
            shared_bytes: 0,
            mapped_bytes,
            processes: 1,
            warnings,
        },
    })
}

/// AT_HWCAP and AT_HWCAP2 of a saved auxiliary vector (pairs of u64).
pub(crate) fn auxv_hwcaps(auxv: &[u8]) -> (u64, u64) {
    const AT_HWCAP: u64 = 16;
    const AT_HWCAP2: u64 = 26;
    let (mut hwcap, mut hwcap2) = (0, 0);
    for pair in auxv.chunks_exact(16) {
        let word = |i: usize| u64::from_le_bytes(pair[i..i + 8].try_into().unwrap_or_default());
        match word(0) {
            AT_HWCAP => hwcap = word(8),
            AT_HWCAP2 => hwcap2 = word(8),
            0 => break,
            _ => {}
        }
    }
    (hwcap, hwcap2)
}

/// On aarch64 the header records the saved AT_HWCAP/AT_HWCAP2: the stub
/// refuses a CPU that lacks any of them (`kckpt_arch::cpu`).
pub(crate) fn set_hwcaps(header: &mut ImageHeader, auxv: &[u8]) {
    if kckpt_arch::ELF_MACHINE == kckpt_image::read::EM_AARCH64 {
        (header.hwcap, header.hwcap2) = auxv_hwcaps(auxv);
    }
}

/// The image header both dumpers write: `task_flags` is field 9 of
/// `/proc/PID/stat` (`PF_FORKNOEXEC` clear: the process did exec),
/// `xstate` the `(xcr0, size)` of the saved XSAVE area.
pub(crate) fn image_header(
    pid: u32,
    page: u64,
    task_flags: u64,
    thread_count: u32,
    xstate: (u64, u32),
    vdso_hash: u64,
) -> ImageHeader {
    ImageHeader {
        magic: HEADER_MAGIC,
        format_major: FORMAT_MAJOR,
        format_minor: FORMAT_MINOR,
        machine: kckpt_arch::ELF_MACHINE,
        reserved0: 0,
        page_size: page as u32,
        flags: if task_flags & 0x40 == 0 {
            HEADER_DID_EXEC
        } else {
            0
        },
        pid,
        thread_count,
        xcr0: xstate.0,
        xstate_size: xstate.1,
        reserved1: 0,
        hwcap: 0,
        hwcap2: 0,
        vdso_hash,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        kernel_release: kernel_release(),
        reserved: [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_instructions_are_found_aligned() {
        let x86 = kckpt_arch::x86_64::regs::SYSCALL_INSN;
        assert_eq!(find_insn(&[0x90, 0x0f, 0x05], x86, 1), Some(1));
        let arm = kckpt_arch::aarch64::regs::SYSCALL_INSN;
        // The same bytes at offset 2 are not an instruction; at 4 they are.
        let code = [0, 0, 0x01, 0x00, 0x00, 0xd4, 0, 0, 0x01, 0x00, 0x00, 0xd4];
        assert_eq!(find_insn(&code[..8], arm, 4), None);
        assert_eq!(find_insn(&code, arm, 4), Some(8));
    }

    #[test]
    fn hwcaps_come_from_the_auxiliary_vector() {
        let mut auxv = Vec::new();
        for (t, v) in [(6u64, 4096u64), (16, 0xefff), (26, 0x2f3), (0, 0), (16, 1)] {
            auxv.extend_from_slice(&t.to_le_bytes());
            auxv.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(auxv_hwcaps(&auxv), (0xefff, 0x2f3));
        assert_eq!(auxv_hwcaps(&auxv[..40]), (0xefff, 0));
        assert_eq!(auxv_hwcaps(&[]), (0, 0));
    }
}
