/*
 * One connection to one Redis server: connect, AUTH [user] password,
 * SELECT, ROLE when a sentinel named the server, then READY for pipelined
 * commands. One timer guards it: until READY it bounds the whole setup;
 * once READY it is the watchdog, armed while replies are due and pushed
 * back by every reply, so that a connection whose replies stopped (a
 * black-holed peer, a frozen server) is dropped and made again instead of
 * holding requests until TCP gives up.
 *
 * Addresses are numeric text: redisAsyncConnect never resolves.
 */

#include "ngx_http_eventbridge_redis.h"


static void ngx_http_eventbridge_node_reconnect_handler(ngx_event_t *ev);
static void ngx_http_eventbridge_node_timer_handler(ngx_event_t *ev);
static void ngx_http_eventbridge_node_lost(ngx_http_eventbridge_node_t *node,
    ngx_uint_t now);
static void ngx_http_eventbridge_node_schedule(
    ngx_http_eventbridge_node_t *node);


void
ngx_http_eventbridge_node_init(ngx_http_eventbridge_node_t *node,
    const eb_redis_addr_t *addr, u_char *unix_path, ngx_log_t *log)
{
    ngx_memzero(node, sizeof(ngx_http_eventbridge_node_t));

    if (addr) {
        node->addr = *addr;
        ngx_snprintf(node->name, EB_REDIS_NAME_LEN - 1,
                     ngx_strchr(addr->host, ':') ? "[%s]:%d%Z" : "%s:%d%Z",
                     addr->host, addr->port);

    } else {
        node->unix_path = unix_path;
        ngx_snprintf(node->name, EB_REDIS_NAME_LEN - 1, "unix:%s%Z",
                     unix_path);
    }

    node->backoff = EB_REDIS_BACKOFF_MIN;
    ngx_queue_init(&node->wait_sent);
    ngx_queue_init(&node->wait_next);

    node->reconnect.handler = ngx_http_eventbridge_node_reconnect_handler;
    node->reconnect.data = node;
    node->reconnect.log = log;
    /* nothing a request waits for: must not hold up a graceful exit */
    node->reconnect.cancelable = 1;

    node->timer.handler = ngx_http_eventbridge_node_timer_handler;
    node->timer.data = node;
    node->timer.log = log;
    node->timer.cancelable = 1;
}


static void
ngx_http_eventbridge_node_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_eventbridge_node_connect(ev->data);
}


static void
ngx_http_eventbridge_node_timer_handler(ngx_event_t *ev)
{
    ngx_http_eventbridge_node_t   *node = ev->data;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node->ac == NULL) {
        return;
    }

    if (node->state == EB_NODE_CONNECTING) {
        if (!node->logged_down) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "eventbridge: redis %s: connect timed out",
                          node->name);
            node->logged_down = 1;
        }

        ngx_http_eventbridge_node_drop(node, 0);
        return;
    }

    if (node->outstanding == 0) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "eventbridge: redis %s: no reply for %Mms, %ui due: "
                  "dropping the connection", node->name,
                  EB_REDIS_WATCHDOG(rd->mcf), node->outstanding);
    node->logged_down = 1;

    ngx_http_eventbridge_count_redis_event(EB_REDIS_EV_WATCHDOG);

    ngx_http_eventbridge_node_drop(node, 1);
}


static void
ngx_http_eventbridge_node_ready(ngx_http_eventbridge_node_t *node)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node->logged_down) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "eventbridge: redis %s: connected again", node->name);

    } else {
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "eventbridge: redis %s: connected", node->name);
    }

    node->state = EB_NODE_READY;
    node->backoff = EB_REDIS_BACKOFF_MIN;
    node->logged_down = 0;

    /* from now on the timer is the watchdog */
    if (node->timer.timer_set) {
        ngx_del_timer(&node->timer);
    }

    if (node->outstanding) {
        ngx_add_timer(&node->timer, EB_REDIS_WATCHDOG(rd->mcf));
    }

    ngx_http_eventbridge_redis_node_up(node);
}


static void
ngx_http_eventbridge_node_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_eventbridge_node_t   *node = ac->data;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node == NULL || node->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        if (!node->logged_down) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "eventbridge: redis %s: cannot connect: %s",
                          node->name, ac->errstr);
            node->logged_down = 1;
        }

        ngx_http_eventbridge_node_lost(node, 0);
        return;
    }

    if (node->setup == 0) {
        ngx_http_eventbridge_node_ready(node);
    }
}


static void
ngx_http_eventbridge_node_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_eventbridge_node_t   *node = ac->data;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node == NULL || node->ac != ac) {
        return;                 /* dropped by us, already handled */
    }

    if (status != REDIS_OK && !node->logged_down && !rd->exiting) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "eventbridge: redis %s: connection lost: %s",
                      node->name, ac->errstr);
        node->logged_down = 1;
    }

    /* a connection that worked is made again at once; one that failed
     * while being set up waits (backoff) */
    ngx_http_eventbridge_node_lost(node, node->state == EB_NODE_READY);
}


/* The context is gone or going: forget it, tell the topology. */
static void
ngx_http_eventbridge_node_lost(ngx_http_eventbridge_node_t *node,
    ngx_uint_t now)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node->timer.timer_set) {
        ngx_del_timer(&node->timer);
    }

    node->ac = NULL;
    node->state = EB_NODE_DOWN;
    node->setup = 0;
    node->outstanding = 0;

    if (rd->exiting) {
        return;
    }

    if (now) {
        ngx_http_eventbridge_node_connect(node);

    } else {
        ngx_http_eventbridge_node_schedule(node);
    }

    ngx_http_eventbridge_redis_node_down(node);
}


/* Drops the connection (not from a connect callback): pending commands
 * get NULL replies, their jobs are resent or answered. */
void
ngx_http_eventbridge_node_drop(ngx_http_eventbridge_node_t *node,
    ngx_uint_t now)
{
    redisAsyncContext  *ac;

    ac = node->ac;
    if (ac == NULL) {
        return;
    }

    /* state first: the NULL replies must find the node down */
    node->ac = NULL;
    node->state = EB_NODE_DOWN;
    ac->data = NULL;

    if (node->timer.timer_set) {
        ngx_del_timer(&node->timer);
    }

    redisAsyncFree(ac);

    /* a job resent from those replies may have connected it again */
    if (node->ac == NULL) {
        ngx_http_eventbridge_node_lost(node, now);
    }
}


void
ngx_http_eventbridge_node_close(ngx_http_eventbridge_node_t *node)
{
    redisAsyncContext  *ac;

    if (node->reconnect.timer_set) {
        ngx_del_timer(&node->reconnect);
    }

    if (node->timer.timer_set) {
        ngx_del_timer(&node->timer);
    }

    ac = node->ac;
    node->ac = NULL;
    node->state = EB_NODE_DOWN;

    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}


static void
ngx_http_eventbridge_node_schedule(ngx_http_eventbridge_node_t *node)
{
    if (ngx_http_eventbridge_redis.exiting || node->reconnect.timer_set) {
        return;
    }

    ngx_add_timer(&node->reconnect, node->backoff);

    node->backoff *= 2;
    if (node->backoff > EB_REDIS_BACKOFF_MAX) {
        node->backoff = EB_REDIS_BACKOFF_MAX;
    }
}


/* Every callback of a command sent through node_send() starts here: the
 * watchdog sees progress. Returns the node, NULL if it was dropped. */
ngx_http_eventbridge_node_t *
ngx_http_eventbridge_node_replied(redisAsyncContext *ac, redisReply *reply)
{
    ngx_http_eventbridge_node_t   *node = ac->data;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node == NULL || node->ac != ac) {
        return NULL;
    }

    if (reply == NULL) {
        /* hiredis is freeing the context (and refuses new commands on
         * it); node_lost() follows */
        return node;
    }

    node->progress = ngx_current_msec;

    if (node->outstanding) {
        node->outstanding--;
    }

    if (node->state == EB_NODE_READY) {
        if (node->outstanding) {
            ngx_add_timer(&node->timer, EB_REDIS_WATCHDOG(rd->mcf));

        } else if (node->timer.timer_set) {
            ngx_del_timer(&node->timer);
        }
    }

    return node;
}


ngx_int_t
ngx_http_eventbridge_node_send(ngx_http_eventbridge_node_t *node,
    redisCallbackFn *fn, void *privdata, u_char *cmd, size_t len)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node->ac == NULL
        || redisAsyncFormattedCommand(node->ac, fn, privdata, (char *) cmd,
                                      len)
           != REDIS_OK)
    {
        return NGX_ERROR;
    }

    if (node->outstanding++ == 0) {
        node->progress = ngx_current_msec;

        if (node->state == EB_NODE_READY) {
            ngx_add_timer(&node->timer, EB_REDIS_WATCHDOG(rd->mcf));
        }
    }

    return NGX_OK;
}


static void
ngx_http_eventbridge_node_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_eventbridge_node_t   *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    node = ngx_http_eventbridge_node_replied(ac, reply);

    if (node == NULL || reply == NULL) {
        return;                 /* the context is going away */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* a wrong password or database: log it, start over with backoff */
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "eventbridge: redis %s: %s failed: %*s",
                      node->name, (char *) privdata,
                      (size_t) reply->len, reply->str);
        goto failed;
    }

    if (ngx_strcmp(privdata, "ROLE") == 0
        && eb_redis_role_is_primary(reply) != 1)
    {
        if (!node->logged_down) {
            ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                          "eventbridge: redis %s: not a primary (ROLE); "
                          "asking the sentinels again", node->name);
        }

        ngx_http_eventbridge_redis_refresh();
        goto failed;
    }

    if (--node->setup == 0 && node->state == EB_NODE_CONNECTING) {
        ngx_http_eventbridge_node_ready(node);
    }

    return;

failed:

    node->logged_down = 1;
    node->state = EB_NODE_DOWN;
    ngx_http_eventbridge_node_schedule(node);

    /* inside a callback: hiredis frees the context when it returns, and
     * calls the disconnect callback, which sees the node down */
    redisAsyncDisconnect(ac);
}


static ngx_int_t
ngx_http_eventbridge_node_setup(ngx_http_eventbridge_node_t *node,
    const char *what, int argc, const char **argv, const size_t *argvlen)
{
    if (redisAsyncCommandArgv(node->ac, ngx_http_eventbridge_node_setup_reply,
                              (void *) what, argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    node->setup++;
    node->outstanding++;

    return NGX_OK;
}


void
ngx_http_eventbridge_node_connect(ngx_http_eventbridge_node_t *node)
{
    ngx_http_eventbridge_redis_t      *rd = &ngx_http_eventbridge_redis;
    ngx_http_eventbridge_main_conf_t  *mcf = rd->mcf;

    int                 argc;
    u_char              db[NGX_INT_T_LEN];
    size_t              argvlen[3];
    const char         *argv[3];
    redisAsyncContext  *ac;

    if (rd->exiting || node->state != EB_NODE_DOWN) {
        return;
    }

    if (node->reconnect.timer_set) {
        ngx_del_timer(&node->reconnect);
    }

    if (node->unix_path) {
        ac = redisAsyncConnectUnix((char *) node->unix_path);

    } else {
        ac = redisAsyncConnect(node->addr.host, node->addr.port);
    }

    if (ac == NULL || ac->err) {
        if (!node->logged_down) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "eventbridge: redis %s: cannot connect: %s",
                          node->name, ac ? ac->errstr : "out of memory");
            node->logged_down = 1;
        }

        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_http_eventbridge_node_schedule(node);
        ngx_http_eventbridge_redis_node_down(node);
        return;
    }

    if (ngx_http_eventbridge_redis_attach(ac, rd->log) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                      "eventbridge: redis %s: no free connection",
                      node->name);
        redisAsyncFree(ac);
        ngx_http_eventbridge_node_schedule(node);
        ngx_http_eventbridge_redis_node_down(node);
        return;
    }

    ac->data = node;
    node->ac = ac;
    node->state = EB_NODE_CONNECTING;
    node->setup = 0;
    node->outstanding = 0;

    redisAsyncSetConnectCallback(ac, ngx_http_eventbridge_node_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_eventbridge_node_disconnected);

    /* queued now, sent first once connected; jobs wait for READY */
    if (mcf->redis_password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (mcf->redis_user.len) {
            argv[argc] = (const char *) mcf->redis_user.data;
            argvlen[argc++] = mcf->redis_user.len;
        }

        argv[argc] = (const char *) mcf->redis_password.data;
        argvlen[argc++] = mcf->redis_password.len;

        if (ngx_http_eventbridge_node_setup(node, "AUTH", argc, argv, argvlen)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (mcf->redis_db > 0) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", mcf->redis_db) - db;

        if (ngx_http_eventbridge_node_setup(node, "SELECT", 2, argv, argvlen)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (node->role_check) {
        argv[0] = "ROLE";
        argvlen[0] = 4;

        if (ngx_http_eventbridge_node_setup(node, "ROLE", 1, argv, argvlen)
            != NGX_OK)
        {
            goto failed;
        }
    }

    /* stays until READY: a peer that accepts and then says nothing does
     * not keep the node CONNECTING for ever */
    ngx_add_timer(&node->timer, mcf->redis_timeout);

    return;

failed:

    ngx_http_eventbridge_node_drop(node, 0);
}
