//! Architecture-neutral core notes: `elf_prpsinfo` (same layout on x86_64
//! and aarch64).

/// Size of `struct elf_prpsinfo`.
pub const PRPSINFO_SIZE: usize = 136;

/// Encode an `elf_prpsinfo`: state letter, ids, the 16-byte command name and
/// the first 80 bytes of the command line (NULs replaced by spaces).
pub fn prpsinfo_bytes(
    state: u8,
    uid: u32,
    gid: u32,
    pid: u32,
    ppid: u32,
    comm: &[u8],
    cmdline: &[u8],
) -> [u8; PRPSINFO_SIZE] {
    let mut out = [0u8; PRPSINFO_SIZE];
    out[1] = state;
    out[16..20].copy_from_slice(&uid.to_le_bytes());
    out[20..24].copy_from_slice(&gid.to_le_bytes());
    out[24..28].copy_from_slice(&pid.to_le_bytes());
    out[28..32].copy_from_slice(&ppid.to_le_bytes());
    let n = comm.len().min(15);
    out[40..40 + n].copy_from_slice(&comm[..n]);
    let args = cmdline.strip_suffix(&[0]).unwrap_or(cmdline);
    for (dst, &b) in out[56..56 + 79].iter_mut().zip(args) {
        *dst = if b == 0 { b' ' } else { b };
    }
    out
}
