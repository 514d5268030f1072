/*
 * ebd's --metrics listener: the request head and what it is answered
 * (ebd_metrics_request.c).
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "ebd_metrics_request.h"


static ebd_metrics_request_t  rq;


/* the status for s given at once */
static int
parse(const char *s)
{
    ebd_metrics_request_init(&rq);
    return ebd_metrics_request_parse(&rq, s, strlen(s));
}


/* s given one more byte at a time, as a trickling client sends it: 0
 * until its last byte, then the status */
static int
trickle(const char *s, size_t *early)
{
    int     rc = 0;
    size_t  i, n = strlen(s);

    ebd_metrics_request_init(&rq);
    *early = 0;

    for (i = 1; i <= n; i++) {
        rc = ebd_metrics_request_parse(&rq, s, i);
        if (rc && i < n) {
            *early = i;
            return rc;
        }
    }

    return rc;
}


/* a head of exactly len bytes (len >= 44): the request line, Host,
 * X-Pad fields of 100 bytes or more, the empty line */
static char *
head_of(size_t len)
{
    size_t       left, n;
    char        *s, *p;
    const char  *start = "GET /metrics HTTP/1.1\r\nHost: x\r\n";

    s = malloc(len + 1);
    memcpy(s, start, strlen(start));
    p = s + strlen(start);
    left = len - strlen(start) - 2;

    while (left) {
        n = left >= 200 ? 100 : left;
        memcpy(p, "X-Pad: ", 7);
        memset(p + 7, 'a', n - 9);
        memcpy(p + n - 2, "\r\n", 2);
        p += n;
        left -= n;
    }

    memcpy(p, "\r\n", 3);

    return s;
}


int
main(void)
{
    int          rc;
    char        *s, big[EBD_MR_HEAD_MAX + 64];
    const char   tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n";
    const char   nul[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: b\0c\r\n\r\n";
    size_t       i, n, early;
    const char  *full = "GET /metrics HTTP/1.1\r\n"
                        "Host: 127.0.0.1:9464\r\n"
                        "User-Agent: Prometheus/2.45.0\r\n"
                        "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n"
                        "Accept-Encoding: gzip\r\n"
                        "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
                        "\r\n";

    /* a full request, as Prometheus sends it */
    is_int(parse(full), 200, "Prometheus' scrape: 200");
    ok(rq.method_len == 3 && memcmp(rq.method, "GET", 3) == 0, "method GET");
    ok(rq.path_len == 8 && memcmp(rq.path, "/metrics", 8) == 0,
       "path /metrics");
    is_int(rq.minor, 1, "HTTP/1.1");
    is_int(rq.head, 0, "not HEAD");
    is_int(rq.head_len, strlen(full), "the head: all of it");

    /* split at every byte: one call, then the rest */
    n = strlen(full);
    for (i = 1, rc = 1; i < n && rc; i++) {
        ebd_metrics_request_init(&rq);
        rc = ebd_metrics_request_parse(&rq, full, i) == 0
             && ebd_metrics_request_parse(&rq, full, n) == 200;
    }
    ok(rc, "split in two at every byte: nothing before the end, then 200"
       " (%zu)", i - 1);

    /* and a byte at a time */
    is_int(trickle(full, &early), 200, "a byte at a time: 200");
    is_int(early, 0, "... not before its last byte");

    /* what comes after the head (a body) is not read */
    s = malloc(n + 7);
    memcpy(s, full, n);
    memcpy(s + n, "xyz\r\n\r\n", 7);
    ebd_metrics_request_init(&rq);
    is_int(ebd_metrics_request_parse(&rq, s, n + 7), 200,
           "bytes after the head: 200");
    is_int(rq.head_len, n, "... the head ends at the empty line");
    free(s);

    /* line ends */
    is_int(parse("GET /metrics HTTP/1.1\nHost: x\n\n"), 200, "LF alone: 200");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\n\r\n"), 200,
           "CRLF and LF mixed: 200");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n"), 0,
           "no empty line yet: more is needed");
    is_int(parse("GET /metrics HTTP/1.1\rHost: x\r\n\r\n"), 400,
           "a bare CR in the request line: 400");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\ry\r\n\r\n"), 400,
           "a bare CR in a field: 400");

    /* HEAD */
    is_int(parse("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200,
           "HEAD /metrics: 200");
    is_int(rq.head, 1, "... without the body");
    is_int(parse("HEAD /other HTTP/1.1\r\nHost: x\r\n\r\n"), 404,
           "HEAD /other: 404");
    is_int(rq.head, 1, "... without the body");

    /* methods */
    is_int(parse("POST /metrics HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 2\r\n\r\n{}"), 405, "POST /metrics: 405");
    is_int(parse("get /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 405,
           "get (methods are case-sensitive): 405");
    is_int(parse("DELETE /other HTTP/1.1\r\nHost: x\r\n\r\n"), 404,
           "DELETE /other: 404, the path first");
    is_int(parse("G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
           "a method that is not a token: 400");
    is_int(parse(" GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
           "a space before the method: 400");

    /* paths */
    is_int(parse("GET /metrics?name[]=ebd_up&x=%20 HTTP/1.1\r\nHost: x\r\n\r\n"),
           200, "a query is ignored: 200");
    ok(rq.path_len == 8 && memcmp(rq.path, "/metrics", 8) == 0,
       "... the path without it");
    is_int(parse("GET /metrics? HTTP/1.1\r\nHost: x\r\n\r\n"), 200,
           "an empty query: 200");
    is_int(parse("GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n"), 404,
           "/metricsx: 404");
    is_int(parse("GET /metric HTTP/1.1\r\nHost: x\r\n\r\n"), 404,
           "/metric: 404");
    is_int(parse("GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n"), 404,
           "/metrics/: 404");
    is_int(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 404, "/: 404");
    is_int(parse("GET ?/metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 404,
           "?/metrics: 404");
    is_int(parse("GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
           "two spaces: 400");
    is_int(parse("GET /met\x01rics HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
           "a control character in the target: 400");
    is_int(parse("GET /m\xc3\xa9trics HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
           "a byte over 0x7e in the target: 400");

    /* versions */
    is_int(parse("GET /metrics HTTP/1.0\r\n\r\n"), 200,
           "HTTP/1.0 without Host: 200");
    is_int(rq.minor, 0, "... HTTP/1.0");
    is_int(parse("GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n"), 200,
           "HTTP/1.0 with Host: 200");
    is_int(parse("GET /metrics HTTP/1.1\r\n\r\n"), 400,
           "HTTP/1.1 without Host: 400");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400,
           "two Hosts: 400");
    is_int(parse("GET /metrics HTTP/1.1\r\nHOST:\r\n\r\n"), 200,
           "an empty Host, any case: 200");
    is_int(parse("GET /metrics HTTP/1.9\r\nHost: x\r\n\r\n"), 200,
           "HTTP/1.9: answered as 1.x");
    is_int(rq.minor, 9, "... minor 9");
    is_int(parse("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n"), 505,
           "HTTP/2.0: 505");
    is_int(parse("GET /metrics HTTP/0.9\r\n\r\n"), 505, "HTTP/0.9: 505");
    is_int(parse("GET /metrics HTTP/1.10\r\nHost: x\r\n\r\n"), 400,
           "HTTP/1.10: 400");
    is_int(parse("GET /metrics HTTP/1.1 \r\nHost: x\r\n\r\n"), 400,
           "a space after the version: 400");
    is_int(parse("GET /metrics http/1.1\r\nHost: x\r\n\r\n"), 400,
           "http/1.1: 400");
    is_int(parse("GET /metrics\r\n\r\n"), 400, "no version (HTTP/0.9): 400");

    /* fields */
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\r\nX-A:\tb c\x80\r\n\r\n"),
           200, "HTAB, SP and obs-text in a value: 200");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"), 400,
           "a space before the colon: 400");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n"),
           400, "a folded field: 400");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n"), 400,
           "a line that is no field: 400");
    is_int(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n"), 400,
           "an empty field name: 400");
    ebd_metrics_request_init(&rq);
    is_int(ebd_metrics_request_parse(&rq, nul, sizeof(nul) - 1), 400,
           "a NUL in a value: 400");

    /* garbage */
    is_int(parse("garbage\r\n\r\n"), 400, "garbage: 400");
    is_int(parse("\r\n\r\n"), 400, "an empty request line: 400");
    ebd_metrics_request_init(&rq);
    is_int(ebd_metrics_request_parse(&rq, tls, sizeof(tls) - 1), 400,
           "a TLS ClientHello's start, and LFs: 400");
    is_int(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505,
           "the HTTP/2 preface: 505");

    /* limits: the head may take EBD_MR_HEAD_MAX bytes, not one more */
    s = head_of(EBD_MR_HEAD_MAX);
    is_int(strlen(s), EBD_MR_HEAD_MAX, "a head of the limit's length");
    is_int(parse(s), 200, "... 200");
    is_int(trickle(s, &early), 200, "... a byte at a time: 200");
    free(s);

    s = head_of(EBD_MR_HEAD_MAX + 1);
    is_int(parse(s), 431, "a head one byte longer: 431");
    is_int(trickle(s, &early), 431, "... a byte at a time: 431");
    is_int(early, EBD_MR_HEAD_MAX, "... once the limit is reached");
    free(s);

    /* oversize headers: a field that never ends */
    memcpy(big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ", 39);
    memset(big + 39, 'a', sizeof(big) - 40);
    big[sizeof(big) - 1] = '\0';
    is_int(parse(big), 431, "oversize headers: 431");
    ebd_metrics_request_init(&rq);
    is_int(ebd_metrics_request_parse(&rq, big, EBD_MR_HEAD_MAX - 1), 0,
           "... a byte short of the limit: more is needed");

    /* oversize line: the request line does not end in the limit */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', sizeof(big) - 6);
    is_int(parse(big), 414, "oversize request line: 414");
    is_int(trickle(big, &early), 414, "... a byte at a time: 414");
    is_int(early, EBD_MR_HEAD_MAX, "... once the limit is reached");
    big[EBD_MR_HEAD_MAX - 1] = '\n';
    is_int(parse(big), 431,
           "a request line that ends with the limit's last byte: 431");
    memcpy(big + EBD_MR_HEAD_MAX - 11, " HTTP/1.0\n\n", 11);
    is_int(parse(big), 404,
           "a request line of HTTP/1.0 and the empty line at the limit: 404");

    /* reasons */
    is_str(ebd_metrics_request_reason(431), "Request Header Fields Too Large",
           "431's reason");
    is_str(ebd_metrics_request_reason(500), "Internal Server Error",
           "500's reason");

    return tap_done();
}
