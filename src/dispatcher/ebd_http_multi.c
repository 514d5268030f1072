/*
 * The one libcurl multi handle of ebd (ebd_http.h), driven by the
 * libevent loop: libcurl tells which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION); finished transfers go back to their owners
 * (the http/cloudevents drivers, the OAuth2 token cache). Easy handles
 * are kept and reused.
 */

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "ebd_log.h"
#include "ebd_http.h"


/* ------------------------------------------------------------------------
 * The multi handle on the loop
 */

typedef struct ebd_http_sock_s  ebd_http_sock_t;

struct ebd_http_sock_s {
    ebd_http_sock_t   *prev;
    ebd_http_sock_t   *next;
    curl_socket_t      fd;
    short              kind;       /* what ev waits for */
    struct event      *ev;
};


static struct {
    CURLM               *multi;
    struct event_base   *base;
    struct event        *timer;
    ebd_http_sock_t     *socks;        /* events of libcurl's sockets */
    unsigned             refs;
    unsigned             busy;         /* inside our own event callbacks */
    int                  global_init;
    CURL                *idle[256];    /* easy handles to use again */
    unsigned             nidle;
} ebd_http;


static void ebd_http_multi_cleanup(void);


/* Hands finished transfers to their owners. Owners may start or stop
 * transfers, and drop the last reference, from their callbacks. */
static void
ebd_http_check(void)
{
    int               left;
    CURL             *easy;
    CURLcode          rc;
    CURLMsg          *msg;
    ebd_http_xfer_t  *x;

    while (ebd_http.multi != NULL
           && (msg = curl_multi_info_read(ebd_http.multi, &left)) != NULL)
    {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        /* msg does not survive curl_multi_remove_handle() */
        easy = msg->easy_handle;
        rc = msg->data.result;
        x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &x);

        curl_multi_remove_handle(ebd_http.multi, easy);

        if (x != NULL) {
            x->active = 0;
            x->done(x, rc);
        }
    }
}


static void
ebd_http_leave(void)
{
    if (--ebd_http.busy == 0 && ebd_http.refs == 0
        && ebd_http.multi != NULL)
    {
        ebd_http_multi_cleanup();
    }
}


static void
ebd_http_socket_event(evutil_socket_t fd, short what, void *arg)
{
    int  running, action;

    action = ((what & EV_READ) ? CURL_CSELECT_IN : 0)
             | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    ebd_http.busy++;
    curl_multi_socket_action(ebd_http.multi, fd, action, &running);
    ebd_http_check();
    ebd_http_leave();
}


static void
ebd_http_timer_event(evutil_socket_t fd, short what, void *arg)
{
    int  running;

    ebd_http.busy++;
    curl_multi_socket_action(ebd_http.multi, CURL_SOCKET_TIMEOUT, 0,
                             &running);
    ebd_http_check();
    ebd_http_leave();
}


/* CURLMOPT_TIMERFUNCTION: libcurl wants to be called after timeout_ms
 * (-1: never). Never calls libcurl back from here. */
static int
ebd_http_timer(CURLM *multi, long timeout_ms, void *data)
{
    struct timeval  tv;

    if (timeout_ms < 0) {
        evtimer_del(ebd_http.timer);
        return 0;
    }

    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(ebd_http.timer, &tv);
    return 0;
}


static void
ebd_http_sock_free(ebd_http_sock_t *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        ebd_http.socks = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }

    if (s->ev != NULL) {
        event_free(s->ev);
    }
    free(s);
}


/* CURLMOPT_SOCKETFUNCTION: what to wait for on a socket */
static int
ebd_http_socket(CURL *easy, curl_socket_t fd, int what, void *data,
    void *sockp)
{
    short             kind;
    ebd_http_sock_t  *s = sockp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(ebd_http.multi, fd, NULL);
            ebd_http_sock_free(s);
        }
        return 0;
    }

    if (s == NULL) {
        s = calloc(1, sizeof(ebd_http_sock_t));
        if (s == NULL) {
            return -1;
        }
        s->fd = fd;
        s->next = ebd_http.socks;
        if (s->next != NULL) {
            s->next->prev = s;
        }
        ebd_http.socks = s;
        curl_multi_assign(ebd_http.multi, fd, s);
    }

    kind = EV_PERSIST
           | ((what & CURL_POLL_IN) ? EV_READ : 0)
           | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);

    /* libcurl says it again for every request on a kept connection: the
     * event stays as it is (each change is an epoll_ctl) */
    if (s->ev != NULL && s->kind == kind) {
        return 0;
    }

    if (s->ev != NULL) {
        event_free(s->ev);
    }

    s->kind = kind;
    s->ev = event_new(ebd_http.base, fd, kind, ebd_http_socket_event, NULL);
    if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
        return -1;
    }

    return 0;
}


int
ebd_http_multi_ref(struct event_base *base)
{
    if (ebd_http.multi != NULL) {
        ebd_http.refs++;
        return 0;
    }

    if (!ebd_http.global_init) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return -1;
        }
        ebd_http.global_init = 1;
    }

    ebd_http.base = base;
    ebd_http.timer = evtimer_new(base, ebd_http_timer_event, NULL);
    ebd_http.multi = curl_multi_init();

    if (ebd_http.timer == NULL || ebd_http.multi == NULL) {
        ebd_http_multi_cleanup();
        return -1;
    }

    curl_multi_setopt(ebd_http.multi, CURLMOPT_SOCKETFUNCTION,
                      ebd_http_socket);
    curl_multi_setopt(ebd_http.multi, CURLMOPT_TIMERFUNCTION,
                      ebd_http_timer);
    /* the default cache (4 x the transfers running at the moment) shrinks
     * between bursts and closes connections the next burst needs again:
     * keep one per attempt that can be in flight (targets' concurrency is
     * at most 1024 each) */
    curl_multi_setopt(ebd_http.multi, CURLMOPT_MAXCONNECTS, 4096L);

    ebd_http.refs = 1;
    return 0;
}


/* An easy handle costs two large allocations and their set-up: reset
 * and kept, one serves many requests (the connections themselves live in
 * the multi handle's cache either way). */
CURL *
ebd_http_easy_get(void)
{
    return ebd_http.nidle ? ebd_http.idle[--ebd_http.nidle] : curl_easy_init();
}


void
ebd_http_easy_put(CURL *easy)
{
    if (ebd_http.multi != NULL
        && ebd_http.nidle < sizeof(ebd_http.idle) / sizeof(ebd_http.idle[0]))
    {
        curl_easy_reset(easy);
        ebd_http.idle[ebd_http.nidle++] = easy;
        return;
    }

    curl_easy_cleanup(easy);
}


static void
ebd_http_multi_cleanup(void)
{
    while (ebd_http.nidle) {
        curl_easy_cleanup(ebd_http.idle[--ebd_http.nidle]);
    }

    if (ebd_http.multi != NULL) {
        /* closes the cached connections (their sockets' events may be
         * removed through ebd_http_socket meanwhile) */
        curl_multi_cleanup(ebd_http.multi);
        ebd_http.multi = NULL;
    }

    while (ebd_http.socks != NULL) {
        ebd_http_sock_free(ebd_http.socks);
    }

    if (ebd_http.timer != NULL) {
        event_free(ebd_http.timer);
        ebd_http.timer = NULL;
    }

    ebd_http.base = NULL;
}


void
ebd_http_multi_unref(void)
{
    if (ebd_http.refs == 0 || --ebd_http.refs > 0) {
        return;
    }

    /* inside a callback of ours: after it (ebd_http_leave) */
    if (ebd_http.busy == 0) {
        ebd_http_multi_cleanup();
    }
}


int
ebd_http_xfer_start(ebd_http_xfer_t *x)
{
    if (ebd_http.multi == NULL) {
        return -1;
    }

    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *) x);

    if (curl_multi_add_handle(ebd_http.multi, x->easy) != CURLM_OK) {
        return -1;
    }

    x->active = 1;
    return 0;
}


void
ebd_http_xfer_stop(ebd_http_xfer_t *x)
{
    if (x->active && ebd_http.multi != NULL) {
        curl_multi_remove_handle(ebd_http.multi, x->easy);
    }

    x->active = 0;
}


static size_t
ebd_http_discard(char *p, size_t size, size_t n, void *data)
{
    return n;
}


void
ebd_http_easy_setup(CURL *easy, uint64_t timeout_ms, char *errbuf)
{
    errbuf[0] = '\0';

    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "ebd");
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ebd_http_discard);
}


void
ebd_http_safe_url(const char *url, char *buf, size_t size)
{
    char  *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    CURLU *u;

    snprintf(buf, size, "(invalid URL)");

    u = curl_url();
    if (u == NULL) {
        return;
    }

    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)
           == CURLUE_OK
        && curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK)
    {
        snprintf(buf, size, "%s://%s:%s%s", scheme, host, port, path);
    }

    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}
