#ifndef MSERVE_CSYSTEMSHIM_H
#define MSERVE_CSYSTEMSHIM_H
#include <sys/socket.h>

/* accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: Swift's Glibc module does not declare accept4,
   which needs _GNU_SOURCE, and defining that in a header Swift imports conflicts with the Glibc
   module.  One accept4 saves the two fcntl calls per connection that accept would need. */
int mserve_accept_nonblocking(int fd, struct sockaddr *addr, socklen_t *len);

/* Atomic operations on 64-bit words in memory shared by processes (Swift's Atomic lives inside a
   Swift value, not at an address in a mapping). */
#include <stdint.h>
static inline uint64_t mserve_atomic_load(uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint64_t mserve_atomic_add(uint64_t *p, int64_t d) { return __atomic_add_fetch(p, (uint64_t)d, __ATOMIC_ACQ_REL); }
static inline int mserve_atomic_cas(uint64_t *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* malloc_trim(0): gives free heap pages back to the system (Swift's Glibc module lacks malloc.h). */
int mserve_malloc_trim(void);

/* prctl(PR_SET_PDEATHSIG): prctl is variadic, which Swift cannot call. */
int mserve_set_parent_death_signal(int signal);
/* Asks for the cache line at p ahead of its use (prefetcht0; never faults): _mm_prefetch is a
   macro, which Swift does not import.  For the model kernels (GGUFInference). */
static inline void mserve_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
#endif
