/*
 * JSON answers: the module's own responses, and a header/body filter that
 * turns the error pages nginx core produces in an event-source location
 * (413 for client_max_body_size, 400 for a broken chunked body, 408, ...)
 * into the same {"errorCode", "errorMessage"} body, so a sender always
 * gets JSON.
 */

#include "ngx_http_eventbridge.h"

#include <yajl/yajl_gen.h>


#define EB_ERROR_MESSAGE_MAX  512


static ngx_int_t ngx_http_eventbridge_error_header_filter(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_eventbridge_error_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_eventbridge_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_int_t                    rc;
    ngx_buf_t                   *b;
    ngx_chain_t                  out;
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_eventbridge_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->own_response = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* {"errorCode":CODE,"errorMessage":MESSAGE}, escaped by yajl */
static ngx_int_t
ngx_http_eventbridge_error_json(ngx_pool_t *pool, const char *code,
    const u_char *msg, size_t len, ngx_str_t *out)
{
    yajl_gen              g;
    const unsigned char  *buf;
    size_t                n;
    ngx_int_t             rc;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (yajl_gen_map_open(g) != yajl_gen_status_ok
        || yajl_gen_string(g, (u_char *) "errorCode", 9) != yajl_gen_status_ok
        || yajl_gen_string(g, (u_char *) code, ngx_strlen(code))
           != yajl_gen_status_ok
        || yajl_gen_string(g, (u_char *) "errorMessage", 12)
           != yajl_gen_status_ok
        || yajl_gen_string(g, msg, len) != yajl_gen_status_ok
        || yajl_gen_map_close(g) != yajl_gen_status_ok
        || yajl_gen_get_buf(g, &buf, &n) != yajl_gen_status_ok)
    {
        goto done;
    }

    out->data = ngx_pnalloc(pool, n);
    if (out->data == NULL) {
        goto done;
    }

    ngx_memcpy(out->data, buf, n);
    out->len = n;
    rc = NGX_OK;

done:

    yajl_gen_free(g);
    return rc;
}


ngx_int_t
ngx_http_eventbridge_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ...)
{
    u_char     msg[EB_ERROR_MESSAGE_MAX], *p;
    va_list    args;
    ngx_str_t  body;

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    if (ngx_http_eventbridge_error_json(r->pool, code, msg, p - msg, &body)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_send_json(r, status, &body);
}


ngx_int_t
ngx_http_eventbridge_error_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_eventbridge_error_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_eventbridge_error_body_filter;

    return NGX_OK;
}


static const char *
ngx_http_eventbridge_error_code(ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
        return "BadRequest";
    case NGX_HTTP_FORBIDDEN:
        return "Forbidden";
    case NGX_HTTP_NOT_FOUND:
        return "NotFound";
    case NGX_HTTP_NOT_ALLOWED:
        return "MethodNotAllowed";
    case NGX_HTTP_REQUEST_TIME_OUT:
        return "RequestTimeout";
    case NGX_HTTP_LENGTH_REQUIRED:
        return "LengthRequired";
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return "PayloadTooLarge";
    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
        return "URITooLong";
    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        return "UnsupportedMediaType";
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        return "ServiceUnavailable";
    default:
        return status >= 500 ? "InternalError" : "ClientError";
    }
}


static const char *
ngx_http_eventbridge_error_message(ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return "request body exceeds client_max_body_size";
    case NGX_HTTP_REQUEST_TIME_OUT:
        return "request body not received in time";
    case NGX_HTTP_BAD_REQUEST:
        return "malformed HTTP request";
    default:
        return status >= 500 ? "internal error" : "request refused";
    }
}


static ngx_int_t
ngx_http_eventbridge_error_header_filter(ngx_http_request_t *r)
{
    const char                       *msg;
    ngx_uint_t                        status;
    ngx_http_eventbridge_ctx_t       *ctx;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    status = r->headers_out.status;

    if (status < NGX_HTTP_BAD_REQUEST || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    if (lcf == NULL || lcf->endpoint.len == 0) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_eventbridge_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->own_response) {
        return ngx_http_next_header_filter(r);
    }

    if (status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_http_eventbridge_count_reject(r, EB_REJECT_BODY_TOO_LARGE);
    }

    msg = ngx_http_eventbridge_error_message(status);

    if (ngx_http_eventbridge_error_json(r->pool,
                                        ngx_http_eventbridge_error_code(status),
                                        (u_char *) msg, ngx_strlen(msg),
                                        &ctx->error_body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->rewrite_error = 1;

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    r->headers_out.content_length_n = ctx->error_body.len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_eventbridge_error_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                   *b;
    ngx_chain_t                 *cl, out;
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    if (ctx == NULL || !ctx->rewrite_error) {
        return ngx_http_next_body_filter(r, in);
    }

    /* swallow core's HTML page; ours replaces it whole */
    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (ctx->error_sent) {
        return in ? NGX_OK : ngx_http_next_body_filter(r, NULL);
    }

    ctx->error_sent = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error_body.data;
    b->last = ctx->error_body.data + ctx->error_body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
