/* bpf_filter: a UDP socket with an eBPF socket filter (SO_ATTACH_BPF),
 * which the kernel does not give back (SO_GET_FILTER answers EACCES):
 * the dump must refuse it by name. Loads a two-instruction program
 * (r0 = -1: keep every packet; exit), attaches it to fd 3's socket,
 * prints "ready FD" and sleeps. Needs CAP_BPF (or CAP_SYS_ADMIN):
 * prints "FAIL ..." and exits 2 without. */
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>

int main(void)
{
    struct bpf_insn prog[2];
    memset(prog, 0, sizeof prog);
    prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = -1 */
    prog[0].dst_reg = BPF_REG_0;
    prog[0].imm = -1;
    prog[1].code = BPF_JMP | BPF_EXIT;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insn_cnt = 2;
    attr.insns = (unsigned long)prog;
    attr.license = (unsigned long)"GPL";
    int pfd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    if (pfd < 0) {
        printf("FAIL bpf: %s\n", strerror(errno));
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_ATTACH_BPF, &pfd, sizeof pfd)) {
        printf("FAIL attach: %s\n", strerror(errno));
        return 2;
    }
    close(pfd);
    printf("ready %d\n", s);
    fflush(stdout);
    for (;;)
        pause();
}
