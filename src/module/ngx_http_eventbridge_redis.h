/*
 * The worker's Redis client, shared by its files only: the jobs requests
 * submit (ngx_http_eventbridge_redis.c) and their attempts (..._job.c),
 * node connections (..._node.c), one-shot topology queries (..._query.c),
 * the cluster slot map (..._cluster.c), the sentinels (..._sentinel.c).
 *
 * Everything is per worker process and lives in one static structure.
 */

#ifndef NGX_HTTP_EVENTBRIDGE_REDIS_H
#define NGX_HTTP_EVENTBRIDGE_REDIS_H

#include "ngx_http_eventbridge.h"


#define EB_REDIS_BACKOFF_MIN   100      /* ms, reconnections */
#define EB_REDIS_BACKOFF_MAX   2000
#define EB_REDIS_REFRESH_MIN   250      /* ms between topology queries */
#define EB_REDIS_REFRESH_IDLE  1000     /* ms, after a failed round */
#define EB_REDIS_TRYAGAIN      50       /* ms before a TRYAGAIN resend */
#define EB_REDIS_RETRY         100      /* ms before a RETRY resend */
#define EB_REDIS_NAME_LEN      (EB_REDIS_HOST_LEN + 8)

/* a connection is dropped when replies are due and none came for this
 * long: a little over the request timeout, so that a request that waits
 * on it has its own 503 ("timed out") first */
#define EB_REDIS_WATCHDOG(mcf)                                              \
    ((mcf)->redis_timeout + (mcf)->redis_timeout / 4)


typedef enum {
    EB_NODE_DOWN = 0,
    EB_NODE_CONNECTING,            /* TCP, AUTH, SELECT, ROLE */
    EB_NODE_READY
} ngx_http_eventbridge_node_state_e;


/* One pipelined connection to one Redis server. */
typedef struct {
    eb_redis_addr_t              addr;
    u_char                      *unix_path;       /* single mode only */
    u_char                       name[EB_REDIS_NAME_LEN];  /* for logs */

    redisAsyncContext           *ac;
    ngx_http_eventbridge_node_state_e  state;
    ngx_uint_t                   setup;           /* setup replies due */
    ngx_uint_t                   outstanding;     /* replies due */
    ngx_msec_t                   progress;        /* last reply, or first
                                                     send while idle */
    ngx_msec_t                   backoff;

    ngx_event_t                  reconnect;
    /* until READY: the connect + setup timeout; then the watchdog,
     * armed while replies are due and pushed back by each reply */
    ngx_event_t                  timer;

    /* eventbridge_redis_wait: jobs the WAIT out answers for, and those
     * sent since, for the next one */
    ngx_queue_t                  wait_sent;
    ngx_queue_t                  wait_next;

    unsigned                     wait_busy:1;     /* a WAIT is out */
    unsigned                     role_check:1;    /* sentinel: ROLE */
    unsigned                     logged_down:1;
} ngx_http_eventbridge_node_t;


typedef void (*ngx_http_eventbridge_query_pt)(redisReply *reply);

/* A one-shot connection that asks one question (CLUSTER SLOTS,
 * SENTINEL get-master-addr-by-name): connect, AUTH, the command, close. */
typedef struct {
    redisAsyncContext           *ac;
    ngx_event_t                  timeout;
    ngx_http_eventbridge_query_pt  handler;
    eb_redis_addr_t              addr;
    unsigned                     done:1;
} ngx_http_eventbridge_query_t;


struct ngx_http_eventbridge_job_s {
    ngx_http_eventbridge_job_pt  handler;         /* NULL once cancelled */
    void                        *data;
    ngx_http_eventbridge_reply_pt  reply;         /* single command's */

    ngx_str_t                   *cmds;            /* request pool */
    ngx_uint_t                   n;
    size_t                       bytes;           /* of the commands */
    ngx_uint_t                   slot;

    ngx_queue_t                  queue;           /* waiting for a node */
    ngx_queue_t                  wait_link;       /* node's wait lists */
    ngx_event_t                  delay;           /* TRYAGAIN, RETRY */
    ngx_http_eventbridge_node_t *node;            /* of the attempt */

    ngx_uint_t                   replies;         /* of the attempt */
    ngx_uint_t                   seen;
    ngx_uint_t                   attempts;
    long long                    acked;           /* WAIT's answer */
    eb_redis_addr_t              ask_to;
    eb_redis_error_e             kind;            /* of the first error */
    eb_redis_addr_t              moved_to;
    unsigned                     moved_slot;

    ngx_http_eventbridge_redis_result_t  res;
    u_char                       text[128];       /* res.text's bytes */

    unsigned                     asking:1;
    unsigned                     waiting:1;       /* in the wait queue */
    unsigned                     lost:1;          /* a reply was NULL */
    unsigned                     error:1;         /* kind, text are set */
    unsigned                     applied:1;       /* EXEC went through */
    unsigned                     in_exec:1;       /* error inside EXEC */
    unsigned                     waited:1;        /* WAIT answered */
    unsigned                     in_wait:1;       /* on wait_link */
    unsigned                     read:1;          /* the console's reads:
                                                     no WAIT, each reply
                                                     (errors too) to reply */
};


typedef struct {
    ngx_http_eventbridge_main_conf_t  *mcf;
    ngx_log_t                   *log;

    ngx_array_t                  nodes;           /* node pointers */
    ngx_http_eventbridge_node_t *primary;         /* single, sentinel */

    ngx_queue_t                  waiting;         /* jobs without a node */
    ngx_uint_t                   pending;         /* live jobs */
    size_t                       pending_bytes;   /* their commands' */
    ngx_http_eventbridge_job_t  *free_jobs;

    /* topology: CLUSTER SLOTS or the sentinels, one query at a time */
    eb_redis_map_t              *map;
    eb_redis_map_t              *map_next;
    ngx_http_eventbridge_query_t query;
    ngx_uint_t                   next_addr;       /* rotation */
    ngx_uint_t                   tries;           /* in this round */
    ngx_msec_t                   last_refresh;
    ngx_event_t                  refresh;

    unsigned                     refreshing:1;
    unsigned                     asked_live:1;    /* this round */
    unsigned                     unavailable:1;   /* a whole round failed */
    unsigned                     logged_unavailable:1;
    unsigned                     logged_auth:1;   /* a query's AUTH failed */
    unsigned                     exiting:1;
} ngx_http_eventbridge_redis_t;


extern ngx_http_eventbridge_redis_t  ngx_http_eventbridge_redis;


/* ngx_http_eventbridge_redis.c: jobs, and events from the connections */
void ngx_http_eventbridge_redis_dispatch(ngx_http_eventbridge_job_t *job);
void ngx_http_eventbridge_redis_later(ngx_http_eventbridge_job_t *job,
    ngx_msec_t delay);
void ngx_http_eventbridge_redis_fail(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_redis_err_e err);
void ngx_http_eventbridge_job_free(ngx_http_eventbridge_job_t *job);
void ngx_http_eventbridge_redis_flush(void);
void ngx_http_eventbridge_redis_node_up(ngx_http_eventbridge_node_t *node);
void ngx_http_eventbridge_redis_node_down(ngx_http_eventbridge_node_t *node);
/* asks for the topology again, at most every EB_REDIS_REFRESH_MIN ms */
void ngx_http_eventbridge_redis_refresh(void);
void ngx_http_eventbridge_redis_refreshed(ngx_uint_t ok);
ngx_http_eventbridge_node_t *ngx_http_eventbridge_redis_node_get(
    const eb_redis_addr_t *addr);

/* ngx_http_eventbridge_redis_job.c */
ngx_int_t ngx_http_eventbridge_job_send(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_node_t *node);
void ngx_http_eventbridge_job_done(ngx_http_eventbridge_job_t *job);

/* ngx_http_eventbridge_redis_wait.c */
void ngx_http_eventbridge_wait_add(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_node_t *node);
ngx_uint_t ngx_http_eventbridge_wait_pending(ngx_http_eventbridge_job_t *job);

/* ngx_http_eventbridge_redis_node.c */
void ngx_http_eventbridge_node_init(ngx_http_eventbridge_node_t *node,
    const eb_redis_addr_t *addr, u_char *unix_path, ngx_log_t *log);
void ngx_http_eventbridge_node_connect(ngx_http_eventbridge_node_t *node);
void ngx_http_eventbridge_node_drop(ngx_http_eventbridge_node_t *node,
    ngx_uint_t now);
void ngx_http_eventbridge_node_close(ngx_http_eventbridge_node_t *node);
/* queues one command; its callback must call node_replied() first */
ngx_int_t ngx_http_eventbridge_node_send(ngx_http_eventbridge_node_t *node,
    redisCallbackFn *fn, void *privdata, u_char *cmd, size_t len);
ngx_http_eventbridge_node_t *ngx_http_eventbridge_node_replied(
    redisAsyncContext *ac, redisReply *reply);

/* ngx_http_eventbridge_redis_query.c */
ngx_int_t ngx_http_eventbridge_query_start(ngx_http_eventbridge_query_t *q,
    const eb_redis_addr_t *addr, ngx_str_t *user, ngx_str_t *password,
    int argc, const char **argv);
void ngx_http_eventbridge_query_cancel(ngx_http_eventbridge_query_t *q);

/* ngx_http_eventbridge_redis_cluster.c */
ngx_int_t ngx_http_eventbridge_cluster_init(void);
void ngx_http_eventbridge_cluster_query(void);
ngx_http_eventbridge_node_t *ngx_http_eventbridge_cluster_route(
    ngx_uint_t slot);
void ngx_http_eventbridge_cluster_moved(unsigned slot,
    const eb_redis_addr_t *to);
void ngx_http_eventbridge_cluster_exit(void);

/* ngx_http_eventbridge_redis_sentinel.c */
void ngx_http_eventbridge_sentinel_query(void);

#endif /* NGX_HTTP_EVENTBRIDGE_REDIS_H */
