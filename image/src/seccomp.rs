//! A thread's seccomp state (format 1.8, issue 8): `NT_KCKPT_SECCOMP`, an
//! optional note in the thread's group next to its `NT_KCKPT_TASK`. Absent:
//! the thread had no seccomp (mode 0). The descriptor is a
//! [`SeccompRecord`] followed, for mode 2, by `filter_count` filters,
//! oldest first, each a [`SeccompFilterRecord`] and its
//! `insn_count` 8-byte `struct sock_filter` instructions (classic BPF, as
//! given to `seccomp(SECCOMP_SET_MODE_FILTER)`).

use crate::read::{read_record, FormatError, ImageView};
use crate::records::{Record, NOTE_OWNER};

/// Note type of a thread's seccomp state; optional, format 1.8+.
pub const NT_KCKPT_SECCOMP: u32 = 0x4b43_0054;

/// No seccomp.
pub const MODE_NONE: u32 = 0;
/// `SECCOMP_MODE_STRICT`.
pub const MODE_STRICT: u32 = 1;
/// `SECCOMP_MODE_FILTER`.
pub const MODE_FILTER: u32 = 2;

/// `SECCOMP_FILTER_FLAG_LOG`: the only filter flag kept (the kernel
/// reports no other through `PTRACE_SECCOMP_GET_METADATA`).
pub const FILTER_FLAG_LOG: u32 = 1 << 1;
/// Most instructions of one filter (`BPF_MAXINSNS`).
pub const MAX_INSNS: u32 = 4096;
/// Most instructions over a thread's filters, each counted with 4 more
/// (the kernel's `MAX_INSNS_PER_PATH`).
pub const MAX_INSNS_PER_PATH: u64 = 32768;
/// Size of one `struct sock_filter`.
pub const INSN_SIZE: usize = 8;

/// The head of a thread's `NT_KCKPT_SECCOMP` descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompRecord {
    /// [`MODE_STRICT`] or [`MODE_FILTER`] (`Seccomp:` of
    /// `/proc/PID/task/TID/status`).
    pub mode: u32,
    /// Filters that follow (mode 2: at least 1; mode 1: 0).
    pub filter_count: u32,
}
// SAFETY: repr(C); 2 * 4 = 8, no padding.
unsafe impl Record for SeccompRecord {}

/// One filter: its flags and length, then its instructions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompFilterRecord {
    /// A subset of [`FILTER_FLAG_LOG`].
    pub flags: u32,
    /// Instructions that follow, 1..=[`MAX_INSNS`].
    pub insn_count: u32,
}
// SAFETY: repr(C); 2 * 4 = 8, no padding.
unsafe impl Record for SeccompFilterRecord {}

const _: () = {
    assert!(core::mem::size_of::<SeccompRecord>() == 8);
    assert!(core::mem::size_of::<SeccompFilterRecord>() == 8);
};

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    /// `code`.
    pub code: u16,
    /// `jt`.
    pub jt: u8,
    /// `jf`.
    pub jf: u8,
    /// `k`.
    pub k: u32,
}

/// Instruction `i` of a filter's instruction bytes.
pub fn insn(insns: &[u8], i: usize) -> Option<Insn> {
    let b = insns.get(i * INSN_SIZE..i * INSN_SIZE + INSN_SIZE)?;
    Some(Insn {
        code: u16::from_le_bytes([b[0], b[1]]),
        jt: b[2],
        jf: b[3],
        k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    })
}

/// A thread's parsed seccomp note.
#[derive(Clone, Copy, Debug)]
pub struct Seccomp<'a> {
    /// Mode and filter count.
    pub record: SeccompRecord,
    rest: &'a [u8],
}

impl<'a> Seccomp<'a> {
    /// The filters, oldest first: flags and instruction bytes.
    pub fn filters(&self) -> Filters<'a> {
        Filters {
            rest: self.rest,
            left: self.record.filter_count,
        }
    }
}

/// Iterator over the filters of a [`Seccomp`].
#[derive(Clone, Debug)]
pub struct Filters<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Filters<'a> {
    type Item = (SeccompFilterRecord, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let head: SeccompFilterRecord = read_record(self.rest)?;
        let len = (head.insn_count as usize).checked_mul(INSN_SIZE)?;
        let start = core::mem::size_of::<SeccompFilterRecord>();
        let insns = self.rest.get(start..start.checked_add(len)?)?;
        self.rest = &self.rest[start + len..];
        self.left -= 1;
        Some((head, insns))
    }
}

/// Parse and check a `NT_KCKPT_SECCOMP` descriptor: mode, counts, flags,
/// lengths and the exact total size; `None` if malformed.
pub fn parse(desc: &[u8]) -> Option<Seccomp<'_>> {
    let record: SeccompRecord = read_record(desc)?;
    let rest = desc.get(core::mem::size_of::<SeccompRecord>()..)?;
    match record.mode {
        MODE_STRICT if record.filter_count == 0 => {}
        MODE_FILTER if record.filter_count >= 1 => {}
        _ => return None,
    }
    // Each filter counts at least 5 towards the path limit.
    if u64::from(record.filter_count) * 5 > MAX_INSNS_PER_PATH {
        return None;
    }
    let s = Seccomp { record, rest };
    let mut used = 0usize;
    let mut path = 0u64;
    let mut seen = 0u32;
    for (f, insns) in s.filters() {
        if f.flags & !FILTER_FLAG_LOG != 0 || f.insn_count == 0 || f.insn_count > MAX_INSNS {
            return None;
        }
        path += u64::from(f.insn_count) + 4;
        used += core::mem::size_of::<SeccompFilterRecord>() + insns.len();
        seen += 1;
    }
    (seen == record.filter_count && used == rest.len() && path <= MAX_INSNS_PER_PATH).then_some(s)
}

/// Thread `t`'s seccomp note, if it has one (checked by [`validate`]).
pub fn of_thread<'a>(t: &crate::read::ThreadNotes<'a>) -> Option<Seccomp<'a>> {
    parse(t.regset(NOTE_OWNER, NT_KCKPT_SECCOMP)?)
}

/// Check every thread's seccomp note (format 1.8+ only).
pub fn validate(view: &ImageView<'_>) -> Result<(), FormatError> {
    for t in view.threads() {
        let Some(desc) = t.regset(NOTE_OWNER, NT_KCKPT_SECCOMP) else {
            continue;
        };
        if view.header.format_minor < 8 {
            return Err(FormatError::BadField(
                "seccomp: note in an image older than format 1.8",
            ));
        }
        if parse(desc).is_none() {
            return Err(FormatError::BadField(
                "seccomp: bad mode, filter count, flags or length",
            ));
        }
    }
    Ok(())
}

/// `seccomp_data` as a filter sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompData {
    /// System call number.
    pub nr: u32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// Arguments; `None`: not known (a filter that reads one gives
    /// [`Verdict::Unknown`]).
    pub args: Option<[u64; 6]>,
}

/// What [`run`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The filter's return value.
    Ret(u32),
    /// The filter reads a value not known here: `instruction_pointer`
    /// (where the call is made at restore), or arguments given as `None`.
    Unknown,
    /// The program is not one the kernel would have accepted.
    Bad,
}

/// Run classic BPF `insns` (a seccomp filter) on `d`, as the kernel's
/// interpreter would (the kernel checked the program when it was
/// installed: anything odd is [`Verdict::Bad`]).
pub fn run(insns: &[u8], d: &SeccompData) -> Verdict {
    let word = |off: u32| -> Option<u32> {
        Some(match off {
            0 => d.nr,
            4 => d.arch,
            8 | 12 => return None,
            16..=63 if off.is_multiple_of(4) => {
                let i = ((off - 16) / 8) as usize;
                let v = d.args?[i];
                if (off - 16).is_multiple_of(8) {
                    v as u32
                } else {
                    (v >> 32) as u32
                }
            }
            _ => return Some(u32::MAX), // never: checked below
        })
    };
    let n = insns.len() / INSN_SIZE;
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    while pc < n {
        let Some(i) = insn(insns, pc) else {
            return Verdict::Bad;
        };
        pc += 1;
        let class = i.code & 0x07;
        let src_x = i.code & 0x08 != 0;
        match class {
            // BPF_LD
            0x00 => match i.code {
                0x20 => {
                    // BPF_LD|BPF_W|BPF_ABS
                    if !i.k.is_multiple_of(4) || i.k >= 64 {
                        return Verdict::Bad;
                    }
                    match word(i.k) {
                        Some(v) => a = v,
                        None => return Verdict::Unknown,
                    }
                }
                0x80 => a = 64,  // BPF_LD|BPF_W|BPF_LEN
                0x00 => a = i.k, // BPF_LD|BPF_IMM
                0x60 => a = *mem.get(i.k as usize).unwrap_or(&0), // BPF_LD|BPF_MEM
                _ => return Verdict::Bad,
            },
            // BPF_LDX
            0x01 => match i.code {
                0x81 => x = 64,
                0x01 => x = i.k,
                0x61 => x = *mem.get(i.k as usize).unwrap_or(&0),
                _ => return Verdict::Bad,
            },
            0x02 => match mem.get_mut(i.k as usize) {
                Some(m) => *m = a,
                None => return Verdict::Bad,
            },
            0x03 => match mem.get_mut(i.k as usize) {
                Some(m) => *m = x,
                None => return Verdict::Bad,
            },
            // BPF_ALU
            0x04 => {
                let v = if src_x { x } else { i.k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 => match a.checked_div(v) {
                        Some(q) => q,
                        None => return Verdict::Ret(0), // division by zero ends the program
                    },
                    0x40 => a | v,
                    0x50 => a & v,
                    0x60 => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => match a.checked_rem(v) {
                        Some(r) => r,
                        None => return Verdict::Ret(0),
                    },
                    0xa0 => a ^ v,
                    _ => return Verdict::Bad,
                };
            }
            // BPF_JMP
            0x05 => {
                let v = if src_x { x } else { i.k };
                let op = i.code & 0xf0;
                if op == 0x00 {
                    pc = match pc.checked_add(i.k as usize) {
                        Some(p) => p,
                        None => return Verdict::Bad,
                    };
                    continue;
                }
                let taken = match op {
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    _ => return Verdict::Bad,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            // BPF_RET
            0x06 => {
                return match i.code & 0x18 {
                    0x00 => Verdict::Ret(i.k),
                    0x10 => Verdict::Ret(a),
                    _ => Verdict::Bad,
                };
            }
            // BPF_MISC
            0x07 => match i.code {
                0x07 => x = a, // TAX
                0x87 => a = x, // TXA
                _ => return Verdict::Bad,
            },
            _ => return Verdict::Bad,
        }
    }
    Verdict::Bad
}

/// `SECCOMP_RET_ACTION_FULL`: the action part of a return value.
pub const RET_ACTION_FULL: u32 = 0xffff_0000;
/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_LOG` (allowed, logged).
pub const RET_LOG: u32 = 0x7ffc_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;

/// Does filter `insns` return `SECCOMP_RET_USER_NOTIF` anywhere (a
/// `BPF_RET|BPF_K` with that action)?
pub fn has_user_notif(insns: &[u8]) -> bool {
    (0..insns.len() / INSN_SIZE)
        .filter_map(|i| insn(insns, i))
        .any(|i| i.code == 0x06 && i.k & RET_ACTION_FULL == RET_USER_NOTIF)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn prog(p: &[(u16, u8, u8, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(c, jt, jf, k) in p {
            out.extend_from_slice(&c.to_le_bytes());
            out.push(jt);
            out.push(jf);
            out.extend_from_slice(&k.to_le_bytes());
        }
        out
    }

    #[test]
    fn runs_a_filter() {
        // nr == 110 ? ERRNO(1) : ALLOW
        let p = prog(&[
            (0x20, 0, 0, 0),
            (0x15, 0, 1, 110),
            (0x06, 0, 0, 0x0005_0001),
            (0x06, 0, 0, RET_ALLOW),
        ]);
        let mut d = SeccompData {
            nr: 110,
            ..SeccompData::default()
        };
        assert_eq!(run(&p, &d), Verdict::Ret(0x0005_0001));
        d.nr = 11;
        assert_eq!(run(&p, &d), Verdict::Ret(RET_ALLOW));
        let ip = prog(&[(0x20, 0, 0, 8), (0x06, 0, 0, RET_ALLOW)]);
        assert_eq!(run(&ip, &d), Verdict::Unknown);
        let arg = prog(&[(0x20, 0, 0, 16), (0x06, 0, 0, RET_ALLOW)]);
        assert_eq!(run(&arg, &d), Verdict::Unknown);
        d.args = Some([7, 0, 0, 0, 0, 0]);
        let arg0 = prog(&[(0x20, 0, 0, 16), (0x16, 0, 0, 0)]);
        assert_eq!(run(&arg0, &d), Verdict::Ret(7));
    }

    #[test]
    fn parses_and_refuses() {
        let p = prog(&[(0x06, 0, 0, RET_ALLOW)]);
        let mut d = Vec::new();
        d.extend_from_slice(&2u32.to_le_bytes());
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&FILTER_FLAG_LOG.to_le_bytes());
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&p);
        let s = parse(&d).unwrap();
        assert_eq!(s.filters().count(), 1);
        assert!(parse(&d[..d.len() - 1]).is_none());
        let mut bad = d.clone();
        bad[4] = 2;
        assert!(parse(&bad).is_none());
        bad = d.clone();
        bad[8] = 1; // TSYNC
        assert!(parse(&bad).is_none());
    }
}
