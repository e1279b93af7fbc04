/* test_task.c: the task context: results of every size, fixed records, failures with messages. */
#include "mtest.h"
#include "core/task_local.h"

static int square(const void *arg, size_t len, mproc_task *t) {
  if (len != sizeof(int)) return mproc_task_fail(t, MPROC_EINVAL, "want an int, got %zu bytes", len);
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

static int big(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  char *buf = mproc_task_return_buffer(t, 100000);
  if (!buf) return MPROC_ENOMEM;
  for (int i = 0; i < 100000; i++) buf[i] = (char)(i * 7);
  return 0;
}

static int positive(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  return 3;
}
static int bare_negative(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  mproc_task_fail(t, MPROC_EIO, "first message");
  return MPROC_ERANGE; /* a different code: the message belongs to EIO, not to this */
}
static int nothing(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  return mproc_task_worker_id(t) == 5 && mproc_task_index(t) == 9 && mproc_task_attempt(t) == 1 ? 0 : -1;
}

static int empty_result(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  return mproc_task_return(t, NULL, 0);
}

MTEST(local_results) {
  mproc__task_outcome o;
  int n = 12;
  CHECK_OK(mproc__task_run_local(square, &n, sizeof n, -1, -1, &o));
  CHECK_INT_EQ(o.result_len, sizeof(int));
  CHECK_INT_EQ(*(int *)o.result, 144);
  mproc__free(o.result);

  CHECK_OK(mproc__task_run_local(big, NULL, 0, -1, -1, &o));
  CHECK_INT_EQ(o.result_len, 100000);
  CHECK_INT_EQ(((char *)o.result)[99999], (char)(99999 * 7));
  mproc__free(o.result);

  CHECK_OK(mproc__task_run_local(nothing, NULL, 0, 5, 9, &o));
  CHECK(o.result == NULL);
  CHECK_INT_EQ(o.result_len, 0);
}

MTEST(local_failures) {
  mproc__task_outcome o;
  CHECK_ERR(mproc__task_run_local(square, "ab", 2, -1, -1, &o), MPROC_EINVAL);
  CHECK_STR_EQ(o.msg, "want an int, got 2 bytes");
  CHECK(o.result == NULL);
  CHECK_ERR(mproc__task_run_local(positive, NULL, 0, -1, -1, &o), MPROC_ETASKFAILED);
  CHECK_STR_EQ(o.msg, "");
  CHECK_ERR(mproc__task_run_local(bare_negative, NULL, 0, -1, -1, &o), MPROC_ERANGE);
  CHECK_STR_EQ(o.msg, "");
}

MTEST(fixed_record_results) {
  mproc__task_priv priv = {0};
  mproc_task t;
  int slot = 0;
  mproc__task_begin(&t, &priv, &slot, sizeof slot, 0, 0);
  int n = 9;
  CHECK_OK(square(&n, sizeof n, &t));
  CHECK_INT_EQ(slot, 81);
  CHECK(t.out_len == sizeof slot);
  long long too_big = 1;
  CHECK_ERR(mproc_task_return(&t, &too_big, sizeof too_big), MPROC_EMSGSIZE);
  CHECK(mproc_task_return_buffer(&t, 64) == NULL);
  CHECK(mproc_task_return_buffer(&t, 2) == &slot);
  CHECK_ERR(mproc__task_return_slow(NULL, &n, 1), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_task_fail(NULL, 5, NULL), MPROC_ETASKFAILED);
  CHECK(mproc_task_return_buffer(NULL, 1) == NULL);
}

/* Bad input to the task calls a task may make: NULL contexts answer without touching anything. */
MTEST(task_calls_take_null) {
  CHECK_INT_EQ(mproc_task_seed(NULL), 0); /* crashed (NULL read) before */
  CHECK(mproc_task_return_buffer(NULL, 8) == NULL);
  CHECK_ERR(mproc_task_fail(NULL, MPROC_EIO, "x"), MPROC_EIO);
  /* an empty result with no bytes is a result */
  mproc__task_outcome o;
  CHECK_OK(mproc__task_run_local(empty_result, NULL, 0, -1, -1, &o));
  CHECK(o.result_len == 0);
  mproc__free(o.result);
}
