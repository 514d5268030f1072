/*
 * Shared declarations of ngx_http_eventbridge_module: configuration
 * structures, the per-request context and the functions each concern file
 * (source, security, redis, error, metrics, status) offers the others.
 */

#ifndef NGX_HTTP_EVENTBRIDGE_H
#define NGX_HTTP_EVENTBRIDGE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include <yajl/yajl_common.h>

#include "eb_uuid.h"
#include "eb_config.h"
#include "eb_jsonpath.h"
#include "eb_redis_topology.h"
#include "eb_signature.h"


#define NGX_HTTP_EVENTBRIDGE_RETRY_AFTER  "1"


/* rejection reasons, as counted by the metrics */
typedef enum {
    EB_REJECT_METHOD = 0,
    EB_REJECT_ADDRESS,
    EB_REJECT_REFERER,
    EB_REJECT_TOKEN,
    EB_REJECT_BODY_TOO_LARGE,
    EB_REJECT_INVALID_JSON,
    EB_REJECT_JSON_TOO_DEEP,
    EB_REJECT_INVALID_UTF8,
    EB_REJECT_UNAVAILABLE,
    EB_REJECT_INVALID_EVENT,
    EB_REJECT_MISSING_KEY,          /* eventbridge_dedupe missing=reject */
    EB_REJECT_SIGNATURE,
    EB_REJECT_MAX
} ngx_http_eventbridge_reject_e;


/* why a request could not be handed to Redis */
typedef enum {
    EB_REDIS_ERR_DISCONNECTED = 0,
    EB_REDIS_ERR_QUEUE_FULL,
    EB_REDIS_ERR_TIMEOUT,
    EB_REDIS_ERR_REPLY,
    EB_REDIS_ERR_CONNECTION_LOST,
    EB_REDIS_ERR_WAIT,              /* too few replicas acknowledged */
    EB_REDIS_ERR_MAX
} ngx_http_eventbridge_redis_err_e;


/* what the Redis client did on its way, as counted by the metrics */
typedef enum {
    EB_REDIS_EV_MOVED = 0,
    EB_REDIS_EV_ASK,
    EB_REDIS_EV_RETRY,
    EB_REDIS_EV_REFRESH,
    EB_REDIS_EV_WATCHDOG,
    EB_REDIS_EV_WAIT_FAILED,
    EB_REDIS_EV_MAX
} ngx_http_eventbridge_redis_ev_e;


/* the finite buckets (le) of eventbridge_append_duration_seconds */
#define EB_APPEND_BUCKETS  13

/* the outcome label of an append */
typedef enum {
    EB_APPEND_OK = 0,               /* Redis acknowledged: 2xx */
    EB_APPEND_ERROR,                /* 503 */
    EB_APPEND_OUTCOME_MAX
} ngx_http_eventbridge_append_outcome_e;


typedef struct {
    ngx_atomic_t  accepted;
    ngx_atomic_t  deduplicated;
    ngx_atomic_t  rejected[EB_REJECT_MAX];
    ngx_atomic_t  redis_errors[EB_REDIS_ERR_MAX];
    ngx_atomic_t  redis_events[EB_REDIS_EV_MAX];
    ngx_atomic_t  signature[EB_SIG_RC_MAX];     /* failures by reason */

    /* the append-latency histogram: per bucket (not cumulative; the last
     * one is +Inf), and the sum in microseconds */
    ngx_atomic_t  append[EB_APPEND_OUTCOME_MAX][EB_APPEND_BUCKETS + 1];
    ngx_atomic_t  append_sum_us[EB_APPEND_OUTCOME_MAX];
} ngx_http_eventbridge_counters_t;


/* the events of one bus or one source, in the metrics zone */
typedef struct {
    ngx_atomic_t  accepted;
    ngx_atomic_t  deduplicated;
    ngx_atomic_t  rejected[EB_REJECT_MAX];
} ngx_http_eventbridge_slot_counters_t;


typedef enum {
    EB_METRIC_BUS = 0,              /* bus="B",endpoint="source|put_events" */
    EB_METRIC_SOURCE                /* bus="B",source="NAME" */
} ngx_http_eventbridge_metric_kind_e;


/* One series of per-bus or per-source counters, made when the
 * configuration is read: a location points at its slots, so the request
 * path adds to them without looking a name up. The counters are found
 * (by kind and labels) or made in the zone when it is initialised. */
typedef struct {
    ngx_uint_t                   kind;            /* EB_METRIC_* */
    ngx_str_t                    labels;          /* bus="B",source="S" */
    ngx_http_eventbridge_slot_counters_t  *counters;
} ngx_http_eventbridge_metric_slot_t;


typedef struct ngx_http_eventbridge_metrics_shm_s
    ngx_http_eventbridge_metrics_shm_t;


/* eventbridge_redis: one server, a cluster (seeds) or sentinels */
typedef enum {
    EB_REDIS_SINGLE = 0,
    EB_REDIS_CLUSTER,
    EB_REDIS_SENTINEL
} ngx_http_eventbridge_redis_mode_e;


/* One matched (rule, target): XADD eb:{BUS}:target:TARGET * event JSON
 * rule NAME, in RESP, built at configuration time around the JSON; the
 * key and the rule name alone for the dedupe script. */
typedef struct {
    ngx_str_t                    head;
    ngx_str_t                    tail;
    ngx_str_t                    key;
    ngx_str_t                    rule;
    /* in order per key (eb_order.h): the entry goes to
     * eb:{BUS}:target:TARGET:p:N with a "key" field instead */
    const eb_config_rule_target_t  *conf;
    ngx_str_t                    prefix;          /* "eb:{BUS}:target:T:p:" */
} ngx_http_eventbridge_fanout_t;


typedef struct {
    ngx_str_t                    name;
    ngx_http_eventbridge_fanout_t  *targets;
    ngx_uint_t                   ntargets;
} ngx_http_eventbridge_rule_t;


/* A bus of the configuration file, with its compiled rules. */
typedef struct {
    ngx_str_t                    name;
    const eb_config_bus_t       *conf;
    ngx_http_eventbridge_rule_t *rules;           /* by rule id */
    ngx_uint_t                   nrules;
} ngx_http_eventbridge_bus_t;


typedef struct {
    /* Redis, resolved at configuration time: workers never resolve */
    ngx_str_t                    redis_addr;      /* as configured (first) */
    ngx_uint_t                   redis_mode;      /* EB_REDIS_SINGLE... */
    ngx_array_t                 *redis_addrs;     /* eb_redis_addr_t: the
                                                     server, the seeds or
                                                     the sentinels */
    u_char                      *redis_unix;      /* unix socket path */
    ngx_str_t                    redis_user;
    ngx_str_t                    redis_password;
    ngx_int_t                    redis_db;
    ngx_str_t                    sentinel_master;
    ngx_str_t                    sentinel_user;
    ngx_str_t                    sentinel_password;
    ngx_msec_t                   redis_timeout;
    ngx_uint_t                   redis_max_pending;
    size_t                       redis_max_pending_bytes;

    /* eventbridge_redis_wait N TIMEOUT: WAIT after every EXEC */
    ngx_uint_t                   redis_wait;
    ngx_msec_t                   redis_wait_timeout;
    ngx_str_t                    redis_wait_cmd;  /* in RESP */
    u_char                      *redis_wait_file;
    ngx_uint_t                   redis_wait_line;

    ngx_array_t                 *redis_slots;     /* ngx_uint_t: the slots
                                                     of the configured
                                                     buses, connected to
                                                     early */

    ngx_str_t                    config_file;
    eb_config_t                 *config;          /* eventbridge_config */
    ngx_array_t                 *buses;           /* ngx_http_eventbridge_bus_t */

    /* the event endpoints (ngx_http_eventbridge_endpoint_t), for the
     * console's configuration page */
    ngx_array_t                 *endpoints;
    /* the console's CSRF tokens are HMACs under this key, made when the
     * configuration is read: every worker agrees, a reload renews it */
    u_char                       console_key[32];
    ngx_flag_t                   console_key_set;

    ngx_shm_zone_t              *shm_zone;
    ngx_http_eventbridge_metrics_shm_t  *metrics; /* the zone's contents */
    ngx_array_t                 *metric_slots;    /* of this configuration:
                                                     ngx_http_eventbridge_
                                                     metric_slot_t * */
} ngx_http_eventbridge_main_conf_t;


/* eventbridge_dedupe: where the idempotency key comes from */
typedef enum {
    EB_DEDUPE_OFF = 0,
    EB_DEDUPE_HEADER,               /* header:NAME */
    EB_DEDUPE_BODY,                 /* body:JSONPATH */
    EB_DEDUPE_CLOUDEVENTS           /* PutEvents: (source, id) */
} ngx_http_eventbridge_dedupe_e;


typedef struct {
    ngx_str_t                    source;          /* "" if not a source */
    ngx_flag_t                   put_events;      /* a PutEvents endpoint */
    ngx_str_t                    endpoint;        /* for logs: the source
                                                     name or "put_events" */
    u_char                      *source_file;     /* where it was set, */
    ngx_uint_t                   source_line;     /* for later errors */
    ngx_str_t                    bus;
    ngx_str_t                    stream_key;      /* eb:{BUS}:events */
    ngx_uint_t                   slot;            /* its cluster slot */
    ngx_http_eventbridge_bus_t  *bus_conf;        /* NULL: no rules */

    ngx_str_t                    region;
    ngx_str_t                    account;

    ngx_uint_t                   methods;         /* NGX_HTTP_* bits */
    ngx_str_t                    allow_header;    /* "POST, PUT" */
    ngx_array_t                 *allow_ips;       /* ngx_cidr_t */
    ngx_flag_t                   allow_unix;      /* "unix:" was listed */
    ngx_array_t                 *allow_referers;  /* ngx_str_t */
    ngx_flag_t                   allow_no_referer;
    ngx_str_t                    token;
    ngx_str_t                    token_header;    /* lower case; "": the
                                                     query's "token" */
    ngx_array_t                 *strip_headers;   /* ngx_str_t, as set */
    /* lower-case names of headers never copied into events: the
     * defaults, eventbridge_strip_headers and the token header */
    ngx_array_t                 *strip;           /* ngx_str_t */

    ngx_uint_t                   id_format;       /* EB_UUID_V4 or _V7 */
    ngx_flag_t                   trace_context;   /* W3C traceparent kept
                                                     or started */
    eb_sig_scheme_t             *signature;       /* eventbridge_signature */
    u_char                      *signature_file;  /* where it was set */
    ngx_uint_t                   signature_line;

    ngx_uint_t                   stream_maxlen;
    /* the constant head of every XADD this location sends, in RESP:
     * XADD eb:{BUS}:events MAXLEN ~ N * event; the event JSON and the
     * rules field follow */
    ngx_str_t                    xadd_head;
    ngx_uint_t                   max_json_depth;

    ngx_uint_t                   max_batch;       /* PutEvents entries */

    /* eventbridge_dedupe (this location only, not inherited) */
    ngx_uint_t                   dedupe;          /* EB_DEDUPE_* */
    ngx_str_t                    dedupe_header;
    eb_jsonpath_t               *dedupe_path;
    ngx_msec_t                   dedupe_window;
    ngx_flag_t                   dedupe_required; /* missing=reject */
    ngx_str_t                    dedupe_prefix;   /* of its Redis keys */
    u_char                      *dedupe_file;     /* where it was set */
    ngx_uint_t                   dedupe_line;

    ngx_flag_t                   status;          /* eventbridge_status */

    /* eventbridge_console [root=PATH] */
    ngx_flag_t                   console;
    ngx_str_t                    console_root;    /* no trailing slash */
    ngx_str_t                    console_prefix;  /* the location's name */
    u_char                      *console_file;    /* where it was set */
    ngx_uint_t                   console_line;

    /* an endpoint's counters: its bus's (by endpoint type) and, for an
     * eventbridge_source, its source's */
    ngx_http_eventbridge_metric_slot_t  *metrics_bus;
    ngx_http_eventbridge_metric_slot_t  *metrics_source;
} ngx_http_eventbridge_loc_conf_t;


/* an eventbridge_source or eventbridge_put_events location */
typedef struct {
    ngx_str_t                    location;
    ngx_http_eventbridge_loc_conf_t  *lcf;
} ngx_http_eventbridge_endpoint_t;


typedef struct ngx_http_eventbridge_job_s  ngx_http_eventbridge_job_t;

/* why a job failed: the kind, and Redis' own words when it answered */
typedef struct {
    ngx_http_eventbridge_redis_err_e  err;
    ngx_str_t                         text;
} ngx_http_eventbridge_redis_result_t;

/* res is NULL when Redis applied the commands */
typedef void (*ngx_http_eventbridge_job_pt)(void *data,
    ngx_http_eventbridge_redis_result_t *res);


/* the reply of a single-command job (the dedupe script), before the
 * handler is called */
typedef void (*ngx_http_eventbridge_reply_pt)(void *data, redisReply *reply);


/* One event on its way to Redis: its JSON, the rules it matched. */
typedef struct {
    ngx_str_t                   *json;
    uint32_t                    *ids;             /* matched rule ids */
    ngx_uint_t                   n;
    ngx_str_t                    names;           /* "r1,r2" */
    /* per matched (rule, target), in order: the stream and the ordering
     * key of one in order (eb_order.h); NULL when none is */
    ngx_str_t                   *streams;
    ngx_str_t                   *okeys;
} ngx_http_eventbridge_matched_t;


/* sends the 2xx once Redis has the events; returns what to finalize with */
typedef ngx_int_t (*ngx_http_eventbridge_answer_pt)(ngx_http_request_t *r);


typedef struct {
    u_char                       event_id[EB_UUID_LEN];
    ngx_str_t                    event_id_str;    /* empty until minted */

    ngx_http_client_body_handler_pt  post;        /* once the body is read */
    uint64_t                     started;         /* then: monotonic ns */

    ngx_http_eventbridge_job_t  *job;             /* in flight at Redis */
    ngx_event_t                  timeout;
    ngx_http_eventbridge_answer_pt  answer;
    ngx_uint_t                   nevents;
    ngx_str_t                    answer_body;     /* PutEvents */

    /* eventbridge_dedupe: per event, its key (NULL: no key, the plain
     * MULTI/EXEC) and the value set under it; the repeats found */
    ngx_str_t                   *dedupe_keys;
    ngx_str_t                   *dedupe_tokens;
    ngx_uint_t                   deduplicated;

    void                        *console;         /* a console request's
                                                     state */

    unsigned                     own_response:1;  /* our JSON, not core's */
    unsigned                     rewrite_error:1; /* core error -> JSON */
    unsigned                     error_sent:1;
    ngx_str_t                    error_body;
} ngx_http_eventbridge_ctx_t;


extern ngx_module_t  ngx_http_eventbridge_module;


/* ngx_http_eventbridge_module.c */
/* logs `"DIRECTIVE" directive: MESSAGE` for the directive being parsed */
void ngx_http_eventbridge_conf_error(ngx_conf_t *cf, const char *fmt, ...);

/* ngx_http_eventbridge_source.c */
ngx_int_t ngx_http_eventbridge_source_handler(ngx_http_request_t *r);
void ngx_http_eventbridge_source_init_worker(ngx_cycle_t *cycle);
/* the request body in one buffer: NGX_OK, or what to finalize with (a
 * 413 JSON answer sent when nginx spooled the body to a temp file) */
ngx_int_t ngx_http_eventbridge_collect_body(ngx_http_request_t *r,
    ngx_str_t *body);
/* yajl's allocator hooks onto the request pool */
void ngx_http_eventbridge_pool_afs(ngx_http_request_t *r,
    yajl_alloc_funcs *afs);
/* a fresh UUID (EB_UUID_LEN bytes, EB_UUID_V4 or _V7) from the worker's
 * pool of kernel random bytes */
ngx_int_t ngx_http_eventbridge_uuid(ngx_uint_t version, u_char *out);
/* a new W3C traceparent (EB_TRACEPARENT_LEN bytes) from the same pool */
ngx_int_t ngx_http_eventbridge_traceparent_new(u_char *out);
/* the event times: local with offset, and UTC */
void ngx_http_eventbridge_timestamps(ngx_str_t *local, ngx_str_t *utc);
/* the client address as events publish it (IPv4-mapped as IPv4) */
void ngx_http_eventbridge_client_addr(ngx_http_request_t *r, ngx_str_t *addr);

/* ngx_http_eventbridge_put_events.c */
ngx_int_t ngx_http_eventbridge_put_events_handler(ngx_http_request_t *r);

/* ngx_http_eventbridge_trace.c */
/* The event's W3C trace context: the request's valid traceparent header
 * (and its tracestate, checked and bounded), or a new traceparent and no
 * tracestate. Both point into the request's memory. NGX_OK or
 * NGX_ERROR. */
ngx_int_t ngx_http_eventbridge_trace_context(ngx_http_request_t *r,
    ngx_str_t *traceparent, ngx_str_t *tracestate);

/* ngx_http_eventbridge_rules.c */
char *ngx_http_eventbridge_config_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_http_eventbridge_bus_t *ngx_http_eventbridge_find_bus(
    ngx_http_eventbridge_main_conf_t *mcf, ngx_str_t *name);
ngx_int_t ngx_http_eventbridge_rules_init_worker(ngx_cycle_t *cycle);
/* matched rule ids of one event, ascending; -1 on error */
ngx_int_t ngx_http_eventbridge_match(ngx_http_eventbridge_bus_t *bus,
    ngx_str_t *event, uint32_t *ids, ngx_uint_t max);

/* ngx_http_eventbridge_append.c */
ngx_http_eventbridge_ctx_t *ngx_http_eventbridge_get_ctx(
    ngx_http_request_t *r);
/* Matches the events (compact JSON) against the location's bus and hands
 * them, with their fan-out, to Redis in one transaction. NGX_DONE: answer
 * will send the 2xx (or a 503 comes); anything else: already answered,
 * finalize with it. */
ngx_int_t ngx_http_eventbridge_append(ngx_http_request_t *r,
    ngx_str_t *events, ngx_uint_t n, ngx_http_eventbridge_answer_pt answer);
/* security checks, then the body for post(); a content handler's result */
ngx_int_t ngx_http_eventbridge_read_event(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt post);
/* "$LEN\r\nBYTES\r\n", one RESP bulk string; returns the end */
u_char *ngx_http_eventbridge_bulk(u_char *p, ngx_str_t *s);
#define EB_BULK_OVERHEAD  (1 + NGX_SIZE_T_LEN + 4)
/* 503 with Retry-After */
ngx_int_t ngx_http_eventbridge_unavailable(ngx_http_request_t *r,
    const char *why);

/* ngx_http_eventbridge_dedupe.c */
char *ngx_http_eventbridge_dedupe_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
/* checks the directive against the location's endpoint, builds the key
 * prefix */
ngx_int_t ngx_http_eventbridge_dedupe_merge(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf);
/* The HTTP source's key (header or body): sets ctx->dedupe_keys when the
 * request has one. NGX_OK: go on (with or without a key); anything else:
 * answered (400 missing=reject) or an error, finalize with it. */
ngx_int_t ngx_http_eventbridge_dedupe_source(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx, ngx_str_t *body, ngx_uint_t is_json);
/* PutEvents: the key of each event from its (source, id) */
ngx_int_t ngx_http_eventbridge_dedupe_events(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx, ngx_str_t *events, ngx_uint_t n);
/* the one EVAL that appends what is not a repeat */
ngx_int_t ngx_http_eventbridge_dedupe_script(ngx_http_request_t *r,
    ngx_http_eventbridge_ctx_t *ctx, ngx_http_eventbridge_matched_t *ev,
    ngx_uint_t n, ngx_str_t *cmd);
void ngx_http_eventbridge_dedupe_reply(void *data, redisReply *reply);

/* ngx_http_eventbridge_security.c */
char *ngx_http_eventbridge_allow_methods(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* whether a request header is one never copied into events */
ngx_int_t ngx_http_eventbridge_stripped(ngx_http_eventbridge_loc_conf_t *lcf,
    ngx_table_elt_t *h);
char *ngx_http_eventbridge_token_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eventbridge_strip_headers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eventbridge_allow_ips(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eventbridge_allow_referers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_eventbridge_merge_security(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *prev,
    ngx_http_eventbridge_loc_conf_t *conf);
/* NGX_DECLINED if the request may go on; otherwise it has been answered
 * and the result is what to finalize it with */
ngx_int_t ngx_http_eventbridge_check_access(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf);

/* ngx_http_eventbridge_signature.c */
char *ngx_http_eventbridge_signature_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_eventbridge_merge_signature(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *prev,
    ngx_http_eventbridge_loc_conf_t *conf);
/* NGX_DECLINED if the raw body's signature is good (or none is asked);
 * otherwise the request has been answered (401) and the result is what
 * to finalize it with */
ngx_int_t ngx_http_eventbridge_check_signature(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *body);

/* ngx_http_eventbridge_redis_conf.c */
char *ngx_http_eventbridge_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eventbridge_redis_wait_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_eventbridge_redis_init_conf(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf);

/* ngx_http_eventbridge_redis.c */
ngx_int_t ngx_http_eventbridge_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_eventbridge_main_conf_t *mcf);
void ngx_http_eventbridge_redis_exit_worker(ngx_cycle_t *cycle);
/* Sends commands already in RESP form, several in one MULTI/EXEC, to the
 * primary of slot; the job is resent after redirections and failovers
 * until the handler gets its answer or the job is cancelled. NGX_OK (job
 * handed over), or NGX_DECLINED with *err set. */
ngx_int_t ngx_http_eventbridge_redis_submit(ngx_uint_t slot, ngx_str_t *cmds,
    ngx_uint_t n, ngx_http_eventbridge_job_pt handler, void *data,
    ngx_http_eventbridge_job_t **job, ngx_http_eventbridge_redis_err_e *err);
/* The same, with reply set before the first send. read: the console's
 * reads (no eventbridge_redis_wait; a MULTI/EXEC's array, its errors
 * included, or a single command's reply of any type goes to reply). */
ngx_int_t ngx_http_eventbridge_redis_submit_reply(ngx_uint_t slot,
    ngx_str_t *cmds, ngx_uint_t n, ngx_uint_t read,
    ngx_http_eventbridge_reply_pt reply, ngx_http_eventbridge_job_pt handler,
    void *data, ngx_http_eventbridge_job_t **job,
    ngx_http_eventbridge_redis_err_e *err);
/* reply: called with the reply of a single-command job that went through
 * (before the handler), while the request is there */
void ngx_http_eventbridge_redis_on_reply(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_reply_pt reply);
/* the request is gone: its handler is never called */
void ngx_http_eventbridge_redis_cancel(ngx_http_eventbridge_job_t *job);

/* ngx_http_eventbridge_redis_adapter.c */
ngx_int_t ngx_http_eventbridge_redis_attach(redisAsyncContext *ac,
    ngx_log_t *log);

/* ngx_http_eventbridge_error.c */
ngx_int_t ngx_http_eventbridge_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);
ngx_int_t ngx_http_eventbridge_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *fmt, ...);
ngx_int_t ngx_http_eventbridge_error_filter_init(ngx_conf_t *cf);

/* ngx_http_eventbridge_metrics.c */
/* the slots of an endpoint location (merge time) */
ngx_int_t ngx_http_eventbridge_metrics_endpoint(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf);
/* the zone, sized for the slots (postconfiguration) */
ngx_int_t ngx_http_eventbridge_metrics_init_conf(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf);
void ngx_http_eventbridge_metrics_init_worker(
    ngx_http_eventbridge_main_conf_t *mcf);
/* the worker's totals in the zone; NULL before the zone is there */
ngx_http_eventbridge_counters_t *ngx_http_eventbridge_metrics_counters(void);
/* now, on the clock of the append-latency histogram */
uint64_t ngx_http_eventbridge_metrics_now(void);
/* the request's append ended (ctx->started set when its body was read) */
void ngx_http_eventbridge_observe_append(ngx_http_request_t *r,
    ngx_http_eventbridge_append_outcome_e outcome);
void ngx_http_eventbridge_count_reject(ngx_http_request_t *r,
    ngx_http_eventbridge_reject_e reason);
void ngx_http_eventbridge_count_accept(ngx_http_request_t *r, ngx_uint_t n);
void ngx_http_eventbridge_count_deduplicated(ngx_http_request_t *r,
    ngx_uint_t n);
void ngx_http_eventbridge_count_signature(eb_sig_rc_t reason);
void ngx_http_eventbridge_count_redis_error(
    ngx_http_eventbridge_redis_err_e kind);
void ngx_http_eventbridge_count_redis_event(
    ngx_http_eventbridge_redis_ev_e ev);

/* ngx_http_eventbridge_console.c */
char *ngx_http_eventbridge_console_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_eventbridge_console_merge(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf);
/* an event endpoint, listed on the console's configuration page */
ngx_int_t ngx_http_eventbridge_console_endpoint(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *lcf);

/* ngx_http_eventbridge_status.c */
ngx_int_t ngx_http_eventbridge_status_handler(ngx_http_request_t *r);

#endif /* NGX_HTTP_EVENTBRIDGE_H */
