/*
 * HTTP/2 for the http and cloudevents drivers ("http_version": "2"), on
 * nghttp2 and libevent: a few connections to one origin, each carrying
 * many requests at once (streams), so that one write and one read move
 * the requests and answers of a whole loop turn. http:// is HTTP/2 with
 * prior knowledge (h2c); https:// is TLS with ALPN "h2", the peer's
 * certificate checked against the system's CAs and the host name.
 */

#ifndef EBD_H2_H
#define EBD_H2_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <nghttp2/nghttp2.h>


typedef struct ebd_h2_s        ebd_h2_t;
typedef struct ebd_h2_req_s    ebd_h2_req_t;
typedef struct ebd_h2_stream_s ebd_h2_stream_t;

/* The answer: status 100..599 with err NULL, or status 0 and why not
 * (a connection that failed or closed, a reset stream, the timeout).
 * Called on the loop, never from inside ebd_h2_submit(). */
typedef void (*ebd_h2_done_pt)(ebd_h2_req_t *q, int status, const char *err);

/* A response header (not :status), lowercase name; may be NULL. */
typedef void (*ebd_h2_header_pt)(ebd_h2_req_t *q, const char *name,
    size_t nlen, const char *value, size_t vlen);

struct ebd_h2_req_s {
    /* set by the caller, kept until done: the request's headers after
     * the pseudo-headers ebd_h2 adds (names lowercase), the body */
    const nghttp2_nv   *nva;
    size_t              nvlen;
    const uint8_t      *body;
    size_t              blen;
    int                 has_body;
    ebd_h2_done_pt      done;
    ebd_h2_header_pt    header;

    /* ebd_h2's */
    ebd_h2_t           *h2;
    ebd_h2_stream_t    *s;          /* on a connection; NULL waiting */
    ebd_h2_req_t       *next;       /* the origin's waiting requests */
    ebd_h2_req_t       *prev;
    struct event        timer;
    unsigned            refused;    /* sent again after REFUSED_STREAM */
};


/* An origin of url ("http://" or "https://"; the path and query are
 * what ebd_h2_submit() asks for). Returns NULL with a reason in err. */
ebd_h2_t *ebd_h2_open(struct event_base *base, const char *url,
    const char *method, char *err, size_t errlen);

/* Once no request is in flight: closes its connections and frees it. */
void ebd_h2_close(ebd_h2_t *h2);

/* Sends q (on the next loop turn, with the others of this turn); its
 * done is called once, at the latest after timeout_ms. */
void ebd_h2_submit(ebd_h2_t *h2, ebd_h2_req_t *q, uint64_t timeout_ms);

/* Whether a request header may go over HTTP/2 (RFC 9113 8.2.2: no
 * connection-specific fields). */
int ebd_h2_header_allowed(const char *name, size_t len);


#endif /* EBD_H2_H */
