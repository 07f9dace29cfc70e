#ifndef MSERVE_CEVHTTPSHIM_H
#define MSERVE_CEVHTTPSHIM_H
#include "../../CEvent/shim.h"

/* Called instead of evhttp's HTML error page, with the request evhttp could not hand to us. */
typedef void (*mserve_error_hook_t)(struct evhttp_request *req, int code);
void mserve_set_error_hook(mserve_error_hook_t hook);
#endif
