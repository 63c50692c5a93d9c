//! SysV IPC objects (format 1.10: shared memory segments; 1.11:
//! semaphore sets and message queues): the objects the dumped processes
//! used, with their content, restored in a new IPC namespace under their
//! saved ids. Records, note types and their validation; `docs/FORMAT.md`
//! describes them.
//!
//! The tables are in the image of a tree's first process (or of the
//! single process). A memory area attached to a segment is a
//! `vma_flags::SYSV` VMA whose `inode` is the segment's id; it stores no
//! pages (the segment's content is stored once, here).

use crate::ghosts::ExtentRecord;
use crate::read::{read_record, FormatError, ImageView};
use crate::records::*;

/// Note type of the segment table: an array of [`SysvShmRecord`], sorted
/// by id.
pub const NT_KCKPT_SYSV_SHM: u32 = 0x4b43_0066;
/// Note type of the extents of the segments' content: an array of
/// [`ExtentRecord`] (`file_offset`: offset in the segment), partitioned
/// among the segments in order.
pub const NT_KCKPT_SYSV_EXTENTS: u32 = 0x4b43_0067;

/// Note type of the semaphore sets: an array of [`SysvSemRecord`], sorted
/// by id.
pub const NT_KCKPT_SYSV_SEM: u32 = 0x4b43_0068;
/// Note type of the semaphores' values: `u16` each (`semval`), the sets'
/// in order.
pub const NT_KCKPT_SYSV_SEM_VALUES: u32 = 0x4b43_0069;
/// Note type of the message queues: an array of [`SysvMsgQueueRecord`],
/// sorted by id.
pub const NT_KCKPT_SYSV_MSG: u32 = 0x4b43_006a;
/// Note type of the queued messages, the queues' in order, each queue's
/// oldest first: a [`MessageHeader`] then `len` bytes of text, padded
/// with zeros to a multiple of 8 (`mtype` and the text are the
/// `struct msgbuf` that `msgsnd` takes).
pub const NT_KCKPT_SYSV_MESSAGES: u32 = 0x4b43_006b;

/// First format minor with SysV segments.
pub const SYSV_SINCE_MINOR: u16 = 10;
/// First format minor with SysV semaphore sets and message queues.
pub const SEM_MSG_SINCE_MINOR: u16 = 11;
/// Most semaphore sets, and most message queues, an image may hold (the
/// kernel's default `semmni` and `msgmni`: 32000).
pub const MAX_SETS: usize = 32000;
/// Most semaphores in one set (the kernel's default `semmsl`).
pub const MAX_SEMS: u32 = 32000;
/// Largest value of a semaphore (`SEMVMX`).
pub const SEM_VALUE_MAX: u16 = 32767;
/// Most bytes of text of all the queued messages of an image together.
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;
/// Most segments an image may hold (the kernel's default `shmmni` is 4096).
pub const MAX_SEGMENTS: usize = 4096;
/// Largest segment size kept (1 TiB).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 40;

/// `SysvShmRecord::mode` bits besides the permission bits (0777), as
/// `shm_perm.mode` has them.
pub mod shm_mode {
    /// `SHM_DEST`: removed (`IPC_RMID`) while attached; its key reads 0.
    pub const DEST: u32 = 0o1000;
    /// `SHM_LOCKED`: locked in memory (`SHM_LOCK`).
    pub const LOCKED: u32 = 0o2000;
}

/// Every `SysvShmRecord::mode` bit.
pub const SHM_MODE_KNOWN: u32 = 0o777 | shm_mode::DEST | shm_mode::LOCKED;

/// One SysV shared memory segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysvShmRecord {
    /// Its id (`shmid`), what `/proc/PID/maps` shows as the inode.
    pub id: u32,
    /// Its key (`key_t`; 0 is `IPC_PRIVATE`, and the key of a removed one).
    pub key: u32,
    /// Size in bytes (`shm_segsz`).
    pub size: u64,
    /// `shm_perm.mode`: permission bits and [`shm_mode`] bits.
    pub mode: u32,
    /// Owner (`shm_perm.uid`).
    pub uid: u32,
    /// Group (`shm_perm.gid`).
    pub gid: u32,
    /// Index of its first [`ExtentRecord`] in `NT_KCKPT_SYSV_EXTENTS`.
    pub first_extent: u32,
    /// Number of extents; the rest of the segment is zeros.
    pub extent_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Reserved, zero.
    pub reserved2: [u64; 2],
}
// SAFETY: repr(C); 4+4+8 + 6*4 + 16 = 56, all fields naturally aligned, no
// padding.
unsafe impl Record for SysvShmRecord {}

/// One SysV semaphore set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysvSemRecord {
    /// Its id (`semid`).
    pub id: u32,
    /// Its key (0 is `IPC_PRIVATE`).
    pub key: u32,
    /// `sem_perm.mode`: permission bits (0777).
    pub mode: u32,
    /// Owner (`sem_perm.uid`).
    pub uid: u32,
    /// Group (`sem_perm.gid`).
    pub gid: u32,
    /// Number of semaphores (`sem_nsems`, at least 1).
    pub nsems: u32,
    /// Index of its first value in `NT_KCKPT_SYSV_SEM_VALUES`.
    pub first_value: u32,
    /// Reserved, zero.
    pub reserved: u32,
}
// SAFETY: repr(C); 8 * 4 = 32 bytes, no padding.
unsafe impl Record for SysvSemRecord {}

/// One SysV message queue.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysvMsgQueueRecord {
    /// Its id (`msqid`).
    pub id: u32,
    /// Its key (0 is `IPC_PRIVATE`).
    pub key: u32,
    /// `msg_perm.mode`: permission bits (0777).
    pub mode: u32,
    /// Owner (`msg_perm.uid`).
    pub uid: u32,
    /// Group (`msg_perm.gid`).
    pub gid: u32,
    /// Its messages: the next ones of `NT_KCKPT_SYSV_MESSAGES`.
    pub msg_count: u32,
    /// Most bytes of text it may hold (`msg_qbytes`).
    pub qbytes: u64,
    /// Reserved, zero.
    pub reserved: u64,
}
// SAFETY: repr(C); 6 * 4 + 2 * 8 = 40 bytes, the u64s at 24 and 32.
unsafe impl Record for SysvMsgQueueRecord {}

/// The header of one message in `NT_KCKPT_SYSV_MESSAGES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageHeader {
    /// Bytes of text.
    pub len: u64,
    /// Its type (`mtype`, at least 1).
    pub mtype: i64,
}
// SAFETY: repr(C); two 8-byte fields.
unsafe impl Record for MessageHeader {}

/// The messages of a `NT_KCKPT_SYSV_MESSAGES` note, in order: each
/// header with the offset of its `mtype` in `bytes` (where its
/// `struct msgbuf` starts) and its text; `None` for a truncated one.
pub fn messages(bytes: &[u8]) -> Messages<'_> {
    Messages { bytes, at: 0 }
}

/// Iterator of [`messages`].
pub struct Messages<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Option<(MessageHeader, usize, &'a [u8])>;
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.at..).filter(|r| !r.is_empty())?;
        let one = (|| {
            let h: MessageHeader = read_record(rest)?;
            let len = usize::try_from(h.len).ok()?;
            let text = rest.get(16..16usize.checked_add(len)?)?;
            let step = 16 + len.checked_next_multiple_of(8)?;
            Some((h, self.at + 8, text, step))
        })();
        match one {
            Some((h, mtype_at, text, step)) => {
                self.at += step;
                Some(Some((h, mtype_at, text)))
            }
            None => {
                self.at = self.bytes.len();
                Some(None)
            }
        }
    }
}

/// The values of semaphore set `s` (validated: in range).
pub fn values_of<'v>(view: &ImageView<'v>, s: &SysvSemRecord) -> &'v [u8] {
    let from = s.first_value as usize * 2;
    view.sysv_sem_values
        .get(from..from + s.nsems as usize * 2)
        .unwrap_or(&[])
}

/// The extents of segment `s`.
pub fn extents_of<'v>(
    view: &'v ImageView<'_>,
    s: &SysvShmRecord,
) -> impl Iterator<Item = ExtentRecord> + 'v {
    view.sysv_extents.span(s.first_extent, s.extent_count)
}

/// The segment with id `id`.
pub fn find(view: &ImageView<'_>, id: u64) -> Option<SysvShmRecord> {
    view.sysv_shm.iter().find(|s| u64::from(s.id) == id)
}

/// Is `vma` an attachment of a SysV segment?
pub fn is_attachment(vma: &VmaRecord) -> bool {
    vma.flags & vma_flags::SYSV != 0
}

/// Segments sorted by id, sizes and modes the kernel accepts, extents
/// partitioning the extent table inside each segment and the file; every
/// attachment a shared file mapping without stored pages inside its
/// segment (when the table is here: a sub-image of a tree has none, its
/// segments are in the tree's first image).
pub fn validate(view: &ImageView<'_>, file_len: u64) -> Result<(), FormatError> {
    let bad = |what| FormatError::BadField(what);
    let page = u64::from(view.header.page_size);
    let new_enough = view.header.format_minor >= SYSV_SINCE_MINOR;
    if !new_enough && (!view.sysv_shm.is_empty() || !view.sysv_extents.is_empty()) {
        return Err(bad("SysV segment: in an image older than 1.10"));
    }
    if view.sysv_shm.len() > MAX_SEGMENTS {
        return Err(bad("SysV segment: too many"));
    }
    let mut next = 0u32;
    let mut last_id = None;
    for s in view.sysv_shm.iter() {
        if s.reserved != 0
            || s.reserved2 != [0; 2]
            || s.mode & !SHM_MODE_KNOWN != 0
            || s.size == 0
            || s.size > MAX_SEGMENT_SIZE
            || s.id > i32::MAX as u32
            || last_id.is_some_and(|l| s.id <= l)
            || (s.mode & shm_mode::DEST != 0 && s.key != 0)
        {
            return Err(bad("SysV segment: bad id, size or mode"));
        }
        last_id = Some(s.id);
        next = crate::ghosts::extents_in_order(
            &view.sysv_extents,
            (s.first_extent, s.extent_count),
            next,
            (s.size, page, file_len),
            (
                "SysV segment: extents out of order",
                "SysV segment: bad extent",
            ),
        )?;
    }
    if next as usize != view.sysv_extents.len() {
        return Err(bad("SysV segment: extents out of order"));
    }
    for v in view.vmas.iter().filter(is_attachment) {
        if !new_enough
            || v.kind != vma_kind::FILE
            || v.flags & vma_flags::SHARED == 0
            || v.flags & vma_flags::GHOST != 0
            || v.run_count != 0
            || v.inode > i32::MAX as u64
        {
            return Err(bad("memory area: bad SysV attachment"));
        }
        if view.sysv_shm.is_empty() && view.tree.is_none() {
            // A sub-image: its tree's first image has the table.
            continue;
        }
        let seg = find(view, v.inode).ok_or(bad("memory area: no such SysV segment"))?;
        let end = v.file_pgoff.checked_add(v.end - v.start);
        if end.is_none_or(|e| e > seg.size.next_multiple_of(page)) {
            return Err(bad("memory area: past the end of its SysV segment"));
        }
    }
    validate_sem_msg(view)
}

/// Semaphore sets and message queues: sorted by id, modes and sizes the
/// kernel accepts, values and messages partitioning their notes.
fn validate_sem_msg(view: &ImageView<'_>) -> Result<(), FormatError> {
    let bad = |what| Err(FormatError::BadField(what));
    let any = !view.sysv_sem.is_empty()
        || !view.sysv_sem_values.is_empty()
        || !view.sysv_msg.is_empty()
        || !view.sysv_messages.is_empty();
    if any && view.header.format_minor < SEM_MSG_SINCE_MINOR {
        return bad("SysV semaphores or messages: in an image older than 1.11");
    }
    if view.sysv_sem.len() > MAX_SETS || view.sysv_msg.len() > MAX_SETS {
        return bad("SysV semaphores or messages: too many");
    }
    let (mut next, mut last) = (0u64, None);
    for s in view.sysv_sem.iter() {
        if s.reserved != 0
            || s.mode & !0o777 != 0
            || s.nsems == 0
            || s.nsems > MAX_SEMS
            || s.id > i32::MAX as u32
            || last.is_some_and(|l| s.id <= l)
            || u64::from(s.first_value) != next
        {
            return bad("SysV semaphore set: bad id, size, mode or values");
        }
        last = Some(s.id);
        next += u64::from(s.nsems);
    }
    let values = view.sysv_sem_values;
    if values.len() as u64 != next * 2
        || values
            .chunks_exact(2)
            .any(|v| u16::from_ne_bytes([v[0], v[1]]) > SEM_VALUE_MAX)
    {
        return bad("SysV semaphore set: bad values");
    }
    let mut msgs = messages(view.sysv_messages);
    let (mut last, mut total) = (None, 0u64);
    for q in view.sysv_msg.iter() {
        if q.reserved != 0
            || q.mode & !0o777 != 0
            || q.id > i32::MAX as u32
            || q.qbytes > i32::MAX as u64
            || last.is_some_and(|l| q.id <= l)
        {
            return bad("SysV message queue: bad id, size or mode");
        }
        last = Some(q.id);
        let mut bytes = 0u64;
        for _ in 0..q.msg_count {
            match msgs.next() {
                Some(Some((h, _, _))) if h.mtype >= 1 => bytes += h.len,
                _ => return bad("SysV message queue: bad message"),
            }
        }
        total += bytes;
        // What `msgsnd` accepts: as many bytes and messages as `qbytes`.
        if bytes > q.qbytes || u64::from(q.msg_count) > q.qbytes || total > MAX_MESSAGE_BYTES {
            return bad("SysV message queue: too many bytes");
        }
    }
    if msgs.next().is_some() {
        return bad("SysV message queue: bad message");
    }
    Ok(())
}
