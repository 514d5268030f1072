/*
 * libFuzzer harness: the HTTP source's CloudEvent (eb_http_event.h).
 * Lines give the path, the method, then "name: value" headers and
 * "name=value" query arguments up to an empty line, then the body. As
 * the module does, fields must be UTF-8 and a body that validates is
 * JSON. The event generated must be valid JSON.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_http_event.h"
#include "eb_json.h"
#include "eb_utf8.h"


#define EB_FUZZ_KV      16
#define EB_FUZZ_BLOCKS  64


typedef struct {
    void    *block[EB_FUZZ_BLOCKS];
    size_t   n;
} eb_fuzz_pool_t;


static void *
eb_fuzz_alloc(void *ctx, size_t size)
{
    eb_fuzz_pool_t  *pool = ctx;

    if (pool->n == EB_FUZZ_BLOCKS) {
        return NULL;
    }

    pool->block[pool->n] = malloc(size ? size : 1);

    return pool->block[pool->n++];
}


static int
eb_fuzz_line(const uint8_t **p, const uint8_t *end, eb_bytes_t *b)
{
    const uint8_t  *nl;

    nl = memchr(*p, '\n', (size_t) (end - *p));

    b->data = *p;
    b->len = nl ? (size_t) (nl - *p) : (size_t) (end - *p);
    *p = nl ? nl + 1 : end;

    return eb_utf8_invalid_at(b->data, b->len) < 0;
}


static size_t
eb_fuzz_kv(const uint8_t **p, const uint8_t *end, eb_kv_t *kv, char sep)
{
    size_t       n, k;
    eb_bytes_t   line;

    for (n = 0; n < EB_FUZZ_KV && *p < end; ) {
        if (!eb_fuzz_line(p, end, &line) || line.len == 0) {
            break;
        }

        for (k = 0; k < line.len && line.data[k] != sep; k++) {
            /* void */
        }

        kv[n].name.data = line.data;
        kv[n].name.len = k;
        kv[n].value.data = line.data + (k < line.len ? k + 1 : k);
        kv[n].value.len = k < line.len ? line.len - k - 1 : 0;
        n++;
    }

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                  err[256];
    size_t                i, len;
    yajl_gen              g;
    eb_kv_t               headers[EB_FUZZ_KV], query[EB_FUZZ_KV];
    eb_fuzz_pool_t        pool;
    const uint8_t        *p, *end;
    unsigned char        *subject;
    const unsigned char  *text;
    eb_http_event_t       ev;

    static const eb_bytes_t  fixed = { (const unsigned char *) "x", 1 };

    memset(&ev, 0, sizeof(eb_http_event_t));
    pool.n = 0;

    p = data;
    end = data + size;

    if (!eb_fuzz_line(&p, end, &ev.path) || !eb_fuzz_line(&p, end, &ev.method))
    {
        return 0;
    }

    ev.id = fixed;
    ev.source = fixed;
    ev.bus = fixed;
    ev.region = fixed;
    ev.account = fixed;
    ev.time = fixed;
    ev.publish_time = fixed;
    ev.publish_addr = fixed;
    ev.headers = headers;
    ev.nheaders = eb_fuzz_kv(&p, end, headers, ':');
    ev.query = query;
    ev.nquery = eb_fuzz_kv(&p, end, query, '=');
    ev.body.data = p;
    ev.body.len = (size_t) (end - p);
    ev.alloc = eb_fuzz_alloc;
    ev.alloc_ctx = &pool;

    for (i = 0; i < ev.nheaders; i++) {
        if (eb_utf8_invalid_at(headers[i].value.data, headers[i].value.len)
            >= 0)
        {
            return 0;
        }
    }

    ev.body_is_json = eb_json_validate(ev.body.data, ev.body.len, 32, NULL,
                                       err, sizeof(err))
                      == EB_JSON_OK;

    if (!ev.body_is_json && eb_utf8_invalid_at(ev.body.data, ev.body.len) >= 0)
    {
        return 0;
    }

    subject = malloc(eb_http_event_subject_len(&ev) + 1);
    if (subject) {
        (void) eb_http_event_subject(&ev, subject);
        free(subject);
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return 0;
    }

    if (eb_http_event_encode(g, &ev) == 0
        && yajl_gen_get_buf(g, &text, &len) == yajl_gen_status_ok
        && eb_json_validate(text, len, 64, NULL, err, sizeof(err))
           != EB_JSON_OK)
    {
        abort();
    }

    yajl_gen_free(g);

    for (i = 0; i < pool.n; i++) {
        free(pool.block[i]);
    }

    return 0;
}
