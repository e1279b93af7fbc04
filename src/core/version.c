/* version.c: the version of the library as built. */
#include "internal.h"

unsigned mproc_version(void) { return MPROC_VERSION_HEX; }
const char *mproc_version_string(void) { return MPROC_VERSION_STRING; }
