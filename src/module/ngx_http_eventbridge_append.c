/*
 * Handing events to Redis: each event is matched against its bus's rules
 * and appended, with one entry per matched (rule, target), in a single
 * MULTI/EXEC, so that an event is wholly accepted or not at all; with
 * idempotency keys (eventbridge_dedupe), in a single script instead (see
 * ngx_http_eventbridge_dedupe.c). The
 * request waits for EXEC's reply (or eventbridge_redis_timeout); the
 * caller's answer handler sends the 2xx, this file sends the 503s.
 */

#include "ngx_http_eventbridge.h"
#include "ngx_http_eventbridge_redis.h"
#include "eb_order.h"


static void ngx_http_eventbridge_body_read(ngx_http_request_t *r);
static void ngx_http_eventbridge_appended(void *data,
    ngx_http_eventbridge_redis_result_t *res);
static void ngx_http_eventbridge_timeout_handler(ngx_event_t *ev);
static void ngx_http_eventbridge_cleanup(void *data);


static const char  *ngx_http_eventbridge_redis_why[EB_REDIS_ERR_MAX] = {
    "not connected", "too many appends (or bytes) in flight", "timed out",
    "error reply", "connection lost", "too few replicas acknowledged"
};


ngx_http_eventbridge_ctx_t *
ngx_http_eventbridge_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_eventbridge_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_eventbridge_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_eventbridge_module);

    return ctx;
}


/* the request is going away: its reply, if any, must find nobody */
static void
ngx_http_eventbridge_cleanup(void *data)
{
    ngx_http_eventbridge_ctx_t  *ctx = data;

    if (ctx->job) {
        ngx_http_eventbridge_redis_cancel(ctx->job);
        ctx->job = NULL;
    }

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }
}


/* The content phase of every event endpoint: the security checks, before
 * any of the body is read, then the body, which post() processes. */
ngx_int_t
ngx_http_eventbridge_read_event(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt post)
{
    ngx_int_t                         rc;
    ngx_http_eventbridge_ctx_t       *ctx;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    rc = ngx_http_eventbridge_check_access(r, lcf);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    ctx = ngx_http_eventbridge_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->post = post;

    rc = ngx_http_read_client_request_body(r, ngx_http_eventbridge_body_read);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* the append latency is the sender's wait from here on */
static void
ngx_http_eventbridge_body_read(ngx_http_request_t *r)
{
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    ctx->started = ngx_http_eventbridge_metrics_now();
    ctx->post(r);
}


ngx_int_t
ngx_http_eventbridge_unavailable(ngx_http_request_t *r, const char *why)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    ngx_str_set(&h->value, NGX_HTTP_EVENTBRIDGE_RETRY_AFTER);
#if (nginx_version >= 1023000)
    h->next = NULL;            /* 1.23+: the chain of same-name headers */
#endif

    ngx_http_eventbridge_count_reject(r, EB_REJECT_UNAVAILABLE);

    return ngx_http_eventbridge_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "ServiceUnavailable",
                                           "event store unavailable: %s",
                                           why);
}


/* "$LEN\r\nBYTES\r\n": one RESP bulk string */
u_char *
ngx_http_eventbridge_bulk(u_char *p, ngx_str_t *s)
{
    p = ngx_sprintf(p, "$%uz\r\n", s->len);

    if (s->len) {
        p = ngx_cpymem(p, s->data, s->len);
    }

    *p++ = '\r';
    *p++ = '\n';

    return p;
}


/* The partition streams and keys of the event's ordered (rule, target)s:
 * the event is parsed only when one of them is. */
static ngx_int_t
ngx_http_eventbridge_order_event(ngx_http_request_t *r,
    ngx_http_eventbridge_bus_t *bus, ngx_http_eventbridge_matched_t *m)
{
    char                            err[128];
    size_t                          nfo;
    unsigned                        part;
    yajl_val                        tree;
    eb_buf_t                        key;
    ngx_uint_t                      i, t, k;
    ngx_http_eventbridge_rule_t    *rule;
    ngx_http_eventbridge_fanout_t  *fo;

    nfo = 0;
    k = 0;

    for (i = 0; i < m->n; i++) {
        rule = &bus->rules[m->ids[i]];
        for (t = 0; t < rule->ntargets; t++) {
            nfo++;
            k += rule->targets[t].conf != NULL;
        }
    }

    if (k == 0) {
        return NGX_OK;
    }

    m->streams = ngx_pcalloc(r->pool, nfo * sizeof(ngx_str_t));
    m->okeys = ngx_pcalloc(r->pool, nfo * sizeof(ngx_str_t));
    if (m->streams == NULL || m->okeys == NULL) {
        return NGX_ERROR;
    }

    /* valid JSON already: NULL only without memory */
    tree = eb_transform_parse_event(m->json->data, m->json->len, err,
                                    sizeof(err));
    if (tree == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "eventbridge: event not parsed for its ordering key: "
                      "%s", err);
        return NGX_ERROR;
    }

    eb_buf_init(&key);
    k = 0;

    for (i = 0; i < m->n; i++) {
        rule = &bus->rules[m->ids[i]];

        for (t = 0; t < rule->ntargets; t++, k++) {
            fo = &rule->targets[t];
            if (fo->conf == NULL) {
                continue;
            }

            eb_buf_reset(&key);
            if (eb_order_key(fo->conf, tree, &key) != 0 || key.failed) {
                goto failed;
            }

            m->okeys[k].len = key.len;
            m->okeys[k].data = ngx_pnalloc(r->pool, key.len + 1);
            m->streams[k].data = ngx_pnalloc(r->pool,
                                             fo->prefix.len + NGX_INT_T_LEN);
            if (m->okeys[k].data == NULL || m->streams[k].data == NULL) {
                goto failed;
            }

            if (key.len) {
                ngx_memcpy(m->okeys[k].data, key.data, key.len);
            }

            part = eb_order_partition(fo->conf, m->okeys[k].data, key.len);
            m->streams[k].len = ngx_sprintf(m->streams[k].data, "%V%ui",
                                            &fo->prefix, (ngx_uint_t) part)
                                - m->streams[k].data;
        }
    }

    eb_buf_free(&key);
    yajl_tree_free(tree);
    return NGX_OK;

failed:

    eb_buf_free(&key);
    yajl_tree_free(tree);
    return NGX_ERROR;
}


/* The rules an event matched: their ids, and their names for the events
 * stream's "rules" field. */
static ngx_int_t
ngx_http_eventbridge_match_event(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *event,
    ngx_http_eventbridge_matched_t *m)
{
    u_char                      *p;
    size_t                       size;
    ngx_int_t                    n;
    ngx_uint_t                   i;
    ngx_http_eventbridge_bus_t  *bus;

    bus = lcf->bus_conf;

    m->json = event;
    m->ids = NULL;
    m->n = 0;
    m->streams = NULL;
    m->okeys = NULL;
    ngx_str_null(&m->names);

    if (bus == NULL || bus->nrules == 0) {
        return NGX_OK;
    }

    m->ids = ngx_palloc(r->pool, bus->nrules * sizeof(uint32_t));
    if (m->ids == NULL) {
        return NGX_ERROR;
    }

    n = ngx_http_eventbridge_match(bus, event, m->ids, bus->nrules);

    /* never appended without its fan-out: the request fails instead */
    if (n == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "eventbridge: event could not be matched");
        return NGX_ERROR;
    }

    if (n == 0) {
        return NGX_OK;
    }

    m->n = n;

    size = 0;
    for (i = 0; i < m->n; i++) {
        size += bus->rules[m->ids[i]].name.len + 1;
    }

    m->names.data = ngx_pnalloc(r->pool, size);
    if (m->names.data == NULL) {
        return NGX_ERROR;
    }

    p = m->names.data;
    for (i = 0; i < m->n; i++) {
        if (i) {
            *p++ = ',';
        }
        p = ngx_cpymem(p, bus->rules[m->ids[i]].name.data,
                       bus->rules[m->ids[i]].name.len);
    }
    m->names.len = p - m->names.data;

    return ngx_http_eventbridge_order_event(r, bus, m);
}


/* The commands of one event: its XADD to the events stream, with the
 * names of the rules it matched, then one XADD per (rule, target). */
static ngx_int_t
ngx_http_eventbridge_event_commands(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_http_eventbridge_matched_t *m,
    ngx_array_t *cmds)
{
    u_char                         *p;
    size_t                          size;
    ngx_str_t                      *cmd, *event;
    ngx_uint_t                      i, t, k;
    ngx_http_eventbridge_rule_t    *rule;
    ngx_http_eventbridge_fanout_t  *fo;

    event = m->json;

    /* XADD eb:{BUS}:events MAXLEN ~ N * event JSON rules NAMES */
    size = lcf->xadd_head.len + 2 * EB_BULK_OVERHEAD + event->len
           + sizeof("$5\r\nrules\r\n") - 1 + m->names.len;

    cmd = ngx_array_push(cmds);
    p = ngx_pnalloc(r->pool, size);
    if (cmd == NULL || p == NULL) {
        return NGX_ERROR;
    }

    cmd->data = p;
    p = ngx_cpymem(p, lcf->xadd_head.data, lcf->xadd_head.len);
    p = ngx_http_eventbridge_bulk(p, event);
    p = ngx_cpymem(p, "$5\r\nrules\r\n", sizeof("$5\r\nrules\r\n") - 1);
    p = ngx_http_eventbridge_bulk(p, &m->names);
    cmd->len = p - cmd->data;

    k = 0;

    for (i = 0; i < m->n; i++) {
        rule = &lcf->bus_conf->rules[m->ids[i]];

        for (t = 0; t < rule->ntargets; t++, k++) {
            fo = &rule->targets[t];

            if (m->streams && m->streams[k].len) {
                /* XADD eb:{BUS}:target:T:p:N * event JSON rule NAME key K */
                size = sizeof("*9\r\n$4\r\nXADD\r\n$1\r\n*\r\n"
                              "$5\r\nevent\r\n$3\r\nkey\r\n") - 1
                       + 3 * EB_BULK_OVERHEAD + m->streams[k].len
                       + event->len + fo->tail.len + m->okeys[k].len;

                cmd = ngx_array_push(cmds);
                p = ngx_pnalloc(r->pool, size);
                if (cmd == NULL || p == NULL) {
                    return NGX_ERROR;
                }

                cmd->data = p;
                p = ngx_cpymem(p, "*9\r\n$4\r\nXADD\r\n",
                               sizeof("*9\r\n$4\r\nXADD\r\n") - 1);
                p = ngx_http_eventbridge_bulk(p, &m->streams[k]);
                p = ngx_cpymem(p, "$1\r\n*\r\n$5\r\nevent\r\n",
                               sizeof("$1\r\n*\r\n$5\r\nevent\r\n") - 1);
                p = ngx_http_eventbridge_bulk(p, event);
                p = ngx_cpymem(p, fo->tail.data, fo->tail.len);
                p = ngx_cpymem(p, "$3\r\nkey\r\n",
                               sizeof("$3\r\nkey\r\n") - 1);
                p = ngx_http_eventbridge_bulk(p, &m->okeys[k]);
                cmd->len = p - cmd->data;
                continue;
            }

            size = fo->head.len + EB_BULK_OVERHEAD + event->len + fo->tail.len;

            cmd = ngx_array_push(cmds);
            p = ngx_pnalloc(r->pool, size);
            if (cmd == NULL || p == NULL) {
                return NGX_ERROR;
            }

            cmd->data = p;
            p = ngx_cpymem(p, fo->head.data, fo->head.len);
            p = ngx_http_eventbridge_bulk(p, event);
            p = ngx_cpymem(p, fo->tail.data, fo->tail.len);
            cmd->len = p - cmd->data;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_append(ngx_http_request_t *r, ngx_str_t *events,
    ngx_uint_t n, ngx_http_eventbridge_answer_pt answer)
{
    ngx_int_t                          rc;
    ngx_str_t                         *cmd;
    ngx_uint_t                         i;
    ngx_array_t                       *cmds;
    ngx_http_eventbridge_ctx_t        *ctx;
    ngx_http_eventbridge_job_t        *job;
    ngx_http_eventbridge_matched_t    *matched;
    ngx_http_eventbridge_loc_conf_t   *lcf;
    ngx_http_eventbridge_main_conf_t  *mcf;
    ngx_http_eventbridge_redis_err_e   err;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_eventbridge_module);
    ctx = ngx_http_eventbridge_get_ctx(r);

    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    matched = ngx_palloc(r->pool, n * sizeof(ngx_http_eventbridge_matched_t));
    cmds = ngx_array_create(r->pool, n, sizeof(ngx_str_t));
    if (matched == NULL || cmds == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_eventbridge_match_event(r, lcf, &events[i], &matched[i])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->dedupe_keys) {
        /* with idempotency keys: one script, atomic as MULTI/EXEC is */
        cmd = ngx_array_push(cmds);

        if (cmd == NULL
            || ngx_http_eventbridge_dedupe_script(r, ctx, matched, n, cmd)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        for (i = 0; i < n; i++) {
            if (ngx_http_eventbridge_event_commands(r, lcf, &matched[i], cmds)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    ctx->answer = answer;
    ctx->nevents = n;

    rc = ngx_http_eventbridge_redis_submit(lcf->slot, cmds->elts, cmds->nelts,
                                           ngx_http_eventbridge_appended, r,
                                           &job, &err);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "eventbridge: event %V not appended: redis %s",
                      &ctx->event_id_str, ngx_http_eventbridge_redis_why[err]);
        ngx_http_eventbridge_count_redis_error(err);
        ngx_http_eventbridge_observe_append(r, EB_APPEND_ERROR);
        return ngx_http_eventbridge_unavailable(r,
                                         ngx_http_eventbridge_redis_why[err]);
    }

    if (ctx->dedupe_keys) {
        ngx_http_eventbridge_redis_on_reply(job,
                                            ngx_http_eventbridge_dedupe_reply);
    }

    ctx->job = job;

    ctx->timeout.handler = ngx_http_eventbridge_timeout_handler;
    ctx->timeout.data = r;
    ctx->timeout.log = r->connection->log;
    ngx_add_timer(&ctx->timeout, mcf->redis_timeout);

    return NGX_DONE;
}


static void
ngx_http_eventbridge_appended(void *data,
    ngx_http_eventbridge_redis_result_t *res)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_http_request_t          *r = data;
    ngx_http_eventbridge_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    ctx->job = NULL;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (res == NULL) {
        ngx_http_eventbridge_observe_append(r, EB_APPEND_OK);
        ngx_http_eventbridge_count_accept(r, ctx->nevents - ctx->deduplicated);
        ngx_http_eventbridge_count_deduplicated(r, ctx->deduplicated);
        rc = ctx->answer(r);
        goto done;
    }

    /* Redis does not roll a transaction back when a command fails while
     * running (e.g. WRONGTYPE on a key an operator created by hand), and
     * WAIT comes after EXEC: the sender retries, consumers de-duplicate by
     * event id. */
    if (res->text.len) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "eventbridge: event %V not appended: redis: %V",
                      &ctx->event_id_str, &res->text);

    } else {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "eventbridge: event %V not appended: redis %s",
                      &ctx->event_id_str,
                      ngx_http_eventbridge_redis_why[res->err]);
    }

    ngx_http_eventbridge_count_redis_error(res->err);
    ngx_http_eventbridge_observe_append(r, EB_APPEND_ERROR);
    rc = ngx_http_eventbridge_unavailable(r,
                                     ngx_http_eventbridge_redis_why[res->err]);

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_eventbridge_timeout_handler(ngx_event_t *ev)
{
    ngx_http_request_t          *r = ev->data;
    ngx_connection_t            *c;
    ngx_http_eventbridge_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    /* Redis may still append it: the sender retries, consumers
     * de-duplicate by event id */
    if (ctx->job) {
        ngx_http_eventbridge_redis_cancel(ctx->job);
        ctx->job = NULL;
    }

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "eventbridge: event %V: redis did not answer in time",
                  &ctx->event_id_str);
    ngx_http_eventbridge_count_redis_error(EB_REDIS_ERR_TIMEOUT);
    ngx_http_eventbridge_observe_append(r, EB_APPEND_ERROR);

    /* behind a Sentinel, a primary that answers too slowly may no longer
     * be the primary (replaced again while WAITs queue on it): ask, at
     * most every EB_REDIS_REFRESH_MIN. A Cluster says so itself (MOVED),
     * and its frozen nodes are the watchdog's. */
    if (ngx_http_eventbridge_redis.mcf->redis_mode == EB_REDIS_SENTINEL) {
        ngx_http_eventbridge_redis_refresh();
    }

    ngx_http_finalize_request(r,
                              ngx_http_eventbridge_unavailable(r, "timed out"));
    ngx_http_run_posted_requests(c);
}
