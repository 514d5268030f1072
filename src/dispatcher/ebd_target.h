/*
 * The contract between ebd's core (which reads the target streams, keeps
 * the at-least-once bookkeeping, retries, dead-letters and traces) and the
 * target drivers (http, cloudevents, mysql, postgresql, redis), which only
 * know how to make one delivery attempt and say how it went.
 *
 * Threading: everything here runs on the one libevent loop (t->base)
 * except what a driver does in threads of its own; such a driver hands
 * results back to the loop itself (libevent is set up for threads:
 * event_active() may be called from any thread).
 */

#ifndef EBD_TARGET_H
#define EBD_TARGET_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <yajl/yajl_tree.h>

#include "eb_config.h"
#include "eb_event_scan.h"
#include "eb_jsonpath.h"


typedef enum {
    EBD_DELIVERED = 0,     /* the target confirmed: the entry is acknowledged */
    EBD_RETRY,             /* transient: connection refused/reset, timeout,
                            * 429, 5xx, a database that is down: try again
                            * later by the target's retry policy */
    EBD_REJECTED           /* permanent: other 4xx, an SQL constraint or
                            * data error: dead-letter at once, no retry */
} ebd_outcome_t;


typedef struct {
    ebd_outcome_t   outcome;
    int             status;          /* HTTP status; MySQL error number;
                                      * 0 when there is none */
    int64_t         retry_after_ms;  /* the target's Retry-After, -1 if none */
    char            error[256];      /* one line for logs and the trace:
                                      * never a secret ("" when delivered) */
} ebd_result_t;


typedef struct ebd_target_s    ebd_target_t;
typedef struct ebd_delivery_s  ebd_delivery_t;


/* One attempt to deliver one stream entry. Everything it points to stays
 * valid until the driver calls ebd_delivery_done() for it. */
struct ebd_delivery_s {
    ebd_target_t          *target;
    const char            *bus;
    const char            *rule;
    const char            *entry_id;     /* "1700000000000-0" */
    const char            *event_id;     /* the CloudEvent id ("" if none) */

    const unsigned char   *event;        /* the stored CloudEvent, JSON */
    size_t                 event_len;
    yajl_val               tree;         /* the same, parsed, when a
                                          * transform or the driver
                                          * (wants_tree) reads it; else
                                          * NULL and: */
    const eb_event_scan_t *scan;         /* its top-level members */
    const char            *traceparent;  /* the event's W3C trace context
                                          * (a valid traceparent), NULL
                                          * when none */
    const char            *tracestate;   /* as stored, NULL when none */
    const char            *replay;       /* the name of the replay that
                                          * enqueued it (ebd replay),
                                          * NULL for a live delivery */

    /* What the rule's transform made of the event (the event itself
     * when the rule has none): the body of an http target, the data of
     * a cloudevents target, the entry of a redis target. */
    const unsigned char   *payload;
    size_t                 payload_len;
    int                    payload_is_json;

    unsigned               attempt;      /* 1 for the first attempt */
    void                  *driver_data;  /* the driver's, during the attempt */
};


/* A driver calls this exactly once for every deliver(), with the
 * outcome; it may do so from inside deliver(). d must not be touched
 * afterwards. Only on the loop's thread. */
void ebd_delivery_done(ebd_delivery_t *d, const ebd_result_t *r);

/* Helpers for drivers: fill r and return it. */
ebd_result_t *ebd_result_set(ebd_result_t *r, ebd_outcome_t outcome,
    int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Microseconds of a monotonic clock: for latencies and deadlines. Any
 * thread. */
uint64_t ebd_mono_us(void);


typedef struct {
    const char  *type;           /* "http", "mysql", ... */

    /* Prepares t->data from t->conf (already validated by eb_config.c).
     * Must not block for long: connections are made lazily, in deliver()
     * or in the driver's threads. Returns 0, or -1 with a reason (no
     * secrets) in err. */
    int   (*open)(ebd_target_t *t, char *err, size_t errlen);

    /* Starts one attempt. The core never has more than t->concurrency
     * attempts in flight for a target. The driver enforces its own
     * timeout (t->timeout_ms) and its rate limit (if any): an attempt
     * waiting for the rate limit is still in flight. */
    void  (*deliver)(ebd_target_t *t, ebd_delivery_t *d);

    /* Called once no attempt is in flight any more: releases t->data. */
    void  (*close)(ebd_target_t *t);

    /* deliver() reads d->tree; others get d->scan unless the rule has a
     * transform (a target may want the tree too: t->wants_tree) */
    unsigned  wants_tree;
} ebd_driver_t;


struct ebd_target_s {
    const char                     *name;
    const eb_config_target_t       *conf;        /* conf->spec: the object */
    const eb_config_connection_t   *connection;  /* NULL when none */
    const eb_config_t              *config;      /* the whole file */
    struct event_base              *base;
    uint64_t                        timeout_ms;  /* "timeout", default 10 s */
    unsigned                        concurrency; /* "concurrency", default
                                                  * 16 (1 for fault
                                                  * tolerance NONE) */
    const ebd_driver_t             *driver;
    /* set by open(): the simple JSONPaths (eb_jsonpath_is_simple()) that
     * d->scan finds too (eb_event_scan_found(d->scan, i)), or that the
     * target's deliver() wants d->tree after all */
    const eb_jsonpath_t *const     *scan_paths;
    size_t                          nscan_paths;
    unsigned                        wants_tree;
    void                           *data;        /* the driver's */
    void                           *core;        /* the core's */
};


extern const ebd_driver_t  ebd_http_driver;        /* ebd_http.c */
extern const ebd_driver_t  ebd_cloudevents_driver; /* ebd_http.c */
extern const ebd_driver_t  ebd_mysql_driver;       /* ebd_mysql.c */
extern const ebd_driver_t  ebd_postgresql_driver;  /* ebd_pgsql.c */
extern const ebd_driver_t  ebd_redis_driver;       /* ebd_redis_target.c */
extern const ebd_driver_t  ebd_dingtalk_driver;    /* ebd_dingtalk.c */

#endif /* EBD_TARGET_H */
