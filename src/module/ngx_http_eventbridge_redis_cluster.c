/*
 * Redis Cluster: the worker's slot map, from CLUSTER SLOTS asked on a
 * one-shot connection to a seed or a known primary (the next one in turn
 * when one does not answer), one query at a time and at most every
 * EB_REDIS_REFRESH_MIN ms. A MOVED corrects one slot at once and asks for
 * the whole map again; the primaries of the configured buses are
 * connected as soon as the map says where they are.
 */

#include "ngx_http_eventbridge_redis.h"


static void ngx_http_eventbridge_cluster_queried(redisReply *reply);
static void ngx_http_eventbridge_cluster_close_gone(void);


ngx_int_t
ngx_http_eventbridge_cluster_init(void)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    rd->map = ngx_calloc(sizeof(eb_redis_map_t), rd->log);
    rd->map_next = ngx_calloc(sizeof(eb_redis_map_t), rd->log);

    if (rd->map == NULL || rd->map_next == NULL) {
        return NGX_ERROR;
    }

    rd->query.handler = ngx_http_eventbridge_cluster_queried;

    return NGX_OK;
}


void
ngx_http_eventbridge_cluster_exit(void)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->map) {
        eb_redis_map_free(rd->map);
        ngx_free(rd->map);
        rd->map = NULL;
    }

    if (rd->map_next) {
        eb_redis_map_free(rd->map_next);
        ngx_free(rd->map_next);
        rd->map_next = NULL;
    }
}


/* the seeds first, then the primaries the map knows */
static ngx_uint_t
ngx_http_eventbridge_cluster_naddrs(void)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    return rd->mcf->redis_addrs->nelts + rd->map->nnodes;
}


static eb_redis_addr_t *
ngx_http_eventbridge_cluster_addr(ngx_uint_t i)
{
    eb_redis_addr_t               *seeds;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    seeds = rd->mcf->redis_addrs->elts;

    if (i < rd->mcf->redis_addrs->nelts) {
        return &seeds[i];
    }

    return &rd->map->nodes[i - rd->mcf->redis_addrs->nelts];
}


/* A node whose connection answers now: asked first, so that a round
 * does not begin by waiting on a frozen seed. */
static ngx_http_eventbridge_node_t *
ngx_http_eventbridge_cluster_live_node(void)
{
    ngx_uint_t                     i;
    ngx_http_eventbridge_node_t  **nodes, *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    nodes = rd->nodes.elts;

    for (i = 0; i < rd->nodes.nelts; i++) {
        node = nodes[(rd->next_addr + i) % rd->nodes.nelts];

        if (node->state == EB_NODE_READY
            && (node->outstanding == 0
                || ngx_current_msec - node->progress < EB_REDIS_REFRESH_MIN))
        {
            return node;
        }
    }

    return NULL;
}


void
ngx_http_eventbridge_cluster_query(void)
{
    ngx_uint_t                     n;
    eb_redis_addr_t                addr;
    ngx_http_eventbridge_node_t   *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    static const char  *argv[] = { "CLUSTER", "SLOTS" };

    if (!rd->asked_live) {
        rd->asked_live = 1;
        node = ngx_http_eventbridge_cluster_live_node();

        if (node
            && ngx_http_eventbridge_query_start(&rd->query, &node->addr,
                                                &rd->mcf->redis_user,
                                                &rd->mcf->redis_password,
                                                2, argv)
               == NGX_OK)
        {
            return;
        }
    }

    n = ngx_http_eventbridge_cluster_naddrs();

    while (rd->tries < n) {
        addr = *ngx_http_eventbridge_cluster_addr(rd->next_addr++ % n);
        rd->tries++;

        if (ngx_http_eventbridge_query_start(&rd->query, &addr,
                                             &rd->mcf->redis_user,
                                             &rd->mcf->redis_password,
                                             2, argv)
            == NGX_OK)
        {
            return;
        }
    }

    if (!rd->logged_unavailable) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "eventbridge: redis cluster: no node answered "
                      "CLUSTER SLOTS");
        rd->logged_unavailable = 1;
    }

    ngx_http_eventbridge_redis_refreshed(0);
}


static ngx_uint_t
ngx_http_eventbridge_cluster_same(const eb_redis_addr_t *a,
    const eb_redis_addr_t *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }

    return a->port == b->port && ngx_strcmp(a->host, b->host) == 0;
}


/* logs what changed for the configured buses, then the map as a whole */
static ngx_uint_t
ngx_http_eventbridge_cluster_changed(eb_redis_map_t *old, eb_redis_map_t *new)
{
    ngx_uint_t                     s, i, *slots, changed;
    const eb_redis_addr_t         *a, *b;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    changed = (old->nnodes != new->nnodes);

    for (s = 0; s < EB_REDIS_SLOTS && !changed; s++) {
        changed = !ngx_http_eventbridge_cluster_same(
                                                  eb_redis_map_node(old, s),
                                                  eb_redis_map_node(new, s));
    }

    if (!changed || rd->mcf->redis_slots == NULL || old->nnodes == 0) {
        return changed;
    }

    slots = rd->mcf->redis_slots->elts;

    for (i = 0; i < rd->mcf->redis_slots->nelts; i++) {
        a = eb_redis_map_node(old, slots[i]);
        b = eb_redis_map_node(new, slots[i]);

        if (!ngx_http_eventbridge_cluster_same(a, b)) {
            ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                          "eventbridge: redis cluster: slot %ui now on "
                          "%s:%d (was %s:%d)", slots[i],
                          b ? b->host : "none", b ? b->port : 0,
                          a ? a->host : "none", a ? a->port : 0);
        }
    }

    return changed;
}


/* Connections to servers that are no longer primaries (failed over,
 * frozen, demoted) are closed: what is in flight there is sent again to
 * the slots' new owners instead of waiting on a server that will refuse
 * it or never answer. */
static void
ngx_http_eventbridge_cluster_close_gone(void)
{
    ngx_uint_t                     i, k;
    ngx_http_eventbridge_node_t  **nodes;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    nodes = rd->nodes.elts;

    for (i = 0; i < rd->nodes.nelts; i++) {
        if (nodes[i]->ac == NULL && !nodes[i]->reconnect.timer_set) {
            continue;
        }

        for (k = 0; k < rd->map->nnodes; k++) {
            if (ngx_http_eventbridge_cluster_same(&nodes[i]->addr,
                                                  &rd->map->nodes[k]))
            {
                break;
            }
        }

        if (k == rd->map->nnodes) {
            ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                          "eventbridge: redis cluster: %s is no longer a "
                          "primary: connection closed", nodes[i]->name);
            ngx_http_eventbridge_node_close(nodes[i]);
        }
    }
}


static void
ngx_http_eventbridge_cluster_queried(redisReply *reply)
{
    char                           err[128];
    ngx_uint_t                     i, *slots;
    eb_redis_map_t                *map;
    ngx_http_eventbridge_node_t   *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (reply == NULL) {
        goto next;
    }

    if (eb_redis_map_parse(rd->map_next, reply, rd->query.addr.host, err,
                           sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "eventbridge: redis cluster: CLUSTER SLOTS from "
                      "%s:%d: %s", rd->query.addr.host, rd->query.addr.port,
                      err);
        goto next;
    }

    if (rd->map_next->nnodes == 0) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "eventbridge: redis cluster: %s:%d serves no slot",
                      rd->query.addr.host, rd->query.addr.port);
        goto next;
    }

    if (ngx_http_eventbridge_cluster_changed(rd->map, rd->map_next)) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "eventbridge: redis cluster: slot map: %uz primaries "
                      "(from %s:%d)", rd->map_next->nnodes,
                      rd->query.addr.host, rd->query.addr.port);
    }

    map = rd->map;
    rd->map = rd->map_next;
    rd->map_next = map;

    ngx_http_eventbridge_cluster_close_gone();

    if (rd->logged_unavailable) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "eventbridge: redis cluster: slot map received");
        rd->logged_unavailable = 0;
    }

    /* connect the buses' primaries now: the first request need not wait */
    if (rd->mcf->redis_slots) {
        slots = rd->mcf->redis_slots->elts;

        for (i = 0; i < rd->mcf->redis_slots->nelts; i++) {
            node = ngx_http_eventbridge_cluster_route(slots[i]);

            if (node && node->state == EB_NODE_DOWN
                && !node->reconnect.timer_set)
            {
                ngx_http_eventbridge_node_connect(node);
            }
        }
    }

    ngx_http_eventbridge_redis_refreshed(1);
    return;

next:

    ngx_http_eventbridge_cluster_query();
}


ngx_http_eventbridge_node_t *
ngx_http_eventbridge_cluster_route(ngx_uint_t slot)
{
    const eb_redis_addr_t         *a;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    a = eb_redis_map_node(rd->map, slot);
    if (a == NULL) {
        return NULL;
    }

    return ngx_http_eventbridge_redis_node_get(a);
}


void
ngx_http_eventbridge_cluster_moved(unsigned slot, const eb_redis_addr_t *to)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (eb_redis_map_set(rd->map, slot, to) != 0) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "eventbridge: redis cluster: slot %ud moved to %s:%d "
                      "not recorded (too many nodes)", slot, to->host,
                      to->port);
    }
}
