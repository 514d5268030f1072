/*
 * ebd trace: follows events, like the seed's event trace pages.
 *
 *   --bus BUS --event ID   the event's acceptance (its entry in
 *                          eb:{BUS}:events, written by nginx: time,
 *                          source, type, matched rules), then every
 *                          delivery attempt ebd recorded in eb:{BUS}:trace,
 *                          found through the index eb:{BUS}:idx:H
 *                          (ebd_index.c), without a scan
 *   --bus BUS [--since T] [--until T] [--target NAME] [--limit N]
 *                          the attempts in a time range, oldest first
 *
 * One line each: time, what, and its details, with the event's W3C
 * traceparent when it has one. Both streams are bounded, so old events
 * fall out of the trace.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "eb_json_string.h"
#include "eb_trace_context.h"
#include "ebd.h"


static const char *
ebd_f(redisReply *fields, const char *name)
{
    redisReply  *v = ebd_reply_field(fields, name);

    return v != NULL && v->type == REDIS_REPLY_STRING ? v->str : "";
}


static void
ebd_time(const char *id, char *buf, size_t len)
{
    ebd_time_format(strtoull(id, NULL, 10), buf, len);
}


static void
ebd_print_attempt(redisReply *e)
{
    char         t[40];
    double       ms;
    redisReply  *f = e->element[1];

    ebd_time(e->element[0]->str, t, sizeof(t));
    ms = strtod(ebd_f(f, "latency_us"), NULL) / 1000.0;

    printf("%s  %-13s target %s  attempt %s  status %s  %.1f ms  event %s  "
           "rule %s", t, ebd_f(f, "outcome"), ebd_f(f, "target"),
           ebd_f(f, "attempt"), ebd_f(f, "status"), ms, ebd_f(f, "event"),
           ebd_f(f, "rule"));

    if (*ebd_f(f, "traceparent")) {
        printf("  traceparent %s", ebd_f(f, "traceparent"));
    }

    /* an attempt of a replayed delivery (ebd replay) */
    if (*ebd_f(f, "replay")) {
        printf("  replay %s", ebd_f(f, "replay"));
    }

    if (*ebd_f(f, "error")) {
        printf("  error: %s", ebd_f(f, "error"));
    }

    putchar('\n');
}


/* Pages through XRANGE/XREVRANGE key from start to end; calls cb for
 * each entry until it returns non-zero. Returns 0, or -1 on errors. */
static int
ebd_scan(redisContext *c, const char *cmd, const char *key,
    const char *start, const char *end,
    int (*cb)(redisReply *e, void *ctx), void *ctx)
{
    int          stop;
    char         from[EBD_ID_MAX + 1];
    size_t       i;
    redisReply  *r;

    snprintf(from, sizeof(from), "%s", start);
    stop = 0;

    while (!stop) {
        r = redisCommand(c, "%s %s %s %s COUNT 1000", cmd, key, from, end);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "ebd trace: %s %s: %s\n", cmd, key,
                    r ? r->str : c->errstr);
            if (r) {
                freeReplyObject(r);
            }
            return -1;
        }

        for (i = 0; i < r->elements && !stop; i++) {
            stop = cb(r->element[i], ctx);
        }

        if (r->elements < 1000) {
            stop = 1;
        } else {
            snprintf(from, sizeof(from), "(%s",
                     r->element[r->elements - 1]->element[0]->str);
        }

        freeReplyObject(r);
    }

    return 0;
}


typedef struct {
    const char   *event;
    size_t        needle_len;
    char         *needle;
    char          accepted[EBD_ID_MAX];
    int           found;
    long long     n;
    long long     limit;
    const char   *target;
    uint64_t      until;
} ebd_trace_ctx_t;


static int
ebd_find_accepted(redisReply *e, void *arg)
{
    char              t[40];
    const char       *ev, *tp, *ts, *path[] = { "id", NULL };
    yajl_val          tree, v;
    ebd_trace_ctx_t  *x = arg;

    ev = ebd_f(e->element[1], "event");
    if (strstr(ev, x->needle) == NULL) {
        return 0;
    }

    /* read as ebd's transforms read it: an unpaired surrogate escape (an
     * entry the edge did not check) as U+FFFD, same length, in place in
     * the reply */
    (void) eb_json_surrogates_replace((unsigned char *) ev, strlen(ev));

    tree = yajl_tree_parse(ev, NULL, 0);
    v = tree ? yajl_tree_get(tree, path, yajl_t_string) : NULL;

    if (v == NULL || strcmp(v->u.string, x->event) != 0) {
        yajl_tree_free(tree);
        return 0;
    }

    tp = eb_trace_context_of(tree, &ts);

    ebd_time(e->element[0]->str, t, sizeof(t));
    printf("%s  %-13s source %s  type %s  rules %s  entry %s%s%s\n", t,
           "accepted",
           YAJL_GET_STRING(yajl_tree_get(tree, (const char *[]) { "source",
                                         NULL }, yajl_t_string)) ?: "",
           YAJL_GET_STRING(yajl_tree_get(tree, (const char *[]) { "type",
                                         NULL }, yajl_t_string)) ?: "",
           *ebd_f(e->element[1], "rules") ? ebd_f(e->element[1], "rules")
                                          : "(none matched)",
           e->element[0]->str, tp ? "  traceparent " : "", tp ? tp : "");

    yajl_tree_free(tree);
    snprintf(x->accepted, sizeof(x->accepted), "%s", e->element[0]->str);
    x->found = 1;
    return 1;
}


/* The tokens of an event's index values, "e:ID" and "t:ID", each once. */
typedef struct {
    char        (*ids)[EBD_ID_MAX];
    size_t        n;
    size_t        cap;
} ebd_ids_t;


static int
ebd_ids_add(ebd_ids_t *a, const char *id, size_t len)
{
    size_t   i, cap;
    char   (*p)[EBD_ID_MAX];

    if (len == 0 || len >= EBD_ID_MAX) {
        return 0;
    }

    for (i = 0; i < a->n; i++) {
        if (strncmp(a->ids[i], id, len) == 0 && a->ids[i][len] == '\0') {
            return 0;
        }
    }

    if (a->n == a->cap) {
        cap = a->cap ? a->cap * 2 : 16;
        p = realloc(a->ids, cap * EBD_ID_MAX);
        if (p == NULL) {
            return -1;
        }
        a->ids = p;
        a->cap = cap;
    }

    memcpy(a->ids[a->n], id, len);
    a->ids[a->n++][len] = '\0';
    return 0;
}


/* stream entry ids in time order */
static int
ebd_id_cmp(const void *a, const void *b)
{
    char                *end;
    unsigned long long   ma, mb, sa, sb;

    ma = strtoull(a, &end, 10);
    sa = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
    mb = strtoull(b, &end, 10);
    sb = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;

    return ma != mb ? (ma < mb ? -1 : 1) : (sa != sb ? (sa < sb ? -1 : 1) : 0);
}


/* The buckets to look in: from the hour now back over the index's
 * lifetime, a week and an hour, or back to the oldest event the bus
 * keeps when its retention is longer (at most 400 days). */
static uint64_t
ebd_index_hours(redisContext *c, const char *events, uint64_t now)
{
    uint64_t     n, oldest;
    redisReply  *r;

    n = (EBD_INDEX_DEFAULT_S + 3600) / 3600 + 1;

    r = redisCommand(c, "XRANGE %s - + COUNT 1", events);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        oldest = strtoull(r->element[0]->element[0]->str, NULL, 10);
        if (oldest < now && (now - oldest) / 3600000 + 2 > n) {
            n = (now - oldest) / 3600000 + 2;
        }
    }
    if (r) {
        freeReplyObject(r);
    }

    return n < 400 * 24 ? n : 400 * 24;
}


/* HGET of the id in every bucket, pipelined; the tokens, merged. */
static int
ebd_index_lookup(redisContext *c, const char *bus, const char *event,
    uint64_t now, ebd_ids_t *e, ebd_ids_t *t, char *cursor, int *capped)
{
    int          rc;
    char         key[600], *p, *q;
    size_t       nt;
    uint64_t     h, i, n;
    redisReply  *r;

    snprintf(key, sizeof(key), "eb:{%s}:events", bus);
    n = ebd_index_hours(c, key, now);
    h = now / 3600000;

    for (i = 0; i < n && i <= h; i++) {
        redisAppendCommand(c, "HGET eb:{%s}:idx:%llu %s", bus,
                           (unsigned long long) (h - i), event);
    }
    redisAppendCommand(c, "GET eb:{%s}:idx:cursor", bus);

    rc = 0;

    for (i = 0; i < n && i <= h; i++) {
        if (redisGetReply(c, (void **) &r) != REDIS_OK) {
            fprintf(stderr, "ebd trace: HGET: %s\n", c->errstr);
            return -1;
        }

        if (r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "ebd trace: HGET: %s\n", r->str);
            rc = -1;

        } else if (r->type == REDIS_REPLY_STRING) {
            nt = 0;
            for (p = r->str; *p; p = q + strspn(q, " ")) {
                q = p + strcspn(p, " ");
                if (q - p > 2 && p[1] == ':' && (p[0] == 'e' || p[0] == 't')) {
                    nt += p[0] == 't';
                    if (ebd_ids_add(p[0] == 'e' ? e : t, p + 2, q - p - 2)
                        != 0)
                    {
                        rc = -1;
                    }
                }
            }
            *capped |= nt >= EBD_INDEX_ATTEMPTS;
        }

        freeReplyObject(r);
    }

    if (redisGetReply(c, (void **) &r) != REDIS_OK) {
        fprintf(stderr, "ebd trace: GET: %s\n", c->errstr);
        return -1;
    }

    if (r->type == REDIS_REPLY_STRING && r->len < EBD_ID_MAX) {
        memcpy(cursor, r->str, r->len + 1);
    }
    freeReplyObject(r);

    return rc;
}


static int
ebd_trace_event(redisContext *c, ebd_opts_t *o, const char *events,
    const char *trace, ebd_trace_ctx_t *x)
{
    int           rc, capped;
    char          cursor[EBD_ID_MAX], from[EBD_ID_MAX + 1];
    size_t        i;
    ebd_ids_t     e, t;
    redisReply   *r;

    memset(&e, 0, sizeof(e));
    memset(&t, 0, sizeof(t));
    cursor[0] = '\0';
    capped = 0;

    rc = ebd_index_lookup(c, o->bus, o->event, ebd_now_ms(), &e, &t, cursor,
                          &capped);
    if (rc != 0) {
        goto done;
    }

    /* the acceptance: the newest entry that is this event (an id a
     * PutEvents sender used twice has two) */
    if (e.n > 1) {
        qsort(e.ids, e.n, EBD_ID_MAX, ebd_id_cmp);
    }

    for (i = e.n; i-- > 0 && !x->found; ) {
        rc = ebd_scan(c, "XRANGE", events, e.ids[i], e.ids[i],
                      ebd_find_accepted, x);
        if (rc != 0) {
            goto done;
        }
    }

    /* not indexed yet: the few entries past the indexer's cursor */
    if (!x->found) {
        snprintf(from, sizeof(from), "(%s", cursor);
        r = redisCommand(c, "XREVRANGE %s + %s COUNT %d", events,
                         cursor[0] ? from : "-", EBD_INDEX_TAIL);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "ebd trace: XREVRANGE %s: %s\n", events,
                    r ? r->str : c->errstr);
            rc = -1;
        } else {
            for (i = 0; i < r->elements && !x->found; i++) {
                (void) ebd_find_accepted(r->element[i], x);
            }
        }
        if (r) {
            freeReplyObject(r);
        }
        if (rc != 0) {
            goto done;
        }
    }

    /* the attempts, in the order they ended */
    if (t.n > 1) {
        qsort(t.ids, t.n, EBD_ID_MAX, ebd_id_cmp);
    }

    for (i = 0; i < t.n; i++) {
        redisAppendCommand(c, "XRANGE %s %s %s", trace, t.ids[i], t.ids[i]);
    }

    for (i = 0; i < t.n; i++) {
        if (redisGetReply(c, (void **) &r) != REDIS_OK) {
            fprintf(stderr, "ebd trace: XRANGE %s: %s\n", trace, c->errstr);
            rc = -1;
            goto done;
        }

        /* none: trimmed from the trace (--trace-maxlen) */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            ebd_print_attempt(r->element[0]);
            x->n++;
        }

        freeReplyObject(r);
    }

    if (capped) {
        printf("(the index keeps %d attempts of an event; later ones: "
               "ebd trace --bus %s --since TIME)\n", EBD_INDEX_ATTEMPTS,
               o->bus);
    }

done:

    free(e.ids);
    free(t.ids);
    return rc;
}


static int
ebd_print_range(redisReply *e, void *arg)
{
    ebd_trace_ctx_t  *x = arg;

    if (x->target && strcmp(ebd_f(e->element[1], "target"), x->target) != 0) {
        return 0;
    }

    ebd_print_attempt(e);
    x->n++;
    return x->limit && x->n >= x->limit;
}


int
ebd_trace_main(ebd_opts_t *o, int argc, char **argv)
{
    int               rc;
    char              err[512], events[600], trace[600];
    char              since[32], until[32];
    uint64_t          now, s, u;
    redisContext     *c;
    ebd_trace_ctx_t   x;

    if (argc != 0 || o->bus == NULL || strlen(o->bus) > 256) {
        fprintf(stderr, "usage: ebd trace [options] --bus BUS --event ID\n"
                "       ebd trace [options] --bus BUS [--since TIME] "
                "[--until TIME] [--target NAME] [--limit N]\n");
        return 2;
    }

    snprintf(events, sizeof(events), "eb:{%s}:events", o->bus);
    snprintf(trace, sizeof(trace), "eb:{%s}:trace", o->bus);
    memset(&x, 0, sizeof(x));

    now = ebd_now_ms();
    s = 0;
    u = now + 86400000;

    if ((o->since && ebd_parse_time(o->since, now, &s) != 0)
        || (o->until && ebd_parse_time(o->until, now, &u) != 0))
    {
        fprintf(stderr, "ebd trace: invalid time \"%s\" (ms since the epoch, "
                "2026-11-23T10:00:00Z, -10m, now)\n",
                o->since && ebd_parse_time(o->since, now, &s) != 0
                ? o->since : o->until);
        return 2;
    }

    c = ebd_redis_connect_sync(o, o->bus, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "ebd trace: %s\n", err);
        return 1;
    }

    if (o->event) {
        x.event = o->event;
        x.needle_len = strlen(o->event) + 8;
        x.needle = malloc(x.needle_len + 1);
        if (x.needle == NULL) {
            redisFree(c);
            return 1;
        }
        /* a cheap filter before parsing: the id's text, in quotes */
        snprintf(x.needle, x.needle_len + 1, "\"%s\"", o->event);

        rc = ebd_trace_event(c, o, events, trace, &x);

        free(x.needle);
        redisFree(c);

        if (rc != 0) {
            return 1;
        }

        if (!x.found && x.n == 0) {
            fprintf(stderr, "ebd trace: event %s: not in %s nor in %s\n",
                    o->event, events, trace);
            return 1;
        }

        if (!x.found) {
            printf("(acceptance no longer in %s)\n", events);
        }

        if (x.n == 0) {
            printf("(no delivery attempt recorded yet)\n");
        }

        return 0;
    }

    snprintf(since, sizeof(since), "%llu", (unsigned long long) s);
    snprintf(until, sizeof(until), "%llu", (unsigned long long) u);
    x.limit = o->limit;
    x.target = o->target;

    rc = ebd_scan(c, "XRANGE", trace, since, until, ebd_print_range, &x);
    redisFree(c);

    if (rc != 0) {
        return 1;
    }

    fprintf(stderr, "%lld attempt%s\n", x.n, x.n == 1 ? "" : "s");
    return 0;
}
