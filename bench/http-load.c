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

#define POOLS 10
#define TARGETS 10000
// Histogram: 1 µs buckets below 1,024 µs, then 64 per doubling, 20 doublings (bench/lookup.ts).
#define LINEAR_US 1024
#define SUB 64
#define DOUBLINGS 20
#define NBUCKETS (LINEAR_US + SUB * DOUBLINGS)
#define MAX_CONNS 1024
#define BUF 16384

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
  int fd;
  int busy;
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
static hist_t latency, lag, from_schedule;
static long sent, answered, errors, wrong, queued_max;
static int port;
static int epfd;
static int closed_loop;
static double end_ms;
static long issued;
static int offset;
// Lookups waiting for a free connection: index, issued, due.
static int *q_index;
static double *q_issued, *q_due;
static long q_head, q_tail, q_cap;

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
  c->busy = 0;
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
  c->busy = 1;
  c->index = index;
  c->issued_ms = issued_ms;
  c->due_ms = due_ms;
  c->got = 0;
  c->total = 0;
  sent++;
  if (write(c->fd, req, n) != n) {
    // A broken connection: the lookup is an error; the connection is opened again.
    errors++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (open_conn(slot) == 0) idle[idle_top++] = slot;
  }
}

static void issue(int index, double issued_ms, double due_ms) {
  if (idle_top > 0) {
    send_on(idle[--idle_top], index, issued_ms, due_ms);
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

/** A connection is free: the next waiting lookup goes on it, or (closed loop) a new one. */
static void free_conn(int slot, double now) {
  if (q_head < q_tail) {
    send_on(slot, q_index[q_head], q_issued[q_head], q_due[q_head]);
    q_head++;
  } else if (closed_loop && now < end_ms) {
    send_on(slot, offset + (int)issued++, now, now);
  } else {
    idle[idle_top++] = slot;
  }
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

static void on_event(int slot, uint32_t events) {
  conn_t *c = &conns[slot];
  if (c->fd < 0) return;
  for (;;) {
    ssize_t r = c->got < BUF ? read(c->fd, c->buf + c->got, BUF - c->got) : -1;
    if (r > 0) {
      c->got += (int)r;
      if (c->total == 0) c->total = answer_length(c);
      if (c->total < 0 || !c->busy) break;  // unreadable, or bytes nobody asked for
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
        c->busy = 0;
        c->got = 0;
        c->total = 0;
        free_conn(slot, t);
        return;
      }
      continue;
    }
    if (r < 0 && errno == EAGAIN) return;
    break;  // closed by the server, or an error
  }
  (void)events;
  // The connection is lost (or spoke out of turn): its lookup is an error; open another.
  if (c->busy) errors++;
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (open_conn(slot) == 0) free_conn(slot, now_ms());
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
    fprintf(stderr, "usage: http-load --port=N --rate=R --seconds=S --conns=C [--offset=O]\n");
    return 2;
  }
  port = atoi(p);
  double rate = atof(r);
  double seconds = atof(s);
  nconns = atoi(cn);
  offset = o ? atoi(o) : 0;
  closed_loop = rate == 0;
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
  end_ms = t0 + seconds * 1e3;
  double interval_ms = closed_loop ? 0 : 1e3 / rate;
  long total = closed_loop ? 0 : lround(seconds * rate);
  if (closed_loop) {
    while (idle_top > 0) send_on(idle[--idle_top], offset + (int)issued++, t0, t0);
    arm(tfd, end_ms);
  } else {
    arm(tfd, t0);
  }
  struct epoll_event evs[256];
  double grace_end = 0;
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, closed_loop || issued >= total ? 5 : -1);
    double now = now_ms();
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 == UINT32_MAX) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0) { /* spurious */ }
        if (!closed_loop) {
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
    now = now_ms();
    int busy = nconns - idle_top;
    long outstanding = busy + (q_tail - q_head);
    if (now >= end_ms && (closed_loop || issued >= total)) {
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
