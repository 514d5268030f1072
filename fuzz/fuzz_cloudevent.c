/*
 * libFuzzer harness: CloudEvents intake (eb_cloudevent.h): the input as
 * a structured event and as a batch; then as a binary-mode message
 * ("Content-Type\nname: value\n...\n\nbody"); and each attribute check,
 * the W3C traceparent and tracestate ones included. Every event accepted
 * must be valid JSON; a tracestate cut to its bound must be within it
 * and come out the same when normalized again.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_cloudevent.h"
#include "eb_json.h"
#include "eb_trace_context.h"


#define EB_FUZZ_HEADERS  16


static void
eb_fuzz_event(const eb_ce_entry_t *entry, eb_ce_answer_t *a)
{
    char  err[256];

    if (entry->error.code == NULL
        && eb_json_validate(entry->event.data, entry->event.len, 128, NULL,
                            err, sizeof(err))
           != EB_JSON_OK)
    {
        abort();
    }

    (void) eb_ce_answer_add(a, entry);
}


static int
eb_fuzz_entry(void *data, const eb_ce_entry_t *entry)
{
    eb_fuzz_event(entry, data);
    return 0;
}


static void
eb_fuzz_binary(const eb_ce_ctx_t *ctx, const uint8_t *p, size_t size,
    eb_buf_t *out, eb_ce_answer_t *a)
{
    size_t          n, k, nh, line;
    eb_kv_t         h[EB_FUZZ_HEADERS];
    eb_ce_entry_t   entry;
    const uint8_t  *end, *ctype, *nl;

    end = p + size;

    nl = memchr(p, '\n', size);
    if (nl == NULL) {
        return;
    }

    ctype = p;
    n = (size_t) (nl - p);
    p = nl + 1;

    for (nh = 0; nh < EB_FUZZ_HEADERS && p < end; nh++) {
        nl = memchr(p, '\n', (size_t) (end - p));
        line = nl ? (size_t) (nl - p) : (size_t) (end - p);

        if (line == 0) {
            p++;
            break;
        }

        for (k = 0; k < line && p[k] != ':'; k++) {
            /* void */
        }

        h[nh].name.data = p;
        h[nh].name.len = k;
        h[nh].value.data = p + (k < line ? k + 1 : k);
        h[nh].value.len = k < line ? line - k - 1 : 0;

        p += line + (nl != NULL);
    }

    (void) eb_ce_binary(ctx, h, nh, n ? ctype : NULL, n, p,
                        (size_t) (end - p), out, &entry);
    eb_fuzz_event(&entry, a);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssize_t          n, m;
    size_t           bad;
    eb_buf_t         out, answer;
    const char      *why;
    eb_ce_ctx_t      ctx;
    eb_ce_entry_t    entry;
    eb_ce_error_t    err;
    eb_ce_answer_t   a;
    unsigned char   *dst;

    memset(&ctx, 0, sizeof(eb_ce_ctx_t));
    ctx.bus.data = (const unsigned char *) "bus";
    ctx.bus.len = 3;
    ctx.publish_time.data = (const unsigned char *) "2024-01-01T00:00:00Z";
    ctx.publish_time.len = 20;
    ctx.max_depth = 16;
    ctx.max_event_size = EB_CE_DEFAULT_MAX_EVENT_SIZE;
    ctx.max_batch_size = EB_CE_DEFAULT_MAX_BATCH_SIZE;
    ctx.max_entries = EB_CE_DEFAULT_MAX_ENTRIES;

    /* the tracing extension checked (and added) for half the inputs */
    ctx.trace = size & 1;
    ctx.traceparent.data = (const unsigned char *)
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    ctx.traceparent.len = EB_TRACEPARENT_LEN;
    ctx.tracestate.data = (const unsigned char *) "rojo=00f067aa0ba902b7";
    ctx.tracestate.len = 21;

    eb_buf_init(&out);
    eb_buf_init(&answer);
    eb_ce_answer_init(&a);

    (void) eb_ce_mode(data, size);

    (void) eb_ce_structured(&ctx, data, size, &out, &entry);
    eb_fuzz_event(&entry, &a);

    (void) eb_ce_batch(&ctx, data, size, &out, eb_fuzz_entry, &a, &err);

    eb_fuzz_binary(&ctx, data, size, &out, &a);

    (void) eb_ce_answer_finish(&a, &answer);

    (void) eb_ce_name_valid(data, size);
    (void) eb_ce_string_invalid_at(data, size, &why);
    (void) eb_ce_uri_reference_valid(data, size);
    (void) eb_ce_uri_valid(data, size);
    (void) eb_ce_timestamp_valid(data, size);
    (void) eb_ce_media_type_valid(data, size);
    (void) eb_ce_base64_valid(data, size);

    dst = malloc(size ? size : 1);
    if (dst) {
        n = eb_ce_header_decode(dst, data, size, &bad);
        if (n > (ssize_t) size) {
            abort();
        }

        (void) eb_traceparent_valid(data, size);

        /* cut to half its length: within the bound, and a fixed point */
        n = eb_tracestate_normalize(dst, size / 2, data, size);
        if (n > (ssize_t) (size / 2)
            || (n >= 0 && eb_tracestate_normalize(NULL, 0, data, size) < n))
        {
            abort();
        }

        if (n > 0) {
            m = eb_tracestate_normalize(dst, (size_t) n, dst, (size_t) n);
            if (m != n) {
                abort();
            }
        }

        free(dst);
    }

    eb_ce_answer_free(&a);
    eb_buf_free(&out);
    eb_buf_free(&answer);

    return 0;
}
