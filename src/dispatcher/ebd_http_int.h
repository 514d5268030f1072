/*
 * Internal to the http and cloudevents drivers: a target's settings and
 * one delivery attempt's request, shared by ebd_http.c (targets, headers,
 * attempts, libcurl), ebd_http_ce.c (the CloudEvents HTTP binding's
 * headers and bodies) and ebd_http_h2.c (the same requests over HTTP/2,
 * through ebd_h2.c).
 */

#ifndef EBD_HTTP_INT_H
#define EBD_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "eb_buf.h"
#include "ebd_target.h"
#include "ebd_http.h"
#include "ebd_h2.h"
#include "ebd_oauth.h"
#include "ebd_sign.h"


typedef struct ebd_http_req_s  ebd_http_req_t;

typedef struct {
    ebd_target_t         *target;
    int                   ce;           /* a cloudevents target */
    int                   structured;
    int                   async;
    const char           *method;
    int                   has_body;     /* not GET or DELETE */
    char                 *url;          /* with the query */
    char                  safe_url[512];
    char                 *url_secret;   /* user info and query, if any */
    struct curl_slist    *headers;      /* "headers", as lines */
    int                   has_ct;       /* they set Content-Type */
    int                   has_tp;       /* they set traceparent */
    int                   has_ts;       /* they set tracestate */
    ebd_sign_t           *sign;         /* "signing"; NULL when none */

    int                   auth;         /* -1 none, or the connection type */
    const char           *username;
    char                 *password;     /* ebd_secret_load() */
    char                 *api_key;      /* "Name: value" */
    ebd_oauth_t          *oauth;

    ebd_h2_t             *h2;           /* "http_version": "2" */
    nghttp2_nv           *h2_nv;        /* the target's own fields, then */
    size_t                h2_nvn;       /* their names, lowercase */
    char                 *h2_basic;     /* "Authorization: Basic ..." */

    uint64_t              interval_us;  /* 1/rate; 0: no limit */
    uint64_t              next_us;      /* the next attempt not before */
    ebd_http_req_t       *rate_head;    /* attempts waiting for the rate */
    ebd_http_req_t       *rate_tail;
    struct event         *rate_ev;

    unsigned              in_flight;
} ebd_http_target_t;


struct ebd_http_req_s {
    ebd_http_xfer_t       xfer;
    ebd_h2_req_t          q;            /* over HTTP/2 */
    nghttp2_nv           *nv;           /* its fields, then their names */
    ebd_http_target_t    *ht;
    ebd_delivery_t       *d;
    ebd_http_req_t       *rate_next;
    ebd_oauth_wait_t      wait;

    eb_buf_t              hdr;          /* this event's own header lines,
                                         * each NUL-terminated */
    unsigned              nhdr;
    size_t                hdr_len;      /* of hdr and nhdr before the */
    unsigned              hdr_n;        /* token (a 401 sends another) */
    struct curl_slist    *all;          /* what is sent: one array */
    eb_buf_t              body;         /* when not the payload as is */
    char                 *sign_id;      /* webhook-id, when signing */
    const unsigned char  *bp;
    size_t                blen;
    int                   send_body;

    uint64_t              generation;   /* of the token sent */
    int                   reauth;       /* sent again after a 401 */
    int64_t               retry_after_ms;
    uint64_t              start_ms;
    char                  errbuf[CURL_ERROR_SIZE];
};


/* whether s may go into a header line (a name: not empty, no ':' or
 * white space either) */
int ebd_http_header_safe(const char *s, int name);

/* a header line of r, "Name: value", or a whole line; *failed is set
 * when out of memory */
void ebd_http_req_header(ebd_http_req_t *r, int *failed, const char *name,
    const char *value);
void ebd_http_req_line(ebd_http_req_t *r, int *failed, const char *line);

/* the CloudEvents HTTP binding's percent-encoding of a header value */
int ebd_http_pct_encode(eb_buf_t *b, const unsigned char *p, size_t len);

/* r's CloudEvents headers and body in binary or structured mode
 * (ebd_http_ce.c); -1 with err set when the event cannot be sent so */
int ebd_http_ce_binary(ebd_http_req_t *r, int *failed, char *err,
    size_t errlen);
int ebd_http_ce_structured(ebd_http_req_t *r, int *failed, char *err,
    size_t errlen);

/* an attempt's outcome (ebd_http.c): from an HTTP status; a 401 to an
 * oauth2 target sent once more with a new token (1 when it was);
 * Retry-After's value kept; the attempt finished, r freed */
void ebd_http_status(ebd_http_req_t *r, ebd_result_t *res, long status);
int ebd_http_reauth(ebd_http_req_t *r, long status);
void ebd_http_retry_after(ebd_http_req_t *r, const char *p, size_t len);
void ebd_http_finish(ebd_http_req_t *r, ebd_result_t *res);
void ebd_http_fail(ebd_http_req_t *r, ebd_outcome_t outcome,
    const char *err);

/* over HTTP/2 (ebd_http_h2.c): the target's own header lines as fields,
 * once (0, or -1 when out of memory); a request handed to ebd_h2 */
int ebd_http_h2_fields(ebd_http_target_t *ht);
void ebd_http_h2_start(ebd_http_req_t *r);


#endif /* EBD_HTTP_INT_H */
