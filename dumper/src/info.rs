//! `kckpt info`: validate an image with the format reader (checksums
//! first, then every record, and every thread's registers with the image
//! architecture's `check_user_regs`, as the stub does) and describe it, as
//! text or as a JSON object (the image from a file, or `-` for standard
//! input: `crate::input`). Strings from the image are escaped in the text
//! form (`kckpt_image::escape`: one item per line whatever they hold); JSON
//! escapes by its own rules.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde_json::{json, Value};

use kckpt_image::checksum::{check_image, Sums};
use kckpt_image::read::{machine_name, note_segment, parse_elf_header, EHDR_SIZE};
use kckpt_image::records::*;
use kckpt_image::{FormatError, ImageView};

use crate::error::{escaped, Error, Result};

/// The metadata of a validated image, read from its file.
pub(crate) struct Loaded {
    /// Its ELF header.
    pub ehdr: Vec<u8>,
    /// Its program header table.
    pub phdrs: Vec<u8>,
    /// Its note segment.
    pub notes: Vec<u8>,
    /// Its length.
    pub file_len: u64,
    /// The image's architecture: `kckpt info` describes images of every
    /// architecture kckpt knows, not only this machine's.
    pub machine: u16,
}

/// The architecture an image says it is for, if kckpt knows it; this
/// machine's otherwise (so a foreign one is refused as such).
fn image_machine(ehdr: &[u8]) -> u16 {
    use kckpt_image::read::{EM_AARCH64, EM_X86_64};
    match ehdr.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]])) {
        Some(m) if m == EM_X86_64 || m == EM_AARCH64 => m,
        _ => kckpt_arch::ELF_MACHINE,
    }
}

/// Check the registers of an NT_PRSTATUS of `machine` as the stub would
/// before resuming them (`Ok` when too short to hold registers: the reader
/// leaves that to the stub, which refuses it).
fn check_regs(machine: u16, prstatus: &[u8]) -> std::result::Result<(), &'static str> {
    if machine == kckpt_image::read::EM_AARCH64 {
        kckpt_arch::aarch64::regs_from_prstatus(prstatus)
            .map_or(Ok(()), |r| kckpt_arch::aarch64::check_user_regs(&r))
    } else {
        kckpt_arch::x86_64::regs_from_prstatus(prstatus)
            .map_or(Ok(()), |r| kckpt_arch::x86_64::check_user_regs(&r))
    }
}

/// Program counter and stack pointer of an NT_PRSTATUS of `machine`.
fn pc_sp(machine: u16, prstatus: &[u8]) -> Option<(u64, u64)> {
    if machine == kckpt_image::read::EM_AARCH64 {
        kckpt_arch::aarch64::regs_from_prstatus(prstatus).map(|r| (r.pc(), r.sp()))
    } else {
        kckpt_arch::x86_64::regs_from_prstatus(prstatus).map(|r| (r.pc(), r.sp()))
    }
}

/// Check the image in `file` with the format reader (what `kckpt restore
/// -` does first, so its refusals name `standard input` rather than the
/// memfd the stub reads).
pub(crate) fn validate(file: &File, path: &Path) -> Result<()> {
    let part = Part::whole(file, path)?;
    load(&part, path).map(drop)
}

/// An image inside a file: the whole file, or a sub-image of a process
/// tree (`len` bytes at `base`), whose offsets count from `base`.
#[derive(Clone, Copy)]
pub(crate) struct Part<'a> {
    /// The file.
    pub file: &'a File,
    /// Where the image starts in it.
    pub base: u64,
    /// Its length.
    pub len: u64,
}

impl<'a> Part<'a> {
    /// The whole of `file`.
    pub fn whole(file: &'a File, path: &Path) -> Result<Part<'a>> {
        let len = file
            .metadata()
            .map_err(|source| Error::OpenImage {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Ok(Part { file, base: 0, len })
    }

    /// Read `buf.len()` bytes at `offset` of the image (never past its
    /// end).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.file.read_exact_at(buf, self.base + offset)
    }
}

/// Read the metadata of the image `part` and check it (checksums and
/// structure, [`check_image`]): only good images get further.
pub(crate) fn load(part: &Part<'_>, path: &Path) -> Result<Loaded> {
    let open_err = |source| Error::OpenImage {
        path: path.to_path_buf(),
        source,
    };
    let bad = |error| Error::BadImage {
        path: path.to_path_buf(),
        error,
    };
    let file_len = part.len;
    let mut ehdr = vec![0u8; EHDR_SIZE.min(file_len as usize)];
    part.read_exact_at(&mut ehdr, 0).map_err(open_err)?;
    let machine = image_machine(&ehdr);
    let elf = parse_elf_header(&ehdr, file_len, machine).map_err(bad)?;
    let mut table = vec![0u8; elf.phdrs_size()];
    part.read_exact_at(&mut table, elf.phoff)
        .map_err(open_err)?;
    let (off, size) = note_segment(&table, file_len).map_err(bad)?;
    let mut notes = vec![0u8; size as usize];
    part.read_exact_at(&mut notes, off).map_err(open_err)?;
    // Validate now (checksums first) so callers only see good images.
    let (view, _) = check_image(&ehdr, &table, &notes, machine, file_len).map_err(bad)?;
    // Pages shared with earlier processes of a tree lie before the image.
    kckpt_image::pagerefs::check_base(&view, part.base).map_err(bad)?;
    Ok(Loaded {
        ehdr,
        phdrs: table,
        notes,
        file_len,
        machine,
    })
}

/// The checked view of a loaded image: its metadata
/// ([`check_image`]) and every thread's registers as the stub checks
/// them.
pub(crate) fn checked<'a>(
    loaded: &'a Loaded,
    path: &Path,
) -> Result<(ImageView<'a>, Option<Sums<'a>>)> {
    let bad = |error| Error::BadImage {
        path: path.to_path_buf(),
        error,
    };
    let (view, sums) = check_image(
        &loaded.ehdr,
        &loaded.phdrs,
        &loaded.notes,
        loaded.machine,
        loaded.file_len,
    )
    .map_err(bad)?;
    for t in view.threads() {
        check_regs(loaded.machine, t.prstatus)
            .map_err(|what| bad(FormatError::BadRegisters(what)))?;
    }
    Ok((view, sums))
}

/// How strings from the image are shown: as JSON strings (non-UTF-8 bytes
/// replaced) or for the text form (escaped, see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// `--json`.
    Json,
    /// The text form.
    Text,
}

impl Show {
    /// `bytes` as this form shows a string.
    pub(crate) fn str(self, bytes: &[u8]) -> String {
        match self {
            Show::Json => String::from_utf8_lossy(bytes).into_owned(),
            Show::Text => escaped(bytes),
        }
    }

    /// A NUL-separated command line: the JSON string as stored, the text
    /// form as its arguments separated by spaces.
    fn cmdline(self, bytes: &[u8]) -> String {
        match self {
            Show::Json => self.str(bytes),
            Show::Text => {
                let args = bytes.strip_suffix(&[0]).unwrap_or(bytes);
                let args: Vec<String> = args.split(|&b| b == 0).map(escaped).collect();
                args.join(" ")
            }
        }
    }
}

fn prot_text(p: u32) -> String {
    let mut s = String::with_capacity(3);
    s.push(if p & prot::READ != 0 { 'r' } else { '-' });
    s.push(if p & prot::WRITE != 0 { 'w' } else { '-' });
    s.push(if p & prot::EXEC != 0 { 'x' } else { '-' });
    s
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        vma_kind::ANONYMOUS => "anon",
        vma_kind::FILE => "file",
        vma_kind::HEAP => "heap",
        vma_kind::STACK => "stack",
        vma_kind::VDSO => "vdso",
        vma_kind::VVAR => "vvar",
        vma_kind::VVAR_VCLOCK => "vvar_vclock",
        vma_kind::VSYSCALL => "vsyscall",
        _ => "unknown",
    }
}

fn flag_names(flags: u32) -> Vec<&'static str> {
    [
        (vma_flags::SHARED, "shared"),
        (vma_flags::GROWSDOWN, "growsdown"),
        (vma_flags::DONTDUMP, "dontdump"),
        (vma_flags::HUGEPAGE, "hugepage"),
        (vma_flags::NOHUGEPAGE, "nohugepage"),
        (vma_flags::DONTCOPY, "dontcopy"),
        (vma_flags::WIPEONFORK, "wipeonfork"),
        (vma_flags::LOCKED, "locked"),
        (vma_flags::FILE_UNAVAILABLE, "file_unavailable"),
        (vma_flags::SEQ_READ, "sequential"),
        (vma_flags::RAND_READ, "random"),
        (vma_flags::LOCKONFAULT, "lockonfault"),
        (vma_flags::NORESERVE, "noreserve"),
        (vma_flags::MERGEABLE, "mergeable"),
        (vma_flags::MAYWRITE, "maywrite"),
        (vma_flags::GHOST, "deleted_saved"),
        (vma_flags::DROPPABLE, "droppable"),
        (vma_flags::SYSV, "sysv"),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|&(_, name)| name)
    .collect()
}

fn syscall_state_name(s: u32) -> &'static str {
    match s {
        syscall_state::NONE => "none",
        syscall_state::RESTART => "restart",
        syscall_state::RESTART_BLOCK => "restart_block",
        _ => "unknown",
    }
}

/// Everything `info` shows, as JSON (the text form is printed from it,
/// with strings shown as `show` says).
fn describe(
    view: &ImageView<'_>,
    file_len: u64,
    show: Show,
) -> Result<Value, kckpt_image::FormatError> {
    let text = |bytes: &[u8]| show.str(bytes);
    let h = &view.header;
    let release_len = h
        .kernel_release
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(h.kernel_release.len());
    let mut vmas = Vec::new();
    for v in view.vmas.iter() {
        vmas.push(json!({
            "start": v.start,
            "end": v.end,
            "prot": prot_text(v.prot),
            "kind": kind_name(v.kind),
            "flags": flag_names(v.flags),
            "name": text(view.string(v.name)?),
            "file_offset": v.file_pgoff,
            "stored_bytes": v.stored_bytes,
            "skipped_bytes": (v.end - v.start).saturating_sub(v.stored_bytes),
            "runs": v.run_count,
        }));
    }
    let threads: Vec<Value> = view
        .threads()
        .map(|t| {
            let regs = pc_sp(view.header.machine, t.prstatus);
            json!({
                "tid": t.record.tid,
                "pc": regs.map(|r| r.0),
                "sp": regs.map(|r| r.1),
                "syscall_state": syscall_state_name(t.record.syscall_state),
                "syscall_nr": t.record.syscall_nr,
                "sigmask": t.record.sigmask,
                "tls": t.record.tls,
                "rseq_addr": t.record.rseq_addr,
            })
        })
        .collect();
    let pending: Vec<Value> = view
        .pending
        .iter()
        .map(|p| {
            let code =
                i32::from_le_bytes([p.siginfo[8], p.siginfo[9], p.siginfo[10], p.siginfo[11]]);
            json!({ "tid": p.tid, "signo": p.signo, "code": code })
        })
        .collect();
    let process = view.process.map(|p| {
        let limits: Vec<Value> = p.rlimits[..(p.rlimit_count as usize).min(RLIMIT_COUNT)]
            .iter()
            .map(|l| json!([l.cur, l.max]))
            .collect();
        json!({
            "personality": format!("{:#x}", p.personality),
            "dumpable": p.dumpable,
            "no_new_privs": p.no_new_privs,
            "rlimits": limits,
        })
    });
    Ok(json!({
        "arch": machine_name(h.machine),
        "format_version": format!("{}.{}", h.format_major, h.format_minor),
        "page_size": h.page_size,
        "pid": h.pid,
        "cmdline": show.cmdline(view.string(view.mm.cmdline)?),
        "exe": text(view.string(view.mm.exe)?),
        "kernel_release": text(&h.kernel_release[..release_len]),
        "created_unix": h.created_unix,
        "xcr0": format!("{:#x}", h.xcr0),
        "xstate_size": h.xstate_size,
        "vdso_hash": format!("{:#018x}", h.vdso_hash),
        "did_exec": h.flags & HEADER_DID_EXEC != 0,
        "thread_count": h.thread_count,
        "threads": threads,
        "process": process,
        "pending_signals": pending,
        "file_size": file_len,
        "stored_bytes": view.stored_bytes(),
        "vmas": vmas,
        "files": crate::info_files::describe(view, show),
        "timers": crate::info_timers::describe(view),
        "kernel_state": crate::info_kstate::describe(view, show),
        "seccomp": crate::info_kstate::describe_seccomp(view),
        "sysv_shm": crate::info_sysv::shm(view),
        "sysv_sem": crate::info_sysv::sem(view),
        "sysv_msg": crate::info_sysv::msg(view),
    }))
}

fn format_text(path: &Path, d: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let s = |k: &str| match &d[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let _ = writeln!(
        out,
        "image:          {}",
        escaped(path.as_os_str().as_encoded_bytes())
    );
    if let Some(sub) = d["sub_image"].as_object() {
        let _ = writeln!(
            out,
            "sub-image:      process {} of the tree, {} bytes at offset {}",
            sub["index"], sub["len"], sub["offset"]
        );
    }
    crate::info_tree::format_text(&mut out, &d["tree"], d["pid"].as_u64());
    let _ = writeln!(out, "architecture:   {}", s("arch"));
    let _ = writeln!(out, "format version: {}", s("format_version"));
    let _ = writeln!(out, "page size:      {}", s("page_size"));
    let _ = writeln!(out, "pid:            {}", s("pid"));
    let _ = writeln!(out, "command line:   {}", s("cmdline"));
    let _ = writeln!(out, "exe:            {}", s("exe"));
    let _ = writeln!(out, "kernel release: {}", s("kernel_release"));
    let _ = writeln!(out, "created (unix): {}", s("created_unix"));
    let _ = writeln!(
        out,
        "xcr0:           {} (xstate {} bytes)",
        s("xcr0"),
        s("xstate_size")
    );
    let _ = writeln!(
        out,
        "did exec:       {}",
        if d["did_exec"] == true { "yes" } else { "no" }
    );
    if let Some(p) = d["process"].as_object() {
        let _ = writeln!(
            out,
            "personality:    {} (dumpable {}, no_new_privs {})",
            p["personality"].as_str().unwrap_or("?"),
            p["dumpable"],
            p["no_new_privs"]
        );
    }
    let pending: Vec<String> = d["pending_signals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let queue = if p["tid"] == 0 {
                "process".to_owned()
            } else {
                format!("tid {}", p["tid"])
            };
            format!("{} ({queue}, code {})", p["signo"], p["code"])
        })
        .collect();
    if !pending.is_empty() {
        let _ = writeln!(out, "pending:        {}", pending.join(", "));
    }
    let _ = writeln!(out, "threads:        {}", s("thread_count"));
    for t in d["threads"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  tid {} pc {:#x} sp {:#x} syscall {}",
            t["tid"],
            t["pc"].as_u64().unwrap_or(0),
            t["sp"].as_u64().unwrap_or(0),
            t["syscall_state"].as_str().unwrap_or("?"),
        );
    }
    crate::info_files::format_text(&mut out, &d["files"]);
    crate::info_timers::format_text(&mut out, &d["timers"]);
    crate::info_kstate::format_text(&mut out, &d["kernel_state"]);
    crate::info_kstate::format_seccomp(&mut out, &d["seccomp"]);
    crate::info_verify::format_text(&mut out, &d["checksums"]);
    crate::info_sysv::format_text(&mut out, d);
    let vmas = d["vmas"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "memory:         {} areas, {} bytes stored, file {} bytes",
        vmas.len(),
        s("stored_bytes"),
        s("file_size")
    );
    for v in &vmas {
        let flags: Vec<&str> = v["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "  {:012x}-{:012x} {} {:<11} {:<24} {} stored {} / skipped {}",
            v["start"].as_u64().unwrap_or(0),
            v["end"].as_u64().unwrap_or(0),
            v["prot"].as_str().unwrap_or(""),
            v["kind"].as_str().unwrap_or(""),
            if flags.is_empty() {
                "-".to_owned()
            } else {
                flags.join(",")
            },
            v["name"].as_str().unwrap_or(""),
            v["stored_bytes"],
            v["skipped_bytes"],
        );
    }
    out
}

/// What `kckpt info FILE [--json] [--verify]` prints, or why the image is
/// refused: metadata checksums are checked always, the data's with
/// `verify`, every thread's registers as the stub checks them.
pub fn render(path: &Path, as_json: bool, verify: bool) -> Result<String> {
    render_process(path, as_json, verify, None)
}

/// [`render`] showing the details of process `pid` of a process tree
/// (`kckpt info --pid N`; `None`: the image's own process, the root). The
/// whole image is checked whichever process is shown: every sub-image's
/// metadata and `image_sum` always, their data with `verify`.
pub fn render_process(
    path: &Path,
    as_json: bool,
    verify: bool,
    pid: Option<u32>,
) -> Result<String> {
    kckpt_image_write::init_checksums();
    let input = crate::input::open(path, false)?;
    let path = input.name.as_path();
    let whole = Part::whole(&input.file, path)?;
    let loaded = load(&whole, path)?;
    let (view, sums) = checked(&loaded, path)?;
    let mut data = crate::info_verify::DataState::Unchecked;
    if let Some(s) = sums.as_ref().filter(|s| verify && s.has_data()) {
        crate::info_verify::verify_data(&whole, path, &view, s)?;
        data = crate::info_verify::DataState::Ok;
    }
    let shared = crate::info_tree::check_subimages(&whole, path, &view, verify)?;
    let show = if as_json { Show::Json } else { Show::Text };
    let tree = crate::info_tree::describe(&view, show, &whole, &shared);
    let chosen = match pid {
        Some(pid) => crate::info_tree::select(&whole, &view, path, pid)?,
        None => crate::info_tree::Selected::Own,
    };
    let mut d = match chosen {
        crate::info_tree::Selected::Own => {
            let mut d =
                describe(&view, loaded.file_len, show).map_err(|error| bad_image(path, error))?;
            d["checksums"] = crate::info_verify::describe(sums.as_ref(), data);
            d
        }
        crate::info_tree::Selected::Sub { index, part } => {
            let name = crate::info_tree::sub_name(path, index, &view);
            let sub = load(&part, &name)?;
            let (sview, ssums) = checked(&sub, &name)?;
            let mut d =
                describe(&sview, sub.file_len, show).map_err(|error| bad_image(&name, error))?;
            // check_subimages verified its data with the rest.
            let sdata = if verify {
                crate::info_verify::DataState::Ok
            } else {
                crate::info_verify::DataState::Unchecked
            };
            d["checksums"] = crate::info_verify::describe(ssums.as_ref(), sdata);
            d["sub_image"] = json!({
                "index": index,
                "offset": part.base,
                "len": part.len,
            });
            d
        }
    };
    d["tree"] = tree;
    Ok(if as_json {
        serde_json::to_string_pretty(&d).unwrap_or_default() + "\n"
    } else {
        format_text(path, &d)
    })
}

/// The error of an image `path` the format reader refused.
fn bad_image(path: &Path, error: FormatError) -> Error {
    Error::BadImage {
        path: path.to_path_buf(),
        error,
    }
}

/// `kckpt info FILE [--json] [--verify] [--pid N]`.
pub fn info(path: &Path, as_json: bool, verify: bool, pid: Option<u32>) -> Result<()> {
    let text = render_process(path, as_json, verify, pid)?;
    // A closed pipe (`kckpt info | head`) is not an error worth a message.
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Usage(format!(
            "cannot write to standard output: {}",
            crate::error::io_text(&e)
        ))),
        _ => Ok(()),
    }
}
