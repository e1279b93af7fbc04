/* error.c: mproc_strerror() and mproc_err_name(), generated from the one table in mproc/error.h. */
#include <string.h>
#include "internal.h"

const char *mproc_err_name(int code) {
  if (code == 0) return "OK";
  switch (code) {
#define NAME_ERRNO(e) \
  case -(e):          \
    return #e;
    MPROC_ERRNO_CODES(NAME_ERRNO)
#undef NAME_ERRNO
#define NAME_OWN(name, off, msg) \
  case MPROC_ERR_BASE - (off):   \
    return #name;
    MPROC_OWN_CODES(NAME_OWN)
#undef NAME_OWN
    default:
      return "UNKNOWN";
  }
}

const char *mproc_strerror(int code) {
  if (code == 0) return "success";
  switch (code) {
#define MSG_OWN(name, off, msg) \
  case MPROC_ERR_BASE - (off):  \
    return msg;
    MPROC_OWN_CODES(MSG_OWN)
#undef MSG_OWN
    default:
      break;
  }
  if (code < 0 && code > -4096) {
    /* glibc's strerror() returns static text for every known errno; "Unknown error" for the rest, which we
     * replace with our own static text to keep the result thread-safe. */
    switch (code) {
#define KNOWN(e) case -(e):
      MPROC_ERRNO_CODES(KNOWN)
#undef KNOWN
      return strerror(-code);
      default:
        break;
    }
  }
  return "unknown error";
}
