// The machine's floor for an agent-check lookup, for bench/lookup.ts: a minimal agent server
// in C (one thread, epoll, accept → read the line → write "up ready" → close), no lookup. It
// shows what latency this machine allows a TCP connection per lookup at all, apart from Node:
// on the development VM its p99 at 5,000/s is 0.3–0.4 ms while a bare Node server's is 1.4–18.
// Prints its port (127.0.0.1, chosen by the kernel) and serves until killed.
//
//   cc -O2 -o agent-floor bench/agent-floor.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1; setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); a.sin_port = 0;
  if (bind(ls, (void*)&a, sizeof a) || listen(ls, 4096)) { perror("listen"); return 1; }
  socklen_t al = sizeof a; getsockname(ls, (void*)&a, &al); printf("%d\n", ntohs(a.sin_port)); fflush(stdout);
  int ep = epoll_create1(0); struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}; epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event evs[256]; char buf[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        for (;;) { int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK); if (c < 0) break;
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c}; epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce); }
      } else {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0 && memchr(buf, '\n', r)) { (void)!write(fd, "up ready\n", 9); close(fd); }
        else if (r <= 0) close(fd);
      }
    }
  }
}
