/*
 * evhttp answers requests it cannot parse (bad request line, headers over the limit, a body over
 * the limit, an unknown method) with evhttp_send_error(), which writes an HTML page and offers no
 * hook.  libevent calls it through its PLT, so defining it here interposes ours: the error goes to
 * mserve's hook, which answers with the JSON error body, the recordid and the log lines every other
 * error gets.  Without a hook (no server yet) we send a plain-text reply.
 */
#include "CEvHTTPShim.h"

static mserve_error_hook_t error_hook;

void mserve_set_error_hook(mserve_error_hook_t hook) { error_hook = hook; }

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason) {
    if (error_hook != NULL) {
        error_hook(req, error);
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL) {
        evhttp_connection_free(evhttp_request_get_connection(req));
        return;
    }
    evbuffer_add_printf(buf, "%d\n", error);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    evhttp_send_reply(req, error, reason, buf);
    evbuffer_free(buf);
}
