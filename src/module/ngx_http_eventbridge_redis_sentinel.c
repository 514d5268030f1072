/*
 * Redis Sentinel: the primary of the configured master, asked of the
 * sentinels in turn (SENTINEL get-master-addr-by-name, with the sentinels'
 * own AUTH when set) on one-shot connections. The primary's connection
 * checks ROLE before it takes events: a sentinel that has not seen a
 * failover yet may name a server that is a replica now.
 */

#include "ngx_http_eventbridge_redis.h"


static void ngx_http_eventbridge_sentinel_queried(redisReply *reply);


void
ngx_http_eventbridge_sentinel_query(void)
{
    eb_redis_addr_t                   *addrs;
    const char                        *argv[3];
    ngx_http_eventbridge_redis_t      *rd = &ngx_http_eventbridge_redis;
    ngx_http_eventbridge_main_conf_t  *mcf = rd->mcf;

    argv[0] = "SENTINEL";
    argv[1] = "get-master-addr-by-name";
    /* the end of a configuration token: NUL-terminated */
    argv[2] = (const char *) mcf->sentinel_master.data;

    rd->query.handler = ngx_http_eventbridge_sentinel_queried;
    addrs = mcf->redis_addrs->elts;

    while (rd->tries < mcf->redis_addrs->nelts) {
        rd->tries++;

        if (ngx_http_eventbridge_query_start(&rd->query,
                                 &addrs[rd->next_addr++
                                        % mcf->redis_addrs->nelts],
                                 &mcf->sentinel_user,
                                 &mcf->sentinel_password, 3, argv)
            == NGX_OK)
        {
            return;
        }
    }

    if (!rd->logged_unavailable) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "eventbridge: redis sentinel: no sentinel named a "
                      "primary for master \"%V\"", &mcf->sentinel_master);
        rd->logged_unavailable = 1;
    }

    ngx_http_eventbridge_redis_refreshed(0);
}


static void
ngx_http_eventbridge_sentinel_queried(redisReply *reply)
{
    int                                rc;
    char                               err[128];
    eb_redis_addr_t                    addr;
    ngx_http_eventbridge_node_t       *node, *old;
    ngx_http_eventbridge_redis_t      *rd = &ngx_http_eventbridge_redis;
    ngx_http_eventbridge_main_conf_t  *mcf = rd->mcf;

    if (reply == NULL) {
        ngx_http_eventbridge_sentinel_query();
        return;
    }

    rc = eb_redis_sentinel_parse(reply, &addr, err, sizeof(err));

    if (rc == 0) {
        if (!rd->logged_unavailable) {
            ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                          "eventbridge: redis sentinel %s:%d knows no "
                          "master named \"%V\"", rd->query.addr.host,
                          rd->query.addr.port, &mcf->sentinel_master);
        }

        ngx_http_eventbridge_sentinel_query();
        return;
    }

    if (rc != 1) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "eventbridge: redis sentinel %s:%d: %s",
                      rd->query.addr.host, rd->query.addr.port, err);
        ngx_http_eventbridge_sentinel_query();
        return;
    }

    node = ngx_http_eventbridge_redis_node_get(&addr);
    if (node == NULL) {
        ngx_http_eventbridge_redis_refreshed(0);
        return;
    }

    if (node != rd->primary) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "eventbridge: redis sentinel: primary of %V is now %s",
                      &mcf->sentinel_master, node->name);

        /* jobs in flight on the old one come back lost and are resent */
        old = rd->primary;
        rd->primary = node;

        if (old) {
            ngx_http_eventbridge_node_close(old);
        }
    }

    rd->logged_unavailable = 0;

    if (node->state == EB_NODE_DOWN && !node->reconnect.timer_set) {
        ngx_http_eventbridge_node_connect(node);
    }

    ngx_http_eventbridge_redis_refreshed(1);
}
