/*
 * W3C Trace Context at the edge (eventbridge_trace_context): the
 * request's traceparent and tracestate headers become the event's
 * distributed tracing extension attributes (src/core/eb_trace_context.c);
 * a request without a valid traceparent starts a new trace. A broken
 * header never costs the event: it is ignored, as the specification
 * asks of a receiver, and the trace restarted.
 */

#include "ngx_http_eventbridge.h"
#include "eb_trace_context.h"


static ngx_int_t ngx_http_eventbridge_tracestate(ngx_http_request_t *r,
    ngx_str_t *tracestate);


#define ngx_http_eventbridge_named(h, name)                                 \
    ((h)->key.len == sizeof(name) - 1                                         \
     && ngx_strncasecmp((h)->key.data, (u_char *) name, sizeof(name) - 1)    \
        == 0)


ngx_int_t
ngx_http_eventbridge_trace_context(ngx_http_request_t *r,
    ngx_str_t *traceparent, ngx_str_t *tracestate)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *tp;

    tp = NULL;
    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_eventbridge_named(&h[i], "traceparent")) {
                tp = &h[i];
                n++;
            }
        }
    }

    /* two traceparent headers say two different things: neither is kept */
    if (n == 1 && eb_traceparent_valid(tp->value.data, tp->value.len)) {
        *traceparent = tp->value;
        return ngx_http_eventbridge_tracestate(r, tracestate);
    }

    if (n) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eventbridge: traceparent ignored (%ui headers, or "
                       "not valid): a new trace", n);
    }

    /* a restarted trace does not take the old one's tracestate */
    tracestate->len = 0;
    tracestate->data = NULL;

    traceparent->data = ngx_pnalloc(r->pool, EB_TRACEPARENT_LEN);
    if (traceparent->data == NULL) {
        return NGX_ERROR;
    }

    traceparent->len = EB_TRACEPARENT_LEN;

    return ngx_http_eventbridge_traceparent_new(traceparent->data);
}


/* Every tracestate header, joined with commas (the specification's rule
 * for a list split over several headers), checked and cut to
 * EB_TRACESTATE_MAX; a malformed list is dropped, the traceparent
 * kept. */
static ngx_int_t
ngx_http_eventbridge_tracestate(ngx_http_request_t *r, ngx_str_t *tracestate)
{
    u_char           *p, *all;
    size_t            len;
    ssize_t           n;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    tracestate->len = 0;
    tracestate->data = NULL;

    len = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_eventbridge_named(&h[i], "tracestate")) {
                len += h[i].value.len + 1;
            }
        }
    }

    if (len == 0) {
        return NGX_OK;
    }

    all = ngx_pnalloc(r->pool, len);
    if (all == NULL) {
        return NGX_ERROR;
    }

    p = all;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_eventbridge_named(&h[i], "tracestate")) {
                if (p > all) {
                    *p++ = ',';
                }

                p = ngx_cpymem(p, h[i].value.data, h[i].value.len);
            }
        }
    }

    tracestate->data = ngx_pnalloc(r->pool, EB_TRACESTATE_MAX);
    if (tracestate->data == NULL) {
        return NGX_ERROR;
    }

    n = eb_tracestate_normalize(tracestate->data, EB_TRACESTATE_MAX, all,
                                p - all);

    if (n < 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eventbridge: malformed tracestate ignored");
        n = 0;
    }

    tracestate->len = n;

    return NGX_OK;
}
