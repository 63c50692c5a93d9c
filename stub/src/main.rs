//! `kckpt-stub IMAGE`: restore the process saved in a kckpt image, in this
//! process. binfmt_misc runs it for `./IMAGE`; `kckpt restore` execs it.
//!
//! Static, `no_std`, no libc. Order of work: read the start-up stack
//! ([`startup`]), load and validate the whole image ([`load`], [`layout`],
//! [`state::thread_state`]) — any refusal is one `kckpt: ...` line and exit
//! status 126, with nothing changed — then start the unmapping helper
//! ([`tracer`]), replace the address space ([`memory`]), restore kernel
//! state ([`state`]) and `rt_sigreturn` into the saved registers.
//!
//! An image of a process tree (format 1.4) is restored by [`tree`] and
//! [`coordinator`]: the process that ran it validates every process's
//! image, forks the tree with this program executed again in each process
//! (`KCKPT_TREE_PROC`), which goes through the same order with its own
//! sub-image and waits at a barrier before its final jump.
#![no_std]
#![no_main]

mod attrs;
mod coordinator;
mod creds;
mod data_check;
mod exe;
mod external;
mod files;
mod fill;
mod flocks;
mod fown;
mod ghosts;
mod gsys;
mod ids;
mod inet;
mod inotify;
mod kstate;
mod ksys;
mod layout;
mod load;
mod memory;
mod netns;
mod process;
mod pty;
mod report;
mod root;
mod seccomp;
mod shmem;
mod sockfilter;
mod sockopts;
mod special;
mod startup;
mod state;
mod statics;
mod sys;
mod sysv;
mod tcp;
mod tcpseg;
mod terminal;
mod threads;
mod timers;
mod tracer;
mod tree;
mod unixconn;
mod unixsock;
mod xsys;

use report::Msg;

// `_start` and the C memory functions: this program has no libc.
#[allow(unsafe_code)]
mod runtime {
    kckpt_arch::stub_entry_point!();
    kckpt_arch::stub_mem_functions!();
}
use startup::Startup;
use statics::StaticBuf;

/// The stub's stack: in `.bss`, inside its window, because the initial
/// stack may sit where the saved process had memory.
static STACK: StaticBuf<{ 256 << 10 }> = StaticBuf::new();
static PATH: StaticBuf<4096> = StaticBuf::new();

/// Entry from `_start` (`kckpt_arch::stub_entry_point!`) with the initial
/// stack pointer.
#[allow(unsafe_code)] // `no_mangle`: `_start` calls it by name.
#[no_mangle]
extern "C" fn kckpt_stub_main(sp: usize) -> ! {
    let Some(stack) = STACK.take() else {
        sys::exit(report::EXIT_REFUSED)
    };
    let top = stack.as_ptr() as usize + stack.len();
    // SAFETY: `stack` is this program's own unused .bss buffer, taken once;
    // `stage2` never returns.
    #[allow(unsafe_code)]
    unsafe {
        kckpt_arch::jump::call_on_stack(top, stage2, sp)
    }
}

extern "C" fn stage2(sp: usize) -> ! {
    let mut start = Startup {
        path: [0; 4096],
        path_len: 0,
        mmap_mode: false,
        new_pid_ns: false,
        new_net_ns: false,
        force: false,
        verify: false,
        stopped: false,
        timer_ids_in_order: false,
        stdio: startup::STDIO_AUTO,
        debug_jump: 0,
        page_size: 0,
        hwcap: 0,
        hwcap2: 0,
        tree_proc: startup::NOT_TREE_PROC,
        tree_ns_max: 0,
        tree_userns: false,
        argv: 0,
        envp: 0,
    };
    // SAFETY: `sp` is the initial stack pointer `_start` received.
    #[allow(unsafe_code)]
    unsafe {
        startup::parse(sp, &mut start)
    };
    if start.path_len == 0 {
        sys::write_all(2, b"usage: kckpt-stub IMAGE\nRestores the process saved in a kckpt image (see `kckpt --help`).\n");
        sys::exit(report::EXIT_USAGE);
    }
    let Some(path_buf) = PATH.take() else {
        sys::exit(report::EXIT_REFUSED)
    };
    path_buf.copy_from_slice(&start.path);
    let path: &'static [u8] = &path_buf[..start.path_len + 1];
    if start.stdio == startup::STDIO_BAD {
        Msg::new()
            .s("KCKPT_STDIO must be auto, inherit or saved")
            .exit(report::EXIT_USAGE);
    }

    external::check_list();
    // Validate everything first.
    kckpt_image::checksum::use_hwcap(start.hwcap);
    let (mut img, tree) = if start.tree_proc != startup::NOT_TREE_PROC {
        // One process of a tree (the stub forked it with its pid).
        let (img, tree) = tree::enter(path, &start);
        (img, Some(tree))
    } else {
        let img = load::load(path);
        if img.view.tree.is_some() {
            tree::entry(img, &start, path);
        }
        tree::refuse_shared(&img);
        external::check(&img);
        (img, None)
    };
    state::verify(&img);
    let specials = layout::current_specials(&img);
    layout::check(&img, &specials, start.page_size, start.hwcap, start.hwcap2);
    let mut thread = state::thread_state(&img);
    if !start.new_pid_ns && tree.is_none() {
        // A restorer that may choose pids executes the stub again in a
        // child with the saved pid and waits for it (refusals above come
        // from this process at once; the child checks everything again).
        ids::original_pid(&img, start.argv, start.envp);
    }
    // Descriptor data (and with KCKPT_VERIFY=1 all memory) before it is used.
    data_check::up_front(&img, start.verify);
    // A process restored in a new network namespace (one of a tree is in
    // it already) has its sockets checked there, once it is made.
    let new_net = tree.is_none() && start.new_pid_ns && {
        let mut needs = netns::Needs::default();
        needs.note(&img.view);
        netns::wanted(img.path, &needs, start.new_net_ns)
    };
    if !new_net {
        socket_checks(&img);
    }
    timers::check(&img, start.timer_ids_in_order);
    let own_userns =
        (start.new_pid_ns && sys::geteuid() != 0) || (tree.is_some() && start.tree_userns);
    creds::check(&img, start.force, own_userns);
    attrs::check(&img, start.force, own_userns);
    root::check(&img, own_userns);
    seccomp::check(&img, own_userns);
    terminal::check_job(
        &img,
        start.new_pid_ns || sys::getpid() == img.view.header.pid,
        start.force,
    );
    terminal::note_caller();
    let (tids, helper_pids) = if let Some(t) = &tree {
        (threads::Tids::Require, t.helper_pids())
    } else if start.new_pid_ns {
        kstate::loginuid_before_userns(&img);
        let helper_pids = ids::enter_new_pid_ns(&img, new_net);
        if new_net {
            socket_checks(&img);
        }
        (threads::Tids::Require, helper_pids)
    } else {
        (threads::Tids::Prefer, [0, 0])
    };
    if tree.is_none() {
        // (1.10) In a new IPC namespace; a tree's coordinator did it.
        sysv::create(&img);
    }
    sysv::check_attachments(&img, tree.is_some());
    if start.stopped {
        // While descriptor 2 is still the restorer's.
        let pid = sys::getpid() as u64;
        Msg::new()
            .s("pid ")
            .dec(pid)
            .s(" stops before its first instruction (--stopped): gdb -p ")
            .dec(pid)
            .s(" attaches to it, kill -CONT ")
            .dec(pid)
            .s(" lets it run")
            .s(if start.new_pid_ns || tree.is_some() {
                " (pid in the PID namespace the restore made)"
            } else {
                ""
            })
            .say();
    }
    if let Some(t) = &tree {
        tree::before_files(t, &img);
    }
    files::restore(
        &mut img,
        start.force,
        start.stdio,
        tree.as_ref().map(tree::Tree::kept),
        tree.as_ref().map(tree::Tree::who),
    );
    let mut groups = shmem::Groups::new(&img);
    if let Some(t) = &tree {
        tree::after_files(t, &img, &mut groups);
    }
    exe::prepare(&img);
    if !start.new_pid_ns && tree.is_none() {
        ids::report_new_ids(&img);
    }
    let nthreads = img.view.header.thread_count as usize;

    // Then replace this process with the saved one.
    let result = (|| {
        memory::reserve_scratch()?;
        let trap = &img.view.signals.actions[4]; // SIGTRAP
        let sigtrap = sys::KernelSigaction {
            handler: trap.handler,
            flags: trap.flags,
            restorer: trap.restorer,
            mask: trap.mask,
        };
        let traced = tracer::start(nthreads, helper_pids, &sigtrap, seccomp::wants_suspend())?;
        seccomp::decide(traced && tracer::suspended())?;
        let _ = sys::set_sigmask(!0);
        kstate::before_memory(&img);
        // Helper threads read large runs in parallel; none in a new PID
        // namespace, where their tids could be ones the process needs.
        // Nor in a tree, whose other processes are being created.
        if !start.new_pid_ns && tree.is_none() {
            fill::start();
        }
        let rebuilt = memory::replace_address_space(&img, &specials, &mut groups, start.mmap_mode);
        fill::stop();
        rebuilt?;
        if tree.is_none() {
            sysv::remove_destroyed(&img.view);
        }
        ghosts::close_all();
        flocks::take(&img, start.force, false);
        inotify::add_watches(&img, start.force);
        state::restore(&img, &thread)?;
        creds::robust_list(&img, 0)?;
        kstate::after_memory(&img)?;
        let frame = state::map_frames(&img)?;
        process::restore(&img, thread.record.tid)?;
        terminal::restore_job(&img);
        terminal::queue_sigwinch(&img, &mut thread);
        // Filters all threads share, inherited as they were (root restore).
        seccomp::install_shared(&img)?;
        threads::start(&img, traced, tids)?;
        let tid_now = |saved| threads::tid_now(&img, saved);
        fown::restore(&img, &tid_now, tree.is_some());
        timers::restore(&img, &tid_now, start.timer_ids_in_order)?;
        attrs::scheduling(&img, 0);
        // Nothing is opened by path from here on.
        root::enter(&img)?;
        // Last: the credentials (the other threads have taken theirs), then
        // dumpable, which a change of credentials resets.
        seccomp::install_early(&img, 0)?;
        creds::restore(&img, 0)?;
        process::restore_dumpable(&img)?;
        ids::drop_caps();
        if let Some(t) = &tree {
            tree::barrier(t);
            fown::retry(&img, &tid_now);
        }
        tcp::send_queues(&img);
        sockfilter::attach(&img);
        attrs::death_signal(&img, 0);
        attrs::stop(&img, traced, start.stopped);
        state::resume(&img, &thread, traced, start.debug_jump, frame)
    })();
    match result {
        Ok(never) => match never {},
        Err(failure) => failure.exit(&img),
    }
}

/// Before anything changes: every socket can be made again (addresses
/// free, TCP repair allowed), in the network namespace it will be in.
fn socket_checks(img: &load::Image) {
    inet::check(img);
    tcp::check(img);
    unixconn::check(img);
    sockfilter::check(img);
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    Msg::new().s("internal error in the restore stub").fail()
}

/// The precompiled `core` refers to the unwinding personality routine; the
/// stub never unwinds (panic = abort), so it is never called.
#[allow(unsafe_code)] // `no_mangle`: the linker looks for this name.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// compiler-builtins' outline atomics (aarch64) look up LSE support with
/// `getauxval` from a constructor; the stub runs no constructors, has no
/// libc, and uses the LL/SC fallback.
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)] // `no_mangle`: the linker looks for this name.
#[no_mangle]
extern "C" fn getauxval(_kind: u64) -> u64 {
    0
}
