/* backend_exec.c: MPROC_START_EXEC, a pool's template started as a fresh image of the running program.
 *
 * The thread creating the pool forks a child that executes /proc/self/exe (mproc__plat_spawn_exec_self)
 * with the template's socket and the shared mappings' memfds as its only inherited descriptors, and their
 * description in MPROC_EXEC_TEMPLATE.  In the new image, the constructor below runs before main (and before
 * the program's unprioritised constructors), takes the variable out of the environment, checks that its
 * parent is still the caller (PR_SET_PDEATHSIG, set between fork and exec, survives the exec and ends an
 * image whose caller dies while it loads; a parent that died before the exec is seen by getppid), watches it
 * before it says it is ready (the creating thread, to which the signal is tied, waits until then), maps each
 * memfd at the caller's address with MAP_FIXED_NOREPLACE, turns the workers' initializer and finalizer from
 * (object, offset) into its own addresses, says TPL_READY and becomes the template; it never returns to the
 * program.
 *
 * The handoff is a list of (tag, fd, address, size): the pool's own mapping is one entry, and any other
 * mapping that must sit at one address in every process (a process-wide arena) is another.  An address
 * taken in the new image is reported as TPL_SPAWN_FAILED/EEXIST; the caller then tries a new image (ASLR
 * lays each out anew) twice more before the pool fails with MPROC_EEXIST: falling back to a fork would
 * quietly give workers the caller's memory, which an exec pool promises they do not see. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "ipc/arena.h"

#define EXEC_ENV "MPROC_EXEC_TEMPLATE"
#define MAX_HANDOFF MPROC__EXEC_HANDOFF_MAX
#define READY_TIMEOUT 30.0

enum { HANDOFF_POOL = 1, HANDOFF_ARENA = 2 };

typedef mproc__exec_handoff handoff;

/* ---- the caller's side ---- */

/* The mappings the template must have at our addresses. */
static int collect_handoffs(mproc__engine *e, handoff *h) {
  int n = 0;
  h[n++] = (handoff){HANDOFF_POOL, e->sh_fd, e->sh, e->sh_bytes};
  /* the shared arena (ipc/arena.h), which the pool holds: its workers see mproc_shared_alloc() memory at
   * the caller's addresses, as forked workers do */
  void *addr = NULL;
  size_t size = 0;
  int fd = e->arena_ref ? mproc__arena_mapping(&addr, &size) : -1;
  if (fd >= 0) h[n++] = (handoff){HANDOFF_ARENA, fd, addr, size};
  return n;
}

static int start_once(mproc__engine *e) {
  handoff h[MAX_HANDOFF];
  int n = collect_handoffs(e, h);
  int sv[2];
  int r = mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv);
  if (r < 0) return r;
  char env[64 + MAX_HANDOFF * 64];
  int len = snprintf(env, sizeof env, EXEC_ENV "=1 %d %d %d", (int)getpid(), sv[1], n);
  int keep[MAX_HANDOFF + 1] = {sv[1]};
  for (int i = 0; i < n; i++) {
    len += snprintf(env + len, sizeof env - (size_t)len, " %u:%d:%llx:%zu", h[i].tag, h[i].fd,
                    (unsigned long long)(uintptr_t)h[i].addr, h[i].size);
    keep[i + 1] = h[i].fd;
  }
  pid_t pid = 0;
  int pidfd = -1;
  r = mproc__plat_spawn_exec_self(&pid, &pidfd, env, keep, n + 1);
  mproc__plat_close(sv[1]);
  if (r < 0) {
    mproc__plat_close(sv[0]);
    return r;
  }
  r = mproc__template_await_ready(sv[0], READY_TIMEOUT);
  if (r == 0) {
    mproc__template *t = mproc__template_of(e);
    e->tpl_sock = sv[0];
    t->pid = pid;
    t->pidfd = pidfd;
    t->foreign = false;
    return 0;
  }
  mproc__plat_close(sv[0]);
  mproc__plat_signal(pid, pidfd, SIGKILL);
  int st;
  mproc__plat_wait(pid, pidfd, -1, &st);
  mproc__plat_close(pidfd);
  return r;
}

int mproc__exec_template_start(mproc__engine *e) {
  int r = mproc__template_state_new(e);
  if (r < 0) return r;
  r = MPROC_EEXIST;
  for (int attempt = 0; attempt < 3 && r == MPROC_EEXIST; attempt++) r = start_once(e);
  if (r < 0) mproc__template_state_free(e);
  return r;
}

/* ---- the new image's side ---- */

static void fail(int sock, int err) {
  tpl_msg m = {TPL_SPAWN_FAILED, -1, getpid(), err};
  (void)mproc__plat_send_msg(sock, &m, sizeof m, true); /* if the caller is gone, it waits for nothing */
  mproc__plat_exit(1);
}

/* The number at *end (strtol's base; an int of 0..INT_MAX when max is INT_MAX): false when there is none or
 * it is out of 0..max (a value that would wrap in the cast). */
static bool field(char **end, int base, unsigned long long max, unsigned long long *v) {
  const char *s = *end;
  while (*s == ' ') s++;
  if (!(base == 16 ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s)))
    return false; /* no sign: strtoull would wrap "-1" */
  errno = 0;
  *v = strtoull(s, end, base);
  return errno == 0 && *v <= max;
}

/* Parses "1 <ppid> <sock> <n> <tag>:<fd>:<hexaddr>:<size>..."; false when it is not that. */
bool mproc__exec_handoff_parse(const char *s, pid_t *ppid, int *sock, handoff *h, int *n) {
  char *end = (char *)s;
  unsigned long long one, pid, sk, cnt, tag, fd, addr, size;
  if (!field(&end, 10, 1, &one) || one != 1 || !field(&end, 10, INT_MAX, &pid) ||
      !field(&end, 10, INT_MAX, &sk) || !field(&end, 10, MAX_HANDOFF, &cnt) || cnt < 1)
    return false;
  *ppid = (pid_t)pid;
  *sock = (int)sk;
  *n = (int)cnt;
  for (int i = 0; i < *n; i++) {
    if (!field(&end, 10, UINT_MAX, &tag) || *end++ != ':' || !field(&end, 10, INT_MAX, &fd) ||
        *end++ != ':' || !field(&end, 16, UINTPTR_MAX, &addr) || *end++ != ':' ||
        !field(&end, 10, SIZE_MAX, &size))
      return false;
    h[i] = (handoff){(unsigned)tag, (int)fd, (void *)(uintptr_t)addr, (size_t)size};
    if (!h[i].addr || !h[i].size) return false;
  }
  return *end == '\0';
}

/* Sets *fn from ref (0: none); false with a message on stderr when the object cannot be found. */
static bool resolve_conf_fn(const mproc__shared *sh, uint64_t ref, uintptr_t *fn) {
  if (!ref) return true;
  char msg[MPROC_TASK_MSG_MAX];
  *fn = mproc__fnref_resolve(sh, ref, msg, sizeof msg);
  if (!*fn) fprintf(stderr, "mproc: exec template: %s\n", msg);
  return *fn != 0;
}

/* Priority 101: before the program's own constructors, and after the sanitizers' (which run from
 * preinit_array or with priorities below 101). */
__attribute__((constructor(101))) static void exec_template_entry(void) {
  const char *v = getenv(EXEC_ENV);
  if (!v) return;
  char buf[MPROC__EXEC_HANDOFF_CHARS];
  snprintf(buf, sizeof buf, "%s", v);
  unsetenv(EXEC_ENV); /* the workers' own children are ordinary programs */
  pid_t ppid;
  int sock, n;
  handoff h[MAX_HANDOFF];
  if (!mproc__exec_handoff_parse(buf, &ppid, &sock, h, &n)) {
    fprintf(stderr, "mproc: malformed %s=\"%s\"\n", EXEC_ENV, buf);
    mproc__plat_exit(126);
  }
  if (getppid() != ppid) mproc__plat_exit(1); /* the caller died before the exec */
  mproc__plat_set_cloexec(sock, true);
  mproc__shared *sh = NULL;
  int err = 0;
  for (int i = 0; i < n; i++) {
    void *p = mproc__plat_shm_map_at(h[i].addr, h[i].fd, h[i].size, &err);
    mproc__plat_close(h[i].fd);
    if (!p) {
      for (int k = i + 1; k < n; k++) mproc__plat_close(h[k].fd);
      fail(sock, -err);
    }
    if (h[i].tag == HANDOFF_POOL) sh = p;
    /* HANDOFF_ARENA needs nothing more: workers only read and write through the caller's pointers */
  }
  if (!sh) fail(sock, EINVAL);
  uintptr_t init = 0, fin = 0;
  if (!resolve_conf_fn(sh, sh->conf.initializer_ref, &init) ||
      !resolve_conf_fn(sh, sh->conf.finalizer_ref, &fin))
    fail(sock, ENOENT);
  /* the workers are forked from this image: these addresses are theirs */
  sh->conf.initializer = (mproc_task_fn)init;
  sh->conf.finalizer = (void (*)(void))fin;
  /* before READY: until then the thread that forked us waits for it, so its parent-death signal holds */
  int owner = mproc__plat_watch_parent(ppid);
  tpl_msg m = {TPL_READY, -1, getpid(), 0};
  if (mproc__plat_send_msg(sock, &m, sizeof m, true) < 0) mproc__plat_exit(1); /* the caller is gone */
  mproc__template_main(sh, sock, owner);
}

/* MPROC_START_EXEC: the template is a fresh image of the program; the rest is the template protocol. */
const mproc__backend_ops mproc__backend_exec = {
    .needs_memfd = true,
    .fresh_image = true,
    .start = mproc__exec_template_start,
    MPROC__TEMPLATE_PROTOCOL,
};
