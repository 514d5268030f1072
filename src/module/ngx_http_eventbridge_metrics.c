/*
 * Counters shared by all workers: totals, the append-latency histogram,
 * and per bus and per source counters. They live in a shared memory zone
 * that a reload reuses, so they survive reloads as nginx's stub_status
 * does; `eventbridge_status;` shows them (ngx_http_eventbridge_status.c).
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
 * have no request (the Redis client's) and by the status page */
static ngx_http_eventbridge_counters_t  *ngx_http_eventbridge_counters;


/* from a loopback Redis on an idle host (~0.1 ms) to the default
 * eventbridge_redis_timeout (5 s); the page's labels of them are in
 * ngx_http_eventbridge_status.c */
static const uint64_t  ngx_http_eventbridge_append_le_ns[EB_APPEND_BUCKETS] = {
    500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000ULL,
    5000000000ULL
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


ngx_http_eventbridge_counters_t *
ngx_http_eventbridge_metrics_counters(void)
{
    return ngx_http_eventbridge_counters;
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
