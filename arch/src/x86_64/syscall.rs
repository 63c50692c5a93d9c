//! Raw Linux system calls on x86_64, for the libc-free stub.
#![allow(unsafe_code)] // The `syscall` instruction itself.

/// Issue system call `nr` with up to six arguments; returns the raw result
/// (a negative errno on failure).
///
/// # Safety
/// The call may do anything the kernel allows to this process: the caller
/// must pass arguments that are valid for `nr` (pointers to memory of the
/// right size, mappings that may be replaced, ...).
#[inline(always)]
pub unsafe fn raw_syscall(nr: usize, args: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; the asm clobbers only
    // rax (result), rcx and r11 (overwritten by `syscall`), and memory.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
