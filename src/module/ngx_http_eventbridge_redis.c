/*
 * The worker's Redis client as requests see it: submit() takes the
 * commands of one transaction for one slot and answers once, whatever
 * happens in between. A job keeps its commands (request pool) and may be
 * sent several times: after MOVED (the map is corrected at once and
 * refreshed), ASK (ASKING before MULTI, the map unchanged), TRYAGAIN and
 * RETRY errors (after a short delay), READONLY/MASTERDOWN/LOADING/
 * CLUSTERDOWN or a lost connection (after the topology was asked again).
 * A job whose node is not ready waits in a queue that counts against
 * eventbridge_redis_max_pending (and _bytes); the request's own timer
 * bounds it all.
 *
 * A transaction is applied whole or not at all: a resend may duplicate an
 * event (consumers de-duplicate by id), never half-apply it.
 *
 * One attempt (the commands, their replies, what to do next) is in
 * ngx_http_eventbridge_redis_job.c.
 */

#include "ngx_http_eventbridge_redis.h"


static ngx_http_eventbridge_node_t *ngx_http_eventbridge_redis_route(
    ngx_http_eventbridge_job_t *job);
static ngx_uint_t ngx_http_eventbridge_redis_hopeless(
    ngx_http_eventbridge_node_t *node);
static void ngx_http_eventbridge_redis_refresh_handler(ngx_event_t *ev);


ngx_http_eventbridge_redis_t  ngx_http_eventbridge_redis;


ngx_int_t
ngx_http_eventbridge_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_eventbridge_main_conf_t *mcf)
{
    ngx_http_eventbridge_node_t   *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    ngx_memzero(rd, sizeof(ngx_http_eventbridge_redis_t));

    rd->mcf = mcf;
    rd->log = cycle->log;
    ngx_queue_init(&rd->waiting);

    if (ngx_array_init(&rd->nodes, cycle->pool, 8,
                       sizeof(ngx_http_eventbridge_node_t *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rd->refresh.handler = ngx_http_eventbridge_redis_refresh_handler;
    rd->refresh.log = cycle->log;
    rd->refresh.data = rd;
    rd->refresh.cancelable = 1;

    switch (mcf->redis_mode) {

    case EB_REDIS_SINGLE:
        node = ngx_pcalloc(cycle->pool, sizeof(ngx_http_eventbridge_node_t));
        if (node == NULL) {
            return NGX_ERROR;
        }

        ngx_http_eventbridge_node_init(node,
                                       mcf->redis_unix
                                       ? NULL : mcf->redis_addrs->elts,
                                       mcf->redis_unix, cycle->log);
        rd->primary = node;
        ngx_http_eventbridge_node_connect(node);
        break;

    case EB_REDIS_CLUSTER:
        if (ngx_http_eventbridge_cluster_init() != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_eventbridge_redis_refresh();
        break;

    default: /* EB_REDIS_SENTINEL */
        ngx_http_eventbridge_redis_refresh();
        break;
    }

    return NGX_OK;
}


void
ngx_http_eventbridge_redis_exit_worker(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_http_eventbridge_job_t    *job;
    ngx_http_eventbridge_node_t  **nodes;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->mcf == NULL) {
        return;
    }

    /* requests are no longer ours to touch: callbacks only free jobs */
    rd->exiting = 1;

    if (rd->refresh.timer_set) {
        ngx_del_timer(&rd->refresh);
    }

    ngx_http_eventbridge_query_cancel(&rd->query);

    while (!ngx_queue_empty(&rd->waiting)) {
        q = ngx_queue_head(&rd->waiting);
        job = ngx_queue_data(q, ngx_http_eventbridge_job_t, queue);
        ngx_queue_remove(q);
        job->waiting = 0;
        job->handler = NULL;
        ngx_http_eventbridge_job_free(job);
    }

    if (rd->primary && rd->mcf->redis_mode == EB_REDIS_SINGLE) {
        ngx_http_eventbridge_node_close(rd->primary);
    }

    nodes = rd->nodes.elts;
    for (i = 0; i < rd->nodes.nelts; i++) {
        ngx_http_eventbridge_node_close(nodes[i]);
    }

    ngx_http_eventbridge_cluster_exit();

    /* jobs held by delay timers or free */
    while (rd->free_jobs) {
        job = rd->free_jobs;
        rd->free_jobs = job->data;
        ngx_free(job);
    }
}


/* The node of an address (cluster and sentinel), made on first use. */
ngx_http_eventbridge_node_t *
ngx_http_eventbridge_redis_node_get(const eb_redis_addr_t *addr)
{
    ngx_uint_t                     i;
    ngx_http_eventbridge_node_t   *node, **nodes, **slot;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    nodes = rd->nodes.elts;

    for (i = 0; i < rd->nodes.nelts; i++) {
        if (nodes[i]->addr.port == addr->port
            && ngx_strcmp(nodes[i]->addr.host, addr->host) == 0)
        {
            return nodes[i];
        }
    }

    if (rd->nodes.nelts >= 2 * EB_REDIS_MAX_NODES) {
        return NULL;
    }

    node = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_http_eventbridge_node_t));
    slot = ngx_array_push(&rd->nodes);
    if (node == NULL || slot == NULL) {
        return NULL;
    }

    ngx_http_eventbridge_node_init(node, addr, NULL, rd->log);
    node->role_check = (rd->mcf->redis_mode == EB_REDIS_SENTINEL);
    *slot = node;

    return node;
}


/* --- jobs ------------------------------------------------------------ */


static ngx_http_eventbridge_job_t *
ngx_http_eventbridge_job_alloc(void)
{
    ngx_http_eventbridge_job_t    *job;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    job = rd->free_jobs;

    if (job) {
        rd->free_jobs = job->data;

    } else {
        job = ngx_alloc(sizeof(ngx_http_eventbridge_job_t), rd->log);
        if (job == NULL) {
            return NULL;
        }
    }

    ngx_memzero(job, sizeof(ngx_http_eventbridge_job_t));

    job->delay.log = rd->log;
    job->delay.data = job;
    job->delay.cancelable = 1;

    return job;
}


/* jobs are reused: at most max_pending of them are live */
void
ngx_http_eventbridge_job_free(ngx_http_eventbridge_job_t *job)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (job->delay.timer_set) {
        ngx_del_timer(&job->delay);
    }

    rd->pending--;
    rd->pending_bytes -= job->bytes;

    job->handler = NULL;
    job->data = rd->free_jobs;
    rd->free_jobs = job;
}


ngx_int_t
ngx_http_eventbridge_redis_submit(ngx_uint_t slot, ngx_str_t *cmds,
    ngx_uint_t n, ngx_http_eventbridge_job_pt handler, void *data,
    ngx_http_eventbridge_job_t **jobp, ngx_http_eventbridge_redis_err_e *err)
{
    return ngx_http_eventbridge_redis_submit_reply(slot, cmds, n, 0, NULL,
                                                   handler, data, jobp, err);
}


ngx_int_t
ngx_http_eventbridge_redis_submit_reply(ngx_uint_t slot, ngx_str_t *cmds,
    ngx_uint_t n, ngx_uint_t read, ngx_http_eventbridge_reply_pt reply,
    ngx_http_eventbridge_job_pt handler, void *data,
    ngx_http_eventbridge_job_t **jobp, ngx_http_eventbridge_redis_err_e *err)
{
    size_t                         bytes;
    ngx_uint_t                     i;
    ngx_http_eventbridge_job_t    *job;
    ngx_http_eventbridge_node_t   *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    /* what a job holds (its request's body, event and commands) grows
     * with its commands: both their count and their bytes are bounded;
     * a lone job always goes, or a big event could never be sent */
    bytes = 0;

    for (i = 0; i < n; i++) {
        bytes += cmds[i].len;
    }

    if (rd->pending >= rd->mcf->redis_max_pending
        || (rd->pending
            && rd->pending_bytes + bytes > rd->mcf->redis_max_pending_bytes))
    {
        *err = EB_REDIS_ERR_QUEUE_FULL;
        return NGX_DECLINED;
    }

    job = ngx_http_eventbridge_job_alloc();
    if (job == NULL) {
        *err = EB_REDIS_ERR_REPLY;
        return NGX_DECLINED;
    }

    job->cmds = cmds;
    job->n = n;
    job->bytes = bytes;
    job->slot = slot;
    job->read = read ? 1 : 0;
    job->reply = reply;

    rd->pending++;
    rd->pending_bytes += bytes;

    node = ngx_http_eventbridge_redis_route(job);

    if (node && node->state == EB_NODE_READY
        && ngx_http_eventbridge_job_send(job, node) == NGX_OK)
    {
        goto sent;
    }

    /* nothing to wait for: refused at once, as a down server always was */
    if (ngx_http_eventbridge_redis_hopeless(node)) {
        ngx_http_eventbridge_job_free(job);
        *err = EB_REDIS_ERR_DISCONNECTED;
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&rd->waiting, &job->queue);
    job->waiting = 1;

sent:

    job->handler = handler;
    job->data = data;
    *jobp = job;

    return NGX_OK;
}


void
ngx_http_eventbridge_redis_on_reply(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_reply_pt reply)
{
    job->reply = reply;
}


void
ngx_http_eventbridge_redis_cancel(ngx_http_eventbridge_job_t *job)
{
    job->handler = NULL;

    if (job->waiting) {
        ngx_queue_remove(&job->queue);
        job->waiting = 0;
        ngx_http_eventbridge_job_free(job);
        return;
    }

    if (job->delay.timer_set) {
        ngx_http_eventbridge_job_free(job);
    }

    /* in flight: freed by its last reply */
}


/* The node a job goes to; connects it when it is down. NULL: the
 * topology does not say yet. */
static ngx_http_eventbridge_node_t *
ngx_http_eventbridge_redis_route(ngx_http_eventbridge_job_t *job)
{
    ngx_http_eventbridge_node_t   *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (job->asking) {
        node = ngx_http_eventbridge_redis_node_get(&job->ask_to);

    } else if (rd->mcf->redis_mode == EB_REDIS_CLUSTER) {
        node = ngx_http_eventbridge_cluster_route(job->slot);

    } else {
        node = rd->primary;
    }

    if (node && node->state == EB_NODE_DOWN && !node->reconnect.timer_set) {
        ngx_http_eventbridge_node_connect(node);
    }

    return node;
}


/* A job for node is refused rather than queued: a single server that
 * is down (it reconnects with backoff), or a topology nobody could give
 * in a whole round of queries. A node being connected is waited for. */
static ngx_uint_t
ngx_http_eventbridge_redis_hopeless(ngx_http_eventbridge_node_t *node)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (node && node->state != EB_NODE_DOWN) {
        return 0;
    }

    if (rd->mcf->redis_mode == EB_REDIS_SINGLE) {
        return 1;
    }

    return rd->unavailable;
}


/* Sends the job to where it belongs now, or lets it wait. */
void
ngx_http_eventbridge_redis_dispatch(ngx_http_eventbridge_job_t *job)
{
    ngx_http_eventbridge_node_t   *node;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    node = ngx_http_eventbridge_redis_route(job);

    if (node && node->state == EB_NODE_READY
        && ngx_http_eventbridge_job_send(job, node) == NGX_OK)
    {
        return;
    }

    if (ngx_http_eventbridge_redis_hopeless(node)) {
        ngx_http_eventbridge_redis_fail(job, EB_REDIS_ERR_DISCONNECTED);
        return;
    }

    ngx_queue_insert_tail(&rd->waiting, &job->queue);
    job->waiting = 1;
}


/* A node became ready, the map changed: jobs that wait try again. */
void
ngx_http_eventbridge_redis_flush(void)
{
    ngx_queue_t                    list, *q;
    ngx_http_eventbridge_job_t    *job;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (ngx_queue_empty(&rd->waiting) || rd->exiting) {
        return;
    }

    /* those that still cannot go are queued again, at the tail */
    list = rd->waiting;
    list.next->prev = &list;
    list.prev->next = &list;
    ngx_queue_init(&rd->waiting);

    while (!ngx_queue_empty(&list)) {
        q = ngx_queue_head(&list);
        job = ngx_queue_data(q, ngx_http_eventbridge_job_t, queue);
        ngx_queue_remove(q);
        job->waiting = 0;

        ngx_http_eventbridge_redis_dispatch(job);
    }
}


static void
ngx_http_eventbridge_redis_delay_handler(ngx_event_t *ev)
{
    ngx_http_eventbridge_redis_dispatch(ev->data);
}


void
ngx_http_eventbridge_redis_later(ngx_http_eventbridge_job_t *job,
    ngx_msec_t delay)
{
    ngx_http_eventbridge_count_redis_event(EB_REDIS_EV_RETRY);

    job->delay.handler = ngx_http_eventbridge_redis_delay_handler;
    ngx_add_timer(&job->delay, delay);
}


void
ngx_http_eventbridge_redis_fail(ngx_http_eventbridge_job_t *job,
    ngx_http_eventbridge_redis_err_e err)
{
    if (!job->error) {
        ngx_str_null(&job->res.text);
    }

    job->res.err = err;

    if (job->handler) {
        job->handler(job->data, &job->res);
    }

    ngx_http_eventbridge_job_free(job);
}


/* --- connections and topology ---------------------------------------- */


void
ngx_http_eventbridge_redis_node_up(ngx_http_eventbridge_node_t *node)
{
    ngx_http_eventbridge_redis_flush();
}


void
ngx_http_eventbridge_redis_node_down(ngx_http_eventbridge_node_t *node)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->exiting) {
        return;
    }

    if (rd->mcf->redis_mode == EB_REDIS_SINGLE) {
        /* jobs waiting for it are answered now */
        ngx_http_eventbridge_redis_flush();
        return;
    }

    /* a failover, a migration, or just a restart: ask */
    ngx_http_eventbridge_redis_refresh();
}


static void
ngx_http_eventbridge_redis_refresh_start(void)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    rd->refreshing = 1;
    rd->tries = 0;
    rd->asked_live = 0;
    rd->last_refresh = ngx_current_msec;

    ngx_http_eventbridge_count_redis_event(EB_REDIS_EV_REFRESH);

    if (rd->mcf->redis_mode == EB_REDIS_CLUSTER) {
        ngx_http_eventbridge_cluster_query();

    } else {
        ngx_http_eventbridge_sentinel_query();
    }
}


static void
ngx_http_eventbridge_redis_refresh_handler(ngx_event_t *ev)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (!rd->refreshing && !rd->exiting) {
        ngx_http_eventbridge_redis_refresh_start();
    }
}


void
ngx_http_eventbridge_redis_refresh(void)
{
    ngx_msec_int_t                 elapsed;
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    if (rd->mcf->redis_mode == EB_REDIS_SINGLE || rd->exiting
        || rd->refreshing || rd->refresh.timer_set)
    {
        return;                 /* the one coming will do */
    }

    elapsed = (ngx_msec_int_t) (ngx_current_msec - rd->last_refresh);

    if (rd->last_refresh && elapsed >= 0 && elapsed < EB_REDIS_REFRESH_MIN) {
        ngx_add_timer(&rd->refresh, EB_REDIS_REFRESH_MIN - elapsed);
        return;
    }

    ngx_http_eventbridge_redis_refresh_start();
}


/* A query round ended (the cluster and sentinel files call it). */
void
ngx_http_eventbridge_redis_refreshed(ngx_uint_t ok)
{
    ngx_http_eventbridge_redis_t  *rd = &ngx_http_eventbridge_redis;

    rd->refreshing = 0;

    if (rd->exiting) {
        return;
    }

    if (ok) {
        rd->unavailable = 0;
        rd->logged_auth = 0;
        ngx_http_eventbridge_redis_flush();
        return;
    }

    /* nobody answered: jobs that wait are refused, and new ones at once,
     * until a later round succeeds */
    rd->unavailable = 1;
    ngx_http_eventbridge_redis_flush();

    if (!rd->refresh.timer_set) {
        ngx_add_timer(&rd->refresh, EB_REDIS_REFRESH_IDLE);
    }
}
