/*
 * Asynchronous Redis connections on ebd's libevent loop (hiredis' own
 * libevent adapter), reconnecting by themselves: 100 ms, doubling to 2 s.
 * AUTH and SELECT go out first on every connection, so every command
 * queued after them runs authenticated on the right database.
 *
 * hiredis 0.14 has no command timeout: ebd_conn_stalled() lets the
 * owner drop a connection whose replies stopped coming (a frozen or
 * unreachable server) so that it reconnects.
 */

#include <stdlib.h>
#include <string.h>
#include <hiredis/adapters/libevent.h>

#include "ebd.h"
#include "ebd_log.h"


typedef struct {
    ebd_conn_t        *conn;
    redisCallbackFn   *cb;
    void              *privdata;
} ebd_conn_cmd_t;


static void ebd_conn_connect(ebd_conn_t *c);


static void
ebd_conn_retry_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_conn_connect(arg);
}


static void
ebd_conn_schedule(ebd_conn_t *c)
{
    struct timeval  tv;

    if (c->closing) {
        return;
    }

    tv.tv_sec = c->backoff_ms / 1000;
    tv.tv_usec = (c->backoff_ms % 1000) * 1000;
    evtimer_add(c->retry_ev, &tv);

    c->backoff_ms = c->backoff_ms * 2 > 2000 ? 2000 : c->backoff_ms * 2;
}


static void
ebd_conn_connected(const redisAsyncContext *ac, int status)
{
    ebd_conn_t  *c = ac->data;

    if (c == NULL || c->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees ac after this callback */
        ebd_log(EBD_LOG_WARN, "redis %s: cannot connect: %s", c->name,
                ac->errstr);
        c->ac = NULL;
        c->pending = 0;
        ebd_conn_schedule(c);
        return;
    }

    ebd_log(EBD_LOG_INFO, "redis %s: connected", c->name);
    c->ready = 1;
    c->backoff_ms = 100;

    if (c->on_ready) {
        c->on_ready(c, c->data);
    }
}


static void
ebd_conn_disconnected(const redisAsyncContext *ac, int status)
{
    ebd_conn_t  *c = ac->data;

    if (c == NULL || c->ac != ac) {
        return;
    }

    ebd_log(EBD_LOG_WARN, "redis %s: connection lost%s%s", c->name,
            status == REDIS_OK ? "" : ": ",
            status == REDIS_OK ? "" : ac->errstr);

    c->ac = NULL;
    c->ready = 0;
    c->pending = 0;
    ebd_conn_schedule(c);
}


static void
ebd_conn_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;
    ebd_conn_t  *c = privdata;

    if (reply && reply->type == REDIS_REPLY_ERROR && c->ac == ac) {
        /* never the password: only what Redis said */
        ebd_log(EBD_LOG_ERROR, "redis %s: %s refused: %s", c->name,
                strncmp(reply->str, "NOAUTH", 6) == 0
                || strstr(reply->str, "password") ? "AUTH" : "SELECT",
                reply->str);
        ebd_conn_reset(c);
    }
}


static void
ebd_conn_connect(ebd_conn_t *c)
{
    char                 db[16];
    const char          *argv[2];
    size_t               argvlen[2];
    redisAsyncContext   *ac;

    ac = c->addr.path[0] ? redisAsyncConnectUnix(c->addr.path)
                         : redisAsyncConnect(c->addr.host, c->addr.port);

    if (ac == NULL || ac->err) {
        ebd_log(EBD_LOG_WARN, "redis %s: cannot connect: %s", c->name,
                ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        ebd_conn_schedule(c);
        return;
    }

    ac->data = c;
    c->ac = ac;
    c->pending = 0;

    redisLibeventAttach(ac, c->base);
    redisAsyncSetConnectCallback(ac, ebd_conn_connected);
    redisAsyncSetDisconnectCallback(ac, ebd_conn_disconnected);

    if (c->password) {
        argv[0] = "AUTH";
        argv[1] = c->password;
        argvlen[0] = 4;
        argvlen[1] = strlen(c->password);
        redisAsyncCommandArgv(ac, ebd_conn_auth_reply, c, 2, argv, argvlen);
    }

    if (c->db) {
        snprintf(db, sizeof(db), "%d", c->db);
        argv[0] = "SELECT";
        argv[1] = db;
        argvlen[0] = 6;
        argvlen[1] = strlen(db);
        redisAsyncCommandArgv(ac, ebd_conn_auth_reply, c, 2, argv, argvlen);
    }
}


ebd_conn_t *
ebd_conn_new(struct event_base *base, const char *name, const ebd_opts_t *o,
    const ebd_addr_t *addr, ebd_conn_ready_pt on_ready, void *data)
{
    ebd_conn_t  *c;

    c = calloc(1, sizeof(ebd_conn_t));
    if (c == NULL) {
        return NULL;
    }

    c->name = name;
    c->addr = *addr;
    c->password = o ? o->redis_password : NULL;
    c->db = o ? o->redis_db : 0;
    c->base = base;
    c->backoff_ms = 100;
    c->on_ready = on_ready;
    c->data = data;
    c->retry_ev = evtimer_new(base, ebd_conn_retry_handler, c);

    if (c->retry_ev == NULL) {
        free(c);
        return NULL;
    }

    ebd_conn_connect(c);
    return c;
}


static void
ebd_conn_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ebd_conn_cmd_t  *cmd = privdata;
    ebd_conn_t      *c = cmd->conn;

    if (c->ac == ac && c->pending) {
        c->pending--;
        c->oldest_ms = ebd_now_ms();
    }

    if (cmd->cb) {
        cmd->cb(ac, reply, cmd->privdata);
    }

    free(cmd);
}


int
ebd_conn_command(ebd_conn_t *c, redisCallbackFn *cb, void *privdata,
    int argc, const char **argv, const size_t *argvlen)
{
    ebd_conn_cmd_t  *cmd;

    if (c->ac == NULL || !c->ready) {
        return -1;
    }

    cmd = malloc(sizeof(ebd_conn_cmd_t));
    if (cmd == NULL) {
        return -1;
    }

    cmd->conn = c;
    cmd->cb = cb;
    cmd->privdata = privdata;

    if (redisAsyncCommandArgv(c->ac, ebd_conn_reply, cmd, argc, argv, argvlen)
        != REDIS_OK)
    {
        free(cmd);
        return -1;
    }

    if (c->pending++ == 0) {
        c->oldest_ms = ebd_now_ms();
    }

    return 0;
}


int
ebd_conn_stalled(ebd_conn_t *c, uint64_t limit_ms)
{
    return c->ac && c->pending && ebd_now_ms() - c->oldest_ms > limit_ms;
}


void
ebd_conn_reset(ebd_conn_t *c)
{
    redisAsyncContext  *ac = c->ac;

    if (ac == NULL) {
        return;
    }

    ebd_log(EBD_LOG_WARN, "redis %s: dropping the connection", c->name);

    /* callbacks of pending commands run now, with NULL replies, and must
     * see the connection as down */
    c->ac = NULL;
    c->ready = 0;
    c->pending = 0;
    redisAsyncFree(ac);
    ebd_conn_schedule(c);
}


void
ebd_conn_free(ebd_conn_t *c)
{
    redisAsyncContext  *ac = c->ac;

    c->closing = 1;
    evtimer_del(c->retry_ev);
    event_free(c->retry_ev);

    if (ac) {
        c->ac = NULL;
        c->ready = 0;
        redisAsyncFree(ac);
    }

    free(c);
}
