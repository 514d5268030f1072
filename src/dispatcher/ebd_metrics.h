/*
 * ebd's Prometheus metrics (--metrics ADDR; docs/metrics.md lists them).
 *
 * The counters are the whole ebd's, not one worker's: they live in a
 * MAP_SHARED anonymous mapping made before the workers are forked, so
 * they survive a worker's restart and a reload. A (bus, target) and an
 * OAuth2 connection get a slot by name once (a route is resolved when
 * it is set up, never per delivery); every worker has cells of its own
 * for every slot and is their only writer, so counting is a plain add
 * (relaxed atomics: no lock, no cache line shared between workers), and
 * a scrape, served by whichever worker accepts it, adds the workers'
 * cells up.
 *
 * What only Redis knows (a group's lag and pending entries, the length
 * of a dead-letter stream) is asked every EBD_METRICS_REFRESH_MS by the
 * first worker, on the buses' own command connections (bound to the
 * bus's slot: Cluster and Sentinel work as for XACK), and published in
 * the slot; a figure not refreshed for a while is left out of the page
 * rather than shown stale.
 */

#ifndef EBD_METRICS_H
#define EBD_METRICS_H

#include <stdint.h>

#include "eb_buf.h"
#include "ebd.h"


/* What an attempt led to: ebd_deliveries_total's outcome label. */
typedef enum {
    EBD_M_DELIVERED = 0,
    EBD_M_RETRIED,              /* failed; a retry is due */
    EBD_M_DEAD_LETTERED,
    EBD_M_DISCARDED,            /* given up, no dead letters kept */
    EBD_M_DROPPED,              /* given up, but the dead letter could not
                                 * be written: left pending, read again */
    EBD_M_OUTCOMES
} ebd_metrics_outcome_t;


#define EBD_M_ATTEMPT_BUCKETS  12   /* one attempt, in µs */
#define EBD_M_LATENCY_BUCKETS  17   /* the entry's time to delivered, ms */

extern const uint64_t  ebd_metrics_attempt_le[EBD_M_ATTEMPT_BUCKETS];
extern const uint64_t  ebd_metrics_latency_le[EBD_M_LATENCY_BUCKETS];


/* One worker's cells of a (bus, target); only that worker writes them. */
typedef struct {
    uint64_t   outcomes[EBD_M_OUTCOMES];
    uint64_t   attempts;
    int64_t    waiting;                         /* for a retry, now */
    int64_t    circuit_open;                    /* 1: the breaker is */
    uint64_t   circuit_opened;                  /* times it opened */
    int64_t    paused;                          /* 1: ebd pause, 410 */
    int64_t    partitions;                      /* in order: leased */
    uint64_t   attempt_us;                      /* sum */
    uint64_t   attempt[EBD_M_ATTEMPT_BUCKETS + 1];
    uint64_t   latency_ms;                      /* sum */
    uint64_t   latency[EBD_M_LATENCY_BUCKETS + 1];
} ebd_metrics_route_t;


/* The parts that do not need the loop. */

/* Before ebd_run()/ebd_master(): the shared mapping and, with
 * o->metrics, the listening socket (a bad address or a port in use is
 * an error naming --metrics). 0, or -1 with err set. */
int ebd_metrics_open(const ebd_opts_t *o, const char *version, char *err,
    size_t errlen);
/* In a worker, right after the fork: its cells (0 .. workers - 1). */
void ebd_metrics_worker(unsigned index);
/* In the master: a worker died and is started again. */
void ebd_metrics_worker_restarted(void);

/* A route's cells, for the hooks below; resolved once per route set up.
 * Never NULL: past the slots' capacity, cells nobody shows. */
ebd_metrics_route_t *ebd_metrics_route(const char *bus, const char *target);
/* An OAuth2 connection's slot (for ebd_metrics_oauth). */
unsigned ebd_metrics_oauth_slot(const char *connection);
/* A token fetch ended: transport failed (libcurl), else the HTTP
 * status; ok when a usable token came. */
void ebd_metrics_oauth(unsigned slot, int transport_failed, long status,
    int ok);

/* The page (Prometheus text format 0.0.4) into b. */
void ebd_metrics_render(eb_buf_t *b);


/* The parts on a worker's loop (ebd_core.c). */
struct ebd_disp_s;

/* At start: the worker's gauges from zero, the listener on its loop.
 * 0, or -1 (logged). */
int ebd_metrics_start(struct ebd_disp_s *dp);
/* Every tick: the Redis connections' states; in the first worker, the
 * figures only Redis knows, every EBD_METRICS_REFRESH_MS. */
void ebd_metrics_tick(struct ebd_disp_s *dp);
/* At exit: the listener closed, the worker's gauges back to zero. */
void ebd_metrics_stop(struct ebd_disp_s *dp);

/* ebd_metrics_http.c: answers GET /metrics on fd (listening, shared by
 * every worker) from base's loop. */
int ebd_metrics_http_start(struct event_base *base, int fd);
void ebd_metrics_http_stop(void);


/* Hooks of the delivery path: no allocation, no lookup, no lock. */

static inline void
ebd_metrics_add(uint64_t *p, uint64_t n)
{
    /* the worker is the only writer: not a locked add */
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n,
                     __ATOMIC_RELAXED);
}


/* An attempt ended after us microseconds; sent: it reached the target
 * (an entry undeliverable as stored fails without being sent). */
static inline void
ebd_metrics_attempt(ebd_metrics_route_t *m, uint64_t us, int sent)
{
    unsigned  i;

    ebd_metrics_add(&m->attempts, 1);

    if (!sent) {
        return;
    }

    for (i = 0; i < EBD_M_ATTEMPT_BUCKETS && us > ebd_metrics_attempt_le[i];
         i++)
    {
        /* void */
    }

    ebd_metrics_add(&m->attempt[i], 1);
    ebd_metrics_add(&m->attempt_us, us);
}


static inline void
ebd_metrics_outcome(ebd_metrics_route_t *m, ebd_metrics_outcome_t o)
{
    ebd_metrics_add(&m->outcomes[o], 1);
}


/* Delivered: entered_ms is the entry id's time (when nginx stored it). */
static inline void
ebd_metrics_delivered(ebd_metrics_route_t *m, uint64_t entered_ms)
{
    unsigned  i;
    uint64_t  now = ebd_now_ms();
    uint64_t  ms = now > entered_ms ? now - entered_ms : 0;

    ebd_metrics_add(&m->outcomes[EBD_M_DELIVERED], 1);

    for (i = 0; i < EBD_M_LATENCY_BUCKETS && ms > ebd_metrics_latency_le[i];
         i++)
    {
        /* void */
    }

    ebd_metrics_add(&m->latency[i], 1);
    ebd_metrics_add(&m->latency_ms, ms);
}


/* An entry starts (+1) or stops (-1) waiting for its retry. */
static inline void
ebd_metrics_waiting(ebd_metrics_route_t *m, int delta)
{
    ebd_metrics_add((uint64_t *) &m->waiting, (uint64_t) (int64_t) delta);
}

/* The target's circuit breaker opened (1: again, after a failed probe,
 * too) or closed (0). */
static inline void
ebd_metrics_circuit(ebd_metrics_route_t *m, int open)
{
    __atomic_store_n(&m->circuit_open, (int64_t) open, __ATOMIC_RELAXED);

    if (open) {
        ebd_metrics_add(&m->circuit_opened, 1);
    }
}

/* Partitions of a target in order per key this worker reads now. */
static inline void
ebd_metrics_partitions(ebd_metrics_route_t *m, int64_t n)
{
    __atomic_store_n(&m->partitions, n, __ATOMIC_RELAXED);
}

/* The target was paused (1) or resumed (0) on this route. */
static inline void
ebd_metrics_paused(ebd_metrics_route_t *m, int paused)
{
    __atomic_store_n(&m->paused, (int64_t) paused, __ATOMIC_RELAXED);
}

#endif /* EBD_METRICS_H */
