//! `kckpt-stub IMAGE`: restore the process saved in a kckpt image, in this
//! process. binfmt_misc runs it for `./IMAGE`; `kckpt restore` execs it.
//!
//! Static, `no_std`, no libc. Order of work: read the start-up stack
//! ([`startup`]), load and validate the whole image ([`load`], [`layout`],
//! [`state::thread_state`]) — any refusal is one `kckpt: ...` line and exit
//! status 126, with nothing changed — then start the unmapping helper
//! ([`tracer`]), replace the address space ([`memory`]), restore kernel
//! state ([`state`]) and `rt_sigreturn` into the saved registers.
#![no_std]
#![no_main]

mod data_check;
mod files;
mod fill;
mod flocks;
mod ghosts;
mod gsys;
mod ids;
mod layout;
mod load;
mod memory;
mod process;
mod report;
mod shmem;
mod startup;
mod state;
mod statics;
mod sys;
mod threads;
mod tracer;
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
        force: false,
        verify: false,
        debug_jump: 0,
        page_size: 0,
        hwcap: 0,
        hwcap2: 0,
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

    // Validate everything first.
    kckpt_image::checksum::use_hwcap(start.hwcap);
    let mut img = load::load(path);
    state::verify(&img);
    let specials = layout::current_specials(&img);
    layout::check(&img, &specials, start.page_size, start.hwcap, start.hwcap2);
    let thread = state::thread_state(&img);
    // Descriptor data (and with KCKPT_VERIFY=1 all memory) before it is used.
    data_check::up_front(&img, start.verify);
    files::restore(&mut img, start.force);
    let mut groups = shmem::Groups::new(&img);
    let nthreads = img.view.header.thread_count as usize;
    let (tids, helper_pids) = if start.new_pid_ns {
        (threads::Tids::Require, ids::enter_new_pid_ns(&img))
    } else {
        (threads::Tids::Prefer, [0, 0])
    };

    // Then replace this process with the saved one.
    let result = (|| {
        memory::reserve_scratch()?;
        let traced = tracer::start(nthreads, helper_pids)?;
        let _ = sys::set_sigmask(!0);
        // Helper threads read large runs in parallel; none in a new PID
        // namespace, where their tids could be ones the process needs.
        if !start.new_pid_ns {
            fill::start();
        }
        let rebuilt = memory::replace_address_space(&img, &specials, &mut groups, start.mmap_mode);
        fill::stop();
        rebuilt?;
        ghosts::close_all();
        flocks::take(&img, start.force, false);
        state::restore(&img, &thread)?;
        let frame = state::map_frames(&img)?;
        process::restore(&img, thread.record.tid)?;
        threads::start(&img, traced, tids)?;
        ids::drop_caps();
        state::resume(&img, &thread, traced, start.debug_jump, frame)
    })();
    match result {
        Ok(never) => match never {},
        Err(failure) => failure.exit(&img),
    }
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
