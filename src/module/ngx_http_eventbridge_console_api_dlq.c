/*
 * Dead letters of one target (eb:{B}:dlq:T, written by ebd):
 *
 * - GET api/dlq?bus=B&target=T&limit&cursor: a page, oldest first, and
 *   how many there are (XRANGE COUNT limit, XLEN).
 * - GET api/dlq/ENTRY?bus=B&target=T: one letter with its event.
 * - POST api/dlq/redrive {"bus", "target", "ids": [...]} or {"bus",
 *   "target", "all": true}: moves letters back into eb:{B}:target:T as
 *   `ebd redrive` does (XADD event, rule; XDEL), here in one script so
 *   that each letter is in one place or the other even when two
 *   consoles redrive the same letter: at most EB_CONSOLE_REDRIVE_MAX per
 *   request ("all": the oldest ones), with a result per letter.
 */

#include "ngx_http_eventbridge_console.h"

#include "eb_event_scan.h"


/* KEYS: dlq, target stream. ARGV: ids, or "all" and a count. Returns
 * {{id, new id or nil}, ...} and the letters left. */
static ngx_str_t  ngx_http_eventbridge_redrive_lua = ngx_string(
    "local ids = ARGV "
    "if ARGV[1] == 'all' then "
    "  ids = {} "
    "  for i, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', "
    "                                'COUNT', tonumber(ARGV[2]))) do "
    "    ids[i] = e[1] "
    "  end "
    "end "
    "local out = {} "
    "for i, id in ipairs(ids) do "
    "  local e = redis.call('XRANGE', KEYS[1], id, id) "
    "  local ev, rule "
    "  if #e == 1 then "
    "    local f = e[1][2] "
    "    for j = 1, #f, 2 do "
    "      if f[j] == 'event' then ev = f[j + 1] "
    "      elseif f[j] == 'rule' then rule = f[j + 1] end "
    "    end "
    "  end "
    "  if ev and rule then "
    "    local new = redis.call('XADD', KEYS[2], '*', 'event', ev, "
    "                           'rule', rule) "
    "    redis.call('XDEL', KEYS[1], id) "
    "    out[i] = {id, new} "
    "  else "
    "    out[i] = {id, false} "
    "  end "
    "end "
    "return {out, redis.call('XLEN', KEYS[1])}");


static void ngx_http_eventbridge_dlq_page(ngx_http_eventbridge_console_t *cn,
    redisReply *reply);
static void ngx_http_eventbridge_dlq_letter(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);
static void ngx_http_eventbridge_dlq_redriven(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);


static const char  *ngx_http_eventbridge_letter_text[] = {
    "rule", "error", NULL
};

static const char  *ngx_http_eventbridge_letter_num[] = {
    "attempts", "status", "failed_ms", NULL
};


static void
ngx_http_eventbridge_letter_json(yajl_gen g, redisReply *e,
    ngx_uint_t with_event)
{
    char                      err[128];
    ngx_uint_t                i;
    redisReply               *fields, *ev;
    eb_event_scan_t           s;
    const eb_event_member_t  *id;

    fields = e->element[1];
    ev = ngx_http_eventbridge_console_field(fields, "event");

    (void) yajl_gen_map_open(g);
    ngx_http_eventbridge_console_str(g, "entry");
    ngx_http_eventbridge_console_reply_str(g, e->element[0]);
    ngx_http_eventbridge_console_str(g, "time");
    ngx_http_eventbridge_console_int(g,
                          ngx_http_eventbridge_console_id_ms(e->element[0]));

    ngx_http_eventbridge_console_str(g, "event_id");

    if (ev && ev->type == REDIS_REPLY_STRING
        && eb_event_scan((u_char *) ev->str, ev->len, &s, err, sizeof(err))
           == 0)
    {
        id = eb_event_scan_get(&s, "id");

        if (id && id->kind == EB_EV_STRING) {
            ngx_http_eventbridge_console_strn(g, (u_char *) id->text,
                                              id->text_len);
        } else {
            (void) yajl_gen_null(g);
        }

        eb_event_scan_free(&s);

    } else {
        (void) yajl_gen_null(g);
    }

    for (i = 0; ngx_http_eventbridge_letter_text[i]; i++) {
        ngx_http_eventbridge_console_str(g,
                                         ngx_http_eventbridge_letter_text[i]);
        ngx_http_eventbridge_console_reply_str(g,
                              ngx_http_eventbridge_console_field(fields,
                                     ngx_http_eventbridge_letter_text[i]));
    }

    for (i = 0; ngx_http_eventbridge_letter_num[i]; i++) {
        ngx_http_eventbridge_console_str(g,
                                         ngx_http_eventbridge_letter_num[i]);
        ngx_http_eventbridge_console_reply_num(g,
                              ngx_http_eventbridge_console_field(fields,
                                     ngx_http_eventbridge_letter_num[i]));
    }

    /* the target stream's entry it was read from */
    ngx_http_eventbridge_console_str(g, "target_entry");
    ngx_http_eventbridge_console_reply_str(g,
                           ngx_http_eventbridge_console_field(fields, "entry"));

    if (with_event) {
        ngx_http_eventbridge_console_str(g, "event");
        ngx_http_eventbridge_console_reply_str(g, ev);
    }

    (void) yajl_gen_map_close(g);
}


static ngx_uint_t
ngx_http_eventbridge_letter_ok(redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2
           && e->element[0]->type == REDIS_REPLY_STRING
           && e->element[1]->type == REDIS_REPLY_ARRAY;
}


static ngx_int_t
ngx_http_eventbridge_dlq_start(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *key)
{
    ngx_str_t  target;

    if (ngx_http_eventbridge_console_bus(cn) != NGX_OK
        || ngx_http_eventbridge_console_target(cn, &target) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    cn->filter[0] = target;

    if (ngx_http_eventbridge_console_key(cn, key, "dlq:%V", &target)
        != NGX_OK)
    {
        cn->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_api_dlq(ngx_http_eventbridge_console_t *cn)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   argv[6], cursor;

    if (ngx_http_eventbridge_dlq_start(cn, &argv[1]) != NGX_OK
        || ngx_http_eventbridge_console_arg_limit(cn->r, &cn->limit)
           != NGX_OK)
    {
        return cn->rc;
    }

    rc = ngx_http_eventbridge_console_arg_id(cn->r, "cursor", &cursor);
    if (rc == NGX_ERROR) {
        return cn->rc;
    }

    ngx_str_set(&argv[0], "XRANGE");

    if (rc == NGX_OK) {
        p = ngx_pnalloc(cn->r->pool, cursor.len + 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p[0] = '(';
        ngx_memcpy(p + 1, cursor.data, cursor.len);
        argv[2].data = p;
        argv[2].len = cursor.len + 1;

    } else {
        ngx_str_set(&argv[2], "-");
    }

    ngx_str_set(&argv[3], "+");
    ngx_str_set(&argv[4], "COUNT");
    argv[5].data = ngx_pnalloc(cn->r->pool, NGX_INT_T_LEN);
    if (argv[5].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[5].len = ngx_sprintf(argv[5].data, "%ui", cn->limit) - argv[5].data;

    if (ngx_http_eventbridge_console_cmd(cn, 6, argv) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&argv[0], "XLEN");

    if (ngx_http_eventbridge_console_cmd(cn, 2, argv) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_console_query(cn,
                                          ngx_http_eventbridge_dlq_page, 1);
}


static void
ngx_http_eventbridge_dlq_head(ngx_http_eventbridge_console_t *cn)
{
    (void) yajl_gen_map_open(cn->g);
    ngx_http_eventbridge_console_str(cn->g, "bus");
    ngx_http_eventbridge_console_strn(cn->g, cn->bus_name.data,
                                      cn->bus_name.len);
    ngx_http_eventbridge_console_str(cn->g, "target");
    ngx_http_eventbridge_console_strn(cn->g, cn->filter[0].data,
                                      cn->filter[0].len);
}


static void
ngx_http_eventbridge_dlq_page(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    size_t       i;
    redisReply  *page, *last;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || ngx_http_eventbridge_console_gen(cn) != NGX_OK)
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return;
    }

    page = reply->element[0];
    last = NULL;

    ngx_http_eventbridge_dlq_head(cn);
    ngx_http_eventbridge_console_str(cn->g, "total");
    ngx_http_eventbridge_console_reply_str(cn->g, reply->element[1]);
    ngx_http_eventbridge_console_str(cn->g, "items");
    (void) yajl_gen_array_open(cn->g);

    for (i = 0; page->type == REDIS_REPLY_ARRAY && i < page->elements; i++) {
        if (ngx_http_eventbridge_console_size(cn->g)
            > EB_CONSOLE_RESPONSE_MAX)
        {
            break;
        }

        if (ngx_http_eventbridge_letter_ok(page->element[i])) {
            ngx_http_eventbridge_letter_json(cn->g, page->element[i], 0);
            last = page->element[i];
        }
    }

    (void) yajl_gen_array_close(cn->g);

    ngx_http_eventbridge_console_str(cn->g, "next");

    if (last && (i < page->elements || i == cn->limit)) {
        ngx_http_eventbridge_console_reply_str(cn->g, last->element[0]);
    } else {
        (void) yajl_gen_null(cn->g);
    }

    (void) yajl_gen_map_close(cn->g);

    ngx_http_eventbridge_console_end(cn);
}


ngx_int_t
ngx_http_eventbridge_console_api_letter(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *id)
{
    ngx_str_t  argv[4];

    if (ngx_http_eventbridge_dlq_start(cn, &argv[1]) != NGX_OK) {
        return cn->rc;
    }

    if (eb_console_id(id->data, id->len, 0) != 0) {
        return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_BAD_REQUEST,
                                                  "InvalidParameter",
                                                  "dead letter: a stream id "
                                                  "(MS-SEQ)");
    }

    ngx_str_set(&argv[0], "XRANGE");
    argv[2] = *id;
    argv[3] = *id;

    if (ngx_http_eventbridge_console_cmd(cn, 4, argv) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_console_query(cn,
                                          ngx_http_eventbridge_dlq_letter, 1);
}


static void
ngx_http_eventbridge_dlq_letter(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    reply = reply->element[0];

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1
        || !ngx_http_eventbridge_letter_ok(reply->element[0]))
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_NOT_FOUND, "NotFound",
                                          "no such dead letter");
        return;
    }

    if (ngx_http_eventbridge_console_gen(cn) != NGX_OK) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "InternalError", "no memory");
        return;
    }

    ngx_http_eventbridge_dlq_head(cn);
    ngx_http_eventbridge_console_str(cn->g, "letter");
    ngx_http_eventbridge_letter_json(cn->g, reply->element[0], 1);
    (void) yajl_gen_map_close(cn->g);

    ngx_http_eventbridge_console_end(cn);
}


/* --- redrive --------------------------------------------------------- */


ngx_int_t
ngx_http_eventbridge_console_api_redrive(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *body)
{
    char                  *buf;
    size_t                 i, n;
    ngx_str_t             *argv, bus, target, key;
    const char            *msg;
    eb_console_redrive_t   rd;

    /* the body's strings, kept as long as the request */
    buf = ngx_pnalloc(cn->r->pool, body->len + 1);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    msg = eb_console_redrive_parse(body->data, body->len, buf, body->len + 1,
                                   &rd);
    if (msg) {
        return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_BAD_REQUEST,
                                                  "InvalidParameter", "%s",
                                                  msg);
    }

    bus.data = (u_char *) rd.bus.data;
    bus.len = rd.bus.len;
    target.data = (u_char *) rd.target.data;
    target.len = rd.target.len;

    /* the bus and target as the GETs check them, from the body */
    cn->bus = cn->mcf->config
              ? ngx_http_eventbridge_find_bus(cn->mcf, &bus) : NULL;

    if (cn->bus == NULL) {
        return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_NOT_FOUND,
                                                  "NotFound", "no bus \"%V\"",
                                                  &bus);
    }

    cn->bus_name = bus;

    cn->target = ngx_http_eventbridge_console_find_target(cn, &target);

    if (cn->target == NULL) {
        return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_NOT_FOUND,
                                                  "NotFound", "bus \"%V\" has "
                                                  "no target \"%V\"", &bus,
                                                  &target);
    }

    cn->filter[0] = target;

    n = rd.all ? 2 : rd.nids;
    argv = ngx_palloc(cn->r->pool, (5 + n) * sizeof(ngx_str_t));
    if (argv == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_eventbridge_redrive_lua;
    ngx_str_set(&argv[2], "2");

    if (ngx_http_eventbridge_console_key(cn, &key, "events", NULL) != NGX_OK
        || ngx_http_eventbridge_console_key(cn, &argv[3], "dlq:%V", &target)
           != NGX_OK
        || ngx_http_eventbridge_console_key(cn, &argv[4], "target:%V",
                                            &target) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cn->slot = eb_redis_key_slot((char *) key.data, key.len);

    if (rd.all) {
        ngx_str_set(&argv[5], "all");
        argv[6].data = ngx_pnalloc(cn->r->pool, NGX_INT_T_LEN);
        if (argv[6].data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        argv[6].len = ngx_sprintf(argv[6].data, "%d", EB_CONSOLE_REDRIVE_MAX)
                      - argv[6].data;

    } else {
        for (i = 0; i < n; i++) {
            argv[5 + i].data = (u_char *) rd.ids[i].data;
            argv[5 + i].len = rd.ids[i].len;
        }
    }

    if (ngx_http_eventbridge_console_cmd(cn, 5 + n, argv) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a write: eventbridge_redis_wait applies */
    return ngx_http_eventbridge_console_query(cn,
                                         ngx_http_eventbridge_dlq_redriven, 0);
}


static void
ngx_http_eventbridge_dlq_redriven(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    size_t       i;
    ngx_uint_t   moved;
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
    moved = 0;

    ngx_http_eventbridge_dlq_head(cn);
    ngx_http_eventbridge_console_str(cn->g, "results");
    (void) yajl_gen_array_open(cn->g);

    for (i = 0; i < list->elements; i++) {
        e = list->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1) {
            continue;
        }

        (void) yajl_gen_map_open(cn->g);
        ngx_http_eventbridge_console_str(cn->g, "id");
        ngx_http_eventbridge_console_reply_str(cn->g, e->element[0]);
        ngx_http_eventbridge_console_str(cn->g, "ok");

        if (e->elements == 2 && e->element[1]->type == REDIS_REPLY_STRING) {
            (void) yajl_gen_bool(cn->g, 1);
            ngx_http_eventbridge_console_str(cn->g, "entry");
            ngx_http_eventbridge_console_reply_str(cn->g, e->element[1]);
            moved++;

        } else {
            (void) yajl_gen_bool(cn->g, 0);
            ngx_http_eventbridge_console_str(cn->g, "error");
            ngx_http_eventbridge_console_str(cn->g, "no such dead letter");
        }

        (void) yajl_gen_map_close(cn->g);
    }

    (void) yajl_gen_array_close(cn->g);
    ngx_http_eventbridge_console_str(cn->g, "moved");
    ngx_http_eventbridge_console_int(cn->g, moved);
    ngx_http_eventbridge_console_str(cn->g, "remaining");
    ngx_http_eventbridge_console_reply_str(cn->g, reply->element[1]);
    (void) yajl_gen_map_close(cn->g);

    ngx_http_eventbridge_console_end(cn);
}
