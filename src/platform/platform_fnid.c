/* platform_fnid.c: function identity from the dynamic linker and ELF symbol tables; byte locks for the cache.
 *
 * Exported functions are found by dladdr1(RTLD_DL_SYMENT), which gives st_size.  Static functions are not
 * in the dynamic symbol table, so the object's file (dli_fname, or /proc/self/exe for the main program) is
 * read and its .symtab searched for the FUNC symbol covering the address.  Nothing is cached; callers
 * (the result cache) remember the answer per function pointer.
 *
 * Code addresses as (object, offset) for exec-started workers: dladdr1(RTLD_DL_LINKMAP) gives the object and
 * its load bias; the main program is the first object dl_iterate_phdr reports (its link_map name is empty, as
 * is the vDSO's on some systems, so the bias is compared too).  The other side finds the object by its path
 * among its own loaded objects, else through dlopen. */
#include "platform/platform.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdbool.h>
#include <string.h>
#include <sys/auxv.h>
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
static void symtab_search(const char *path, uintptr_t off, mproc__plat_fnsym *out, uintptr_t base) {
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
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) || eh->e_shoff == 0 ||
      eh->e_shoff + (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) > len)
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

int mproc__plat_fnsym_lookup(const void *addr, mproc__plat_fnsym *out) {
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
  /* dladdr may know no file name for an object (then there is no .symtab to read) */
  if (main_prog || fname) symtab_search(main_prog ? "/proc/self/exe" : fname, out->offset, out, base);
  if (out->start != addr) { /* addr is inside a function, not its start: do not trust the extent */
    out->size = 0;
    out->start = addr;
  }
  return 0;
}

/* dl_iterate_phdr callbacks: the first object (the main program), and one by path. */
static int first_object_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  *(uintptr_t *)arg = (uintptr_t)info->dlpi_addr;
  return 1;
}

struct find_object {
  const char *path;
  uintptr_t base;
  int found;
};

static int find_object_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct find_object *f = arg;
  if (!info->dlpi_name || strcmp(info->dlpi_name, f->path) != 0) return 0;
  f->base = (uintptr_t)info->dlpi_addr;
  f->found = 1;
  return 1;
}

int mproc__plat_code_locate(const void *addr, char *object, size_t cap, uintptr_t *offset) {
  Dl_info info;
  struct link_map *lm = NULL;
  if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm) return -ENOENT;
  uintptr_t main_base = 0;
  dl_iterate_phdr(first_object_cb, &main_base);
  *offset = (uintptr_t)addr - (uintptr_t)lm->l_addr;
  int nameless = !lm->l_name || !lm->l_name[0];
  int main_prog = nameless && (uintptr_t)lm->l_addr == main_base;
  if (nameless && !main_prog) return -ENOENT; /* nothing another process could load by name */
  const char *name = main_prog ? "" : lm->l_name;
  size_t n = strlen(name);
  if (n >= cap) return -ENAMETOOLONG;
  memcpy(object, name, n + 1);
  return 0;
}

int mproc__plat_code_base(const char *object, uintptr_t *base, char *err, size_t errcap) {
  if (!object[0]) {
    uintptr_t b = 0;
    dl_iterate_phdr(first_object_cb, &b);
    *base = b;
    return 0;
  }
  struct find_object f = {object, 0, 0};
  dl_iterate_phdr(find_object_cb, &f);
  if (f.found) {
    *base = f.base;
    return 0;
  }
  /* not under that name among ours: loaded under another (RTLD_NOLOAD finds it by file), or not yet */
  void *h = dlopen(object, RTLD_NOLOAD | RTLD_LAZY);
  if (!h) h = dlopen(object, RTLD_LAZY);
  struct link_map *lm = NULL;
  if (!h || dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
    const char *why = dlerror();
    copy_str(err, errcap, why ? why : "dlopen failed");
    return -ENOENT;
  }
  *base = (uintptr_t)lm->l_addr; /* h is kept open: the code must stay where it is */
  return 0;
}

/* The GNU build-id note among an object's PT_NOTE segments: its length (0: none), up to cap bytes in id. */
static size_t note_build_id(const struct dl_phdr_info *info, unsigned char *id, size_t cap) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) n;
      memcpy(&n, p, sizeof n);
      const unsigned char *name = p + sizeof n, *desc = name + ((n.n_namesz + 3) & ~3u);
      if (desc + n.n_descsz > end) break;
      if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        memcpy(id, desc, n.n_descsz < cap ? n.n_descsz : cap);
        return n.n_descsz;
      }
      p = desc + ((n.n_descsz + 3) & ~3u);
    }
  }
  return 0;
}

struct object_ids {
  mproc__plat_objid *out;
  size_t cap, count;
  uintptr_t vdso; /* the kernel's vDSO image (its ELF header), 0 when none */
  bool seen_first;
};

static int object_ids_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct object_ids *o = arg;
  bool program = !o->seen_first; /* the main program is the first object the dynamic linker reports */
  o->seen_first = true;
  uintptr_t phdr = (uintptr_t)info->dlpi_phdr;
  if (o->vdso && phdr >= o->vdso && phdr < o->vdso + 4096) return 0; /* no file: nothing to compare */
  if (!program && (!info->dlpi_name || !info->dlpi_name[0])) return 0;
  mproc__plat_objid id = {0};
  size_t len = note_build_id(info, id.id, sizeof id.id);
  if (!program && len == 0) return 0;
  id.id_len = (uint32_t)(len < sizeof id.id ? len : sizeof id.id);
  id.program = program;
  if (program) {
    ssize_t n = readlink("/proc/self/exe", id.path, sizeof id.path - 1);
    id.path[n > 0 ? n : 0] = '\0';
  } else {
    copy_str(id.path, sizeof id.path, info->dlpi_name);
  }
  if (o->count < o->cap) o->out[o->count] = id;
  o->count++;
  return 0;
}

size_t mproc__plat_object_ids(mproc__plat_objid *out, size_t cap) {
  struct object_ids o = {out, cap, 0, (uintptr_t)getauxval(AT_SYSINFO_EHDR), false};
  dl_iterate_phdr(object_ids_cb, &o);
  return o.count;
}

int mproc__plat_file_lock_byte(int fd, uint64_t off, int wait) {
  struct flock fl = {
      .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)(off & INT64_MAX / 2), .l_len = 1};
  for (;;) {
    if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) return 0;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EACCES ? -EWOULDBLOCK : -errno;
  }
}
