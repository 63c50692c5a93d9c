/* A UDP socket that joined a multicast group on lo: argv[1] "v4"
 * (239.1.2.3, IP_ADD_MEMBERSHIP) or "v6" (ff15::1234, IPV6_JOIN_GROUP).
 * Prints "ready", then idles. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int v6 = argc > 1 && !strcmp(argv[1], "v6");
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return 1;
    if (v6) {
        struct ipv6_mreq m = {.ipv6mr_interface = if_nametoindex("lo")};
        inet_pton(AF_INET6, "ff15::1234", &m.ipv6mr_multiaddr);
        if (setsockopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m) < 0) {
            perror("IPV6_JOIN_GROUP");
            return 1;
        }
    } else {
        struct ip_mreqn m = {.imr_ifindex = (int)if_nametoindex("lo")};
        inet_pton(AF_INET, "239.1.2.3", &m.imr_multiaddr);
        if (setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) < 0) {
            perror("IP_ADD_MEMBERSHIP");
            return 1;
        }
    }
    puts("ready");
    fflush(stdout);
    for (;;)
        pause();
}
