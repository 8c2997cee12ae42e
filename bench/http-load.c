// HTTP lookup load generator for bench/lookup.ts, in C for the reason bench/agent-load.c is:
// a Node generator's own event loop delays (1.5–2 ms p99 on the 2-core test machine at
// 5,000/s) land in every latency it measures. Same protocol as lookup.ts's Node generator
// (--gen=http): prints "ready" once its connections are open, waits for a line on stdin, runs,
// prints one JSON report (GenReport) with the same histogram buckets.
//
// `--conns` keep-alive connections, opened before "ready", one request at a time on each (no
// pipelining): `GET /v1/pools/<pool>/targets/<host:port>`. Open loop: lookup i is due at
// i / rate; it goes out on a free connection, or waits for one, and that wait counts in its
// latency (no coordinated omission). Closed loop (--rate=0): every connection sends its next
// request as soon as an answer is in. Latency is from the write to the whole answer read
// (status line, headers, content-length body), timestamped right after the read. An answer
// whose body does not name the target asked for counts as wrong; a connection the server
// closes counts its lookup as an error and is opened again.
//
//   cc -O2 -o http-load bench/http-load.c -lm
//   http-load --port=N --rate=R (0: closed loop) --seconds=S --conns=C --offset=O
//
// Loopback only: it connects to 127.0.0.1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "load-common.h"

#define POOLS 10
#define TARGETS 10000
#define MAX_CONNS 1024
#define BUF 16384

typedef struct {
  int fd;
  int asked;  // a request is out on it
  int index;
  double issued_ms, due_ms;
  int got;
  int total;  // head + body length once the head is in; 0 before
  char buf[BUF];
} conn_t;

static conn_t conns[MAX_CONNS];
static int nconns;
static int idle[MAX_CONNS];
static int idle_top;
static int port;

static void target_key(int index, char *out, size_t n) {
  int i = index % TARGETS;
  snprintf(out, n, "127.1.%d.%d:9", (i >> 8) & 255, i & 255);
}

static int open_conn(int slot) {
  conn_t *c = &conns[slot];
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) return -1;
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)slot};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  c->asked = 0;
  c->got = 0;
  c->total = 0;
  return 0;
}

static void send_on(int slot, int index, double issued_ms, double due_ms) {
  conn_t *c = &conns[slot];
  char key[32], req[256];
  target_key(index, key, sizeof key);
  int n = snprintf(req, sizeof req, "GET /v1/pools/p%d/targets/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                   (index % TARGETS) % POOLS, key);
  c->asked = 1;
  c->index = index;
  c->issued_ms = issued_ms;
  c->due_ms = due_ms;
  c->got = 0;
  c->total = 0;
  sent++;
  busy++;
  if (write(c->fd, req, n) != n) {
    // A broken connection: the lookup is an error; the connection is opened again.
    errors++;
    busy--;
    c->asked = 0;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (open_conn(slot) == 0) idle[idle_top++] = slot;
  }
}

static int load_room(void) { return idle_top > 0; }

static void load_start(int index, double issued_ms, double due_ms) {
  send_on(idle[--idle_top], index, issued_ms, due_ms);
}

/** Length of head + body once the head is complete, 0 before, -1 for an unreadable head. */
static int answer_length(const conn_t *c) {
  const char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
  if (end == NULL) return c->got >= BUF ? -1 : 0;
  int head = (int)(end - c->buf) + 4;
  for (const char *p = c->buf; p < end; p++) {
    if (p[0] == '\r' && p[1] == '\n' && strncasecmp(p + 2, "content-length:", 15) == 0) {
      long cl = strtol(p + 17, NULL, 10);
      if (cl < 0 || head + cl > BUF) return -1;
      return head + (int)cl;
    }
  }
  return -1;
}

static void load_event(int slot, uint32_t events) {
  conn_t *c = &conns[slot];
  if (c->fd < 0) return;
  for (;;) {
    ssize_t r = c->got < BUF ? read(c->fd, c->buf + c->got, BUF - c->got) : -1;
    if (r > 0) {
      c->got += (int)r;
      if (c->total == 0) c->total = answer_length(c);
      if (c->total < 0 || !c->asked) break;  // unreadable, or bytes nobody asked for
      if (c->total > 0 && c->got >= c->total) {
        double t = now_ms();
        answered++;
        hist_record(&latency, t - c->issued_ms);
        hist_record(&from_schedule, t - c->due_ms);
        char needle[64];
        char key[32];
        target_key(c->index, key, sizeof key);
        snprintf(needle, sizeof needle, "\"target\":\"%s\"", key);
        if (c->got != c->total || memmem(c->buf, c->got, needle, strlen(needle)) == NULL) wrong++;
        c->asked = 0;
        c->got = 0;
        c->total = 0;
        busy--;
        idle[idle_top++] = slot;
        return;
      }
      continue;
    }
    if (r < 0 && errno == EAGAIN) return;
    break;  // closed by the server, or an error
  }
  (void)events;
  // The connection is lost (or spoke out of turn): its lookup is an error; open another.
  if (c->asked) {
    errors++;
    busy--;
  }
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (open_conn(slot) == 0) idle[idle_top++] = slot;
}

int main(int argc, char **argv) {
  double rate, seconds;
  int offset;
  if (!load_args(argc, argv, "http-load", &port, &rate, &seconds, &nconns, &offset)) return 2;
  if (nconns < 1 || nconns > MAX_CONNS) {
    fprintf(stderr, "http-load: --conns must be 1..%d\n", MAX_CONNS);
    return 2;
  }
  epfd = epoll_create1(0);
  for (int i = 0; i < nconns; i++) {
    if (open_conn(i) < 0) {
      fprintf(stderr, "http-load: cannot connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
      return 1;
    }
  }
  for (int i = nconns - 1; i >= 0; i--) idle[idle_top++] = i;
  return run_load(rate, seconds, offset);
}
