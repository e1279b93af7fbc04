#!/bin/sh
# check-raw-calls.sh: fails when a source file of src/ outside src/platform/ calls the operating system
# directly instead of through the platform layer (src/platform/platform.h, prefix mproc__plat_).  Run by
# ctest (raw_os_calls); by hand: sh scripts/check-raw-calls.sh.
#
# Forbidden: every call that a port would have to change (Linux-only calls: prctl, syscall, futex, pidfd,
# memfd, ppoll...), that a test must be able to fail (fork, mmap, write, send... go through the table
# mproc__plat_sys), or that needs an EINTR retry loop around it (waitpid, read, recv, poll...): written
# once, in the platform layer, instead of beside each caller.
#
# Allowed, and why:
# - getpid, getppid: cannot fail, the same on every POSIX system; a wrapper would add nothing.
# - pthread_* and C11 atomics: the C library's threads, not the kernel's interface, portable as they are.
# - getenv, setenv, unsetenv, atexit, stdio (fprintf, snprintf, fflush), malloc & co: the C library.
# - WIFEXITED & co: macros reading a wait status the platform layer returned.
set -eu
cd "$(dirname "$0")/.."

# Folders not checked (none: every folder is).
SKIP_DIRS=${MPROC_RAWCALL_SKIP-""}

# Calls still made directly, as "file:call", while they wait for their platform call (none now).
PENDING=${MPROC_RAWCALL_PENDING-""}

CALLS='fork|vfork|clone|wait|waitpid|waitid|wait3|wait4|execve|execv|execvp|execl|execlp|posix_spawn|mmap|munmap|mremap|mprotect|madvise|open|openat|creat|read|pread|readv|write|pwrite|writev|close|close_range|dup|dup2|dup3|fcntl|ioctl|pipe|pipe2|socket|socketpair|bind|connect|listen|accept|send|sendto|sendmsg|recv|recvfrom|recvmsg|shutdown|poll|ppoll|select|pselect|epoll_wait|kill|tgkill|raise|signal|sigaction|sigprocmask|pthread_sigmask|pthread_kill|_exit|_Exit|prctl|syscall|futex|ftruncate|fsync|fdatasync|rename|renameat|unlink|unlinkat|mkdir|mkdirat|rmdir|stat|fstat|lstat|fstatat|access|faccessat|lseek|flock|memfd_create|shm_open|shm_unlink|pidfd_open|pidfd_send_signal|sched_getaffinity|sched_setaffinity|sysconf|getrlimit|setrlimit|nanosleep|clock_nanosleep|usleep|sleep|clock_gettime|dlopen|dlsym|dladdr|dladdr1|dl_iterate_phdr'

report=$(
  for f in $(git ls-files 'src/*.c' 'src/*.h' | grep -v '^src/platform/'); do
    skip=0
    for d in $SKIP_DIRS; do
      case "$f" in "$d"/*) skip=1 ;; esac
    done
    [ "$skip" = 1 ] && continue
    # Comments and string literals are blanked first (a comment may well say "poll()"); a name preceded by
    # '.', '>', '_' or an identifier character is a member or another function (e->ops->kill, send_tpl).
    sed -e 's,//.*$,,' -e 's,"\([^"\\]\|\\.\)*",,g' "$f" |
      awk 'BEGIN { c = 0 }
        { line = $0; out = ""
          while (length(line) > 0) {
            if (c) { i = index(line, "*/"); if (i == 0) { line = "" } else { line = substr(line, i + 2); c = 0 } }
            else { i = index(line, "/*"); if (i == 0) { out = out line; line = "" }
                   else { out = out substr(line, 1, i - 1) " "; line = substr(line, i + 2); c = 1 } }
          }
          print NR ":" out }' |
      grep -E "^[0-9]+:(.*[^A-Za-z0-9_.>])?($CALLS)[[:space:]]*\(" |
      while IFS= read -r h; do
        n=${h%%:*}
        call=$(echo "${h#*:}" | grep -oE "(^|[^A-Za-z0-9_.>])($CALLS)[[:space:]]*\(" | head -n 1 |
          sed -E 's/^[^A-Za-z_]*//; s/[[:space:]]*\($//')
        pending=0
        for p in $PENDING; do
          [ "$p" = "$f:$call" ] && pending=1
        done
        if [ "$pending" = 1 ]; then
          echo "pending: $f:$n: $call (listed in PENDING)"
        else
          echo "$f:$n: raw OS call $call(): use the platform layer (src/platform/platform.h)"
        fi
      done
  done
)
# Every entry of the failure-injection table mproc__plat_sys must be called somewhere in src/ (through the
# table): an entry nothing calls lets a test "fail" a call that never happens.  UNUSED_OK lists entries
# not called yet (none).
UNUSED_OK=${MPROC_SYSCALL_UNUSED_OK-""}
entries=$(sed -n '/^struct mproc__plat_syscalls {/,/^};/p' src/platform/platform.h |
  sed -n 's/.*(\*\([a-z_0-9]*\))(.*/\1/p')
for e in $entries; do
  if ! git grep -q -E "mproc__plat_sys\.$e\(" -- 'src/*.c'; then
    ok=0
    for u in $UNUSED_OK; do [ "$u" = "$e" ] && ok=1; done
    if [ "$ok" = 1 ]; then
      report="$report
pending: mproc__plat_sys.$e is called nowhere in src/ (listed in UNUSED_OK)"
    else
      report="$report
mproc__plat_sys.$e: raw OS call table entry called nowhere in src/: use it or remove it"
    fi
  fi
done
report=$(echo "$report" | sed '/^$/d')
[ -n "$report" ] && echo "$report"
if echo "$report" | grep -q "raw OS call"; then
  echo "check-raw-calls: raw OS calls outside src/platform/ (see above)"
  exit 1
fi
echo "check-raw-calls: clean (skipped: ${SKIP_DIRS:-nothing})"
