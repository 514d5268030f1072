/*
 * hiredis on ebd's libevent loop: the hooks hiredis' asynchronous API
 * asks of an event library (redisAsyncContext.ev), attached in place of
 * the adapter hiredis ships (adapters/libevent.h), for two reasons
 * measured in bench/dispatch's latency step (docs/performance.md):
 *
 * - That adapter's read event is not persistent: libevent deletes it
 *   each time it fires and hiredis adds it again, two epoll_ctl calls
 *   for every reply read. Here it is added once and stays.
 *
 * - A command is written at the end of the loop turn that queued it
 *   (one write for all the turn's commands on the connection), not on
 *   the next turn's "writable" event: a turn sooner, and no write event
 *   is added and deleted again. The write event is used only while
 *   connecting and when the socket did not take everything.
 */

#include <stdlib.h>
#include <event2/event.h>

#include "ebd_redis_loop.h"


typedef struct {
    redisAsyncContext  *ac;
    struct event       *rev;        /* EV_READ, persistent */
    struct event       *wev;        /* EV_WRITE, persistent */
    struct event       *now;        /* the write at the turn's end */
    unsigned            reading:1;
    unsigned            writing:1;
    unsigned            armed:1;
} ebd_redis_ev_t;


/* the connection whose end-of-turn write runs: hiredis asks for the
 * write event from inside it only when the socket took not all */
static ebd_redis_ev_t  *ebd_redis_writing_now;


static void
ebd_redis_read_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_redis_ev_t  *e = arg;

    redisAsyncHandleRead(e->ac);
}


static void
ebd_redis_write_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_redis_ev_t  *e = arg;

    redisAsyncHandleWrite(e->ac);
}


static void
ebd_redis_now_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_redis_ev_t  *e = arg;

    e->armed = 0;

    /* e may be freed inside (an error drops the connection): not
     * touched after */
    ebd_redis_writing_now = e;
    redisAsyncHandleWrite(e->ac);
    ebd_redis_writing_now = NULL;
}


static void
ebd_redis_add_read(void *data)
{
    ebd_redis_ev_t  *e = data;

    if (!e->reading) {
        e->reading = 1;
        event_add(e->rev, NULL);
    }
}


static void
ebd_redis_del_read(void *data)
{
    ebd_redis_ev_t  *e = data;

    if (e->reading) {
        e->reading = 0;
        event_del(e->rev);
    }
}


static void
ebd_redis_add_write(void *data)
{
    ebd_redis_ev_t  *e = data;

    if (e->writing) {
        return;
    }

    if (e == ebd_redis_writing_now
        || !(e->ac->c.flags & REDIS_CONNECTED))
    {
        /* what the socket did not take, or the connect's completion */
        e->writing = 1;
        event_add(e->wev, NULL);
        return;
    }

    if (!e->armed) {
        e->armed = 1;
        event_active(e->now, EV_TIMEOUT, 0);
    }
}


static void
ebd_redis_del_write(void *data)
{
    ebd_redis_ev_t  *e = data;

    if (e->writing) {
        e->writing = 0;
        event_del(e->wev);
    }
}


static void
ebd_redis_cleanup(void *data)
{
    ebd_redis_ev_t  *e = data;

    if (ebd_redis_writing_now == e) {
        ebd_redis_writing_now = NULL;
    }

    event_free(e->rev);
    event_free(e->wev);
    event_free(e->now);
    free(e);
}


int
ebd_redis_attach(redisAsyncContext *ac, struct event_base *base)
{
    ebd_redis_ev_t  *e;

    if (ac->ev.data != NULL) {
        return -1;
    }

    e = calloc(1, sizeof(ebd_redis_ev_t));
    if (e == NULL) {
        return -1;
    }

    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST,
                       ebd_redis_read_handler, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE | EV_PERSIST,
                       ebd_redis_write_handler, e);
    e->now = event_new(base, -1, 0, ebd_redis_now_handler, e);

    if (e->rev == NULL || e->wev == NULL || e->now == NULL) {
        if (e->rev) {
            event_free(e->rev);
        }
        if (e->wev) {
            event_free(e->wev);
        }
        if (e->now) {
            event_free(e->now);
        }
        free(e);
        return -1;
    }

    ac->ev.addRead = ebd_redis_add_read;
    ac->ev.delRead = ebd_redis_del_read;
    ac->ev.addWrite = ebd_redis_add_write;
    ac->ev.delWrite = ebd_redis_del_write;
    ac->ev.cleanup = ebd_redis_cleanup;
    ac->ev.data = e;

    /* as hiredis' own adapter: reading at once, writing for the
     * connect's completion */
    ebd_redis_add_read(e);
    ebd_redis_add_write(e);

    return 0;
}
