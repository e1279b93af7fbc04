/* pool_tasks.h: what the pool tests share (test_pool_basics.c, test_map.c, test_futures.c, test_streams.c,
 * test_worker_faults.c, test_thread_backend.c, test_rings.c): a page shared with the workers, the tasks
 * several files run, a pool maker and a done-callback that counts. */
#ifndef MPROC_POOL_TASKS_H
#define MPROC_POOL_TASKS_H

#include <stddef.h>
#include <stdint.h>
#include <mproc.h>

/* A page shared with every worker (mapped before the pool exists): gates that block tasks until the test
 * opens them, and counters tasks bump. */
struct shared {
  uint32_t ack;
  uint32_t gate;
  uint32_t started;
  int32_t pids[64];
  uint32_t npids;
};
extern struct shared *sh;

void map_shared(void);
void unmap_shared(void);
void open_gate(void);
/* Waits until `count` tasks have announced that they started. */
void await_started(uint32_t count);

/* Returns the square of its int argument; an argument of another length fails with MPROC_EINVAL. */
int square(const void *arg, size_t len, mproc_task *t);
/* Returns its int argument, or fails with MPROC_ERANGE when it is a multiple of 7. */
int fail_on_multiples_of_7(const void *arg, size_t len, mproc_task *t);
/* Blocks until the gate opens, after announcing its start. */
int gated(const void *arg, size_t len, mproc_task *t);
/* Returns its argument. */
int echo(const void *arg, size_t len, mproc_task *t);
/* Misbehaves as its int argument says: -1 SIGSEGV, -2 abort, -3 _exit(42), -4 announces its pid in
 * sh->pids[0] and waits to be killed, -5 hangs; any other n returns n * n. */
int misbehave(const void *arg, size_t len, mproc_task *t);

/* A worker initializer: sets init_calls to 1000 (in the worker) when its argument is "init", else fails. */
extern int init_calls;
int initializer(const void *arg, size_t len, mproc_task *t);

/* A pool of the backend with `workers` workers and the other options of `extra` (may be NULL). */
mproc_pool *make_pool(mproc_backend b, int workers, const mproc_pool_opts *extra);

/* A done-callback that records `user` (an int) in cb_order and counts in cb_count. */
extern uint32_t cb_count;
extern int cb_order[8];
void on_done(mproc_future *f, void *user);
/* Waiters may see a future done before its callbacks ran (as in concurrent.futures): wait for them. */
void await_callbacks(uint32_t count);

#endif
