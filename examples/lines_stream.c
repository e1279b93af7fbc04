/* lines_stream.c: the words of every line of a text file of any size, counted in worker processes, in
 * constant memory.
 *
 *   def lines(f):
 *       yield from f                       # one line at a time: the file is never read whole
 *   with multiprocessing.Pool() as pool:
 *       for i, words in enumerate(pool.imap(count_words, lines(open(path)), chunksize=...)):
 *           ...
 *
 * Usage: lines_stream FILE [WINDOW]: prints the lines, the words (runs of characters other than spaces,
 * tabs and line ends) and the longest line (its index from 0, the first one among equals, and its length
 * without the line end).  WINDOW (default 4096) is how many lines may be read and not yet counted: what
 * bounds the memory, whatever the size of the file. */
#include <errno.h>
#include <mproc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The input, in the caller: the next line, read when the stream has room for it. */
struct reader {
  FILE *f;
  char *line;
  size_t cap;
};

static int next_line(void *user, int64_t index, mproc_item *item) {
  (void)index;
  struct reader *r = user;
  errno = 0;
  ssize_t len = getline(&r->line, &r->cap, r->f);
  if (len < 0) return ferror(r->f) ? (errno ? -errno : MPROC_EIO) : 0; /* 0: the end of the file */
  if (len > 0 && r->line[len - 1] == '\n') len--;
  if (len > 0 && r->line[len - 1] == '\r') len--;
  *item = (mproc_item){r->line, (size_t)len}; /* mproc copies it before the next call */
  return 1;
}

/* The task, in a worker: a line in, its words and its length out. */
struct counts {
  uint64_t words, bytes;
};

static int count_words(const void *arg, size_t len, mproc_task *t) {
  const char *s = arg;
  struct counts c = {0, len};
  int in_word = 0;
  for (size_t i = 0; i < len; i++) {
    int space = s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == '\v' || s[i] == '\f';
    if (!space && !in_word) c.words++;
    in_word = !space;
  }
  return mproc_task_return(t, &c, sizeof c);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lines_stream FILE [WINDOW]\n");
    return 2;
  }
  struct reader rd = {fopen(argv[1], "r"), NULL, 0};
  if (!rd.f) {
    fprintf(stderr, "lines_stream: %s: %s\n", argv[1], strerror(errno));
    return 2;
  }
  size_t window = argc > 2 ? strtoul(argv[2], NULL, 10) : 4096;

  mproc_pool *pool;
  int r = mproc_pool_create(&pool, NULL); /* workers: MPROC_WORKERS, else the usable CPUs */
  if (r != 0) {
    fprintf(stderr, "pool: %s\n", mproc_strerror(r));
    return 2;
  }
  /* results as they complete: the sums do not care about order, the longest line takes the lowest index */
  mproc_items in = mproc_items_lazy(next_line, &rd);
  mproc_stream *s;
  r = mproc_pool_imap_unordered_items(pool, count_words, &in, &(mproc_stream_opts){.max_in_flight = window},
                                      &s);
  if (r != 0) {
    fprintf(stderr, "stream: %s\n", mproc_strerror(r));
    return 2;
  }
  uint64_t lines = 0, words = 0, longest = 0;
  int64_t longest_index = -1, index;
  mproc_item res;
  /* 0 for each line counted; a line that failed or the input's read error ends the loop with its code */
  while ((r = mproc_stream_next_item(s, MPROC_FOREVER, &index, &res, NULL)) == 0) {
    struct counts c;
    memcpy(&c, res.data, sizeof c);
    lines++;
    words += c.words;
    if (longest_index < 0 || c.bytes > longest || (c.bytes == longest && index < longest_index)) {
      longest = c.bytes;
      longest_index = index;
    }
  }
  mproc_stream_destroy(s);
  mproc_pool_destroy(pool);
  free(rd.line);
  fclose(rd.f);
  if (r != MPROC_EEOF) {
    fprintf(stderr, "lines_stream: %s: %s\n", argv[1], mproc_strerror(r));
    return 1;
  }
  printf("lines %llu\nwords %llu\n", (unsigned long long)lines, (unsigned long long)words);
  if (longest_index >= 0)
    printf("longest line %lld (%llu bytes)\n", (long long)longest_index, (unsigned long long)longest);
  return 0;
}
