//! The target's memory: reading and writing it (`process_vm_readv`/`writev`
//! with `/proc/PID/mem` as the fallback for pages they cannot reach),
//! `/proc/PID/pagemap`, which pages of each VMA are stored (FORMAT.md's
//! table), and streaming them into the image as coalesced runs.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, IoSliceMut};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use kckpt_image::records::{vma_flags, vma_kind, RunRecord, VmaRecord};
use kckpt_image_write::{ImageWriter, RegionHasher, StringTable};

use super::dedup::Session;
use super::ghosts::Ghosts;
use super::procfs::{proc_path, MapEntry};
use crate::error::{Error, Result};

/// pagemap: page present in RAM.
pub const PM_PRESENT: u64 = 1 << 63;
/// pagemap: page in swap.
pub const PM_SWAPPED: u64 = 1 << 62;
/// pagemap: file page or shared anonymous page.
pub const PM_FILE: u64 = 1 << 61;

/// Bytes copied per `process_vm_readv` and write.
const CHUNK: usize = 8 << 20;
/// pagemap entries read at once.
const PAGEMAP_BATCH: usize = 64 * 1024;

/// Access to the memory of a stopped target.
#[derive(Debug)]
pub struct Memory {
    pid: i32,
    mem: File,
    pagemap: File,
    /// Read through `/proc/PID/mem` only (see [`Memory::without_pinning`]).
    unpinned: bool,
}

impl Memory {
    /// Open `/proc/PID/mem` and `/proc/PID/pagemap`.
    pub fn open(pid: i32) -> Result<Memory> {
        let open = |name: &str, write: bool| {
            let path = proc_path(pid, name);
            OpenOptions::new()
                .read(true)
                .write(write)
                .open(&path)
                .map_err(|source| Error::Read { path, source })
        };
        Ok(Memory {
            pid,
            mem: open("mem", true)?,
            pagemap: open("pagemap", false)?,
            unpinned: false,
        })
    }

    /// Read through `/proc/PID/mem` only. `process_vm_readv` pins the
    /// pages it reads, and the kernel unshares a copy-on-write page it
    /// pins (gives the process a private copy): reading a forked process
    /// that way would copy every page it shares with its parent or
    /// children, and its frames would no longer be theirs (format 1.6
    /// finds shared pages by frame).
    pub fn without_pinning(&mut self) {
        self.unpinned = true;
    }

    fn mem_err(&self, addr: u64, source: std::io::Error) -> Error {
        Error::Memory {
            pid: self.pid,
            addr,
            source,
        }
    }

    /// Fill `buf` from address `addr` of the target.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        if self.unpinned {
            return self
                .mem
                .read_exact_at(buf, addr)
                .map_err(|e| self.mem_err(addr, e));
        }
        let done = process_vm_readv(
            Pid::from_raw(self.pid),
            &mut [IoSliceMut::new(buf)],
            &[RemoteIoVec {
                base: addr as usize,
                len,
            }],
        )
        .unwrap_or(0);
        if done < len {
            // PROT_NONE and other areas readv cannot reach: /proc/PID/mem
            // reads them with FOLL_FORCE.
            let at = addr + done as u64;
            self.mem
                .read_exact_at(&mut buf[done..], at)
                .map_err(|e| self.mem_err(at, e))?;
        }
        Ok(())
    }

    /// Write `bytes` at address `addr` of the target.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        let done = process_vm_writev(
            Pid::from_raw(self.pid),
            &[IoSlice::new(bytes)],
            &[RemoteIoVec {
                base: addr as usize,
                len: bytes.len(),
            }],
        )
        .unwrap_or(0);
        if done < bytes.len() {
            let at = addr + done as u64;
            self.mem
                .write_all_at(&bytes[done..], at)
                .map_err(|e| self.mem_err(at, e))?;
        }
        Ok(())
    }

    /// pagemap entries of `count` pages from `start`, appended to `out`.
    fn pagemap(&self, start: u64, count: usize, page: u64, out: &mut Vec<u64>) -> Result<()> {
        out.clear();
        out.resize(count, 0);
        let mut bytes = vec![0u8; count * 8];
        let offset = start / page * 8;
        self.pagemap
            .read_exact_at(&mut bytes, offset)
            .map_err(|source| Error::Read {
                path: proc_path(self.pid, "pagemap"),
                source,
            })?;
        for (e, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *e = u64::from_le_bytes(b.try_into().unwrap_or_default());
        }
        Ok(())
    }
}

/// Which pages of a VMA are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Nothing (shared file mappings, vDSO, vvar, vsyscall, and
    /// `MAP_DROPPABLE` memory: the kernel may drop its pages at any time,
    /// and what programs keep there — glibc's `getrandom` state — must not
    /// come back twice from one image).
    Nothing,
    /// Present or swapped pages that are not all zero (anonymous memory, and
    /// file mappings whose file is unavailable: restored as anonymous).
    NonZero,
    /// Pages the process wrote (anonymous copies: present without the
    /// file bit) and swapped pages, zero or not (private file mappings).
    Cow,
    /// Every page that is not all zero, present or not: private mappings
    /// of a kckpt image (after a lazy restore) and of files that cannot be
    /// opened again (deleted or replaced), so the new image does not
    /// depend on them. Present pages are read from the process, the others
    /// from the file when it can be opened ([`read_full`]).
    Full,
}

/// The storage policy for a VMA of `kind` with `flags` (`vma_flags::*`).
pub fn policy(kind: u32, flags: u32) -> Policy {
    if flags & vma_flags::DROPPABLE != 0 {
        return Policy::Nothing;
    }
    match kind {
        vma_kind::VDSO | vma_kind::VVAR | vma_kind::VVAR_VCLOCK | vma_kind::VSYSCALL => {
            Policy::Nothing
        }
        vma_kind::FILE if flags & vma_flags::FILE_UNAVAILABLE == 0 => {
            if flags & vma_flags::SHARED != 0 {
                Policy::Nothing
            } else {
                Policy::Cow
            }
        }
        _ => Policy::NonZero,
    }
}

/// Is a page with pagemap entry `pm` a candidate under `policy`?
pub fn candidate(policy: Policy, pm: u64) -> bool {
    match policy {
        Policy::Nothing => false,
        Policy::NonZero => pm & (PM_PRESENT | PM_SWAPPED) != 0,
        Policy::Cow => (pm & PM_PRESENT != 0 && pm & PM_FILE == 0) || pm & PM_SWAPPED != 0,
        Policy::Full => true,
    }
}

/// Zeros to compare pages with.
static ZEROS: [u8; 4096] = [0; 4096];

/// Is `bytes` all zeros? A comparison with zeros: `memcmp`/`bcmp` is libc's
/// vectorised loop (several times faster than a hand-written word loop here).
pub fn is_zero(bytes: &[u8]) -> bool {
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Add a stored range to the run table, extending the last run when it
/// continues it (same VMA: runs never cross `first_run`). True when it
/// starts a new run.
pub fn push_run(
    runs: &mut Vec<RunRecord>,
    first_run: usize,
    start: u64,
    len: u64,
    offset: u64,
) -> bool {
    if let Some(last) = runs[first_run..].last_mut() {
        if last.start + last.len == start && last.offset + last.len == offset {
            last.len += len;
            return false;
        }
    }
    runs.push(RunRecord { start, len, offset });
    true
}

/// Could the backing file of `e` not be opened as it was mapped?
fn file_unavailable(e: &MapEntry) -> bool {
    if e.name.ends_with(" (deleted)") {
        return true;
    }
    match nix::sys::stat::stat(Path::new(&e.name)) {
        Ok(st) => {
            let dev = (nix::sys::stat::major(st.st_dev) << 32) | nix::sys::stat::minor(st.st_dev);
            dev != e.dev || st.st_ino != e.inode
        }
        Err(_) => true,
    }
}

/// `st_dev` as `/proc/PID/maps` writes it (`major << 32 | minor`).
fn maps_dev(dev: u64) -> u64 {
    (nix::sys::stat::major(dev) << 32) | nix::sys::stat::minor(dev)
}

/// The regular file behind the file mapping `e`, opened for reading:
/// through its path when that still names the mapped inode, else through
/// `/proc/PID/map_files/START-END` (which needs `CAP_SYS_ADMIN` or
/// `CAP_CHECKPOINT_RESTORE`). Never opens anything but a regular file.
fn open_backing(pid: i32, e: &MapEntry) -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let same = |m: &std::fs::Metadata| {
        m.file_type().is_file() && maps_dev(m.dev()) == e.dev && m.ino() == e.inode
    };
    let open = |path: &Path| {
        let m = std::fs::metadata(path).ok()?;
        if !same(&m) {
            return None;
        }
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)
            .ok()?;
        f.metadata().is_ok_and(|m| same(&m)).then_some(f)
    };
    if !e.name.ends_with(" (deleted)") {
        if let Some(f) = open(Path::new(&e.name)) {
            return Some(f);
        }
    }
    open(&proc_path(
        pid,
        &format!("map_files/{:x}-{:x}", e.start, e.end),
    ))
}

/// Do shared mappings of the object `e` maps (same device and inode) in
/// `maps` cover every offset of `e`?
pub fn covered_by_shared(maps: &[MapEntry], e: &MapEntry) -> bool {
    let mut shared: Vec<(u64, u64)> = maps
        .iter()
        .filter(|m| m.shared && m.dev == e.dev && m.inode == e.inode && m.name == e.name)
        .map(|m| (m.offset, m.offset + m.len()))
        .collect();
    shared.sort_unstable();
    let mut at = e.offset;
    for (s, end) in shared {
        if s <= at && end > at {
            at = end;
        }
    }
    at >= e.offset + e.len()
}

/// Does `file` start with a kckpt image header?
fn is_image(file: &File) -> bool {
    let mut head = [0u8; 20];
    file.read_at(&mut head, 0)
        .is_ok_and(|n| super::is_image_header(&head[..n]))
}

/// The backing files looked at so far, by `(dev, inode)`: the open file
/// (if it could be opened) and whether it is a kckpt image.
type Backings = std::collections::HashMap<(u64, u64), Option<(std::rc::Rc<File>, bool)>>;

/// Fill `buf` with the pages at `addr` of the [`Policy::Full`] area `e`:
/// pages present or swapped (`pm`, one entry per page) from the process,
/// the others from `file` at the mapping's offset when it is open, else
/// from the process too. A page the process cannot read (past the end of
/// its file: `EIO`) is left as zeros.
fn read_full(
    mem: &Memory,
    file: Option<&File>,
    e: &MapEntry,
    addr: u64,
    buf: &mut [u8],
    pm: &[u64],
    ps: usize,
) -> Result<()> {
    let from_process = |k: usize| file.is_none() || pm[k] & (PM_PRESENT | PM_SWAPPED) != 0;
    let unreadable = |r: &Result<()>| {
        matches!(r, Err(Error::Memory { source, .. })
            if matches!(source.raw_os_error(), Some(nix::libc::EIO | nix::libc::EFAULT)))
    };
    let pages = buf.len() / ps;
    let mut k = 0;
    while k < pages {
        let process = from_process(k);
        let mut l = k + 1;
        while l < pages && from_process(l) == process {
            l += 1;
        }
        let at = addr + (k * ps) as u64;
        let part = &mut buf[k * ps..l * ps];
        match file {
            Some(f) if !process => {
                let mut off = e.offset + (at - e.start);
                let mut done = 0;
                while done < part.len() {
                    let n = f
                        .read_at(&mut part[done..], off)
                        .map_err(|source| Error::Read {
                            path: e.name.clone().into(),
                            source,
                        })?;
                    if n == 0 {
                        part[done..].fill(0); // past the end of the file
                        break;
                    }
                    done += n;
                    off += n as u64;
                }
            }
            _ => {
                let whole = mem.read(at, part);
                if unreadable(&whole) {
                    for (n, p) in part.chunks_mut(ps).enumerate() {
                        let one = mem.read(at + (n * ps) as u64, p);
                        if unreadable(&one) {
                            p.fill(0);
                        } else {
                            one?;
                        }
                    }
                } else {
                    whole?;
                }
            }
        }
        k = l;
    }
    Ok(())
}

/// Where memory data goes: an `O_DIRECT` descriptor of the image when the
/// file system allows it (page-aligned buffer, offsets and lengths: the data
/// skips the page cache, which on this VM costs far more than the disk
/// write, and needs no writeback at fsync), else a plain descriptor.
#[derive(Debug)]
pub struct DataSink {
    direct: Option<File>,
    buffered: File,
}

impl DataSink {
    /// Write through `direct` (opened with `O_DIRECT`) when given, else
    /// (or when it refuses a write) through `buffered`.
    pub fn new(direct: Option<File>, buffered: File) -> DataSink {
        DataSink { direct, buffered }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if let Some(f) = &self.direct {
            match f.write_all_at(data, offset) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => self.direct = None,
                other => return other,
            }
        }
        self.buffered.write_all_at(data, offset)
    }
}

/// A page-aligned copy buffer (anonymous mapping), as O_DIRECT needs.
fn aligned_buffer(pid: i32, len: usize) -> Result<memmap2::MmapMut> {
    memmap2::MmapMut::map_anon(len).map_err(|source| Error::Unsupported {
        pid,
        reason: format!(
            "cannot allocate a copy buffer: {}",
            crate::error::io_text(&source)
        ),
    })
}

/// Statistics of a memory dump.
#[derive(Clone, Debug, Default)]
pub struct MemStats {
    /// Bytes stored.
    pub stored: u64,
    /// Guard regions found (1.3), sorted.
    pub guards: Vec<kckpt_image::GuardRecord>,
}

/// A filled buffer and the parts of it to write: (file offset, buffer
/// offset, length, starts a new run).
struct Job {
    buf: memmap2::MmapMut,
    segments: Vec<(u64, usize, usize, bool)>,
}

/// The chunk checksums of the runs, computed by the hashing thread while
/// the writer thread writes the same buffers (format 1.2): (file offset,
/// length, sums) per run.
#[derive(Default)]
struct RunSums {
    current: Option<(u64, RegionHasher)>,
    done: Vec<(u64, u64, Vec<u32>)>,
}

impl RunSums {
    fn add(&mut self, offset: u64, data: &[u8], new_run: bool) {
        if new_run || self.current.is_none() {
            self.end_run();
            self.current = Some((offset, RegionHasher::new()));
        }
        if let Some((_, h)) = &mut self.current {
            h.update(data);
        }
    }

    fn end_run(&mut self) {
        if let Some((offset, h)) = self.current.take() {
            let (len, sums) = h.finish();
            self.done.push((offset, len, sums));
        }
    }
}

/// Write the stored pages of every VMA into the image; returns the VMA and
/// run tables (names added to `strings`). `heap` is `[start_brk, brk)`:
/// image-backed areas inside it are recorded as heap.
///
/// Three buffers go round between this thread, which reads the target's
/// memory and picks the pages to store, a writer thread and a thread that
/// computes the chunk checksums of the runs (format 1.2) while the same
/// buffer is being written, so copying, disk writes and hashing overlap.
#[allow(clippy::too_many_arguments)]
pub fn dump_memory(
    mem: &Memory,
    maps: &[MapEntry],
    writer: &mut ImageWriter,
    sink: DataSink,
    strings: &mut StringTable,
    page: u64,
    image: &Path,
    heap: Range<u64>,
    ghosts: &Ghosts,
    dedup: Option<&mut Session<'_>>,
) -> Result<(Vec<VmaRecord>, Vec<RunRecord>, MemStats)> {
    dump_memory_from(
        &|_| mem,
        maps,
        writer,
        sink,
        strings,
        page,
        image,
        heap,
        ghosts,
        dedup,
    )
}

/// [`dump_memory`] with the memory of each VMA read from `source(vma)`
/// (the self-checkpoint reads most areas from a forked snapshot and shared
/// ones from the process itself).
#[allow(clippy::too_many_arguments)]
pub fn dump_memory_from<'m>(
    source: &dyn Fn(&MapEntry) -> &'m Memory,
    maps: &[MapEntry],
    writer: &mut ImageWriter,
    mut sink: DataSink,
    strings: &mut StringTable,
    page: u64,
    image: &Path,
    heap: Range<u64>,
    ghosts: &Ghosts,
    dedup: Option<&mut Session<'_>>,
) -> Result<(Vec<VmaRecord>, Vec<RunRecord>, MemStats)> {
    let write_err = |source| Error::WriteImage {
        path: image.to_path_buf(),
        source,
    };
    let pid = maps.first().map(|e| source(e).pid).unwrap_or(0);
    let buffers = [
        aligned_buffer(pid, CHUNK)?,
        aligned_buffer(pid, CHUNK)?,
        aligned_buffer(pid, CHUNK)?,
    ];
    // Only for measuring what the checksums cost (scripts/bench.sh).
    if std::env::var_os("KCKPT_NO_CHECKSUM").is_some_and(|v| v == "1") {
        writer.without_data_sums();
    }
    let hashing = writer.data_sums();
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Arc<Job>>(1);
        let (hash_tx, hash_rx) = std::sync::mpsc::channel::<Arc<Job>>();
        let (free_tx, free_rx) = std::sync::mpsc::channel::<memmap2::MmapMut>();
        for b in buffers {
            let _ = free_tx.send(b);
        }
        // A buffer goes back to the reader when both the writer and the
        // hasher are done with it (whichever drops it last).
        let release = |job: Arc<Job>, free: &std::sync::mpsc::Sender<memmap2::MmapMut>| {
            Arc::into_inner(job).is_none_or(|job| free.send(job.buf).is_ok())
        };
        let free_hasher = free_tx.clone();
        let hasher_thread = scope.spawn(move || {
            let mut sums = RunSums::default();
            for job in hash_rx {
                for &(off, at, len, new_run) in &job.segments {
                    sums.add(off, &job.buf[at..at + len], new_run);
                }
                if !release(job, &free_hasher) {
                    break;
                }
            }
            sums.end_run();
            sums
        });
        let writer_thread = scope.spawn(move || -> std::io::Result<()> {
            for job in job_rx {
                if hashing && hash_tx.send(job.clone()).is_err() {
                    return Err(std::io::Error::other("the checksum thread stopped"));
                }
                for &(off, at, len, _) in &job.segments {
                    sink.write(off, &job.buf[at..at + len])?;
                }
                if !release(job, &free_tx) {
                    break;
                }
            }
            Ok(())
        });
        let read = read_memory(
            source, maps, writer, strings, page, heap, ghosts, &free_rx, &job_tx, dedup,
        );
        drop(job_tx);
        let written = writer_thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
        let sums = hasher_thread.join().unwrap_or_default();
        match (read, written) {
            (_, Err(e)) => Err(write_err(e)),
            (r, Ok(())) => {
                for (offset, len, s) in sums.done {
                    writer.add_sums(offset, len, s);
                }
                r
            }
        }
    })
}

/// The reading side of [`dump_memory`]. A closed channel means the writer
/// failed: stop, its error is reported. Checks for an interruption
/// (`super::interrupt`) before each chunk.
#[allow(clippy::too_many_arguments)]
fn read_memory<'m>(
    source: &dyn Fn(&MapEntry) -> &'m Memory,
    maps: &[MapEntry],
    writer: &mut ImageWriter,
    strings: &mut StringTable,
    page: u64,
    heap: Range<u64>,
    ghosts: &Ghosts,
    free: &std::sync::mpsc::Receiver<memmap2::MmapMut>,
    jobs: &std::sync::mpsc::SyncSender<Arc<Job>>,
    mut dedup: Option<&mut Session<'_>>,
) -> Result<(Vec<VmaRecord>, Vec<RunRecord>, MemStats)> {
    let writer_gone = || Error::WriteImage {
        path: Default::default(),
        source: std::io::Error::other("writer stopped"),
    };
    let mut vmas = Vec::with_capacity(maps.len());
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut stats = MemStats::default();
    let mut pm: Vec<u64> = Vec::new();
    let ps = page as usize;
    let mut backings = Backings::new();
    let mut compare = vec![0u8; ps];
    let heap_end = heap.end.next_multiple_of(page);
    crate::progress::add_total(maps.iter().map(|e| e.len()).sum());
    for e in maps {
        let mem = source(e);
        let mut kind = e.kind();
        let mut flags = e.flags();
        let mut name = e.name.as_str();
        let mut backing = None;
        let ghost = if kind == vma_kind::FILE {
            ghosts.for_mapping(e)
        } else {
            None
        };
        if kind == vma_kind::FILE && e.shared && e.vm_flags.iter().any(|f| f == "mw") {
            flags |= vma_flags::MAYWRITE;
        }
        if ghost.is_some() {
            // Mapped from the re-created deleted file, whose content is
            // saved: a shared area stores nothing, a private one what the
            // process wrote.
            flags |= vma_flags::GHOST;
        } else if kind == vma_kind::FILE && super::sysv::is_attachment(e) {
            // Attached from the re-created segment, whose content is
            // saved once (`sysv`): stores nothing.
            flags |= vma_flags::SYSV | vma_flags::FILE_UNAVAILABLE;
        } else if kind == vma_kind::FILE {
            let unavailable = file_unavailable(e);
            if unavailable {
                flags |= vma_flags::FILE_UNAVAILABLE;
            }
            if !e.shared {
                let (file, image) = backings
                    .entry((e.dev, e.inode))
                    .or_insert_with(|| {
                        open_backing(mem.pid, e).map(|f| {
                            let image = is_image(&f);
                            (std::rc::Rc::new(f), image)
                        })
                    })
                    .clone()
                    .map_or((None, false), |(f, image)| (Some(f), image));
                if image {
                    // A lazily restored area: stored as what it was.
                    (kind, name) = if heap.start <= e.start && e.start < heap_end {
                        (vma_kind::HEAP, "[heap]")
                    } else {
                        (vma_kind::ANONYMOUS, "")
                    };
                    flags &= !vma_flags::FILE_UNAVAILABLE;
                }
                if image || unavailable {
                    backing = file;
                }
            }
        }
        let held_memfd = e.name.starts_with("/memfd:") && ghosts.holds_memfd(e.inode);
        // A private mapping of shared anonymous memory or of a memfd whose
        // shared mappings cover it (1.3): the pages it wrote; the others
        // are the object's, saved through those (for `/dev/zero (deleted)`
        // `files::unsupported_features` refuses the rest).
        let private_shmem = (e.name == "/dev/zero (deleted)" || e.name.starts_with("/memfd:"))
            && !e.shared
            && covered_by_shared(maps, e);
        let pol = if flags & vma_flags::SYSV != 0 {
            Policy::Nothing
        } else if kind == vma_kind::FILE && !e.shared && (held_memfd || private_shmem) {
            Policy::Cow
        } else if backing.is_some()
            || (kind == vma_kind::FILE && !e.shared && flags & vma_flags::FILE_UNAVAILABLE != 0)
        {
            Policy::Full
        } else {
            policy(kind, flags)
        };
        // Pages of an unreopenable object that this process has not
        // mapped yet (see `shmem`), or of the file of a `Full` area.
        let data = match (pol, &backing) {
            (Policy::NonZero, _) if flags & vma_flags::FILE_UNAVAILABLE != 0 => {
                super::shmem::data_ranges(mem.pid, e, page).unwrap_or_default()
            }
            (Policy::Full, Some(f)) => super::shmem::file_data_ranges(f, e, page),
            _ => Vec::new(),
        };
        // Without its file, every page of a `Full` area is read from the
        // process.
        let every_page = pol == Policy::Full && backing.is_none();
        // Guard pages (1.3): never read (any access faults), saved as
        // ranges.
        let guards = super::guards::scan(&mem.pagemap, e.start, e.end);
        stats
            .guards
            .extend(guards.iter().map(|&(start, end)| kckpt_image::GuardRecord {
                start,
                len: end - start,
            }));
        let first_run = runs.len();
        // Private pages may be stored by an earlier process of the tree.
        let shareable = !e.shared && flags & vma_flags::SHARED == 0;
        let mut region: Option<u64> = None;
        let mut stored = 0u64;
        // Bytes of this area the progress bar was told about.
        let mut counted = 0u64;
        if pol != Policy::Nothing && (e.resident_kb != Some(0) || !data.is_empty() || every_page) {
            let pages = (e.len() / page) as usize;
            let mut idx = 0usize;
            while idx < pages {
                let n = PAGEMAP_BATCH.min(pages - idx);
                let batch_start = e.start + idx as u64 * page;
                mem.pagemap(batch_start, n, page, &mut pm)?;
                let cand = |k: usize| {
                    let addr = batch_start + k as u64 * page;
                    if super::shmem::contains(&guards, addr) {
                        return false;
                    }
                    let listed = || super::shmem::contains(&data, addr);
                    match pol {
                        Policy::Full if !every_page => {
                            candidate(Policy::NonZero, pm[k]) || listed()
                        }
                        _ => candidate(pol, pm[k]) || listed(),
                    }
                };
                // A page stored by an earlier process of the tree, by
                // frame: shared without being read (format 1.6).
                let frame_hit = |d: &Option<&mut Session<'_>>, k: usize| {
                    d.as_deref()
                        .filter(|_| shareable)
                        .and_then(|d| d.by_frame(pm[k]))
                };
                let mut i = 0usize;
                while i < n {
                    if !cand(i) {
                        i += 1;
                        continue;
                    }
                    if let Some(f) = frame_hit(&dedup, i) {
                        if let Some(d) = dedup.as_deref_mut() {
                            d.share_frame(batch_start + i as u64 * page, &f)?;
                        }
                        i += 1;
                        continue;
                    }
                    // A range of consecutive candidates, at most CHUNK bytes.
                    let mut j = i + 1;
                    while j < n && j - i < CHUNK / ps && cand(j) && frame_hit(&dedup, j).is_none() {
                        j += 1;
                    }
                    let addr = batch_start + i as u64 * page;
                    let len = (j - i) * ps;
                    super::interrupt::check()?;
                    let mut buf = free.recv().map_err(|_| writer_gone())?;
                    let data = &mut buf[..len];
                    if pol == Policy::Full {
                        read_full(mem, backing.as_deref(), e, addr, data, &pm[i..j], ps)?;
                    } else {
                        mem.read(addr, data)?;
                    }
                    let region_off = *region.get_or_insert_with(|| writer.reserve_region(e.len()));
                    // Maximal sub-ranges of pages to store.
                    let mut segments = Vec::new();
                    let mut kept: Vec<bool> = (0..len / ps)
                        .map(|k| pol == Policy::Cow || !is_zero(&data[k * ps..(k + 1) * ps]))
                        .collect();
                    if let Some(d) = dedup.as_deref_mut() {
                        for (k, keep) in kept.iter_mut().enumerate().filter(|(_, k)| **k) {
                            let a = addr + (k * ps) as u64;
                            let bytes = &data[k * ps..(k + 1) * ps];
                            let lanes = Session::lanes(bytes);
                            if shareable && d.by_content() {
                                if let Some(at) = d.by_bytes(bytes, &lanes, &mut compare) {
                                    d.share(a, at, &lanes)?;
                                    *keep = false;
                                    continue;
                                }
                            }
                            d.stored(pm[i + k], a, region_off + (a - e.start), lanes);
                        }
                    }
                    let keep = |q: usize| kept[q / ps];
                    let mut p = 0usize;
                    while p < len {
                        if !keep(p) {
                            p += ps;
                            continue;
                        }
                        let mut q = p + ps;
                        while q < len && keep(q) {
                            q += ps;
                        }
                        let a = addr + p as u64;
                        let off = region_off + (a - e.start);
                        let new_run = push_run(&mut runs, first_run, a, (q - p) as u64, off);
                        segments.push((off, p, q - p, new_run));
                        stored += (q - p) as u64;
                        p = q;
                    }
                    jobs.send(Arc::new(Job { buf, segments }))
                        .map_err(|_| writer_gone())?;
                    crate::testing::die_at("copy");
                    i = j;
                }
                idx += n;
                crate::progress::add_done(n as u64 * page);
            }
            counted = pages as u64 * page;
        }
        if let Some(d) = dedup.as_deref_mut() {
            d.end()?;
        }
        stats.stored += stored;
        crate::progress::add_done(e.len().saturating_sub(counted));
        let name = strings.add(name.as_bytes());
        let file_backed = kind == vma_kind::FILE;
        let (dev, inode) = ghost.unwrap_or((e.dev, e.inode));
        vmas.push(VmaRecord {
            start: e.start,
            end: e.end,
            file_pgoff: if file_backed { e.offset } else { 0 },
            dev: if file_backed { dev } else { 0 },
            inode: if file_backed { inode } else { 0 },
            stored_bytes: stored,
            first_run: first_run as u32,
            run_count: (runs.len() - first_run) as u32,
            prot: e.prot,
            flags,
            kind,
            reserved: 0,
            name,
        });
    }
    Ok((vmas, runs, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_bits_select_pages() {
        let anon = policy(vma_kind::ANONYMOUS, 0);
        assert_eq!(anon, Policy::NonZero);
        assert!(candidate(anon, PM_PRESENT | 1234));
        assert!(candidate(anon, PM_SWAPPED));
        assert!(!candidate(anon, 0));
        let cow = policy(vma_kind::FILE, 0);
        assert_eq!(cow, Policy::Cow);
        assert!(!candidate(cow, PM_PRESENT | PM_FILE));
        assert!(candidate(cow, PM_PRESENT));
        assert!(candidate(cow, PM_SWAPPED));
        assert_eq!(policy(vma_kind::FILE, vma_flags::SHARED), Policy::Nothing);
        assert_eq!(
            policy(
                vma_kind::FILE,
                vma_flags::SHARED | vma_flags::FILE_UNAVAILABLE
            ),
            Policy::NonZero
        );
        assert_eq!(policy(vma_kind::VDSO, 0), Policy::Nothing);
        assert_eq!(
            policy(vma_kind::ANONYMOUS, vma_flags::DROPPABLE),
            Policy::Nothing
        );
        assert_eq!(policy(vma_kind::VVAR_VCLOCK, 0), Policy::Nothing);
        assert_eq!(
            policy(vma_kind::ANONYMOUS, vma_flags::SHARED),
            Policy::NonZero
        );
    }

    #[test]
    fn zero_check() {
        let mut page = vec![0u8; 4096];
        assert!(is_zero(&page));
        page[4095] = 1;
        assert!(!is_zero(&page));
        page[4095] = 0;
        page[17] = 1;
        assert!(!is_zero(&page));
        assert!(is_zero(&[0u8; 7]));
        assert!(!is_zero(&[0, 0, 0, 0, 0, 0, 3]));
    }

    #[test]
    fn runs_coalesce_only_when_contiguous() {
        let mut runs = vec![RunRecord {
            start: 0,
            len: 4096,
            offset: 4096,
        }];
        // A new VMA starts at index 1: never merged with the previous VMA's run.
        push_run(&mut runs, 1, 4096, 4096, 8192);
        assert_eq!(runs.len(), 2);
        push_run(&mut runs, 1, 8192, 4096, 12288);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].len, 8192);
        // A hole: a new run.
        push_run(&mut runs, 1, 16384, 4096, 20480);
        assert_eq!(runs.len(), 3);
    }
}
