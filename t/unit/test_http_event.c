/*
 * eb_http_event: the CloudEvent JSON of an HTTP event source, encoded with
 * yajl_gen and parsed back with yajl_tree to check every attribute.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "tap.h"
#include "eb_http_event.h"
#include "eb_json.h"
#include "eb_time.h"


/* scratch allocator for eb_http_event_t.alloc: malloc, remembered, and
 * freed all at once by pool_free(); fail_at makes one call fail */

typedef struct {
    void    **blocks;
    size_t    n;
    size_t    cap;
    size_t    calls;
    size_t    fail_at;       /* 1-based call number to fail; 0: none */
    int       fail_all;
} pool_t;


static void *
pool_alloc(void *ctx, size_t size)
{
    pool_t   *pool = ctx;
    void    **nb, *p;
    size_t    cap;

    pool->calls++;

    if (pool->fail_all || pool->calls == pool->fail_at) {
        return NULL;
    }

    if (pool->n == pool->cap) {
        cap = pool->cap ? 2 * pool->cap : 16;
        nb = realloc(pool->blocks, cap * sizeof(void *));
        if (nb == NULL) {
            return NULL;
        }

        pool->blocks = nb;
        pool->cap = cap;
    }

    /* never zero bytes: malloc(0) may return NULL */
    p = malloc(size ? size : 1);
    if (p == NULL) {
        return NULL;
    }

    /* poison, so that a read of unwritten scratch shows in the output */
    memset(p, 0xA5, size);

    pool->blocks[pool->n++] = p;
    return p;
}


static void
pool_free(pool_t *pool)
{
    size_t  i;

    for (i = 0; i < pool->n; i++) {
        free(pool->blocks[i]);
    }

    free(pool->blocks);
    memset(pool, 0, sizeof(pool_t));
}


static eb_bytes_t
bytes(const char *s)
{
    eb_bytes_t  b;

    b.data = (const unsigned char *) s;
    b.len = strlen(s);

    return b;
}


static eb_kv_t
kv(const char *name, const char *value)
{
    eb_kv_t  p;

    p.name = bytes(name);
    p.value = bytes(value);

    return p;
}


/* Encodes ev with a fresh generator; returns the JSON text, malloc'ed
 * and NUL-terminated (or NULL if encoding failed), the encoder's return
 * code in *rc and the text's length in *len. */
static char *
encode(eb_http_event_t *ev, pool_t *pool, int *rc, size_t *len)
{
    yajl_gen              g;
    const unsigned char  *buf;
    size_t                n;
    char                 *text;

    ev->alloc = pool_alloc;
    ev->alloc_ctx = pool;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        *rc = -2;
        return NULL;
    }

    *rc = eb_http_event_encode(g, ev);

    text = NULL;

    if (*rc == 0 && yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok) {
        text = malloc(n + 1);
        if (text) {
            memcpy(text, buf, n);
            text[n] = '\0';
            if (len) {
                *len = n;
            }
        }
    }

    yajl_gen_free(g);

    return text;
}


static yajl_val
parse(const char *text)
{
    char      err[256];
    yajl_val  v;

    if (text == NULL) {
        return NULL;
    }

    err[0] = '\0';
    v = yajl_tree_parse(text, err, sizeof(err));

    if (v == NULL) {
        printf("# yajl_tree_parse: %s\n# text: %s\n", err, text);
    }

    return v;
}


/* The value at root.k1[.k2[.k3]], any type. */
static yajl_val
get(yajl_val root, const char *k1, const char *k2, const char *k3)
{
    const char  *path[4];

    path[0] = k1;
    path[1] = k2;
    path[2] = k3;
    path[3] = NULL;

    return root ? yajl_tree_get(root, path, yajl_t_any) : NULL;
}


static const char *
get_str(yajl_val root, const char *k1, const char *k2, const char *k3)
{
    yajl_val  v;

    v = get(root, k1, k2, k3);

    return YAJL_GET_STRING(v);
}


/* Number of members of an object, -1 if v is not an object; *dups gets
 * how many member names occur more than once. */
static long
members(yajl_val v, int *dups)
{
    size_t  i, j;

    *dups = 0;

    if (!YAJL_IS_OBJECT(v)) {
        return -1;
    }

    for (i = 0; i < v->u.object.len; i++) {
        for (j = i + 1; j < v->u.object.len; j++) {
            if (strcmp(v->u.object.keys[i], v->u.object.keys[j]) == 0) {
                (*dups)++;
            }
        }
    }

    return (long) v->u.object.len;
}


/* A complete event; the caller sets headers, query and body. */
static void
base_event(eb_http_event_t *ev)
{
    memset(ev, 0, sizeof(eb_http_event_t));

    ev->id = bytes("b3b2a1c0-1d2e-4f50-8a6b-7c8d9e0f1a2b");
    ev->source = bytes("my.source");
    ev->bus = bytes("demo-bus");
    ev->region = bytes("cn-hangzhou");
    ev->account = bytes("1234567890");
    ev->time = bytes("2022-05-13T15:28:29.504+08:00");
    ev->publish_time = bytes("2022-05-13T07:28:29.505Z");
    ev->publish_addr = bytes("192.168.1.10");
    ev->path = bytes("/webhook/dingtalk");
    ev->method = bytes("POST");
    ev->body = bytes("");
}


static void
test_attributes(void)
{
    static const char  *top[] = {
        "specversion", "id", "source", "type", "subject", "time",
        "datacontenttype", "aliyunpublishtime", "aliyuneventbusname",
        "aliyunregionid", "aliyunaccountid", "aliyunpublishaddr", "data"
    };

    static const char  *inner[] = {
        "headers", "path", "httpMethod", "queryString", "body"
    };

    eb_http_event_t  ev;
    eb_kv_t          h[6], q[4];
    pool_t           pool;
    char            *text, t1[EB_RFC3339_MAX], t2[EB_RFC3339_MAX];
    char             err[256];
    yajl_val         root, v;
    size_t           i, len;
    int              rc, dups;
    long             n;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));

    /* the times as the module makes them */
    ev.time.len = eb_time_rfc3339(t1, 1652426909, 504, 480, 0);
    ev.time.data = (unsigned char *) t1;
    ev.publish_time.len = eb_time_rfc3339(t2, 1652426909, 505, 0, 1);
    ev.publish_time.data = (unsigned char *) t2;

    h[0] = kv("content-type", "application/json");
    h[1] = kv("x-b", "1");
    h[2] = kv("user-agent", "curl/8.0");
    h[3] = kv("x-b", "2");
    h[4] = kv("accept", "*/*");
    h[5] = kv("x-b", "3");
    ev.headers = h;
    ev.nheaders = 6;

    q[0] = kv("a", "1");
    q[1] = kv("b", "x y");
    q[2] = kv("a", "2");
    q[3] = kv("c", "");
    ev.query = q;
    ev.nquery = 4;

    ev.body = bytes("{\"k\":1}");
    ev.body_is_json = 1;

    text = encode(&ev, &pool, &rc, &len);
    is_int(rc, 0, "encode succeeds");
    ok(text && strlen(text) == len, "output has no NUL inside");

    is_int(eb_json_validate((const unsigned char *) text, len, 64, NULL,
                            err, sizeof(err)),
           EB_JSON_OK, "output is valid JSON (eb_json_validate)");

    root = parse(text);
    ok(root != NULL, "output parses with yajl_tree");

    n = members(root, &dups);
    is_int(n, 13, "the event has 13 attributes");
    is_int(dups, 0, "  none of them twice");

    for (i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        ok(get(root, top[i], NULL, NULL) != NULL, "attribute %s present",
           top[i]);
    }

    is_str(get_str(root, "specversion", NULL, NULL), "1.0", "specversion");
    is_str(get_str(root, "id", NULL, NULL),
           "b3b2a1c0-1d2e-4f50-8a6b-7c8d9e0f1a2b", "id");
    is_str(get_str(root, "source", NULL, NULL), "my.source", "source");
    is_str(get_str(root, "type", NULL, NULL), "eventbridge:Events:HTTPEvent",
           "type");
    is_str(get_str(root, "type", NULL, NULL), EB_HTTP_EVENT_TYPE,
           "type is EB_HTTP_EVENT_TYPE");
    is_str(get_str(root, "subject", NULL, NULL),
           "acs:eventbridge:cn-hangzhou:1234567890:eventbus/demo-bus/"
           "eventsource/my.source", "subject");
    is_str(get_str(root, "time", NULL, NULL),
           "2022-05-13T15:28:29.504+08:00", "time");
    is_str(get_str(root, "datacontenttype", NULL, NULL), "application/json",
           "datacontenttype");
    is_str(get_str(root, "aliyunpublishtime", NULL, NULL),
           "2022-05-13T07:28:29.505Z", "aliyunpublishtime");
    is_str(get_str(root, "aliyuneventbusname", NULL, NULL), "demo-bus",
           "aliyuneventbusname");
    is_str(get_str(root, "aliyunregionid", NULL, NULL), "cn-hangzhou",
           "aliyunregionid");
    is_str(get_str(root, "aliyunaccountid", NULL, NULL), "1234567890",
           "aliyunaccountid");
    is_str(get_str(root, "aliyunpublishaddr", NULL, NULL), "192.168.1.10",
           "aliyunpublishaddr");

    n = members(get(root, "data", NULL, NULL), &dups);
    is_int(n, 5, "data has 5 members");
    is_int(dups, 0, "  none of them twice");

    for (i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
        ok(get(root, "data", inner[i], NULL) != NULL, "data.%s present",
           inner[i]);
    }

    is_str(get_str(root, "data", "path", NULL), "/webhook/dingtalk",
           "data.path");
    is_str(get_str(root, "data", "httpMethod", NULL), "POST",
           "data.httpMethod");

    v = get(root, "data", "headers", NULL);
    n = members(v, &dups);
    is_int(n, 4, "data.headers: 4 distinct names");
    is_int(dups, 0, "data.headers: no name twice");
    is_str(get_str(root, "data", "headers", "content-type"),
           "application/json", "data.headers.content-type");
    is_str(get_str(root, "data", "headers", "user-agent"), "curl/8.0",
           "data.headers.user-agent");
    is_str(get_str(root, "data", "headers", "accept"), "*/*",
           "data.headers.accept");
    is_str(get_str(root, "data", "headers", "x-b"), "1, 2, 3",
           "data.headers.x-b: repeated values joined with \", \"");

    v = get(root, "data", "queryString", NULL);
    n = members(v, &dups);
    is_int(n, 3, "data.queryString: 3 distinct names");
    is_int(dups, 0, "data.queryString: no name twice");
    is_str(get_str(root, "data", "queryString", "a"), "1,2",
           "data.queryString.a: repeated values joined with \",\"");
    is_str(get_str(root, "data", "queryString", "b"), "x y",
           "data.queryString.b");
    is_str(get_str(root, "data", "queryString", "c"), "",
           "data.queryString.c: empty value");

    v = get(root, "data", "body", "k");
    ok(YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) == 1,
       "data.body is the JSON object itself");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);
}


/* 120 headers over 5 names that prefix one another, arriving
 * interleaved; each name's values must keep their order. */
static void
test_merge(void)
{
    static const char  *names[] = { "x-ab", "x", "x-a", "x-", "a" };

    eb_http_event_t  ev;
    eb_kv_t          h[120], q[120];
    pool_t           pool;
    char             vals[120][8], want[5][1024], *text;
    const char      *got;
    yajl_val         root;
    size_t           i, k, nn;
    int              rc, dups, bad;

    nn = sizeof(names) / sizeof(names[0]);

    /* the headers: ", " between values */
    for (k = 0; k < nn; k++) {
        want[k][0] = '\0';
    }

    for (i = 0; i < 120; i++) {
        /* a scrambled but fixed order of names */
        k = (i * 7 + i / 5) % nn;
        snprintf(vals[i], sizeof(vals[i]), "v%zu", i);
        h[i] = kv(names[k], vals[i]);

        if (want[k][0]) {
            strcat(want[k], ", ");
        }
        strcat(want[k], vals[i]);
    }

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));
    ev.headers = h;
    ev.nheaders = 120;

    text = encode(&ev, &pool, &rc, NULL);
    is_int(rc, 0, "merge: encode 120 headers");
    root = parse(text);

    is_int(members(get(root, "data", "headers", NULL), &dups), (long) nn,
           "merge: one member per header name");
    is_int(dups, 0, "merge: no header name twice");

    for (k = 0, bad = 0; k < nn; k++) {
        got = get_str(root, "data", "headers", names[k]);

        if (got == NULL || strcmp(got, want[k]) != 0) {
            bad++;
            printf("# header '%s': got '%s', expected '%s'\n", names[k],
                   got ? got : "(null)", want[k]);
        }
    }

    is_int(bad, 0, "merge: every header's values in arrival order");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);

    /* the query: "," between values, names case-sensitive */
    for (k = 0; k < nn; k++) {
        want[k][0] = '\0';
    }

    for (i = 0; i < 120; i++) {
        k = (i * 3 + i / 7) % nn;
        q[i] = kv(names[k], vals[i]);

        if (want[k][0]) {
            strcat(want[k], ",");
        }
        strcat(want[k], vals[i]);
    }

    base_event(&ev);
    ev.query = q;
    ev.nquery = 120;

    text = encode(&ev, &pool, &rc, NULL);
    is_int(rc, 0, "merge: encode 120 query arguments");
    root = parse(text);

    is_int(members(get(root, "data", "queryString", NULL), &dups),
           (long) nn, "merge: one member per query name");
    is_int(dups, 0, "merge: no query name twice");

    for (k = 0, bad = 0; k < nn; k++) {
        got = get_str(root, "data", "queryString", names[k]);

        if (got == NULL || strcmp(got, want[k]) != 0) {
            bad++;
            printf("# query '%s': got '%s', expected '%s'\n", names[k],
                   got ? got : "(null)", want[k]);
        }
    }

    is_int(bad, 0, "merge: every query argument's values in arrival order");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);

    /* small cases */
    base_event(&ev);
    q[0] = kv("A", "upper");
    q[1] = kv("a", "lower");
    q[2] = kv("e", "");
    q[3] = kv("e", "");
    q[4] = kv("e", "");
    q[5] = kv("", "noname");
    q[6] = kv("f", "1");
    q[7] = kv("f", "");
    ev.query = q;
    ev.nquery = 8;

    h[0] = kv("x-z", "last");
    h[1] = kv("x-y", "");
    h[2] = kv("x-z", "");
    h[3] = kv("x-z", "a, b");
    ev.headers = h;
    ev.nheaders = 4;

    text = encode(&ev, &pool, &rc, NULL);
    root = parse(text);

    is_str(get_str(root, "data", "queryString", "A"), "upper",
           "merge: query 'A' and 'a' are different names");
    is_str(get_str(root, "data", "queryString", "a"), "lower",
           "merge: query 'a'");
    is_str(get_str(root, "data", "queryString", "e"), ",,",
           "merge: three empty values");
    is_str(get_str(root, "data", "queryString", ""), "noname",
           "merge: empty name");
    is_str(get_str(root, "data", "queryString", "f"), "1,",
           "merge: value then empty value");
    is_int(members(get(root, "data", "queryString", NULL), &dups), 5,
           "merge: 5 query names");
    is_str(get_str(root, "data", "headers", "x-z"), "last, , a, b",
           "merge: header values kept as they are");
    is_str(get_str(root, "data", "headers", "x-y"), "",
           "merge: empty header value");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);
}


static void
test_empty_maps(void)
{
    eb_http_event_t  ev;
    pool_t           pool;
    char            *text;
    yajl_val         root;
    int              rc, dups;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));

    text = encode(&ev, &pool, &rc, NULL);
    is_int(rc, 0, "no headers, no query: encode succeeds");
    root = parse(text);

    is_int(members(get(root, "data", "headers", NULL), &dups), 0,
           "no headers: data.headers is {}");
    is_int(members(get(root, "data", "queryString", NULL), &dups), 0,
           "no query: data.queryString is {}");
    is_str(get_str(root, "data", "body", NULL), "",
           "empty non-JSON body is \"\"");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);
}


/* the distributed tracing extension: after datacontenttype, before the
 * bus's attributes; tracestate only with a traceparent */
static void
test_trace(void)
{
    eb_http_event_t  ev;
    pool_t           pool;
    char            *text, *tp, *ts, *dct, *bus;
    int              rc;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));

    ev.traceparent = bytes("00-4bf92f3577b34da6a3ce929d0e0e4736-"
                           "00f067aa0ba902b7-01");
    ev.tracestate = bytes("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

    text = encode(&ev, &pool, &rc, NULL);
    is_int(rc, 0, "trace: encode succeeds");

    dct = text ? strstr(text, "\"datacontenttype\":\"application/json\",")
               : NULL;
    tp = text ? strstr(text, "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e"
                             "0e4736-00f067aa0ba902b7-01\",") : NULL;
    ts = text ? strstr(text, "\"tracestate\":\"rojo=00f067aa0ba902b7,"
                             "congo=t61rcWkgMzE\",") : NULL;
    bus = text ? strstr(text, "\"aliyunpublishtime\"") : NULL;

    ok(dct && tp && ts && bus && dct < tp && tp < ts && ts < bus,
       "trace: datacontenttype, traceparent, tracestate, then the bus's");
    free(text);

    ev.tracestate = bytes("");
    text = encode(&ev, &pool, &rc, NULL);
    ok(text && strstr(text, "\"traceparent\"") != NULL
       && strstr(text, "\"tracestate\"") == NULL,
       "trace: no tracestate when it is empty");
    free(text);

    ev.traceparent = bytes("");
    ev.tracestate = bytes("a=1");
    text = encode(&ev, &pool, &rc, NULL);
    ok(text && strstr(text, "\"traceparent\"") == NULL
       && strstr(text, "\"tracestate\"") == NULL,
       "trace: neither without a traceparent");
    free(text);

    pool_free(&pool);
}


/* Encodes body as JSON; the text must end with "body":<want>}} exactly. */
static void
json_body_is(const char *body, size_t blen, const char *want,
    const char *name)
{
    eb_http_event_t  ev;
    pool_t           pool;
    char            *text, *tail;
    size_t           len, tlen;
    int              rc;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));
    ev.body.data = (const unsigned char *) body;
    ev.body.len = blen;
    ev.body_is_json = 1;

    text = encode(&ev, &pool, &rc, &len);

    tlen = strlen("\"body\":") + strlen(want) + 2;
    tail = malloc(tlen + 1);
    if (tail) {
        snprintf(tail, tlen + 1, "\"body\":%s}}", want);
    }

    ok(rc == 0 && text && tail && len >= tlen
       && memcmp(text + len - tlen, tail, tlen) == 0,
       "json body: %s is inserted verbatim", name);

    if (!(rc == 0 && text && tail && len >= tlen
          && memcmp(text + len - tlen, tail, tlen) == 0))
    {
        printf("#   text: %s\n#   want: ...%s\n", text ? text : "(null)",
               tail ? tail : "");
    }

    free(tail);
    free(text);
    pool_free(&pool);
}

#define JSON_BODY(body, want, name)                                           \
    json_body_is(body, sizeof(body) - 1, want, name)


static void
test_json_body(void)
{
    eb_http_event_t  ev;
    pool_t           pool;
    char            *text;
    yajl_val         root, v;
    int              rc;

    JSON_BODY("{\"k\":1}", "{\"k\":1}", "an object");
    JSON_BODY("  \r\n\t{\"n\": 3.0e2, \"s\": \"\\u00e9\\/\", \"k\": [1, 2.50]}"
              "\n \t\r",
              "{\"n\": 3.0e2, \"s\": \"\\u00e9\\/\", \"k\": [1, 2.50]}",
              "an object with whitespace around (trimmed), 3.0e2 kept");
    JSON_BODY("3.0e2", "3.0e2", "the number 3.0e2");
    JSON_BODY("  -0.0\n", "-0.0", "the number -0.0");
    JSON_BODY("1E+2", "1E+2", "the number 1E+2");
    JSON_BODY("123456789012345678901234567890",
              "123456789012345678901234567890", "a huge integer");
    JSON_BODY("\"str\"", "\"str\"", "a string");
    JSON_BODY("\t\"a\\nb\" ", "\"a\\nb\"", "a string with an escape");
    JSON_BODY("true", "true", "true");
    JSON_BODY("null\r\n", "null", "null");
    JSON_BODY("\n[]\n", "[]", "an empty array");
    JSON_BODY("{ }", "{ }", "an object with inner whitespace kept");
    JSON_BODY("[1,\n  2]", "[1,\n  2]", "inner newlines kept");
    JSON_BODY("{\"b\":1,\"a\":2,\"b\":3}", "{\"b\":1,\"a\":2,\"b\":3}",
              "key order and duplicate keys kept");
    JSON_BODY("{\"\xe5\x90\x8d\":\"\xe5\xb0\x8f\xe6\x98\x8e\"}",
              "{\"\xe5\x90\x8d\":\"\xe5\xb0\x8f\xe6\x98\x8e\"}",
              "raw UTF-8 kept");

    /* and it parses back as the value, not as a string */
    base_event(&ev);
    memset(&pool, 0, sizeof(pool));
    ev.body = bytes(" {\"n\": 3.0e2, \"list\": [1, \"two\", null]} ");
    ev.body_is_json = 1;

    text = encode(&ev, &pool, &rc, NULL);
    root = parse(text);

    v = get(root, "data", "body", "n");
    ok(YAJL_IS_NUMBER(v) && strcmp(YAJL_GET_NUMBER(v), "3.0e2") == 0,
       "json body: data.body.n is the number 3.0e2");
    v = get(root, "data", "body", "list");
    ok(YAJL_IS_ARRAY(v) && v->u.array.len == 3,
       "json body: data.body.list is an array of 3");
    ok(text && strstr(text, "3.0e2") != NULL, "json body: 3.0e2 byte-exact");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);
}


/* Encodes body as a string; it must parse back to the same bytes and
 * the text must contain want. */
static void
string_body_is(const char *body, size_t blen, const char *want,
    const char *name)
{
    eb_http_event_t  ev;
    pool_t           pool;
    char            *text;
    const char      *got;
    yajl_val         root;
    size_t           i, len;
    int              rc, raw;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));
    ev.body.data = (const unsigned char *) body;
    ev.body.len = blen;
    ev.body_is_json = 0;

    text = encode(&ev, &pool, &rc, &len);
    is_int(rc, 0, "string body: %s: encode succeeds", name);

    for (i = 0, raw = 0; text && i < len; i++) {
        if ((unsigned char) text[i] < 0x20) {
            raw++;
        }
    }

    ok(text && raw == 0, "string body: %s: no raw control characters",
       name);

    if (want) {
        ok(text && strstr(text, want) != NULL, "string body: %s: text has "
           "%s", name, want);

        if (!(text && strstr(text, want) != NULL)) {
            printf("#   text: %s\n", text ? text : "(null)");
        }
    }

    /* yajl_tree strings end at a NUL: compare only NUL-free bodies */
    if (memchr(body, '\0', blen) == NULL) {
        root = parse(text);
        got = get_str(root, "data", "body", NULL);

        ok(got && strlen(got) == blen && memcmp(got, body, blen) == 0,
           "string body: %s: parses back to the same bytes", name);

        yajl_tree_free(root);
    }

    free(text);
    pool_free(&pool);
}

#define STRING_BODY(body, want, name)                                         \
    string_body_is(body, sizeof(body) - 1, want, name)


static void
test_string_body(void)
{
    STRING_BODY("plain text", "\"body\":\"plain text\"}}", "plain text");
    STRING_BODY("a\"b\\c\nd", "\"body\":\"a\\\"b\\\\c\\nd\"}}",
                "quote, backslash, newline");
    STRING_BODY("say \"hi\"", "say \\\"hi\\\"", "quotes");
    STRING_BODY("C:\\dir\\file", "C:\\\\dir\\\\file", "backslashes");
    STRING_BODY("l1\nl2\r\nl3", "l1\\nl2\\r\\nl3", "newlines");
    STRING_BODY("a\tb", "a\\tb", "tab");
    STRING_BODY("\b\f", "\\b\\f", "backspace and form feed");
    STRING_BODY("x\x01y", NULL, "control character 0x01");
    STRING_BODY("x\x1fy", NULL, "control character 0x1f");
    STRING_BODY("\x01\x02\x03\x04\x05\x06\x07\x0b\x0e\x0f\x10\x11\x12\x13"
                "\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f", NULL,
                "all the other control characters");
    STRING_BODY("a\0b", "a\\u0000b", "NUL byte");
    STRING_BODY("  padded  ", "\"body\":\"  padded  \"}}",
                "whitespace is not trimmed");
    STRING_BODY("{\"a\":1}", "\"body\":\"{\\\"a\\\":1}\"}}",
                "JSON-looking text stays a string");
    STRING_BODY("\xe5\xb0\x8f\xe6\x98\x8e \xf0\x9f\x98\x80",
                "\xe5\xb0\x8f\xe6\x98\x8e \xf0\x9f\x98\x80", "UTF-8");
    STRING_BODY("a=1&b=%20+x", "a=1&b=%20+x", "a form body");
    STRING_BODY("</script>\x7f", NULL, "solidus and DEL");
}


static void
test_subject(void)
{
    eb_http_event_t  ev;
    unsigned char    buf[256];
    size_t           len, n;
    pool_t           pool;
    char            *text;
    yajl_val         root;
    int              rc;

    base_event(&ev);

    len = eb_http_event_subject_len(&ev);
    memset(buf, 'X', sizeof(buf));
    n = eb_http_event_subject(&ev, buf);

    is_int(n, len, "subject: length equals eb_http_event_subject_len");
    ok(n == sizeof("acs:eventbridge:cn-hangzhou:1234567890:eventbus/"
                   "demo-bus/eventsource/my.source") - 1
       && memcmp(buf, "acs:eventbridge:cn-hangzhou:1234567890:eventbus/"
                 "demo-bus/eventsource/my.source", n) == 0,
       "subject: acs:eventbridge:REGION:ACCOUNT:eventbus/BUS/"
       "eventsource/SOURCE");
    ok(buf[n] == 'X', "subject: nothing written past its length");

    /* other values, including characters that JSON escapes */
    ev.region = bytes("us-west-1");
    ev.account = bytes("0");
    ev.bus = bytes("b\"us");
    ev.source = bytes("src\\1");

    len = eb_http_event_subject_len(&ev);
    memset(buf, 'X', sizeof(buf));
    n = eb_http_event_subject(&ev, buf);
    is_int(n, len, "subject: length again");
    ok(n == strlen("acs:eventbridge:us-west-1:0:eventbus/b\"us/"
                   "eventsource/src\\1")
       && memcmp(buf, "acs:eventbridge:us-west-1:0:eventbus/b\"us/"
                 "eventsource/src\\1", n) == 0, "subject: other values");
    ok(buf[n] == 'X', "subject: nothing written past its length");

    memset(&pool, 0, sizeof(pool));
    text = encode(&ev, &pool, &rc, NULL);
    root = parse(text);
    is_str(get_str(root, "subject", NULL, NULL),
           "acs:eventbridge:us-west-1:0:eventbus/b\"us/eventsource/src\\1",
           "subject: the event's subject is escaped and parses back");
    is_str(get_str(root, "aliyuneventbusname", NULL, NULL), "b\"us",
           "attributes are escaped too");
    is_str(get_str(root, "source", NULL, NULL), "src\\1",
           "source is escaped too");
    yajl_tree_free(root);
    free(text);
    pool_free(&pool);

    /* all empty (with non-NULL data) */
    ev.region = bytes("");
    ev.account = bytes("");
    ev.bus = bytes("");
    ev.source = bytes("");

    len = eb_http_event_subject_len(&ev);
    memset(buf, 'X', sizeof(buf));
    n = eb_http_event_subject(&ev, buf);
    is_int(n, len, "subject: empty parts, length");
    ok(n == strlen("acs:eventbridge:::eventbus//eventsource/")
       && memcmp(buf, "acs:eventbridge:::eventbus//eventsource/", n) == 0,
       "subject: empty parts");

    /* long parts */
    memset(buf, 'r', 100);
    ev.region.data = buf;
    ev.region.len = 100;
    is_int(eb_http_event_subject_len(&ev),
           strlen("acs:eventbridge:::eventbus//eventsource/") + 100,
           "subject: length grows with the region");
}


static void
test_utf8_attributes(void)
{
    eb_http_event_t  ev;
    pool_t           pool;
    char            *text;
    yajl_val         root;
    eb_kv_t          h[1], q[1];
    int              rc;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));

    ev.path = bytes("/\xe8\xb7\xaf\xe5\xbe\x84/a b");
    ev.source = bytes("\xe6\xba\x90");
    h[0] = kv("x-name", "\xe5\xb0\x8f\xe6\x98\x8e");
    q[0] = kv("\xe9\x94\xae", "\xe5\x80\xbc\n\"");
    ev.headers = h;
    ev.nheaders = 1;
    ev.query = q;
    ev.nquery = 1;

    text = encode(&ev, &pool, &rc, NULL);
    root = parse(text);

    is_str(get_str(root, "data", "path", NULL),
           "/\xe8\xb7\xaf\xe5\xbe\x84/a b", "utf-8: path");
    is_str(get_str(root, "source", NULL, NULL), "\xe6\xba\x90",
           "utf-8: source");
    is_str(get_str(root, "data", "headers", "x-name"),
           "\xe5\xb0\x8f\xe6\x98\x8e", "utf-8: header value");
    is_str(get_str(root, "data", "queryString", "\xe9\x94\xae"),
           "\xe5\x80\xbc\n\"", "utf-8: query name and escaped value");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);
}


static void
test_failures(void)
{
    eb_http_event_t  ev;
    eb_kv_t          h[3], q[3];
    pool_t           pool;
    char            *text;
    yajl_gen         g;
    size_t           calls, k;
    int              rc, bad;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));

    h[0] = kv("x-a", "1");
    h[1] = kv("x-b", "2");
    h[2] = kv("x-a", "3");
    q[0] = kv("p", "1");
    q[1] = kv("p", "2");
    q[2] = kv("r", "3");
    ev.headers = h;
    ev.nheaders = 3;
    ev.query = q;
    ev.nquery = 3;

    text = encode(&ev, &pool, &rc, NULL);
    calls = pool.calls;
    is_int(rc, 0, "failures: the event encodes");
    ok(calls >= 1, "failures: it uses the allocator (%zu calls)", calls);
    free(text);
    pool_free(&pool);

    /* each allocation in turn fails: -1, no crash, no leak */
    for (k = 1, bad = 0; k <= calls; k++) {
        memset(&pool, 0, sizeof(pool));
        pool.fail_at = k;

        text = encode(&ev, &pool, &rc, NULL);
        if (rc != -1 || text != NULL) {
            bad++;
            printf("# failing allocation %zu: rc %d\n", k, rc);
        }

        free(text);
        pool_free(&pool);
    }

    is_int(bad, 0, "failures: each of %zu failing allocations gives -1",
           calls);

    memset(&pool, 0, sizeof(pool));
    pool.fail_all = 1;
    text = encode(&ev, &pool, &rc, NULL);
    is_int(rc, -1, "failures: an allocator that always fails gives -1");
    free(text);
    pool_free(&pool);

    /* a generator that already holds a complete value refuses more */
    ev.alloc = pool_alloc;
    ev.alloc_ctx = &pool;

    g = yajl_gen_alloc(NULL);
    yajl_gen_integer(g, 1);
    is_int(eb_http_event_encode(g, &ev), -1,
           "failures: a finished generator gives -1");
    yajl_gen_free(g);
    pool_free(&pool);

    /* a generator expecting a map key refuses a map */
    g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    is_int(eb_http_event_encode(g, &ev), -1,
           "failures: a generator expecting a key gives -1");
    yajl_gen_free(g);
    pool_free(&pool);

    /* but inside an array the event is just an element */
    g = yajl_gen_alloc(NULL);
    yajl_gen_array_open(g);
    is_int(eb_http_event_encode(g, &ev), 0,
           "an event can be an element of an array");
    yajl_gen_free(g);
    pool_free(&pool);
}


static void
test_large(void)
{
    eb_http_event_t  ev;
    eb_kv_t         *h, *q;
    pool_t           pool;
    char            *names, *text, *body, *t2;
    yajl_val         root;
    size_t           i, blen, len, len2;
    int              rc, dups;

    h = calloc(1000, sizeof(eb_kv_t));
    q = calloc(1000, sizeof(eb_kv_t));
    names = malloc(1000 * 16);
    blen = 1024 * 1024;
    body = malloc(blen);

    if (h == NULL || q == NULL || names == NULL || body == NULL) {
        ok(0, "large: malloc");
        free(h);
        free(q);
        free(names);
        free(body);
        return;
    }

    /* distinct names in descending order, all with the same value */
    for (i = 0; i < 1000; i++) {
        snprintf(names + i * 16, 16, "x-%04zu", 999 - i);
        h[i] = kv(names + i * 16, "v");
        q[i] = kv(names + i * 16, "w");
    }

    for (i = 0; i < blen; i++) {
        body[i] = "ab\"\\\n\t c"[i % 8];
    }

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));
    ev.headers = h;
    ev.nheaders = 1000;
    ev.query = q;
    ev.nquery = 1000;
    ev.body.data = (const unsigned char *) body;
    ev.body.len = blen;

    text = encode(&ev, &pool, &rc, &len);
    is_int(rc, 0, "large: 1000 headers, 1000 arguments, 1 MiB body");

    root = parse(text);
    is_int(members(get(root, "data", "headers", NULL), &dups), 1000,
           "large: 1000 headers");
    is_int(dups, 0, "large: no header twice");
    is_int(members(get(root, "data", "queryString", NULL), &dups), 1000,
           "large: 1000 query arguments");
    is_str(get_str(root, "data", "headers", "x-0000"), "v",
           "large: first header name");
    is_str(get_str(root, "data", "queryString", "x-0999"), "w",
           "large: last query name");

    ok(get_str(root, "data", "body", NULL) != NULL
       && strlen(get_str(root, "data", "body", NULL)) == blen
       && memcmp(get_str(root, "data", "body", NULL), body, blen) == 0,
       "large: the body parses back intact");

    yajl_tree_free(root);
    pool_free(&pool);

    /* the same input gives the same output */
    t2 = encode(&ev, &pool, &rc, &len2);
    ok(text && t2 && len == len2 && memcmp(text, t2, len) == 0,
       "large: encoding is deterministic");

    free(t2);
    free(text);
    pool_free(&pool);
    free(h);
    free(q);
    free(names);
    free(body);
}


/*
 * Empty values as { NULL, 0 }, the way an unset ngx_str_t looks. Kept
 * last: a NULL pointer handed to memcpy()/memcmp(), even with a zero
 * length, is undefined behaviour that UBSan reports and stops at.
 */
static void
test_null_empty(void)
{
    eb_http_event_t  ev;
    eb_kv_t          h[2], q[3];
    pool_t           pool;
    unsigned char    buf[64];
    char            *text;
    yajl_val         root;
    int              rc;

    memset(&ev, 0, sizeof(ev));
    memset(h, 0, sizeof(h));
    memset(q, 0, sizeof(q));
    memset(&pool, 0, sizeof(pool));

    h[0].name = bytes("x-e");
    h[1].name = bytes("x-e");
    q[0].name = bytes("e");
    q[1].name = bytes("e");
    ev.headers = h;
    ev.nheaders = 2;
    ev.query = q;
    ev.nquery = 3;

    is_int(eb_http_event_subject(&ev, buf), eb_http_event_subject_len(&ev),
           "null-empty: subject of empty parts");

    text = encode(&ev, &pool, &rc, NULL);
    is_int(rc, 0, "null-empty: encode succeeds");
    root = parse(text);

    is_str(get_str(root, "subject", NULL, NULL),
           "acs:eventbridge:::eventbus//eventsource/", "null-empty: subject");
    is_str(get_str(root, "id", NULL, NULL), "", "null-empty: id");
    is_str(get_str(root, "data", "body", NULL), "", "null-empty: body");
    is_str(get_str(root, "data", "headers", "x-e"), ", ",
           "null-empty: two empty header values");
    is_str(get_str(root, "data", "queryString", "e"), ",",
           "null-empty: two empty query values");
    is_str(get_str(root, "data", "queryString", ""), "",
           "null-empty: empty name and value");

    yajl_tree_free(root);
    free(text);
    pool_free(&pool);
}


/* A NUL in a query argument's name ("?a%00=1&a=2"): readers would take
 * "a\u0000" for "a", so it becomes U+FFFD, and the event stays one that
 * eb_json_validate() accepts (no key twice, no U+0000 in a key). */
static void
test_nul_names(void)
{
    eb_http_event_t  ev;
    eb_kv_t          q[3];
    pool_t           pool;
    char            *text, err[256];
    size_t           len;
    int              rc;

    base_event(&ev);
    memset(&pool, 0, sizeof(pool));

    q[0].name.data = (const unsigned char *) "a\0";
    q[0].name.len = 2;
    q[0].value = bytes("1");
    q[1] = kv("a", "2");
    q[2].name.data = (const unsigned char *) "a\xef\xbf\xbd";
    q[2].name.len = 4;
    q[2].value = bytes("3");

    ev.query = q;
    ev.nquery = 3;

    len = 0;
    text = encode(&ev, &pool, &rc, &len);

    ok(rc == 0 && text != NULL, "NUL in a name: encoded");
    ok(text && strstr(text, "\"queryString\":{\"a\":\"2\","
                      "\"a\xef\xbf\xbd\":\"1,3\"}") != NULL,
       "NUL in a name: U+FFFD, merged with the same name");
    ok(text && eb_json_validate((const unsigned char *) text, len, 32, NULL,
                                err, sizeof(err)) == EB_JSON_OK,
       "NUL in a name: the event validates");

    free(text);
    pool_free(&pool);
}


int
main(void)
{
    test_attributes();
    test_merge();
    test_empty_maps();
    test_json_body();
    test_string_body();
    test_subject();
    test_utf8_attributes();
    test_failures();
    test_large();
    test_null_empty();
    test_nul_names();
    test_trace();

    return tap_done();
}
