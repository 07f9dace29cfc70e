// Nothing to declare: the module's availability is the information (see module.modulemap).
static inline int mserve_avx512_vnni(void) { return 1; }
