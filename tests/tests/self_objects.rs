//! Descriptors of the process's own kernel objects (issue 8, format 1.3):
//! epoll items whose descriptor number was closed after they were added
//! (the set keeps the file), a pidfd of the process itself, descriptors
//! of its own namespaces and a private mapping of shared anonymous memory
//! (`programs/self_objects.c` checks each after the restore), and the
//! refusals of what stays refused: a pidfd of another process, an epoll
//! item whose file is at no descriptor of the process (its child holds
//! it; one only in flight in a socket's queue is restored: scm_rights.rs),
//! and a namespace that is not its own.

mod common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

/// `self_objects MODE` up to its first tick.
fn start(mode: &str) -> Proc {
    let mut p = Proc::start(prog::SELF_OBJECTS, &[mode]);
    p.wait_for("ready", LINE_TIMEOUT, |l| {
        assert!(!l.starts_with("BAD"), "{l}");
        l == "ready"
    });
    p.wait_for("tick 1", LINE_TIMEOUT, |l| l == "tick 1");
    p
}

/// Ask a restored `self_objects` to check everything; returns its line.
fn checked(r: &mut Proc) -> String {
    // Running again (its SIGUSR1 handler in place).
    r.wait_for("a tick", LINE_TIMEOUT, |l| l.starts_with("tick "));
    kill(Pid::from_raw(r.pid()), Signal::SIGUSR1).expect("kill");
    r.wait_for("check", LINE_TIMEOUT, |l| {
        l.starts_with("check") || l.starts_with("BAD")
    })
}

#[test]
fn epoll_items_on_closed_fds_pidfd_of_itself_own_namespaces_private_shmem_are_restored() {
    let dir = TestDir::new("self-objects");
    let image = dir.join("self.kckpt");
    let mut p = start("restore");
    dump_and_kill(&mut p, &image);

    let mut r = restore(&image);
    let line = checked(&mut r);
    let root = nix::unistd::geteuid().is_root();
    assert_eq!(
        line,
        format!("check ok pid {} shm {}", r.pid(), u8::from(root)),
        "the restored process found its state wrong"
    );
    // A second restore of the image while the first runs gets another pid
    // (the saved one is taken): its pidfd is of itself, that pid.
    let mut again = restore(&image);
    assert_ne!(again.pid(), r.pid());
    let line = checked(&mut again);
    assert_eq!(
        line,
        format!("check ok pid {} shm {}", again.pid(), u8::from(root))
    );
}

/// `self_objects MODE` must be refused at dump naming `what`, and go on.
fn refused_by_name(mode: &str, what: &str) {
    let dir = TestDir::new(&format!("self-refused-{mode}"));
    let image = dir.join("refused.kckpt");
    let mut p = start(mode);
    let out = dump_raw(p.pid(), &image, false);
    assert_refused(mode, &out, Some(1), &[what]);
    assert!(!image.exists(), "an image was left");
    p.wait_for("a tick after the refusal", LINE_TIMEOUT, |l| {
        l.starts_with("tick ")
    });
}

#[test]
fn pidfd_of_another_process_is_refused() {
    refused_by_name("otherpid", "pidfd of process");
}

#[test]
fn epoll_item_whose_file_is_at_no_descriptor_is_refused() {
    refused_by_name("lostepoll", "with its file at no other descriptor");
}

#[test]
fn namespace_that_is_not_its_own_is_refused() {
    refused_by_name("otherns", "not one of the process's own");
}
