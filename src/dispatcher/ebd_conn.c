/*
 * Asynchronous Redis connections on ebd's libevent loop (hiredis' own
 * libevent adapter), reconnecting by themselves: 100 ms, doubling to 2 s.
 * AUTH [user] password, SELECT and, behind a Sentinel, ROLE go out first;
 * the connection is ready once they are answered, so every command sent
 * afterwards runs authenticated, on the right database, on a primary.
 *
 * A connection bound to a slot asks the topology for the slot's primary
 * at every connection; a MOVED reply, or one saying the node is no
 * longer the primary (READONLY, LOADING, CLUSTERDOWN, MASTERDOWN), makes
 * it ask for the map again and connect to the new owner.
 *
 * hiredis 0.14 has no command timeout: ebd_conn_stalled() tells the
 * watchdog (ebd_topo_watch) which connections to drop: one that did not
 * connect and finish its handshake in time, or whose replies stopped
 * coming (a frozen or unreachable server).
 *
 * Trouble is logged once per change of state, not once per attempt.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebd_redis_loop.h"
#include "ebd_topology.h"
#include "ebd_log.h"


#define EBD_CONN_BACKOFF_MAX  2000


typedef struct {
    ebd_conn_t        *conn;
    redisCallbackFn   *cb;
    void              *privdata;
    char               name[16];    /* the command, for the log */
} ebd_conn_cmd_t;


static void ebd_conn_connect(ebd_conn_t *c);


void
ebd_conn_state(ebd_conn_t *c, int level, const char *state,
    const char *fmt, ...)
{
    char     msg[1024];
    va_list  args;

    if (strncmp(c->state, state, sizeof(c->state) - 1) == 0) {
        return;                 /* said already */
    }

    snprintf(c->state, sizeof(c->state), "%s", state);

    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    ebd_log(level, "%s", msg);
}


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

    c->backoff_ms = c->backoff_ms * 2 > EBD_CONN_BACKOFF_MAX
                    ? EBD_CONN_BACKOFF_MAX : c->backoff_ms * 2;

    if (c->topo) {
        /* where did the primary go? */
        ebd_topo_refresh(c->topo);
    }
}


static void
ebd_conn_up(ebd_conn_t *c)
{
    c->ready = 1;

    if (!c->errored) {
        c->backoff_ms = 100;
        if (c->addr.path[0]) {
            ebd_conn_state(c, EBD_LOG_INFO, "ok", "redis %s: connected to %s",
                           c->name, c->addr.path);
        } else {
            ebd_conn_state(c, EBD_LOG_INFO, "ok", "redis %s: connected to "
                           "%s:%d", c->name, c->addr.host, c->addr.port);
        }
    }

    if (c->on_ready) {
        c->on_ready(c, c->data);
    }
}


static void
ebd_conn_connected(const redisAsyncContext *ac, int status)
{
    char         state[64];
    ebd_conn_t  *c = ac->data;

    if (c == NULL || c->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees ac after this callback */
        snprintf(state, sizeof(state), "connect %s", ac->errstr);
        ebd_conn_state(c, EBD_LOG_WARN, state, "redis %s: cannot connect to "
                       "%s:%d: %s; trying again", c->name, c->addr.host,
                       c->addr.port, ac->errstr);
        c->ac = NULL;
        c->pending = 0;
        c->handshake = 0;
        ebd_conn_schedule(c);
        return;
    }

    if (c->handshake == 0) {
        ebd_conn_up(c);
    }
}


static void
ebd_conn_disconnected(const redisAsyncContext *ac, int status)
{
    ebd_conn_t  *c = ac->data;

    if (c == NULL || c->ac != ac) {
        return;
    }

    ebd_conn_state(c, EBD_LOG_WARN, "lost", "redis %s: connection lost%s%s",
                   c->name, status == REDIS_OK ? "" : ": ",
                   status == REDIS_OK ? "" : ac->errstr);

    c->ac = NULL;
    c->ready = 0;
    c->pending = 0;
    c->handshake = 0;
    ebd_conn_schedule(c);
}


/* A reply of the handshake: the connection is ready after the last. */
static int
ebd_conn_handshake(redisAsyncContext *ac, redisReply *reply, ebd_conn_t *c,
    const char *what)
{
    char  state[64];

    if (reply == NULL || c->ac != ac) {
        return -1;
    }

    c->handshake--;

    if (reply->type == REDIS_REPLY_ERROR) {
        /* never the password: only what Redis said */
        snprintf(state, sizeof(state), "%s refused", what);
        ebd_conn_state(c, EBD_LOG_ERROR, state, "redis %s: %s refused: %s",
                       c->name, what, reply->str);
        c->errored = 1;
        ebd_conn_reset(c);
        return -1;
    }

    return 0;
}


static void
ebd_conn_handshake_done(ebd_conn_t *c)
{
    if (c->handshake == 0 && c->ac && (c->ac->c.flags & REDIS_CONNECTED)) {
        ebd_conn_up(c);
    }
}


static void
ebd_conn_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    if (ebd_conn_handshake(ac, r, privdata, "AUTH") == 0) {
        ebd_conn_handshake_done(privdata);
    }
}


static void
ebd_conn_select_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    if (ebd_conn_handshake(ac, r, privdata, "SELECT") == 0) {
        ebd_conn_handshake_done(privdata);
    }
}


static void
ebd_conn_role_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ebd_conn_t  *c = privdata;

    if (ebd_conn_handshake(ac, r, c, "ROLE") != 0) {
        return;
    }

    if (eb_redis_role_is_primary(r) != 1) {
        ebd_conn_state(c, EBD_LOG_WARN, "not primary", "redis %s: %s:%d is "
                       "not the primary; asking the sentinels again",
                       c->name, c->addr.host, c->addr.port);
        c->errored = 1;
        ebd_conn_reset(c);
        return;
    }

    ebd_conn_handshake_done(c);
}


static void
ebd_conn_connect(ebd_conn_t *c)
{
    int                  argc;
    char                 db[16];
    const char          *argv[3];
    redisAsyncContext   *ac;

    c->waiting = 0;

    if (c->topo && ebd_topo_addr(c->topo, c->slot, &c->addr) != 0) {
        ebd_conn_state(c, EBD_LOG_INFO, "waiting", "redis %s: no primary "
                       "known for slot %d yet; waiting for the topology",
                       c->name, c->slot);
        c->waiting = 1;
        return;
    }

    ac = c->addr.path[0] ? redisAsyncConnectUnix(c->addr.path)
                         : redisAsyncConnect(c->addr.host, c->addr.port);

    if (ac == NULL || ac->err) {
        ebd_conn_state(c, EBD_LOG_WARN, "connect", "redis %s: cannot "
                       "connect: %s", c->name,
                       ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        ebd_conn_schedule(c);
        return;
    }

    if (ebd_redis_attach(ac, c->base) != 0) {
        ebd_conn_state(c, EBD_LOG_WARN, "connect", "redis %s: cannot "
                       "connect: out of memory", c->name);
        redisAsyncFree(ac);
        ebd_conn_schedule(c);
        return;
    }

    ac->data = c;
    c->ac = ac;
    c->pending = 0;
    c->handshake = 0;
    c->since_ms = ebd_now_ms();

    redisAsyncSetConnectCallback(ac, ebd_conn_connected);
    redisAsyncSetDisconnectCallback(ac, ebd_conn_disconnected);

    if (c->password) {
        argc = 0;
        argv[argc++] = "AUTH";
        if (c->user) {
            argv[argc++] = c->user;
        }
        argv[argc++] = c->password;
        if (redisAsyncCommandArgv(ac, ebd_conn_auth_reply, c, argc, argv,
                                  NULL) == REDIS_OK)
        {
            c->handshake++;
        }
    }

    if (c->db) {
        snprintf(db, sizeof(db), "%d", c->db);
        argv[0] = "SELECT";
        argv[1] = db;
        if (redisAsyncCommandArgv(ac, ebd_conn_select_reply, c, 2, argv, NULL)
            == REDIS_OK)
        {
            c->handshake++;
        }
    }

    if (c->topo && c->topo->mode == EBD_TOPO_SENTINEL) {
        /* the sentinel may name a primary that has just stepped down */
        argv[0] = "ROLE";
        if (redisAsyncCommandArgv(ac, ebd_conn_role_reply, c, 1, argv, NULL)
            == REDIS_OK)
        {
            c->handshake++;
        }
    }
}


static ebd_conn_t *
ebd_conn_alloc(struct event_base *base, const char *name,
    ebd_conn_ready_pt on_ready, void *data)
{
    ebd_conn_t  *c;

    c = calloc(1, sizeof(ebd_conn_t));
    if (c == NULL) {
        return NULL;
    }

    c->name = name;
    c->slot = -1;
    c->base = base;
    c->backoff_ms = 100;
    c->on_ready = on_ready;
    c->data = data;
    c->retry_ev = evtimer_new(base, ebd_conn_retry_handler, c);

    if (c->retry_ev == NULL) {
        free(c);
        return NULL;
    }

    return c;
}


ebd_conn_t *
ebd_conn_new(struct event_base *base, const char *name, const ebd_opts_t *o,
    const ebd_addr_t *addr, ebd_conn_ready_pt on_ready, void *data)
{
    ebd_conn_t  *c;

    c = ebd_conn_alloc(base, name, on_ready, data);
    if (c == NULL) {
        return NULL;
    }

    c->addr = *addr;
    c->user = o ? o->redis_user : NULL;
    c->password = o ? o->redis_password : NULL;
    c->db = o ? o->redis_db : 0;

    ebd_conn_connect(c);
    return c;
}


ebd_conn_t *
ebd_conn_new_slot(ebd_topo_t *topo, const char *name, unsigned slot,
    uint64_t extra_ms, ebd_conn_ready_pt on_ready, void *data)
{
    ebd_conn_t  *c;

    c = ebd_conn_alloc(topo->base, name, on_ready, data);
    if (c == NULL) {
        return NULL;
    }

    c->topo = topo;
    c->slot = (int) slot;
    c->extra_ms = extra_ms;
    c->user = topo->opts->redis_user;
    c->password = topo->opts->redis_password;
    c->db = topo->opts->redis_db;
    ebd_topo_add(topo, c);

    ebd_conn_connect(c);
    return c;
}


void
ebd_conn_wake(ebd_conn_t *c)
{
    if (c->waiting && !c->closing) {
        evtimer_del(c->retry_ev);
        ebd_conn_connect(c);
    }
}


/* errors that say what state the server is in, not what was wrong with
 * a command */
static int
ebd_conn_server_state(const char *err, size_t n)
{
    static const char  *states[] = {
        "LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "OOM",
        "NOAUTH", "TRYAGAIN", "NOREPLICAS", "MISCONF", NULL
    };
    size_t  i;

    for (i = 0; states[i]; i++) {
        if (strlen(states[i]) == n && strncmp(err, states[i], n) == 0) {
            return 1;
        }
    }

    return 0;
}


/* An error reply: logged once per kind; one that says the slot or the
 * primary moved sends the connection to where it went. */
static void
ebd_conn_error(ebd_conn_t *c, const char *cmd, const redisReply *r)
{
    char                state[64];
    size_t              n;
    unsigned            slot;
    eb_redis_addr_t     to;
    eb_redis_error_e    kind;

    kind = eb_redis_error_parse(r->str, r->len, &slot, &to);

    /* a passing state (LOADING, READONLY, BUSY...) is said again when it
     * is over; one that comes and goes with every command (ASK and
     * TRYAGAIN in a slot migration) or a wrong command, once */
    n = strcspn(r->str, " ");
    /* a state of the server is one state whichever command met it (the
     * indexer's GET, the pause poll's HGETALL, an XACK take turns) */
    snprintf(state, sizeof(state), "%s%s %.*s",
             kind == EB_REDIS_ERROR_REFRESH || kind == EB_REDIS_ERROR_RETRY
             || kind == EB_REDIS_ERROR_MOVED ? "!" : "",
             ebd_conn_server_state(r->str, n) ? "*" : cmd, (int) n, r->str);
    ebd_conn_state(c, EBD_LOG_ERROR, state, "redis %s: %s: %s", c->name, cmd,
                   r->str);

    if (c->topo == NULL || c->topo->mode == EBD_TOPO_SINGLE) {
        return;                 /* the owner retries later */
    }

    if (kind == EB_REDIS_ERROR_MOVED) {
        ebd_topo_moved(c->topo, slot, &to);

    } else if (kind == EB_REDIS_ERROR_REFRESH) {
        ebd_topo_refresh(c->topo);

    } else {
        return;
    }

    c->errored = 1;
    ebd_conn_reset(c);
}


static void
ebd_conn_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply      *r = reply;
    ebd_conn_cmd_t  *cmd = privdata;
    ebd_conn_t      *c = cmd->conn;

    if (c->ac == ac && c->pending) {
        c->pending--;
        c->oldest_ms = ebd_now_ms();
    }

    if (c->ac == ac && r) {
        if (r->type == REDIS_REPLY_ERROR
            && strncmp(r->str, "BUSYGROUP", 9) != 0)
        {
            ebd_conn_error(c, cmd->name, r);

        } else {
            if (c->errored || c->state[0] == '!') {
                ebd_conn_state(c, EBD_LOG_INFO, "ok", "redis %s: answers "
                               "again", c->name);
            }
            c->errored = 0;
            c->backoff_ms = 100;
        }
    }

    if (cmd->cb) {
        cmd->cb(ac, reply, cmd->privdata);
    }

    free(cmd);
}


void
ebd_resp_arg(eb_buf_t *b, char type, const char *p, size_t len)
{
    char           d[24];
    size_t         i = sizeof(d), n = len;
    unsigned char  *w;

    d[--i] = '\n';
    d[--i] = '\r';
    do {
        d[--i] = (char) ('0' + n % 10);
        n /= 10;
    } while (n);
    d[--i] = type;

    if (eb_buf_reserve(b, sizeof(d) - i + (p ? len + 2 : 0)) != 0) {
        return;
    }

    w = b->data + b->len;
    memcpy(w, d + i, sizeof(d) - i);
    w += sizeof(d) - i;

    if (p != NULL) {
        memcpy(w, p, len);
        w += len;
        *w++ = '\r';
        *w++ = '\n';
    }

    b->len = (size_t) (w - b->data);
}


int
ebd_conn_formatted(ebd_conn_t *c, redisCallbackFn *cb, void *privdata,
    const char *name, const char *resp, size_t len)
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
    snprintf(cmd->name, sizeof(cmd->name), "%s", name);

    if (redisAsyncFormattedCommand(c->ac, ebd_conn_reply, cmd, resp, len)
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
ebd_conn_command(ebd_conn_t *c, redisCallbackFn *cb, void *privdata,
    int argc, const char **argv, const size_t *argvlen)
{
    int              i;
    static eb_buf_t  resp;

    if (c->ac == NULL || !c->ready) {
        return -1;
    }

    /* The command in the protocol's own form, handed to hiredis whole:
     * its formatter (redisAsyncCommandArgv) costs about 600 instructions
     * an argument, and a trace entry has 24 of them for every attempt. */
    eb_buf_reset(&resp);
    ebd_resp_arg(&resp, '*', NULL, (size_t) argc);
    for (i = 0; i < argc; i++) {
        ebd_resp_arg(&resp, '$', argv[i],
                     argvlen ? argvlen[i] : strlen(argv[i]));
    }

    if (resp.failed) {
        eb_buf_free(&resp);
        eb_buf_init(&resp);
        return -1;
    }

    return ebd_conn_formatted(c, cb, privdata, argv[0],
                              (const char *) resp.data, resp.len);
}


int
ebd_conn_stalled(ebd_conn_t *c, uint64_t limit_ms)
{
    uint64_t  now;

    if (c->ac == NULL) {
        return 0;
    }

    now = ebd_now_ms();

    if (!c->ready) {
        /* connecting, or AUTH/SELECT/ROLE unanswered */
        return now - c->since_ms > limit_ms;
    }

    return c->pending && now - c->oldest_ms > limit_ms + c->extra_ms;
}


void
ebd_conn_reset(ebd_conn_t *c)
{
    redisAsyncContext  *ac = c->ac;

    if (ac == NULL) {
        return;
    }

    ebd_log_debug("redis %s: dropping the connection", c->name);

    /* callbacks of pending commands run now, with NULL replies, and must
     * see the connection as down */
    c->ac = NULL;
    c->ready = 0;
    c->pending = 0;
    c->handshake = 0;
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

    if (c->topo) {
        ebd_topo_remove(c->topo, c);
    }

    if (ac) {
        c->ac = NULL;
        c->ready = 0;
        redisAsyncFree(ac);
    }

    free(c);
}
