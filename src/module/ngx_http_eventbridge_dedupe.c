/*
 * Idempotent ingest (`eventbridge_dedupe`): a sender's retry within the
 * window gets the original event id and appends nothing.
 *
 * The key comes from a header or the body (HTTP source), or is the
 * event's (source, id) (PutEvents). It lives in the bus's slot,
 * eb:{BUS}:dedupe:src:NAME:VALUE or eb:{BUS}:dedupe:ce:LEN:SOURCEID, so
 * that under Redis Cluster it goes with the event and its fan-out; a value
 * longer than EB_DEDUPE_KEY_MAX (or starting with '#') is replaced by '#'
 * and its SHA-256 in hex.
 *
 * The check and the appends are one EVAL instead of MULTI/EXEC: per event,
 * GET the key; if it holds a value, answer that value and append nothing;
 * otherwise XADD the event and its fan-out, then SET the key PX window.
 * Redis runs a script whole, so concurrent repeats see either nothing or
 * the whole of the first. The value set is a token that tells "a repeat"
 * from "my own earlier attempt": a resend (after a lost connection, a
 * failover) of a script that had run finds its own token and counts as
 * appended, so a resent EVAL neither duplicates nor misreports.
 */

/*
 * nginx's headers first: they define _GNU_SOURCE, which the C library
 * reads only at its first header (since 1.25, ngx_event_udp.h needs its
 * struct in6_pktinfo)
 */
#include "ngx_http_eventbridge.h"

#include <openssl/sha.h>
#include <yajl/yajl_parse.h>


/* the longest value kept as is in a key; longer ones are hashed */
#define EB_DEDUPE_KEY_MAX      128
#define EB_DEDUPE_HASHED_LEN   (1 + 2 * SHA256_DIGEST_LENGTH)
#define EB_DEDUPE_WINDOW       (24 * 60 * 60 * 1000)
#define EB_DEDUPE_WINDOW_MAX   ((ngx_msec_t) 30 * 24 * 60 * 60 * 1000)
#define EB_DEDUPE_HEADER_MAX   64
/* the longest value the script may answer: an event id we wrote */
#define EB_DEDUPE_VALUE_MAX    256


/*
 * KEYS: [1] eb:{BUS}:events, then per event: [its dedupe key if it has
 * one], its target streams. ARGV: [1] MAXLEN, [2] window (ms), then per
 * event: number of targets, token ("" for no key), event JSON, rule
 * names, one rule name per target. Answers per event: 0 (appended) or
 * the value found under its key.
 */
static ngx_str_t  ngx_http_eventbridge_dedupe_lua = ngx_string(
    "local out, k, a = {}, 2, 3\n"
    "while a <= #ARGV do\n"
    "  local nt, token, dkey, old = tonumber(ARGV[a]), ARGV[a + 1], nil,"
    " false\n"
    "  if token ~= '' then\n"
    "    dkey = KEYS[k]\n"
    "    k = k + 1\n"
    "    old = redis.call('GET', dkey)\n"
    "  end\n"
    "  if old then\n"
    "    out[#out + 1] = old\n"
    "  else\n"
    "    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',"
    " 'event', ARGV[a + 2], 'rules', ARGV[a + 3])\n"
    "    for t = 0, nt - 1 do\n"
    "      local o = ARGV[a + 4 + nt + t]\n"
    "      if o == '' then\n"
    "        redis.call('XADD', KEYS[k + t], '*', 'event', ARGV[a + 2],"
    " 'rule', ARGV[a + 4 + t])\n"
    "      else\n"
    "        redis.call('XADD', KEYS[k + t], '*', 'event', ARGV[a + 2],"
    " 'rule', ARGV[a + 4 + t], 'key', string.sub(o, 2))\n"
    "      end\n"
    "    end\n"
    "    if dkey then\n"
    "      redis.call('SET', dkey, token, 'PX', ARGV[2])\n"
    "    end\n"
    "    out[#out + 1] = 0\n"
    "  end\n"
    "  k = k + nt\n"
    "  a = a + 4 + 2 * nt\n"
    "end\n"
    "return out\n");


/* --- configuration --------------------------------------------------- */


static void
ngx_http_eventbridge_jsonpath_cleanup(void *data)
{
    eb_jsonpath_free(data);
}


/*
 * eventbridge_dedupe header:NAME | body:JSONPATH | cloudevents
 *                    [window=TIME] [missing=pass|reject];
 */
char *
ngx_http_eventbridge_dedupe_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    char                 err[256];
    u_char               c;
    ngx_int_t            window;
    ngx_str_t           *value, v;
    ngx_uint_t           i, k;
    ngx_pool_cleanup_t  *cln;

    if (lcf->dedupe) {
        return "is duplicate";
    }

    value = cf->args->elts;
    v = value[1];

    lcf->dedupe_window = EB_DEDUPE_WINDOW;
    lcf->dedupe_required = 0;
    lcf->dedupe_file = cf->conf_file->file.name.data;
    lcf->dedupe_line = cf->conf_file->line;

    if (v.len > 7 && ngx_strncmp(v.data, "header:", 7) == 0) {
        lcf->dedupe_header.data = v.data + 7;
        lcf->dedupe_header.len = v.len - 7;

        if (lcf->dedupe_header.len > EB_DEDUPE_HEADER_MAX) {
            ngx_http_eventbridge_conf_error(cf, "header name \"%V\" is longer "
                                            "than %d characters",
                                            &lcf->dedupe_header,
                                            EB_DEDUPE_HEADER_MAX);
            return NGX_CONF_ERROR;
        }

        for (k = 0; k < lcf->dedupe_header.len; k++) {
            c = lcf->dedupe_header.data[k];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            {
                ngx_http_eventbridge_conf_error(cf, "invalid header name "
                                                "\"%V\": use letters, digits, "
                                                "\"-\" or \"_\"",
                                                &lcf->dedupe_header);
                return NGX_CONF_ERROR;
            }
        }

        lcf->dedupe = EB_DEDUPE_HEADER;

    } else if (v.len > 5 && ngx_strncmp(v.data, "body:", 5) == 0) {
        lcf->dedupe_path = eb_jsonpath_compile((char *) v.data + 5,
                                               v.len - 5, err, sizeof(err));
        if (lcf->dedupe_path == NULL) {
            ngx_http_eventbridge_conf_error(cf, "\"%V\": %s", &v, err);
            return NGX_CONF_ERROR;
        }

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            eb_jsonpath_free(lcf->dedupe_path);
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_eventbridge_jsonpath_cleanup;
        cln->data = lcf->dedupe_path;

        if (!eb_jsonpath_is_definite(lcf->dedupe_path)) {
            ngx_http_eventbridge_conf_error(cf, "\"%V\" may select several "
                                            "values: use a path without "
                                            "wildcards, \"..\" or unions",
                                            &v);
            return NGX_CONF_ERROR;
        }

        lcf->dedupe = EB_DEDUPE_BODY;

    } else if (v.len == 11 && ngx_strncmp(v.data, "cloudevents", 11) == 0) {
        lcf->dedupe = EB_DEDUPE_CLOUDEVENTS;

    } else {
        ngx_http_eventbridge_conf_error(cf, "invalid key \"%V\": expected "
                                        "\"header:NAME\", \"body:JSONPATH\" "
                                        "or \"cloudevents\"", &v);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        v = value[i];

        if (v.len > 7 && ngx_strncmp(v.data, "window=", 7) == 0) {
            v.data += 7;
            v.len -= 7;

            window = ngx_parse_time(&v, 0);

            if (window == NGX_ERROR || window <= 0
                || (ngx_msec_t) window > EB_DEDUPE_WINDOW_MAX)
            {
                ngx_http_eventbridge_conf_error(cf, "invalid window \"%V\": "
                                                "use a time from 1ms to 30d, "
                                                "e.g. 24h", &v);
                return NGX_CONF_ERROR;
            }

            lcf->dedupe_window = window;
            continue;
        }

        if (v.len == 12 && ngx_strncmp(v.data, "missing=pass", 12) == 0) {
            lcf->dedupe_required = 0;
            continue;
        }

        if (v.len == 14 && ngx_strncmp(v.data, "missing=reject", 14) == 0) {
            lcf->dedupe_required = 1;
            continue;
        }

        ngx_http_eventbridge_conf_error(cf, "invalid parameter \"%V\": "
                                        "expected \"window=TIME\" or "
                                        "\"missing=pass|reject\"", &v);
        return NGX_CONF_ERROR;
    }

    if (lcf->dedupe == EB_DEDUPE_CLOUDEVENTS && lcf->dedupe_required) {
        ngx_http_eventbridge_conf_error(cf, "\"missing=reject\" does not "
                                        "apply to \"cloudevents\": every "
                                        "event has a source and an id");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_eventbridge_dedupe_merge(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf)
{
    u_char  *p;

    if (lcf->endpoint.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"eventbridge_dedupe\" directive: needs "
                      "\"eventbridge_source\" or \"eventbridge_put_events\" "
                      "in the same location in %s:%ui",
                      lcf->dedupe_file, lcf->dedupe_line);
        return NGX_ERROR;
    }

    if (lcf->put_events != (lcf->dedupe == EB_DEDUPE_CLOUDEVENTS)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"eventbridge_dedupe\" directive: %s in %s:%ui",
                      lcf->put_events
                      ? "a PutEvents endpoint dedupes by \"cloudevents\" "
                        "(source, id) only"
                      : "\"cloudevents\" applies to \"eventbridge_put_events\""
                        " only; a source takes \"header:NAME\" or "
                        "\"body:JSONPATH\"",
                      lcf->dedupe_file, lcf->dedupe_line);
        return NGX_ERROR;
    }

    /* eb:{BUS}:dedupe:src:NAME: or eb:{BUS}:dedupe:ce: */
    p = ngx_pnalloc(cf->pool, sizeof("eb:{}:dedupe:src::") - 1 + lcf->bus.len
                              + lcf->source.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    lcf->dedupe_prefix.data = p;

    if (lcf->put_events) {
        p = ngx_sprintf(p, "eb:{%V}:dedupe:ce:", &lcf->bus);

    } else {
        p = ngx_sprintf(p, "eb:{%V}:dedupe:src:%V:", &lcf->bus, &lcf->source);
    }

    lcf->dedupe_prefix.len = p - lcf->dedupe_prefix.data;

    return NGX_OK;
}


/* --- keys ------------------------------------------------------------ */


/* prefix + the parts as they are, or prefix + '#' + SHA-256 of the parts
 * in hex when they are long (or start with '#', the hashed form's mark) */
static ngx_int_t
ngx_http_eventbridge_dedupe_make_key(ngx_http_request_t *r,
    ngx_str_t *prefix, ngx_str_t *parts, ngx_uint_t nparts, ngx_str_t *key)
{
    u_char      *p, *tail, md[SHA256_DIGEST_LENGTH];
    size_t       len;
    ngx_uint_t   i;

    len = 0;
    for (i = 0; i < nparts; i++) {
        len += parts[i].len;
    }

    key->data = ngx_pnalloc(r->pool, prefix->len
                                     + ngx_max(len, EB_DEDUPE_HASHED_LEN));
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    tail = ngx_cpymem(key->data, prefix->data, prefix->len);

    p = tail;
    for (i = 0; i < nparts; i++) {
        p = ngx_cpymem(p, parts[i].data, parts[i].len);
    }

    if (len > EB_DEDUPE_KEY_MAX || (len && tail[0] == '#')) {
        (void) SHA256(tail, len, md);

        p = tail;
        *p++ = '#';
        p = ngx_hex_dump(p, md, SHA256_DIGEST_LENGTH);
    }

    key->len = p - key->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eventbridge_dedupe_header(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *value)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == lcf->dedupe_header.len
                && ngx_strncasecmp(h[i].key.data, lcf->dedupe_header.data,
                                   h[i].key.len) == 0)
            {
                /* the first one; an empty value is no key */
                *value = h[i].value;
                return NGX_OK;
            }
        }
    }

    ngx_str_null(value);

    return NGX_OK;
}


/* The value the JSONPath selects in the body, as text; none when the body
 * is not JSON, the path selects nothing, or null. */
static ngx_int_t
ngx_http_eventbridge_dedupe_body(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *body, ngx_uint_t is_json,
    ngx_str_t *value)
{
    u_char            *text;
    eb_buf_t           b;
    yajl_val           root, v;
    ngx_int_t          rc;

    ngx_str_null(value);

    if (!is_json || body->len == 0) {
        return NGX_OK;
    }

    /* yajl_tree wants a C string; the body was validated already */
    text = ngx_pnalloc(r->pool, body->len + 1);
    if (text == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(text, body->data, body->len);
    text[body->len] = '\0';

    root = yajl_tree_parse((char *) text, NULL, 0);
    if (root == NULL) {
        return NGX_OK;
    }

    eb_buf_init(&b);
    rc = NGX_OK;

    v = eb_jsonpath_first(lcf->dedupe_path, root);

    if (v && !YAJL_IS_NULL(v)) {
        if (eb_jsonpath_write_text(&b, v) != 0) {
            rc = NGX_ERROR;

        } else if (b.len) {
            value->data = ngx_pnalloc(r->pool, b.len);
            if (value->data == NULL) {
                rc = NGX_ERROR;

            } else {
                ngx_memcpy(value->data, b.data, b.len);
                value->len = b.len;
            }
        }
    }

    eb_buf_free(&b);
    yajl_tree_free(root);

    return rc;
}


ngx_int_t
ngx_http_eventbridge_dedupe_source(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx, ngx_str_t *body, ngx_uint_t is_json)
{
    ngx_str_t                         value, *key;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    if (lcf->dedupe == EB_DEDUPE_HEADER) {
        if (ngx_http_eventbridge_dedupe_header(r, lcf, &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (ngx_http_eventbridge_dedupe_body(r, lcf, body, is_json, &value)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (value.len == 0) {
        if (!lcf->dedupe_required) {
            return NGX_OK;      /* processed as if there were no dedupe */
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "eventbridge: rejected: no idempotency key");
        ngx_http_eventbridge_count_reject(r, EB_REJECT_MISSING_KEY);

        if (lcf->dedupe == EB_DEDUPE_HEADER) {
            return ngx_http_eventbridge_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "MissingIdempotencyKey", "the request has no %V "
                       "header", &lcf->dedupe_header);
        }

        return ngx_http_eventbridge_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "MissingIdempotencyKey", "the body has no value at %s",
                   eb_jsonpath_expr(lcf->dedupe_path));
    }

    key = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (key == NULL
        || ngx_http_eventbridge_dedupe_make_key(r, &lcf->dedupe_prefix,
                                                &value, 1, key)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the value set under the key is the event's id: a repeat answers
     * with it */
    ctx->dedupe_keys = key;
    ctx->dedupe_tokens = &ctx->event_id_str;

    return NGX_OK;
}


/* --- PutEvents: (source, id) ----------------------------------------- */


/* the top-level "source" and "id" of a (valid, compact) event, decoded */
typedef struct {
    ngx_http_request_t  *r;
    ngx_uint_t           depth;
    ngx_str_t           *want;          /* the member whose value is next */
    ngx_str_t            source;
    ngx_str_t            id;
    unsigned             nomem:1;
} ngx_http_eventbridge_ce_scan_t;


static int
ngx_http_eventbridge_ce_scalar(void *ctx)
{
    ngx_http_eventbridge_ce_scan_t  *s = ctx;

    s->want = NULL;
    return 1;
}


static int
ngx_http_eventbridge_ce_boolean(void *ctx, int v)
{
    return ngx_http_eventbridge_ce_scalar(ctx);
}


static int
ngx_http_eventbridge_ce_number(void *ctx, const char *v, size_t len)
{
    return ngx_http_eventbridge_ce_scalar(ctx);
}


static int
ngx_http_eventbridge_ce_string(void *ctx, const unsigned char *v, size_t len)
{
    ngx_http_eventbridge_ce_scan_t  *s = ctx;

    if (s->want) {
        s->want->data = ngx_pnalloc(s->r->pool, len ? len : 1);
        if (s->want->data == NULL) {
            s->nomem = 1;
            return 0;
        }

        ngx_memcpy(s->want->data, v, len);
        s->want->len = len;
        s->want = NULL;

        /* both found: the rest (data) need not be read */
        if (s->source.data && s->id.data) {
            return 0;
        }
    }

    return 1;
}


static int
ngx_http_eventbridge_ce_key(void *ctx, const unsigned char *k, size_t len)
{
    ngx_http_eventbridge_ce_scan_t  *s = ctx;

    s->want = NULL;

    if (s->depth == 1) {
        if (len == 6 && ngx_strncmp(k, "source", 6) == 0) {
            s->want = &s->source;

        } else if (len == 2 && ngx_strncmp(k, "id", 2) == 0) {
            s->want = &s->id;
        }
    }

    return 1;
}


static int
ngx_http_eventbridge_ce_open(void *ctx)
{
    ngx_http_eventbridge_ce_scan_t  *s = ctx;

    s->want = NULL;
    s->depth++;
    return 1;
}


static int
ngx_http_eventbridge_ce_close(void *ctx)
{
    ngx_http_eventbridge_ce_scan_t  *s = ctx;

    s->depth--;
    return 1;
}


static yajl_callbacks  ngx_http_eventbridge_ce_callbacks = {
    ngx_http_eventbridge_ce_scalar,         /* null */
    ngx_http_eventbridge_ce_boolean,
    NULL,                                   /* integer: number does it */
    NULL,                                   /* double */
    ngx_http_eventbridge_ce_number,
    ngx_http_eventbridge_ce_string,
    ngx_http_eventbridge_ce_open,           /* start_map */
    ngx_http_eventbridge_ce_key,
    ngx_http_eventbridge_ce_close,          /* end_map */
    ngx_http_eventbridge_ce_open,           /* start_array */
    ngx_http_eventbridge_ce_close           /* end_array */
};


ngx_int_t
ngx_http_eventbridge_dedupe_events(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx, ngx_str_t *events, ngx_uint_t n)
{
    u_char                           *p, len[NGX_SIZE_T_LEN + 1];
    u_char                            uuid[EB_UUID_LEN];
    yajl_handle                       h;
    ngx_str_t                         parts[3];
    ngx_uint_t                        i;
    yajl_alloc_funcs                  afs;
    ngx_http_eventbridge_ce_scan_t    s;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    ctx->dedupe_keys = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    ctx->dedupe_tokens = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    if (ctx->dedupe_keys == NULL || ctx->dedupe_tokens == NULL) {
        return NGX_ERROR;
    }

    /* tokens: one UUID for the request, and the entry's index */
    if (ngx_http_eventbridge_uuid(EB_UUID_V4, uuid) != NGX_OK) {
        return NGX_ERROR;
    }
    ngx_http_eventbridge_pool_afs(r, &afs);

    for (i = 0; i < n; i++) {
        ngx_memzero(&s, sizeof(ngx_http_eventbridge_ce_scan_t));
        s.r = r;

        h = yajl_alloc(&ngx_http_eventbridge_ce_callbacks, &afs, &s);
        if (h == NULL) {
            return NGX_ERROR;
        }

        (void) yajl_parse(h, events[i].data, events[i].len);
        yajl_free(h);

        /* eb_cloudevent.c accepted the event: both are there */
        if (s.nomem || s.source.data == NULL || s.id.data == NULL) {
            return NGX_ERROR;
        }

        /* LEN:SOURCE ID: the length keeps the pair unambiguous */
        parts[0].data = len;
        parts[0].len = ngx_sprintf(len, "%uz:", s.source.len) - len;
        parts[1] = s.source;
        parts[2] = s.id;

        if (ngx_http_eventbridge_dedupe_make_key(r, &lcf->dedupe_prefix,
                                                 parts, 3,
                                                 &ctx->dedupe_keys[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        p = ngx_pnalloc(r->pool, EB_UUID_LEN + 1 + NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->dedupe_tokens[i].data = p;
        ctx->dedupe_tokens[i].len = ngx_sprintf(p, "%*s:%ui", EB_UUID_LEN,
                                                uuid, i)
                                    - p;
    }

    return NGX_OK;
}


/* --- the script ------------------------------------------------------ */


ngx_int_t
ngx_http_eventbridge_dedupe_script(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx, ngx_http_eventbridge_matched_t *ev,
    ngx_uint_t n, ngx_str_t *cmd)
{
    u_char                           *p;
    size_t                            size;
    ngx_str_t                         s, none, *token;
    ngx_uint_t                        i, j, t, k, nargs, nkeys, nt;
    ngx_http_eventbridge_rule_t      *rule;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    u_char  num[NGX_INT_T_LEN];

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    ngx_str_null(&none);

    /* EVAL script numkeys, KEYS[1], ARGV[1..2], then per event */
    nkeys = 1;
    nargs = 3 + 1 + 2;
    size = sizeof("*\r\n$4\r\nEVAL\r\n") - 1 + NGX_INT_T_LEN
           + EB_BULK_OVERHEAD + ngx_http_eventbridge_dedupe_lua.len
           + 3 * (EB_BULK_OVERHEAD + NGX_INT_T_LEN)
           + EB_BULK_OVERHEAD + lcf->stream_key.len;

    for (i = 0; i < n; i++) {
        token = (ctx->dedupe_keys[i].len) ? &ctx->dedupe_tokens[i] : &none;

        nt = 0;
        for (j = 0; j < ev[i].n; j++) {
            rule = &lcf->bus_conf->rules[ev[i].ids[j]];

            for (t = 0; t < rule->ntargets; t++, nt++) {
                size += 3 * EB_BULK_OVERHEAD + rule->targets[t].key.len
                        + rule->targets[t].rule.len;
                if (ev[i].streams && ev[i].streams[nt].len) {
                    size += ev[i].streams[nt].len + 1 + ev[i].okeys[nt].len;
                }
            }
        }

        if (token->len) {
            nkeys++;
            size += EB_BULK_OVERHEAD + ctx->dedupe_keys[i].len;
        }

        nkeys += nt;
        nargs += 1 + 4 + 3 * nt;
        size += 4 * EB_BULK_OVERHEAD + NGX_INT_T_LEN + token->len
                + ev[i].json->len + ev[i].names.len;
    }

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    cmd->data = p;

    p = ngx_sprintf(p, "*%ui\r\n$4\r\nEVAL\r\n", nargs);
    p = ngx_http_eventbridge_bulk(p, &ngx_http_eventbridge_dedupe_lua);

    s.data = num;
    s.len = ngx_sprintf(num, "%ui", nkeys) - num;
    p = ngx_http_eventbridge_bulk(p, &s);

    /* KEYS */
    p = ngx_http_eventbridge_bulk(p, &lcf->stream_key);

    for (i = 0; i < n; i++) {
        if (ctx->dedupe_keys[i].len) {
            p = ngx_http_eventbridge_bulk(p, &ctx->dedupe_keys[i]);
        }

        k = 0;
        for (j = 0; j < ev[i].n; j++) {
            rule = &lcf->bus_conf->rules[ev[i].ids[j]];

            for (t = 0; t < rule->ntargets; t++, k++) {
                p = ngx_http_eventbridge_bulk(p,
                        ev[i].streams && ev[i].streams[k].len
                        ? &ev[i].streams[k] : &rule->targets[t].key);
            }
        }
    }

    /* ARGV */
    s.len = ngx_sprintf(num, "%ui", lcf->stream_maxlen) - num;
    p = ngx_http_eventbridge_bulk(p, &s);
    s.len = ngx_sprintf(num, "%M", lcf->dedupe_window) - num;
    p = ngx_http_eventbridge_bulk(p, &s);

    for (i = 0; i < n; i++) {
        token = (ctx->dedupe_keys[i].len) ? &ctx->dedupe_tokens[i] : &none;

        nt = 0;
        for (j = 0; j < ev[i].n; j++) {
            nt += lcf->bus_conf->rules[ev[i].ids[j]].ntargets;
        }

        s.len = ngx_sprintf(num, "%ui", nt) - num;
        p = ngx_http_eventbridge_bulk(p, &s);
        p = ngx_http_eventbridge_bulk(p, token);
        p = ngx_http_eventbridge_bulk(p, ev[i].json);
        p = ngx_http_eventbridge_bulk(p, &ev[i].names);

        for (j = 0; j < ev[i].n; j++) {
            rule = &lcf->bus_conf->rules[ev[i].ids[j]];

            for (t = 0; t < rule->ntargets; t++) {
                p = ngx_http_eventbridge_bulk(p, &rule->targets[t].rule);
            }
        }

        /* the ordering keys: "" (not ordered) or "=" KEY */
        for (k = 0; k < nt; k++) {
            if (ev[i].streams && ev[i].streams[k].len) {
                p = ngx_sprintf(p, "$%uz\r\n=", ev[i].okeys[k].len + 1);
                p = ngx_cpymem(p, ev[i].okeys[k].data, ev[i].okeys[k].len);
                *p++ = '\r';
                *p++ = '\n';

            } else {
                p = ngx_http_eventbridge_bulk(p, &none);
            }
        }
    }

    cmd->len = p - cmd->data;

    return NGX_OK;
}


/* The script's answer, per event: 0 (appended) or the value under its key.
 * Our own token is an earlier attempt of this very request that ran (a
 * resend after a lost reply): appended, not a repeat. */
void
ngx_http_eventbridge_dedupe_reply(void *data, redisReply *reply)
{
    u_char                      *p;
    ngx_http_request_t          *r = data;
    ngx_uint_t                   i;
    redisReply                  *e;
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    ctx->deduplicated = 0;

    for (i = 0; i < reply->elements && i < ctx->nevents; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING
            || ctx->dedupe_keys[i].len == 0
            || ((size_t) e->len == ctx->dedupe_tokens[i].len
                && ngx_memcmp(e->str, ctx->dedupe_tokens[i].data, e->len)
                   == 0))
        {
            continue;
        }

        ctx->deduplicated++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eventbridge: repeat of %*s, not appended",
                       (size_t) e->len, e->str);

        /* an HTTP source answers with the original event's id */
        if (ctx->nevents == 1 && ctx->dedupe_tokens == &ctx->event_id_str
            && e->len > 0 && e->len <= EB_DEDUPE_VALUE_MAX)
        {
            p = ngx_pnalloc(r->pool, e->len);
            if (p == NULL) {
                continue;       /* answered with its own id */
            }

            ngx_memcpy(p, e->str, e->len);
            ctx->event_id_str.data = p;
            ctx->event_id_str.len = e->len;
        }
    }
}
