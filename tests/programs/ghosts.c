/* Deleted files and directories, procfs files, locks and file mappings
 * (issue 8), for tests/tests/ghosts.rs.
 *
 *   ghosts all DIR     a deleted file with holes held by three descriptors
 *                      (two open file descriptions) and mapped shared, a
 *                      deleted directory, a deleted working directory,
 *                      /proc/self/status, flock, POSIX and OFD locks, a
 *                      read-only shared mapping of a file opened read-write
 *   ghosts vanish DIR  a 32 KiB file mapped shared and written (as a JVM's
 *                      hsperfdata file), counting
 *   ghosts big DIR N   a deleted file holding N bytes of data
 *   ghosts lease DIR   a read lease (F_SETLEASE) on fd 3, /proc/1/status
 *                      open on fd 4 (both refused at dump)
 *
 * Prints "ready", then a line per 100 ms. On SIGUSR1 it checks everything
 * and prints "check ok" or "FAIL ..." lines then "check done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)
#define FILE_SIZE (2 * MIB)
#define HOLE_AT 8192L
#define B_AT (MIB + 65536L)

static volatile sig_atomic_t check_now;
static char *map1, *map2, *perf;
static int failures;

static void on_usr1(int sig) { (void)sig; check_now = 1; }

static void die(const char *what) { perror(what); exit(1); }

#define fail(...) (printf("FAIL " __VA_ARGS__), printf("\n"), failures++)

static void fdinfo_has(int fd, const char *a, const char *b)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	int found = 0;
	while (f && fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "lock:", 5) && strstr(buf, a) && strstr(buf, b))
			found = 1;
	if (f)
		fclose(f);
	if (!found)
		fail("fd %d: no lock line with %s and %s", fd, a, b);
}

static void setup_all(const char *dir)
{
	char p[4096], buf[8192];
	if (chdir(dir))
		die("chdir");
	/* fd 3: deleted file with a hole, mode 0640, old mtime. */
	int fd = open("data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd != 3)
		die("fd 3");
	memset(buf, 'A', sizeof(buf));
	if (pwrite(fd, buf, 8192, 0) != 8192)
		die("pwrite A");
	memset(buf, 'B', 4096);
	if (pwrite(fd, buf, 4096, B_AT) != 4096)
		die("pwrite B");
	if (ftruncate(fd, FILE_SIZE))
		die("ftruncate");
	map1 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map1 == MAP_FAILED)
		die("mmap");
	memcpy(map1 + 10, "mapped", 6);
	if (msync(map1, 4096, MS_SYNC))
		die("msync");
	struct timeval tv[2] = {{1000000, 0}, {1234567, 0}};
	if (futimes(fd, tv) || fchmod(fd, 0640))
		die("times/mode");
	if (unlink("data.bin"))
		die("unlink");
	/* fd 4: a second open file description, read-only, offset 100. */
	if (open("/proc/self/fd/3", O_RDONLY) != 4)
		die("fd 4");
	lseek(4, 100, SEEK_SET);
	/* fd 5: a dup of fd 3 (shared offset). */
	if (dup(3) != 5)
		die("fd 5");
	lseek(3, 777, SEEK_SET);
	/* fd 6: a deleted directory. */
	if (mkdir("sub", 0755) || open("sub", O_RDONLY | O_DIRECTORY) != 6 || rmdir("sub"))
		die("fd 6");
	/* fd 7: this process's own status file. */
	if (open("/proc/self/status", O_RDONLY) != 7)
		die("fd 7");
	/* fd 8, 9, 10: flock, POSIX and OFD locks. */
	if (open("flock", O_RDWR | O_CREAT, 0644) != 8 || flock(8, LOCK_EX))
		die("fd 8");
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
	if (open("posix", O_RDWR | O_CREAT, 0644) != 9 || fcntl(9, F_SETLK, &fl))
		die("fd 9");
	struct flock ofd = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if (open("ofd", O_RDWR | O_CREAT, 0644) != 10 || fcntl(10, F_OFD_SETLK, &ofd))
		die("fd 10");
	/* A read-only shared mapping of a file opened read-write. */
	int m = open("prot", O_RDWR | O_CREAT, 0644);
	if (m < 0 || ftruncate(m, 4096))
		die("prot");
	map2 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, m, 0);
	if (map2 == MAP_FAILED)
		die("mmap prot");
	close(m);
	/* The working directory: deleted. */
	snprintf(p, sizeof(p), "%s/cwd", dir);
	if (mkdir(p, 0700) || chdir(p) || rmdir(p))
		die("cwd");
}

static void check_all(void)
{
	struct stat s3, s4, s5, s6;
	char buf[8192], link[4096];
	if (fstat(3, &s3) || fstat(4, &s4) || fstat(5, &s5) || fstat(6, &s6))
		fail("fstat");
	if (s3.st_size != FILE_SIZE)
		fail("size %ld", (long)s3.st_size);
	if ((s3.st_mode & 07777) != 0640)
		fail("mode %lo", (long)(s3.st_mode & 07777));
	if (s3.st_mtime != 1234567)
		fail("mtime %ld", (long)s3.st_mtime);
	if (s3.st_nlink != 0)
		fail("nlink %ld", (long)s3.st_nlink);
	if (s3.st_blocks * 512 >= MIB)
		fail("holes filled: %ld bytes allocated", (long)s3.st_blocks * 512);
	if (s4.st_ino != s3.st_ino || s5.st_ino != s3.st_ino)
		fail("not one inode: %ld %ld %ld", (long)s3.st_ino, (long)s4.st_ino, (long)s5.st_ino);
	if (lseek(5, 0, SEEK_CUR) != 777 || lseek(3, 0, SEEK_CUR) != 777)
		fail("shared offset %ld", (long)lseek(5, 0, SEEK_CUR));
	if (lseek(4, 0, SEEK_CUR) != 100)
		fail("fd 4 offset %ld", (long)lseek(4, 0, SEEK_CUR));
	if ((fcntl(4, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(3, F_GETFL) & O_ACCMODE) != O_RDWR)
		fail("access modes %o %o", fcntl(3, F_GETFL), fcntl(4, F_GETFL));
	if (pread(4, buf, 8192, 0) != 8192)
		fail("short read");
	for (int i = 0; i < 8192; i++) {
		char want = (i >= 10 && i < 16) ? "mapped"[i - 10] : 'A';
		if (buf[i] != want) {
			fail("byte %d is %d", i, buf[i]);
			break;
		}
	}
	if (pread(3, buf, 4096, B_AT) != 4096 || buf[0] != 'B' || buf[4095] != 'B')
		fail("B block lost");
	off_t hole = lseek(4, 0, SEEK_HOLE);
	if (hole != HOLE_AT && hole != FILE_SIZE)
		fail("first hole at %ld", (long)hole);
	lseek(4, 100, SEEK_SET);
	/* The mapping is the same inode as the descriptors (then put back as
	 * it was, times included: the check can run again). */
	memcpy(map1 + 20, "after", 5);
	if (pread(4, buf, 5, 20) != 5 || memcmp(buf, "after", 5))
		fail("mapping and descriptors are different files");
	memcpy(map1 + 20, "AAAAA", 5);
	msync(map1, 4096, MS_SYNC);
	struct timeval tv[2] = {{1000000, 0}, {1234567, 0}};
	futimes(3, tv);
	ssize_t n = readlink("/proc/self/fd/3", link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!strstr(link, "data.bin (deleted)"))
		fail("fd 3 links to %s", link);
	if (!S_ISDIR(s6.st_mode) || s6.st_nlink != 0)
		fail("fd 6 not a deleted directory: mode %o nlink %ld", s6.st_mode, (long)s6.st_nlink);
	n = readlink("/proc/self/cwd", link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!strstr(link, " (deleted)") || getcwd(buf, sizeof(buf)) || errno != ENOENT)
		fail("cwd %s not deleted", link);
	/* fd 7 reads this process's status. */
	n = pread(7, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	char *pid = strstr(buf, "\nPid:");
	if (!pid || atol(pid + 5) != getpid())
		fail("fd 7 is not /proc/self/status (pid %ld, mine %ld)", pid ? atol(pid + 5) : -1L, (long)getpid());
	fdinfo_has(8, "FLOCK", "WRITE");
	fdinfo_has(9, "POSIX", "WRITE");
	fdinfo_has(10, "OFDLCK", "READ");
	if (mprotect(map2, 4096, PROT_READ | PROT_WRITE))
		fail("mprotect of the shared mapping: errno %d", errno);
	else
		map2[0] = 'w';
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	close_range(3, ~0U, 0); /* the descriptor numbers below are fixed */
	signal(SIGUSR1, on_usr1);
	const char *mode = argv[1];
	if (!strcmp(mode, "all")) {
		setup_all(argv[2]);
	} else if (!strcmp(mode, "vanish")) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/perfdata", argv[2]);
		int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, 32768))
			die("perfdata");
		perf = mmap(NULL, 32768, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (perf == MAP_FAILED)
			die("mmap perfdata");
		close(fd);
		memcpy(perf, "perf", 4);
	} else if (!strcmp(mode, "lease")) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/leased", argv[2]);
		int fd = open(p, O_RDONLY | O_CREAT, 0600);
		if (fd != 3 || fcntl(fd, F_SETLEASE, F_RDLCK))
			die("lease");
		if (open("/proc/1/status", O_RDONLY) != 4)
			die("fd 4");
	} else if (!strcmp(mode, "big") && argc > 3) {
		char p[4096], buf[65536];
		long size = atol(argv[3]);
		snprintf(p, sizeof(p), "%s/big", argv[2]);
		int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || unlink(p))
			die("big");
		memset(buf, 'x', sizeof(buf));
		for (long done = 0; done < size; done += sizeof(buf))
			if (write(fd, buf, size - done < (long)sizeof(buf) ? size - done : (long)sizeof(buf)) <= 0)
				die("write big");
	} else {
		return 2;
	}
	printf("ready\n");
	for (long n = 0;; n++) {
		if (perf)
			snprintf(perf + 8, 32, "%ld", n);
		if (check_now) {
			check_now = 0;
			failures = 0;
			if (!strcmp(mode, "all"))
				check_all();
			if (perf && memcmp(perf, "perf", 4))
				fail("perfdata content lost");
			if (!failures)
				printf("check ok\n");
			printf("check done\n");
		}
		printf("tick %ld\n", n);
		usleep(100000);
	}
}
