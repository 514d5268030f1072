/*
 * Internal to the http and cloudevents drivers (ebd_http.c) and the
 * OAuth2 token cache (ebd_oauth.c): one libcurl multi handle for all of
 * them (ebd_http_multi.c), driven by the libevent loop, so that connections to a host are
 * kept alive and reused by every target that talks to it.
 */

#ifndef EBD_HTTP_H
#define EBD_HTTP_H

#include <stdint.h>
#include <curl/curl.h>
#include <event2/event.h>


typedef struct ebd_http_xfer_s  ebd_http_xfer_t;

/* Called on the loop once the transfer finished (rc: CURLE_OK or why
 * not); the easy handle is out of the multi handle by then and may be
 * started again. */
typedef void (*ebd_http_xfer_done_pt)(ebd_http_xfer_t *x, CURLcode rc);

struct ebd_http_xfer_s {
    CURL                   *easy;
    ebd_http_xfer_done_pt   done;
    int                     active;     /* in the multi handle */
};


/* Every user of the multi handle holds a reference; the first creates
 * it on base, the last one's release cleans it up. Returns 0 or -1. */
int ebd_http_multi_ref(struct event_base *base);
void ebd_http_multi_unref(void);

/* Adds x->easy (its CURLOPT_PRIVATE is set to x here) to the multi
 * handle; x->done is called later, never from inside this call.
 * Returns 0, or -1 when libcurl refuses. */
int ebd_http_xfer_start(ebd_http_xfer_t *x);

/* Takes a started transfer out without calling done. */
void ebd_http_xfer_stop(ebd_http_xfer_t *x);

/* An easy handle: a kept one (reset) or a new one; NULL when out of
 * memory. Put back what is not needed any more. */
CURL *ebd_http_easy_get(void);
void ebd_http_easy_put(CURL *easy);

/* Options every transfer of ebd gets: no signals, no redirects, only
 * http and https, the timeout, an error buffer, the response body
 * thrown away (callers that want it set CURLOPT_WRITEFUNCTION after). */
void ebd_http_easy_setup(CURL *easy, uint64_t timeout_ms, char *errbuf);

/* "scheme://host:port/path" of url: what messages may show of it (no
 * user info, no query). */
void ebd_http_safe_url(const char *url, char *buf, size_t size);


#endif /* EBD_HTTP_H */
