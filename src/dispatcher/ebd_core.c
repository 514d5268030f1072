/*
 * The dispatcher: routes, reading, claiming, draining, reloading.
 *
 * Each route (target stream) has its own Redis connection for a blocking
 * XREADGROUP, so that one target's stream never waits behind another's;
 * acknowledgements, dead letters and the trace of a bus share the bus's
 * command connection. Every key of a bus lives in the slot of {BUS}, so
 * under a Redis Cluster both kinds go to the primary of that slot (see
 * ebd_topology.h). A route first reads its own pending entries (id 0:
 * what this consumer held when it stopped or crashed), then new ones
 * (">").
 * Entries other consumers left pending longer than claim_idle are taken
 * over with XAUTOCLAIM; entries this consumer holds (in flight or
 * waiting for a retry) are kept fresh with XCLAIM ... JUSTID so that
 * nobody else takes them while they are in good hands.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/thread.h>

#include "ebd_core.h"
#include "ebd_log.h"
#include "ebd_sign.h"


#define EBD_TICK_MS      100
#define EBD_TRIM_MS      5000
#define EBD_TRIM_ENTRIES 1000   /* acknowledged: trimmed at the next tick */
#define EBD_STATS_MS     10000
#define EBD_RETRY_MAX_MS 5000

static const char  ebd_trim_script[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1])\n"
    "local min = nil\n"
    "if p[1] > 0 then min = p[2] else\n"
    "  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
    "    local name, last\n"
    "    for i = 1, #g, 2 do\n"
    "      if g[i] == 'name' then name = g[i + 1] end\n"
    "      if g[i] == 'last-delivered-id' then last = g[i + 1] end\n"
    "    end\n"
    "    if name == ARGV[1] then min = last end\n"
    "  end\n"
    "end\n"
    "if not min or min == '0-0' then return 0 end\n"
    "return redis.call('XTRIM', KEYS[1], 'MINID', min)\n";

/* Keeps this consumer's held entries fresh (XCLAIM ... JUSTID resets
 * their idle time), but only those still its own: an entry another
 * consumer claimed meanwhile (this one looked dead to it: a long pause,
 * a partition) stays theirs. Returns the ids that are no longer ours.
 * KEYS[1] the stream; ARGV: group, consumer, ids... */
static const char  ebd_refresh_script[] =
    "local lost = {}\n"
    "for i = 3, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "  if p[1] and p[1][2] == ARGV[2] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "  else\n"
    "    lost[#lost + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    "return lost\n";


/* ---- the held set: entries this consumer has in memory ------------ */

static unsigned
ebd_hash(const char *id)
{
    unsigned  h = 2166136261u;

    while (*id) {
        h = (h ^ (unsigned char) *id++) * 16777619u;
    }

    return h % EBD_HELD_BUCKETS;
}


ebd_item_t *
ebd_held_find(ebd_route_t *r, const char *id, size_t len)
{
    char         buf[EBD_ID_MAX];
    ebd_item_t  *it;

    if (len >= EBD_ID_MAX) {
        return NULL;
    }

    memcpy(buf, id, len);
    buf[len] = '\0';

    for (it = r->held[ebd_hash(buf)]; it; it = it->hnext) {
        if (strcmp(it->id, buf) == 0) {
            return it;
        }
    }

    return NULL;
}


static void
ebd_held_add(ebd_route_t *r, ebd_item_t *it)
{
    unsigned  h = ebd_hash(it->id);

    it->hnext = r->held[h];
    r->held[h] = it;
    r->nheld++;
    ((ebd_tcore_t *) r->target->core)->held_bytes += it->bytes;
}


void
ebd_held_remove(ebd_route_t *r, ebd_item_t *it)
{
    ebd_item_t  **p;

    for (p = &r->held[ebd_hash(it->id)]; *p; p = &(*p)->hnext) {
        if (*p == it) {
            *p = it->hnext;
            r->nheld--;
            ((ebd_tcore_t *) r->target->core)->held_bytes -= it->bytes;
            return;
        }
    }
}


/* ---- retry state carried over a reload ----------------------------- */

void
ebd_carry_save(ebd_disp_t *dp, ebd_item_t *it, uint64_t due_ms)
{
    unsigned      h = ebd_hash(it->id);
    ebd_carry_t  *c;

    c = calloc(1, sizeof(ebd_carry_t));
    if (c == NULL || (c->stream = strdup(it->route->stream)) == NULL) {
        free(c);
        return;                 /* retried at once instead: no harm */
    }

    memcpy(c->id, it->id, EBD_ID_MAX);
    c->attempt = it->d.attempt;
    c->no_rule = it->no_rule;
    c->due_ms = due_ms;
    c->last = it->last;
    c->next = dp->carry[h];
    dp->carry[h] = c;
}


/* Takes the saved state of (stream, id), if any: the caller frees it. */
static ebd_carry_t *
ebd_carry_take(ebd_disp_t *dp, const char *stream, const char *id)
{
    ebd_carry_t  **p, *c;

    for (p = &dp->carry[ebd_hash(id)]; *p; p = &(*p)->next) {
        c = *p;
        if (strcmp(c->id, id) == 0 && strcmp(c->stream, stream) == 0) {
            *p = c->next;
            return c;
        }
    }

    return NULL;
}


static void
ebd_carry_free_all(ebd_disp_t *dp)
{
    size_t        b;
    ebd_carry_t  *c, *next;

    for (b = 0; b < EBD_HELD_BUCKETS; b++) {
        for (c = dp->carry[b]; c; c = next) {
            next = c->next;
            free(c->stream);
            free(c);
        }
        dp->carry[b] = NULL;
    }
}


/* ---- reading ------------------------------------------------------ */

static void ebd_route_later(ebd_route_t *r);


static void
ebd_announce(ebd_disp_t *dp)
{
    size_t  i;

    for (i = 0; i < dp->nroutes; i++) {
        if (!dp->routes[i]->announced) {
            return;
        }
    }

    if (!dp->ready_logged) {
        dp->ready_logged = 1;
        ebd_log(EBD_LOG_INFO, "ebd: ready: consumer \"%s\", %zu route(s)",
                dp->opts->consumer, dp->nroutes);
    }
}


/* Takes entries of an XREADGROUP or XAUTOCLAIM reply; returns how many
 * there were, and the last id in last. Entries that were pending already
 * (restore: our own read back, or claimed) wait for their saved attempt
 * count (ebd_retry_state.c). */
static size_t
ebd_route_take(ebd_route_t *r, redisReply *entries, char *last,
    int restore)
{
    size_t        i, n, nr;
    ebd_item_t   *it, **rs;
    redisReply   *e, *id;
    ebd_carry_t  *carry;

    n = 0;
    nr = 0;
    rs = restore && entries->elements
         ? malloc(entries->elements * sizeof(ebd_item_t *)) : NULL;

    for (i = 0; i < entries->elements; i++) {
        e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2
            || e->element[0]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        id = e->element[0];
        n++;

        if (last && id->len < EBD_ID_MAX) {
            memcpy(last, id->str, id->len);
            last[id->len] = '\0';
        }

        if (e->element[1]->type != REDIS_REPLY_ARRAY) {
            /* deleted from the stream while pending: nothing to deliver */
            char  buf[EBD_ID_MAX];
            if (id->len < EBD_ID_MAX) {
                memcpy(buf, id->str, id->len);
                buf[id->len] = '\0';
                ebd_ack(r, buf);
            }
            continue;
        }

        if (ebd_held_find(r, id->str, id->len)) {
            continue;           /* already ours, in memory */
        }

        if (r->order && ebd_order_gone(r, id->str, id->len)) {
            continue;           /* delivered while the read was out */
        }

        it = ebd_item_new(r, id->str, id->len, e->element[1]);
        if (it == NULL) {
            ebd_log(EBD_LOG_ERROR, "route %s: out of memory; entry left "
                    "pending", r->stream);
            continue;
        }

        ebd_held_add(r, it);

        if (r->order && !ebd_order_chain(it)) {
            /* an earlier entry of its key is in memory: it waits */
            it->state = EBD_ITEM_PARKED;
            it->restore_later = restore;
            ((ebd_tcore_t *) r->target->core)->parked++;
            continue;
        }

        carry = ebd_carry_take(r->dp, r->stream, it->id);
        if (carry) {
            /* read again after a reload: its attempts so far, and its
             * retry when it was due */
            uint64_t  now = ebd_now_ms();

            it->d.attempt = carry->attempt;
            it->last = carry->last;
            /* waited for a rule this configuration has: due now */
            if (carry->due_ms > now && !(carry->no_rule && !it->no_rule)) {
                (void) ebd_schedule_retry(it, carry->due_ms - now);
                free(carry->stream);
                free(carry);
                continue;
            }
            free(carry->stream);
            free(carry);

        } else if (rs != NULL) {
            if (ebd_retry_state_hold(it) == 0) {
                rs[nr++] = it;
            }
            continue;
        }

        ebd_item_enqueue(it, 0);
    }

    ebd_retry_state_restore(r, rs, nr);
    free(rs);

    return n;
}


static void
ebd_route_read_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t        n;
    redisReply   *rep = reply, *s;
    ebd_route_t  *r = privdata;
    ebd_tcore_t  *tc = r->target->core;

    r->reading = 0;

    if (rep == NULL || r->dp->state != EBD_RUNNING) {
        r->ngone = 0;
        return;                 /* gone: read again once reconnected */
    }

    if (rep->type == REDIS_REPLY_ERROR) {
        /* logged by the connection, once */
        if (strncmp(rep->str, "NOGROUP", 7) == 0) {
            /* the stream was deleted: make it again */
            r->group_ok = 0;
        }
        ebd_route_later(r);
        return;
    }

    r->backoff_ms = 100;

    if (!ebd_order_may_take(r)) {
        /* a partition read under a lease that is gone: its entries stay
         * pending, read from the start by whoever holds it now */
        ebd_route_read(r);
        return;
    }

    n = 0;

    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        s = rep->element[0];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2
            && s->element[1]->type == REDIS_REPLY_ARRAY)
        {
            n = ebd_route_take(r, s->element[1],
                               r->read_history ? r->cursor : NULL,
                               r->read_history);
        }
    }

    if (r->read_history && n == 0) {
        r->history = 0;         /* our own pending entries are all read */
    }

    r->ngone = 0;

    ebd_target_pump(tc);
    ebd_route_read(r);
}


void
ebd_route_read(ebd_route_t *r)
{
    int           argc;
    char          count[16], block[32];
    unsigned      room;
    const char   *argv[12];
    ebd_conn_t   *c;
    ebd_tcore_t  *tc = r->target->core;
    ebd_disp_t   *dp = r->dp;

    if (r->reading || r->retrying || !r->group_ok
        || dp->state != EBD_RUNNING || r->reader == NULL || !r->reader->ready
        || (r->order && (!r->leased || r->draining)))
    {
        return;
    }

    if (r->history && (r->cmd == NULL || !r->cmd->ready)) {
        /* what our own pending list gives back waits for its saved
         * attempts, asked on the command connection: without it they
         * would wait for the restore's fallback (the tick reads again) */
        return;
    }

    room = ebd_target_room(tc);
    if (room == 0) {
        return;
    }

    snprintf(count, sizeof(count), "%u", room);
    snprintf(block, sizeof(block), "%llu",
             (unsigned long long) dp->opts->block_ms);

    argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = EBD_GROUP;
    argv[argc++] = r->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (!r->history) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = r->stream;
    argv[argc++] = r->history ? r->cursor : ">";

    c = r->reader;

    if (r->order && r->history) {
        /* a partition's pending list must not hand back an entry just
         * delivered (its key's next may be out already): the XACKs go
         * first, on the command connection, and the read after them on
         * the same connection (it does not block); what leaves memory
         * while it is out is skipped in its answer (ebd_order.c) */
        ebd_flush_acks(dp);
        c = r->cmd;
    }

    if (ebd_conn_command(c, ebd_route_read_reply, r, argc, argv, NULL) == 0) {
        r->reading = 1;
        r->read_history = r->history;
        r->read_gen = r->lease_gen;
        ebd_order_read_out(r);
    }
}


void
ebd_target_wants_more(ebd_tcore_t *tc)
{
    size_t      i;
    ebd_disp_t  *dp = tc->dp;

    for (i = 0; i < dp->nroutes; i++) {
        if (dp->routes[i]->target == &tc->target) {
            ebd_route_read(dp->routes[i]);
        }
    }
}


static void
ebd_route_group_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply   *rep = reply;
    ebd_route_t  *r = privdata;

    if (rep == NULL) {
        return;
    }

    if (rep->type == REDIS_REPLY_ERROR
        && strncmp(rep->str, "BUSYGROUP", 9) != 0)
    {
        /* LOADING, READONLY, OOM, BUSY...: logged by the connection */
        ebd_route_later(r);
        return;
    }

    r->group_ok = 1;
    r->backoff_ms = 100;

    if (!r->announced) {
        r->announced = 1;
        ebd_log(EBD_LOG_INFO, "route %s: consuming as \"%s\" in group "
                "\"" EBD_GROUP "\"", r->stream, r->consumer);
        ebd_announce(r->dp);
    }

    ebd_route_read(r);
}


static void
ebd_route_create(ebd_route_t *r)
{
    const char  *argv[] = { "XGROUP", "CREATE", r->stream, EBD_GROUP, "0",
                            "MKSTREAM" };

    (void) ebd_conn_command(r->reader, ebd_route_group_reply, r, 6, argv,
                            NULL);
}


/* After every (re)connection: our pending entries first, from 0. */
static void
ebd_route_ready(ebd_conn_t *c, void *data)
{
    ebd_route_t  *r = data;

    r->reading = 0;
    r->claiming = 0;
    r->group_ok = 0;
    r->history = 1;
    strcpy(r->cursor, "0");

    evtimer_del(r->retry_ev);
    r->retrying = 0;

    ebd_route_create(r);
}


static void
ebd_route_retry_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_route_t  *r = arg;

    r->retrying = 0;

    if (r->reader == NULL || !r->reader->ready) {
        return;                 /* ebd_route_ready() starts again */
    }

    if (r->group_ok) {
        ebd_route_read(r);

    } else {
        ebd_route_create(r);
    }
}


/* An error reply to XGROUP CREATE or XREADGROUP (a server loading its
 * data, read-only, out of memory, busy with a script, a slot in
 * migration): the same step again later, 100 ms doubling to 5 s, until
 * it works. A route never stays stuck. */
static void
ebd_route_later(ebd_route_t *r)
{
    struct timeval  tv;

    tv.tv_sec = r->backoff_ms / 1000;
    tv.tv_usec = (r->backoff_ms % 1000) * 1000;
    evtimer_add(r->retry_ev, &tv);
    r->retrying = 1;

    r->backoff_ms = r->backoff_ms * 2 > EBD_RETRY_MAX_MS
                    ? EBD_RETRY_MAX_MS : r->backoff_ms * 2;
}


/* ---- claiming, keeping ours fresh, trimming ------------------------ */

static void
ebd_route_claim_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t        n;
    redisReply   *rep = reply;
    ebd_route_t  *r = privdata;

    r->claiming = 0;

    if (rep == NULL || r->dp->state != EBD_RUNNING) {
        return;
    }

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2
        || rep->element[0]->type != REDIS_REPLY_STRING
        || rep->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return;                 /* an error, logged by the connection: the
                                   next tick claims again */
    }

    if (rep->element[0]->len < EBD_ID_MAX) {
        memcpy(r->claim_cursor, rep->element[0]->str, rep->element[0]->len);
        r->claim_cursor[rep->element[0]->len] = '\0';
    }

    n = ebd_route_take(r, rep->element[1], NULL, 1);
    if (n) {
        ebd_log(EBD_LOG_INFO, "route %s: claimed %zu entr%s idle for more "
                "than %llu ms", r->stream, n, n == 1 ? "y" : "ies",
                (unsigned long long) r->dp->opts->claim_idle_ms);
    }

    ebd_target_pump(r->target->core);
}


static void
ebd_route_claim(ebd_route_t *r)
{
    char          idle[32], count[16];
    unsigned      room;
    const char   *argv[9];

    /* a partition has one consumer ("ord"): nothing to claim */
    if (r->claiming || !r->group_ok || r->reader == NULL || r->order) {
        return;
    }

    room = ebd_target_room(r->target->core);
    if (room == 0) {
        return;
    }

    snprintf(idle, sizeof(idle), "%llu",
             (unsigned long long) r->dp->opts->claim_idle_ms);
    snprintf(count, sizeof(count), "%u", room);

    argv[0] = "XAUTOCLAIM";
    argv[1] = r->stream;
    argv[2] = EBD_GROUP;
    argv[3] = r->dp->opts->consumer;
    argv[4] = idle;
    argv[5] = r->claim_cursor;
    argv[6] = "COUNT";
    argv[7] = count;

    /* on the command connection: the reader may be blocked in a read */
    if (ebd_conn_command(r->cmd, ebd_route_claim_reply, r, 8, argv, NULL)
        == 0)
    {
        r->claiming = 1;
    }
}


/* Entries another consumer took: those waiting for a retry are
 * dropped here (theirs now); one queued or in flight finishes its
 * attempt, and is dropped at the next refresh if it has to wait. */
static void
ebd_route_refresh_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t        i, n = 0;
    redisReply   *rep = reply, *e;
    ebd_item_t   *it;
    ebd_route_t  *r = privdata;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY
        || r->dp->state != EBD_RUNNING)
    {
        return;
    }

    for (i = 0; i < rep->elements; i++) {
        e = rep->element[i];
        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        it = ebd_held_find(r, e->str, e->len);
        if (it != NULL && it->state == EBD_ITEM_WAITING) {
            ebd_log(EBD_LOG_WARN, "route %s: entry %s was claimed by "
                    "another consumer while it waited for its retry; "
                    "leaving it to them", r->stream, it->id);
            ebd_item_release(it);
            n++;
        }
    }

    if (n) {
        ebd_target_pump(r->target->core);
    }
}


static void
ebd_route_refresh(ebd_route_t *r)
{
    int          argc;
    size_t       b;
    ebd_item_t  *it;
    const char  *argv[256 + 6];

    if (r->order) {
        return;                 /* one consumer: no one claims from it */
    }

    argc = 0;

    for (b = 0; b < EBD_HELD_BUCKETS; b++) {
        for (it = r->held[b]; it; it = it->hnext) {
            if (argc == 0) {
                argv[argc++] = "EVAL";
                argv[argc++] = ebd_refresh_script;
                argv[argc++] = "1";
                argv[argc++] = r->stream;
                argv[argc++] = EBD_GROUP;
                argv[argc++] = r->dp->opts->consumer;
            }
            argv[argc++] = it->id;
            if (argc == 256 + 6) {
                (void) ebd_conn_command(r->cmd, ebd_route_refresh_reply, r,
                                        argc, argv, NULL);
                argc = 0;
            }
        }
    }

    if (argc) {
        (void) ebd_conn_command(r->cmd, ebd_route_refresh_reply, r, argc,
                                argv, NULL);
    }
}


static void
ebd_route_trim(ebd_route_t *r)
{
    const char  *argv[] = { "EVAL", ebd_trim_script, "1", r->stream,
                            EBD_GROUP };

    if (r->group_ok
        && ebd_conn_command(r->cmd, NULL, NULL, 5, argv, NULL) == 0)
    {
        r->untrimmed = 0;
    }
}


/* ---- setting up and tearing down ---------------------------------- */

static const ebd_driver_t *
ebd_driver(eb_target_type_t type)
{
    switch (type) {
    case EB_TARGET_HTTP:
        return &ebd_http_driver;
    case EB_TARGET_CLOUDEVENTS:
        return &ebd_cloudevents_driver;
    case EB_TARGET_MYSQL:
        return &ebd_mysql_driver;
    case EB_TARGET_POSTGRESQL:
        return &ebd_postgresql_driver;
    case EB_TARGET_REDIS:
        return &ebd_redis_driver;
    case EB_TARGET_DINGTALK:
        return &ebd_dingtalk_driver;
    }

    return NULL;
}


/* Without "concurrency": 16 attempts in flight; a database target as
 * many as its workers can insert at once (batch x pool, the drivers'
 * defaults 100 and 2), or its batches could never fill up. */
static unsigned
ebd_default_concurrency(const eb_config_target_t *ct)
{
    yajl_val  b, p;
    long long  n;

    if (ct->type != EB_TARGET_MYSQL && ct->type != EB_TARGET_POSTGRESQL) {
        return 16;
    }

    b = eb_config_get(ct->spec, "batch");
    p = eb_config_get(ct->spec, "pool");
    n = (b && YAJL_IS_INTEGER(b) ? YAJL_GET_INTEGER(b) : 100)
        * (p && YAJL_IS_INTEGER(p) ? YAJL_GET_INTEGER(p) : 2);

    return n > 4096 ? 4096 : (unsigned) n;
}


static char *
ebd_key(const char *bus, const char *kind, const char *target)
{
    size_t  n = strlen(bus) + strlen(kind) + (target ? strlen(target) : 0)
                + 16;
    char   *k = malloc(n);

    if (k) {
        if (target) {
            snprintf(k, n, "eb:{%s}:%s:%s", bus, kind, target);
        } else {
            snprintf(k, n, "eb:{%s}:%s", bus, kind);
        }
    }

    return k;
}


ebd_route_t *
ebd_route_new(ebd_disp_t *dp, const char *bus, ebd_target_t *t)
{
    ebd_route_t  *r;

    r = calloc(1, sizeof(ebd_route_t));
    if (r == NULL) {
        return NULL;
    }

    r->dp = dp;
    r->bus = bus;
    r->target = t;
    r->stream = ebd_key(bus, "target", t->name);
    r->dlq = ebd_key(bus, "dlq", t->name);
    r->trace = ebd_key(bus, "trace", NULL);
    r->retry_key = ebd_key(bus, "retry", t->name);
    r->pause_key = ebd_key(bus, "paused", NULL);
    r->conn_name = ebd_key(bus, "target", t->name);
    r->metrics = ebd_metrics_route(bus, t->name);
    r->consumer = dp->opts->consumer;
    strcpy(r->claim_cursor, "0-0");
    r->backoff_ms = 100;
    r->retry_ev = evtimer_new(dp->base, ebd_route_retry_handler, r);

    if (!r->stream || !r->dlq || !r->trace || !r->conn_name
        || !r->retry_key || !r->pause_key || !r->retry_ev)
    {
        if (r->retry_ev) {
            event_free(r->retry_ev);
        }
        free(r->stream);
        free(r->dlq);
        free(r->trace);
        free(r->retry_key);
        free(r->pause_key);
        free(r->conn_name);
        free(r);
        return NULL;
    }

    return r;
}


static void
ebd_route_free(ebd_route_t *r)
{
    size_t       b;
    ebd_item_t  *it, *next;

    if (r->reader) {
        ebd_conn_free(r->reader);
        r->reader = NULL;
    }

    for (b = 0; b < EBD_HELD_BUCKETS; b++) {
        for (it = r->held[b]; it; it = next) {
            next = it->hnext;
            ebd_item_free(it);
        }
    }

    event_free(r->retry_ev);
    free(r->acks);
    eb_buf_free(&r->tr);
    free(r->gone);
    free(r->stream);
    free(r->dlq);
    free(r->trace);
    free(r->retry_key);
    free(r->pause_key);
    free(r->conn_name);
    free(r);
}


/* A bus and its command connection, made on first use. */
ebd_bus_t *
ebd_bus_get(ebd_disp_t *dp, const char *name)
{
    size_t      i, n;
    char        key[600];
    ebd_bus_t  *b, **buses;

    for (i = 0; i < dp->nbuses; i++) {
        if (strcmp(dp->buses[i]->name, name) == 0) {
            dp->buses[i]->used = 1;
            return dp->buses[i];
        }
    }

    buses = realloc(dp->buses, (dp->nbuses + 1) * sizeof(ebd_bus_t *));
    if (buses == NULL) {
        return NULL;
    }
    dp->buses = buses;

    b = calloc(1, sizeof(ebd_bus_t));
    if (b == NULL) {
        return NULL;
    }

    n = snprintf(key, sizeof(key), "eb:{%s}", name);
    b->dp = dp;
    b->name = strdup(name);
    b->conn_name = ebd_key(name, "commands", NULL);
    b->slot = eb_redis_key_slot(key, n < sizeof(key) ? n : sizeof(key) - 1);
    b->used = 1;

    if (b->name && b->conn_name) {
        b->cmd = ebd_conn_new_slot(&dp->topo, b->conn_name, b->slot, 0,
                                   ebd_index_conn_ready, b);
    }

    if (b->cmd == NULL) {
        free(b->name);
        free(b->conn_name);
        free(b);
        return NULL;
    }

    dp->buses[dp->nbuses++] = b;
    return b;
}


static ebd_conn_t *
ebd_bus_conn(ebd_disp_t *dp, const char *name)
{
    ebd_bus_t  *b = ebd_bus_get(dp, name);

    return b ? b->cmd : NULL;
}


static void
ebd_bus_free(ebd_bus_t *b)
{
    ebd_conn_free(b->cmd);
    free(b->name);
    free(b->conn_name);
    free(b);
}


/* Buses a reload removed: their connections go, unless busy. */
static void
ebd_buses_unused(ebd_disp_t *dp)
{
    size_t  i, n;

    for (i = 0, n = 0; i < dp->nbuses; i++) {
        if (!dp->buses[i]->used && dp->buses[i]->cmd->pending == 0) {
            ebd_bus_free(dp->buses[i]);
            continue;
        }
        dp->buses[n++] = dp->buses[i];
    }

    dp->nbuses = n;
}


static int
ebd_setup(ebd_disp_t *dp)
{
    size_t                i, j, k, n;
    char                  err[512];
    yajl_val              v;
    ebd_tcore_t          *tc;
    ebd_route_t          *r;
    eb_config_t          *cf = dp->cf;
    const eb_config_bus_t *bus;
    const eb_config_target_t *ct;

    dp->ntargets = cf->ntargets;
    dp->targets = calloc(cf->ntargets ? cf->ntargets : 1, sizeof(ebd_tcore_t));
    n = 0;
    for (i = 0; i < cf->nbuses; i++) {
        for (j = 0; j < cf->buses[i].nrules; j++) {
            n += cf->buses[i].rules[j].ntargets;
        }
    }
    dp->routes = calloc(n ? n : 1, sizeof(ebd_route_t *));
    dp->nroutes = 0;

    if (dp->targets == NULL || dp->routes == NULL) {
        return -1;
    }

    for (i = 0; i < cf->ntargets; i++) {
        ct = &cf->targets[i];
        tc = &dp->targets[i];
        tc->dp = dp;
        tc->target.name = ct->name;
        tc->target.conf = ct;
        tc->target.connection = ct->connection >= 0
                                ? &cf->connections[ct->connection] : NULL;
        tc->target.base = dp->base;
        tc->target.config = cf;
        tc->target.driver = ebd_driver(ct->type);
        tc->target.core = tc;

        tc->target.timeout_ms = 10000;
        if (eb_config_duration(eb_config_get(ct->spec, "timeout"),
                               &tc->target.timeout_ms) != 0
            || tc->target.timeout_ms == 0)
        {
            tc->target.timeout_ms = 10000;
        }

        v = eb_config_get(ct->spec, "fault_tolerance");
        tc->fault_none = v && YAJL_IS_STRING(v)
                         && strcmp(v->u.string, "NONE") == 0;

        v = eb_config_get(ct->spec, "concurrency");
        tc->target.concurrency = v && YAJL_IS_INTEGER(v)
                                 ? (unsigned) YAJL_GET_INTEGER(v)
                                 : ebd_default_concurrency(ct);
        if (tc->fault_none && eb_config_get(ct->spec, "ordering_key") == NULL)
        {
            /* order is kept by delivering one at a time (with a key:
             * per key, ebd_order.c) */
            tc->target.concurrency = 1;
        }

        v = eb_config_get(ct->spec, "dead_letter");
        tc->dead_letter = !(v && YAJL_IS_FALSE(v));

        v = eb_config_get(ct->spec, "memory_mb");
        tc->memory_max = (size_t) (v && YAJL_IS_INTEGER(v)
                                   ? YAJL_GET_INTEGER(v) : 64) << 20;

        ebd_retry_from_config(&tc->retry, eb_config_get(ct->spec, "retry"));

        if (ebd_breaker_setup(tc, eb_config_get(ct->spec, "circuit_breaker"))
            != 0 || ebd_limit_setup(tc, ct->spec) != 0)
        {
            return -1;
        }
    }

    /* a route per (bus, target) some rule sends to */
    for (i = 0; i < cf->nbuses; i++) {
        bus = &cf->buses[i];
        for (j = 0; j < bus->nrules; j++) {
            for (k = 0; k < bus->rules[j].ntargets; k++) {
                ebd_target_t  *t = &dp->targets[bus->rules[j].targets[k].target]
                                    .target;
                size_t         x;

                for (x = 0; x < dp->nroutes; x++) {
                    if (dp->routes[x]->target == t
                        && strcmp(dp->routes[x]->bus, bus->name) == 0)
                    {
                        break;
                    }
                }
                if (x < dp->nroutes) {
                    continue;
                }

                r = ebd_route_new(dp, bus->name, t);
                if (r == NULL) {
                    return -1;
                }
                dp->routes[dp->nroutes++] = r;
            }
        }
    }

    /* the partitions of targets in order per key */
    if (ebd_order_setup(dp) != 0) {
        return -1;
    }

    /* drivers of the targets in use */
    for (i = 0; i < dp->nroutes; i++) {
        tc = dp->routes[i]->target->core;
        if (tc->opened) {
            continue;
        }
        err[0] = '\0';
        if (tc->target.driver->open(&tc->target, err, sizeof(err)) != 0) {
            ebd_log(EBD_LOG_ERROR, "target %s: %s", tc->target.name, err);
            return -1;
        }
        tc->opened = 1;
    }

    for (i = 0; i < dp->nbuses; i++) {
        dp->buses[i]->used = 0;
    }

    for (i = 0; i < dp->nroutes; i++) {
        r = dp->routes[i];
        r->cmd = ebd_bus_conn(dp, r->bus);
        r->reader = ebd_conn_new_slot(&dp->topo, r->conn_name,
                                      eb_redis_key_slot(r->stream,
                                                        strlen(r->stream)),
                                      dp->opts->block_ms, ebd_route_ready, r);
        if (r->cmd == NULL || r->reader == NULL) {
            return -1;
        }
    }

    if (ebd_retention_setup(dp) != 0 || ebd_index_setup(dp) != 0
        || ebd_replay_runner_start(dp) != 0)
    {
        return -1;
    }

    ebd_buses_unused(dp);

    ebd_announce(dp);
    return 0;
}


static void
ebd_teardown(ebd_disp_t *dp)
{
    size_t        i;
    ebd_tcore_t  *tc;

    ebd_flush_acks(dp);
    ebd_replay_runner_join(dp);

    /* while the routes (their metrics) are there */
    for (i = 0; i < dp->ntargets; i++) {
        ebd_breaker_free(&dp->targets[i]);
        ebd_limit_free(&dp->targets[i]);
    }

    ebd_order_free_all(dp);

    for (i = 0; i < dp->nroutes; i++) {
        ebd_route_free(dp->routes[i]);
    }

    for (i = 0; i < dp->ntargets; i++) {
        tc = &dp->targets[i];
        if (tc->opened) {
            tc->target.driver->close(&tc->target);
            tc->opened = 0;
        }
    }

    free(dp->routes);
    free(dp->targets);
    dp->routes = NULL;
    dp->targets = NULL;
    dp->nroutes = 0;
    dp->ntargets = 0;
}


/* ---- draining: SIGTERM and SIGHUP ---------------------------------- */

static void
ebd_finish(evutil_socket_t fd, short what, void *arg)
{
    ebd_disp_t   *dp = arg;
    eb_config_t  *old;

    ebd_teardown(dp);

    if (dp->state == EBD_STOPPING) {
        ebd_log(EBD_LOG_INFO, "ebd: stopped (delivered %llu, retried %llu, "
                "dead-lettered %llu, discarded %llu)",
                (unsigned long long) dp->delivered,
                (unsigned long long) dp->retried,
                (unsigned long long) dp->dead_lettered,
                (unsigned long long) dp->discarded);
        event_base_loopexit(dp->base, NULL);
        return;
    }

    old = dp->cf;
    dp->cf = dp->next_cf;
    dp->next_cf = NULL;
    dp->state = EBD_RUNNING;
    dp->ready_logged = 0;

    if (ebd_setup(dp) == 0) {
        eb_config_free(old);
        ebd_log(EBD_LOG_INFO, "ebd: configuration reloaded from %s",
                dp->opts->config_file);
        return;
    }

    /* the file passed its checks, but a driver could not open what it
     * says (the error is logged above): the running configuration
     * goes on, as nginx keeps its own after a failed reload */
    ebd_teardown(dp);
    eb_config_free(dp->cf);
    dp->cf = old;

    if (ebd_setup(dp) == 0) {
        ebd_log(EBD_LOG_ERROR, "ebd: reload of %s failed, keeping the "
                "running configuration", dp->opts->config_file);
        return;
    }

    ebd_log(EBD_LOG_ERROR, "ebd: the configuration cannot be started "
            "again; stopping");
    dp->exit_code = 1;
    dp->state = EBD_STOPPING;
    ebd_teardown(dp);
    event_base_loopexit(dp->base, NULL);
}


void
ebd_drained_check(ebd_disp_t *dp)
{
    size_t          i;
    struct timeval  now = { 0, 0 };

    if (dp->state == EBD_RUNNING || dp->drain_deadline == 0) {
        return;
    }

    ebd_flush_acks(dp);

    if (ebd_now_ms() < dp->drain_deadline) {
        for (i = 0; i < dp->ntargets; i++) {
            if (dp->targets[i].inflight) {
                return;
            }
        }
        for (i = 0; i < dp->nbuses; i++) {
            if (dp->buses[i]->cmd->pending) {
                return;         /* acknowledgements still on their way */
            }
        }

        /* stopping with nothing in flight: partitions in order per key
         * go to the other processes now, not when their leases end */
        if (dp->state == EBD_STOPPING && !dp->leases_given) {
            dp->leases_given = 1;
            if (ebd_order_give_back(dp)) {
                return;         /* checked again once answered */
            }
        }

    } else {
        for (i = 0; i < dp->ntargets && !dp->targets[i].inflight; i++) {
            /* void */
        }

        if (i < dp->ntargets) {
            ebd_log(EBD_LOG_WARN, "ebd: deliveries still in flight after "
                    "%llu ms; their entries stay pending and are delivered "
                    "again", (unsigned long long) dp->opts->grace_ms);
        }

        /* commands still unanswered (a silent Redis) have callbacks that
         * name routes and partitions about to be freed: they run now,
         * with no reply, and the connection is made again */
        for (i = 0; i < dp->nbuses; i++) {
            if (dp->buses[i]->cmd->pending) {
                ebd_log(EBD_LOG_WARN, "redis %s: no answer within %llu ms "
                        "of the %s; connecting again (what it did not "
                        "acknowledge is delivered again)",
                        dp->buses[i]->cmd->name,
                        (unsigned long long) dp->opts->grace_ms,
                        dp->state == EBD_STOPPING ? "stop" : "reload");
                ebd_conn_reset(dp->buses[i]->cmd);
            }
        }
    }

    /* outside of any callback of what is torn down */
    dp->drain_deadline = 0;
    event_base_once(dp->base, -1, EV_TIMEOUT, ebd_finish, dp, &now);
}


static void
ebd_drain(ebd_disp_t *dp, ebd_disp_state_t state)
{
    size_t        i;
    ebd_item_t   *it, *next;
    ebd_route_t  *r;

    dp->state = state;
    dp->drain_deadline = ebd_now_ms() + dp->opts->grace_ms;
    ebd_replay_runner_stop(dp);

    for (i = 0; i < dp->nroutes; i++) {
        r = dp->routes[i];
        if (r->reader) {
            ebd_conn_free(r->reader);
            r->reader = NULL;
        }
    }

    /* what is not in flight stays pending in Redis, read again later;
     * a reload remembers where the retries were */
    ebd_carry_free_all(dp);

    for (i = 0; i < dp->ntargets; i++) {
        for (it = dp->targets[i].head; it; it = next) {
            next = it->next;
            if (state == EBD_RELOADING && it->d.attempt) {
                ebd_carry_save(dp, it, 0);
            }
            ebd_item_release(it);
        }
    }

    for (i = 0; i < dp->nroutes; i++) {
        size_t  b;
        r = dp->routes[i];
        for (b = 0; b < EBD_HELD_BUCKETS; b++) {
            for (it = r->held[b]; it; it = next) {
                next = it->hnext;
                if (it->state == EBD_ITEM_WAITING) {
                    if (state == EBD_RELOADING) {
                        ebd_carry_save(dp, it, it->due_ms);
                    }
                    ebd_item_release(it);

                } else if (it->state == EBD_ITEM_PARKED) {
                    ebd_item_release(it);
                }
            }
        }
    }

    ebd_drained_check(dp);
}


static void
ebd_signal(evutil_socket_t sig, short what, void *arg)
{
    char          err[EB_CONFIG_ERROR_MAX];
    ebd_disp_t   *dp = arg;
    eb_config_t  *cf;

    if (sig == SIGHUP) {
        if (dp->state == EBD_STOPPING) {
            return;
        }

        if (ebd_topo_resolve(&dp->topo, err, sizeof(err)) != 0) {
            ebd_log(EBD_LOG_ERROR, "ebd: -r: %s; keeping the addresses "
                    "resolved before", err);
        }

        cf = ebd_config_load(dp->opts->config_file, err, sizeof(err));
        if (cf == NULL) {
            ebd_log(EBD_LOG_ERROR, "ebd: reload refused, keeping the running "
                    "configuration: %s", err);
            return;
        }

        ebd_log(EBD_LOG_INFO, "ebd: reloading %s: finishing deliveries in "
                "flight", dp->opts->config_file);

        if (dp->next_cf) {
            eb_config_free(dp->next_cf);
        }
        dp->next_cf = cf;

        if (dp->state == EBD_RUNNING) {
            ebd_drain(dp, EBD_RELOADING);
        }
        return;
    }

    if (dp->state == EBD_STOPPING) {
        return;
    }

    ebd_log(EBD_LOG_INFO, "ebd: %s: stopping: finishing deliveries in flight",
            sig == SIGINT ? "SIGINT" : "SIGTERM");

    if (dp->state == EBD_RELOADING) {
        dp->state = EBD_STOPPING;
        return;
    }

    ebd_drain(dp, EBD_STOPPING);
}


static void
ebd_tick(evutil_socket_t fd, short what, void *arg)
{
    int           all;
    size_t        i;
    uint64_t      now;
    ebd_disp_t   *dp = arg;

    now = ebd_now_ms();

    ebd_topo_watch(&dp->topo);
    ebd_metrics_tick(dp);

    if (dp->state != EBD_RUNNING) {
        ebd_drained_check(dp);
        return;
    }

    for (i = 0; i < dp->nroutes; i++) {
        if (dp->routes[i]->nacks) {
            /* kept while their connection was down */
            ebd_flush_acks(dp);
            break;
        }
    }

    for (i = 0; i < dp->nroutes; i++) {
        ebd_route_read(dp->routes[i]);
    }

    if (now - dp->last_claim_ms >= dp->opts->claim_idle_ms / 2) {
        dp->last_claim_ms = now;
        for (i = 0; i < dp->nroutes; i++) {
            ebd_route_claim(dp->routes[i]);
        }
    }

    if (now - dp->last_refresh_ms >= dp->opts->claim_idle_ms / 3) {
        dp->last_refresh_ms = now;
        for (i = 0; i < dp->nroutes; i++) {
            ebd_route_refresh(dp->routes[i]);
        }
    }

    /* every period, and a route sooner once it has acknowledged
     * EBD_TRIM_ENTRIES: one XTRIM of what 5 s bring at 10,000/s kept
     * Redis busy (and every client waiting) for about 6 ms */
    all = now - dp->last_trim_ms >= EBD_TRIM_MS;
    if (all) {
        dp->last_trim_ms = now;
    }
    for (i = 0; i < dp->nroutes; i++) {
        if (all || dp->routes[i]->untrimmed >= EBD_TRIM_ENTRIES) {
            ebd_route_trim(dp->routes[i]);
        }
    }

    ebd_retention_tick(dp, now);
    ebd_index_tick(dp, now);
    ebd_pause_tick(dp, now);
    ebd_stats_sample_tick(dp, now);
    ebd_limit_tick(dp, now);
    ebd_order_tick(dp, now);

    if (now - dp->last_stats_ms >= EBD_STATS_MS) {
        dp->last_stats_ms = now;
        if (dp->delivered != dp->logged_delivered
            || dp->retried != dp->logged_retried
            || dp->dead_lettered != dp->logged_dead_lettered
            || dp->discarded != dp->logged_discarded)
        {
            ebd_log(EBD_LOG_INFO, "ebd: delivered %llu, retried %llu, "
                    "dead-lettered %llu, discarded %llu",
                    (unsigned long long) dp->delivered,
                    (unsigned long long) dp->retried,
                    (unsigned long long) dp->dead_lettered,
                    (unsigned long long) dp->discarded);
            dp->logged_delivered = dp->delivered;
            dp->logged_retried = dp->retried;
            dp->logged_dead_lettered = dp->dead_lettered;
            dp->logged_discarded = dp->discarded;
        }
    }
}


static void
ebd_flush_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_flush_acks(arg);
}


eb_config_t *
ebd_config_load(const char *file, char *err, size_t errlen)
{
    eb_config_t  *cf;

    cf = eb_config_load(file, err, errlen);

    if (cf != NULL && ebd_sign_check(cf, err, errlen) != 0) {
        eb_config_free(cf);
        return NULL;
    }

    return cf;
}


int
ebd_run(ebd_opts_t *o)
{
    int                   i, sigs[] = { SIGTERM, SIGINT, SIGHUP };
    char                  err[EB_CONFIG_ERROR_MAX];
    ebd_disp_t            dp;
    struct timeval        tv = { 0, EBD_TICK_MS * 1000 };
    struct event_config  *cfg;

    memset(&dp, 0, sizeof(dp));
    dp.opts = o;

    dp.cf = ebd_config_load(o->config_file, err, sizeof(err));
    if (dp.cf == NULL) {
        ebd_log(EBD_LOG_ERROR, "ebd: %s", err);
        return 1;
    }

    /* drivers with threads of their own hand results back with
     * event_active() */
    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);

    /* epoll's changes applied once a turn: a write event added and
     * deleted within it (output written at the turn's end,
     * ebd_redis_loop.c, ebd_h2.c) costs no system call; no descriptor
     * on the loop is dup()ed, which this mode does not allow */
    cfg = event_config_new();
    if (cfg != NULL) {
        (void) event_config_set_flag(cfg,
                                     EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        dp.base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (dp.base == NULL || eb_rand_seed_os(&dp.rand) != 0) {
        ebd_log(EBD_LOG_ERROR, "ebd: cannot set up the event loop");
        return 1;
    }

    /* host names are resolved here, before the loop runs */
    if (ebd_topo_init(&dp.topo, dp.base, o, err, sizeof(err)) != 0) {
        ebd_log(EBD_LOG_ERROR, "ebd: -r: %s", err);
        eb_config_free(dp.cf);
        event_base_free(dp.base);
        return 1;
    }

    for (i = 0; i < 3; i++) {
        dp.sigs[i] = evsignal_new(dp.base, sigs[i], ebd_signal, &dp);
        evsignal_add(dp.sigs[i], NULL);
    }

    dp.tick = event_new(dp.base, -1, EV_PERSIST, ebd_tick, &dp);
    event_add(dp.tick, &tv);
    dp.flush = event_new(dp.base, -1, 0, ebd_flush_handler, &dp);

    ebd_log(EBD_LOG_INFO, "ebd: starting: configuration %s, Redis %s%s%s%s%s",
            o->config_file, o->redis_addr,
            o->cluster ? " (cluster seeds)" : "",
            o->sentinel_master ? " (sentinels of " : "",
            o->sentinel_master ? o->sentinel_master : "",
            o->sentinel_master ? ")" : "");

    if (ebd_metrics_start(&dp) != 0 || ebd_setup(&dp) != 0) {
        ebd_teardown(&dp);
        dp.exit_code = 1;

    } else {
        event_base_dispatch(dp.base);
    }

    ebd_metrics_stop(&dp);

    for (i = 0; i < 3; i++) {
        event_free(dp.sigs[i]);
    }
    event_free(dp.tick);
    event_free(dp.flush);
    ebd_carry_free_all(&dp);
    for (i = 0; i < (int) dp.nbuses; i++) {
        ebd_bus_free(dp.buses[i]);
    }
    free(dp.buses);
    ebd_topo_free(&dp.topo);
    eb_config_free(dp.cf);
    if (dp.next_cf) {
        eb_config_free(dp.next_cf);
    }
    event_base_free(dp.base);

    return dp.exit_code;
}
