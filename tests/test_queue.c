/* test_queue.c: Queue / JoinableQueue: semantics, bad input, timeouts, stress, and processes killed inside
 * put and get. */
#include <float.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "ipc/queue_internal.h"

static void reap(pid_t pid, int want_code) {
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  if (want_code >= 0) {
    CHECK(WIFEXITED(st));
    CHECK_INT_EQ(WEXITSTATUS(st), want_code);
  }
}

static void fill(unsigned char *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p[i] = (unsigned char)x;
  }
}

static uint64_t fnv(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

MTEST(basic_fifo_sizes_and_state) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096, .max_messages = 3}));
  CHECK_INT_EQ(mproc_queue_empty(q), 1);
  CHECK_INT_EQ(mproc_queue_full(q), 0);
  CHECK_OK(mproc_queue_put(q, "one", 3, -1));
  CHECK_OK(mproc_queue_put(q, NULL, 0, 0)); /* empty message */
  CHECK_OK(mproc_queue_put_nowait(q, "three!", 6));
  CHECK_INT_EQ(mproc_queue_qsize(q), 3);
  CHECK_INT_EQ(mproc_queue_full(q), 1);
  CHECK_ERR(mproc_queue_put_nowait(q, "x", 1), MPROC_EFULL);
  CHECK_ERR(mproc_queue_put(q, "x", 1, 0.02), MPROC_ETIMEDOUT);
  char buf[16];
  size_t len = 99;
  CHECK_ERR(mproc_queue_get(q, buf, 2, &len, -1), MPROC_EMSGSIZE);
  CHECK_INT_EQ(len, 3); /* needed; the message stays */
  CHECK_OK(mproc_queue_get(q, buf, sizeof buf, &len, -1));
  CHECK_INT_EQ(len, 3);
  CHECK(memcmp(buf, "one", 3) == 0);
  void *p = NULL;
  CHECK_OK(mproc_queue_get_alloc(q, &p, &len, 0));
  CHECK_INT_EQ(len, 0);
  CHECK(p != NULL);
  mproc_free(p);
  mproc_free(NULL);
  CHECK_OK(mproc_queue_get_nowait(q, buf, sizeof buf, &len));
  CHECK_INT_EQ(len, 6);
  CHECK(memcmp(buf, "three!", 6) == 0);
  CHECK_ERR(mproc_queue_get_nowait(q, buf, sizeof buf, &len), MPROC_EEMPTY);
  CHECK_ERR(mproc_queue_get(q, buf, sizeof buf, &len, 0.02), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_queue_get_alloc(q, &p, &len, 0), MPROC_EEMPTY);
  /* Wrap around the ring many times with sizes that straddle its end. */
  unsigned char big[1000], out[1000];
  for (int i = 0; i < 200; i++) {
    size_t n = (size_t)(i * 37) % 1000;
    fill(big, n, (uint64_t)i);
    CHECK_OK(mproc_queue_put(q, big, n, 0));
    CHECK_OK(mproc_queue_get(q, out, sizeof out, &len, 0));
    CHECK_INT_EQ(len, n);
    CHECK(memcmp(big, out, n) == 0);
  }
  /* A message that cannot fit the 4 KiB ring with nobody taking it: times out, and nothing is delivered. */
  static unsigned char huge[20000];
  CHECK_ERR(mproc_queue_put(q, huge, sizeof huge, 0), MPROC_EFULL);
  CHECK_ERR(mproc_queue_put(q, huge, sizeof huge, 0.05), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_queue_get(q, out, sizeof out, &len, 0.05), MPROC_EMSGSIZE);
  CHECK_INT_EQ(len, sizeof huge); /* the first part is there; the message is declared whole-size */
  CHECK_ERR(mproc_queue_get_alloc(q, &p, &len, 0.05), MPROC_ETIMEDOUT); /* abandoned: discarded */
  CHECK_OK(mproc_queue_put(q, "after", 5, 0));
  CHECK_OK(mproc_queue_get(q, buf, sizeof buf, &len, 0));
  CHECK_INT_EQ(len, 5);
  CHECK(memcmp(buf, "after", 5) == 0);
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  mproc_queue_destroy(q);
  mproc_queue_destroy(NULL);
}

MTEST(bad_input) {
  mproc_queue *q = NULL;
  char buf[8];
  size_t len;
  void *p;
  CHECK_ERR(mproc_queue_create(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 10}), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = (size_t)1 << 41}), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_create(&q, &(mproc_queue_opts){.max_message_bytes = ((size_t)1 << 40) + 1}),
            MPROC_EINVAL);
  CHECK(q == NULL);
  CHECK_INT_EQ(mproc_queue_size(10), 0);
  CHECK_INT_CMP(mproc_queue_size(0), >, MPROC_QUEUE_DEFAULT_BUFFER);
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 1024, .max_message_bytes = 4}));
  CHECK_ERR(mproc_queue_put(q, "12345", 5, 0), MPROC_EMSGSIZE);
  CHECK_ERR(mproc_queue_put(NULL, "1", 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_put(q, NULL, 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_put(q, "1", 1, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_put_nowait(NULL, "1", 1), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get(NULL, buf, 8, &len, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get(q, NULL, 8, &len, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get(q, buf, 8, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get(q, buf, 8, &len, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_nowait(NULL, buf, 8, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_alloc(q, NULL, &len, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_alloc(q, &p, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_alloc(NULL, &p, &len, 0), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_queue_qsize(NULL), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_queue_empty(NULL), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_queue_full(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_close(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_task_done(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_join(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_join(q, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND); /* nothing taken yet */
  mproc_queue_destroy(q);
  /* Placement: too small, misaligned, bad options. */
  size_t sz = mproc_queue_size(512);
  void *mem = mmap(NULL, sz + 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(mem != MAP_FAILED);
  CHECK_ERR(mproc_queue_init(&q, mem, sz - 1, &(mproc_queue_opts){.buffer_bytes = 512}), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, (char *)mem + 8, sz, &(mproc_queue_opts){.buffer_bytes = 512}),
            MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(NULL, mem, sz, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, NULL, sz, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, mem, sz, NULL), MPROC_EINVAL); /* default buffer needs more */
  CHECK_OK(mproc_queue_init(&q, mem, sz, &(mproc_queue_opts){.buffer_bytes = 512}));
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(mproc_queue_put(q, "child", 5, -1) == 0 ? 0 : 1);
  size_t l = 0;
  CHECK_OK(mproc_queue_get(q, buf, sizeof buf, &l, 10));
  CHECK_INT_EQ(l, 5);
  CHECK(memcmp(buf, "child", 5) == 0);
  reap(pid, 0);
  mproc_queue_destroy(q);
  CHECK_ERR(mproc_queue_put(q, "x", 1, 0), MPROC_EINVAL); /* ended */
  munmap(mem, sz + 64);
}

MTEST(close_drains_then_reports_closed) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  CHECK_OK(mproc_queue_put(q, "a", 1, 0));
  /* A consumer blocked on the empty queue in another process is woken by close. */
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char b[4];
    size_t l;
    int ok = mproc_queue_get(q, b, 4, &l, -1) == 0 && l == 1;
    if (write(gate[1], "x", 1) != 1) _exit(3);
    ok = ok && mproc_queue_get(q, b, 4, &l, -1) == MPROC_ECLOSED;
    _exit(ok ? 0 : 1);
  }
  char c;
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  CHECK_OK(mproc_queue_close(q));
  reap(pid, 0);
  CHECK_OK(mproc_queue_close(q));
  CHECK_ERR(mproc_queue_put(q, "b", 1, -1), MPROC_ECLOSED);
  mproc_queue *q2;
  CHECK_OK(mproc_queue_create(&q2, NULL));
  CHECK_OK(mproc_queue_put(q2, "a", 1, 0));
  CHECK_OK(mproc_queue_close(q2));
  char b[4];
  size_t l;
  CHECK_OK(mproc_queue_get(q2, b, 4, &l, -1)); /* drains what is left */
  CHECK_ERR(mproc_queue_get(q2, b, 4, &l, -1), MPROC_ECLOSED);
  CHECK_ERR(mproc_queue_get(q2, b, 4, &l, 0), MPROC_ECLOSED);
  close(gate[0]);
  close(gate[1]);
  mproc_queue_destroy(q2);
  mproc_queue_destroy(q);
}

MTEST(lock_waits_time_out) {
  /* A consumer sleeping in get holds the consumers' lock: other gets time out, then close frees it. */
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 1024, .max_messages = 1}));
  CHECK_OK(mproc_queue_put(q, "a", 1, 0));
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char b[4];
    size_t l;
    int ok = mproc_queue_get(q, b, 4, &l, -1) == 0; /* takes "a" */
    if (write(gate[1], "x", 1) != 1) _exit(3);
    _exit(ok && mproc_queue_get(q, b, 4, &l, -1) == 0 ? 0 : 1); /* sleeps holding the lock */
  }
  char c, b[4];
  size_t l;
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  CHECK_ERR(mproc_queue_put(q, "b", 1, -1), 0);
  reap(pid, 0);
  CHECK_OK(mproc_queue_put(q, "c", 1, 0));
  /* A producer sleeping for room holds the producers' lock. */
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (write(gate[1], "x", 1) != 1) _exit(3);
    _exit(mproc_queue_put(q, "d", 1, -1) == MPROC_ECLOSED ? 0 : 1);
  }
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  CHECK_ERR(mproc_queue_put(q, "e", 1, 0.05), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_queue_put(q, "e", 1, 0), MPROC_EFULL);
  CHECK_OK(mproc_queue_close(q));
  reap(pid, 0);
  CHECK_OK(mproc_queue_get(q, b, 4, &l, 0));
  CHECK(b[0] == 'c');
  close(gate[0]);
  close(gate[1]);
  mproc_queue_destroy(q);
}

MTEST(joinable_counts) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  CHECK_OK(mproc_queue_join(q, 0));
  CHECK_OK(mproc_queue_put(q, "a", 1, 0));
  CHECK_OK(mproc_queue_put(q, "b", 1, 0));
  CHECK_ERR(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_queue_join(q, 0.02), MPROC_ETIMEDOUT);
  char b[4];
  size_t l;
  CHECK_OK(mproc_queue_get(q, b, 4, &l, 0));
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND); /* only one taken */
  CHECK_ERR(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
  /* A joiner in another process returns only after the last task_done. */
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (write(gate[1], "x", 1) != 1) _exit(3);
    int r = mproc_queue_join(q, 20);
    _exit(r == 0 && mproc_queue_qsize(q) == 0 ? 0 : 1);
  }
  char c;
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  CHECK_OK(mproc_queue_get(q, b, 4, &l, 0));
  CHECK_INT_EQ(waitpid(pid, NULL, WNOHANG), 0); /* got but not done: the joiner must still wait */
  CHECK_OK(mproc_queue_task_done(q));
  reap(pid, 0);
  CHECK_OK(mproc_queue_join(q, 0));
  close(gate[0]);
  close(gate[1]);
  mproc_queue_destroy(q);
}

/* ---- stress: 3 producers x 20,000 messages to 2 consumers ---- */

enum { NPROD = 3, NCONS = 2, PER = 20000, RING = 65536 };

typedef struct msg_hdr {
  uint32_t prod, seq;
  uint64_t hash;
} msg_hdr;

static size_t msg_len(uint64_t seed, int prod, int seq) {
  uint64_t x = seed ^ ((uint64_t)prod << 40) ^ (uint64_t)seq * 0x9E3779B97F4A7C15ull;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  if (x % 200 == 0) return sizeof(msg_hdr) + RING + (size_t)(x >> 20) % (2 * RING); /* larger than the ring */
  return sizeof(msg_hdr) + (size_t)(x >> 20) % 300;
}

MTEST_TIMEOUT(stress_producers_consumers_exactly_once, 60) {
  uint64_t seed = mtest_seed();
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = RING}));
  size_t tsize = sizeof(uint32_t) * NPROD * PER;
  uint32_t *seen = mmap(NULL, tsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(seen != MAP_FAILED);
  pid_t pids[NPROD + NCONS];
  for (int c = 0; c < NCONS; c++) {
    pids[c] = fork();
    CHECK(pids[c] >= 0);
    if (pids[c] == 0) {
      int last[NPROD] = {-1, -1, -1}, bad = 0;
      unsigned char *expect = malloc(4 * RING);
      for (;;) {
        void *m;
        size_t len;
        int r = mproc_queue_get_alloc(q, &m, &len, 30);
        if (r) _exit(10);
        if (len == 0) { /* stop */
          mproc_free(m);
          mproc_queue_task_done(q);
          break;
        }
        msg_hdr h;
        memcpy(&h, m, sizeof h);
        if (len < sizeof h || h.prod >= NPROD || h.seq >= PER)
          bad |= 1;
        else {
          if ((int)h.seq <= last[h.prod]) bad |= 2; /* per-producer order */
          last[h.prod] = (int)h.seq;
          if (len != msg_len(seed, (int)h.prod, (int)h.seq)) bad |= 4;
          size_t n = len - sizeof h;
          fill(expect, n, seed + h.prod * 1000003u + h.seq);
          if (fnv((unsigned char *)m + sizeof h, n) != h.hash || memcmp(expect, (char *)m + sizeof h, n))
            bad |= 8;
          __atomic_fetch_add(&seen[h.prod * PER + h.seq], 1, __ATOMIC_RELAXED);
        }
        mproc_free(m);
        mproc_queue_task_done(q);
      }
      free(expect);
      _exit(bad);
    }
  }
  for (int p = 0; p < NPROD; p++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      unsigned char *m = malloc(4 * RING);
      for (int s = 0; s < PER; s++) {
        size_t len = msg_len(seed, p, s);
        msg_hdr h = {.prod = (uint32_t)p, .seq = (uint32_t)s};
        fill(m + sizeof h, len - sizeof h, seed + (uint64_t)p * 1000003u + (uint64_t)s);
        h.hash = fnv(m + sizeof h, len - sizeof h);
        memcpy(m, &h, sizeof h);
        if (mproc_queue_put(q, m, len, 30) != 0) _exit(20);
      }
      free(m);
      _exit(0);
    }
    pids[NCONS + p] = pid;
  }
  for (int p = 0; p < NPROD; p++) reap(pids[NCONS + p], 0);
  CHECK_OK(mproc_queue_join(q, 30)); /* every message taken and marked done */
  for (int i = 0; i < NPROD * PER; i++) {
    if (seen[i] != 1)
      mtest_fail(__FILE__, __LINE__, "message %d/%d seen %u times", i / PER, i % PER, seen[i]);
  }
  for (int c = 0; c < NCONS; c++) CHECK_OK(mproc_queue_put(q, NULL, 0, -1));
  for (int c = 0; c < NCONS; c++) reap(pids[c], 0);
  CHECK_OK(mproc_queue_join(q, 0));
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  munmap(seen, tsize);
  mproc_queue_destroy(q);
}

/* ---- processes killed inside put and get (made deterministic by the queue's test hook) ---- */

static int hook_fd = -1, hook_point = 0;
static void stop_here(int point) {
  if (point != hook_point) return;
  if (write(hook_fd, "x", 1) != 1) _exit(3);
  for (;;) pause();
}

/* Forks a child that arms the hook at point then runs fn; returns once the child has reached the point. */
static pid_t child_stopped_at(int point, void (*fn)(mproc_queue *), mproc_queue *q) {
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    hook_fd = gate[1];
    hook_point = point;
    mproc__queue_hook = stop_here;
    fn(q);
    _exit(4); /* the hook should have stopped us */
  }
  char c;
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  close(gate[0]);
  close(gate[1]);
  return pid;
}

static void kill_reap(pid_t pid) {
  CHECK_OK(kill(pid, SIGKILL));
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static unsigned char bigmsg[20000];
static void put_big(mproc_queue *q) { mproc_queue_put(q, bigmsg, sizeof bigmsg, -1); }
static void put_small(mproc_queue *q) { mproc_queue_put(q, "torn", 4, -1); }
static void get_one(mproc_queue *q) {
  void *m;
  size_t l;
  mproc_queue_get_alloc(q, &m, &l, -1);
}

static void check_get(mproc_queue *q, const void *want, size_t n, double timeout) {
  void *m = NULL;
  size_t l = 0;
  CHECK_OK(mproc_queue_get_alloc(q, &m, &l, timeout));
  CHECK_INT_EQ(l, n);
  CHECK(memcmp(m, want, n) == 0);
  mproc_free(m);
}

MTEST(producer_killed_before_publishing) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096, .max_messages = 1}));
  pid_t pid = child_stopped_at(MPROC__QHOOK_PUT_WRITTEN, put_small, q);
  kill_reap(pid);
  CHECK_INT_EQ(mproc_queue_qsize(q), 1); /* counted, not visible: fixed by the next producer */
  char b[8];
  size_t l;
  CHECK_ERR(mproc_queue_get_nowait(q, b, 8, &l), MPROC_EEMPTY);
  CHECK_OK(mproc_queue_put(q, "whole", 5, 1)); /* bound of 1 message: would block without the rollback */
  check_get(q, "whole", 5, 0);
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_OK(mproc_queue_join(q, 0));
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  mproc_queue_destroy(q);
}

MTEST(producer_killed_mid_stream_next_producer_recovers) {
  fill(bigmsg, sizeof bigmsg, 7);
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096}));
  pid_t pid = child_stopped_at(MPROC__QHOOK_PUT_PART, put_big, q);
  kill_reap(pid);
  /* The dead producer's first part fills the ring: the next producer (which recovers the lock) waits until
   * the consumer discards it. */
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(mproc_queue_put(q, "next", 4, 10) == 0 ? 0 : 1);
  check_get(q, "next", 4, 10);
  reap(pid, 0);
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_OK(mproc_queue_join(q, 0)); /* the discarded message counts as done */
  /* And a big message goes through whole afterwards. */
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0)
    _exit(mproc_queue_put(q, bigmsg, sizeof bigmsg, 10) == 0 &&
                  mproc_queue_put(q, bigmsg, sizeof bigmsg, 10) == 0
              ? 0
              : 1);
  check_get(q, bigmsg, sizeof bigmsg, 10);
  static unsigned char into[sizeof bigmsg];
  size_t l = 0;
  CHECK_OK(mproc_queue_get(q, into, sizeof into, &l, 10)); /* multi-part into the caller's buffer */
  CHECK_INT_EQ(l, sizeof bigmsg);
  CHECK(memcmp(into, bigmsg, l) == 0);
  reap(pid, 0);
  mproc_queue_destroy(q);
}

MTEST(producer_killed_mid_stream_consumer_notices) {
  fill(bigmsg, sizeof bigmsg, 8);
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096}));
  pid_t pid = child_stopped_at(MPROC__QHOOK_PUT_PART, put_big, q);
  kill_reap(pid);
  void *m;
  size_t l;
  /* No producer comes: the consumer finds the streamer dead through its lock and discards the parts. */
  CHECK_ERR(mproc_queue_get_alloc(q, &m, &l, 0.2), MPROC_ETIMEDOUT);
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  CHECK_OK(mproc_queue_join(q, 0));
  CHECK_OK(mproc_queue_put(q, "ok", 2, 0));
  check_get(q, "ok", 2, 0);
  mproc_queue_destroy(q);
}

MTEST(consumer_killed_mid_get) {
  fill(bigmsg, sizeof bigmsg, 9);
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096}));
  pid_t prod = fork();
  CHECK(prod >= 0);
  if (prod == 0) {
    int ok = mproc_queue_put(q, bigmsg, sizeof bigmsg, 20) == 0 && mproc_queue_put(q, "tail", 4, 20) == 0 &&
             mproc_queue_put(q, bigmsg, sizeof bigmsg, 20) == 0;
    _exit(ok ? 0 : 1);
  }
  pid_t cons = child_stopped_at(MPROC__QHOOK_GET_PART, get_one, q);
  kill_reap(cons);
  /* The rest of the message the dead consumer had begun is discarded; what follows comes whole. */
  check_get(q, "tail", 4, 20);
  check_get(q, bigmsg, sizeof bigmsg, 20);
  reap(prod, 0);
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_OK(mproc_queue_join(q, 0)); /* the lost message was counted done when its last part was dropped */
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  mproc_queue_destroy(q);
}

/* ---- random SIGKILLs of producers and consumers during traffic ---- */

enum { KRING = 16384, KPROD = 3, KCONS = 2, KILLS = 30, MAXID = 64 };

typedef struct kstate {
  uint32_t bad;
  uint32_t got[MAXID];
} kstate;

static size_t kmsg_len(uint64_t seed, uint32_t id, uint32_t seq) {
  uint64_t x = (seed ^ ((uint64_t)id << 32) ^ seq) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  if (x % 40 == 0) return sizeof(msg_hdr) + (size_t)(x >> 8) % (3 * KRING);
  return sizeof(msg_hdr) + (size_t)(x >> 8) % 200;
}

/* Checks one message; returns 0 when whole and in order for its producer (last[] per consumer). */
static int kcheck(uint64_t seed, const unsigned char *m, size_t len, int64_t *last) {
  msg_hdr h;
  if (len < sizeof h) return 1;
  memcpy(&h, m, sizeof h);
  if (h.prod >= MAXID || len != kmsg_len(seed, h.prod, h.seq)) return 2;
  if ((int64_t)h.seq <= last[h.prod]) return 3;
  last[h.prod] = h.seq;
  if (fnv(m + sizeof h, len - sizeof h) != h.hash) return 4;
  return 0;
}

static pid_t kproducer(mproc_queue *q, uint64_t seed, uint32_t id) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  unsigned char *m = malloc(4 * KRING);
  for (uint32_t s = 0;; s++) {
    size_t len = kmsg_len(seed, id, s);
    msg_hdr h = {.prod = id, .seq = s};
    fill(m + sizeof h, len - sizeof h, seed + id * 7919u + s);
    h.hash = fnv(m + sizeof h, len - sizeof h);
    memcpy(m, &h, sizeof h);
    if (mproc_queue_put(q, m, len, 20) != 0) _exit(20);
  }
}

static pid_t kconsumer(mproc_queue *q, uint64_t seed, kstate *st) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int64_t last[MAXID];
  for (int i = 0; i < MAXID; i++) last[i] = -1;
  for (;;) {
    void *m;
    size_t len;
    if (mproc_queue_get_alloc(q, &m, &len, 20) != 0) _exit(10);
    if (len == 0) _exit(0);
    int r = kcheck(seed, m, len, last);
    if (r)
      __atomic_fetch_or(&st->bad, 1u << r, __ATOMIC_RELAXED);
    else
      __atomic_fetch_add(&st->got[((msg_hdr *)m)->prod], 1, __ATOMIC_RELAXED);
    mproc_free(m);
  }
}

MTEST_TIMEOUT(random_kills_never_tear_or_wedge, 60) {
  uint64_t seed = mtest_seed();
  srand((unsigned)seed);
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = KRING}));
  kstate *st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(st != MAP_FAILED);
  pid_t prod[KPROD], cons[KCONS];
  uint32_t next_id = 0;
  for (int i = 0; i < KPROD; i++) prod[i] = kproducer(q, seed, next_id++);
  for (int i = 0; i < KCONS; i++) cons[i] = kconsumer(q, seed, st);
  int64_t last[MAXID];
  for (int i = 0; i < MAXID; i++) last[i] = -1;
  int taken = 0;
  /* The parent consumes too; every few hundred messages it kills one process at a random point of its
   * work and starts a replacement. */
  for (int k = 0; k < KILLS; k++) {
    int n = 100 + rand() % 400;
    for (int i = 0; i < n; i++) {
      void *m;
      size_t len;
      CHECK_OK(mproc_queue_get_alloc(q, &m, &len, 20));
      int r = kcheck(seed, m, len, last);
      if (r) mtest_fail(__FILE__, __LINE__, "bad message (%d), seed %llu", r, (unsigned long long)seed);
      mproc_free(m);
      taken++;
    }
    int victim = rand() % (KPROD + KCONS);
    pid_t *slot = victim < KPROD ? &prod[victim] : &cons[victim - KPROD];
    kill_reap(*slot);
    *slot = victim < KPROD ? kproducer(q, seed, next_id++) : kconsumer(q, seed, st);
    CHECK(*slot > 0);
  }
  for (int i = 0; i < KPROD; i++) kill_reap(prod[i]);
  for (int i = 0; i < KCONS; i++) CHECK_OK(mproc_queue_put(q, NULL, 0, 20));
  for (int i = 0; i < KCONS; i++) reap(cons[i], 0);
  CHECK_INT_EQ(st->bad, 0);
  uint32_t child_got = 0;
  for (int i = 0; i < MAXID; i++) child_got += st->got[i];
  CHECK_INT_CMP(child_got, >, 0);
  /* What is left drains whole; then the queue works as new. */
  void *m;
  size_t len;
  int r;
  while ((r = mproc_queue_get_alloc(q, &m, &len, 0.1)) == 0) {
    CHECK_INT_EQ(kcheck(seed, m, len, last), 0);
    mproc_free(m);
  }
  CHECK_ERR(r, MPROC_ETIMEDOUT);
  CHECK_OK(mproc_queue_put(q, "end", 3, 1)); /* also repairs the count if the last kill hit a put */
  check_get(q, "end", 3, 1);
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  CHECK_INT_CMP(taken, >=, KILLS * 100);
  munmap(st, sizeof *st);
  mproc_queue_destroy(q);
}

static void *failing_malloc(size_t n) { return NULL; }
static void *failing_mmap(void *a, size_t l, int p, int f, int fd, off_t o) {
  errno = ENOMEM;
  return MAP_FAILED;
}

MTEST(out_of_memory_leaves_the_message) {
  mproc_queue *q = NULL;
  mproc__plat_sys.mmap = failing_mmap;
  CHECK_ERR(mproc_queue_create(&q, NULL), MPROC_ENOMEM);
  mproc__plat_syscalls_reset();
  CHECK(q == NULL);
  CHECK_OK(mproc_queue_create(&q, NULL));
  CHECK_OK(mproc_queue_put(q, "kept", 4, 0));
  void *m = NULL;
  size_t len = 7;
  CHECK_OK(mproc_replace_allocator(failing_malloc, realloc, calloc, free));
  int r = mproc_queue_get_alloc(q, &m, &len, 0);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_ERR(r, MPROC_ENOMEM);
  CHECK(m == NULL);
  CHECK_INT_EQ(len, 7);
  check_get(q, "kept", 4, 0);
  mproc_queue_destroy(q);
}

/* Records no producer wrote (the queue's memory overwritten; fuzz/corpus/fuzz_queue/ has the inputs that
 * found these): a part longer than its message was copied past the caller's allocation, and a tail past
 * what the ring holds made get walk the ring forever.  Each is MPROC_ECORRUPT, what was queued is dropped,
 * and the queue works after. */
MTEST(records_no_producer_wrote_are_corrupt_not_copied) {
  static _Alignas(64) unsigned char mem[4096];
  struct {
    uint32_t len, flags;
    uint64_t seq, total;
    unsigned char bytes[200];
  } rec = {200, 3, 0, 8, {0}}; /* FIRST|LAST: 200 bytes of an 8-byte message */
  for (int bad = 0; bad < 2; bad++) {
    mproc_queue *q;
    CHECK_OK(mproc_queue_init(&q, mem, sizeof mem, &(mproc_queue_opts){.buffer_bytes = 256}));
    if (bad == 0)
      mproc__queue_forge((struct mproc_queue *)q, 40, &rec, sizeof rec, 40 + sizeof rec);
    else
      mproc__queue_forge((struct mproc_queue *)q, 40, "", 0, 40 + 257);
    void *m = NULL;
    size_t len = 7;
    CHECK_ERR(mproc_queue_get_alloc(q, &m, &len, 0), MPROC_ECORRUPT);
    CHECK(m == NULL);
    CHECK_INT_EQ(len, 7);
    CHECK_ERR(mproc_queue_get_alloc(q, &m, &len, 0), MPROC_EEMPTY);
    CHECK_OK(mproc_queue_put(q, "kept", 4, 0));
    check_get(q, "kept", 4, 0);
    mproc_queue_destroy(q);
  }
}

static void put_hi(void *q) { mproc_queue_put(q, "hi", 2, MPROC_FOREVER); }
static void get_and_done(void *q) {
  char buf[8];
  size_t len;
  if (mproc_queue_get(q, buf, sizeof buf, &len, MPROC_FOREVER) == 0) mproc_queue_task_done(q);
}

/* Timeouts beyond any representable deadline wait forever (get failed with -EINVAL at once). */
MTEST(huge_timeouts_wait_forever) {
  const double ts[] = {1e300, DBL_MAX, INFINITY};
  for (size_t k = 0; k < 3; k++) {
    mproc_queue *q;
    CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096, .max_messages = 1}));
    mtest_later l;
    char buf[8];
    size_t len = 0;
    mtest_later_start(&l, put_hi, q);
    CHECK_OK(mproc_queue_get(q, buf, sizeof buf, &len, ts[k]));
    CHECK_INT_EQ(len, 2);
    mtest_later_join(&l);
    CHECK_OK(mproc_queue_task_done(q));
    mtest_later_start(&l, put_hi, q);
    void *m = NULL;
    CHECK_OK(mproc_queue_get_alloc(q, &m, &len, ts[k]));
    mproc_free(m);
    mtest_later_join(&l);
    CHECK_OK(mproc_queue_task_done(q));
    CHECK_OK(mproc_queue_put(q, "a", 1, ts[k])); /* room */
    mtest_later_start(&l, get_and_done, q);
    CHECK_OK(mproc_queue_put(q, "b", 1, ts[k])); /* full (max_messages 1) until the thread takes "a" */
    mtest_later_join(&l);
    mtest_later_start(&l, get_and_done, q);
    CHECK_OK(mproc_queue_join(q, ts[k]));
    mtest_later_join(&l);
    mproc_queue_destroy(q);
  }
}
