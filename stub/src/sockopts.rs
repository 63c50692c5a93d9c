//! Socket types, option levels and names (`<asm-generic/socket.h>`,
//! `<netinet/in.h>`; the same on x86_64 and aarch64) that the socket
//! restores use (`inet`, `tcp`, `unixconn`, `unixsock`): one list.

pub(crate) const SOCK_STREAM: u32 = 1;
pub(crate) const SOCK_DGRAM: u32 = 2;
pub(crate) const SOL_SOCKET: usize = 1;
pub(crate) const SO_REUSEADDR: usize = 2;
pub(crate) const SO_DONTROUTE: usize = 5;
pub(crate) const SO_BROADCAST: usize = 6;
pub(crate) const SO_SNDBUF: usize = 7;
pub(crate) const SO_RCVBUF: usize = 8;
pub(crate) const SO_KEEPALIVE: usize = 9;
pub(crate) const SO_OOBINLINE: usize = 10;
pub(crate) const SO_NO_CHECK: usize = 11;
pub(crate) const SO_PRIORITY: usize = 12;
pub(crate) const SO_LINGER: usize = 13;
pub(crate) const SO_REUSEPORT: usize = 15;
pub(crate) const SO_PASSCRED: usize = 16;
pub(crate) const SO_RCVLOWAT: usize = 18;
pub(crate) const SO_RCVTIMEO: usize = 20;
pub(crate) const SO_SNDTIMEO: usize = 21;
pub(crate) const SO_BINDTODEVICE: usize = 25;
pub(crate) const SO_SNDBUFFORCE: usize = 32;
pub(crate) const SO_RCVBUFFORCE: usize = 33;
pub(crate) const SO_PASSSEC: usize = 34;
pub(crate) const SO_MARK: usize = 36;
pub(crate) const SO_ATTACH_FILTER: usize = 26;
pub(crate) const SO_PEEK_OFF: usize = 42;
pub(crate) const SO_LOCK_FILTER: usize = 44;
pub(crate) const SO_MEMINFO: usize = 55;
pub(crate) const SO_BUF_LOCK: usize = 72;
pub(crate) const IPPROTO_IP: usize = 0;
pub(crate) const IPPROTO_TCP: usize = 6;
pub(crate) const IPPROTO_UDP: usize = 17;
pub(crate) const IPPROTO_IPV6: usize = 41;
