//! The system calls the descriptor dump needs that nix does not wrap (or
//! not with the features enabled here): `pidfd_open`, `pidfd_getfd` (a
//! copy of one of the target's descriptors, to peek at pipe and socket
//! contents and read memfds), `kcmp` (do two descriptors share an open file
//! description? do two processes share an object?), `getsockopt`,
//! `semctl`, `msgctl` and `msgrcv` (SysV semaphores and messages), and `RLIMIT_NOFILE` for a process tree's many sub-images.
#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::libc;

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: integer arguments; the kernel returns a new descriptor.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(r)? as RawFd;
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_getfd(pidfd, fd, 0)`: a descriptor of this process for the
/// target's open file `fd` (close-on-exec).
pub fn pidfd_getfd(pidfd: RawFd, fd: i32) -> nix::Result<OwnedFd> {
    // SAFETY: integer arguments; the kernel returns a new descriptor.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    let fd = Errno::result(r)? as RawFd;
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `socket(domain, ty | SOCK_CLOEXEC, protocol)` for any protocol (nix
/// names few: not UDP-Lite).
pub fn socket(domain: i32, ty: i32, protocol: i32) -> nix::Result<OwnedFd> {
    // SAFETY: integer arguments; the kernel returns a new descriptor.
    let r = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    let fd = Errno::result(r)?;
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `kcmp(pid, pid, KCMP_FILE, a, b) == 0`: descriptors `a` and `b` of
/// process `pid` are the same open file description.
pub fn same_file(pid: i32, a: i32, b: i32) -> bool {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, a, b) };
    r == 0
}

/// `getsockopt(fd, SOL_SOCKET, opt)` for an integer option (`SO_DOMAIN`,
/// `SO_TYPE`, `SO_PROTOCOL`).
pub fn sockopt_int(fd: RawFd, opt: libc::c_int) -> nix::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` (4) bytes to `v` and updates `len`.
    let r =
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &raw mut len) };
    Errno::result(r)?;
    Ok(v)
}

/// `setsockopt(fd, SOL_SOCKET, opt, v)` for an integer option
/// (`SO_PEEK_OFF` while a socket's queue is read).
pub fn set_sockopt_int(fd: RawFd, opt: libc::c_int, v: i32) -> nix::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel reads `len` (4) bytes from `v`.
    let r = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&raw const v).cast(), len) };
    Errno::result(r).map(drop)
}

/// `getsockopt(fd, level, opt)` of an integer option.
pub fn sockopt_at(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> nix::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` (4) bytes to `v` and updates `len`.
    let r = unsafe { libc::getsockopt(fd, level, opt, (&raw mut v).cast(), &raw mut len) };
    Errno::result(r)?;
    Ok(v)
}

/// `setsockopt(fd, level, opt, &v)` of an integer option.
pub fn set_sockopt_at(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: i32) -> nix::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel reads `len` (4) bytes from `v`.
    let r = unsafe { libc::setsockopt(fd, level, opt, (&raw const v).cast(), len) };
    Errno::result(r).map(drop)
}

/// `recvfrom(fd, buf, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC)` on a UDP
/// socket: the length of the next datagram (at the socket's peek offset;
/// more than `buf` when truncated) and its sender, `None` for a sender
/// that is not IPv4 or IPv6.
pub fn peek_datagram(
    fd: RawFd,
    buf: &mut [u8],
) -> nix::Result<(usize, Option<std::net::SocketAddr>)> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC;
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf` and at
    // most `len` bytes to `ss`, and updates `len`.
    let r = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            (&raw mut ss).cast(),
            &raw mut len,
        )
    };
    let n = Errno::result(r)? as usize;
    let from = match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a `sockaddr_in` (family AF_INET),
            // which `sockaddr_storage` is large and aligned enough for.
            let a: libc::sockaddr_in = unsafe { std::ptr::read((&raw const ss).cast()) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a `sockaddr_in6`.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const ss).cast()) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), 0, 0).into())
        }
        _ => None,
    };
    Ok((n, from))
}

/// The classic BPF filter attached to socket `fd` (`SO_GET_FILTER`: its
/// instructions, 8 bytes each, empty for none) and whether it is locked
/// (`SO_LOCK_FILTER`); or why it cannot be saved: an eBPF program
/// (`SO_ATTACH_BPF`), which the kernel does not give back.
pub fn socket_filter(fd: RawFd) -> std::result::Result<(Vec<u8>, bool), String> {
    let get = |buf: *mut libc::c_void, len: &mut libc::socklen_t| {
        // SAFETY: `buf` is null with `*len` 0 (the kernel writes only the
        // instruction count to `len`), or holds `*len` instructions.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_GET_FILTER, buf, len) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let unreadable = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::EACCES) => {
            "socket filter that is an eBPF program (SO_ATTACH_BPF, not given back by the kernel)"
                .to_owned()
        }
        _ => format!("socket filter that cannot be read (SO_GET_FILTER: {e})"),
    };
    let mut count: libc::socklen_t = 0;
    get(std::ptr::null_mut(), &mut count).map_err(unreadable)?;
    let mut insns = vec![0u8; count as usize * 8];
    if count != 0 {
        let mut len = count;
        get(insns.as_mut_ptr().cast(), &mut len).map_err(unreadable)?;
        if len != count {
            return Err("socket filter that changed while it was read".to_owned());
        }
    }
    let locked = sockopt_int(fd, SO_LOCK_FILTER).map_err(|e| format!("SO_LOCK_FILTER: {e}"))?;
    Ok((insns, locked != 0))
}

/// `SO_LOCK_FILTER` (`<asm-generic/socket.h>`).
const SO_LOCK_FILTER: i32 = 44;

/// `semctl(semid, semnum, GETPID)`: the pid of the last `semop` on that
/// semaphore (0: none), `None` if the set cannot be read.
pub fn sem_last_pid(semid: i32, semnum: i32) -> Option<i32> {
    // SAFETY: GETPID takes no fourth argument and writes no memory.
    let r = unsafe { libc::semctl(semid, semnum, libc::GETPID) };
    (r >= 0).then_some(r)
}

/// `semctl(semid, 0, GETALL)`: the values of the set's `n` semaphores,
/// `None` if the set cannot be read.
pub fn sem_values(semid: i32, n: usize) -> Option<Vec<u16>> {
    let mut values = vec![0u16; n];
    // SAFETY: GETALL writes `sem_nsems` unsigned shorts to the array,
    // which holds `n` (the set's size, from /proc/sysvipc/sem; a set
    // cannot change size).
    let r = unsafe { libc::semctl(semid, 0, libc::GETALL, values.as_mut_ptr()) };
    (r >= 0).then_some(values)
}

/// `kcmp(a, b, KCMP_SYSVSEM)`: do processes `a` and `b` share one SysV
/// semaphore undo list (or both have none)? `None` when the kernel
/// cannot tell.
pub fn same_undo_list(a: i32, b: i32) -> Option<bool> {
    const KCMP_SYSVSEM: libc::c_long = 6;
    // SAFETY: integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_SYSVSEM, 0, 0) };
    (r >= 0).then_some(r == 0)
}

/// The processes of `pids` that have a SysV semaphore undo list: not the
/// one of a process forked here, which has none (`fork` without
/// `CLONE_SYSVSEM`). A list holds the `SEM_UNDO` adjustments its process
/// made; every process that started a thread has one too (glibc's
/// threads share it: `CLONE_SYSVSEM`), used or not, and no interface
/// tells the two apart or reads the adjustments.
pub fn undo_lists(pids: &[i32]) -> Vec<i32> {
    use std::os::fd::AsRawFd;
    let Ok((read_end, write_end)) = nix::unistd::pipe() else {
        return pids.to_vec();
    };
    // SAFETY: the child only closes, reads until the parent closes the
    // pipe (end of file), and exits: async-signal-safe calls.
    match unsafe { nix::unistd::fork() } {
        // SAFETY: see above; the descriptors are the child's own copies.
        Ok(nix::unistd::ForkResult::Child) => unsafe {
            let mut b = 0u8;
            libc::close(write_end.as_raw_fd());
            libc::read(read_end.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0)
        },
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(read_end);
            let out = pids
                .iter()
                .copied()
                .filter(|&p| same_undo_list(p, child.as_raw()) != Some(true))
                .collect();
            drop(write_end);
            let _ = nix::sys::wait::waitpid(child, None);
            out
        }
        Err(_) => pids.to_vec(),
    }
}

/// Does the IPC namespace of process `pid` hold any SysV object (a row
/// in its `/proc/sysvipc/{shm,sem,msg}`)? `/proc/sysvipc` shows the
/// reader's namespace, so a child forked here joins that one (`setns`,
/// which needs `CAP_SYS_ADMIN` over it) and reads them.
pub fn ipc_ns_has_objects(pid: i32) -> std::result::Result<bool, Errno> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/ipc"))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let (read_end, write_end) = nix::unistd::pipe()?;
    const FILES: [&[u8]; 3] = [
        b"/proc/sysvipc/shm\0",
        b"/proc/sysvipc/sem\0",
        b"/proc/sysvipc/msg\0",
    ];
    // SAFETY: the child makes raw system calls only (setns, open, read,
    // write, _exit) on memory it owns: async-signal-safe.
    match unsafe { nix::unistd::fork() }? {
        // SAFETY: see above.
        nix::unistd::ForkResult::Child => unsafe {
            // 0: none, 1: some, 2 + errno: failed.
            let mut answer: i32 = 0;
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWIPC) != 0 {
                answer = 2 + *libc::__errno_location();
            }
            for f in FILES {
                if answer != 0 {
                    break;
                }
                let fd = libc::open(f.as_ptr().cast(), libc::O_RDONLY);
                let mut buf = [0u8; 4096];
                let n = if fd < 0 {
                    -1
                } else {
                    libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
                };
                if n < 0 {
                    answer = 2 + *libc::__errno_location();
                } else if buf[..n as usize].iter().filter(|&&b| b == b'\n').count() > 1 {
                    answer = 1;
                }
            }
            let bytes = answer.to_ne_bytes();
            libc::write(write_end.as_raw_fd(), bytes.as_ptr().cast(), 4);
            libc::_exit(0)
        },
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            let mut bytes = [0u8; 4];
            let n = nix::unistd::read(&read_end, &mut bytes);
            let _ = nix::sys::wait::waitpid(child, None);
            match (n, i32::from_ne_bytes(bytes)) {
                (Ok(4), 0) => Ok(false),
                (Ok(4), 1) => Ok(true),
                (Ok(4), e) => Err(Errno::from_raw(e - 2)),
                _ => Err(Errno::EIO),
            }
        }
    }
}

/// `msgctl(IPC_STAT)`: the queue's `msg_qbytes`.
pub fn msg_qbytes(msqid: i32) -> nix::Result<u64> {
    // SAFETY: all-zero is a valid `msqid_ds`, which IPC_STAT fills.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a live `msqid_ds`.
    Errno::result(unsafe { libc::msgctl(msqid, libc::IPC_STAT, &mut ds) })?;
    Ok(ds.msg_qbytes as u64)
}

/// `msgrcv(msqid, buf, .., index, IPC_NOWAIT | MSG_COPY)`: a copy of the
/// queue's `index`-th message, which stays queued: its `mtype` and text.
pub fn msg_copy(msqid: i32, index: i64, max_len: usize) -> nix::Result<(i64, Vec<u8>)> {
    const MSG_COPY: libc::c_int = 0o40000;
    let mut buf = vec![0u8; 8 + max_len];
    // SAFETY: the kernel writes at most 8 + `max_len` bytes (a `long`
    // then the text, at most `max_len` of it) into `buf`.
    let n = unsafe {
        libc::msgrcv(
            msqid,
            buf.as_mut_ptr().cast(),
            max_len,
            index,
            libc::IPC_NOWAIT | MSG_COPY,
        )
    };
    let n = Errno::result(n)? as usize;
    let mtype = i64::from_ne_bytes(buf[..8].try_into().unwrap_or_default());
    buf.truncate(8 + n);
    buf.drain(..8);
    Ok((mtype, buf))
}

/// `kcmp(pid, ep_pid, KCMP_EPOLL_TFD, fd, {epfd, tfd, toff})`: `Some(true)`
/// when descriptor `fd` of process `pid` is the file of the `toff`-th item
/// added with descriptor number `tfd` to its epoll `epfd`; `None` when the
/// kernel cannot tell (no `CONFIG_CHECKPOINT_RESTORE`, no such item).
/// `ep_pid` holds `epfd` (the dumper, for an epoll in flight), `pid` `fd`.
pub fn epoll_target_is(
    pid: i32,
    fd: i32,
    ep_pid: i32,
    epfd: i32,
    tfd: u32,
    toff: u32,
) -> Option<bool> {
    const KCMP_EPOLL_TFD: libc::c_long = 7;
    let slot: [u32; 3] = [epfd as u32, tfd, toff];
    // SAFETY: the kernel reads one `struct kcmp_epoll_slot` (three u32)
    // from `slot`, which outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            ep_pid,
            KCMP_EPOLL_TFD,
            fd,
            slot.as_ptr(),
        )
    };
    match Errno::result(r) {
        Ok(v) => Some(v == 0),
        // EBADF: `fd` is not open; the item exists.
        Err(Errno::EBADF) => Some(false),
        Err(_) => None,
    }
}

/// One message peeked from a Unix socket's queue by [`peek_unix`].
pub struct Peeked {
    /// Bytes of the message (its whole length for a datagram longer than
    /// the buffer, with `MSG_TRUNC` given).
    pub len: usize,
    /// `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`).
    pub flags: i32,
    /// The sender's `sun_path` bytes as the kernel gave them (empty: no
    /// address, or an unbound sender).
    pub name: Vec<u8>,
    /// Descriptors passed with it (`SCM_RIGHTS`), installed in this
    /// process: the caller owns them (closes them).
    pub rights: Vec<OwnedFd>,
    /// Credentials came with it (`SCM_CREDENTIALS`).
    pub creds: bool,
}

/// `recvmsg(fd, buf, flags)` with room for the sender's address and
/// control messages. nix's `UnixAddr` cannot hold the empty address the
/// kernel gives for a message of a socketpair (`msg_namelen` 0).
pub fn peek_unix(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> nix::Result<Peeked> {
    // SAFETY: an all-zero sockaddr_un and msghdr are valid values.
    let mut name: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 512];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_name = (&raw mut name).cast();
    m.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    m.msg_iov = &raw mut iov;
    m.msg_iovlen = 1;
    m.msg_control = control.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `m` points at live buffers of the sizes it
    // gives; the kernel writes within them and updates the lengths.
    let n = unsafe { libc::recvmsg(fd, &raw mut m, flags) };
    let len = Errno::result(n)? as usize;
    let off = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let nl = (m.msg_namelen as usize)
        .saturating_sub(off)
        .min(name.sun_path.len());
    let name = name.sun_path[..nl].iter().map(|&c| c as u8).collect();
    let mut rights = Vec::new();
    let mut creds = false;
    // SAFETY: `m` was filled by the kernel; the CMSG macros walk its
    // control buffer within `msg_controllen`; each `SCM_RIGHTS`
    // descriptor was installed for this call and is owned by nothing
    // else, so the `OwnedFd` made of it is its only owner.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const m);
        while !c.is_null() {
            creds |= (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS;
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for k in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(k));
                    // The kernel installed `fd` for this call: owned by
                    // nothing else.
                    rights.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&raw const m, c);
        }
    }
    Ok(Peeked {
        len,
        flags: m.msg_flags,
        name,
        rights,
        creds,
    })
}

/// `kcmp(a_pid, b_pid, KCMP_FILE, a, b) == 0`: descriptor `a` of process
/// `a_pid` and descriptor `b` of process `b_pid` are the same open file
/// description.
pub fn same_file_of(a_pid: i32, a: i32, b_pid: i32, b: i32) -> bool {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, a_pid, b_pid, KCMP_FILE, a, b) };
    r == 0
}

/// `kcmp(a, b, kind, 0, 0) == 0` for the whole-process kinds: do processes
/// `a` and `b` share that object? `kind`: 1 memory (`KCMP_VM`), 2
/// descriptor table (`KCMP_FILES`), 3 cwd and umask (`KCMP_FS`), 4 signal
/// handlers (`KCMP_SIGHAND`). False when the kernel cannot tell.
pub fn shares(a: i32, b: i32, kind: libc::c_long) -> bool {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, a, b, kind, 0, 0) };
    r == 0
}

/// Raise this process's soft `RLIMIT_NOFILE` to its hard limit.
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: the kernel writes one `struct rlimit` to `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } == 0 {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: the kernel reads one `struct rlimit` from `lim`.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
    }
}

/// The signal owner of the open file description behind `fd` (a copy of
/// the target's descriptor: the owner belongs to the description):
/// `F_GETOWN_EX` type and id, and `F_GETSIG`. `None` when it has neither
/// an owner nor a signal, or the kernel refuses (`O_PATH`).
pub fn file_owner(fd: RawFd) -> Option<(u32, i32, u32)> {
    // Not in the libc crate: <linux/fcntl.h> values.
    const F_GETSIG: libc::c_int = 11;
    const F_GETOWN_EX: libc::c_int = 16;
    // `struct f_owner_ex { int type; pid_t pid; }`.
    let mut owner: [libc::c_int; 2] = [0; 2];
    // SAFETY: F_GETOWN_EX writes one `struct f_owner_ex` (two ints) to
    // `owner`.
    let r = unsafe { libc::fcntl(fd, F_GETOWN_EX, owner.as_mut_ptr()) };
    Errno::result(r).ok()?;
    // SAFETY: F_GETSIG takes no argument and writes no memory.
    let sig = unsafe { libc::fcntl(fd, F_GETSIG) };
    let sig = u32::try_from(sig).ok()?;
    let [kind, id] = owner;
    (id != 0 || sig != 0).then_some((kind as u32, id, sig))
}

/// Is the other end of the pipe end `fd` (a copy of it) closed everywhere:
/// no reader left for a write end (`poll` reports `POLLERR`), no writer
/// left for a read end (`POLLHUP`)? In doubt, no.
pub fn pipe_partner_gone(fd: BorrowedFd<'_>, write_end: bool) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    if poll(&mut fds, PollTimeout::ZERO).is_err() {
        return false;
    }
    let got = fds[0].revents().unwrap_or(PollFlags::empty());
    got.contains(if write_end {
        PollFlags::POLLERR
    } else {
        PollFlags::POLLHUP
    })
}

/// A `NETLINK_SOCK_DIAG` socket that sent one `SOCK_DIAG_BY_FAMILY`
/// request (`nlmsghdr` with `flags`, then `body`), to read the answers
/// from.
pub fn sock_diag_request(flags: u16, body: &[u8]) -> Option<OwnedFd> {
    use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};
    use std::os::fd::AsRawFd;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    let nl = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .ok()?;
    let mut req = Vec::with_capacity(16 + body.len());
    req.extend_from_slice(&(16 + body.len() as u32).to_le_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_le_bytes());
    req.extend_from_slice(&flags.to_le_bytes());
    req.extend_from_slice(&1u32.to_le_bytes()); // seq
    req.extend_from_slice(&0u32.to_le_bytes()); // pid
    req.extend_from_slice(body);
    socket::send(nl.as_raw_fd(), &req, MsgFlags::empty()).ok()?;
    Some(nl)
}

/// `getsockopt(fd, level, opt)` into `buf`: the bytes the kernel wrote.
pub fn sockopt_bytes(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    buf: &mut [u8],
) -> nix::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes (the buffer's length)
    // to `buf` and updates `len`.
    let r = unsafe { libc::getsockopt(fd, level, opt, buf.as_mut_ptr().cast(), &raw mut len) };
    Errno::result(r)?;
    Ok(len as usize)
}

/// `setsockopt(fd, level, opt)` with the bytes of `val`.
pub fn set_sockopt_bytes(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: &[u8],
) -> nix::Result<()> {
    // SAFETY: the kernel reads at most `val.len()` bytes from `val`.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            val.as_ptr().cast(),
            val.len() as libc::socklen_t,
        )
    };
    Errno::result(r).map(drop)
}

/// The wait status of the exited process pidfd `fd` refers to
/// (`PIDFD_GET_INFO` with `PIDFD_INFO_EXIT`, Linux 6.15): `None` when the
/// kernel does not report it.
pub fn pidfd_exit_status(fd: RawFd) -> Option<i32> {
    /// `struct pidfd_info` (first version, 72 bytes).
    #[repr(C)]
    #[derive(Default)]
    struct PidfdInfo {
        mask: u64,
        cgroupid: u64,
        ids: [u32; 11],
        exit_code: i32,
        coredump_mask: u32,
        spare: u32,
    }
    const PIDFD_INFO_EXIT: u64 = 1 << 3;
    // _IOWR(0xFF, 11, struct pidfd_info)
    const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | (72 << 16) | (0xff << 8) | 11;
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_EXIT,
        ..PidfdInfo::default()
    };
    // SAFETY: the kernel writes at most the 72 bytes of `info`.
    let r = unsafe { libc::ioctl(fd, PIDFD_GET_INFO, &raw mut info) };
    (r == 0 && info.mask & PIDFD_INFO_EXIT != 0).then_some(info.exit_code)
}

/// An `ioctl` on socket `fd` that writes one `int` (`SIOCINQ`,
/// `SIOCOUTQ`, `SIOCOUTQNSD`).
pub fn sock_ioctl_int(fd: RawFd, request: libc::c_ulong) -> nix::Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one int to the given address.
    let r = unsafe { libc::ioctl(fd, request, &raw mut v) };
    Errno::result(r)?;
    Ok(v)
}
