/*
 * Replays from the console. An nginx worker does not run one (a replay
 * is many Redis round trips, minutes long): it checks what `ebd replay`
 * checks that nginx can know and writes a request, the state hash the
 * engine itself writes (ebd_replay.c: the same fields, one format, two
 * writers) with state "requested"; worker 0 of an ebd runs it
 * (ebd_replay_runner.c).
 *
 * - POST api/replay {"bus", "from", "to", "rules"?: [..], "targets"?:
 *   [..], "rate"?, "name"?} (times in ms since the epoch): 202 with the
 *   request, 200 when the same replay exists (its state), 409 when the
 *   name is taken by another window or selection.
 * - GET api/replays?bus=B&limit: the bus's replays, newest first.
 */

#include "ngx_http_eventbridge_console.h"


/* KEYS: state hash, index. ARGV: from, to, rules, targets, rate ("" for
 * none), now, name. Returns {2} made, {1, state} the same replay, {0,
 * from, to, rules, targets} another one under the name. */
static ngx_str_t  ngx_http_eventbridge_replay_lua = ngx_string(
    "local h = redis.call('HMGET', KEYS[1], 'from', 'to', 'rules', "
    "                     'targets', 'state') "
    "if h[1] or redis.call('EXISTS', KEYS[1]) == 1 then "
    "  if h[1] == ARGV[1] and h[2] == ARGV[2] and h[3] == ARGV[3] "
    "     and h[4] == ARGV[4] then "
    "    return {1, h[5] or ''} "
    "  end "
    "  return {0, h[1] or '', h[2] or '', h[3] or '', h[4] or ''} "
    "end "
    "redis.call('HSET', KEYS[1], 'from', ARGV[1], 'to', ARGV[2], "
    "           'from_arg', ARGV[1], 'to_arg', ARGV[2], 'rules', ARGV[3], "
    "           'targets', ARGV[4], 'cursor', '', 'state', 'requested', "
    "           'started', ARGV[6], 'updated', ARGV[6], 'events', 0, "
    "           'deliveries', 0) "
    "if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'rate', ARGV[5]) end "
    "redis.call('ZADD', KEYS[2], 'NX', ARGV[6], ARGV[7]) "
    "return {2}");


/* KEYS: index. ARGV: prefix of the state keys, count. The newest
 * replays' names and fields. */
static ngx_str_t  ngx_http_eventbridge_replays_lua = ngx_string(
    "local out = {} "
    "for i, n in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, "
    "                              tonumber(ARGV[2]) - 1)) do "
    "  out[i] = {n, redis.call('HGETALL', ARGV[1] .. n)} "
    "end "
    "return {out, redis.call('ZCARD', KEYS[1])}");


static void ngx_http_eventbridge_replay_written(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);
static void ngx_http_eventbridge_replays_page(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);


static ngx_int_t
ngx_http_eventbridge_replay_invalid(ngx_http_eventbridge_console_t *cn,
    const char *msg)
{
    return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_BAD_REQUEST,
                                              "InvalidParameter", "%s", msg);
}


static ngx_int_t
ngx_http_eventbridge_replay_num(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *out, int64_t n)
{
    out->data = ngx_pnalloc(cn->r->pool, NGX_INT64_LEN);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_sprintf(out->data, "%L", n) - out->data;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_eventbridge_replay_is(const eb_console_str_t *s, const char *name)
{
    return ngx_strlen(name) == s->len
           && ngx_strncmp(name, s->data, s->len) == 0;
}


static const eb_config_rule_t *
ngx_http_eventbridge_replay_rule(const eb_config_bus_t *bus,
    const eb_console_str_t *s)
{
    size_t  i;

    for (i = 0; i < bus->nrules; i++) {
        if (ngx_http_eventbridge_replay_is(s, bus->rules[i].name)) {
            return &bus->rules[i];
        }
    }

    return NULL;
}


/* The selection as ebd_replay_init() checks it: the rules exist and are
 * enabled (none given: the enabled ones), the targets are sent to by a
 * selected rule, and some target is left. NGX_OK or answered. */
static ngx_int_t
ngx_http_eventbridge_replay_select(ngx_http_eventbridge_console_t *cn,
    const eb_console_list_t *rules, const eb_console_list_t *targets,
    ngx_int_t *rc)
{
    size_t                   i, j, k;
    u_char                  *on;
    ngx_str_t                name;
    ngx_uint_t               any, sent;
    const eb_config_t       *cf;
    const eb_config_bus_t   *bus;
    const eb_config_rule_t  *rule;

    cf = cn->mcf->config;
    bus = cn->bus->conf;

    on = ngx_pcalloc(cn->r->pool, bus->nrules + 1);
    if (on == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    for (i = 0; i < bus->nrules; i++) {
        on[i] = rules->n == 0 && bus->rules[i].enabled;
    }

    for (i = 0; i < rules->n; i++) {
        rule = ngx_http_eventbridge_replay_rule(bus, &rules->items[i]);

        if (rule == NULL) {
            name.data = (u_char *) rules->items[i].data;
            name.len = rules->items[i].len;
            *rc = ngx_http_eventbridge_console_error(cn->r,
                                        NGX_HTTP_NOT_FOUND, "NotFound",
                                        "\"rules\": bus \"%V\" has no rule "
                                        "\"%V\"", &cn->bus_name, &name);
            return NGX_ERROR;
        }

        if (!rule->enabled) {
            *rc = ngx_http_eventbridge_replay_invalid(cn,
                                        "\"rules\": a disabled rule matches "
                                        "nothing");
            return NGX_ERROR;
        }

        on[rule - bus->rules] = 1;
    }

    any = 0;

    for (k = 0; k < cf->ntargets; k++) {
        sent = 0;

        for (i = 0; i < bus->nrules && !sent; i++) {
            for (j = 0; on[i] && j < bus->rules[i].ntargets; j++) {
                sent |= bus->rules[i].targets[j].target == k;
            }
        }

        if (targets->n == 0) {
            any += sent;
            continue;
        }

        for (i = 0; i < targets->n; i++) {
            if (ngx_http_eventbridge_replay_is(&targets->items[i],
                                               cf->targets[k].name))
            {
                if (!sent) {
                    *rc = ngx_http_eventbridge_console_error(cn->r,
                                        NGX_HTTP_BAD_REQUEST,
                                        "InvalidParameter",
                                        "\"targets\": no selected rule of bus "
                                        "\"%V\" sends to target \"%s\"",
                                        &cn->bus_name, cf->targets[k].name);
                    return NGX_ERROR;
                }

                any++;
                break;
            }
        }
    }

    for (i = 0; i < targets->n; i++) {
        for (k = 0; k < cf->ntargets; k++) {
            if (ngx_http_eventbridge_replay_is(&targets->items[i],
                                               cf->targets[k].name))
            {
                break;
            }
        }

        if (k == cf->ntargets) {
            name.data = (u_char *) targets->items[i].data;
            name.len = targets->items[i].len;
            *rc = ngx_http_eventbridge_console_error(cn->r,
                                        NGX_HTTP_NOT_FOUND, "NotFound",
                                        "\"targets\": no target \"%V\"",
                                        &name);
            return NGX_ERROR;
        }
    }

    if (any == 0) {
        *rc = ngx_http_eventbridge_replay_invalid(cn,
                                        "\"rules\": the selected rules send "
                                        "to no target: nothing to replay");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_api_replay(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *body)
{
    char                 *buf;
    int64_t               now;
    ngx_int_t             rc;
    ngx_str_t             bus, name, argv[12];
    const char           *msg;
    eb_console_replay_t  *rp;

    /* the body's strings and rp live as long as the request: the answer
     * is written from them */
    buf = ngx_pnalloc(cn->r->pool, body->len + 1);
    rp = ngx_palloc(cn->r->pool, sizeof(eb_console_replay_t));
    if (buf == NULL || rp == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_time_update();
    now = (int64_t) ngx_cached_time->sec * 1000 + ngx_cached_time->msec;

    msg = eb_console_replay_parse(body->data, body->len, now, buf,
                                  body->len + 1, rp);
    if (msg) {
        return ngx_http_eventbridge_replay_invalid(cn, msg);
    }

    bus.data = (u_char *) rp->bus.data;
    bus.len = rp->bus.len;

    cn->bus = cn->mcf->config
              ? ngx_http_eventbridge_find_bus(cn->mcf, &bus) : NULL;

    if (cn->bus == NULL) {
        return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_NOT_FOUND,
                                                  "NotFound",
                                                  "\"bus\": no bus \"%V\"",
                                                  &bus);
    }

    cn->bus_name = bus;

    if (ngx_http_eventbridge_replay_select(cn, &rp->rules, &rp->targets, &rc)
        != NGX_OK)
    {
        return rc;
    }

    /* after the selection's checks: the name is the last thing asked */
    msg = eb_console_replay_name(rp);
    if (msg) {
        return ngx_http_eventbridge_replay_invalid(cn, msg);
    }

    name.data = (u_char *) rp->name.data;
    name.len = rp->name.len;

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_eventbridge_replay_lua;
    ngx_str_set(&argv[2], "2");

    if (ngx_http_eventbridge_console_key(cn, &argv[3], "replay:%V", &name)
        != NGX_OK
        || ngx_http_eventbridge_console_key(cn, &argv[4], "replays", NULL)
           != NGX_OK
        || ngx_http_eventbridge_replay_num(cn, &argv[5], rp->from) != NGX_OK
        || ngx_http_eventbridge_replay_num(cn, &argv[6], rp->to) != NGX_OK
        || ngx_http_eventbridge_replay_num(cn, &argv[10], now) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* "" for none, as the engine writes it */
    argv[7].data = (u_char *) rp->rules.joined.data;
    argv[7].len = rp->rules.joined.len;
    argv[8].data = (u_char *) rp->targets.joined.data;
    argv[8].len = rp->targets.joined.len;

    if (rp->rate) {
        if (ngx_http_eventbridge_replay_num(cn, &argv[9], rp->rate) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        ngx_str_set(&argv[9], "");
    }

    argv[11] = name;

    cn->slot = eb_redis_key_slot((char *) argv[4].data, argv[4].len);
    cn->data = rp;

    if (ngx_http_eventbridge_console_cmd(cn, 12, argv) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a write: eventbridge_redis_wait applies */
    return ngx_http_eventbridge_console_query(cn,
                                       ngx_http_eventbridge_replay_written, 0);
}


static void
ngx_http_eventbridge_replay_written(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    yajl_gen              g;
    redisReply           *e;
    eb_console_replay_t  *rp = cn->data;

    reply = reply->element[0];

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return;
    }

    e = reply->element[0];

    if (e->integer == 0) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_CONFLICT, "Conflict",
                                          "\"name\": a replay of another "
                                          "window or selection has this "
                                          "name; give another name");
        return;
    }

    if (ngx_http_eventbridge_console_gen(cn) != NGX_OK) {
        ngx_http_eventbridge_console_fail(cn,
                                          NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "InternalError", "out of memory");
        return;
    }

    g = cn->g;
    cn->status = e->integer == 2 ? NGX_HTTP_ACCEPTED : NGX_HTTP_OK;

    (void) yajl_gen_map_open(g);
    ngx_http_eventbridge_console_str(g, "bus");
    ngx_http_eventbridge_console_strn(g, cn->bus_name.data, cn->bus_name.len);
    ngx_http_eventbridge_console_str(g, "name");
    ngx_http_eventbridge_console_strn(g, (u_char *) rp->name.data,
                                      rp->name.len);
    ngx_http_eventbridge_console_str(g, "from");
    ngx_http_eventbridge_console_int(g, rp->from);
    ngx_http_eventbridge_console_str(g, "to");
    ngx_http_eventbridge_console_int(g, rp->to);
    ngx_http_eventbridge_console_str(g, "state");

    if (e->integer == 2) {
        ngx_http_eventbridge_console_str(g, "requested");

    } else {
        ngx_http_eventbridge_console_reply_str(g, reply->elements > 1
                                                  ? reply->element[1] : NULL);
    }

    ngx_http_eventbridge_console_str(g, "created");
    (void) yajl_gen_bool(g, e->integer == 2);
    (void) yajl_gen_map_close(g);

    ngx_http_eventbridge_console_end(cn);
}


/* --- the list -------------------------------------------------------- */


ngx_int_t
ngx_http_eventbridge_console_api_replays(ngx_http_eventbridge_console_t *cn)
{
    ngx_str_t  argv[6];

    if (ngx_http_eventbridge_console_bus(cn) != NGX_OK
        || ngx_http_eventbridge_console_arg_limit(cn->r, &cn->limit)
           != NGX_OK)
    {
        return cn->rc;
    }

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_eventbridge_replays_lua;
    ngx_str_set(&argv[2], "1");

    if (ngx_http_eventbridge_console_key(cn, &argv[3], "replays", NULL)
        != NGX_OK
        || ngx_http_eventbridge_console_key(cn, &argv[4], "replay:", NULL)
           != NGX_OK
        || ngx_http_eventbridge_replay_num(cn, &argv[5], (int64_t) cn->limit)
           != NGX_OK
        || ngx_http_eventbridge_console_cmd(cn, 6, argv) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* EVAL goes to the primary: read 0 */
    return ngx_http_eventbridge_console_query(cn,
                                        ngx_http_eventbridge_replays_page, 0);
}


static redisReply *
ngx_http_eventbridge_replay_field(redisReply *h, const char *name)
{
    size_t  i;

    for (i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type == REDIS_REPLY_STRING
            && ngx_strcmp(h->element[i]->str, name) == 0)
        {
            return h->element[i + 1];
        }
    }

    return NULL;
}


static const char  *ngx_http_eventbridge_replay_text[] = {
    "state", "rules", "targets", "cursor", "owner", "error", NULL
};

static const char  *ngx_http_eventbridge_replay_nums[] = {
    "from", "to", "events", "deliveries", "rate", "started", "updated",
    "finished", NULL
};


static void
ngx_http_eventbridge_replay_json(yajl_gen g, redisReply *name,
    redisReply *h)
{
    int64_t      from, to, cur;
    ngx_uint_t   i;
    redisReply  *f;

    (void) yajl_gen_map_open(g);
    ngx_http_eventbridge_console_str(g, "name");
    ngx_http_eventbridge_console_reply_str(g, name);

    for (i = 0; ngx_http_eventbridge_replay_text[i]; i++) {
        ngx_http_eventbridge_console_str(g,
                                         ngx_http_eventbridge_replay_text[i]);
        ngx_http_eventbridge_console_reply_str(g,
                              ngx_http_eventbridge_replay_field(h,
                                         ngx_http_eventbridge_replay_text[i]));
    }

    for (i = 0; ngx_http_eventbridge_replay_nums[i]; i++) {
        ngx_http_eventbridge_console_str(g,
                                         ngx_http_eventbridge_replay_nums[i]);
        ngx_http_eventbridge_console_reply_num(g,
                              ngx_http_eventbridge_replay_field(h,
                                         ngx_http_eventbridge_replay_nums[i]));
    }

    /* progress: the cursor's time in the window, 0..1 */
    f = ngx_http_eventbridge_replay_field(h, "from");
    from = f && f->type == REDIS_REPLY_STRING ? atoll(f->str) : 0;
    f = ngx_http_eventbridge_replay_field(h, "to");
    to = f && f->type == REDIS_REPLY_STRING ? atoll(f->str) : 0;
    f = ngx_http_eventbridge_replay_field(h, "cursor");
    cur = f && f->type == REDIS_REPLY_STRING && f->len ? atoll(f->str) : -1;
    f = ngx_http_eventbridge_replay_field(h, "state");

    ngx_http_eventbridge_console_str(g, "cursor_time");
    if (cur >= 0) {
        ngx_http_eventbridge_console_int(g, cur);
    } else {
        (void) yajl_gen_null(g);
    }

    ngx_http_eventbridge_console_str(g, "progress");
    if (f && f->type == REDIS_REPLY_STRING && ngx_strcmp(f->str, "done") == 0)
    {
        ngx_http_eventbridge_console_int(g, 1);

    } else if (cur < from || to <= from) {
        ngx_http_eventbridge_console_int(g, 0);

    } else {
        (void) yajl_gen_double(g, (double) (cur - from + 1)
                                  / (double) (to - from + 1));
    }

    ngx_http_eventbridge_console_str(g, "per_target");
    (void) yajl_gen_map_open(g);

    for (i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type == REDIS_REPLY_STRING
            && ngx_strncmp(h->element[i]->str, "t:", 2) == 0)
        {
            ngx_http_eventbridge_console_str(g, h->element[i]->str + 2);
            ngx_http_eventbridge_console_reply_num(g, h->element[i + 1]);
        }
    }

    (void) yajl_gen_map_close(g);
    (void) yajl_gen_map_close(g);
}


static void
ngx_http_eventbridge_replays_page(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    size_t       i;
    redisReply  *list, *e;

    reply = reply->element[0];

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_ARRAY
        || ngx_http_eventbridge_console_gen(cn) != NGX_OK)
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return;
    }

    list = reply->element[0];

    (void) yajl_gen_map_open(cn->g);
    ngx_http_eventbridge_console_str(cn->g, "bus");
    ngx_http_eventbridge_console_strn(cn->g, cn->bus_name.data,
                                      cn->bus_name.len);
    ngx_http_eventbridge_console_str(cn->g, "total");
    ngx_http_eventbridge_console_reply_num(cn->g, reply->element[1]);
    ngx_http_eventbridge_console_str(cn->g, "replays");
    (void) yajl_gen_array_open(cn->g);

    for (i = 0; i < list->elements; i++) {
        e = list->element[i];

        /* a name whose hash is gone (deleted by hand) is left out */
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[1]->type != REDIS_REPLY_ARRAY
            || e->element[1]->elements == 0)
        {
            continue;
        }

        if (ngx_http_eventbridge_console_size(cn->g) > EB_CONSOLE_RESPONSE_MAX)
        {
            break;
        }

        ngx_http_eventbridge_replay_json(cn->g, e->element[0], e->element[1]);
    }

    (void) yajl_gen_array_close(cn->g);
    (void) yajl_gen_map_close(cn->g);

    ngx_http_eventbridge_console_end(cn);
}
