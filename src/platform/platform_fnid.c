/* platform_fnid.c: function identity from the dynamic linker and ELF symbol tables; byte locks for the cache.
 *
 * Exported functions are found by dladdr1(RTLD_DL_SYMENT), which gives st_size.  Static functions are not
 * in the dynamic symbol table, so the object's file (dli_fname, or /proc/self/exe for the main program) is
 * read and its .symtab searched for the FUNC symbol covering the address.  Nothing is cached; callers
 * (the result cache) remember the answer per function pointer. */
#include "platform/platform_fnid.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) n = cap - 1;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Searches the .symtab of the ELF file at path for a FUNC symbol covering file-relative offset off. */
static void symtab_search(const char *path, uintptr_t off, mproc__fnsym *out, uintptr_t base) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(ElfW(Ehdr))) {
    close(fd);
    return;
  }
  size_t len = (size_t)st.st_size;
  const unsigned char *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return;
  const ElfW(Ehdr) *eh = (const void *)m;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
      eh->e_shoff == 0 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) > len)
    goto out;
  const ElfW(Shdr) *sh = (const void *)(m + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
    const ElfW(Shdr) *strs = &sh[sh[i].sh_link];
    if (sh[i].sh_offset + sh[i].sh_size > len || strs->sh_offset + strs->sh_size > len) continue;
    const ElfW(Sym) *sym = (const void *)(m + sh[i].sh_offset);
    size_t n = sh[i].sh_size / sizeof(ElfW(Sym));
    for (size_t k = 0; k < n; k++) {
      if (ELF64_ST_TYPE((unsigned)sym[k].st_info) != STT_FUNC || sym[k].st_size == 0) continue;
      /* Symbol values are virtual addresses relative to the load base for PIE/.so (and absolute for
       * ET_EXEC, where base is 0). */
      if (off >= sym[k].st_value && off < sym[k].st_value + sym[k].st_size) {
        out->size = sym[k].st_size;
        out->start = (const void *)(base + sym[k].st_value);
        if (sym[k].st_name < strs->sh_size)
          copy_str(out->name, sizeof out->name, (const char *)m + strs->sh_offset + sym[k].st_name);
        goto out;
      }
    }
  }
out:
  munmap((void *)m, len);
}

int mproc__fnsym_lookup(const void *addr, mproc__fnsym *out) {
  memset(out, 0, sizeof *out);
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  struct link_map *lm = NULL;
  if (!dladdr1(addr, &info, (void **)&sym, RTLD_DL_SYMENT)) return -ENOENT;
  if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP)) lm = NULL;
  uintptr_t base = lm ? (uintptr_t)lm->l_addr : 0;
  out->offset = (uintptr_t)addr - base;
  out->start = addr;
  const char *fname = info.dli_fname;
  int main_prog = lm && (!lm->l_name || !lm->l_name[0]);
  const char *slash = fname ? strrchr(fname, '/') : NULL;
  copy_str(out->object, sizeof out->object, main_prog ? "" : (slash ? slash + 1 : fname));
  if (sym && info.dli_saddr == addr && sym->st_size) {
    out->size = sym->st_size;
    copy_str(out->name, sizeof out->name, info.dli_sname);
    return 0;
  }
  symtab_search(main_prog ? "/proc/self/exe" : fname, out->offset, out, base);
  if (out->start != addr) { /* addr is inside a function, not its start: do not trust the extent */
    out->size = 0;
    out->start = addr;
  }
  return 0;
}

int mproc__file_lock_byte(int fd, uint64_t off, int wait) {
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)(off & INT64_MAX / 2),
                     .l_len = 1};
  for (;;) {
    if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) return 0;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EACCES ? -EWOULDBLOCK : -errno;
  }
}
