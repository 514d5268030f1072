/*
 * The `eventbridge_status;` page: the counters of the metrics zone
 * (ngx_http_eventbridge_metrics.c) in Prometheus text format: totals, the
 * append-latency histogram, and the per-bus and per-source series of this
 * configuration.
 */

#include "ngx_http_eventbridge.h"


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


/* the labels of the buckets of ngx_http_eventbridge_append_le_ns
 * (ngx_http_eventbridge_metrics.c), in seconds; the last is +Inf */
static const char  *ngx_http_eventbridge_append_le[EB_APPEND_BUCKETS + 1] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5", "5", "+Inf"
};

static const char  *ngx_http_eventbridge_append_outcomes[] = {
    "ok", "error"
};


/* the per-bus and per-source families: accepted, deduplicated, rejected */
#define EB_SLOT_FAMILIES  3

typedef struct {
    const char  *name;
    const char  *help;
} ngx_http_eventbridge_family_t;

static ngx_http_eventbridge_family_t
    ngx_http_eventbridge_slot_families[][EB_SLOT_FAMILIES] = {

    /* EB_METRIC_BUS */
    { { "eventbridge_bus_events_accepted_total",
        "Events Redis acknowledged, by bus and by the type of endpoint "
        "that took them (source: eventbridge_source, put_events: "
        "eventbridge_put_events)." },
      { "eventbridge_bus_events_deduplicated_total",
        "Events not appended as repeats of an idempotency key, by bus and "
        "endpoint type." },
      { "eventbridge_bus_events_rejected_total",
        "Requests answered with an error, by bus, endpoint type and "
        "reason." } },

    /* EB_METRIC_SOURCE */
    { { "eventbridge_source_events_accepted_total",
        "Events Redis acknowledged, by eventbridge_source (name and bus)." },
      { "eventbridge_source_events_deduplicated_total",
        "Events not appended as repeats of an idempotency key, by "
        "eventbridge_source." },
      { "eventbridge_source_events_rejected_total",
        "Requests answered with an error, by eventbridge_source and "
        "reason." } }
};


#define EB_METRIC_LINE_MAX  160


/* eventbridge_append_duration_seconds: cumulative buckets, from one read
 * of each, so that _count is the +Inf bucket */
static u_char *
ngx_http_eventbridge_status_histogram(u_char *p,
    ngx_http_eventbridge_counters_t *cn)
{
    ngx_uint_t         i, o;
    ngx_atomic_uint_t  n, sum;

    p = ngx_sprintf(p,
        "# HELP eventbridge_append_duration_seconds "
        "Time from a request's body read to Redis' acknowledgement of its "
        "append (MULTI/EXEC or the dedupe script, and WAIT), by outcome: "
        "ok (answered 2xx) or error (503).\n"
        "# TYPE eventbridge_append_duration_seconds histogram\n");

    for (o = 0; o < EB_APPEND_OUTCOME_MAX; o++) {
        n = 0;

        for (i = 0; i <= EB_APPEND_BUCKETS; i++) {
            n += cn->append[o][i];

            p = ngx_sprintf(p, "eventbridge_append_duration_seconds_bucket"
                               "{le=\"%s\",outcome=\"%s\"} %uA\n",
                            ngx_http_eventbridge_append_le[i],
                            ngx_http_eventbridge_append_outcomes[o], n);
        }

        sum = cn->append_sum_us[o];

        p = ngx_sprintf(p, "eventbridge_append_duration_seconds_sum"
                           "{outcome=\"%s\"} %uA.%06uA\n"
                           "eventbridge_append_duration_seconds_count"
                           "{outcome=\"%s\"} %uA\n",
                        ngx_http_eventbridge_append_outcomes[o],
                        sum / 1000000, sum % 1000000,
                        ngx_http_eventbridge_append_outcomes[o], n);
    }

    return p;
}


/* the per-bus or per-source families of this configuration's slots */
static u_char *
ngx_http_eventbridge_status_slots(u_char *p, ngx_array_t *a, ngx_uint_t kind)
{
    ngx_uint_t                             f, i, k, n;
    ngx_http_eventbridge_family_t         *fam;
    ngx_http_eventbridge_metric_slot_t   **slots;
    ngx_http_eventbridge_slot_counters_t  *c;

    fam = ngx_http_eventbridge_slot_families[kind];
    slots = a ? a->elts : NULL;
    n = a ? a->nelts : 0;

    for (f = 0; f < EB_SLOT_FAMILIES; f++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n",
                        fam[f].name, fam[f].help, fam[f].name);

        for (i = 0; i < n; i++) {
            c = slots[i]->counters;

            if (slots[i]->kind != kind || c == NULL) {
                continue;
            }

            if (f == 0) {
                p = ngx_sprintf(p, "%s{%V} %uA\n", fam[f].name,
                                &slots[i]->labels, c->accepted);
                continue;
            }

            if (f == 1) {
                p = ngx_sprintf(p, "%s{%V} %uA\n", fam[f].name,
                                &slots[i]->labels, c->deduplicated);
                continue;
            }

            for (k = 0; k < EB_REJECT_MAX; k++) {
                p = ngx_sprintf(p, "%s{%V,reason=\"%s\"} %uA\n", fam[f].name,
                                &slots[i]->labels,
                                ngx_http_eventbridge_reject_names[k],
                                c->rejected[k]);
            }
        }
    }

    return p;
}


ngx_int_t
ngx_http_eventbridge_status_handler(ngx_http_request_t *r)
{
    size_t                               size;
    ngx_int_t                            rc;
    ngx_buf_t                           *b;
    ngx_uint_t                           i;
    ngx_chain_t                          out;
    ngx_table_elt_t                     *h;
    ngx_http_eventbridge_counters_t     *cn;
    ngx_http_eventbridge_main_conf_t    *mcf;
    ngx_http_eventbridge_metric_slot_t **slots;

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

    cn = ngx_http_eventbridge_metrics_counters();

    if (cn == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_eventbridge_module);

    size = 12 * EB_METRIC_LINE_MAX
           + (EB_REJECT_MAX + EB_REDIS_ERR_MAX + 3 * EB_REDIS_EV_MAX
              + EB_SIG_RC_MAX) * EB_METRIC_LINE_MAX
           + (4 + EB_APPEND_OUTCOME_MAX * (EB_APPEND_BUCKETS + 3))
             * EB_METRIC_LINE_MAX
           + 2 * EB_SLOT_FAMILIES * 3 * EB_METRIC_LINE_MAX; /* HELP, TYPE */

    if (mcf->metric_slots) {
        slots = mcf->metric_slots->elts;

        for (i = 0; i < mcf->metric_slots->nelts; i++) {
            size += (2 + EB_REJECT_MAX)
                    * (EB_METRIC_LINE_MAX + slots[i]->labels.len);
        }
    }

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

    b->last = ngx_http_eventbridge_status_histogram(b->last, cn);
    b->last = ngx_http_eventbridge_status_slots(b->last, mcf->metric_slots,
                                                EB_METRIC_BUS);
    b->last = ngx_http_eventbridge_status_slots(b->last, mcf->metric_slots,
                                                EB_METRIC_SOURCE);

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
