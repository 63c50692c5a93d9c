//! What `kckpt info` shows of an image's SysV IPC objects: shared memory
//! segments (format 1.10), semaphore sets and message queues (1.11),
//! as JSON (`sysv_shm`, `sysv_sem`, `sysv_msg`) and as text.

use std::fmt::Write as _;

use kckpt_image::ImageView;
use serde_json::{json, Value};

/// The `sysv_shm` array (format 1.10): each segment and how much of it
/// the image stores.
pub fn shm(view: &ImageView<'_>) -> Value {
    use kckpt_image::sysv::{extents_of, shm_mode};
    view.sysv_shm
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "key": s.key as i32,
                "size": s.size,
                "mode": format!("{:o}", s.mode & 0o777),
                "uid": s.uid,
                "gid": s.gid,
                "removed": s.mode & shm_mode::DEST != 0,
                "locked": s.mode & shm_mode::LOCKED != 0,
                "stored_bytes": extents_of(view, &s).map(|e| e.len).sum::<u64>(),
            })
        })
        .collect()
}

/// The `sysv_sem` array (format 1.11): each set and its values.
pub fn sem(view: &ImageView<'_>) -> Value {
    view.sysv_sem
        .iter()
        .map(|s| {
            let values: Vec<u16> = kckpt_image::sysv::values_of(view, &s)
                .chunks_exact(2)
                .map(|v| u16::from_ne_bytes([v[0], v[1]]))
                .collect();
            json!({
                "id": s.id,
                "key": s.key as i32,
                "mode": format!("{:o}", s.mode),
                "uid": s.uid,
                "gid": s.gid,
                "values": values,
            })
        })
        .collect()
}

/// The `sysv_msg` array (format 1.11): each queue and its messages'
/// types and lengths.
pub fn msg(view: &ImageView<'_>) -> Value {
    let mut all = kckpt_image::sysv::messages(view.sysv_messages).map_while(|m| m);
    view.sysv_msg
        .iter()
        .map(|q| {
            let messages: Vec<Value> = all
                .by_ref()
                .take(q.msg_count as usize)
                .map(|(h, _, _)| json!({"mtype": h.mtype, "len": h.len}))
                .collect();
            json!({
                "id": q.id,
                "key": q.key as i32,
                "mode": format!("{:o}", q.mode),
                "uid": q.uid,
                "gid": q.gid,
                "qbytes": q.qbytes,
                "messages": messages,
            })
        })
        .collect()
}

/// The text lines of [`shm`], [`sem`] and [`msg`] (nothing for an image
/// without SysV objects).
pub fn format_text(out: &mut String, d: &Value) {
    let list = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    let (segments, sets, queues) = (list("sysv_shm"), list("sysv_sem"), list("sysv_msg"));
    if segments.is_empty() && sets.is_empty() && queues.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "SysV IPC:       {} shared memory segment(s), {} semaphore set(s), {} message queue(s), restored in a new IPC namespace",
        segments.len(),
        sets.len(),
        queues.len()
    );
    let key = |v: &Value| v.as_i64().unwrap_or(0) as i32;
    let mode = |v: &Value| v.as_str().unwrap_or("").to_owned();
    for g in &segments {
        let _ = writeln!(
            out,
            "  segment {} key {:#x} size {} mode {} uid {} gid {}{}{} stored {}",
            g["id"],
            key(&g["key"]),
            g["size"],
            mode(&g["mode"]),
            g["uid"],
            g["gid"],
            if g["removed"] == true { " removed" } else { "" },
            if g["locked"] == true { " locked" } else { "" },
            g["stored_bytes"],
        );
    }
    for s in &sets {
        let values: Vec<String> = s["values"]
            .as_array()
            .map(|v| v.iter().map(Value::to_string).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  semaphore set {} key {:#x} mode {} uid {} gid {} values {}",
            s["id"],
            key(&s["key"]),
            mode(&s["mode"]),
            s["uid"],
            s["gid"],
            values.join(" "),
        );
    }
    for q in &queues {
        let messages = q["messages"].as_array().cloned().unwrap_or_default();
        let bytes: u64 = messages.iter().filter_map(|m| m["len"].as_u64()).sum();
        let _ = writeln!(
            out,
            "  message queue {} key {:#x} mode {} uid {} gid {} qbytes {}: {} message(s), {} bytes",
            q["id"],
            key(&q["key"]),
            mode(&q["mode"]),
            q["uid"],
            q["gid"],
            q["qbytes"],
            messages.len(),
            bytes,
        );
    }
}
