/* Sends the read end of a pipe through a Unix socket pair (SCM_RIGHTS)
 * and closes it: only the kernel holds that end now (zdtm scm00). Keeps
 * the write end and the socket pair; prints "ready W" (W: the write end)
 * and waits. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int sk[2], p[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk) < 0 || pipe(p) < 0) {
        perror("setup");
        return 1;
    }
    char c = 0;
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    memset(ctl, 0, sizeof ctl);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &p[0], sizeof(int));
    if (sendmsg(sk[0], &m, 0) != 1) {
        perror("sendmsg");
        return 1;
    }
    close(p[0]);
    printf("ready %d\n", p[1]);
    fflush(stdout);
    pause();
    return 0;
}
