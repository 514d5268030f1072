/*
 * bench/http-clients.c: what one HTTP request costs the client, by
 * library, with nothing else around it: N POSTs of the DingTalk body in
 * binary-mode CloudEvents form, C in flight, to a `return 204` location.
 * Prints the rate and the client's CPU (getrusage) per request. The
 * floor under ebd's http/cloudevents drivers (see bench/http-clients).
 *
 *   http-clients curl|evhttp|h2 PORT REQUESTS INFLIGHT BODYFILE
 *
 * curl:   libcurl's multi interface on libevent, as ebd drives it
 *         (socket and timer callbacks, easy handles reused, socket
 *         events kept while libcurl asks for the same thing)
 * evhttp: libevent's own HTTP client, one connection per request in
 *         flight
 * h2:     HTTP/2 with prior knowledge (h2c) through nghttp2, C streams
 *         on one plain non-blocking socket (PORT must listen with
 *         http2): a libevent read event, one recv() and
 *         nghttp2_session_mem_recv() a turn, then the frames of the turn
 *         (mem_send) copied into one buffer and sent with one send(),
 *         a write event only while bytes are held back. Not a
 *         bufferevent: it copies as much, adds an ioctl(FIONREAD) per
 *         read and a write event added and removed per turn. A new
 *         stream is submitted as one closes; after a GOAWAY, what the
 *         server did not take is sent again on a new connection
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <nghttp2/nghttp2.h>


#define IDLE_MAX   4096
#define H2_NV_MAX  16
#define H2_OUT     65536

typedef struct {
    struct event  *ev;
    short          kind;
} sock_t;

typedef struct {
    int32_t        id;          /* 0: free */
    int            status;
    size_t         sent;
} h2_stream_t;

static struct event_base   *base;
static CURLM               *multi;
static struct event        *timer;
static struct curl_slist   *headers;
static CURL                *idle[IDLE_MAX];
static int                  nidle;
static long                 total, started, finished;
static const char          *url, *body;
static size_t               blen;

static const char *lines[] = {
    "Content-Type: application/json", "ce-specversion: 1.0",
    "ce-id: bench-1", "ce-source: bench.src",
    "ce-type: eventbridge:Events:HTTPEvent",
    "ce-time: 2026-01-01T00:00:00.000Z", "Idempotency-Key: bench-1",
    "Expect:", NULL
};


static void curl_start(void);


static void
fail(const char *what)
{
    fprintf(stderr, "http-clients: %s\n", what);
    exit(1);
}


static void
curl_check(void)
{
    int       left;
    long      status;
    CURL     *e;
    CURLMsg  *m;

    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        e = m->easy_handle;
        status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (m->data.result != CURLE_OK || status != 204) {
            fail("a request failed");
        }
        curl_multi_remove_handle(multi, e);
        curl_easy_reset(e);
        idle[nidle++] = e;

        if (++finished == total) {
            event_base_loopbreak(base);
        } else if (started < total) {
            curl_start();
        }
    }
}


static void
curl_sock_event(evutil_socket_t fd, short what, void *arg)
{
    int  running;

    curl_multi_socket_action(multi, fd,
                             ((what & EV_READ) ? CURL_CSELECT_IN : 0)
                             | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0),
                             &running);
    curl_check();
}


static void
curl_timer_event(evutil_socket_t fd, short what, void *arg)
{
    int  running;

    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    curl_check();
}


static int
curl_timer(CURLM *m, long ms, void *data)
{
    struct timeval  tv;

    if (ms < 0) {
        evtimer_del(timer);
        return 0;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(timer, &tv);
    return 0;
}


static int
curl_socket(CURL *e, curl_socket_t fd, int what, void *data, void *sp)
{
    short    kind;
    sock_t  *s = sp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(multi, fd, NULL);
        }
        return 0;
    }

    kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0)
           | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);

    if (s == NULL) {
        s = calloc(1, sizeof(sock_t));
        if (s == NULL) {
            return -1;
        }
        curl_multi_assign(multi, fd, s);

    } else if (s->kind == kind) {
        return 0;
    }

    if (s->ev != NULL) {
        event_free(s->ev);
    }
    s->kind = kind;
    s->ev = event_new(base, fd, kind, curl_sock_event, NULL);
    return event_add(s->ev, NULL);
}


static size_t
curl_discard(char *p, size_t size, size_t n, void *data)
{
    return n;
}


static void
curl_start(void)
{
    CURL  *e = nidle ? idle[--nidle] : curl_easy_init();

    if (e == NULL) {
        fail("curl_easy_init");
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) blen);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_discard);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    started++;
    curl_multi_add_handle(multi, e);
}


static void
curl_run(long inflight)
{
    int  i;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    timer = evtimer_new(base, curl_timer_event, NULL);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, curl_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, curl_timer);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) IDLE_MAX);

    for (i = 0; lines[i] != NULL; i++) {
        headers = curl_slist_append(headers, lines[i]);
    }

    while (started < inflight && started < total) {
        curl_start();
    }
    event_base_dispatch(base);
}


static void evhttp_send(struct evhttp_connection *c);


static void
evhttp_done(struct evhttp_request *req, void *arg)
{
    if (req == NULL || evhttp_request_get_response_code(req) != 204) {
        fail("a request failed");
    }

    if (++finished == total) {
        event_base_loopbreak(base);
    } else if (started < total) {
        evhttp_send(arg);
    }
}


static void
evhttp_send(struct evhttp_connection *c)
{
    int                     i;
    char                    name[64];
    const char             *colon;
    struct evhttp_request  *r = evhttp_request_new(evhttp_done, c);
    struct evkeyvalq       *h = evhttp_request_get_output_headers(r);

    evhttp_add_header(h, "Host", "127.0.0.1");
    for (i = 0; lines[i] != NULL; i++) {
        colon = strchr(lines[i], ':');
        if (colon[1] == '\0') {
            continue;       /* "Expect:": libcurl's way to drop a header */
        }
        snprintf(name, sizeof(name), "%.*s", (int) (colon - lines[i]),
                 lines[i]);
        evhttp_add_header(h, name, colon + 2);
    }
    evbuffer_add(evhttp_request_get_output_buffer(r), body, blen);
    started++;
    evhttp_make_request(c, r, EVHTTP_REQ_POST, "/sink");
}


static void
evhttp_run(int port, long inflight)
{
    long  i;

    for (i = 0; i < inflight && i < total; i++) {
        evhttp_send(evhttp_connection_base_new(base, NULL, "127.0.0.1",
                                               (unsigned short) port));
    }
    event_base_dispatch(base);
}



static nghttp2_session     *h2;
static evutil_socket_t      h2_fd;
static struct event        *h2_rev, *h2_wev;
static int                  h2_port, h2_wpending, h2_goaway;
static int32_t              h2_last_id;
static long                 h2_nstreams, h2_nfree, h2_connections;
static long                 h2_finished0, h2_barren;
static h2_stream_t         *h2_streams, **h2_free;
static nghttp2_nv           h2_nv[H2_NV_MAX];
static size_t               h2_nvlen;
static uint8_t             *h2_out;
static size_t               h2_opos, h2_olen, h2_osize;


static void
h2_nv_add(const char *name, size_t len, const char *value)
{
    nghttp2_nv  *nv = &h2_nv[h2_nvlen++];

    /* ours for the whole run: nghttp2 need not copy them per request */
    nv->name = (uint8_t *) name;
    nv->namelen = len;
    nv->value = (uint8_t *) value;
    nv->valuelen = strlen(value);
    nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
}


static void
h2_headers(int port)
{
    int          i;
    size_t       j, n;
    char        *p;
    const char  *colon;
    static char  authority[32], length[32], names[512];

    snprintf(authority, sizeof(authority), "127.0.0.1:%d", port);
    snprintf(length, sizeof(length), "%zu", blen);

    h2_nv_add(":method", 7, "POST");
    h2_nv_add(":scheme", 7, "http");
    h2_nv_add(":authority", 10, authority);
    h2_nv_add(":path", 5, "/sink");

    p = names;
    for (i = 0; lines[i] != NULL; i++) {
        colon = strchr(lines[i], ':');
        if (colon[1] == '\0') {
            continue;       /* "Expect:": libcurl's way to drop a header */
        }
        n = colon - lines[i];
        for (j = 0; j < n; j++) {
            p[j] = tolower((unsigned char) lines[i][j]);    /* h2: lowercase */
        }
        h2_nv_add(p, n, colon + 2);
        p += n;
    }

    /* the other modes send it too; nginx then knows the body's size */
    h2_nv_add("content-length", 14, length);
}


static ssize_t
h2_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
             uint32_t *flags, nghttp2_data_source *src, void *data)
{
    size_t        n;
    h2_stream_t  *st = src->ptr;

    n = blen - st->sent;
    if (n > len) {
        n = len;
    }
    memcpy(buf, body + st->sent, n);
    st->sent += n;
    if (st->sent == blen) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return n;
}


static void
h2_fill(void)
{
    int32_t                 id;
    h2_stream_t            *st;
    nghttp2_data_provider   dp;

    /* no new stream once the server said GOAWAY: they wait for the
       next connection */
    while (h2_nfree > 0 && started < total && !h2_goaway) {
        st = h2_free[--h2_nfree];
        st->status = 0;
        st->sent = 0;
        dp.source.ptr = st;
        dp.read_callback = h2_read_body;
        id = nghttp2_submit_request(h2, NULL, h2_nv, h2_nvlen, &dp, st);
        if (id < 0) {
            fail("nghttp2_submit_request");
        }
        st->id = id;
        started++;
    }
}


static int
h2_on_header(nghttp2_session *s, const nghttp2_frame *frame,
             const uint8_t *name, size_t namelen, const uint8_t *value,
             size_t valuelen, uint8_t flags, void *data)
{
    h2_stream_t  *st;

    if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7
        || memcmp(name, ":status", 7) != 0 || valuelen != 3)
    {
        return 0;
    }
    st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (st != NULL) {
        st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10
                     + (value[2] - '0');
    }
    return 0;
}


static int
h2_on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *data)
{
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        h2_goaway = 1;
        h2_last_id = frame->goaway.last_stream_id;
    }
    return 0;
}


static int
h2_on_close(nghttp2_session *s, int32_t id, uint32_t error, void *data)
{
    char          err[80];
    h2_stream_t  *st = nghttp2_session_get_stream_user_data(s, id);

    if (st == NULL) {
        return 0;
    }

    /* nginx may answer before it has read the body and then reset the
       stream with NO_ERROR: still a complete response */
    if (st->status >= 200 && st->status < 300 && error == NGHTTP2_NO_ERROR) {
        finished++;

    } else if (st->status == 0 && error == NGHTTP2_REFUSED_STREAM) {
        started--;              /* not processed: send it again */

    } else {
        snprintf(err, sizeof(err), "a request failed (status %d, h2 error "
                 "%u)", st->status, error);
        fail(err);
    }

    st->id = 0;
    h2_free[h2_nfree++] = st;

    if (finished == total) {
        event_base_loopbreak(base);
    } else {
        h2_fill();
    }
    return 0;
}


static int
h2_flush(void)
{
    ssize_t         n;
    const uint8_t  *p;

    /* all the frames of this turn in one buffer, then one send() */
    while (h2_olen - h2_opos < H2_OUT) {
        n = nghttp2_session_mem_send(h2, &p);
        if (n < 0) {
            fail("nghttp2_session_mem_send");
        }
        if (n == 0) {
            break;
        }
        if (h2_olen + n > h2_osize) {
            memmove(h2_out, h2_out + h2_opos, h2_olen - h2_opos);
            h2_olen -= h2_opos;
            h2_opos = 0;
            while (h2_olen + n > h2_osize) {
                h2_osize *= 2;
                h2_out = realloc(h2_out, h2_osize);
                if (h2_out == NULL) {
                    fail("no memory");
                }
            }
        }
        memcpy(h2_out + h2_olen, p, n);
        h2_olen += n;
    }

    if (h2_opos < h2_olen) {
        n = send(h2_fd, h2_out + h2_opos, h2_olen - h2_opos, MSG_NOSIGNAL);
        if (n > 0) {
            h2_opos += n;
        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        if (h2_opos == h2_olen) {
            h2_opos = 0;
            h2_olen = 0;
        }
    }

    /* a write event only while the socket holds bytes back */
    if (h2_olen > 0 && !h2_wpending) {
        event_add(h2_wev, NULL);
        h2_wpending = 1;

    } else if (h2_olen == 0 && h2_wpending) {
        event_del(h2_wev);
        h2_wpending = 0;
    }
    return 0;
}


static void h2_read(evutil_socket_t fd, short what, void *arg);
static void h2_write(evutil_socket_t fd, short what, void *arg);


static void
h2_connect(void)
{
    int                          one = 1;
    struct sockaddr_in           sin;
    nghttp2_session_callbacks   *cb;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short) h2_port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* a blocking connect(): once per connection, on loopback */
    h2_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (h2_fd == -1
        || connect(h2_fd, (struct sockaddr *) &sin, sizeof(sin)) == -1)
    {
        fail("cannot connect");
    }
    setsockopt(h2_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(h2_fd);

    if (nghttp2_session_callbacks_new(&cb) != 0) {
        fail("nghttp2_session_callbacks_new");
    }
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_close);
    if (nghttp2_session_client_new(&h2, cb, NULL) != 0) {
        fail("nghttp2_session_client_new");
    }
    nghttp2_session_callbacks_del(cb);

    /* the preface goes out by itself; the SETTINGS frame is ours */
    if (nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0) != 0) {
        fail("nghttp2_submit_settings");
    }

    h2_goaway = 0;
    h2_last_id = 0;
    h2_opos = 0;
    h2_olen = 0;
    h2_wpending = 0;
    h2_connections++;
    h2_finished0 = finished;

    h2_rev = event_new(base, h2_fd, EV_READ | EV_PERSIST, h2_read, NULL);
    h2_wev = event_new(base, h2_fd, EV_WRITE | EV_PERSIST, h2_write, NULL);
    event_add(h2_rev, NULL);

    h2_fill();
}


static void
h2_reconnect(void)
{
    long          i;
    h2_stream_t  *st;

    /* a server that keeps closing before it answers would loop */
    h2_barren = (finished == h2_finished0) ? h2_barren + 1 : 0;
    if (h2_barren == 3) {
        fail("three h2 connections in a row ended without a response");
    }

    /* streams above GOAWAY's last id were never processed: sent again
       on the next connection; any other one left open is an error */
    for (i = 0; i < h2_nstreams; i++) {
        st = &h2_streams[i];
        if (st->id == 0) {
            continue;
        }
        if (!h2_goaway || st->id <= h2_last_id) {
            fail("the h2 connection closed with requests unanswered");
        }
        st->id = 0;
        h2_free[h2_nfree++] = st;
        started--;
    }

    event_free(h2_rev);
    event_free(h2_wev);
    nghttp2_session_del(h2);
    close(h2_fd);

    h2_connect();
}


static void
h2_turn(int lost)
{
    for ( ;; ) {
        if (!lost) {
            lost = h2_flush();
        }
        if (!lost
            && (!h2_goaway || nghttp2_session_want_read(h2)
                || nghttp2_session_want_write(h2)))
        {
            return;
        }
        if (finished == total) {
            return;
        }
        h2_reconnect();
        lost = 0;
    }
}


static void
h2_read(evutil_socket_t fd, short what, void *arg)
{
    ssize_t         n;
    static uint8_t  buf[65536];

    /* one recv() a turn: the event is level-triggered, so what does
       not fit comes next turn, without a recv() that says EAGAIN */
    n = recv(fd, buf, sizeof(buf), 0);

    if (n > 0) {
        if (nghttp2_session_mem_recv(h2, buf, n) != n) {
            fail("nghttp2_session_mem_recv");
        }
        h2_turn(0);

    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        h2_turn(1);
    }
}


static void
h2_write(evutil_socket_t fd, short what, void *arg)
{
    h2_turn(0);
}


static void
h2_run(int port, long inflight)
{
    long  i;

    h2_headers(port);
    h2_port = port;
    h2_nstreams = inflight;
    h2_streams = calloc(inflight, sizeof(h2_stream_t));
    h2_free = calloc(inflight, sizeof(h2_stream_t *));
    h2_osize = 2 * H2_OUT;
    h2_out = malloc(h2_osize);
    if (h2_streams == NULL || h2_free == NULL || h2_out == NULL) {
        fail("no memory");
    }
    for (i = inflight - 1; i >= 0; i--) {
        h2_free[h2_nfree++] = &h2_streams[i];
    }

    h2_connect();
    h2_turn(0);
    event_base_dispatch(base);

    if (h2_connections > 1) {
        fprintf(stderr, "http-clients: h2: %ld connections (GOAWAY)\n",
                h2_connections);
    }
}


static double
secs(struct timeval a, struct timeval b)
{
    return (b.tv_sec - a.tv_sec) + (b.tv_usec - a.tv_usec) / 1e6;
}


int
main(int argc, char **argv)
{
    int             port;
    long            inflight;
    FILE           *f;
    static char     u[128], b[1 << 16];
    struct rusage   r0, r1;
    struct timeval  t0, t1;

    if (argc != 6) {
        fail("usage: http-clients curl|evhttp|h2 PORT REQUESTS INFLIGHT "
             "BODY");
    }

    port = atoi(argv[2]);
    total = atol(argv[3]);
    inflight = atol(argv[4]);
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/sink", port);
    url = u;

    f = fopen(argv[5], "rb");
    if (f == NULL) {
        fail("cannot read the body");
    }
    blen = fread(b, 1, sizeof(b), f);
    fclose(f);
    body = b;

    base = event_base_new();
    getrusage(RUSAGE_SELF, &r0);
    gettimeofday(&t0, NULL);

    if (strcmp(argv[1], "curl") == 0) {
        curl_run(inflight);
    } else if (strcmp(argv[1], "evhttp") == 0) {
        evhttp_run(port, inflight);
    } else if (strcmp(argv[1], "h2") == 0) {
        h2_run(port, inflight);
    } else {
        fail("the mode is curl, evhttp or h2");
    }

    if (finished != total) {
        fail("fewer responses than requests");
    }

    getrusage(RUSAGE_SELF, &r1);
    gettimeofday(&t1, NULL);

    printf("%-7s %ld requests in %.2f s: %.0f requests/s, CPU %.1f us per "
           "request (user %.1f)\n", argv[1], total, secs(t0, t1),
           total / secs(t0, t1),
           (secs(r0.ru_utime, r1.ru_utime) + secs(r0.ru_stime, r1.ru_stime))
           * 1e6 / total, secs(r0.ru_utime, r1.ru_utime) * 1e6 / total);
    return 0;
}
