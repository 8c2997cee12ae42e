// Agent-check load generator for bench/lookup.ts, in C so that the generator's own event loop
// does not sit in the latency it measures (a Node generator opening 5,000 connections a second
// spends ~40% of a core and its loop delays land in every sample). It speaks the same
// protocol as bench/lookup.ts's Node generator (--gen=agent): prints "ready", waits for a
// line on stdin, runs, prints one JSON report (GenReport) with the same histogram buckets.
//
// Each lookup, as HAProxy's agent check does it: a new TCP connection, `<pool>/<host:port>\n`,
// read one line, close with a reset (HAProxy closes check connections without lingering, so
// no TIME_WAIT piles up). Latency is from connect() to the line read, timestamped right after
// the read; send lag is how late connect() was against the schedule (a timerfd at the next due
// time, nanoseconds).
//
//   cc -O2 -o agent-load bench/agent-load.c
//   agent-load --port=N --rate=R (0: closed loop) --seconds=S --conns=C --offset=O
//
// Loopback only: it connects to 127.0.0.1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "load-common.h"

#define POOLS 10
#define TARGETS 10000
#define MAX_INFLIGHT 4096

typedef struct {
  int fd;  // -1 when free
  int index;
  int connected;
  int got;
  double issued_ms, due_ms;
  char buf[256];
} conn_t;

static conn_t conns[MAX_INFLIGHT];
static int free_list[MAX_INFLIGHT];
static int free_top;
static int port;

static int request_line(int index, char *out, size_t n) {
  int i = index % TARGETS;
  return snprintf(out, n, "p%d/127.1.%d.%d:9\n", i % POOLS, (i >> 8) & 255, i & 255);
}

static void finish(int slot, int ok) {
  conn_t *c = &conns[slot];
  double t = now_ms();
  if (!ok) {
    errors++;
  } else {
    answered++;
    hist_record(&latency, t - c->issued_ms);
    hist_record(&from_schedule, t - c->due_ms);
    // Every 20th target fails its checks ("down ready #..."); all others are "up ready".
    c->buf[c->got < (int)sizeof c->buf ? c->got : (int)sizeof c->buf - 1] = 0;
    if (strstr(c->buf, "ready") == NULL) wrong++;
  }
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c->fd);  // also leaves the epoll set
  c->fd = -1;
  free_list[free_top++] = slot;
  busy--;
}

static int load_room(void) { return free_top > 0; }

static void load_start(int index, double issued_ms, double due_ms) {
  int slot = free_list[--free_top];
  conn_t *c = &conns[slot];
  busy++;
  sent++;
  c->index = index;
  c->issued_ms = issued_ms;
  c->due_ms = due_ms;
  c->connected = 0;
  c->got = 0;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) {
    errors++;
    free_list[free_top++] = slot;
    busy--;
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)slot};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
    finish(slot, 0);
    return;
  }
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) finish(slot, 0);
}

static void load_event(int slot, uint32_t events) {
  conn_t *c = &conns[slot];
  if (c->fd < 0) return;
  if (!c->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      finish(slot, 0);
      return;
    }
    c->connected = 1;
    char line[64];
    int n = request_line(c->index, line, sizeof line);
    if (write(c->fd, line, n) != n) {
      finish(slot, 0);
      return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)slot};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
    for (;;) {
      int room = (int)sizeof c->buf - 1 - c->got;
      if (room <= 0) {
        finish(slot, 1);
        return;
      }
      ssize_t r = read(c->fd, c->buf + c->got, room);
      if (r > 0) {
        c->got += (int)r;
        if (memchr(c->buf, '\n', c->got) != NULL) {
          finish(slot, 1);
          return;
        }
        continue;
      }
      if (r == 0) {  // the peer closed before a whole line
        finish(slot, c->got > 0);
        return;
      }
      if (errno == EAGAIN) return;
      finish(slot, 0);
      return;
    }
  }
}

int main(int argc, char **argv) {
  double rate, seconds;
  int offset;
  int conc;
  if (!load_args(argc, argv, "agent-load", &port, &rate, &seconds, &conc, &offset)) return 2;
  int max_inflight = rate == 0 ? conc : MAX_INFLIGHT;
  if (max_inflight < 1 || max_inflight > MAX_INFLIGHT) {
    fprintf(stderr, "agent-load: --conns must be 1..%d\n", MAX_INFLIGHT);
    return 2;
  }
  for (int i = 0; i < max_inflight; i++) {
    conns[i].fd = -1;
    free_list[free_top++] = max_inflight - 1 - i;
  }
  epfd = epoll_create1(0);
  return run_load(rate, seconds, offset);
}
