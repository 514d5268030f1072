/*
 * The event trace:
 *
 * - GET api/events/ID?bus=B: one event by CloudEvent id, through ebd's
 *   index (eb:{B}:idx:H, one hash per hour: 193 HGETs in one step cover
 *   8 days; a bus that keeps its events longer gets a step per month
 *   more, back to its oldest event), then its events entry and its trace entries (XRANGE id id
 *   each, capped). An id the index does not have yet is looked for in
 *   the entries after eb:{B}:idx:cursor, EB_CONSOLE_SCAN_MAX at most.
 * - GET api/events?bus=B&from&to&source&type&rule&limit&cursor: the
 *   events stream newest first, filtered; one XREVRANGE of at most
 *   EB_CONSOLE_SCAN_MAX entries per request, and a cursor to go on.
 * - GET api/attempts?bus=B&from&to&target&outcome&event&limit&cursor:
 *   the same over eb:{B}:trace (one entry per delivery attempt).
 */

#include "ngx_http_eventbridge_console.h"

#include "eb_event_scan.h"


#define EB_LOOKUP_EVENTS_MAX  4          /* events entries of one id */


typedef struct {
    ngx_str_t    events[EB_LOOKUP_EVENTS_MAX];
    ngx_uint_t   nevents;
    ngx_str_t    traces[EB_CONSOLE_ATTEMPTS_MAX];
    ngx_uint_t   ntraces;
    ngx_str_t    cursor;             /* eb:{B}:idx:cursor */
    time_t       hour;               /* the next bucket to look in */
    time_t       last;               /* the oldest one */
    ngx_uint_t   nhours;             /* HGETs of the step out */
} ngx_http_eventbridge_lookup_t;


static ngx_int_t ngx_http_eventbridge_lookup_hours(
    ngx_http_eventbridge_console_t *cn, ngx_uint_t n);
static void ngx_http_eventbridge_lookup_index(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);
static void ngx_http_eventbridge_lookup_older(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);
static void ngx_http_eventbridge_lookup_next(
    ngx_http_eventbridge_console_t *cn);
static void ngx_http_eventbridge_lookup_found(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);
static void ngx_http_eventbridge_lookup_scan(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);
static void ngx_http_eventbridge_list_events(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);
static void ngx_http_eventbridge_list_attempts(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);


/* an entry of XRANGE: [id, [field, value, ...]] */
static ngx_uint_t
ngx_http_eventbridge_entry_ok(redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2
           && e->element[0]->type == REDIS_REPLY_STRING
           && e->element[1]->type == REDIS_REPLY_ARRAY;
}


/* the event's top-level attribute, as text; NULL if absent */
static const eb_event_member_t *
ngx_http_eventbridge_attr(eb_event_scan_t *s, const char *name)
{
    const eb_event_member_t  *m;

    m = eb_event_scan_get(s, name);

    return (m && m->kind == EB_EV_STRING) ? m : NULL;
}


static ngx_uint_t
ngx_http_eventbridge_attr_is(eb_event_scan_t *s, const char *name,
    ngx_str_t *want)
{
    const eb_event_member_t  *m;

    m = ngx_http_eventbridge_attr(s, name);

    return m && m->text_len == want->len
           && ngx_memcmp(m->text, want->data, want->len) == 0;
}


/* "r1,r2" holds rule */
static ngx_uint_t
ngx_http_eventbridge_has_rule(redisReply *rules, ngx_str_t *rule)
{
    u_char  *p, *end, *comma;

    if (rules == NULL || rules->type != REDIS_REPLY_STRING) {
        return 0;
    }

    p = (u_char *) rules->str;
    end = p + rules->len;

    while (p < end) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        if ((size_t) (comma - p) == rule->len
            && ngx_memcmp(p, rule->data, rule->len) == 0)
        {
            return 1;
        }

        p = comma + 1;
    }

    return 0;
}


static void
ngx_http_eventbridge_rules_json(yajl_gen g, redisReply *rules)
{
    u_char  *p, *end, *comma;

    (void) yajl_gen_array_open(g);

    if (rules && rules->type == REDIS_REPLY_STRING) {
        p = (u_char *) rules->str;
        end = p + rules->len;

        while (p < end) {
            comma = ngx_strlchr(p, end, ',');
            if (comma == NULL) {
                comma = end;
            }

            if (comma > p) {
                ngx_http_eventbridge_console_strn(g, p, comma - p);
            }

            p = comma + 1;
        }
    }

    (void) yajl_gen_array_close(g);
}


static void
ngx_http_eventbridge_attr_json(yajl_gen g, eb_event_scan_t *s,
    const char *name, const char *key)
{
    const eb_event_member_t  *m;

    ngx_http_eventbridge_console_str(g, key);

    m = s ? ngx_http_eventbridge_attr(s, name) : NULL;

    if (m) {
        ngx_http_eventbridge_console_strn(g, (u_char *) m->text, m->text_len);
    } else {
        (void) yajl_gen_null(g);
    }
}


/* one trace entry: an attempt */
static void
ngx_http_eventbridge_attempt_json(yajl_gen g, redisReply *e)
{
    ngx_uint_t   i;
    redisReply  *fields;
    static const char  *text[] = {
        "event", "target", "rule", "outcome", "error", "traceparent", NULL
    };
    static const char  *num[] = {
        "attempt", "status", "latency_us", NULL
    };

    fields = e->element[1];

    (void) yajl_gen_map_open(g);
    ngx_http_eventbridge_console_str(g, "entry");
    ngx_http_eventbridge_console_reply_str(g, e->element[0]);
    ngx_http_eventbridge_console_str(g, "time");
    ngx_http_eventbridge_console_int(g,
                          ngx_http_eventbridge_console_id_ms(e->element[0]));

    for (i = 0; text[i]; i++) {
        ngx_http_eventbridge_console_str(g, text[i]);
        ngx_http_eventbridge_console_reply_str(g,
                           ngx_http_eventbridge_console_field(fields, text[i]));
    }

    for (i = 0; num[i]; i++) {
        ngx_http_eventbridge_console_str(g, num[i]);
        ngx_http_eventbridge_console_reply_num(g,
                            ngx_http_eventbridge_console_field(fields, num[i]));
    }

    (void) yajl_gen_map_close(g);
}


/* --- one event ------------------------------------------------------- */


ngx_int_t
ngx_http_eventbridge_console_api_event(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *id)
{
    ngx_str_t                       argv[6];
    ngx_http_eventbridge_lookup_t  *lk;

    if (ngx_http_eventbridge_console_bus(cn) != NGX_OK) {
        return cn->rc;
    }

    /* the rest of the path, which nginx has percent-decoded */
    cn->id = *id;

    if (cn->id.len == 0 || cn->id.len > EB_CONSOLE_STRING_MAX) {
        return ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_BAD_REQUEST,
                                                  "InvalidParameter",
                                                  "event id: 1 to %d bytes",
                                                  EB_CONSOLE_STRING_MAX);
    }

    lk = ngx_pcalloc(cn->r->pool, sizeof(ngx_http_eventbridge_lookup_t));
    if (lk == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cn->data = lk;
    lk->hour = cn->now / 3600;

    if (ngx_http_eventbridge_lookup_hours(cn, EB_CONSOLE_INDEX_HOURS)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the index's cursor, and the oldest event: how far back to look */
    ngx_str_set(&argv[0], "GET");

    if (ngx_http_eventbridge_console_key(cn, &argv[1], "idx:cursor", NULL)
        != NGX_OK
        || ngx_http_eventbridge_console_cmd(cn, 2, argv) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&argv[0], "XRANGE");
    ngx_str_set(&argv[2], "-");
    ngx_str_set(&argv[3], "+");
    ngx_str_set(&argv[4], "COUNT");
    ngx_str_set(&argv[5], "1");

    if (ngx_http_eventbridge_console_key(cn, &argv[1], "events", NULL)
        != NGX_OK
        || ngx_http_eventbridge_console_cmd(cn, 6, argv) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_console_query(cn,
                                          ngx_http_eventbridge_lookup_index, 1);
}


/* HGET of the id in the next n hourly buckets, going back from lk->hour */
static ngx_int_t
ngx_http_eventbridge_lookup_hours(ngx_http_eventbridge_console_t *cn,
    ngx_uint_t n)
{
    u_char                          num[NGX_INT64_LEN];
    ngx_str_t                       argv[3], h;
    ngx_uint_t                      i;
    ngx_http_eventbridge_lookup_t  *lk = cn->data;

    ngx_str_set(&argv[0], "HGET");
    argv[2] = cn->id;

    for (i = 0; i < n; i++) {
        h.data = num;
        h.len = ngx_sprintf(num, "%T", lk->hour--) - num;

        if (ngx_http_eventbridge_console_key(cn, &argv[1], "idx:%V", &h)
            != NGX_OK
            || ngx_http_eventbridge_console_cmd(cn, 3, argv) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    lk->nhours = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eventbridge_lookup_add(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *list, ngx_uint_t *n, ngx_uint_t max, u_char *p, size_t len)
{
    ngx_uint_t  i;

    if (*n >= max || eb_console_id(p, len, 0) != 0) {
        return NGX_OK;
    }

    for (i = 0; i < *n; i++) {
        if (list[i].len == len && ngx_memcmp(list[i].data, p, len) == 0) {
            return NGX_OK;
        }
    }

    list[*n].data = ngx_pnalloc(cn->r->pool, len);
    if (list[*n].data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(list[*n].data, p, len);
    list[*n].len = len;
    (*n)++;

    return NGX_OK;
}


/* "e:ID t:ID t:ID ...", in any of the buckets */
static ngx_int_t
ngx_http_eventbridge_lookup_tokens(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    u_char                         *p, *end, *sp;
    size_t                          i, len;
    redisReply                     *e;
    ngx_http_eventbridge_lookup_t  *lk = cn->data;

    for (i = 0; i < lk->nhours; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        p = (u_char *) e->str;
        end = p + e->len;

        while (p < end) {
            sp = ngx_strlchr(p, end, ' ');
            if (sp == NULL) {
                sp = end;
            }

            len = sp - p;

            if (len > 2 && p[1] == ':'
                && ((p[0] == 'e'
                     && ngx_http_eventbridge_lookup_add(cn, lk->events,
                                                &lk->nevents,
                                                EB_LOOKUP_EVENTS_MAX,
                                                p + 2, len - 2) != NGX_OK)
                    || (p[0] == 't'
                        && ngx_http_eventbridge_lookup_add(cn, lk->traces,
                                                &lk->ntraces,
                                                EB_CONSOLE_ATTEMPTS_MAX,
                                                p + 2, len - 2) != NGX_OK)))
            {
                return NGX_ERROR;
            }

            p = sp + 1;
        }
    }

    return NGX_OK;
}


static void
ngx_http_eventbridge_lookup_index(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    time_t                          oldest;
    redisReply                     *e;
    ngx_http_eventbridge_lookup_t  *lk = cn->data;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != EB_CONSOLE_INDEX_HOURS + 2)
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return;
    }

    e = reply->element[EB_CONSOLE_INDEX_HOURS];

    if (e->type == REDIS_REPLY_STRING && e->len && e->len <= 41) {
        lk->cursor.data = ngx_pnalloc(cn->r->pool, e->len);
        if (lk->cursor.data == NULL) {
            goto nomem;
        }

        ngx_memcpy(lk->cursor.data, e->str, e->len);
        lk->cursor.len = e->len;
    }

    /* a bus that keeps events longer than the 8 days looked at: its
     * index lives as long (ebd), so the older buckets are looked at too,
     * back to its oldest event and at most 400 days, as `ebd trace`
     * does */
    e = reply->element[EB_CONSOLE_INDEX_HOURS + 1];
    lk->last = lk->hour + 1;

    if (e->type == REDIS_REPLY_ARRAY && e->elements == 1
        && ngx_http_eventbridge_entry_ok(e->element[0]))
    {
        oldest = ngx_http_eventbridge_console_id_ms(e->element[0]->element[0])
                 / 3600000;
        lk->last = ngx_max(oldest, cn->now / 3600 - 400 * 24 + 1);
    }

    if (ngx_http_eventbridge_lookup_tokens(cn, reply) != NGX_OK) {
        goto nomem;
    }

    ngx_http_eventbridge_lookup_next(cn);
    return;

nomem:

    ngx_http_eventbridge_console_fail(cn, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "InternalError", "no memory");
}


static void
ngx_http_eventbridge_lookup_older(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    ngx_http_eventbridge_lookup_t  *lk = cn->data;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != lk->nhours) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return;
    }

    if (ngx_http_eventbridge_lookup_tokens(cn, reply) != NGX_OK) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "InternalError", "no memory");
        return;
    }

    ngx_http_eventbridge_lookup_next(cn);
}


/* found: the entries; else older buckets, a month per step; else the
 * entries not indexed yet */
static void
ngx_http_eventbridge_lookup_next(ngx_http_eventbridge_console_t *cn)
{
    size_t                          i;
    ngx_str_t                       argv[6];
    ngx_http_eventbridge_lookup_t  *lk = cn->data;

    if (lk->nevents) {
        ngx_str_set(&argv[0], "XRANGE");

        for (i = 0; i < lk->nevents + lk->ntraces; i++) {
            if (ngx_http_eventbridge_console_key(cn, &argv[1],
                                                 i < lk->nevents ? "events"
                                                                 : "trace",
                                                 NULL)
                != NGX_OK)
            {
                goto nomem;
            }

            argv[2] = i < lk->nevents ? lk->events[i]
                                      : lk->traces[i - lk->nevents];
            argv[3] = argv[2];

            if (ngx_http_eventbridge_console_cmd(cn, 4, argv) != NGX_OK) {
                goto nomem;
            }
        }

        cn->step = ngx_http_eventbridge_lookup_found;
        return;
    }

    if (lk->hour >= lk->last) {
        if (ngx_http_eventbridge_lookup_hours(cn,
                        ngx_min((ngx_uint_t) (lk->hour - lk->last + 1),
                                EB_CONSOLE_INDEX_STEP))
            != NGX_OK)
        {
            goto nomem;
        }

        cn->step = ngx_http_eventbridge_lookup_older;
        return;
    }

    /* not indexed (yet): the entries after the index's cursor, or the
     * newest ones when there is no index */
    if (lk->cursor.len) {
        argv[2].data = ngx_pnalloc(cn->r->pool, lk->cursor.len + 1);
        if (argv[2].data == NULL) {
            goto nomem;
        }

        argv[2].data[0] = '(';
        ngx_memcpy(argv[2].data + 1, lk->cursor.data, lk->cursor.len);
        argv[2].len = lk->cursor.len + 1;

        ngx_str_set(&argv[0], "XRANGE");
        ngx_str_set(&argv[3], "+");

    } else {
        ngx_str_set(&argv[0], "XREVRANGE");
        ngx_str_set(&argv[2], "+");
        ngx_str_set(&argv[3], "-");
    }

    ngx_str_set(&argv[4], "COUNT");
    argv[5].data = ngx_pnalloc(cn->r->pool, NGX_INT_T_LEN);
    if (argv[5].data == NULL
        || ngx_http_eventbridge_console_key(cn, &argv[1], "events", NULL)
           != NGX_OK)
    {
        goto nomem;
    }

    argv[5].len = ngx_sprintf(argv[5].data, "%d", EB_CONSOLE_SCAN_MAX)
                  - argv[5].data;

    if (ngx_http_eventbridge_console_cmd(cn, 6, argv) != NGX_OK) {
        goto nomem;
    }

    cn->step = ngx_http_eventbridge_lookup_scan;
    return;

nomem:

    ngx_http_eventbridge_console_fail(cn, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "InternalError", "no memory");
}


/* the event's page: its entry, the rules it matched, its attempts */
static void
ngx_http_eventbridge_event_json(ngx_http_eventbridge_console_t *cn,
    redisReply *entry, redisReply **traces, ngx_uint_t ntraces,
    ngx_uint_t indexed)
{
    yajl_gen     g;
    ngx_uint_t   i;
    redisReply  *fields;

    if (ngx_http_eventbridge_console_gen(cn) != NGX_OK) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "InternalError", "no memory");
        return;
    }

    g = cn->g;
    fields = entry->element[1];

    (void) yajl_gen_map_open(g);
    ngx_http_eventbridge_console_str(g, "bus");
    ngx_http_eventbridge_console_strn(g, cn->bus_name.data, cn->bus_name.len);
    ngx_http_eventbridge_console_str(g, "id");
    ngx_http_eventbridge_console_strn(g, cn->id.data, cn->id.len);
    ngx_http_eventbridge_console_str(g, "entry");
    ngx_http_eventbridge_console_reply_str(g, entry->element[0]);
    ngx_http_eventbridge_console_str(g, "time");
    ngx_http_eventbridge_console_int(g,
                      ngx_http_eventbridge_console_id_ms(entry->element[0]));
    ngx_http_eventbridge_console_str(g, "event");
    ngx_http_eventbridge_console_reply_str(g,
                       ngx_http_eventbridge_console_field(fields, "event"));
    ngx_http_eventbridge_console_str(g, "rules");
    ngx_http_eventbridge_rules_json(g,
                       ngx_http_eventbridge_console_field(fields, "rules"));
    ngx_http_eventbridge_console_str(g, "indexed");
    (void) yajl_gen_bool(g, indexed);

    ngx_http_eventbridge_console_str(g, "attempts");
    (void) yajl_gen_array_open(g);

    for (i = 0; i < ntraces; i++) {
        ngx_http_eventbridge_attempt_json(g, traces[i]);
    }

    (void) yajl_gen_array_close(g);
    (void) yajl_gen_map_close(g);

    ngx_http_eventbridge_console_end(cn);
}


static void
ngx_http_eventbridge_lookup_found(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    redisReply                     *entry, *e, **traces;
    ngx_uint_t                      i, n;
    ngx_http_eventbridge_lookup_t  *lk = cn->data;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != lk->nevents + lk->ntraces)
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return;
    }

    entry = NULL;

    for (i = 0; i < lk->nevents && entry == NULL; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_ARRAY && e->elements == 1
            && ngx_http_eventbridge_entry_ok(e->element[0]))
        {
            entry = e->element[0];
        }
    }

    if (entry == NULL) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_NOT_FOUND, "NotFound",
                                          "the event is no longer in the "
                                          "stream");
        return;
    }

    traces = ngx_palloc(cn->r->pool, (lk->ntraces + 1) * sizeof(redisReply *));
    if (traces == NULL) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "InternalError", "no memory");
        return;
    }

    n = 0;

    for (i = lk->nevents; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_ARRAY && e->elements == 1
            && ngx_http_eventbridge_entry_ok(e->element[0]))
        {
            traces[n++] = e->element[0];
        }
    }

    ngx_http_eventbridge_event_json(cn, entry, traces, n, 1);
}


static void
ngx_http_eventbridge_lookup_scan(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    char              err[128];
    size_t            i;
    ngx_uint_t        match;
    redisReply       *e, *ev;
    eb_event_scan_t   s;

    reply = reply->element[0];

    for (i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++)
    {
        e = reply->element[i];

        if (!ngx_http_eventbridge_entry_ok(e)) {
            continue;
        }

        ev = ngx_http_eventbridge_console_field(e->element[1], "event");

        if (ev == NULL || ev->type != REDIS_REPLY_STRING
            || eb_event_scan((u_char *) ev->str, ev->len, &s, err,
                             sizeof(err)) != 0)
        {
            continue;
        }

        match = ngx_http_eventbridge_attr_is(&s, "id", &cn->id);
        eb_event_scan_free(&s);

        if (match) {
            ngx_http_eventbridge_event_json(cn, e, NULL, 0, 0);
            return;
        }
    }

    ngx_http_eventbridge_console_fail(cn, NGX_HTTP_NOT_FOUND, "NotFound",
                                      "no such event");
}


/* --- lists ----------------------------------------------------------- */


/* XREVRANGE KEY END START COUNT N from the parameters */
static ngx_int_t
ngx_http_eventbridge_list_query(ngx_http_eventbridge_console_t *cn,
    const char *key, ngx_uint_t filtered,
    ngx_http_eventbridge_console_step_pt step)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   argv[6], from, to, cursor;

    ngx_str_null(&from);
    ngx_str_null(&to);

    if (ngx_http_eventbridge_console_arg_limit(cn->r, &cn->limit) != NGX_OK
        || ngx_http_eventbridge_console_arg_id(cn->r, "from", &from)
           == NGX_ERROR
        || ngx_http_eventbridge_console_arg_id(cn->r, "to", &to) == NGX_ERROR)
    {
        return cn->rc;
    }

    rc = ngx_http_eventbridge_console_arg_id(cn->r, "cursor", &cursor);
    if (rc == NGX_ERROR) {
        return cn->rc;
    }

    if (from.len == 0) {
        ngx_str_set(&from, "-");
    }

    if (rc == NGX_OK) {
        /* after the last entry the previous page read */
        p = ngx_pnalloc(cn->r->pool, cursor.len + 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p[0] = '(';
        ngx_memcpy(p + 1, cursor.data, cursor.len);
        to.data = p;
        to.len = cursor.len + 1;

    } else if (to.len == 0) {
        ngx_str_set(&to, "+");
    }

    /* unfiltered, a page is read; filtered, up to the scan cap */
    cn->count = filtered ? EB_CONSOLE_SCAN_MAX : cn->limit;

    ngx_str_set(&argv[0], "XREVRANGE");
    argv[2] = to;
    argv[3] = from;
    ngx_str_set(&argv[4], "COUNT");
    argv[5].data = ngx_pnalloc(cn->r->pool, NGX_INT_T_LEN);

    if (argv[5].data == NULL
        || ngx_http_eventbridge_console_key(cn, &argv[1], key, NULL) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[5].len = ngx_sprintf(argv[5].data, "%ui", cn->count) - argv[5].data;

    if (ngx_http_eventbridge_console_cmd(cn, 6, argv) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_console_query(cn, step, 1);
}


/* a list: its three filters (cn->filter[0..2]) and its stream */
static ngx_int_t
ngx_http_eventbridge_list(ngx_http_eventbridge_console_t *cn,
    const char *const *filters, const char *key,
    ngx_http_eventbridge_console_step_pt step)
{
    ngx_int_t   rc;
    ngx_uint_t  i, filtered;

    if (ngx_http_eventbridge_console_bus(cn) != NGX_OK) {
        return cn->rc;
    }

    filtered = 0;

    for (i = 0; i < 3; i++) {
        rc = ngx_http_eventbridge_console_arg(cn->r, filters[i],
                                              &cn->filter[i]);
        if (rc == NGX_ERROR) {
            return cn->rc;
        }

        if (rc == NGX_OK) {
            filtered = 1;
        }
    }

    return ngx_http_eventbridge_list_query(cn, key, filtered, step);
}


ngx_int_t
ngx_http_eventbridge_console_api_events(ngx_http_eventbridge_console_t *cn)
{
    static const char *const  filters[] = { "source", "type", "rule" };

    return ngx_http_eventbridge_list(cn, filters, "events",
                                     ngx_http_eventbridge_list_events);
}


ngx_int_t
ngx_http_eventbridge_console_api_attempts(ngx_http_eventbridge_console_t *cn)
{
    static const char *const  filters[] = { "target", "outcome", "event" };

    return ngx_http_eventbridge_list(cn, filters, "trace",
                                     ngx_http_eventbridge_list_attempts);
}


/* {"bus", "items": [...], "scanned", "next"}: items go in until the page
 * or the byte bound is full; next is the last entry looked at when more
 * may follow */
static void
ngx_http_eventbridge_list_end(ngx_http_eventbridge_console_t *cn,
    redisReply *reply, size_t looked)
{
    yajl_gen     g = cn->g;
    redisReply  *last;

    (void) yajl_gen_array_close(g);

    ngx_http_eventbridge_console_str(g, "scanned");
    ngx_http_eventbridge_console_int(g, looked);

    ngx_http_eventbridge_console_str(g, "next");

    if (looked && (looked < reply->elements || looked == cn->count)) {
        last = reply->element[looked - 1];
        ngx_http_eventbridge_console_reply_str(g,
                           ngx_http_eventbridge_entry_ok(last)
                           ? last->element[0] : NULL);
    } else {
        (void) yajl_gen_null(g);
    }

    (void) yajl_gen_map_close(g);

    ngx_http_eventbridge_console_end(cn);
}


static ngx_int_t
ngx_http_eventbridge_list_start(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    if (reply->element[0]->type != REDIS_REPLY_ARRAY
        || ngx_http_eventbridge_console_gen(cn) != NGX_OK)
    {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_BAD_GATEWAY,
                                          "BadReply", "unexpected reply");
        return NGX_ERROR;
    }

    (void) yajl_gen_map_open(cn->g);
    ngx_http_eventbridge_console_str(cn->g, "bus");
    ngx_http_eventbridge_console_strn(cn->g, cn->bus_name.data,
                                      cn->bus_name.len);
    ngx_http_eventbridge_console_str(cn->g, "items");
    (void) yajl_gen_array_open(cn->g);

    return NGX_OK;
}


static void
ngx_http_eventbridge_list_events(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    char              err[128];
    size_t            i;
    yajl_gen          g;
    ngx_uint_t        items, scanned;
    redisReply       *e, *ev, *rules;
    eb_event_scan_t   s, *sp;

    if (ngx_http_eventbridge_list_start(cn, reply) != NGX_OK) {
        return;
    }

    reply = reply->element[0];

    g = cn->g;
    items = 0;

    for (i = 0; i < reply->elements; i++) {
        if (items == cn->limit
            || ngx_http_eventbridge_console_size(g) > EB_CONSOLE_RESPONSE_MAX)
        {
            break;
        }

        e = reply->element[i];

        if (!ngx_http_eventbridge_entry_ok(e)) {
            continue;
        }

        ev = ngx_http_eventbridge_console_field(e->element[1], "event");
        rules = ngx_http_eventbridge_console_field(e->element[1], "rules");

        sp = NULL;

        if (ev && ev->type == REDIS_REPLY_STRING
            && eb_event_scan((u_char *) ev->str, ev->len, &s, err,
                             sizeof(err)) == 0)
        {
            sp = &s;
        }

        if ((cn->filter[0].len
             && !(sp && ngx_http_eventbridge_attr_is(sp, "source",
                                                     &cn->filter[0])))
            || (cn->filter[1].len
                && !(sp && ngx_http_eventbridge_attr_is(sp, "type",
                                                        &cn->filter[1])))
            || (cn->filter[2].len
                && !ngx_http_eventbridge_has_rule(rules, &cn->filter[2])))
        {
            if (sp) {
                eb_event_scan_free(sp);
            }

            continue;
        }

        (void) yajl_gen_map_open(g);
        ngx_http_eventbridge_console_str(g, "entry");
        ngx_http_eventbridge_console_reply_str(g, e->element[0]);
        ngx_http_eventbridge_console_str(g, "time");
        ngx_http_eventbridge_console_int(g,
                             ngx_http_eventbridge_console_id_ms(e->element[0]));
        ngx_http_eventbridge_attr_json(g, sp, "id", "id");
        ngx_http_eventbridge_attr_json(g, sp, "source", "source");
        ngx_http_eventbridge_attr_json(g, sp, "type", "type");
        ngx_http_eventbridge_attr_json(g, sp, "subject", "subject");
        ngx_http_eventbridge_attr_json(g, sp, "time", "event_time");
        ngx_http_eventbridge_console_str(g, "rules");
        ngx_http_eventbridge_rules_json(g, rules);
        (void) yajl_gen_map_close(g);

        if (sp) {
            eb_event_scan_free(sp);
        }

        items++;
    }

    scanned = i;
    ngx_http_eventbridge_list_end(cn, reply, scanned);
}


static ngx_uint_t
ngx_http_eventbridge_field_is(redisReply *fields, const char *name,
    ngx_str_t *want)
{
    redisReply  *v;

    if (want->len == 0) {
        return 1;
    }

    v = ngx_http_eventbridge_console_field(fields, name);

    return v && v->type == REDIS_REPLY_STRING && v->len == want->len
           && ngx_memcmp(v->str, want->data, want->len) == 0;
}


static void
ngx_http_eventbridge_list_attempts(ngx_http_eventbridge_console_t *cn,
    redisReply *reply)
{
    size_t       i;
    ngx_uint_t   items;
    redisReply  *e;

    if (ngx_http_eventbridge_list_start(cn, reply) != NGX_OK) {
        return;
    }

    reply = reply->element[0];

    items = 0;

    for (i = 0; i < reply->elements; i++) {
        if (items == cn->limit
            || ngx_http_eventbridge_console_size(cn->g)
               > EB_CONSOLE_RESPONSE_MAX)
        {
            break;
        }

        e = reply->element[i];

        if (!ngx_http_eventbridge_entry_ok(e)
            || !ngx_http_eventbridge_field_is(e->element[1], "target",
                                              &cn->filter[0])
            || !ngx_http_eventbridge_field_is(e->element[1], "outcome",
                                              &cn->filter[1])
            || !ngx_http_eventbridge_field_is(e->element[1], "event",
                                              &cn->filter[2]))
        {
            continue;
        }

        ngx_http_eventbridge_attempt_json(cn->g, e);
        items++;
    }

    ngx_http_eventbridge_list_end(cn, reply, i);
}
