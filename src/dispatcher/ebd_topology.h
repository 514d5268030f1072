/*
 * Where ebd's Redis keys live, shared by all connections of one process:
 * a single server, a Redis Cluster (the slot map from CLUSTER SLOTS), or
 * the primary a Sentinel names. Every key of a bus hashes to the slot of
 * {BUS}, so a connection is bound to a slot and asks here for its
 * primary at every (re)connection.
 *
 * The map is asked for again (one query in flight, 100 ms apart at
 * least, backing off to 5 s while nobody answers) when a connection
 * cannot find its primary, loses it, or is told MOVED, READONLY,
 * LOADING, CLUSTERDOWN or MASTERDOWN. Host names of -r are resolved
 * before the loop runs; what Redis announces is numeric
 * (eb_redis_topology refuses names), so the loop never resolves.
 */

#ifndef EBD_TOPOLOGY_H
#define EBD_TOPOLOGY_H

#include "ebd.h"
#include "eb_redis_topology.h"


typedef enum {
    EBD_TOPO_SINGLE = 0,
    EBD_TOPO_CLUSTER,
    EBD_TOPO_SENTINEL
} ebd_topo_mode_t;


struct ebd_topo_s {
    ebd_topo_mode_t      mode;
    const ebd_opts_t    *opts;
    struct event_base   *base;
    ebd_addr_t          *seeds;         /* -r, numeric */
    size_t               nseeds;
    int                  known;         /* map or primary */
    eb_redis_map_t       map;           /* cluster */
    eb_redis_map_t       spare;         /* the next answer parsed here */
    eb_redis_addr_t      primary;       /* sentinel */
    redisAsyncContext   *ac;            /* the query in flight */
    size_t               next;          /* the candidate asked next */
    size_t               tried;         /* in this round */
    uint64_t             started_ms;
    uint64_t             backoff_ms;    /* between rounds */
    struct event        *timer;
    ebd_conn_t          *conns;         /* to wake, to watch */
    size_t               logged_nodes;
    char                 state[64];     /* the trouble last logged */
};


/* A host name to a numeric address (getaddrinfo: never on the loop's
 * watch, only at start and SIGHUP): 0, or -1 with err set. */
int ebd_addr_resolve(ebd_addr_t *a, char *err, size_t errlen);

int ebd_topo_init(ebd_topo_t *t, struct event_base *base,
    const ebd_opts_t *o, char *err, size_t errlen);
/* SIGHUP: the -r host names again; the old addresses stay on failure. */
int ebd_topo_resolve(ebd_topo_t *t, char *err, size_t errlen);
void ebd_topo_free(ebd_topo_t *t);

/* The slot's primary: 0; -1 when unknown (a refresh is on its way and
 * the waiting connections are woken when it is done). */
int ebd_topo_addr(ebd_topo_t *t, unsigned slot, ebd_addr_t *a);
void ebd_topo_refresh(ebd_topo_t *t);
/* A MOVED reply: slot now lives at to. */
void ebd_topo_moved(ebd_topo_t *t, unsigned slot, const eb_redis_addr_t *to);

void ebd_topo_add(ebd_topo_t *t, ebd_conn_t *c);
void ebd_topo_remove(ebd_topo_t *t, ebd_conn_t *c);
/* The watchdog, from the dispatcher's tick: drops connections (and a
 * query) waiting longer than --redis-timeout. */
void ebd_topo_watch(ebd_topo_t *t);

#endif /* EBD_TOPOLOGY_H */
