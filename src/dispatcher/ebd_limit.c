/*
 * Limits shared by every ebd process and host: a target's "concurrency"
 * and "rate", when the target sets them and "limits" is not "process",
 * hold for the target as a whole, not per worker.
 *
 * The state is in Redis, in the slot of {target:T} (the target spans
 * buses, so it has a slot of its own and a connection to that slot's
 * primary):
 *
 *   eb:{target:T}:lease   hash: holder (consumer name) -> slots held
 *   eb:{target:T}:alive   zset: holder -> lease expiry (Redis' clock, ms)
 *   eb:{target:T}:bucket  hash: tokens, ms (a token bucket)
 *
 * One script does both: a holder says how many slots it wants and how
 * many it uses now, and how many tokens it wants; it gets what it may
 * hold (never less than it uses: what is in flight stays counted) and
 * the tokens granted, or how long until the next one. Expired holders
 * (a worker killed -9) are dropped first, so their slots come back
 * after EBD_LIMIT_LEASE_MS. With more than one holder wanting slots,
 * each is held to its share (ceil(concurrency / holders)), so one
 * worker with a backlog does not keep the others out for good.
 *
 * Batches, not round trips per attempt: slots are kept while work
 * waits and renewed every lease / 3; tokens come in grants of 100 ms
 * worth (at least 1) and are spent locally within EBD_LIMIT_SPEND_MS.
 * The bucket holds at most max(1, rate / 10), so a burst stays small.
 * One script call per target is out at a time.
 *
 * Redis out of reach for EBD_LIMIT_FALLBACK_MS: the limits fall back to
 * the process's own (concurrency per worker, the http driver's spacing
 * of 1/rate), logged; delivery never stops for the shared state.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebd.h"
#include "ebd_core.h"
#include "ebd_log.h"
#include "eb_redis_slot.h"


#define EBD_LIMIT_LEASE_MS     10000
#define EBD_LIMIT_FALLBACK_MS  3000
#define EBD_LIMIT_SPEND_MS     250    /* granted tokens are spent by then */
#define EBD_LIMIT_POLL_MS      100    /* asks again for slots or tokens */
#define EBD_LIMIT_LINGER_MS    250    /* slots unused this long go back */


struct ebd_limit_s {
    ebd_tcore_t         *tc;
    ebd_conn_t          *conn;
    char                *conn_name;
    char                *keys[3];
    unsigned             concurrency;   /* 0: not shared */
    double               rate;          /* 0: not shared */
    unsigned             grant;         /* tokens asked for at once */
    unsigned             held;          /* slots Redis counts for us */
    unsigned             share;         /* held to this while contended */
    unsigned             tokens;        /* granted, not spent */
    uint64_t             tokens_ms;     /* when they were granted */
    uint64_t             fail_ms;       /* calls failing since; 0: none */
    uint64_t             sent_ms;       /* the last call */
    uint64_t             not_before;    /* no asking for more until then */
    uint64_t             low_since;     /* wanting fewer than held since */
    int                  busy;          /* a call is out */
    int                  fallback;      /* Redis out of reach: local */
    struct event        *timer;
};


/* KEYS: lease, alive, bucket; ARGV: holder, want, inuse, concurrency,
 * lease_ms, rate, tokens wanted, capacity. Returns {held, share, granted,
 * ms until a token}. */
static const char  ebd_limit_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local conc, held, share = tonumber(ARGV[4]), 0, 0\n"
    "if conc > 0 then\n"
    "  local lease = tonumber(ARGV[5])\n"
    "  local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "  for _, h in ipairs(dead) do redis.call('HDEL', KEYS[1], h) end\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "  local want, inuse = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "  local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')\n"
    "  local total = 0\n"
    "  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do\n"
    "    total = total + tonumber(v) end\n"
    "  if want > 0 then\n"
    "    redis.call('ZADD', KEYS[2], now + lease, ARGV[1])\n"
    "  elseif inuse == 0 then\n"
    "    redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "  end\n"
    "  local n = redis.call('ZCARD', KEYS[2])\n"
    "  if n < 1 then n = 1 end\n"
    "  share = math.ceil(conc / n)\n"
    "  held = math.min(want, conc - (total - mine), share)\n"
    "  if held < 0 then held = 0 end\n"
    "  if held < inuse then held = inuse end\n"
    "  if held > 0 then\n"
    "    redis.call('HSET', KEYS[1], ARGV[1], held)\n"
    "    redis.call('ZADD', KEYS[2], now + lease, ARGV[1])\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  end\n"
    "  redis.call('PEXPIRE', KEYS[1], lease * 2)\n"
    "  redis.call('PEXPIRE', KEYS[2], lease * 2)\n"
    "end\n"
    "local rate, want, cap = tonumber(ARGV[6]), tonumber(ARGV[7]),"
    " tonumber(ARGV[8])\n"
    "local grant, wait = 0, 0\n"
    "if rate > 0 and want > 0 then\n"
    "  local b = redis.call('HMGET', KEYS[3], 'tokens', 'ms')\n"
    "  local tokens = tonumber(b[1]) or cap\n"
    "  local last = tonumber(b[2]) or now\n"
    "  if now > last then\n"
    "    tokens = math.min(cap, tokens + (now - last) * rate / 1000) end\n"
    "  grant = math.min(want, math.floor(tokens))\n"
    "  tokens = tokens - grant\n"
    "  redis.call('HSET', KEYS[3], 'tokens', tostring(tokens), 'ms', now)\n"
    "  redis.call('PEXPIRE', KEYS[3],"
    " math.max(10000, math.ceil(cap * 2000 / rate)))\n"
    "  if grant == 0 then wait = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "end\n"
    "return {held, share, grant, wait}\n";


static void ebd_limit_sync(ebd_limit_t *l);


/* Whether queued attempts could start but for these limits: nothing is
 * asked for a target paused, draining, behind an open breaker in its
 * cool-down or with its probe out. */
static int
ebd_limit_ready(ebd_tcore_t *tc)
{
    if (tc->head == NULL || tc->dp->state != EBD_RUNNING
        || tc->paused_routes || ebd_target_held_back(tc))
    {
        return 0;
    }

    if (tc->cb_failures == 0 || tc->cb_state == EBD_CB_CLOSED) {
        return 1;
    }

    return tc->cb_probe == NULL
           && !(tc->cb_state == EBD_CB_OPEN
                && ebd_mono_us() / 1000 < tc->cb_open_until);
}


/* The slots this process would use now. */
static unsigned
ebd_limit_wanted(ebd_tcore_t *tc)
{
    unsigned  want;

    want = tc->inflight + (ebd_limit_ready(tc) ? tc->queued : 0);

    return want < tc->limit->concurrency ? want : tc->limit->concurrency;
}


static void
ebd_limit_timer(evutil_socket_t fd, short what, void *arg)
{
    ebd_limit_t  *l = arg;

    ebd_limit_sync(l);
}


static void
ebd_limit_fallback(ebd_limit_t *l, int on)
{
    if (l->fallback == on) {
        return;
    }

    l->fallback = on;

    if (on) {
        ebd_log(EBD_LOG_WARN, "target %s: shared limits out of reach "
                "(Redis); each process keeps its own limits meanwhile",
                l->tc->target.name);
    } else {
        ebd_log(EBD_LOG_INFO, "target %s: shared limits back",
                l->tc->target.name);
    }

    ebd_target_pump(l->tc);
}


static void
ebd_limit_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t        i;
    uint64_t      now = ebd_now_ms(), wait;
    redisReply   *rep = reply;
    ebd_limit_t  *l = privdata;
    struct timeval tv;

    l->busy = 0;

    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4) {
        for (i = 0; i < 4; i++) {
            if (rep->element[i]->type != REDIS_REPLY_INTEGER
                || rep->element[i]->integer < 0)
            {
                rep = NULL;     /* not the script's answer */
                break;
            }
        }
    }

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
        if (rep && rep->type == REDIS_REPLY_ERROR) {
            ebd_conn_state(l->conn, EBD_LOG_WARN, "limit",
                           "target %s: shared limits: %s",
                           l->tc->target.name, rep->str);
        }
        l->not_before = now + EBD_LIMIT_POLL_MS;
        if (l->fail_ms == 0) {
            l->fail_ms = now;
        }
        return;
    }

    l->fail_ms = 0;
    l->held = (unsigned) rep->element[0]->integer;
    l->share = (unsigned) rep->element[1]->integer;

    if (rep->element[2]->integer > 0) {
        l->tokens += (unsigned) rep->element[2]->integer;
        l->tokens_ms = now;
        l->not_before = 0;

    } else if (l->rate > 0 && rep->element[3]->integer > 0) {
        /* the bucket is empty: ask again when a token is due */
        wait = (uint64_t) rep->element[3]->integer;
        l->not_before = now + wait;
        tv.tv_sec = wait / 1000;
        tv.tv_usec = (wait % 1000) * 1000;
        evtimer_add(l->timer, &tv);
    }

    if (l->concurrency && l->held < l->concurrency
        && l->held < ebd_limit_wanted(l->tc)
        && l->not_before < now + EBD_LIMIT_POLL_MS)
    {
        /* fewer than wanted (others hold the rest): look again a little
         * later, not at once after every attempt */
        l->not_before = now + EBD_LIMIT_POLL_MS;
        tv.tv_sec = 0;
        tv.tv_usec = EBD_LIMIT_POLL_MS * 1000;
        evtimer_add(l->timer, &tv);
    }

    ebd_limit_fallback(l, 0);
    ebd_target_pump(l->tc);
}


/* One call with what this process wants now. */
static void
ebd_limit_sync(ebd_limit_t *l)
{
    char          a[7][32];
    unsigned      want = 0, tokens = 0;
    const char   *argv[14];
    ebd_tcore_t  *tc = l->tc;

    if (l->busy) {
        return;
    }

    if (l->concurrency) {
        want = ebd_limit_wanted(tc);
    }

    if (l->rate > 0 && ebd_limit_ready(tc) && l->tokens == 0) {
        tokens = l->grant;
    }

    snprintf(a[0], sizeof(a[0]), "%u", want);
    snprintf(a[1], sizeof(a[1]), "%u", tc->inflight);
    snprintf(a[2], sizeof(a[2]), "%u", l->concurrency);
    snprintf(a[3], sizeof(a[3]), "%d", EBD_LIMIT_LEASE_MS);
    snprintf(a[4], sizeof(a[4]), "%.6f", l->rate);
    snprintf(a[5], sizeof(a[5]), "%u", tokens);
    snprintf(a[6], sizeof(a[6]), "%u", l->grant);

    argv[0] = "EVAL";
    argv[1] = ebd_limit_script;
    argv[2] = "3";
    argv[3] = l->keys[0];
    argv[4] = l->keys[1];
    argv[5] = l->keys[2];
    argv[6] = tc->dp->opts->consumer;
    argv[7] = a[0];
    argv[8] = a[1];
    argv[9] = a[2];
    argv[10] = a[3];
    argv[11] = a[4];
    argv[12] = a[5];
    argv[13] = a[6];

    if (ebd_conn_command(l->conn, ebd_limit_reply, l, 14, argv, NULL) != 0) {
        if (l->fail_ms == 0) {
            l->fail_ms = ebd_now_ms();      /* down: the tick looks again */
        }
        return;
    }

    l->busy = 1;
    l->sent_ms = ebd_now_ms();
}


int
ebd_limit_setup(ebd_tcore_t *tc, yajl_val spec)
{
    char          key[300];
    size_t        i, n;
    yajl_val      v;
    ebd_limit_t  *l;
    ebd_disp_t   *dp = tc->dp;
    unsigned      conc = 0;
    double        rate = 0;

    tc->limit = NULL;

    /* "process" keeps them each process's own */
    v = eb_config_get(spec, "limits");
    if (v && YAJL_IS_STRING(v) && strcmp(v->u.string, "process") == 0) {
        return 0;
    }

    /* only what the target sets: a default concurrency stays a
     * process's own */
    if (eb_config_get(spec, "concurrency") != NULL) {
        conc = tc->target.concurrency;
    }

    v = eb_config_get(spec, "rate");
    if (v && YAJL_IS_NUMBER(v)) {
        rate = YAJL_IS_DOUBLE(v) ? YAJL_GET_DOUBLE(v)
                                 : (double) YAJL_GET_INTEGER(v);
    }

    if (conc == 0 && !(rate > 0)) {
        return 0;
    }

    l = calloc(1, sizeof(ebd_limit_t));
    if (l == NULL) {
        return -1;
    }

    l->tc = tc;
    l->concurrency = conc;
    l->rate = rate > 0 ? rate : 0;
    l->grant = l->rate > 0 ? (unsigned) floor(l->rate / 10) : 0;
    if (l->rate > 0 && l->grant == 0) {
        l->grant = 1;
    }

    n = strlen(tc->target.name) + 64;
    l->conn_name = malloc(n);
    if (l->conn_name) {
        snprintf(l->conn_name, n, "limit %s", tc->target.name);
    }

    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "eb:{target:%s}:%s", tc->target.name,
                 i == 0 ? "lease" : i == 1 ? "alive" : "bucket");
        l->keys[i] = strdup(key);
    }

    l->timer = evtimer_new(dp->base, ebd_limit_timer, l);

    if (l->conn_name == NULL || l->keys[0] == NULL || l->keys[1] == NULL
        || l->keys[2] == NULL || l->timer == NULL)
    {
        tc->limit = l;
        ebd_limit_free(tc);
        return -1;
    }

    l->conn = ebd_conn_new_slot(&dp->topo, l->conn_name,
                                eb_redis_key_slot(l->keys[0],
                                                  strlen(l->keys[0])),
                                0, NULL, NULL);
    if (l->conn == NULL) {
        tc->limit = l;
        ebd_limit_free(tc);
        return -1;
    }

    tc->limit = l;
    return 0;
}


/* Slots held are not given back here: the next process under the same
 * consumer name (a reload, a restart) overwrites them, or they expire. */
void
ebd_limit_free(ebd_tcore_t *tc)
{
    size_t        i;
    ebd_limit_t  *l = tc->limit;

    if (l == NULL) {
        return;
    }

    if (l->conn) {
        ebd_conn_free(l->conn);         /* the reply callback: NULL */
    }
    if (l->timer) {
        event_free(l->timer);
    }
    for (i = 0; i < 3; i++) {
        free(l->keys[i]);
    }
    free(l->conn_name);
    free(l);
    tc->limit = NULL;
}


/* Whether one more attempt may start now (the target's own
 * concurrency is checked by the caller as well). */
int
ebd_limit_allows(ebd_tcore_t *tc)
{
    uint64_t      now;
    ebd_limit_t  *l = tc->limit;

    if (l == NULL) {
        return 1;
    }

    now = ebd_now_ms();

    /* something else holds the queue (the breaker, checked after us,
     * arms its own timer): nothing to ask for */
    if (l->fallback || !ebd_limit_ready(tc)) {
        return 1;
    }

    if (l->concurrency) {
        unsigned  cap = l->held;

        if (l->share && cap > l->share) {
            cap = l->share;
        }
        if (tc->inflight >= cap) {
            ebd_limit_kick(tc);
            return 0;
        }
    }

    if (l->rate > 0) {
        if (l->tokens && now - l->tokens_ms > EBD_LIMIT_SPEND_MS) {
            l->tokens = 0;      /* not a burst later */
        }
        if (l->tokens == 0) {
            ebd_limit_kick(tc);
            return 0;
        }
    }

    return 1;
}


void
ebd_limit_started(ebd_tcore_t *tc)
{
    ebd_limit_t  *l = tc->limit;

    if (l != NULL && !l->fallback && l->rate > 0 && l->tokens > 0) {
        l->tokens--;
    }
}


/* After the pump: asks Redis when what this process holds is not what
 * it wants (slots to give back, more wanted, tokens run out). */
void
ebd_limit_kick(ebd_tcore_t *tc)
{
    unsigned      want;
    uint64_t      now;
    ebd_limit_t  *l = tc->limit;

    if (l == NULL || l->busy) {
        return;
    }

    now = ebd_now_ms();

    if (l->concurrency) {
        want = ebd_limit_wanted(tc);

        /* slots go back when others want them (the share is below what
         * is held), or after they were not needed for a while: a queue
         * that empties between two reads is no reason to give back and
         * ask again, one script call per attempt */
        if (want < l->held && tc->inflight < l->held) {
            if (l->low_since == 0) {
                l->low_since = now;
            }
            if ((l->share && l->share < l->held)
                || now - l->low_since >= EBD_LIMIT_LINGER_MS)
            {
                l->low_since = 0;
                ebd_limit_sync(l);      /* give back */
                return;
            }
        } else {
            l->low_since = 0;
        }

        if (want > l->held && now >= l->not_before) {
            ebd_limit_sync(l);
            return;
        }
    }

    if (l->rate > 0 && l->tokens == 0 && ebd_limit_ready(tc)
        && now >= l->not_before)
    {
        ebd_limit_sync(l);
    }
}


/* From the dispatcher's tick: renews the leases held, and asks again
 * after a call that went nowhere. */
void
ebd_limit_tick(ebd_disp_t *dp, uint64_t now)
{
    size_t        i;
    ebd_limit_t  *l;

    for (i = 0; i < dp->ntargets; i++) {
        l = dp->targets[i].limit;
        if (l == NULL) {
            continue;
        }

        if (l->busy && now - l->sent_ms > EBD_LIMIT_FALLBACK_MS) {
            ebd_limit_fallback(l, 1);
        }

        if (l->held && now - l->sent_ms >= EBD_LIMIT_LEASE_MS / 3) {
            ebd_limit_sync(l);
        }

        if (l->fail_ms && now - l->fail_ms > EBD_LIMIT_FALLBACK_MS) {
            ebd_limit_fallback(l, 1);
        }

        ebd_limit_kick(&dp->targets[i]);
    }
}
