//! The process entry point of the stub on x86_64: `stub_entry_point!()`
//! defines `_start`, which calls `kckpt_stub_main(initial_sp)`. A macro, so
//! that only the crate invoking it (the stub) gets a `_start`: the dumper
//! links this crate with libc's start files.

/// Define `_start` in the invoking crate.
#[macro_export]
macro_rules! stub_entry_point {
    () => {
        core::arch::global_asm!(
            ".globl _start",
            ".type _start,@function",
            "_start:",
            "xor ebp, ebp",
            "mov rdi, rsp",
            "and rsp, -16",
            "call kckpt_stub_main",
            "ud2",
        );
    };
}
