/*
 * Replays the console requested (eb:{BUS}:replay:NAME with state
 * "requested", ngx_http_eventbridge_console_api_replay.c), run by worker
 * 0 of every ebd with the engine of `ebd replay` (ebd_replay.c).
 *
 * The engine is synchronous: it runs in one thread of its own with its
 * own connections (ebd_redis_connect_sync(), the bus's slot owner as
 * the subcommands find it), never on the event loop. The thread looks at
 * every bus's eb:{BUS}:replays once a second and runs what it claims,
 * one replay at a time, batch by batch.
 *
 * A claim is a script: "requested" (or "running" by an ebd whose lease
 * ran out) becomes "running" with owner (the consumer name) and lease
 * (ms), so two ebd processes never both start one; the lease is renewed
 * by the same kind of script before every batch, which also tells an
 * owner that lost it to stop. The engine's WATCH still makes a batch of
 * a process that lost the race fail whole. A replay `ebd replay` runs
 * (no owner) is never taken.
 *
 * SIGTERM, SIGHUP: the thread stops between batches and hands the
 * replay back ("requested", no lease): the next ebd, or this one after
 * the reload, resumes after the cursor. kill -9: the lease runs out
 * (EBD_RUNNER_LEASE_MS) and another ebd resumes it.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebd_core.h"
#include "ebd_log.h"
#include "ebd_replay.h"


#define EBD_RUNNER_SCAN_MS    1000
#define EBD_RUNNER_LEASE_MS   10000
#define EBD_RUNNER_BATCH      250       /* events per batch, unpaced */
#define EBD_RUNNER_LIST       1000      /* newest replays looked at */


struct ebd_runner_s {
    pthread_t             thread;
    const ebd_opts_t     *opts;
    const eb_config_t    *cf;
    volatile int          stop;         /* set by the loop, read here */
    redisContext        **conns;        /* by bus index */
    unsigned char        *down;         /* by bus index: logged */
};


/* KEYS: the index. ARGV: the state keys' prefix, owner, now, lease
 * end, how many of the newest to look at. The oldest of them claimable
 * (requested, or running by an owner whose lease is over), claimed: its
 * name, or false. One round trip a second per bus; the hashes share the
 * index's slot. */
static const char  ebd_runner_claim_lua[] =
    "local ns = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1) "
    "for i = #ns, 1, -1 do "
    "  local n = ns[i] "
    "  local k = ARGV[1] .. n "
    "  local s = redis.call('HMGET', k, 'state', 'owner', 'lease') "
    "  if s[1] == 'requested' or (s[1] == 'running' and s[2] "
    "      and tonumber(s[3] or '0') < tonumber(ARGV[3])) then "
    "    redis.call('HSET', k, 'state', 'running', 'owner', ARGV[2], "
    "               'lease', ARGV[4]) "
    "    redis.call('HDEL', k, 'error') "
    "    return n "
    "  end "
    "end "
    "return false";

/* KEYS: state. ARGV: owner, then field/value pairs set while the owner
 * is ARGV[1] and the state "running". 1 done, 0 not ours. */
static const char  ebd_runner_own_lua[] =
    "local s = redis.call('HMGET', KEYS[1], 'state', 'owner') "
    "if s[1] ~= 'running' or s[2] ~= ARGV[1] then return 0 end "
    "for i = 2, #ARGV, 2 do "
    "  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) "
    "  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end "
    "end "
    "return 1";


static void
ebd_runner_sleep_ms(uint64_t ms)
{
    struct timespec  ts;

    ts.tv_sec = (time_t) (ms / 1000);
    ts.tv_nsec = (long) (ms % 1000) * 1000000;
    (void) nanosleep(&ts, NULL);
}


/* sleeps up to ms, in steps that notice a stop; 0, or -1 when asked to
 * stop */
static int
ebd_runner_wait(ebd_runner_t *rn, uint64_t ms)
{
    uint64_t  step;

    while (!rn->stop && ms) {
        step = ms < 50 ? ms : 50;
        ebd_runner_sleep_ms(step);
        ms -= step;
    }

    return rn->stop ? -1 : 0;
}


static redisContext *
ebd_runner_conn(ebd_runner_t *rn, size_t b)
{
    char  err[512];

    if (rn->conns[b] == NULL) {
        rn->conns[b] = ebd_redis_connect_sync(rn->opts, rn->cf->buses[b].name,
                                              err, sizeof(err));
        if (rn->conns[b] == NULL && !rn->down[b]) {
            ebd_log(EBD_LOG_WARN, "replay runner: bus %s: %s",
                    rn->cf->buses[b].name, err);
        }
        rn->down[b] = rn->conns[b] == NULL;
    }

    return rn->conns[b];
}


static void
ebd_runner_drop(ebd_runner_t *rn, size_t b)
{
    if (rn->conns[b]) {
        redisFree(rn->conns[b]);
        rn->conns[b] = NULL;
    }
}


/* the own script with up to 3 field/value pairs; 1, 0 (not ours), -1 */
static int
ebd_runner_own(ebd_runner_t *rn, redisContext *c, const char *key,
    int npairs, const char **pairs)
{
    int          i, rc;
    const char  *argv[12];
    redisReply  *r;

    argv[0] = "EVAL";
    argv[1] = ebd_runner_own_lua;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = rn->opts->consumer;

    for (i = 0; i < npairs * 2; i++) {
        argv[5 + i] = pairs[i];
    }

    r = redisCommandArgv(c, 5 + npairs * 2, argv, NULL);
    rc = r == NULL ? -1
         : r->type == REDIS_REPLY_INTEGER ? (int) r->integer : -1;

    if (r && r->type == REDIS_REPLY_ERROR) {
        ebd_log(EBD_LOG_WARN, "replay runner: %s: %s", key, r->str);
    }

    if (r) {
        freeReplyObject(r);
    }

    return rc;
}


static int
ebd_runner_renew(ebd_runner_t *rn, redisContext *c, const char *key)
{
    char         lease[24];
    const char  *pairs[2];

    snprintf(lease, sizeof(lease), "%llu",
             (unsigned long long) (ebd_now_ms() + EBD_RUNNER_LEASE_MS));
    pairs[0] = "lease";
    pairs[1] = lease;

    return ebd_runner_own(rn, c, key, 1, pairs);
}


static const char *
ebd_runner_hget(redisReply *h, const char *field)
{
    redisReply  *v;

    v = ebd_reply_field(h, field);

    return v && v->type == REDIS_REPLY_STRING ? v->str : NULL;
}


/* Runs a claimed replay until it is done, fails, is lost, or the thread
 * is asked to stop. */
static void
ebd_runner_run(ebd_runner_t *rn, size_t b, const char *name)
{
    int                rc, n;
    char               err[1024], key[700], now[24];
    const char        *rules, *targets, *rate_s, *pairs[6];
    unsigned           batch;
    uint64_t           from, to, rate, due, t;
    redisReply        *h;
    redisContext      *c;
    ebd_replay_t       rp;
    const char        *bus = rn->cf->buses[b].name;

    c = ebd_runner_conn(rn, b);
    if (c == NULL) {
        return;
    }

    snprintf(key, sizeof(key), "eb:{%s}:replay:%s", bus, name);

    h = redisCommand(c, "HGETALL %s", key);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
        if (h) {
            freeReplyObject(h);
        }
        ebd_runner_drop(rn, b);
        return;
    }

    rate_s = ebd_runner_hget(h, "from");
    from = rate_s ? strtoull(rate_s, NULL, 10) : 0;
    rate_s = ebd_runner_hget(h, "to");
    to = rate_s ? strtoull(rate_s, NULL, 10) : 0;
    rules = ebd_runner_hget(h, "rules");
    targets = ebd_runner_hget(h, "targets");
    rate_s = ebd_runner_hget(h, "rate");
    rate = rate_s ? strtoull(rate_s, NULL, 10) : 0;

    /* the request was checked against nginx's configuration; this is
     * ebd's (the same file, unless they differ): checked again */
    rc = ebd_replay_init(&rp, rn->cf, bus, name, from, to,
                         rules && *rules ? rules : NULL,
                         targets && *targets ? targets : NULL, 0, err,
                         sizeof(err));

    if (rc == 0) {
        rc = ebd_replay_begin(&rp, c, err, sizeof(err));
    }

    freeReplyObject(h);

    ebd_log(EBD_LOG_INFO, "replay %s of bus %s: %s", name, bus,
            rc == 0 && rp.cursor[0] ? "resumed" : rc == 0 ? "started"
                                                 : "cannot start");

    batch = EBD_RUNNER_BATCH;
    if (rate) {
        batch = rate / 10 < 1 ? 1
                : rate / 10 > EBD_RUNNER_BATCH ? EBD_RUNNER_BATCH
                : (unsigned) (rate / 10);
    }

    due = ebd_mono_us();
    n = 0;

    while (rc == 0) {
        if (rate) {
            t = ebd_mono_us();
            if (due > t && ebd_runner_wait(rn, (due - t) / 1000) != 0) {
                break;
            }
        }

        if (rn->stop) {
            break;
        }

        /* still ours: renewed before every batch */
        n = ebd_runner_renew(rn, c, key);
        if (n != 1) {
            if (n == 0) {
                ebd_log(EBD_LOG_WARN, "replay %s of bus %s: taken over by "
                        "another ebd; leaving it", name, bus);
            } else {
                ebd_runner_drop(rn, b);
            }
            ebd_replay_free(&rp);
            return;
        }

        n = ebd_replay_batch(&rp, c, batch, err, sizeof(err));
        if (n <= 0) {
            break;
        }

        if (rate) {
            due += (uint64_t) n * 1000000 / rate;
        }
    }

    snprintf(now, sizeof(now), "%llu", (unsigned long long) ebd_now_ms());

    if (rc < 0 || (rc == 0 && n < 0)) {
        ebd_log(EBD_LOG_ERROR, "replay %s of bus %s: failed: %s", name, bus,
                err);
        pairs[0] = "state";
        pairs[1] = "failed";
        pairs[2] = "error";
        pairs[3] = err;
        pairs[4] = "updated";
        pairs[5] = now;
        /* a connection error: the connection may hold unsent commands */
        ebd_runner_drop(rn, b);
        c = ebd_runner_conn(rn, b);
        if (c) {
            (void) ebd_runner_own(rn, c, key, 3, pairs);
        }

    } else if (rp.done) {
        ebd_log(EBD_LOG_INFO, "replay %s of bus %s: done (%llu events, "
                "%llu deliveries)", name, bus,
                (unsigned long long) rp.events_total,
                (unsigned long long) rp.deliveries_total);
        pairs[0] = "lease";
        pairs[1] = "";
        (void) ebd_runner_own(rn, c, key, 1, pairs);

    } else {
        /* stopping: handed back, resumed by the next ebd at once */
        ebd_log(EBD_LOG_INFO, "replay %s of bus %s: stopped after %llu "
                "events; requested again", name, bus,
                (unsigned long long) rp.events_total);
        pairs[0] = "lease";
        pairs[1] = "";
        pairs[2] = "state";
        pairs[3] = "requested";
        (void) ebd_runner_own(rn, c, key, 2, pairs);
    }

    ebd_replay_free(&rp);
}


/* one look at a bus: the oldest replay it can claim, run */
static void
ebd_runner_scan(ebd_runner_t *rn, size_t b)
{
    char          prefix[600], index[600], now[24], lease[24], list[16];
    const char   *bus = rn->cf->buses[b].name;
    const char   *argv[9];
    redisReply   *r;
    redisContext *c;

    c = ebd_runner_conn(rn, b);
    if (c == NULL) {
        return;
    }

    snprintf(index, sizeof(index), "eb:{%s}:replays", bus);
    snprintf(prefix, sizeof(prefix), "eb:{%s}:replay:", bus);
    snprintf(now, sizeof(now), "%llu", (unsigned long long) ebd_now_ms());
    snprintf(lease, sizeof(lease), "%llu",
             (unsigned long long) (ebd_now_ms() + EBD_RUNNER_LEASE_MS));
    snprintf(list, sizeof(list), "%d", EBD_RUNNER_LIST);

    argv[0] = "EVAL";
    argv[1] = ebd_runner_claim_lua;
    argv[2] = "1";
    argv[3] = index;
    argv[4] = prefix;
    argv[5] = rn->opts->consumer;
    argv[6] = now;
    argv[7] = lease;
    argv[8] = list;

    r = redisCommandArgv(c, 9, argv, NULL);
    if (r == NULL) {
        ebd_runner_drop(rn, b);
        return;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        /* once while it lasts (a loading or read-only server answers
         * every second the same) */
        if (!rn->down[b]) {
            ebd_log(EBD_LOG_WARN, "replay runner: bus %s: %s", bus, r->str);
        }
        rn->down[b] = 1;

    } else {
        rn->down[b] = 0;
        if (r->type == REDIS_REPLY_STRING) {
            ebd_runner_run(rn, b, r->str);
        }
    }

    freeReplyObject(r);
}


static void *
ebd_runner_thread(void *arg)
{
    size_t         b;
    ebd_runner_t  *rn = arg;

    while (!rn->stop) {
        for (b = 0; b < rn->cf->nbuses && !rn->stop; b++) {
            ebd_runner_scan(rn, b);
        }

        (void) ebd_runner_wait(rn, EBD_RUNNER_SCAN_MS);
    }

    for (b = 0; b < rn->cf->nbuses; b++) {
        ebd_runner_drop(rn, b);
    }

    return NULL;
}


int
ebd_replay_runner_start(ebd_disp_t *dp)
{
    ebd_runner_t  *rn;

    if (dp->opts->worker != 0 || dp->runner != NULL
        || dp->cf->nbuses == 0)
    {
        return 0;
    }

    rn = calloc(1, sizeof(ebd_runner_t));
    if (rn == NULL) {
        return -1;
    }

    rn->opts = dp->opts;
    rn->cf = dp->cf;
    rn->conns = calloc(dp->cf->nbuses, sizeof(redisContext *));
    rn->down = calloc(dp->cf->nbuses, 1);

    if (rn->conns == NULL || rn->down == NULL
        || pthread_create(&rn->thread, NULL, ebd_runner_thread, rn) != 0)
    {
        ebd_log(EBD_LOG_ERROR, "ebd: cannot start the replay runner");
        free(rn->conns);
        free(rn->down);
        free(rn);
        return -1;
    }

    dp->runner = rn;

    return 0;
}


void
ebd_replay_runner_stop(ebd_disp_t *dp)
{
    if (dp->runner) {
        dp->runner->stop = 1;
    }
}


void
ebd_replay_runner_join(ebd_disp_t *dp)
{
    ebd_runner_t  *rn = dp->runner;

    if (rn == NULL) {
        return;
    }

    /* at most one batch and one script after the stop */
    rn->stop = 1;
    pthread_join(rn->thread, NULL);

    free(rn->conns);
    free(rn->down);
    free(rn);
    dp->runner = NULL;
}
