/*
 * ebd's metrics: the shared mapping, the slots, the page, and the
 * figures asked from Redis. See ebd_metrics.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "eb_order.h"
#include "ebd_core.h"
#include "ebd_log.h"
#include "ebd_metrics.h"


#define EBD_METRICS_ROUTES      4096    /* (bus, target) slots */
#define EBD_METRICS_CONNS       256     /* OAuth2 connection slots */
#define EBD_METRICS_NAME        129     /* eb_config: 1 to 128 of
                                         * [A-Za-z0-9._-]: no escaping */
#define EBD_METRICS_REFRESH_MS  5000
#define EBD_METRICS_STALE_MS    (3 * EBD_METRICS_REFRESH_MS + 1000)
#define EBD_METRICS_BACKLOG     64


enum { EBD_M_OAUTH_OK = 0, EBD_M_OAUTH_HTTP, EBD_M_OAUTH_TRANSPORT,
       EBD_M_OAUTH_INVALID, EBD_M_OAUTH_OUTCOMES };

enum { EBD_M_READER = 0, EBD_M_COMMAND };


/* le="..." as written, and the same bound in the cells' unit */
const uint64_t  ebd_metrics_attempt_le[EBD_M_ATTEMPT_BUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000, 30000000
};

static const char  *ebd_metrics_attempt_text[EBD_M_ATTEMPT_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
    "5", "10", "30"
};

const uint64_t  ebd_metrics_latency_le[EBD_M_LATENCY_BUCKETS] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 1800000, 3600000, 21600000, 86400000
};

static const char  *ebd_metrics_latency_text[EBD_M_LATENCY_BUCKETS] = {
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
    "30", "60", "300", "1800", "3600", "21600", "86400"
};

static const char  *ebd_metrics_outcome_names[EBD_M_OUTCOMES] = {
    "delivered", "retried", "dead_lettered", "discarded", "dropped"
};

static const char  *ebd_metrics_oauth_names[EBD_M_OAUTH_OUTCOMES] = {
    "ok", "http_error", "transport_error", "invalid_answer"
};


/* A (bus, target) and what Redis said of it (written by the first
 * worker only). */
typedef struct {
    char          bus[EBD_METRICS_NAME];
    char          target[EBD_METRICS_NAME];
    int64_t       lag;              /* -1: Redis did not say */
    int64_t       pending;
    uint64_t      group_ms;         /* when XINFO GROUPS answered */
    int64_t       dead_letters;
    uint64_t      dlq_ms;           /* when XLEN answered */
} ebd_metrics_key_t;


/* One worker's cells: the extra slot of each table is where what does
 * not fit is counted, never shown. */
typedef struct {
    uint64_t             redis[2][2];   /* reader/command x up/down */
    uint64_t             oauth[EBD_METRICS_CONNS + 1][EBD_M_OAUTH_OUTCOMES];
    ebd_metrics_route_t  routes[EBD_METRICS_ROUTES + 1];
} ebd_metrics_cells_t;


typedef struct {
    pthread_mutex_t      lock;          /* adding slots */
    unsigned             nroutes;       /* published with release */
    unsigned             nconns;
    unsigned             workers;
    uint64_t             restarts;
    uint64_t             start_ms;
    char                 version[32];
    ebd_metrics_key_t    routes[EBD_METRICS_ROUTES];
    char                 conns[EBD_METRICS_CONNS][EBD_METRICS_NAME];
} ebd_metrics_shm_t;


static ebd_metrics_shm_t    *ebd_shm;
static ebd_metrics_cells_t  *ebd_cells;     /* workers' cells, in a row */
static ebd_metrics_cells_t  *ebd_self;      /* this worker's */
static unsigned              ebd_self_index;
static int                   ebd_listen_fd = -1;
static uint64_t              ebd_last_refresh_ms;


#define ebd_load(p)  __atomic_load_n(p, __ATOMIC_RELAXED)


static int
ebd_metrics_listen(const char *spec, char *err, size_t errlen)
{
    int               fd, rc, one = 1;
    char              port[16];
    ebd_addr_t        a;
    struct addrinfo   hints, *res;

    if (ebd_listen_parse(spec, &a, err, errlen) != 0) {
        return -1;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", a.port);

    /* at start, before any loop runs: a host name may be resolved */
    rc = getaddrinfo(a.host[0] ? a.host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve \"%.128s\": %s", a.host,
                 gai_strerror(rc));
        return -1;
    }

    fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK,
                res->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }

    /* a restart finds the port in TIME_WAIT; a listener elsewhere on it
     * still makes bind fail (not SO_REUSEPORT: a second ebd on the same
     * port would silently take half of the scrapes) */
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0
        || listen(fd, EBD_METRICS_BACKLOG) != 0)
    {
        snprintf(err, errlen, "%s", errno == EADDRINUSE
                 ? "the address is in use" : strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }

    freeaddrinfo(res);
    return fd;
}


int
ebd_metrics_open(const ebd_opts_t *o, const char *version, char *err,
    size_t errlen)
{
    size_t               head, size;
    char                 why[512];
    void                *p;
    pthread_mutexattr_t  ma;

    head = (sizeof(ebd_metrics_shm_t) + 63) & ~(size_t) 63;
    size = head + (size_t) o->workers * sizeof(ebd_metrics_cells_t);

    /* untouched pages cost nothing: only slots in use are */
    p = mmap(NULL, size, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "metrics: mmap of %zu bytes: %s", size,
                 strerror(errno));
        return -1;
    }

    ebd_shm = p;
    ebd_cells = (ebd_metrics_cells_t *) ((char *) p + head);
    ebd_self = ebd_cells;
    ebd_self_index = 0;

    /* robust: a worker killed while adding a slot does not stop the
     * others (a slot is published only once it is whole) */
    if (pthread_mutexattr_init(&ma) != 0
        || pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0
        || pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0
        || pthread_mutex_init(&ebd_shm->lock, &ma) != 0)
    {
        snprintf(err, errlen, "metrics: cannot make the shared lock");
        return -1;
    }
    pthread_mutexattr_destroy(&ma);

    ebd_shm->workers = o->workers;
    ebd_shm->start_ms = ebd_now_ms();
    snprintf(ebd_shm->version, sizeof(ebd_shm->version), "%s", version);

    if (o->metrics == NULL) {
        return 0;
    }

    ebd_listen_fd = ebd_metrics_listen(o->metrics, why, sizeof(why));
    if (ebd_listen_fd < 0) {
        snprintf(err, errlen, "--metrics %s: %s", o->metrics, why);
        return -1;
    }

    return 0;
}


void
ebd_metrics_worker(unsigned index)
{
    ebd_self_index = index;
    ebd_self = &ebd_cells[index];
}


void
ebd_metrics_worker_restarted(void)
{
    ebd_metrics_add(&ebd_shm->restarts, 1);
}


static void
ebd_metrics_lock(void)
{
    if (pthread_mutex_lock(&ebd_shm->lock) == EOWNERDEAD) {
        pthread_mutex_consistent(&ebd_shm->lock);
    }
}


ebd_metrics_route_t *
ebd_metrics_route(const char *bus, const char *target)
{
    unsigned            i, n;
    ebd_metrics_key_t  *k;

    ebd_metrics_lock();

    n = ebd_shm->nroutes;
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        if (strcmp(k->bus, bus) == 0 && strcmp(k->target, target) == 0) {
            goto done;
        }
    }

    if (n == EBD_METRICS_ROUTES) {
        ebd_log(EBD_LOG_WARN, "metrics: more than %d (bus, target) pairs; "
                "eb:{%s}:target:%s is not counted", EBD_METRICS_ROUTES, bus,
                target);
        goto done;
    }

    k = &ebd_shm->routes[n];
    snprintf(k->bus, sizeof(k->bus), "%s", bus);
    snprintf(k->target, sizeof(k->target), "%s", target);
    k->lag = -1;
    __atomic_store_n(&ebd_shm->nroutes, n + 1, __ATOMIC_RELEASE);

done:

    pthread_mutex_unlock(&ebd_shm->lock);
    return &ebd_self->routes[i];
}


unsigned
ebd_metrics_oauth_slot(const char *connection)
{
    unsigned  i, n;

    ebd_metrics_lock();

    n = ebd_shm->nconns;
    for (i = 0; i < n && strcmp(ebd_shm->conns[i], connection) != 0; i++) {
        /* void */
    }

    if (i == n && n < EBD_METRICS_CONNS) {
        snprintf(ebd_shm->conns[n], EBD_METRICS_NAME, "%s", connection);
        __atomic_store_n(&ebd_shm->nconns, n + 1, __ATOMIC_RELEASE);
    }

    pthread_mutex_unlock(&ebd_shm->lock);
    return i;
}


void
ebd_metrics_oauth(unsigned slot, int transport_failed, long status, int ok)
{
    unsigned  o;

    o = ok ? EBD_M_OAUTH_OK
           : transport_failed ? EBD_M_OAUTH_TRANSPORT
           : status < 200 || status > 299 ? EBD_M_OAUTH_HTTP
           : EBD_M_OAUTH_INVALID;

    ebd_metrics_add(&ebd_self->oauth[slot][o], 1);
}


/* ---- the page ------------------------------------------------------ */

static void
ebd_printf(eb_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ebd_printf(eb_buf_t *b, const char *fmt, ...)
{
    int      n;
    char     line[512];
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    /* names are at most 128 characters: a line always fits */
    if (n > 0) {
        eb_buf_append(b, line, (size_t) n < sizeof(line) ? (size_t) n
                                                         : sizeof(line) - 1);
    }
}


static void
ebd_family(eb_buf_t *b, const char *name, const char *type,
    const char *help)
{
    ebd_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}


/* The workers' cells of a route added up (every field is 8 bytes). */
static void
ebd_route_sum(unsigned i, ebd_metrics_route_t *sum)
{
    size_t      j, w;
    uint64_t   *s = (uint64_t *) sum;
    uint64_t   *c;

    memset(sum, 0, sizeof(*sum));

    for (w = 0; w < ebd_shm->workers; w++) {
        c = (uint64_t *) &ebd_cells[w].routes[i];
        for (j = 0; j < sizeof(*sum) / sizeof(uint64_t); j++) {
            s[j] += ebd_load(&c[j]);
        }
    }
}


static void
ebd_histogram(eb_buf_t *b, const char *name, const char *labels,
    const uint64_t *buckets, unsigned nb, const char **le, double sum)
{
    unsigned  i;
    uint64_t  n = 0;

    /* cumulative; the count is the +Inf bucket, so the page agrees with
     * itself while workers count */
    for (i = 0; i < nb; i++) {
        n += buckets[i];
        ebd_printf(b, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le[i],
                   (unsigned long long) n);
    }
    n += buckets[nb];
    ebd_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
               (unsigned long long) n);
    ebd_printf(b, "%s_sum{%s} %.6f\n", name, labels, sum);
    ebd_printf(b, "%s_count{%s} %llu\n", name, labels,
               (unsigned long long) n);
}


static const ebd_metrics_key_t  *ebd_sort_keys;

static int
ebd_by_target(const void *a, const void *b)
{
    return strcmp(ebd_sort_keys[*(const unsigned *) a].target,
                  ebd_sort_keys[*(const unsigned *) b].target);
}


static void
ebd_render_routes(eb_buf_t *b, ebd_metrics_route_t *s, unsigned n)
{
    char                      labels[300];
    unsigned                  i, j, o, *order;
    uint64_t                  now, buckets[EBD_M_ATTEMPT_BUCKETS + 1], us;
    const ebd_metrics_key_t  *k;

#define EBD_LABELS(k)                                                        \
    snprintf(labels, sizeof(labels), "bus=\"%s\",target=\"%s\"", (k)->bus,   \
             (k)->target)

    ebd_family(b, "ebd_deliveries_total", "counter",
               "Delivery attempts by what they led to: delivered; retried "
               "(failed, a retry is due); dead_lettered; discarded (given "
               "up, the target keeps no dead letters); dropped (given up, "
               "but the dead letter could not be written: the entry stays "
               "pending and is delivered again).");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        for (o = 0; o < EBD_M_OUTCOMES; o++) {
            ebd_printf(b, "ebd_deliveries_total{bus=\"%s\",target=\"%s\","
                       "outcome=\"%s\"} %llu\n", k->bus, k->target,
                       ebd_metrics_outcome_names[o],
                       (unsigned long long) s[i].outcomes[o]);
        }
    }

    ebd_family(b, "ebd_delivery_attempts_total", "counter",
               "Delivery attempts that ended, whatever their outcome.");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        ebd_printf(b, "ebd_delivery_attempts_total{bus=\"%s\",target=\"%s\"}"
                   " %llu\n", k->bus, k->target,
                   (unsigned long long) s[i].attempts);
    }

    /* by target: the routes of a target, whatever their bus, added up */
    ebd_family(b, "ebd_delivery_duration_seconds", "histogram",
               "One attempt, from its start to the target's answer (or "
               "the timeout); a wait for the rate limit or an OAuth2 token "
               "included.");
    order = malloc((n ? n : 1) * sizeof(unsigned));
    if (order == NULL) {
        b->failed = 1;
        return;
    }
    for (i = 0; i < n; i++) {
        order[i] = i;
    }
    ebd_sort_keys = ebd_shm->routes;
    qsort(order, n, sizeof(unsigned), ebd_by_target);

    for (i = 0; i < n; i = j) {
        memset(buckets, 0, sizeof(buckets));
        us = 0;
        for (j = i; j < n && strcmp(ebd_shm->routes[order[j]].target,
                                    ebd_shm->routes[order[i]].target) == 0;
             j++)
        {
            for (o = 0; o <= EBD_M_ATTEMPT_BUCKETS; o++) {
                buckets[o] += s[order[j]].attempt[o];
            }
            us += s[order[j]].attempt_us;
        }
        snprintf(labels, sizeof(labels), "target=\"%s\"",
                 ebd_shm->routes[order[i]].target);
        ebd_histogram(b, "ebd_delivery_duration_seconds", labels, buckets,
                      EBD_M_ATTEMPT_BUCKETS, ebd_metrics_attempt_text,
                      (double) us / 1e6);
    }
    free(order);

    ebd_family(b, "ebd_event_delivery_latency_seconds", "histogram",
               "From the entry's time in the target stream (when nginx "
               "stored the event) to its delivery, retries included.");
    for (i = 0; i < n; i++) {
        EBD_LABELS(&ebd_shm->routes[i]);
        ebd_histogram(b, "ebd_event_delivery_latency_seconds", labels,
                      s[i].latency, EBD_M_LATENCY_BUCKETS,
                      ebd_metrics_latency_text,
                      (double) s[i].latency_ms / 1e3);
    }

    ebd_family(b, "ebd_retry_waiting_entries", "gauge",
               "Entries held in memory until their retry is due.");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        ebd_printf(b, "ebd_retry_waiting_entries{bus=\"%s\",target=\"%s\"} "
                   "%lld\n", k->bus, k->target, (long long) s[i].waiting);
    }

    ebd_family(b, "ebd_circuit_open", "gauge",
               "Workers whose circuit breaker for the target is open "
               "(or half open): nothing is sent but a probe.");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        ebd_printf(b, "ebd_circuit_open{bus=\"%s\",target=\"%s\"} %lld\n",
                   k->bus, k->target, (long long) s[i].circuit_open);
    }

    ebd_family(b, "ebd_ordered_partitions", "gauge",
               "Partitions of a target in order per key that this ebd "
               "reads now, under their leases (0: not in order).");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        ebd_printf(b, "ebd_ordered_partitions{bus=\"%s\",target=\"%s\"} "
                   "%lld\n", k->bus, k->target, (long long) s[i].partitions);
    }

    ebd_family(b, "ebd_target_paused", "gauge",
               "Workers that see the target paused (ebd pause, or a 410 "
               "Gone): nothing is sent until ebd resume.");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        ebd_printf(b, "ebd_target_paused{bus=\"%s\",target=\"%s\"} %lld\n",
                   k->bus, k->target, (long long) s[i].paused);
    }

    ebd_family(b, "ebd_circuit_opened_total", "counter",
               "Times a worker's circuit breaker for the target opened.");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        ebd_printf(b, "ebd_circuit_opened_total{bus=\"%s\",target=\"%s\"} "
                   "%llu\n", k->bus, k->target,
                   (unsigned long long) s[i].circuit_opened);
    }

    /* what Redis said, while it is fresh */
    now = ebd_now_ms();

    ebd_family(b, "ebd_backlog_entries", "gauge",
               "Entries of the target stream not yet read by the consumer "
               "group (XINFO GROUPS lag; Redis 7).");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        if (ebd_load(&k->group_ms) + EBD_METRICS_STALE_MS > now
            && ebd_load(&k->lag) >= 0)
        {
            ebd_printf(b, "ebd_backlog_entries{bus=\"%s\",target=\"%s\"} "
                       "%lld\n", k->bus, k->target,
                       (long long) ebd_load(&k->lag));
        }
    }

    ebd_family(b, "ebd_pending_entries", "gauge",
               "Entries read by a consumer of the group and not yet "
               "acknowledged: in flight, queued, waiting for a retry.");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        if (ebd_load(&k->group_ms) + EBD_METRICS_STALE_MS > now) {
            ebd_printf(b, "ebd_pending_entries{bus=\"%s\",target=\"%s\"} "
                       "%lld\n", k->bus, k->target,
                       (long long) ebd_load(&k->pending));
        }
    }

    ebd_family(b, "ebd_dead_letter_entries", "gauge",
               "Length of the dead-letter stream eb:{BUS}:dlq:TARGET.");
    for (i = 0; i < n; i++) {
        k = &ebd_shm->routes[i];
        if (ebd_load(&k->dlq_ms) + EBD_METRICS_STALE_MS > now) {
            ebd_printf(b, "ebd_dead_letter_entries{bus=\"%s\",target=\"%s\"} "
                       "%lld\n", k->bus, k->target,
                       (long long) ebd_load(&k->dead_letters));
        }
    }

#undef EBD_LABELS
}


void
ebd_metrics_render(eb_buf_t *b)
{
    unsigned              i, n, w, o, r, st;
    uint64_t              v;
    ebd_metrics_route_t  *sums;
    static const char    *roles[] = { "reader", "command" };
    static const char    *states[] = { "up", "down" };

    n = __atomic_load_n(&ebd_shm->nroutes, __ATOMIC_ACQUIRE);

    sums = malloc((n ? n : 1) * sizeof(ebd_metrics_route_t));
    if (sums == NULL) {
        b->failed = 1;
        return;
    }
    for (i = 0; i < n; i++) {
        ebd_route_sum(i, &sums[i]);
    }

    ebd_render_routes(b, sums, n);
    free(sums);

    ebd_family(b, "ebd_oauth_token_fetches_total", "counter",
               "OAuth2 token requests by connection and outcome: ok, "
               "http_error (the token endpoint answered non-2xx), "
               "transport_error (no answer: connection, TLS, timeout), "
               "invalid_answer (2xx without a usable token).");
    n = __atomic_load_n(&ebd_shm->nconns, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++) {
        for (o = 0; o < EBD_M_OAUTH_OUTCOMES; o++) {
            for (v = 0, w = 0; w < ebd_shm->workers; w++) {
                v += ebd_load(&ebd_cells[w].oauth[i][o]);
            }
            ebd_printf(b, "ebd_oauth_token_fetches_total{connection=\"%s\","
                       "outcome=\"%s\"} %llu\n", ebd_shm->conns[i],
                       ebd_metrics_oauth_names[o], (unsigned long long) v);
        }
    }

    ebd_family(b, "ebd_redis_connections", "gauge",
               "ebd's connections to its Redis: reader (one per route) and "
               "command (one per bus), up (ready) or down (connecting, "
               "waiting for the topology or to reconnect).");
    for (r = 0; r < 2; r++) {
        for (st = 0; st < 2; st++) {
            for (v = 0, w = 0; w < ebd_shm->workers; w++) {
                v += ebd_load(&ebd_cells[w].redis[r][st]);
            }
            ebd_printf(b, "ebd_redis_connections{role=\"%s\",state=\"%s\"} "
                       "%llu\n", roles[r], states[st], (unsigned long long) v);
        }
    }

    ebd_family(b, "ebd_workers", "gauge", "Worker processes (-w).");
    ebd_printf(b, "ebd_workers %u\n", ebd_shm->workers);

    ebd_family(b, "ebd_worker_restarts_total", "counter",
               "Workers the master started again after they died.");
    ebd_printf(b, "ebd_worker_restarts_total %llu\n",
               (unsigned long long) ebd_load(&ebd_shm->restarts));

    ebd_family(b, "ebd_build_info", "gauge", "ebd's version.");
    ebd_printf(b, "ebd_build_info{version=\"%s\"} 1\n", ebd_shm->version);

    ebd_family(b, "process_start_time_seconds", "gauge",
               "When ebd started, in seconds since the epoch.");
    ebd_printf(b, "process_start_time_seconds %.3f\n",
               (double) ebd_shm->start_ms / 1e3);
}


/* ---- on the loop ----------------------------------------------------- */

static unsigned
ebd_key_index(const ebd_route_t *r)
{
    return (unsigned) (r->metrics - ebd_self->routes);
}


static void
ebd_groups_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t              i, j;
    int64_t             lag = -1, pending = -1;
    redisReply         *rep = reply, *g, *f, *v;
    ebd_metrics_key_t  *k = &ebd_shm->routes[(uintptr_t) privdata];

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        return;                 /* lost, or an error the connection logs */
    }

    for (i = 0; i < rep->elements; i++) {
        g = rep->element[i];
        if (g->type != REDIS_REPLY_ARRAY) {
            continue;
        }
        for (j = 0; j + 1 < g->elements; j += 2) {
            f = g->element[j];
            v = g->element[j + 1];
            if (f->type != REDIS_REPLY_STRING) {
                continue;
            }
            if (strcmp(f->str, "name") == 0
                && (v->type != REDIS_REPLY_STRING
                    || strcmp(v->str, EBD_GROUP) != 0))
            {
                break;          /* another group */
            }
            if (strcmp(f->str, "pending") == 0
                && v->type == REDIS_REPLY_INTEGER)
            {
                pending = v->integer;
            }
            /* nil when Redis cannot tell (entries deleted in between) */
            if (strcmp(f->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER) {
                lag = v->integer;
            }
        }
        if (pending >= 0) {
            break;
        }
    }

    if (pending < 0) {
        return;
    }

    __atomic_store_n(&k->lag, lag, __ATOMIC_RELAXED);
    __atomic_store_n(&k->pending, pending, __ATOMIC_RELAXED);
    __atomic_store_n(&k->group_ms, ebd_now_ms(), __ATOMIC_RELAXED);
}


static void
ebd_dlq_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply         *rep = reply;
    ebd_metrics_key_t  *k = &ebd_shm->routes[(uintptr_t) privdata];

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        return;
    }

    __atomic_store_n(&k->dead_letters, (int64_t) rep->integer,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&k->dlq_ms, ebd_now_ms(), __ATOMIC_RELAXED);
}


static void
ebd_groups_sum_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply         *rep = reply;
    ebd_metrics_key_t  *k = &ebd_shm->routes[(uintptr_t) privdata];

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3
        || rep->element[0]->type != REDIS_REPLY_INTEGER
        || rep->element[0]->integer != 1)
    {
        return;
    }

    __atomic_store_n(&k->lag, (int64_t) rep->element[1]->integer,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&k->pending, (int64_t) rep->element[2]->integer,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&k->group_ms, ebd_now_ms(), __ATOMIC_RELAXED);
}


static void
ebd_metrics_refresh_ordered(ebd_route_t *r, unsigned k, ebd_route_t **parts,
    unsigned n)
{
    int           argc;
    unsigned      i;
    char          nkeys[16];
    const char  **argv;

    argv = malloc((n + 5) * sizeof(char *));
    if (argv == NULL) {
        return;
    }

    snprintf(nkeys, sizeof(nkeys), "%u", n + 1);
    argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = EB_ORDER_GROUPS_LUA;
    argv[argc++] = nkeys;
    argv[argc++] = r->stream;
    for (i = 0; i < n; i++) {
        argv[argc++] = parts[i]->stream;
    }
    argv[argc++] = EBD_GROUP;

    (void) ebd_conn_command(r->cmd, ebd_groups_sum_reply,
                            (void *) (uintptr_t) k, argc, argv, NULL);
    free(argv);
}


/* On the bus's command connection, pipelined with its acknowledgements:
 * the replies come back through the loop like theirs. */
static void
ebd_metrics_refresh(ebd_disp_t *dp)
{
    size_t         i;
    unsigned       k, nparts;
    ebd_route_t   *r, **parts;
    const char    *groups[] = { "XINFO", "GROUPS", NULL };
    const char   *xlen[] = { "XLEN", NULL };

    for (i = 0; i < dp->nroutes; i++) {
        r = dp->routes[i];
        k = ebd_key_index(r);

        /* the stream exists once the group does: no "no such key" */
        if (k >= EBD_METRICS_ROUTES || !r->group_ok || r->cmd == NULL
            || !r->cmd->ready)
        {
            continue;
        }

        if (r->order) {
            continue;           /* with its target's stream, below */
        }

        parts = ebd_order_routes(dp, r, &nparts);
        groups[2] = r->stream;
        xlen[1] = r->dlq;
        if (parts) {
            ebd_metrics_refresh_ordered(r, k, parts, nparts);
        } else {
            (void) ebd_conn_command(r->cmd, ebd_groups_reply,
                                    (void *) (uintptr_t) k, 3, groups, NULL);
        }
        (void) ebd_conn_command(r->cmd, ebd_dlq_reply,
                                (void *) (uintptr_t) k, 2, xlen, NULL);
    }
}


static void
ebd_metrics_gauges_zero(void)
{
    unsigned  i, n;

    memset(ebd_self->redis, 0, sizeof(ebd_self->redis));

    /* a worker that starts (again) holds nothing in memory */
    n = __atomic_load_n(&ebd_shm->nroutes, __ATOMIC_ACQUIRE);
    for (i = 0; i <= n && i <= EBD_METRICS_ROUTES; i++) {
        __atomic_store_n(&ebd_self->routes[i].waiting, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&ebd_self->routes[i].circuit_open, 0,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&ebd_self->routes[i].paused, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&ebd_self->routes[i].partitions, 0,
                         __ATOMIC_RELAXED);
    }
}


int
ebd_metrics_start(ebd_disp_t *dp)
{
    ebd_metrics_gauges_zero();
    ebd_last_refresh_ms = 0;

    if (ebd_listen_fd < 0) {
        return 0;
    }

    if (ebd_metrics_http_start(dp->base, ebd_listen_fd) != 0) {
        ebd_log(EBD_LOG_ERROR, "ebd: --metrics %s: cannot listen on the "
                "loop", dp->opts->metrics);
        return -1;
    }

    if (ebd_self_index == 0) {
        ebd_log(EBD_LOG_INFO, "ebd: metrics on http://%s/metrics",
                dp->opts->metrics);
    }

    return 0;
}


void
ebd_metrics_tick(ebd_disp_t *dp)
{
    size_t      i;
    uint64_t    now, st[2][2];
    ebd_conn_t  *c;

    memset(st, 0, sizeof(st));

    for (i = 0; i < dp->nroutes; i++) {
        if ((c = dp->routes[i]->reader) != NULL) {
            st[EBD_M_READER][c->ready ? 0 : 1]++;
        }
    }

    for (i = 0; i < dp->nbuses; i++) {
        c = dp->buses[i]->cmd;
        st[EBD_M_COMMAND][c->ready ? 0 : 1]++;
    }

    for (i = 0; i < 4; i++) {
        __atomic_store_n(&ebd_self->redis[i / 2][i % 2], st[i / 2][i % 2],
                         __ATOMIC_RELAXED);
    }

    if (ebd_self_index != 0 || dp->state != EBD_RUNNING) {
        return;
    }

    now = ebd_now_ms();
    if (now - ebd_last_refresh_ms >= EBD_METRICS_REFRESH_MS) {
        ebd_last_refresh_ms = now;
        ebd_metrics_refresh(dp);
    }
}


void
ebd_metrics_stop(ebd_disp_t *dp)
{
    ebd_metrics_http_stop();
    ebd_metrics_gauges_zero();
}
