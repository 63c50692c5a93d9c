//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp` for the libc-free
//! stub: the compiler emits calls to them. `stub_mem_functions!()` defines
//! them in the invoking crate only (the dumper uses libc's). Byte loops with
//! volatile accesses, so the optimiser cannot turn them back into calls to
//! themselves; the stub copies little (memory comes back through `pread`),
//! so speed does not matter here.

/// Define the C memory functions in the invoking crate.
#[macro_export]
macro_rules! stub_mem_functions {
    () => {
        mod c_mem_functions {
            use core::ptr::{read_volatile, write_volatile};

            /// # Safety
            /// C `memcpy`: `n` bytes readable at `src`, writable at `dest`, no overlap.
            #[no_mangle]
            pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
                for i in 0..n {
                    // SAFETY: in bounds per the C contract.
                    unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
                }
                dest
            }

            /// # Safety
            /// C `memmove`: `n` bytes readable at `src`, writable at `dest`.
            #[no_mangle]
            pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
                if (dest as usize) <= (src as usize)
                    || (dest as usize) >= (src as usize).wrapping_add(n)
                {
                    // SAFETY: forward copy is safe when dest does not start inside src.
                    return unsafe { memcpy(dest, src, n) };
                }
                for i in (0..n).rev() {
                    // SAFETY: in bounds per the C contract; backwards for overlap.
                    unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
                }
                dest
            }

            /// # Safety
            /// C `memset`: `n` bytes writable at `dest`.
            #[no_mangle]
            pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
                for i in 0..n {
                    // SAFETY: in bounds per the C contract.
                    unsafe { write_volatile(dest.add(i), c as u8) };
                }
                dest
            }

            /// # Safety
            /// C `memcmp`: `n` bytes readable at `a` and `b`.
            #[no_mangle]
            pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
                for i in 0..n {
                    // SAFETY: in bounds per the C contract.
                    let (x, y) = unsafe { (read_volatile(a.add(i)), read_volatile(b.add(i))) };
                    if x != y {
                        return i32::from(x) - i32::from(y);
                    }
                }
                0
            }

            /// # Safety
            /// C `bcmp`: `n` bytes readable at `a` and `b`.
            #[no_mangle]
            pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
                // SAFETY: same contract.
                unsafe { memcmp(a, b, n) }
            }
        }
    };
}
