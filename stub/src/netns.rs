//! A network namespace of the restore's own: for images whose TCP
//! connections are restored with TCP repair (`CAP_NET_ADMIN`), which a
//! user without privilege has only in a network namespace its own user
//! namespace owns. A choice of the restore; the image format is the same.
//!
//! [`Needs`] collects, over every process of the image, what decides it:
//! the connections restored with repair; whether each has its peer in the
//! image too (a multiset check: the sum of a hash of (local, peer) over
//! every connection equals the sum of (peer, local) when, and, but for a
//! 2^-64 chance, only when they pair up); whether every TCP and UDP
//! socket's address is a loopback or wildcard one, with no connected UDP
//! socket and no device binding but `lo`. [`wanted`]: always with
//! `KCKPT_NEW_NET_NS=1` (`kckpt restore --new-net-ns`, which implies new
//! PID and user namespaces); by itself when the stub makes new namespaces
//! anyway (`--new-pid-ns`, or a tree restored without the right to choose
//! pids), some connection needs repair, this user may not put a socket in
//! repair mode here, and the image's network is self-contained (the
//! above): then with a warning saying that its sockets are reachable only
//! from inside. [`enter`]: `unshare(CLONE_NEWNET)` after the user
//! namespace is made, and the loopback interface brought up (the kernel
//! gives it 127.0.0.1 and ::1).

use core::sync::atomic::{AtomicBool, Ordering};

use kckpt_image::inet::{inet_opts, InetRecord, AF_INET, INET_LISTEN_FD_KIND, UDP_FD_KIND};
use kckpt_image::tcp::TCP_CONN_FD_KIND;
use kckpt_image::{ImageView, FD_NO_DUP};
use linux_raw_sys::general as g;

use crate::report::Msg;
use crate::sockopts::SOCK_DGRAM;
use crate::sys;

/// Set by [`enter`].
static MADE: AtomicBool = AtomicBool::new(false);

/// What the image's sockets need of the network (see the module comment).
#[derive(Default)]
pub struct Needs {
    /// Connections restored with TCP repair.
    repaired: u64,
    /// Sum of `hash(local, peer)` over them.
    forward: u64,
    /// Sum of `hash(peer, local)` over them.
    backward: u64,
    /// A socket whose address is neither loopback nor a wildcard, a
    /// connected UDP socket, or one bound to a device other than `lo`.
    outside: bool,
}

impl Needs {
    /// Note the sockets of one process's image.
    pub fn note(&mut self, view: &ImageView<'_>) {
        for r in view.fds.iter().filter(|r| r.dup_of == FD_NO_DUP) {
            let bytes = view.string(r.path).unwrap_or(&[]);
            let x = match r.kind {
                INET_LISTEN_FD_KIND | UDP_FD_KIND => InetRecord::parse(r.kind, bytes),
                TCP_CONN_FD_KIND => kckpt_image::tcp::parse(r.args[1], bytes).map(|(x, _)| x),
                _ => continue,
            };
            let Some(x) = x else {
                self.outside = true;
                continue;
            };
            let device = &x.device[..x.device.iter().position(|&b| b == 0).unwrap_or(16)];
            self.outside |= !local(x.family, &x.local)
                || (x.opts & inet_opts::BINDTODEVICE != 0 && device != b"lo")
                || (r.kind == UDP_FD_KIND && x.peer_port != 0);
            if r.kind == TCP_CONN_FD_KIND && crate::tcp::repaired(&r) {
                self.repaired += 1;
                self.outside |= !local(x.family, &x.peer);
                let (a, b) = (end(x.family, &x.local), end(x.family, &x.peer));
                self.forward = self
                    .forward
                    .wrapping_add(hash(a, x.local_port, b, x.peer_port));
                self.backward = self
                    .backward
                    .wrapping_add(hash(b, x.peer_port, a, x.local_port));
            }
        }
    }

    /// Every socket stays inside: loopback addresses, each connection's
    /// peer in the image.
    fn self_contained(&self) -> bool {
        !self.outside && self.forward == self.backward
    }
}

/// A new network namespace for this restore? `explicit`: asked for
/// (`KCKPT_NEW_NET_NS=1`). Call only where the stub is about to make new
/// namespaces; prints the warning of a namespace it chose by itself.
pub fn wanted(path: &[u8], needs: &Needs, explicit: bool) -> bool {
    if explicit {
        return true;
    }
    if needs.repaired == 0 || !needs.self_contained() || crate::tcp::repair_allowed() {
        return false;
    }
    Msg::new()
        .push(path)
        .s(": restored in a new network namespace with only a loopback interface, where this user may use TCP repair (CAP_NET_ADMIN) for its ")
        .dec(needs.repaired)
        .s(" TCP connection(s); its sockets are reachable only from inside it (kckpt restore as root keeps this network)")
        .warn();
    true
}

/// `unshare(CLONE_NEWNET)` (in the user namespace the stub made, or as
/// root) and the loopback interface up.
pub fn enter(path: &[u8]) {
    let fail = |what: &str, e: sys::Errno| -> ! {
        Msg::new()
            .push(path)
            .s(": cannot make a new network namespace: ")
            .s(what)
            .errno(e)
            .fail()
    };
    sys::unshare(g::CLONE_NEWNET).unwrap_or_else(|e| fail("unshare", e));
    loopback_up().unwrap_or_else(|e| fail("the loopback interface", e));
    MADE.store(true, Ordering::Relaxed);
}

/// Is this restore in a network namespace [`enter`] made?
pub fn made() -> bool {
    MADE.load(Ordering::Relaxed)
}

/// ` (in the new network namespace, which has only a loopback
/// interface)` after a failure to bind, when it is one.
pub fn explain(m: &mut Msg) {
    if made() {
        m.s(" (in the new network namespace, which has only a loopback interface)");
    }
}

/// `struct ifreq` for `SIOCGIFFLAGS` / `SIOCSIFFLAGS`: the name, then
/// `ifr_flags` (a short) in a 24-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: u16,
    pad: [u8; 22],
}

const SIOCGIFFLAGS: u32 = 0x8913;
const SIOCSIFFLAGS: u32 = 0x8914;
const IFF_UP: u16 = 1;

fn loopback_up() -> Result<(), sys::Errno> {
    let fd = crate::inet::call(
        g::__NR_socket,
        [
            AF_INET as usize,
            (SOCK_DGRAM | g::O_CLOEXEC) as usize,
            0,
            0,
            0,
            0,
        ],
    )?;
    let mut req = IfReq {
        name: [0; 16],
        flags: 0,
        pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    let at = &mut req as *mut IfReq as usize;
    let done = crate::terminal::ioctl(fd, SIOCGIFFLAGS, at).and_then(|_| {
        req.flags |= IFF_UP;
        crate::terminal::ioctl(fd, SIOCSIFFLAGS, &req as *const IfReq as usize)
    });
    sys::close(fd);
    done.map(|_| ())
}

/// A loopback or wildcard address (IPv4, IPv6, IPv4-mapped IPv6).
fn local(family: u16, a: &[u8; 16]) -> bool {
    let v4 = |b: &[u8]| b[0] == 127 || b == [0, 0, 0, 0];
    if family == AF_INET {
        return v4(&a[..4]);
    }
    let any = a.iter().all(|&b| b == 0);
    let one = a[..15].iter().all(|&b| b == 0) && a[15] == 1;
    any || one || (mapped(a) && v4(&a[12..]))
}

fn mapped(a: &[u8; 16]) -> bool {
    a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff
}

/// An address as both ends of a connection name it: an IPv4-mapped IPv6
/// address as the IPv4 one (an IPv6 socket's peer may be an IPv4 socket).
fn end(family: u16, a: &[u8; 16]) -> [u8; 16] {
    if family != AF_INET && mapped(a) {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&a[12..]);
        return v4;
    }
    *a
}

/// FNV-1a over one direction of a connection, then a 64-bit finalizer
/// (splitmix64's), so sums of hashes compare multisets.
fn hash(a: [u8; 16], a_port: u16, b: [u8; 16], b_port: u16) -> u64 {
    let mut bytes = [0u8; 36];
    bytes[..16].copy_from_slice(&a);
    bytes[16..18].copy_from_slice(&a_port.to_be_bytes());
    bytes[18..34].copy_from_slice(&b);
    bytes[34..].copy_from_slice(&b_port.to_be_bytes());
    let mut h = kckpt_image::fnv1a64(&bytes);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
