//! Unix sockets of every type that are not listening (format 1.6, fd
//! kind 45), restored without privilege: `unix_kinds.c` sets up one kind
//! of state per mode (unconnected and bound sockets, pairs with queued
//! messages, pairs made by connect/accept, datagrams from several named
//! senders, peers that closed, shut-down sockets), is dumped and killed,
//! and after the restore checks it the way a program would (names,
//! options, every message with its boundaries and sender, shutdown
//! errors); it prints one `FAIL` line per difference. Most run as nobody;
//! one restores from the image itself (`./image`, binfmt_misc in a user
//! namespace). Descriptors in flight (`SCM_RIGHTS`) are `scm_rights.rs`'s.
//! Refused by name at dump: an out-of-band byte, an option kckpt does not
//! restore, a peer outside the
//! dump (with `--skip-unsupported`: connected again by name); at restore,
//! a path another kind of file took.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use common::*;

/// `unix_kinds MODE DIR ARGS` as `prefix`, once it is ready.
fn start(prefix: &[&str], mode: &str, dir: &TestDir, args: &[&str]) -> Proc {
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let mut p = Proc::spawn(
        "unix_kinds",
        command_as(prefix, prog::UNIX_KINDS)
            .arg(mode)
            .arg(dir.path())
            .args(args),
    );
    let line = p.line(LINE_TIMEOUT);
    if line != "ready" {
        p.fail(&format!("not ready: {line}"));
    }
    p
}

/// Dump `p` as `prefix` (the target is killed).
fn dump_by(prefix: &[&str], p: &mut Proc, image: &Path) {
    let out = dump_as(prefix, p.pid(), image);
    assert!(out.status.success(), "{}", show(&out));
    p.wait_exit(std::time::Duration::from_secs(10));
}

/// `kckpt restore IMAGE` as `prefix`.
fn restore_by(prefix: &[&str], image: &Path) -> Proc {
    Proc::spawn("kckpt restore", kckpt_as(prefix).arg("restore").arg(image))
}

/// Ask the restored program to check; every line must be `ok ...`, at
/// least `min` of them, and it exits 0.
fn checks_out(r: &mut Proc, min: usize) {
    r.write_stdin("check\n");
    let mut lines = Vec::new();
    loop {
        let l = r.line(LINE_TIMEOUT);
        if l == "done" {
            break;
        }
        lines.push(l);
    }
    let bad: Vec<&String> = lines.iter().filter(|l| !l.starts_with("ok ")).collect();
    if !bad.is_empty() || lines.len() < min {
        r.fail(&format!("after the restore: {bad:?} (of {lines:?})"));
    }
    let status = r.wait_exit(LINE_TIMEOUT);
    assert!(status.success(), "unix_kinds exited with {status}");
}

/// The whole round: start, dump and `kckpt restore` as nobody, check; or
/// (`from_file`) start and dump as this user and restore by executing the
/// image (`./image`, binfmt_misc in a user namespace: a uid other than
/// this user's has no mapping there).
fn comes_back(name: &str, mode: &str, min: usize, from_file: bool) -> serde_json::Value {
    require_tool("setpriv");
    let prefix: &[&str] = if from_file { &[] } else { &NOBODY };
    let dir = TestDir::new(name);
    let mut p = start(prefix, mode, &dir, &[]);
    let image = dir.join("unix.kckpt");
    dump_by(prefix, &mut p, &image);
    let info = info_json(&image);
    let mut r = if from_file {
        restore_binfmt(&image)
    } else {
        restore_by(prefix, &image)
    };
    checks_out(&mut r, min);
    info
}

/// The kind-45 descriptors `kckpt info --json` shows.
fn unix_fds(info: &serde_json::Value) -> Vec<serde_json::Value> {
    info["files"]["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .filter(|f| f["kind"] == "unix socket")
        .cloned()
        .collect()
}

#[test]
fn unconnected_and_bound_sockets_come_back_with_their_names_and_options() {
    let info = comes_back("unix_unconn", "unconn", 15, false);
    let fds = unix_fds(&info);
    assert_eq!(fds.len(), 5, "{fds:?}");
    let d = &fds[1]["socket"];
    assert_eq!(d["type"], "datagram");
    assert_eq!(d["state"], "bound");
    assert_eq!(d["options"], serde_json::json!(["SO_PASSCRED"]));
    assert_eq!(d["rcvtimeo_us"], 2_500_000);
    assert_eq!(fds[2]["socket"]["type"], "seqpacket");
    assert!(fds[2]["socket"]["name"].as_str().unwrap().starts_with('@'));
}

#[test]
fn pairs_keep_their_messages_boundaries_shutdown_and_options_from_the_image_file() {
    let info = comes_back("unix_pairs", "pairs", 17, true);
    let fds = unix_fds(&info);
    assert_eq!(fds.len(), 6, "{fds:?}");
    assert_eq!(fds[1]["socket"]["queued_messages"], 3);
    assert_eq!(fds[5]["socket"]["shutdown"], "write");
}

#[test]
fn pairs_made_by_connect_and_accept_keep_their_names() {
    let info = comes_back("unix_accepted", "accepted", 20, false);
    let fds = unix_fds(&info);
    let accepted: Vec<_> = fds
        .iter()
        .filter(|f| f["socket"]["accepted_on_fd"].is_u64())
        .collect();
    // The two listeners still open; the third was closed.
    assert_eq!(accepted.len(), 2, "{fds:?}");
}

#[test]
fn datagrams_keep_their_senders_and_a_connected_socket_reconnects() {
    let info = comes_back("unix_senders", "senders", 16, false);
    let fds = unix_fds(&info);
    assert_eq!(fds[0]["socket"]["queued_messages"], 5);
    assert_eq!(fds[2]["socket"]["state"], "connected");
    assert_eq!(fds[3]["socket"]["detached"], true);
}

#[test]
fn datagram_sockets_that_had_one_path_each_get_theirs_and_their_clients_back() {
    let info = comes_back("unix_samepath", "samepath", 10, false);
    let fds = unix_fds(&info);
    let detached = fds
        .iter()
        .filter(|f| f["socket"]["detached"] == true)
        .count();
    assert_eq!(detached, 2, "{fds:?}");
}

#[test]
fn sockets_whose_directory_was_removed_keep_their_names() {
    comes_back("unix_rmdir", "rmdir", 9, false);
}

#[test]
fn sockets_whose_peer_closed_give_their_data_then_end() {
    let info = comes_back("unix_closed", "closed", 7, false);
    let fds = unix_fds(&info);
    assert!(
        fds.iter().all(|f| f["socket"]["state"] == "peer closed"),
        "{fds:?}"
    );
}

#[test]
fn shut_down_sockets_stay_shut_down() {
    comes_back("unix_shut", "shut", 10, false);
}

/// Dump `mode` as nobody: refused with one line naming `what`, the
/// program left running.
fn refused(mode: &str, what: &str) {
    require_tool("setpriv");
    let dir = TestDir::new(&format!("unix_refused_{mode}"));
    let mut p = start(&NOBODY, mode, &dir, &[]);
    let out = dump_as(&NOBODY, p.pid(), &dir.join("x.kckpt"));
    assert_refused(mode, &out, None, &[what]);
    assert!(
        p.exited().is_none(),
        "a refused dump left the program running"
    );
    p.kill();
}

#[test]
fn an_out_of_band_byte_is_refused_by_name() {
    refused(
        "oob",
        "with an out-of-band byte pending (MSG_OOB, not restored)",
    );
}

#[test]
fn an_option_kckpt_does_not_restore_is_refused_by_name() {
    refused(
        "prio",
        "unix stream socket (not bound) with option SO_PRIORITY (not restored)",
    );
}

#[test]
fn a_peer_outside_the_dump_is_refused_then_connected_again_with_skip_unsupported() {
    let dir = TestDir::new("unix_outside");
    let srv = dir.join("srv.sock");
    let server = UnixDatagram::bind(&srv).expect("bind the outside socket");
    let srv_text = srv.display().to_string();
    let mut p = start(&[], "outside", &dir, &[&srv_text]);
    let image = dir.join("x.kckpt");
    let out = dump_raw(p.pid(), &image, false);
    let me = std::process::id();
    assert_refused(
        "outside",
        &out,
        None,
        &[&format!("connected to {srv_text}, held by pid {me} (")],
    );
    let out = dump_skip_unsupported(p.pid(), &image);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connected again to that name at restore"),
        "the dump warns: {err}"
    );
    p.wait_exit(std::time::Duration::from_secs(10));
    let mut r = restore(&image);
    checks_out(&mut r, 1);
    drop(server);
}

#[test]
fn a_path_taken_by_another_kind_of_file_refuses_the_restore() {
    require_tool("setpriv");
    let dir = TestDir::new("unix_taken");
    let mut p = start(&NOBODY, "unconn", &dir, &[]);
    let image = dir.join("unix.kckpt");
    dump_by(&NOBODY, &mut p, &image);
    let path = dir.join("d.sock");
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"data").unwrap();
    let out = run(kckpt_as(&NOBODY).arg("restore").arg(&image), CMD_TIMEOUT);
    assert_refused(
        "taken",
        &out,
        None,
        &[&format!(
            "cannot bind it to {} again: another kind of file is there",
            path.display()
        )],
    );
    assert_eq!(fs::read(&path).unwrap(), b"data", "the file was left alone");
}

/// A kind-45 record with a bad type, or a pair end naming itself as its
/// peer, is refused by the stub before anything changes and by
/// `kckpt info` (the image's metadata checksums recomputed so that the
/// record itself is judged).
#[test]
fn bad_unix_socket_records_are_refused() {
    use kckpt_image::read::read_record;
    use kckpt_image::records::*;
    use kckpt_image::unixsock::UNIX_SOCKET_FD_KIND;
    let dir = TestDir::new("unix_bad_records");
    let mut p = start(&[], "pairs", &dir, &[]);
    let image = dir.join("good.kckpt");
    dump_by(&[], &mut p, &image);
    let base = fs::read(&image).unwrap();
    let fds = note_desc_range(&base, NOTE_OWNER, NT_KCKPT_FDS);
    let strings = note_desc_range(&base, NOTE_OWNER, NT_KCKPT_STRINGS);
    let size = std::mem::size_of::<FdRecord>();
    let (at, rec) = base[fds.clone()]
        .chunks_exact(size)
        .enumerate()
        .map(|(k, c)| (fds.start + k * size, read_record::<FdRecord>(c).unwrap()))
        .find(|(_, r)| r.kind == UNIX_SOCKET_FD_KIND && r.dup_of == FD_NO_DUP)
        .expect("a kind-45 record");
    type Edit<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let edits: [(&str, Edit); 2] = [
        (
            "type",
            Box::new(|img: &mut Vec<u8>| {
                // UnixRecord.ty (offset 0 of the record in the string table).
                img[strings.start + rec.path.offset as usize] = 3;
            }),
        ),
        (
            "peer",
            Box::new(|img: &mut Vec<u8>| {
                let peer_at = at + std::mem::offset_of!(FdRecord, peer);
                img[peer_at..peer_at + 4].copy_from_slice(&rec.fd.to_le_bytes());
            }),
        ),
    ];
    for (name, edit) in edits {
        let mut img = base.clone();
        edit(&mut img);
        let _ = kckpt_image_write::reseal(&mut img);
        let path = dir.join(&format!("bad-{name}.kckpt"));
        fs::write(&path, &img).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let out = run(Command::new(stub()).arg(&path), CMD_TIMEOUT);
        assert_refused(
            name,
            &out,
            None,
            &["bad file descriptor table", "kind-specific"],
        );
        let out = run(Command::new(kckpt()).arg("info").arg(&path), CMD_TIMEOUT);
        assert_refused(
            name,
            &out,
            None,
            &["bad file descriptor table", "kind-specific"],
        );
    }
}

/// A datagram socket whose path now holds a named pipe (removed and made
/// a FIFO after `bind`, zdtm fifo_upon_unix_socket00) is detached from it:
/// the restore binds it with the FIFO moved aside for a moment, its client
/// connects again, and the FIFO is back at the path, still the process's.
#[test]
fn a_socket_whose_path_now_holds_a_named_pipe_comes_back_and_leaves_the_pipe() {
    const PROGRAM: &str = "import os, socket, sys\n\
        path = sys.argv[1]\n\
        a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
        a.bind(path)\n\
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
        b.connect(path)\n\
        os.unlink(path)\n\
        os.mkfifo(path)\n\
        f = os.open(path, os.O_RDWR)\n\
        print('ready', flush=True)\n\
        sys.stdin.readline()\n\
        b.send(b'through the socket')\n\
        os.write(f, b'through the pipe')\n\
        print(a.recv(100).decode(), '/', os.read(f, 100).decode(), flush=True)\n";
    let dir = TestDir::new("unix-fifo-upon");
    let path = dir.join("sock");
    let mut p = Proc::spawn(
        "fifo upon socket",
        Command::new(PYTHON3).args(["-c", PROGRAM, path.to_str().unwrap()]),
    );
    p.wait_for("ready", LINE_TIMEOUT, |l| l == "ready");
    let image = dir.join("fifo.kckpt");
    dump_kills(&mut p, &image);
    let mut r = restore(&image);
    r.write_stdin("go\n");
    assert_eq!(
        r.line(LINE_TIMEOUT),
        "through the socket / through the pipe",
        "{}",
        r.stderr()
    );
    let ft = std::fs::symlink_metadata(&path).unwrap().file_type();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&ft),
        "{path:?} is not the named pipe any more"
    );
    assert!(!dir.join("sock.kckpt-aside").exists());
    r.kill();
}
