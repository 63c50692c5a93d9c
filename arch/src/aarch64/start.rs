//! The process entry point of the stub on aarch64 (feature `entry`): calls
//! `kckpt_stub_main(initial_sp)`, which the stub defines.
#![allow(unsafe_code)] // The entry point is assembly.

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
