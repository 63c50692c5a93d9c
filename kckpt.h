/* kckpt.h: checkpoint the calling process into an executable image.
 *
 * Link with libkckpt.a (`cargo build --release` builds
 * target/release/libkckpt.a):
 *
 *     cc -O2 prog.c -I/path/to/kckpt /path/to/target/release/libkckpt.a -o prog
 *
 * The image has the same format as `kckpt dump` writes: `./IMAGE` (with
 * kckpt's binfmt_misc handler registered) or `kckpt restore IMAGE` runs
 * it, `kckpt info IMAGE` describes it, `gdb PROGRAM IMAGE` reads it.
 */
#ifndef KCKPT_H
#define KCKPT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Write an image of the calling process to `path` (mode 0600; written to a
 * temporary file next to it and renamed into place when complete).
 *
 * Returns
 *    0  in the process that wrote the image, which goes on running;
 *    1  when a process restored from the image returns from this call;
 *   -1  on failure, with errno set (no image is left behind):
 *         EBUSY       the process has more than one thread;
 *         EOPNOTSUPP  it holds something kckpt cannot save (a TCP socket,
 *                     a child process, a seccomp filter...);
 *         ENOENT, EACCES, ENOSPC, ...  from creating or writing the image;
 *         EIO         anything else.
 *
 * All signals are blocked during the call (those that arrive are delivered
 * when it returns 0). Not async-signal-safe; call it from the only thread.
 */
int kckpt_checkpoint_self(const char *path);

/* The one-line message ("kckpt: ...") of the last failed
 * kckpt_checkpoint_self(), or NULL if none failed. Valid until the next
 * failure. */
const char *kckpt_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* KCKPT_H */
