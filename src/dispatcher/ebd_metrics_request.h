/*
 * The head of a request to ebd's --metrics listener, read and checked:
 * the request line and the header fields (RFC 9112) up to the empty
 * line, within EBD_MR_HEAD_MAX bytes, and what to answer. No I/O: the
 * listener (ebd_metrics_http.c) gives it the bytes it has; the unit
 * tests and fuzz/fuzz_metrics_request.c call it as they are.
 */

#ifndef EBD_METRICS_REQUEST_H
#define EBD_METRICS_REQUEST_H

#include <stddef.h>


/* the request line and the header fields, line ends and the empty line
 * included: a longer head is refused (414 or 431) */
#define EBD_MR_HEAD_MAX  8192


typedef struct {
    /* what the head said: set once the answer is 200, 404 or 405 */
    const char  *method;
    size_t       method_len;
    const char  *path;          /* the target up to a '?' */
    size_t       path_len;
    unsigned     minor;         /* HTTP/1.minor */
    unsigned     head;          /* HEAD: the answer without its body */
    size_t       head_len;      /* bytes of the head, the empty line's too */

    /* where the last call stopped: the bytes before are not read again */
    size_t       scanned;
    size_t       line;          /* where the line being read starts */
} ebd_metrics_request_t;


/* Zeroes rq: before the first call for a connection. */
void ebd_metrics_request_init(ebd_metrics_request_t *rq);

/*
 * buf holds the len bytes the connection has sent so far; each call for
 * the same rq must be given them again, with what came since after them.
 * 0: the head is not complete, call again with more. Else the status to
 * answer with:
 *   200  GET or HEAD /metrics (a query is ignored)
 *   400  not a request line of HTTP/1.x, a header field that is not
 *        "name: value" (or is folded), no Host in HTTP/1.1, two Hosts
 *   404  another path (any method)
 *   405  /metrics with a method other than GET and HEAD
 *   414  no end to the request line within EBD_MR_HEAD_MAX bytes
 *   431  no end to the head within EBD_MR_HEAD_MAX bytes
 *   505  an HTTP version other than 1.x
 * The head ends with an empty line; a line ends with CRLF or LF alone.
 */
int ebd_metrics_request_parse(ebd_metrics_request_t *rq, const char *buf,
    size_t len);

/* The reason phrase of a status ebd_metrics_request_parse() returns
 * (and 500). */
const char *ebd_metrics_request_reason(int status);

#endif /* EBD_METRICS_REQUEST_H */
