/* items_check.c: runs examples/tree_digest and examples/lines_stream on inputs it generates and compares
 * their output with the same computation done here in a plain loop (ctest example_tree_digest,
 * example_lines_stream).
 *
 *   items_check tree PATH_OF_tree_digest
 *   items_check lines PATH_OF_lines_stream
 *
 * Exit 0 when the outputs agree; otherwise the difference is printed and the exit status is 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
  return g_rng;
}

static int fail(const char *what) {
  fprintf(stderr, "items_check: %s\n", what);
  return 1;
}

/* Runs argv with stdout and stderr captured (each up to cap bytes), as user uid when uid >= 0; returns its
 * exit status, or -1. */
static int run(char *const argv[], uid_t uid, char *out, size_t cap, char *err, size_t ecap) {
  char otmp[] = "/tmp/items-check-out-XXXXXX", etmp[] = "/tmp/items-check-err-XXXXXX";
  int ofd = mkstemp(otmp), efd = mkstemp(etmp);
  if (ofd < 0 || efd < 0) return -1;
  unlink(otmp);
  unlink(etmp);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(ofd, 1);
    dup2(efd, 2);
    if (uid != (uid_t)-1 && (setgid(uid) != 0 || setuid(uid) != 0)) _exit(126);
    execv(argv[0], argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  ssize_t n = pread(ofd, out, cap - 1, 0), m = pread(efd, err, ecap - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  err[m > 0 ? m : 0] = '\0';
  close(ofd);
  close(efd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(path);
}

/* ---- tree_digest ---- */

enum { FILES = 600 };
static char *g_paths[FILES];
static size_t g_npaths;

static int by_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the expected "digest  path" line of every file, in path order, skipping index `skip` */
static char *expected_digests(size_t skip) {
  size_t cap = g_npaths * 80 + 4096, at = 0;
  for (size_t i = 0; i < g_npaths; i++) cap += strlen(g_paths[i]);
  char *out = malloc(cap);
  for (size_t i = 0; i < g_npaths; i++) {
    if (i == skip) continue;
    int fd = open(g_paths[i], O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) return NULL;
    char *buf = malloc((size_t)sb.st_size + 1);
    if (read(fd, buf, (size_t)sb.st_size) != sb.st_size) return NULL;
    close(fd);
    XXH128_hash_t h = XXH3_128bits(buf, (size_t)sb.st_size);
    free(buf);
    at += (size_t)snprintf(out + at, cap - at, "%016llx%016llx  %s\n", (unsigned long long)h.high64,
                           (unsigned long long)h.low64, g_paths[i]);
  }
  return out;
}

static int check_tree(char *bin) {
  char root[] = "/tmp/items-check-tree-XXXXXX";
  if (!mkdtemp(root) || chmod(root, 0755) != 0) return fail("mkdtemp");
  /* files of 0 bytes to 200 KiB in nested directories, some names with spaces, one symbolic link and one
   * fifo (neither is a regular file: not digested) */
  char path[512];
  for (size_t i = 0; i < FILES; i++) {
    snprintf(path, sizeof path, "%s/d%zu", root, i % 7);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/d%zu/s%zu", root, i % 7, i % 3);
    mkdir(path, 0755);
    if (i % 5 == 0)
      snprintf(path, sizeof path, "%s/d%zu/file %zu.txt", root, i % 7, i);
    else if (i % 3 == 0)
      snprintf(path, sizeof path, "%s/f%zu", root, i);
    else
      snprintf(path, sizeof path, "%s/d%zu/s%zu/f%zu", root, i % 7, i % 3, i);
    size_t size = i == 1 ? 0 : i == 2 ? 200 << 10 : rnd() % (i % 10 == 0 ? 70000 : 5000);
    char *buf = malloc(size + 1);
    for (size_t k = 0; k < size; k++) buf[k] = (char)rnd();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, buf, size) != (ssize_t)size) return fail("write");
    close(fd);
    free(buf);
    g_paths[g_npaths++] = strdup(path);
  }
  snprintf(path, sizeof path, "%s/link", root);
  if (symlink(g_paths[0], path) != 0) return fail("symlink");
  snprintf(path, sizeof path, "%s/fifo", root);
  if (mkfifo(path, 0644) != 0) return fail("mkfifo");
  qsort(g_paths, g_npaths, sizeof *g_paths, by_path);

  static char out[1 << 20], err[1 << 16];
  char *argv[] = {bin, root, NULL};
  int st = run(argv, (uid_t)-1, out, sizeof out, err, sizeof err);
  char *want = expected_digests((size_t)-1);
  int bad = 0;
  if (st != 0 || !want || strcmp(out, want) != 0) {
    fprintf(stderr, "items_check: tree_digest %s: status %d, output differs (stderr: %s)\n", root, st, err);
    bad = 1;
  }
  free(want);

  /* a file that cannot be read: named on stderr with its message, the others digested, status 1.  Root
   * reads any file, so as root the example runs as the user nobody. */
  size_t victim = g_npaths / 2;
  uid_t as = (uid_t)-1;
  if (geteuid() == 0) {
    struct passwd *pw = getpwnam("nobody");
    as = pw ? pw->pw_uid : (uid_t)-1;
  }
  if (!bad && (geteuid() != 0 || as != (uid_t)-1) && chmod(g_paths[victim], 0) == 0) {
    st = run(argv, as, out, sizeof out, err, sizeof err);
    want = expected_digests(victim);
    char line[600];
    snprintf(line, sizeof line, "tree_digest: %s: Permission denied\n", g_paths[victim]);
    if (st == 126 || st == 127) { /* nobody may not reach the build tree */
      printf("items_check: cannot run the example as nobody; the unreadable file is not checked\n");
    } else if (st != 1 || !want || strcmp(out, want) != 0 || !strstr(err, line)) {
      fprintf(stderr, "items_check: unreadable file: status %d (want 1), stderr:\n%s\nwant the line: %s", st,
              err, line);
      bad = 1;
    } else {
      printf("items_check: an unreadable file is named with its message%s\n",
             as != (uid_t)-1 ? " (as nobody)" : "");
    }
    free(want);
  } else if (!bad) {
    printf("items_check: the example cannot run as another user here; the unreadable file is not checked\n");
  }
  nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  for (size_t i = 0; i < g_npaths; i++) free(g_paths[i]);
  if (!bad) printf("items_check: tree_digest agrees on %zu files\n", g_npaths);
  return bad;
}

/* ---- lines_stream ---- */

static int check_lines(char *bin) {
  char path[] = "/tmp/items-check-lines-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return fail("mkstemp");
  FILE *f = fdopen(fd, "w");
  /* lines of 0 to 2000 bytes, words of 1 to 12 letters between runs of spaces and tabs, two longest lines
   * of equal length (the first one is the answer), and a last line without its line end */
  enum { LINES = 50000 };
  uint64_t words = 0, longest = 0;
  int64_t longest_at = -1;
  char line[4096];
  for (int64_t i = 0; i < LINES; i++) {
    size_t len = 0, nw = 0;
    size_t target = i == 777 || i == 40001 ? 3000 : (size_t)(rnd() % (i % 100 == 0 ? 2000 : 120));
    int in_word = 0;
    while (len < target) {
      uint64_t r = rnd();
      char c = r % 7 == 0 ? (r % 2 ? ' ' : '\t') : (char)('a' + r % 26);
      if (c != ' ' && c != '\t' && !in_word) nw++;
      in_word = c != ' ' && c != '\t';
      line[len++] = c;
    }
    if (len > longest || longest_at < 0) longest = len, longest_at = i;
    words += nw;
    fwrite(line, 1, len, f);
    if (i != LINES - 1) fputc('\n', f);
  }
  fclose(f);
  char want[256];
  snprintf(want, sizeof want, "lines %d\nwords %llu\nlongest line %lld (%llu bytes)\n", LINES,
           (unsigned long long)words, (long long)longest_at, (unsigned long long)longest);
  static char out[4096], err[4096];
  int bad = 0;
  const char *windows[] = {"1", "64", NULL};
  for (int w = 0; w < 3; w++) {
    char *argv[] = {bin, path, (char *)windows[w], NULL};
    int st = run(argv, (uid_t)-1, out, sizeof out, err, sizeof err);
    if (st != 0 || strcmp(out, want) != 0) {
      fprintf(stderr, "items_check: lines_stream window %s: status %d\ngot:\n%swant:\n%s(stderr: %s)\n",
              windows[w] ? windows[w] : "default", st, out, want, err);
      bad = 1;
    }
  }
  char *missing[] = {bin, "/nonexistent/items-check", NULL};
  if (run(missing, (uid_t)-1, out, sizeof out, err, sizeof err) != 2)
    bad = fail("a missing file: want status 2");
  unlink(path);
  if (!bad) printf("items_check: lines_stream agrees: %s", want);
  return bad;
}

int main(int argc, char **argv) {
  if (argc != 3) return fail("usage: items_check tree|lines PROGRAM");
  if (strcmp(argv[1], "tree") == 0) return check_tree(argv[2]);
  if (strcmp(argv[1], "lines") == 0) return check_lines(argv[2]);
  return fail("usage: items_check tree|lines PROGRAM");
}
