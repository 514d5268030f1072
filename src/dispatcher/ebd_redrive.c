/*
 * ebd redrive BUS TARGET: moves the dead letters of eb:{BUS}:dlq:TARGET
 * back into eb:{BUS}:target:TARGET, oldest first, each in one MULTI/EXEC
 * (XADD to the target stream, XDEL from the dead-letter stream): a
 * letter is in one place or the other, never lost, never both.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebd.h"


int
ebd_redrive_main(ebd_opts_t *o, int argc, char **argv)
{
    int            done;
    char           err[EB_CONFIG_ERROR_MAX], stream[600], dlq[600];
    char           start[EBD_ID_MAX + 1];
    size_t         i, n;
    long long      moved;
    redisReply    *r, *e, *fields, *event, *rule, *x;
    eb_config_t   *cf;
    redisContext  *c;

    if (argc != 2) {
        fprintf(stderr, "usage: ebd redrive [options] BUS TARGET\n");
        return 2;
    }

    if (strlen(argv[0]) > 256 || strlen(argv[1]) > 256) {
        fprintf(stderr, "ebd redrive: name too long\n");
        return 2;
    }

    /* when the configuration is at hand, catch a mistyped name */
    cf = eb_config_load(o->config_file, err, sizeof(err));
    if (cf) {
        int  found = 0;
        for (i = 0; i < cf->ntargets; i++) {
            found |= strcmp(cf->targets[i].name, argv[1]) == 0;
        }
        if (eb_config_bus(cf, argv[0], strlen(argv[0])) == NULL || !found) {
            fprintf(stderr, "ebd redrive: %s has no %s \"%s\"\n",
                    o->config_file, found ? "bus" : "target",
                    found ? argv[0] : argv[1]);
            eb_config_free(cf);
            return 1;
        }
        eb_config_free(cf);
    }

    snprintf(stream, sizeof(stream), "eb:{%s}:target:%s", argv[0], argv[1]);
    snprintf(dlq, sizeof(dlq), "eb:{%s}:dlq:%s", argv[0], argv[1]);

    c = ebd_redis_connect_sync(o, argv[0], err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "ebd redrive: %s\n", err);
        return 1;
    }

    moved = 0;
    strcpy(start, "-");
    done = 0;

    while (!done) {
        r = redisCommand(c, "XRANGE %s %s + COUNT 100", dlq, start);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "ebd redrive: XRANGE %s: %s\n", dlq,
                    r ? r->str : c->errstr);
            if (r) {
                freeReplyObject(r);
            }
            redisFree(c);
            return 1;
        }

        n = r->elements;
        done = n < 100;

        for (i = 0; i < n; i++) {
            e = r->element[i];
            fields = e->element[1];
            event = ebd_reply_field(fields, "event");
            rule = ebd_reply_field(fields, "rule");

            /* the next page starts after this entry */
            snprintf(start, sizeof(start), "(%s", e->element[0]->str);

            if (event == NULL || rule == NULL) {
                fprintf(stderr, "ebd redrive: %s: entry %s has no event or "
                        "rule; left in place\n", dlq, e->element[0]->str);
                continue;
            }

            redisAppendCommand(c, "MULTI");
            redisAppendCommand(c, "XADD %s * event %b rule %b", stream,
                               event->str, event->len, rule->str, rule->len);
            redisAppendCommand(c, "XDEL %s %s", dlq, e->element[0]->str);
            redisAppendCommand(c, "EXEC");

            for (int k = 0; k < 4; k++) {
                x = NULL;
                if (redisGetReply(c, (void **) &x) != REDIS_OK) {
                    fprintf(stderr, "ebd redrive: %s\n", c->errstr);
                    freeReplyObject(r);
                    redisFree(c);
                    return 1;
                }
                if (k == 3 && (x->type != REDIS_REPLY_ARRAY
                               || x->elements != 2))
                {
                    fprintf(stderr, "ebd redrive: entry %s not moved: %s\n",
                            e->element[0]->str,
                            x->type == REDIS_REPLY_ERROR ? x->str
                                                         : "transaction failed");
                    freeReplyObject(x);
                    freeReplyObject(r);
                    redisFree(c);
                    return 1;
                }
                freeReplyObject(x);
            }

            moved++;
            if (o->limit && moved >= o->limit) {
                done = 1;
                break;
            }
        }

        freeReplyObject(r);
    }

    redisFree(c);
    printf("redriven %lld dead letter%s from %s to %s\n", moved,
           moved == 1 ? "" : "s", dlq, stream);
    return 0;
}
