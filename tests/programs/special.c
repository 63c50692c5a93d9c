/* Named pipes, memory devices at other paths and symbolic links held with
 * O_PATH (issue 8), for tests/tests/special.rs.
 *
 *   special all DIR    (root: it makes device nodes)
 *     fd 3  DIR/fifo O_RDWR, with 1000 bytes buffered
 *     fd 4  DIR/fifo O_RDONLY|O_NONBLOCK (another open file description)
 *     fd 5  DIR/fifo O_WRONLY
 *     fd 6  a deleted named pipe, read-only, with 300 bytes buffered
 *           (its writer was closed)
 *     fd 7  a deleted device node 1:3 (mode 0600), O_RDWR
 *     fd 8  DIR/full, a device node 1:7 (mode 0640), O_WRONLY
 *     fd 9  DIR/link, a symbolic link to "target-text", O_PATH|O_NOFOLLOW
 *     fd 10 a deleted symbolic link to "gone-target", O_PATH|O_NOFOLLOW
 *   special open PATH  PATH opened O_RDWR at fd 3 (a named pipe or device)
 *   special null DIR   a deleted device node 1:3 at fd 3 and a deleted
 *                      named pipe at fds 4 (read-only) and 5 (write-only),
 *                      with 10 bytes; the check reads them back and checks
 *                      fd 3's device number and type, not its mode
 *
 * Prints "ready", then a line per 100 ms. On SIGUSR1 it checks everything
 * (reading the buffered bytes and writing them back) and prints
 * "check ok" or "FAIL ..." lines then "check done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static volatile sig_atomic_t check_now;
static int failures;
static char dir[2048];

static void on_usr1(int sig) { (void)sig; check_now = 1; }
static void die(const char *what) { perror(what); exit(1); }

#define fail(...) (printf("FAIL " __VA_ARGS__), printf("\n"), failures++)

static void at(int want, int got)
{
	if (got != want) {
		fprintf(stderr, "expected fd %d, got %d: ", want, got);
		die("open");
	}
}

static void pattern(char *buf, int n, int seed)
{
	for (int i = 0; i < n; i++)
		buf[i] = (char)(seed + i * 7);
}

static void setup_all(void)
{
	char p[4096], buf[1000];
	snprintf(p, sizeof(p), "%s/fifo", dir);
	if (mkfifo(p, 0640))
		die("mkfifo");
	at(3, open(p, O_RDWR));
	pattern(buf, 1000, 1);
	if (write(3, buf, 1000) != 1000)
		die("write fifo");
	at(4, open(p, O_RDONLY | O_NONBLOCK));
	at(5, open(p, O_WRONLY));
	snprintf(p, sizeof(p), "%s/ghost-fifo", dir);
	if (mkfifo(p, 0600))
		die("mkfifo ghost");
	at(6, open(p, O_RDONLY | O_NONBLOCK));
	int w = open(p, O_WRONLY);
	fcntl(6, F_SETFL, 0);
	pattern(buf, 300, 5);
	if (write(w, buf, 300) != 300)
		die("write ghost");
	close(w);
	unlink(p);
	snprintf(p, sizeof(p), "%s/null", dir);
	if (mknod(p, S_IFCHR | 0600, makedev(1, 3)))
		die("mknod null");
	at(7, open(p, O_RDWR));
	unlink(p);
	snprintf(p, sizeof(p), "%s/full", dir);
	if (mknod(p, S_IFCHR | 0640, makedev(1, 7)))
		die("mknod full");
	at(8, open(p, O_WRONLY));
	snprintf(p, sizeof(p), "%s/link", dir);
	if (symlink("target-text", p))
		die("symlink");
	at(9, open(p, O_PATH | O_NOFOLLOW));
	snprintf(p, sizeof(p), "%s/gone", dir);
	if (symlink("gone-target", p))
		die("symlink gone");
	at(10, open(p, O_PATH | O_NOFOLLOW));
	unlink(p);
}

static void want_stat(int fd, mode_t mode, dev_t rdev, int nlink)
{
	struct stat st;
	if (fstat(fd, &st)) {
		fail("fd %d: fstat: %s", fd, strerror(errno));
		return;
	}
	if (st.st_mode != mode)
		fail("fd %d: mode %o, want %o", fd, st.st_mode, mode);
	if (rdev && st.st_rdev != rdev)
		fail("fd %d: rdev %lx, want %lx", fd, (long)st.st_rdev, (long)rdev);
	if (nlink >= 0 && (int)st.st_nlink != nlink)
		fail("fd %d: %d links, want %d", fd, (int)st.st_nlink, nlink);
}

static void want_flags(int fd, int flags)
{
	int got = fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK | O_PATH);
	if (got != flags)
		fail("fd %d: flags %o, want %o", fd, got, flags);
}

/* Read n bytes of pattern seed from fd (non-blocking), then nothing. */
static void want_data(int fd, int n, int seed)
{
	char buf[2000], want[2000];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int got = read(fd, buf, sizeof(buf));
	pattern(want, n, seed);
	if (got != n || memcmp(buf, want, n))
		fail("fd %d: read %d bytes, want %d of the pattern", fd, got, n);
	if (read(fd, buf, 1) > 0)
		fail("fd %d: more bytes than saved", fd);
	fcntl(fd, F_SETFL, fl);
}

static void want_link(int fd, const char *target)
{
	char buf[256];
	ssize_t n = readlinkat(fd, "", buf, sizeof(buf) - 1);
	buf[n < 0 ? 0 : n] = 0;
	if (strcmp(buf, target))
		fail("fd %d: link reads \"%s\", want \"%s\"", fd, buf, target);
}

static void setup_null(void)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/n", dir);
	if (mknod(p, S_IFCHR | 0600, makedev(1, 3)))
		die("mknod");
	at(3, open(p, O_RDWR));
	unlink(p);
	snprintf(p, sizeof(p), "%s/f", dir);
	if (mkfifo(p, 0600))
		die("mkfifo");
	at(4, open(p, O_RDONLY | O_NONBLOCK));
	at(5, open(p, O_WRONLY));
	unlink(p);
	if (write(5, "0123456789", 10) != 10)
		die("write");
}

static void check_null(void)
{
	struct stat st;
	char buf[16];
	if (fstat(3, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		fail("fd 3: not /dev/null's device");
	if (write(3, "x", 1) != 1)
		fail("fd 3: write");
	if (read(4, buf, sizeof(buf)) != 10 || memcmp(buf, "0123456789", 10))
		fail("fd 4: the 10 bytes");
	if (write(5, "0123456789", 10) != 10)
		fail("fd 5: write");
	want_stat(4, S_IFIFO | 0600, 0, 0);
}

static void check_all(void)
{
	char buf[1000], p[4096];
	struct stat a, b, c;
	want_stat(3, S_IFIFO | 0640, 0, 1);
	want_flags(3, O_RDWR);
	want_flags(4, O_RDONLY | O_NONBLOCK);
	want_flags(5, O_WRONLY);
	if (fstat(3, &a) || fstat(4, &b) || fstat(5, &c) || a.st_ino != b.st_ino ||
	    a.st_ino != c.st_ino)
		fail("fds 3, 4, 5: not the same named pipe");
	want_data(4, 1000, 1);
	pattern(buf, 1000, 1);
	if (write(5, buf, 1000) != 1000)
		fail("fd 5: write");
	want_stat(6, S_IFIFO | 0600, 0, 0);
	want_flags(6, O_RDONLY);
	want_data(6, 300, 5);
	snprintf(p, sizeof(p), "/proc/self/fd/6");
	int w = open(p, O_WRONLY | O_NONBLOCK);
	pattern(buf, 300, 5);
	if (w < 0 || write(w, buf, 300) != 300)
		fail("fd 6: cannot write the bytes back");
	close(w);
	want_stat(7, S_IFCHR | 0600, makedev(1, 3), 0);
	want_flags(7, O_RDWR);
	if (write(7, "x", 1) != 1)
		fail("fd 7: write to null");
	want_stat(8, S_IFCHR | 0640, makedev(1, 7), 1);
	want_flags(8, O_WRONLY);
	if (write(8, "x", 1) != -1 || errno != ENOSPC)
		fail("fd 8: not full");
	snprintf(p, sizeof(p), "/proc/self/fd/8");
	ssize_t n = readlink(p, buf, sizeof(buf) - 1);
	buf[n < 0 ? 0 : n] = 0;
	if (strcmp(buf + strlen(buf) - 5, "/full"))
		fail("fd 8: path %s", buf);
	want_stat(9, S_IFLNK | 0777, 0, 1);
	want_link(9, "target-text");
	want_flags(9, O_PATH);
	want_stat(10, S_IFLNK | 0777, 0, 0);
	want_link(10, "gone-target");
}

int main(int argc, char **argv)
{
	if (argc < 3)
		die("usage");
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	int all = !strcmp(argv[1], "all"), null = !strcmp(argv[1], "null");
	if (all)
		setup_all();
	else if (null)
		setup_null();
	else
		at(3, open(argv[2], O_RDWR));
	signal(SIGUSR1, on_usr1);
	printf("ready\n");
	for (unsigned long i = 0;; i++) {
		if (check_now) {
			check_now = 0;
			failures = 0;
			if (all)
				check_all();
			if (null)
				check_null();
			if (!failures)
				printf("check ok\n");
			printf("check done\n");
		}
		printf("tick %lu\n", i);
		usleep(100000);
	}
}
