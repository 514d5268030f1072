/*
 * One attempt of a job: [ASKING] [MULTI] commands... [EXEC] on one node,
 * every reply through one callback, then (eventbridge_redis_wait) the
 * WAIT that covers it (ngx_http_eventbridge_redis_wait.c), then the
 * outcome: the answer, or where and when to send it again.
 *
 * Replies come in order, and hiredis answers every queued command (with
 * NULL when the connection goes), so an attempt is over when its last
 * reply came: attempts of one job never overlap.
 */

#include "ngx_http_eventbridge_redis.h"


static u_char  ngx_http_eventbridge_multi[] = "*1\r\n$5\r\nMULTI\r\n";
static u_char  ngx_http_eventbridge_exec[] = "*1\r\n$4\r\nEXEC\r\n";
static u_char  ngx_http_eventbridge_asking[] = "*1\r\n$6\r\nASKING\r\n";


static void
ngx_http_eventbridge_redis_error(ngx_http_eventbridge_job_t *job,
    const char *str, size_t len, ngx_uint_t in_exec)
{
    if (job->error) {
        return;                 /* the first one tells why */
    }

    job->error = 1;
    job->in_exec = in_exec;
    job->kind = eb_redis_error_parse(str, len, &job->moved_slot,
                                     &job->moved_to);

    job->res.text.len = ngx_min(len, sizeof(job->text));
    ngx_memcpy(job->text, str, job->res.text.len);
    job->res.text.data = job->text;
}


/*
 * Every reply of an attempt, in order: [ASKING] [MULTI] commands... [EXEC].
 * The errors given at queue time (-MOVED, -ASK, -TRYAGAIN before
 * EXEC answers -EXECABORT) are kept: they say where to send it again.
 */
static void
ngx_http_eventbridge_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                  *reply = r, *e;
    ngx_uint_t                   i, k, first, last_cmd, exec;
    ngx_http_eventbridge_job_t  *job = privdata;

    (void) ngx_http_eventbridge_node_replied(ac, reply);

    k = job->seen++;

    first = (job->asking ? 1 : 0) + (job->n > 1 ? 1 : 0);
    last_cmd = first + job->n - 1;
    exec = job->n > 1 ? last_cmd + 1 : last_cmd;

    if (reply == NULL) {
        job->lost = 1;
        goto next;
    }

    if (k == exec) {
        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_http_eventbridge_redis_error(job, reply->str, reply->len, 0);

        } else if (reply->type == REDIS_REPLY_ARRAY) {
            job->applied = 1;

            /* Redis does not roll back a command that fails while EXEC
             * runs (WRONGTYPE on a key made by hand): not resent. A read
             * job's reader takes such errors one by one (XINFO on a
             * stream not made yet). */
            for (i = 0; !job->read && i < reply->elements; i++) {
                e = reply->element[i];
                if (e->type == REDIS_REPLY_ERROR) {
                    ngx_http_eventbridge_redis_error(job, e->str, e->len, 1);
                    break;
                }
            }

            /* a script's answer (the dedupe EVAL): read while it is here */
            if ((job->n == 1 || job->read) && job->reply && job->handler
                && !job->error
                && !ngx_http_eventbridge_redis.exiting)
            {
                job->reply(job->data, reply);
            }

        } else if (reply->type == REDIS_REPLY_NIL) {
            ngx_http_eventbridge_redis_error(job, "transaction aborted",
                                             sizeof("transaction aborted") - 1,
                                             1);
        } else {
            job->applied = 1;   /* a single command's reply */

            if (job->read && job->reply && job->handler
                && !ngx_http_eventbridge_redis.exiting)
            {
                job->reply(job->data, reply);
            }
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_eventbridge_redis_error(job, reply->str, reply->len, 0);
    }

next:

    if (job->seen == job->replies && !ngx_http_eventbridge_wait_pending(job)) {
        ngx_http_eventbridge_job_done(job);
    }
}


static ngx_int_t
ngx_http_eventbridge_redis_cmd(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_node_t *node, u_char *cmd, size_t len)
{
    if (ngx_http_eventbridge_node_send(node, ngx_http_eventbridge_redis_reply,
                                       job, cmd, len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    job->replies++;

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_job_send(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_node_t *node)
{
    ngx_uint_t                         i;
    ngx_http_eventbridge_main_conf_t  *mcf = ngx_http_eventbridge_redis.mcf;

    job->node = node;
    job->replies = 0;
    job->seen = 0;
    job->lost = 0;
    job->error = 0;
    job->applied = 0;
    job->in_exec = 0;
    job->waited = 0;
    job->acked = 0;
    job->attempts++;

    /* ASKING covers the next command only: put before MULTI, it covers
     * the whole transaction */
    if (job->asking
        && ngx_http_eventbridge_redis_cmd(job, node,
                                          ngx_http_eventbridge_asking,
                                          sizeof(ngx_http_eventbridge_asking)
                                          - 1)
           != NGX_OK)
    {
        goto failed;
    }

    if (job->n > 1
        && ngx_http_eventbridge_redis_cmd(job, node,
                                          ngx_http_eventbridge_multi,
                                          sizeof(ngx_http_eventbridge_multi)
                                          - 1)
           != NGX_OK)
    {
        goto failed;
    }

    for (i = 0; i < job->n; i++) {
        if (ngx_http_eventbridge_redis_cmd(job, node, job->cmds[i].data,
                                           job->cmds[i].len)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (job->n > 1
        && ngx_http_eventbridge_redis_cmd(job, node,
                                          ngx_http_eventbridge_exec,
                                          sizeof(ngx_http_eventbridge_exec)
                                          - 1)
           != NGX_OK)
    {
        goto failed;
    }

    if (mcf->redis_wait && !job->read) {
        ngx_http_eventbridge_wait_add(job, node);
    }

    return NGX_OK;

failed:

    /* hiredis refuses commands only while the connection goes away: a
     * transaction cut short there is never EXECuted. What was queued
     * comes back with NULL replies and ends the attempt as lost. */
    if (job->replies) {
        job->lost = 1;
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* The attempt's last reply (or its WAIT's) came: answer, or send it
 * again. */
void
ngx_http_eventbridge_job_done(ngx_http_eventbridge_job_t *job)
{
    ngx_http_eventbridge_redis_t      *rd = &ngx_http_eventbridge_redis;
    ngx_http_eventbridge_main_conf_t  *mcf = rd->mcf;

    job->node = NULL;

    if (job->handler == NULL || rd->exiting) {
        ngx_http_eventbridge_job_free(job);
        return;
    }

    if (job->applied && !job->error) {
        job->asking = 0;

        if (mcf->redis_wait && !job->read && (!job->waited
                                || job->acked < (long long) mcf->redis_wait))
        {
            /* the event is there but not on enough replicas: not sent
             * again, it could be duplicated for nothing */
            ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                          "eventbridge: redis WAIT %ui: %s%L replicas "
                          "acknowledged in %Mms", mcf->redis_wait,
                          job->waited ? "" : "no answer, ", job->acked,
                          mcf->redis_wait_timeout);
            ngx_http_eventbridge_count_redis_event(EB_REDIS_EV_WAIT_FAILED);
            ngx_http_eventbridge_redis_fail(job, EB_REDIS_ERR_WAIT);

            /* no replica follows it: perhaps no longer the primary (a
             * second failover), ask; in single mode this does nothing */
            ngx_http_eventbridge_redis_refresh();
            return;
        }

        job->handler(job->data, NULL);
        ngx_http_eventbridge_job_free(job);
        return;
    }

    if (job->applied || job->in_exec) {
        ngx_http_eventbridge_redis_fail(job, EB_REDIS_ERR_REPLY);
        return;
    }

    if (!job->error) {
        /* connection lost before the transaction's outcome was known:
         * with nowhere else to go (single), answer now */
        if (mcf->redis_mode == EB_REDIS_SINGLE) {
            ngx_http_eventbridge_redis_fail(job, EB_REDIS_ERR_CONNECTION_LOST);
            return;
        }

        job->asking = 0;
        ngx_http_eventbridge_count_redis_event(EB_REDIS_EV_RETRY);
        ngx_http_eventbridge_redis_refresh();
        ngx_http_eventbridge_redis_dispatch(job);
        return;
    }

    if (mcf->redis_mode != EB_REDIS_CLUSTER
        && (job->kind == EB_REDIS_ERROR_MOVED
            || job->kind == EB_REDIS_ERROR_ASK))
    {
        job->kind = EB_REDIS_ERROR_FATAL;
    }

    job->asking = 0;

    switch (job->kind) {

    case EB_REDIS_ERROR_MOVED:
        ngx_http_eventbridge_count_redis_event(EB_REDIS_EV_MOVED);
        ngx_http_eventbridge_cluster_moved(job->moved_slot, &job->moved_to);
        ngx_http_eventbridge_redis_refresh();
        break;

    case EB_REDIS_ERROR_ASK:
        ngx_http_eventbridge_count_redis_event(EB_REDIS_EV_ASK);
        job->asking = 1;
        job->ask_to = job->moved_to;
        break;

    case EB_REDIS_ERROR_TRYAGAIN:
        ngx_http_eventbridge_redis_later(job, EB_REDIS_TRYAGAIN);
        return;

    case EB_REDIS_ERROR_REFRESH:
        ngx_http_eventbridge_redis_refresh();
        ngx_http_eventbridge_redis_later(job, EB_REDIS_RETRY);
        return;

    case EB_REDIS_ERROR_RETRY:
        ngx_http_eventbridge_redis_later(job, EB_REDIS_RETRY);
        return;

    default: /* EB_REDIS_ERROR_FATAL */
        ngx_http_eventbridge_redis_fail(job, EB_REDIS_ERR_REPLY);
        return;
    }

    /* redirections follow at once, unless they go round in circles */
    if (job->attempts > 4) {
        ngx_http_eventbridge_redis_later(job, EB_REDIS_TRYAGAIN);
        return;
    }

    ngx_http_eventbridge_redis_dispatch(job);
}
