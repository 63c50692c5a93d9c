//! Pages shared between the processes of a tree (format 1.6, issue 9):
//! a page a process shares with an earlier process of the tree (the root,
//! or a sub-image placed before it) is not stored again; its sub-image's
//! `NT_KCKPT_PAGE_REFS` note names the bytes already in the file.
//!
//! Two pages are the same when `/proc/PID/pagemap` gives both the same
//! non-zero page frame (readable with `CAP_SYS_ADMIN`; every process of
//! the tree is stopped, so frames stay put): such a page is not even
//! read. (A page can still migrate to another frame, and its frame be
//! reused, while processes are stopped: each reference found by frame is
//! confirmed by reading the earlier process's pagemap again after the
//! later one's; a page that moved fails the dump, which can be run again.)
//! Without frame numbers (an unprivileged dump) a page is read, and
//! one whose content hash (its four CRC-32C lanes) matches a stored page
//! is compared byte for byte with that page's bytes in the file before it
//! is shared; a hash alone is never trusted.
//!
//! Each stored page keeps the raw CRC-32C lane states of its bytes: the
//! checksum a reference carries (`chunk_sum` of its whole range) is
//! combined from them without reading the bytes again (CRC-32C is linear:
//! the lanes of `A || B` are the lanes of `A` shifted over `B`'s length,
//! XOR those of `B`).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use kckpt_image::checksum::{crc32c_raw, finish_lanes, zero_lanes, LANES};
use kckpt_image::pagerefs::PageRefRecord;

use crate::error::{Error, Result};

/// The raw CRC-32C lane states of one page (from the state 0).
pub type Lanes = [u32; LANES];

/// pagemap: the page frame number bits.
const PFN_MASK: u64 = (1 << 55) - 1;

/// The page frame of a pagemap entry (0 when not present or not readable).
pub fn pfn(pm: u64) -> u64 {
    if pm & super::memory::PM_PRESENT != 0 {
        pm & PFN_MASK
    } else {
        0
    }
}

/// A page a process stored: its frame (0 if unknown), its offset in the
/// process's own image, the lanes of its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Stored {
    /// Page frame number, 0 if not readable.
    pub pfn: u64,
    /// Its address in the process.
    pub addr: u64,
    /// Offset in the image that stored it (relative to its start).
    pub offset: u64,
    /// Lane states of its bytes.
    pub lanes: Lanes,
}

/// A stored page found by its frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// Its bytes' offset in the file.
    pub at: u64,
    /// Their lanes.
    pub lanes: Lanes,
    /// The process that stored it (index of its pagemap).
    src: u32,
    /// Its address there.
    addr: u64,
    /// The frame.
    pfn: u64,
}

/// Every page stored so far in the tree's file, by frame or by content.
pub struct Index {
    /// Frames are readable: pages are matched by frame.
    by_frame: Option<bool>,
    frames: HashMap<u64, Frame>,
    /// The pagemap of each process added, by frame (pid, file).
    pagemaps: Vec<(i32, File)>,
    contents: HashMap<Lanes, u64>,
    /// The file being written (pages compared byte for byte).
    outer: File,
    page: usize,
    /// Columns of the operator that runs a raw lane state over one
    /// page's share of zero bytes (`page / 4`).
    shift: [u32; 32],
}

impl Index {
    /// An empty index for the file `outer` (a descriptor that can read it).
    pub fn new(outer: File, page: u64) -> Index {
        let zeros = vec![0u8; page as usize / LANES];
        let mut shift = [0u32; 32];
        for (j, col) in shift.iter_mut().enumerate() {
            *col = crc32c_raw(1 << j, &zeros);
        }
        Index {
            by_frame: None,
            frames: HashMap::new(),
            pagemaps: Vec::new(),
            contents: HashMap::new(),
            outer,
            page: page as usize,
            shift,
        }
    }

    /// Add the pages a process stored in its image at file offset `base`.
    /// The first process (the root) decides how pages are matched: by
    /// frame when its pagemap showed frame numbers.
    /// `pid`: the process, whose pagemap confirms references by frame.
    pub fn add(&mut self, stored: &[Stored], base: u64, pid: i32) -> Result<()> {
        let by_frame = *self
            .by_frame
            .get_or_insert_with(|| stored.iter().any(|s| s.pfn != 0));
        let src = self.pagemaps.len() as u32;
        if by_frame {
            let path = super::procfs::proc_path(pid, "pagemap");
            let file = File::open(&path).map_err(|source| Error::Read { path, source })?;
            self.pagemaps.push((pid, file));
        }
        for s in stored {
            let at = base + s.offset;
            if by_frame {
                if s.pfn != 0 {
                    self.frames.entry(s.pfn).or_insert(Frame {
                        at,
                        lanes: s.lanes,
                        src,
                        addr: s.addr,
                        pfn: s.pfn,
                    });
                }
            } else {
                self.contents.entry(s.lanes).or_insert(at);
            }
        }
        Ok(())
    }

    /// Are pages matched by frame (known once the root is added)?
    pub fn by_frame(&self) -> bool {
        self.by_frame == Some(true)
    }

    fn shift(&self, x: u32) -> u32 {
        let mut out = 0;
        for (j, col) in self.shift.iter().enumerate() {
            if x >> j & 1 != 0 {
                out ^= col;
            }
        }
        out
    }
}

/// Where the bytes of a reference found by frames are: the process that
/// stored them, their first address there, the frames.
type Source = (u32, u64, Vec<u64>);

/// One process's side of the index while its memory is dumped.
pub struct Session<'a> {
    index: &'a Index,
    /// The pages it stored.
    pub stored: Vec<Stored>,
    /// Its references, sorted.
    pub refs: Vec<PageRefRecord>,
    /// The reference being extended: record and combined lanes, and for
    /// one found by frames: the process that stored the bytes, their
    /// first address there and the frames.
    current: Option<(PageRefRecord, Lanes, Option<Source>)>,
}

impl<'a> Session<'a> {
    /// A session for the next process.
    pub fn new(index: &'a Index) -> Session<'a> {
        Session {
            index,
            stored: Vec::new(),
            refs: Vec::new(),
            current: None,
        }
    }

    /// The stored page the page with pagemap entry `pm` is, when pages
    /// are matched by frame.
    pub fn by_frame(&self, pm: u64) -> Option<Frame> {
        if !self.index.by_frame() {
            return None;
        }
        match pfn(pm) {
            0 => None,
            f => self.index.frames.get(&f).copied(),
        }
    }

    /// Are pages matched by content?
    pub fn by_content(&self) -> bool {
        self.index.by_frame == Some(false)
    }

    /// The stored page whose bytes are `bytes` (a page), when pages are
    /// matched by content: same lanes, then the same bytes in the file.
    pub fn by_bytes(&self, bytes: &[u8], lanes: &Lanes, buf: &mut [u8]) -> Option<u64> {
        let at = *self.index.contents.get(lanes)?;
        let buf = &mut buf[..bytes.len()];
        self.index.outer.read_exact_at(buf, at).ok()?;
        (buf == bytes).then_some(at)
    }

    /// The page at `addr` is the stored page at `outer` with `lanes`
    /// (found by content).
    pub fn share(&mut self, addr: u64, outer: u64, lanes: &Lanes) -> Result<()> {
        self.extend(addr, outer, lanes, None)
    }

    /// The page at `addr` is the stored page `f` (found by frame).
    pub fn share_frame(&mut self, addr: u64, f: &Frame) -> Result<()> {
        self.extend(addr, f.at, &f.lanes, Some((f.src, f.addr, f.pfn)))
    }

    fn extend(
        &mut self,
        addr: u64,
        outer: u64,
        lanes: &Lanes,
        frame: Option<(u32, u64, u64)>,
    ) -> Result<()> {
        let page = self.index.page as u64;
        if let Some((r, l, check)) = &mut self.current {
            let follows = r.start + r.len == addr && r.outer_offset + r.len == outer;
            let same_source = match (check.as_mut(), frame) {
                (None, None) => true,
                (Some((src, start, pfns)), Some((s, a, pfn))) => {
                    let ok = *src == s && *start + r.len == a;
                    if ok && follows {
                        pfns.push(pfn);
                    }
                    ok
                }
                _ => false,
            };
            if follows && same_source {
                r.len += page;
                for (a, b) in l.iter_mut().zip(lanes) {
                    *a = self.index.shift(*a) ^ b;
                }
                return Ok(());
            }
        }
        self.end()?;
        let mut l = [!0u32; LANES];
        for (a, b) in l.iter_mut().zip(lanes) {
            *a = self.index.shift(*a) ^ b;
        }
        self.current = Some((
            PageRefRecord {
                start: addr,
                len: page,
                outer_offset: outer,
                sum: 0,
                reserved: 0,
            },
            l,
            frame.map(|(src, a, pfn)| (src, a, vec![pfn])),
        ));
        Ok(())
    }

    /// End the reference being extended (at the end of a memory area).
    /// One found by frames is confirmed: the process that stored its
    /// bytes still has those frames at those addresses.
    pub fn end(&mut self) -> Result<()> {
        if let Some((mut r, l, check)) = self.current.take() {
            if let Some((src, start, pfns)) = check {
                self.confirm(src, start, &pfns)?;
            }
            r.sum = finish_lanes(&l);
            self.refs.push(r);
        }
        Ok(())
    }

    /// Do the pages from `start` of process `src` still have frames
    /// `pfns`?
    fn confirm(&self, src: u32, start: u64, pfns: &[u64]) -> Result<()> {
        let Some((pid, file)) = self.index.pagemaps.get(src as usize) else {
            return Err(Error::Unsupported {
                pid: 0,
                reason: "internal error: no pagemap for a shared page".into(),
            });
        };
        let mut bytes = vec![0u8; pfns.len() * 8];
        let page = self.index.page as u64;
        let read = file.read_exact_at(&mut bytes, start / page * 8);
        let same = read.is_ok()
            && bytes.chunks_exact(8).zip(pfns).all(|(b, &want)| {
                pfn(u64::from_le_bytes(b.try_into().unwrap_or_default())) == want
            });
        if same {
            Ok(())
        } else {
            Err(Error::Unsupported {
                pid: *pid,
                reason: "a page it shares with a later process of the tree moved to another \
                         page frame during the dump (page migration): dump again"
                    .into(),
            })
        }
    }

    /// Record a stored page.
    pub fn stored(&mut self, pm: u64, addr: u64, offset: u64, lanes: Lanes) {
        self.stored.push(Stored {
            pfn: pfn(pm),
            addr,
            offset,
            lanes,
        });
    }

    /// The lanes of a page.
    pub fn lanes(bytes: &[u8]) -> Lanes {
        zero_lanes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kckpt_image::checksum::chunk_sum;

    #[test]
    fn combined_lanes_are_the_chunk_sum_of_the_range() {
        let dir = std::env::temp_dir().join(format!("kckpt-dedup-{}", std::process::id()));
        let file = File::create(&dir).unwrap();
        let index = Index::new(file, 4096);
        let _ = std::fs::remove_file(&dir);
        let mut bytes = vec![0u8; 3 * 4096];
        let mut x = 12345u64;
        for b in bytes.iter_mut() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (x >> 33) as u8;
        }
        let mut s = Session::new(&index);
        for (k, p) in bytes.chunks(4096).enumerate() {
            let l = Session::lanes(p);
            s.share(0x10000 + k as u64 * 4096, 0x40000 + k as u64 * 4096, &l)
                .unwrap();
        }
        s.end().unwrap();
        assert_eq!(s.refs.len(), 1);
        assert_eq!(s.refs[0].len, 3 * 4096);
        assert_eq!(s.refs[0].sum, chunk_sum(&bytes));
    }
}
