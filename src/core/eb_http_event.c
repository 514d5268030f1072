#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eb_http_event.h"


#define eb_gen_lit(g, s)                                                      \
    yajl_gen_string(g, (const unsigned char *) (s), sizeof(s) - 1)

#define eb_gen_bytes(g, b)  yajl_gen_string(g, (b).data, (b).len)

#define EB_TRY(expr)  if ((expr) != yajl_gen_status_ok) return -1


static const char  eb_subject_acs[] = "acs:eventbridge:";
static const char  eb_subject_bus[] = ":eventbus/";
static const char  eb_subject_src[] = "/eventsource/";


size_t
eb_http_event_subject_len(const eb_http_event_t *ev)
{
    return sizeof(eb_subject_acs) - 1 + ev->region.len + 1 + ev->account.len
           + sizeof(eb_subject_bus) - 1 + ev->bus.len
           + sizeof(eb_subject_src) - 1 + ev->source.len;
}


/* empty fields may have NULL data: memcpy(p, NULL, 0) is undefined */
static unsigned char *
eb_cpy(unsigned char *p, const void *src, size_t len)
{
    if (len) {
        memcpy(p, src, len);
    }

    return p + len;
}


static int
eb_bytes_cmp(eb_bytes_t a, eb_bytes_t b)
{
    size_t  n;
    int     rc;

    n = a.len < b.len ? a.len : b.len;
    rc = n ? memcmp(a.data, b.data, n) : 0;

    if (rc == 0) {
        rc = (a.len > b.len) - (a.len < b.len);
    }

    return rc;
}


size_t
eb_http_event_subject(const eb_http_event_t *ev, unsigned char *buf)
{
    unsigned char  *p;

    p = eb_cpy(buf, eb_subject_acs, sizeof(eb_subject_acs) - 1);
    p = eb_cpy(p, ev->region.data, ev->region.len);
    *p++ = ':';
    p = eb_cpy(p, ev->account.data, ev->account.len);
    p = eb_cpy(p, eb_subject_bus, sizeof(eb_subject_bus) - 1);
    p = eb_cpy(p, ev->bus.data, ev->bus.len);
    p = eb_cpy(p, eb_subject_src, sizeof(eb_subject_src) - 1);
    p = eb_cpy(p, ev->source.data, ev->source.len);

    return (size_t) (p - buf);
}


typedef struct {
    const eb_kv_t  *kv;
    size_t          index;
} eb_kv_ref_t;


static int
eb_kv_cmp(const void *a, const void *b)
{
    const eb_kv_ref_t  *x = a, *y = b;
    int                 rc;

    rc = eb_bytes_cmp(x->kv->name, y->kv->name);

    if (rc == 0) {
        /* keep the order of arrival among equal names */
        rc = (x->index > y->index) - (x->index < y->index);
    }

    return rc;
}


/*
 * A name with a NUL (a query argument "a%00") gets U+FFFD in its place:
 * yajl's tree cuts "a\u0000" at the NUL and the matcher drops the NUL,
 * so both would read it as "a", and eb_json_validate() refuses it in a
 * key. kv is then a copy in scratch memory, taken before the merge.
 */
static const eb_kv_t *
eb_kv_names_fix(const eb_http_event_t *ev, const eb_kv_t *kv, size_t n)
{
    size_t          i, k, nul;
    eb_kv_t        *copy;
    unsigned char  *p;

    for (i = 0; i < n; i++) {
        if (kv[i].name.len && memchr(kv[i].name.data, '\0', kv[i].name.len))
        {
            break;
        }
    }

    if (i == n) {
        return kv;
    }

    copy = ev->alloc(ev->alloc_ctx, n * sizeof(eb_kv_t));
    if (copy == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        copy[i] = kv[i];

        for (nul = 0, k = 0; k < kv[i].name.len; k++) {
            nul += (kv[i].name.data[k] == '\0');
        }

        if (nul == 0) {
            continue;
        }

        p = ev->alloc(ev->alloc_ctx, kv[i].name.len + 2 * nul);
        if (p == NULL) {
            return NULL;
        }

        copy[i].name.data = p;
        copy[i].name.len = kv[i].name.len + 2 * nul;

        for (k = 0; k < kv[i].name.len; k++) {
            if (kv[i].name.data[k] == '\0') {
                p = eb_cpy(p, "\xef\xbf\xbd", 3);

            } else {
                *p++ = kv[i].name.data[k];
            }
        }
    }

    return copy;
}


/* Emits an object of kv pairs sorted by name; values of a repeated name
 * are joined with sep, in the order they arrived. */
static int
eb_gen_kv_object(yajl_gen g, const eb_http_event_t *ev, const eb_kv_t *kv,
    size_t n, const char *sep)
{
    eb_kv_ref_t    *refs;
    unsigned char  *buf, *p;
    size_t          i, j, k, len, seplen;

    EB_TRY(yajl_gen_map_open(g));

    if (n == 0) {
        EB_TRY(yajl_gen_map_close(g));
        return 0;
    }

    kv = eb_kv_names_fix(ev, kv, n);
    if (kv == NULL) {
        return -1;
    }

    refs = ev->alloc(ev->alloc_ctx, n * sizeof(eb_kv_ref_t));
    if (refs == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        refs[i].kv = &kv[i];
        refs[i].index = i;
    }

    qsort(refs, n, sizeof(eb_kv_ref_t), eb_kv_cmp);

    seplen = strlen(sep);

    for (i = 0; i < n; i = j) {
        len = refs[i].kv->value.len;

        for (j = i + 1; j < n; j++) {
            if (eb_bytes_cmp(refs[j].kv->name, refs[i].kv->name) != 0) {
                break;
            }

            len += seplen + refs[j].kv->value.len;
        }

        EB_TRY(eb_gen_bytes(g, refs[i].kv->name));

        if (j == i + 1) {
            EB_TRY(eb_gen_bytes(g, refs[i].kv->value));
            continue;
        }

        buf = ev->alloc(ev->alloc_ctx, len);
        if (buf == NULL) {
            return -1;
        }

        p = eb_cpy(buf, refs[i].kv->value.data, refs[i].kv->value.len);

        for (k = i + 1; k < j; k++) {
            p = eb_cpy(p, sep, seplen);
            p = eb_cpy(p, refs[k].kv->value.data, refs[k].kv->value.len);
        }

        EB_TRY(yajl_gen_string(g, buf, len));
    }

    EB_TRY(yajl_gen_map_close(g));

    return 0;
}


static int
eb_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


static int
eb_gen_body(yajl_gen g, const eb_http_event_t *ev)
{
    const unsigned char  *p;
    size_t                len;

    if (!ev->body_is_json) {
        EB_TRY(eb_gen_bytes(g, ev->body));
        return 0;
    }

    p = ev->body.data;
    len = ev->body.len;

    while (len && eb_is_space(p[0])) {
        p++;
        len--;
    }

    while (len && eb_is_space(p[len - 1])) {
        len--;
    }

    /*
     * The body was validated as one JSON value; yajl_gen_number inserts
     * text verbatim as a single value, so the body keeps its exact bytes
     * (numbers, escapes, key order) without a second parse.
     */
    EB_TRY(yajl_gen_number(g, (const char *) p, len));

    return 0;
}


int
eb_http_event_encode(yajl_gen g, const eb_http_event_t *ev)
{
    unsigned char  *subject;
    size_t          len;

    len = eb_http_event_subject_len(ev);

    subject = ev->alloc(ev->alloc_ctx, len);
    if (subject == NULL) {
        return -1;
    }

    eb_http_event_subject(ev, subject);

    EB_TRY(yajl_gen_map_open(g));

    EB_TRY(eb_gen_lit(g, "specversion"));
    EB_TRY(eb_gen_lit(g, "1.0"));
    EB_TRY(eb_gen_lit(g, "id"));
    EB_TRY(eb_gen_bytes(g, ev->id));
    EB_TRY(eb_gen_lit(g, "source"));
    EB_TRY(eb_gen_bytes(g, ev->source));
    EB_TRY(eb_gen_lit(g, "type"));
    EB_TRY(eb_gen_lit(g, EB_HTTP_EVENT_TYPE));
    EB_TRY(eb_gen_lit(g, "subject"));
    EB_TRY(yajl_gen_string(g, subject, len));
    EB_TRY(eb_gen_lit(g, "time"));
    EB_TRY(eb_gen_bytes(g, ev->time));
    EB_TRY(eb_gen_lit(g, "datacontenttype"));
    EB_TRY(eb_gen_lit(g, "application/json"));

    if (ev->traceparent.len) {
        EB_TRY(eb_gen_lit(g, "traceparent"));
        EB_TRY(eb_gen_bytes(g, ev->traceparent));

        if (ev->tracestate.len) {
            EB_TRY(eb_gen_lit(g, "tracestate"));
            EB_TRY(eb_gen_bytes(g, ev->tracestate));
        }
    }

    EB_TRY(eb_gen_lit(g, "aliyunpublishtime"));
    EB_TRY(eb_gen_bytes(g, ev->publish_time));
    EB_TRY(eb_gen_lit(g, "aliyuneventbusname"));
    EB_TRY(eb_gen_bytes(g, ev->bus));
    EB_TRY(eb_gen_lit(g, "aliyunregionid"));
    EB_TRY(eb_gen_bytes(g, ev->region));
    EB_TRY(eb_gen_lit(g, "aliyunaccountid"));
    EB_TRY(eb_gen_bytes(g, ev->account));
    EB_TRY(eb_gen_lit(g, "aliyunpublishaddr"));
    EB_TRY(eb_gen_bytes(g, ev->publish_addr));

    EB_TRY(eb_gen_lit(g, "data"));
    EB_TRY(yajl_gen_map_open(g));

    EB_TRY(eb_gen_lit(g, "headers"));
    if (eb_gen_kv_object(g, ev, ev->headers, ev->nheaders, ", ") != 0) {
        return -1;
    }

    EB_TRY(eb_gen_lit(g, "path"));
    EB_TRY(eb_gen_bytes(g, ev->path));
    EB_TRY(eb_gen_lit(g, "httpMethod"));
    EB_TRY(eb_gen_bytes(g, ev->method));

    EB_TRY(eb_gen_lit(g, "queryString"));
    if (eb_gen_kv_object(g, ev, ev->query, ev->nquery, ",") != 0) {
        return -1;
    }

    EB_TRY(eb_gen_lit(g, "body"));
    if (eb_gen_body(g, ev) != 0) {
        return -1;
    }

    EB_TRY(yajl_gen_map_close(g));
    EB_TRY(yajl_gen_map_close(g));

    return 0;
}
