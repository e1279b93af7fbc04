/* fuzz_exec_handoff.c: what a fresh image of the exec start method reads before anything else, its
 * MPROC_EXEC_TEMPLATE handoff (backend_exec.c): "1 <ppid> <sock> <n> <tag>:<fd>:<hexaddr>:<size>...".  The
 * variable is in the environment of every process the program starts, so any value may come.
 *
 * Input: the value, as far as its first NUL (cut where the new image cuts it); what follows the NUL, read as
 * numbers, is a handoff written as the caller writes it, which must read back as itself. */
#include <inttypes.h>
#include <limits.h>

#include "backend/backend.h"
#include "fuzz.h"

static void check_parsed(pid_t ppid, int sock, const mproc__exec_handoff *h, int n) {
  FUZZ_CHECK(ppid >= 0 && sock >= 0 && n >= 1 && n <= MPROC__EXEC_HANDOFF_MAX);
  for (int i = 0; i < n; i++) FUZZ_CHECK(h[i].fd >= 0 && h[i].addr && h[i].size);
}

/* Writes the handoff as backend_exec.c's start_once() does. */
static void write_handoff(char *buf, size_t cap, pid_t ppid, int sock, const mproc__exec_handoff *h, int n) {
  int len = snprintf(buf, cap, "1 %d %d %d", (int)ppid, sock, n);
  for (int i = 0; i < n; i++)
    len += snprintf(buf + len, cap - (size_t)len, " %u:%d:%llx:%zu", h[i].tag, h[i].fd,
                    (unsigned long long)(uintptr_t)h[i].addr, h[i].size);
}

static void check_same(pid_t ppid, int sock, const mproc__exec_handoff *h, int n) {
  char buf[MPROC__EXEC_HANDOFF_CHARS];
  write_handoff(buf, sizeof buf, ppid, sock, h, n);
  pid_t ppid2;
  int sock2, n2;
  mproc__exec_handoff h2[MPROC__EXEC_HANDOFF_MAX];
  FUZZ_CHECK(mproc__exec_handoff_parse(buf, &ppid2, &sock2, h2, &n2));
  FUZZ_CHECK(ppid2 == ppid && sock2 == sock && n2 == n);
  for (int i = 0; i < n; i++)
    FUZZ_CHECK(h2[i].tag == h[i].tag && h2[i].fd == h[i].fd && h2[i].addr == h[i].addr &&
               h2[i].size == h[i].size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char buf[MPROC__EXEC_HANDOFF_CHARS];
  size_t len = strnlen((const char *)data, size);
  snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)data); /* as the new image copies it */
  pid_t ppid;
  int sock, n;
  mproc__exec_handoff h[MPROC__EXEC_HANDOFF_MAX];
  if (mproc__exec_handoff_parse(buf, &ppid, &sock, h, &n)) {
    check_parsed(ppid, sock, h, n);
    check_same(ppid, sock, h, n); /* what it read is a handoff the caller could have written */
  }
  /* the caller's handoffs read back whole */
  fuzz_in in = {data + (len < size ? len + 1 : size), len < size ? size - len - 1 : 0};
  ppid = (pid_t)(fuzz_u(&in, 4) & INT_MAX);
  sock = (int)(fuzz_u(&in, 4) & INT_MAX);
  n = 1 + (int)(fuzz_u(&in, 1) % MPROC__EXEC_HANDOFF_MAX);
  for (int i = 0; i < n; i++) {
    h[i].tag = (unsigned)fuzz_u(&in, 4);
    h[i].fd = (int)(fuzz_u(&in, 4) & INT_MAX);
    h[i].addr = (void *)(uintptr_t)(fuzz_u(&in, 8) | 1);
    h[i].size = (size_t)fuzz_u(&in, 8) | 1;
  }
  check_same(ppid, sock, h, n);
  return 0;
}
