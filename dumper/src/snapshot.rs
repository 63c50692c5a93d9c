//! `kckpt snapshot`: images of a running process taken at intervals with
//! `--leave-running`, under rotating names in one directory
//! (`snapshot-NNNNNN.kckpt`, numbered on from the highest already there),
//! keeping the newest few. Each image is committed whole (a dump writes a
//! temporary file and renames it), and older images are removed only
//! after a new one is complete: a failed snapshot never costs a good one.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What `kckpt snapshot` was asked.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// The process (with its descendants, as `kckpt dump`).
    pub pid: i32,
    /// The directory of the images (made when missing).
    pub dir: PathBuf,
    /// Time from the start of one snapshot to the start of the next.
    pub every: Duration,
    /// Images kept (the newest), at least 1.
    pub keep: usize,
    /// Stop after this many snapshots (`None`: until the process ends).
    pub count: Option<u64>,
    /// As `kckpt dump --skip-unsupported`.
    pub skip_unsupported: bool,
}

/// The sequence number of a snapshot file name.
fn sequence(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".kckpt")?;
    (digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The snapshots in `dir`, oldest first.
fn existing(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((sequence(e.file_name().to_str()?)?, e.path())))
        .collect();
    found.sort();
    found
}

/// Take snapshots until `count` is reached or the process is gone. The
/// first one failing is the command's error (a process kckpt refuses would
/// be refused every time); a later failure is one line, and the next
/// snapshot is tried at its time.
pub fn run(opts: &SnapshotOptions) -> Result<()> {
    let create = |source| Error::CreateImage {
        dir: opts.dir.clone(),
        source,
    };
    fs::create_dir_all(&opts.dir).map_err(create)?;
    let mut seq = existing(&opts.dir).last().map_or(0, |(n, _)| *n);
    let options = crate::dump::DumpOptions {
        leave_running: true,
        skip_unsupported: opts.skip_unsupported,
        ghost_limit: None,
        no_children: false,
        group: None,
        external: &[],
        tcp_close: false,
    };
    let mut taken = 0u64;
    loop {
        if !Path::new(&format!("/proc/{}", opts.pid)).exists() {
            if taken == 0 {
                return Err(Error::NoProcess(opts.pid));
            }
            eprintln!("kckpt: pid {} is gone; {taken} snapshot(s) taken", opts.pid);
            return Ok(());
        }
        let start = Instant::now();
        seq += 1;
        let path = opts.dir.join(format!("snapshot-{seq:06}.kckpt"));
        match crate::dump::dump(opts.pid, &path, &options) {
            Ok(summary) => {
                taken += 1;
                for w in &summary.warnings {
                    eprintln!("kckpt: {w}");
                }
                let size = fs::metadata(&path).map_or(0, |m| m.len());
                eprintln!(
                    "kckpt: snapshot {} of pid {}: {} ({size} bytes, {} ms)",
                    taken,
                    opts.pid,
                    path.display(),
                    start.elapsed().as_millis()
                );
                // Only now that the new one is whole: the oldest beyond `keep`.
                let all = existing(&opts.dir);
                for (_, old) in all.iter().take(all.len().saturating_sub(opts.keep.max(1))) {
                    let _ = fs::remove_file(old);
                }
            }
            Err(e @ (Error::NoProcess(_) | Error::TargetDied { .. })) if taken > 0 => {
                eprintln!("kckpt: {e}; {taken} snapshot(s) taken");
                return Ok(());
            }
            Err(e) if taken == 0 => return Err(e),
            Err(e) => eprintln!(
                "kckpt: snapshot of pid {} failed (older ones kept): {e}",
                opts.pid
            ),
        }
        if opts.count.is_some_and(|c| taken >= c) {
            return Ok(());
        }
        if let Some(rest) = opts.every.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_numbered() {
        assert_eq!(sequence("snapshot-000012.kckpt"), Some(12));
        assert_eq!(sequence("snapshot-1234567.kckpt"), Some(1_234_567));
        assert_eq!(sequence("snapshot-12.kckpt"), None);
        assert_eq!(sequence("snapshot-00001x.kckpt"), None);
        assert_eq!(sequence("other-000001.kckpt"), None);
        assert_eq!(sequence("snapshot-000001.kckpt.tmp"), None);
    }
}
