/*
 * The event console (`eventbridge_console;`), shared by its files only:
 * routing and the request's Redis steps (ngx_http_eventbridge_console.c),
 * static files (..._console_static.c), CSRF tokens (..._console_csrf.c),
 * the JSON writer and parameters (..._console_json.c), and one file per
 * group of API endpoints (..._console_api_*.c).
 *
 * docs/console.md is the API's reference; the caps below, and those of
 * what a client sends (eb_console_params.h), are part of it.
 */

#ifndef NGX_HTTP_EVENTBRIDGE_CONSOLE_H
#define NGX_HTTP_EVENTBRIDGE_CONSOLE_H

#include "ngx_http_eventbridge.h"

#include <yajl/yajl_gen.h>

#include "eb_console_params.h"


#define EB_CONSOLE_LIMIT_DEFAULT   20       /* items per page */
#define EB_CONSOLE_SCAN_MAX        500      /* entries read per request */
#define EB_CONSOLE_ATTEMPTS_MAX    64       /* of one event */
#define EB_CONSOLE_INDEX_HOURS     193      /* 8 days of index buckets */
#define EB_CONSOLE_INDEX_STEP      744      /* then a month per step */
#define EB_CONSOLE_STRING_MAX      256      /* a parameter's value */
/* a list stops adding items past this many bytes (and says where to go
 * on): one item may still be as large as an event */
#define EB_CONSOLE_RESPONSE_MAX    (4 * 1024 * 1024)
#define EB_CONSOLE_CSRF_TTL        (12 * 3600)   /* seconds */


typedef struct ngx_http_eventbridge_console_s
    ngx_http_eventbridge_console_t;

/* reads the replies of a step's commands (an array, one element per
 * command, whether they went as MULTI/EXEC or alone): sets out (and
 * status), or next commands */
typedef void (*ngx_http_eventbridge_console_step_pt)(
    ngx_http_eventbridge_console_t *cn, redisReply *reply);


struct ngx_http_eventbridge_console_s {
    ngx_http_request_t               *r;
    ngx_http_eventbridge_main_conf_t *mcf;
    ngx_http_eventbridge_bus_t       *bus;
    ngx_str_t                         bus_name;
    ngx_uint_t                        slot;
    const eb_config_target_t         *target;

    /* a POST's endpoint, called once the body is read */
    ngx_int_t                       (*post)(
        ngx_http_eventbridge_console_t *cn, ngx_str_t *body);

    ngx_http_eventbridge_console_step_pt  step;
    ngx_array_t                      *next;       /* ngx_str_t commands */
    ngx_uint_t                        ncmds;      /* of the job out */

    yajl_gen                          g;
    ngx_uint_t                        status;
    ngx_str_t                         out;        /* the answer, escaped */
    ngx_int_t                         rc;         /* of an error answered */

    /* an endpoint's own state between steps */
    ngx_str_t                         id;         /* event id, entry id */
    ngx_uint_t                        limit;
    ngx_uint_t                        count;
    ngx_uint_t                        range_day;
    time_t                            now;
    ngx_str_t                         filter[4];
    void                             *data;
};


/* ngx_http_eventbridge_console.c */
/* queues one command (RESP) for the next step */
ngx_int_t ngx_http_eventbridge_console_cmd(ngx_http_eventbridge_console_t *cn,
    ngx_uint_t argc, ngx_str_t *argv);
/* the key eb:{BUS}:SUFFIX (suffix may hold one %V, arg) */
ngx_int_t ngx_http_eventbridge_console_key(ngx_http_eventbridge_console_t *cn,
    ngx_str_t *key, const char *suffix, ngx_str_t *arg);
/* sends the queued commands (one MULTI/EXEC, or one command); step reads
 * the reply. NGX_DONE, or what to finalize with. */
ngx_int_t ngx_http_eventbridge_console_query(
    ngx_http_eventbridge_console_t *cn,
    ngx_http_eventbridge_console_step_pt step, ngx_uint_t read);
/* the bus of parameter "bus" (400 / 404 answered: NGX_DECLINED, and
 * cn->rc is what to finalize with; the same for every NGX_DECLINED and
 * NGX_ERROR "answered" below) */
ngx_int_t ngx_http_eventbridge_console_bus(ngx_http_eventbridge_console_t *cn);
/* the target of parameter "target", one of the bus's */
ngx_int_t ngx_http_eventbridge_console_target(
    ngx_http_eventbridge_console_t *cn, ngx_str_t *name);
/* an error answer built in a step, sent when the job is done */
void ngx_http_eventbridge_console_fail(ngx_http_eventbridge_console_t *cn,
    ngx_uint_t status, const char *code, const char *msg);
const eb_config_target_t *ngx_http_eventbridge_console_find_target(
    ngx_http_eventbridge_console_t *cn, ngx_str_t *name);
/* the JSON answer (cn->out) or an error */
ngx_int_t ngx_http_eventbridge_console_send(ngx_http_eventbridge_console_t *cn);
ngx_int_t ngx_http_eventbridge_console_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *fmt, ...);
/* the headers every console answer carries */
ngx_int_t ngx_http_eventbridge_console_headers(ngx_http_request_t *r,
    ngx_uint_t html);

/* ngx_http_eventbridge_console_json.c */
ngx_int_t ngx_http_eventbridge_console_gen(ngx_http_eventbridge_console_t *cn);
void ngx_http_eventbridge_console_str(yajl_gen g, const char *s);
void ngx_http_eventbridge_console_strn(yajl_gen g, const u_char *p,
    size_t len);
void ngx_http_eventbridge_console_int(yajl_gen g, int64_t n);
/* a reply element as a string, or null */
void ngx_http_eventbridge_console_reply_str(yajl_gen g, redisReply *e);
/* a field's value as a number when it is digits, else as a string */
void ngx_http_eventbridge_console_reply_num(yajl_gen g, redisReply *e);
size_t ngx_http_eventbridge_console_size(yajl_gen g);
/* the output, with < > & as \u escapes (safe in any context) */
ngx_int_t ngx_http_eventbridge_console_finish(
    ngx_http_eventbridge_console_t *cn);
/* the same at the end of a step: finished, or a 500 */
void ngx_http_eventbridge_console_end(ngx_http_eventbridge_console_t *cn);
/* the field of an XRANGE entry's field list, or NULL */
redisReply *ngx_http_eventbridge_console_field(redisReply *fields,
    const char *name);
/* milliseconds of a stream id */
int64_t ngx_http_eventbridge_console_id_ms(redisReply *id);
/* parameters: NGX_OK (found), NGX_DECLINED (absent), NGX_ERROR (400
 * answered) */
ngx_int_t ngx_http_eventbridge_console_arg(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_eventbridge_console_arg_limit(ngx_http_request_t *r,
    ngx_uint_t *limit);
/* a stream id: ms or ms-seq (from, to, cursor) */
ngx_int_t ngx_http_eventbridge_console_arg_id(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);

/* ngx_http_eventbridge_console_static.c */
ngx_int_t ngx_http_eventbridge_console_static(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *path);

/* ngx_http_eventbridge_console_csrf.c */
ngx_int_t ngx_http_eventbridge_console_csrf_init(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf);
ngx_int_t ngx_http_eventbridge_console_api_csrf(
    ngx_http_eventbridge_console_t *cn);
/* NGX_OK, or 403 answered (NGX_DECLINED; cn->rc to finalize with) */
ngx_int_t ngx_http_eventbridge_console_csrf_check(ngx_http_request_t *r);

/* the endpoints: NGX_DONE (waiting for Redis) or what to finalize with */
ngx_int_t ngx_http_eventbridge_console_api_config(
    ngx_http_eventbridge_console_t *cn);
ngx_int_t ngx_http_eventbridge_console_api_overview(
    ngx_http_eventbridge_console_t *cn);
ngx_int_t ngx_http_eventbridge_console_api_event(
    ngx_http_eventbridge_console_t *cn, ngx_str_t *id);
ngx_int_t ngx_http_eventbridge_console_api_events(
    ngx_http_eventbridge_console_t *cn);
ngx_int_t ngx_http_eventbridge_console_api_attempts(
    ngx_http_eventbridge_console_t *cn);
ngx_int_t ngx_http_eventbridge_console_api_dlq(
    ngx_http_eventbridge_console_t *cn);
ngx_int_t ngx_http_eventbridge_console_api_letter(
    ngx_http_eventbridge_console_t *cn, ngx_str_t *id);
/* POST: after the body was read */
ngx_int_t ngx_http_eventbridge_console_api_redrive(
    ngx_http_eventbridge_console_t *cn, ngx_str_t *body);
ngx_int_t ngx_http_eventbridge_console_api_replay(
    ngx_http_eventbridge_console_t *cn, ngx_str_t *body);
ngx_int_t ngx_http_eventbridge_console_api_replays(
    ngx_http_eventbridge_console_t *cn);

#endif /* NGX_HTTP_EVENTBRIDGE_CONSOLE_H */
