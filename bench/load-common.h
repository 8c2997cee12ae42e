// What bench/agent-load.c and bench/http-load.c share: the latency histogram (the buckets of
// bench/lib.ts's LatencyHistogram, printed as sparse [bucket, count] pairs), the clock, flags,
// and the driver: the open- or closed-loop schedule, the queue of lookups waiting for room, the
// epoll loop and the one-line JSON report (GenReport in bench/lookup.ts). Each generator is one
// program: it includes this once and supplies the protocol.
#ifndef VIGIL_LOAD_COMMON_H
#define VIGIL_LOAD_COMMON_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

// Histogram: 1 µs buckets below 1,024 µs, then 64 per doubling, 20 doublings (bench/lookup.ts).
#define LINEAR_US 1024
#define SUB 64
#define DOUBLINGS 20
#define NBUCKETS (LINEAR_US + SUB * DOUBLINGS)

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

/** The flags every generator takes; prints the usage for `name` and returns 0 without them. */
static int load_args(int argc, char **argv, const char *name, int *port, double *rate, double *seconds, int *conns,
                     int *offset) {
  const char *p = flag(argc, argv, "port");
  const char *r = flag(argc, argv, "rate");
  const char *s = flag(argc, argv, "seconds");
  const char *cn = flag(argc, argv, "conns");
  const char *o = flag(argc, argv, "offset");
  if (!p || !r || !s || !cn) {
    fprintf(stderr, "usage: %s --port=N --rate=R --seconds=S --conns=C [--offset=O]\n", name);
    return 0;
  }
  *port = atoi(p);
  *rate = atof(r);
  *seconds = atof(s);
  *conns = atoi(cn);
  *offset = o ? atoi(o) : 0;
  return 1;
}

// ── The driver ──────────────────────────────────────────────────────────────
// A generator defines four hooks, then calls run_load from main once its connections (if any)
// are open:
//   load_room()   whether a lookup can start now (a free slot or connection)
//   load_start()  starts lookup `index` now; counts `sent`; ends later in `answered`/`errors`
//   load_event()  an epoll event for slot `slot` (its data.u32)
// and counts answers into the globals below.
static int load_room(void);
static void load_start(int index, double issued_ms, double due_ms);
static void load_event(int slot, uint32_t events);

static hist_t latency, lag, from_schedule;
static long sent, answered, errors, wrong, queued_max;
/** Lookups started and not yet answered or failed. */
static long busy;
static int epfd;

// Lookups waiting for room: index, issued, due.
static int *q_index;
static double *q_issued, *q_due;
static long q_head, q_tail, q_cap;

/** Lookup `index` (due at `due_ms`) starts now, or waits for room; its wait counts. */
static void issue(int index, double issued_ms, double due_ms) {
  if (load_room()) {
    load_start(index, issued_ms, due_ms);
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

/**
 * Says "ready", waits for a line on stdin, then issues lookups: at `rate` a second on a
 * timerfd schedule (open loop; lookup i due at i / rate), or with rate 0 as many as there is
 * room for, a new one as soon as one ends (closed loop). Lookups still out after `seconds` get
 * 500 ms. Prints the report (GenReport in bench/lookup.ts) and returns main's exit code.
 */
static int run_load(double rate, double seconds, int offset) {
  int closed = rate == 0;
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
  arm(tfd, closed ? end_ms : t0);
  struct epoll_event evs[256];
  double grace_end = 0;
  for (;;) {
    double now = now_ms();
    // Room first goes to lookups waiting for it, then (closed loop) to new ones.
    while (q_head < q_tail && load_room()) {
      load_start(q_index[q_head], q_issued[q_head], q_due[q_head]);
      q_head++;
    }
    if (closed && now < end_ms)
      while (load_room()) load_start(offset + (int)issued++, now, now);
    long outstanding = busy + (q_tail - q_head);
    if (now >= end_ms && (closed || issued >= total)) {
      // Answers still in flight get a short grace; later ones count as not achieved.
      if (grace_end == 0) grace_end = now + 500;
      if (outstanding == 0 || now >= grace_end) break;
    }
    int n = epoll_wait(epfd, evs, 256, closed || issued >= total ? 5 : -1);
    now = now_ms();
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 != UINT32_MAX) {
        load_event((int)evs[i].data.u32, evs[i].events);
        continue;
      }
      uint64_t x;
      if (read(tfd, &x, sizeof x) < 0) { /* spurious */ }
      if (closed) continue;
      long due = (long)floor((now - t0) / interval_ms) + 1;
      if (due > total) due = total;
      for (; issued < due; issued++) {
        double due_ms = t0 + issued * interval_ms;
        hist_record(&lag, now - due_ms);
        issue(offset + (int)issued, now, due_ms);
      }
      if (issued < total) arm(tfd, t0 + issued * interval_ms);
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
#endif
