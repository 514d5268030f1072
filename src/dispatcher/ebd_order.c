/*
 * Per-key order across processes.
 *
 * nginx appends an ordered (rule, target)'s entry to one of the target's
 * partition streams, eb:{BUS}:target:TARGET:p:N, by its key's hash
 * (src/core/eb_order.h), with the key in the field "key". Here:
 *
 *  - each partition is read by one ebd process at a time, under a lease
 *    eb:{BUS}:ord:TARGET:p:N (the holder's consumer name, 5 s, renewed
 *    every second). Processes announce themselves in the sorted set
 *    eb:{BUS}:ord:TARGET:alive; each takes at most ceil(partitions /
 *    processes), and one holding more gives the extra back once nothing
 *    of it is in flight. One Lua script does it all on Redis' clock;
 *  - a partition is read by the fixed consumer "ord", so that the next
 *    holder reads what the last one left pending from the start (0), in
 *    stream order, before anything new; no XAUTOCLAIM is needed;
 *  - in memory, the entries of one key wait behind the first (PARKED):
 *    only a key's first entry is queued, in flight or waits for its
 *    retry; when it leaves (delivered, dead-lettered) the next one goes.
 *    A failing key holds only itself; other keys go on in parallel.
 *
 * A process whose lease ends (Redis out of reach for the lease's time,
 * or given back) lets go of everything of the partition that is not in
 * flight: it stays pending, read again by the next holder. Reads that
 * were out under an earlier lease are not taken (the next holder reads
 * them from the pending list); a partition with nothing in memory reads
 * its pending list again every 5 s, for an entry a read that raced a
 * lease's end left there.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eb_order.h"
#include "ebd_core.h"
#include "ebd_log.h"


#define EBD_ORDER_LEASE_MS    5000
#define EBD_ORDER_RENEW_MS    1000
#define EBD_ORDER_RESCAN_MS   5000
#define EBD_ORDER_CONSUMER    "ord"


struct ebd_okey_s {
    ebd_okey_t          *next;          /* in the route's bucket */
    ebd_item_t          *head, *tail;
    size_t               len;
    char                 key[];
};


struct ebd_order_s {
    ebd_disp_t          *dp;
    const char          *bus;
    ebd_target_t        *target;
    unsigned             partitions;
    ebd_route_t        **routes;        /* one per partition */
    char               **lease_keys;
    char                *alive_key;
    char                *drop;          /* '1': give it back next */
    int                  asking;
    int                  orphan;        /* torn down while asking: freed
                                         * by the reply's callback */
    int                  asap;          /* a partition can be given back */
    uint64_t             next_ms;
    uint64_t             renewed_ms;    /* sent by the last granted call */
    uint64_t             sent_ms;
    unsigned             quota;
    unsigned             held;
};


/* KEYS: alive, then one lease per partition; ARGV: consumer, lease ms,
 * a '0'/'1' per partition ('1': give back), and "leave" when stopping.
 * Returns the quota and a '0'/'1' per partition: held now. */
static const char  ebd_order_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local me, ms, drop = ARGV[1], tonumber(ARGV[2]), ARGV[3]\n"
    "local n = #KEYS - 1\n"
    "if ARGV[4] == 'leave' then\n"
    "  redis.call('ZREM', KEYS[1], me)\n"
    "  for i = 1, n do\n"
    "    if redis.call('GET', KEYS[i + 1]) == me then\n"
    "      redis.call('DEL', KEYS[i + 1])\n"
    "    end\n"
    "  end\n"
    "  return {0, string.rep('0', n)}\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], now + ms, me)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "redis.call('PEXPIRE', KEYS[1], ms * 2)\n"
    "local quota = math.ceil(n / redis.call('ZCARD', KEYS[1]))\n"
    "local held, out = 0, {}\n"
    "for i = 1, n do\n"
    "  out[i] = '0'\n"
    "  if redis.call('GET', KEYS[i + 1]) == me then\n"
    "    if string.sub(drop, i, i) == '1' then\n"
    "      redis.call('DEL', KEYS[i + 1])\n"
    "    else\n"
    "      redis.call('PEXPIRE', KEYS[i + 1], ms)\n"
    "      out[i] = '1'\n"
    "      held = held + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for i = 1, n do\n"
    "  if held >= quota then break end\n"
    "  if out[i] == '0' and string.sub(drop, i, i) ~= '1'\n"
    "     and redis.call('SET', KEYS[i + 1], me, 'NX', 'PX', ms) then\n"
    "    out[i] = '1'\n"
    "    held = held + 1\n"
    "  end\n"
    "end\n"
    "return {quota, table.concat(out)}\n";


static void ebd_order_note_gone(ebd_route_t *r, const char *id);


/* ---- the entries of a key, in order --------------------------------- */

static unsigned
ebd_okey_hash(const char *p, size_t len)
{
    return eb_order_hash((const unsigned char *) p, len) % EBD_OKEY_BUCKETS;
}


int
ebd_order_chain(ebd_item_t *it)
{
    size_t        len = it->okey ? it->okey_len : 0;
    const char   *key = it->okey ? it->okey : "";
    ebd_okey_t   *k, **b;
    ebd_route_t  *r = it->route;

    b = &r->keys[ebd_okey_hash(key, len)];

    for (k = *b; k; k = k->next) {
        if (k->len == len && memcmp(k->key, key, len) == 0) {
            break;
        }
    }

    if (k == NULL) {
        k = malloc(sizeof(ebd_okey_t) + len + 1);
        if (k == NULL) {
            /* no memory: it goes alone, out of its key's order, rather
             * than never; logged */
            ebd_log(EBD_LOG_ERROR, "route %s: out of memory for the key of "
                    "entry %s; delivered outside its key's order",
                    r->stream, it->id);
            return 1;
        }
        k->len = len;
        memcpy(k->key, key, len);
        k->key[len] = '\0';
        k->head = k->tail = NULL;
        k->next = *b;
        *b = k;
    }

    it->chain = k;
    it->knext = NULL;
    it->kprev = k->tail;

    if (k->tail) {
        k->tail->knext = it;
        k->tail = it;
        return 0;
    }

    k->head = k->tail = it;
    return 1;
}


/* The next of its key goes on: queued, or first its retry record looked
 * up when it was read back from the pending list. */
static void
ebd_order_unpark(ebd_item_t *it)
{
    ebd_tcore_t  *tc = it->route->target->core;

    tc->parked--;

    if (it->restore_later) {
        it->restore_later = 0;
        if (ebd_retry_state_hold(it) == 0) {
            ebd_retry_state_restore(it->route, &it, 1);
        }
        return;
    }

    ebd_item_enqueue(it, 0);
}


void
ebd_order_unlink(ebd_item_t *it)
{
    ebd_okey_t   *k = it->chain, **p;
    ebd_item_t   *next;
    ebd_route_t  *r = it->route;

    it->chain = NULL;

    if (r->reading && r->hist_out) {
        ebd_order_note_gone(r, it->id);
    }

    /* doubly linked: a key's chain can be long (a failing key with a
     * backlog), and letting go of a partition removes from the middle */
    next = it->knext;

    if (next) {
        next->kprev = it->kprev;
    } else {
        k->tail = it->kprev;
    }

    if (it->kprev) {
        it->kprev->knext = next;

    } else {
        k->head = next;

        if (next && next->state == EBD_ITEM_PARKED && r->leased
            && !r->draining && r->dp->state == EBD_RUNNING)
        {
            ebd_order_unpark(next);
        }
    }

    it->knext = NULL;
    it->kprev = NULL;

    if (k->head == NULL) {
        for (p = &r->keys[ebd_okey_hash(k->key, k->len)]; *p; p = &(*p)->next)
        {
            if (*p == k) {
                *p = k->next;
                break;
            }
        }
        free(k);
    }
}


void
ebd_order_read_out(ebd_route_t *r)
{
    r->hist_out = r->order != NULL && r->read_history;
    r->ngone = 0;
}


/* An entry that leaves memory while a read of the pending list is out
 * may be in its answer, pending still (its XACK went after the read):
 * noted, so that it is not taken again behind its key's next. */
static void
ebd_order_note_gone(ebd_route_t *r, const char *id)
{
    size_t   cap;
    char   (*g)[EBD_ID_MAX];

    if (r->ngone == r->gone_cap) {
        cap = r->gone_cap ? r->gone_cap * 2 : 16;
        g = realloc(r->gone, cap * EBD_ID_MAX);
        if (g == NULL) {
            return;             /* then delivered again: at least once */
        }
        r->gone = g;
        r->gone_cap = cap;
    }

    snprintf(r->gone[r->ngone++], EBD_ID_MAX, "%s", id);
}


int
ebd_order_gone(ebd_route_t *r, const char *id, size_t len)
{
    size_t  i;

    for (i = 0; i < r->ngone; i++) {
        if (strncmp(r->gone[i], id, len) == 0 && r->gone[i][len] == '\0') {
            return 1;
        }
    }

    return 0;
}


int
ebd_order_may_take(ebd_route_t *r)
{
    return r->order == NULL
           || (r->leased && !r->draining && r->read_gen == r->lease_gen);
}


int
ebd_order_may_keep(const ebd_route_t *r)
{
    return r->order == NULL || (r->leased && !r->draining);
}


/* Everything of the partition that is not in flight leaves memory; it
 * stays pending to "ord" for the next holder. */
static void
ebd_order_let_go(ebd_route_t *r)
{
    size_t       b;
    ebd_item_t  *it, *next;

    for (b = 0; b < EBD_HELD_BUCKETS; b++) {
        for (it = r->held[b]; it; it = next) {
            next = it->hnext;
            if (it->state != EBD_ITEM_INFLIGHT) {
                ebd_item_release(it);
            }
        }
    }
}


static void
ebd_order_gain(ebd_route_t *r)
{
    r->leased = 1;
    r->draining = 0;
    r->lease_gen++;
    r->history = 1;
    strcpy(r->cursor, "0");
    r->rescan_ms = ebd_now_ms();

    ebd_log(EBD_LOG_INFO, "route %s: reading it (lease taken)", r->stream);
    ebd_route_read(r);
}


static void
ebd_order_lose(ebd_route_t *r, const char *why)
{
    r->leased = 0;
    r->draining = 0;
    ebd_order_let_go(r);

    ebd_log(EBD_LOG_INFO, "route %s: no longer reading it (%s)", r->stream,
            why);
}


/* ---- the leases ----------------------------------------------------- */

static void ebd_order_free(ebd_order_t *o);


static void
ebd_order_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    unsigned      i, quota, held, want;
    redisReply   *rep = reply, *bits;
    ebd_order_t  *o = privdata;
    ebd_route_t  *r;

    o->asking = 0;

    if (o->orphan) {
        ebd_order_free(o);      /* its configuration is gone */
        return;
    }

    if (rep == NULL || o->dp->state != EBD_RUNNING) {
        return;
    }

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2
        || rep->element[0]->type != REDIS_REPLY_INTEGER
        || rep->element[1]->type != REDIS_REPLY_STRING
        || rep->element[1]->len != o->partitions)
    {
        /* an error reply, logged by the connection: asked again at the
         * next renewal; the leases run out if this goes on */
        return;
    }

    o->renewed_ms = o->sent_ms;
    quota = (unsigned) rep->element[0]->integer;
    bits = rep->element[1];
    held = 0;

    for (i = 0; i < o->partitions; i++) {
        r = o->routes[i];

        if (o->drop[i] == '1') {
            o->drop[i] = '0';
        }

        if (bits->str[i] == '1') {
            held++;
            if (!r->leased) {
                ebd_order_gain(r);
            }

        } else if (r->leased) {
            ebd_order_lose(r, "lease given back or ended");
        }
    }

    o->quota = quota;
    o->held = held;

    /* more than a fair share: the last ones are drained, then given
     * back */
    want = 0;
    for (i = 0; i < o->partitions; i++) {
        r = o->routes[i];
        if (r->leased && !r->draining) {
            want++;
        }
    }

    for (i = o->partitions; i-- > 0 && want > quota; ) {
        r = o->routes[i];
        if (r->leased && !r->draining) {
            r->draining = 1;
            want--;
            ebd_order_let_go(r);
            ebd_log(EBD_LOG_INFO, "route %s: giving it back (%u of %u "
                    "partitions are this process's share)", r->stream,
                    quota, o->partitions);
        }
    }

    ebd_metrics_partitions(o->routes[0]->metrics, (int64_t) held);
    ebd_target_pump(o->target->core);
}


static void
ebd_order_ask(ebd_order_t *o, uint64_t now, int leave)
{
    int           n;
    unsigned      i;
    char          ms[32], nk[16];
    const char  **argv;

    argv = malloc((o->partitions + 8) * sizeof(char *));
    if (argv == NULL) {
        return;
    }

    snprintf(ms, sizeof(ms), "%d", EBD_ORDER_LEASE_MS);

    n = 0;
    argv[n++] = "EVAL";
    argv[n++] = ebd_order_script;
    argv[n++] = NULL;           /* numkeys, below */
    argv[n++] = o->alive_key;
    for (i = 0; i < o->partitions; i++) {
        argv[n++] = o->lease_keys[i];
    }
    argv[n++] = o->dp->opts->consumer;
    argv[n++] = ms;
    argv[n++] = o->drop;
    if (leave) {
        argv[n++] = "leave";
    }

    snprintf(nk, sizeof(nk), "%u", o->partitions + 1);
    argv[2] = nk;

    if (ebd_conn_command(o->routes[0]->cmd, ebd_order_reply, o, n, argv,
                         NULL)
        == 0)
    {
        o->asking = 1;
        o->sent_ms = now;
    }

    free(argv);
}


void
ebd_order_tick(ebd_disp_t *dp, uint64_t now)
{
    size_t        i;
    unsigned      p;
    ebd_order_t  *o;
    ebd_route_t  *r;

    for (i = 0; i < dp->norders; i++) {
        o = dp->orders[i];

        /* leases not renewed in time (Redis out of reach): others may
         * hold them now */
        if (o->renewed_ms
            && now > o->renewed_ms + EBD_ORDER_LEASE_MS - EBD_ORDER_RENEW_MS)
        {
            for (p = 0; p < o->partitions; p++) {
                if (o->routes[p]->leased) {
                    ebd_order_lose(o->routes[p], "lease not renewed in time");
                }
            }
            o->renewed_ms = 0;
            ebd_metrics_partitions(o->routes[0]->metrics, 0);
        }

        for (p = 0; p < o->partitions; p++) {
            r = o->routes[p];

            if (r->draining && r->nheld == 0 && !r->reading
                && o->drop[p] == '0')
            {
                o->drop[p] = '1';
                o->asap = 1;
            }

            if (r->leased && !r->draining && r->nheld == 0 && !r->history
                && now - r->rescan_ms >= EBD_ORDER_RESCAN_MS)
            {
                /* the pending list again, for what a read that raced a
                 * lease's end left in it; on the next read */
                r->rescan_ms = now;
                r->history = 1;
                strcpy(r->cursor, "0");
            }
        }

        if (!o->asking && (o->asap || now >= o->next_ms)) {
            o->asap = 0;
            o->next_ms = now + EBD_ORDER_RENEW_MS;
            ebd_order_ask(o, now, 0);
        }

        ebd_target_pump(o->target->core);
    }
}


ebd_route_t **
ebd_order_routes(ebd_disp_t *dp, const ebd_route_t *r, unsigned *n)
{
    size_t  i;

    for (i = 0; i < dp->norders; i++) {
        if (dp->orders[i]->target == r->target
            && strcmp(dp->orders[i]->bus, r->bus) == 0)
        {
            *n = dp->orders[i]->partitions;
            return dp->orders[i]->routes;
        }
    }

    *n = 0;
    return NULL;
}


unsigned
ebd_order_give_back(ebd_disp_t *dp)
{
    size_t        i;
    unsigned      n;
    ebd_order_t  *o;

    n = 0;

    for (i = 0; i < dp->norders; i++) {
        o = dp->orders[i];
        if (o->routes[0]->cmd == NULL || !o->routes[0]->cmd->ready) {
            continue;
        }

        o->asking = 0;
        ebd_order_ask(o, ebd_now_ms(), 1);
        n += o->asking;
    }

    return n;
}


/* ---- setting up ----------------------------------------------------- */

static char *
ebd_order_key(const char *bus, const char *kind, const char *target,
    unsigned part, int with_part)
{
    size_t  n = strlen(bus) + strlen(target) + 48;
    char   *k = malloc(n);

    if (k) {
        if (with_part) {
            snprintf(k, n, "eb:{%s}:%s:%s:p:%u", bus, kind, target, part);
        } else {
            snprintf(k, n, "eb:{%s}:%s:%s", bus, kind, target);
        }
    }

    return k;
}


static void
ebd_order_free(ebd_order_t *o)
{
    unsigned  i;

    if (o->lease_keys) {
        for (i = 0; i < o->partitions; i++) {
            free(o->lease_keys[i]);
        }
    }
    free(o->lease_keys);
    free(o->alive_key);
    free(o->drop);
    free(o->routes);
    free(o);
}


void
ebd_order_free_all(ebd_disp_t *dp)
{
    size_t  i;

    for (i = 0; i < dp->norders; i++) {
        if (dp->orders[i]->asking) {
            /* the bus's connection outlives a reload: its answer frees
             * it (a connection lost answers NULL) */
            dp->orders[i]->orphan = 1;
            continue;
        }
        ebd_order_free(dp->orders[i]);
    }

    free(dp->orders);
    dp->orders = NULL;
    dp->norders = 0;
}


static int
ebd_order_new(ebd_disp_t *dp, const char *bus, ebd_target_t *t, unsigned n)
{
    unsigned       i;
    ebd_order_t   *o, **os;
    ebd_route_t   *r, **rs;

    os = realloc(dp->orders, (dp->norders + 1) * sizeof(ebd_order_t *));
    rs = os ? realloc(dp->routes, (dp->nroutes + n) * sizeof(ebd_route_t *))
            : NULL;
    if (os) {
        dp->orders = os;
    }
    if (rs == NULL) {
        return -1;
    }
    dp->routes = rs;

    o = calloc(1, sizeof(ebd_order_t));
    if (o == NULL) {
        return -1;
    }

    o->dp = dp;
    o->bus = bus;
    o->target = t;
    o->partitions = n;
    o->routes = calloc(n, sizeof(ebd_route_t *));
    o->lease_keys = calloc(n, sizeof(char *));
    o->alive_key = ebd_order_key(bus, "ord", t->name, 0, 0);
    o->drop = malloc(n + 1);

    if (o->routes == NULL || o->lease_keys == NULL || o->alive_key == NULL
        || o->drop == NULL)
    {
        ebd_order_free(o);
        return -1;
    }

    memset(o->drop, '0', n);
    o->drop[n] = '\0';

    /* "eb:{B}:ord:T" + ":alive" */
    {
        size_t  len = strlen(o->alive_key);
        char   *a = realloc(o->alive_key, len + sizeof(":alive"));

        if (a == NULL) {
            ebd_order_free(o);
            return -1;
        }
        memcpy(a + len, ":alive", sizeof(":alive"));
        o->alive_key = a;
    }

    dp->orders[dp->norders++] = o;

    for (i = 0; i < n; i++) {
        o->lease_keys[i] = ebd_order_key(bus, "ord", t->name, i, 1);
        r = ebd_route_new(dp, bus, t);
        if (o->lease_keys[i] == NULL || r == NULL) {
            return -1;
        }

        free(r->stream);
        free(r->conn_name);
        r->stream = ebd_order_key(bus, "target", t->name, i, 1);
        r->conn_name = ebd_order_key(bus, "target", t->name, i, 1);
        r->consumer = EBD_ORDER_CONSUMER;
        r->order = o;
        r->partition = i;
        dp->routes[dp->nroutes++] = r;
        o->routes[i] = r;

        if (r->stream == NULL || r->conn_name == NULL) {
            return -1;
        }
    }

    return 0;
}


int
ebd_order_setup(ebd_disp_t *dp)
{
    size_t                   i, k, x;
    unsigned                 n;
    const eb_config_bus_t   *bus;
    eb_config_t             *cf = dp->cf;

    for (i = 0; i < cf->nbuses; i++) {
        bus = &cf->buses[i];

        for (k = 0; k < cf->ntargets; k++) {
            n = eb_order_bus_partitions(bus, k);
            if (n == 0) {
                continue;
            }

            for (x = 0; x < dp->norders; x++) {
                if (dp->orders[x]->target == &dp->targets[k].target
                    && strcmp(dp->orders[x]->bus, bus->name) == 0)
                {
                    break;
                }
            }

            if (x == dp->norders
                && ebd_order_new(dp, bus->name, &dp->targets[k].target, n)
                   != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}
