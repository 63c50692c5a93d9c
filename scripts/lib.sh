# Shared by scripts/*.sh: install what is missing on a Debian machine.
# shellcheck shell=bash

# Packages that provide each command (Debian names).
declare -A KCKPT_PKG_FOR=(
    [gdb]=gdb [gcore]=gdb
    [readelf]=binutils [strip]=binutils
    [unshare]=util-linux [setpriv]=util-linux [prlimit]=util-linux [ipcrm]=util-linux
    [g++]=g++
    [cc]=gcc [gcc]=gcc
    [qemu-aarch64]=qemu-user [aarch64-linux-gnu-gcc]=gcc-aarch64-linux-gnu
    [gdb-multiarch]=gdb-multiarch
    [setsid]=util-linux [sort]=coreutils [script]=bsdutils [make]=make
    [tmux]=tmux [nano]=nano [less]=less [gzip]=gzip [vim]=vim
    [java]=default-jre-headless [javac]=default-jdk-headless
    [redis-server]=redis-server [redis-cli]=redis-tools [dpkg-deb]=dpkg
)

apt_updated=0

# apt_install PKG... : install Debian packages (root, non-interactive).
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "error: missing packages: $*; run as root or install them first" >&2
        return 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "error: missing packages: $* (and no apt-get to install them)" >&2
        return 1
    fi
    if [ "$apt_updated" = 0 ]; then
        echo "+ apt-get update"
        apt-get update -q </dev/null
        apt_updated=1
    fi
    echo "+ apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null
}

# ensure_tools CMD... : install the packages of the commands that are missing.
# Also: /usr/bin/python3 (Debian's, not a shim) for "python3", the C library
# headers and static libc for "cc".
ensure_tools() {
    local missing=() cmd pkg
    for cmd in "$@"; do
        case "$cmd" in
            python3) [ -x /usr/bin/python3 ] || missing+=(python3) ;;
            cc)
                command -v cc >/dev/null || missing+=(gcc)
                [ -f /usr/include/stdio.h ] && [ -n "$(ls /usr/lib/*/libc.a 2>/dev/null)" ] \
                    || missing+=(libc6-dev)
                ;;
            aarch64-linux-gnu-gcc)
                command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
                [ -f /usr/aarch64-linux-gnu/lib/libc.a ] || missing+=(libc6-dev-arm64-cross)
                ;;
            *)
                pkg=${KCKPT_PKG_FOR[$cmd]:-$cmd}
                command -v "$cmd" >/dev/null || missing+=("$pkg")
                ;;
        esac
    done
    if [ ${#missing[@]} -gt 0 ]; then
        # Deduplicate (gdb provides gdb and gcore, ...).
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        apt_install "${missing[@]}"
    fi
}

# ensure_rust: cargo must exist (rustup's, or Debian's).
ensure_rust() {
    if ! command -v cargo >/dev/null; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
        return 1
    fi
}

# without_extra_fds CMD... &: run CMD in the background with only
# descriptors 0-2 open. A program started with a stray descriptor inherited
# from the calling shell (a pipe to some other process) is, correctly,
# refused by `kckpt dump`. Always call it with `&`: it closes the
# descriptors of, and then replaces, the background subshell bash forks for
# it (so `$!` is CMD's pid).
without_extra_fds() {
    local fd n
    for fd in /proc/$BASHPID/fd/*; do
        n=${fd##*/}
        if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-"; fi
    done
    exec "$@"
}
