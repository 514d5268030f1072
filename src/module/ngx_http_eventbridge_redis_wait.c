/*
 * eventbridge_redis_wait: one WAIT at a time per connection, covering
 * every transaction sent on it before the WAIT.
 *
 * Redis blocks a client in WAIT: the commands behind it are not read
 * until it returns. A WAIT per request serialises a connection on the
 * replicas' acknowledgements; when no replica follows (a primary just
 * promoted, its replicas still syncing) each takes the whole WAIT
 * timeout and the queue behind them only grows, so that every request
 * times out long after the replicas are back. WAIT counts the replicas
 * that reached the connection's last write, so one WAIT answers for all
 * the transactions sent before it: while one is out, the jobs sent in the
 * meantime gather in wait_next and its reply sends the next one for all
 * of them. A connection then holds at most one WAIT, and under load one
 * WAIT answers many requests.
 */

#include "ngx_http_eventbridge_redis.h"


static void ngx_http_eventbridge_wait_send(ngx_http_eventbridge_node_t *node);


/* A job's commands went out on the node: its WAIT follows, now or as
 * soon as the one out returns. */
void
ngx_http_eventbridge_wait_add(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_node_t *node)
{
    job->in_wait = 1;
    ngx_queue_insert_tail(&node->wait_next, &job->wait_link);

    if (!node->wait_busy) {
        ngx_http_eventbridge_wait_send(node);
    }
}


/* The job's own replies are in. Returns 1 if a WAIT still has to
 * answer for it (the transaction went through), 0 when it is done. */
ngx_uint_t
ngx_http_eventbridge_wait_pending(ngx_http_eventbridge_job_t *job)
{
    if (!job->in_wait) {
        return 0;
    }

    if (job->applied && !job->error && !job->lost) {
        return 1;
    }

    ngx_queue_remove(&job->wait_link);
    job->in_wait = 0;

    return 0;
}


/* Finishes the jobs of a list: acked is the WAIT's answer, or -1 when it
 * gave none. Jobs whose own replies are still due (their connection is
 * going) are left to them. */
static void
ngx_http_eventbridge_wait_finish(ngx_queue_t *list, long long acked)
{
    ngx_queue_t                 *q;
    ngx_http_eventbridge_job_t  *job;

    while (!ngx_queue_empty(list)) {
        q = ngx_queue_head(list);
        job = ngx_queue_data(q, ngx_http_eventbridge_job_t, wait_link);
        ngx_queue_remove(q);
        job->in_wait = 0;

        if (job->seen != job->replies) {
            continue;
        }

        if (acked >= 0) {
            job->waited = 1;
            job->acked = acked;
        }

        ngx_http_eventbridge_job_done(job);
    }
}


static void
ngx_http_eventbridge_wait_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_queue_t                   sent;
    ngx_http_eventbridge_node_t  *node = privdata;

    (void) ngx_http_eventbridge_node_replied(ac, reply);

    node->wait_busy = 0;

    /* taken off the node first: a job answered here may send again */
    ngx_queue_init(&sent);

    if (!ngx_queue_empty(&node->wait_sent)) {
        sent = node->wait_sent;
        sent.next->prev = &sent;
        sent.prev->next = &sent;
        ngx_queue_init(&node->wait_sent);
    }

    if (reply == NULL || node->ac != ac) {
        /* the connection is going: what waits for a WAIT on it never
         * gets one (new commands are refused on it until it is gone) */
        if (!ngx_queue_empty(&node->wait_next)) {
            ngx_queue_add(&sent, &node->wait_next);
            ngx_queue_init(&node->wait_next);
        }

        ngx_http_eventbridge_wait_finish(&sent, -1);
        return;
    }

    ngx_http_eventbridge_wait_finish(&sent,
                                     reply->type == REDIS_REPLY_INTEGER
                                     ? reply->integer : -1);

    if (!node->wait_busy && !ngx_queue_empty(&node->wait_next)) {
        ngx_http_eventbridge_wait_send(node);
    }
}


static void
ngx_http_eventbridge_wait_send(ngx_http_eventbridge_node_t *node)
{
    ngx_http_eventbridge_main_conf_t  *mcf = ngx_http_eventbridge_redis.mcf;

    if (ngx_http_eventbridge_node_send(node, ngx_http_eventbridge_wait_reply,
                                       node, mcf->redis_wait_cmd.data,
                                       mcf->redis_wait_cmd.len)
        != NGX_OK)
    {
        /* the connection is going: the jobs' own replies come back NULL
         * and end their attempts as lost */
        return;
    }

    /* wait_sent is empty here: one WAIT out at a time */
    ngx_queue_add(&node->wait_sent, &node->wait_next);
    ngx_queue_init(&node->wait_next);
    node->wait_busy = 1;
}
