/* gen_corpus.c: writes the seed inputs of the fuzz targets made by mproc's real encoders (a Pipe's sender,
 * a queue's producer, the cache's writer) into DIR/TARGET/real-*: `build/fuzz/gen_corpus fuzz/corpus`.
 * The seeds are committed; run it again when a format changes (each target's comment says its input). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/entry.h"
#include "engine/engine.h"
#include "internal.h"
#include "ipc/waitable.h"

static const char *root;

static void put_file(const char *target, const char *name, const void *a, size_t na, const void *b,
                     size_t nb) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, target);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* fuzz_pipe: a mode byte, then the stream a sender wrote, in pieces of up to 255 bytes. */
static void pipe_seed(const char *name, unsigned mode, const size_t *lens, int n, int cut) {
  mproc_pipe *a, *b;
  if (mproc_pipe_create(&a, &b, 1) != 0) exit(1);
  unsigned char msg[700];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)(i * 7);
  for (int i = 0; i < n; i++)
    if (mproc_pipe_send(b, msg, lens[i], 1) != 0) exit(1);
  mproc_pipe_destroy(b);
  int fd;
  mproc__pipe_wait_fd(a, &fd);
  unsigned char stream[4096], out[5000];
  ssize_t len = read(fd, stream, sizeof stream);
  if (len < 0) exit(1);
  len -= cut; /* the sender died this many bytes before its end */
  size_t o = 0;
  out[o++] = (unsigned char)mode;
  for (ssize_t at = 0; at < len;) {
    size_t k = (size_t)(len - at) < 200 ? (size_t)(len - at) : 200;
    out[o++] = (unsigned char)k;
    memcpy(out + o, stream + at, k);
    o += k;
    at += (ssize_t)k;
  }
  put_file("fuzz_pipe", name, out, o, NULL, 0);
  mproc_pipe_destroy(a);
}

/* fuzz_queue: the largest message byte, a mode byte, head, then the ring's published bytes. */
static void queue_seed(const char *name, uint64_t head, const size_t *lens, int n) {
  static alignas(64) unsigned char mem[4096];
  mproc_queue *q;
  mproc_queue_opts o = {.buffer_bytes = 256, .max_message_bytes = 1 + 64 * 4};
  if (mproc_queue_init(&q, mem, sizeof mem, &o) != 0) exit(1);
  unsigned char msg[256] = "a message", ring[256];
  size_t used = 0;
  for (int i = 0; i < n; i++) {
    if (mproc_queue_put(q, msg, lens[i], 0) != 0) exit(1);
    used += 24 + ((lens[i] + 7) & ~(size_t)7);
  }
  memcpy(ring, mem + mproc_queue_size(256) - 256, used); /* the ring is the queue's last 256 bytes */
  unsigned char pre[10] = {4, (unsigned char)(n * 37)};
  memcpy(pre + 2, &head, 8);
  put_file("fuzz_queue", name, pre, sizeof pre, ring, used);
  mproc_queue_destroy(q);
}

static unsigned char value[5000];
static size_t value_len;
static int value_fn(const void *arg, size_t len, mproc_task *t) {
  return mproc_task_return(t, value, value_len);
}

/* fuzz_cache_entry: an entry file as the cache wrote it; fuzz_cache_valid: its flags and stored bytes. */
static void cache_seed(const char *name, int level, size_t len) {
  value_len = len;
  for (size_t i = 0; i < len; i++) value[i] = (unsigned char)("mproc"[i % 5] + i / 97);
  char dir[] = "/tmp/mproc-gen-corpus-XXXXXX";
  mproc_cache *c;
  mproc_cache_result *r;
  if (!mkdtemp(dir) || mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = level}) != 0 ||
      mproc_cache_call(c, value_fn, "seed", 4, &r) != 0)
    exit(1);
  mproc_cache_result_release(r);
  mproc_cache_entry_info info;
  size_t count;
  if (mproc_cache_list(c, value_fn, &info, 1, &count) != 0 || count != 1) exit(1);
  char path[1024];
  snprintf(path, sizeof path, "%s/%016" PRIx64 "/%s.e", dir, info.fn_key, info.key);
  unsigned char file[6000];
  int fd = open(path, O_RDONLY);
  ssize_t n = fd < 0 ? -1 : read(fd, file, sizeof file);
  if (n < (ssize_t)sizeof(mproc__entry_header)) exit(1);
  close(fd);
  put_file("fuzz_cache_entry", name, file, (size_t)n, NULL, 0);
  mproc__entry_header h;
  memcpy(&h, file, sizeof h);
  unsigned char pre[2] = {(unsigned char)h.flags, 0};
  put_file("fuzz_cache_valid", name, pre, 2, file + sizeof h, (size_t)n - sizeof h);
  mproc_cache_clear(c);
  mproc_cache_close(c);
  char sub[256];
  snprintf(sub, sizeof sub, "%s/%016" PRIx64, dir, info.fn_key);
  DIR *d = opendir(sub);
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL) {
    snprintf(path, sizeof path, "%s/%s", sub, de->d_name);
    if (de->d_name[0] != '.') unlink(path);
  }
  if (d) closedir(d);
  rmdir(sub);
  rmdir(dir);
}

/* fuzz_wire_job: a job header and its payload, as engine.c writes them (wire.h's layout). */
static void job_seed(const char *name, wire_job j, const void *payload, size_t n) {
  j.magic = WIRE_MAGIC;
  j.payload_len = n;
  put_file("fuzz_wire_job", name, &j, sizeof j, payload, n);
}

/* fuzz_wire_segment: a flags byte, a segment's header and what follows its records read in place, as
 * worker.c writes them: records of results of any size (put_var_record), then the failures. */
static void segment_seed(const char *name, bool var_out, wire_result h, const uint64_t *lens, uint32_t n,
                         const wire_fail *fails, uint32_t nfail) {
  unsigned char body[2048] = {0};
  size_t at = 0;
  for (uint32_t k = 0; k < n; k++) {
    memcpy(body + at, &lens[k], 8);
    memset(body + at + 8, 'r', lens[k]);
    at += mproc__var_rec_size(lens[k]);
  }
  memcpy(body + at, fails, nfail * sizeof *fails);
  at += nfail * sizeof *fails;
  h.magic = WIRE_MAGIC;
  h.kind = JOB_BATCH;
  h.count = n;
  h.nfail = nfail;
  h.payload_len = at;
  unsigned char pre[1 + sizeof h] = {var_out};
  memcpy(pre + 1, &h, sizeof h);
  put_file("fuzz_wire_segment", name, pre, sizeof pre, body, at);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  root = argv[1];
  pipe_seed("real-three-messages", 0x21, (size_t[]){0, 5, 300}, 3, 0);
  pipe_seed("real-into-allocations", 0xff, (size_t[]){700, 12}, 2, 0);
  pipe_seed("real-sender-died-mid-message", 0x40, (size_t[]){40, 100}, 2, 30);
  queue_seed("real-three-messages", 0, (size_t[]){5, 0, 40}, 3);
  queue_seed("real-wrapping", 200, (size_t[]){100, 30}, 2);
  queue_seed("real-largest", 1 << 20, (size_t[]){200}, 1);
  cache_seed("real-zstd", 3, 3000);
  cache_seed("real-stored", -1, 3000);
  cache_seed("real-empty", 3, 0);
  cache_seed("real-small", 3, 7);
  job_seed("real-task", (wire_job){.kind = JOB_TASK, .id = 7, .first = -1, .in_len = 5}, "hello", 5);
  job_seed("real-batch", (wire_job){.kind = JOB_BATCH, .id = 8, .count = 4, .in_size = 8, .out_size = 8},
           "0123456789abcdef0123456789abcdef", 32);
  uint64_t var_in[3 + 1] = {3, 0, 5};
  memcpy(&var_in[3], "abcdefgh", 8);
  job_seed("real-items",
           (wire_job){.kind = JOB_BATCH, .id = 9, .count = 3, .var = MPROC__VAR_IN | MPROC__VAR_OUT}, var_in,
           sizeof var_in);
  uint64_t pairs[4] = {0x7f0000001000, 16, 0x7f0000002000, 0};
  job_seed("real-items-in-place",
           (wire_job){.kind = JOB_BATCH, .id = 10, .count = 2, .var = MPROC__VAR_IN_PLACE | MPROC__VAR_OUT},
           pairs, sizeof pairs);
  job_seed("real-stop", (wire_job){.kind = JOB_STOP}, NULL, 0);
  wire_fail fail = {.index = 11, .code = -22};
  snprintf(fail.msg, sizeof fail.msg, "bad item");
  segment_seed("real-any-size", true, (wire_result){.id = 9, .first = 10, .last = 1}, (uint64_t[]){3, 0, 17},
               3, &fail, 1);
  segment_seed("real-any-size-ok", true, (wire_result){.id = 9, .first = 0}, (uint64_t[]){8, 1}, 2, NULL, 0);
  unsigned char pre[1 + sizeof(wire_result)] = {0};
  wire_result h = {.magic = WIRE_MAGIC,
                   .kind = JOB_BATCH,
                   .id = 8,
                   .first = 10,
                   .count = 2,
                   .nfail = 1,
                   .last = 1,
                   .payload_len = 16 + sizeof fail};
  memcpy(pre + 1, &h, sizeof h);
  put_file("fuzz_wire_segment", "real-fixed-size-failure", pre, sizeof pre, &fail, sizeof fail);
  return 0;
}
