#ifndef MSERVE_CEVENT_SHIM_H
#define MSERVE_CEVENT_SHIM_H
/* Debian's event-config.h defines _GNU_SOURCE; including the system headers first keeps
   debug, ASan and TSan builds free of an fd_set module conflict (see shared/DESIGN.md). */
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <stdio.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <event2/buffer.h>
#endif
