//! Registers, inspects and removes entries in a binfmt_misc instance of a
//! fresh user namespace (Linux ≥ 6.7), so the machine's own registrations are
//! never touched.
//!
//! The test re-runs its own binary under
//! `unshare --user --map-root-user --mount`; the inner run does the work.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kckpt_binfmt::{entry_name, image_magic, register, status, unregister, BINFMT_MISC_DIR};
use kckpt_image::read::{EM_AARCH64, EM_X86_64};

/// Set in the environment of the inner run.
const INNER: &str = "KCKPT_BINFMT_TEST_INNER";

#[test]
fn registers_in_user_namespace() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(&exe)
        .args(["--exact", "registers_in_user_namespace", "--nocapture"])
        .env(INNER, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run unshare (util-linux); it is needed for this test");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("inner test run did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "inner run did not run the test:\n{text}"
    );
}

/// True when this process is in a user namespace other than the initial one.
fn in_child_user_namespace() -> bool {
    let map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

fn binfmt_mounted_here() -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(BINFMT_MISC_DIR))
}

fn inner() {
    assert!(
        in_child_user_namespace(),
        "refusing to touch binfmt_misc outside a child user namespace"
    );
    if binfmt_mounted_here() {
        // Inherited from the parent namespace: cover it with our own instance.
        nix::mount::mount(
            Some("binfmt_misc"),
            BINFMT_MISC_DIR,
            Some("binfmt_misc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount binfmt_misc in the user namespace (needs Linux >= 6.7)");
    }
    // Otherwise `register` mounts it (the path users hit on a fresh machine).

    let echo = which("echo");
    let echo_real = fs::canonicalize(&echo).unwrap();

    assert_eq!(status(EM_X86_64).unwrap(), None);
    assert!(!unregister(EM_X86_64).unwrap());

    register(EM_X86_64, &echo).unwrap();
    assert!(binfmt_mounted_here(), "register did not mount binfmt_misc");
    let st = status(EM_X86_64).unwrap().expect("registered entry");
    assert!(st.enabled);
    assert_eq!(Path::new(&st.interpreter), echo_real);
    assert_eq!(st.flags, "F");

    // The kernel's view of the magic and mask.
    let raw = fs::read_to_string(Path::new(BINFMT_MISC_DIR).join(entry_name(EM_X86_64))).unwrap();
    let hex: String = image_magic(EM_X86_64)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(raw.contains(&format!("magic {hex}")), "{raw}");
    assert!(raw.contains(&format!("mask {}", "ff".repeat(20))), "{raw}");
    assert!(raw.contains("offset 0"), "{raw}");

    // Registering again replaces the entry.
    let tru = which("true");
    register(EM_X86_64, &tru).unwrap();
    let st = status(EM_X86_64).unwrap().unwrap();
    assert_eq!(Path::new(&st.interpreter), fs::canonicalize(&tru).unwrap());
    register(EM_X86_64, &echo).unwrap();

    // The kernel runs a file starting with the magic through the interpreter,
    // and leaves a plain core file (no kckpt marker) alone.
    let dir = std::env::temp_dir().join(format!("kckpt-binfmt-test-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let image = dir.join("fake.kckpt");
    let mut bytes = image_magic(EM_X86_64).to_vec();
    bytes.resize(64, 0);
    write_exec(&image, &bytes);
    let out = Command::new(&image).output().expect("exec a fake image");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        image.to_str().unwrap(),
        "the interpreter should get the image path"
    );
    let core = dir.join("plain.core");
    bytes[9..16].fill(0);
    write_exec(&core, &bytes);
    let err = Command::new(&core).output().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOEXEC), "{err}");

    // The aarch64 entry is independent.
    register(EM_AARCH64, &echo).unwrap();
    assert!(status(EM_AARCH64).unwrap().is_some());
    assert!(unregister(EM_AARCH64).unwrap());

    assert!(unregister(EM_X86_64).unwrap());
    assert_eq!(status(EM_X86_64).unwrap(), None);
    assert!(!unregister(EM_X86_64).unwrap());
    let err = Command::new(&image).output().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOEXEC), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

fn write_exec(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn which(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found in /usr/bin or /bin");
}
