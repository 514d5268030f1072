/*
 * ngx_http_eventbridge_module: directives, configuration and the module
 * definition. The work itself lives in src/module (nginx glue) and
 * src/core (pure C, shared with the dispatcher and the unit tests).
 */

#include "ngx_http_eventbridge.h"
#include "eb_cloudevent.h"
#include "eb_redis_slot.h"
#include "eb_str.h"


static ngx_int_t ngx_http_eventbridge_add_variables(ngx_conf_t *cf);
static void *ngx_http_eventbridge_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_eventbridge_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_eventbridge_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_eventbridge_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_eventbridge_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_eventbridge_init_process(ngx_cycle_t *cycle);
static void ngx_http_eventbridge_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_eventbridge_source(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_eventbridge_put_events(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_eventbridge_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_eventbridge_name_value(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_eventbridge_secret_value(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_eventbridge_check_bounds(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_eventbridge_add_slot(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf, ngx_uint_t slot);
static size_t ngx_http_eventbridge_digits(ngx_uint_t n);
static char *ngx_http_eventbridge_id_format(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_eventbridge_event_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#define NGX_HTTP_EVENTBRIDGE_MAX_PENDING     1024
#define NGX_HTTP_EVENTBRIDGE_MAX_PENDING_BYTES  (64 * 1024 * 1024)
#define NGX_HTTP_EVENTBRIDGE_STREAM_MAXLEN   1000000
#define NGX_HTTP_EVENTBRIDGE_JSON_DEPTH      64


static ngx_conf_num_bounds_t  ngx_http_eventbridge_pending_bounds = {
    ngx_http_eventbridge_check_bounds, 1, 1048576
};

static ngx_conf_num_bounds_t  ngx_http_eventbridge_maxlen_bounds = {
    ngx_http_eventbridge_check_bounds, 1, 1000000000
};

static ngx_conf_num_bounds_t  ngx_http_eventbridge_batch_bounds = {
    ngx_http_eventbridge_check_bounds, 1, 10000
};

/* a source's body sits two levels down in its event: the deepest body
 * accepted still fits the rule matcher's bound */
static ngx_conf_num_bounds_t  ngx_http_eventbridge_depth_bounds = {
    ngx_http_eventbridge_check_bounds, 1, EB_PATTERN_EVENT_MAX_DEPTH - 2
};

static ngx_conf_post_t  ngx_http_eventbridge_name_post = {
    ngx_http_eventbridge_name_value
};

static ngx_conf_post_t  ngx_http_eventbridge_secret_post = {
    ngx_http_eventbridge_secret_value
};


static ngx_command_t  ngx_http_eventbridge_commands[] = {

    { ngx_string("eventbridge_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_eventbridge_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_redis_wait"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_eventbridge_redis_wait_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_config"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_eventbridge_config_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("eventbridge_redis_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_main_conf_t, redis_max_pending),
      &ngx_http_eventbridge_pending_bounds },

    { ngx_string("eventbridge_redis_max_pending_bytes"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_main_conf_t, redis_max_pending_bytes),
      NULL },

    { ngx_string("eventbridge_region"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_loc_conf_t, region),
      &ngx_http_eventbridge_name_post },

    { ngx_string("eventbridge_account"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_loc_conf_t, account),
      &ngx_http_eventbridge_name_post },

    { ngx_string("eventbridge_source"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_eventbridge_source,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_put_events"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eventbridge_put_events,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_dedupe"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_eventbridge_dedupe_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_max_batch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_loc_conf_t, max_batch),
      &ngx_http_eventbridge_batch_bounds },

    { ngx_string("eventbridge_allow_methods"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eventbridge_allow_methods,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_allow_ips"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eventbridge_allow_ips,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_allow_referers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eventbridge_allow_referers,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_loc_conf_t, token),
      &ngx_http_eventbridge_secret_post },

    { ngx_string("eventbridge_token_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eventbridge_token_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_strip_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eventbridge_strip_headers,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_id_format"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eventbridge_id_format,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_trace_context"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_loc_conf_t, trace_context),
      NULL },

    { ngx_string("eventbridge_signature"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eventbridge_signature_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_stream_maxlen"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_loc_conf_t, stream_maxlen),
      &ngx_http_eventbridge_maxlen_bounds },

    { ngx_string("eventbridge_max_json_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eventbridge_loc_conf_t, max_json_depth),
      &ngx_http_eventbridge_depth_bounds },

    { ngx_string("eventbridge_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_eventbridge_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eventbridge_console"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_eventbridge_console_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_eventbridge_module_ctx = {
    ngx_http_eventbridge_add_variables,    /* preconfiguration */
    ngx_http_eventbridge_postconfiguration, /* postconfiguration */

    ngx_http_eventbridge_create_main_conf, /* create main configuration */
    ngx_http_eventbridge_init_main_conf,   /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_eventbridge_create_loc_conf,  /* create location configuration */
    ngx_http_eventbridge_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_eventbridge_module = {
    NGX_MODULE_V1,
    &ngx_http_eventbridge_module_ctx,      /* module context */
    ngx_http_eventbridge_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_eventbridge_init_process,     /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_eventbridge_exit_process,     /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_eventbridge_vars[] = {

    { ngx_string("eventbridge_event_id"), NULL,
      ngx_http_eventbridge_event_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_eventbridge_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_eventbridge_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static char *
ngx_http_eventbridge_id_format(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t  *value;

    if (lcf->id_format != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 5 && ngx_strncmp(value[1].data, "uuid4", 5) == 0) {
        lcf->id_format = EB_UUID_V4;

    } else if (value[1].len == 5
               && ngx_strncmp(value[1].data, "uuid7", 5) == 0)
    {
        lcf->id_format = EB_UUID_V7;

    } else {
        ngx_http_eventbridge_conf_error(cf, "invalid value \"%V\": uuid4 or "
                                        "uuid7", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eventbridge_event_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_eventbridge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eventbridge_module);

    if (ctx == NULL || ctx->event_id_str.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->event_id_str.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->event_id_str.data;

    return NGX_OK;
}


static void *
ngx_http_eventbridge_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_eventbridge_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eventbridge_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->redis_addr = { 0, NULL };
     *     mcf->redis_mode = EB_REDIS_SINGLE;
     *     mcf->redis_addrs = NULL;
     *     mcf->redis_unix = NULL;
     *     mcf->redis_user = { 0, NULL };
     *     mcf->redis_password = { 0, NULL };
     *     mcf->redis_db = 0;
     *     mcf->sentinel_* = { 0, NULL };
     *     mcf->redis_wait_cmd = { 0, NULL };
     *     mcf->redis_slots = NULL;
     */

    mcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    mcf->redis_max_pending = NGX_CONF_UNSET_UINT;
    mcf->redis_max_pending_bytes = NGX_CONF_UNSET_SIZE;
    mcf->redis_wait = NGX_CONF_UNSET_UINT;
    mcf->redis_wait_timeout = NGX_CONF_UNSET_MSEC;

    return mcf;
}


static char *
ngx_http_eventbridge_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_eventbridge_main_conf_t  *mcf = conf;

    ngx_conf_init_msec_value(mcf->redis_timeout, 5000);
    ngx_conf_init_uint_value(mcf->redis_max_pending,
                             NGX_HTTP_EVENTBRIDGE_MAX_PENDING);
    ngx_conf_init_size_value(mcf->redis_max_pending_bytes,
                             NGX_HTTP_EVENTBRIDGE_MAX_PENDING_BYTES);

    if (ngx_http_eventbridge_redis_init_conf(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_eventbridge_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eventbridge_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lcf->source = { 0, NULL };
     *     lcf->bus = { 0, NULL };
     *     lcf->stream_key = { 0, NULL };
     *     lcf->region = { 0, NULL };
     *     lcf->account = { 0, NULL };
     *     lcf->token = { 0, NULL };
     *     lcf->token_header = { 0, NULL };
     *     lcf->allow_unix = 0;
     *     lcf->allow_header = { 0, NULL };
     *     lcf->dedupe = EB_DEDUPE_OFF;
     *     lcf->dedupe_path = NULL;
     */

    lcf->methods = NGX_CONF_UNSET_UINT;
    lcf->allow_ips = NGX_CONF_UNSET_PTR;
    lcf->allow_referers = NGX_CONF_UNSET_PTR;
    lcf->allow_no_referer = NGX_CONF_UNSET;
    lcf->strip_headers = NGX_CONF_UNSET_PTR;
    lcf->id_format = NGX_CONF_UNSET_UINT;
    lcf->trace_context = NGX_CONF_UNSET;
    lcf->signature = NGX_CONF_UNSET_PTR;
    lcf->stream_maxlen = NGX_CONF_UNSET_UINT;
    lcf->max_json_depth = NGX_CONF_UNSET_UINT;
    lcf->max_batch = NGX_CONF_UNSET_UINT;
    lcf->status = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_http_eventbridge_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_eventbridge_loc_conf_t  *prev = parent;
    ngx_http_eventbridge_loc_conf_t  *conf = child;

    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_eventbridge_main_conf_t  *mcf;

    ngx_conf_merge_str_value(conf->region, prev->region, "local");
    ngx_conf_merge_str_value(conf->account, prev->account, "0");
    ngx_conf_merge_uint_value(conf->stream_maxlen, prev->stream_maxlen,
                              NGX_HTTP_EVENTBRIDGE_STREAM_MAXLEN);
    ngx_conf_merge_uint_value(conf->max_json_depth, prev->max_json_depth,
                              NGX_HTTP_EVENTBRIDGE_JSON_DEPTH);
    ngx_conf_merge_value(conf->status, prev->status, 0);
    ngx_conf_merge_uint_value(conf->id_format, prev->id_format, EB_UUID_V4);
    ngx_conf_merge_value(conf->trace_context, prev->trace_context, 1);
    ngx_conf_merge_uint_value(conf->max_batch, prev->max_batch,
                              EB_CE_DEFAULT_MAX_ENTRIES);

    if (ngx_http_eventbridge_merge_security(cf, prev, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eventbridge_merge_signature(cf, prev, conf)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->console
        && ngx_http_eventbridge_console_merge(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint.len == 0 && conf->dedupe == EB_DEDUPE_OFF) {
        return NGX_CONF_OK;
    }

    /* the body is needed in memory, in one piece: let nginx keep it there
     * instead of spooling it to a temp file that would have to be read
     * back with a blocking read (the core module is merged first) */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->client_max_body_size == 0) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"eventbridge_%s %V\" in %s:%ui: "
                      "client_max_body_size 0 (no limit): bodies over "
                      "client_body_buffer_size (%uz) are refused with 413",
                      conf->put_events ? "put_events" : "source",
                      conf->put_events ? &conf->bus : &conf->source,
                      conf->source_file, conf->source_line,
                      clcf->client_body_buffer_size);

    } else if ((off_t) clcf->client_body_buffer_size
               < clcf->client_max_body_size)
    {
        clcf->client_body_buffer_size = (size_t) clcf->client_max_body_size;
    }

    if (conf->dedupe && ngx_http_eventbridge_dedupe_merge(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eventbridge_module);

    if (mcf->redis_addr.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"eventbridge_%s %V\" needs "
                      "\"eventbridge_redis\" in the http block in %s:%ui",
                      conf->put_events ? "put_events" : "source",
                      conf->put_events ? &conf->bus : &conf->source,
                      conf->source_file, conf->source_line);
        return NGX_CONF_ERROR;
    }

    if (mcf->config) {
        conf->bus_conf = ngx_http_eventbridge_find_bus(mcf, &conf->bus);

        if (conf->bus_conf == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "bus \"%V\" is not defined in %V in %s:%ui",
                          &conf->bus, &mcf->config_file, conf->source_file,
                          conf->source_line);
            return NGX_CONF_ERROR;
        }
    }

    /* connected to at worker start (cluster) */
    if (ngx_http_eventbridge_add_slot(cf, mcf, conf->slot) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint.len
        && (ngx_http_eventbridge_metrics_endpoint(cf, conf) != NGX_OK
            || ngx_http_eventbridge_console_endpoint(cf, conf) != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    /* built once here: per event only the JSON is formatted */
    conf->xadd_head.data = ngx_pnalloc(cf->pool, 128 + conf->stream_key.len);
    if (conf->xadd_head.data == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->xadd_head.len = ngx_sprintf(conf->xadd_head.data,
                                      "*10\r\n$4\r\nXADD\r\n$%uz\r\n%V\r\n"
                                      "$6\r\nMAXLEN\r\n$1\r\n~\r\n$%uz\r\n%ui\r\n"
                                      "$1\r\n*\r\n$5\r\nevent\r\n",
                                      conf->stream_key.len, &conf->stream_key,
                                      ngx_http_eventbridge_digits(
                                                          conf->stream_maxlen),
                                      conf->stream_maxlen)
                          - conf->xadd_head.data;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eventbridge_add_slot(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf, ngx_uint_t slot)
{
    ngx_uint_t  i, *s;

    if (mcf->redis_slots == NULL) {
        mcf->redis_slots = ngx_array_create(cf->pool, 4, sizeof(ngx_uint_t));
        if (mcf->redis_slots == NULL) {
            return NGX_ERROR;
        }
    }

    s = mcf->redis_slots->elts;

    for (i = 0; i < mcf->redis_slots->nelts; i++) {
        if (s[i] == slot) {
            return NGX_OK;
        }
    }

    s = ngx_array_push(mcf->redis_slots);
    if (s == NULL) {
        return NGX_ERROR;
    }

    *s = slot;

    return NGX_OK;
}


static size_t
ngx_http_eventbridge_digits(ngx_uint_t n)
{
    size_t  d;

    for (d = 1; n >= 10; n /= 10) {
        d++;
    }

    return d;
}


/* Names that become part of Redis keys and ARNs-like subjects. */
static ngx_int_t
ngx_http_eventbridge_valid_name(ngx_str_t *s)
{
    return eb_name_valid(s->data, s->len) == 0 ? NGX_OK : NGX_ERROR;
}


static char *
ngx_http_eventbridge_name_value(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *s = data;

    if (ngx_http_eventbridge_valid_name(s) != NGX_OK) {
        ngx_http_eventbridge_conf_error(cf,
                           "invalid value \"%V\": use 1 to 128 letters, "
                           "digits, \"-\", \"_\" or \".\"", s);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_eventbridge_secret_value(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *s = data;

    if (s->len == 0) {
        ngx_http_eventbridge_conf_error(cf, "empty token would turn the "
                                        "check off; remove the directive "
                                        "instead");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_eventbridge_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    if (*np < bounds->low || *np > bounds->high) {
        ngx_http_eventbridge_conf_error(cf, "value must be between %i and %i",
                                        bounds->low, bounds->high);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


void
ngx_http_eventbridge_conf_error(ngx_conf_t *cf, const char *fmt, ...)
{
    u_char      buf[NGX_MAX_CONF_ERRSTR], *p;
    va_list     args;
    ngx_str_t  *value;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive: %*s",
                       &value[0], p - buf, buf);
}


/* "bus=BUS": the bus of an event endpoint, its events stream key, and
 * where the endpoint was configured (for errors found at merge time) */
static char *
ngx_http_eventbridge_endpoint(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *arg, const char *usage)
{
    if (lcf->endpoint.len) {
        ngx_http_eventbridge_conf_error(cf, "the location is already an "
                                        "event endpoint (\"%V\")",
                                        &lcf->endpoint);
        return NGX_CONF_ERROR;
    }

    if (lcf->console) {
        ngx_http_eventbridge_conf_error(cf, "the location is already an "
                                        "eventbridge_console");
        return NGX_CONF_ERROR;
    }

    if (arg->len <= 4 || ngx_strncmp(arg->data, "bus=", 4) != 0) {
        ngx_http_eventbridge_conf_error(cf, "missing \"bus=\" in \"%V\": "
                                        "expected \"%s\"", arg, usage);
        return NGX_CONF_ERROR;
    }

    lcf->bus.data = arg->data + 4;
    lcf->bus.len = arg->len - 4;

    if (ngx_http_eventbridge_valid_name(&lcf->bus) != NGX_OK) {
        ngx_http_eventbridge_conf_error(cf,
                           "invalid bus name \"%V\": use 1 to 128 letters, "
                           "digits, \"-\", \"_\" or \".\"", &lcf->bus);
        return NGX_CONF_ERROR;
    }

    lcf->source_file = cf->conf_file->file.name.data;
    lcf->source_line = cf->conf_file->line;

    /* eb:{BUS}:events - the braces make every key of a bus one slot of a
     * Redis Cluster */
    lcf->stream_key.len = sizeof("eb:{}:events") - 1 + lcf->bus.len;
    lcf->stream_key.data = ngx_pnalloc(cf->pool, lcf->stream_key.len);
    if (lcf->stream_key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(lcf->stream_key.data, "eb:{%V}:events", &lcf->bus);

    lcf->slot = eb_redis_key_slot((char *) lcf->stream_key.data,
                                  lcf->stream_key.len);

    return NGX_CONF_OK;
}


static char *
ngx_http_eventbridge_source(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    if (lcf->source.len) {
        return "is duplicate";
    }

    if (ngx_http_eventbridge_valid_name(&value[1]) != NGX_OK) {
        ngx_http_eventbridge_conf_error(cf,
                           "invalid source name \"%V\": use 1 to 128 letters, "
                           "digits, \"-\", \"_\" or \".\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eventbridge_endpoint(cf, lcf, &value[2],
                                      "eventbridge_source NAME bus=BUS")
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    lcf->source = value[1];
    lcf->endpoint = value[1];

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_eventbridge_source_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_eventbridge_put_events(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    if (lcf->put_events) {
        return "is duplicate";
    }

    if (ngx_http_eventbridge_endpoint(cf, lcf, &value[1],
                                      "eventbridge_put_events bus=BUS")
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    lcf->put_events = 1;
    ngx_str_set(&lcf->endpoint, "put_events");

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_eventbridge_put_events_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_eventbridge_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->status != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    lcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_eventbridge_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eventbridge_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_eventbridge_main_conf_t  *mcf;

    /* after the locations are merged: the zone is sized for their
     * counters */
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eventbridge_module);

    if (ngx_http_eventbridge_metrics_init_conf(cf, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_eventbridge_error_filter_init(cf);
}


static ngx_int_t
ngx_http_eventbridge_init_process(ngx_cycle_t *cycle)
{
    ngx_http_eventbridge_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_eventbridge_module);
    if (mcf == NULL) {
        return NGX_OK;
    }

    ngx_http_eventbridge_metrics_init_worker(mcf);

    if (mcf->redis_addr.len == 0) {
        return NGX_OK;
    }

    ngx_http_eventbridge_source_init_worker(cycle);

    if (mcf->config
        && ngx_http_eventbridge_rules_init_worker(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_eventbridge_redis_init_worker(cycle, mcf);
}


static void
ngx_http_eventbridge_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_eventbridge_redis_exit_worker(cycle);
}
