/*
 * The --metrics listener: one request per connection (HTTP/1.0 and 1.1),
 * GET or HEAD /metrics answered with the page, anything else 404, 405,
 * 400, 414, 431 or 505, then the connection is closed.
 *
 * Not evhttp: libevent 2.1 can bound neither the number of its
 * connections nor tell when one ends, and idle connections nobody
 * bounds would take the descriptors ebd needs for Redis and its
 * targets. Here a worker holds at most EBD_HTTP_CONNS connections
 * (more are closed at once), a request's head is at most
 * EBD_MR_HEAD_MAX bytes (its body is never read) and must arrive within
 * EBD_HTTP_READ_S, and the answer must be taken within EBD_HTTP_WRITE_S.
 * What the head says, and what it gets, is ebd_metrics_request.c's.
 *
 * Every worker accepts on the one listening socket made before the
 * fork; whichever takes a connection answers from the shared counters.
 */

#include <stdio.h>
#include <stdlib.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "ebd_log.h"
#include "ebd_metrics.h"
#include "ebd_metrics_request.h"


#define EBD_HTTP_CONNS    16
#define EBD_HTTP_READ_S   5
#define EBD_HTTP_WRITE_S  10


typedef struct ebd_http_conn_s  ebd_http_conn_t;

struct ebd_http_conn_s {
    struct bufferevent     *bev;
    ebd_http_conn_t        *prev, *next;
    ebd_metrics_request_t   rq;
    int                     answered;
};


static struct evconnlistener  *ebd_mh_listener;
static ebd_http_conn_t        *ebd_mh_conns;
static unsigned                ebd_mh_nconns;


static void
ebd_mh_close(ebd_http_conn_t *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        ebd_mh_conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }

    ebd_mh_nconns--;
    bufferevent_free(c->bev);
    free(c);
}


static void
ebd_mh_answer(ebd_http_conn_t *c, int status, const char *reason,
    const char *type, const char *extra, const unsigned char *body,
    size_t len, int head_only)
{
    struct evbuffer  *out = bufferevent_get_output(c->bev);

    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
                        "Content-Type: %s\r\n"
                        "Content-Length: %zu\r\n"
                        "%s"
                        "Connection: close\r\n\r\n",
                        status, reason, type, len, extra);
    if (!head_only && len) {
        evbuffer_add(out, body, len);
    }

    /* nothing more is read: the connection ends with this answer */
    c->answered = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_enable(c->bev, EV_WRITE);
}


static void
ebd_mh_error(ebd_http_conn_t *c, int status, const char *extra, int head_only)
{
    char         body[64];
    size_t       n;
    const char  *reason = ebd_metrics_request_reason(status);

    n = (size_t) snprintf(body, sizeof(body), "%d %s\n", status, reason);
    ebd_mh_answer(c, status, reason, "text/plain; charset=utf-8", extra,
               (unsigned char *) body, n, head_only);
}


static void
ebd_mh_metrics(ebd_http_conn_t *c)
{
    eb_buf_t  page;

    eb_buf_init(&page);
    ebd_metrics_render(&page);

    if (page.failed) {
        eb_buf_free(&page);
        ebd_mh_error(c, 500, "", c->rq.head);
        return;
    }

    ebd_mh_answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", "",
               page.data, page.len, c->rq.head);
    eb_buf_free(&page);
}


static void
ebd_mh_read(struct bufferevent *bev, void *arg)
{
    int                status;
    size_t             len;
    ebd_http_conn_t   *c = arg;
    struct evbuffer   *in = bufferevent_get_input(bev);
    unsigned char     *p;

    if (c->answered) {
        return;
    }

    /* the answer waits for the whole head: a client gets it once it
     * has said everything it meant to. The input never grows past the
     * limit (the watermark), and is not drained before the answer, so
     * the parser is given the same bytes again, and more. */
    len = evbuffer_get_length(in);
    if (len > EBD_MR_HEAD_MAX) {
        len = EBD_MR_HEAD_MAX;
    }

    p = evbuffer_pullup(in, (ev_ssize_t) len);
    if (p == NULL && len) {
        ebd_mh_error(c, 500, "", 0);
        return;
    }

    status = ebd_metrics_request_parse(&c->rq, (const char *) p, len);

    switch (status) {

    case 0:
        return;

    case 200:
        ebd_mh_metrics(c);
        return;

    case 404:
        ebd_mh_error(c, 404, "", c->rq.head);
        return;

    case 405:
        ebd_mh_error(c, 405, "Allow: GET, HEAD\r\n", 0);
        return;

    default:
        ebd_mh_error(c, status, "", 0);
    }
}


static void
ebd_mh_written(struct bufferevent *bev, void *arg)
{
    ebd_http_conn_t  *c = arg;

    if (c->answered
        && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    {
        ebd_mh_close(c);
    }
}


/* An error or a timeout: the connection goes; so does one the client
 * closed, unless it only shut its side after the request. */
static void
ebd_mh_event(struct bufferevent *bev, short what, void *arg)
{
    ebd_http_conn_t  *c = arg;

    if (c->answered && what == (BEV_EVENT_EOF | BEV_EVENT_READING)
        && evbuffer_get_length(bufferevent_get_output(bev)))
    {
        return;
    }

    ebd_mh_close(c);
}


static void
ebd_mh_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
    ebd_http_conn_t  *c;
    struct timeval    rt = { EBD_HTTP_READ_S, 0 };
    struct timeval    wt = { EBD_HTTP_WRITE_S, 0 };

    if (ebd_mh_nconns >= EBD_HTTP_CONNS) {
        evutil_closesocket(fd);
        return;
    }

    c = calloc(1, sizeof(ebd_http_conn_t));
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }

    c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
                                    BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return;
    }

    ebd_metrics_request_init(&c->rq);

    c->next = ebd_mh_conns;
    if (ebd_mh_conns) {
        ebd_mh_conns->prev = c;
    }
    ebd_mh_conns = c;
    ebd_mh_nconns++;

    /* reading stops at the limit, so the input never grows past it */
    bufferevent_setwatermark(c->bev, EV_READ, 0, EBD_MR_HEAD_MAX);
    bufferevent_setcb(c->bev, ebd_mh_read, ebd_mh_written, ebd_mh_event, c);
    bufferevent_set_timeouts(c->bev, &rt, &wt);
    bufferevent_enable(c->bev, EV_READ);
}


int
ebd_metrics_http_start(struct event_base *base, int fd)
{
    /* backlog -1: the socket listens already */
    ebd_mh_listener = evconnlistener_new(base, ebd_mh_accept, NULL, 0, -1, fd);

    return ebd_mh_listener ? 0 : -1;
}


void
ebd_metrics_http_stop(void)
{
    while (ebd_mh_conns) {
        ebd_mh_close(ebd_mh_conns);
    }

    if (ebd_mh_listener) {
        /* no LEV_OPT_CLOSE_ON_FREE: the socket is the process's */
        evconnlistener_free(ebd_mh_listener);
        ebd_mh_listener = NULL;
    }
}
