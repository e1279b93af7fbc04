/* arena.h: the shared arena behind mproc_shared_alloc().
 *
 * One memory file per process, mapped once at a fixed address and inherited by everything forked while it
 * exists: pool templates (so every worker, also one started later), the fork server.  Memory allocated from
 * it at any time is therefore visible at the same address in every worker, with no message to send: the
 * pages are the file's.  The mapping reserves address space only (pages are allocated when touched, and a
 * freed block's pages are punched out of the file, which frees them in every process).
 *
 * The arena lives while anything holds a reference: each allocated block, each process-backend pool, the
 * fork server.  With none left it is unmapped, so a program (and each test) that frees what it made is
 * left with nothing.  Only the process that created it allocates from it. */
#ifndef MPROC_ARENA_H
#define MPROC_ARENA_H

#include <stdbool.h>
#include <stddef.h>

/* Takes a reference, creating the arena when there is none.  0 or negative errno. */
int mproc__arena_ref(void);
void mproc__arena_unref(void);
/* Whether [p, p+len) lies inside this process's arena (len 0: whether p does). */
bool mproc__arena_has(const void *p, size_t len);
/* A zero-filled block of at least size bytes (page aligned; 2 MiB aligned from 2 MiB), which holds a
 * reference; NULL with *err = -ENOMEM (arena full) or the system's error. */
void *mproc__arena_alloc(size_t size, int *err);
/* Frees a block from mproc__arena_alloc(): 0, or -EINVAL when p is not the start of one. */
int mproc__arena_free(void *p);
/* Where the next arena of this process is mapped when that address is free (else wherever the system puts
 * it); NULL: wherever.  Every rank of an MPI job asks for the same address (backend_mpi.c), so that the
 * agents' arenas sit where the master's does. */
void mproc__arena_place_at(void *addr);
/* One allocated block: offset from the arena's base and length (page-rounded). */
typedef struct mproc__arena_block {
  size_t off, len;
} mproc__arena_block;
/* The blocks allocated now in this process's own arena, in address order: a copy in *out (mproc__free it;
 * NULL when there are none), *n of them, with the arena's address and size.  0, -ENOENT when this process
 * has no arena of its own, -ENOMEM. */
int mproc__arena_blocks(mproc__arena_block **out, size_t *n, void **base, size_t *size);
/* The arena's memory file, address and size, for handing it to a process that is not forked from this one
 * (an exec'd template).  The descriptor, or -ENOENT when there is no arena. */
int mproc__arena_mapping(void **addr, size_t *size);

#endif
