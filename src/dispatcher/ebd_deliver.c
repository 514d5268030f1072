/*
 * Deliveries: an item is one stream entry of a route. It is queued on
 * its target, goes out when the target has room (t->concurrency), and
 * ends in exactly one of:
 *
 *   delivered     XACK (the target confirmed)
 *   dead-lettered MULTI; XADD eb:{BUS}:dlq:TARGET ...; XACK; EXEC
 *   discarded     XACK (given up, the target keeps no dead letters)
 *   dropped       nothing: the entry stays pending in the group (ebd is
 *                 stopping or reloading, or Redis failed); it is read
 *                 again from our own pending entries, or claimed by
 *                 another consumer once idle (at least once)
 *
 * Between attempts it waits for its retry timer. Every attempt is
 * recorded in the bus's trace stream.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eb_json.h"
#include "eb_trace_context.h"
#include "eb_transform.h"
#include "ebd_core.h"
#include "ebd_log.h"


ebd_result_t *
ebd_result_set(ebd_result_t *r, ebd_outcome_t outcome, int status,
    const char *fmt, ...)
{
    va_list  ap;

    r->outcome = outcome;
    r->status = status;
    r->retry_after_ms = -1;
    r->error[0] = '\0';

    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof(r->error), fmt, ap);
        va_end(ap);
    }

    return r;
}


static const eb_config_rule_target_t *
ebd_rule_target(ebd_route_t *r, const char *rule)
{
    size_t                     i, j;
    const eb_config_bus_t     *bus;
    const eb_config_rule_t    *ru;
    const ebd_tcore_t         *tc = r->target->core;
    size_t                     tidx = (size_t) (tc - r->dp->targets);

    bus = eb_config_bus(r->dp->cf, r->bus, strlen(r->bus));
    if (bus == NULL) {
        return NULL;
    }

    for (i = 0; i < bus->nrules; i++) {
        ru = &bus->rules[i];
        if (strcmp(ru->name, rule) != 0) {
            continue;
        }
        for (j = 0; j < ru->ntargets; j++) {
            if (ru->targets[j].target == tidx) {
                return &ru->targets[j];
            }
        }
        return NULL;
    }

    return NULL;
}


static char *
ebd_strndup(const char *s, size_t n)
{
    char  *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }

    return p;
}


/* The entry's time: the first part of its id, in ms */
static uint64_t
ebd_entry_ms(const char *id)
{
    return strtoull(id, NULL, 10);
}


/* The event's trace context, from its members or its tree: found once,
 * sent with every attempt and written to every trace entry. */
static void
ebd_item_trace_context(ebd_item_t *it)
{
    const eb_event_member_t  *tp, *ts;

    if (it->d.scan == NULL) {
        it->d.traceparent = eb_trace_context_of(it->tree,
                                                &it->d.tracestate);
        return;
    }

    tp = eb_event_scan_get(it->d.scan, "traceparent");
    if (tp == NULL || tp->kind != EB_EV_STRING
        || !eb_traceparent_valid((const unsigned char *) tp->text,
                                 tp->text_len))
    {
        return;
    }

    it->d.traceparent = tp->text;

    ts = eb_event_scan_get(it->d.scan, "tracestate");
    if (ts != NULL && ts->kind == EB_EV_STRING
        && ts->text_len == strlen(ts->text))
    {
        it->d.tracestate = ts->text;
    }
}


ebd_item_t *
ebd_item_new(ebd_route_t *r, const char *id, size_t idlen, redisReply *fields)
{
    size_t                          i;
    char                            err[256];
    unsigned                        wants_tree, scanned;
    size_t                          evidlen, npaths;
    const eb_jsonpath_t *const     *paths;
    const char                     *evid;
    yajl_val                        v;
    ebd_item_t                     *it;
    const eb_event_member_t        *m;
    redisReply                     *f, *val;
    eb_transform_rc_t               rc;
    const eb_config_rule_target_t  *rt;

    it = calloc(1, sizeof(ebd_item_t));
    if (it == NULL || idlen >= EBD_ID_MAX) {
        free(it);
        return NULL;
    }

    memcpy(it->id, id, idlen);
    it->route = r;
    it->entered_ms = ebd_entry_ms(it->id);
    eb_buf_init(&it->payload);

    for (i = 0; i + 1 < fields->elements; i += 2) {
        f = fields->element[i];
        val = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) {
            continue;
        }
        if (f->len == 5 && memcmp(f->str, "event", 5) == 0 && !it->event) {
            it->event = (unsigned char *) ebd_strndup(val->str, val->len);
            it->event_len = val->len;
        } else if (f->len == 4 && memcmp(f->str, "rule", 4) == 0 && !it->rule)
        {
            it->rule = ebd_strndup(val->str, val->len);

        } else if (f->len == 3 && memcmp(f->str, "key", 3) == 0 && !it->okey)
        {
            /* its ordering key, in a partition (ebd_order.c) */
            it->okey = ebd_strndup(val->str, val->len);
            it->okey_len = val->len;

        } else if (f->len == 6 && memcmp(f->str, "replay", 6) == 0
                   && !it->replay && val->len)
        {
            /* enqueued by ebd replay (ebd_replay.c) */
            it->replay = ebd_strndup(val->str, val->len);
            if (it->replay == NULL) {
                ebd_item_free(it);
                return NULL;
            }
        }
    }

    if (it->rule == NULL) {
        it->rule = ebd_strndup("", 0);
    }

    if (it->event == NULL) {
        it->event = (unsigned char *) ebd_strndup("", 0);
    }

    if (it->rule == NULL || it->event == NULL) {
        ebd_item_free(it);
        return NULL;
    }

    it->d.target = r->target;
    it->d.bus = r->bus;
    it->d.rule = it->rule;
    it->d.entry_id = it->id;
    it->d.event = it->event;
    it->d.event_len = it->event_len;
    it->d.replay = it->replay;

    /* what cannot be delivered is decided now: the first attempt then
     * fails at once and the entry is dead-lettered with the reason. The
     * http drivers read its members, found in one pass without an
     * allocation per node; in the same pass the values of SQL columns
     * and TEMPLATE variables of names and indexes. A tree only for
     * other paths (a JSONPATH transform, "[*]", an object's JSON). */
    rt = ebd_rule_target(r, it->rule);
    evid = "";
    evidlen = 0;

    wants_tree = r->target->driver->wants_tree || r->target->wants_tree;
    paths = r->target->scan_paths;
    npaths = r->target->nscan_paths;
    scanned = 0;

    if (!wants_tree && npaths == 0 && rt != NULL && rt->transform != NULL) {
        /* a TEMPLATE of names and indexes: its values in the scan too */
        npaths = eb_transform_scan_paths(rt->transform, &paths);
        scanned = npaths != 0;
    }

    if (!wants_tree) {
        if (eb_event_scan_paths(it->event, it->event_len, &it->scan,
                                paths, npaths, err, sizeof(err)) != 0)
        {
            it->undeliverable = 1;
            ebd_result_set(&it->last, EBD_REJECTED, 0,
                           "stored event: %s", err);
            goto done;
        }

        m = eb_event_scan_get(&it->scan, "id");
        if (m != NULL && m->kind == EB_EV_STRING) {
            evid = m->text;
            evidlen = strlen(m->text);
        }
        it->d.scan = &it->scan;
    }

    if ((rt != NULL && rt->transform != NULL && !scanned) || wants_tree) {
        it->tree = eb_transform_parse_event(it->event, it->event_len, err,
                                            sizeof(err));
        if (it->tree == NULL) {
            it->undeliverable = 1;
            ebd_result_set(&it->last, EBD_REJECTED, 0,
                           "stored event: %s", err);
            goto done;
        }

        if (it->d.scan == NULL) {
            v = yajl_tree_get(it->tree, (const char *[]) { "id", NULL },
                              yajl_t_string);
            evid = v ? v->u.string : "";
            evidlen = strlen(evid);
        }
    }

    ebd_item_trace_context(it);

    it->event_id = ebd_strndup(evid, evidlen);
    if (it->event_id == NULL) {
        ebd_item_free(it);
        return NULL;
    }

    if (rt == NULL) {
        /* nginx may have been reloaded with a rule ebd has not read yet:
         * retried by the target's policy; a reload (SIGHUP) reads the
         * entry again against the new configuration */
        it->no_rule = 1;
        ebd_result_set(&it->last, EBD_RETRY, 0,
                       "rule \"%.64s\" of bus \"%s\" does not send to "
                       "target \"%s\" in ebd's configuration", it->rule,
                       r->bus, r->target->name);
        goto done;
    }

    if (rt->transform == NULL) {
        it->d.payload = it->event;
        it->d.payload_len = it->event_len;
        it->d.payload_is_json = 1;
        goto done;
    }

    rc = scanned ? eb_transform_apply_found(rt->transform, &it->scan, 0,
                                            &it->payload, err, sizeof(err))
                 : EB_TRANSFORM_TREE;

    if (rc == EB_TRANSFORM_TREE) {
        if (it->tree == NULL) {
            /* a value is an object or array: written from a tree */
            it->tree = eb_transform_parse_event(it->event, it->event_len,
                                                err, sizeof(err));
        }

        rc = it->tree == NULL
             ? EB_TRANSFORM_ERROR
             : eb_transform_apply_tree(rt->transform, it->tree, it->event,
                                       it->event_len, &it->payload, err,
                                       sizeof(err));
    }
    if (rc == EB_TRANSFORM_ERROR || it->payload.failed) {
        it->undeliverable = 1;
        ebd_result_set(&it->last, EBD_REJECTED, 0, "transform failed: %s",
                       err);
        goto done;
    }

    it->d.payload = it->payload.data ? it->payload.data
                                     : (const unsigned char *) "";
    it->d.payload_len = it->payload.len;

    switch (eb_transform_form(rt->transform)) {
    case EB_TRANSFORM_ORIGINAL:
        it->d.payload_is_json = 1;
        break;
    case EB_TRANSFORM_TEMPLATE:
        it->d.payload_is_json = eb_transform_is_json(rt->transform);
        break;
    default:
        it->d.payload_is_json = it->payload.len
            && eb_json_validate(it->d.payload, it->d.payload_len, 1000, NULL,
                                err, sizeof(err)) == EB_JSON_OK;
    }

done:

    if (it->event_id == NULL) {
        it->event_id = ebd_strndup("", 0);
    }
    it->d.event_id = it->event_id ? it->event_id : "";
    it->d.tree = it->tree;

    /* the copy, its scan or parsed tree (yajl's nodes take several
     * times the text), the payload: an estimate for "memory_mb" */
    it->bytes = sizeof(ebd_item_t) + 1024 + 2 * it->event_len
                + (it->tree ? 4 * it->event_len : 0) + it->payload.cap
                + it->okey_len;
    return it;
}


void
ebd_item_free(ebd_item_t *it)
{
    if (it->chain) {
        ebd_order_unlink(it);
    }
    if (it->timer) {
        event_free(it->timer);
    }
    if (it->tree) {
        yajl_tree_free(it->tree);
    }
    eb_event_scan_free(&it->scan);
    eb_buf_free(&it->payload);
    free(it->rule);
    free(it->okey);
    free(it->replay);
    free(it->event_id);
    free(it->event);
    free(it);
}


void
ebd_item_enqueue(ebd_item_t *it, int front)
{
    ebd_tcore_t  *tc = it->route->target->core;

    it->state = EBD_ITEM_QUEUED;
    it->prev = it->next = NULL;

    if (tc->head == NULL) {
        tc->head = tc->tail = it;

    } else if (front) {
        it->next = tc->head;
        tc->head->prev = it;
        tc->head = it;

    } else {
        it->prev = tc->tail;
        tc->tail->next = it;
        tc->tail = it;
    }

    tc->queued++;
}


static void
ebd_item_dequeue(ebd_item_t *it)
{
    ebd_tcore_t  *tc = it->route->target->core;

    if (it->prev) {
        it->prev->next = it->next;
    } else {
        tc->head = it->next;
    }

    if (it->next) {
        it->next->prev = it->prev;
    } else {
        tc->tail = it->prev;
    }

    it->prev = it->next = NULL;
    tc->queued--;
}


/* Forgets an item whatever its state but in flight: its entry stays
 * pending in the group. */
void
ebd_item_release(ebd_item_t *it)
{
    ebd_tcore_t  *tc = it->route->target->core;

    if (it->state == EBD_ITEM_QUEUED) {
        ebd_item_dequeue(it);

    } else if (it->state == EBD_ITEM_WAITING) {
        tc->waiting--;
        ebd_metrics_waiting(it->route->metrics, -1);

    } else if (it->state == EBD_ITEM_PARKED) {
        tc->parked--;
    }

    ebd_held_remove(it->route, it);
    ebd_item_free(it);
}


/* How many more entries the target wants read: enough to keep a queue
 * of its concurrency ready while as many are in flight. A target that
 * keeps order (NONE) counts those waiting to be retried too; others
 * stop reading when too many wait (a dead target). */
unsigned
ebd_target_room(const ebd_tcore_t *tc)
{
    unsigned  have, cap;

    if (tc->paused_routes) {
        return 0;
    }

    cap = tc->target.concurrency * 2;
    have = tc->inflight + tc->queued;

    if (tc->fault_none) {
        have += tc->waiting;
    } else if (tc->waiting >= 10000) {
        return 0;
    }

    /* entries held in memory, in bytes ("memory_mb"): read (or claim)
     * more only below it. Above it something is held, which moves on by
     * itself (in flight, queued, a retry timer), so nothing is stuck;
     * entries waiting for their retries count too, or a claim could add
     * a whole batch to them while nothing is in flight */
    if (tc->held_bytes >= tc->memory_max) {
        return 0;
    }

    return have >= cap ? 0 : cap - have;
}


/* ---------------------------------------------------------------- */

static void
ebd_cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *r = reply;
    const char  *what = privdata;

    /* no reply (the connection was lost) or an error reply, which the
     * connection logs once: the entry stays pending, and is claimed and
     * delivered again (at least once) */
    if (r && r->type == REDIS_REPLY_ARRAY && ac->data) {
        size_t       i;
        char         state[64];
        ebd_conn_t  *c = ac->data;

        for (i = 0; i < r->elements; i++) {
            if (r->element[i]->type == REDIS_REPLY_ERROR) {
                snprintf(state, sizeof(state), "%s %.*s", what,
                         (int) strcspn(r->element[i]->str, " "),
                         r->element[i]->str);
                ebd_conn_state(c, EBD_LOG_ERROR, state, "redis %s: %s: %s",
                               c->name, what, r->element[i]->str);
            }
        }
    }
}


/* Acknowledgements wait for the end of the loop iteration and leave as
 * one XACK per route with all the ids the iteration delivered: one
 * command instead of one per event. */
void
ebd_ack(ebd_route_t *r, const char *id)
{
    size_t       cap, len;
    ebd_disp_t  *dp = r->dp;
    char       (*a)[EBD_ID_MAX];

    if (r->nacks == r->acks_cap) {
        cap = r->acks_cap ? r->acks_cap * 2 : 64;
        a = realloc(r->acks, cap * EBD_ID_MAX);
        if (a == NULL) {
            ebd_log(EBD_LOG_ERROR, "route %s: out of memory; %s stays "
                    "pending and is delivered again", r->stream, id);
            return;
        }
        r->acks = a;
        r->acks_cap = cap;
    }

    /* ids come from Redis' replies: shorter than EBD_ID_MAX */
    len = strnlen(id, EBD_ID_MAX - 1);
    memcpy(r->acks[r->nacks], id, len);
    r->acks[r->nacks++][len] = '\0';

    if (!dp->flush_armed) {
        dp->flush_armed = 1;
        event_active(dp->flush, EV_TIMEOUT, 0);
    }
}


void
ebd_flush_acks(ebd_disp_t *dp)
{
    int           argc;
    size_t        i, j, k;
    ebd_route_t  *r;
    const char   *argv[3 + 512];

    dp->flush_armed = 0;

    for (i = 0; i < dp->nroutes; i++) {
        r = dp->routes[i];

        if (r->tr_n) {
            ebd_index_flush(r);
        }

        for (j = 0; j < r->nacks; j = k) {
            argv[0] = "XACK";
            argv[1] = r->stream;
            argv[2] = EBD_GROUP;
            k = j;
            for (argc = 3; argc < 3 + 512 && k < r->nacks; k++) {
                argv[argc++] = r->acks[k];
            }
            if (ebd_conn_command(r->cmd, ebd_cmd_reply, "XACK", argc, argv,
                                 NULL) != 0)
            {
                /* Redis is away: kept for the next tick; lost only if
                 * ebd stops first, and then delivered again */
                break;
            }
        }

        if (j < r->nacks) {
            memmove(r->acks, r->acks + j, (r->nacks - j) * EBD_ID_MAX);
        }
        r->nacks -= j;
        r->untrimmed += j;
    }
}


/* Every attempt's record in eb:{BUS}:trace, with its token in the
 * console's index and its counter (ebd_index.c), in one command. */
static void
ebd_trace(ebd_item_t *it, const char *outcome, const char *stat,
    uint64_t latency_us)
{
    int            n;
    char           attempt[24], status[24], latency[24];
    const char    *f[22];
    ebd_route_t   *r = it->route;

    (void) ebd_u64_text(attempt, it->d.attempt);
    if (it->last.status >= 0) {
        (void) ebd_u64_text(status, (uint64_t) it->last.status);
    } else {
        snprintf(status, sizeof(status), "%d", it->last.status);
    }
    (void) ebd_u64_text(latency, latency_us);

    n = 0;
    f[n++] = "event";
    f[n++] = it->d.event_id;
    f[n++] = "target";
    f[n++] = r->target->name;
    f[n++] = "rule";
    f[n++] = it->rule;
    f[n++] = "entry";
    f[n++] = it->id;
    f[n++] = "attempt";
    f[n++] = attempt;
    f[n++] = "outcome";
    f[n++] = outcome;
    f[n++] = "status";
    f[n++] = status;
    f[n++] = "latency_us";
    f[n++] = latency;
    f[n++] = "error";
    f[n++] = it->last.error;

    /* the event's W3C trace, for `ebd trace` */
    if (it->d.traceparent != NULL) {
        f[n++] = "traceparent";
        f[n++] = it->d.traceparent;
    }

    /* a replayed delivery, counted as such by `ebd trace` */
    if (it->replay != NULL) {
        f[n++] = "replay";
        f[n++] = it->replay;
    }

    ebd_index_attempt(r, it->d.event_id, it->entered_ms, stat, n, f);
}


static void
ebd_dead_letter(ebd_item_t *it)
{
    int             ok, n;
    char            attempts[16], status[16], failed[32];
    const char     *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
    const char     *ack[] = { "XACK", NULL, EBD_GROUP, NULL };
    const char     *argv[22];
    size_t          argvlen[22];
    ebd_route_t    *r = it->route;
    ebd_tcore_t    *tc = r->target->core;
    ebd_disp_t     *dp = r->dp;

    if (!tc->dead_letter) {
        ebd_log(EBD_LOG_WARN, "target %s: gave up on event %s (entry %s of "
                "%s) after %u attempt(s), discarded (dead_letter false): %s",
                r->target->name, it->d.event_id, it->id, r->stream,
                it->d.attempt, it->last.error);
        dp->discarded++;
        ebd_metrics_outcome(r->metrics, EBD_M_DISCARDED);
        ebd_ack(r, it->id);
        return;
    }

    snprintf(attempts, sizeof(attempts), "%u", it->d.attempt);
    snprintf(status, sizeof(status), "%d", it->last.status);
    snprintf(failed, sizeof(failed), "%llu",
             (unsigned long long) ebd_now_ms());

    argv[0] = "XADD";
    argv[1] = r->dlq;
    argv[2] = "*";
    argv[3] = "event";
    argv[4] = (const char *) it->event;
    argv[5] = "rule";
    argv[6] = it->rule;
    argv[7] = "target";
    argv[8] = r->target->name;
    argv[9] = "entry";
    argv[10] = it->id;
    argv[11] = "attempts";
    argv[12] = attempts;
    argv[13] = "status";
    argv[14] = status;
    argv[15] = "error";
    argv[16] = it->last.error;
    argv[17] = "failed_ms";
    argv[18] = failed;

    n = 19;

    /* a replayed delivery's letter says which replay it came from */
    if (it->replay != NULL) {
        argv[n++] = "replay";
        argv[n++] = it->replay;
    }

    for (int i = 0; i < n; i++) {
        argvlen[i] = i == 4 ? it->event_len : strlen(argv[i]);
    }

    ack[1] = r->stream;
    ack[3] = it->id;

    /* the dead letter and the acknowledgement, both or neither */
    ok = ebd_conn_command(r->cmd, NULL, NULL, 1, multi, NULL) == 0
         && ebd_conn_command(r->cmd, NULL, NULL, n, argv, argvlen) == 0
         && ebd_conn_command(r->cmd, NULL, NULL, 4, ack, NULL) == 0
         && ebd_conn_command(r->cmd, ebd_cmd_reply, "dead letter", 1, exec,
                             NULL) == 0;

    if (!ok) {
        ebd_log(EBD_LOG_WARN, "target %s: cannot dead-letter entry %s now "
                "(Redis down); it is delivered again later", r->target->name,
                it->id);
        ebd_metrics_outcome(r->metrics, EBD_M_DROPPED);
        return;
    }

    dp->dead_lettered++;
    ebd_metrics_outcome(r->metrics, EBD_M_DEAD_LETTERED);
    ebd_log(EBD_LOG_WARN, "target %s: event %s (entry %s of %s) "
            "dead-lettered to %s after %u attempt(s): %s", r->target->name,
            it->d.event_id, it->id, r->stream, r->dlq, it->d.attempt,
            it->last.error);
}


static void
ebd_retry_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_item_t   *it = arg;
    ebd_tcore_t  *tc = it->route->target->core;

    it->restoring = 0;
    tc->waiting--;
    ebd_metrics_waiting(it->route->metrics, -1);
    ebd_item_enqueue(it, 1);
    ebd_target_pump(tc);
}


void
ebd_retry_now_or_at(ebd_item_t *it, uint64_t delay_ms)
{
    struct timeval  tv;

    evtimer_del(it->timer);

    if (delay_ms == 0) {
        ebd_retry_handler(-1, 0, it);
        return;
    }

    it->due_ms = ebd_now_ms() + delay_ms;
    tv.tv_sec = delay_ms / 1000;
    tv.tv_usec = (delay_ms % 1000) * 1000;
    evtimer_add(it->timer, &tv);
}


int
ebd_schedule_retry(ebd_item_t *it, uint64_t delay_ms)
{
    struct timeval   tv;
    ebd_tcore_t     *tc = it->route->target->core;

    if (it->timer == NULL) {
        it->timer = evtimer_new(tc->dp->base, ebd_retry_handler, it);
    }

    if (it->timer == NULL) {
        /* no memory: the entry stays pending and is claimed again */
        ebd_held_remove(it->route, it);
        ebd_item_free(it);
        return -1;
    }

    it->state = EBD_ITEM_WAITING;
    it->due_ms = ebd_now_ms() + delay_ms;
    tc->waiting++;
    ebd_metrics_waiting(it->route->metrics, 1);
    tv.tv_sec = delay_ms / 1000;
    tv.tv_usec = (delay_ms % 1000) * 1000;
    evtimer_add(it->timer, &tv);

    return 0;
}


static double
ebd_random(ebd_disp_t *dp)
{
    return (double) (eb_rand_next(&dp->rand) >> 11) / 9007199254740992.0;
}


void
ebd_delivery_done(ebd_delivery_t *d, const ebd_result_t *res)
{
    uint64_t       latency, delay, now, age;
    unsigned       retries;
    ebd_item_t    *it = (ebd_item_t *) d;
    ebd_route_t   *r = it->route;
    ebd_tcore_t   *tc = r->target->core;
    ebd_disp_t    *dp = r->dp;

    latency = ebd_mono_us() - it->start_us;
    it->last = *res;
    tc->inflight--;
    ebd_breaker_result(tc, it, res->outcome, it->last.error,
                       sizeof(it->last.error));
    ebd_metrics_attempt(r->metrics, latency,
                        !it->undeliverable && !it->no_rule);

    if (res->status == 410 && res->outcome != EBD_DELIVERED
        && !it->undeliverable && !it->no_rule
        && r->target->conf->type != EB_TARGET_MYSQL
        && r->target->conf->type != EB_TARGET_POSTGRESQL)
    {
        /* Gone: the target is paused for every ebd; the entry waits at
         * the head of the queue, and the pause costs it no attempt */
        snprintf(it->last.error, sizeof(it->last.error), "HTTP 410 Gone: "
                 "target paused until \"ebd resume %s\"", r->target->name);
        ebd_trace(it, "retry", "retried", latency);
        dp->retried++;
        ebd_metrics_outcome(r->metrics, EBD_M_RETRIED);
        d->attempt--;
        ebd_pause_gone(it);

        if (dp->state != EBD_RUNNING || !ebd_order_may_keep(r)) {
            goto release;
        }

        ebd_item_enqueue(it, 1);
        goto next;
    }

    if (res->outcome == EBD_DELIVERED) {
        it->last.error[0] = '\0';
        ebd_trace(it, "delivered", "delivered", latency);
        ebd_ack(r, it->id);
        ebd_retry_state_clear(it);
        dp->delivered++;
        ebd_metrics_delivered(r->metrics, it->entered_ms);
        ebd_log_debug("target %s: event %s delivered (attempt %u, %llu us)",
                      r->target->name, d->event_id, d->attempt,
                      (unsigned long long) latency);
        goto release;
    }

    retries = d->attempt;     /* retries done so far + 1 = the next one */
    delay = ebd_retry_delay(&tc->retry, retries, ebd_random(dp));

    if (res->retry_after_ms >= 0) {
        /* the target knows best when it can take more, within a day */
        uint64_t  ra = (uint64_t) res->retry_after_ms;
        delay = ra > 86400000 ? 86400000 : (ra > delay ? ra : delay);
    }

    now = ebd_now_ms();
    age = now + delay > it->entered_ms ? now + delay - it->entered_ms : 0;

    if ((!tc->fault_none || it->undeliverable || it->no_rule)
        && (res->outcome == EBD_REJECTED
            || retries > tc->retry.attempts
            || (tc->retry.max_age_ms && age > tc->retry.max_age_ms)))
    {
        ebd_trace(it, tc->dead_letter ? "dead-lettered" : "discarded",
                  "failed", latency);
        if (res->outcome != EBD_REJECTED) {
            char  e[sizeof(it->last.error)];
            snprintf(e, sizeof(e), "%.200s; gave up after %u attempt(s)",
                     res->error, d->attempt);
            memcpy(it->last.error, e, sizeof(e));
        }
        ebd_dead_letter(it);
        ebd_retry_state_clear(it);
        goto release;
    }

    ebd_trace(it, "retry", "retried", latency);
    dp->retried++;
    ebd_metrics_outcome(r->metrics, EBD_M_RETRIED);
    ebd_retry_state_save(it, now + delay);

    if (!ebd_order_may_keep(r)) {
        /* its partition's lease is gone: its next holder retries it, in
         * its key's order, from the pending list and the record above */
        goto release;
    }

    if (dp->state != EBD_RUNNING) {
        /* the entry stays pending, read again after a restart; a reload
         * remembers when its retry is due */
        if (dp->state == EBD_RELOADING) {
            ebd_carry_save(dp, it, now + delay);
        }
        goto release;
    }

    ebd_log(EBD_LOG_INFO, "target %s: event %s attempt %u failed (%s), "
            "retry in %llu ms", r->target->name, d->event_id, d->attempt,
            res->error, (unsigned long long) delay);

    if (tc->held_bytes > tc->memory_max && it->persisted && !tc->fault_none
        && r->order == NULL)
    {
        /* over "memory_mb": the entry waits in Redis instead (pending,
         * its attempt and due time saved), claimed back after
         * --claim-idle, when the target has room again */
        if (!tc->over_memory) {
            tc->over_memory = 1;
            ebd_log(EBD_LOG_WARN, "target %s: entries held for retries "
                    "exceed its memory_mb (%zu MiB): further retries wait "
                    "in Redis and are claimed back later", r->target->name,
                    tc->memory_max >> 20);
        }
        goto release;
    }

    if (tc->over_memory && tc->held_bytes < tc->memory_max / 2) {
        tc->over_memory = 0;
    }

    (void) ebd_schedule_retry(it, delay);
    goto next;

release:

    ebd_held_remove(r, it);
    ebd_item_free(it);

next:

    if (dp->state != EBD_RUNNING) {
        ebd_drained_check(dp);
        return;
    }

    ebd_target_pump(tc);
}


void
ebd_target_pump(ebd_tcore_t *tc)
{
    ebd_item_t  *it;

    if (tc->pumping) {
        return;
    }

    tc->pumping = 1;

    while (tc->head && tc->inflight < tc->target.concurrency
           && tc->dp->state == EBD_RUNNING && tc->paused_routes == 0
           && !ebd_target_held_back(tc)
           && ebd_limit_allows(tc)
           && ebd_breaker_allows(tc, tc->head))
    {
        it = tc->head;
        ebd_item_dequeue(it);
        it->state = EBD_ITEM_INFLIGHT;
        it->d.attempt++;
        it->d.driver_data = NULL;
        it->start_us = ebd_mono_us();
        tc->inflight++;
        ebd_limit_started(tc);

        if (it->undeliverable || it->no_rule) {
            /* undeliverable as stored, or its rule unknown: fail now
             * with the reason */
            ebd_result_t  res = it->last;
            ebd_delivery_done(&it->d, &res);
            continue;
        }

        tc->target.driver->deliver(&tc->target, &it->d);
    }

    tc->pumping = 0;

    ebd_limit_kick(tc);

    if (tc->dp->state == EBD_RUNNING) {
        ebd_target_wants_more(tc);
    }
}
