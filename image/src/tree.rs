//! Process trees (format 1.4): one image holding several processes.
//!
//! The image is the core file of the tree's first process (index 0, the
//! root: gdb opens it as that process), and that image's notes carry four
//! more tables:
//!
//! - `NT_KCKPT_TREE`: one [`TreeRecord`] (how many processes and slots,
//!   where the slot descriptors live, whose exit status is the image's);
//! - `NT_KCKPT_TREE_PROCS`: one [`TreeProcRecord`] per process, parents
//!   before their children; index 0 is the image itself, every other live
//!   process is a complete single-process image (sub-image) stored inside
//!   this file at `image_offset` (its own offsets are relative to its own
//!   start, so `kckpt extract` copies it out unchanged); zombies have no
//!   sub-image;
//! - `NT_KCKPT_TREE_SLOTS`: one [`TreeSlotRecord`] per open file
//!   description shared by several processes of the tree (a pipe end, a
//!   file opened before a `fork`...). At restore the slot's *holder*
//!   creates it before forking its children, at descriptor
//!   `slot_base + slot index`; children inherit it through `fork` and take
//!   it for their own descriptors;
//! - `NT_KCKPT_TREE_USES`: one [`TreeUseRecord`] per descriptor of a
//!   process that is a slot (`fd_kind` [`TREE_SHARED_FD_KIND`] in that
//!   process's own descriptor table), sorted by process then descriptor, so
//!   each process knows which slots its descendants still need.
//!
//! A single-process image has none of these notes (its layout is that of
//! format 1.3).

use crate::read::{FormatError, ImageView};
use crate::records::{Record, FD_NO_DUP};

/// Note type of the tree header: one [`TreeRecord`].
pub const NT_KCKPT_TREE: u32 = 0x4b43_0090;
/// Note type of the process table: an array of [`TreeProcRecord`].
pub const NT_KCKPT_TREE_PROCS: u32 = 0x4b43_0091;
/// Note type of the shared-description table: an array of [`TreeSlotRecord`].
pub const NT_KCKPT_TREE_SLOTS: u32 = 0x4b43_0092;
/// Note type of the slot uses: an array of [`TreeUseRecord`].
pub const NT_KCKPT_TREE_USES: u32 = 0x4b43_0093;

/// `FdRecord::kind` of a descriptor whose open file description is shared
/// with other processes of the tree: `args[0]` is the slot index; the
/// descriptor is a copy of the inherited slot descriptor. A standalone
/// (extracted) sub-image with such a descriptor is refused by the stub.
pub const TREE_SHARED_FD_KIND: u32 = 31;

/// Alignment of sub-images inside the file (the largest page size).
pub const SUB_IMAGE_ALIGN: u64 = 65536;
/// Most processes a tree may hold.
pub const MAX_PROCS: u32 = 4096;
/// Most slots a tree may hold.
pub const MAX_SLOTS: u32 = 65536;
/// `TreeProcRecord::parent` of a root: its parent is whoever restores.
pub const NO_PARENT: u32 = u32::MAX;
/// `TreeSlotRecord::holder` when the restorer (the process that ran the
/// image, or pid 1 of the new PID namespace) creates the slot before it
/// forks the roots: only for pipes.
pub const HOLDER_RESTORER: u32 = u32::MAX;

/// The tree header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeRecord {
    /// Number of processes (records in `NT_KCKPT_TREE_PROCS`), at least 2.
    pub procs: u32,
    /// Number of slots (records in `NT_KCKPT_TREE_SLOTS`).
    pub slots: u32,
    /// First descriptor number used for slots: above every descriptor of
    /// every process of the tree. Slot `k` is descriptor `slot_base + k`;
    /// the stub keeps its own coordination descriptors just above the
    /// slots (`slot_base + slots` and up).
    pub slot_base: u32,
    /// Index of the process whose end is the image's (`./IMAGE; echo $?`):
    /// the root for `kckpt dump -p`; for `--pgid` the last root in table
    /// order (the last stage of a pipeline, whose status a shell reports);
    /// for `--session` the session leader when it is in the tree, else the
    /// first root.
    pub status_proc: u32,
    /// `tree_flags::*`.
    pub flags: u32,
    /// Reserved, zero.
    pub reserved: [u32; 3],
}
// SAFETY: repr(C); 8 * 4 = 32, no padding.
unsafe impl Record for TreeRecord {}

/// `TreeRecord::flags`.
pub mod tree_flags {
    /// Dumped with `--pgid`.
    pub const PGID: u32 = 1 << 0;
    /// Dumped with `--session`.
    pub const SESSION: u32 = 1 << 1;
    /// Known bits.
    pub const KNOWN: u32 = PGID | SESSION;
}

/// `TreeProcRecord::state`.
pub mod proc_state {
    /// A live process with a sub-image.
    pub const LIVE: u32 = 1;
    /// A zombie (exited, not yet reaped by its parent): re-created as a
    /// child that ends at once with `wait_status`.
    pub const ZOMBIE: u32 = 2;
    /// (1.9) A process that had exited and been reaped, whose process
    /// group (its pid) processes of the tree are still in, every one of
    /// them a child of its parent (here): the parent forks it again, with
    /// no exit signal, to make the group (`setpgid` from both sides),
    /// forks its other children (who join the group), then kills and
    /// reaps it, so only the group remains, led by no process, as at
    /// dump. Fields as a zombie's, with `pgid` its pid, `sid` its
    /// parent's, `exit_signal` and `wait_status` 0.
    pub const GONE: u32 = 3;
}

/// One process of the tree.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeProcRecord {
    /// Its pid at dump time (the pid it gets back).
    pub pid: u32,
    /// Index of its parent in this table (lower than its own), or
    /// [`NO_PARENT`] for a root.
    pub parent: u32,
    /// Its process group id. A value that is not the pid of a process of
    /// the tree means "the restorer's".
    pub pgid: u32,
    /// Its session id; same rule as `pgid`.
    pub sid: u32,
    /// The signal its parent gets when it ends (`exit_signal`, normally
    /// SIGCHLD = 17; 0 for none).
    pub exit_signal: u32,
    /// `proc_state::*`.
    pub state: u32,
    /// ZOMBIE: the wait status its parent will read (`exit_code` of
    /// `/proc/PID/stat`); 0 for live processes.
    pub wait_status: u32,
    /// LIVE: its number of threads (as in its sub-image's header).
    pub threads: u32,
    /// LIVE, index > 0: file offset of its sub-image (a multiple of
    /// [`SUB_IMAGE_ALIGN`]); 0 for index 0 (this image) and zombies.
    pub image_offset: u64,
    /// LIVE, index > 0: length of the sub-image; 0 otherwise.
    pub image_len: u64,
    /// LIVE, index > 0: CRC-32C of the sub-image's `NT_KCKPT_CHECKSUMS`
    /// note descriptor (which covers all of its metadata and data), binding
    /// it to this image; 0 otherwise.
    pub image_sum: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Its command name (`comm`), NUL-padded.
    pub name: [u8; 16],
}
// SAFETY: repr(C); 8 * 4 + 2 * 8 + 2 * 4 + 16 = 72, no padding.
unsafe impl Record for TreeProcRecord {}

/// `TreeSlotRecord::kind`.
pub mod slot_kind {
    /// The read end of a pipe; `peer` is the slot of its write end (or
    /// `u32::MAX` when no process holds the write end). The holder creates
    /// both ends with `pipe2` and writes the bytes in flight
    /// (`data_offset`, `data_len`) into it.
    pub const PIPE_READ: u32 = 1;
    /// The write end of a pipe; `peer` is the slot of its read end (or
    /// `u32::MAX`). A pipe whose read end no process holds is created and
    /// its read end closed.
    pub const PIPE_WRITE: u32 = 2;
    /// The open file description of descriptor `holder_fd` of the holder,
    /// which restores it from its own image as any descriptor and copies
    /// it to the slot before it forks its children.
    pub const HOLDER_FD: u32 = 3;
    /// A memory object only the kernel holds (shared anonymous memory, a
    /// memfd, a SysV segment, a deleted file) that several processes of the
    /// tree map: `dev`/`inode` as in their VMA records, `size` its size.
    /// The holder creates one memfd of that size at the slot descriptor;
    /// every process maps its VMAs of that (`dev`, `inode`) from it (and
    /// writes its stored pages through them, before the barrier).
    pub const MEMORY: u32 = 4;
    /// The master of a pseudo-terminal pair held inside the tree (issue
    /// 9). The holder opens a new pair (`/dev/ptmx`), applies the
    /// [`PtyRecord`] stored at `data_offset` (`data_len` is its size):
    /// mode, window size, packet mode, then opens every `PTY_SLAVE` slot
    /// whose `peer` is this slot (`TIOCGPTPEER`) and locks the pair again
    /// when it was locked. `flags`: `O_NONBLOCK` of the master (read-write
    /// implied). (1.5) The record is followed by the bytes the master's
    /// reader had not read (`pipe_size` of them) and by the slave's unread
    /// input as it is written back (`size` bytes, see
    /// [`pty_inject_mode`]); `data_len` is the sum.
    pub const PTY_MASTER: u32 = 5;
    /// One open file description of the slave (`/dev/pts/N`) of the pair
    /// whose master is slot `peer`, opened by the same holder with `flags`
    /// (access mode and `O_NONBLOCK`).
    pub const PTY_SLAVE: u32 = 6;
    /// (1.5) An open file description of a regular file shared by
    /// processes that have no common ancestor holding it (`(a | b) 2> log`
    /// dumped with `--pgid`): held by the restorer only. The data (1 to
    /// 4095 bytes, no NUL) is its path; `flags` its access mode and status
    /// flags ([`FILE_SLOT_FLAGS`]); `size` its file position. Opened with
    /// those flags (never created nor truncated) and positioned before the
    /// roots are forked.
    pub const FILE: u32 = 7;
    /// (1.7) A named pipe that processes of the tree opened separately
    /// (several open file descriptions). Its data is the pipe's path
    /// (`size` bytes: 1 to 4095, no NUL) followed by its buffered bytes;
    /// `pipe_size` its capacity. The holder, an ancestor of every process
    /// that opened it, opens the path read-write and non-blocking, sets
    /// the capacity, writes the bytes and keeps it at the slot, unused,
    /// until its descendants have restored their descriptors (so the
    /// bytes live until every description is open again).
    pub const FIFO: u32 = 8;
    /// (1.7) One open file description of the named pipe of `FIFO` slot
    /// `peer` (an earlier slot of the same holder): the holder opens it
    /// through that slot (`/proc/self/fd/N`) with `flags` (access mode and
    /// `O_NONBLOCK`); its users take copies as of any slot.
    pub const FIFO_OPEN: u32 = 9;
    /// (1.7) One end of a connected Unix socket whose ends are held by
    /// different processes of the tree (a socketpair split by `fork`, a
    /// connection accepted in one process from a client in another, or a
    /// client whose connection a listener of the holder has not accepted
    /// yet). The holder, an ancestor of every user of both ends, restores
    /// the end from its own image as descriptor `holder_fd`, which is not
    /// one of its own descriptors (it numbers above them: its image holds
    /// the end only for the tree), with the rest of its Unix sockets (both
    /// ends of the pair, names, queues: fd kind 45), copies it to the slot
    /// before it forks its children, and closes `holder_fd` once they are
    /// forked. Fields as `HOLDER_FD`.
    pub const UNIX_END: u32 = 10;
    /// (1.9) An open file description of a memfd or of a deleted file
    /// that processes of the tree opened separately (through
    /// `/proc/PID/fd/N`, or by its name before it was deleted), held by a
    /// process other than the holder. The holder, an ancestor of every
    /// process opening that object, restores the object once with every
    /// description of it from its own image, this one as descriptor
    /// `holder_fd` above its own (a `TREE_ONLY` descriptor), copies it to
    /// the slot before it forks its children and closes `holder_fd` once
    /// they are forked, as for `UNIX_END`. Fields as `HOLDER_FD`.
    pub const ADOPTED: u32 = 11;
}

/// (1.5) Flags a `FILE` slot may have: access mode, `O_APPEND`,
/// `O_NONBLOCK`, `O_DSYNC`, `O_LARGEFILE`, `O_DIRECT`, `O_NOATIME`,
/// `O_SYNC`.
pub const FILE_SLOT_FLAGS: u32 =
    0o3 | 0o2000 | 0o4000 | 0o10000 | 0o100000 | 0o40000 | 0o1000000 | 0o4010000;

/// The saved state of a pseudo-terminal pair: the data of its
/// `PTY_MASTER` slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtyRecord {
    /// Mode and window size of the pair (`fd` and `flags` zero).
    pub term: crate::terminal::TerminalRecord,
    /// Its number at dump time (`/dev/pts/N`); the restored pair has the
    /// number the kernel gives it.
    pub index: u32,
    /// Packet mode (`TIOCGPKT`): 0 or 1.
    pub packet: u32,
    /// Locked (`TIOCGPTLCK`): 0 or 1.
    pub locked: u32,
    /// Index of the session leader whose controlling terminal the slave
    /// was (it takes it again with `TIOCSCTTY`), or [`NO_PARENT`].
    pub session: u32,
    /// The terminal's foreground process group (a pid of the tree), 0
    /// when it had no session. The first live process of that group in
    /// table order makes it the foreground group (`TIOCSPGRP`).
    pub fg_pgid: u32,
    /// (1.5) The slave's owner and permissions: [`PTY_OWNER_SAVED`] |
    /// its mode bits (`0o7777`), or 0 when not recorded (1.4 images).
    pub owner: u32,
    /// (1.5) The slave's owner uid (0 when `owner` is 0).
    pub uid: u32,
    /// (1.5) The slave's group (0 when `owner` is 0).
    pub gid: u32,
}

/// (1.5) Longest unread output of a pair's slave (bytes its master's
/// reader had not read: `TreeSlotRecord::pipe_size` of a `PTY_MASTER`
/// slot) and longest escaped unread input (`size`) an image may carry.
pub const PTY_MAX_OUT: u32 = 4096;
/// See [`PTY_MAX_OUT`].
pub const PTY_MAX_IN: u64 = 8192;

const ICANON: u32 = 0o2;
const IEXTEN: u32 = 0o100000;
const EXTPROC: u32 = 0o200000;
const VTIME: usize = 5;
const VMIN: usize = 6;
const VEOF: usize = 4;
const VEOL: usize = 11;
const VLNEXT: usize = 15;
const VEOL2: usize = 16;

/// (1.5) The literal-next character of [`pty_inject_mode`]: the first of
/// `0x16..=0x19` that is none of the saved mode's end-of-file and
/// end-of-line characters.
pub fn pty_lnext(t: &crate::terminal::TerminalRecord) -> u8 {
    let ends = [t.cc[VEOF], t.cc[VEOL], t.cc[VEOL2], b'\n'];
    (0x16u8..=0x19).find(|c| !ends.contains(c)).unwrap_or(0x16)
}

/// (1.5) The mode a pair's slave is given while its unread bytes are put
/// back (saved mode `t`): no input or output processing, no echo, no
/// signals, no flow control; in canonical mode (the saved `ICANON`), only
/// the saved end-of-file and end-of-line characters and
/// [`pty_lnext`] (with `IEXTEN`) are special, so a line written with
/// every other special byte escaped by it comes back as the same line.
pub fn pty_inject_mode(t: &crate::terminal::TerminalRecord) -> crate::terminal::TerminalRecord {
    let mut m = *t;
    m.iflag = 0;
    m.oflag = 0;
    let canon = t.lflag & ICANON != 0;
    m.lflag = (t.lflag & (ICANON | EXTPROC)) | if canon { IEXTEN } else { 0 };
    m.cc = [0; 32];
    if canon {
        m.cc[VEOF] = t.cc[VEOF];
        m.cc[VEOL] = t.cc[VEOL];
        m.cc[VEOL2] = t.cc[VEOL2];
        m.cc[VLNEXT] = pty_lnext(t);
    }
    m.cc[VMIN] = 1;
    m.cc[VTIME] = 0;
    m
}

/// (1.5) `TreeSlotRecord::flags` bit of a `PTY_MASTER` slot: the master
/// was closed everywhere (the slave descriptions are hung up). The holder
/// opens a new pair and its `PTY_SLAVE` slots, then closes the master,
/// which hangs them up; its `PtyRecord` is all zero but `index`.
pub const PTY_MASTER_CLOSED: u32 = 0x8000_0000;

/// [`PtyRecord::owner`]: the slave's uid, gid and mode were recorded.
pub const PTY_OWNER_SAVED: u32 = 0x8000_0000;
// SAFETY: repr(C); 96 + 8 * 4 = 128, no padding.
unsafe impl Record for PtyRecord {}

const _: () = assert!(core::mem::size_of::<PtyRecord>() == 128);

/// One open file description shared by several processes of the tree.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeSlotRecord {
    /// `slot_kind::*`.
    pub kind: u32,
    /// Index of the process that creates it (an ancestor of every process
    /// using it, or itself a user), or [`HOLDER_RESTORER`] (pipes only).
    pub holder: u32,
    /// HOLDER_FD: the holder's descriptor; PIPE_*: [`FD_NO_DUP`].
    pub holder_fd: u32,
    /// PIPE_*: the other end's slot, or `u32::MAX`.
    pub peer: u32,
    /// PIPE_*: file status flags of this end (`O_NONBLOCK`, `O_DIRECT`;
    /// access mode implied); HOLDER_FD: 0.
    pub flags: u32,
    /// PIPE_READ: the pipe's capacity in bytes (`F_GETPIPE_SZ`), 0 when
    /// not recorded; 0 otherwise.
    pub pipe_size: u32,
    /// PIPE_READ: file offset of the bytes in flight (read by nobody yet),
    /// in this image; 0 otherwise.
    pub data_offset: u64,
    /// PIPE_READ: their length (at most `pipe_size`); 0 otherwise.
    pub data_len: u64,
    /// MEMORY: the object's device at dump time; 0 otherwise.
    pub dev: u64,
    /// MEMORY: its inode at dump time; 0 otherwise.
    pub inode: u64,
    /// MEMORY: its size in bytes (a multiple of the page size); 0 otherwise.
    pub size: u64,
}
// SAFETY: repr(C); 6 * 4 + 5 * 8 = 64, no padding.
unsafe impl Record for TreeSlotRecord {}

/// One descriptor of one process that is a slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeUseRecord {
    /// Index of the process.
    pub proc: u32,
    /// Its descriptor (a `TREE_SHARED_FD_KIND` record of its image).
    pub fd: u32,
    /// The slot.
    pub slot: u32,
    /// Reserved, zero.
    pub reserved: u32,
}
// SAFETY: repr(C); 4 * 4 = 16, no padding.
unsafe impl Record for TreeUseRecord {}

/// Is process `a` (an index) `b` or an ancestor of `b`?
pub fn is_ancestor_or_self(view: &ImageView<'_>, a: u32, mut b: u32) -> bool {
    let procs = view.tree_procs;
    for _ in 0..=procs.len() {
        if a == b {
            return true;
        }
        match procs.get(b as usize) {
            Some(p) if p.parent != NO_PARENT => b = p.parent,
            _ => return false,
        }
    }
    false
}

/// The tree tables are all present or all absent; when present: at least
/// two processes, process 0 is this image (its pid, a root, live), parents
/// come before children, pids unique and non-zero, sub-images aligned,
/// inside the file and not overlapping this image's own metadata
/// (`meta_start`: the lowest offset of this image's notes or program
/// headers), zombies without sub-image; slots of known kinds, held by an
/// ancestor of every user (the restorer only for pipes), pipe peers
/// consistent, pipe data inside the file; uses sorted, naming live
/// processes, slots and slot-base-bounded descriptors.
pub fn validate(view: &ImageView<'_>, file_len: u64) -> Result<(), FormatError> {
    let bad = FormatError::BadField("process tree");
    let Some(t) = view.tree else {
        if view.tree_procs.is_empty() && view.tree_slots.is_empty() && view.tree_uses.is_empty() {
            return Ok(());
        }
        return Err(bad);
    };
    let procs = view.tree_procs;
    let slots = view.tree_slots;
    // A tree of one process (1.5): a process alone that holds a
    // pseudo-terminal pair.
    let one_ok = slots.iter().any(|s| s.kind == slot_kind::PTY_MASTER);
    if t.procs < 1
        || (t.procs == 1 && !one_ok)
        || t.procs > MAX_PROCS
        || procs.len() != t.procs as usize
        || t.slots > MAX_SLOTS
        || slots.len() != t.slots as usize
        || t.flags & !tree_flags::KNOWN != 0
        || t.reserved != [0; 3]
        || t.status_proc >= t.procs
        || u64::from(t.slot_base) + u64::from(t.slots) + 8 > u64::from(crate::files::MAX_FD)
    {
        return Err(bad);
    }
    for (i, p) in procs.iter().enumerate() {
        let i = i as u32;
        let root_ok = if i == 0 {
            p.parent == NO_PARENT
                && p.pid == view.header.pid
                && p.state == proc_state::LIVE
                && p.image_offset == 0
                && p.image_len == 0
                && p.threads == view.header.thread_count
        } else {
            p.parent == NO_PARENT || p.parent < i
        };
        let state_ok = match p.state {
            proc_state::LIVE if i > 0 => {
                p.wait_status == 0
                    && p.threads >= 1
                    && p.image_offset.is_multiple_of(SUB_IMAGE_ALIGN)
                    && p.image_offset > 0
                    && p.image_len > 0
                    && p.image_offset
                        .checked_add(p.image_len)
                        .is_some_and(|e| e <= file_len)
            }
            proc_state::LIVE => true,
            proc_state::ZOMBIE => {
                i > 0
                    && p.parent != NO_PARENT
                    && p.threads == 0
                    && p.image_offset == 0
                    && p.image_len == 0
                    && p.image_sum == 0
                    && p.wait_status <= 0xffff
            }
            proc_state::GONE => {
                let parent = procs.get(p.parent as usize);
                let members = || procs.iter().filter(|q| q.pgid == p.pid && q.pid != p.pid);
                view.header.format_minor >= 9
                    && i > 0
                    && parent.is_some_and(|q| q.sid == p.sid && q.pgid != p.pid)
                    && p.threads == 0
                    && p.image_offset == 0
                    && p.image_len == 0
                    && p.image_sum == 0
                    && p.wait_status == 0
                    && p.exit_signal == 0
                    && p.pgid == p.pid
                    && members().count() > 0
                    && members().all(|q| q.parent == p.parent && q.state != proc_state::GONE)
                    && procs.iter().take(i as usize).all(|q| q.pgid != p.pid)
            }
            _ => false,
        };
        if !root_ok
            || !state_ok
            || p.pid <= 1
            || p.exit_signal > 64
            || p.reserved != 0
            || procs.iter().take(i as usize).any(|q| q.pid == p.pid)
        {
            return Err(bad);
        }
        if p.parent != NO_PARENT
            && procs
                .get(p.parent as usize)
                .is_none_or(|q| q.state != proc_state::LIVE)
        {
            return Err(bad);
        }
    }
    // Sub-images do not overlap each other.
    for (i, a) in procs.iter().enumerate().filter(|(_, p)| p.image_len > 0) {
        for b in procs.iter().skip(i + 1).filter(|p| p.image_len > 0) {
            if a.image_offset < b.image_offset + b.image_len
                && b.image_offset < a.image_offset + a.image_len
            {
                return Err(bad);
            }
        }
    }
    for (k, s) in slots.iter().enumerate() {
        let holder_ok = s.holder == HOLDER_RESTORER
            || procs
                .get(s.holder as usize)
                .is_some_and(|p| p.state == proc_state::LIVE);
        // The slot's stored bytes lie inside the file.
        let data_in_file = s
            .data_offset
            .checked_add(s.data_len)
            .is_some_and(|e| e <= file_len);
        let kind_ok = match s.kind {
            slot_kind::PIPE_READ | slot_kind::PIPE_WRITE => {
                let peer_ok = s.peer == u32::MAX
                    || slots.get(s.peer as usize).is_some_and(|o| {
                        o.peer == k as u32
                            && o.holder == s.holder
                            && o.kind
                                == if s.kind == slot_kind::PIPE_READ {
                                    slot_kind::PIPE_WRITE
                                } else {
                                    slot_kind::PIPE_READ
                                }
                    });
                let data_ok = if s.kind == slot_kind::PIPE_READ {
                    data_in_file && (s.pipe_size == 0 || s.data_len <= u64::from(s.pipe_size))
                } else {
                    s.data_offset == 0 && s.data_len == 0 && s.pipe_size == 0
                };
                peer_ok
                    && data_ok
                    && s.holder_fd == FD_NO_DUP
                    && s.flags & !0o44000 == 0
                    && (s.dev, s.inode, s.size) == (0, 0, 0)
            }
            slot_kind::HOLDER_FD | slot_kind::UNIX_END | slot_kind::ADOPTED => {
                let since = match s.kind {
                    slot_kind::UNIX_END => 7,
                    slot_kind::ADOPTED => 9,
                    _ => 4,
                };
                view.header.format_minor >= since
                    && s.holder != HOLDER_RESTORER
                    && s.holder_fd < t.slot_base
                    && s.peer == u32::MAX
                    && s.flags == 0
                    && s.pipe_size == 0
                    && s.data_offset == 0
                    && s.data_len == 0
                    && (s.dev, s.inode, s.size) == (0, 0, 0)
            }
            slot_kind::PTY_MASTER => {
                s.holder_fd == FD_NO_DUP
                    && s.peer == u32::MAX
                    && s.flags & !(0o4000 | PTY_MASTER_CLOSED) == 0
                    && (s.flags & PTY_MASTER_CLOSED == 0 || (s.pipe_size, s.size) == (0, 0))
                    && s.pipe_size <= PTY_MAX_OUT
                    && s.size <= PTY_MAX_IN
                    && s.data_len
                        == core::mem::size_of::<PtyRecord>() as u64
                            + u64::from(s.pipe_size)
                            + s.size
                    && data_in_file
                    && (s.dev, s.inode) == (0, 0)
            }
            slot_kind::PTY_SLAVE => {
                s.holder_fd == FD_NO_DUP
                    && slots
                        .get(s.peer as usize)
                        .is_some_and(|m| m.kind == slot_kind::PTY_MASTER && m.holder == s.holder)
                    && s.flags & !0o4003 == 0
                    && s.flags & 3 != 3
                    && s.pipe_size == 0
                    && s.data_offset == 0
                    && s.data_len == 0
                    && (s.dev, s.inode, s.size) == (0, 0, 0)
            }
            slot_kind::FILE => {
                s.holder == HOLDER_RESTORER
                    && s.holder_fd == FD_NO_DUP
                    && s.peer == u32::MAX
                    && s.flags & !FILE_SLOT_FLAGS == 0
                    && s.flags & 3 != 3
                    && s.pipe_size == 0
                    && (1..4096).contains(&s.data_len)
                    && data_in_file
                    && (s.dev, s.inode) == (0, 0)
                    && s.size <= i64::MAX as u64
            }
            slot_kind::FIFO => {
                view.header.format_minor >= 7
                    && s.holder != HOLDER_RESTORER
                    && s.holder_fd == FD_NO_DUP
                    && s.peer == u32::MAX
                    && s.flags == 0
                    && (1..4096).contains(&s.size)
                    && s.data_len >= s.size
                    && s.data_len - s.size <= u64::from(s.pipe_size)
                    && data_in_file
                    && (s.dev, s.inode) == (0, 0)
            }
            slot_kind::FIFO_OPEN => {
                view.header.format_minor >= 7
                    && s.holder_fd == FD_NO_DUP
                    && (s.peer as usize) < k
                    && slots
                        .get(s.peer as usize)
                        .is_some_and(|f| f.kind == slot_kind::FIFO && f.holder == s.holder)
                    && s.flags & !0o4003 == 0
                    && s.flags & 3 != 3
                    && s.pipe_size == 0
                    && s.data_offset == 0
                    && s.data_len == 0
                    && (s.dev, s.inode, s.size) == (0, 0, 0)
            }
            slot_kind::MEMORY => {
                s.holder != HOLDER_RESTORER
                    && s.holder_fd == FD_NO_DUP
                    && s.peer == u32::MAX
                    && s.flags == 0
                    && s.pipe_size == 0
                    && s.data_offset == 0
                    && s.data_len == 0
                    && s.size > 0
                    && s.size.is_multiple_of(u64::from(view.header.page_size))
                    && s.size <= 1 << 47
            }
            _ => false,
        };
        if !holder_ok || !kind_ok {
            return Err(bad);
        }
    }
    let mut prev: Option<(u32, u32)> = None;
    for u in view.tree_uses.iter() {
        let Some(s) = slots.get(u.slot as usize) else {
            return Err(bad);
        };
        let live = procs
            .get(u.proc as usize)
            .is_some_and(|p| p.state == proc_state::LIVE);
        let held = s.holder == HOLDER_RESTORER || is_ancestor_or_self(view, s.holder, u.proc);
        if !live
            || !held
            || u.fd >= t.slot_base
            || u.reserved != 0
            || prev.is_some_and(|p| (u.proc, u.fd) <= p)
        {
            return Err(bad);
        }
        prev = Some((u.proc, u.fd));
    }
    // Process 0's own shared descriptors match its uses.
    for r in view.fds.iter() {
        if r.kind == TREE_SHARED_FD_KIND && r.dup_of == FD_NO_DUP {
            let listed = view
                .tree_uses
                .iter()
                .any(|u| u.proc == 0 && u.fd == r.fd && u64::from(u.slot) == r.args[0]);
            if !listed || r.args[1..] != [0; 3] {
                return Err(bad);
            }
        }
    }
    Ok(())
}
