//! `kckpt-mutate`: runs `kckpt-stub` (or, with `--info`, `kckpt info`) on
//! mutated real images and checks that it never hangs, crashes or refuses
//! untidily (issue 7).
//!
//! ```text
//! kckpt-mutate --stub PATH [--count N] [--seed S] [--keep DIR] [--as-root] IMAGE...
//! kckpt-mutate --info KCKPT [--count N] [--seed S] [--keep DIR] IMAGE...
//! ```
//!
//! With `--info`, each mutant goes through `kckpt info` and `kckpt info
//! --json --verify`, which must each either describe it (exit 0, output on
//! stdout, nothing on stderr) or refuse it (exit 1, exactly one `kckpt: `
//! line on stderr), within 10 s and without a signal.
//!
//! Each mutant is a copy of one of the IMAGEs with one to three mutations:
//! bit flips and byte or word overwrites with interesting values in the
//! ELF header, program headers and notes (now and then anywhere),
//! truncation, and field-aware edits of kckpt's records and the saved
//! registers. The stub runs on it with `KCKPT_DEBUG_JUMP=1` (one marker line
//! on stderr right before the final jump into the restored process), as
//! user `nobody` unless `--as-root` (a mutant may name any file), and must
//! either
//!
//! - refuse: exit status 126 with exactly one `kckpt: ` line on stderr
//!   (`kckpt: warning: ` lines may come before it), or
//! - reach the jump (the marker): what the restored program does then (runs,
//!   crashes on mutated memory, gets killed because its registers could not
//!   be loaded) is the program's business.
//!
//! Failures: no exit and no marker within 10 s (a hang), any other exit or a
//! signal before the marker (a crash of the stub), a refusal that is not
//! one line, and a process of the restore (the stub's tracer helper, whose
//! command line names the mutant) still running 3 s after the stub ended.
//! Failing mutants are kept in `--keep DIR` with a note of their mutations.
//! Exit status: 0 when no mutant failed, 1 otherwise, 2 for usage errors.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kckpt_image::read::{note_segment, parse_elf_header, Notes, EM_X86_64};
use kckpt_image::records::{nt, CORE_OWNER, NOTE_OWNER};

/// Time for the stub to refuse or reach the jump.
const STUB_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the restored program gets to print or end after the jump.
const AFTER_JUMP: Duration = Duration::from_secs(3);
/// Time the processes of a restore get to end after the stub did.
const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(3);
/// The stub's marker line (`KCKPT_DEBUG_JUMP=1`).
const MARKER: &str = "kckpt: debug: jumping into the restored process";
/// The user mutants run as (nobody).
const NOBODY: u32 = 65534;

/// A small deterministic generator (xorshift64*): reproducible runs from a
/// seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Where the interesting parts of an image are.
struct Layout {
    /// ELF header, program headers and note segment: `(start, end)`.
    metadata: Vec<(usize, usize)>,
    /// Note descriptors: (owner, type, start, len).
    notes: Vec<(Vec<u8>, u32, usize, usize)>,
    /// A process tree's sub-images (format 1.4), each with its own layout
    /// (offsets relative to the sub-image).
    subs: Vec<Sub>,
}

/// One sub-image of a process-tree image.
struct Sub {
    /// Its offset in the file.
    base: usize,
    /// Its length.
    len: usize,
    /// File offset of its `TreeProcRecord::image_sum`.
    sum_at: usize,
    /// Its pid.
    pid: u32,
    /// Where its parts are.
    lay: Layout,
}

/// The sub-images of the tree image `img` whose notes `notes` lists.
fn sub_images(img: &[u8], notes: &[(Vec<u8>, u32, usize, usize)]) -> Vec<Sub> {
    use kckpt_image::tree::{proc_state, TreeProcRecord, NT_KCKPT_TREE_PROCS};
    let Some(&(_, _, start, len)) = notes
        .iter()
        .find(|n| n.0 == NOTE_OWNER && n.1 == NT_KCKPT_TREE_PROCS)
    else {
        return Vec::new();
    };
    let size = std::mem::size_of::<TreeProcRecord>();
    let mut subs = Vec::new();
    for (i, rec) in img[start..start + len].chunks_exact(size).enumerate() {
        let Some(p) = kckpt_image::read::read_record::<TreeProcRecord>(rec) else {
            continue;
        };
        let (base, sub_len) = (p.image_offset as usize, p.image_len as usize);
        if i == 0 || p.state != proc_state::LIVE || base + sub_len > img.len() {
            continue;
        }
        if let Ok(lay) = layout(&img[base..base + sub_len]) {
            subs.push(Sub {
                base,
                len: sub_len,
                sum_at: start + i * size + std::mem::offset_of!(TreeProcRecord, image_sum),
                pid: p.pid,
                lay,
            });
        }
    }
    subs
}

fn layout(img: &[u8]) -> Result<Layout, String> {
    let len = img.len() as u64;
    let elf = parse_elf_header(img, len, EM_X86_64).map_err(|e| e.to_string())?;
    let phoff = elf.phoff as usize;
    let table = &img[phoff..phoff + elf.phdrs_size()];
    let (off, size) = note_segment(table, len).map_err(|e| e.to_string())?;
    let (off, size) = (off as usize, size as usize);
    let mut notes = Vec::new();
    for n in Notes::new(&img[off..off + size]) {
        let n = n.map_err(|e| e.to_string())?;
        let start = n.desc.as_ptr() as usize - img.as_ptr() as usize;
        notes.push((n.owner.to_vec(), n.kind, start, n.desc.len()));
    }
    let subs = sub_images(img, &notes);
    Ok(Layout {
        metadata: vec![
            (0, 64),
            (phoff, phoff + elf.phdrs_size()),
            (off, off + size),
        ],
        notes,
        subs,
    })
}

/// Values that tend to find edge cases.
fn interesting(rng: &mut Rng, old: u64, file_len: u64) -> u64 {
    const FIXED: [u64; 30] = [
        0,
        1,
        2,
        3,
        7,
        8,
        9,
        0x10,
        0x2b,
        0x2f,
        0x33,
        0x42,
        0x7f,
        0x80,
        0xff,
        0x100,
        0x346,
        0xfff,
        0x1000,
        0x7fff,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        1 << 32,
        1 << 47,
        0x6b6b_0000_0000,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];
    match rng.below(6) {
        0 | 1 => FIXED[rng.below(FIXED.len())],
        2 => old ^ (1 << rng.below(64)),
        3 => old.wrapping_add(rng.below(3) as u64).wrapping_sub(1),
        4 => [file_len, file_len + 4096, file_len - 1, file_len / 2][rng.below(4)],
        _ => old.wrapping_add(4096 * (rng.below(8) as u64 + 1)),
    }
}

/// One mutation of `img` in place; returns what it did. In a tree image,
/// a third of the mutations go to a sub-image (its tree notes are kckpt
/// notes, mutated as the others).
fn mutate_once(rng: &mut Rng, img: &mut Vec<u8>, lay: &Layout) -> String {
    if !lay.subs.is_empty() && rng.chance(33) {
        let sub = &lay.subs[rng.below(lay.subs.len())];
        let mut part = img[sub.base..sub.base + sub.len].to_vec();
        let what = mutate_once(rng, &mut part, &sub.lay);
        // A truncated sub-image: its tail zeroed.
        part.resize(sub.len, 0);
        img[sub.base..sub.base + sub.len].copy_from_slice(&part);
        return format!("sub-image of pid {} at {:#x}: {what}", sub.pid, sub.base);
    }
    let file_len = img.len() as u64;
    let pick_meta = |rng: &mut Rng| {
        let (s, e) = lay.metadata[rng.below(lay.metadata.len())];
        s + rng.below(e - s)
    };
    match rng.below(100) {
        0..=24 => {
            let at = pick_meta(rng);
            let bit = rng.below(8);
            img[at] ^= 1 << bit;
            format!("flip bit {bit} at {at:#x}")
        }
        25..=39 => {
            let at = pick_meta(rng);
            let v = [0u8, 1, 0x7f, 0x80, 0xff, 0x20, 0x0a][rng.below(7)];
            img[at] = v;
            format!("byte {v:#x} at {at:#x}")
        }
        40..=84 => {
            // A field of a note: a word or double word at an aligned offset
            // (records are sequences of u32/u64 fields). Mostly kckpt's
            // records and the saved registers.
            let records: Vec<_> = lay
                .notes
                .iter()
                .filter(|n| n.0 == NOTE_OWNER || (n.0 == CORE_OWNER && n.1 == nt::PRSTATUS))
                .collect();
            let (owner, kind, start, len) = if rng.chance(75) && !records.is_empty() {
                records[rng.below(records.len())]
            } else {
                &lay.notes[rng.below(lay.notes.len())]
            };
            if *len < 4 {
                return "nothing (empty note)".into();
            }
            let wide = *len >= 8 && rng.chance(50);
            let size = if wide { 8 } else { 4 };
            let at = start + rng.below((len - size) / size + 1) * size;
            let old = if wide {
                u64::from_le_bytes(img[at..at + 8].try_into().unwrap())
            } else {
                u64::from(u32::from_le_bytes(img[at..at + 4].try_into().unwrap()))
            };
            let v = interesting(rng, old, file_len);
            if wide {
                img[at..at + 8].copy_from_slice(&v.to_le_bytes());
            } else {
                img[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
            }
            format!(
                "note {} {kind:#x} +{:#x}: {old:#x} -> {:#x}",
                String::from_utf8_lossy(owner),
                at - start,
                if wide { v } else { u64::from(v as u32) }
            )
        }
        85..=89 => {
            let cut = rng.below(img.len());
            img.truncate(cut);
            format!("truncate to {cut:#x}")
        }
        _ => {
            let at = rng.below(img.len());
            img[at] ^= 1 << rng.below(8);
            format!("flip a bit at {at:#x} (anywhere)")
        }
    }
}

/// Recompute the metadata checksums (format 1.2) after mutating, so that
/// mutations of the metadata reach the field validation instead of being
/// caught by a checksum every time; data checksums are left as they were,
/// so a mutated data byte is still caught, by the stub as it reads. Half
/// of the mutants are left unsealed to exercise the checksum refusals too.
/// In a tree image (`lay`) each sub-image is resealed first and its
/// `image_sum` in the tree record rewritten.
fn fixup_checksums(img: &mut [u8], seal: bool, lay: &Layout) {
    if !seal {
        return;
    }
    for sub in &lay.subs {
        if sub.base + sub.len > img.len() || sub.sum_at + 4 > img.len() {
            continue;
        }
        let part = &mut img[sub.base..sub.base + sub.len];
        let _ = kckpt_image_write::reseal(part);
        if let Some(sum) = checksum_note_sum(part) {
            img[sub.sum_at..sub.sum_at + 4].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let _ = kckpt_image_write::reseal(img);
}

/// CRC-32C of the descriptor of the image's `NT_KCKPT_CHECKSUMS` note (a
/// tree's `image_sum` of it), if it can be found.
fn checksum_note_sum(img: &[u8]) -> Option<u32> {
    let len = img.len() as u64;
    let elf = parse_elf_header(img, len, EM_X86_64).ok()?;
    let phoff = elf.phoff as usize;
    let table = img.get(phoff..phoff + elf.phdrs_size())?;
    let (off, size) = note_segment(table, len).ok()?;
    let notes = img.get(off as usize..(off + size) as usize)?;
    kckpt_image::checksum::note_spans(notes)
        .find(|(n, _)| n.is(NOTE_OWNER, kckpt_image::records::NT_KCKPT_CHECKSUMS))
        .map(|(n, _)| kckpt_image::checksum::crc32c(n.desc))
}

/// Write `bytes` leaving all-zero pages as holes (images are sparse).
fn write_sparse(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::File::create(path)?;
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            f.seek(SeekFrom::Start(i as u64 * 4096))?;
            f.write_all(chunk)?;
        }
    }
    f.set_len(bytes.len() as u64)?;
    f.set_permissions(fs::Permissions::from_mode(0o644))
}

/// What happened to one mutant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Exit 126, one line.
    Refused,
    /// Exit 126, one line, but after the address space was replaced.
    FailedLate,
    /// Reached the jump; the restored program printed.
    RestoredRan,
    /// Reached the jump; the restored program ended (crash of the program).
    RestoredEnded,
    /// Reached the jump; the program printed nothing in time (killed).
    RestoredQuiet,
    /// FAILURE: neither an exit nor the marker in time.
    Hang,
    /// FAILURE: another exit status, or a signal, before the marker.
    Crash,
    /// FAILURE: exit 126 without exactly one `kckpt: ` line.
    UntidyRefusal,
    /// FAILURE: a process of the restore outlived the stub.
    HelperLeft,
}

/// `kckpt info` (text, then `--json --verify`) on a mutant: described by
/// both (`RestoredRan` stands for "described"), or refused in one line. Of
/// a tree image (`sub`: the pid of a process with a sub-image), also
/// `kckpt info --pid` and `kckpt extract --pid` of that process.
fn run_info(kckpt: &Path, path: &Path, sub: Option<u32>) -> (Outcome, String) {
    let mut described = true;
    let extracted = path.with_extension("extracted");
    let mut runs: Vec<Vec<String>> = vec![
        vec!["info".into()],
        vec!["info".into(), "--json".into(), "--verify".into()],
    ];
    if let Some(pid) = sub {
        runs.push(vec!["info".into(), "--pid".into(), pid.to_string()]);
        runs.push(vec!["extract".into(), "--pid".into(), pid.to_string()]);
    }
    for args in &runs {
        let mut cmd = Command::new(kckpt);
        cmd.args(args).arg(path);
        if args[0] == "extract" {
            cmd.arg(&extracted);
        }
        let mut child = match cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return (Outcome::Crash, format!("cannot run kckpt: {e}")),
        };
        let (out, out_reader) = collect(child.stdout.take().unwrap());
        let (err, err_reader) = collect(child.stderr.take().unwrap());
        let started = Instant::now();
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if started.elapsed() > STUB_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return (Outcome::Hang, format!("kckpt {args:?} did not finish"));
            }
            thread::sleep(Duration::from_millis(1));
        };
        drained(&out_reader);
        drained(&err_reader);
        let text = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
        let printed = !out.lock().unwrap().is_empty();
        let lines: Vec<&str> = text.lines().collect();
        let _ = fs::remove_file(&extracted);
        let extract = args[0] == "extract";
        match (status.code(), status.signal()) {
            (Some(0), _) if (printed || extract) && lines.is_empty() => {}
            (Some(1), _) if lines.len() == 1 && lines[0].starts_with("kckpt: ") => {
                described = false
            }
            (Some(1), _) => return (Outcome::UntidyRefusal, format!("kckpt {args:?}: {text}")),
            (_, Some(sig)) => {
                return (
                    Outcome::Crash,
                    format!("kckpt {args:?}: signal {sig}\n{text}"),
                )
            }
            (code, _) => {
                return (
                    Outcome::Crash,
                    format!("kckpt {args:?}: exit {code:?}\n{text}"),
                )
            }
        }
    }
    if described {
        (Outcome::RestoredRan, String::new())
    } else {
        (Outcome::Refused, String::new())
    }
}

impl Outcome {
    fn failed(self) -> bool {
        self >= Outcome::Hang
    }
}

/// Pids of live processes whose command line mentions `what`.
fn mentioning(what: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(what) {
            out.push(pid);
        }
    }
    out
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

/// Read a pipe to its end on a thread: the bytes so far, and the thread.
fn collect(mut r: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let reader = thread::spawn(move || {
        let mut b = [0u8; 4096];
        while let Ok(n) = r.read(&mut b) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&b[..n]);
        }
    });
    (buf, reader)
}

/// Wait (up to a second) until `reader` saw the end of its pipe.
fn drained(reader: &thread::JoinHandle<()>) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !reader.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Run the stub on `path`; the outcome and what it printed.
fn run_stub(stub: &Path, path: &Path, as_root: bool) -> (Outcome, String) {
    let mut cmd = Command::new(stub);
    cmd.arg(path)
        .env_clear()
        .env("KCKPT_DEBUG_JUMP", "1")
        // Images made by root restored as nobody: with this user's ids.
        .env("KCKPT_FORCE", "1")
        // Descriptors 0-2 from this run, so the marker and the output
        // come here, whatever the saved process had there.
        .env("KCKPT_STDIO", "inherit")
        .current_dir(path.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !as_root && nix::unistd::geteuid().is_root() {
        // std also drops the supplementary groups when root sets a uid.
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let mut child: Child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (Outcome::Crash, format!("cannot run the stub: {e}")),
    };
    let (out, out_reader) = collect(child.stdout.take().unwrap());
    let (err, err_reader) = collect(child.stderr.take().unwrap());
    let pid = child.id() as i32;
    let started = Instant::now();
    let mut jumped_at = None;
    // The marker goes to the restored process's fd 2, which a mutant may
    // have made a dup of its stdout: look for it in both.
    let marked = |b: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&b.lock().unwrap())
            .lines()
            .any(|l| l == MARKER)
    };
    let printed = |b: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&b.lock().unwrap())
            .lines()
            .any(|l| l != MARKER)
    };
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if jumped_at.is_none() && (marked(&err) || marked(&out)) {
            jumped_at = Some(Instant::now());
        }
        match jumped_at {
            Some(t) if printed(&out) || t.elapsed() > AFTER_JUMP => {
                kill(pid);
                let _ = child.wait();
                break None;
            }
            None if started.elapsed() > STUB_TIMEOUT => {
                kill(pid);
                let _ = child.wait();
                let text = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
                return (Outcome::Hang, text);
            }
            _ => thread::sleep(Duration::from_millis(2)),
        }
    };
    // The pipes close when every process of the restore is gone.
    drained(&out_reader);
    drained(&err_reader);
    let text = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    let jumped = marked(&err) || marked(&out);
    let outcome = match status {
        None if printed(&out) => Outcome::RestoredRan,
        None => Outcome::RestoredQuiet,
        Some(_) if jumped => Outcome::RestoredEnded,
        Some(s) if s.code() == Some(126) => {
            let lines: Vec<&str> = text.lines().collect();
            let (warnings, rest): (Vec<&str>, Vec<&str>) = lines
                .iter()
                .partition(|l| l.starts_with("kckpt: warning: "));
            let _ = warnings;
            match rest[..] {
                [l] if l.starts_with("kckpt: ") && l.contains("restore failed") => {
                    Outcome::FailedLate
                }
                [l] if l.starts_with("kckpt: ") => Outcome::Refused,
                _ => Outcome::UntidyRefusal,
            }
        }
        Some(s) => {
            let what = match s.signal() {
                Some(sig) => format!("killed by signal {sig}"),
                None => format!("exit status {:?}", s.code()),
            };
            return (Outcome::Crash, format!("{what}\n{text}"));
        }
    };
    // Nothing of the restore may outlive the stub (its tracer helper).
    let name = path.to_str().unwrap_or("");
    let deadline = Instant::now() + LEFTOVER_TIMEOUT;
    loop {
        let left = mentioning(name);
        if left.is_empty() {
            return (outcome, text);
        }
        if Instant::now() > deadline {
            left.iter().for_each(|&p| kill(p));
            return (
                Outcome::HelperLeft,
                format!("still running: {left:?}\n{text}"),
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

struct Args {
    stub: PathBuf,
    /// `--info KCKPT`: the reader is `kckpt info`, not the stub.
    info: Option<PathBuf>,
    count: usize,
    seed: u64,
    keep: Option<PathBuf>,
    as_root: bool,
    images: Vec<PathBuf>,
}

fn usage(msg: &str) -> ! {
    eprintln!("kckpt-mutate: {msg}");
    eprintln!(
        "usage: kckpt-mutate (--stub PATH | --info KCKPT) [--count N] [--seed S] [--keep DIR] [--as-root] IMAGE..."
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        stub: PathBuf::new(),
        info: None,
        count: 500,
        seed: 1,
        keep: None,
        as_root: false,
        images: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--stub" => a.stub = value("--stub").into(),
            "--info" => a.info = Some(value("--info").into()),
            "--count" => {
                a.count = value("--count")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --count"))
            }
            "--seed" => {
                a.seed = value("--seed")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --seed"))
            }
            "--keep" => a.keep = Some(value("--keep").into()),
            "--as-root" => a.as_root = true,
            s if s.starts_with('-') => usage(&format!("unknown option {s}")),
            _ => a.images.push(arg.into()),
        }
    }
    if (a.stub.as_os_str().is_empty() && a.info.is_none()) || a.images.is_empty() {
        usage("--stub or --info, and at least one image, are needed");
    }
    // The stub runs in the work directory.
    let absolute =
        |p: &Path| fs::canonicalize(p).unwrap_or_else(|e| usage(&format!("{}: {e}", p.display())));
    match &a.info {
        Some(kckpt) => a.info = Some(absolute(kckpt)),
        None => a.stub = absolute(&a.stub),
    }
    a
}

/// Every unmutated image must restore (and run) the way its mutants are
/// restored: a base the stub refuses as it is would make every mutant a
/// refusal, and the run would test nothing.
fn baseline(a: &Args, bases: &[(PathBuf, Vec<u8>, Layout)], work: &Path) {
    for (path, bytes, _) in bases {
        let copy = work.join("baseline.kckpt");
        write_sparse(&copy, bytes).expect("write the unmutated image");
        let (outcome, text) = run_stub(&a.stub, &copy, a.as_root);
        let _ = fs::remove_file(&copy);
        if !matches!(
            outcome,
            Outcome::RestoredRan | Outcome::RestoredEnded | Outcome::RestoredQuiet
        ) {
            eprintln!(
                "kckpt-mutate: the unmutated image {} does not restore ({outcome:?}): {}",
                path.display(),
                text.trim_end()
            );
            std::process::exit(1);
        }
    }
}

fn main() {
    let a = args();
    let mut bases = Vec::new();
    for path in &a.images {
        let bytes = fs::read(path).unwrap_or_else(|e| usage(&format!("{}: {e}", path.display())));
        let lay = layout(&bytes)
            .unwrap_or_else(|e| usage(&format!("{}: not a valid image: {e}", path.display())));
        bases.push((path.clone(), bytes, lay));
    }
    let work = std::env::temp_dir().join(format!("kckpt-mutate-{}", std::process::id()));
    fs::create_dir_all(&work).expect("create the work directory");
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).expect("chmod");
    if let Some(keep) = &a.keep {
        fs::create_dir_all(keep).expect("create --keep directory");
    }
    if a.info.is_none() {
        baseline(&a, &bases, &work);
    }
    let mut rng = Rng(a.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..a.count {
        let (base_path, base, lay) = &bases[rng.below(bases.len())];
        let mut img = base.clone();
        let mut done = Vec::new();
        for _ in 0..1 + rng.below(3) {
            if img.len() < base.len() {
                break; // truncated: offsets of later mutations are gone
            }
            done.push(mutate_once(&mut rng, &mut img, lay));
        }
        fixup_checksums(&mut img, i % 2 == 0, lay);
        let path = work.join(format!("mutant-{i:06}.kckpt"));
        write_sparse(&path, &img).expect("write mutant");
        let (outcome, text) = match &a.info {
            Some(kckpt) => run_info(kckpt, &path, lay.subs.first().map(|s| s.pid)),
            None => run_stub(&a.stub, &path, a.as_root),
        };
        *counts.entry(outcome).or_default() += 1;
        if outcome.failed() {
            eprintln!(
                "FAILED {outcome:?}: mutant {i} of {} ({})\n{}",
                base_path.display(),
                done.join("; "),
                text.trim_end()
            );
            if let Some(keep) = &a.keep {
                let _ = fs::copy(&path, keep.join(format!("mutant-{i:06}.kckpt")));
                let note = format!(
                    "base {}\nseed {}\n{}\n{outcome:?}\n{text}",
                    base_path.display(),
                    a.seed,
                    done.join("\n")
                );
                let _ = fs::write(keep.join(format!("mutant-{i:06}.txt")), note);
            }
        }
        if outcome == Outcome::FailedLate {
            // Not a failure, but a check validation could have made first.
            eprintln!(
                "note: mutant {i} ({}) failed after the address space was replaced: {}",
                done.join("; "),
                text.trim_end()
            );
        }
        let _ = fs::remove_file(&path);
        if (i + 1) % 500 == 0 {
            eprintln!("kckpt-mutate: {} mutants, {:?}", i + 1, started.elapsed());
        }
    }
    let _ = fs::remove_dir_all(&work);
    let failures: usize = counts
        .iter()
        .filter(|(o, _)| o.failed())
        .map(|(_, n)| n)
        .sum();
    println!(
        "kckpt-mutate: {} mutants of {} image(s) through {}, seed {}, {:.1} s",
        a.count,
        bases.len(),
        if a.info.is_some() {
            "kckpt info"
        } else {
            "kckpt-stub"
        },
        a.seed,
        started.elapsed().as_secs_f64()
    );
    for (o, n) in &counts {
        match o {
            Outcome::RestoredRan if a.info.is_some() => println!("  Described: {n}"),
            o => println!("  {o:?}: {n}"),
        }
    }
    println!("{} passed, {failures} failed", a.count - failures);
    std::process::exit(if failures == 0 { 0 } else { 1 });
}
