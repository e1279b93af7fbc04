/* platform_fnid.h: the Linux/glibc calls behind function identity (dladdr1 + ELF symbol sizes) and the
 * result cache's per-entry file locks. */
#ifndef MPROC_PLATFORM_FNID_H
#define MPROC_PLATFORM_FNID_H

#include <stddef.h>
#include <stdint.h>

/* What the dynamic linker knows about a code address. */
typedef struct mproc__plat_fnsym {
  char object[256];  /* basename of the loaded object's file ("" for the main program's own name) */
  char name[128];    /* symbol name, "" if none */
  uintptr_t offset;  /* address minus the object's load base */
  const void *start; /* start of the symbol's code (== the address when found) */
  size_t size;       /* its ELF st_size, 0 when unknown */
} mproc__plat_fnsym;

/* Fills *out for addr: dladdr1(RTLD_DL_SYMENT) for exported symbols, else the object's .symtab read from
 * its file (static functions).  Returns 0, or -ENOENT when addr is in no loaded object. */
int mproc__plat_fnsym_lookup(const void *addr, mproc__plat_fnsym *out);

/* Code addresses between processes that run the same program but not the same image (a process started by
 * exec has every object at new addresses under ASLR): an address travels as (loaded object, offset).
 *
 * mproc__plat_code_locate names the object holding addr: "" for the main program (the first object the
 * dynamic linker lists), else its path as the dynamic linker holds it (what was opened: another process loads
 * the same file by it); *offset is addr minus the object's load bias.  Returns 0, -ENOENT when addr is in no
 * loaded object (JIT or other anonymous code), -ENAMETOOLONG when the path does not fit in cap bytes. */
int mproc__plat_code_locate(const void *addr, char *object, size_t cap, uintptr_t *offset);
/* The load bias of object (named as by mproc__plat_code_locate) in this process, loading it with dlopen when
 * it is not loaded yet (it then stays loaded).  Returns 0, or -ENOENT with the loader's message in err. */
int mproc__plat_code_base(const char *object, uintptr_t *base, char *err, size_t errcap);

/* Takes an exclusive open-file-description lock (F_OFD_SETLK[W]) on the one byte at offset off of fd:
 * per open file, so it excludes threads with their own open() as well as processes, and the kernel drops
 * it when the descriptor is closed or its process dies.  wait: block until held, else return -EWOULDBLOCK
 * when another holds it.  Returns 0 or a negative errno. */
int mproc__plat_file_lock_byte(int fd, uint64_t off, int wait);

#endif
