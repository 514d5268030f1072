/*
 * GET api/overview?bus=B&range=hour|day: the bus's counters per minute
 * (last hour) or per hour (last day), from ebd's eb:{B}:stats:m:M and
 * eb:{B}:stats:h:H hashes, and per target its backlog (the ebd consumer
 * group's lag and pending entries, XINFO GROUPS) and its dead letters
 * (XLEN) now, and over the range the samples ebd takes of both every
 * 15 s (backlog:T and dlq:T of the same buckets: ebd_stats_sample.c).
 * One MULTI/EXEC of at most 60 + 2 x targets commands.
 */

#include "ngx_http_eventbridge_console.h"
#include "eb_order.h"


#define EB_OVERVIEW_TARGETS_MAX  256


typedef struct {
    int64_t      delivered;
    int64_t      retried;
    int64_t      failed;
} ngx_http_eventbridge_target_sum_t;


typedef struct {
    size_t                              *targets;   /* config indexes */
    unsigned                            *parts;     /* in order: partitions */
    ngx_uint_t                           ntargets;
    ngx_uint_t                           buckets;
    time_t                               first;     /* bucket start */
    ngx_uint_t                           step;      /* seconds */
} ngx_http_eventbridge_overview_t;


/* a target in order per key: its backlog over its partitions */
static ngx_str_t  ngx_http_eventbridge_groups_lua =
    ngx_string(EB_ORDER_GROUPS_LUA);


static void ngx_http_eventbridge_overview_reply(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);


/* the targets the bus's rules send to, each once */
static ngx_uint_t
ngx_http_eventbridge_bus_targets(const eb_config_bus_t *bus, size_t *out,
    ngx_uint_t max)
{
    size_t      i, k, t;
    ngx_uint_t  n, j;

    n = 0;

    for (i = 0; i < bus->nrules; i++) {
        for (k = 0; k < bus->rules[i].ntargets; k++) {
            t = bus->rules[i].targets[k].target;

            for (j = 0; j < n && out[j] != t; j++) { /* void */ }

            if (j == n && n < max) {
                out[n++] = t;
            }
        }
    }

    return n;
}


static ngx_int_t
ngx_http_eventbridge_overview_sum(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *name, unsigned parts)
{
    u_char      *p;
    unsigned     i;
    ngx_str_t   *argv, part;

    argv = ngx_palloc(cn->r->pool, (parts + 5) * sizeof(ngx_str_t));
    p = ngx_pnalloc(cn->r->pool, NGX_INT_T_LEN);
    if (argv == NULL || p == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_eventbridge_groups_lua;
    argv[2].data = p;
    argv[2].len = ngx_sprintf(p, "%ui", (ngx_uint_t) parts + 1) - p;

    if (ngx_http_eventbridge_console_key(cn, &argv[3], "target:%V", name)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < parts; i++) {
        part.data = ngx_pnalloc(cn->r->pool, name->len + 3 + NGX_INT_T_LEN);
        if (part.data == NULL) {
            return NGX_ERROR;
        }
        part.len = ngx_sprintf(part.data, "%V:p:%ui", name, (ngx_uint_t) i)
                   - part.data;

        if (ngx_http_eventbridge_console_key(cn, &argv[4 + i], "target:%V",
                                             &part)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    ngx_str_set(&argv[4 + parts], "ebd");

    return ngx_http_eventbridge_console_cmd(cn, parts + 5, argv);
}


ngx_int_t
ngx_http_eventbridge_console_api_overview(ngx_http_eventbridge_console_t *cn)
{
    u_char                           num[NGX_INT64_LEN];
    ngx_int_t                        rc;
    ngx_str_t                        range, argv[3], name;
    ngx_uint_t                       i, b;
    const eb_config_t               *cf;
    ngx_http_eventbridge_overview_t *ov;

    if (ngx_http_eventbridge_console_bus(cn) != NGX_OK) {
        return cn->rc;
    }

    rc = ngx_http_eventbridge_console_arg(cn->r, "range", &range);
    if (rc == NGX_ERROR) {
        return cn->rc;
    }

    if (rc == NGX_DECLINED || (range.len == 4
                               && ngx_strncmp(range.data, "hour", 4) == 0))
    {
        cn->range_day = 0;

    } else if (range.len == 3 && ngx_strncmp(range.data, "day", 3) == 0) {
        cn->range_day = 1;

    } else {
        return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_BAD_REQUEST,
                                                  "InvalidParameter",
                                                  "parameter \"range\": "
                                                  "\"hour\" or \"day\"");
    }

    ov = ngx_pcalloc(cn->r->pool, sizeof(ngx_http_eventbridge_overview_t));
    if (ov == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ov->targets = ngx_palloc(cn->r->pool,
                             EB_OVERVIEW_TARGETS_MAX * sizeof(size_t));
    if (ov->targets == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cn->data = ov;
    cf = cn->mcf->config;
    ov->ntargets = ngx_http_eventbridge_bus_targets(cn->bus->conf,
                                                    ov->targets,
                                                    EB_OVERVIEW_TARGETS_MAX);
    ov->step = cn->range_day ? 3600 : 60;
    ov->buckets = cn->range_day ? 24 : 60;
    ov->first = (cn->now / ov->step - (ov->buckets - 1)) * ov->step;

    ngx_str_set(&argv[0], "HGETALL");

    for (b = 0; b < ov->buckets; b++) {
        name.data = num;
        name.len = ngx_sprintf(num, "%T", (time_t) (ov->first / ov->step + b))
                   - num;

        if (ngx_http_eventbridge_console_key(cn, &argv[1],
                                             cn->range_day ? "stats:h:%V"
                                                           : "stats:m:%V",
                                             &name)
            != NGX_OK
            || ngx_http_eventbridge_console_cmd(cn, 2, argv) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ov->parts = ngx_pcalloc(cn->r->pool,
                            (ov->ntargets + 1) * sizeof(unsigned));
    if (ov->parts == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < ov->ntargets; i++) {
        name.data = (u_char *) cf->targets[ov->targets[i]].name;
        name.len = ngx_strlen(name.data);

        ov->parts[i] = eb_order_bus_partitions(cn->bus->conf,
                                               ov->targets[i]);

        if (ov->parts[i]) {
            if (ngx_http_eventbridge_overview_sum(cn, &name, ov->parts[i])
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else {
            ngx_str_set(&argv[0], "XINFO");
            ngx_str_set(&argv[1], "GROUPS");

            if (ngx_http_eventbridge_console_key(cn, &argv[2], "target:%V",
                                                 &name)
                != NGX_OK
                || ngx_http_eventbridge_console_cmd(cn, 3, argv) != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        ngx_str_set(&argv[0], "XLEN");

        if (ngx_http_eventbridge_console_key(cn, &argv[1], "dlq:%V", &name)
            != NGX_OK
            || ngx_http_eventbridge_console_cmd(cn, 2, argv) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_eventbridge_console_query(cn,
                                          ngx_http_eventbridge_overview_reply,
                                          1);
}


static void
ngx_http_eventbridge_overview_summed(yajl_gen g, redisReply *r)
{
    ngx_uint_t  i;

    static const char  *names[] = { "lag", "pending" };

    for (i = 0; i < 2; i++) {
        ngx_http_eventbridge_console_str(g, names[i]);

        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3
            && r->element[0]->type == REDIS_REPLY_INTEGER
            && r->element[0]->integer == 1
            && r->element[i + 1]->type == REDIS_REPLY_INTEGER)
        {
            ngx_http_eventbridge_console_int(g, r->element[i + 1]->integer);
        } else {
            (void) yajl_gen_null(g);
        }
    }
}


static int64_t
ngx_http_eventbridge_reply_int(redisReply *e)
{
    if (e == NULL) {
        return 0;
    }

    if (e->type == REDIS_REPLY_INTEGER) {
        return e->integer;
    }

    if (e->type == REDIS_REPLY_STRING) {
        return ngx_atoof((u_char *) e->str, e->len) > 0
               ? ngx_atoof((u_char *) e->str, e->len) : 0;
    }

    return 0;
}


/* the field's counter, or 0 */
static int64_t
ngx_http_eventbridge_stat(redisReply *hash, const char *prefix,
    const char *target)
{
    u_char       name[300];
    redisReply  *v;

    if (target) {
        ngx_snprintf(name, sizeof(name) - 1, "%s:%s%Z", prefix, target);
        v = ngx_http_eventbridge_console_field(hash, (char *) name);

    } else {
        v = ngx_http_eventbridge_console_field(hash, prefix);
    }

    return ngx_http_eventbridge_reply_int(v);
}


/* the sum of every FIELD:* of a hash */
static int64_t
ngx_http_eventbridge_stat_all(redisReply *hash, const char *prefix)
{
    size_t   i, len;
    int64_t  sum;

    if (hash == NULL || hash->type != REDIS_REPLY_ARRAY) {
        return 0;
    }

    len = ngx_strlen(prefix);
    sum = 0;

    for (i = 0; i + 1 < hash->elements; i += 2) {
        if (hash->element[i]->type == REDIS_REPLY_STRING
            && hash->element[i]->len > len
            && ngx_strncmp(hash->element[i]->str, prefix, len) == 0
            && hash->element[i]->str[len] == ':')
        {
            sum += ngx_http_eventbridge_reply_int(hash->element[i + 1]);
        }
    }

    return sum;
}


/* "key": a sampled gauge FIELD:TARGET of a bucket, or null */
static void
ngx_http_eventbridge_sample(yajl_gen g, redisReply *hash, const char *key,
    const char *field, const char *target)
{
    u_char       name[300];
    redisReply  *v;

    ngx_snprintf(name, sizeof(name) - 1, "%s:%s%Z", field, target);
    v = ngx_http_eventbridge_console_field(hash, (char *) name);

    ngx_http_eventbridge_console_str(g, key);

    if (v != NULL && v->type == REDIS_REPLY_STRING) {
        ngx_http_eventbridge_console_int(g,
                                         ngx_http_eventbridge_reply_int(v));
    } else {
        (void) yajl_gen_null(g);
    }
}


static void
ngx_http_eventbridge_overview_reply(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    size_t                              i, k;
    int64_t                             v, totals[5];
    yajl_gen                            g;
    redisReply                         *h, *groups, *grp, *f;
    ngx_uint_t                          t, s;
    const char                         *name;
    const eb_config_t                  *cf = cn->mcf->config;
    ngx_http_eventbridge_overview_t    *ov = cn->data;
    static const char                  *kinds[] = {
        "accepted", "matched", "delivered", "retried", "failed"
    };

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != ov->buckets + 2 * ov->ntargets
        || ngx_http_eventbridge_console_gen(cn) != NGX_OK)
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return;
    }

    g = cn->g;
    ngx_memzero(totals, sizeof(totals));

    (void) yajl_gen_map_open(g);
    ngx_http_eventbridge_console_str(g, "bus");
    ngx_http_eventbridge_console_strn(g, cn->bus_name.data, cn->bus_name.len);
    ngx_http_eventbridge_console_str(g, "range");
    ngx_http_eventbridge_console_str(g, cn->range_day ? "day" : "hour");
    ngx_http_eventbridge_console_str(g, "step");
    ngx_http_eventbridge_console_int(g, ov->step);
    ngx_http_eventbridge_console_str(g, "from");
    ngx_http_eventbridge_console_int(g, ov->first);
    ngx_http_eventbridge_console_str(g, "to");
    ngx_http_eventbridge_console_int(g, cn->now);

    ngx_http_eventbridge_console_str(g, "series");
    (void) yajl_gen_array_open(g);

    for (i = 0; i < ov->buckets; i++) {
        h = reply->element[i];

        (void) yajl_gen_map_open(g);
        ngx_http_eventbridge_console_str(g, "t");
        ngx_http_eventbridge_console_int(g, ov->first + i * ov->step);

        for (k = 0; k < 5; k++) {
            v = k < 2 ? ngx_http_eventbridge_stat(h, kinds[k], NULL)
                      : ngx_http_eventbridge_stat_all(h, kinds[k]);
            totals[k] += v;
            ngx_http_eventbridge_console_str(g, kinds[k]);
            ngx_http_eventbridge_console_int(g, v);
        }

        (void) yajl_gen_map_close(g);
    }

    (void) yajl_gen_array_close(g);

    ngx_http_eventbridge_console_str(g, "totals");
    (void) yajl_gen_map_open(g);

    for (k = 0; k < 5; k++) {
        ngx_http_eventbridge_console_str(g, kinds[k]);
        ngx_http_eventbridge_console_int(g, totals[k]);
    }

    (void) yajl_gen_map_close(g);

    /* per second over the range's span up to now */
    ngx_http_eventbridge_console_str(g, "per_second");
    (void) yajl_gen_map_open(g);

    for (k = 0; k < 5; k++) {
        ngx_http_eventbridge_console_str(g, kinds[k]);
        (void) yajl_gen_double(g, (double) totals[k]
                                  / (double) ngx_max(cn->now - ov->first, 1));
    }

    (void) yajl_gen_map_close(g);

    ngx_http_eventbridge_console_str(g, "targets");
    (void) yajl_gen_array_open(g);

    for (t = 0; t < ov->ntargets; t++) {
        name = cf->targets[ov->targets[t]].name;

        (void) yajl_gen_map_open(g);
        ngx_http_eventbridge_console_str(g, "name");
        ngx_http_eventbridge_console_str(g, name);

        for (k = 2; k < 5; k++) {
            v = 0;

            for (s = 0; s < ov->buckets; s++) {
                v += ngx_http_eventbridge_stat(reply->element[s], kinds[k],
                                               name);
            }

            ngx_http_eventbridge_console_str(g, kinds[k]);
            ngx_http_eventbridge_console_int(g, v);
        }

        /* the ebd group; a stream not made yet answers an error: null */
        groups = reply->element[ov->buckets + 2 * t];
        grp = NULL;

        if (ov->parts[t]) {
            /* summed over the partitions: {known, lag, pending} */
            ngx_http_eventbridge_overview_summed(g, groups);
            goto dead_letters;
        }

        for (i = 0; groups->type == REDIS_REPLY_ARRAY
                    && i < groups->elements; i++)
        {
            f = ngx_http_eventbridge_console_field(groups->element[i],
                                                   "name");
            if (f && f->type == REDIS_REPLY_STRING && f->len == 3
                && ngx_strncmp(f->str, "ebd", 3) == 0)
            {
                grp = groups->element[i];
            }
        }

        ngx_http_eventbridge_console_str(g, "lag");
        f = ngx_http_eventbridge_console_field(grp, "lag");
        if (f && f->type == REDIS_REPLY_INTEGER) {
            ngx_http_eventbridge_console_int(g, f->integer);
        } else {
            (void) yajl_gen_null(g);
        }

        ngx_http_eventbridge_console_str(g, "pending");
        f = ngx_http_eventbridge_console_field(grp, "pending");
        if (f && f->type == REDIS_REPLY_INTEGER) {
            ngx_http_eventbridge_console_int(g, f->integer);
        } else {
            (void) yajl_gen_null(g);
        }

    dead_letters:

        ngx_http_eventbridge_console_str(g, "dead_letters");
        ngx_http_eventbridge_console_int(g,
            ngx_http_eventbridge_reply_int(reply->element[ov->buckets
                                                          + 2 * t + 1]));

        /* ebd's samples, bucket by bucket: null where none was taken */
        ngx_http_eventbridge_console_str(g, "series");
        (void) yajl_gen_array_open(g);

        for (s = 0; s < ov->buckets; s++) {
            (void) yajl_gen_map_open(g);
            ngx_http_eventbridge_console_str(g, "t");
            ngx_http_eventbridge_console_int(g, ov->first + s * ov->step);
            ngx_http_eventbridge_sample(g, reply->element[s], "backlog",
                                        "backlog", name);
            ngx_http_eventbridge_sample(g, reply->element[s], "dead_letters",
                                        "dlq", name);
            (void) yajl_gen_map_close(g);
        }

        (void) yajl_gen_array_close(g);

        (void) yajl_gen_map_close(g);
    }

    (void) yajl_gen_array_close(g);
    (void) yajl_gen_map_close(g);

    ngx_http_eventbridge_console_end(cn);
}
