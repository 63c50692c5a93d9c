//! Every refusal is clean: a non-zero exit, exactly one stderr line starting
//! with `kckpt: ` that says what is wrong, and no panic. Dump side: no such
//! pid, a pid the caller may not trace, a missing output directory, a full
//! disk. Restore side, through `kckpt restore` and through the stub itself
//! (which exits 126): truncated, corrupted, a plain core dump, not ELF,
//! another architecture, another format version, CPU features this machine
//! lacks.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use kckpt_image::records::{
    ImageHeader, FORMAT_MAJOR, NOTE_OWNER, NT_KCKPT_HEADER, NT_KCKPT_RUNS, NT_KCKPT_VMAS,
};

use common::*;

/// Exit status of the stub when it refuses an image.
const STUB_REFUSES: i32 = 126;
/// Time allowed for a refusal; a wrongly accepted image runs forever.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(20);

/// A valid counter image shared by the restore-side tests (read-only).
fn good_image() -> &'static Vec<u8> {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = TestDir::new("errors-base");
        let path = dir.join("counter.kckpt");
        counter_dumped(prog::COUNTER_PIE, &path, 2);
        fs::read(&path).expect("read image")
    })
}

/// Write `bytes` as an image and check that both `kckpt restore` and
/// `kckpt-stub` refuse it cleanly with a message naming one of `keywords`.
fn both_refuse(name: &str, bytes: &[u8], keywords: &[&str]) {
    let dir = TestDir::new(name);
    let path = dir.join("bad.kckpt");
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    refuse_file(name, &path, keywords);
}

fn refuse_file(name: &str, path: &Path, keywords: &[&str]) {
    let out = run(
        Command::new(kckpt()).arg("restore").arg(path),
        REFUSE_TIMEOUT,
    );
    assert_refused(&format!("kckpt restore ({name})"), &out, None, keywords);
    let out = run(Command::new(stub()).arg(path), REFUSE_TIMEOUT);
    assert_refused(
        &format!("kckpt-stub ({name})"),
        &out,
        Some(STUB_REFUSES),
        keywords,
    );
}

// ---- restore side ----

#[test]
fn truncated_image_is_refused() {
    let img = good_image();
    both_refuse("truncated-half", &img[..img.len() / 2], &["truncated"]);
    both_refuse("truncated-40", &img[..40], &["truncated"]);
    let ph_end = 64 + 56; // the ELF header and part of the program headers
    both_refuse("truncated-phdrs", &img[..ph_end], &["truncated"]);
}

#[test]
fn corrupted_notes_are_refused() {
    let img = good_image();
    let corrupt = ["corrupt", "truncated"];

    // The header note's descsz runs past the note segment.
    let hdr = note_desc_range(img, NOTE_OWNER, NT_KCKPT_HEADER);
    let mut bad = img.clone();
    // Note header: namesz, descsz, type, then "KCKPT\0" padded to 8 bytes.
    let descsz_at = hdr.start - 8 - 8;
    bad[descsz_at..descsz_at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    both_refuse("corrupt-descsz", &bad, &corrupt);

    // The header magic.
    let mut bad = img.clone();
    bad[hdr.start] ^= 0xff;
    both_refuse("corrupt-magic", &bad, &corrupt);

    // Every byte of the VMA table flipped.
    let vmas = note_desc_range(img, NOTE_OWNER, NT_KCKPT_VMAS);
    let mut bad = img.clone();
    bad[vmas].iter_mut().for_each(|b| *b ^= 0xff);
    both_refuse("corrupt-vmas", &bad, &corrupt);

    // A stored run pointing far past the end of the file.
    let runs = note_desc_range(img, NOTE_OWNER, NT_KCKPT_RUNS);
    assert!(runs.len() >= 24, "the image stores no memory");
    let mut bad = img.clone();
    let offset_at = runs.start + 16; // RunRecord::offset
    bad[offset_at..offset_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    both_refuse("corrupt-run", &bad, &corrupt);
}

#[test]
fn plain_core_dump_is_refused() {
    let gcore = require_tool("gcore");
    let dir = TestDir::new("gcore");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.wait_for("count 2", LINE_TIMEOUT, |l| l.starts_with("count 2 "));
    let prefix = dir.join("core");
    let out = run(
        Command::new(gcore)
            .arg("-o")
            .arg(&prefix)
            .arg(p.pid().to_string()),
        CMD_TIMEOUT,
    );
    assert!(out.status.success(), "gcore failed: {}", show(&out));
    p.kill();
    let core = PathBuf::from(format!("{}.{}", prefix.display(), p.pid()));
    assert!(core.is_file(), "gcore wrote no {}", core.display());
    refuse_file("gcore", &core, &["core dump", "not a kckpt image"]);
}

#[test]
fn non_elf_file_is_refused() {
    let text = "this is not a kckpt image\n".repeat(200);
    both_refuse(
        "non-elf",
        text.as_bytes(),
        &["not a kckpt image", "not an elf"],
    );
}

#[test]
fn image_for_another_architecture_is_refused() {
    let mut bad = good_image().clone();
    bad[18..20].copy_from_slice(&183u16.to_le_bytes()); // e_machine = EM_AARCH64
                                                        // Checksums recomputed: an image that says aarch64, not a corrupt one.
    kckpt_image_write::reseal(&mut bad).expect("reseal");
    both_refuse("aarch64", &bad, &["architecture"]);
}

#[test]
fn other_format_version_is_refused() {
    let img = good_image();
    let hdr = note_desc_range(img, NOTE_OWNER, NT_KCKPT_HEADER);
    let at = hdr.start + std::mem::offset_of!(ImageHeader, format_major);
    let mut bad = img.clone();
    bad[at..at + 2].copy_from_slice(&(FORMAT_MAJOR + 1).to_le_bytes());
    both_refuse("version", &bad, &["version"]);
}

/// An XCR0 bit of a user state component this CPU does not have, given
/// this CPU's XCR0 (the image was saved here): MPX (3, 4), AVX-512 (5-7),
/// PKRU (9), AMX (17, 18), APX (19) — no CPU has all of them.
fn missing_xstate_bit(xcr0: u64) -> u64 {
    [3u32, 4, 5, 6, 7, 9, 17, 18, 19]
        .iter()
        .map(|&b| 1u64 << b)
        .find(|bit| xcr0 & bit == 0)
        .unwrap_or_else(|| panic!("XCR0 {xcr0:#x} has every user xstate feature kckpt knows"))
}

#[test]
fn xstate_features_this_cpu_lacks_are_refused() {
    let img = good_image();
    let hdr = note_desc_range(img, NOTE_OWNER, NT_KCKPT_HEADER);
    let at = hdr.start + std::mem::offset_of!(ImageHeader, xcr0);
    let mut bad = img.clone();
    let xcr0 = u64::from_le_bytes(bad[at..at + 8].try_into().unwrap());
    assert_ne!(xcr0 & 0x3, 0, "the image's xcr0 {xcr0:#x} lacks x87/SSE");
    bad[at..at + 8].copy_from_slice(&(xcr0 | missing_xstate_bit(xcr0)).to_le_bytes());
    // A consistent image (checksums recomputed) whose CPU features differ.
    kckpt_image_write::reseal(&mut bad).expect("reseal");
    both_refuse("xstate", &bad, &["cpu", "xstate", "feature", "xcr0"]);
}

#[test]
fn missing_image_file_is_refused() {
    let out = run(
        Command::new(kckpt())
            .arg("restore")
            .arg("/nonexistent/kckpt-image"),
        REFUSE_TIMEOUT,
    );
    assert_refused(
        "kckpt restore of a missing file",
        &out,
        None,
        &["/nonexistent/kckpt-image"],
    );
    let out = run(
        Command::new(stub()).arg("/nonexistent/kckpt-image"),
        REFUSE_TIMEOUT,
    );
    assert_refused(
        "kckpt-stub of a missing file",
        &out,
        Some(STUB_REFUSES),
        &["no such file", "/nonexistent/kckpt-image"],
    );
}

// ---- dump side ----

/// The target of a failed dump must still run: not stopped, not dead.
fn assert_still_running(p: &mut Proc) {
    if let Some(status) = p.exited() {
        p.fail(&format!(
            "the dump target died ({status}) after a failed dump"
        ));
    }
    match state(p.pid()) {
        Some('S' | 'R') => {}
        other => p.fail(&format!("the dump target was left in state {other:?}")),
    }
    p.line(LINE_TIMEOUT);
}

#[test]
fn dump_of_nonexistent_pid_is_refused() {
    let dir = TestDir::new("no-pid");
    let pid_max: i32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = (2..pid_max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let out = dump_raw(pid, &dir.join("x.kckpt"), false);
    assert_refused("dump of a missing pid", &out, None, &[&pid.to_string()]);
    assert!(!dir.join("x.kckpt").exists());
}

#[test]
fn dump_of_untraceable_pid_is_refused() {
    require_tool("setpriv");
    let dir = TestDir::new("untraceable");
    // Writable for the unprivileged user: only tracing may fail.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.line(LINE_TIMEOUT);
    let image = dir.join("x.kckpt");
    let out = run(
        kckpt_as(&NOBODY)
            .args(["dump", "-p", &p.pid().to_string(), "-o"])
            .arg(&image),
        CMD_TIMEOUT,
    );
    assert_refused(
        "dump as nobody of a root process",
        &out,
        None,
        &["permission", "not permitted"],
    );
    assert!(!image.exists(), "an image was written");
    assert_still_running(&mut p);
}

#[test]
fn dump_into_missing_directory_is_refused() {
    let dir = TestDir::new("no-dir");
    let mut p = Proc::start(prog::COUNTER_PIE, &[]);
    p.line(LINE_TIMEOUT);
    let image = dir.join("missing/x.kckpt");
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(
        "dump into a missing directory",
        &out,
        None,
        &[dir.join("missing").to_str().unwrap()],
    );
    assert_still_running(&mut p);
}

#[test]
fn dump_onto_full_disk_is_refused_and_leaves_no_file() {
    require_tool("unshare");
    let dir = TestDir::new("disk-full");
    let small = dir.join("small");
    fs::create_dir(&small).unwrap();
    let err = dir.join("kckpt.err");
    let script = r#"
        mount -t tmpfs -o size=64k tmpfs "$SMALL" || { echo "mount failed"; exit 90; }
        "$MEMFILL" 64 > "$LOG" &
        pid=$!
        i=0
        until grep -q '^round 1 ' "$LOG"; do
            i=$((i + 1))
            if [ $i -gt 600 ]; then echo "memfill not ready"; kill -9 $pid; exit 91; fi
            sleep 0.1
        done
        "$KCKPT" dump -p $pid -o "$SMALL/mem.kckpt" 2> "$ERR"
        echo "rc=$?"
        grep '^State:' /proc/$pid/status
        kill -9 $pid
        wait $pid 2>/dev/null
        echo "files=[$(ls -A "$SMALL" | tr '\n' ' ')]"
    "#;
    let out = run(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .env("SMALL", &small)
            .env("MEMFILL", prog::MEMFILL)
            .env("LOG", dir.join("memfill.log"))
            .env("ERR", &err)
            .env("KCKPT", kckpt()),
        Duration::from_secs(180),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", show(&out));
    let dump_out = std::process::Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(
            text.lines()
                .find_map(|l| l.strip_prefix("rc="))
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or_else(|| panic!("no rc line: {}", show(&out)))
                << 8,
        ),
        stdout: Vec::new(),
        stderr: fs::read(&err).unwrap_or_default(),
    };
    assert_refused(
        "dump onto a full tmpfs",
        &dump_out,
        None,
        &["no space left"],
    );
    let state = text
        .lines()
        .find(|l| l.starts_with("State:"))
        .unwrap_or("State: gone");
    assert!(
        state.contains("S (sleeping)") || state.contains("R (running)"),
        "the target was left {state:?} after the failed dump"
    );
    let files = text
        .lines()
        .find_map(|l| l.strip_prefix("files="))
        .unwrap_or_else(|| panic!("no files line: {}", show(&out)));
    assert_eq!(
        files, "[]",
        "the failed dump left files behind (no partial image may stay, under the final name or a temporary one)"
    );
}
