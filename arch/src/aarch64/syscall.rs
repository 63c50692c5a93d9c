//! Raw Linux system calls on aarch64, for the libc-free stub.
#![allow(unsafe_code)] // The `svc` instruction itself.

/// Issue system call `nr` with up to six arguments; returns the raw result
/// (a negative errno on failure).
///
/// # Safety
/// The call may do anything the kernel allows to this process: the caller
/// must pass arguments that are valid for `nr`.
#[inline(always)]
pub unsafe fn raw_syscall(nr: usize, args: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; x0 carries the result.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") args[0] as isize => ret,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            in("x5") args[5],
            options(nostack),
        );
    }
    ret
}
