//! The process entry point of the stub on x86_64 (feature `entry`): calls
//! `kckpt_stub_main(initial_sp)`, which the stub defines.
#![allow(unsafe_code)] // The entry point is assembly.

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
