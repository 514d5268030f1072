/*
 * The worker's Redis connection: one pipelined hiredis async connection
 * per worker, opened in init_process and reopened with backoff from a
 * timer. Requests hand over commands as jobs; a job whose request is gone
 * is detached (handler NULL) and its reply is dropped.
 *
 * The address was resolved at configuration time; redisAsyncConnect only
 * gets numeric hosts, so its getaddrinfo() never touches DNS.
 */

#include "ngx_http_eventbridge.h"


#define EB_REDIS_BACKOFF_MIN  100       /* ms */
#define EB_REDIS_BACKOFF_MAX  2000      /* ms */


typedef enum {
    EB_REDIS_DISCONNECTED = 0,
    EB_REDIS_CONNECTING,
    EB_REDIS_READY
} ngx_http_eventbridge_redis_state_e;


typedef struct {
    ngx_http_eventbridge_main_conf_t   *mcf;
    ngx_log_t                          *log;
    redisAsyncContext                  *ac;
    ngx_http_eventbridge_redis_state_e  state;
    ngx_uint_t                          pending;
    ngx_uint_t                          setup;     /* AUTH/SELECT unanswered */
    ngx_http_eventbridge_job_t         *free_jobs;
    ngx_msec_t                          backoff;
    ngx_event_t                         reconnect;
    ngx_event_t                         connect_timeout;
    unsigned                            exiting:1;
    unsigned                            logged_down:1;
} ngx_http_eventbridge_redis_t;


/* per worker process: each worker owns exactly one connection */
static ngx_http_eventbridge_redis_t  ngx_http_eventbridge_redis;


static void ngx_http_eventbridge_redis_connect(void);
static void ngx_http_eventbridge_redis_schedule(void);
static void ngx_http_eventbridge_redis_ready(ngx_http_eventbridge_redis_t *rd);
static void ngx_http_eventbridge_job_free(ngx_http_eventbridge_redis_t *rd,
    ngx_http_eventbridge_job_t *job);


char *
ngx_http_eventbridge_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_main_conf_t  *mcf = conf;

    u_char     *p;
    size_t      len;
    ngx_str_t  *value;
    ngx_url_t   u;
    ngx_uint_t  i;

    if (mcf->redis_addr.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_http_eventbridge_conf_error(cf,
                           "invalid redis address \"%V\"%s%s", &u.url,
                           u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_http_eventbridge_conf_error(cf,
                           "redis address \"%V\" resolves to nothing", &u.url);
        return NGX_CONF_ERROR;
    }

    mcf->redis_addr = value[1];

    if (u.family == AF_UNIX) {
        len = ngx_strlen(u.url.data + 5);
        mcf->redis_unix = ngx_pnalloc(cf->pool, len + 1);
        if (mcf->redis_unix == NULL) {
            return NGX_CONF_ERROR;
        }
        ngx_cpystrn(mcf->redis_unix, u.url.data + 5, len + 1);
        /* u.url is not NUL-terminated at its length: cut there */
        mcf->redis_unix[u.url.len - 5] = '\0';

    } else {
        /* the first address, as numeric text without the port */
        p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                            NGX_SOCKADDR_STRLEN, 0);
        /* ngx_sock_ntop brackets IPv6 when asked for a port only */
        p[len] = '\0';

        mcf->redis_host = p;
        mcf->redis_port = ngx_inet_get_port(u.addrs[0].sockaddr);
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            mcf->redis_password.data = value[i].data + 9;
            mcf->redis_password.len = value[i].len - 9;

            if (mcf->redis_password.len == 0) {
                ngx_http_eventbridge_conf_error(cf,
                                   "empty redis password");
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            mcf->redis_db = ngx_atoi(value[i].data + 3, value[i].len - 3);

            if (mcf->redis_db == NGX_ERROR || mcf->redis_db > 65535) {
                ngx_http_eventbridge_conf_error(cf,
                                   "invalid redis database \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_http_eventbridge_conf_error(cf,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_eventbridge_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_eventbridge_redis_connect();
}


static void
ngx_http_eventbridge_redis_connect_timeout_handler(ngx_event_t *ev)
{
    redisAsyncContext             *ac;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->state != EB_REDIS_CONNECTING || rd->ac == NULL) {
        return;
    }

    if (!rd->logged_down) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "eventbridge: redis %V: connect timed out",
                      &rd->mcf->redis_addr);
        rd->logged_down = 1;
    }

    /* hiredis calls no disconnect callback for a context that never
     * connected: the state is reset here */
    ac = rd->ac;
    rd->ac = NULL;
    rd->state = EB_REDIS_DISCONNECTED;

    redisAsyncFree(ac);
    ngx_http_eventbridge_redis_schedule();
}


ngx_int_t
ngx_http_eventbridge_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_eventbridge_main_conf_t *mcf)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    ngx_memzero(rd, sizeof(ngx_http_eventbridge_redis_t));

    rd->mcf = mcf;
    rd->log = cycle->log;
    rd->backoff = EB_REDIS_BACKOFF_MIN;

    rd->reconnect.handler = ngx_http_eventbridge_redis_reconnect_handler;
    rd->reconnect.log = cycle->log;
    rd->reconnect.data = rd;
    /* a pending reconnect must not hold up a graceful shutdown */
    rd->reconnect.cancelable = 1;

    rd->connect_timeout.handler =
        ngx_http_eventbridge_redis_connect_timeout_handler;
    rd->connect_timeout.log = cycle->log;
    rd->connect_timeout.data = rd;
    rd->connect_timeout.cancelable = 1;

    ngx_http_eventbridge_redis_connect();

    return NGX_OK;
}


static void
ngx_http_eventbridge_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->connect_timeout.timer_set) {
        ngx_del_timer(&rd->connect_timeout);
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        if (!rd->logged_down) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "eventbridge: redis %V: cannot connect: %s",
                          &rd->mcf->redis_addr, ac->errstr);
            rd->logged_down = 1;
        }

        rd->ac = NULL;
        rd->state = EB_REDIS_DISCONNECTED;
        ngx_http_eventbridge_redis_schedule();
        return;
    }

    if (rd->setup == 0) {
        ngx_http_eventbridge_redis_ready(rd);
    }
}


/* Events are taken only once AUTH and SELECT succeeded: an XADD queued
 * behind a failing SELECT would land in the wrong database. */
static void
ngx_http_eventbridge_redis_ready(ngx_http_eventbridge_redis_t *rd)
{
    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "eventbridge: redis %V: connected", &rd->mcf->redis_addr);

    rd->state = EB_REDIS_READY;
    rd->backoff = EB_REDIS_BACKOFF_MIN;
    rd->logged_down = 0;
}


static void
ngx_http_eventbridge_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->connect_timeout.timer_set) {
        ngx_del_timer(&rd->connect_timeout);
    }

    rd->ac = NULL;
    rd->state = EB_REDIS_DISCONNECTED;

    if (rd->exiting) {
        return;
    }

    if (status != REDIS_OK && !rd->logged_down) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "eventbridge: redis %V: connection lost: %s",
                      &rd->mcf->redis_addr, ac->errstr);
        rd->logged_down = 1;
    }

    ngx_http_eventbridge_redis_schedule();
}


static void
ngx_http_eventbridge_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (reply == NULL) {
        return;                 /* the context is going away */
    }

    if (reply->type != REDIS_REPLY_ERROR) {
        if (--rd->setup == 0 && rd->state == EB_REDIS_CONNECTING) {
            ngx_http_eventbridge_redis_ready(rd);
        }
        return;
    }

    /* a wrong password or database: log it and start over with backoff */
    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "eventbridge: redis %V: %s failed: %*s",
                  &rd->mcf->redis_addr, (char *) privdata,
                  (size_t) reply->len, reply->str);
    rd->logged_down = 1;

    redisAsyncDisconnect(ac);
}


static void
ngx_http_eventbridge_redis_connect(void)
{
    ngx_http_eventbridge_redis_t      *rd = &ngx_http_eventbridge_redis;
    ngx_http_eventbridge_main_conf_t  *mcf = rd->mcf;

    redisAsyncContext  *ac;
    u_char              db[NGX_INT_T_LEN];
    size_t              dblen;

    if (rd->exiting || rd->state != EB_REDIS_DISCONNECTED) {
        return;
    }

    if (mcf->redis_unix) {
        ac = redisAsyncConnectUnix((char *) mcf->redis_unix);

    } else {
        ac = redisAsyncConnect((char *) mcf->redis_host, (int) mcf->redis_port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                      "eventbridge: redis %V: out of memory",
                      &mcf->redis_addr);
        ngx_http_eventbridge_redis_schedule();
        return;
    }

    if (ac->err) {
        if (!rd->logged_down) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "eventbridge: redis %V: cannot connect: %s",
                          &mcf->redis_addr, ac->errstr);
            rd->logged_down = 1;
        }

        redisAsyncFree(ac);
        ngx_http_eventbridge_redis_schedule();
        return;
    }

    if (ngx_http_eventbridge_redis_attach(ac, rd->log) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                      "eventbridge: redis %V: no free connection",
                      &mcf->redis_addr);
        redisAsyncFree(ac);
        ngx_http_eventbridge_redis_schedule();
        return;
    }

    rd->ac = ac;
    rd->state = EB_REDIS_CONNECTING;
    rd->setup = 0;

    redisAsyncSetConnectCallback(ac, ngx_http_eventbridge_redis_connected);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_eventbridge_redis_disconnected);

    /* queued now, sent first once connected: every later command of the
     * pipeline runs authenticated and in the right database */
    if (mcf->redis_password.len) {
        redisAsyncCommand(ac, ngx_http_eventbridge_redis_setup_reply, "AUTH",
                          "AUTH %b", mcf->redis_password.data,
                          mcf->redis_password.len);
        rd->setup++;
    }

    if (mcf->redis_db > 0) {
        dblen = ngx_sprintf(db, "%i", mcf->redis_db) - db;
        redisAsyncCommand(ac, ngx_http_eventbridge_redis_setup_reply,
                          "SELECT", "SELECT %b", db, dblen);
        rd->setup++;
    }

    ngx_add_timer(&rd->connect_timeout, mcf->redis_timeout);
}


static void
ngx_http_eventbridge_redis_schedule(void)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->exiting || rd->reconnect.timer_set) {
        return;
    }

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff *= 2;
    if (rd->backoff > EB_REDIS_BACKOFF_MAX) {
        rd->backoff = EB_REDIS_BACKOFF_MAX;
    }
}


static void
ngx_http_eventbridge_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_http_eventbridge_job_t    *job = privdata;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    rd->pending--;

    /* after exit_process began, requests are no longer ours to touch */
    if (job->handler && !rd->exiting) {
        job->handler(job, r);
    }

    ngx_http_eventbridge_job_free(rd, job);
}


static ngx_http_eventbridge_job_t *
ngx_http_eventbridge_job_alloc(ngx_http_eventbridge_redis_t *rd)
{
    ngx_http_eventbridge_job_t  *job;

    job = rd->free_jobs;

    if (job) {
        rd->free_jobs = job->data;
        return job;
    }

    return ngx_alloc(sizeof(ngx_http_eventbridge_job_t), rd->log);
}


/* jobs are reused: at most max_pending of them ever exist */
static void
ngx_http_eventbridge_job_free(ngx_http_eventbridge_redis_t *rd,
    ngx_http_eventbridge_job_t *job)
{
    job->handler = NULL;
    job->data = rd->free_jobs;
    rd->free_jobs = job;
}


/*
 * Sends n commands, already in RESP form. With n > 1 they are wrapped in
 * MULTI/EXEC so that Redis applies all or none of them; the handler then
 * gets EXEC's reply (an array of the commands' replies, or an error).
 * The replies to MULTI and to each QUEUED command need no callback.
 */
ngx_int_t
ngx_http_eventbridge_redis_submit(ngx_str_t *cmds, ngx_uint_t n,
    ngx_http_eventbridge_job_pt handler, void *data,
    ngx_http_eventbridge_job_t **jobp, ngx_http_eventbridge_redis_err_e *err)
{
    ngx_uint_t                     i;
    ngx_http_eventbridge_job_t    *job;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    static char  multi[] = "*1\r\n$5\r\nMULTI\r\n";
    static char  exec[] = "*1\r\n$4\r\nEXEC\r\n";

    if (rd->state != EB_REDIS_READY || rd->ac == NULL) {
        *err = EB_REDIS_ERR_DISCONNECTED;
        return NGX_DECLINED;
    }

    if (rd->pending >= rd->mcf->redis_max_pending) {
        *err = EB_REDIS_ERR_QUEUE_FULL;
        return NGX_DECLINED;
    }

    job = ngx_http_eventbridge_job_alloc(rd);
    if (job == NULL) {
        *err = EB_REDIS_ERR_REPLY;
        return NGX_DECLINED;
    }

    job->handler = handler;
    job->data = data;

    /* hiredis refuses commands only while the connection is going away;
     * a transaction cut short there is never EXECuted */
    if (n > 1
        && redisAsyncFormattedCommand(rd->ac, NULL, NULL, multi,
                                      sizeof(multi) - 1)
           != REDIS_OK)
    {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        if (redisAsyncFormattedCommand(rd->ac,
                                       n > 1 ? NULL
                                             : ngx_http_eventbridge_redis_reply,
                                       n > 1 ? NULL : job,
                                       (char *) cmds[i].data, cmds[i].len)
            != REDIS_OK)
        {
            goto failed;
        }
    }

    if (n > 1
        && redisAsyncFormattedCommand(rd->ac, ngx_http_eventbridge_redis_reply,
                                      job, exec, sizeof(exec) - 1)
           != REDIS_OK)
    {
        goto failed;
    }

    rd->pending++;
    *jobp = job;

    return NGX_OK;

failed:

    ngx_http_eventbridge_job_free(rd, job);
    *err = EB_REDIS_ERR_CONNECTION_LOST;
    return NGX_DECLINED;
}


void
ngx_http_eventbridge_redis_exit_worker(ngx_cycle_t *cycle)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    rd->exiting = 1;

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    if (rd->connect_timeout.timer_set) {
        ngx_del_timer(&rd->connect_timeout);
    }

    if (rd->ac) {
        /* runs the outstanding callbacks with NULL replies: they only
         * free their jobs now that exiting is set */
        redisAsyncFree(rd->ac);
        rd->ac = NULL;
    }
}
