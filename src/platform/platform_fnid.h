/* platform_fnid.h: its declarations are in platform.h, the one header of the platform layer.  This file
 * stays only for src/cache/ and src/engine/fnref.c, which still include it (being changed elsewhere): delete
 * it with their include lines. */
#include "platform/platform.h"
