// OpenBLAS's CBLAS interface (Debian: libopenblas-dev, whose pthread build is the default
// alternative; MiniLM checks at load that it got a thread-safe build).
#include <cblas.h>

// Not in every cblas.h: declared here so that the build does not depend on which one is found.
int openblas_get_parallel(void);
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);
