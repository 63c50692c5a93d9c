//! Original PID and TIDs: restoring inside a new PID namespace.
use core::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// Set when the stub created a user namespace: the capabilities it holds
/// there are dropped by every thread before the process resumes.
static DROP_CAPS: AtomicBool = AtomicBool::new(false);

/// Drop every capability of the calling thread if the stub created the
/// user namespace it runs in.
pub fn drop_caps() {
    if DROP_CAPS.load(Ordering::Relaxed) {
        sys::drop_caps();
    }
}
