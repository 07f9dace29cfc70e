#ifndef MSERVE_CSYSTEMSHIM_H
#define MSERVE_CSYSTEMSHIM_H
#include <sys/socket.h>

/* accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: Swift's Glibc module does not declare accept4,
   which needs _GNU_SOURCE, and defining that in a header Swift imports conflicts with the Glibc
   module.  One accept4 saves the two fcntl calls per connection that accept would need. */
int mserve_accept_nonblocking(int fd, struct sockaddr *addr, socklen_t *len);
#endif
