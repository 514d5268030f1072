/*
 * bench/http-clients.c: what one HTTP/1.1 request costs the client, by
 * library, with nothing else around it: N POSTs of the DingTalk body in
 * binary-mode CloudEvents form, C in flight, to a `return 204` location.
 * Prints the rate and the client's CPU (getrusage) per request. The
 * floor under ebd's http/cloudevents drivers (see bench/http-clients).
 *
 *   http-clients curl|evhttp PORT REQUESTS INFLIGHT BODYFILE
 *
 * curl:   libcurl's multi interface on libevent, as ebd drives it
 *         (socket and timer callbacks, easy handles reused, socket
 *         events kept while libcurl asks for the same thing)
 * evhttp: libevent's own HTTP client, one connection per request in
 *         flight
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>


#define IDLE_MAX  4096

typedef struct {
    struct event  *ev;
    short          kind;
} sock_t;

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
        fail("usage: http-clients curl|evhttp PORT REQUESTS INFLIGHT BODY");
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
    } else {
        evhttp_run(port, inflight);
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
