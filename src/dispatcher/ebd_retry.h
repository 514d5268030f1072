/*
 * Retry policies, as the seed's service defines them, with every number
 * configurable (tests use milliseconds):
 *
 *  backoff      `attempts` retries (default 3), each `interval` to
 *               `max_interval` after the last at random (default 10-20 s).
 *  exponential  `attempts` retries (default 176), the wait doubling from
 *               `interval` (default 1 s) up to `max_interval` (default
 *               512 s), with up to 10 % jitter.
 *
 * Either way no retry starts once the event is older than `max_age`
 * (default 1 day for exponential, none for backoff), counted from when
 * it entered the target stream.
 */

#ifndef EBD_RETRY_H
#define EBD_RETRY_H

#include <stdint.h>
#include <yajl/yajl_tree.h>

typedef enum {
    EBD_RETRY_BACKOFF = 0,
    EBD_RETRY_EXPONENTIAL
} ebd_retry_strategy_t;

typedef struct {
    ebd_retry_strategy_t  strategy;
    unsigned              attempts;       /* retries after the first try */
    uint64_t              interval_ms;
    uint64_t              max_interval_ms;
    uint64_t              max_age_ms;     /* 0: none */
} ebd_retry_t;

/* The policy of a target's "retry" object (NULL: the defaults). The
 * object was validated by eb_config.c. */
void ebd_retry_from_config(ebd_retry_t *r, yajl_val retry);

/* The wait before retry number n (1 for the first retry); rnd is a
 * uniform random number in [0, 1). */
uint64_t ebd_retry_delay(const ebd_retry_t *r, unsigned n, double rnd);

#endif /* EBD_RETRY_H */
