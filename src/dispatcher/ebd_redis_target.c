/*
 * The `redis` target: appends each event (the rule's transform output) to
 * a stream of another Redis, or of the same one, with XADD [MAXLEN ~ N]:
 * fields `event` (the payload) and `from` ("BUS/RULE"), and `replay`
 * (its name) for an entry of ebd replay, so that another system, or
 * another bus's reader, takes over from there.
 *
 * Chaining buses: when the stream is `eb:{BUS}:events` of a bus of the
 * configuration, the event enters that bus as nginx would have put it
 * there: its rules are matched here and the event (field `rules`: the
 * matched rules) and one entry per matched (rule, target) are written in
 * one MULTI/EXEC. A bus whose rules send to this very target is refused
 * (the event would go round for ever).
 *
 * One connection per target (pipelined); each attempt has its own
 * timer, since hiredis 0.14 has no command timeout: an attempt that
 * times out is retried, and a connection that stopped answering is
 * dropped and made again.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eb_buf.h"
#include "eb_pattern.h"
#include "ebd.h"
#include "ebd_topology.h"
#include "ebd_log.h"
#include "ebd_secret.h"


typedef struct {
    ebd_conn_t        *conn;
    ebd_opts_t         opts;       /* password and db of the target */
    char               maxlen[24];
    const char        *stream;
    char              *name;
    char              *password;   /* ebd_secret_load() */
    struct ebd_rt_req_s  *reqs;    /* sent, their replies due */

    /* chaining into a bus */
    const eb_config_bus_t  *bus;
    eb_match_scratch_t     *scratch;
    uint32_t               *ids;
    eb_buf_t                rules;
} ebd_rt_t;


typedef struct ebd_rt_req_s  ebd_rt_req_t;

struct ebd_rt_req_s {
    ebd_delivery_t    *d;
    ebd_rt_t          *rt;
    struct event      *timer;
    int                done;
    ebd_rt_req_t      *prev;       /* rt->reqs: those sent, not answered */
    ebd_rt_req_t      *next;
};


/* Whether the stream is a configured bus's events stream, and if so
 * whether chaining into it is safe. Returns 0, or -1 with err. */
static int
ebd_rt_chain(ebd_target_t *t, ebd_rt_t *rt, char *err, size_t errlen)
{
    size_t                  len, i, j, k;
    const char             *s = rt->stream, *end;
    const eb_config_bus_t  *bus;

    len = strlen(s);
    if (t->config == NULL || len < 13 || strncmp(s, "eb:{", 4) != 0
        || strcmp(s + len - 8, "}:events") != 0)
    {
        return 0;
    }

    end = s + len - 8;
    bus = eb_config_bus(t->config, s + 4, (size_t) (end - (s + 4)));
    if (bus == NULL) {
        return 0;
    }

    for (i = 0; i < bus->nrules; i++) {
        for (j = 0; j < bus->rules[i].ntargets; j++) {
            k = bus->rules[i].targets[j].target;
            if (&t->config->targets[k] == t->conf) {
                snprintf(err, errlen, "stream \"%s\": rule \"%s\" of bus "
                         "\"%s\" sends back to this target: a loop", s,
                         bus->rules[i].name, bus->name);
                return -1;
            }
        }
    }

    rt->scratch = eb_match_scratch_new();
    rt->ids = calloc(bus->nrules ? bus->nrules : 1, sizeof(uint32_t));
    if (rt->scratch == NULL || rt->ids == NULL) {
        eb_match_scratch_free(rt->scratch);
        free(rt->ids);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    rt->bus = bus;
    return 0;
}


static int
ebd_rt_open(ebd_target_t *t, char *err, size_t errlen)
{
    char        e[256];
    size_t      len;
    yajl_val    spec = t->conf->spec, v;
    ebd_rt_t   *rt;
    ebd_addr_t  addr;

    if (ebd_addr_parse(YAJL_GET_STRING(eb_config_get(spec, "address")), &addr,
                       e, sizeof(e)) != 0)
    {
        snprintf(err, errlen, "address: %s", e);
        return -1;
    }

    /* once, when the configuration is opened: hiredis would resolve a
     * host name at every reconnection, on the loop */
    if (ebd_addr_resolve(&addr, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "address: %s", e);
        return -1;
    }

    rt = calloc(1, sizeof(ebd_rt_t));
    if (rt == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    rt->stream = YAJL_GET_STRING(eb_config_get(spec, "stream"));
    eb_buf_init(&rt->rules);

    if (ebd_rt_chain(t, rt, err, errlen) != 0) {
        free(rt);
        return -1;
    }

    v = eb_config_get(spec, "maxlen");
    if (v && YAJL_IS_INTEGER(v)) {
        snprintf(rt->maxlen, sizeof(rt->maxlen), "%lld", YAJL_GET_INTEGER(v));
    }

    if (ebd_secret_load(spec, "password", &rt->password, &len, err, errlen)
        != 0)
    {
        free(rt);
        return -1;
    }
    rt->opts.redis_password = rt->password;
    v = eb_config_get(spec, "db");
    rt->opts.redis_db = v && YAJL_IS_INTEGER(v) ? (int) YAJL_GET_INTEGER(v)
                                                 : 0;

    rt->name = malloc(strlen(t->name) + 16);
    if (rt->name == NULL) {
        ebd_secret_free(rt->password);
        free(rt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sprintf(rt->name, "target %s", t->name);

    rt->conn = ebd_conn_new(t->base, rt->name, &rt->opts, &addr, NULL, NULL);
    if (rt->conn == NULL) {
        ebd_secret_free(rt->password);
        free(rt->name);
        free(rt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    t->data = rt;
    return 0;
}


static void
ebd_rt_unlink(ebd_rt_req_t *q)
{
    if (q->prev) {
        q->prev->next = q->next;
    } else {
        q->rt->reqs = q->next;
    }
    if (q->next) {
        q->next->prev = q->prev;
    }
}


static void
ebd_rt_finish(ebd_rt_req_t *q, ebd_result_t *res)
{
    q->done = 1;
    evtimer_del(q->timer);
    ebd_delivery_done(q->d, res);
}


static void
ebd_rt_timeout(evutil_socket_t fd, short what, void *arg)
{
    ebd_result_t   res;
    ebd_rt_req_t  *q = arg;

    ebd_result_set(&res, EBD_RETRY, 0, "no reply from Redis within %llu ms",
                   (unsigned long long) q->d->target->timeout_ms);
    ebd_rt_finish(q, &res);

    /* the reply may still come: the request is freed then */
    ebd_conn_reset(q->rt->conn);
}


static void
ebd_rt_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply    *r = reply;
    ebd_result_t   res;
    ebd_rt_req_t  *q = privdata;

    if (!q->done) {
        if (r == NULL) {
            ebd_result_set(&res, EBD_RETRY, 0, "connection to Redis lost");

        } else if (r->type == REDIS_REPLY_ERROR) {
            /* a busy, loading or read-only server comes back; anything
             * else (WRONGTYPE, a bad stream name) will not */
            int  transient = strncmp(r->str, "LOADING", 7) == 0
                             || strncmp(r->str, "OOM", 3) == 0
                             || strncmp(r->str, "READONLY", 8) == 0
                             || strncmp(r->str, "MASTERDOWN", 10) == 0
                             || strncmp(r->str, "BUSY", 4) == 0
                             || strncmp(r->str, "TRYAGAIN", 8) == 0
                             || strncmp(r->str, "CLUSTERDOWN", 11) == 0
                             || strncmp(r->str, "NOAUTH", 6) == 0;
            ebd_result_set(&res, transient ? EBD_RETRY : EBD_REJECTED, 0,
                           "Redis: %.200s", r->str);

        } else if (r->type == REDIS_REPLY_NIL) {
            ebd_result_set(&res, EBD_RETRY, 0, "Redis: transaction aborted");

        } else {
            /* EXEC: a command of the transaction may have failed alone */
            size_t  i;

            ebd_result_set(&res, EBD_DELIVERED, 0, NULL);
            for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
            {
                if (r->element[i]->type == REDIS_REPLY_ERROR) {
                    ebd_result_set(&res, EBD_REJECTED, 0, "Redis: %.200s",
                                   r->element[i]->str);
                    break;
                }
            }
        }

        ebd_rt_finish(q, &res);
    }

    if (q->rt != NULL) {
        ebd_rt_unlink(q);
    }
    event_free(q->timer);
    free(q);
}


/* XADD stream [MAXLEN ~ N] * event PAYLOAD [field value] from FROM, into
 * argv/argvlen (12 slots); returns the count. */
static int
ebd_rt_xadd(ebd_rt_t *rt, ebd_delivery_t *d, const char **argv,
    size_t *argvlen, const char *field, const char *value, const char *from)
{
    int  i, argc;

    argc = 0;
    argv[argc++] = "XADD";
    argv[argc++] = rt->stream;
    if (rt->maxlen[0]) {
        argv[argc++] = "MAXLEN";
        argv[argc++] = "~";
        argv[argc++] = rt->maxlen;
    }
    argv[argc++] = "*";
    argv[argc++] = "event";
    argv[argc++] = (const char *) d->payload;
    if (field) {
        argv[argc++] = field;
        argv[argc++] = value;
    }
    argv[argc++] = "from";
    argv[argc++] = from;

    for (i = 0; i < argc; i++) {
        argvlen[i] = argv[i] == (const char *) d->payload ? d->payload_len
                                                          : strlen(argv[i]);
    }

    return argc;
}


/* The event into a bus: MULTI, the events entry, an entry per matched
 * (rule, target), EXEC (whose reply ends the attempt). Returns 0, or -1
 * with the result in res. */
static int
ebd_rt_chain_send(ebd_target_t *t, ebd_rt_t *rt, ebd_delivery_t *d,
    ebd_rt_req_t *q, const char *from, ebd_result_t *res)
{
    int                       n, i, argc, ok;
    char                      key[600];
    size_t                    j, argvlen[12];
    const char               *argv[12];
    const char               *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
    const eb_config_rule_t   *ru;
    const eb_config_bus_t    *bus = rt->bus;

    n = eb_ruleset_match_json(bus->ruleset, rt->scratch, d->payload,
                              d->payload_len, rt->ids, bus->nrules);
    if (n > (int) bus->nrules) {
        n = (int) bus->nrules;
    }

    if (n < 0) {
        ebd_result_set(res, EBD_REJECTED, 0, "not an event bus \"%s\" can "
                       "take (a JSON object)", bus->name);
        return -1;
    }

    eb_buf_reset(&rt->rules);
    for (i = 0; i < n; i++) {
        if (i) {
            eb_buf_append(&rt->rules, ",", 1);
        }
        eb_buf_append_str(&rt->rules, bus->rules[rt->ids[i]].name);
    }
    eb_buf_append(&rt->rules, "", 1);
    if (rt->rules.failed) {
        ebd_result_set(res, EBD_RETRY, 0, "out of memory");
        return -1;
    }

    ok = ebd_conn_command(rt->conn, NULL, NULL, 1, multi, NULL) == 0;

    argc = ebd_rt_xadd(rt, d, argv, argvlen, "rules",
                       (const char *) rt->rules.data, from);
    ok = ok && ebd_conn_command(rt->conn, NULL, NULL, argc, argv, argvlen)
               == 0;

    for (i = 0; i < n && ok; i++) {
        ru = &bus->rules[rt->ids[i]];
        for (j = 0; j < ru->ntargets && ok; j++) {
            snprintf(key, sizeof(key), "eb:{%s}:target:%s", bus->name,
                     t->config->targets[ru->targets[j].target].name);
            argv[0] = "XADD";
            argv[1] = key;
            argv[2] = "*";
            argv[3] = "event";
            argv[4] = (const char *) d->payload;
            argv[5] = "rule";
            argv[6] = ru->name;
            for (argc = 0; argc < 7; argc++) {
                argvlen[argc] = argc == 4 ? d->payload_len : strlen(argv[argc]);
            }
            ok = ebd_conn_command(rt->conn, NULL, NULL, 7, argv, argvlen) == 0;
        }
    }

    /* a connection lost on the way discards the whole transaction */
    ok = ok && ebd_conn_command(rt->conn, ebd_rt_reply, q, 1, exec, NULL) == 0;

    if (!ok) {
        /* never leave a MULTI open on the connection */
        ebd_conn_reset(rt->conn);
        ebd_result_set(res, EBD_RETRY, 0, "not connected to Redis");
        return -1;
    }

    return 0;
}


static void
ebd_rt_deliver(ebd_target_t *t, ebd_delivery_t *d)
{
    int             argc;
    char            from[512];
    size_t          argvlen[12];
    const char     *argv[12];
    ebd_rt_t       *rt = t->data;
    ebd_result_t    res;
    ebd_rt_req_t   *q;
    struct timeval  tv;

    q = calloc(1, sizeof(ebd_rt_req_t));
    if (q == NULL || (q->timer = evtimer_new(t->base, ebd_rt_timeout, q))
                     == NULL)
    {
        free(q);
        ebd_delivery_done(d, ebd_result_set(&res, EBD_RETRY, 0,
                                            "out of memory"));
        return;
    }

    q->d = d;
    q->rt = rt;

    snprintf(from, sizeof(from), "%s/%s", d->bus, d->rule);

    if (rt->bus) {
        if (ebd_rt_chain_send(t, rt, d, q, from, &res) != 0) {
            event_free(q->timer);
            free(q);
            ebd_delivery_done(d, &res);
            return;
        }
        goto sent;
    }

    /* a replayed delivery says so, as the http drivers' "replay" */
    argc = ebd_rt_xadd(rt, d, argv, argvlen, d->replay ? "replay" : NULL,
                       d->replay, from);

    if (ebd_conn_command(rt->conn, ebd_rt_reply, q, argc, argv, argvlen)
        != 0)
    {
        event_free(q->timer);
        free(q);
        ebd_delivery_done(d, ebd_result_set(&res, EBD_RETRY, 0,
                                            "not connected to Redis"));
        return;
    }

sent:

    q->next = rt->reqs;
    if (rt->reqs) {
        rt->reqs->prev = q;
    }
    rt->reqs = q;

    tv.tv_sec = t->timeout_ms / 1000;
    tv.tv_usec = (t->timeout_ms % 1000) * 1000;
    evtimer_add(q->timer, &tv);
}


static void
ebd_rt_close(ebd_target_t *t)
{
    ebd_rt_t      *rt = t->data;
    ebd_rt_req_t  *q;

    if (rt) {
        /* attempts still in flight (a teardown after the grace time)
         * belong to items that are gone: their replies, which freeing
         * the connection delivers now or later, must not end them */
        for (q = rt->reqs; q; q = q->next) {
            q->done = 1;
            q->rt = NULL;
            evtimer_del(q->timer);
        }
        rt->reqs = NULL;

        /* replies still due free their requests from here */
        ebd_conn_free(rt->conn);
        eb_match_scratch_free(rt->scratch);
        free(rt->ids);
        eb_buf_free(&rt->rules);
        ebd_secret_free(rt->password);
        free(rt->name);
        free(rt);
        t->data = NULL;
    }
}


const ebd_driver_t  ebd_redis_driver = {
    "redis", ebd_rt_open, ebd_rt_deliver, ebd_rt_close, 0
};
