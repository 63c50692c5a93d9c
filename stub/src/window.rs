//! The stub's fixed address window and the limits that follow from it.

/// The stub is linked at this address (see `build.rs`), far from where
/// Linux puts PIE programs, libraries, heaps and stacks.
pub const WINDOW_START: usize = 0x6b6b_0000_0000;
/// The stub's window: its program and `.bss` in the first half, scratch
/// mappings (frame, tracer handshake, moved vDSO) in the second. Saved VMAs
/// overlapping it are refused; the whole window is unmapped at the end.
pub const WINDOW_LEN: usize = 0x1000_0000;
/// End of the window.
pub const WINDOW_END: usize = WINDOW_START + WINDOW_LEN;
/// Bytes reserved for a thread's final signal frame (64 KiB).
pub const FRAME_LEN: usize = 0x1_0000;
/// Most threads an image may have (the main thread included).
pub const MAX_THREADS: usize = 512;
/// Highest user address (4-level paging).
pub const USER_TOP: usize = 0x7fff_ffff_f000;
