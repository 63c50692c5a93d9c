//! The stub's own checks of a validated image that need no system call:
//! the thread count, the stub's window, and each thread's registers
//! (`kckpt_arch::check_user_regs`) and FP state. The machine-dependent
//! checks (page size, CPU features, vDSO, backing files) are in the
//! program's `layout` module.

use kckpt_image::read::ThreadNotes;
use kckpt_image::{nt, vma_kind, FormatError, ImageView, CORE_OWNER, LINUX_OWNER};

use crate::window::{FRAME_LEN, MAX_THREADS, USER_TOP, WINDOW_END, WINDOW_START};

/// Why the stub refuses an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A format error (the text of `FormatError`).
    Format(FormatError),
    /// A fixed sentence.
    Text(&'static str),
    /// Saved memory at this address lies in the stub's window.
    Window(u64),
}

/// Everything about one thread the signal frame needs, checked.
#[derive(Clone, Copy, Debug)]
pub struct ThreadState<'a> {
    /// Registers to resume with.
    pub regs: kckpt_arch::UserRegs,
    /// FP/vector state note.
    pub fpstate: &'a [u8],
    /// kckpt's thread record.
    pub record: kckpt_image::ThreadRecord,
}

/// Check one thread's notes; `xcr0`: the image header's.
pub fn thread_notes<'a>(t: &ThreadNotes<'a>, xcr0: u64) -> Result<ThreadState<'a>, Refusal> {
    let regs = kckpt_arch::regs_from_prstatus(t.prstatus)
        .ok_or(Refusal::Text("image is corrupt (bad NT_PRSTATUS)"))?;
    kckpt_arch::check_user_regs(&regs)
        .map_err(|what| Refusal::Format(FormatError::BadRegisters(what)))?;
    let fpstate = t
        .regset(LINUX_OWNER, nt::X86_XSTATE)
        .or_else(|| t.regset(CORE_OWNER, nt::PRFPREG))
        .ok_or(Refusal::Text("image is corrupt (no floating-point state)"))?;
    if kckpt_arch::frame_size(fpstate.len()) > FRAME_LEN
        || !kckpt_arch::fpstate_is_valid(fpstate, xcr0)
    {
        return Err(Refusal::Text("image is corrupt (bad floating-point state)"));
    }
    Ok(ThreadState {
        regs,
        fpstate,
        record: t.record,
    })
}

/// Thread `index` (0: the main thread), checked.
pub fn thread<'a>(view: &ImageView<'a>, index: usize) -> Result<ThreadState<'a>, Refusal> {
    let t = view
        .threads()
        .nth(index)
        .ok_or(Refusal::Text("image is corrupt (no thread)"))?;
    thread_notes(&t, view.header.xcr0)
}

/// Every check of this module, on a view `ImageView::parse` accepted.
pub fn image(view: &ImageView<'_>) -> Result<(), Refusal> {
    if view.header.thread_count as usize > MAX_THREADS {
        return Err(Refusal::Text(
            "the image has more threads than kckpt restores (512)",
        ));
    }
    for vma in view.vmas.iter() {
        let (s, e) = (vma.start, vma.end);
        if s < WINDOW_END as u64 && e > WINDOW_START as u64 {
            return Err(Refusal::Window(s));
        }
        if e > USER_TOP as u64 && vma.kind != vma_kind::VSYSCALL {
            return Err(Refusal::Text(
                "the saved memory lies above the 47-bit user address space",
            ));
        }
    }
    for t in view.threads() {
        thread_notes(&t, view.header.xcr0)?;
    }
    Ok(())
}
