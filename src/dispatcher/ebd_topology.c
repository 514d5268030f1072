/*
 * The topology of one ebd process: see ebd_topology.h.
 */

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ebd_redis_loop.h"
#include "ebd_topology.h"
#include "ebd_log.h"


#define EBD_TOPO_MIN_MS   100
#define EBD_TOPO_MAX_MS   5000


static void ebd_topo_query(ebd_topo_t *t);
static void ebd_topo_timer(evutil_socket_t fd, short what, void *arg);


/* ---- addresses ---------------------------------------------------- */

int
ebd_addr_resolve(ebd_addr_t *a, char *err, size_t errlen)
{
    int               rc, i;
    unsigned char     buf[sizeof(struct in6_addr)];
    struct addrinfo   hints, *res;
    static const int  families[] = { AF_INET, AF_INET6 };

    if (a->path[0] || inet_pton(AF_INET, a->host, buf) == 1
        || inet_pton(AF_INET6, a->host, buf) == 1)
    {
        return 0;
    }

    /* IPv4 first: "localhost" is where most servers listen */
    rc = EAI_NONAME;
    for (i = 0; i < 2; i++) {
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = families[i];
        hints.ai_socktype = SOCK_STREAM;

        rc = getaddrinfo(a->host, NULL, &hints, &res);
        if (rc != 0) {
            continue;
        }

        rc = getnameinfo(res->ai_addr, res->ai_addrlen, a->host,
                         sizeof(a->host), NULL, 0, NI_NUMERICHOST);
        freeaddrinfo(res);
        if (rc == 0) {
            return 0;
        }
    }

    snprintf(err, errlen, "cannot resolve \"%s\": %s", a->host,
             gai_strerror(rc));
    return -1;
}


int
ebd_topo_init(ebd_topo_t *t, struct event_base *base, const ebd_opts_t *o,
    char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->opts = o;
    t->base = base;
    t->backoff_ms = EBD_TOPO_MIN_MS;
    t->mode = o->cluster ? EBD_TOPO_CLUSTER
              : o->sentinel_master ? EBD_TOPO_SENTINEL : EBD_TOPO_SINGLE;

    if (ebd_topo_resolve(t, err, errlen) != 0) {
        return -1;
    }

    t->known = t->mode == EBD_TOPO_SINGLE;
    t->timer = evtimer_new(base, ebd_topo_timer, t);

    return t->timer ? 0 : -1;
}


int
ebd_topo_resolve(ebd_topo_t *t, char *err, size_t errlen)
{
    size_t       i, n;
    ebd_addr_t  *a;

    if (ebd_addr_list(t->opts->redis_addr, &a, &n, err, errlen) != 0) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (ebd_addr_resolve(&a[i], err, errlen) != 0) {
            free(a);
            return -1;
        }
    }

    if (t->mode == EBD_TOPO_SINGLE && n != 1) {
        snprintf(err, errlen, "several addresses need --cluster or "
                 "--sentinel");
        free(a);
        return -1;
    }

    for (i = 0; t->mode != EBD_TOPO_SINGLE && i < n; i++) {
        if (a[i].path[0]) {
            snprintf(err, errlen, "a %s is reached over TCP, not \"%s\"",
                     t->mode == EBD_TOPO_CLUSTER ? "cluster" : "sentinel",
                     a[i].path);
            free(a);
            return -1;
        }
    }

    free(t->seeds);
    t->seeds = a;
    t->nseeds = n;
    return 0;
}


void
ebd_topo_free(ebd_topo_t *t)
{
    if (t->ac) {
        redisAsyncContext  *ac = t->ac;
        t->ac = NULL;
        redisAsyncFree(ac);
    }

    if (t->timer) {
        event_free(t->timer);
        t->timer = NULL;
    }

    eb_redis_map_free(&t->map);
    eb_redis_map_free(&t->spare);
    free(t->seeds);
    t->seeds = NULL;
}


/* ---- the connections --------------------------------------------- */

void
ebd_topo_add(ebd_topo_t *t, ebd_conn_t *c)
{
    c->next = t->conns;
    t->conns = c;
}


void
ebd_topo_remove(ebd_topo_t *t, ebd_conn_t *c)
{
    ebd_conn_t  **p;

    for (p = &t->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            return;
        }
    }
}


static void
ebd_topo_set_addr(ebd_addr_t *a, const eb_redis_addr_t *ra)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->host, sizeof(a->host), "%s", ra->host);
    a->port = ra->port;
}


int
ebd_topo_addr(ebd_topo_t *t, unsigned slot, ebd_addr_t *a)
{
    const eb_redis_addr_t  *ra;

    switch (t->mode) {

    case EBD_TOPO_SINGLE:
        *a = t->seeds[0];
        return 0;

    case EBD_TOPO_CLUSTER:
        ra = t->known ? eb_redis_map_node(&t->map, slot) : NULL;
        break;

    default:
        ra = t->known ? &t->primary : NULL;
        break;
    }

    if (ra == NULL) {
        ebd_topo_refresh(t);
        return -1;
    }

    ebd_topo_set_addr(a, ra);
    return 0;
}


/* After a new map: waiting connections go, and those bound to a slot
 * whose primary changed are dropped and go to the new one. */
static void
ebd_topo_wake(ebd_topo_t *t)
{
    ebd_addr_t   a;
    ebd_conn_t  *c;

    for (c = t->conns; c; c = c->next) {
        if (c->waiting) {
            ebd_conn_wake(c);
            continue;
        }

        if (c->ac == NULL && ebd_topo_addr(t, c->slot, &a) == 0
            && (strcmp(a.host, c->addr.host) != 0 || a.port != c->addr.port))
        {
            /* backing off from the old primary: the new one now */
            c->waiting = 1;
            ebd_conn_wake(c);
            continue;
        }

        if (c->ac && ebd_topo_addr(t, c->slot, &a) == 0
            && (strcmp(a.host, c->addr.host) != 0 || a.port != c->addr.port))
        {
            ebd_conn_state(c, EBD_LOG_WARN, "moved", "redis %s: the primary "
                           "is now %s:%d", c->name, a.host, a.port);
            ebd_conn_reset(c);
        }
    }
}


static void
ebd_topo_trouble(ebd_topo_t *t, const char *fmt, const char *what)
{
    /* one trouble only: nobody answers; said once until it is over */
    if (t->state[0] == '\0') {
        strcpy(t->state, "failed");
        ebd_log(EBD_LOG_WARN, fmt, what);
    }
}


/* ---- the query: CLUSTER SLOTS or SENTINEL get-master-addr-by-name -- */

static size_t
ebd_topo_candidates(ebd_topo_t *t)
{
    return t->nseeds + (t->mode == EBD_TOPO_CLUSTER ? t->map.nnodes : 0);
}


static void
ebd_topo_schedule(ebd_topo_t *t, uint64_t ms)
{
    struct timeval  tv;

    if (t->ac || evtimer_pending(t->timer, NULL)) {
        return;
    }

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(t->timer, &tv);
}


/* The candidate asked did not say: the next one, or after a round of
 * them all, again later. */
static void
ebd_topo_failed(ebd_topo_t *t, const char *why)
{
    if (t->tried < ebd_topo_candidates(t)) {
        ebd_log_debug("redis topology: %s; asking the next one", why);
        ebd_topo_schedule(t, 0);
        return;
    }

    ebd_topo_trouble(t, t->mode == EBD_TOPO_CLUSTER
                     ? "redis cluster: no seed gives a slot map (last: %s); "
                       "asking again"
                     : "redis sentinel: no sentinel names the primary (last: "
                       "%s); asking again", why);

    t->tried = 0;
    ebd_topo_schedule(t, t->backoff_ms);
    t->backoff_ms = t->backoff_ms * 2 > EBD_TOPO_MAX_MS
                    ? EBD_TOPO_MAX_MS : t->backoff_ms * 2;
}


static void
ebd_topo_close(ebd_topo_t *t, redisAsyncContext *ac)
{
    t->ac = NULL;
    ac->data = NULL;
    redisAsyncDisconnect(ac);
}


static void
ebd_topo_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    int              rc;
    char             err[256];
    redisReply      *r = reply;
    ebd_topo_t      *t = privdata;
    eb_redis_addr_t  a;

    if (t->ac != ac || r == NULL) {
        return;                 /* dropped: ebd_topo_lost() goes on */
    }

    err[0] = '\0';

    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, sizeof(err), "%s", r->str);
        rc = -1;

    } else if (t->mode == EBD_TOPO_CLUSTER) {
        /* into the spare map: a bad answer leaves the known one alone */
        rc = eb_redis_map_parse(&t->spare, r, ac->c.tcp.host, err,
                                sizeof(err));
        if (rc == 0) {
            eb_redis_map_t  old = t->map;

            t->map = t->spare;
            t->spare = old;
        }

    } else {
        rc = eb_redis_sentinel_parse(r, &a, err, sizeof(err));
        if (rc == 0) {
            snprintf(err, sizeof(err), "the sentinel knows no master \"%s\"",
                     t->opts->sentinel_master);
            rc = -1;

        } else if (rc == 1) {
            if (!t->known || strcmp(a.host, t->primary.host) != 0
                || a.port != t->primary.port)
            {
                ebd_log(EBD_LOG_INFO, "redis sentinel: the primary of \"%s\" "
                        "is %s:%d", t->opts->sentinel_master, a.host, a.port);
            }
            t->primary = a;
            rc = 0;
        }
    }

    ebd_topo_close(t, ac);

    if (rc != 0) {
        ebd_topo_failed(t, err);
        return;
    }

    if (t->mode == EBD_TOPO_CLUSTER
        && (!t->known || t->state[0] || t->map.nnodes != t->logged_nodes))
    {
        ebd_log(EBD_LOG_INFO, "redis cluster: slot map with %zu primaries",
                t->map.nnodes);
        t->logged_nodes = t->map.nnodes;
    }

    t->known = 1;
    t->tried = 0;
    t->state[0] = '\0';
    t->backoff_ms = EBD_TOPO_MIN_MS;
    ebd_topo_wake(t);
}


static void
ebd_topo_lost(const redisAsyncContext *ac, int status)
{
    ebd_topo_t  *t = ac->data;

    if (t && t->ac == ac) {
        t->ac = NULL;
        ebd_topo_failed(t, ac->errstr[0] ? ac->errstr : "connection lost");
    }
}


static void
ebd_topo_connected(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        ebd_topo_lost(ac, status);   /* hiredis frees ac afterwards */
    }
}


static void
ebd_topo_query(ebd_topo_t *t)
{
    int                  argc;
    size_t               i, n;
    const char          *argv[3], *pass, *user;
    const ebd_addr_t    *seed;
    ebd_addr_t           node;
    redisAsyncContext   *ac;

    if (t->ac) {
        return;
    }

    n = ebd_topo_candidates(t);
    i = t->next++ % n;
    t->tried++;
    t->started_ms = ebd_now_ms();

    if (i < t->nseeds) {
        seed = &t->seeds[i];

    } else {
        ebd_topo_set_addr(&node, &t->map.nodes[i - t->nseeds]);
        seed = &node;
    }

    ac = redisAsyncConnect(seed->host, seed->port);
    if (ac == NULL || ac->err || ebd_redis_attach(ac, t->base) != 0) {
        if (ac) {
            redisAsyncFree(ac);
        }
        ebd_topo_failed(t, "cannot connect");
        return;
    }

    t->ac = ac;
    ac->data = t;
    redisAsyncSetConnectCallback(ac, ebd_topo_connected);
    redisAsyncSetDisconnectCallback(ac, ebd_topo_lost);

    if (t->mode == EBD_TOPO_CLUSTER) {
        user = t->opts->redis_user;
        pass = t->opts->redis_password;

    } else {
        user = NULL;
        pass = t->opts->sentinel_password;
    }

    if (pass) {
        argc = 0;
        argv[argc++] = "AUTH";
        if (user) {
            argv[argc++] = user;
        }
        argv[argc++] = pass;
        redisAsyncCommandArgv(ac, NULL, NULL, argc, argv, NULL);
    }

    if (t->mode == EBD_TOPO_CLUSTER) {
        argv[0] = "CLUSTER";
        argv[1] = "SLOTS";
        argc = 2;

    } else {
        argv[0] = "SENTINEL";
        argv[1] = "get-master-addr-by-name";
        argv[2] = t->opts->sentinel_master;
        argc = 3;
    }

    redisAsyncCommandArgv(ac, ebd_topo_reply, t, argc, argv, NULL);
}


static void
ebd_topo_timer(evutil_socket_t fd, short what, void *arg)
{
    ebd_topo_query(arg);
}


void
ebd_topo_refresh(ebd_topo_t *t)
{
    uint64_t  now, since;

    if (t->mode == EBD_TOPO_SINGLE || t->ac
        || evtimer_pending(t->timer, NULL))
    {
        return;                 /* one at a time */
    }

    now = ebd_now_ms();
    since = now - t->started_ms;

    if (since < EBD_TOPO_MIN_MS) {
        ebd_topo_schedule(t, EBD_TOPO_MIN_MS - since);
        return;
    }

    ebd_topo_query(t);
}


void
ebd_topo_moved(ebd_topo_t *t, unsigned slot, const eb_redis_addr_t *to)
{
    if (t->mode != EBD_TOPO_CLUSTER) {
        return;
    }

    if (t->known && eb_redis_map_set(&t->map, slot, to) == 0) {
        ebd_log(EBD_LOG_INFO, "redis cluster: slot %u moved to %s:%d", slot,
                to->host, to->port);
    }

    /* the rest of the map may have changed too */
    ebd_topo_refresh(t);
}


void
ebd_topo_watch(ebd_topo_t *t)
{
    uint64_t             limit = t->opts->redis_timeout_ms;
    ebd_conn_t          *c;
    redisAsyncContext   *ac;

    for (c = t->conns; c; c = c->next) {
        if (ebd_conn_stalled(c, limit)) {
            ebd_conn_state(c, EBD_LOG_WARN, "stalled", "redis %s: no answer "
                           "within %llu ms; connecting again", c->name,
                           (unsigned long long) (limit + c->extra_ms));
            ebd_conn_reset(c);
        }
    }

    if (t->ac && ebd_now_ms() - t->started_ms > limit) {
        ac = t->ac;
        t->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
        ebd_topo_failed(t, "no answer in time");
    }
}
