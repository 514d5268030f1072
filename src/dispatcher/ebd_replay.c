/*
 * The replay engine (ebd_replay.h): a window of a bus's events matched
 * again with the bus's current rules (eb_ruleset_match_json(), nginx's
 * matcher and ruleset, read from the same file) and their fan-out
 * appended to the target streams.
 *
 * A batch: WATCH the state hash and read its cursor (it must be ours),
 * XRANGE the next events after the cursor, match them, then MULTI, one
 * XADD per selected (rule, target) in nginx's order (rules by id, a
 * rule's targets as configured), the cursor and counts, EXEC. A kill
 * before EXEC leaves nothing (Redis drops a transaction whose client is
 * gone), after it everything; EXEC answers nil when another process
 * changed the hash meanwhile, and this one stops.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eb_pattern.h"
#include "eb_order.h"
#include "ebd_replay.h"


static redisReply *ebd_replay_replies(redisContext *c, unsigned n,
    int *failed, char *err, size_t errlen);


static int
ebd_replay_name_ok(const char *s)
{
    size_t  n;

    for (n = 0; s[n]; n++) {
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z')
              || (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_'
              || s[n] == '.'))
        {
            return 0;
        }
    }

    return n > 0 && n <= EBD_REPLAY_NAME_MAX;
}


static const eb_config_rule_t *
ebd_replay_rule(const eb_config_bus_t *bus, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < bus->nrules; i++) {
        if (strlen(bus->rules[i].name) == len
            && memcmp(bus->rules[i].name, name, len) == 0)
        {
            return &bus->rules[i];
        }
    }

    return NULL;
}


static int
ebd_replay_target(const eb_config_t *cf, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < cf->ntargets; i++) {
        if (strlen(cf->targets[i].name) == len
            && memcmp(cf->targets[i].name, name, len) == 0)
        {
            return (int) i;
        }
    }

    return -1;
}


/* Marks the rules of a comma-separated list (NULL: the enabled rules);
 * 0, or -1 with err. */
static int
ebd_replay_select_rules(ebd_replay_t *rp, const char *list, char *err,
    size_t errlen)
{
    size_t                   i, len;
    const char              *p, *e;
    const eb_config_rule_t  *rule;

    if (list == NULL) {
        for (i = 0; i < rp->bus->nrules; i++) {
            rp->rule_on[rp->bus->rules[i].id] = rp->bus->rules[i].enabled;
        }
        return 0;
    }

    for (p = list; ; p = e + 1) {
        e = strchr(p, ',');
        len = e ? (size_t) (e - p) : strlen(p);

        rule = ebd_replay_rule(rp->bus, p, len);
        if (rule == NULL) {
            snprintf(err, errlen, "bus \"%s\" has no rule \"%.*s\"",
                     rp->bus->name, (int) len, p);
            return -1;
        }

        if (!rule->enabled) {
            snprintf(err, errlen, "rule \"%s\" of bus \"%s\" is disabled: "
                     "it would match nothing", rule->name, rp->bus->name);
            return -1;
        }

        rp->rule_on[rule->id] = 1;

        if (e == NULL) {
            return 0;
        }
    }
}


/* Marks the targets of a list, each one a selected rule sends to (NULL:
 * every target of the selected rules); 0, or -1 with err. */
static int
ebd_replay_select_targets(ebd_replay_t *rp, const char *list, char *err,
    size_t errlen)
{
    int                      t;
    size_t                   i, j, len;
    const char              *p, *e;
    const eb_config_rule_t  *rule;

    for (p = list; p != NULL; p = e ? e + 1 : NULL) {
        e = strchr(p, ',');
        len = e ? (size_t) (e - p) : strlen(p);

        t = ebd_replay_target(rp->cf, p, len);
        if (t < 0) {
            snprintf(err, errlen, "%s has no target \"%.*s\"", rp->cf->file,
                     (int) len, p);
            return -1;
        }

        rp->target_on[t] = 2;   /* asked for, checked below */
    }

    for (i = 0; i < rp->bus->nrules; i++) {
        rule = &rp->bus->rules[i];
        if (!rp->rule_on[rule->id]) {
            continue;
        }

        for (j = 0; j < rule->ntargets; j++) {
            t = (int) rule->targets[j].target;
            if (list == NULL || rp->target_on[t] == 2) {
                rp->target_on[t] = 1;
            }
        }
    }

    for (i = 0; i < rp->cf->ntargets; i++) {
        if (rp->target_on[i] == 2) {
            snprintf(err, errlen, "no selected rule of bus \"%s\" sends to "
                     "target \"%s\"", rp->bus->name, rp->cf->targets[i].name);
            return -1;
        }
    }

    return 0;
}


int
ebd_replay_init(ebd_replay_t *rp, const eb_config_t *cf, const char *bus,
    const char *name, uint64_t from_ms, uint64_t to_ms, const char *rules,
    const char *targets, int dry_run, char *err, size_t errlen)
{
    size_t  i, any;

    memset(rp, 0, sizeof(ebd_replay_t));
    rp->cf = cf;
    rp->from_ms = from_ms;
    rp->to_ms = to_ms;
    rp->dry_run = dry_run;

    rp->bus = eb_config_bus(cf, bus, strlen(bus));
    if (rp->bus == NULL) {
        snprintf(err, errlen, "%s has no bus \"%s\"", cf->file, bus);
        return -1;
    }

    if (from_ms > to_ms) {
        snprintf(err, errlen, "the window is empty: it begins after it ends");
        return -1;
    }

    if (name != NULL && !ebd_replay_name_ok(name)) {
        snprintf(err, errlen, "--name: use 1 to %d letters, digits, '-', "
                 "'_' and '.', not \"%s\"", EBD_REPLAY_NAME_MAX, name);
        return -1;
    }

    if ((rules != NULL && *rules == '\0')
        || (targets != NULL && *targets == '\0'))
    {
        snprintf(err, errlen, "--%s: empty", rules && !*rules ? "rule"
                                                             : "target");
        return -1;
    }

    rp->rule_on = calloc(rp->bus->nrules + 1, 1);
    rp->target_on = calloc(cf->ntargets + 1, 1);
    rp->per_target = calloc(cf->ntargets + 1, sizeof(uint64_t));
    rp->target_keys = calloc(cf->ntargets + 1, sizeof(char *));
    rp->ids = calloc(rp->bus->nrules + 1, sizeof(uint32_t));
    rp->rules_text = strdup(rules ? rules : "");
    rp->targets_text = strdup(targets ? targets : "");
    rp->scratch = eb_match_scratch_new();

    if (rp->rule_on == NULL || rp->target_on == NULL
        || rp->per_target == NULL || rp->target_keys == NULL
        || rp->ids == NULL || rp->rules_text == NULL
        || rp->targets_text == NULL || rp->scratch == NULL)
    {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (ebd_replay_select_rules(rp, rules, err, errlen) != 0
        || ebd_replay_select_targets(rp, targets, err, errlen) != 0)
    {
        return -1;
    }

    any = 0;
    for (i = 0; i < cf->ntargets; i++) {
        if (!rp->target_on[i]) {
            continue;
        }

        any++;
        rp->target_keys[i] = malloc(300 + strlen(cf->targets[i].name));
        if (rp->target_keys[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        sprintf(rp->target_keys[i], "eb:{%s}:target:%s", rp->bus->name,
                cf->targets[i].name);
    }

    if (any == 0) {
        snprintf(err, errlen, "bus \"%s\": the selected rules send to no "
                 "target: nothing to replay", rp->bus->name);
        return -1;
    }

    /* the default name says what it replays: resumable as long as the
     * window resolves to the same times */
    if (name != NULL) {
        snprintf(rp->name, sizeof(rp->name), "%s", name);

    } else {
        snprintf(rp->name, sizeof(rp->name), "%llu-%llu%s%s%s%s",
                 (unsigned long long) from_ms, (unsigned long long) to_ms,
                 rules ? "-" : "", rules ? rules : "",
                 targets ? "-" : "", targets ? targets : "");
        for (i = 0; rp->name[i]; i++) {
            if (rp->name[i] == ',') {
                rp->name[i] = '.';
            }
        }
    }

    snprintf(rp->events_key, sizeof(rp->events_key), "eb:{%s}:events",
             rp->bus->name);
    snprintf(rp->state_key, sizeof(rp->state_key), "eb:{%s}:replay:%s",
             rp->bus->name, rp->name);
    snprintf(rp->index_key, sizeof(rp->index_key), "eb:{%s}:replays",
             rp->bus->name);

    return 0;
}


void
ebd_replay_free(ebd_replay_t *rp)
{
    size_t  i;

    if (rp->target_keys) {
        for (i = 0; i < rp->cf->ntargets; i++) {
            free(rp->target_keys[i]);
        }
    }

    if (rp->scratch) {
        eb_match_scratch_free(rp->scratch);
    }

    free(rp->target_keys);
    free(rp->rule_on);
    free(rp->target_on);
    free(rp->per_target);
    free(rp->ids);
    free(rp->rules_text);
    free(rp->targets_text);
    memset(rp, 0, sizeof(ebd_replay_t));
}


static const char *
ebd_replay_hget(redisReply *h, const char *field)
{
    size_t  i;

    for (i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type == REDIS_REPLY_STRING
            && strcmp(h->element[i]->str, field) == 0
            && h->element[i + 1]->type == REDIS_REPLY_STRING)
        {
            return h->element[i + 1]->str;
        }
    }

    return NULL;
}


/* the state's "rules" or "targets" as this command selects them */
static int
ebd_replay_same(ebd_replay_t *rp, redisReply *h, const char *field,
    const char *want, char *err, size_t errlen)
{
    const char  *v;

    v = ebd_replay_hget(h, field);
    if (v != NULL && strcmp(v, want) == 0) {
        return 0;
    }

    snprintf(err, errlen, "replay \"%s\" of bus \"%s\" exists with other "
             "%s (\"%s\"); give another --name", rp->name, rp->bus->name,
             field, v ? v : "");
    return -1;
}


/* a resumed replay: the same window and selection, or a clear no */
static int
ebd_replay_resume(ebd_replay_t *rp, redisReply *h, char *err, size_t errlen)
{
    const char  *from, *to, *fa, *ta, *v;
    uint64_t     f, t;

    from = ebd_replay_hget(h, "from");
    to = ebd_replay_hget(h, "to");
    fa = ebd_replay_hget(h, "from_arg");
    ta = ebd_replay_hget(h, "to_arg");

    if (from == NULL || to == NULL) {
        snprintf(err, errlen, "%s is not a replay's state", rp->state_key);
        return -2;
    }

    f = strtoull(from, NULL, 10);
    t = strtoull(to, NULL, 10);

    /* a window given as it was the first time keeps its first
     * resolution: "--from -1h --to now" resumes the same hour */
    if (fa && ta && rp->from_arg && rp->to_arg
        && strcmp(fa, rp->from_arg) == 0 && strcmp(ta, rp->to_arg) == 0)
    {
        rp->from_ms = f;
        rp->to_ms = t;
    }

    if (f != rp->from_ms || t != rp->to_ms) {
        snprintf(err, errlen, "replay \"%s\" of bus \"%s\" exists with "
                 "another window (%s .. %s ms); give another --name",
                 rp->name, rp->bus->name, from, to);
        return -2;
    }

    if (ebd_replay_same(rp, h, "rules", rp->rules_text, err, errlen) != 0
        || ebd_replay_same(rp, h, "targets", rp->targets_text, err, errlen)
           != 0)
    {
        return -2;
    }

    v = ebd_replay_hget(h, "cursor");
    snprintf(rp->cursor, sizeof(rp->cursor), "%s", v ? v : "");

    v = ebd_replay_hget(h, "started");
    rp->started_ms = v ? strtoull(v, NULL, 10) : 0;

    v = ebd_replay_hget(h, "events");
    rp->events_total = v ? strtoull(v, NULL, 10) : 0;

    v = ebd_replay_hget(h, "deliveries");
    rp->deliveries_total = v ? strtoull(v, NULL, 10) : 0;

    v = ebd_replay_hget(h, "state");
    rp->done = v != NULL && strcmp(v, "done") == 0;

    return rp->done ? 1 : 0;
}


int
ebd_replay_begin(ebd_replay_t *rp, redisContext *c, char *err,
    size_t errlen)
{
    int          rc, tries, failed;
    char         from[24], to[24], now[24];
    redisReply  *r;

    rp->started_ms = ebd_now_ms();

    if (rp->dry_run) {
        return 0;
    }

    snprintf(from, sizeof(from), "%llu", (unsigned long long) rp->from_ms);
    snprintf(to, sizeof(to), "%llu", (unsigned long long) rp->to_ms);
    snprintf(now, sizeof(now), "%llu", (unsigned long long) rp->started_ms);

    /* made whole or found whole: two processes starting the same replay
     * at once create it once, under a WATCH, and the other resumes it */
    for (tries = 0; tries < 3; tries++) {
        failed = 0;
        redisAppendCommand(c, "WATCH %s", rp->state_key);
        redisAppendCommand(c, "HGETALL %s", rp->state_key);
        r = ebd_replay_replies(c, 2, &failed, err, errlen);
        if (r == NULL || failed || r->type != REDIS_REPLY_ARRAY) {
            if (r && !failed) {
                snprintf(err, errlen, "HGETALL %s: not a hash",
                         rp->state_key);
            }
            if (r) {
                freeReplyObject(r);
            }
            return -1;
        }

        if (r->elements) {
            rc = ebd_replay_resume(rp, r, err, errlen);
            freeReplyObject(r);
            freeReplyObject(redisCommand(c, "UNWATCH"));
            return rc;
        }

        freeReplyObject(r);

        redisAppendCommand(c, "MULTI");
        redisAppendCommand(c, "HSET %s from %s to %s from_arg %s to_arg %s "
                           "rules %s targets %s cursor %s state running "
                           "started %s updated %s events 0 deliveries 0",
                           rp->state_key, from, to,
                           rp->from_arg ? rp->from_arg : from,
                           rp->to_arg ? rp->to_arg : to, rp->rules_text,
                           rp->targets_text, "", now, now);
        redisAppendCommand(c, "ZADD %s NX %s %s", rp->index_key, now,
                           rp->name);
        redisAppendCommand(c, "EXEC");

        r = ebd_replay_replies(c, 4, &failed, err, errlen);
        if (r == NULL || failed) {
            if (r) {
                freeReplyObject(r);
            }
            return -1;
        }

        rc = r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);

        if (rc) {
            return 0;
        }
    }

    snprintf(err, errlen, "replay \"%s\": its state keeps changing",
             rp->name);
    return -1;
}


/* the replies of n pipelined commands, the last one returned (NULL on a
 * connection error, err set); an error reply of any of them in err */
static redisReply *
ebd_replay_replies(redisContext *c, unsigned n, int *failed, char *err,
    size_t errlen)
{
    redisReply  *r, *last;

    last = NULL;

    while (n--) {
        r = NULL;
        if (redisGetReply(c, (void **) &r) != REDIS_OK) {
            snprintf(err, errlen, "%s", c->errstr);
            if (last) {
                freeReplyObject(last);
            }
            *failed = 1;
            return NULL;
        }

        if (r->type == REDIS_REPLY_ERROR && !*failed) {
            snprintf(err, errlen, "%s", r->str);
            *failed = 1;
        }

        if (last) {
            freeReplyObject(last);
        }
        last = r;
    }

    return last;
}


/* the fan-out of one event into the open transaction; the number of
 * XADDs queued, or -1 */
static int
ebd_replay_fanout(ebd_replay_t *rp, redisContext *c, redisReply *ev,
    uint32_t *ids, int n)
{
    int                      i, queued, rc;
    char                     perr[128], stream[600];
    size_t                   j, t;
    unsigned                 part;
    yajl_val                 tree;
    eb_buf_t                 key;
    const char              *argv[11];
    size_t                   argvlen[11];
    const eb_config_rule_t  *rule;
    const eb_config_rule_target_t  *rt;

    queued = 0;
    rc = 0;
    tree = NULL;
    eb_buf_init(&key);

    argv[0] = "XADD";
    argv[2] = "*";
    argv[3] = "event";
    argv[4] = ev->str;
    argv[5] = "rule";
    argv[7] = "replay";
    argv[8] = rp->name;
    argvlen[0] = 4;
    argvlen[2] = 1;
    argvlen[3] = 5;
    argvlen[4] = ev->len;
    argvlen[5] = 4;
    argvlen[7] = 6;
    argvlen[8] = strlen(rp->name);

    for (i = 0; i < n; i++) {
        if (ids[i] >= rp->bus->nrules || !rp->rule_on[ids[i]]) {
            continue;
        }

        rule = &rp->bus->rules[ids[i]];

        for (j = 0; j < rule->ntargets; j++) {
            t = rule->targets[j].target;
            if (!rp->target_on[t]) {
                continue;
            }

            rp->per_target[t]++;
            queued++;

            if (rp->dry_run) {
                continue;
            }

            argv[1] = rp->target_keys[t];
            argvlen[1] = strlen(argv[1]);
            argv[6] = rule->name;
            argvlen[6] = strlen(rule->name);

            rt = &rule->targets[j];

            if (rt->partitions) {
                /* in order per key: its partition, as nginx appends it
                 * (eb_order.h); an event that does not parse goes with
                 * the empty key, and is dead-lettered by ebd as such */
                if (tree == NULL && rt->order_path) {
                    tree = eb_transform_parse_event(
                               (const unsigned char *) ev->str, ev->len,
                               perr, sizeof(perr));
                }

                eb_buf_reset(&key);
                if (eb_order_key(rt, tree, &key) != 0 || key.failed) {
                    rc = -1;
                    goto done;
                }

                part = eb_order_partition(rt, key.data, key.len);
                snprintf(stream, sizeof(stream), "%s:p:%u",
                         rp->target_keys[t], part);
                argv[1] = stream;
                argvlen[1] = strlen(stream);
                argv[9] = "key";
                argvlen[9] = 3;
                argv[10] = key.len ? (const char *) key.data : "";
                argvlen[10] = key.len;
            }

            if (redisAppendCommandArgv(c, rt->partitions ? 11 : 9, argv,
                                       argvlen)
                != REDIS_OK)
            {
                rc = -1;
                goto done;
            }
        }
    }

done:

    if (tree) {
        yajl_tree_free(tree);
    }
    eb_buf_free(&key);

    return rc == 0 ? queued : -1;
}


int
ebd_replay_batch(ebd_replay_t *rp, redisContext *c, unsigned max,
    char *err, size_t errlen)
{
    int          n, q, failed;
    char         start[EBD_ID_MAX + 2], end[32], cnt[16], now[24];
    char         next[EBD_ID_MAX];
    size_t       i, t;
    unsigned     sent;
    uint64_t     events, matched, unreadable, deliveries, *before;
    redisReply  *page, *r, *e, *ev;

    if (rp->done) {
        return 0;
    }

    if (max == 0 || max > EBD_REPLAY_BATCH_MAX) {
        max = EBD_REPLAY_BATCH_MAX;
    }

    failed = 0;
    sent = 0;

    /* the hash is ours while nobody else advances it */
    if (!rp->dry_run) {
        redisAppendCommand(c, "WATCH %s", rp->state_key);
        redisAppendCommand(c, "HGET %s cursor", rp->state_key);
        r = ebd_replay_replies(c, 2, &failed, err, errlen);
        if (r == NULL || failed) {
            if (r) {
                freeReplyObject(r);
            }
            return -1;
        }

        if (r->type != REDIS_REPLY_STRING || strcmp(r->str, rp->cursor) != 0)
        {
            snprintf(err, errlen, "replay \"%s\": its cursor moved (another "
                     "process runs it?) or its state is gone", rp->name);
            freeReplyObject(r);
            r = redisCommand(c, "UNWATCH");
            if (r) {
                freeReplyObject(r);
            }
            return -1;
        }
        freeReplyObject(r);
    }

    if (rp->cursor[0]) {
        snprintf(start, sizeof(start), "(%s", rp->cursor);
    } else {
        snprintf(start, sizeof(start), "%llu",
                 (unsigned long long) rp->from_ms);
    }
    snprintf(end, sizeof(end), "%llu", (unsigned long long) rp->to_ms);
    snprintf(cnt, sizeof(cnt), "%u", max);
    snprintf(now, sizeof(now), "%llu", (unsigned long long) ebd_now_ms());

    page = redisCommand(c, "XRANGE %s %s %s COUNT %s", rp->events_key, start,
                        end, cnt);
    if (page == NULL || page->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "XRANGE %s: %s", rp->events_key,
                 page ? page->str : c->errstr);
        if (page) {
            freeReplyObject(page);
        }
        return -1;
    }

    if (page->elements == 0) {
        freeReplyObject(page);
        rp->done = 1;

        if (rp->dry_run) {
            return 0;
        }

        /* under the WATCH too: a second process finds it done */
        redisAppendCommand(c, "MULTI");
        redisAppendCommand(c, "HSET %s state done updated %s finished %s",
                           rp->state_key, now, now);
        redisAppendCommand(c, "EXEC");
        r = ebd_replay_replies(c, 3, &failed, err, errlen);
        if (r == NULL || failed || r->type != REDIS_REPLY_ARRAY) {
            if (r && !failed) {
                snprintf(err, errlen, "replay \"%s\": changed by another "
                         "process", rp->name);
            }
            if (r) {
                freeReplyObject(r);
            }
            return -1;
        }
        freeReplyObject(r);
        return 0;
    }

    /* this batch's counts apply once its transaction did */
    before = malloc((rp->cf->ntargets + 1) * sizeof(uint64_t));
    if (before == NULL) {
        snprintf(err, errlen, "out of memory");
        freeReplyObject(page);
        return -1;
    }
    memcpy(before, rp->per_target, rp->cf->ntargets * sizeof(uint64_t));

    events = 0;
    matched = 0;
    unreadable = 0;
    deliveries = 0;

    if (!rp->dry_run) {
        redisAppendCommand(c, "MULTI");
        sent++;
    }

    for (i = 0; i < page->elements; i++) {
        e = page->element[i];
        events++;

        ev = e->type == REDIS_REPLY_ARRAY && e->elements == 2
             ? ebd_reply_field(e->element[1], "event") : NULL;

        n = ev != NULL && ev->type == REDIS_REPLY_STRING
            ? eb_ruleset_match_json(rp->bus->ruleset, rp->scratch,
                                    (const unsigned char *) ev->str, ev->len,
                                    rp->ids, rp->bus->nrules)
            : EB_PATTERN_BAD_EVENT;

        if (n == EB_PATTERN_NOMEM) {
            snprintf(err, errlen, "out of memory");
            failed = 1;
            break;
        }

        /* an entry nginx would not have stored (written by hand): left
         * out, as nginx would have refused it */
        if (n < 0) {
            unreadable++;
            continue;
        }

        q = ebd_replay_fanout(rp, c, ev, rp->ids,
                              n > (int) rp->bus->nrules
                              ? (int) rp->bus->nrules : n);
        if (q < 0) {
            snprintf(err, errlen, "out of memory");
            failed = 1;
            break;
        }

        matched += q > 0;
        deliveries += (uint64_t) q;
        sent += (unsigned) q;
    }

    snprintf(next, sizeof(next), "%s",
             page->element[page->elements - 1]->element[0]->str);
    freeReplyObject(page);

    if (rp->dry_run || failed) {
        if (failed) {
            memcpy(rp->per_target, before,
                   rp->cf->ntargets * sizeof(uint64_t));
            if (!rp->dry_run) {
                /* what was appended is not sent: drop the connection */
                free(before);
                return -1;
            }
        }
        free(before);
        memcpy(rp->cursor, next, sizeof(next));
        rp->events += events;
        rp->matched += matched;
        rp->unreadable += unreadable;
        rp->deliveries += deliveries;
        rp->events_total += events;
        rp->deliveries_total += deliveries;
        return failed ? -1 : (int) events;
    }

    redisAppendCommand(c, "HSET %s cursor %s updated %s", rp->state_key,
                       next, now);
    redisAppendCommand(c, "HINCRBY %s events %llu", rp->state_key,
                       (unsigned long long) events);
    redisAppendCommand(c, "HINCRBY %s deliveries %llu", rp->state_key,
                       (unsigned long long) deliveries);
    sent += 3;

    for (t = 0; t < rp->cf->ntargets; t++) {
        if (rp->per_target[t] != before[t]) {
            redisAppendCommand(c, "HINCRBY %s t:%s %llu", rp->state_key,
                               rp->cf->targets[t].name,
                               (unsigned long long)
                               (rp->per_target[t] - before[t]));
            sent++;
        }
    }

    redisAppendCommand(c, "EXEC");
    sent++;

    r = ebd_replay_replies(c, sent, &failed, err, errlen);

    if (r != NULL && !failed && r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "replay \"%s\": changed by another process "
                 "meanwhile: nothing of this batch was applied", rp->name);
        failed = 1;
    }

    /* a command that failed inside EXEC (a target key that is not a
     * stream): the others were applied, the cursor too */
    for (i = 0; r != NULL && !failed && i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "replay \"%s\": batch after %s partly "
                     "applied: %s", rp->name,
                     rp->cursor[0] ? rp->cursor : "the start",
                     r->element[i]->str);
            failed = 1;
        }
    }

    if (r) {
        freeReplyObject(r);
    }

    if (failed) {
        memcpy(rp->per_target, before, rp->cf->ntargets * sizeof(uint64_t));
        free(before);
        return -1;
    }

    free(before);
    memcpy(rp->cursor, next, sizeof(next));
    rp->events += events;
    rp->matched += matched;
    rp->unreadable += unreadable;
    rp->deliveries += deliveries;
    rp->events_total += events;
    rp->deliveries_total += deliveries;

    return (int) events;
}


/* an entry's id of key in a direction, within [start, end] */
static uint64_t
ebd_replay_edge(redisContext *c, const char *cmd, const char *key,
    const char *start, const char *end, int *found)
{
    uint64_t     ms;
    redisReply  *r;

    r = redisCommand(c, "%s %s %s %s COUNT 1", cmd, key, start, end);
    ms = 0;
    *found = 0;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1
        && r->element[0]->type == REDIS_REPLY_ARRAY
        && r->element[0]->elements >= 1)
    {
        ms = strtoull(r->element[0]->element[0]->str, NULL, 10);
        *found = 1;
    }

    if (r) {
        freeReplyObject(r);
    }

    return ms;
}


uint64_t
ebd_replay_estimate(ebd_replay_t *rp, redisContext *c)
{
    int          f1, f2, f3, f4;
    char         from[24], to[24];
    uint64_t     len, sfirst, slast, wfirst, wlast;
    redisReply  *r;

    r = redisCommand(c, "XLEN %s", rp->events_key);
    len = r != NULL && r->type == REDIS_REPLY_INTEGER ? (uint64_t) r->integer
                                                      : 0;
    if (r) {
        freeReplyObject(r);
    }

    snprintf(from, sizeof(from), "%llu", (unsigned long long) rp->from_ms);
    snprintf(to, sizeof(to), "%llu", (unsigned long long) rp->to_ms);

    sfirst = ebd_replay_edge(c, "XRANGE", rp->events_key, "-", "+", &f1);
    slast = ebd_replay_edge(c, "XREVRANGE", rp->events_key, "+", "-", &f2);
    wfirst = ebd_replay_edge(c, "XRANGE", rp->events_key, from, to, &f3);
    wlast = ebd_replay_edge(c, "XREVRANGE", rp->events_key, to, from, &f4);

    if (!f1 || !f2 || !f3 || !f4) {
        return 0;
    }

    /* the stream's entries spread evenly over its time */
    if (slast <= sfirst) {
        return len;
    }

    return (uint64_t) ((long double) len * (long double) (wlast - wfirst + 1)
                       / (long double) (slast - sfirst + 1)) + 1;
}
