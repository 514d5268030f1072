/*
 * The retention of eb:{BUS}:events: a bus's "retention" (age, length)
 * is enforced by ebd, every EBD_RETENTION_MS, with XTRIM on the bus's
 * command connection (bound to the bus's slot, so it works on a Cluster
 * as elsewhere):
 *
 *   XTRIM eb:{BUS}:events MINID ~ <now - age>-0 LIMIT 1000
 *   XTRIM eb:{BUS}:events MAXLEN ~ <length> LIMIT 1000
 *
 * "~" lets Redis remove whole macro nodes only (cheap; the stream may
 * keep up to one node, 100 entries by default, more than asked), and
 * LIMIT bounds what one call removes, so that a big backlog (retention
 * just set, ebd away for a while) never blocks Redis for long (1,000
 * entries of 1 KB: about 0.1 ms; 10,000 took 6 ms, a stall every
 * client of Redis waited out): a round that removed half the limit or
 * more is followed by another as soon as its replies are in, Redis
 * serving its other clients in between, until the stream is within
 * its retention.
 *
 * Only worker 0 trims (with -w N, the first worker; without -w, the
 * process): the others would send the same commands to no effect. Other
 * ebd processes elsewhere trim as well; XTRIM with the same bound is
 * idempotent, so that costs one command each per period, nothing more.
 * The age counts on ebd's clock against entry ids Redis gave on its own:
 * a clock skew between the two moves the cut by as much.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ebd_core.h"
#include "ebd_log.h"


#define EBD_RETENTION_MS     10000
#define EBD_RETENTION_LIMIT  1000       /* entries one XTRIM removes */


int
ebd_retention_setup(ebd_disp_t *dp)
{
    size_t                  i;
    ebd_bus_t              *b;
    const eb_config_bus_t  *cb;

    for (i = 0; i < dp->nbuses; i++) {
        dp->buses[i]->retain_age_ms = 0;
        dp->buses[i]->retain_length = 0;
    }

    if (dp->opts->worker != 0) {
        return 0;
    }

    for (i = 0; i < dp->cf->nbuses; i++) {
        cb = &dp->cf->buses[i];

        if (cb->retention_age_ms == 0 && cb->retention_length == 0) {
            continue;
        }

        b = ebd_bus_get(dp, cb->name);
        if (b == NULL) {
            return -1;
        }

        b->retain_age_ms = cb->retention_age_ms;
        b->retain_length = cb->retention_length;

        ebd_log(EBD_LOG_INFO, "bus %s: retention of eb:{%s}:events: age "
                "%" PRIu64 " ms, length %" PRIu64 " (0: none), every %d s",
                b->name, b->name, b->retain_age_ms, b->retain_length,
                EBD_RETENTION_MS / 1000);
    }

    return 0;
}


static void ebd_retention_trim(ebd_bus_t *b, uint64_t now);


static void
ebd_retention_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *r = reply;
    ebd_bus_t   *b = privdata;

    if (b->trimming) {
        b->trimming--;
    }

    /* errors are logged by the connection, once per kind */
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        b->trim_more |= r->integer >= EBD_RETENTION_LIMIT / 2;
        ebd_log(EBD_LOG_DEBUG, "bus %s: retention removed %lld event(s)",
                b->name, r->integer);
    }

    /* the next round at once; not after an error or a lost connection
     * (r NULL): the tick tries again */
    if (r && b->trim_more && b->trimming == 0
        && b->dp->state == EBD_RUNNING)
    {
        ebd_retention_trim(b, ebd_now_ms());
    }
}


static void
ebd_retention_trim(ebd_bus_t *b, uint64_t now)
{
    char          key[600], bound[32], limit[32];
    const char   *argv[7];

    snprintf(key, sizeof(key), "eb:{%s}:events", b->name);
    snprintf(limit, sizeof(limit), "%d", EBD_RETENTION_LIMIT);
    argv[0] = "XTRIM";
    argv[1] = key;
    argv[3] = "~";
    argv[4] = bound;
    argv[5] = "LIMIT";
    argv[6] = limit;

    b->trim_more = 0;
    b->trimmed_ms = now;

    if (b->retain_age_ms && now > b->retain_age_ms) {
        argv[2] = "MINID";
        snprintf(bound, sizeof(bound), "%" PRIu64 "-0",
                 now - b->retain_age_ms);

        if (ebd_conn_command(b->cmd, ebd_retention_reply, b, 7, argv, NULL)
            == 0)
        {
            b->trimming++;
        }
    }

    if (b->retain_length) {
        argv[2] = "MAXLEN";
        snprintf(bound, sizeof(bound), "%" PRIu64, b->retain_length);

        if (ebd_conn_command(b->cmd, ebd_retention_reply, b, 7, argv, NULL)
            == 0)
        {
            b->trimming++;
        }
    }
}


void
ebd_retention_tick(ebd_disp_t *dp, uint64_t now)
{
    size_t      i;
    ebd_bus_t  *b;

    for (i = 0; i < dp->nbuses; i++) {
        b = dp->buses[i];

        if ((b->retain_age_ms == 0 && b->retain_length == 0)
            || b->trimming)
        {
            continue;
        }

        if (b->trim_more || now - b->trimmed_ms >= EBD_RETENTION_MS) {
            ebd_retention_trim(b, now);
        }
    }
}
