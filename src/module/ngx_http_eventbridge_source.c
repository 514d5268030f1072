/*
 * The HTTP event source: a content handler that checks the request (see
 * ngx_http_eventbridge_security.c), reads the body and turns the request
 * into a CloudEvent, which ngx_http_eventbridge_append.c hands to Redis.
 * The answer (200 with the event id) is sent only once Redis acknowledged
 * the append; 503 with Retry-After when it cannot.
 */

#include "ngx_http_eventbridge.h"
#include "eb_http_event.h"
#include "eb_json.h"
#include "eb_trace_context.h"
#include "eb_time.h"
#include "eb_utf8.h"

#include <yajl/yajl_gen.h>


#define EB_JSON_ERROR_MAX  256


/* JSON output of yajl_gen, grown in the request pool */
typedef struct {
    ngx_pool_t  *pool;
    u_char      *start;
    u_char      *pos;
    u_char      *end;
    ngx_uint_t   failed;
} ngx_http_eventbridge_out_t;


static void ngx_http_eventbridge_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_eventbridge_publish(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx);
static ngx_int_t ngx_http_eventbridge_answer(ngx_http_request_t *r);


/* per worker: a pool of the kernel's random bytes, empty after fork */
static eb_uuid_gen_t  ngx_http_eventbridge_ids;


void
ngx_http_eventbridge_source_init_worker(ngx_cycle_t *cycle)
{
    eb_uuid_gen_init(&ngx_http_eventbridge_ids);
}


ngx_int_t
ngx_http_eventbridge_uuid(ngx_uint_t version, u_char *out)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    if (eb_uuid(&ngx_http_eventbridge_ids, version,
                (uint64_t) tp->sec * 1000 + tp->msec, (char *) out)
        != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "eventbridge: getrandom() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_traceparent_new(u_char *out)
{
    if (eb_traceparent_new(&ngx_http_eventbridge_ids, (char *) out) != 0) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "eventbridge: getrandom() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_source_handler(ngx_http_request_t *r)
{
    return ngx_http_eventbridge_read_event(r, ngx_http_eventbridge_body_handler);
}


static void
ngx_http_eventbridge_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    rc = ngx_http_eventbridge_publish(r, ctx);

    /* NGX_DONE: Redis has the command; the reply or the timer finalizes */
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


ngx_int_t
ngx_http_eventbridge_collect_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                    *p;
    off_t                      len;
    ngx_chain_t               *cl;
    ngx_http_core_loc_conf_t  *clcf;

    body->len = 0;
    body->data = (u_char *) "";

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {

        /* reading a temp file back would block the worker: bodies are
         * kept in memory (the location's client_body_buffer_size is
         * raised to client_max_body_size at configuration time) */
        if (cl->buf->in_file) {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            ngx_http_eventbridge_count_reject(r, EB_REJECT_BODY_TOO_LARGE);

            return ngx_http_eventbridge_send_error(r,
                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "PayloadTooLarge",
                       "request body exceeds client_body_buffer_size "
                       "(%uz bytes)", clcf->client_body_buffer_size);
        }

        len += ngx_buf_size(cl->buf);
    }

    /* empty bufs (a chunked body's last, an empty body) may have NULL pos */
    if (len == 0) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL) {
        body->data = cl->buf->pos;
        body->len = len;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body->data = p;
    body->len = len;

    for ( /* void */ ; cl; cl = cl->next) {
        if (cl->buf->last > cl->buf->pos) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    return NGX_OK;
}


/* yajl allocations live in the request pool and die with it */

static void *
ngx_http_eventbridge_yajl_malloc(void *ctx, size_t size)
{
    size_t  *p;

    p = ngx_palloc(ctx, size + 2 * sizeof(size_t));
    if (p == NULL) {
        return NULL;
    }

    p[0] = size;
    return p + 2;
}


static void *
ngx_http_eventbridge_yajl_realloc(void *ctx, void *ptr, size_t size)
{
    void    *p;
    size_t   old;

    if (ptr == NULL) {
        return ngx_http_eventbridge_yajl_malloc(ctx, size);
    }

    old = ((size_t *) ptr)[-2];

    if (size <= old) {
        return ptr;
    }

    p = ngx_http_eventbridge_yajl_malloc(ctx, size);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, ptr, old);
    return p;
}


static void
ngx_http_eventbridge_yajl_free(void *ctx, void *ptr)
{
}


void
ngx_http_eventbridge_pool_afs(ngx_http_request_t *r, yajl_alloc_funcs *afs)
{
    afs->malloc = ngx_http_eventbridge_yajl_malloc;
    afs->realloc = ngx_http_eventbridge_yajl_realloc;
    afs->free = ngx_http_eventbridge_yajl_free;
    afs->ctx = r->pool;
}


static void *
ngx_http_eventbridge_scratch(void *ctx, size_t size)
{
    return ngx_palloc(ctx, size);
}


static void
ngx_http_eventbridge_out_print(void *data, const char *s, size_t len)
{
    ngx_http_eventbridge_out_t  *out = data;

    u_char  *p;
    size_t   size;

    if (out->failed || len == 0) {
        return;
    }

    if ((size_t) (out->end - out->pos) < len) {
        size = 2 * (out->end - out->start);
        if (size < (size_t) (out->pos - out->start) + len) {
            size = (out->pos - out->start) + len;
        }

        p = ngx_pnalloc(out->pool, size);
        if (p == NULL) {
            out->failed = 1;
            return;
        }

        out->pos = ngx_cpymem(p, out->start, out->pos - out->start);
        out->start = p;
        out->end = p + size;
    }

    out->pos = ngx_cpymem(out->pos, s, len);
}


static ngx_int_t
ngx_http_eventbridge_reject(ngx_http_request_t *r,
    ngx_http_eventbridge_reject_e reason, const char *code,
    const char *what, const char *detail)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "eventbridge: rejected: %s%s%s", what,
                  detail ? ": " : "", detail ? detail : "");

    ngx_http_eventbridge_count_reject(r, reason);

    return ngx_http_eventbridge_send_error(r, NGX_HTTP_BAD_REQUEST, code,
                                           "%s%s%s", what,
                                           detail ? ": " : "",
                                           detail ? detail : "");
}


/* The request headers, lower-cased, without credentials. */
static ngx_int_t
ngx_http_eventbridge_headers(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, eb_kv_t **kvp, size_t *np,
    ngx_str_t *bad)
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

            if (ngx_http_eventbridge_stripped(lcf, &h[i])) {
                continue;
            }

            if (eb_utf8_invalid_at(h[i].lowcase_key, h[i].key.len) >= 0
                || eb_utf8_invalid_at(h[i].value.data, h[i].value.len) >= 0)
            {
                *bad = h[i].key;
                return NGX_DECLINED;
            }

            kv[n].name.data = h[i].lowcase_key;
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


/* The query arguments, decoded, without "token". */
static ngx_int_t
ngx_http_eventbridge_query(ngx_http_request_t *r, eb_kv_t **kvp, size_t *np)
{
    u_char   *p, *last, *arg, *eq, *end, *buf;
    size_t    n, len;
    eb_kv_t  *kv;

    *np = 0;

    if (r->args.len == 0) {
        *kvp = NULL;
        return NGX_OK;
    }

    p = r->args.data;
    last = p + r->args.len;

    n = 1;
    for (arg = p; arg < last; arg++) {
        if (*arg == '&') {
            n++;
        }
    }

    kv = ngx_palloc(r->pool, n * sizeof(eb_kv_t));
    buf = ngx_pnalloc(r->pool, r->args.len);
    if (kv == NULL || buf == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        arg = p;
        p = end + 1;

        if (end == arg) {
            continue;
        }

        eq = ngx_strlchr(arg, end, '=');
        if (eq == NULL) {
            eq = end;
        }

        len = eb_form_decode(buf, arg, eq - arg);

        /* ngx_http_arg() matched the token ignoring case: so does this */
        if (len == 5 && ngx_strncasecmp(buf, (u_char *) "token", 5) == 0) {
            continue;
        }

        kv[n].name.data = buf;
        kv[n].name.len = len;
        buf += len;

        kv[n].value.data = buf;
        kv[n].value.len = (eq < end) ? eb_form_decode(buf, eq + 1, end - eq - 1)
                                     : 0;
        buf += kv[n].value.len;

        if (eb_utf8_invalid_at(kv[n].name.data, kv[n].name.len) >= 0
            || eb_utf8_invalid_at(kv[n].value.data, kv[n].value.len) >= 0)
        {
            return NGX_DECLINED;
        }

        n++;
    }

    *kvp = kv;
    *np = n;

    return NGX_OK;
}


/* Decides how the body travels: validated JSON, or a UTF-8 string. */
static ngx_int_t
ngx_http_eventbridge_classify_body(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *body, int *is_json)
{
    char               err[EB_JSON_ERROR_MAX];
    size_t             len;
    u_char            *p, *last, *out;
    ssize_t            bad;
    ngx_uint_t         declared;
    eb_json_rc_t       jrc;
    yajl_alloc_funcs   afs;

    *is_json = 0;

    declared = r->headers_in.content_type
               && eb_json_content_type(r->headers_in.content_type->value.data,
                                       r->headers_in.content_type->value.len);

    if (body->len == 0) {
        return NGX_OK;
    }

    /* undeclared bodies that look like an object or array are tried as
     * JSON too: many webhook senders omit the Content-Type */
    if (!declared) {
        p = body->data;
        last = p + body->len;

        while (p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                            || *p == '\n'))
        {
            p++;
        }

        if (p == last || (*p != '{' && *p != '[')) {
            goto string;
        }
    }

    /* validated and compacted in one pass (events are stored and matched,
     * not read): in place when a failure ends the request, otherwise
     * into a copy, as the body is then taken as a string as it came */
    if (declared) {
        out = body->data;

    } else {
        out = ngx_pnalloc(r->pool, body->len);
        if (out == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_eventbridge_pool_afs(r, &afs);

    jrc = eb_json_validate_minify(body->data, body->len, lcf->max_json_depth,
                                  &afs, out, &len, err, sizeof(err));

    switch (jrc) {

    case EB_JSON_OK:
        body->data = out;
        body->len = len;
        *is_json = 1;
        return NGX_OK;

    case EB_JSON_TOO_DEEP:
        return ngx_http_eventbridge_reject(r, EB_REJECT_JSON_TOO_DEEP,
                                           "JSONTooDeep", err, NULL);

    case EB_JSON_SYNTAX:
        if (declared) {
            return ngx_http_eventbridge_reject(r, EB_REJECT_INVALID_JSON,
                                               "InvalidJSON",
                                               "body is not valid JSON", err);
        }
        break;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

string:

    bad = eb_utf8_invalid_at(body->data, body->len);

    if (bad >= 0) {
        ngx_snprintf((u_char *) err, sizeof(err), "invalid byte at offset %z%Z",
                     bad);
        return ngx_http_eventbridge_reject(r, EB_REJECT_INVALID_UTF8,
                                           "InvalidUTF8",
                                           "body is not valid UTF-8", err);
    }

    return NGX_OK;
}


void
ngx_http_eventbridge_client_addr(ngx_http_request_t *r, ngx_str_t *addr)
{
    *addr = r->connection->addr_text;

    /* an IPv4 client on a dual-stack socket: "::ffff:192.0.2.7" */
    if (addr->len > 7
        && ngx_strncasecmp(addr->data, (u_char *) "::ffff:", 7) == 0
        && ngx_strlchr(addr->data + 7, addr->data + addr->len, '.'))
    {
        addr->data += 7;
        addr->len -= 7;
    }
}


/* Generates the event into one request-pool buffer. */
static ngx_int_t
ngx_http_eventbridge_encode(ngx_http_request_t *r, eb_http_event_t *ev,
    ngx_str_t *json)
{
    size_t                      size;
    yajl_gen                    g;
    yajl_alloc_funcs            afs;
    ngx_http_eventbridge_out_t  out;

    /* usually enough for the whole event: one allocation */
    size = ev->body.len + 1024 + 128 * (ev->nheaders + ev->nquery);

    out.pool = r->pool;
    out.failed = 0;
    out.start = ngx_pnalloc(r->pool, size);
    if (out.start == NULL) {
        return NGX_ERROR;
    }
    out.pos = out.start;
    out.end = out.start + size;

    ngx_http_eventbridge_pool_afs(r, &afs);

    g = yajl_gen_alloc(&afs);
    if (g == NULL) {
        return NGX_ERROR;
    }

    yajl_gen_config(g, yajl_gen_print_callback,
                    ngx_http_eventbridge_out_print, &out);

    if (eb_http_event_encode(g, ev) != 0 || out.failed) {
        return NGX_ERROR;
    }

    json->data = out.start;
    json->len = out.pos - out.start;

    return NGX_OK;
}


/* Both timestamps change at most once a millisecond: format them then. */
void
ngx_http_eventbridge_timestamps(ngx_str_t *local, ngx_str_t *utc)
{
    ngx_time_t  *tp;

    static time_t      sec = -1;
    static ngx_uint_t  msec;
    static ngx_int_t   gmtoff;
    static u_char      t1[EB_RFC3339_MAX], t2[EB_RFC3339_MAX];
    static size_t      t1len, t2len;

    tp = ngx_timeofday();

    if (tp->sec != sec || tp->msec != msec || tp->gmtoff != gmtoff) {
        sec = tp->sec;
        msec = tp->msec;
        gmtoff = tp->gmtoff;

        t1len = eb_time_rfc3339((char *) t1, sec, msec, gmtoff, 0);
        t2len = eb_time_rfc3339((char *) t2, sec, msec, 0, 1);
    }

    local->data = t1;
    local->len = t1len;
    utc->data = t2;
    utc->len = t2len;
}


static ngx_int_t
ngx_http_eventbridge_publish(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx)
{
    int                                is_json;
    ngx_int_t                          rc;
    ngx_str_t                          body, json, bad, t1, t2, addr;
    ngx_str_t                          tp, ts;
    eb_http_event_t                    ev;
    ngx_http_eventbridge_loc_conf_t   *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    rc = ngx_http_eventbridge_collect_body(r, &body);
    if (rc != NGX_OK) {
        return rc;
    }

    /* on the raw bytes, before the body is compacted or anything stored */
    rc = ngx_http_eventbridge_check_signature(r, lcf, &body);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_eventbridge_classify_body(r, lcf, &body, &is_json);
    if (rc != NGX_OK || r->header_sent) {
        return rc;
    }

    ngx_memzero(&ev, sizeof(eb_http_event_t));

    rc = ngx_http_eventbridge_headers(r, lcf, (eb_kv_t **) &ev.headers,
                                      &ev.nheaders, &bad);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_eventbridge_reject(r, EB_REJECT_INVALID_UTF8,
                                           "InvalidUTF8",
                                           "a request header is not valid "
                                           "UTF-8", NULL);
    }

    rc = ngx_http_eventbridge_query(r, (eb_kv_t **) &ev.query, &ev.nquery);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_eventbridge_reject(r, EB_REJECT_INVALID_UTF8,
                                           "InvalidUTF8",
                                           "the query string is not valid "
                                           "UTF-8", NULL);
    }

    if (eb_utf8_invalid_at(r->uri.data, r->uri.len) >= 0) {
        return ngx_http_eventbridge_reject(r, EB_REJECT_INVALID_UTF8,
                                           "InvalidUTF8",
                                           "the path is not valid UTF-8",
                                           NULL);
    }

    if (ngx_http_eventbridge_uuid(lcf->id_format, ctx->event_id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->event_id_str.data = ctx->event_id;
    ctx->event_id_str.len = EB_UUID_LEN;

    ev.id.data = ctx->event_id;
    ev.id.len = EB_UUID_LEN;
    ev.source.data = lcf->source.data;
    ev.source.len = lcf->source.len;
    ev.bus.data = lcf->bus.data;
    ev.bus.len = lcf->bus.len;
    ev.region.data = lcf->region.data;
    ev.region.len = lcf->region.len;
    ev.account.data = lcf->account.data;
    ev.account.len = lcf->account.len;
    ngx_http_eventbridge_timestamps(&t1, &t2);
    ev.time.data = t1.data;
    ev.time.len = t1.len;
    ev.publish_time.data = t2.data;
    ev.publish_time.len = t2.len;
    ngx_http_eventbridge_client_addr(r, &addr);
    ev.publish_addr.data = addr.data;
    ev.publish_addr.len = addr.len;
    ev.path.data = r->uri.data;
    ev.path.len = r->uri.len;
    ev.method.data = r->method_name.data;
    ev.method.len = r->method_name.len;
    ev.body.data = body.data;
    ev.body.len = body.len;
    ev.body_is_json = is_json;
    ev.alloc = ngx_http_eventbridge_scratch;
    ev.alloc_ctx = r->pool;

    if (lcf->trace_context) {
        if (ngx_http_eventbridge_trace_context(r, &tp, &ts) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ev.traceparent.data = tp.data;
        ev.traceparent.len = tp.len;
        ev.tracestate.data = ts.data;
        ev.tracestate.len = ts.len;
    }

    if (ngx_http_eventbridge_encode(r, &ev, &json) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (lcf->dedupe) {
        rc = ngx_http_eventbridge_dedupe_source(r, ctx, &body, is_json);
        if (rc != NGX_OK || r->header_sent) {
            return rc;
        }
    }

    return ngx_http_eventbridge_append(r, &json, 1,
                                       ngx_http_eventbridge_answer);
}


/* Redis has the event: 200 with its id */
static ngx_int_t
ngx_http_eventbridge_answer(ngx_http_request_t *r)
{
    ngx_str_t                    body;
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    body.len = sizeof("{\"eventId\":\"\"}") - 1 + EB_UUID_LEN;
    body.data = ngx_pnalloc(r->pool, body.len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(body.data, "{\"eventId\":\"%V\"}", &ctx->event_id_str);

    return ngx_http_eventbridge_send_json(r, NGX_HTTP_OK, &body);
}
