//! `kckpt extract --pid N FILE OUT`: the core image of one process of a
//! process tree (format 1.4), for `gdb PROGRAM OUT` or `kckpt info OUT`.
//!
//! - A process with a sub-image: the sub-image's bytes as they are (its
//!   offsets are relative to its own start); when it shares pages with
//!   earlier processes of the tree (format 1.6), those are copied in and
//!   its metadata rewritten, so the result stands alone.
//! - The root (the image's own process): the image without its four tree
//!   notes (the checksum note shrinks with them and the metadata is
//!   resealed), without the sub-images and the pipe data of the tree's
//!   shared descriptions (not copied: holes, or cut off when at the end).
//! - A single-process image and its own pid: a copy.
//!
//! The copy skips holes (`SEEK_DATA`) and goes through the same temporary
//! file and atomic commit as a dump (`dump::output::TempImage`); the result
//! is checked as `kckpt info --verify` would before it gets its name.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

use kckpt_image::checksum::{chunk_count, note_spans, regions};
use kckpt_image::read::{program_headers, read_record, record_bytes, EHDR_SIZE, PT_LOAD};
use kckpt_image::records::{checksum_flags, ChecksumsRecord, NOTE_OWNER, NT_KCKPT_CHECKSUMS};
use kckpt_image::tree::{
    proc_state, NT_KCKPT_TREE, NT_KCKPT_TREE_PROCS, NT_KCKPT_TREE_SLOTS, NT_KCKPT_TREE_USES,
};
use kckpt_image::ImageView;

use crate::dump::output::TempImage;
use crate::error::{Error, Result};
use crate::info::{checked, load, Loaded, Part};
use crate::info_tree::{check_subimages, select, Selected};

/// Size of an ELF64 program header.
const PHDR_SIZE: usize = 56;
/// `p_type` of the note segment.
const PT_NOTE: u32 = 4;
/// Bytes copied at once when `copy_file_range` cannot be used.
const BUF: usize = 1 << 20;

/// `kckpt extract --pid PID FILE OUT` (`OUT` `-`: standard output).
pub fn extract(path: &Path, pid: u32, out: &Path) -> Result<()> {
    kckpt_image_write::init_checksums();
    let input = crate::input::open(path, false)?;
    let path = input.name.as_path();
    let whole = Part::whole(&input.file, path)?;
    let loaded = load(&whole, path)?;
    let (view, _) = checked(&loaded, path)?;
    check_subimages(&whole, path, &view, false)?;
    let chosen = select(&whole, &view, path, pid)?;
    let to_stdout = crate::input::is_stdin(out);
    if to_stdout {
        crate::dump::output::check_stdout()?;
    }
    let mut temp = if to_stdout {
        TempImage::for_stream()?
    } else {
        TempImage::create(out)?
    };
    let file = temp.file()?;
    let out_name = temp.path();
    let werr = |source| Error::WriteImage {
        path: out_name.clone(),
        source,
    };
    match chosen {
        Selected::Sub { part, index } => {
            let name = crate::info_tree::sub_name(path, index, &view);
            let sub = load(&part, &name)?;
            let (sview, _) = checked(&sub, &name)?;
            if sview.page_refs.is_empty() {
                copy_data(&part, 0..part.len, &file).map_err(werr)?;
                file.set_len(part.len).map_err(werr)?;
            } else {
                with_shared_pages(&whole, &part, &sub, &sview, &file).map_err(werr)?;
            }
        }
        Selected::Own if view.tree.is_none() => {
            copy_data(&whole, 0..whole.len, &file).map_err(werr)?;
            file.set_len(whole.len).map_err(werr)?;
        }
        Selected::Own => root_without_tree(&whole, &loaded, &view, &file).map_err(werr)?,
    }
    check_output(&file, &out_name)?;
    temp.commit(&|| Ok(()))
}

/// Check the image just written as `kckpt info --verify` does (metadata,
/// registers, data checksums), naming it by `name`.
fn check_output(file: &File, name: &Path) -> Result<()> {
    let part = Part::whole(file, name)?;
    let loaded = load(&part, name)?;
    let (view, sums) = checked(&loaded, name)?;
    if let Some(s) = sums.as_ref().filter(|s| s.has_data()) {
        crate::info_verify::verify_data(&part, name, &view, s)?;
    }
    Ok(())
}

/// Write the root of the tree image `whole` alone to `out`: its own bytes
/// (its data, without the sub-images, the tree's pipe data and the old
/// notes and program headers), then right after its data the notes
/// without the tree notes and the program header table (the note
/// segment's new place and size), the ELF header pointing at it, all
/// resealed.
fn root_without_tree(
    whole: &Part<'_>,
    loaded: &Loaded,
    view: &ImageView<'_>,
    out: &File,
) -> io::Result<()> {
    let bad = |e: kckpt_image::FormatError| io::Error::other(e.to_string());
    let (note_off, note_size) =
        kckpt_image::read::note_segment(&loaded.phdrs, loaded.file_len).map_err(bad)?;
    let mut notes = without_tree_notes(&loaded.notes, view)?;
    let mut phdrs = loaded.phdrs.clone();
    let entry = program_headers(&phdrs)
        .position(|p| p.p_type == PT_NOTE)
        .ok_or_else(|| io::Error::other("no note segment"))?;
    let at = entry * PHDR_SIZE + 32;
    phdrs[at..at + 8].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    let old_phoff = u64::from_le_bytes(loaded.ehdr[32..40].try_into().unwrap_or([0; 8]));
    // The end of the root's own data; the notes and the program header
    // table go right after it (as the writer puts them after the data).
    let mut end = EHDR_SIZE as u64;
    for p in program_headers(&phdrs).filter(|p| p.p_type == PT_LOAD && p.p_filesz > 0) {
        end = end.max(p.p_offset + p.p_filesz);
    }
    for r in regions(view, 12) {
        end = end.max(r.offset + r.len);
    }
    let mut skip: Vec<Range<u64>> = tree_ranges(view);
    skip.push(note_off..note_off + note_size);
    skip.push(old_phoff..old_phoff + phdrs.len() as u64);
    let notes_at = end.next_multiple_of(8);
    let phoff = (notes_at + notes.len() as u64).next_multiple_of(8);
    let at = entry * PHDR_SIZE + 8;
    phdrs[at..at + 8].copy_from_slice(&notes_at.to_le_bytes());
    // Areas without stored pages point at the notes (as the writer does),
    // which moved.
    let empty: Vec<usize> = program_headers(&phdrs)
        .enumerate()
        .filter(|(_, p)| p.p_type == PT_LOAD && p.p_filesz == 0)
        .map(|(k, _)| k * PHDR_SIZE + 8)
        .collect();
    for at in empty {
        phdrs[at..at + 8].copy_from_slice(&notes_at.to_le_bytes());
    }
    let mut ehdr = loaded.ehdr.clone();
    ehdr[32..40].copy_from_slice(&phoff.to_le_bytes());
    kckpt_image_write::reseal_parts(&ehdr, &phdrs, &mut notes)?;
    for keep in complement(0..end, skip) {
        copy_data(whole, keep, out)?;
    }
    out.write_all_at(&ehdr[..EHDR_SIZE], 0)?;
    out.write_all_at(&notes, notes_at)?;
    out.write_all_at(&phdrs, phoff)?;
    out.set_len(phoff + phdrs.len() as u64)
}

/// Write the sub-image `part` (its metadata `sub`, view `view`) of the
/// tree image `whole` as a standalone image to `out`, with the pages it
/// shares with earlier processes (format 1.6) copied in: its data as it
/// is, each shared page at its place in its memory area's region (the
/// writer gives every area with stored pages a region as large as the
/// area; an area with none gets one after the data), then the notes with
/// the merged runs, without `NT_KCKPT_PAGE_REFS`, their checksums
/// (the runs' data checksums computed again) and the program headers
/// rewritten.
fn with_shared_pages(
    whole: &Part<'_>,
    part: &Part<'_>,
    sub: &Loaded,
    view: &ImageView<'_>,
    out: &File,
) -> io::Result<()> {
    use kckpt_image::checksum::chunk_sum;
    use kckpt_image::pagerefs::NT_KCKPT_PAGE_REFS;
    use kckpt_image::records::{RunRecord, VmaRecord, NT_KCKPT_RUNS, NT_KCKPT_VMAS};
    let bad = |e: kckpt_image::FormatError| io::Error::other(e.to_string());
    let page = u64::from(view.header.page_size);
    let (note_off, _) = kckpt_image::read::note_segment(&sub.phdrs, sub.file_len).map_err(bad)?;
    copy_data(part, 0..note_off, out)?;
    let mut next = note_off.next_multiple_of(page);
    let mut vmas: Vec<VmaRecord> = Vec::new();
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut buf = vec![0u8; BUF];
    for vma in view.vmas.iter() {
        let old: Vec<RunRecord> = view.runs_of(&vma).collect();
        let refs: Vec<_> = view
            .page_refs
            .iter()
            .filter(|r| r.start >= vma.start && r.start < vma.end)
            .collect();
        let mut v = vma;
        v.first_run = runs.len() as u32;
        if refs.is_empty() {
            runs.extend_from_slice(&old);
            vmas.push(v);
            continue;
        }
        // The area's region: where its runs are, or a new one.
        let base = match old.first() {
            Some(r) => r.offset - (r.start - vma.start),
            None => {
                let b = next;
                next += vma.end - vma.start;
                b
            }
        };
        if old.iter().any(|r| r.offset - (r.start - vma.start) != base) {
            return Err(io::Error::other(
                "a memory area's pages are not stored linearly: cannot add its shared pages",
            ));
        }
        let mut merged: Vec<RunRecord> = old;
        for r in &refs {
            let at = base + (r.start - vma.start);
            let mut done = 0u64;
            while done < r.len {
                let n = (r.len - done).min(BUF as u64) as usize;
                whole.read_exact_at(&mut buf[..n], r.outer_offset + done)?;
                out.write_all_at(&buf[..n], at + done)?;
                done += n as u64;
            }
            merged.push(RunRecord {
                start: r.start,
                len: r.len,
                offset: at,
            });
        }
        merged.sort_by_key(|r| r.start);
        let first = runs.len();
        for r in merged {
            match runs[first..].last_mut() {
                Some(l) if l.start + l.len == r.start && l.offset + l.len == r.offset => {
                    l.len += r.len
                }
                _ => runs.push(r),
            }
        }
        v.run_count = (runs.len() - first) as u32;
        v.stored_bytes = runs[first..].iter().map(|r| r.len).sum();
        vmas.push(v);
    }
    let data_end = next;
    // Data checksums: the runs' again (read back), the others as they were.
    let desc = note_spans(&sub.notes)
        .find(|(n, _)| n.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS))
        .map(|(n, _)| n.desc)
        .ok_or_else(|| io::Error::other("no checksum note"))?;
    let mut record: ChecksumsRecord =
        read_record(desc).ok_or_else(|| io::Error::other("short checksum note"))?;
    let data_at = record.sums_offset as usize + 4 * record.note_count as usize;
    let old_data = desc
        .get(data_at..desc.len().saturating_sub(4))
        .ok_or_else(|| io::Error::other("short checksum note"))?;
    let mut data = Vec::new();
    if record.flags & checksum_flags::NO_DATA == 0 {
        let chunk = 1usize << record.chunk_shift;
        let old_runs: u64 = view
            .runs
            .iter()
            .map(|r| chunk_count(r.len, record.chunk_shift))
            .sum();
        let rest = old_data
            .get(4 * old_runs as usize..)
            .ok_or_else(|| io::Error::other("short checksum note"))?;
        let mut piece = vec![0u8; chunk];
        for r in &runs {
            let mut done = 0u64;
            while done < r.len {
                let n = (r.len - done).min(chunk as u64) as usize;
                out.read_exact_at(&mut piece[..n], r.offset + done)?;
                data.extend_from_slice(&chunk_sum(&piece[..n]).to_le_bytes());
                done += n as u64;
            }
        }
        data.extend_from_slice(rest);
    }
    // The notes: VMAs and runs replaced, the references dropped.
    let mut notes = Vec::with_capacity(sub.notes.len());
    let mut kept = 0usize;
    let table = |bytes: &mut Vec<u8>, kind: u32, recs: &[u8]| {
        let mut b = kckpt_image_write::NoteBuf::default();
        b.push(NOTE_OWNER, kind, recs);
        bytes.extend_from_slice(b.as_bytes());
    };
    for (note, span) in note_spans(&sub.notes) {
        if note.owner == NOTE_OWNER {
            match note.kind {
                NT_KCKPT_CHECKSUMS | NT_KCKPT_PAGE_REFS => continue,
                NT_KCKPT_VMAS => {
                    let b: Vec<u8> = vmas.iter().flat_map(|v| record_bytes(v).to_vec()).collect();
                    table(&mut notes, NT_KCKPT_VMAS, &b);
                    kept += 1;
                    continue;
                }
                NT_KCKPT_RUNS => {
                    let b: Vec<u8> = runs.iter().flat_map(|r| record_bytes(r).to_vec()).collect();
                    table(&mut notes, NT_KCKPT_RUNS, &b);
                    kept += 1;
                    continue;
                }
                _ => {}
            }
        }
        notes.extend_from_slice(span);
        kept += 1;
    }
    record.note_count = kept as u32;
    record.data_count = (data.len() / 4) as u32;
    let mut new = record_bytes(&record).to_vec();
    new.resize(record.sums_offset as usize + 4 * kept, 0);
    new.extend_from_slice(&data);
    new.extend_from_slice(&[0; 4]);
    table(&mut notes, NT_KCKPT_CHECKSUMS, &new);
    // Program headers: the note segment's new place, each area's data.
    let notes_at = data_end;
    let phoff = (notes_at + notes.len() as u64).next_multiple_of(8);
    let mut phdrs = sub.phdrs.clone();
    let mut loads = vmas.iter();
    for (k, p) in program_headers(&sub.phdrs).enumerate() {
        let at = k * PHDR_SIZE;
        if p.p_type == PT_NOTE {
            phdrs[at + 8..at + 16].copy_from_slice(&notes_at.to_le_bytes());
            phdrs[at + 32..at + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        } else if p.p_type == PT_LOAD {
            let v = loads
                .next()
                .filter(|v| v.start == p.p_vaddr)
                .ok_or_else(|| io::Error::other("program headers do not match the memory areas"))?;
            let (offset, filesz) = match runs.get(v.first_run as usize) {
                Some(r) if v.run_count > 0 => (r.offset - (r.start - v.start), v.end - v.start),
                _ => (notes_at, 0),
            };
            phdrs[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            phdrs[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
        }
    }
    let mut ehdr = sub.ehdr.clone();
    ehdr[32..40].copy_from_slice(&phoff.to_le_bytes());
    kckpt_image_write::reseal_parts(&ehdr, &phdrs, &mut notes)?;
    out.write_all_at(&ehdr[..EHDR_SIZE], 0)?;
    out.write_all_at(&notes, notes_at)?;
    out.write_all_at(&phdrs, phoff)?;
    out.set_len(phoff + phdrs.len() as u64)
}

/// The byte ranges of the tree image `view` that belong to the tree, not
/// to the root: the sub-images, the bytes in flight of shared pipes and the
/// state of pseudo-terminal pairs.
fn tree_ranges(view: &ImageView<'_>) -> Vec<Range<u64>> {
    let subs = view
        .tree_procs
        .iter()
        .skip(1)
        .filter(|p| p.state == proc_state::LIVE)
        .map(|p| p.image_offset..p.image_offset + p.image_len);
    let pipes = view
        .tree_slots
        .iter()
        .filter(|s| s.data_len > 0)
        .map(|s| s.data_offset..s.data_offset + s.data_len);
    subs.chain(pipes).collect()
}

/// The parts of `all` that no range of `skip` covers, in order.
fn complement(all: Range<u64>, mut skip: Vec<Range<u64>>) -> Vec<Range<u64>> {
    skip.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    let mut at = all.start;
    for s in skip {
        if s.start > at {
            out.push(at..s.start.min(all.end));
        }
        at = at.max(s.end);
        if at >= all.end {
            break;
        }
    }
    if at < all.end {
        out.push(at..all.end);
    }
    out.retain(|r| r.start < r.end);
    out
}

/// The note segment `notes` (of the image `view`) without the four tree
/// notes, ending with a checksum note sized for the notes that remain (its
/// checksums are filled by `reseal_parts`) and without the data checksums
/// of the tree's pipe data (the last ones: `checksum::regions`).
pub(crate) fn without_tree_notes(notes: &[u8], view: &ImageView<'_>) -> io::Result<Vec<u8>> {
    let tree_kinds = [
        NT_KCKPT_TREE,
        NT_KCKPT_TREE_PROCS,
        NT_KCKPT_TREE_SLOTS,
        NT_KCKPT_TREE_USES,
    ];
    let mut out = Vec::with_capacity(notes.len());
    let mut kept = 0usize;
    let mut sums = None;
    for (note, span) in note_spans(notes) {
        if note.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS) {
            sums = Some(note.desc);
        } else if !(note.owner == NOTE_OWNER && tree_kinds.contains(&note.kind)) {
            out.extend_from_slice(span);
            kept += 1;
        }
    }
    let desc = sums.ok_or_else(|| io::Error::other("no checksum note"))?;
    let mut record: ChecksumsRecord =
        read_record(desc).ok_or_else(|| io::Error::other("short checksum note"))?;
    let data_at = record.sums_offset as usize + 4 * record.note_count as usize;
    let data = desc
        .get(data_at..desc.len().saturating_sub(4))
        .ok_or_else(|| io::Error::other("short checksum note"))?;
    let tree_chunks: u64 = if record.flags & checksum_flags::NO_DATA != 0 {
        0
    } else {
        view.tree_slots
            .iter()
            .map(|s| chunk_count(s.data_len, record.chunk_shift))
            .sum()
    };
    let keep = (data.len() / 4)
        .checked_sub(tree_chunks as usize)
        .ok_or_else(|| io::Error::other("fewer data checksums than the tree's pipe data needs"))?;
    let data = &data[..keep * 4];
    record.data_count = keep as u32;
    record.note_count = kept as u32;
    let mut new = record_bytes(&record).to_vec();
    new.resize(record.sums_offset as usize + 4 * kept, 0);
    new.extend_from_slice(data);
    new.extend_from_slice(&[0; 4]);
    let mut buf = kckpt_image_write::NoteBuf::default();
    buf.push(NOTE_OWNER, NT_KCKPT_CHECKSUMS, &new);
    out.extend_from_slice(buf.as_bytes());
    Ok(out)
}

/// Copy bytes `range` of `src` (offsets in the part) to the same offsets
/// of `dst`, skipping the holes of the source file.
fn copy_data(src: &Part<'_>, range: Range<u64>, dst: &File) -> io::Result<()> {
    let fd = src.file.as_fd();
    let mut at = range.start;
    while at < range.end {
        let abs = src.base + at;
        let data = match lseek(fd, abs as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(Errno::ENXIO) => return Ok(()),
            Err(Errno::EINVAL) => abs,
            Err(e) => return Err(e.into()),
        };
        let hole = match lseek(fd, data as i64, Whence::SeekHole) {
            Ok(h) => h as u64,
            Err(_) => src.base + range.end,
        };
        let from = data.max(abs) - src.base;
        let to = (hole - src.base).min(range.end);
        if from >= range.end {
            return Ok(());
        }
        copy_bytes(src, from..to, dst)?;
        at = to.max(from + 1);
    }
    Ok(())
}

/// Copy bytes `r` of `src` (no holes assumed) to `dst`:
/// `copy_file_range`, or reads and writes where it cannot.
fn copy_bytes(src: &Part<'_>, r: Range<u64>, dst: &File) -> io::Result<()> {
    let mut at = r.start;
    while at < r.end {
        let mut off_in = (src.base + at) as i64;
        let mut off_out = at as i64;
        let want = (r.end - at).min(1 << 30) as usize;
        match nix::fcntl::copy_file_range(
            src.file,
            Some(&mut off_in),
            dst,
            Some(&mut off_out),
            want,
        ) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n as u64,
            Err(Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                return copy_by_reads(src, at..r.end, dst);
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// [`copy_bytes`] with `pread`/`pwrite`.
fn copy_by_reads(src: &Part<'_>, r: Range<u64>, dst: &File) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    let mut at = r.start;
    while at < r.end {
        let n = (r.end - at).min(BUF as u64) as usize;
        src.read_exact_at(&mut buf[..n], at)?;
        dst.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn complement_of_ranges() {
        assert_eq!(complement(0..100, vec![]), vec![0..100]);
        assert_eq!(
            complement(0..100, vec![50..60, 10..20]),
            vec![0..10, 20..50, 60..100]
        );
        assert_eq!(complement(0..100, vec![0..10, 90..200]), vec![10..90]);
        assert_eq!(complement(0..100, vec![0..100]), Vec::<Range<u64>>::new());
        assert_eq!(complement(0..100, vec![5..30, 10..20]), vec![0..5, 30..100]);
    }
}
