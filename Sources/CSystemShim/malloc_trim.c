#include <malloc.h>
#include "CSystemShim.h"

int mserve_malloc_trim(void) { return malloc_trim(0); }
