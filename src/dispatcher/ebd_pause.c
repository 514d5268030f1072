/*
 * Pausing a target without a reload: `ebd pause TARGET [--reason TEXT]`,
 * `ebd resume TARGET`, `ebd pause` (lists), or a 410 Gone from the
 * target itself (an endpoint that says it is gone for good: sending more
 * would only fill the dead letters).
 *
 * The state is in Redis, in the slot of every bus whose rules send to
 * the target: eb:{BUS}:paused, a hash target -> "SINCE_MS REASON", so
 * every ebd process and host sees it. Each worker reads its buses' hashes
 * once a second (one HGETALL a bus). A paused target starts no attempt
 * and reads no more entries; what is queued, or comes due, waits in
 * order; attempts in flight finish. Resumed, it goes on where it stood:
 * no attempt is counted for the pause.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebd.h"
#include "ebd_core.h"
#include "ebd_log.h"


#define EBD_PAUSE_POLL_MS  1000


static void
ebd_route_paused(ebd_route_t *r, int paused, const char *reason)
{
    ebd_tcore_t  *tc = r->target->core;

    if (r->paused == paused) {
        return;
    }

    r->paused = paused;
    tc->paused_routes += paused ? 1 : -1;
    ebd_metrics_paused(r->metrics, paused);

    if (paused) {
        ebd_log(EBD_LOG_WARN, "target %s: paused (bus %s: %s); nothing is "
                "sent until \"ebd resume %s\"", r->target->name, r->bus,
                reason, r->target->name);
    } else {
        ebd_log(EBD_LOG_INFO, "target %s: resumed (bus %s)",
                r->target->name, r->bus);
        ebd_target_pump(tc);
    }
}


static void
ebd_pause_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t        i, j;
    redisReply   *rep = reply, *k, *v;
    ebd_bus_t    *bus = privdata;
    ebd_disp_t   *dp = bus->dp;
    ebd_route_t  *r;
    const char   *reason;

    bus->pause_polling = 0;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY
        || dp->state != EBD_RUNNING)
    {
        return;                 /* as it was until the next poll */
    }

    for (i = 0; i < dp->nroutes; i++) {
        r = dp->routes[i];
        if (strcmp(r->bus, bus->name) != 0) {
            continue;
        }

        reason = NULL;
        for (j = 0; j + 1 < rep->elements; j += 2) {
            k = rep->element[j];
            v = rep->element[j + 1];
            if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING
                && strcmp(k->str, r->target->name) == 0)
            {
                reason = strchr(v->str, ' ');
                reason = reason ? reason + 1 : "";
                break;
            }
        }

        ebd_route_paused(r, reason != NULL, reason ? reason : "");
    }
}


void
ebd_pause_tick(ebd_disp_t *dp, uint64_t now)
{
    size_t       i;
    char         key[300];
    ebd_bus_t   *bus;
    const char  *argv[2];

    if (now - dp->last_pause_ms < EBD_PAUSE_POLL_MS) {
        return;
    }

    dp->last_pause_ms = now;

    for (i = 0; i < dp->nbuses; i++) {
        bus = dp->buses[i];
        if (!bus->used || bus->pause_polling || bus->cmd == NULL) {
            continue;
        }

        snprintf(key, sizeof(key), "eb:{%s}:paused", bus->name);
        argv[0] = "HGETALL";
        argv[1] = key;

        if (ebd_conn_command(bus->cmd, ebd_pause_reply, bus, 2, argv, NULL)
            == 0)
        {
            bus->pause_polling = 1;
        }
    }
}


/* A 410 Gone: the target is paused here at once and, for every ebd, in
 * the hash of each bus that routes to it. */
void
ebd_pause_gone(ebd_item_t *it)
{
    size_t        i;
    char          v[300];
    ebd_route_t  *r;
    ebd_disp_t   *dp = it->route->dp;
    ebd_target_t *t = it->route->target;
    const char   *argv[4];

    snprintf(v, sizeof(v), "%llu 410 Gone (event %.64s)",
             (unsigned long long) ebd_now_ms(), it->d.event_id);

    for (i = 0; i < dp->nroutes; i++) {
        r = dp->routes[i];
        if (r->target != t) {
            continue;
        }

        argv[0] = "HSET";
        argv[1] = r->pause_key;
        argv[2] = t->name;
        argv[3] = v;
        (void) ebd_conn_command(r->cmd, NULL, NULL, 4, argv, NULL);

        ebd_route_paused(r, 1, strchr(v, ' ') + 1);
    }
}


/* ---- ebd pause / ebd resume ---------------------------------------- */

static int
ebd_pause_list(ebd_opts_t *o, const eb_config_t *cf)
{
    int            rc = 0;
    char           key[300], err[256], t[40];
    size_t         i, j, n = 0;
    redisReply    *r;
    redisContext  *c;

    for (i = 0; i < cf->nbuses; i++) {
        c = ebd_redis_connect_sync(o, cf->buses[i].name, err, sizeof(err));
        if (c == NULL) {
            fprintf(stderr, "ebd pause: bus %s: %s\n", cf->buses[i].name,
                    err);
            rc = 1;
            continue;
        }

        snprintf(key, sizeof(key), "eb:{%s}:paused", cf->buses[i].name);
        r = redisCommand(c, "HGETALL %s", key);

        for (j = 0; r && r->type == REDIS_REPLY_ARRAY && j + 1 < r->elements;
             j += 2)
        {
            const char  *v = r->element[j + 1]->str, *why = strchr(v, ' ');

            ebd_time_format(strtoull(v, NULL, 10), t, sizeof(t));
            printf("%s  paused since %s on bus %s: %s\n",
                   r->element[j]->str, t, cf->buses[i].name,
                   why ? why + 1 : "");
            n++;
        }

        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "ebd pause: HGETALL %s: %s\n", key,
                    r ? r->str : c->errstr);
            rc = 1;
        }

        if (r) {
            freeReplyObject(r);
        }
        redisFree(c);
    }

    if (n == 0 && rc == 0) {
        printf("no target is paused\n");
    }

    return rc;
}


int
ebd_pause_main(ebd_opts_t *o, int argc, char **argv, int resume)
{
    int                    rc = 0, sends;
    char                   err[EB_CONFIG_ERROR_MAX], key[300], v[512];
    size_t                 i, j, k, n = 0;
    const char            *name = resume ? "resume" : "pause";
    redisReply            *r;
    redisContext          *c;
    eb_config_t           *cf;
    const eb_config_bus_t *bus;

    cf = eb_config_load(o->config_file, err, sizeof(err));
    if (cf == NULL) {
        fprintf(stderr, "ebd %s: %s\n", name, err);
        return 2;
    }

    if (argc == 0 && !resume) {
        rc = ebd_pause_list(o, cf);
        eb_config_free(cf);
        return rc;
    }

    if (argc != 1) {
        fprintf(stderr, "usage: ebd %s [options] TARGET%s\n", name,
                resume ? "" : " [--reason TEXT]\n       ebd pause "
                              "[options]   (lists the paused targets)");
        eb_config_free(cf);
        return 2;
    }

    snprintf(v, sizeof(v), "%llu %s", (unsigned long long) ebd_now_ms(),
             o->reason ? o->reason : "ebd pause");

    for (i = 0; i < cf->nbuses; i++) {
        bus = &cf->buses[i];
        sends = 0;
        for (j = 0; j < bus->nrules && !sends; j++) {
            for (k = 0; k < bus->rules[j].ntargets; k++) {
                if (strcmp(cf->targets[bus->rules[j].targets[k].target].name,
                           argv[0]) == 0)
                {
                    sends = 1;
                    break;
                }
            }
        }
        if (!sends) {
            continue;
        }

        n++;
        c = ebd_redis_connect_sync(o, bus->name, err, sizeof(err));
        if (c == NULL) {
            fprintf(stderr, "ebd %s: bus %s: %s\n", name, bus->name, err);
            rc = 1;
            continue;
        }

        snprintf(key, sizeof(key), "eb:{%s}:paused", bus->name);
        r = resume ? redisCommand(c, "HDEL %s %s", key, argv[0])
                   : redisCommand(c, "HSET %s %s %s", key, argv[0], v);

        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "ebd %s: %s: %s\n", name, key,
                    r ? r->str : c->errstr);
            rc = 1;
        } else {
            printf("target %s %s on bus %s\n", argv[0],
                   resume ? "resumed" : "paused", bus->name);
        }

        if (r) {
            freeReplyObject(r);
        }
        redisFree(c);
    }

    if (n == 0) {
        fprintf(stderr, "ebd %s: no rule of %s sends to a target \"%s\"\n",
                name, o->config_file, argv[0]);
        rc = 2;
    }

    eb_config_free(cf);
    return rc;
}
