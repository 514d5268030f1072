/*
 * libFuzzer harness: the head of a request to ebd's --metrics listener
 * (src/dispatcher/ebd_metrics_request.c). The input is what a client
 * sent. Given in pieces (three, and a byte at a time for short inputs),
 * as the listener's reads give it, the answer must be the one given for
 * the whole; what the answer says must agree with the bytes: the head
 * within the limit and ending with an LF, the method a token, GET or
 * HEAD of /metrics for a 200, the limit reached for a 414 or 431.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ebd_metrics_request.h"


#define EB_FUZZ_TRICKLE  512


static int
eb_fuzz_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}


static void
eb_fuzz_same(int rc, const ebd_metrics_request_t *a, int rc2,
    const ebd_metrics_request_t *b)
{
    if (rc != rc2) {
        abort();
    }

    if ((rc == 200 || rc == 404 || rc == 405)
        && (a->head_len != b->head_len || a->method != b->method
            || a->method_len != b->method_len || a->path != b->path
            || a->path_len != b->path_len || a->minor != b->minor
            || a->head != b->head))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc, rc2;
    size_t                  i, k, lim;
    const char             *buf = (const char *) data;
    ebd_metrics_request_t   one, inc;

    lim = size < EBD_MR_HEAD_MAX ? size : EBD_MR_HEAD_MAX;

    ebd_metrics_request_init(&one);
    rc = ebd_metrics_request_parse(&one, buf, size);

    switch (rc) {

    case 0:
        if (size >= EBD_MR_HEAD_MAX) {
            abort();
        }
        break;

    case 414:
        if (size < EBD_MR_HEAD_MAX || memchr(buf, '\n', lim) != NULL) {
            abort();
        }
        break;

    case 431:
        if (size < EBD_MR_HEAD_MAX || memchr(buf, '\n', lim) == NULL) {
            abort();
        }
        break;

    case 200:
    case 404:
    case 405:
        if (one.head_len == 0 || one.head_len > lim
            || buf[one.head_len - 1] != '\n'
            || one.method != buf || one.method_len == 0
            || one.path < buf || one.path + one.path_len > buf + one.head_len
            || memchr(one.path, '?', one.path_len) != NULL
            || memchr(one.method, ' ', one.method_len) != NULL
            || one.minor > 9)
        {
            abort();
        }

        if (one.head != eb_fuzz_is(one.method, one.method_len, "HEAD")) {
            abort();
        }

        if ((rc == 404) == eb_fuzz_is(one.path, one.path_len, "/metrics")) {
            abort();
        }

        if (rc != 404
            && (rc == 200) != (one.head
                               || eb_fuzz_is(one.method, one.method_len,
                                             "GET")))
        {
            abort();
        }
        break;

    case 400:
    case 505:
        if (size == 0 || memchr(buf, '\n', lim) == NULL) {
            abort();
        }
        break;

    default:
        abort();
    }

    /* every status has its reason phrase (an unknown one gets 500's) */
    if (rc && strcmp(ebd_metrics_request_reason(rc),
                     ebd_metrics_request_reason(500)) == 0)
    {
        abort();
    }

    /* in three reads */
    ebd_metrics_request_init(&inc);
    for (k = 1, rc2 = 0; k <= 3 && rc2 == 0; k++) {
        rc2 = ebd_metrics_request_parse(&inc, buf, size * k / 3);
    }
    eb_fuzz_same(rc, &one, rc2, &inc);

    /* a byte at a time */
    if (size <= EB_FUZZ_TRICKLE) {
        ebd_metrics_request_init(&inc);
        for (i = 1, rc2 = 0; i <= size && rc2 == 0; i++) {
            rc2 = ebd_metrics_request_parse(&inc, buf, i);
        }
        eb_fuzz_same(rc, &one, rc2, &inc);
    }

    return 0;
}
