//! The kernel-state part of `kckpt info` (format 1.3): prctl and `/proc`
//! settings, each thread's credentials and robust list, aio rings and
//! cgroups. `null` (and no text) for images without them.

use std::fmt::Write as _;

use serde_json::{json, Value};

use kckpt_image::kstate::{
    group, kstate_flags, parse_task, NT_KCKPT_TASK, SCHED_RESET_ON_FORK, SCHED_SAVED,
};
use kckpt_image::{ImageView, NOTE_OWNER};

use crate::info::Show;

/// The `kernel_state` object of `kckpt info --json`.
pub(crate) fn describe(view: &ImageView<'_>, show: Show) -> Value {
    let threads: Vec<Value> = view
        .threads()
        .filter_map(|t| {
            let (r, groups) = parse_task(t.regset(NOTE_OWNER, NT_KCKPT_TASK)?)?;
            let groups: Vec<u32> = (0..r.group_count as usize)
                .filter_map(|i| group(groups, i))
                .collect();
            Some(json!({
                "tid": t.record.tid,
                "uid": r.uid,
                "gid": r.gid,
                "groups": groups,
                "cap_inheritable": format!("{:#x}", r.cap_inheritable),
                "cap_permitted": format!("{:#x}", r.cap_permitted),
                "cap_effective": format!("{:#x}", r.cap_effective),
                "cap_bounding": format!("{:#x}", r.cap_bounding),
                "cap_ambient": format!("{:#x}", r.cap_ambient),
                "securebits": r.securebits,
                "robust_list": r.robust_list,
                "pdeath_signal": r.pdeath_signal,
                "sched": (r.sched_policy & SCHED_SAVED != 0).then(|| json!({
                    "policy": r.sched_policy & !(SCHED_SAVED | SCHED_RESET_ON_FORK),
                    "reset_on_fork": r.sched_policy & SCHED_RESET_ON_FORK != 0,
                    "priority": r.sched_priority,
                    "nice": r.nice,
                })),
            }))
        })
        .collect();
    let aio: Vec<Value> = view
        .aio
        .iter()
        .map(|a| json!({ "addr": a.addr, "len": a.len, "nr": a.ring_nr, "head": a.head, "tail": a.tail }))
        .collect();
    let cgroups: Vec<Value> = view
        .cgroups
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // Its saved settings (file name: content), for a re-created cgroup.
            let settings: serde_json::Map<String, Value> = view
                .cgroup_props
                .iter()
                .filter(|p| p.cgroup as usize == i)
                .map(|p| {
                    let name = view.string(p.name).unwrap_or_default();
                    let value = view.string(p.value).unwrap_or_default();
                    (
                        String::from_utf8_lossy(name).into_owned(),
                        show.str(value).into(),
                    )
                })
                .collect();
            json!({
                "tid": c.tid,
                "cgroup": show.str(view.string(c.line).unwrap_or_default()),
                "dir": show.str(view.string(c.dir).unwrap_or_default()),
                "settings": settings,
            })
        })
        .collect();
    let Some(k) = view.kstate else {
        return if threads.is_empty() {
            Value::Null
        } else {
            json!({ "threads": threads })
        };
    };
    let have = |bit: u32| k.flags & bit != 0;
    json!({
        "child_subreaper": k.child_subreaper,
        "thp_disable": k.thp_disable,
        "oom_score_adj": have(kstate_flags::HAVE_OOM_SCORE_ADJ).then_some(k.oom_score_adj),
        "loginuid": have(kstate_flags::HAVE_LOGINUID).then_some(k.loginuid),
        "membarrier": have(kstate_flags::HAVE_MEMBARRIER).then(|| format!("{:#x}", k.membarrier)),
        "stop_signal": k.stop_signal,
        "threads": threads,
        "aio_rings": aio,
        "cgroups": cgroups,
    })
}

/// The text lines for `kernel_state`.
pub(crate) fn format_text(out: &mut String, k: &Value) {
    if k.is_null() {
        return;
    }
    if !k["child_subreaper"].is_null() {
        let _ = writeln!(
            out,
            "kernel state:   subreaper {}, thp_disable {}, oom_score_adj {}, loginuid {}, membarrier {}",
            k["child_subreaper"], k["thp_disable"], k["oom_score_adj"], k["loginuid"],
            k["membarrier"].as_str().unwrap_or("unknown")
        );
    }
    if k["stop_signal"].as_u64().is_some_and(|s| s != 0) {
        let _ = writeln!(out, "  stopped (group stop) by signal {}", k["stop_signal"]);
    }
    for t in k["threads"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  tid {} uid {} gid {} groups {} caps eff {} prm {} inh {} bnd {} amb {} securebits {}",
            t["tid"],
            t["uid"],
            t["gid"],
            t["groups"],
            t["cap_effective"].as_str().unwrap_or("?"),
            t["cap_permitted"].as_str().unwrap_or("?"),
            t["cap_inheritable"].as_str().unwrap_or("?"),
            t["cap_bounding"].as_str().unwrap_or("?"),
            t["cap_ambient"].as_str().unwrap_or("?"),
            t["securebits"],
        );
        let s = &t["sched"];
        let _ = writeln!(
            out,
            "    pdeathsig {} sched {}",
            t["pdeath_signal"],
            if s.is_null() {
                "not saved".to_owned()
            } else {
                format!(
                    "policy {} priority {} nice {}{}",
                    s["policy"],
                    s["priority"],
                    s["nice"],
                    if s["reset_on_fork"] == true {
                        " reset-on-fork"
                    } else {
                        ""
                    }
                )
            }
        );
    }
    for a in k["aio_rings"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  aio ring {:#x} nr {} head {} tail {}",
            a["addr"].as_u64().unwrap_or(0),
            a["nr"],
            a["head"],
            a["tail"]
        );
    }
    for c in k["cgroups"].as_array().into_iter().flatten() {
        let who = if c["tid"] == 0 {
            "process".to_owned()
        } else {
            format!("tid {}", c["tid"])
        };
        let _ = writeln!(
            out,
            "  cgroup {} ({who}): {}, {} saved settings",
            c["cgroup"].as_str().unwrap_or(""),
            c["dir"].as_str().unwrap_or(""),
            c["settings"].as_object().map_or(0, |m| m.len())
        );
    }
}

/// The `seccomp` array of `kckpt info --json` (format 1.8): one object per
/// thread under seccomp, with its mode and its filters (oldest first).
pub(crate) fn describe_seccomp(view: &ImageView<'_>) -> Value {
    use kckpt_image::seccomp::{of_thread, FILTER_FLAG_LOG, MODE_STRICT};
    let threads: Vec<Value> = view
        .threads()
        .filter_map(|t| {
            let s = of_thread(&t)?;
            let filters: Vec<Value> = s
                .filters()
                .map(|(f, _)| json!({ "insns": f.insn_count, "log": f.flags & FILTER_FLAG_LOG != 0 }))
                .collect();
            let mode = if s.record.mode == MODE_STRICT {
                "strict"
            } else {
                "filter"
            };
            Some(json!({ "tid": t.record.tid, "mode": mode, "filters": filters }))
        })
        .collect();
    Value::Array(threads)
}

/// The text lines for `seccomp`.
pub(crate) fn format_seccomp(out: &mut String, s: &Value) {
    for t in s.as_array().into_iter().flatten() {
        let filters: Vec<String> = t["filters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let log = if f["log"] == true { " (log)" } else { "" };
                format!("{} insns{log}", f["insns"])
            })
            .collect();
        let _ = if filters.is_empty() {
            writeln!(
                out,
                "seccomp:        tid {} {}",
                t["tid"],
                t["mode"].as_str().unwrap_or("?")
            )
        } else {
            writeln!(
                out,
                "seccomp:        tid {} filter, {} filters: {}",
                t["tid"],
                filters.len(),
                filters.join(", ")
            )
        };
    }
}
