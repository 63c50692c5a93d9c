//! The checksum part of `kckpt info` (format 1.2): what the image carries,
//! and with `--verify` the check of every stored data chunk (memory runs,
//! descriptor data) against its checksum, naming the first bad one.

use std::path::Path;

use serde_json::{json, Value};

use kckpt_image::checksum::{check_chunks, regions, RegionKind, Sums};
use kckpt_image::ImageView;

use crate::error::{Error, Result};
use crate::info::Part;

/// Bytes read at once (a whole number of chunks).
const READ: u64 = 8 << 20;

/// What is known of the data checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataState {
    /// Not checked (no `--verify`).
    Unchecked,
    /// Every chunk matched.
    Ok,
}

/// Check every data chunk of the image at `path` (`file`: where it is); the first that does not
/// match is an [`Error::CorruptData`] naming it.
pub(crate) fn verify_data(
    file: &Part<'_>,
    path: &Path,
    view: &ImageView<'_>,
    sums: &Sums<'_>,
) -> Result<()> {
    let chunk = sums.chunk_size();
    let mut buf = vec![0u8; READ as usize];
    for r in regions(view, sums.chunk_shift()) {
        let mut done = 0u64;
        while done < r.len {
            let n = (r.len - done).min(READ);
            let piece = &mut buf[..n as usize];
            file.read_exact_at(piece, r.offset + done)
                .map_err(|source| Error::OpenImage {
                    path: path.to_path_buf(),
                    source,
                })?;
            if let Err(i) = check_chunks(sums, r.first_chunk + done / chunk, piece) {
                let at = done + i * chunk;
                return Err(Error::CorruptData {
                    path: path.to_path_buf(),
                    what: region_text(view, &r.kind, at, chunk.min(r.len - at), r.offset + at),
                });
            }
            done += n;
        }
    }
    Ok(())
}

/// `memory 0x7f12...-0x7f13... ([heap]) at file offset N` or `data of fd 5
/// at file offset N`: the chunk at `at` bytes into a region.
fn region_text(view: &ImageView<'_>, kind: &RegionKind, at: u64, len: u64, offset: u64) -> String {
    match *kind {
        RegionKind::Memory { vma, addr } => {
            let name = view
                .vmas
                .get(vma)
                .and_then(|v| view.string(v.name).ok())
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_else(|| "anonymous".to_owned());
            let start = addr + at;
            format!(
                "memory {start:#x}-{:#x} ({name}) at file offset {offset}",
                start + len
            )
        }
        RegionKind::Fd { fd } => format!("data of fd {fd} at file offset {offset}"),
        RegionKind::Ghost { ghost, file_offset } => {
            let name = view
                .ghosts
                .get(ghost)
                .and_then(|g| view.string(g.path).ok())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            format!(
                "content of the deleted file {name} at its offset {} (file offset {offset})",
                file_offset + at
            )
        }
        RegionKind::Sysv {
            segment,
            offset: in_seg,
        } => {
            let id = view.sysv_shm.get(segment).map_or(0, |s| s.id);
            format!(
                "content of SysV shared memory segment {id} at its offset {} (file offset {offset})",
                in_seg + at
            )
        }
    }
}

/// The `checksums` object of `kckpt info --json`.
pub fn describe(sums: Option<&Sums<'_>>, data: DataState) -> Value {
    match sums {
        None => json!({
            "algorithm": null,
            "metadata": "absent",
            "data": "absent",
        }),
        Some(s) => json!({
            "algorithm": "crc32c",
            "chunk_size": s.chunk_size(),
            "data_chunks": s.data_count(),
            "metadata": "ok",
            "data": if !s.has_data() {
                "absent"
            } else if data == DataState::Ok {
                "ok"
            } else {
                "unchecked"
            },
        }),
    }
}

/// The `checksums:` line of `kckpt info`.
pub fn format_text(out: &mut String, d: &Value) {
    use std::fmt::Write as _;
    let text = if d["algorithm"].is_null() {
        "none (an image of format 1.1 or older)".to_owned()
    } else {
        let data = match d["data"].as_str().unwrap_or("") {
            "ok" => format!(
                "data ok ({} chunks of {} KiB)",
                d["data_chunks"],
                d["chunk_size"].as_u64().unwrap_or(0) >> 10
            ),
            "unchecked" => "data not checked (kckpt info --verify checks it)".to_owned(),
            _ => "data carries none (written with KCKPT_NO_CHECKSUM=1)".to_owned(),
        };
        format!("crc32c; metadata ok; {data}")
    };
    let _ = writeln!(out, "checksums:      {text}");
}

/// Check the bytes every page reference of the sub-image `view` (format
/// 1.5) names in the whole file `whole` against the reference's checksum.
pub(crate) fn verify_shared(whole: &Part<'_>, path: &Path, view: &ImageView<'_>) -> Result<()> {
    let mut buf = vec![0u8; READ as usize];
    for r in view.page_refs.iter() {
        let mut hasher = kckpt_image::checksum::ChunkHasher::new();
        let mut done = 0u64;
        while done < r.len {
            let n = (r.len - done).min(READ);
            let piece = &mut buf[..n as usize];
            whole
                .read_exact_at(piece, r.outer_offset + done)
                .map_err(|source| Error::OpenImage {
                    path: path.to_path_buf(),
                    source,
                })?;
            hasher.update(piece);
            done += n;
        }
        if hasher.finish(&[]) != r.sum {
            return Err(Error::CorruptData {
                path: path.to_path_buf(),
                what: format!(
                    "memory {:#x}-{:#x} shared with an earlier process, at file offset {}",
                    r.start,
                    r.start + r.len,
                    r.outer_offset
                ),
            });
        }
    }
    Ok(())
}
