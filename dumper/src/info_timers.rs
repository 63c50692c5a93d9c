//! The timer part of `kckpt info` (format 1.3 notes): interval timers and
//! POSIX timers.

use serde_json::{json, Value};

use kckpt_image::timers::{posix_timer_flags, sigev, timers_flags, ItimerRecord};
use kckpt_image::ImageView;

fn notify_name(notify: u32) -> &'static str {
    match notify {
        sigev::SIGNAL => "signal",
        sigev::NONE => "none",
        sigev::THREAD => "thread",
        sigev::THREAD_ID => "thread_id",
        _ => "?",
    }
}

fn itimer(t: &ItimerRecord) -> Value {
    json!({ "value_ns": t.value_ns, "interval_ns": t.interval_ns })
}

/// `{"itimers": {...}, "restore_ids": bool, "posix": [...]}`, or null for
/// an image without timer notes (format 1.2 and older).
pub fn describe(view: &ImageView<'_>) -> Value {
    let Some(t) = view.timers else {
        return Value::Null;
    };
    let posix: Vec<Value> = view
        .posix_timers
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "clock": p.clock,
                "notify": notify_name(p.notify),
                "signo": p.signo,
                "tid": (p.notify == sigev::THREAD_ID).then_some(p.tid),
                "value": format!("{:#x}", p.value),
                "value_ns": p.value_ns,
                "interval_ns": p.interval_ns,
                "overrun": p.overrun,
                "signal_pending": p.flags & posix_timer_flags::PENDING != 0,
            })
        })
        .collect();
    json!({
        "itimers": {
            "real": itimer(&t.real),
            "virtual": itimer(&t.virt),
            "prof": itimer(&t.prof),
        },
        "restore_ids": t.flags & timers_flags::RESTORE_IDS != 0,
        "posix": posix,
    })
}

/// `value/interval` in seconds, for the text form.
fn secs(v: &Value) -> String {
    let s = |k: &str| v[k].as_u64().unwrap_or(0) as f64 / 1e9;
    format!("{:.6}/{:.6} s", s("value_ns"), s("interval_ns"))
}

/// Text lines for [`describe`]'s value.
pub fn format_text(out: &mut String, d: &Value) {
    use std::fmt::Write as _;
    if d.is_null() {
        return;
    }
    let it = &d["itimers"];
    let _ = writeln!(
        out,
        "itimers:        real {}, virtual {}, prof {}",
        secs(&it["real"]),
        secs(&it["virtual"]),
        secs(&it["prof"])
    );
    let posix = d["posix"].as_array().cloned().unwrap_or_default();
    if posix.is_empty() {
        return;
    }
    let _ = writeln!(out, "posix timers:   {}", posix.len());
    for p in &posix {
        let target = match p["tid"].as_u64() {
            Some(tid) => format!(" tid {tid}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  id {} clock {} {} signal {}{} {}{}",
            p["id"],
            p["clock"],
            p["notify"].as_str().unwrap_or("?"),
            p["signo"],
            target,
            secs(p),
            if p["signal_pending"] == true {
                " (signal pending)"
            } else {
                ""
            }
        );
    }
}
