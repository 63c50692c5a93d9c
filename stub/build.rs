//! Link the stub as a static, non-PIE program at the fixed address of its
//! window (`kckpt_stub::window::WINDOW_START`), without libc, start files or
//! unwind tables.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" {
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // Unwind tables are dropped at link time (panic = "abort", no unwinder):
    // see no-unwind.ld.
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let no_unwind = dir.join("no-unwind.ld");
    println!("cargo:rerun-if-changed=no-unwind.ld");
    if arch == "aarch64" {
        // Linked by rust-lld directly (.cargo/config.toml): plain ld flags.
        for arg in [
            "-static",
            "--image-base=0x6b6b00000000",
            "-z",
            "noexecstack",
            "--gc-sections",
            "--build-id=none",
            "--no-eh-frame-hdr",
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
        println!("cargo:rustc-link-arg-bins=-T{}", no_unwind.display());
        return;
    }
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--image-base=0x6b6b00000000",
        "-Wl,-z,noexecstack",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        "-Wl,--no-eh-frame-hdr",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", no_unwind.display());
}
