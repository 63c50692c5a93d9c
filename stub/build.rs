//! Link the stub as a static, non-PIE program at the fixed address of its
//! window (`layout::WINDOW_START`), without libc or start files.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" {
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch == "aarch64" {
        // Linked by rust-lld directly (.cargo/config.toml): plain ld flags.
        for arg in [
            "-static",
            "--image-base=0x6b6b00000000",
            "-z",
            "noexecstack",
            "--gc-sections",
            "--build-id=none",
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
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
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    // No unwind tables (panic = abort; nothing unwinds): ~6 KiB less.
    let script = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("no-unwind.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}
