// Nothing to declare: the module's availability is the information (see module.modulemap).
static inline int mserve_avx2(void) { return 1; }
