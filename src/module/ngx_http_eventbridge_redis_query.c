/*
 * One-shot topology queries: connect to one server (a cluster seed or
 * node, a sentinel), AUTH if configured, ask one question (CLUSTER SLOTS,
 * SENTINEL get-master-addr-by-name), hand the reply over, disconnect.
 * The whole exchange is bounded by eventbridge_redis_timeout; the handler
 * gets NULL when it fails, and may start the next query at once.
 */

#include "ngx_http_eventbridge_redis.h"


static void ngx_http_eventbridge_query_timeout_handler(ngx_event_t *ev);


static void
ngx_http_eventbridge_query_done(ngx_http_eventbridge_query_t *q,
    redisReply *reply)
{
    if (q->done) {
        return;
    }

    q->done = 1;
    q->ac = NULL;

    if (q->timeout.timer_set) {
        ngx_del_timer(&q->timeout);
    }

    q->handler(reply);
}


static void
ngx_http_eventbridge_query_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_http_eventbridge_query_t  *q = ac->data;

    if (q == NULL || q->ac != ac) {
        return;
    }

    ngx_http_eventbridge_query_done(q, r);

    /* the handler may have started the next query on q: ac is ours */
    if (r) {
        ac->data = NULL;
        redisAsyncDisconnect(ac);
    }
}


static void
ngx_http_eventbridge_query_auth_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_eventbridge_query_t  *q = ac->data;

    ngx_uint_t                     level;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (q && q->ac == ac && reply && reply->type == REDIS_REPLY_ERROR) {
        /* once until a topology query succeeds again: every round asks
         * every server, and the password is wrong for all of them */
        level = rd->logged_auth ? NGX_LOG_INFO : NGX_LOG_ERR;
        ngx_log_error(level, rd->log, 0,
                      "eventbridge: redis %s:%d: AUTH failed: %*s",
                      q->addr.host, q->addr.port, (size_t) reply->len,
                      reply->str);
        rd->logged_auth = 1;
    }
}


static void
ngx_http_eventbridge_query_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_eventbridge_query_t  *q = ac->data;

    if (status != REDIS_OK && q && q->ac == ac) {
        ngx_log_error(NGX_LOG_INFO, ngx_http_eventbridge_redis.log, 0,
                      "eventbridge: redis %s:%d: cannot connect: %s",
                      q->addr.host, q->addr.port, ac->errstr);
        /* the NULL reply of the command follows and ends the query */
    }
}


static void
ngx_http_eventbridge_query_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_eventbridge_query_t  *q = ac->data;

    if (q && q->ac == ac) {
        q->ac = NULL;
    }
}


static void
ngx_http_eventbridge_query_timeout_handler(ngx_event_t *ev)
{
    redisAsyncContext             *ac;
    ngx_http_eventbridge_query_t  *q = ev->data;

    ngx_log_error(NGX_LOG_INFO, ngx_http_eventbridge_redis.log, 0,
                  "eventbridge: redis %s:%d: no answer in time",
                  q->addr.host, q->addr.port);

    ac = q->ac;

    if (ac == NULL) {
        ngx_http_eventbridge_query_done(q, NULL);
        return;
    }

    /* the command's NULL reply ends the query */
    redisAsyncFree(ac);

    if (q->ac == ac) {
        q->ac = NULL;
        ngx_http_eventbridge_query_done(q, NULL);
    }
}


/* Asks one server one question; handler gets the reply, or NULL (no
 * connection, no answer within eventbridge_redis_timeout). NGX_ERROR:
 * not started, handler not called. */
ngx_int_t
ngx_http_eventbridge_query_start(ngx_http_eventbridge_query_t *q,
    const eb_redis_addr_t *addr, ngx_str_t *user, ngx_str_t *password,
    int argc, const char **argv)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    int                 n;
    size_t              authlen[3];
    const char         *auth[3];
    redisAsyncContext  *ac;

    q->addr = *addr;
    q->done = 0;

    q->timeout.handler = ngx_http_eventbridge_query_timeout_handler;
    q->timeout.data = q;
    q->timeout.log = rd->log;
    q->timeout.cancelable = 1;

    ac = redisAsyncConnect(addr->host, addr->port);

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "eventbridge: redis %s:%d: cannot connect: %s",
                      addr->host, addr->port,
                      ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        return NGX_ERROR;
    }

    if (ngx_http_eventbridge_redis_attach(ac, rd->log) != NGX_OK) {
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    ac->data = q;
    q->ac = ac;

    redisAsyncSetConnectCallback(ac, ngx_http_eventbridge_query_connected);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_eventbridge_query_disconnected);

    if (password->len) {
        n = 0;
        auth[n] = "AUTH";
        authlen[n++] = 4;

        if (user->len) {
            auth[n] = (const char *) user->data;
            authlen[n++] = user->len;
        }

        auth[n] = (const char *) password->data;
        authlen[n++] = password->len;

        (void) redisAsyncCommandArgv(ac, ngx_http_eventbridge_query_auth_reply,
                                     NULL, n, auth, authlen);
    }

    if (redisAsyncCommandArgv(ac, ngx_http_eventbridge_query_reply, NULL,
                              argc, argv, NULL)
        != REDIS_OK)
    {
        q->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    ngx_add_timer(&q->timeout, rd->mcf->redis_timeout);

    return NGX_OK;
}


void
ngx_http_eventbridge_query_cancel(ngx_http_eventbridge_query_t *q)
{
    redisAsyncContext  *ac;

    q->done = 1;

    if (q->timeout.timer_set) {
        ngx_del_timer(&q->timeout);
    }

    ac = q->ac;
    q->ac = NULL;

    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}
