/*
 * Drives a hiredis async context from nginx's event loop: hiredis asks
 * for read/write interest through its ev hooks, and we map them onto an
 * ngx_connection_t built around the context's socket.
 *
 * Events are level-triggered so that one redisAsyncHandleRead() per
 * readiness (hiredis reads at most 16 KB a call) never strands buffered
 * replies, whatever event method nginx uses.
 *
 * Writes are not watched through the kernel at first: a command only
 * posts the write event, which nginx runs after the current batch of
 * I/O events, so every command issued in one loop iteration leaves in one
 * write() with no epoll_ctl() per request. Only when the socket is full
 * (hiredis still has output after writing) is the write event watched.
 */

#include "ngx_http_eventbridge.h"


static void ngx_http_eventbridge_redis_read(ngx_event_t *ev);
static void ngx_http_eventbridge_redis_write(ngx_event_t *ev);
static void ngx_http_eventbridge_redis_add_read(void *data);
static void ngx_http_eventbridge_redis_del_read(void *data);
static void ngx_http_eventbridge_redis_add_write(void *data);
static void ngx_http_eventbridge_redis_del_write(void *data);
static void ngx_http_eventbridge_redis_cleanup(void *data);


ngx_int_t
ngx_http_eventbridge_redis_attach(redisAsyncContext *ac, ngx_log_t *log)
{
    ngx_connection_t  *c;

    if (ac->ev.data != NULL) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    c->read->handler = ngx_http_eventbridge_redis_read;
    c->write->handler = ngx_http_eventbridge_redis_write;
    c->read->log = log;
    c->write->log = log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_eventbridge_redis_add_read;
    ac->ev.delRead = ngx_http_eventbridge_redis_del_read;
    ac->ev.addWrite = ngx_http_eventbridge_redis_add_write;
    ac->ev.delWrite = ngx_http_eventbridge_redis_del_write;
    ac->ev.cleanup = ngx_http_eventbridge_redis_cleanup;

    return NGX_OK;
}


static void
ngx_http_eventbridge_redis_read(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    /* may free c (through cleanup): touch nothing afterwards */
    redisAsyncHandleRead(c->data);
}


static void
ngx_http_eventbridge_redis_write(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    /* addWrite from inside the handler means "socket full": watch it */
    c->write->ready = 1;
    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_eventbridge_redis_add(ngx_event_t *ev, ngx_int_t event)
{
    if (ev->active) {
        return;
    }

    if (ngx_add_event(ev, event, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "eventbridge: cannot watch the redis connection");
    }
}


static void
ngx_http_eventbridge_redis_del(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t flags)
{
    if (ev->posted) {
        ngx_delete_posted_event(ev);
    }

    if (!ev->active) {
        return;
    }

    if (ngx_del_event(ev, event, flags) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "eventbridge: cannot unwatch the redis connection");
    }
}


static void
ngx_http_eventbridge_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_eventbridge_redis_add(c->read, NGX_READ_EVENT);
}


static void
ngx_http_eventbridge_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_eventbridge_redis_del(c->read, NGX_READ_EVENT, 0);
}


static void
ngx_http_eventbridge_redis_add_write(void *data)
{
    ngx_connection_t   *c = data;
    redisAsyncContext  *ac = c->data;

    /* a connect in progress completes when the kernel says writable;
     * from our write handler it means output is left over */
    if (!(ac->c.flags & REDIS_CONNECTED) || c->write->ready) {
        ngx_http_eventbridge_redis_add(c->write, NGX_WRITE_EVENT);
        return;
    }

    if (!c->write->posted && !c->write->active) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


static void
ngx_http_eventbridge_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    c->write->ready = 0;
    ngx_http_eventbridge_redis_del(c->write, NGX_WRITE_EVENT, 0);
}


/* hiredis is about to close the socket: give the connection back */
static void
ngx_http_eventbridge_redis_cleanup(void *data)
{
    ngx_connection_t   *c = data;
    redisAsyncContext  *ac = c->data;

    ngx_http_eventbridge_redis_del(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    ngx_http_eventbridge_redis_del(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ac->ev.data = NULL;

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}
