/* mproc/shm.h: shared memory segments, shared values and arrays (Python's SharedMemory, Value, Array),
 * atomic helpers.  Included by <mproc.h>. */
#ifndef MPROC_SHM_H
#define MPROC_SHM_H

#include <mproc/common.h>
#include <mproc/sync.h>

MPROC_EXTERN_C_BEGIN

/* ---- segments ----
 * A segment is shared memory mapped in this process.  By default it is an anonymous memory file (memfd):
 * nothing appears in /dev/shm, other users cannot open it, and the kernel frees it with its last mapping and
 * descriptor, even after a crash.  Processes forked after mproc_shm_create() see it at the same address;
 * an unrelated process of the same user gets it with mproc_shm_send()/mproc_shm_recv() over a Unix socket.
 * A named segment (opts.name, Python's SharedMemory(name=...)) is a POSIX shared memory object any process
 * of the user can open by name; its creator's destroy unlinks it, and it is the one thing mproc makes that
 * can outlive a crash (until unlinked or the machine restarts). */
typedef struct mproc_shm mproc_shm;

typedef struct mproc_shm_opts {
  const char *name; /* NULL: anonymous; else a name of at most 200 bytes with no '/', not "." or ".."
                     (O_EXCL, mode 0600) */
} mproc_shm_opts;

/* Creates a segment of size bytes (> 0), zero-filled.  0, -EINVAL (size 0, bad name), -EEXIST (the name is
 * taken), -ENOMEM, or the system's error; *out untouched on error. */
MPROC_API int mproc_shm_create(mproc_shm **out, size_t size, const mproc_shm_opts *opts);
/* Opens a named segment made by another process (its size is the object's).  0, -ENOENT, -EINVAL. */
MPROC_API int mproc_shm_open(mproc_shm **out, const char *name);
/* Sends the segment's descriptor over a connected Unix socket, or receives one and maps it.  0 or negative
 * errno (-ECONNRESET when the peer closed; -EINVAL for NULL or a negative descriptor; -EBADF, -ENOTSOCK for
 * descriptors that are not an open socket). */
MPROC_API int mproc_shm_send(mproc_shm *seg, int unix_socket);
MPROC_API int mproc_shm_recv(mproc_shm **out, int unix_socket);
MPROC_API void *mproc_shm_addr(const mproc_shm *seg);       /* NULL for NULL */
MPROC_API size_t mproc_shm_size(const mproc_shm *seg);      /* 0 for NULL */
MPROC_API const char *mproc_shm_name(const mproc_shm *seg); /* NULL when anonymous */
/* Unmaps the segment and releases the handle; the creator of a named segment also unlinks the name. */
MPROC_API void mproc_shm_destroy(mproc_shm *seg);

/* ---- shared values and arrays (Python's Value and Array) ----
 * n elements of elem_size bytes each (a C scalar type or a fixed-size record), zero-filled, in shared
 * memory that children forked afterwards share; with_lock makes a Lock next to it (Python's
 * lock=True), returned by mproc_array_lock().  A value is an array of one. */
typedef struct mproc_array mproc_array;

MPROC_API int mproc_array_create(mproc_array **out, size_t elem_size, size_t n, int with_lock);
MPROC_API void *mproc_array_data(const mproc_array *a); /* NULL for NULL; 64-byte aligned */
MPROC_API size_t mproc_array_length(const mproc_array *a);
MPROC_API mproc_lock *mproc_array_lock(const mproc_array *a); /* NULL without a lock */
MPROC_API void mproc_array_destroy(mproc_array *a);

/* ---- shared allocations: memory every worker sees, whenever it was made (joblib's memmapped arrays) ----
 * mproc_shared_alloc() returns zero-filled memory from the process's shared arena: one memory file mapped at
 * the same address in this process and in every process forked while the arena exists, which includes the
 * workers of every process-backend pool (also pools created before the allocation, and replacement workers)
 * and the fork server.  A pointer into it means the same bytes in the caller and in every worker, so:
 *   - a task may receive such pointers inside its argument bytes and read or write the memory in place;
 *   - mproc_pool_map(), mproc_parallel_run() and the streams read `in` in place, with no copy through the
 *     workers' rings, when it lies in the arena, and a map or parallel run writes `out` in place when it
 *     does (each worker stores its results straight into the caller's array).
 * Blocks are page-aligned (2 MiB-aligned from 2 MiB: meant for arrays, not small objects).  The arena
 * reserves address space only: MPROC_SHARED_BYTES sets its size (a byte count with an optional k, m, g or t
 * suffix; default the machine's memory, at least 1 GiB), pages are allocated when first touched, and a freed
 * block's pages are returned to the system at once, in every process.  Only the process that made the arena
 * allocates from it (in a worker, mproc_shared_alloc() makes a separate arena of its own).  The arena is
 * unmapped when its last block is freed and no pool or fork server uses it.  Thread-safe.
 * On the MPI backend (docs/cluster.md), every rank has the arena at the same address, and each call on an
 * MPI pool (a submission, a map, a stream) first sends every agent rank what changed in the arena's blocks
 * since it last did, once per rank: the call's tasks, on any rank, read in place what the arena held when
 * the call began.  There it is read-only: a task's writes stay on its rank (a map's `out` in the arena is
 * filled from the results, through the messages), and maps send an input in the arena in batches, as any
 * input. */

/* Stores in *out a zero-filled shared block of size bytes.  0, -EINVAL (size 0, out NULL), -ENOMEM (the
 * arena is full or the system is out of memory), or the system's error when the arena cannot be made (as
 * -ENOSYS without memory files); *out untouched on error. */
MPROC_API int mproc_shared_alloc(void **out, size_t size);
/* Frees a block from mproc_shared_alloc(): 0 (also for NULL), or -EINVAL when p is not such a block (no
 * effect).  Workers must be done with it: its pages read as zeros afterwards everywhere. */
MPROC_API int mproc_shared_free(void *p);
/* 1 when [p, p+len) lies in this process's shared arena (what workers see in place), else 0. */
MPROC_API int mproc_shared_contains(const void *p, size_t len);

/* ---- atomics on shared words (8-byte aligned), for counters without a lock ---- */
static inline int64_t mproc_atomic_add_i64(int64_t *p, int64_t v) {
  return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}
static inline int64_t mproc_atomic_load_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void mproc_atomic_store_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/* Stores desired if *p equals *expected (returns 1); else loads *p into *expected (returns 0). */
static inline int mproc_atomic_cas_i64(int64_t *p, int64_t *expected, int64_t desired) {
  return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

MPROC_EXTERN_C_END

#endif
