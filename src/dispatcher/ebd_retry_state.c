/*
 * Attempt counts and retry due times that outlive the process: kept in
 * eb:{BUS}:retry:TARGET (a hash, entry id -> "ATTEMPTS DUE_MS") while an
 * entry waits for its retry, so that after a crash, a restart or a claim
 * by another consumer the entry goes on with its next attempt number,
 * when it was due (Retry-After included), and the backoff, the attempt
 * limit and the dead letter's count stay right.
 *
 * Only failing entries cost anything: a record is written when a retry
 * is scheduled and deleted when the entry is delivered or dead-lettered.
 * Entries read back from the group's pending list (this consumer's own,
 * at start, or claimed) are held, WAITING, until one HMGET says where
 * they stood; new entries never had a record and are not looked up. A
 * record left behind (ebd killed between the XACK and its HDEL) belongs
 * to an entry no one reads again; the hash expires a week after its
 * last write.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebd_core.h"
#include "ebd_log.h"


#define EBD_RETRY_STATE_TTL   "604800"
/* a restore the reply of which never comes (the connection is gone) lets
 * its entries go on after this, counted from 0 as before */
#define EBD_RESTORE_WAIT_MS   5000


typedef struct {
    ebd_route_t  *route;
    size_t        n;
    char          ids[][EBD_ID_MAX];
} ebd_restore_t;


void
ebd_retry_state_save(ebd_item_t *it, uint64_t due_ms)
{
    char          v[64];
    ebd_route_t  *r = it->route;
    const char   *hset[] = { "HSET", r->retry_key, it->id, v };
    const char   *expire[] = { "EXPIRE", r->retry_key,
                               EBD_RETRY_STATE_TTL };

    snprintf(v, sizeof(v), "%u %llu", it->d.attempt,
             (unsigned long long) due_ms);

    /* pipelined, no answer awaited: a lost write only means a retry
     * counted from where the last one was saved */
    if (ebd_conn_command(r->cmd, NULL, NULL, 4, hset, NULL) == 0) {
        (void) ebd_conn_command(r->cmd, NULL, NULL, 3, expire, NULL);
        it->persisted = 1;
    }
}


void
ebd_retry_state_clear(ebd_item_t *it)
{
    ebd_route_t  *r = it->route;
    const char   *hdel[] = { "HDEL", r->retry_key, it->id };

    if (it->persisted) {
        (void) ebd_conn_command(r->cmd, NULL, NULL, 3, hdel, NULL);
        it->persisted = 0;
    }
}


/* The entry waits for its record: WAITING (nothing of a NONE target
 * overtakes it), its timer the fallback. */
int
ebd_retry_state_hold(ebd_item_t *it)
{
    it->restoring = 1;
    return ebd_schedule_retry(it, EBD_RESTORE_WAIT_MS);
}


static void
ebd_retry_state_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t          i;
    uint64_t        now, due;
    unsigned        attempt;
    unsigned long long  d;
    redisReply     *rep = reply, *v;
    ebd_item_t     *it;
    ebd_restore_t  *rs = privdata;
    ebd_route_t    *r = rs->route;

    if (r->dp->state != EBD_RUNNING) {
        free(rs);               /* their items were released */
        return;
    }

    now = ebd_now_ms();

    /* backwards, each to the front of the queue: they keep their order
     * ahead of what was read after them */
    for (i = rs->n; i-- > 0; ) {
        it = ebd_held_find(r, rs->ids[i], strlen(rs->ids[i]));
        if (it == NULL || !it->restoring || it->state != EBD_ITEM_WAITING) {
            continue;
        }

        it->restoring = 0;
        due = 0;

        v = rep != NULL && rep->type == REDIS_REPLY_ARRAY
            && i < rep->elements ? rep->element[i] : NULL;

        if (v != NULL && v->type == REDIS_REPLY_STRING
            && sscanf(v->str, "%u %llu", &attempt, &d) == 2)
        {
            it->d.attempt = attempt;
            it->persisted = 1;
            due = d;
            ebd_log(EBD_LOG_INFO, "route %s: entry %s resumes after "
                    "attempt %u%s", r->stream, it->id, attempt,
                    due > now ? ", its retry not due yet" : "");
        }

        ebd_retry_now_or_at(it, due > now ? due - now : 0);
    }

    free(rs);
}


void
ebd_retry_state_restore(ebd_route_t *r, ebd_item_t **items, size_t n)
{
    size_t          i;
    const char    **argv;
    ebd_restore_t  *rs;

    if (n == 0) {
        return;
    }

    rs = malloc(sizeof(ebd_restore_t) + n * EBD_ID_MAX);
    argv = malloc((n + 2) * sizeof(char *));
    if (rs == NULL || argv == NULL) {
        free(rs);
        free(argv);
        return;                 /* the fallback timers let them go */
    }

    rs->route = r;
    rs->n = n;
    argv[0] = "HMGET";
    argv[1] = r->retry_key;

    for (i = 0; i < n; i++) {
        memcpy(rs->ids[i], items[i]->id, EBD_ID_MAX);
        argv[i + 2] = rs->ids[i];
    }

    if (ebd_conn_command(r->cmd, ebd_retry_state_reply, rs, (int) n + 2,
                         argv, NULL) != 0)
    {
        free(rs);
    }

    free(argv);
}
