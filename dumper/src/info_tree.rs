//! The process-tree part of `kckpt info` (format 1.4): the tree's
//! processes, its shared descriptions (slots) and who uses them; the check
//! of every sub-image (its metadata, its `image_sum`, its pid and thread
//! count against the tree's record, and with `--verify` its data); and
//! the choice of the process `--pid N` (`kckpt info`, `kckpt extract`)
//! names.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use kckpt_image::checksum::{crc32c, note_spans};
use kckpt_image::records::{NOTE_OWNER, NT_KCKPT_CHECKSUMS};
use kckpt_image::tree::{
    proc_state, slot_kind, tree_flags, TreeProcRecord, HOLDER_RESTORER, NO_PARENT,
    TREE_SHARED_FD_KIND,
};
use kckpt_image::{FormatError, ImageView};

use crate::error::{Error, Result};
use crate::info::{Part, Show};

/// The process `--pid N` names.
#[derive(Clone, Copy)]
pub(crate) enum Selected<'a> {
    /// The image's own process (the root of a tree, or a single-process
    /// image).
    Own,
    /// Process `index` of the tree, whose sub-image is `part`.
    Sub {
        /// Its index in the tree.
        index: usize,
        /// Where its sub-image is.
        part: Part<'a>,
    },
}

/// How a sub-image is named in messages: `FILE (process 2, pid 1234)`.
pub(crate) fn sub_name(path: &Path, index: usize, view: &ImageView<'_>) -> PathBuf {
    let pid = view.tree_procs.get(index).map_or(0, |p| p.pid);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(" (process {index}, pid {pid})"));
    PathBuf::from(name)
}

/// What a zombie's wait status means: `exit status 3`, `killed by signal 9`.
pub(crate) fn wait_text(status: u32) -> String {
    let sig = status & 0x7f;
    if sig == 0 {
        format!("exit status {}", (status >> 8) & 0xff)
    } else {
        let core = if status & 0x80 != 0 {
            ", core dumped"
        } else {
            ""
        };
        format!("killed by signal {sig}{core}")
    }
}

/// The process of `view` (read from `whole`) whose pid is `pid`, for
/// `--pid`: one line naming what is wrong when there is none, or when it
/// is a zombie (which has no image).
pub(crate) fn select<'a>(
    whole: &Part<'a>,
    view: &ImageView<'_>,
    path: &Path,
    pid: u32,
) -> Result<Selected<'a>> {
    let shown = crate::error::escaped(path.as_os_str().as_encoded_bytes());
    if view.tree.is_none() {
        if pid == view.header.pid {
            return Ok(Selected::Own);
        }
        return Err(Error::Usage(format!(
            "{shown}: a single-process image of pid {}, not of pid {pid}",
            view.header.pid
        )));
    }
    let Some((index, p)) = view
        .tree_procs
        .iter()
        .enumerate()
        .find(|(_, p)| p.pid == pid)
    else {
        let pids: Vec<String> = view.tree_procs.iter().map(|p| p.pid.to_string()).collect();
        return Err(Error::Usage(format!(
            "{shown}: no process with pid {pid} in this tree (its pids: {})",
            pids.join(", ")
        )));
    };
    if index == 0 {
        return Ok(Selected::Own);
    }
    if p.state == proc_state::GONE {
        return Err(Error::Usage(format!(
            "{shown}: pid {pid} is no process: the leader, reaped, of process group {pid}, \
             which processes of the tree are in"
        )));
    }
    if p.state != proc_state::LIVE {
        return Err(Error::Usage(format!(
            "{shown}: pid {pid} is a zombie ({}, not yet reaped): it has no memory or \
             registers, so no image of its own",
            wait_text(p.wait_status)
        )));
    }
    Ok(Selected::Sub {
        index,
        part: sub_part(whole, &p),
    })
}

/// Where the sub-image of live process record `p` is.
fn sub_part<'a>(whole: &Part<'a>, p: &TreeProcRecord) -> Part<'a> {
    Part {
        file: whole.file,
        base: whole.base + p.image_offset,
        len: p.image_len,
    }
}

/// CRC-32C of the descriptor of the `NT_KCKPT_CHECKSUMS` note of a note
/// segment: what a tree's `image_sum` of that sub-image must be.
pub(crate) fn image_sum(notes: &[u8]) -> Option<u32> {
    note_spans(notes)
        .find(|(n, _)| n.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS))
        .map(|(n, _)| crc32c(n.desc))
}

/// Check every sub-image of the tree of `view` (nothing for a
/// single-process image): its metadata and registers as for any image,
/// its `image_sum`, that it is the process its record says (pid, thread
/// count, architecture) and holds no tree itself; with `verify`, its data
/// checksums too. The first bad one is named. Returns, by process index,
/// how many page references (format 1.6) its sub-image has and how many
/// bytes of memory they cover.
pub(crate) fn check_subimages(
    whole: &Part<'_>,
    path: &Path,
    view: &ImageView<'_>,
    verify: bool,
) -> Result<Vec<(u64, u64)>> {
    let mut shared = vec![(0, 0); view.tree_procs.len()];
    for (index, p) in view.tree_procs.iter().enumerate().skip(1) {
        if p.state != proc_state::LIVE {
            continue;
        }
        let name = sub_name(path, index, view);
        let bad = |error| Error::BadImage {
            path: name.clone(),
            error,
        };
        let part = sub_part(whole, &p);
        let sub = crate::info::load(&part, &name)?;
        let (sview, sums) = crate::info::checked(&sub, &name)?;
        if image_sum(&sub.notes) != Some(p.image_sum) {
            return Err(bad(FormatError::BadChecksum(
                "its NT_KCKPT_CHECKSUMS note (the tree's image_sum)",
            )));
        }
        if sview.header.pid != p.pid
            || sview.header.thread_count != p.threads
            || sview.header.machine != view.header.machine
            || sview.tree.is_some()
        {
            return Err(bad(FormatError::BadField(
                "the sub-image is not the process the tree's record describes",
            )));
        }
        if let Some(s) = sums.as_ref().filter(|s| verify && s.has_data()) {
            crate::info_verify::verify_data(&part, &name, &sview, s)?;
        }
        if verify {
            crate::info_verify::verify_shared(whole, &name, &sview)?;
        }
        shared[index] = (
            sview.page_refs.len() as u64,
            kckpt_image::pagerefs::shared_bytes(&sview),
        );
    }
    Ok(shared)
}

/// The path of a `FILE` slot (its data), lossily.
fn file_path(whole: &crate::info::Part<'_>, s: &kckpt_image::tree::TreeSlotRecord) -> String {
    let mut buf = vec![0u8; s.data_len.min(4096) as usize];
    match whole.read_exact_at(&mut buf, s.data_offset) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => "?".to_owned(),
    }
}

fn slot_kind_name(kind: u32) -> &'static str {
    match kind {
        slot_kind::PIPE_READ => "pipe_read",
        slot_kind::PIPE_WRITE => "pipe_write",
        slot_kind::HOLDER_FD => "holder_fd",
        slot_kind::MEMORY => "memory",
        slot_kind::PTY_MASTER => "pty_master",
        slot_kind::PTY_SLAVE => "pty_slave",
        slot_kind::FILE => "file",
        slot_kind::FIFO => "fifo",
        slot_kind::FIFO_OPEN => "fifo_open",
        slot_kind::UNIX_END => "unix_end",
        slot_kind::ADOPTED => "adopted",
        _ => "?",
    }
}

/// The `tree` object of `kckpt info --json` (null for a single-process
/// image); and, for an image holding descriptors shared with a tree it no
/// longer has (an extracted sub-image), `{"shared_fds": [...]}`.
/// `shared`: what [`check_subimages`] returned.
pub(crate) fn describe(
    view: &ImageView<'_>,
    show: Show,
    whole: &crate::info::Part<'_>,
    shared: &[(u64, u64)],
) -> Value {
    let Some(t) = view.tree else {
        let shared: Vec<Value> = view
            .fds
            .iter()
            .filter(|r| r.kind == TREE_SHARED_FD_KIND)
            .map(|r| json!({"fd": r.fd, "slot": r.args[0]}))
            .collect();
        if shared.is_empty() {
            return Value::Null;
        }
        return json!({ "extracted": true, "shared_fds": shared });
    };
    let procs = view.tree_procs;
    let pid_of = |i: u32| procs.get(i as usize).map(|p| p.pid);
    let processes: Vec<Value> = procs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let len = p.name.iter().position(|&b| b == 0).unwrap_or(p.name.len());
            let live = p.state == proc_state::LIVE;
            let gone = p.state == proc_state::GONE;
            json!({
                "index": i,
                "pid": p.pid,
                "parent": (p.parent != NO_PARENT).then_some(p.parent),
                "ppid": (p.parent != NO_PARENT).then(|| pid_of(p.parent)).flatten(),
                "pgid": p.pgid,
                "sid": p.sid,
                "name": show.str(&p.name[..len]),
                "threads": p.threads,
                "state": if live {
                    "live"
                } else if gone {
                    "gone"
                } else {
                    "zombie"
                },
                "wait_status": (!live && !gone).then_some(p.wait_status),
                "exit": (!live && !gone).then(|| wait_text(p.wait_status)),
                "exit_signal": p.exit_signal,
                "image_offset": (live && i > 0).then_some(p.image_offset),
                "image_len": (live && i > 0).then_some(p.image_len),
                "shared_bytes": (live && i > 0)
                    .then(|| shared.get(i).map_or(0, |s| s.1)),
            })
        })
        .collect();
    let slots: Vec<Value> = view
        .tree_slots
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let users: Vec<String> = view
                .tree_uses
                .iter()
                .filter(|u| u.slot as usize == k)
                .map(|u| format!("{}:{}", pid_of(u.proc).unwrap_or(0), u.fd))
                .collect();
            let pipe = matches!(
                s.kind,
                slot_kind::PIPE_READ | slot_kind::PIPE_WRITE | slot_kind::PTY_SLAVE
            );
            let memory = s.kind == slot_kind::MEMORY;
            json!({
                "slot": k,
                "fd": u64::from(t.slot_base) + k as u64,
                "kind": slot_kind_name(s.kind),
                "holder": (s.holder != HOLDER_RESTORER).then_some(s.holder),
                "holder_pid": (s.holder != HOLDER_RESTORER).then(|| pid_of(s.holder)).flatten(),
                "holder_fd": matches!(
                    s.kind,
                    slot_kind::HOLDER_FD | slot_kind::UNIX_END | slot_kind::ADOPTED
                )
                    .then_some(s.holder_fd),
                "peer": (pipe && s.peer != u32::MAX).then_some(s.peer),
                "flags": format!("{:o}", s.flags),
                "pipe_size": (s.kind == slot_kind::PIPE_READ).then_some(s.pipe_size),
                "data_bytes": s.data_len,
                "data_offset": (s.data_len > 0).then_some(s.data_offset),
                "file": (s.kind == slot_kind::FILE).then(|| json!({
                    "path": file_path(whole, &s),
                    "pos": s.size,
                })),
                "pty_unread": (s.kind == slot_kind::PTY_MASTER).then(|| json!({
                    "master": s.pipe_size,
                    "slave_input": s.size,
                })),
                "memory": memory.then(|| json!({
                    "dev": format!("{}:{}", s.dev >> 32, s.dev & 0xffff_ffff),
                    "inode": s.inode,
                    "size": s.size,
                })),
                "users": users,
            })
        })
        .collect();
    let mode = if t.flags & tree_flags::SESSION != 0 {
        "session"
    } else if t.flags & tree_flags::PGID != 0 {
        "pgid"
    } else {
        "pid"
    };
    // Pages of a process stored once, by an earlier process (format 1.6):
    // what they would have taken, less their records.
    let page = u64::from(view.header.page_size);
    let (records, bytes) = shared.iter().fold((0, 0), |(r, b), s| (r + s.0, b + s.1));
    let record_size = core::mem::size_of::<kckpt_image::pagerefs::PageRefRecord>() as u64;
    json!({
        "shared_pages": {
            "pages": bytes / page,
            "bytes": bytes,
            "records": records,
            "saved_bytes": bytes.saturating_sub(records * record_size),
        },
        "dumped_by": mode,
        "process_count": t.procs,
        "slot_base": t.slot_base,
        "status_proc": t.status_proc,
        "status_pid": pid_of(t.status_proc),
        "processes": processes,
        "slots": slots,
    })
}

/// Text lines for [`describe`]'s value; `shown` is the pid whose details
/// follow.
pub(crate) fn format_text(out: &mut String, d: &Value, shown: Option<u64>) {
    use std::fmt::Write as _;
    if d["extracted"] == true {
        let fds: Vec<String> = d["shared_fds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| format!("fd {} (slot {})", f["fd"], f["slot"]))
            .collect();
        let _ = writeln!(
            out,
            "tree:           extracted from a process tree; shared there: {} \
             (kckpt restore refuses this image alone)",
            fds.join(", ")
        );
        return;
    }
    let Some(procs) = d["processes"].as_array() else {
        return;
    };
    let flag = match d["dumped_by"].as_str() {
        Some("pgid") => " (a process group, --pgid)",
        Some("session") => " (a session, --session)",
        _ => "",
    };
    let _ = writeln!(
        out,
        "tree:           {} processes{flag}; the image returns the status of pid {}",
        procs.len(),
        d["status_pid"]
    );
    let _ = writeln!(
        out,
        "  {:>3} {:>8} {:>8} {:>8} {:>8} {:<16} {:>7} {:<28} {:>12}",
        "#", "pid", "ppid", "pgid", "sid", "command", "threads", "state", "image bytes"
    );
    let dash = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            v.to_string()
        }
    };
    for p in procs {
        let state = match p["exit"].as_str() {
            Some(e) => format!("zombie, {e}"),
            None if p["state"] == "gone" => "gone (its group's leader)".to_owned(),
            None => "live".to_owned(),
        };
        let size = if p["index"] == 0 {
            "(this file)".to_owned()
        } else {
            dash(&p["image_len"])
        };
        let _ = writeln!(
            out,
            "  {:>3} {:>8} {:>8} {:>8} {:>8} {:<16} {:>7} {:<28} {:>12}",
            dash(&p["index"]),
            dash(&p["pid"]),
            dash(&p["ppid"]),
            dash(&p["pgid"]),
            dash(&p["sid"]),
            p["name"].as_str().unwrap_or(""),
            dash(&p["threads"]),
            state,
            size
        );
    }
    let shared = &d["shared_pages"];
    if shared["pages"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            out,
            "  pages shared between processes: {} ({:.1} MiB saved)",
            shared["pages"],
            shared["saved_bytes"].as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64
        );
    }
    for s in d["slots"].as_array().into_iter().flatten() {
        let kind = match s["kind"].as_str() {
            Some("pipe_read") => "pipe read end".to_owned(),
            Some("pipe_write") => "pipe write end".to_owned(),
            Some("pty_master") => format!(
                "pseudo-terminal master (mode and window size saved; unread: {} bytes on the \
                 master, {} bytes of slave input as written back)",
                s["pty_unread"]["master"], s["pty_unread"]["slave_input"]
            ),
            Some("pty_slave") => format!("pseudo-terminal slave of slot {}", s["peer"]),
            Some("file") => format!(
                "file {} (flags {}, position {})",
                s["file"]["path"].as_str().unwrap_or("?"),
                s["flags"].as_str().unwrap_or("?"),
                s["file"]["pos"]
            ),
            Some("memory") => format!(
                "shared memory (device {}, inode {}, {} bytes)",
                s["memory"]["dev"].as_str().unwrap_or("?"),
                s["memory"]["inode"],
                s["memory"]["size"]
            ),
            _ => format!("fd {} of its holder", s["holder_fd"]),
        };
        let holder = match s["holder_pid"].as_u64() {
            Some(pid) => format!("pid {pid}"),
            None => "the restorer".to_owned(),
        };
        let users: Vec<&str> = s["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let data = match s["data_bytes"].as_u64() {
            Some(n) if n > 0 && s["kind"] == "pipe_read" => format!(", {n} bytes in flight"),
            _ => String::new(),
        };
        let used = if s["kind"] == "memory" {
            // No descriptor uses it: the processes of the holder's subtree
            // map their VMAs of that object from it.
            "mapped from it by its subtree's VMAs of that object".to_owned()
        } else if users.is_empty() {
            "used by nobody".to_owned()
        } else {
            format!("used by {}", users.join(" "))
        };
        let _ = writeln!(
            out,
            "  slot {:<3} {kind}, held by {holder}, {used}{data}",
            s["slot"],
        );
    }
    if let Some(pid) = shown {
        let _ = writeln!(
            out,
            "details below:  pid {pid} (kckpt info --pid N FILE shows process N)"
        );
    }
}
