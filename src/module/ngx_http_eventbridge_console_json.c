/*
 * The console API's JSON (yajl's generator: every string escaped) and
 * its query parameters, each checked (eb_console_params.c) before any
 * Redis command is made.
 */

#include "ngx_http_eventbridge_console.h"


ngx_int_t
ngx_http_eventbridge_console_gen(ngx_http_eventbridge_console_t *cn)
{
    if (cn->g) {
        yajl_gen_free(cn->g);
    }

    /* malloc'd: freed by the request's cleanup; a pool would keep every
     * size the buffer had on its way */
    cn->g = yajl_gen_alloc(NULL);

    return cn->g ? NGX_OK : NGX_ERROR;
}


void
ngx_http_eventbridge_console_str(yajl_gen g, const char *s)
{
    (void) yajl_gen_string(g, (const u_char *) s, ngx_strlen(s));
}


void
ngx_http_eventbridge_console_strn(yajl_gen g, const u_char *p, size_t len)
{
    (void) yajl_gen_string(g, p, len);
}


void
ngx_http_eventbridge_console_int(yajl_gen g, int64_t n)
{
    (void) yajl_gen_integer(g, (long long) n);
}


void
ngx_http_eventbridge_console_reply_str(yajl_gen g, redisReply *e)
{
    if (e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS))
    {
        (void) yajl_gen_string(g, (const u_char *) e->str, e->len);

    } else if (e && e->type == REDIS_REPLY_INTEGER) {
        (void) yajl_gen_integer(g, e->integer);

    } else {
        (void) yajl_gen_null(g);
    }
}


void
ngx_http_eventbridge_console_reply_num(yajl_gen g, redisReply *e)
{
    size_t  i;

    if (e && e->type == REDIS_REPLY_STRING && e->len > 0 && e->len < 19) {
        for (i = e->len > 1 && e->str[0] == '-' ? 1 : 0; i < e->len; i++) {
            if (e->str[i] < '0' || e->str[i] > '9') {
                break;
            }
        }

        if (i == e->len) {
            (void) yajl_gen_number(g, e->str, e->len);
            return;
        }
    }

    ngx_http_eventbridge_console_reply_str(g, e);
}


size_t
ngx_http_eventbridge_console_size(yajl_gen g)
{
    size_t                len;
    const unsigned char  *buf;

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        return 0;
    }

    return len;
}


ngx_int_t
ngx_http_eventbridge_console_finish(ngx_http_eventbridge_console_t *cn)
{
    u_char               *p;
    size_t                len, i, n;
    const unsigned char  *buf;

    if (yajl_gen_get_buf(cn->g, &buf, &len) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    /* < > & only ever stand in strings here: as \u escapes, no sniffing
     * or HTML parser can take the answer for markup */
    n = len;

    for (i = 0; i < len; i++) {
        if (buf[i] == '<' || buf[i] == '>' || buf[i] == '&') {
            n += 5;
        }
    }

    p = ngx_pnalloc(cn->r->pool, n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    cn->out.data = p;

    for (i = 0; i < len; i++) {
        switch (buf[i]) {
        case '<':
            p = ngx_cpymem(p, "\\u003c", 6);
            break;
        case '>':
            p = ngx_cpymem(p, "\\u003e", 6);
            break;
        case '&':
            p = ngx_cpymem(p, "\\u0026", 6);
            break;
        default:
            *p++ = buf[i];
        }
    }

    cn->out.len = p - cn->out.data;

    yajl_gen_free(cn->g);
    cn->g = NULL;

    return NGX_OK;
}


/* a step's answer is written: finish it, or 500 */
void
ngx_http_eventbridge_console_end(ngx_http_eventbridge_console_t *cn)
{
    if (ngx_http_eventbridge_console_finish(cn) != NGX_OK) {
        ngx_http_eventbridge_console_fail(cn, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "InternalError", "no memory");
    }
}


void
ngx_http_eventbridge_console_fail(ngx_http_eventbridge_console_t *cn,
    ngx_uint_t status, const char *code, const char *msg)
{
    if (ngx_http_eventbridge_console_gen(cn) != NGX_OK) {
        return;
    }

    (void) yajl_gen_map_open(cn->g);
    ngx_http_eventbridge_console_str(cn->g, "errorCode");
    ngx_http_eventbridge_console_str(cn->g, code);
    ngx_http_eventbridge_console_str(cn->g, "errorMessage");
    ngx_http_eventbridge_console_str(cn->g, msg);
    (void) yajl_gen_map_close(cn->g);

    cn->status = status;
    cn->next = NULL;
    (void) ngx_http_eventbridge_console_finish(cn);
}


redisReply *
ngx_http_eventbridge_console_field(redisReply *fields, const char *name)
{
    size_t  i, len;

    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }

    len = ngx_strlen(name);

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (fields->element[i]->type == REDIS_REPLY_STRING
            && fields->element[i]->len == len
            && ngx_strncmp(fields->element[i]->str, name, len) == 0)
        {
            return fields->element[i + 1];
        }
    }

    return NULL;
}


int64_t
ngx_http_eventbridge_console_id_ms(redisReply *id)
{
    size_t   i;
    int64_t  ms;

    if (id == NULL || id->type != REDIS_REPLY_STRING) {
        return 0;
    }

    ms = 0;

    for (i = 0; i < id->len && i < 18 && id->str[i] >= '0'
                && id->str[i] <= '9'; i++)
    {
        ms = ms * 10 + (id->str[i] - '0');
    }

    return ms;
}


/* --- parameters ------------------------------------------------------ */


ngx_int_t
ngx_http_eventbridge_console_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (raw.len > 3 * EB_CONSOLE_STRING_MAX) {
        goto invalid;
    }

    dst = ngx_pnalloc(r->pool, raw.len);
    if (dst == NULL && raw.len) {
        return NGX_ERROR;
    }

    value->data = dst;
    src = raw.data;
    ngx_unescape_uri(&dst, &src, raw.len, 0);
    value->len = dst - value->data;

    if (value->len == 0) {
        return NGX_DECLINED;       /* "x=" is no filter */
    }

    if (value->len <= EB_CONSOLE_STRING_MAX) {
        return NGX_OK;
    }

invalid:

    (void) ngx_http_eventbridge_console_error(r, NGX_HTTP_BAD_REQUEST,
                                              "InvalidParameter",
                                              "parameter \"%s\": longer than "
                                              "%d bytes", name,
                                              EB_CONSOLE_STRING_MAX);
    return NGX_ERROR;
}


ngx_int_t
ngx_http_eventbridge_console_arg_limit(ngx_http_request_t *r,
    ngx_uint_t *limit)
{
    unsigned   n;
    ngx_int_t  rc;
    ngx_str_t  v;

    *limit = EB_CONSOLE_LIMIT_DEFAULT;

    rc = ngx_http_eventbridge_console_arg(r, "limit", &v);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
    }

    if (eb_console_limit(v.data, v.len, &n) != 0) {
        (void) ngx_http_eventbridge_console_error(r, NGX_HTTP_BAD_REQUEST,
                                                  "InvalidParameter",
                                                  "parameter \"limit\": an "
                                                  "integer from 1 to %d",
                                                  EB_CONSOLE_LIMIT_MAX);
        return NGX_ERROR;
    }

    *limit = n;

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_arg_id(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_int_t  rc;

    rc = ngx_http_eventbridge_console_arg(r, name, value);
    if (rc != NGX_OK) {
        return rc;
    }

    /* a cursor is where a page ended: never the stream's first id */
    if (eb_console_id(value->data, value->len,
                      ngx_strcmp(name, "cursor") == 0
                      ? EB_CONSOLE_ID_CURSOR : 0)
        != 0)
    {
        (void) ngx_http_eventbridge_console_error(r, NGX_HTTP_BAD_REQUEST,
                                                  "InvalidParameter",
                                                  "parameter \"%s\": a time "
                                                  "in milliseconds or a "
                                                  "stream id (MS-SEQ)", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}
