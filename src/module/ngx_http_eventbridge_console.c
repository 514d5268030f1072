/*
 * `eventbridge_console [root=PATH];`: the event console of a location.
 * LOCATION/api/... is the JSON API, answered from Redis through the
 * worker's asynchronous connection(s), each request in one or a few
 * steps of capped commands that all name keys of one bus (one slot);
 * anything else under the location is a static file of PATH.
 *
 * The directive also checks, at `nginx -t`, that the location restricts
 * access in some way nginx offers (allow/deny, auth_basic, auth_request),
 * and warns when it does not (docs/architecture.md says how).
 */

#include "ngx_http_eventbridge_console.h"


#ifndef NGX_HTTP_EVENTBRIDGE_CONSOLE_ROOT
#define NGX_HTTP_EVENTBRIDGE_CONSOLE_ROOT  "/usr/share/ngx-eventbridge/console"
#endif


static ngx_int_t ngx_http_eventbridge_console_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_eventbridge_console_api(ngx_http_request_t *r,
    ngx_str_t *path);
static void ngx_http_eventbridge_console_body(ngx_http_request_t *r);
static void ngx_http_eventbridge_console_reply(void *data, redisReply *reply);
static void ngx_http_eventbridge_console_done(void *data,
    ngx_http_eventbridge_redis_result_t *res);
static void ngx_http_eventbridge_console_timeout(ngx_event_t *ev);
static void ngx_http_eventbridge_console_free(void *data);
static ngx_uint_t ngx_http_eventbridge_console_restricted(ngx_conf_t *cf);


/*
 * The first members of the stock access modules' location configurations
 * (private to their files; unchanged since nginx 1.0, and the same in
 * every version this module builds with): a location restricts access
 * when one of them is set. Weak: nginx may be built without a module.
 */
extern ngx_module_t  ngx_http_access_module __attribute__((weak));
extern ngx_module_t  ngx_http_auth_basic_module __attribute__((weak));
extern ngx_module_t  ngx_http_auth_request_module __attribute__((weak));

typedef struct {
    ngx_array_t      *rules;
#if (NGX_HAVE_INET6)
    ngx_array_t      *rules6;
#endif
#if (NGX_HAVE_UNIX_DOMAIN)
    ngx_array_t      *rules_un;
#endif
} ngx_http_eventbridge_access_head_t;

typedef struct {
    void             *realm;                 /* NULL: no auth_basic */
} ngx_http_eventbridge_auth_basic_head_t;

typedef struct {
    ngx_str_t         uri;                   /* empty: off or unset */
} ngx_http_eventbridge_auth_request_head_t;


char *
ngx_http_eventbridge_console_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    if (lcf->console) {
        return "is duplicate";
    }

    if (lcf->endpoint.len || lcf->status == 1) {
        ngx_http_eventbridge_conf_error(cf, "the location is already an "
                                        "eventbridge endpoint or status "
                                        "page");
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->regex || clcf->named || clcf->exact_match) {
        ngx_http_eventbridge_conf_error(cf, "needs a prefix location "
                                        "(\"location /console/ { ... }\")");
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2) {
        if (value[1].len <= 5 || ngx_strncmp(value[1].data, "root=", 5) != 0)
        {
            ngx_http_eventbridge_conf_error(cf, "invalid parameter \"%V\": "
                                            "expected \"root=PATH\"",
                                            &value[1]);
            return NGX_CONF_ERROR;
        }

        lcf->console_root.data = value[1].data + 5;
        lcf->console_root.len = value[1].len - 5;

    } else {
        ngx_str_set(&lcf->console_root, NGX_HTTP_EVENTBRIDGE_CONSOLE_ROOT);
    }

    if (ngx_conf_full_name(cf->cycle, &lcf->console_root, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    while (lcf->console_root.len > 1
           && lcf->console_root.data[lcf->console_root.len - 1] == '/')
    {
        lcf->console_root.len--;
    }

    lcf->console = 1;
    lcf->console_prefix = clcf->name;
    lcf->console_file = cf->conf_file->file.name.data;
    lcf->console_line = cf->conf_file->line;

    clcf->handler = ngx_http_eventbridge_console_handler;

    return NGX_CONF_OK;
}


/* the location's other modules are merged by now (nginx merges module
 * by module): its access restrictions can be seen */
ngx_int_t
ngx_http_eventbridge_console_merge(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf)
{
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_eventbridge_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eventbridge_module);

    /* a redrive's body stays in memory (the core module is merged
     * first): reading a spooled one back would block */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->client_body_buffer_size < EB_CONSOLE_BODY_MAX) {
        clcf->client_body_buffer_size = EB_CONSOLE_BODY_MAX;
    }

    if (mcf->redis_addr.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"eventbridge_console\" needs \"eventbridge_redis\" "
                      "in the http block in %s:%ui",
                      lcf->console_file, lcf->console_line);
        return NGX_ERROR;
    }

    if (!ngx_http_eventbridge_console_restricted(cf)) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"eventbridge_console\" in %s:%ui: the location has "
                      "no access restriction (allow/deny, auth_basic, "
                      "auth_request): anyone who reaches it can read "
                      "events and redrive dead letters",
                      lcf->console_file, lcf->console_line);
    }

    return ngx_http_eventbridge_console_csrf_init(cf, mcf);
}


static ngx_uint_t
ngx_http_eventbridge_console_restricted(ngx_conf_t *cf)
{
    ngx_http_eventbridge_access_head_t        *access;
    ngx_http_eventbridge_auth_basic_head_t    *basic;
    ngx_http_eventbridge_auth_request_head_t  *request;

    if (&ngx_http_access_module != NULL) {
        access = ngx_http_conf_get_module_loc_conf(cf,
                                                   ngx_http_access_module);
        if (access->rules
#if (NGX_HAVE_INET6)
            || access->rules6
#endif
#if (NGX_HAVE_UNIX_DOMAIN)
            || access->rules_un
#endif
           )
        {
            return 1;
        }
    }

    if (&ngx_http_auth_basic_module != NULL) {
        basic = ngx_http_conf_get_module_loc_conf(cf,
                                                  ngx_http_auth_basic_module);
        if (basic->realm) {
            return 1;
        }
    }

    if (&ngx_http_auth_request_module != NULL) {
        request = ngx_http_conf_get_module_loc_conf(cf,
                                                ngx_http_auth_request_module);
        if (request->uri.len) {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_eventbridge_console_endpoint(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf)
{
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_eventbridge_endpoint_t   *ep;
    ngx_http_eventbridge_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eventbridge_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (mcf->endpoints == NULL) {
        mcf->endpoints = ngx_array_create(cf->pool, 4,
                                      sizeof(ngx_http_eventbridge_endpoint_t));
        if (mcf->endpoints == NULL) {
            return NGX_ERROR;
        }
    }

    ep = ngx_array_push(mcf->endpoints);
    if (ep == NULL) {
        return NGX_ERROR;
    }

    ep->location = clcf->name;
    ep->lcf = lcf;

    return NGX_OK;
}


/* --- requests -------------------------------------------------------- */


static ngx_int_t
ngx_http_eventbridge_console_handler(ngx_http_request_t *r)
{
    ngx_str_t                         path;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_eventbridge_module);

    /* the path under the location: the prefix matched it */
    if (r->uri.len < lcf->console_prefix.len) {
        return NGX_HTTP_NOT_FOUND;
    }

    path.data = r->uri.data + lcf->console_prefix.len;
    path.len = r->uri.len - lcf->console_prefix.len;

    if (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    if (path.len >= 4 && ngx_strncmp(path.data, "api/", 4) == 0) {
        path.data += 4;
        path.len -= 4;
        return ngx_http_eventbridge_console_api(r, &path);
    }

    if (path.len == 3 && ngx_strncmp(path.data, "api", 3) == 0) {
        path.len = 0;
        return ngx_http_eventbridge_console_api(r, &path);
    }

    return ngx_http_eventbridge_console_static(r, lcf, &path);
}


static ngx_int_t
ngx_http_eventbridge_console_api(ngx_http_request_t *r, ngx_str_t *path)
{
    u_char                          *slash;
    ngx_int_t                        rc;
    ngx_str_t                        rest;
    ngx_pool_cleanup_t              *cln;
    ngx_http_eventbridge_ctx_t      *ctx;
    ngx_http_eventbridge_console_t  *cn;

    ctx = ngx_http_eventbridge_get_ctx(r);
    cn = ngx_pcalloc(r->pool, sizeof(ngx_http_eventbridge_console_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cn == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_eventbridge_console_free;
    cln->data = cn;

    ctx->console = cn;
    cn->r = r;
    cn->mcf = ngx_http_get_module_main_conf(r, ngx_http_eventbridge_module);
    cn->status = NGX_HTTP_OK;
    cn->now = ngx_time();

    if (r->method == NGX_HTTP_POST) {
        if (path->len == 11 && ngx_strncmp(path->data, "dlq/redrive", 11)
                               == 0)
        {
            cn->post = ngx_http_eventbridge_console_api_redrive;

        } else if (path->len == 6 && ngx_strncmp(path->data, "replay", 6)
                                     == 0)
        {
            cn->post = ngx_http_eventbridge_console_api_replay;

        } else {
            return ngx_http_eventbridge_console_error(r,
                                        NGX_HTTP_NOT_ALLOWED,
                                        "MethodNotAllowed",
                                        "only api/dlq/redrive and api/replay "
                                        "take POST");
        }

        /* before the body is read: a forged request costs nothing */
        if (ngx_http_eventbridge_console_csrf_check(r) != NGX_OK) {
            return cn->rc;
        }

        if (r->headers_in.content_length_n > EB_CONSOLE_BODY_MAX) {
            return ngx_http_eventbridge_console_error(r,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "BodyTooLarge",
                                        "the body is over %d bytes",
                                        EB_CONSOLE_BODY_MAX);
        }

        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                       ngx_http_eventbridge_console_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_eventbridge_console_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "MethodNotAllowed",
                                        "the API takes GET (and POST for "
                                        "api/dlq/redrive and api/replay)");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    slash = ngx_strlchr(path->data, path->data + path->len, '/');
    rest.len = 0;
    rest.data = NULL;

    if (slash) {
        rest.data = slash + 1;
        rest.len = path->data + path->len - rest.data;
        path->len = slash - path->data;
    }

#define EB_ROUTE(name)                                                        \
    (path->len == sizeof(name) - 1                                            \
     && ngx_strncmp(path->data, name, sizeof(name) - 1) == 0)

    if (EB_ROUTE("config") && slash == NULL) {
        rc = ngx_http_eventbridge_console_api_config(cn);

    } else if (EB_ROUTE("csrf") && slash == NULL) {
        rc = ngx_http_eventbridge_console_api_csrf(cn);

    } else if (EB_ROUTE("overview") && slash == NULL) {
        rc = ngx_http_eventbridge_console_api_overview(cn);

    } else if (EB_ROUTE("events") && slash == NULL) {
        rc = ngx_http_eventbridge_console_api_events(cn);

    } else if (EB_ROUTE("events") && rest.len) {
        rc = ngx_http_eventbridge_console_api_event(cn, &rest);

    } else if (EB_ROUTE("attempts") && slash == NULL) {
        rc = ngx_http_eventbridge_console_api_attempts(cn);

    } else if (EB_ROUTE("dlq") && slash == NULL) {
        rc = ngx_http_eventbridge_console_api_dlq(cn);

    } else if (EB_ROUTE("dlq") && rest.len) {
        rc = ngx_http_eventbridge_console_api_letter(cn, &rest);

    } else if (EB_ROUTE("replays") && slash == NULL) {
        rc = ngx_http_eventbridge_console_api_replays(cn);

    } else {
        return ngx_http_eventbridge_console_error(r, NGX_HTTP_NOT_FOUND,
                                                  "NotFound",
                                                  "no such API endpoint");
    }

#undef EB_ROUTE

    if (rc == NGX_DONE) {
        r->main->count++;
    }

    return rc;
}


static void
ngx_http_eventbridge_console_body(ngx_http_request_t *r)
{
    off_t                            len;
    ngx_int_t                        rc;
    ngx_str_t                        body;
    ngx_chain_t                     *cl;
    ngx_http_eventbridge_ctx_t      *ctx;
    ngx_http_eventbridge_console_t  *cn;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);
    cn = ctx->console;

    /* chunked: no Content-Length was there to refuse it early; a body
     * nginx spooled to a file is over the buffer the merge gave the
     * location, hence over the limit (and never read back, which would
     * block) */
    len = 0;

    for (cl = r->request_body ? r->request_body->bufs : NULL; cl;
         cl = cl->next)
    {
        len += cl->buf->in_file ? EB_CONSOLE_BODY_MAX + 1
                                : ngx_buf_size(cl->buf);
    }

    if (len > EB_CONSOLE_BODY_MAX) {
        rc = ngx_http_eventbridge_console_error(r,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "BodyTooLarge",
                                        "the body is over %d bytes",
                                        EB_CONSOLE_BODY_MAX);

    } else {
        rc = ngx_http_eventbridge_collect_body(r, &body);

        if (rc == NGX_OK) {
            rc = cn->post(cn, &body);
        }
    }

    /* NGX_DONE: the read's reference is the job's now */
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


static void
ngx_http_eventbridge_console_free(void *data)
{
    ngx_http_eventbridge_console_t  *cn = data;

    if (cn->g) {
        yajl_gen_free(cn->g);
        cn->g = NULL;
    }
}


/* --- Redis steps ----------------------------------------------------- */


ngx_int_t
ngx_http_eventbridge_console_cmd(ngx_http_eventbridge_console_t *cn,
    ngx_uint_t argc, ngx_str_t *argv)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *cmd;
    ngx_uint_t   i;

    if (cn->next == NULL) {
        cn->next = ngx_array_create(cn->r->pool, 8, sizeof(ngx_str_t));
        if (cn->next == NULL) {
            return NGX_ERROR;
        }
    }

    len = 1 + NGX_INT_T_LEN + 2;

    for (i = 0; i < argc; i++) {
        len += EB_BULK_OVERHEAD + argv[i].len;
    }

    cmd = ngx_array_push(cn->next);
    p = ngx_pnalloc(cn->r->pool, len);
    if (cmd == NULL || p == NULL) {
        return NGX_ERROR;
    }

    cmd->data = p;
    p = ngx_sprintf(p, "*%ui\r\n", argc);

    for (i = 0; i < argc; i++) {
        p = ngx_http_eventbridge_bulk(p, &argv[i]);
    }

    cmd->len = p - cmd->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_key(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *key, const char *suffix, ngx_str_t *arg)
{
    size_t  len;

    len = sizeof("eb:{}:") - 1 + cn->bus_name.len + ngx_strlen(suffix)
          + (arg ? arg->len : 0);

    key->data = ngx_pnalloc(cn->r->pool, len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    if (arg) {
        key->len = ngx_snprintf(key->data, len, "eb:{%V}:", &cn->bus_name)
                   - key->data;
        key->len = ngx_snprintf(key->data + key->len, len - key->len, suffix,
                                arg)
                   - key->data;

    } else {
        key->len = ngx_snprintf(key->data, len, "eb:{%V}:%s", &cn->bus_name,
                                suffix)
                   - key->data;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_query(ngx_http_eventbridge_console_t *cn,
    ngx_http_eventbridge_console_step_pt step, ngx_uint_t read)
{
    ngx_int_t                    rc;
    ngx_array_t                 *cmds;
    ngx_http_request_t          *r = cn->r;
    ngx_http_eventbridge_ctx_t  *ctx;
    ngx_http_eventbridge_job_t  *job;
    ngx_http_eventbridge_redis_err_e  err;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    cmds = cn->next;
    cn->next = NULL;
    cn->step = step;
    cn->ncmds = cmds->nelts;

    rc = ngx_http_eventbridge_redis_submit_reply(cn->slot, cmds->elts,
                                            cmds->nelts, read,
                                            ngx_http_eventbridge_console_reply,
                                            ngx_http_eventbridge_console_done,
                                            cn, &job, &err);
    if (rc != NGX_OK) {
        return ngx_http_eventbridge_console_error(r,
                                           NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "ServiceUnavailable",
                                           "redis is not available");
    }

    ctx->job = job;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    ctx->timeout.handler = ngx_http_eventbridge_console_timeout;
    ctx->timeout.data = r;
    ctx->timeout.log = r->connection->log;
    ngx_add_timer(&ctx->timeout, cn->mcf->redis_timeout);

    return NGX_DONE;
}


static void
ngx_http_eventbridge_console_reply(void *data, redisReply *reply)
{
    redisReply                       one;
    ngx_http_eventbridge_console_t  *cn = data;

    if (cn->ncmds > 1) {
        cn->step(cn, reply);        /* EXEC's */
        return;
    }

    /* a lone command's reply, as if it were EXEC's */
    ngx_memzero(&one, sizeof(redisReply));
    one.type = REDIS_REPLY_ARRAY;
    one.elements = 1;
    one.element = &reply;

    cn->step(cn, &one);
}


static void
ngx_http_eventbridge_console_done(void *data,
    ngx_http_eventbridge_redis_result_t *res)
{
    ngx_int_t                        rc;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_eventbridge_ctx_t      *ctx;
    ngx_http_eventbridge_console_t  *cn = data;

    r = cn->r;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    ctx->job = NULL;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (res && res->err == EB_REDIS_ERR_REPLY) {
        /* Redis answered, with an error (a key of the wrong type, a
         * script it refused): a bad gateway, in Redis' words */
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "eventbridge: console: redis: %V", &res->text);
        rc = ngx_http_eventbridge_console_error(r, NGX_HTTP_BAD_GATEWAY,
                                                "BadReply",
                                                "redis answered: %V",
                                                &res->text);

    } else if (res) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "eventbridge: console: redis: %V", &res->text);
        rc = ngx_http_eventbridge_console_error(r,
                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "ServiceUnavailable",
                                            "redis did not answer");

    } else if (cn->out.len) {
        rc = ngx_http_eventbridge_console_send(cn);

    } else if (cn->next && cn->next->nelts) {
        rc = ngx_http_eventbridge_console_query(cn, cn->step, 1);
        if (rc == NGX_DONE) {
            return;
        }

    } else {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_eventbridge_console_timeout(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r = ev->data;
    ngx_http_eventbridge_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    if (ctx->job) {
        ngx_http_eventbridge_redis_cancel(ctx->job);
        ctx->job = NULL;
    }

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "eventbridge: console: redis did not answer in time");

    ngx_http_finalize_request(r, ngx_http_eventbridge_console_error(r,
                                           NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "ServiceUnavailable",
                                           "redis did not answer in time"));
    ngx_http_run_posted_requests(c);
}


/* --- names ----------------------------------------------------------- */


ngx_int_t
ngx_http_eventbridge_console_bus(ngx_http_eventbridge_console_t *cn)
{
    ngx_int_t  rc;
    ngx_str_t  name, key;

    rc = ngx_http_eventbridge_console_arg(cn->r, "bus", &name);
    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (rc == NGX_DECLINED
        || eb_name_valid(name.data, name.len) != 0)
    {
        ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_BAD_REQUEST,
                                "InvalidParameter",
                                "parameter \"bus\": required, 1 to 128 "
                                "letters, digits, \"-\", \"_\" or \".\"");
        return NGX_DECLINED;
    }

    cn->bus = cn->mcf->config
              ? ngx_http_eventbridge_find_bus(cn->mcf, &name) : NULL;

    if (cn->bus == NULL) {
        ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_NOT_FOUND,
                                           "NotFound", "no bus \"%V\"",
                                           &name);
        return NGX_DECLINED;
    }

    cn->bus_name = name;

    if (ngx_http_eventbridge_console_key(cn, &key, "events", NULL) != NGX_OK)
    {
        return NGX_ERROR;
    }

    cn->slot = eb_redis_key_slot((char *) key.data, key.len);

    return NGX_OK;
}


/* a target of the bus: one some rule of it sends to */
const eb_config_target_t *
ngx_http_eventbridge_console_find_target(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *name)
{
    size_t                    i, k;
    const eb_config_t        *cf;
    const eb_config_bus_t    *bus;
    const eb_config_target_t *t;

    cf = cn->mcf->config;
    bus = cn->bus->conf;

    for (i = 0; i < bus->nrules; i++) {
        for (k = 0; k < bus->rules[i].ntargets; k++) {
            t = &cf->targets[bus->rules[i].targets[k].target];

            if (ngx_strlen(t->name) == name->len
                && ngx_strncmp(t->name, name->data, name->len) == 0)
            {
                return t;
            }
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_eventbridge_console_target(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *name)
{
    ngx_int_t                 rc;

    rc = ngx_http_eventbridge_console_arg(cn->r, "target", name);
    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (rc == NGX_DECLINED
        || eb_name_valid(name->data, name->len) != 0)
    {
        ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_BAD_REQUEST,
                                "InvalidParameter",
                                "parameter \"target\": required, 1 to 128 "
                                "letters, digits, \"-\", \"_\" or \".\"");
        return NGX_DECLINED;
    }

    cn->target = ngx_http_eventbridge_console_find_target(cn, name);

    if (cn->target) {
        return NGX_OK;
    }

    ngx_http_eventbridge_console_error(cn->r, NGX_HTTP_NOT_FOUND, "NotFound",
                                       "bus \"%V\" has no target \"%V\"",
                                       &cn->bus_name, name);
    return NGX_DECLINED;
}


/* --- answers --------------------------------------------------------- */


static ngx_int_t
ngx_http_eventbridge_console_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_headers(ngx_http_request_t *r, ngx_uint_t html)
{
    if (ngx_http_eventbridge_console_header(r, "X-Content-Type-Options",
                                            "nosniff") != NGX_OK
        || ngx_http_eventbridge_console_header(r, "X-Frame-Options", "DENY")
           != NGX_OK
        || ngx_http_eventbridge_console_header(r, "Referrer-Policy",
                                               "no-referrer") != NGX_OK
        || ngx_http_eventbridge_console_header(r,
                                 "Content-Security-Policy",
                                 html
                                 ? "default-src 'self'; script-src 'self'; "
                                   "style-src 'self'; img-src 'self'; "
                                   "connect-src 'self'; object-src 'none'; "
                                   "base-uri 'none'; form-action 'self'; "
                                   "frame-ancestors 'none'"
                                 : "default-src 'none'; "
                                   "frame-ancestors 'none'")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!html
        && ngx_http_eventbridge_console_header(r, "Cache-Control", "no-store")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_send(ngx_http_eventbridge_console_t *cn)
{
    if (ngx_http_eventbridge_console_headers(cn->r, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_send_json(cn->r, cn->status, &cn->out);
}


ngx_int_t
ngx_http_eventbridge_console_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ...)
{
    u_char                          buf[512], *p;
    va_list                         args;
    ngx_int_t                       rc;
    ngx_http_eventbridge_ctx_t     *ctx;
    ngx_http_eventbridge_console_t *cn;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    if (ngx_http_eventbridge_console_headers(r, 0) != NGX_OK) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    } else {
        rc = ngx_http_eventbridge_send_error(r, status, code, "%*s",
                                             p - buf, buf);
    }

    /* what the request is to be finalized with, for the callers that
     * only say "answered" */
    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);
    cn = ctx ? ctx->console : NULL;

    if (cn) {
        cn->rc = rc;
    }

    return rc;
}
