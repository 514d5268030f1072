/*
 * Counters shared by all workers (a shared memory zone that survives
 * reloads), shown by `eventbridge_status;` in Prometheus text format.
 */

#include "ngx_http_eventbridge.h"


static ngx_int_t ngx_http_eventbridge_metrics_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);


/* set in the master at zone initialisation; workers inherit it */
static ngx_http_eventbridge_counters_t  *ngx_http_eventbridge_counters;


static const char  *ngx_http_eventbridge_reject_names[EB_REJECT_MAX] = {
    "method",
    "address",
    "referer",
    "token",
    "body_too_large",
    "invalid_json",
    "json_too_deep",
    "invalid_utf8",
    "unavailable",
    "invalid_event",
    "missing_key",
    "signature"
};


static const char  *ngx_http_eventbridge_redis_err_names[EB_REDIS_ERR_MAX] = {
    "disconnected",
    "queue_full",
    "timeout",
    "reply_error",
    "connection_lost",
    "wait"
};


/* eventbridge_redis_redirections_total{kind="moved|ask"}, then one
 * counter each */
static const char  *ngx_http_eventbridge_redis_ev_names[EB_REDIS_EV_MAX] = {
    "moved",
    "ask",
    "eventbridge_redis_retries_total",
    "eventbridge_redis_topology_refreshes_total",
    "eventbridge_redis_watchdog_drops_total",
    "eventbridge_redis_wait_failures_total"
};


static const char  *ngx_http_eventbridge_redis_ev_help[EB_REDIS_EV_MAX] = {
    NULL,
    NULL,
    "Transactions sent again after TRYAGAIN, a busy or failing-over "
    "node, or a redirection loop.",
    "Topology queries (CLUSTER SLOTS, sentinels).",
    "Redis connections dropped because replies stopped coming.",
    "Transactions fewer replicas acknowledged than "
    "eventbridge_redis_wait asks."
};


ngx_int_t
ngx_http_eventbridge_metrics_init_conf(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf)
{
    ngx_str_t  name = ngx_string("eventbridge_metrics");

    mcf->shm_zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                          &ngx_http_eventbridge_module);
    if (mcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    mcf->shm_zone->init = ngx_http_eventbridge_metrics_init_zone;
    mcf->shm_zone->data = mcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eventbridge_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_eventbridge_main_conf_t  *mcf = shm_zone->data;
    ngx_http_eventbridge_main_conf_t  *omcf = data;
    ngx_slab_pool_t                   *shpool;

    /* a reload keeps the counters of the previous configuration */
    if (omcf) {
        mcf->counters = omcf->counters;
        ngx_http_eventbridge_counters = mcf->counters;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    mcf->counters = ngx_slab_calloc(shpool,
                                    sizeof(ngx_http_eventbridge_counters_t));
    if (mcf->counters == NULL) {
        return NGX_ERROR;
    }

    ngx_http_eventbridge_counters = mcf->counters;

    return NGX_OK;
}


void
ngx_http_eventbridge_count_reject(ngx_http_eventbridge_reject_e reason)
{
    if (ngx_http_eventbridge_counters) {
        (void) ngx_atomic_fetch_add(
                          &ngx_http_eventbridge_counters->rejected[reason], 1);
    }
}


void
ngx_http_eventbridge_count_accept(ngx_uint_t n)
{
    if (ngx_http_eventbridge_counters) {
        (void) ngx_atomic_fetch_add(&ngx_http_eventbridge_counters->accepted,
                                    n);
    }
}


void
ngx_http_eventbridge_count_deduplicated(ngx_uint_t n)
{
    if (ngx_http_eventbridge_counters && n) {
        (void) ngx_atomic_fetch_add(
                           &ngx_http_eventbridge_counters->deduplicated, n);
    }
}


void
ngx_http_eventbridge_count_signature(eb_sig_rc_t reason)
{
    if (ngx_http_eventbridge_counters && reason < EB_SIG_RC_MAX) {
        (void) ngx_atomic_fetch_add(
                          &ngx_http_eventbridge_counters->signature[reason], 1);
    }
}


void
ngx_http_eventbridge_count_redis_error(ngx_http_eventbridge_redis_err_e kind)
{
    if (ngx_http_eventbridge_counters) {
        (void) ngx_atomic_fetch_add(
                          &ngx_http_eventbridge_counters->redis_errors[kind], 1);
    }
}


void
ngx_http_eventbridge_count_redis_event(ngx_http_eventbridge_redis_ev_e ev)
{
    if (ngx_http_eventbridge_counters) {
        (void) ngx_atomic_fetch_add(
                          &ngx_http_eventbridge_counters->redis_events[ev], 1);
    }
}


#define EB_METRIC_LINE_MAX  160

ngx_int_t
ngx_http_eventbridge_status_handler(ngx_http_request_t *r)
{
    ngx_http_eventbridge_counters_t  *cn = ngx_http_eventbridge_counters;

    size_t            size;
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_uint_t        i;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "GET, HEAD");
#if (nginx_version >= 1023000)
        h->next = NULL;            /* 1.23+: the chain of same-name headers */
#endif

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (cn == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    size = 12 * EB_METRIC_LINE_MAX
           + (EB_REJECT_MAX + EB_REDIS_ERR_MAX + 3 * EB_REDIS_EV_MAX
              + EB_SIG_RC_MAX) * EB_METRIC_LINE_MAX;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
        "# HELP eventbridge_events_accepted_total "
        "Events Redis acknowledged.\n"
        "# TYPE eventbridge_events_accepted_total counter\n"
        "eventbridge_events_accepted_total %uA\n",
        cn->accepted);

    b->last = ngx_sprintf(b->last,
        "# HELP eventbridge_events_deduplicated_total "
        "Events not appended: repeats of an idempotency key within "
        "its window, answered with the original id.\n"
        "# TYPE eventbridge_events_deduplicated_total counter\n"
        "eventbridge_events_deduplicated_total %uA\n",
        cn->deduplicated);

    b->last = ngx_sprintf(b->last,
        "# HELP eventbridge_events_rejected_total "
        "Requests answered with an error, by reason.\n"
        "# TYPE eventbridge_events_rejected_total counter\n");

    for (i = 0; i < EB_REJECT_MAX; i++) {
        b->last = ngx_sprintf(b->last,
                              "eventbridge_events_rejected_total"
                              "{reason=\"%s\"} %uA\n",
                              ngx_http_eventbridge_reject_names[i],
                              cn->rejected[i]);
    }

    /* the reasons of signature failures (EB_SIG_OK and EB_SIG_ERROR, a
     * 500, are not failures of the sender) */
    b->last = ngx_sprintf(b->last,
        "# HELP eventbridge_signature_failures_total "
        "Requests refused by eventbridge_signature, by reason.\n"
        "# TYPE eventbridge_signature_failures_total counter\n");

    for (i = EB_SIG_OK + 1; i < EB_SIG_ERROR; i++) {
        b->last = ngx_sprintf(b->last,
                              "eventbridge_signature_failures_total"
                              "{reason=\"%s\"} %uA\n",
                              eb_sig_reason(i), cn->signature[i]);
    }

    b->last = ngx_sprintf(b->last,
        "# HELP eventbridge_redis_errors_total "
        "Appends Redis did not take, by kind.\n"
        "# TYPE eventbridge_redis_errors_total counter\n");

    for (i = 0; i < EB_REDIS_ERR_MAX; i++) {
        b->last = ngx_sprintf(b->last,
                              "eventbridge_redis_errors_total"
                              "{kind=\"%s\"} %uA\n",
                              ngx_http_eventbridge_redis_err_names[i],
                              cn->redis_errors[i]);
    }

    b->last = ngx_sprintf(b->last,
        "# HELP eventbridge_redis_redirections_total "
        "MOVED and ASK redirections followed.\n"
        "# TYPE eventbridge_redis_redirections_total counter\n");

    for (i = EB_REDIS_EV_MOVED; i <= EB_REDIS_EV_ASK; i++) {
        b->last = ngx_sprintf(b->last,
                              "eventbridge_redis_redirections_total"
                              "{kind=\"%s\"} %uA\n",
                              ngx_http_eventbridge_redis_ev_names[i],
                              cn->redis_events[i]);
    }

    for (i = EB_REDIS_EV_RETRY; i < EB_REDIS_EV_MAX; i++) {
        b->last = ngx_sprintf(b->last,
                              "# HELP %s %s\n# TYPE %s counter\n%s %uA\n",
                              ngx_http_eventbridge_redis_ev_names[i],
                              ngx_http_eventbridge_redis_ev_help[i],
                              ngx_http_eventbridge_redis_ev_names[i],
                              ngx_http_eventbridge_redis_ev_names[i],
                              cn->redis_events[i]);
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
