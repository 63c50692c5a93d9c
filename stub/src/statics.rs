//! Fixed buffers in `.bss` (the stub has no allocator): each is handed out
//! once as `&'static mut`, so the borrow checker guards the rest.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A zero-initialised byte buffer that can be taken once.
pub struct StaticBuf<const N: usize> {
    taken: AtomicBool,
    bytes: UnsafeCell<[u8; N]>,
}

// SAFETY: the bytes are reachable only through `take`, which hands out the
// one and only reference (the stub is single-threaded anyway).
unsafe impl<const N: usize> Sync for StaticBuf<N> {}

impl<const N: usize> StaticBuf<N> {
    /// A new, untaken buffer.
    pub const fn new() -> Self {
        StaticBuf {
            taken: AtomicBool::new(false),
            bytes: UnsafeCell::new([0; N]),
        }
    }

    /// The buffer, the first time; `None` afterwards.
    // The `taken` flag makes this the only reference to the bytes.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut [u8; N]> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `taken` was false, so no other reference exists and none
        // will be created.
        Some(unsafe { &mut *self.bytes.get() })
    }
}
