/*
 * Counters shared by all workers, shown by `eventbridge_status;` in
 * Prometheus text format: totals, the append-latency histogram, and per
 * bus and per source counters. They live in a shared memory zone that a
 * reload reuses, so they survive reloads as nginx's stub_status does.
 *
 * The zone holds the totals and one record per (kind, labels) of the
 * per-bus and per-source series. Records are found or made by the master
 * when it initialises the zone for a configuration, and a location points
 * at its own: the request path adds to atomics, no lookup, no lock.
 */

#include "ngx_http_eventbridge.h"

#include <time.h>


/* a series of per-bus or per-source counters in the zone */
typedef struct ngx_http_eventbridge_metric_rec_s
    ngx_http_eventbridge_metric_rec_t;

struct ngx_http_eventbridge_metric_rec_s {
    ngx_http_eventbridge_slot_counters_t  counters;
    ngx_http_eventbridge_metric_rec_t    *next;
    ngx_uint_t                            kind;
    ngx_uint_t                            mark;
    size_t                                len;
    u_char                                labels[1];
};


struct ngx_http_eventbridge_metrics_shm_s {
    ngx_http_eventbridge_counters_t       counters;
    ngx_http_eventbridge_metric_rec_t    *records;
};


/*
 * The zone's size is a power of two at least twice what the configuration
 * needs (and never below the minimum): a reload reuses a zone only if its
 * size is unchanged, so a configuration that grows a little keeps its
 * counters, and the reused zone has room for the records of the previous
 * configuration (which its old workers may still count into) as well as
 * the new ones.
 */
#define EB_METRICS_ZONE_MIN      (256 * 1024)
#define EB_METRICS_ZONE_SLACK    (16 * ngx_pagesize)


static ngx_int_t ngx_http_eventbridge_metrics_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);


/* set in each worker from its cycle's zone; read by the counters that
 * have no request (the Redis client's) */
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


/* from a loopback Redis on an idle host (~0.1 ms) to the default
 * eventbridge_redis_timeout (5 s) */
static const uint64_t  ngx_http_eventbridge_append_le_ns[EB_APPEND_BUCKETS] = {
    500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000ULL,
    5000000000ULL
};

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


/* The series of an endpoint location: its bus's, by endpoint type, and
 * its source's. Locations with the same labels share one. */
static ngx_http_eventbridge_metric_slot_t *
ngx_http_eventbridge_metrics_slot(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf, ngx_uint_t kind, ngx_str_t *labels)
{
    ngx_uint_t                           i;
    ngx_http_eventbridge_metric_slot_t  *slot, **slots;

    if (mcf->metric_slots == NULL) {
        mcf->metric_slots = ngx_array_create(cf->pool, 8,
                                  sizeof(ngx_http_eventbridge_metric_slot_t *));
        if (mcf->metric_slots == NULL) {
            return NULL;
        }
    }

    slots = mcf->metric_slots->elts;

    for (i = 0; i < mcf->metric_slots->nelts; i++) {
        if (slots[i]->kind == kind
            && slots[i]->labels.len == labels->len
            && ngx_strncmp(slots[i]->labels.data, labels->data, labels->len)
               == 0)
        {
            return slots[i];
        }
    }

    slot = ngx_pcalloc(cf->pool, sizeof(ngx_http_eventbridge_metric_slot_t));
    slots = ngx_array_push(mcf->metric_slots);
    if (slot == NULL || slots == NULL) {
        return NULL;
    }

    slot->kind = kind;
    slot->labels = *labels;
    *slots = slot;

    return slot;
}


ngx_int_t
ngx_http_eventbridge_metrics_endpoint(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf)
{
    ngx_str_t                          labels;
    ngx_http_eventbridge_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eventbridge_module);

    /* names are letters, digits, "-", "_" and ".": nothing to escape */
    labels.data = ngx_pnalloc(cf->pool, sizeof("bus=\"\",endpoint=\"\"")
                                        + lcf->bus.len
                                        + sizeof("put_events"));
    if (labels.data == NULL) {
        return NGX_ERROR;
    }

    labels.len = ngx_sprintf(labels.data, "bus=\"%V\",endpoint=\"%s\"",
                             &lcf->bus,
                             lcf->put_events ? "put_events" : "source")
                 - labels.data;

    lcf->metrics_bus = ngx_http_eventbridge_metrics_slot(cf, mcf,
                                                         EB_METRIC_BUS,
                                                         &labels);
    if (lcf->metrics_bus == NULL) {
        return NGX_ERROR;
    }

    /* PutEvents' sources are the senders' own strings: counted by bus
     * (endpoint="put_events") only, so that the series stay bounded by
     * the configuration */
    if (lcf->put_events) {
        return NGX_OK;
    }

    labels.data = ngx_pnalloc(cf->pool, sizeof("bus=\"\",source=\"\"")
                                        + lcf->bus.len + lcf->source.len);
    if (labels.data == NULL) {
        return NGX_ERROR;
    }

    labels.len = ngx_sprintf(labels.data, "bus=\"%V\",source=\"%V\"",
                             &lcf->bus, &lcf->source)
                 - labels.data;

    lcf->metrics_source = ngx_http_eventbridge_metrics_slot(cf, mcf,
                                                            EB_METRIC_SOURCE,
                                                            &labels);

    return lcf->metrics_source ? NGX_OK : NGX_ERROR;
}


/* what a record takes in the slab: a power of two chunk, or pages */
static size_t
ngx_http_eventbridge_metrics_rec_size(ngx_str_t *labels)
{
    size_t  size, chunk;

    size = offsetof(ngx_http_eventbridge_metric_rec_t, labels) + labels->len;

    if (size > ngx_pagesize / 2) {
        return ngx_align(size, ngx_pagesize);
    }

    for (chunk = 8; chunk < size; chunk <<= 1) { /* void */ }

    return chunk;
}


ngx_int_t
ngx_http_eventbridge_metrics_init_conf(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf)
{
    size_t                               need, size;
    ngx_uint_t                           i;
    ngx_http_eventbridge_metric_slot_t **slots;

    static ngx_str_t  name = ngx_string("eventbridge_metrics");

    need = EB_METRICS_ZONE_SLACK + sizeof(ngx_http_eventbridge_metrics_shm_t);

    if (mcf->metric_slots) {
        slots = mcf->metric_slots->elts;

        for (i = 0; i < mcf->metric_slots->nelts; i++) {
            need += ngx_http_eventbridge_metrics_rec_size(&slots[i]->labels);
        }
    }

    for (size = EB_METRICS_ZONE_MIN; size < 2 * need; size <<= 1) {
        /* void */
    }

    mcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_eventbridge_module);
    if (mcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    mcf->shm_zone->init = ngx_http_eventbridge_metrics_init_zone;
    mcf->shm_zone->data = mcf;

    return NGX_OK;
}


static ngx_http_eventbridge_metric_rec_t *
ngx_http_eventbridge_metrics_find(ngx_http_eventbridge_metrics_shm_t *shm,
    ngx_http_eventbridge_metric_slot_t *slot)
{
    ngx_http_eventbridge_metric_rec_t  *rec;

    for (rec = shm->records; rec; rec = rec->next) {
        if (rec->kind == slot->kind
            && rec->len == slot->labels.len
            && ngx_strncmp(rec->labels, slot->labels.data, rec->len) == 0)
        {
            return rec;
        }
    }

    return NULL;
}


/*
 * Runs in the master, at start and at every reload, before workers fork:
 * only the master allocates in the zone, so the _locked calls take no
 * lock. A reload that keeps the zone's size reuses it (data is then the
 * running configuration's main conf): the totals and the histogram go on,
 * and a series the running configuration has keeps its record, hence its
 * counts (its old workers, finishing their requests, count into the same
 * one). Records it does not use are freed first: a series new to this
 * configuration, or back after a reload without it, starts at zero.
 */
static ngx_int_t
ngx_http_eventbridge_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_eventbridge_main_conf_t  *mcf = shm_zone->data;
    ngx_http_eventbridge_main_conf_t  *omcf = data;

    size_t                               size;
    ngx_uint_t                           i;
    ngx_slab_pool_t                     *shpool;
    ngx_http_eventbridge_metrics_shm_t  *shm;
    ngx_http_eventbridge_metric_rec_t   *rec, **prev;
    ngx_http_eventbridge_metric_slot_t **slots;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (omcf) {
        shm = omcf->metrics;

        for (rec = shm->records; rec; rec = rec->next) {
            rec->mark = 0;
        }

        if (omcf->metric_slots) {
            slots = omcf->metric_slots->elts;

            for (i = 0; i < omcf->metric_slots->nelts; i++) {
                rec = ngx_http_eventbridge_metrics_find(shm, slots[i]);
                if (rec) {
                    rec->mark = 1;
                }
            }
        }

        prev = &shm->records;

        while (*prev) {
            rec = *prev;

            if (rec->mark) {
                prev = &rec->next;
                continue;
            }

            *prev = rec->next;
            ngx_slab_free_locked(shpool, rec);
        }

    } else {
        shm = ngx_slab_calloc_locked(shpool, sizeof(*shm));
        if (shm == NULL) {
            return NGX_ERROR;
        }
    }

    mcf->metrics = shm;

    if (mcf->metric_slots == NULL) {
        return NGX_OK;
    }

    slots = mcf->metric_slots->elts;

    for (i = 0; i < mcf->metric_slots->nelts; i++) {
        rec = ngx_http_eventbridge_metrics_find(shm, slots[i]);

        if (rec == NULL) {
            size = offsetof(ngx_http_eventbridge_metric_rec_t, labels)
                   + slots[i]->labels.len;

            rec = ngx_slab_calloc_locked(shpool, size);
            if (rec == NULL) {
                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "eventbridge: no room for the counters of %V "
                              "in the \"%V\" zone", &slots[i]->labels,
                              &shm_zone->shm.name);
                return NGX_ERROR;
            }

            rec->kind = slots[i]->kind;
            rec->len = slots[i]->labels.len;
            ngx_memcpy(rec->labels, slots[i]->labels.data, rec->len);

            rec->next = shm->records;
            shm->records = rec;
        }

        slots[i]->counters = &rec->counters;
    }

    return NGX_OK;
}


void
ngx_http_eventbridge_metrics_init_worker(ngx_http_eventbridge_main_conf_t *mcf)
{
    ngx_http_eventbridge_counters = mcf->metrics ? &mcf->metrics->counters
                                                 : NULL;
}


/* A vDSO call on Linux: ngx_current_msec has millisecond resolution and
 * moves once per event loop iteration, too coarse for sub-millisecond
 * buckets. */
uint64_t
ngx_http_eventbridge_metrics_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


/*
 * Failed appends are observed too, under outcome="error": a 503 often
 * comes only after eventbridge_redis_timeout, and that wait is the
 * sender's as much as a success's; leaving it out would make the
 * latency look best exactly while Redis struggles. outcome="ok" alone
 * counts one observation per request Redis acknowledged.
 */
void
ngx_http_eventbridge_observe_append(ngx_http_request_t *r,
    ngx_http_eventbridge_append_outcome_e outcome)
{
    uint64_t                          d;
    ngx_uint_t                        i;
    ngx_http_eventbridge_ctx_t       *ctx;
    ngx_http_eventbridge_counters_t  *cn = ngx_http_eventbridge_counters;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    if (cn == NULL || ctx == NULL || ctx->started == 0) {
        return;
    }

    d = ngx_http_eventbridge_metrics_now() - ctx->started;
    ctx->started = 0;

    for (i = 0; i < EB_APPEND_BUCKETS; i++) {
        if (d <= ngx_http_eventbridge_append_le_ns[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&cn->append[outcome][i], 1);
    (void) ngx_atomic_fetch_add(&cn->append_sum_us[outcome],
                                (ngx_atomic_int_t) ((d + 500) / 1000));
}


/* adds n to a counter of the location's bus and source series */
static void
ngx_http_eventbridge_count_endpoint(ngx_http_request_t *r, size_t off,
    ngx_uint_t n)
{
    ngx_http_eventbridge_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    if (lcf->metrics_bus && lcf->metrics_bus->counters) {
        (void) ngx_atomic_fetch_add(
                   (ngx_atomic_t *) ((u_char *) lcf->metrics_bus->counters
                                     + off), n);
    }

    if (lcf->metrics_source && lcf->metrics_source->counters) {
        (void) ngx_atomic_fetch_add(
                   (ngx_atomic_t *) ((u_char *) lcf->metrics_source->counters
                                     + off), n);
    }
}


void
ngx_http_eventbridge_count_reject(ngx_http_request_t *r,
    ngx_http_eventbridge_reject_e reason)
{
    if (ngx_http_eventbridge_counters) {
        (void) ngx_atomic_fetch_add(
                          &ngx_http_eventbridge_counters->rejected[reason], 1);
    }

    ngx_http_eventbridge_count_endpoint(r,
        offsetof(ngx_http_eventbridge_slot_counters_t, rejected)
        + reason * sizeof(ngx_atomic_t), 1);
}


void
ngx_http_eventbridge_count_accept(ngx_http_request_t *r, ngx_uint_t n)
{
    if (ngx_http_eventbridge_counters) {
        (void) ngx_atomic_fetch_add(&ngx_http_eventbridge_counters->accepted,
                                    n);
    }

    if (n) {
        ngx_http_eventbridge_count_endpoint(r,
            offsetof(ngx_http_eventbridge_slot_counters_t, accepted), n);
    }
}


void
ngx_http_eventbridge_count_deduplicated(ngx_http_request_t *r, ngx_uint_t n)
{
    if (n == 0) {
        return;
    }

    if (ngx_http_eventbridge_counters) {
        (void) ngx_atomic_fetch_add(
                           &ngx_http_eventbridge_counters->deduplicated, n);
    }

    ngx_http_eventbridge_count_endpoint(r,
        offsetof(ngx_http_eventbridge_slot_counters_t, deduplicated), n);
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
    ngx_http_eventbridge_counters_t  *cn = ngx_http_eventbridge_counters;

    size_t                               size;
    ngx_int_t                            rc;
    ngx_buf_t                           *b;
    ngx_uint_t                           i;
    ngx_chain_t                          out;
    ngx_table_elt_t                     *h;
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
