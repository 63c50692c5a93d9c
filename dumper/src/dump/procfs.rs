//! Parsing of the target's `/proc/PID` files: `maps` (with `smaps` VmFlags),
//! `stat` (state, flags, mm fields), `status`, `auxv`, `cmdline`, `comm`,
//! `task`. Pure parsers are separate from the file reads so they are
//! unit-tested on fixed text.

use std::fs;
use std::path::PathBuf;

use kckpt_image::records::{prot, vma_flags, vma_kind, MmRecord};

use crate::error::{Error, Result};

/// `/proc/PID/NAME`.
pub fn proc_path(pid: i32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

/// Read `/proc/PID/NAME` whole.
pub fn read(pid: i32, name: &str) -> Result<Vec<u8>> {
    let path = proc_path(pid, name);
    fs::read(&path).map_err(|source| Error::Read { path, source })
}

fn read_string(pid: i32, name: &str) -> Result<String> {
    Ok(String::from_utf8_lossy(&read(pid, name)?).into_owned())
}

fn parse_error(pid: i32, name: &str, what: impl Into<String>) -> Error {
    Error::Parse {
        path: proc_path(pid, name),
        what: what.into(),
    }
}

/// Number of threads (entries of `/proc/PID/task`).
pub fn thread_count(pid: i32) -> Result<usize> {
    let path = proc_path(pid, "task");
    let dir = fs::read_dir(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    Ok(dir.filter_map(|e| e.ok()).count())
}

/// One line of `/proc/PID/maps`, plus the VmFlags of `smaps`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapEntry {
    /// First address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// `prot::*` bits.
    pub prot: u32,
    /// `MAP_SHARED` (`s`), otherwise private (`p`).
    pub shared: bool,
    /// File offset.
    pub offset: u64,
    /// `major << 32 | minor`.
    pub dev: u64,
    /// Inode.
    pub inode: u64,
    /// The path or pseudo-name, empty for anonymous memory.
    pub name: String,
    /// The two-letter VmFlags of smaps (empty when not known).
    pub vm_flags: Vec<String>,
    /// `Rss` + `Swap` of smaps in kB, `None` when not known: 0 means no
    /// page of the area is present or swapped (its pagemap need not be read).
    pub resident_kb: Option<u64>,
}

impl MapEntry {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Is the range empty?
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The `vma_kind::*` of this entry.
    pub fn kind(&self) -> u32 {
        match self.name.as_str() {
            "[heap]" => vma_kind::HEAP,
            "[stack]" => vma_kind::STACK,
            "[vdso]" => vma_kind::VDSO,
            "[vvar]" => vma_kind::VVAR,
            "[vvar_vclock]" => vma_kind::VVAR_VCLOCK,
            "[vsyscall]" => vma_kind::VSYSCALL,
            n if n.starts_with('/') => vma_kind::FILE,
            _ => vma_kind::ANONYMOUS,
        }
    }

    /// `vma_flags::*` bits from the sharing mode and VmFlags (without
    /// `FILE_UNAVAILABLE`, which needs a look at the file).
    pub fn flags(&self) -> u32 {
        let mut f = if self.shared { vma_flags::SHARED } else { 0 };
        for flag in &self.vm_flags {
            f |= match flag.as_str() {
                "gd" => vma_flags::GROWSDOWN,
                "dd" => vma_flags::DONTDUMP,
                "hg" => vma_flags::HUGEPAGE,
                "nh" => vma_flags::NOHUGEPAGE,
                "dc" => vma_flags::DONTCOPY,
                "wf" => vma_flags::WIPEONFORK,
                "lo" => vma_flags::LOCKED,
                "sr" => vma_flags::SEQ_READ,
                "rr" => vma_flags::RAND_READ,
                "lf" => vma_flags::LOCKONFAULT,
                "nr" => vma_flags::NORESERVE,
                "mg" => vma_flags::MERGEABLE,
                "dp" => vma_flags::DROPPABLE,
                _ => 0,
            };
        }
        f
    }
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// Parse one line of `/proc/PID/maps`.
pub fn parse_maps_line(line: &str) -> Option<MapEntry> {
    // start-end perms offset MM:mm inode [name]; the name may contain spaces.
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (f, r) = trimmed.split_at(end);
        rest = r;
        if f.is_empty() {
            None
        } else {
            Some(f)
        }
    };
    let range = field()?;
    let perms = field()?.as_bytes();
    let offset = hex(field()?)?;
    let dev = field()?;
    let inode: u64 = field()?.parse().ok()?;
    let name = rest.trim_start_matches(' ').to_owned();
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    if perms.len() < 4 {
        return None;
    }
    let mut p = 0;
    if perms[0] == b'r' {
        p |= prot::READ;
    }
    if perms[1] == b'w' {
        p |= prot::WRITE;
    }
    if perms[2] == b'x' {
        p |= prot::EXEC;
    }
    Some(MapEntry {
        start: hex(start)?,
        end: hex(end)?,
        prot: p,
        shared: perms[3] == b's',
        offset,
        dev: (hex(major)? << 32) | hex(minor)?,
        inode,
        name,
        vm_flags: Vec::new(),
        resident_kb: None,
    })
}

/// Parse `/proc/PID/smaps`: the map entries with their VmFlags.
pub fn parse_smaps(text: &str) -> Option<Vec<MapEntry>> {
    let mut out: Vec<MapEntry> = Vec::new();
    for line in text.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            out.last_mut()?.vm_flags = flags.split_whitespace().map(str::to_owned).collect();
        } else if let Some(kb) = line
            .strip_prefix("Rss:")
            .or_else(|| line.strip_prefix("Swap:"))
        {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
            let last = out.last_mut()?;
            last.resident_kb = Some(last.resident_kb.unwrap_or(0) + kb);
        } else if line.split(' ').next().is_some_and(|f| {
            f.contains('-') && f.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        }) {
            out.push(parse_maps_line(line)?);
        }
    }
    Some(out)
}

/// The memory map of the target, from `smaps`.
pub fn maps(pid: i32) -> Result<Vec<MapEntry>> {
    let text = read_string(pid, "smaps")?;
    parse_smaps(&text).ok_or_else(|| parse_error(pid, "smaps", "unexpected line"))
}

/// The fields of `/proc/PID/stat` after the command name, so that `field(n)`
/// is field `n` of `man 5 proc` (1-based; 3 is the state).
#[derive(Clone, Debug)]
pub struct Stat {
    fields: Vec<String>,
}

impl Stat {
    /// Parse the text of `/proc/PID/stat`.
    pub fn parse(text: &str) -> Option<Stat> {
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
        if fields.len() < 49 {
            return None;
        }
        Some(Stat { fields })
    }

    /// Field `n` (1-based as in `man 5 proc`, n >= 3) as text.
    pub fn text(&self, n: usize) -> &str {
        self.fields.get(n - 3).map(String::as_str).unwrap_or("0")
    }

    /// Field `n` as a number (0 when absent or not a number).
    pub fn num(&self, n: usize) -> u64 {
        self.text(n).parse().unwrap_or(0)
    }

    /// The state letter.
    pub fn state(&self) -> u8 {
        self.text(3).bytes().next().unwrap_or(b'?')
    }

    /// Parent pid.
    pub fn ppid(&self) -> u32 {
        self.num(4) as u32
    }

    /// The kernel's `task->flags`.
    pub fn flags(&self) -> u64 {
        self.num(9)
    }

    /// The mm fields (`brk` is not in stat; it stays 0 here).
    pub fn mm(&self) -> MmRecord {
        MmRecord {
            start_code: self.num(26),
            end_code: self.num(27),
            start_stack: self.num(28),
            start_data: self.num(45),
            end_data: self.num(46),
            start_brk: self.num(47),
            arg_start: self.num(48),
            arg_end: self.num(49),
            env_start: self.num(50),
            env_end: self.num(51),
            ..MmRecord::default()
        }
    }
}

/// `/proc/PID/stat`, parsed.
pub fn stat(pid: i32) -> Result<Stat> {
    let text = read_string(pid, "stat")?;
    Stat::parse(&text).ok_or_else(|| parse_error(pid, "stat", "too few fields"))
}

/// The real uid and gid from `/proc/PID/status`.
pub fn uid_gid(pid: i32) -> Result<(u32, u32)> {
    let text = read_string(pid, "status")?;
    Ok(parse_uid_gid(&text).unwrap_or((0, 0)))
}

fn parse_uid_gid(text: &str) -> Option<(u32, u32)> {
    parse_ids(text, 0)
}

/// The effective uid and gid from `/proc/PID/status` (those a socket
/// records as its peer credentials, `SO_PEERCRED`).
pub fn effective_uid_gid(pid: i32) -> Result<(u32, u32)> {
    let text = read_string(pid, "status")?;
    Ok(parse_ids(&text, 1).unwrap_or((0, 0)))
}

/// Field `n` (0 real, 1 effective) of the `Uid:` and `Gid:` lines.
fn parse_ids(text: &str, n: usize) -> Option<(u32, u32)> {
    let field = |key: &str| -> Option<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .nth(n)?
            .parse()
            .ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// The command name (`/proc/PID/comm` without the newline).
pub fn comm(pid: i32) -> Result<Vec<u8>> {
    let mut c = read(pid, "comm")?;
    if c.last() == Some(&b'\n') {
        c.pop();
    }
    Ok(c)
}

/// A thread's name (`/proc/TID/comm`) as `ThreadRecord::name`: NUL padded;
/// all zero if it cannot be read (the restore then keeps the process's).
pub fn thread_name(tid: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(c) = comm(tid) {
        let n = c.len().min(15);
        out[..n].copy_from_slice(&c[..n]);
    }
    out
}

/// Command line with NULs replaced by spaces (trailing NUL dropped).
pub fn cmdline_text(raw: &[u8]) -> Vec<u8> {
    let trimmed = raw.strip_suffix(&[0]).unwrap_or(raw);
    trimmed
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_line_file() {
        let e = parse_maps_line(
            "557a5bc63000-557a5bc68000 r-xp 00002000 fe:00 247030                     /usr/bin/cat",
        )
        .unwrap();
        assert_eq!(e.start, 0x557a5bc63000);
        assert_eq!(e.end, 0x557a5bc68000);
        assert_eq!(e.prot, prot::READ | prot::EXEC);
        assert!(!e.shared);
        assert_eq!(e.offset, 0x2000);
        assert_eq!(e.dev, 0xfe << 32);
        assert_eq!(e.inode, 247030);
        assert_eq!(e.name, "/usr/bin/cat");
        assert_eq!(e.kind(), vma_kind::FILE);
    }

    #[test]
    fn maps_line_anon_and_specials() {
        let e = parse_maps_line("7ffd1000-7ffd3000 rw-s 00000000 00:01 5 ").unwrap();
        assert!(e.shared);
        assert_eq!(e.name, "");
        assert_eq!(e.kind(), vma_kind::ANONYMOUS);
        assert_eq!(e.dev, 1);
        let e = parse_maps_line("7ffd1000-7ffd3000 ---p 00000000 00:00 0").unwrap();
        assert_eq!(e.prot, 0);
        let e = parse_maps_line("7ffd1000-7ffd3000 rw-p 00000000 00:00 0    [stack]").unwrap();
        assert_eq!(e.kind(), vma_kind::STACK);
        let e = parse_maps_line(
            "7f0000000000-7f0000001000 rw-p 00000000 08:11 12  /tmp/a file (deleted)",
        )
        .unwrap();
        assert_eq!(e.name, "/tmp/a file (deleted)");
        assert_eq!(e.dev, (8 << 32) | 0x11);
        assert!(parse_maps_line("garbage").is_none());
    }

    #[test]
    fn smaps_flags() {
        let text = "\
7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]
Size:                  8 kB
Rss:                   4 kB
SwapPss:               0 kB
Swap:                  8 kB
VmFlags: rd wr mr mw me gd ac dd sr nr
7ffd4000-7ffd5000 r--p 00000000 00:00 0                          [vvar]
Size:                  4 kB
THPeligible:    0
VmFlags: rd mr pf io de dd lo lf rr mg
";
        let m = parse_smaps(text).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].flags(),
            vma_flags::GROWSDOWN | vma_flags::DONTDUMP | vma_flags::SEQ_READ | vma_flags::NORESERVE
        );
        assert_eq!(
            m[1].flags(),
            vma_flags::DONTDUMP
                | vma_flags::LOCKED
                | vma_flags::LOCKONFAULT
                | vma_flags::RAND_READ
                | vma_flags::MERGEABLE
        );
        assert_eq!(m[1].kind(), vma_kind::VVAR);
        assert_eq!(m[0].resident_kb, Some(12));
        assert_eq!(m[1].resident_kb, None);
    }

    #[test]
    fn stat_fields() {
        // 52 fields; the command name contains spaces and parentheses.
        let mut text = String::from("1234 (a (b) c) S 1 1234 1234 0 -1 4194560");
        for n in 10..=52 {
            text += &format!(" {}", n * 1000);
        }
        let s = Stat::parse(&text).unwrap();
        assert_eq!(s.state(), b'S');
        assert_eq!(s.ppid(), 1);
        assert_eq!(s.flags(), 4194560);
        let mm = s.mm();
        assert_eq!(mm.start_code, 26000);
        assert_eq!(mm.end_code, 27000);
        assert_eq!(mm.start_stack, 28000);
        assert_eq!(mm.start_data, 45000);
        assert_eq!(mm.env_end, 51000);
        assert!(Stat::parse("1 (x) S 1 2").is_none());
    }

    #[test]
    fn status_ids_and_cmdline() {
        let text = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\n";
        assert_eq!(parse_uid_gid(text), Some((1000, 100)));
        assert_eq!(cmdline_text(b"a\0b c\0"), b"a b c");
    }
}
