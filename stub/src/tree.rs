//! Process trees (format 1.4): an image holding several processes.
//!
//! Three roles, all played by this same program:
//!
//! - `P`, the process that ran the image ([`entry`]): validates the outer
//!   image and the metadata of every sub-image, picks the pid mode and
//!   becomes the coordinator (privileged mode), or creates a new PID (and
//!   user) namespace whose pid 1 is the coordinator
//!   ([`crate::coordinator`]);
//! - the coordinator: creates the slots the restorer holds and the barrier
//!   pipes, forks the roots with their saved pids, waits until every
//!   process is ready, releases them, and ends like the tree's
//!   `status_proc`;
//! - each tree process (`KCKPT_TREE_PROC=<index>` in its environment,
//!   [`enter`]): loads its sub-image and restores it like a single
//!   process, with the changes of [`before_files`] and [`after_files`] and
//!   the [`barrier`] right before it resumes.
//!
//! Descriptors during the restore: slot `k` is `slot_base + k`; just above
//! the slots, the barrier: `B` = ready pipe read end (coordinator), `B+1`
//! its write end (tree processes), `B+2` the go pipe's read end (tree
//! processes), `B+3` its write end (coordinator). A tree process writes its
//! index (4 bytes, bit 31 set when it failed) to `B+1` and reads one byte
//! from `B+2` before it resumes.

use kckpt_image::checksum::{crc32c, note_spans};
use kckpt_image::tree::{proc_state, slot_kind, TreeProcRecord, NO_PARENT};
use kckpt_image::{self_fd_kind, FD_NO_DUP};
use kckpt_image::{FormatError, ImageView, NOTE_OWNER, NT_KCKPT_CHECKSUMS};
use linux_raw_sys::general as g;

use crate::load::{self, Image};
use crate::report::Msg;
use crate::startup::Startup;
use crate::sys::{self, Errno};
use crate::xsys;

const F_SETFD: u32 = 2;
const F_SETFL: u32 = 4;
const F_SETPIPE_SZ: u32 = 1031;
const F_DUPFD_CLOEXEC: u32 = 1030;
const PR_SET_PDEATHSIG: u32 = 1;
const PR_SET_DUMPABLE: u32 = 4;
const SIGKILL: usize = 9;
const RLIMIT_NOFILE: u32 = 7;
/// Attempts at a pid whose previous owner is a zombie, 50 ms apart.
const ZOMBIE_TRIES: u32 = 60;
/// Attempts at opening a pidfd or procfs file of a process of the tree
/// not forked yet, 10 ms apart.
const PIDFD_TRIES: u32 = 1000;
/// Most environment entries passed on to a tree process.
const MAX_ENV: usize = 1024;
/// Most arguments passed on.
const MAX_ARGS: usize = 64;

/// What a tree process knows of its tree.
#[derive(Clone, Copy)]
pub struct Tree {
    /// The outer image's tables (for process 0, its own image).
    pub outer: ImageView<'static>,
    /// This process's index.
    pub index: u32,
    /// The absolute image path (NUL-terminated) and the initial stack's
    /// `argv`/`envp`, to execute the stub for the children.
    pub exec: Exec,
}

/// How to execute the stub again for another tree process.
#[derive(Clone, Copy)]
pub struct Exec {
    /// The image path, absolute, NUL-terminated.
    pub path: &'static [u8],
    /// Initial stack `argv`.
    pub argv: usize,
    /// Initial stack `envp`.
    pub envp: usize,
    /// In a new PID namespace: the highest saved pid or tid of the tree
    /// (`KCKPT_TREE_NS`); 0 in privileged mode.
    pub ns_max: u32,
    /// In a user namespace the stub created (`KCKPT_TREE_USERNS=1`).
    pub userns: bool,
    /// The image is a `/proc/self/fd/N` path (`kckpt restore -`): the
    /// children open it as `/proc/self/fd/<this>`, an inherited copy.
    pub via_fd: Option<u32>,
}

impl Exec {
    /// The children's copy of the image path, when it names a descriptor
    /// of this process (`kckpt restore -`, which the restore closes): the
    /// image descriptor `fd` is left open across `execve` and named
    /// instead (each stub closes it again with the descriptors it does
    /// not restore).
    pub fn through(mut self, fd: usize) -> Exec {
        if self.path.starts_with(b"/proc/self/fd/") && sys::fcntl(fd, F_SETFD, 0).is_ok() {
            self.via_fd = Some(fd as u32);
        }
        self
    }
}

impl Tree {
    /// First slot descriptor.
    pub fn slot_base(&self) -> u32 {
        self.outer.tree.map_or(0, |t| t.slot_base)
    }
    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.outer.tree.map_or(0, |t| t.slots)
    }
    /// The first barrier descriptor (`B`).
    pub fn barrier_base(&self) -> u32 {
        self.slot_base() + self.slots()
    }
    /// The descriptors a tree process keeps through `files::restore`:
    /// `[slot_base, B + 4 + MAX_INHERIT)` (the slots, the barrier, the
    /// restorer's external descriptors: `crate::external`).
    pub fn kept(&self) -> (u32, u32) {
        (self.slot_base(), kept_end(self.barrier_base()))
    }
    /// Its index and saved pid.
    pub fn who(&self) -> (u32, u32) {
        (self.index, self.me().pid)
    }
    /// This process's record.
    fn me(&self) -> TreeProcRecord {
        self.outer
            .tree_procs
            .get(self.index as usize)
            .unwrap_or_default()
    }
    /// Pids for the tracer's two helpers: above every pid and tid of the
    /// tree, two per process, in a new PID namespace (where nothing else
    /// takes pids); any pid otherwise.
    pub fn helper_pids(&self) -> [u32; 2] {
        if self.exec.ns_max == 0 {
            return [0, 0];
        }
        let at = self.exec.ns_max + 1 + 2 * self.index;
        [at, at + 1]
    }
}

/// The end of the descriptors a tree restore uses at fixed numbers, with
/// the barrier at `b`: the barrier (4), then one per `KCKPT_INHERIT_FD`
/// entry.
pub fn kept_end(b: u32) -> u32 {
    b + 4 + kckpt_image::external::MAX_INHERIT as u32
}

/// `kckpt: PATH: process I (pid P) of the tree` prefix.
pub fn proc_msg(path: &[u8], i: u32, pid: u32) -> Msg {
    let mut m = Msg::new();
    m.push(path)
        .s(": process ")
        .dec(i.into())
        .s(" (pid ")
        .dec(pid.into())
        .s(") of the tree");
    m
}

/// A sub-image at `base` failed validation.
pub fn sub_format_error(path: &[u8], base: u64, e: FormatError) -> ! {
    let mut m = Msg::new();
    m.push(path)
        .s(": the sub-image at offset ")
        .dec(base)
        .s(" (a process of the tree): ");
    match e {
        FormatError::BadChecksum(which) => m
            .s("image is corrupt (checksum of ")
            .s(which)
            .s(" does not match)"),
        FormatError::BadField(what) => m.s("image is corrupt (").s(what).s(")"),
        _ => m.s(e.message()),
    };
    m.fail()
}

/// CRC-32C of the `NT_KCKPT_CHECKSUMS` descriptor in `notes` (0 if none).
fn binding_sum(notes: &[u8]) -> u32 {
    note_spans(notes)
        .find(|(n, _)| n.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS))
        .map_or(0, |(n, _)| crc32c(n.desc))
}

/// Check a loaded sub-image against its process record `rec` (index `i`):
/// bound to the outer image by `image_sum`, the same pid and number of
/// threads, no tree of its own.
fn check_sub(path: &[u8], i: u32, rec: &TreeProcRecord, view: &ImageView<'_>, notes: &[u8]) {
    let what = if binding_sum(notes) != rec.image_sum {
        "image is corrupt (its checksums do not match the tree's record of them)"
    } else if view.header.pid != rec.pid {
        "image is corrupt (its pid is not the tree's)"
    } else if view.header.thread_count != rec.threads {
        "image is corrupt (its number of threads is not the tree's)"
    } else if view.tree.is_some() {
        "image is corrupt (a process of the tree has a tree)"
    } else {
        return;
    };
    proc_msg(path, i, rec.pid).s(": ").s(what).fail()
}

/// A standalone image (no tree, or not a tree process) must not have
/// descriptors shared with other processes of a tree.
pub fn refuse_shared(img: &Image) {
    for r in img.view.fds.iter() {
        let tree_only = r.fd_flags & kckpt_image::records::fd_flags::TREE_ONLY != 0;
        if r.kind == kckpt_image::tree::TREE_SHARED_FD_KIND
            || kckpt_image::files::of_tree_process(&r)
            || tree_only
        {
            shared_refusal(img, r.fd);
        }
    }
}

/// `fd N is shared with another process of the tree` and exit.
pub fn shared_refusal(img: &Image, fd: u32) -> ! {
    Msg::new()
        .push(img.path)
        .s(": fd ")
        .dec(fd.into())
        .s(" is shared with another process of the tree: restore the whole image")
        .fail()
}

/// What `P` learned checking the tree: the highest pid or tid, whether
/// every saved pid and tid is free here, whether one is 1.
pub struct Ids {
    /// Highest saved pid or tid.
    pub max: u32,
    /// Every saved pid and tid is free in this PID namespace.
    pub all_free: bool,
    /// Some process or thread had pid or tid 1.
    pub has_one: bool,
    /// What the sockets of every process need of the network.
    pub net: crate::netns::Needs,
}

/// Is `id` free, or held by a zombie on its way out (`spawn` waits)?
fn free(id: u32) -> bool {
    crate::ksys::kill(id, 0) == Err(Errno(linux_raw_sys::errno::ESRCH)) || crate::ids::zombie(id)
}

fn note_ids(ids: &mut Ids, view: &ImageView<'_>) {
    ids.net.note(view);
    for t in view.threads() {
        let tid = t.record.tid;
        ids.max = ids.max.max(tid);
        ids.has_one |= tid <= 1;
        ids.all_free &= free(tid);
    }
}

/// `P`: check every sub-image's metadata (the outer image is checked);
/// refuses with one line on any problem.
pub fn check_all(img: &Image) -> Ids {
    let v = &img.view;
    let mut ids = Ids {
        max: 0,
        all_free: true,
        has_one: false,
        net: crate::netns::Needs::default(),
    };
    note_ids(&mut ids, v);
    let (notes, phdrs) = load::tree_buffers(img.path);
    let buf = crate::data_check::tree_buf();
    for (i, rec) in v.tree_procs.iter().enumerate() {
        ids.max = ids.max.max(rec.pid);
        ids.has_one |= rec.pid <= 1;
        ids.all_free &= free(rec.pid);
        if i == 0 || rec.state != proc_state::LIVE {
            continue;
        }
        let (view, _, sub_notes) = load::read_view(
            img.path,
            img.fd,
            rec.image_offset,
            rec.image_len,
            notes,
            phdrs,
        )
        .unwrap_or_else(|e| sub_format_error(img.path, rec.image_offset, e));
        check_sub(img.path, i as u32, &rec, &view, sub_notes);
        // Pages it shares with earlier processes, before any process is
        // forked: one refusal instead of a late failure in each process.
        crate::data_check::shared_pages(img.path, img.fd, view.page_refs.iter(), buf);
        note_ids(&mut ids, &view);
    }
    ids
}

/// `P`: refuse, by name, a session or process group that `fork`,
/// `setsid` and `setpgid` in table order cannot give back (the dump
/// refuses them too; an image from elsewhere is checked here): a process
/// whose session is neither its own nor its parent's (a root: nor the
/// restorer's), or whose group is neither its own, nor led by a process
/// of the tree, nor its parent's.
fn check_groups(img: &Image) {
    let procs = img.view.tree_procs;
    let in_tree = |pid: u32| procs.iter().any(|p| p.pid == pid);
    for (i, rec) in procs.iter().enumerate() {
        let parent = procs.get(rec.parent as usize);
        let sid_ok = rec.sid == rec.pid
            || match parent {
                Some(p) => p.sid == rec.sid,
                None => !in_tree(rec.sid),
            };
        let pgid_ok =
            rec.pgid == rec.pid || in_tree(rec.pgid) || parent.is_none_or(|p| p.pgid == rec.pgid);
        let what = if !sid_ok {
            ": its session cannot be rebuilt (neither its own nor its parent's)"
        } else if !pgid_ok {
            ": its process group cannot be rebuilt (led by a process outside the tree and not its parent's)"
        } else {
            continue;
        };
        proc_msg(img.path, i as u32, rec.pid).s(what).fail();
    }
}

/// `P`: restore the whole tree; never returns. `img` is the validated
/// outer image.
pub fn entry(mut img: Image, start: &Startup, path: &'static [u8]) -> ! {
    crate::state::verify(&img);
    check_groups(&img);
    crate::pty::check_all(img.path, img.fd, &img.view);
    check_file_slots(&img);
    crate::terminal::note_caller();
    let ids = check_all(&img);
    let mut exec = Exec {
        path: absolute(path),
        argv: start.argv,
        envp: start.envp,
        ns_max: 0,
        userns: false,
        via_fd: None,
    };
    let privileged = !start.new_pid_ns && ids.all_free && sys::geteuid() == 0;
    if privileged {
        // Returns only if the first root could not get its pid (not
        // allowed to choose pids here): then a new PID namespace.
        crate::coordinator::run(&mut img, exec, None);
    }
    if ids.has_one {
        load::refuse(
            img.path,
            "a process of the tree has pid or tid 1, which kckpt keeps for the new PID namespace's init",
        );
    }
    let name = img
        .view
        .tree_procs
        .get(crate::coordinator::status_root(&img.view) as usize)
        .unwrap_or_default()
        .name;
    crate::kstate::loginuid_before_userns(&img);
    let new_net = crate::netns::wanted(img.path, &ids.net, start.new_net_ns);
    let word = crate::ids::new_namespaces(img.path, name, new_net);
    exec.ns_max = ids.max;
    if crate::ids::in_own_user_ns() {
        exec.userns = true;
        crate::ids::keep_caps_across_exec();
    }
    crate::coordinator::run(&mut img, exec, Some(word));
    // The coordinator in a namespace never returns.
    sys::exit(crate::report::EXIT_REFUSED)
}

static ABS: crate::statics::StaticBuf<4096> = crate::statics::StaticBuf::new();

/// `path` made absolute (the tree processes execute the stub again after
/// changing their working directory).
fn absolute(path: &'static [u8]) -> &'static [u8] {
    if path.first() == Some(&b'/') {
        return path;
    }
    let Some(buf) = ABS.take() else { return path };
    let Ok(n) = xsys::getcwd(&mut buf[..]) else {
        return path;
    };
    // getcwd's length counts its NUL.
    let mut at = n.saturating_sub(1);
    if at + 1 + path.len() > buf.len() {
        return path;
    }
    buf[at] = b'/';
    at += 1;
    buf[at..at + path.len()].copy_from_slice(path);
    &buf[..at + path.len()]
}

/// A tree process: load the outer tables and its own sub-image, check
/// them, and tell failures to the coordinator from now on.
pub fn enter(path: &'static [u8], start: &Startup) -> (Image, Tree) {
    let index = start.tree_proc;
    let exec = Exec {
        path,
        argv: start.argv,
        envp: start.envp,
        ns_max: start.tree_ns_max,
        userns: start.tree_userns,
        via_fd: None,
    };
    let (img, outer) = if index == 0 {
        let img = load::load(path);
        let outer = img.view;
        (img, outer)
    } else {
        let outer_img = load::load_outer(path);
        sys::close(outer_img.fd);
        let outer = outer_img.view;
        let rec = outer.tree_procs.get(index as usize);
        let Some(rec) = rec.filter(|r| r.state == proc_state::LIVE) else {
            load::refuse(path, "KCKPT_TREE_PROC names no live process of the tree")
        };
        let (img, notes) = load::load_sub(path, rec.image_offset, rec.image_len);
        check_sub(path, index, &rec, &img.view, notes);
        (img, outer)
    };
    let tree = Tree { outer, index, exec };
    if outer.tree.is_none() || outer.tree_procs.get(index as usize).is_none() {
        load::refuse(
            path,
            "KCKPT_TREE_PROC is set but the image is not a process tree",
        );
    }
    crate::report::tree_failures_to(tree.barrier_base() as usize + 1, index);
    raise_nofile();
    // The image above the slots and the barrier, whose numbers are taken
    // next.
    let mut img = img;
    match sys::fcntl(img.fd, F_DUPFD_CLOEXEC, tree.kept().1 as usize) {
        Ok(fd) => {
            sys::close(img.fd);
            img.fd = fd;
        }
        Err(e) => Msg::new()
            .push(path)
            .s(": cannot use descriptor numbers up to ")
            .dec(tree.kept().1.into())
            .s(" (RLIMIT_NOFILE)")
            .errno(e)
            .fail(),
    }
    if exec.userns {
        crate::ids::set_drop_caps();
    }
    (img, tree)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard one for the restore (the
/// slots sit above every saved descriptor; the saved limits come later).
pub fn raise_nofile() {
    if let Ok(mut l) = xsys::prlimit(RLIMIT_NOFILE, None) {
        l.cur = l.max;
        let _ = xsys::prlimit(RLIMIT_NOFILE, Some(&l));
    }
}

/// Put `fd` at number `at` (not close-on-exec), closing `fd`.
pub fn put(fd: usize, at: u32) -> Result<(), Errno> {
    if fd == at as usize {
        sys::fcntl(fd, F_SETFD, 0)?;
    } else {
        sys::dup3(fd, at as usize, 0)?;
        sys::close(fd);
    }
    Ok(())
}

/// A new pipe (`flags` and close-on-exec) with both ends at `floor` or
/// above, so that moving either end to its number below `floor` never
/// replaces the other.
pub fn pipe_above(flags: u32, floor: u32) -> Result<[usize; 2], Errno> {
    let ends = sys::fd_pair(None, g::O_CLOEXEC | flags)?;
    let mut high = [0usize; 2];
    for (h, end) in high.iter_mut().zip(ends) {
        let moved = sys::fcntl(end, F_DUPFD_CLOEXEC, floor as usize);
        sys::close(end);
        *h = moved?;
    }
    Ok(high)
}

/// Create the pipe and pseudo-terminal slots held by `holder` (a process
/// index or [`HOLDER_RESTORER`]): both ends of each pipe at their slot
/// numbers (an end no slot needs is closed), its size and the bytes in
/// flight (outer image offsets, read from `fd`); pairs: `crate::pty`.
pub fn create_pipe_slots(
    outer: &ImageView<'_>,
    holder: u32,
    fd: usize,
) -> Result<(), (u32, Errno)> {
    let Some(t) = outer.tree else { return Ok(()) };
    for (k, s) in outer.tree_slots.iter().enumerate() {
        let k = k as u32;
        if s.holder != holder || !matches!(s.kind, slot_kind::PIPE_READ | slot_kind::PIPE_WRITE) {
            if s.holder == holder && s.kind == slot_kind::PTY_MASTER {
                crate::pty::create(outer, k, &s, fd, t.slot_base, t.slot_base + t.slots + 4)?;
            }
            if s.holder == holder && matches!(s.kind, slot_kind::FIFO | slot_kind::FIFO_OPEN) {
                let f = if s.kind == slot_kind::FIFO {
                    open_fifo_slot(fd, &s)
                } else {
                    let mut via = crate::ghosts::PathBuf::proc_fd(u64::from(t.slot_base + s.peer));
                    sys::open(via.c(), s.flags | g::O_CLOEXEC | g::O_NOCTTY)
                };
                let f = f.map_err(|e| (k, e))?;
                let high = sys::fcntl(f, F_DUPFD_CLOEXEC, (t.slot_base + t.slots + 4) as usize);
                sys::close(f);
                put(high.map_err(|e| (k, e))?, t.slot_base + k).map_err(|e| (k, e))?;
            }
            if s.holder == holder && s.kind == slot_kind::FILE {
                let f = open_file_slot(fd, &s).map_err(|e| (k, e))?;
                let high = sys::fcntl(f, F_DUPFD_CLOEXEC, (t.slot_base + t.slots + 4) as usize);
                sys::close(f);
                put(high.map_err(|e| (k, e))?, t.slot_base + k).map_err(|e| (k, e))?;
            }
            continue;
        }
        // Each pipe once: from its read end, or its write end when no
        // slot has the read end.
        if s.kind == slot_kind::PIPE_WRITE && s.peer != u32::MAX {
            continue;
        }
        let (read, write) = if s.kind == slot_kind::PIPE_READ {
            (
                Some((k, s)),
                outer.tree_slots.get(s.peer as usize).map(|w| (s.peer, w)),
            )
        } else {
            (None, Some((k, s)))
        };
        let flags_of =
            |e: Option<(u32, kckpt_image::tree::TreeSlotRecord)>| e.map_or(0, |e| e.1.flags);
        let direct = (flags_of(read) | flags_of(write)) & g::O_DIRECT;
        let ends = pipe_above(direct, t.slot_base + t.slots + 4).map_err(|e| (k, e))?;
        if let Some((_, r)) = read {
            if r.pipe_size != 0 {
                let _ = sys::fcntl(ends[1], F_SETPIPE_SZ, r.pipe_size as usize);
            }
            sys::sendfile_all(ends[1], fd, r.data_offset, r.data_len).map_err(|e| (k, e))?;
        }
        for (end, e) in [(ends[0], read), (ends[1], write)] {
            match e {
                Some((slot, rec)) => {
                    let _ = sys::fcntl(end, F_SETFL, rec.flags as usize);
                    put(end, t.slot_base + slot).map_err(|e| (slot, e))?;
                }
                None => sys::close(end),
            }
        }
    }
    Ok(())
}

/// (1.7) Open the named pipe of `FIFO` slot `s` (path and bytes read from
/// the image file `fd`) read-write, refill it; refused when the path is
/// not a named pipe or the pipe holds bytes already (another process has
/// it open: they would be read twice).
fn open_fifo_slot(fd: usize, s: &kckpt_image::tree::TreeSlotRecord) -> Result<usize, Errno> {
    let mut path = [0u8; 4096];
    let n = s.size as usize;
    if n == 0
        || n >= path.len()
        || sys::pread(fd, &mut path[..n], s.data_offset)? != n
        || path[..n].contains(&0)
    {
        return Err(Errno(linux_raw_sys::errno::EIO));
    }
    let f = sys::open(&path[..=n], g::O_RDWR | g::O_NONBLOCK | g::O_CLOEXEC)?;
    let ok = (|| {
        if sys::fstat_mode(f)? & g::S_IFMT != g::S_IFIFO {
            return Err(Errno(linux_raw_sys::errno::EEXIST));
        }
        if crate::special::queued(f)? != 0 {
            return Err(Errno(linux_raw_sys::errno::EBUSY));
        }
        if s.pipe_size != 0 {
            let _ = sys::fcntl(f, F_SETPIPE_SZ, s.pipe_size as usize);
        }
        sys::sendfile_all(f, fd, s.data_offset + s.size, s.data_len - s.size)
    })();
    match ok {
        Ok(()) => Ok(f),
        Err(e) => {
            sys::close(f);
            Err(e)
        }
    }
}

/// (1.5) Open the file of `FILE` slot `s` (path read from the image file
/// `fd`) with its flags, at its position; refused when it is not a
/// regular file or is shorter than the position.
fn open_file_slot(fd: usize, s: &kckpt_image::tree::TreeSlotRecord) -> Result<usize, Errno> {
    let mut path = [0u8; 4096];
    let n = s.data_len as usize;
    if n == 0
        || n >= path.len()
        || sys::pread(fd, &mut path[..n], s.data_offset)? != n
        || path[..n].contains(&0)
    {
        return Err(Errno(linux_raw_sys::errno::EIO));
    }
    // O_NONBLOCK: a path that is a named pipe now must not block the
    // open; the saved status flags are set once it is a regular file.
    let f = sys::open(
        &path[..=n],
        s.flags | g::O_CLOEXEC | g::O_NOCTTY | g::O_NONBLOCK,
    )?;
    let ok = (|| {
        let (_, _, size) = sys::fstat(f)?;
        if sys::fstat_mode(f)? & g::S_IFMT != g::S_IFREG || size < s.size {
            return Err(Errno(linux_raw_sys::errno::EINVAL));
        }
        const SETTABLE: u32 = g::O_APPEND | g::O_NONBLOCK | g::O_DIRECT | g::O_NOATIME;
        sys::fcntl(f, F_SETFL, (s.flags & SETTABLE) as usize)?;
        sys::lseek(f, s.size).map(drop)
    })();
    match ok {
        Ok(()) => Ok(f),
        Err(e) => {
            sys::close(f);
            Err(e)
        }
    }
}

/// `P`: the file of every `FILE` slot opens here, as a regular file not
/// shorter than its position (before anything changes).
pub fn check_file_slots(img: &Image) {
    for (k, s) in img.view.tree_slots.iter().enumerate() {
        if s.kind != slot_kind::FILE {
            continue;
        }
        match open_file_slot(img.fd, &s) {
            Ok(f) => sys::close(f),
            Err(e) => slot_fail(img.path, k as u32, "cannot open the shared file", e),
        }
    }
}

/// A tree process, before `files::restore`: the pipe and pseudo-terminal
/// slots it holds (its own descriptors may be copies of them), then the
/// controlling terminal of the session it leads and the foreground group.
pub fn before_files(tree: &Tree, img: &Image) {
    if let Err((k, e)) = create_pipe_slots(&tree.outer, tree.index, img.fd) {
        slot_fail(img.path, k, "cannot create the pipe or pseudo-terminal", e);
    }
    crate::pty::take_terminal(&tree.outer, tree.index, img.fd, tree.slot_base(), img.path);
}

fn slot_fail(path: &[u8], k: u32, what: &str, e: Errno) -> ! {
    Msg::new()
        .push(path)
        .s(": shared descriptor slot ")
        .dec(k.into())
        .s(": ")
        .s(what)
        .errno(e)
        .fail()
}

/// The descriptor of a `TREE_SHARED` record: a close-on-exec copy of the
/// inherited slot `slot`, for `files::restore` to move into place.
pub fn shared_fd(kept: (u32, u32), slot: u64) -> Result<usize, Errno> {
    let fd = u64::from(kept.0) + slot;
    if fd >= u64::from(kept.1) {
        return Err(Errno(linux_raw_sys::errno::EBADF));
    }
    sys::fcntl(fd as usize, F_DUPFD_CLOEXEC, 0)
}

/// A tree process, after `files::restore`: the descriptor and memory
/// slots it holds (and its copies of the memory slots it maps), then its
/// children in table order, then every slot descriptor closed, and (1.7)
/// the Unix socket ends ((1.9) and other descriptions) it restored only
/// for its descendants.
pub fn after_files(tree: &Tree, img: &Image, groups: &mut crate::shmem::Groups) {
    let base = tree.slot_base();
    let ours = |s: &kckpt_image::tree::TreeSlotRecord| {
        s.holder == tree.index
            && matches!(
                s.kind,
                slot_kind::HOLDER_FD | slot_kind::UNIX_END | slot_kind::ADOPTED
            )
    };
    for (k, s) in tree.outer.tree_slots.iter().enumerate() {
        if ours(&s) {
            if let Err(e) = sys::dup3(s.holder_fd as usize, (base + k as u32) as usize, 0) {
                slot_fail(img.path, k as u32, "cannot copy the descriptor", e);
            }
        }
    }
    groups.tree_slots(tree, img);
    let exec = tree.exec.through(img.fd);
    // The exit signals of the zombies made here: their ending sends them
    // again to this process (which has every signal blocked); the signals
    // it had pending are in its image.
    let mut again = 0u64;
    for (i, rec) in tree.outer.tree_procs.iter().enumerate() {
        if rec.parent == tree.index && rec.parent != NO_PARENT {
            let pid = spawn(&tree.outer, exec, i as u32).unwrap_or_else(|e| {
                proc_msg(img.path, i as u32, rec.pid)
                    .s(": cannot have its pid")
                    .errno(e)
                    .fail()
            });
            if rec.state == proc_state::ZOMBIE && (1..=64).contains(&rec.exit_signal) {
                let _ = crate::ksys::wait_ended(pid as u32);
                again |= 1 << (rec.exit_signal - 1);
            }
        }
    }
    // (1.9) The stand-ins of group leaders that were reaped: their
    // groups now have their members (forked above, each in its group once
    // `spawn` returned); no exit signal, reaped here.
    for rec in tree.outer.tree_procs.iter() {
        if rec.parent == tree.index && rec.state == proc_state::GONE {
            let _ = crate::ksys::kill(rec.pid, SIGKILL as u32);
            let _ = crate::ksys::reap(rec.pid);
        }
    }
    crate::ksys::drain_signals(again);
    of_tree_fds(img);
    if tree.slots() > 0 {
        let _ = sys::close_range(base, tree.barrier_base() - 1);
    }
    for s in tree.outer.tree_slots.iter() {
        if ours(&s) && s.kind != slot_kind::HOLDER_FD {
            sys::close(s.holder_fd as usize);
        }
    }
    crate::external::close_tree_copies(tree.barrier_base() + 4);
}

/// The descriptors on other processes of the tree ((1.7) pidfds, (1.8)
/// procfs files, by their saved path: trees keep their pids), their
/// copies and the epoll items watching them. Every process of the tree is
/// forked (a zombie too, until its parent reaps it after the barrier)
/// before any resumes, so each saved pid comes to exist: wait for it. A
/// procfs file needs this process's `/proc` to show its PID namespace
/// (`/proc/self` names this process: in a new namespace the stub mounted
/// a `/proc` of its own, best effort).
fn of_tree_fds(img: &Image) {
    let v = img.view;
    let of_tree = kckpt_image::files::of_tree_process;
    if !v.fds.iter().any(|r| of_tree(&r)) {
        return;
    }
    let mut proc_checked = false;
    for r in v.fds.iter().filter(|r| r.dup_of == FD_NO_DUP && of_tree(r)) {
        let procfs = r.kind != self_fd_kind::PIDFD;
        if procfs && !core::mem::replace(&mut proc_checked, true) && !crate::ids::proc_is_ours() {
            crate::files::fail(
                img,
                &r,
                "a procfs file of another process of the tree: /proc here is not this PID namespace's (mounting it failed)",
                Errno(linux_raw_sys::errno::EXDEV),
            )
        }
        let open = || {
            if procfs {
                crate::files::open_again(&r, v.string(r.path).unwrap_or(&[]))
            } else {
                xsys::pidfd_open(r.args[1] as u32, r.flags & g::O_NONBLOCK)
            }
        };
        let mut tries = 0;
        let fd = loop {
            match open() {
                Err(Errno(linux_raw_sys::errno::ESRCH | linux_raw_sys::errno::ENOENT))
                    if tries < PIDFD_TRIES =>
                {
                    tries += 1;
                    crate::ksys::sleep_ms(10);
                }
                other => break other,
            }
        };
        let fd = fd.unwrap_or_else(|e| {
            let what = if procfs {
                "cannot open that procfs file of the tree again"
            } else {
                "cannot open a pidfd of that process of the tree"
            };
            crate::files::fail(img, &r, what, e)
        });
        crate::files::place(fd, &r)
            .unwrap_or_else(|e| crate::files::fail(img, &r, "cannot move it to its number", e));
    }
    for r in v.fds.iter().filter(|r| r.dup_of != FD_NO_DUP) {
        if crate::files::deferred(&v, r.dup_of) {
            crate::files::duplicate(img, &r);
        }
    }
    // Above the image's and the error descriptors (`files::restore`).
    let floor = img.fd + 2;
    for item in v.epoll.iter() {
        if crate::files::deferred(&v, crate::files::watched(&item)) {
            crate::files::watch(img, &item, floor);
        }
    }
}

/// Fork process `i` of the tree with its saved pid and exit signal; a
/// zombie ends at once with its wait status, a live one takes its session
/// and group and executes the stub as tree process `i`. Returns the pid.
pub fn spawn(outer: &ImageView<'_>, exec: Exec, i: u32) -> Result<usize, Errno> {
    let rec = outer.tree_procs.get(i as usize).unwrap_or_default();
    let mut tries = 0;
    let child = loop {
        match crate::threads::fork_with_pid_signal(rec.pid, rec.exit_signal) {
            // Its previous owner is a zombie: wait until it is reaped (on
            // some machines init reaps orphans about once a second).
            Err(Errno(linux_raw_sys::errno::EEXIST))
                if tries < ZOMBIE_TRIES && crate::ids::zombie(rec.pid) =>
            {
                tries += 1;
                crate::ksys::sleep_ms(50);
            }
            other => break other?,
        }
    };
    if child != 0 {
        // The group from this side too (as shells do), so that a sibling
        // forked next can join it whichever runs first.
        if rec.sid != rec.pid && joins_group(outer, &rec) {
            let _ = xsys::setpgid(rec.pid, rec.pgid);
        }
        return Ok(child);
    }
    if rec.state == proc_state::GONE {
        // (1.9) The group of a leader that was reaped: made, held until
        // the parent has forked its members, then killed (`after_files`).
        let _ = sys::close_from(0);
        let _ = sys::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        let _ = xsys::setpgid(0, 0);
        loop {
            crate::ksys::sleep_ms(1000);
        }
    }
    if rec.state == proc_state::ZOMBIE {
        let _ = sys::close_from(0);
        let mut name = rec.name;
        name[15] = 0;
        let _ = sys::set_name(&name);
        // A zombie may lead a group other processes of the tree are in.
        let _ = join_groups(outer, &rec);
        // Killed by a signal that dumps core: no core file of the stub.
        let _ = sys::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        sys::exit_like(rec.wait_status as i32);
    }
    let b = outer.tree.map_or(0, |t| t.slot_base + t.slots) as usize;
    // The coordinator's ends of the barrier: a tree process never holds
    // them (so a dead coordinator is an end of file on the go pipe).
    sys::close(b);
    sys::close(b + 3);
    let _ = sys::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if let Err(e) = join_groups(outer, &rec) {
        crate::report::tree_failures_to(b + 1, i);
        proc_msg(exec.path, i, rec.pid)
            .s(": cannot restore its session or process group")
            .errno(e)
            .fail();
    }
    exec_stub(exec, i);
    crate::report::tree_failures_to(b + 1, i);
    proc_msg(exec.path, i, rec.pid)
        .s(": cannot execute the stub (/proc/self/exe)")
        .fail()
}

/// setsid when it led its session, else setpgid when its group is led by
/// itself or another process of the tree; else it keeps its parent's.
fn join_groups(outer: &ImageView<'_>, rec: &TreeProcRecord) -> Result<(), Errno> {
    if rec.sid == rec.pid {
        xsys::setsid()?;
    } else if joins_group(outer, rec) {
        xsys::setpgid(0, rec.pgid)?;
    }
    Ok(())
}

/// Does `rec` lead its process group, or is it led by a process of the
/// tree (else it keeps its parent's group)?
fn joins_group(outer: &ImageView<'_>, rec: &TreeProcRecord) -> bool {
    rec.pgid == rec.pid || outer.tree_procs.iter().any(|p| p.pid == rec.pgid)
}

/// Execute the stub (`/proc/self/exe`) for tree process `i`: argv with
/// the absolute image path, the environment without `KCKPT_TREE_*` plus
/// `KCKPT_TREE_PROC=i` (`KCKPT_TREE_NS=<max id>` in a new PID namespace,
/// `KCKPT_TREE_USERNS=1` in a user namespace). Returns on failure.
#[allow(unsafe_code)] // Reading the initial stack's vectors.
fn exec_stub(exec: Exec, i: u32) {
    let mut argv = [0usize; MAX_ARGS + 1];
    let mut envp = [0usize; MAX_ENV + 3];
    let mut path = [0u8; 4097];
    // The new variables, alive until the execve.
    let (mut var, mut ns) = ([0u8; 40], [0u8; 40]);
    let mut digits = [0u8; 20];
    let mut via = [0u8; 40];
    let source = match exec.via_fd {
        Some(fd) => {
            let d = crate::report::decimal(fd.into(), &mut digits);
            let head = b"/proc/self/fd/";
            via[..head.len()].copy_from_slice(head);
            via[head.len()..head.len() + d.len()].copy_from_slice(d);
            &via[..head.len() + d.len()]
        }
        None => exec.path,
    };
    let n = source.len().min(4096);
    path[..n].copy_from_slice(&source[..n]);
    let path = if path[..n].last() == Some(&0) {
        &path[..n]
    } else {
        &path[..n + 1]
    };
    // SAFETY: `argv`/`envp` are the NULL-terminated vectors of the initial
    // stack, still mapped (children are forked before memory changes).
    unsafe {
        let mut p = exec.argv as *const usize;
        let mut a = 0;
        while *p != 0 && a < MAX_ARGS {
            argv[a] = if a == 1 { path.as_ptr() as usize } else { *p };
            a += 1;
            p = p.add(1);
        }
        let mut p = exec.envp as *const usize;
        let mut e = 0;
        while *p != 0 && e < MAX_ENV {
            let s = *p as *const u8;
            let prefix = b"KCKPT_TREE_";
            let ours = (0..prefix.len()).all(|k| core::ptr::read_volatile(s.add(k)) == prefix[k]);
            if !ours {
                envp[e] = *p;
                e += 1;
            }
            p = p.add(1);
        }
        envp[e] = env_var(&mut var, b"KCKPT_TREE_PROC=", i);
        e += 1;
        if exec.ns_max != 0 {
            envp[e] = env_var(&mut ns, b"KCKPT_TREE_NS=", exec.ns_max);
            e += 1;
        }
        if exec.userns {
            envp[e] = c"KCKPT_TREE_USERNS=1".as_ptr() as usize;
        }
    }
    crate::ksys::execve(
        b"/proc/self/exe\0",
        argv.as_ptr() as usize,
        envp.as_ptr() as usize,
    );
}

/// `NAME=value` + NUL in `buf`: its address.
fn env_var(buf: &mut [u8; 40], name: &[u8], value: u32) -> usize {
    let mut digits = [0u8; 20];
    let d = crate::report::decimal(value.into(), &mut digits);
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()..name.len() + d.len()].copy_from_slice(d);
    buf.as_ptr() as usize
}

/// A tree process, right before it resumes (every signal blocked): tell
/// the coordinator it is ready, wait for the go, close the barrier.
pub fn barrier(tree: &Tree) {
    let b = tree.barrier_base() as usize;
    let word = tree.index.to_le_bytes();
    crate::report::tree_failures_to(0, 0);
    let ready = sys::write(b + 1, &word);
    let mut go = [0u8; 1];
    let got = if ready.is_ok() {
        crate::ksys::read(b + 2, &mut go)
    } else {
        Ok(0)
    };
    sys::close(b + 1);
    sys::close(b + 2);
    if got != Ok(1) || go[0] != b'G' {
        // The coordinator failed or is gone: it said why.
        sys::exit(crate::report::EXIT_REFUSED);
    }
    if tree.me().parent != NO_PARENT {
        // Its parent is a process of the tree: nothing to stand in for.
        let _ = sys::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    }
}
