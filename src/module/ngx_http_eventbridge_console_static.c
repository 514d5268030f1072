/*
 * The console's static files, from the directory of `root=`: served the
 * way ngx_http_static_module serves them (open_file_cache, file buffers
 * the output chain sends with sendfile or aio, If-Modified-Since and
 * ETag by the not-modified filter), so they block no more and no less
 * than any static file nginx serves. Only names of [A-Za-z0-9._-] in
 * segments that do not start with a dot are looked up: no "..", no
 * hidden file, no encoded separator can leave the directory.
 */

#include "ngx_http_eventbridge_console.h"


#define EB_CONSOLE_PATH_MAX  256


/* the console's own files have these types whatever the location's
 * `types` say: with nosniff a browser runs a script only when it is
 * served as one */
#define EB_TYPE(ext, type, bare)                                              \
    { ngx_string(ext), ngx_string(type), sizeof(bare) - 1 }

static struct {
    ngx_str_t   exten;
    ngx_str_t   type;
    size_t      type_len;           /* without parameters */
} ngx_http_eventbridge_console_types[] = {
    EB_TYPE("html", "text/html; charset=utf-8", "text/html"),
    EB_TYPE("js", "text/javascript; charset=utf-8", "text/javascript"),
    EB_TYPE("mjs", "text/javascript; charset=utf-8", "text/javascript"),
    EB_TYPE("css", "text/css; charset=utf-8", "text/css"),
    EB_TYPE("json", "application/json", "application/json"),
    EB_TYPE("svg", "image/svg+xml", "image/svg+xml"),
    EB_TYPE("png", "image/png", "image/png"),
    EB_TYPE("ico", "image/x-icon", "image/x-icon"),
    EB_TYPE("woff2", "font/woff2", "font/woff2"),
    EB_TYPE("txt", "text/plain; charset=utf-8", "text/plain"),
    { ngx_null_string, ngx_null_string, 0 }
};


static ngx_int_t
ngx_http_eventbridge_console_valid_path(ngx_str_t *path)
{
    size_t  i;
    u_char  c, prev;

    if (path->len > EB_CONSOLE_PATH_MAX) {
        return NGX_ERROR;
    }

    prev = '/';

    for (i = 0; i < path->len; i++) {
        c = path->data[i];

        if (prev == '/' && (c == '.' || c == '/')) {
            return NGX_ERROR;       /* "..", ".hidden", "//" */
        }

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
              || c == '/'))
        {
            return NGX_ERROR;
        }

        prev = c;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_static(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *path)
{
    u_char                    *p, *dot;
    ngx_int_t                  rc;
    ngx_str_t                  name, file;
    ngx_buf_t                 *b;
    ngx_uint_t                 level, i;
    ngx_chain_t                out;
    ngx_open_file_info_t       of;
    ngx_http_core_loc_conf_t  *clcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    name = *path;

    if (name.len == 0 || name.data[name.len - 1] == '/') {
        /* a directory: its index.html (the name is ours, not the URI's) */
        p = ngx_pnalloc(r->pool, name.len + sizeof("index.html") - 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        name.len = ngx_cpymem(ngx_cpymem(p, name.data, name.len),
                              "index.html", sizeof("index.html") - 1)
                   - p;
        name.data = p;
    }

    if (ngx_http_eventbridge_console_valid_path(&name) != NGX_OK) {
        return NGX_HTTP_NOT_FOUND;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    file.len = lcf->console_root.len + 1 + name.len;
    file.data = ngx_pnalloc(r->pool, file.len + 1);
    if (file.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(file.data, lcf->console_root.data, lcf->console_root.len);
    *p++ = '/';
    p = ngx_cpymem(p, name.data, name.len);
    *p = '\0';

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ngx_memzero(&of, sizeof(ngx_open_file_info_t));

    of.read_ahead = clcf->read_ahead;
    of.directio = clcf->directio;
    of.valid = clcf->open_file_cache_valid;
    of.min_uses = clcf->open_file_cache_min_uses;
    of.errors = clcf->open_file_cache_errors;
    of.events = clcf->open_file_cache_events;

    if (ngx_http_set_disable_symlinks(r, clcf, &file, &of) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_open_cached_file(clcf->open_file_cache, &file, &of, r->pool)
        != NGX_OK)
    {
        switch (of.err) {

        case 0:
            return NGX_HTTP_INTERNAL_SERVER_ERROR;

        case NGX_ENOENT:
        case NGX_ENOTDIR:
        case NGX_ENAMETOOLONG:
            level = NGX_LOG_ERR;
            rc = NGX_HTTP_NOT_FOUND;
            break;

        case NGX_EACCES:
#if (NGX_HAVE_OPENAT)
        case NGX_EMLINK:
        case NGX_ELOOP:
#endif
            level = NGX_LOG_ERR;
            rc = NGX_HTTP_FORBIDDEN;
            break;

        default:
            level = NGX_LOG_CRIT;
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            break;
        }

        if (rc != NGX_HTTP_NOT_FOUND || clcf->log_not_found) {
            ngx_log_error(level, r->connection->log, of.err,
                          "%s \"%s\" failed", of.failed, file.data);
        }

        return rc;
    }

    if (!of.is_file) {
        return NGX_HTTP_NOT_FOUND;
    }

    r->root_tested = !r->error_page;

    /* the type by the file's extension, as nginx's types map says */
    dot = NULL;

    for (p = name.data + name.len; p > name.data && p[-1] != '/'; p--) {
        if (p[-1] == '.') {
            dot = p;
            break;
        }
    }

    if (dot) {
        r->exten.data = dot;
        r->exten.len = name.data + name.len - dot;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = of.size;
    r->headers_out.last_modified_time = of.mtime;

    for (i = 0; ngx_http_eventbridge_console_types[i].exten.len; i++) {
        if (r->exten.len == ngx_http_eventbridge_console_types[i].exten.len
            && ngx_strncasecmp(r->exten.data,
                               ngx_http_eventbridge_console_types[i].exten.data,
                               r->exten.len) == 0)
        {
            r->headers_out.content_type =
                                     ngx_http_eventbridge_console_types[i].type;
            r->headers_out.content_type_len =
                                 ngx_http_eventbridge_console_types[i].type_len;
            break;
        }
    }

    if (ngx_http_set_etag(r) != NGX_OK
        || (r->headers_out.content_type.len == 0
            && ngx_http_set_content_type(r) != NGX_OK)
        || ngx_http_eventbridge_console_headers(r, 1) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->allow_ranges = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->file_pos = 0;
    b->file_last = of.size;

    b->in_file = b->file_last ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    b->sync = (b->last_buf || b->in_file) ? 0 : 1;

    b->file->fd = of.fd;
    b->file->name = file;
    b->file->log = r->connection->log;
    b->file->directio = of.is_directio;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
