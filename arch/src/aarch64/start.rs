//! The process entry point of the stub on aarch64: `stub_entry_point!()`
//! defines `_start`, which calls `kckpt_stub_main(initial_sp)`. A macro, so
//! that only the crate invoking it (the stub) gets a `_start`: the dumper
//! links this crate with libc's start files.

/// Define `_start` in the invoking crate.
#[macro_export]
macro_rules! stub_entry_point {
    () => {
        core::arch::global_asm!(
            ".globl _start",
            ".type _start,%function",
            "_start:",
            "mov x29, xzr",
            "mov x30, xzr",
            "mov x0, sp",
            "and x1, x0, #-16",
            "mov sp, x1",
            "bl kckpt_stub_main",
            "udf #0",
        );
    };
}
