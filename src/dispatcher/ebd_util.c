/*
 * Small things the dispatcher's parts share: the clock, a synchronous
 * Redis connection for the subcommands.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ebd.h"


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


redisContext *
ebd_redis_connect_sync(const ebd_opts_t *o, char *err, size_t errlen)
{
    redisContext    *c;
    redisReply      *r;
    ebd_addr_t       a;
    struct timeval   tv = { 5, 0 };

    if (ebd_addr_parse(o->redis_addr, &a, err, errlen) != 0) {
        return NULL;
    }

    c = a.path[0] ? redisConnectUnixWithTimeout(a.path, tv)
                  : redisConnectWithTimeout(a.host, a.port, tv);

    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s: %s",
                 o->redis_addr, c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        return NULL;
    }

    redisSetTimeout(c, tv);

    if (o->redis_password) {
        r = redisCommand(c, "AUTH %s", o->redis_password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s refused AUTH", o->redis_addr);
            if (r) {
                freeReplyObject(r);
            }
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }

    if (o->redis_db) {
        r = redisCommand(c, "SELECT %d", o->redis_db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s refused SELECT %d",
                     o->redis_addr, o->redis_db);
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
