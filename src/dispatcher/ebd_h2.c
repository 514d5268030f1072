/*
 * HTTP/2 client connections of the http and cloudevents drivers
 * (ebd_h2.h): nghttp2 frames the requests, libevent's bufferevents
 * carry the bytes (TLS through bufferevent_openssl), evdns resolves
 * names, nothing blocks.
 *
 * Requests wait on the origin until a connection has room (the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS, at most EBD_H2_STREAMS, and none
 * before the peer's SETTINGS came); a new
 * connection is opened while some wait and all are full, one at a time,
 * at most EBD_H2_CONNS. The requests of a loop turn are submitted
 * together (the kick event) and written with one call, as are the
 * frames nghttp2 answers a read with.
 *
 * A request the peer did not process (REFUSED_STREAM, streams above a
 * GOAWAY's last id, or one whose HEADERS never left before the
 * connection closed) is sent again on another connection, up to
 * EBD_H2_REFUSED times: HTTP/2 says it is safe (RFC 9113 8.7). Any other
 * failure is the caller's to retry. A request that times out is reset
 * (RST_STREAM CANCEL); its stream's state stays here, the caller's
 * request is done with.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ebd_log.h"
#include "ebd_h2.h"


#define EBD_H2_STREAMS    128           /* per connection, at most */
#define EBD_H2_CONNS      8
#define EBD_H2_REFUSED    3
#define EBD_H2_OUT_MAX    (256 * 1024)  /* written, not yet sent */
#define EBD_H2_WINDOW     (1 << 20)     /* answers are read at once */
#define EBD_H2_NV         64            /* headers on the stack */


typedef struct ebd_h2_conn_s  ebd_h2_conn_t;

struct ebd_h2_stream_s {
    ebd_h2_conn_t       *c;
    ebd_h2_req_t        *q;             /* NULL once it timed out */
    ebd_h2_stream_t     *next;
    ebd_h2_stream_t     *prev;
    int32_t              id;
    int                  status;
    int                  sent;          /* its HEADERS went out */
    size_t               off;           /* of the body, sent */
};

struct ebd_h2_conn_s {
    ebd_h2_t            *h2;
    ebd_h2_conn_t       *next;
    ebd_h2_conn_t       *prev;
    struct bufferevent  *bev;
    nghttp2_session     *ss;
    int                  ready;         /* connected, the session made */
    int                  draining;      /* GOAWAY: no new streams */
    int                  settings;      /* the peer's SETTINGS came */
    struct event        *now_ev;        /* writes at the turn's end (h2c) */
    int                  now_armed;
    int                  write_off;     /* the bufferevent's EV_WRITE */
    unsigned             nstreams;
    ebd_h2_stream_t     *streams;
};

struct ebd_h2_s {
    struct event_base   *base;
    char                *host;          /* to connect to, no brackets */
    int                  port;
    struct sockaddr_storage addr;       /* host, when it is an address */
    int                  addrlen;       /* 0: a name, resolved by evdns */
    int                  tls;
    nghttp2_nv           pseudo[4];     /* :method :scheme :authority :path */
    char                *authority;
    char                *path;
    SSL_CTX             *ssl_ctx;
    nghttp2_session_callbacks *cbs;

    ebd_h2_conn_t       *conns;
    unsigned             nconns;
    ebd_h2_conn_t       *connecting;

    ebd_h2_req_t        *wait_head;
    ebd_h2_req_t        *wait_tail;

    struct event         kick;
    int                  kicked;
    unsigned             busy;          /* inside our callbacks */
    int                  closing;

    uint64_t             ct_ms;         /* the common timeout of ct */
    const struct timeval *ct;
};


/* one resolver for all origins of the process */
static struct {
    struct evdns_base   *dns;
    unsigned             refs;
} ebd_h2_dns;


static void ebd_h2_dispatch(ebd_h2_t *h2);
static void ebd_h2_free(ebd_h2_t *h2);


/* ------------------------------------------------------------------------
 * Waiting requests
 */

static void
ebd_h2_wait_push(ebd_h2_t *h2, ebd_h2_req_t *q, int front)
{
    q->prev = NULL;
    q->next = NULL;

    if (h2->wait_head == NULL) {
        h2->wait_head = q;
        h2->wait_tail = q;

    } else if (front) {
        q->next = h2->wait_head;
        h2->wait_head->prev = q;
        h2->wait_head = q;

    } else {
        q->prev = h2->wait_tail;
        h2->wait_tail->next = q;
        h2->wait_tail = q;
    }
}


static void
ebd_h2_wait_remove(ebd_h2_t *h2, ebd_h2_req_t *q)
{
    if (q->prev != NULL) {
        q->prev->next = q->next;
    } else {
        h2->wait_head = q->next;
    }

    if (q->next != NULL) {
        q->next->prev = q->prev;
    } else {
        h2->wait_tail = q->prev;
    }

    q->prev = NULL;
    q->next = NULL;
}


static void
ebd_h2_kick(ebd_h2_t *h2)
{
    if (!h2->kicked && !h2->closing) {
        h2->kicked = 1;
        event_active(&h2->kick, EV_TIMEOUT, 0);
    }
}


static void
ebd_h2_leave(ebd_h2_t *h2)
{
    if (--h2->busy == 0 && h2->closing) {
        ebd_h2_free(h2);
    }
}


static void
ebd_h2_req_done(ebd_h2_req_t *q, int status, const char *err)
{
    event_del(&q->timer);
    q->s = NULL;
    q->done(q, status, err);
}


/* every waiting request fails: no connection can be made */
static void
ebd_h2_fail_waiting(ebd_h2_t *h2, const char *err)
{
    ebd_h2_req_t  *q;

    while ((q = h2->wait_head) != NULL) {
        ebd_h2_wait_remove(h2, q);
        ebd_h2_req_done(q, 0, err);
    }
}


/* ------------------------------------------------------------------------
 * Connections
 */

static void
ebd_h2_stream_unlink(ebd_h2_stream_t *s)
{
    ebd_h2_conn_t  *c = s->c;

    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        c->streams = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }

    c->nstreams--;
}


/* why c failed: what it says, unless the server never spoke HTTP/2 */
static const char *
ebd_h2_why(ebd_h2_conn_t *c, const char *err)
{
    /* an HTTP/1 server, most likely: it answered the preface and left */
    return c->ready && !c->settings ? "the server did not answer in HTTP/2"
                                    : err;
}


/* Closes c: its requests whose HEADERS never left are sent again, the
 * others fail with err. */
static void
ebd_h2_conn_close(ebd_h2_conn_t *c, const char *err)
{
    int               sent, usable, was_usable = c->settings;
    ebd_h2_t         *h2 = c->h2;
    ebd_h2_req_t     *q;
    ebd_h2_conn_t    *o;
    ebd_h2_stream_t  *s, *next;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h2->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    h2->nconns--;
    if (h2->connecting == c) {
        h2->connecting = NULL;
    }

    s = c->streams;
    c->streams = NULL;

    /* nghttp2_session_del() calls no callback */
    if (c->ss != NULL) {
        nghttp2_session_del(c->ss);
    }
    if (c->now_ev != NULL) {
        event_free(c->now_ev);
    }
    bufferevent_free(c->bev);
    free(c);

    for ( /* void */ ; s != NULL; s = next) {
        next = s->next;
        q = s->q;
        sent = s->sent;
        free(s);

        if (q == NULL) {
            continue;
        }

        q->s = NULL;
        if (!sent && q->refused < EBD_H2_REFUSED) {
            q->refused++;
            ebd_h2_wait_push(h2, q, 1);
            continue;
        }

        ebd_h2_req_done(q, 0, err);
    }

    if (h2->wait_head == NULL || h2->closing) {
        return;
    }

    /* what waits fails when no connection can carry it: this one never
     * became usable (an HTTP/1 server, TLS refused, ...) and no other is */
    usable = 0;
    for (o = h2->conns; o != NULL; o = o->next) {
        usable |= o->settings && !o->draining;
    }

    if (!usable && !was_usable) {
        ebd_h2_fail_waiting(h2, err);
        return;
    }

    ebd_h2_kick(h2);
}


static int ebd_h2_flush(ebd_h2_conn_t *c);


/* A cleartext connection's output is written at the end of the loop
 * turn that made it, with one writev, rather than on the next turn's
 * "writable" event: sooner, and the write event the bufferevent adds
 * and (once written) has deleted again costs no epoll_ctl with the
 * loop's changelist. Only what the socket does not take waits for the
 * bufferevent. TLS goes through bufferevent_openssl as before. */
static void
ebd_h2_write_now(evutil_socket_t fd, short what, void *arg)
{
    ebd_h2_conn_t    *c = arg;
    ebd_h2_t         *h2 = c->h2;
    struct evbuffer  *out = bufferevent_get_output(c->bev);

    c->now_armed = 0;

    if (evbuffer_get_length(out) == 0) {
        return;
    }

    /* an error leaves the bytes to the bufferevent, which reports it */
    (void) evbuffer_write(out, bufferevent_getfd(c->bev));

    if (evbuffer_get_length(out) != 0) {
        if (c->write_off) {
            c->write_off = 0;
            bufferevent_enable(c->bev, EV_WRITE);
        }
        return;
    }

    if (!c->write_off) {
        c->write_off = 1;
        bufferevent_disable(c->bev, EV_WRITE);
    }

    /* more than EBD_H2_OUT_MAX was waiting in nghttp2 */
    if (c->ss != NULL && nghttp2_session_want_write(c->ss)) {
        h2->busy++;
        (void) ebd_h2_flush(c);
        ebd_h2_leave(h2);
    }
}


/* Writes what nghttp2 has to send (up to EBD_H2_OUT_MAX unsent; the
 * write callback asks again). Returns -1 when c was closed. */
static int
ebd_h2_flush(ebd_h2_conn_t *c)
{
    ssize_t           n;
    const uint8_t    *data;
    struct evbuffer  *out = bufferevent_get_output(c->bev);

    if (c->h2->closing) {
        /* being freed: its caller's fields (not copied) may be gone */
        return 0;
    }

    while (evbuffer_get_length(out) < EBD_H2_OUT_MAX) {
        n = nghttp2_session_mem_send(c->ss, &data);
        if (n < 0) {
            ebd_h2_conn_close(c, ebd_h2_why(c, nghttp2_strerror((int) n)));
            return -1;
        }
        if (n == 0) {
            break;
        }
        if (bufferevent_write(c->bev, data, (size_t) n) != 0) {
            ebd_h2_conn_close(c, "out of memory");
            return -1;
        }
    }

    if (!nghttp2_session_want_read(c->ss)
        && !nghttp2_session_want_write(c->ss)
        && evbuffer_get_length(out) == 0)
    {
        /* after a GOAWAY, with every stream closed */
        ebd_h2_conn_close(c, ebd_h2_why(c, "the connection was closed"));
        return -1;
    }

    /* cleartext: written at the turn's end (ebd_h2_write_now) */
    if (c->now_ev != NULL && !c->now_armed && evbuffer_get_length(out) != 0) {
        c->now_armed = 1;
        event_active(c->now_ev, EV_TIMEOUT, 0);
    }

    return 0;
}


static void
ebd_h2_read(struct bufferevent *bev, void *arg)
{
    size_t            len;
    ssize_t           n;
    unsigned char    *data;
    ebd_h2_conn_t    *c = arg;
    ebd_h2_t         *h2 = c->h2;
    struct evbuffer  *in = bufferevent_get_input(bev);

    h2->busy++;

    while ((len = evbuffer_get_contiguous_space(in)) > 0) {
        data = evbuffer_pullup(in, (ssize_t) len);
        n = nghttp2_session_mem_recv(c->ss, data, len);
        if (n < 0) {
            ebd_h2_conn_close(c, ebd_h2_why(c, nghttp2_strerror((int) n)));
            goto leave;
        }
        evbuffer_drain(in, (size_t) n);
    }

    (void) ebd_h2_flush(c);

leave:

    ebd_h2_leave(h2);
}


static void
ebd_h2_write(struct bufferevent *bev, void *arg)
{
    ebd_h2_conn_t  *c = arg;
    ebd_h2_t       *h2 = c->h2;

    if (c->ss != NULL && nghttp2_session_want_write(c->ss)) {
        h2->busy++;
        (void) ebd_h2_flush(c);
        ebd_h2_leave(h2);
    }
}


static void
ebd_h2_connected(ebd_h2_conn_t *c)
{
    int                   one = 1;
    unsigned              alen = 0;
    const unsigned char  *alpn = NULL;
    ebd_h2_t             *h2 = c->h2;
    nghttp2_settings_entry iv[2] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, EBD_H2_WINDOW }
    };

    if (h2->tls) {
        SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(c->bev),
                               &alpn, &alen);
        if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
            ebd_h2_conn_close(c, "the server did not agree to HTTP/2 "
                              "(ALPN)");
            return;
        }
    }

    (void) setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY,
                      &one, sizeof(one));

    if (!h2->tls) {
        c->now_ev = event_new(h2->base, -1, 0, ebd_h2_write_now, c);
    }

    if ((!h2->tls && c->now_ev == NULL)
        || nghttp2_session_client_new(&c->ss, h2->cbs, c) != 0
        || nghttp2_submit_settings(c->ss, NGHTTP2_FLAG_NONE, iv, 2) != 0
        || nghttp2_session_set_local_window_size(c->ss, NGHTTP2_FLAG_NONE,
                                                 0, EBD_H2_WINDOW) != 0)
    {
        ebd_h2_conn_close(c, "out of memory");
        return;
    }

    /* still h2->connecting, and the connect timeout still on, until the
     * peer's SETTINGS come: a server that never answers is given up */
    c->ready = 1;

    /* the preface and SETTINGS, then what waits */
    if (ebd_h2_flush(c) == 0) {
        ebd_h2_dispatch(h2);
    }
}


static void
ebd_h2_event(struct bufferevent *bev, short what, void *arg)
{
    int             dns, ready;
    char            msg[256];
    unsigned long   e;
    ebd_h2_conn_t  *c = arg;
    ebd_h2_t       *h2 = c->h2;

    h2->busy++;

    if (what & BEV_EVENT_CONNECTED) {
        ebd_h2_connected(c);
        goto leave;
    }

    dns = bufferevent_socket_get_dns_error(bev);
    e = h2->tls ? bufferevent_get_openssl_error(bev) : 0;

    if (what & BEV_EVENT_TIMEOUT) {
        snprintf(msg, sizeof(msg), c->ready ? "%s:%d sent no HTTP/2 "
                 "SETTINGS in time" : "connecting to %s:%d timed out",
                 h2->host, h2->port);

    } else if (dns != 0) {
        snprintf(msg, sizeof(msg), "resolving %s: %s", h2->host,
                 evutil_gai_strerror(dns));

    } else if (e != 0) {
        snprintf(msg, sizeof(msg), "TLS with %s:%d: ", h2->host, h2->port);
        ERR_error_string_n(e, msg + strlen(msg), sizeof(msg) - strlen(msg));

    } else if ((what & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0) {
        snprintf(msg, sizeof(msg), "%s:%d: %s", h2->host, h2->port,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));

    } else {
        snprintf(msg, sizeof(msg), "%s:%d closed the connection",
                 h2->host, h2->port);
    }

    ready = c->ready;
    if (!ready) {
        ebd_log_debug("http2 %s:%d: %s", h2->host, h2->port, msg);
    }

    /* what waits fails if no other connection can carry it: the caller
     * retries later */
    ebd_h2_conn_close(c, (what & BEV_EVENT_TIMEOUT) ? msg
                                                    : ebd_h2_why(c, msg));

leave:

    ebd_h2_leave(h2);
}


static int
ebd_h2_dns_ref(struct event_base *base)
{
    if (ebd_h2_dns.dns == NULL) {
        ebd_h2_dns.dns = evdns_base_new(base,
                                        EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (ebd_h2_dns.dns == NULL) {
            return -1;
        }
    }

    ebd_h2_dns.refs++;
    return 0;
}


static void
ebd_h2_dns_unref(void)
{
    if (--ebd_h2_dns.refs == 0) {
        evdns_base_free(ebd_h2_dns.dns, 1);
        ebd_h2_dns.dns = NULL;
    }
}


static void
ebd_h2_connect(ebd_h2_t *h2)
{
    int                   rc;
    SSL                  *ssl;
    ebd_h2_conn_t        *c;
    struct timeval        tv;

    c = calloc(1, sizeof(ebd_h2_conn_t));
    if (c == NULL) {
        ebd_h2_fail_waiting(h2, "out of memory");
        return;
    }

    c->h2 = h2;

    if (h2->tls) {
        ssl = SSL_new(h2->ssl_ctx);
        if (ssl == NULL) {
            free(c);
            ebd_h2_fail_waiting(h2, "TLS could not be set up");
            return;
        }

        if (h2->addrlen) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h2->host);
        } else {
            SSL_set_tlsext_host_name(ssl, h2->host);
            SSL_set1_host(ssl, h2->host);
        }

        c->bev = bufferevent_openssl_socket_new(h2->base, -1, ssl,
                                                BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (c->bev == NULL) {
            SSL_free(ssl);
        } else {
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        }

    } else {
        c->bev = bufferevent_socket_new(h2->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }

    if (c->bev == NULL) {
        free(c);
        ebd_h2_fail_waiting(h2, "out of memory");
        return;
    }

    bufferevent_setcb(c->bev, ebd_h2_read, ebd_h2_write, ebd_h2_event, c);

    /* the connection (and the handshake) within the first request's
     * timeout */
    tv.tv_sec = h2->ct_ms / 1000;
    tv.tv_usec = (h2->ct_ms % 1000) * 1000;
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);

    c->next = h2->conns;
    if (h2->conns != NULL) {
        h2->conns->prev = c;
    }
    h2->conns = c;
    h2->nconns++;
    h2->connecting = c;

    if (h2->addrlen) {
        rc = bufferevent_socket_connect(c->bev,
                                        (struct sockaddr *) &h2->addr,
                                        h2->addrlen);

    } else {
        rc = bufferevent_socket_connect_hostname(c->bev, ebd_h2_dns.dns,
                                                 AF_UNSPEC, h2->host,
                                                 h2->port);
    }

    if (rc != 0) {
        /* no socket (a failure after one is reported to ebd_h2_event) */
        ebd_h2_conn_close(c, "no socket could be made");
    }
}


/* ------------------------------------------------------------------------
 * Streams
 */

static unsigned
ebd_h2_room(ebd_h2_conn_t *c)
{
    uint32_t  max;

    /* none before the peer's SETTINGS say how many: a server allowing
     * fewer than were sent would refuse the rest (a server sends its
     * SETTINGS first, so this costs no round trip on most) */
    if (!c->settings) {
        return 0;
    }

    max = nghttp2_session_get_remote_settings(c->ss,
                                 NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (max > EBD_H2_STREAMS) {
        max = EBD_H2_STREAMS;
    }

    return c->nstreams < max ? max - c->nstreams : 0;
}


static ssize_t
ebd_h2_body_read(nghttp2_session *ss, int32_t id, uint8_t *buf,
    size_t len, uint32_t *flags, nghttp2_data_source *src, void *user)
{
    size_t            n;
    ebd_h2_stream_t  *s = src->ptr;
    ebd_h2_req_t     *q = s->q;

    if (q == NULL) {
        /* timed out: the body is gone with the request */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }

    n = q->blen - s->off;
    if (n > len) {
        n = len;
    }

    if (n) {
        memcpy(buf, q->body + s->off, n);
        s->off += n;
    }

    if (s->off == q->blen) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }

    return (ssize_t) n;
}


/* Opens q's stream on c; 0, or -1 when c can take no new stream. */
static int
ebd_h2_stream_start(ebd_h2_conn_t *c, ebd_h2_req_t *q)
{
    size_t                 n = 4 + q->nvlen;
    int32_t                id;
    nghttp2_nv             stack[EBD_H2_NV], *nva;
    ebd_h2_stream_t       *s;
    nghttp2_data_provider  dp;
    ebd_h2_t              *h2 = c->h2;

    s = calloc(1, sizeof(ebd_h2_stream_t));
    nva = n <= EBD_H2_NV ? stack : malloc(n * sizeof(nghttp2_nv));
    if (s == NULL || nva == NULL) {
        free(s);
        ebd_h2_req_done(q, 0, "out of memory");
        return 0;
    }

    memcpy(nva, h2->pseudo, sizeof(h2->pseudo));
    if (q->nvlen) {
        memcpy(nva + 4, q->nva, q->nvlen * sizeof(nghttp2_nv));
    }

    s->c = c;
    s->q = q;
    dp.source.ptr = s;
    dp.read_callback = ebd_h2_body_read;

    /* nghttp2 copies the headers */
    id = nghttp2_submit_request(c->ss, NULL, nva, n,
                                q->has_body ? &dp : NULL, s);
    if (nva != stack) {
        free(nva);
    }

    if (id < 0) {
        free(s);
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
            /* this connection's ids are used up: a new one */
            c->draining = 1;
            ebd_h2_wait_push(h2, q, 1);
            return -1;
        }
        ebd_h2_req_done(q, 0, nghttp2_strerror(id));
        return 0;
    }

    s->id = id;
    s->next = c->streams;
    if (c->streams != NULL) {
        c->streams->prev = s;
    }
    c->streams = s;
    c->nstreams++;
    q->s = s;

    return 0;
}


/* Puts waiting requests on connections with room, opens one more when
 * they are all full. */
static void
ebd_h2_dispatch(ebd_h2_t *h2)
{
    unsigned        room, n;
    ebd_h2_req_t   *q;
    ebd_h2_conn_t  *c, *next;

    for (c = h2->conns; c != NULL && h2->wait_head != NULL; c = next) {
        next = c->next;

        if (!c->ready || c->draining) {
            continue;
        }

        n = 0;
        for (room = ebd_h2_room(c); room && h2->wait_head != NULL; room--) {
            q = h2->wait_head;
            ebd_h2_wait_remove(h2, q);
            if (ebd_h2_stream_start(c, q) != 0) {
                break;
            }
            n++;
        }

        if (n) {
            (void) ebd_h2_flush(c);
        }
    }

    if (h2->wait_head != NULL && h2->connecting == NULL
        && h2->nconns < EBD_H2_CONNS)
    {
        ebd_h2_connect(h2);
    }
}


static void
ebd_h2_kick_event(evutil_socket_t fd, short what, void *arg)
{
    ebd_h2_t  *h2 = arg;

    h2->kicked = 0;
    h2->busy++;
    ebd_h2_dispatch(h2);
    ebd_h2_leave(h2);
}


static void
ebd_h2_timeout(evutil_socket_t fd, short what, void *arg)
{
    ebd_h2_req_t     *q = arg;
    ebd_h2_t         *h2 = q->h2;
    ebd_h2_stream_t  *s = q->s;
    ebd_h2_conn_t    *c;

    h2->busy++;

    if (s != NULL) {
        /* the stream stays until nghttp2 closes it, without q */
        c = s->c;
        s->q = NULL;
        q->s = NULL;
        (void) nghttp2_submit_rst_stream(c->ss, NGHTTP2_FLAG_NONE, s->id,
                                         NGHTTP2_CANCEL);
        (void) ebd_h2_flush(c);

    } else {
        ebd_h2_wait_remove(h2, q);
    }

    q->done(q, 0, "timed out");

    ebd_h2_leave(h2);
}


/* ------------------------------------------------------------------------
 * nghttp2's callbacks
 */

static int
ebd_h2_on_header(nghttp2_session *ss, const nghttp2_frame *frame,
    const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
    uint8_t flags, void *user)
{
    int               st;
    ebd_h2_stream_t  *s;

    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }

    s = nghttp2_session_get_stream_user_data(ss, frame->hd.stream_id);
    if (s == NULL || s->q == NULL) {
        return 0;
    }

    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        /* checked by nghttp2: three digits */
        st = vlen == 3 ? (value[0] - '0') * 100 + (value[1] - '0') * 10
                         + (value[2] - '0')
                       : 0;
        s->status = st;
        if (s->q->header != NULL) {
            /* a new response (after a 1xx): its headers from here on */
            s->q->header(s->q, NULL, 0, NULL, 0);
        }
        return 0;
    }

    if (s->q->header != NULL && nlen && name[0] != ':') {
        s->q->header(s->q, (const char *) name, nlen,
                     (const char *) value, vlen);
    }

    return 0;
}


static int
ebd_h2_on_frame_send(nghttp2_session *ss, const nghttp2_frame *frame,
    void *user)
{
    ebd_h2_stream_t  *s;

    if (frame->hd.type == NGHTTP2_HEADERS) {
        s = nghttp2_session_get_stream_user_data(ss, frame->hd.stream_id);
        if (s != NULL) {
            s->sent = 1;
        }
    }

    return 0;
}


static int
ebd_h2_on_frame_recv(nghttp2_session *ss, const nghttp2_frame *frame,
    void *user)
{
    ebd_h2_conn_t  *c = user;

    switch (frame->hd.type) {

    case NGHTTP2_GOAWAY:
        /* streams above its last id are closed REFUSED_STREAM by
         * nghttp2 and go on another connection */
        c->draining = 1;
        ebd_h2_kick(c->h2);
        break;

    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            if (!c->settings) {
                c->settings = 1;
                bufferevent_set_timeouts(c->bev, NULL, NULL);
            }
            if (c->h2->connecting == c) {
                c->h2->connecting = NULL;
            }
            ebd_h2_kick(c->h2);
        }
        break;
    }

    return 0;
}


static int
ebd_h2_on_stream_close(nghttp2_session *ss, int32_t id, uint32_t code,
    void *user)
{
    int               status;
    char              err[128];
    ebd_h2_conn_t    *c = user;
    ebd_h2_stream_t  *s;
    ebd_h2_req_t     *q;

    s = nghttp2_session_get_stream_user_data(ss, id);
    if (s == NULL) {
        return 0;
    }

    ebd_h2_stream_unlink(s);
    q = s->q;
    status = s->status;
    free(s);

    if (c->h2->wait_head != NULL) {
        ebd_h2_kick(c->h2);
    }

    if (q == NULL) {
        return 0;
    }

    q->s = NULL;

    if (code == NGHTTP2_REFUSED_STREAM && q->refused < EBD_H2_REFUSED) {
        /* not processed: once more, on a connection that takes it */
        q->refused++;
        ebd_h2_wait_push(c->h2, q, 1);
        ebd_h2_kick(c->h2);
        return 0;
    }

    if (status >= 200) {
        /* answered; a reset after the answer changes nothing */
        ebd_h2_req_done(q, status, NULL);
        return 0;
    }

    snprintf(err, sizeof(err), "the stream was closed without an answer "
             "(%s)", nghttp2_http2_strerror(code));
    ebd_h2_req_done(q, 0, err);

    return 0;
}


/* ------------------------------------------------------------------------
 * The origin
 */

int
ebd_h2_header_allowed(const char *name, size_t len)
{
    static const char *const  banned[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding",
        "upgrade", "host", "te", NULL
    };
    size_t                    i;

    for (i = 0; banned[i] != NULL; i++) {
        if (strlen(banned[i]) == len && strncasecmp(banned[i], name, len) == 0)
        {
            return 0;
        }
    }

    return 1;
}


static void
ebd_h2_nv(nghttp2_nv *nv, const char *name, const char *value)
{
    nv->name = (uint8_t *) name;
    nv->namelen = strlen(name);
    nv->value = (uint8_t *) value;
    nv->valuelen = strlen(value);
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}


ebd_h2_t *
ebd_h2_open(struct event_base *base, const char *url, const char *method,
    char *err, size_t errlen)
{
    size_t     len;
    char      *scheme = NULL, *host = NULL, *port = NULL, *path = NULL,
              *query = NULL;
    CURLU     *u;
    ebd_h2_t  *h2;

    h2 = calloc(1, sizeof(ebd_h2_t));
    u = curl_url();
    if (h2 == NULL || u == NULL) {
        free(h2);
        curl_url_cleanup(u);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    h2->base = base;
    h2->ct_ms = 10000;
    event_assign(&h2->kick, base, -1, 0, ebd_h2_kick_event, h2);

    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)
           != CURLUE_OK
        || curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
    {
        snprintf(err, errlen, "http_version 2: the url could not be read");
        goto failed;
    }

    (void) curl_url_get(u, CURLUPART_QUERY, &query, 0);

    h2->tls = strcmp(scheme, "https") == 0;
    h2->port = atoi(port);

    /* an IPv6 literal is bracketed in the URL, not to connect() */
    len = strlen(host);
    if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
        h2->host = strndup(host + 1, len - 2);
    } else {
        h2->host = strdup(host);
    }

    len = strlen(host) + strlen(port) + 2;
    h2->authority = malloc(len);
    len = strlen(path) + (query != NULL ? strlen(query) + 1 : 0) + 1;
    h2->path = malloc(len);

    if (h2->host == NULL || h2->authority == NULL || h2->path == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    snprintf(h2->authority, strlen(host) + strlen(port) + 2, "%s:%s", host,
             port);
    snprintf(h2->path, len, "%s%s%s", path, query != NULL ? "?" : "",
             query != NULL ? query : "");

    ebd_h2_nv(&h2->pseudo[0], ":method", method);
    ebd_h2_nv(&h2->pseudo[1], ":scheme", h2->tls ? "https" : "http");
    ebd_h2_nv(&h2->pseudo[2], ":authority", h2->authority);
    ebd_h2_nv(&h2->pseudo[3], ":path", h2->path);

    if (h2->tls) {
        h2->ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (h2->ssl_ctx == NULL
            || SSL_CTX_set_min_proto_version(h2->ssl_ctx, TLS1_2_VERSION) != 1
            || SSL_CTX_set_default_verify_paths(h2->ssl_ctx) != 1
            || SSL_CTX_set_alpn_protos(h2->ssl_ctx,
                                       (const unsigned char *) "\x02h2", 3)
               != 0)
        {
            snprintf(err, errlen, "TLS could not be set up");
            goto failed;
        }
        SSL_CTX_set_verify(h2->ssl_ctx, SSL_VERIFY_PEER, NULL);
    }

    if (nghttp2_session_callbacks_new(&h2->cbs) != 0) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    nghttp2_session_callbacks_set_on_header_callback(h2->cbs,
                                                     ebd_h2_on_header);
    nghttp2_session_callbacks_set_on_frame_send_callback(h2->cbs,
                                                     ebd_h2_on_frame_send);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h2->cbs,
                                                     ebd_h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(h2->cbs,
                                                     ebd_h2_on_stream_close);

    /* an address literal is connected to as it is; a name is resolved
     * on the loop (evdns), at each new connection */
    h2->addrlen = sizeof(h2->addr);
    if (evutil_parse_sockaddr_port(h2->host, (struct sockaddr *) &h2->addr,
                                   &h2->addrlen) != 0)
    {
        h2->addrlen = 0;
    } else if (h2->addr.ss_family == AF_INET) {
        ((struct sockaddr_in *) &h2->addr)->sin_port =
                                               htons((uint16_t) h2->port);
    } else {
        ((struct sockaddr_in6 *) &h2->addr)->sin6_port =
                                               htons((uint16_t) h2->port);
    }

    if (h2->addrlen == 0 && ebd_h2_dns_ref(base) != 0) {
        nghttp2_session_callbacks_del(h2->cbs);
        h2->cbs = NULL;
        snprintf(err, errlen, "the resolver could not be set up");
        goto failed;
    }

    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);

    return h2;

failed:

    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);

    if (h2->ssl_ctx != NULL) {
        SSL_CTX_free(h2->ssl_ctx);
    }
    free(h2->host);
    free(h2->authority);
    free(h2->path);
    free(h2);

    return NULL;
}


void
ebd_h2_submit(ebd_h2_t *h2, ebd_h2_req_t *q, uint64_t timeout_ms)
{
    struct timeval  tv;

    q->h2 = h2;
    q->s = NULL;
    q->refused = 0;

    /* the same timeout for every request of a target: libevent keeps
     * such timers in a queue, not its heap */
    if (h2->ct == NULL || h2->ct_ms != timeout_ms) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        h2->ct = event_base_init_common_timeout(h2->base, &tv);
        h2->ct_ms = timeout_ms;
    }

    evtimer_assign(&q->timer, h2->base, ebd_h2_timeout, q);
    event_add(&q->timer, h2->ct);

    ebd_h2_wait_push(h2, q, 0);
    ebd_h2_kick(h2);
}


static void
ebd_h2_free(ebd_h2_t *h2)
{
    ebd_h2_stream_t  *s;

    event_del(&h2->kick);

    /* no request is in flight: streams left are timed out ones */
    while (h2->conns != NULL) {
        for (s = h2->conns->streams; s != NULL; s = s->next) {
            s->q = NULL;
        }
        ebd_h2_conn_close(h2->conns, "closed");
    }

    if (h2->ssl_ctx != NULL) {
        SSL_CTX_free(h2->ssl_ctx);
    }
    nghttp2_session_callbacks_del(h2->cbs);
    if (h2->addrlen == 0) {
        ebd_h2_dns_unref();
    }
    free(h2->host);
    free(h2->authority);
    free(h2->path);
    free(h2);
}


void
ebd_h2_close(ebd_h2_t *h2)
{
    if (h2 == NULL) {
        return;
    }

    h2->closing = 1;

    if (h2->busy == 0) {
        ebd_h2_free(h2);
    }
}
