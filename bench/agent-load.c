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

#define POOLS 10
#define TARGETS 10000
// Histogram: 1 µs buckets below 1,024 µs, then 64 per doubling, 20 doublings (bench/lookup.ts).
#define LINEAR_US 1024
#define SUB 64
#define DOUBLINGS 20
#define NBUCKETS (LINEAR_US + SUB * DOUBLINGS)
#define MAX_INFLIGHT 4096

typedef struct {
  double counts[NBUCKETS];
} hist_t;

static void hist_record(hist_t *h, double ms) {
  double us = ms < 0 ? 0 : ms * 1000;
  int i;
  if (us < LINEAR_US) {
    i = (int)floor(us);
  } else {
    int e = (int)floor(log2(us));
    if (e > 10 + DOUBLINGS - 1) e = 10 + DOUBLINGS - 1;
    int sub = (int)floor((us / ldexp(1.0, e) - 1) * SUB);
    if (sub > SUB - 1) sub = SUB - 1;
    i = LINEAR_US + (e - 10) * SUB + sub;
  }
  h->counts[i]++;
}

static void hist_print(const char *name, const hist_t *h) {
  printf("\"%s\":[", name);
  int first = 1;
  for (int i = 0; i < NBUCKETS; i++) {
    if (h->counts[i] > 0) {
      printf("%s[%d,%.0f]", first ? "" : ",", i, h->counts[i]);
      first = 0;
    }
  }
  printf("]");
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

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
static int inflight;
static hist_t latency, lag, from_schedule;
static long sent, answered, errors, wrong, queued_max;
static int port;
static int epfd;
// Lookups waiting for a free slot (only when MAX_INFLIGHT are open): index, issued, due.
static int *q_index;
static double *q_issued, *q_due;
static long q_head, q_tail, q_cap;

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
  inflight--;
}

static void start(int index, double issued_ms, double due_ms) {
  int slot = free_list[--free_top];
  conn_t *c = &conns[slot];
  inflight++;
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
    inflight--;
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

static void issue(int index, double issued_ms, double due_ms) {
  if (free_top > 0) {
    start(index, issued_ms, due_ms);
    return;
  }
  if (q_tail == q_cap) {
    q_cap = q_cap ? q_cap * 2 : 4096;
    q_index = realloc(q_index, q_cap * sizeof *q_index);
    q_issued = realloc(q_issued, q_cap * sizeof *q_issued);
    q_due = realloc(q_due, q_cap * sizeof *q_due);
  }
  q_index[q_tail] = index;
  q_issued[q_tail] = issued_ms;
  q_due[q_tail] = due_ms;
  q_tail++;
  if (q_tail - q_head > queued_max) queued_max = q_tail - q_head;
}

static void release(void) {
  while (free_top > 0 && q_head < q_tail) {
    start(q_index[q_head], q_issued[q_head], q_due[q_head]);
    q_head++;
  }
}

static void on_event(int slot, uint32_t events) {
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

static const char *flag(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 && argv[i][2 + n] == '=')
      return argv[i] + 3 + n;
  return NULL;
}

static void arm(int tfd, double at_ms) {
  struct itimerspec its = {0};
  its.it_value.tv_sec = (time_t)(at_ms / 1e3);
  its.it_value.tv_nsec = (long)fmod(at_ms * 1e6, 1e9);
  if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

int main(int argc, char **argv) {
  const char *p = flag(argc, argv, "port");
  const char *r = flag(argc, argv, "rate");
  const char *s = flag(argc, argv, "seconds");
  const char *cn = flag(argc, argv, "conns");
  const char *o = flag(argc, argv, "offset");
  if (!p || !r || !s || !cn) {
    fprintf(stderr, "usage: agent-load --port=N --rate=R --seconds=S --conns=C [--offset=O]\n");
    return 2;
  }
  port = atoi(p);
  double rate = atof(r);
  double seconds = atof(s);
  int conc = atoi(cn);
  int offset = o ? atoi(o) : 0;
  int closed = rate == 0;
  int max_inflight = closed ? conc : MAX_INFLIGHT;
  if (max_inflight < 1 || max_inflight > MAX_INFLIGHT) {
    fprintf(stderr, "agent-load: --conns must be 1..%d\n", MAX_INFLIGHT);
    return 2;
  }
  for (int i = 0; i < max_inflight; i++) {
    conns[i].fd = -1;
    free_list[free_top++] = max_inflight - 1 - i;
  }
  epfd = epoll_create1(0);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

  printf("ready\n");
  fflush(stdout);
  char go[16];
  if (fgets(go, sizeof go, stdin) == NULL) return 1;

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  double t0 = now_ms();
  double end_ms = t0 + seconds * 1e3;
  double interval_ms = closed ? 0 : 1e3 / rate;
  long total = closed ? 0 : lround(seconds * rate);
  long issued = 0;
  if (closed) {
    while (inflight < conc) issue(offset + (int)issued++, t0, t0);
    arm(tfd, end_ms);
  } else {
    arm(tfd, t0);
  }
  struct epoll_event evs[256];
  double grace_end = 0;
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, closed || issued >= total ? 5 : -1);
    double now = now_ms();
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 == UINT32_MAX) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0) { /* spurious */ }
        if (!closed) {
          long due = (long)floor((now - t0) / interval_ms) + 1;
          if (due > total) due = total;
          for (; issued < due; issued++) {
            double due_ms = t0 + issued * interval_ms;
            hist_record(&lag, now - due_ms);
            issue(offset + (int)issued, now, due_ms);
          }
          if (issued < total) arm(tfd, t0 + issued * interval_ms);
        }
        continue;
      }
      on_event((int)evs[i].data.u32, evs[i].events);
    }
    release();
    now = now_ms();
    if (closed && now < end_ms) {
      while (inflight < conc) issue(offset + (int)issued++, now, now);
    }
    int outstanding = inflight + (int)(q_tail - q_head);
    if (now >= end_ms && (closed || issued >= total)) {
      // Answers still in flight get a short grace; later ones count as not achieved.
      if (grace_end == 0) grace_end = now + 500;
      if (outstanding == 0 || now >= grace_end) break;
    }
  }
  double elapsed_s = (now_ms() - t0) / 1e3;
  getrusage(RUSAGE_SELF, &ru1);
  double cpu_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                  (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
  printf("{\"sent\":%ld,\"answered\":%ld,\"errors\":%ld,\"wrong\":%ld,\"elapsedS\":%.3f,\"cpuMicros\":%.0f,\"queuedMax\":%ld,",
         sent, answered, errors, wrong, elapsed_s, cpu_us, queued_max);
  hist_print("latency", &latency);
  printf(",");
  hist_print("lag", &lag);
  printf(",");
  hist_print("fromSchedule", &from_schedule);
  printf("}\n");
  fflush(stdout);
  return 0;
}
