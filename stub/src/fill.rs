//! Reading large stored runs with several threads.
//!
//! Restoring memory is bound by the first touch of fresh pages and by the
//! copy out of the page cache, both per CPU. [`start`] creates up to
//! [`MAX_WORKERS`] helper threads (one fewer than the CPUs the stub may run
//! on); [`read`] splits a run of at least [`SPLIT_MIN`] bytes between them
//! and the calling thread; [`stop`] ends them before the process's own
//! threads are created. Without workers, [`read`] is a plain `pread`.
//! Each thread checks the chunks of its own share against their checksums
//! as it reads them (`data_check::read_checked`); shares start at chunk
//! boundaries.
#![allow(unsafe_code)] // Worker threads share the stub's memory.

use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use linux_raw_sys::general as g;

use crate::data_check::{read_checked, Expected, ReadError};
use crate::statics::StaticBuf;
use crate::sys::{self, Errno};
use crate::threads::THREAD_FLAGS;

/// Most helper threads.
pub const MAX_WORKERS: usize = 3;
/// Runs shorter than this are read by the calling thread alone.
pub const SPLIT_MIN: usize = 32 << 20;
const STACK_LEN: usize = 64 << 10;
const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;

const IDLE: u32 = 0;
const WORK: u32 = 1;
const DONE: u32 = 2;
const EXIT: u32 = 3;
const GONE: u32 = 4;

/// One worker's job and state.
struct Slot {
    state: AtomicU32,
    fd: AtomicUsize,
    dest: AtomicUsize,
    len: AtomicUsize,
    offset: AtomicU64,
    /// Expected chunk checksums of the share (`data_check::Expected`).
    sums_ptr: AtomicUsize,
    sums_len: AtomicUsize,
    chunk: AtomicUsize,
    /// Bytes read, or a negative errno, or [`CORRUPT`].
    result: AtomicI64,
    /// With [`CORRUPT`]: offset of the bad chunk in the share.
    bad_at: AtomicUsize,
    /// Non-zero while the thread exists: the kernel clears it when the
    /// thread has exited (`CLONE_CHILD_CLEARTID`).
    alive: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)] // Used only to build SLOTS.
const SLOT: Slot = Slot {
    state: AtomicU32::new(IDLE),
    fd: AtomicUsize::new(0),
    dest: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    offset: AtomicU64::new(0),
    sums_ptr: AtomicUsize::new(0),
    sums_len: AtomicUsize::new(0),
    chunk: AtomicUsize::new(0),
    result: AtomicI64::new(0),
    bad_at: AtomicUsize::new(0),
    alive: AtomicU32::new(0),
};
/// `Slot::result` of a share with a chunk that does not match.
const CORRUPT: i64 = i64::MIN;
static SLOTS: [Slot; MAX_WORKERS] = [SLOT; MAX_WORKERS];
static WORKERS: AtomicUsize = AtomicUsize::new(0);
static STACKS: StaticBuf<{ MAX_WORKERS * STACK_LEN }> = StaticBuf::new();

/// CPUs this process may run on (1 if unknown).
fn cpus() -> usize {
    let mut mask = [0u64; 16];
    match sys::sched_getaffinity(&mut mask) {
        Ok(_) => mask
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
            .max(1),
        Err(_) => 1,
    }
}

/// Start the helper threads (none on one CPU). Failures only mean fewer
/// helpers.
pub fn start() {
    let want = cpus().saturating_sub(1).min(MAX_WORKERS);
    let Some(stacks) = STACKS.take() else { return };
    let mut made = 0;
    for (i, slot) in SLOTS.iter().enumerate().take(want) {
        let top = stacks.as_ptr() as usize + (i + 1) * STACK_LEN;
        // SAFETY: the top of worker `i`'s own stack in `.bss`, used by
        // nothing else; `worker` never returns.
        let sp = unsafe { kckpt_arch::jump::thread_stack(top, worker, i) };
        let alive = &slot.alive;
        alive.store(1, Ordering::Release);
        let args = kckpt_arch::jump::clone_args_clearing_tid(
            THREAD_FLAGS as usize,
            sp,
            alive.as_ptr() as usize,
        );
        // SAFETY: a thread sharing this address space on the stack just
        // prepared; it only touches its slot and the memory it is told to
        // fill, and `stop` waits for its exit before the window can go.
        let r = unsafe { kckpt_arch::jump::clone_thread(g::__NR_clone as usize, args) };
        if r < 0 {
            alive.store(0, Ordering::Release);
            break;
        }
        made += 1;
    }
    WORKERS.store(made, Ordering::Release);
}

fn wait_while(word: &AtomicU32, value: u32) {
    while word.load(Ordering::Acquire) == value {
        let _ = sys::futex(word, FUTEX_WAIT, value);
    }
}

fn set(word: &AtomicU32, value: u32) {
    word.store(value, Ordering::Release);
    let _ = sys::futex(word, FUTEX_WAKE, 1);
}

extern "C" fn worker(i: usize) -> ! {
    let slot = &SLOTS[i];
    loop {
        wait_while(&slot.state, IDLE);
        match slot.state.load(Ordering::Acquire) {
            WORK => {
                // SAFETY: the main thread set these from a slice of the
                // checksum note, a static buffer that outlives the workers.
                let sums = unsafe {
                    core::slice::from_raw_parts(
                        slot.sums_ptr.load(Ordering::Acquire) as *const u8,
                        slot.sums_len.load(Ordering::Acquire),
                    )
                };
                let expected = Expected {
                    sums,
                    chunk: slot.chunk.load(Ordering::Acquire),
                };
                // SAFETY: the main thread handed this range of a freshly
                // created writable VMA to this worker alone and waits for
                // DONE before it touches the VMA again.
                let r = unsafe {
                    read_checked(
                        slot.fd.load(Ordering::Acquire),
                        slot.dest.load(Ordering::Acquire),
                        slot.len.load(Ordering::Acquire),
                        slot.offset.load(Ordering::Acquire),
                        expected,
                    )
                };
                let r = match r {
                    Ok(n) => n as i64,
                    Err(ReadError::Io(e)) => -i64::from(e.0),
                    Err(ReadError::Corrupt { at }) => {
                        slot.bad_at.store(at, Ordering::Release);
                        CORRUPT
                    }
                };
                slot.result.store(r, Ordering::Release);
                set(&slot.state, DONE);
            }
            EXIT => {
                set(&slot.state, GONE);
                sys::exit_thread(0);
            }
            _ => wait_while(&slot.state, DONE),
        }
    }
}

/// Read `len` bytes of `fd` at `offset` into memory at `dest`, split
/// between the workers when the run is large, each share checked against
/// `expected`; returns the bytes read, or the first error in address order.
///
/// # Safety
/// `[dest, dest + len)` must be writable memory nothing else uses.
pub unsafe fn read(
    fd: usize,
    dest: usize,
    len: usize,
    offset: u64,
    expected: Expected,
) -> Result<usize, ReadError> {
    let workers = WORKERS.load(Ordering::Acquire);
    if workers == 0 || len < SPLIT_MIN {
        // SAFETY: forwarded to the caller.
        return unsafe { read_checked(fd, dest, len, offset, expected) };
    }
    // Shares start at chunk boundaries (pages when nothing is checked).
    let align = expected.chunk.max(4096);
    let share = (len / (workers + 1)).next_multiple_of(align);
    for (i, slot) in SLOTS[..workers].iter().enumerate() {
        let at = ((i + 1) * share).min(len);
        let n = share.min(len - at);
        let part = expected.from(at);
        slot.fd.store(fd, Ordering::Release);
        slot.dest.store(dest + at, Ordering::Release);
        slot.len.store(n, Ordering::Release);
        slot.offset.store(offset + at as u64, Ordering::Release);
        slot.sums_ptr
            .store(part.sums.as_ptr() as usize, Ordering::Release);
        slot.sums_len.store(part.sums.len(), Ordering::Release);
        slot.chunk.store(part.chunk, Ordering::Release);
        set(&slot.state, WORK);
    }
    // SAFETY: the first share is the caller's range, not handed out.
    let mine = unsafe { read_checked(fd, dest, share.min(len), offset, expected) };
    let mut total = 0usize;
    let mut error = mine.err();
    for (i, slot) in SLOTS[..workers].iter().enumerate() {
        wait_while(&slot.state, WORK);
        let r = slot.result.load(Ordering::Acquire);
        slot.state.store(IDLE, Ordering::Release);
        let at = ((i + 1) * share).min(len);
        if r == CORRUPT {
            let bad = at + slot.bad_at.load(Ordering::Acquire);
            error = error.or(Some(ReadError::Corrupt { at: bad }));
        } else if r < 0 {
            error = error.or(Some(ReadError::Io(Errno((-r) as u32))));
        } else {
            total += r as usize;
        }
    }
    match (mine, error) {
        (_, Some(e)) => Err(e),
        (Ok(n), None) => Ok(n + total),
        (Err(e), None) => Err(e),
    }
}

/// End the workers and wait until they have exited: none may run stub
/// code once the window is unmapped.
pub fn stop() {
    let workers = WORKERS.swap(0, Ordering::AcqRel);
    for slot in &SLOTS[..workers] {
        set(&slot.state, EXIT);
    }
    for slot in &SLOTS[..workers] {
        loop {
            let v = slot.alive.load(Ordering::Acquire);
            if v == 0 {
                break;
            }
            let _ = sys::futex(&slot.alive, FUTEX_WAIT, v);
        }
    }
}
