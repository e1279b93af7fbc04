/* mproc.h: the whole public API of mproc, process-based parallelism for C.
 *
 * What is declared in the headers this file includes is the API; nothing else is.  Reference pages for each
 * area are in docs/, and docs/from-python.md maps Python's multiprocessing, concurrent.futures and joblib
 * calls to mproc's. */
#ifndef MPROC_H
#define MPROC_H

#include <mproc/common.h>
#include <mproc/error.h>
#include <mproc/process.h>
#include <mproc/task.h>
#include <mproc/pool.h>
#include <mproc/parallel.h>
#include <mproc/items.h>
#include <mproc/queue.h>
#include <mproc/wait.h>
#include <mproc/cache.h>
#include <mproc/sync.h>
#include <mproc/shm.h>

#endif
