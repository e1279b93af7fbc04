/* test_pipe.c: Pipe: duplex and one-way messages, poll, timeouts, end of file, a sender killed
 * mid-message. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/waitable.h"
#include "mtest.h"

static void reap(pid_t pid, int want_code) {
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  if (want_code >= 0) {
    CHECK(WIFEXITED(st));
    CHECK_INT_EQ(WEXITSTATUS(st), want_code);
  }
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    p[i] = (unsigned char)x;
  }
}

MTEST(duplex_messages_both_ways) {
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  enum { BIG = 3 << 20 };
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) { /* echo every message back until end of file */
    mproc_pipe_destroy(a);
    for (;;) {
      void *m;
      size_t l;
      int r = mproc_pipe_recv_alloc(b, &m, &l, -1);
      if (r == MPROC_EEOF) break;
      if (r) _exit(1);
      if (mproc_pipe_send(b, m, l, -1)) _exit(2);
      mproc_free(m);
    }
    mproc_pipe_destroy(b);
    _exit(0);
  }
  mproc_pipe_destroy(b);
  size_t sizes[] = {0, 1, 8, 1000, 65536, BIG};
  unsigned char *out = malloc(BIG), *in = malloc(BIG);
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    fill(out, sizes[i], (unsigned)i);
    CHECK_OK(mproc_pipe_send(a, out, sizes[i], -1));
    size_t l = 12345;
    CHECK_OK(mproc_pipe_recv(a, in, BIG, &l, 20));
    CHECK_INT_EQ(l, sizes[i]);
    CHECK(memcmp(in, out, l) == 0);
  }
  /* Many small messages in flight at once stay separate and in order (few enough that the echoes fit the
   * socket buffers while we send them all before reading). */
  for (int i = 0; i < 100; i++) CHECK_OK(mproc_pipe_send(a, &i, sizeof i, -1));
  for (int i = 0; i < 100; i++) {
    int v;
    size_t l;
    CHECK_OK(mproc_pipe_recv(a, &v, sizeof v, &l, 20));
    CHECK_INT_EQ(l, sizeof v);
    CHECK_INT_EQ(v, i);
  }
  mproc_pipe_destroy(a);
  reap(pid, 0);
  free(out);
  free(in);
}

MTEST(one_way_poll_timeouts_and_sizes) {
  mproc_pipe *r, *w;
  CHECK_OK(mproc_pipe_create(&r, &w, 0));
  char buf[16];
  size_t l = 0;
  CHECK_ERR(mproc_pipe_send(r, "x", 1, 0), MPROC_EBADF);
  CHECK_ERR(mproc_pipe_recv(w, buf, sizeof buf, &l, 0), MPROC_EBADF);
  CHECK_ERR(mproc_pipe_poll(w, 0), MPROC_EBADF);
  CHECK_INT_EQ(mproc_pipe_poll(r, 0), 0);
  CHECK_INT_EQ(mproc_pipe_poll(r, 0.02), 0);
  CHECK_ERR(mproc_pipe_recv(r, buf, sizeof buf, &l, 0), MPROC_EEMPTY);
  CHECK_ERR(mproc_pipe_recv(r, buf, sizeof buf, &l, 0.02), MPROC_ETIMEDOUT);
  void *m;
  CHECK_ERR(mproc_pipe_recv_alloc(r, &m, &l, 0), MPROC_EEMPTY);
  CHECK_OK(mproc_pipe_send(w, "hello pipe", 10, 0));
  CHECK_INT_EQ(mproc_pipe_poll(r, 1), 1);
  CHECK_ERR(mproc_pipe_recv(r, buf, 4, &l, 0), MPROC_EMSGSIZE);
  CHECK_INT_EQ(l, 10); /* needed; the message stays */
  CHECK_OK(mproc_pipe_recv_alloc(r, &m, &l, 0));
  CHECK_INT_EQ(l, 10);
  CHECK(memcmp(m, "hello pipe", 10) == 0);
  mproc_free(m);
  /* Fill the socket with small messages: a send with timeout 0 / a short timeout then fails without
   * sending anything. */
  int sent = 0, rc;
  while ((rc = mproc_pipe_send(w, &sent, sizeof sent, 0)) == 0) sent++;
  CHECK_ERR(rc, MPROC_EFULL);
  CHECK_INT_CMP(sent, >, 0);
  CHECK_ERR(mproc_pipe_send(w, &sent, sizeof sent, 0.02), MPROC_ETIMEDOUT);
  for (int i = 0; i < sent; i++) {
    int v = -1;
    CHECK_OK(mproc_pipe_recv(r, &v, sizeof v, &l, 0));
    CHECK_INT_EQ(l, sizeof v);
    CHECK_INT_EQ(v, i);
  }
  CHECK_ERR(mproc_pipe_recv(r, buf, sizeof buf, &l, 0), MPROC_EEMPTY);
  /* Closing the sender gives end of file, also to poll. */
  mproc_pipe_destroy(w);
  CHECK_INT_EQ(mproc_pipe_poll(r, 1), 1);
  CHECK_ERR(mproc_pipe_recv(r, buf, sizeof buf, &l, -1), MPROC_EEOF);
  CHECK_ERR(mproc_pipe_recv(r, buf, sizeof buf, &l, -1), MPROC_EEOF);
  CHECK_INT_EQ(mproc_pipe_poll(r, 0), 1);
  mproc_pipe_destroy(r);
  mproc_pipe_destroy(NULL);
}

MTEST(bad_input_and_closed_peer) {
  mproc_pipe *a, *b;
  char buf[4];
  size_t l;
  void *m;
  CHECK_ERR(mproc_pipe_create(NULL, &b, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_create(&a, NULL, 1), MPROC_EINVAL);
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  CHECK_ERR(mproc_pipe_send(NULL, "x", 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_send(a, NULL, 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_send(a, "x", 1, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_send(a, buf, MPROC_PIPE_MAX_MESSAGE + 1, 0), MPROC_EMSGSIZE);
  CHECK_ERR(mproc_pipe_recv(NULL, buf, 4, &l, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_recv(a, NULL, 4, &l, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_recv(a, buf, 4, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_recv(a, buf, 4, &l, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_recv_alloc(a, NULL, &l, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_recv_alloc(a, &m, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_poll(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_poll(a, NAN), MPROC_EINVAL);
  mproc_pipe_destroy(b);
  CHECK_ERR(mproc_pipe_send(a, "x", 1, -1), MPROC_EEOF);
  CHECK_ERR(mproc_pipe_recv(a, buf, 4, &l, -1), MPROC_EEOF);
  mproc_pipe_destroy(a);
}

MTEST(timeout_mid_message_keeps_it_whole) {
  enum { BIG = 4 << 20 };
  mproc_pipe *r, *w;
  CHECK_OK(mproc_pipe_create(&r, &w, 0));
  unsigned char *msg = malloc(BIG);
  fill(msg, BIG, 42);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    mproc_pipe_destroy(r);
    _exit(mproc_pipe_send(w, msg, BIG, -1) == 0 ? 0 : 1);
  }
  mproc_pipe_destroy(w);
  CHECK_INT_EQ(mproc_pipe_poll(r, 10), 1);
  CHECK_OK(kill(pid, SIGSTOP)); /* 4 MiB cannot fit a socket buffer: the sender is stuck mid-message */
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, WUNTRACED), pid);
  CHECK(WIFSTOPPED(st));
  unsigned char *in = malloc(BIG);
  size_t l;
  CHECK_ERR(mproc_pipe_recv(r, in, BIG, &l, 0.05), MPROC_ETIMEDOUT); /* what arrived stays buffered */
  CHECK_ERR(mproc_pipe_recv(r, in, BIG, &l, 0), MPROC_EEMPTY);
  CHECK_OK(kill(pid, SIGCONT));
  void *m;
  CHECK_OK(mproc_pipe_recv_alloc(r, &m, &l, 20));
  CHECK_INT_EQ(l, BIG);
  CHECK(memcmp(m, msg, BIG) == 0);
  mproc_free(m);
  reap(pid, 0);
  CHECK_ERR(mproc_pipe_recv(r, in, BIG, &l, -1), MPROC_EEOF);
  mproc_pipe_destroy(r);
  free(in);
  free(msg);
}

MTEST(sender_killed_mid_message_gives_eof_not_a_torn_message) {
  enum { BIG = 4 << 20 };
  mproc_pipe *r, *w;
  CHECK_OK(mproc_pipe_create(&r, &w, 0));
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    mproc_pipe_destroy(r);
    if (mproc_pipe_send(w, "first", 5, -1)) _exit(1);
    char *msg = calloc(1, BIG);
    _exit(mproc_pipe_send(w, msg, BIG, -1) == 0 ? 0 : 1);
  }
  mproc_pipe_destroy(w);
  char buf[8];
  size_t l;
  CHECK_OK(mproc_pipe_recv(r, buf, sizeof buf, &l, 10));
  CHECK_INT_EQ(l, 5);
  CHECK_INT_EQ(mproc_pipe_poll(r, 10), 1); /* the big one has begun: the sender is inside send */
  CHECK_OK(kill(pid, SIGKILL));
  reap(pid, -1);
  void *m = NULL;
  CHECK_ERR(mproc_pipe_recv_alloc(r, &m, &l, 10), MPROC_EEOF);
  CHECK(m == NULL);
  mproc_pipe_destroy(r);
}

static void *failing_calloc(size_t n, size_t s) { return NULL; }
static void *failing_malloc(size_t n) { return NULL; }

MTEST(out_of_memory) {
  mproc_pipe *a = NULL, *b = NULL;
  CHECK_OK(mproc_replace_allocator(malloc, realloc, failing_calloc, free));
  int r = mproc_pipe_create(&a, &b, 1);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_ERR(r, MPROC_ENOMEM);
  CHECK(a == NULL && b == NULL);
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  CHECK_OK(mproc_pipe_send(a, "kept", 4, 0));
  void *m = NULL;
  size_t len = 0;
  CHECK_OK(mproc_replace_allocator(failing_malloc, realloc, calloc, free));
  r = mproc_pipe_recv_alloc(b, &m, &len, 1);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_ERR(r, MPROC_ENOMEM);
  CHECK_OK(mproc_pipe_recv_alloc(b, &m, &len, 1)); /* the message waited */
  CHECK_INT_EQ(len, 4);
  CHECK(memcmp(m, "kept", 4) == 0);
  mproc_free(m);
  mproc_pipe_destroy(a);
  mproc_pipe_destroy(b);
}

static size_t largest_request;
static void *counting_malloc(size_t n) {
  if (n > largest_request) largest_request = n;
  return malloc(n);
}
static void *counting_realloc(void *p, size_t n) {
  if (n > largest_request) largest_request = n;
  return realloc(p, n);
}

/* A sender's length is its word only: memory is taken as the bytes come (fuzz/corpus/fuzz_pipe/
 * timeout-claimed-gigabyte: 8 bytes claiming 939 MB made the receiver allocate it at once).  The message
 * also grows across timeouts, into an allocation and then into the caller's buffer. */
MTEST(a_claimed_length_takes_memory_as_its_bytes_come) {
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  int fd;
  CHECK_OK(mproc__pipe_wait_fd(b, &fd));
  enum { PART = 100000 };
  unsigned char *msg = malloc(3 * PART), *in = malloc(3 * PART);
  fill(msg, 3 * PART, 7);
  uint64_t n = 3 * PART;
  largest_request = 0;
  CHECK_OK(mproc_replace_allocator(counting_malloc, counting_realloc, calloc, free));
  CHECK_INT_EQ(write(fd, &n, 8), 8);
  void *m = NULL;
  size_t l;
  for (int i = 0; i < 3; i++) {
    CHECK_INT_EQ(write(fd, msg + i * PART, PART), PART);
    if (i == 0) CHECK_ERR(mproc_pipe_recv_alloc(a, &m, &l, 0), MPROC_EEMPTY); /* kept in the handle */
    if (i == 1) CHECK_ERR(mproc_pipe_recv(a, in, 3 * PART, &l, 0), MPROC_EEMPTY);
  }
  CHECK_OK(mproc_pipe_recv(a, in, 3 * PART, &l, 0));
  CHECK_INT_EQ(l, 3 * PART);
  CHECK(memcmp(in, msg, 3 * PART) == 0);
  n = (uint64_t)1 << 30; /* then a gigabyte is announced, and the sender dies after 100 kB of it */
  CHECK_INT_EQ(write(fd, &n, 8), 8);
  CHECK_INT_EQ(write(fd, msg, PART), PART);
  largest_request = 0;
  CHECK_ERR(mproc_pipe_recv_alloc(a, &m, &l, 0), MPROC_EEMPTY);
  mproc_pipe_destroy(b);
  CHECK_ERR(mproc_pipe_recv_alloc(a, &m, &l, 0), MPROC_EEOF);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_INT_CMP(largest_request, <=, 2 * PART);
  CHECK(m == NULL);
  mproc_pipe_destroy(a);
  free(msg);
  free(in);
}

static void send_hi(void *w) { mproc_pipe_send(w, "hi", 2, MPROC_FOREVER); }
static int last_sent;
static void drain_to_last(void *r) { /* a socket has room again only once much of it is read */
  int v = -1;
  size_t l;
  while (mproc_pipe_recv(r, &v, sizeof v, &l, MPROC_FOREVER) == 0 && v != last_sent) continue;
}

/* Timeouts beyond any representable deadline wait forever (they failed with -EINVAL at once). */
MTEST(huge_timeouts_wait_forever) {
  const double ts[] = {1e300, DBL_MAX, INFINITY};
  for (size_t k = 0; k < 3; k++) {
    mproc_pipe *r, *w;
    CHECK_OK(mproc_pipe_create(&r, &w, 0));
    mtest_later l;
    char buf[8];
    size_t len = 0;
    mtest_later_start(&l, send_hi, w);
    CHECK_INT_EQ(mproc_pipe_poll(r, ts[k]), 1);
    CHECK_OK(mproc_pipe_recv(r, buf, sizeof buf, &len, ts[k]));
    CHECK_INT_EQ(len, 2);
    mtest_later_join(&l);
    mtest_later_start(&l, send_hi, w);
    CHECK_OK(mproc_pipe_recv(r, buf, sizeof buf, &len, ts[k]));
    mtest_later_join(&l);
    mtest_later_start(&l, send_hi, w);
    void *m = NULL;
    CHECK_OK(mproc_pipe_recv_alloc(r, &m, &len, ts[k]));
    CHECK_INT_EQ(len, 2);
    mproc_free(m);
    mtest_later_join(&l);
    /* a full pipe: send waits for a reader */
    int sent = 0;
    while (mproc_pipe_send(w, &sent, sizeof sent, 0) == 0) sent++;
    last_sent = sent;
    mtest_later_start(&l, drain_to_last, r);
    CHECK_OK(mproc_pipe_send(w, &sent, sizeof sent, ts[k]));
    mtest_later_join(&l);
    mproc_pipe_destroy(r);
    mproc_pipe_destroy(w);
  }
}

/* The header allows buf NULL with cap 0: a zero-length message fits. */
MTEST(zero_length_message_into_no_buffer) {
  mproc_pipe *r, *w;
  CHECK_OK(mproc_pipe_create(&r, &w, 0));
  CHECK_OK(mproc_pipe_send(w, NULL, 0, 0));
  CHECK_OK(mproc_pipe_send(w, "x", 1, 0));
  size_t len = 99;
  CHECK_OK(mproc_pipe_recv(r, NULL, 0, &len, 1));
  CHECK_INT_EQ(len, 0);
  CHECK_ERR(mproc_pipe_recv(r, NULL, 0, &len, 1), MPROC_EMSGSIZE); /* a non-empty one does not */
  CHECK_INT_EQ(len, 1);
  char c = 0;
  CHECK_OK(mproc_pipe_recv(r, &c, 1, &len, 1));
  CHECK_INT_EQ(c, 'x');
  mproc_pipe_destroy(r);
  mproc_pipe_destroy(w);
}
