/*
 * The PutEvents endpoint (`eventbridge_put_events bus=BUS;`): CloudEvents
 * 1.0 over HTTP in structured, batched and binary mode, checked and
 * normalised by src/core/eb_cloudevent.c, given the bus's attributes, and
 * appended through ngx_http_eventbridge_append.c. All valid entries of a
 * request go to Redis in one MULTI/EXEC. The answer reports each entry:
 * {"failedEntryCount": N, "entries": [{"eventId": ...} or
 * {"errorCode": ..., "errorMessage": ...}]}.
 */

#include "ngx_http_eventbridge.h"
#include "eb_cloudevent.h"


typedef struct {
    ngx_http_request_t  *r;
    ngx_array_t         *events;     /* ngx_str_t: accepted events */
    eb_ce_answer_t      *answer;
    ngx_uint_t           failed;
} ngx_http_eventbridge_batch_t;


static void ngx_http_eventbridge_put_events_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_eventbridge_put_events_answer(
    ngx_http_request_t *r);


ngx_int_t
ngx_http_eventbridge_put_events_handler(ngx_http_request_t *r)
{
    return ngx_http_eventbridge_read_event(r, ngx_http_eventbridge_put_events_body);
}


/* the malloc'ed buffers of the core live as long as the request */
static void
ngx_http_eventbridge_buf_cleanup(void *data)
{
    eb_buf_free(data);
}


static void
ngx_http_eventbridge_answer_cleanup(void *data)
{
    eb_ce_answer_free(data);
}


static ngx_int_t
ngx_http_eventbridge_keep(ngx_http_request_t *r, ngx_str_t *dst,
    eb_bytes_t *src)
{
    dst->data = ngx_pnalloc(r->pool, src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);
    dst->len = src->len;

    return NGX_OK;
}


/* called by eb_ce_batch() for each entry, in order */
static int
ngx_http_eventbridge_batch_entry(void *data, const eb_ce_entry_t *entry)
{
    ngx_http_eventbridge_batch_t  *b = data;

    ngx_str_t  *ev;

    if (eb_ce_answer_add(b->answer, entry) != 0) {
        return -1;
    }

    if (entry->error.code) {
        b->failed++;
        return 0;
    }

    ev = ngx_array_push(b->events);
    if (ev == NULL
        || ngx_http_eventbridge_keep(b->r, ev, (eb_bytes_t *) &entry->event)
           != NGX_OK)
    {
        return -1;
    }

    return 0;
}


/* The request's headers as (name, value) pairs for binary mode. */
static ngx_int_t
ngx_http_eventbridge_header_pairs(ngx_http_request_t *r, eb_kv_t **kvp,
    size_t *np)
{
    size_t            n;
    eb_kv_t          *kv;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    kv = ngx_palloc(r->pool, (n ? n : 1) * sizeof(eb_kv_t));
    if (kv == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            kv[n].name.data = h[i].key.data;
            kv[n].name.len = h[i].key.len;
            kv[n].value.data = h[i].value.data;
            kv[n].value.len = h[i].value.len;
            n++;
        }
    }

    *kvp = kv;
    *np = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eventbridge_put_events_finish(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx, eb_ce_answer_t *answer,
    ngx_array_t *events, ngx_uint_t single)
{
    eb_buf_t                         *out;
    eb_bytes_t                        body;
    ngx_pool_cleanup_t               *cln;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(eb_buf_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = cln->data;
    eb_buf_init(out);
    cln->handler = ngx_http_eventbridge_buf_cleanup;

    if (eb_ce_answer_finish(answer, out) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = out->data;
    body.len = out->len;

    if (ngx_http_eventbridge_keep(r, &ctx->answer_body, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* nothing to store: a single invalid event, or a batch of invalid
     * entries (or none) is answered at once */
    if (events->nelts == 0) {
        if (single) {
            ngx_http_eventbridge_count_reject(r, EB_REJECT_INVALID_EVENT);
        }

        return ngx_http_eventbridge_send_json(r,
                                              single ? NGX_HTTP_BAD_REQUEST
                                                     : NGX_HTTP_OK,
                                              &ctx->answer_body);
    }

    /* a repeated (source, id) is answered as a success: its id is the
     * original's, so the answer above holds for it */
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    if (lcf->dedupe
        && ngx_http_eventbridge_dedupe_events(r, ctx, events->elts,
                                              events->nelts)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_append(r, events->elts, events->nelts,
                                       ngx_http_eventbridge_put_events_answer);
}


static ngx_int_t
ngx_http_eventbridge_whole_error(ngx_http_request_t *r, eb_ce_error_t *err)
{
    ngx_uint_t  status;

    status = ngx_strcmp(err->code, EB_CE_BATCH_TOO_LARGE) == 0
             ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE : NGX_HTTP_BAD_REQUEST;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "eventbridge put_events: rejected: %s: %s",
                  err->code, err->message);

    ngx_http_eventbridge_count_reject(r, EB_REJECT_INVALID_EVENT);

    return ngx_http_eventbridge_send_error(r, status, err->code, "%s",
                                           err->message);
}


static ngx_int_t
ngx_http_eventbridge_put_events_process(ngx_http_request_t *r)
{
    size_t                            nkv;
    eb_kv_t                          *kv;
    eb_buf_t                         *out;
    ngx_str_t                         body, t1, t2, addr, id, tp, ts;
    ngx_int_t                         st;
    eb_ce_rc_t                        rc;
    eb_ce_ctx_t                       ce;
    ngx_array_t                      *events;
    eb_ce_mode_t                      mode;
    eb_ce_entry_t                     entry;
    eb_ce_error_t                     err;
    eb_ce_answer_t                   *answer;
    yajl_alloc_funcs                  afs;
    ngx_table_elt_t                  *ct;
    ngx_pool_cleanup_t               *cln;
    ngx_http_eventbridge_ctx_t       *ctx;
    ngx_http_eventbridge_batch_t      batch;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    st = ngx_http_eventbridge_collect_body(r, &body);
    if (st != NGX_OK) {
        return st;
    }

    ct = r->headers_in.content_type;
    mode = eb_ce_mode(ct ? ct->value.data : NULL, ct ? ct->value.len : 0);

    if (mode == EB_CE_MODE_UNSUPPORTED) {
        ngx_http_eventbridge_count_reject(r, EB_REJECT_INVALID_EVENT);
        return ngx_http_eventbridge_send_error(r,
                   NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType",
                   "only the JSON event format is supported: "
                   "application/cloudevents+json, "
                   "application/cloudevents-batch+json or binary mode");
    }

    ngx_http_eventbridge_timestamps(&t1, &t2);
    ngx_http_eventbridge_client_addr(r, &addr);
    ngx_http_eventbridge_pool_afs(r, &afs);

    ngx_memzero(&ce, sizeof(eb_ce_ctx_t));
    ce.bus.data = lcf->bus.data;
    ce.bus.len = lcf->bus.len;
    ce.region.data = lcf->region.data;
    ce.region.len = lcf->region.len;
    ce.account.data = lcf->account.data;
    ce.account.len = lcf->account.len;
    ce.publish_time.data = t2.data;
    ce.publish_time.len = t2.len;
    ce.publish_addr.data = addr.data;
    ce.publish_addr.len = addr.len;
    ce.max_depth = lcf->max_json_depth;
    ce.max_event_size = EB_CE_DEFAULT_MAX_EVENT_SIZE;
    ce.max_batch_size = 0;          /* client_max_body_size bounds it */
    ce.max_entries = lcf->max_batch;
    ce.afs = &afs;

    /* events without a traceparent get the request's, or a new one */
    if (lcf->trace_context) {
        if (ngx_http_eventbridge_trace_context(r, &tp, &ts) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ce.trace = 1;
        ce.traceparent.data = tp.data;
        ce.traceparent.len = tp.len;
        ce.tracestate.data = ts.data;
        ce.tracestate.len = ts.len;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(eb_buf_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = cln->data;
    eb_buf_init(out);
    cln->handler = ngx_http_eventbridge_buf_cleanup;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(eb_ce_answer_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    answer = cln->data;
    eb_ce_answer_init(answer);
    cln->handler = ngx_http_eventbridge_answer_cleanup;

    events = ngx_array_create(r->pool, 1, sizeof(ngx_str_t));
    if (events == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    batch.r = r;
    batch.events = events;
    batch.answer = answer;
    batch.failed = 0;

    if (mode == EB_CE_MODE_BATCH) {
        rc = eb_ce_batch(&ce, body.data, body.len, out,
                         ngx_http_eventbridge_batch_entry, &batch, &err);

        if (rc == EB_CE_INVALID) {
            return ngx_http_eventbridge_whole_error(r, &err);
        }

        if (rc != EB_CE_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_eventbridge_put_events_finish(r, ctx, answer, events,
                                                      0);
    }

    if (mode == EB_CE_MODE_STRUCTURED) {
        rc = eb_ce_structured(&ce, body.data, body.len, out, &entry);

    } else {
        if (ngx_http_eventbridge_header_pairs(r, &kv, &nkv) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = eb_ce_binary(&ce, kv, nkv, ct ? ct->value.data : NULL,
                          ct ? ct->value.len : 0, body.data, body.len, out,
                          &entry);
    }

    if (rc != EB_CE_OK && rc != EB_CE_INVALID) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_eventbridge_batch_entry(&batch, &entry) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == EB_CE_OK) {
        /* $eventbridge_event_id: the sender's id */
        if (ngx_http_eventbridge_keep(r, &id, (eb_bytes_t *) &entry.id)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->event_id_str = id;

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "eventbridge put_events: rejected: %s: %s",
                      entry.error.code, entry.error.message);
    }

    return ngx_http_eventbridge_put_events_finish(r, ctx, answer, events, 1);
}


static void
ngx_http_eventbridge_put_events_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_eventbridge_put_events_process(r);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* Redis has every accepted entry */
static ngx_int_t
ngx_http_eventbridge_put_events_answer(ngx_http_request_t *r)
{
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    return ngx_http_eventbridge_send_json(r, NGX_HTTP_OK, &ctx->answer_body);
}
