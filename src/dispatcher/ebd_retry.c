/*
 * Retry policies: see ebd_retry.h.
 */

#include <string.h>

#include "eb_config.h"
#include "ebd_retry.h"


void
ebd_retry_from_config(ebd_retry_t *r, yajl_val retry)
{
    yajl_val  v;
    uint64_t  ms;

    v = eb_config_get(retry, "strategy");

    if (v && YAJL_IS_STRING(v) && strcmp(v->u.string, "exponential") == 0) {
        r->strategy = EBD_RETRY_EXPONENTIAL;
        r->attempts = 176;
        r->interval_ms = 1000;
        r->max_interval_ms = 512000;
        r->max_age_ms = 86400000;

    } else {
        r->strategy = EBD_RETRY_BACKOFF;
        r->attempts = 3;
        r->interval_ms = 10000;
        r->max_interval_ms = 20000;
        r->max_age_ms = 0;
    }

    v = eb_config_get(retry, "attempts");
    if (v && YAJL_IS_INTEGER(v)) {
        r->attempts = (unsigned) YAJL_GET_INTEGER(v);
    }

    if (eb_config_duration(eb_config_get(retry, "interval"), &ms) == 0) {
        r->interval_ms = ms;
        if (r->max_interval_ms < ms) {
            r->max_interval_ms = ms;
        }
    }

    if (eb_config_duration(eb_config_get(retry, "max_interval"), &ms) == 0) {
        r->max_interval_ms = ms < r->interval_ms ? r->interval_ms : ms;
    }

    if (eb_config_duration(eb_config_get(retry, "max_age"), &ms) == 0) {
        r->max_age_ms = ms;
    }
}


uint64_t
ebd_retry_delay(const ebd_retry_t *r, unsigned n, double rnd)
{
    uint64_t  d;
    unsigned  i;

    if (r->strategy == EBD_RETRY_BACKOFF) {
        return r->interval_ms
               + (uint64_t) ((double) (r->max_interval_ms - r->interval_ms)
                             * rnd);
    }

    d = r->interval_ms;

    for (i = 1; i < n && d < r->max_interval_ms; i++) {
        d *= 2;
    }

    if (d > r->max_interval_ms) {
        d = r->max_interval_ms;
    }

    /* jitter spreads out the retries of events that failed together */
    return d - (uint64_t) ((double) d * 0.1 * rnd);
}
