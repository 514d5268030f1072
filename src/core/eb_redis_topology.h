/*
 * What Redis tells us about where to write, as pure functions (no I/O):
 * the slot -> primary table from CLUSTER SLOTS, the primary a Sentinel
 * names, whether ROLE says "master", and what an error reply asks of the
 * client (follow a redirection, refresh the map, retry, or give up).
 * nginx's workers and ebd share them; the connections are theirs.
 *
 * Addresses are kept as numeric text only: a topology that announces
 * host names is refused, so that neither an nginx worker nor ebd's loop
 * ever resolves a name.
 */

#ifndef EB_REDIS_TOPOLOGY_H
#define EB_REDIS_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#include "eb_redis_slot.h"


#define EB_REDIS_HOST_LEN    46            /* INET6_ADDRSTRLEN */
#define EB_REDIS_MAX_NODES   1024          /* primaries in one map */
#define EB_REDIS_NO_NODE     0xffff


typedef struct {
    char                host[EB_REDIS_HOST_LEN];   /* numeric, NUL-ended */
    int                 port;
} eb_redis_addr_t;


/* A cluster's slot map: each slot's primary as an index into nodes[]
 * (EB_REDIS_NO_NODE: no primary serves it). */
typedef struct {
    eb_redis_addr_t    *nodes;              /* primaries, each once */
    size_t              nnodes;
    uint16_t            slot[EB_REDIS_SLOTS];
} eb_redis_map_t;


/* Parses a CLUSTER SLOTS reply into map (which must be zeroed or
 * previously parsed; its nodes are freed and replaced). An empty host
 * or "?" in the reply means "the node you asked": from_host is used.
 * Returns 0; -1 with err set on a malformed reply, a host name, or
 * more than EB_REDIS_MAX_NODES primaries (map is then left empty). */
int eb_redis_map_parse(eb_redis_map_t *map, const redisReply *r,
    const char *from_host, char *err, size_t errlen);

/* The primary of a slot, or NULL. */
const eb_redis_addr_t *eb_redis_map_node(const eb_redis_map_t *map,
    unsigned slot);

/* Points one slot at addr (after a MOVED), adding the node if new.
 * Returns 0, or -1 when out of memory or nodes are at their limit. */
int eb_redis_map_set(eb_redis_map_t *map, unsigned slot,
    const eb_redis_addr_t *addr);

void eb_redis_map_free(eb_redis_map_t *map);


/* SENTINEL get-master-addr-by-name: 1 with addr set; 0 when the
 * sentinel knows no such master (nil); -1 with err set otherwise. */
int eb_redis_sentinel_parse(const redisReply *r, eb_redis_addr_t *addr,
    char *err, size_t errlen);

/* ROLE: 1 when the server is a primary ("master"), 0 when not, -1 when
 * the reply is not a ROLE reply. */
int eb_redis_role_is_primary(const redisReply *r);


/* What an error reply asks of the client. */
typedef enum {
    EB_REDIS_ERROR_FATAL = 0,   /* the command itself is wrong: answer it */
    EB_REDIS_ERROR_MOVED,       /* slot has a new owner: follow, refresh */
    EB_REDIS_ERROR_ASK,         /* migrating: follow once, with ASKING */
    EB_REDIS_ERROR_TRYAGAIN,    /* keys in flight between nodes: retry soon */
    EB_REDIS_ERROR_REFRESH,     /* READONLY, MASTERDOWN, LOADING,
                                   CLUSTERDOWN: find the primary again,
                                   then retry */
    EB_REDIS_ERROR_RETRY        /* BUSY, OOM, NOREPLICAS: the same node,
                                   later */
} eb_redis_error_e;

/* Classifies an error reply's text ("MOVED 3999 127.0.0.1:6381"); for
 * MOVED and ASK, *slot and *to are set (to->host numeric; a redirection
 * to a host name or a malformed one is EB_REDIS_ERROR_REFRESH). */
eb_redis_error_e eb_redis_error_parse(const char *str, size_t len,
    unsigned *slot, eb_redis_addr_t *to);

/* An address "host:port" or "[v6]:port" as numeric text: 0, or -1 when
 * it is not numeric or the port is out of range. */
int eb_redis_addr_parse(const char *s, size_t len, eb_redis_addr_t *a);

#endif /* EB_REDIS_TOPOLOGY_H */
