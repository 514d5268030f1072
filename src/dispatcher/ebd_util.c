/*
 * Small things the dispatcher's parts share: the clock, a synchronous
 * Redis connection for the subcommands (to the primary of a bus's keys,
 * found the way the daemon finds it: a cluster's seeds are asked for the
 * slot map, Sentinels for the primary).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebd.h"
#include "ebd_topology.h"


uint64_t
ebd_mono_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


uint64_t
ebd_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


size_t
ebd_u64_text(char *buf, uint64_t v)
{
    char    d[20];
    size_t  i = sizeof(d), n;

    do {
        d[--i] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    n = sizeof(d) - i;
    memcpy(buf, d + i, n);
    buf[n] = '\0';

    return n;
}


void
ebd_time_format(uint64_t ms, char *buf, size_t len)
{
    time_t     sec;
    struct tm  tm;

    sec = (time_t) (ms / 1000);
    gmtime_r(&sec, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + strlen(buf), len - strlen(buf), ".%03uZ",
             (unsigned) (ms % 1000));
}


static void
ebd_addr_text(const ebd_addr_t *a, char *buf, size_t len)
{
    if (a->path[0]) {
        snprintf(buf, len, "%s", a->path);

    } else {
        snprintf(buf, len, strchr(a->host, ':') ? "[%s]:%d" : "%s:%d",
                 a->host, a->port);
    }
}


/* Connects, then AUTH [user] pass and SELECT db. */
static redisContext *
ebd_sync_open(const ebd_opts_t *o, const ebd_addr_t *a, const char *user,
    const char *pass, int db, char *err, size_t errlen)
{
    char             where[300];
    redisContext    *c;
    redisReply      *r;
    struct timeval   tv;

    tv.tv_sec = o->redis_timeout_ms / 1000;
    tv.tv_usec = (o->redis_timeout_ms % 1000) * 1000;
    ebd_addr_text(a, where, sizeof(where));

    c = a->path[0] ? redisConnectUnixWithTimeout(a->path, tv)
                   : redisConnectWithTimeout(a->host, a->port, tv);

    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s: %s", where,
                 c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        return NULL;
    }

    redisSetTimeout(c, tv);

    if (pass) {
        r = user ? redisCommand(c, "AUTH %s %s", user, pass)
                 : redisCommand(c, "AUTH %s", pass);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s refused AUTH", where);
            if (r) {
                freeReplyObject(r);
            }
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }

    if (db) {
        r = redisCommand(c, "SELECT %d", db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s refused SELECT %d", where, db);
            if (r) {
                freeReplyObject(r);
            }
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }

    return c;
}


/* Asks one seed or sentinel where the bus's primary is: 0 with *to set. */
static int
ebd_sync_locate(const ebd_opts_t *o, const ebd_addr_t *seed, unsigned slot,
    ebd_addr_t *to, char *err, size_t errlen)
{
    int                      rc;
    redisContext            *c;
    redisReply              *r;
    eb_redis_map_t           map;
    eb_redis_addr_t          primary;
    const eb_redis_addr_t   *node;

    c = o->cluster
        ? ebd_sync_open(o, seed, o->redis_user, o->redis_password, 0, err,
                        errlen)
        : ebd_sync_open(o, seed, NULL, o->sentinel_password, 0, err, errlen);
    if (c == NULL) {
        return -1;
    }

    r = o->cluster
        ? redisCommand(c, "CLUSTER SLOTS")
        : redisCommand(c, "SENTINEL get-master-addr-by-name %s",
                       o->sentinel_master);

    if (r == NULL) {
        snprintf(err, errlen, "%s", c->errstr);
        redisFree(c);
        return -1;
    }

    rc = -1;

    if (o->cluster) {
        memset(&map, 0, sizeof(map));
        if (eb_redis_map_parse(&map, r, seed->host, err, errlen) == 0) {
            node = eb_redis_map_node(&map, slot);
            if (node == NULL) {
                snprintf(err, errlen, "no primary serves slot %u", slot);

            } else {
                memset(to, 0, sizeof(*to));
                snprintf(to->host, sizeof(to->host), "%s", node->host);
                to->port = node->port;
                rc = 0;
            }
        }
        eb_redis_map_free(&map);

    } else {
        switch (eb_redis_sentinel_parse(r, &primary, err, errlen)) {
        case 1:
            memset(to, 0, sizeof(*to));
            snprintf(to->host, sizeof(to->host), "%s", primary.host);
            to->port = primary.port;
            rc = 0;
            break;
        case 0:
            snprintf(err, errlen, "the sentinel knows no master \"%s\"",
                     o->sentinel_master);
            break;
        }
    }

    freeReplyObject(r);
    redisFree(c);
    return rc;
}


redisContext *
ebd_redis_connect_sync(const ebd_opts_t *o, const char *bus, char *err,
    size_t errlen)
{
    int            primary;
    char           key[600];
    size_t         i, n, klen;
    unsigned       slot;
    ebd_addr_t    *seeds, to;
    redisContext  *c;
    redisReply    *r;

    if (ebd_addr_list(o->redis_addr, &seeds, &n, err, errlen) != 0) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        if (ebd_addr_resolve(&seeds[i], err, errlen) != 0) {
            free(seeds);
            return NULL;
        }
    }

    if (!o->cluster && !o->sentinel_master) {
        c = ebd_sync_open(o, &seeds[0], o->redis_user, o->redis_password,
                          o->redis_db, err, errlen);
        free(seeds);
        return c;
    }

    klen = (size_t) snprintf(key, sizeof(key), "eb:{%s}", bus ? bus : "");
    slot = eb_redis_key_slot(key, klen < sizeof(key) ? klen : sizeof(key) - 1);

    c = NULL;

    for (i = 0; i < n && c == NULL; i++) {
        if (ebd_sync_locate(o, &seeds[i], slot, &to, err, errlen) != 0) {
            continue;
        }

        c = ebd_sync_open(o, &to, o->redis_user, o->redis_password,
                          o->redis_db, err, errlen);

        if (c && o->sentinel_master) {
            /* a sentinel may name a primary that has just stepped down */
            r = redisCommand(c, "ROLE");
            primary = r ? eb_redis_role_is_primary(r) : -1;
            if (r) {
                freeReplyObject(r);
            }
            if (primary != 1) {
                snprintf(err, errlen, "%s:%d is not the primary", to.host,
                         to.port);
                redisFree(c);
                c = NULL;
            }
        }
    }

    free(seeds);
    return c;
}


redisReply *
ebd_reply_field(redisReply *fields, const char *name)
{
    size_t  i;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (fields->element[i]->type == REDIS_REPLY_STRING
            && strcmp(fields->element[i]->str, name) == 0)
        {
            return fields->element[i + 1];
        }
    }

    return NULL;
}
