/* test_waitables.c: a process's sentinel (Process.sentinel), one wait over processes, pipes, queues and
 * descriptors (multiprocessing.connection.wait), and Queue.shutdown(immediate), after CPython's test_wait,
 * test_wait_timeout, test_wait_integer, test_neg_timeout, the sentinel tests and 3.13's shutdown tests. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void reap(pid_t pid, int want_code) {
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_INT_EQ(WEXITSTATUS(st), want_code);
}

static int fd_readable(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms);
  return r > 0 && (p.revents & (POLLIN | POLLHUP));
}

/* Returns once a byte can be read from the fd in its argument, and returns that byte. */
static int wait_gate(const void *arg, size_t len) {
  (void)len;
  int fd;
  memcpy(&fd, arg, sizeof fd);
  char c = 0;
  return read(fd, &c, 1) == 1 ? c : 100;
}

static int return_7(const void *arg, size_t len) {
  (void)arg, (void)len;
  return 7;
}

/* ---- Process.sentinel ---- */

MTEST(sentinel_becomes_readable_when_the_process_ends) {
  int gate[2];
  CHECK(pipe(gate) == 0);
  mproc_process *p;
  CHECK_OK(mproc_process_start(&p, wait_gate, &gate[0], sizeof gate[0], NULL));
  int s = mproc_process_sentinel(p);
  CHECK_INT_CMP(s, >=, 0);
  CHECK(!fd_readable(s, 0)); /* still running: it waits for the gate */
  CHECK_INT_EQ(mproc_process_is_alive(p), 1);
  CHECK_INT_EQ(write(gate[1], "\x05", 1), 1);
  CHECK(fd_readable(s, -1));
  /* Readable means ended; the status is still to collect, and the sentinel outlives the join. */
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  int code = -1;
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 5);
  CHECK_INT_EQ(mproc_process_sentinel(p), s);
  CHECK(fd_readable(s, 0));
  CHECK_OK(mproc_process_destroy(p));
  close(gate[0]);
  close(gate[1]);
}

MTEST(sentinel_errors) {
  CHECK_ERR(mproc_process_sentinel(NULL), MPROC_EINVAL);
  mproc_process *p;
  CHECK_OK(mproc_process_start(&p, return_7, NULL, 0, NULL));
  /* A handle inherited through fork is not the child's to wait on. */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(mproc_process_sentinel(p) == MPROC_ECHILD ? 0 : 1);
  reap(pid, 0);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_destroy(p));
}

/* ---- mproc_wait: errors and timeouts ---- */

MTEST(wait_bad_input) {
  mproc_pipe *r, *w;
  CHECK_OK(mproc_pipe_create(&r, &w, 0));
  mproc_waitable one = mproc_waitable_pipe(r);
  size_t idx[4];
  CHECK_ERR(mproc_wait(NULL, 1, 0, idx), MPROC_EINVAL);
  CHECK_ERR(mproc_wait(&one, 0, 0, idx), MPROC_EINVAL);
  CHECK_ERR(mproc_wait(&one, 1, NAN, idx), MPROC_EINVAL);
  mproc_waitable bad = {.kind = (mproc_waitable_kind)99};
  CHECK_ERR(mproc_wait(&bad, 1, 0, NULL), MPROC_EINVAL);
  mproc_waitable nulls[] = {mproc_waitable_process(NULL), mproc_waitable_pipe(NULL),
                            mproc_waitable_queue(NULL)};
  for (int i = 0; i < 3; i++) CHECK_ERR(mproc_wait(&nulls[i], 1, 0, NULL), MPROC_EINVAL);
  /* Descriptors: negative, closed; a pipe end that cannot receive. */
  mproc_waitable neg = mproc_waitable_fd(-1);
  CHECK_ERR(mproc_wait(&neg, 1, 0, NULL), MPROC_EBADF);
  int fds[2];
  CHECK(pipe(fds) == 0);
  close(fds[0]);
  close(fds[1]);
  mproc_waitable closed = mproc_waitable_fd(fds[0]);
  CHECK_ERR(mproc_wait(&closed, 1, 0, NULL), MPROC_EBADF);
  mproc_waitable send_only = mproc_waitable_pipe(w);
  CHECK_ERR(mproc_wait(&send_only, 1, 0, NULL), MPROC_EBADF);
  /* A queue that was destroyed (placed in the caller's memory, so the memory is still there). */
  size_t sz = mproc_queue_size(4096);
  void *mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(mem != MAP_FAILED);
  mproc_queue *q;
  CHECK_OK(mproc_queue_init(&q, mem, sz, &(mproc_queue_opts){.buffer_bytes = 4096}));
  mproc_waitable wq = mproc_waitable_queue(q);
  CHECK_INT_EQ(mproc_wait(&wq, 1, 0, NULL), 0);
  mproc_queue_destroy(q);
  CHECK_ERR(mproc_wait(&wq, 1, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_wait(&wq, 1, MPROC_FOREVER, NULL), MPROC_EINVAL); /* checked before any sleep */
  munmap(mem, sz);
  /* One bad entry among good ones fails the whole call. */
  mproc_waitable mix[] = {mproc_waitable_pipe(r), mproc_waitable_fd(-5)};
  CHECK_ERR(mproc_wait(mix, 2, MPROC_FOREVER, NULL), MPROC_EBADF);
  /* A process this one did not start. */
  mproc_process *p;
  CHECK_OK(mproc_process_start(&p, return_7, NULL, 0, NULL));
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    mproc_waitable wp = mproc_waitable_process(p);
    _exit(mproc_wait(&wp, 1, 0, NULL) == MPROC_ECHILD ? 0 : 1);
  }
  reap(pid, 0);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_destroy(p));
  mproc_pipe_destroy(r);
  mproc_pipe_destroy(w);
}

/* Python's test_wait_timeout and test_neg_timeout: nothing ready gives 0 after the timeout; 0 polls. */
MTEST(wait_timeout) {
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096}));
  int fds[2];
  CHECK(pipe(fds) == 0);
  mproc_waitable ws[] = {mproc_waitable_pipe(a), mproc_waitable_fd(fds[0])};
  mproc_waitable wq[] = {mproc_waitable_queue(q)};
  mproc_waitable wall[] = {mproc_waitable_pipe(a), mproc_waitable_queue(q), mproc_waitable_fd(fds[0])};
  struct {
    mproc_waitable *w;
    size_t n;
  } sets[] = {{ws, 2}, {wq, 1}, {wall, 3}}; /* descriptors, queues, both */
  for (int k = 0; k < 3; k++) {
    double t0 = now();
    CHECK_INT_EQ(mproc_wait(sets[k].w, sets[k].n, 0, NULL), 0);
    t0 = now();
    CHECK_INT_EQ(mproc_wait(sets[k].w, sets[k].n, 0.05, NULL), 0);
    double took = now() - t0;
    CHECK(took >= 0.049);
    CHECK(took < 5.0);
    for (size_t i = 0; i < sets[k].n; i++) CHECK_INT_EQ(sets[k].w[i].ready, 0);
  }
  /* A timeout beyond any deadline waits forever: something becomes ready meanwhile. */
  CHECK_OK(mproc_pipe_send(b, "x", 1, 0));
  CHECK_INT_EQ(mproc_wait(wall, 3, DBL_MAX, NULL), 1);
  CHECK_INT_EQ(wall[0].ready, 1);
  close(fds[0]);
  close(fds[1]);
  mproc_queue_destroy(q);
  mproc_pipe_destroy(a);
  mproc_pipe_destroy(b);
}

/* ---- mproc_wait: what is ready ---- */

/* Python's test_wait: processes each send messages on their own pipe, then end; the caller waits on the
 * pipes and the processes' sentinels until every pipe is at end of file and every process has ended. */
typedef struct sender_arg {
  mproc_pipe *end;
  int count;
} sender_arg;

static int send_some(const void *arg, size_t len) {
  (void)len;
  const sender_arg *a = arg;
  for (int i = 0; i < a->count; i++)
    if (mproc_pipe_send(a->end, &i, sizeof i, MPROC_FOREVER) != 0) return 1;
  return 0;
}

MTEST(wait_on_pipes_and_processes) {
  enum { N = 4, MSGS = 10 };
  mproc_pipe *r[N], *w[N];
  mproc_process *p[N];
  for (int i = 0; i < N; i++) {
    CHECK_OK(mproc_pipe_create(&r[i], &w[i], 0));
    sender_arg a = {w[i], MSGS + i};
    CHECK_OK(mproc_process_start(&p[i], send_some, &a, sizeof a, NULL));
    mproc_pipe_destroy(w[i]);
  }
  mproc_waitable ws[2 * N];
  int got[N] = {0}, eof[N] = {0}, ended[N] = {0};
  size_t live = 2 * N;
  for (int i = 0; i < N; i++) {
    ws[i] = mproc_waitable_pipe(r[i]);
    ws[N + i] = mproc_waitable_process(p[i]);
  }
  int map[2 * N];
  for (int i = 0; i < 2 * N; i++) map[i] = i;
  while (live > 0) {
    size_t idx[2 * N];
    int n = mproc_wait(ws, live, MPROC_FOREVER, idx);
    CHECK_INT_CMP(n, >, 0);
    for (int k = 0; k < n; k++) CHECK(ws[idx[k]].ready);
    for (int k = n - 1; k >= 0; k--) { /* from the end, so removals keep the lower indices */
      size_t j = idx[k];
      int o = map[j];
      bool done = false;
      if (o < N) {
        int v;
        size_t len;
        int rc = mproc_pipe_recv(r[o], &v, sizeof v, &len, 0);
        if (rc == MPROC_EEOF) {
          eof[o] = 1;
          done = true;
        } else {
          CHECK_OK(rc);
          CHECK_INT_EQ(v, got[o]);
          got[o]++;
        }
      } else {
        ended[o - N] = 1;
        done = true;
      }
      if (done) {
        ws[j] = ws[live - 1];
        map[j] = map[live - 1];
        live--;
      }
    }
  }
  for (int i = 0; i < N; i++) {
    CHECK(eof[i] && ended[i]);
    CHECK_INT_EQ(got[i], MSGS + i);
    CHECK_OK(mproc_process_join(p[i], MPROC_FOREVER));
    int code = -1;
    CHECK_OK(mproc_process_exitcode(p[i], &code));
    CHECK_INT_EQ(code, 0);
    CHECK_OK(mproc_process_destroy(p[i]));
    mproc_pipe_destroy(r[i]);
  }
}

/* Python's test_wait_integer: raw descriptors beside processes; an ended process stays ready. */
MTEST(wait_on_descriptors_and_ended_objects) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  mproc_process *p;
  CHECK_OK(mproc_process_start(&p, return_7, NULL, 0, NULL));
  mproc_waitable ws[] = {mproc_waitable_fd(fds[0]), mproc_waitable_process(p)};
  size_t idx[2];
  CHECK_INT_EQ(mproc_wait(ws, 2, MPROC_FOREVER, idx), 1);
  CHECK_INT_EQ(idx[0], 1);
  CHECK_INT_EQ(ws[0].ready, 0);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_INT_EQ(mproc_wait(ws, 2, 0, idx), 1); /* joined: still ready */
  CHECK_INT_EQ(write(fds[1], "x", 1), 1);
  CHECK_INT_EQ(mproc_wait(ws, 2, 0, idx), 2);
  CHECK_INT_EQ(idx[0], 0);
  CHECK_INT_EQ(idx[1], 1);
  CHECK_OK(mproc_process_destroy(p));
  /* A pipe whose other end is gone is ready (end of file), before and after recv has seen it. */
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  mproc_waitable wa = mproc_waitable_pipe(a);
  CHECK_INT_EQ(mproc_wait(&wa, 1, 0, NULL), 0);
  mproc_pipe_destroy(b);
  CHECK_INT_EQ(mproc_wait(&wa, 1, MPROC_FOREVER, NULL), 1);
  size_t len;
  char c;
  CHECK_ERR(mproc_pipe_recv(a, &c, 1, &len, 0), MPROC_EEOF);
  CHECK_INT_EQ(mproc_wait(&wa, 1, MPROC_FOREVER, NULL), 1);
  mproc_pipe_destroy(a);
  /* A closed queue, and a shut down one, are ready: a get would not wait. */
  mproc_queue *q1, *q2;
  CHECK_OK(mproc_queue_create(&q1, NULL));
  CHECK_OK(mproc_queue_create(&q2, NULL));
  mproc_waitable wq[] = {mproc_waitable_queue(q1), mproc_waitable_queue(q2)};
  CHECK_INT_EQ(mproc_wait(wq, 2, 0, NULL), 0);
  CHECK_OK(mproc_queue_close(q1));
  CHECK_OK(mproc_queue_shutdown(q2, 0));
  CHECK_INT_EQ(mproc_wait(wq, 2, MPROC_FOREVER, idx), 2);
  mproc_queue_destroy(q1);
  mproc_queue_destroy(q2);
  close(fds[0]);
  close(fds[1]);
}

/* A child that waits for a byte on gate, then puts one message on q: lets the test make a queue ready
 * from another process while the caller already sleeps in mproc_wait. */
static pid_t putter_after_gate(mproc_queue *q, int gate) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char c;
    if (read(gate, &c, 1) != 1) _exit(2);
    _exit(mproc_queue_put(q, &c, 1, MPROC_FOREVER) == 0 ? 0 : 1);
  }
  return pid;
}

static void open_gate(void *fd) {
  if (write(*(int *)fd, "g", 1) != 1) abort();
}

/* One queue among many objects of every kind becomes ready from another process while the caller sleeps:
 * only descriptors and queues (futex_waitv), and both (the helper thread). */
MTEST(wait_many_objects_one_ready_from_another_process) {
  enum { NQ = 12, NP = 10 };
  for (int with_fds = 0; with_fds < 2; with_fds++) {
    mproc_queue *q[NQ];
    mproc_pipe *r[NP], *w[NP];
    mproc_process *p;
    int gate[2], pfd[2];
    CHECK(pipe(gate) == 0);
    CHECK(pipe(pfd) == 0);
    for (int i = 0; i < NQ; i++)
      CHECK_OK(mproc_queue_create(&q[i], &(mproc_queue_opts){.buffer_bytes = 1024}));
    for (int i = 0; i < NP; i++) CHECK_OK(mproc_pipe_create(&r[i], &w[i], 0));
    CHECK_OK(mproc_process_start(&p, wait_gate, &pfd[0], sizeof pfd[0], NULL));
    mproc_waitable ws[NQ + NP + 2];
    size_t n = 0;
    for (int i = 0; i < NQ; i++) ws[n++] = mproc_waitable_queue(q[i]);
    if (with_fds) {
      for (int i = 0; i < NP; i++) ws[n++] = mproc_waitable_pipe(r[i]);
      ws[n++] = mproc_waitable_process(p);
      ws[n++] = mproc_waitable_fd(gate[0]); /* never readable to the caller first: the child reads it */
    }
    pid_t child = putter_after_gate(q[7], gate[0]);
    mtest_later later;
    mtest_later_start(&later, open_gate, &gate[1]);
    size_t idx[NQ + NP + 2];
    int got = mproc_wait(ws, n, MPROC_FOREVER, idx);
    mtest_later_join(&later);
    reap(child, 0);
    /* The gate's byte may still be unread by the child when the wait looked: then the gate is ready too. */
    CHECK_INT_CMP(got, >=, 1);
    bool saw_queue = false;
    for (int k = 0; k < got; k++) {
      if (idx[k] == 7)
        saw_queue = true;
      else
        CHECK(with_fds && idx[k] == n - 1);
    }
    if (!saw_queue) CHECK_INT_EQ(mproc_wait(ws, n, MPROC_FOREVER, idx), 1);
    CHECK_INT_EQ(mproc_wait(ws, n, 0, idx), 1);
    CHECK_INT_EQ(idx[0], 7);
    char c;
    size_t len;
    CHECK_OK(mproc_queue_get(q[7], &c, 1, &len, 0));
    CHECK_INT_EQ(mproc_wait(ws, n, 0, idx), 0);
    /* The process ends: it is the one ready now. */
    CHECK_INT_EQ(write(pfd[1], "\x01", 1), 1);
    if (with_fds) {
      CHECK_INT_EQ(mproc_wait(ws, n, MPROC_FOREVER, idx), 1);
      CHECK_INT_EQ(idx[0], NQ + NP);
    }
    CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
    CHECK_OK(mproc_process_destroy(p));
    for (int i = 0; i < NP; i++) {
      mproc_pipe_destroy(r[i]);
      mproc_pipe_destroy(w[i]);
    }
    for (int i = 0; i < NQ; i++) mproc_queue_destroy(q[i]);
    close(gate[0]);
    close(gate[1]);
    close(pfd[0]);
    close(pfd[1]);
  }
}

/* More queues than one futex_waitv takes: the wait sleeps in slices and still sees a put. */
MTEST(wait_on_more_queues_than_one_sleep_takes) {
  enum { NQ = 140 };
  mproc_queue *q[NQ];
  for (int i = 0; i < NQ; i++) CHECK_OK(mproc_queue_create(&q[i], &(mproc_queue_opts){.buffer_bytes = 256}));
  mproc_waitable ws[NQ];
  for (int i = 0; i < NQ; i++) ws[i] = mproc_waitable_queue(q[i]);
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t child = putter_after_gate(q[NQ - 1], gate[0]);
  mtest_later later;
  mtest_later_start(&later, open_gate, &gate[1]);
  size_t idx[NQ];
  CHECK_INT_EQ(mproc_wait(ws, NQ, MPROC_FOREVER, idx), 1);
  CHECK_INT_EQ(idx[0], NQ - 1);
  mtest_later_join(&later);
  reap(child, 0);
  for (int i = 0; i < NQ; i++) mproc_queue_destroy(q[i]);
  close(gate[0]);
  close(gate[1]);
}

/* Watchers leave the queue as they found it: gets and puts go on, and waits in a row from several threads
 * each see their put. */
typedef struct ping {
  mproc_queue *q;
  int rounds;
} ping;

static void *waiter_thread(void *arg) {
  ping *p = arg;
  for (int i = 0; i < p->rounds; i++) {
    mproc_waitable w = mproc_waitable_queue(p->q);
    if (mproc_wait(&w, 1, MPROC_FOREVER, NULL) != 1) return (void *)1;
    char c;
    size_t len;
    int r = mproc_queue_get(p->q, &c, 1, &len, 0);
    if (r != 0 && r != MPROC_EEMPTY) return (void *)2; /* the other thread may take it first */
  }
  return NULL;
}

MTEST(waits_in_threads_see_every_put) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  ping a = {q, 200};
  pthread_t th;
  CHECK_INT_EQ(pthread_create(&th, NULL, waiter_thread, &a), 0);
  for (int i = 0; i < 200; i++) {
    CHECK_OK(mproc_queue_put(q, "x", 1, MPROC_FOREVER));
    while (mproc_queue_qsize(q) > 0) sched_yield(); /* the waiter takes each before the next goes */
  }
  void *res;
  CHECK_INT_EQ(pthread_join(th, &res), 0);
  CHECK(res == NULL);
  mproc_queue_destroy(q);
}

/* ---- Queue.shutdown ---- */

MTEST(shutdown_errors_and_codes) {
  CHECK_ERR(mproc_queue_shutdown(NULL, 0), MPROC_EINVAL);
  CHECK_STR_EQ(mproc_err_name(MPROC_ESHUTDOWN), "ESHUTDOWN");
  CHECK_STR_EQ(mproc_strerror(MPROC_ESHUTDOWN), "the queue is shut down");
  size_t sz = mproc_queue_size(4096);
  void *mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(mem != MAP_FAILED);
  mproc_queue *q;
  CHECK_OK(mproc_queue_init(&q, mem, sz, &(mproc_queue_opts){.buffer_bytes = 4096}));
  mproc_queue_destroy(q);
  CHECK_ERR(mproc_queue_shutdown(q, 1), MPROC_EINVAL);
  munmap(mem, sz);
}

/* shutdown(immediate=False): puts fail at once, getters drain then get the code; join still counts. */
MTEST(shutdown_lets_getters_drain) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  CHECK_OK(mproc_queue_put(q, "a", 1, 0));
  CHECK_OK(mproc_queue_put(q, "b", 1, 0));
  CHECK_OK(mproc_queue_shutdown(q, 0));
  CHECK_ERR(mproc_queue_put(q, "c", 1, 0), MPROC_ESHUTDOWN);
  CHECK_ERR(mproc_queue_put(q, "c", 1, MPROC_FOREVER), MPROC_ESHUTDOWN);
  CHECK_INT_EQ(mproc_queue_qsize(q), 2);
  char c;
  size_t len;
  CHECK_OK(mproc_queue_get(q, &c, 1, &len, MPROC_FOREVER));
  CHECK(c == 'a');
  CHECK_ERR(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_OK(mproc_queue_get(q, &c, 1, &len, 0));
  CHECK(c == 'b');
  CHECK_ERR(mproc_queue_get(q, &c, 1, &len, 0), MPROC_ESHUTDOWN);
  CHECK_ERR(mproc_queue_get(q, &c, 1, &len, MPROC_FOREVER), MPROC_ESHUTDOWN);
  void *m;
  CHECK_ERR(mproc_queue_get_alloc(q, &m, &len, 1.0), MPROC_ESHUTDOWN);
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_OK(mproc_queue_join(q, MPROC_FOREVER));
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND);
  /* A shutdown wins over a close, before or after it. */
  CHECK_OK(mproc_queue_close(q));
  CHECK_ERR(mproc_queue_put(q, "c", 1, 0), MPROC_ESHUTDOWN);
  CHECK_ERR(mproc_queue_get(q, &c, 1, &len, 0), MPROC_ESHUTDOWN);
  mproc_queue_destroy(q);
  CHECK_OK(mproc_queue_create(&q, NULL));
  CHECK_OK(mproc_queue_close(q));
  CHECK_ERR(mproc_queue_put(q, "c", 1, 0), MPROC_ECLOSED);
  CHECK_OK(mproc_queue_shutdown(q, 0));
  CHECK_ERR(mproc_queue_put(q, "c", 1, 0), MPROC_ESHUTDOWN);
  CHECK_ERR(mproc_queue_get(q, &c, 1, &len, 0), MPROC_ESHUTDOWN);
  mproc_queue_destroy(q);
}

/* shutdown(immediate=True): what is queued is dropped and counted done; a message taken before still
 * counts until its task_done (Python 3.13's test_shutdown_immediate_all_methods). */
MTEST(shutdown_immediate_drops_what_is_queued) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  const char abc[] = "abc";
  for (int i = 0; i < 3; i++) CHECK_OK(mproc_queue_put(q, abc + i, 1, 0));
  char c;
  size_t len;
  CHECK_OK(mproc_queue_get(q, &c, 1, &len, 0));
  CHECK_OK(mproc_queue_shutdown(q, 0)); /* first without immediate: nothing is dropped yet */
  CHECK_INT_EQ(mproc_queue_qsize(q), 2);
  CHECK_OK(mproc_queue_shutdown(q, 1));
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  CHECK_INT_EQ(mproc_queue_empty(q), 1);
  CHECK_ERR(mproc_queue_get(q, &c, 1, &len, 0), MPROC_ESHUTDOWN);
  CHECK_ERR(mproc_queue_put(q, "d", 1, 0), MPROC_ESHUTDOWN);
  CHECK_ERR(mproc_queue_join(q, 0), MPROC_ETIMEDOUT); /* the one taken */
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_OK(mproc_queue_join(q, 0));
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND);
  CHECK_OK(mproc_queue_shutdown(q, 0)); /* immediate stays */
  CHECK_ERR(mproc_queue_get(q, &c, 1, &len, 0), MPROC_ESHUTDOWN);
  mproc_queue_destroy(q);
}

/* A child that says "g" on gate_w, then gets from q and exits 0 when that get ends with MPROC_ESHUTDOWN. */
static pid_t getter_until_shutdown(mproc_queue *q, int gate_w) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char c;
    size_t len;
    if (write(gate_w, "g", 1) != 1) _exit(3);
    _exit(mproc_queue_get(q, &c, 1, &len, MPROC_FOREVER) == MPROC_ESHUTDOWN ? 0 : 1);
  }
  return pid;
}

/* Getters and putters blocked in other processes wake with the code, with and without immediate. */
MTEST(shutdown_wakes_blocked_getters_and_putters_in_other_processes) {
  for (int immediate = 0; immediate < 2; immediate++) {
    mproc_queue *empty, *full;
    CHECK_OK(mproc_queue_create(&empty, NULL));
    CHECK_OK(mproc_queue_create(&full, &(mproc_queue_opts){.max_messages = 1}));
    CHECK_OK(mproc_queue_put(full, "f", 1, 0));
    int gate[2];
    CHECK(pipe(gate) == 0);
    pid_t getter = getter_until_shutdown(empty, gate[1]);
    pid_t putter = fork();
    CHECK(putter >= 0);
    if (putter == 0) {
      if (write(gate[1], "p", 1) != 1) _exit(3);
      _exit(mproc_queue_put(full, "x", 1, MPROC_FOREVER) == MPROC_ESHUTDOWN ? 0 : 1);
    }
    char c[2];
    CHECK_INT_EQ(read(gate[0], c, 1), 1);
    CHECK_INT_EQ(read(gate[0], c + 1, 1), 1);
    /* The children may not be asleep yet: then they find the flag as they go in, which is as good. */
    CHECK_OK(mproc_queue_shutdown(empty, immediate));
    CHECK_OK(mproc_queue_shutdown(full, immediate));
    reap(getter, 0);
    reap(putter, 0);
    size_t len;
    char b;
    if (immediate) {
      CHECK_ERR(mproc_queue_get(full, &b, 1, &len, 0), MPROC_ESHUTDOWN);
      CHECK_OK(mproc_queue_join(full, 0));
    } else {
      CHECK_OK(mproc_queue_get(full, &b, 1, &len, 0));
      CHECK(b == 'f');
    }
    close(gate[0]);
    close(gate[1]);
    mproc_queue_destroy(empty);
    mproc_queue_destroy(full);
  }
}

/* A getter sleeping in another process while the caller shuts the queue down, the caller having waited
 * until it sleeps (mtest_later: 30 ms after the child said it goes in). */
static void shut_now(void *q) { mproc_queue_shutdown(q, 1); }

MTEST(shutdown_immediate_while_a_getter_sleeps_in_another_process) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t getter = getter_until_shutdown(q, gate[1]);
  char c;
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  mtest_later later;
  mtest_later_start(&later, shut_now, q);
  mtest_later_join(&later);
  reap(getter, 0);
  close(gate[0]);
  close(gate[1]);
  mproc_queue_destroy(q);
}

/* A message larger than the buffer, half streamed when an immediate shutdown comes: its producer stops
 * with the code, the parts already in the ring are dropped, and join counts it done. */
static unsigned char big[40000];

MTEST(shutdown_immediate_drops_a_message_being_streamed) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096}));
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t putter = fork();
  CHECK(putter >= 0);
  if (putter == 0) {
    if (write(gate[1], "p", 1) != 1) _exit(3);
    _exit(mproc_queue_put(q, big, sizeof big, MPROC_FOREVER) == MPROC_ESHUTDOWN ? 0 : 1);
  }
  char c;
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  mtest_later later;
  mtest_later_start(&later, shut_now, q); /* by then the first parts fill the ring */
  mtest_later_join(&later);
  reap(putter, 0);
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  size_t len;
  CHECK_ERR(mproc_queue_get(q, big, sizeof big, &len, 0), MPROC_ESHUTDOWN);
  CHECK_OK(mproc_queue_join(q, 0));
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND);
  close(gate[0]);
  close(gate[1]);
  mproc_queue_destroy(q);
}

/* A wait on a queue wakes when another process shuts it down. */
MTEST(wait_wakes_on_a_shutdown_from_another_process) {
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    char c;
    if (read(gate[0], &c, 1) != 1) _exit(2);
    _exit(mproc_queue_shutdown(q, 0) == 0 ? 0 : 1);
  }
  mtest_later later;
  mtest_later_start(&later, open_gate, &gate[1]);
  mproc_waitable w[] = {mproc_waitable_queue(q), mproc_waitable_fd(gate[1])};
  /* gate[1] is a write end: never readable, but a descriptor beside the queue (the helper thread's path) */
  CHECK_INT_EQ(mproc_wait(w, 2, MPROC_FOREVER, NULL), 1);
  CHECK_INT_EQ(w[0].ready, 1);
  mtest_later_join(&later);
  reap(child, 0);
  close(gate[0]);
  close(gate[1]);
  mproc_queue_destroy(q);
}

/* Where the kernel has no pidfds: no sentinel, and a wait on the process looks again every few ms. */
static int no_pidfd_open(pid_t pid, unsigned flags) {
  (void)pid, (void)flags;
  errno = ENOSYS;
  return -1;
}

MTEST(wait_on_a_process_without_a_pidfd) {
  int gate[2];
  CHECK(pipe(gate) == 0);
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  mproc_process *p;
  mproc__plat_sys.pidfd_open = no_pidfd_open;
  int r = mproc_process_start(&p, wait_gate, &gate[0], sizeof gate[0], NULL);
  mproc__plat_syscalls_reset();
  CHECK_OK(r);
  CHECK_ERR(mproc_process_sentinel(p), MPROC_ENOSYS);
  mproc_waitable ws[] = {mproc_waitable_queue(q), mproc_waitable_process(p)};
  CHECK_INT_EQ(mproc_wait(ws, 2, 0, NULL), 0);
  CHECK_INT_EQ(mproc_wait(ws, 2, 0.03, NULL), 0);
  mtest_later later;
  mtest_later_start(&later, open_gate, &gate[1]);
  size_t idx[2];
  CHECK_INT_EQ(mproc_wait(ws, 2, MPROC_FOREVER, idx), 1);
  CHECK_INT_EQ(idx[0], 1);
  mtest_later_join(&later);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER)); /* already collected by the wait's look */
  int code = -1;
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 'g');
  CHECK_OK(mproc_process_destroy(p));
  mproc_queue_destroy(q);
  close(gate[0]);
  close(gate[1]);
}
