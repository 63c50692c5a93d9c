//! What the kernel hands a new program on its initial stack: the image
//! path (argv[1]), `KCKPT_*` environment settings and the auxiliary vector
//! entries the stub needs. Everything is copied out, because the initial
//! stack is unmapped later.
#![allow(unsafe_code)] // Walking the initial stack the kernel built.

/// What the stub takes from its initial stack.
pub struct Startup {
    /// NUL-terminated path of the image (empty when there was no argv[1]).
    pub path: [u8; 4096],
    /// Length of `path` without the NUL.
    pub path_len: usize,
    /// `KCKPT_RESTORE_MODE=mmap`.
    pub mmap_mode: bool,
    /// `KCKPT_NEW_PID_NS=1` (or `KCKPT_NEW_NET_NS=1`, which implies it).
    pub new_pid_ns: bool,
    /// `KCKPT_NEW_NET_NS=1`: a new network namespace too (`crate::netns`).
    pub new_net_ns: bool,
    /// `KCKPT_FORCE=1`: restore files that were deleted or shrank anyway.
    pub force: bool,
    /// `KCKPT_VERIFY=1`: check all stored data before changing anything.
    pub verify: bool,
    /// `KCKPT_STOPPED=1` (`kckpt restore --stopped`): the restored process
    /// stops (`SIGSTOP`) before its first instruction, for a debugger.
    pub stopped: bool,
    /// `KCKPT_TIMER_IDS=in-order`: give POSIX timers their ids by creating
    /// them in order, as on kernels before 6.15 (for tests).
    pub timer_ids_in_order: bool,
    /// `KCKPT_STDIO`: [`STDIO_AUTO`] (unset or `auto`), [`STDIO_INHERIT`],
    /// [`STDIO_SAVED`], or [`STDIO_BAD`] for another value.
    pub stdio: u8,
    /// `KCKPT_DEBUG_JUMP`: 0 unset, [`DEBUG_MARK`] (`=1`) or
    /// [`DEBUG_FAULT`] (`=fault`).
    pub debug_jump: u8,
    /// AT_PAGESZ.
    pub page_size: u64,
    /// AT_HWCAP.
    pub hwcap: u64,
    /// AT_HWCAP2.
    pub hwcap2: u64,
    /// `KCKPT_TREE_PROC=<index>`: this stub restores process `index` of a
    /// process tree (set by the stub itself when it forks the tree);
    /// [`NOT_TREE_PROC`] when unset.
    pub tree_proc: u32,
    /// `KCKPT_TREE_NS=<max id>`: the tree is restored in a new PID
    /// namespace whose highest saved pid or tid is this (0: unset).
    pub tree_ns_max: u32,
    /// `KCKPT_TREE_USERNS=1`: the tree is restored in a user namespace the
    /// stub created (set by the stub itself).
    pub tree_userns: bool,
    /// The initial stack's `argv` and `envp` (for executing the stub again
    /// with the original pid, before the initial stack is unmapped).
    pub argv: usize,
    /// See `argv`.
    pub envp: usize,
}

/// `Startup::tree_proc` when this is not a tree process.
pub const NOT_TREE_PROC: u32 = u32::MAX;

/// `KCKPT_TREE_PROC=` value: a decimal index below [`NOT_TREE_PROC`].
fn index(v: &[u8]) -> u32 {
    let mut n: u64 = 0;
    for &c in v {
        if !c.is_ascii_digit() || v.len() > 9 {
            return NOT_TREE_PROC - 1; // refused as out of range
        }
        n = n * 10 + u64::from(c - b'0');
    }
    if v.is_empty() {
        NOT_TREE_PROC - 1
    } else {
        n as u32
    }
}

/// `KCKPT_DEBUG_JUMP=1`: one marker line on stderr right before the final
/// `rt_sigreturn`, so whoever runs the stub can tell a refusal or a crash of
/// the stub (no marker) from what the restored program does (after it).
pub const DEBUG_MARK: u8 = 1;
/// `KCKPT_DEBUG_JUMP=fault`: the marker, then a final jump into registers
/// the kernel cannot return to (fault injection, to test that the tracer
/// helper gives up instead of spinning).
pub const DEBUG_FAULT: u8 = 2;

/// `KCKPT_STDIO=auto` (the default): fds 0-2 that were files or devices
/// are reopened from the image, terminals and what led outside the process
/// are the restorer's.
pub const STDIO_AUTO: u8 = 0;
/// `KCKPT_STDIO=inherit`: fds 0-2 that were files, devices or terminals
/// are the restorer's (what was inside the process is still rebuilt).
pub const STDIO_INHERIT: u8 = 1;
/// `KCKPT_STDIO=saved`: every fd 0-2 from the image, terminals reopened by
/// their saved path; one that led outside the process is refused.
pub const STDIO_SAVED: u8 = 2;
/// `KCKPT_STDIO` with a value that is none of those (refused).
pub const STDIO_BAD: u8 = 3;

const AT_NULL: usize = 0;
const AT_PAGESZ: usize = 6;
const AT_HWCAP: usize = 16;
const AT_HWCAP2: usize = 26;

/// # Safety
/// `p` must point at a NUL-terminated string.
unsafe fn c_str<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated (caller). Volatile, so the
    // loop is not turned into a call to `strlen`, which does not exist here.
    while unsafe { core::ptr::read_volatile(p.add(n)) } != 0 {
        n += 1;
    }
    // SAFETY: `n` bytes before the NUL are readable.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// Parse the initial stack at `sp` into `out`.
///
/// # Safety
/// `sp` must be the stack pointer the kernel started the process with.
pub unsafe fn parse(sp: usize, out: &mut Startup) {
    let sp = sp as *const usize;
    // SAFETY: the System V start-up layout: argc, argv[argc], NULL,
    // envp..., NULL, auxv pairs ending with AT_NULL.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1);
        out.argv = argv as usize;
        out.envp = argv.add(argc + 1) as usize;
        if argc >= 2 {
            let arg = c_str(*argv.add(1) as *const u8);
            let n = arg.len().min(out.path.len() - 1);
            out.path[..n].copy_from_slice(&arg[..n]);
            out.path[n] = 0;
            out.path_len = n;
        }
        let mut envp = argv.add(argc + 1);
        while *envp != 0 {
            let var = c_str(*envp as *const u8);
            if var == b"KCKPT_RESTORE_MODE=mmap" {
                out.mmap_mode = true;
            }
            if var == b"KCKPT_NEW_PID_NS=1" {
                out.new_pid_ns = true;
            }
            if var == b"KCKPT_NEW_NET_NS=1" {
                out.new_pid_ns = true;
                out.new_net_ns = true;
            }
            if var == b"KCKPT_FORCE=1" {
                out.force = true;
            }
            if var == b"KCKPT_VERIFY=1" {
                out.verify = true;
            }
            if var == b"KCKPT_STOPPED=1" {
                out.stopped = true;
            }
            if var == b"KCKPT_TIMER_IDS=in-order" {
                out.timer_ids_in_order = true;
            }
            if let Some(v) = var.strip_prefix(b"KCKPT_STDIO=") {
                out.stdio = match v {
                    b"auto" | b"" => STDIO_AUTO,
                    b"inherit" => STDIO_INHERIT,
                    b"saved" => STDIO_SAVED,
                    _ => STDIO_BAD,
                };
            }
            if var == b"KCKPT_TCP_CLOSE=1" {
                crate::tcp::set_close();
            }
            if let Some(v) = var.strip_prefix(b"KCKPT_INHERIT_FD=") {
                crate::external::set_list(v);
            }
            if let Some(v) = var.strip_prefix(b"KCKPT_TREE_PROC=") {
                out.tree_proc = index(v);
            }
            if let Some(v) = var.strip_prefix(b"KCKPT_TREE_NS=") {
                out.tree_ns_max = index(v);
            }
            if var == b"KCKPT_TREE_USERNS=1" {
                out.tree_userns = true;
            }
            if var == b"KCKPT_DEBUG_JUMP=1" {
                out.debug_jump = DEBUG_MARK;
            }
            if var == b"KCKPT_DEBUG_JUMP=fault" {
                out.debug_jump = DEBUG_FAULT;
            }
            envp = envp.add(1);
        }
        let mut auxv = envp.add(1);
        while *auxv != AT_NULL {
            let value = *auxv.add(1) as u64;
            match *auxv {
                AT_PAGESZ => out.page_size = value,
                AT_HWCAP => out.hwcap = value,
                AT_HWCAP2 => out.hwcap2 = value,
                _ => {}
            }
            auxv = auxv.add(2);
        }
    }
}
