/*
 * eventbridge_signature: webhook signatures verified at the edge, on the
 * raw body, before anything is appended to Redis (the scheme and the
 * checks are src/core/eb_signature.c's). Keys are read when the
 * configuration is (a file, or an environment variable of the master
 * process), never on the request path and never logged.
 */

#include "ngx_http_eventbridge.h"


#define EB_SIG_ERR_MAX  256


/* what the sender reads first: which check failed */
static const char  *ngx_http_eventbridge_signature_checks[EB_SIG_RC_MAX] = {
    "",
    "missing header",
    "malformed header",
    "timestamp outside tolerance (too old)",
    "timestamp outside tolerance (in the future)",
    "bad signature",
    ""
};


static ngx_int_t ngx_http_eventbridge_signature_key(ngx_conf_t *cf,
    eb_sig_scheme_t *s, ngx_str_t *arg);
static void ngx_http_eventbridge_signature_cleanup(void *data);


char *
ngx_http_eventbridge_signature_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    char                 err[EB_SIG_ERR_MAX];
    ngx_int_t            rc;
    ngx_str_t           *value;
    ngx_uint_t           i;
    eb_sig_scheme_t     *s;
    ngx_pool_cleanup_t  *cln;

    if (lcf->signature != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    s = ngx_pcalloc(cf->pool, sizeof(eb_sig_scheme_t));
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    if (eb_sig_preset(s, (char *) value[1].data, value[1].len) != 0) {
        ngx_http_eventbridge_conf_error(cf,
                           "unknown scheme \"%V\": use github, gitlab, "
                           "stripe, shopify, slack, standard, dingtalk or "
                           "hmac", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* the keys' OpenSSL objects go with the configuration */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_eventbridge_signature_cleanup;
    cln->data = s;

    /* options first: keys are decoded by the scheme they end up in */
    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len >= 4 && ngx_strncmp(value[i].data, "key=", 4) == 0) {
            continue;
        }

        rc = eb_sig_option(s, (char *) value[i].data, value[i].len, err,
                           sizeof(err));

        if (rc == 1) {
            ngx_http_eventbridge_conf_error(cf, "unknown parameter \"%V\"",
                                            &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc != 0) {
            ngx_http_eventbridge_conf_error(cf, "%s", err);
            return NGX_CONF_ERROR;
        }
    }

    for (i = 2; i < cf->args->nelts; i++) {
        if (value[i].len >= 4 && ngx_strncmp(value[i].data, "key=", 4) == 0
            && ngx_http_eventbridge_signature_key(cf, s, &value[i]) != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (eb_sig_finish(s, err, sizeof(err)) != 0) {
        ngx_http_eventbridge_conf_error(cf, "%s", err);
        return NGX_CONF_ERROR;
    }

    lcf->signature = s;
    lcf->signature_file = cf->conf_file->file.name.data;
    lcf->signature_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* key=file:PATH or key=env:NAME; the secret itself is never accepted */
static ngx_int_t
ngx_http_eventbridge_signature_key(ngx_conf_t *cf, eb_sig_scheme_t *s,
    ngx_str_t *arg)
{
    char             err[EB_SIG_ERR_MAX];
    u_char          *buf, *name;
    size_t           len, size;
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t        path;
    ngx_int_t        rc;
    ngx_uint_t       i;
    ngx_file_info_t  fi;

    if (arg->len > 9 && ngx_strncmp(arg->data, "key=file:", 9) == 0) {
        path.data = arg->data + 9;
        path.len = arg->len - 9;

        if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
        if (fd == NGX_INVALID_FILE) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "\"eventbridge_signature\" directive: "
                               "cannot open key file \"%s\"", path.data);
            return NGX_ERROR;
        }

        if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "\"eventbridge_signature\" directive: "
                               "cannot stat key file \"%s\"", path.data);
            (void) ngx_close_file(fd);
            return NGX_ERROR;
        }

        size = (size_t) ngx_file_size(&fi);

        /* the key and a line end */
        if (size == 0 || size > EB_SIG_KEY_MAX + 2) {
            ngx_http_eventbridge_conf_error(cf, "key file \"%s\" must hold "
                                            "1 to %d bytes", path.data,
                                            EB_SIG_KEY_MAX);
            (void) ngx_close_file(fd);
            return NGX_ERROR;
        }

        buf = ngx_alloc(size, cf->log);
        if (buf == NULL) {
            (void) ngx_close_file(fd);
            return NGX_ERROR;
        }

        n = ngx_read_fd(fd, buf, size);
        (void) ngx_close_file(fd);

        if (n != (ssize_t) size) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "\"eventbridge_signature\" directive: "
                               "cannot read key file \"%s\"", path.data);
            ngx_free(buf);
            return NGX_ERROR;
        }

        /* a file written by an editor or echo ends with a line end */
        len = size;
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
            len--;
        }

        if (len == 0) {
            ngx_http_eventbridge_conf_error(cf, "key file \"%s\" is empty",
                                            path.data);
            ngx_free(buf);
            return NGX_ERROR;
        }

        rc = eb_sig_add_key(s, buf, len, err, sizeof(err));

        ngx_explicit_memzero(buf, size);
        ngx_free(buf);

        if (rc != 0) {
            ngx_http_eventbridge_conf_error(cf, "key file \"%s\": %s",
                                            path.data, err);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (arg->len > 8 && ngx_strncmp(arg->data, "key=env:", 8) == 0) {
        len = arg->len - 8;

        for (i = 0; i < len; i++) {
            u_char  c = arg->data[8 + i];

            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                  || (c >= '0' && c <= '9') || c == '_'))
            {
                ngx_http_eventbridge_conf_error(cf, "invalid environment "
                                                "variable name in \"%V\"",
                                                arg);
                return NGX_ERROR;
            }
        }

        name = ngx_pnalloc(cf->temp_pool, len + 1);
        if (name == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_cpystrn(name, arg->data + 8, len + 1);

        /* the master's environment, as nginx was started (workers have
         * theirs cleared, and need nothing: the key is read here) */
        buf = (u_char *) getenv((char *) name);

        if (buf == NULL || *buf == '\0') {
            ngx_http_eventbridge_conf_error(cf, "environment variable "
                                            "\"%s\" is %s", name,
                                            buf ? "empty" : "not set");
            return NGX_ERROR;
        }

        if (eb_sig_add_key(s, buf, ngx_strlen(buf), err, sizeof(err)) != 0) {
            ngx_http_eventbridge_conf_error(cf, "key in environment variable "
                                            "\"%s\": %s", name, err);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    ngx_http_eventbridge_conf_error(cf, "invalid \"key=\": use "
                                    "\"key=file:PATH\" or \"key=env:NAME\" "
                                    "(a secret is never written in the "
                                    "configuration itself)");
    return NGX_ERROR;
}


static void
ngx_http_eventbridge_signature_cleanup(void *data)
{
    eb_sig_free(data);
}


char *
ngx_http_eventbridge_merge_signature(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *prev,
    ngx_http_eventbridge_loc_conf_t *conf)
{
    if (conf->signature == NGX_CONF_UNSET_PTR) {
        conf->signature = (prev->signature == NGX_CONF_UNSET_PTR)
                          ? NULL : prev->signature;
        conf->signature_file = prev->signature_file;
        conf->signature_line = prev->signature_line;
    }

    if (conf->signature && conf->put_events) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"eventbridge_signature\" applies to "
                      "\"eventbridge_source\" locations, not to "
                      "\"eventbridge_put_events\" in %s:%ui",
                      conf->signature_file, conf->signature_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the value of a request header, by lower-case name; *dup if repeated */
static ngx_table_elt_t *
ngx_http_eventbridge_signature_header(ngx_http_request_t *r,
    const char *name, ngx_uint_t *dup)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    len = ngx_strlen(name);
    found = NULL;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == len
                && ngx_strncmp(h[i].lowcase_key, name, len) == 0)
            {
                if (found) {
                    *dup = 1;
                    return found;
                }

                found = &h[i];
            }
        }
    }

    return found;
}


ngx_int_t
ngx_http_eventbridge_check_signature(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *body)
{
    char              err[EB_SIG_ERR_MAX];
    const char       *check;
    ngx_uint_t        dup;
    ngx_time_t       *tp;
    eb_sig_rc_t       rc;
    eb_sig_input_t    in;
    eb_sig_scheme_t  *s;
    ngx_table_elt_t  *h;

    s = lcf->signature;

    if (s == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(&in, sizeof(eb_sig_input_t));
    dup = 0;

    h = ngx_http_eventbridge_signature_header(r, s->header, &dup);
    if (h) {
        in.sig = h->value.data;
        in.sig_len = h->value.len;
    }

    if (s->ts_header[0]) {
        h = ngx_http_eventbridge_signature_header(r, s->ts_header, &dup);
        if (h) {
            in.ts = h->value.data;
            in.ts_len = h->value.len;
        }
    }

    if (s->id_header[0]) {
        h = ngx_http_eventbridge_signature_header(r, s->id_header, &dup);
        if (h) {
            in.id = h->value.data;
            in.id_len = h->value.len;
        }
    }

    in.body = body->data;
    in.body_len = body->len;

    tp = ngx_timeofday();
    in.now_ms = (int64_t) tp->sec * 1000 + tp->msec;

    if (dup) {
        rc = EB_SIG_MALFORMED_HEADER;
        ngx_snprintf((u_char *) err, sizeof(err),
                     "a signature header is repeated%Z");

    } else {
        rc = eb_sig_verify(s, &in, err, sizeof(err));
    }

    if (rc == EB_SIG_OK) {
        return NGX_DECLINED;
    }

    if (rc == EB_SIG_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "eventbridge %V: signature check failed in OpenSSL",
                      &lcf->endpoint);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    check = ngx_http_eventbridge_signature_checks[rc];

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "eventbridge %V: signature: %s: %s", &lcf->endpoint,
                  check, err);

    ngx_http_eventbridge_count_reject(r, EB_REJECT_SIGNATURE);
    ngx_http_eventbridge_count_signature(rc);

    return ngx_http_eventbridge_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "InvalidSignature",
                                           "signature check failed: %s: %s",
                                           check, err);
}
