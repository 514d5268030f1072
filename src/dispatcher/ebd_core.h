/*
 * ebd's core, internal: the dispatcher, its routes (one per target
 * stream), the per-target bookkeeping and the items (stream entries
 * being delivered). ebd_core.c reads the streams; ebd_deliver.c runs
 * the attempts, retries, acknowledgements, dead letters and the trace.
 */

#ifndef EBD_CORE_H
#define EBD_CORE_H

#include "eb_buf.h"
#include "eb_event_scan.h"
#include "ebd.h"
#include "ebd_topology.h"
#include "ebd_metrics.h"
#include "eb_rand.h"


typedef struct ebd_item_s     ebd_item_t;
typedef struct ebd_route_s    ebd_route_t;
typedef struct ebd_tcore_s    ebd_tcore_t;
typedef struct ebd_disp_s     ebd_disp_t;
typedef struct ebd_bus_s      ebd_bus_t;
typedef struct ebd_runner_s   ebd_runner_t;
typedef struct ebd_limit_s    ebd_limit_t;
typedef struct ebd_order_s    ebd_order_t;
typedef struct ebd_okey_s     ebd_okey_t;


typedef enum {
    EBD_ITEM_QUEUED = 0,
    EBD_ITEM_INFLIGHT,
    EBD_ITEM_WAITING,           /* for its retry timer */
    EBD_ITEM_PARKED             /* behind an earlier entry of its key
                                 * (ebd_order.c) */
} ebd_item_state_t;


struct ebd_item_s {
    ebd_delivery_t       d;             /* first: ebd_delivery_done() casts */
    ebd_route_t         *route;
    ebd_item_t          *prev, *next;   /* the target's queue */
    ebd_item_t          *hnext;         /* the route's held set */
    ebd_item_state_t     state;
    int                  undeliverable; /* dead-letter at once */
    int                  no_rule;       /* its rule does not send here in
                                         * this configuration (yet): an
                                         * attempt fails, retried */
    char                 id[EBD_ID_MAX];
    char                *rule;
    char                *replay;        /* "replay" field, or NULL */
    char                *event_id;
    unsigned char       *event;
    size_t               event_len;
    yajl_val             tree;          /* when a transform or the driver
                                         * reads the event by path */
    eb_event_scan_t      scan;          /* otherwise: its members */
    eb_buf_t             payload;
    uint64_t             entered_ms;    /* the entry id's time */
    uint64_t             start_us;      /* of the attempt in flight */
    struct event        *timer;         /* retry wait */
    uint64_t             due_ms;        /* when the retry is due */
    ebd_result_t         last;          /* the last attempt's result */
    size_t               bytes;         /* its memory, estimated */
    int                  persisted;     /* has a record in retry_key */
    int                  restoring;     /* waits for that record */

    /* in order per key (ebd_order.c): its key's entries in memory */
    char                *okey;          /* the entry's "key"; NULL: "" */
    size_t               okey_len;
    ebd_okey_t          *chain;
    ebd_item_t          *knext;         /* the next entry of its key */
    ebd_item_t          *kprev;
    int                  restore_later; /* read back from the pending
                                         * list: its record is looked up
                                         * when it is its key's first */
};


#define EBD_OKEY_BUCKETS  256


#define EBD_HELD_BUCKETS  4096

struct ebd_route_s {
    ebd_disp_t          *dp;
    const char          *bus;
    ebd_target_t        *target;
    char                *stream;        /* eb:{BUS}:target:TARGET */
    char                *dlq;           /* eb:{BUS}:dlq:TARGET */
    char                *trace;         /* eb:{BUS}:trace */
    char                *retry_key;     /* eb:{BUS}:retry:TARGET */
    char                *pause_key;     /* eb:{BUS}:paused */
    int                  paused;        /* that hash names the target */
    char                *conn_name;
    ebd_conn_t          *reader;
    ebd_conn_t          *cmd;           /* the bus's command connection */
    ebd_metrics_route_t *metrics;       /* this worker's counters of it */
    struct event        *retry_ev;      /* after an error reply */
    uint64_t             backoff_ms;
    int                  retrying;      /* retry_ev is armed */
    int                  reading;       /* an XREADGROUP is out */
    int                  claiming;      /* an XAUTOCLAIM is out */
    int                  group_ok;      /* the group exists */
    int                  history;       /* reading our own pending first */
    int                  read_history;  /* the read out is of those */
    int                  announced;
    char                 cursor[EBD_ID_MAX];    /* of the history read */
    char                 claim_cursor[EBD_ID_MAX];
    uint64_t             idx_ttl_s;     /* of eb:{BUS}:idx:H */
    char               (*acks)[EBD_ID_MAX];    /* XACKs not sent yet */
    eb_buf_t             tr;            /* trace records not sent yet */
    unsigned             tr_n;          /* (ebd_index_flush) */
    size_t               tr_args;
    uint64_t             tr_hour;       /* their index bucket */
    size_t               nacks;
    size_t               acks_cap;
    size_t               untrimmed;     /* acknowledged since its trim */
    size_t               nheld;
    ebd_item_t          *held[EBD_HELD_BUCKETS];

    /* a partition of a target in order per key (ebd_order.c); NULL: the
     * target's stream, read by every consumer */
    const char          *consumer;      /* in the group */
    ebd_order_t         *order;
    unsigned             partition;
    int                  leased;        /* this process reads it */
    int                  draining;      /* given back once nothing of it
                                         * is in flight */
    unsigned             lease_gen;     /* leases taken so far */
    unsigned             read_gen;      /* the lease of the read out */
    uint64_t             rescan_ms;     /* the pending list read again */
    int                  hist_out;      /* a read of it is out */
    char               (*gone)[EBD_ID_MAX];    /* left memory meanwhile */
    size_t               ngone;
    size_t               gone_cap;
    ebd_okey_t          *keys[EBD_OKEY_BUCKETS];
};


typedef enum {
    EBD_CB_CLOSED = 0,
    EBD_CB_OPEN,
    EBD_CB_HALF_OPEN
} ebd_cb_state_t;


struct ebd_tcore_s {
    ebd_target_t         target;
    ebd_disp_t          *dp;
    ebd_retry_t          retry;
    int                  fault_none;    /* block and keep order */
    int                  dead_letter;
    int                  opened;
    int                  pumping;
    unsigned             inflight;
    unsigned             queued;
    unsigned             waiting;
    unsigned             parked;        /* behind their key's first */
    unsigned             paused_routes; /* ebd_pause.c: > 0, paused */
    size_t               held_bytes;    /* of the items in memory */
    size_t               memory_max;    /* "memory_mb" */
    int                  over_memory;   /* said so in the log */
    ebd_item_t          *head, *tail;   /* queued, in order */
    ebd_limit_t         *limit;         /* shared limits (ebd_limit.c);
                                         * NULL: the process's own */

    /* the circuit breaker (ebd_breaker.c); cb_failures 0: none */
    unsigned             cb_failures;
    unsigned             cb_consecutive;
    ebd_cb_state_t       cb_state;
    uint64_t             cb_cooldown_ms;
    uint64_t             cb_open_until;  /* monotonic ms */
    ebd_item_t          *cb_probe;      /* half open: the one attempt */
    struct event        *cb_timer;      /* the end of the cool-down */
};


/* A bus's command connection (XACK, dead letters, trace, XAUTOCLAIM,
 * XCLAIM, trimming), on the primary of the bus's slot; kept across
 * reloads while the bus is configured. */
struct ebd_bus_s {
    ebd_disp_t          *dp;
    char                *name;
    char                *conn_name;
    unsigned             slot;
    int                  used;
    ebd_conn_t          *cmd;
    int                  pause_polling; /* an HGETALL of paused is out */

    /* the retention of eb:{BUS}:events (ebd_retention.c); 0: not set */
    uint64_t             retain_age_ms;
    uint64_t             retain_length;
    uint64_t             trimmed_ms;    /* when the last round began */
    unsigned             trimming;      /* XTRIMs without a reply */
    int                  trim_more;     /* the last round removed some */

    /* the console's index and counters (ebd_index.c) */
    int                  indexing;      /* this process indexes the bus */
    int                  idx_known;     /* idx_cursor is what Redis has */
    int                  idx_busy;      /* a read or a page is out */
    int                  idx_more;      /* the last page was full */
    uint64_t             idx_next_ms;   /* the next read, when idle */
    uint64_t             idx_ttl_s;     /* of eb:{BUS}:idx:H */
    char                 idx_cursor[EBD_ID_MAX];   /* "": none yet */
};


/* What a reload keeps of an entry waiting for its retry, so that the
 * new configuration's route goes on where the old one was. */
typedef struct ebd_carry_s  ebd_carry_t;

struct ebd_carry_s {
    ebd_carry_t         *next;
    char                *stream;
    char                 id[EBD_ID_MAX];
    unsigned             attempt;
    int                  no_rule;       /* waited for its rule */
    uint64_t             due_ms;
    ebd_result_t         last;
};


typedef enum {
    EBD_RUNNING = 0,
    EBD_RELOADING,              /* draining, then the new configuration */
    EBD_STOPPING                /* draining, then exit */
} ebd_disp_state_t;


struct ebd_disp_s {
    ebd_opts_t          *opts;
    struct event_base   *base;
    ebd_topo_t           topo;
    eb_config_t         *cf;
    eb_config_t         *next_cf;       /* waiting for the drain */
    ebd_tcore_t         *targets;       /* one per configured target */
    size_t               ntargets;
    ebd_route_t        **routes;
    size_t               nroutes;
    ebd_order_t        **orders;        /* targets in order per key */
    size_t               norders;
    ebd_bus_t          **buses;
    size_t               nbuses;
    ebd_disp_state_t     state;
    int                  ready_logged;
    int                  exit_code;
    int                  leases_given;  /* stopping: ebd_order_give_back */
    uint64_t             drain_deadline;
    uint64_t             last_claim_ms;
    uint64_t             last_refresh_ms;
    uint64_t             last_trim_ms;
    uint64_t             last_stats_ms;
    uint64_t             last_pause_ms;
    uint64_t             last_sample_ms;
    struct event        *tick;
    struct event        *flush;         /* sends the acknowledgements */
    ebd_carry_t         *carry[EBD_HELD_BUCKETS];
    int                  flush_armed;
    struct event        *sigs[4];
    eb_rand_t            rand;
    ebd_runner_t        *runner;        /* worker 0: requested replays */

    /* counters for the log */
    uint64_t             delivered, retried, dead_lettered, discarded;
    uint64_t             logged_delivered, logged_retried,
                         logged_dead_lettered, logged_discarded;
};


/* NONE, in the target's own stream: nothing overtakes an entry waiting
 * for its retry (in a partition, ebd_order.c holds back its key only) */
static inline int
ebd_target_held_back(const ebd_tcore_t *tc)
{
    return tc->fault_none && tc->waiting && tc->head != NULL
           && tc->head->route->order == NULL;
}


/* ebd_core.c */
ebd_bus_t *ebd_bus_get(ebd_disp_t *dp, const char *name);
ebd_route_t *ebd_route_new(ebd_disp_t *dp, const char *bus, ebd_target_t *t);
void ebd_route_read(ebd_route_t *r);
void ebd_target_wants_more(ebd_tcore_t *tc);
ebd_item_t *ebd_held_find(ebd_route_t *r, const char *id, size_t len);
void ebd_held_remove(ebd_route_t *r, ebd_item_t *it);
void ebd_drained_check(ebd_disp_t *dp);
void ebd_carry_save(ebd_disp_t *dp, ebd_item_t *it, uint64_t due_ms);

/* ebd_retention.c */
int ebd_retention_setup(ebd_disp_t *dp);
void ebd_retention_tick(ebd_disp_t *dp, uint64_t now);

/* ebd_index.c: the console's index (eb:{BUS}:idx:H) and counters
 * (eb:{BUS}:stats:m:M, eb:{BUS}:stats:h:H) */
#define EBD_STATS_M_TTL      "7500"     /* 2 h 5 min */
#define EBD_STATS_H_TTL      "691200"   /* 8 days */

int ebd_index_setup(ebd_disp_t *dp);
void ebd_index_tick(ebd_disp_t *dp, uint64_t now);
void ebd_index_conn_ready(ebd_conn_t *c, void *data);
/* The trace XADD of an attempt, with its index token and its counter
 * (stat: "delivered", "retried", "failed" or NULL); fields: the trace
 * entry's names and values. */
void ebd_index_attempt(ebd_route_t *r, const char *event_id,
    uint64_t entered_ms, const char *stat, int nfields, const char **fields);
void ebd_index_attempt_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
/* Sends r's trace records: with the acknowledgements, once a loop turn. */
void ebd_index_flush(ebd_route_t *r);

/* ebd_replay_runner.c: the replays the console requests, in a thread
 * of worker 0; stop asks it to end after the batch in flight, join
 * waits for that (before the configuration it reads goes) */
int ebd_replay_runner_start(ebd_disp_t *dp);
void ebd_replay_runner_stop(ebd_disp_t *dp);
void ebd_replay_runner_join(ebd_disp_t *dp);

/* ebd_breaker.c */
int ebd_breaker_setup(ebd_tcore_t *tc, yajl_val spec);
void ebd_breaker_free(ebd_tcore_t *tc);
int ebd_breaker_allows(ebd_tcore_t *tc, ebd_item_t *it);
void ebd_breaker_result(ebd_tcore_t *tc, ebd_item_t *it,
    ebd_outcome_t outcome, char *err, size_t errlen);

/* ebd_deliver.c */
ebd_item_t *ebd_item_new(ebd_route_t *r, const char *id, size_t idlen,
    redisReply *fields);
void ebd_item_free(ebd_item_t *it);
void ebd_item_enqueue(ebd_item_t *it, int front);
/* ebd_stats_sample.c: backlog and dead letters for the console */
void ebd_stats_sample_tick(ebd_disp_t *dp, uint64_t now);
/* ebd_limit.c: concurrency and rate shared by every ebd process */
int ebd_limit_setup(ebd_tcore_t *tc, yajl_val spec);
void ebd_limit_free(ebd_tcore_t *tc);
int ebd_limit_allows(ebd_tcore_t *tc);
void ebd_limit_started(ebd_tcore_t *tc);
void ebd_limit_kick(ebd_tcore_t *tc);
void ebd_limit_tick(ebd_disp_t *dp, uint64_t now);

/* ebd_order.c: per-key order across processes */
int ebd_order_setup(ebd_disp_t *dp);
void ebd_order_free_all(ebd_disp_t *dp);
void ebd_order_tick(ebd_disp_t *dp, uint64_t now);
/* stopping, nothing in flight: the partitions' leases are given back
 * so that the others take them at once; returns how many calls went */
unsigned ebd_order_give_back(ebd_disp_t *dp);
/* 1: the item is the first of its key in memory, 0: parked behind it */
int ebd_order_chain(ebd_item_t *it);
/* the item leaves memory: the next of its key goes on */
void ebd_order_unlink(ebd_item_t *it);
/* a read went out: a read of the pending list notes what leaves memory
 * until its answer (ebd_order_gone) */
void ebd_order_read_out(ebd_route_t *r);
int ebd_order_gone(ebd_route_t *r, const char *id, size_t len);
/* whether entries a read returns may be taken */
int ebd_order_may_take(ebd_route_t *r);
/* whether an item of r may wait for its retry here (not when the
 * partition's lease is gone or being given back) */
int ebd_order_may_keep(const ebd_route_t *r);
/* the partitions' routes of r's (bus, target); NULL: not in order */
ebd_route_t **ebd_order_routes(ebd_disp_t *dp, const ebd_route_t *r,
    unsigned *n);

/* ebd_pause.c */
void ebd_pause_tick(ebd_disp_t *dp, uint64_t now);
void ebd_pause_gone(ebd_item_t *it);

/* ebd_retry_state.c: attempt counts and due times kept in Redis */
void ebd_retry_state_save(ebd_item_t *it, uint64_t due_ms);
void ebd_retry_state_clear(ebd_item_t *it);
int ebd_retry_state_hold(ebd_item_t *it);
void ebd_retry_state_restore(ebd_route_t *r, ebd_item_t **items, size_t n);
/* a WAITING item: its retry now (to the front of the queue), or in
 * delay_ms */
void ebd_retry_now_or_at(ebd_item_t *it, uint64_t delay_ms);
void ebd_item_release(ebd_item_t *it);
void ebd_target_pump(ebd_tcore_t *tc);
/* -1: no memory, the item was freed (its entry stays pending) */
int ebd_schedule_retry(ebd_item_t *it, uint64_t delay_ms);
unsigned ebd_target_room(const ebd_tcore_t *tc);
void ebd_ack(ebd_route_t *r, const char *id);
void ebd_flush_acks(ebd_disp_t *dp);

#endif /* EBD_CORE_H */
