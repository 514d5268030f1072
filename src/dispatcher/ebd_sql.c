/*
 * The SQL targets' common part (ebd_sql.h says what and why): reading the
 * configuration, the INSERT text, the row queue, the worker threads and
 * their batches, and the hand-back of outcomes (and log messages) to the
 * loop thread.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "eb_buf.h"
#include "eb_jsonpath.h"
#include "eb_transform.h"
#include "ebd_log.h"
#include "ebd_secret.h"
#include "ebd_sql.h"


#define EBD_SQL_DEFAULT_POOL    2
#define EBD_SQL_DEFAULT_BATCH   100
#define EBD_SQL_MAX_PARAMS      65535       /* both protocols: 16 bits */
#define EBD_SQL_BATCH_BYTES     (4u << 20)  /* values per statement, about */


typedef struct ebd_sql_msg_s  ebd_sql_msg_t;

struct ebd_sql_msg_s {
    ebd_sql_msg_t     *next;
    ebd_log_level_t    level;
    char               text[400];
};


typedef struct ebd_sql_ctx_s     ebd_sql_ctx_t;

typedef struct {
    ebd_sql_ctx_t     *ctx;
    unsigned           id;                 /* 1, 2, ... for the log */
    pthread_t          thread;
    void              *conn;               /* NULL: connect on next batch */
    int                down;               /* the last connect failed */
    ebd_sql_row_t    **rows;               /* [max_rows] */
    eb_buf_t           sql;                /* the INSERT text ... */
    size_t             sql_rows;           /* ... for this many rows */
} ebd_sql_worker_t;


struct ebd_sql_ctx_s {
    ebd_sql_t            s;                /* first: t->data is both */

    const char          *name;
    char                *head;             /* INSERT INTO t (a,b) VALUES */
    char                *password;         /* ebd_secret_load(); s.password */
    eb_jsonpath_t      **paths;            /* [ncolumns] */
    size_t              *offs;             /* [ncolumns], deliver()'s */
    eb_buf_t             vals;             /* deliver()'s scratch */
    size_t               max_rows;

    pthread_mutex_t      lock;
    pthread_cond_t       cond;
    int                  stopping;
    ebd_sql_row_t       *pending;          /* FIFO, loop thread only */
    ebd_sql_row_t      **pending_tail;
    struct event        *flush_ev;         /* pending -> queue */
    ebd_sql_row_t       *queue;            /* FIFO, under lock */
    ebd_sql_row_t      **queue_tail;
    ebd_sql_row_t       *done;             /* FIFO, under lock */
    ebd_sql_row_t      **done_tail;
    ebd_sql_msg_t       *msgs;             /* FIFO, under lock */
    ebd_sql_msg_t      **msgs_tail;
    struct event        *done_ev;

    ebd_sql_worker_t    *workers;
    unsigned             nworkers;         /* started */
    unsigned             pool;
};


void
ebd_sql_errcpy(char *err, size_t errlen, const char *msg)
{
    size_t  n;

    if (errlen == 0) {
        return;
    }

    if (msg == NULL) {
        msg = "unknown error";
    }

    n = strcspn(msg, "\r\n");
    while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\t')) {
        n--;
    }

    if (n >= errlen) {
        n = errlen - 1;
    }

    memcpy(err, msg, n);
    err[n] = '\0';
}


unsigned
ebd_sql_timeout_s(const ebd_sql_t *s, unsigned min)
{
    uint64_t  sec;

    if (s->timeout_ms == 0) {
        return 0;                          /* none */
    }

    sec = (s->timeout_ms + 999) / 1000;
    if (sec < min) {
        sec = min;
    }

    return sec > 86400 * 365 ? 86400 * 365 : (unsigned) sec;
}


/* --- the loop side ------------------------------------------------------- */

/* Workers' messages and outcomes, on the loop thread. */
static void
ebd_sql_done_handler(evutil_socket_t fd, short events, void *arg)
{
    ebd_sql_ctx_t    *ctx = arg;
    ebd_sql_row_t    *row, *next;
    ebd_sql_msg_t    *m, *mnext;
    ebd_delivery_t   *d;
    ebd_result_t      r;

    pthread_mutex_lock(&ctx->lock);
    row = ctx->done;
    ctx->done = NULL;
    ctx->done_tail = &ctx->done;
    m = ctx->msgs;
    ctx->msgs = NULL;
    ctx->msgs_tail = &ctx->msgs;
    pthread_mutex_unlock(&ctx->lock);

    for ( /* void */ ; m; m = mnext) {
        mnext = m->next;
        ebd_log(m->level, "%s", m->text);
        free(m);
    }

    /* ctx is not touched after the first ebd_delivery_done(): the core
     * may close the target from there once nothing is in flight */

    for ( /* void */ ; row; row = next) {
        next = row->next;
        d = row->delivery;
        r = row->result;
        free(row);
        ebd_delivery_done(d, &r);
    }
}


/* A worker's log message, logged by the loop thread. */
static void
ebd_sql_note(ebd_sql_ctx_t *ctx, ebd_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
ebd_sql_note(ebd_sql_ctx_t *ctx, ebd_log_level_t level, const char *fmt, ...)
{
    va_list         ap;
    ebd_sql_msg_t  *m;

    if (level > ebd_log_level) {
        return;
    }

    m = malloc(sizeof(ebd_sql_msg_t));
    if (m == NULL) {
        return;
    }

    m->next = NULL;
    m->level = level;
    va_start(ap, fmt);
    vsnprintf(m->text, sizeof(m->text), fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&ctx->lock);
    *ctx->msgs_tail = m;
    ctx->msgs_tail = &m->next;
    pthread_mutex_unlock(&ctx->lock);

    event_active(ctx->done_ev, EV_READ, 0);
}


/* Column i's value as the scan found it (ebd_target.h: scan_paths), as
 * eb_jsonpath_text() writes it from a tree; EB_JSONPATH_ERROR with
 * b->failed unset: an object or array, which the tree writes. */
static eb_jsonpath_rc_t
ebd_sql_scanned(const ebd_delivery_t *d, size_t i, eb_buf_t *b)
{
    return d->scan ? eb_event_scan_text(d->scan, i, b) : EB_JSONPATH_MISSING;
}


/* The row of a delivery: every column's value as text, in one block. */
static ebd_sql_row_t *
ebd_sql_make_row(ebd_sql_ctx_t *ctx, ebd_delivery_t *d)
{
    size_t             i, n, size;
    char              *p;
    yajl_val           tree, own = NULL;
    eb_buf_t          *b = &ctx->vals;
    ebd_sql_row_t     *row;
    eb_jsonpath_rc_t   rc;

    n = ctx->s.ncolumns;
    eb_buf_reset(b);
    tree = d->tree;

    for (i = 0; i < n; i++) {
        ctx->offs[i] = b->len;

        if (tree == NULL) {
            rc = ebd_sql_scanned(d, i, b);
            if (rc == EB_JSONPATH_ERROR && !b->failed) {
                /* an object or array: as the tree writes it */
                tree = eb_transform_parse_event(d->event, d->event_len,
                                                NULL, 0);
                if (tree == NULL) {
                    goto failed;
                }
                own = tree;
                rc = eb_jsonpath_text(ctx->paths[i], tree, b);
            }

        } else {
            rc = eb_jsonpath_text(ctx->paths[i], tree, b);
        }

        switch (rc) {
        case EB_JSONPATH_FOUND:
            if (eb_buf_append(b, "", 1) != 0) {
                return NULL;
            }
            break;

        case EB_JSONPATH_MISSING:
        case EB_JSONPATH_NULL:
            /* SQL NULL: mark it, drop the text "null" */
            b->len = ctx->offs[i];
            ctx->offs[i] = (size_t) -1;
            break;

        default:
            goto failed;
        }
    }

    if (own) {
        yajl_tree_free(own);
    }

    if (b->failed) {
        return NULL;
    }

    size = sizeof(ebd_sql_row_t) + n * (sizeof(char *) + sizeof(unsigned long))
           + b->len;
    row = malloc(size);
    if (row == NULL) {
        return NULL;
    }

    memset(row, 0, sizeof(ebd_sql_row_t));
    row->delivery = d;
    row->bytes = b->len;
    row->value = (const char **) (row + 1);
    row->length = (unsigned long *) (row->value + n);
    p = (char *) (row->length + n);
    if (b->len) {
        memcpy(p, b->data, b->len);
    }

    for (i = 0; i < n; i++) {
        if (ctx->offs[i] == (size_t) -1) {
            row->value[i] = NULL;
            row->length[i] = 0;

        } else {
            row->value[i] = p + ctx->offs[i];
            row->length[i] = strlen(row->value[i]);
        }
    }

    return row;

failed:

    if (own) {
        yajl_tree_free(own);
    }

    return NULL;
}


void
ebd_sql_deliver(ebd_target_t *t, ebd_delivery_t *d)
{
    ebd_sql_ctx_t  *ctx = t->data;
    ebd_sql_row_t  *row;
    ebd_result_t    r;

    row = ebd_sql_make_row(ctx, d);
    if (row == NULL) {
        ebd_result_set(&r, EBD_RETRY, 0, "out of memory");
        ebd_delivery_done(d, &r);
        return;
    }

    /* handed to the workers once the loop is done with this callback, so
     * the rows of one stream read wake one worker as one batch, rather
     * than each row waking a worker that finds only itself waiting */

    if (ctx->pending == NULL) {
        event_active(ctx->flush_ev, EV_READ, 0);
    }

    *ctx->pending_tail = row;
    ctx->pending_tail = &row->next;
}


static void
ebd_sql_flush_handler(evutil_socket_t fd, short what, void *arg)
{
    ebd_sql_ctx_t  *ctx = arg;

    if (ctx->pending == NULL) {
        return;
    }

    pthread_mutex_lock(&ctx->lock);
    *ctx->queue_tail = ctx->pending;
    ctx->queue_tail = ctx->pending_tail;
    pthread_cond_signal(&ctx->cond);
    pthread_mutex_unlock(&ctx->lock);

    ctx->pending = NULL;
    ctx->pending_tail = &ctx->pending;
}


/* --- the workers --------------------------------------------------------- */

/* The INSERT for n rows: head, then (?,?),(?,?) or ($1,$2),($3,$4). */
static int
ebd_sql_text(ebd_sql_worker_t *w, size_t n)
{
    ebd_sql_ctx_t  *ctx = w->ctx;
    eb_buf_t       *b = &w->sql;
    size_t          r, c, k;
    char            num[32];

    if (w->sql_rows == n && !b->failed) {
        return 0;
    }

    eb_buf_reset(b);
    w->sql_rows = 0;
    eb_buf_append_str(b, ctx->head);

    k = 1;
    for (r = 0; r < n; r++) {
        eb_buf_append_str(b, r ? ",(" : "(");
        for (c = 0; c < ctx->s.ncolumns; c++) {
            if (c) {
                eb_buf_append(b, ",", 1);
            }

            if (ctx->s.ops->numbered) {
                snprintf(num, sizeof(num), "$%zu", k++);
                eb_buf_append_str(b, num);

            } else {
                eb_buf_append(b, "?", 1);
            }
        }
        eb_buf_append(b, ")", 1);
    }

    if (eb_buf_append(b, "", 1) != 0) {
        eb_buf_free(b);
        return -1;
    }

    w->sql_rows = n;
    return 0;
}


static void
ebd_sql_drop(ebd_sql_worker_t *w)
{
    if (w->conn) {
        w->ctx->s.ops->disconnect(w->conn);
        w->conn = NULL;
    }
}


/* One statement for rows[0..n); fills their results on success or when
 * it fails for a reason that is not about the data. */
static ebd_sql_rc_t
ebd_sql_insert(ebd_sql_worker_t *w, ebd_sql_row_t **rows, size_t n,
    int *status, char *err, size_t errlen)
{
    ebd_sql_ctx_t      *ctx = w->ctx;
    const ebd_sql_t    *s = &ctx->s;
    ebd_sql_rc_t        rc;
    size_t              i;

    *status = 0;
    err[0] = '\0';

    if (ebd_sql_text(w, n) != 0) {
        ebd_sql_errcpy(err, errlen, "out of memory");
        rc = EBD_SQL_FAIL;

    } else {
        rc = s->ops->insert(&ctx->s, w->conn, rows, n,
                            (const char *) w->sql.data, status, err, errlen);
    }

    switch (rc) {
    case EBD_SQL_OK:
        for (i = 0; i < n; i++) {
            ebd_result_set(&rows[i]->result, EBD_DELIVERED, 0, NULL);
        }
        break;

    case EBD_SQL_FAIL:
        ebd_sql_note(ctx, EBD_LOG_WARN, "target %s: %s connection %u: %s; "
                     "%zu row(s) to retry, reconnecting", ctx->name,
                     s->ops->type, w->id, err, n);
        ebd_sql_drop(w);
        for (i = 0; i < n; i++) {
            ebd_result_set(&rows[i]->result, EBD_RETRY, *status, "%s", err);
        }
        break;

    default:
        break;
    }

    return rc;
}



/* A row the database refused: a dead letter, or, for a duplicate key
 * with "on_duplicate": "ignore", delivered (the row is there: an event
 * delivered again after a crash). */
static void
ebd_sql_row_refused(const ebd_sql_t *s, ebd_sql_row_t *row, ebd_sql_rc_t rc,
    int status, const char *err)
{
    if (rc == EBD_SQL_DUPLICATE && s->ignore_duplicates) {
        ebd_result_set(&row->result, EBD_DELIVERED, status, NULL);
        return;
    }

    ebd_result_set(&row->result, EBD_REJECTED, status, "%s", err);
}

static void
ebd_sql_batch(ebd_sql_worker_t *w, ebd_sql_row_t **rows, size_t n)
{
    ebd_sql_ctx_t      *ctx = w->ctx;
    const ebd_sql_t    *s = &ctx->s;
    size_t              i, j;
    int                 status;
    ebd_sql_rc_t        rc;
    char                err[EBD_SQL_ERRLEN];

    if (w->conn == NULL) {
        w->conn = s->ops->connect(&ctx->s, err, sizeof(err));

        if (w->conn == NULL) {
            if (!w->down) {
                ebd_sql_note(ctx, EBD_LOG_WARN, "target %s: %s connection "
                             "%u: %s", ctx->name, s->ops->type, w->id, err);
            }
            w->down = 1;

            for (i = 0; i < n; i++) {
                ebd_result_set(&rows[i]->result, EBD_RETRY, 0, "%s", err);
            }
            return;
        }

        ebd_sql_note(ctx, w->down ? EBD_LOG_INFO : EBD_LOG_DEBUG,
                     "target %s: %s connection %u to %s:%u established",
                     ctx->name, s->ops->type, w->id, s->host, s->port);
        w->down = 0;
    }

    rc = ebd_sql_insert(w, rows, n, &status, err, sizeof(err));

    if (rc == EBD_SQL_OK) {
        ebd_sql_note(ctx, EBD_LOG_DEBUG, "target %s: %s connection %u: "
                     "%zu row(s) inserted in one statement", ctx->name,
                     s->ops->type, w->id, n);
        return;
    }

    if (rc == EBD_SQL_FAIL) {
        return;
    }

    if (n == 1) {
        ebd_sql_row_refused(s, rows[0], rc, status, err);
        return;
    }

    /* a row's data spoilt the statement: find it (them), row by row */

    ebd_sql_note(ctx, EBD_LOG_DEBUG, "target %s: %s connection %u: a batch "
                 "of %zu rows failed (%s): inserting row by row", ctx->name,
                 s->ops->type, w->id, n, err);

    for (i = 0; i < n; i++) {
        rc = ebd_sql_insert(w, &rows[i], 1, &status, err, sizeof(err));

        if (rc == EBD_SQL_DATA || rc == EBD_SQL_DUPLICATE) {
            ebd_sql_row_refused(s, rows[i], rc, status, err);

        } else if (rc == EBD_SQL_FAIL) {
            /* the connection is gone: the rest waits for the retry */
            for (j = i + 1; j < n; j++) {
                ebd_result_set(&rows[j]->result, EBD_RETRY, status, "%s",
                               err);
            }
            return;
        }
    }
}


static void *
ebd_sql_worker(void *arg)
{
    ebd_sql_worker_t   *w = arg;
    ebd_sql_ctx_t      *ctx = w->ctx;
    ebd_sql_row_t      *row, **tail;
    size_t              n, i, bytes;

    if (ctx->s.ops->thread_start) {
        ctx->s.ops->thread_start();
    }

    for ( ;; ) {
        pthread_mutex_lock(&ctx->lock);

        while (!ctx->stopping && ctx->queue == NULL) {
            pthread_cond_wait(&ctx->cond, &ctx->lock);
        }

        if (ctx->stopping) {
            pthread_mutex_unlock(&ctx->lock);
            break;
        }

        /* what waits, up to max_rows rows and about BATCH_BYTES */
        n = 0;
        bytes = 0;
        while (ctx->queue && n < ctx->max_rows
               && (n == 0 || bytes + ctx->queue->bytes <= EBD_SQL_BATCH_BYTES))
        {
            row = ctx->queue;
            ctx->queue = row->next;
            row->next = NULL;
            bytes += row->bytes;
            w->rows[n++] = row;
        }

        if (ctx->queue == NULL) {
            ctx->queue_tail = &ctx->queue;

        } else {
            /* more waits: another idle worker may take it */
            pthread_cond_signal(&ctx->cond);
        }

        pthread_mutex_unlock(&ctx->lock);

        ebd_sql_batch(w, w->rows, n);

        pthread_mutex_lock(&ctx->lock);
        tail = ctx->done_tail;
        for (i = 0; i < n; i++) {
            *tail = w->rows[i];
            tail = &w->rows[i]->next;
        }
        ctx->done_tail = tail;
        pthread_mutex_unlock(&ctx->lock);

        event_active(ctx->done_ev, EV_READ, 0);
    }

    ebd_sql_drop(w);

    if (ctx->s.ops->thread_end) {
        ctx->s.ops->thread_end();
    }

    return NULL;
}


/* --- open and close ------------------------------------------------------ */

static const char *
ebd_sql_string(yajl_val spec, const char *key, const char *dflt)
{
    yajl_val  v = eb_config_get(spec, key);

    return YAJL_IS_STRING(v) ? v->u.string : dflt;
}


static long long
ebd_sql_int(yajl_val spec, const char *key, long long dflt)
{
    yajl_val  v = eb_config_get(spec, key);

    return YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : dflt;
}


/* An identifier in quotes, the quote doubled inside. */
static void
ebd_sql_quote(eb_buf_t *b, char q, const char *name, size_t len)
{
    size_t  i;

    eb_buf_append(b, &q, 1);
    for (i = 0; i < len; i++) {
        eb_buf_append(b, &name[i], 1);
        if (name[i] == q) {
            eb_buf_append(b, &q, 1);
        }
    }
    eb_buf_append(b, &q, 1);
}


static void ebd_sql_free(ebd_sql_ctx_t *ctx);


int
ebd_sql_open(ebd_target_t *t, const ebd_sql_ops_t *ops, char *err,
    size_t errlen)
{
    yajl_val          spec = t->conf->spec, cols, tls;
    const char       *table, *dot;
    size_t            i, j, n, plen;
    unsigned          k;
    long long         v;
    eb_buf_t          b;
    ebd_sql_ctx_t    *ctx;
    sigset_t          all, old;
    char              perr[256];

    if (ops->global_init && ops->global_init() != 0) {
        snprintf(err, errlen, "%s client library initialisation failed",
                 ops->type);
        return -1;
    }

    cols = eb_config_get(spec, "columns");
    n = YAJL_IS_OBJECT(cols) ? cols->u.object.len : 0;
    if (n == 0) {
        snprintf(err, errlen, "\"columns\" maps no column");
        return -1;
    }

    for (i = 0; i < n; i++) {
        for (j = 0; j < i; j++) {
            if (strcmp(cols->u.object.keys[i], cols->u.object.keys[j]) == 0) {
                snprintf(err, errlen, "\"columns\" names column \"%s\" twice",
                         cols->u.object.keys[i]);
                return -1;
            }
        }
    }

    ctx = calloc(1, sizeof(ebd_sql_ctx_t));
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    ctx->s.target = t;
    ctx->s.ops = ops;
    ctx->s.host = ebd_sql_string(spec, "host", "localhost");
    ctx->s.port = (unsigned) ebd_sql_int(spec, "port", ops->default_port);
    ctx->s.user = ebd_sql_string(spec, "user", "");
    ctx->s.password = "";
    ctx->s.database = ebd_sql_string(spec, "database", "");
    tls = eb_config_get(spec, "tls");
    ctx->s.tls_mode = ebd_sql_string(tls, "mode", NULL);
    ctx->s.tls_ca = ebd_sql_string(tls, "ca", NULL);
    ctx->s.tls_cert = ebd_sql_string(tls, "cert", NULL);
    ctx->s.tls_key = ebd_sql_string(tls, "key", NULL);
    ctx->s.timeout_ms = t->timeout_ms;
    ctx->s.ignore_duplicates =
        strcmp(ebd_sql_string(spec, "on_duplicate", "reject"), "ignore") == 0;
    ctx->s.ncolumns = n;
    ctx->name = t->name;
    eb_buf_init(&ctx->vals);

    v = ebd_sql_int(spec, "pool", EBD_SQL_DEFAULT_POOL);
    ctx->pool = v < 1 ? 1 : v > 256 ? 256 : (unsigned) v;
    v = ebd_sql_int(spec, "batch", EBD_SQL_DEFAULT_BATCH);
    ctx->max_rows = v < 1 ? 1 : v > 10000 ? 10000 : (size_t) v;
    if (ctx->max_rows > EBD_SQL_MAX_PARAMS / n) {
        ctx->max_rows = EBD_SQL_MAX_PARAMS / n;
    }
    if (ctx->max_rows == 0) {
        snprintf(err, errlen, "\"columns\": more than %u columns",
                 EBD_SQL_MAX_PARAMS);
        goto failed;
    }

    ctx->paths = calloc(n, sizeof(eb_jsonpath_t *));
    ctx->offs = calloc(n, sizeof(size_t));
    if (ctx->paths == NULL || ctx->offs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    for (i = 0; i < n; i++) {
        const char  *p = YAJL_GET_STRING(cols->u.object.values[i]);

        ctx->paths[i] = eb_jsonpath_compile(p ? p : "", p ? strlen(p) : 0,
                                            perr, sizeof(perr));
        if (ctx->paths[i] == NULL) {
            snprintf(err, errlen, "\"columns\".\"%s\": %s",
                     cols->u.object.keys[i], perr);
            goto failed;
        }

        if (!eb_jsonpath_is_simple(ctx->paths[i])) {
            t->wants_tree = 1;
        }
    }

    /* names and indexes only (the usual columns): found while the event
     * is scanned, no tree per row */
    if (!t->wants_tree) {
        t->scan_paths = (const eb_jsonpath_t *const *) ctx->paths;
        t->nscan_paths = n;
    }

    /* INSERT INTO `db`.`t` (`a`,`b`) VALUES */
    eb_buf_init(&b);
    eb_buf_append_str(&b, "INSERT INTO ");
    table = ebd_sql_string(spec, "table", "");
    dot = strchr(table, '.');
    if (dot && strchr(dot + 1, '.') == NULL && dot != table && dot[1]) {
        ebd_sql_quote(&b, ops->quote, table, dot - table);
        eb_buf_append(&b, ".", 1);
        table = dot + 1;
    }
    ebd_sql_quote(&b, ops->quote, table, strlen(table));
    eb_buf_append_str(&b, " (");
    for (i = 0; i < n; i++) {
        if (i) {
            eb_buf_append(&b, ",", 1);
        }
        ebd_sql_quote(&b, ops->quote, cols->u.object.keys[i],
                      strlen(cols->u.object.keys[i]));
    }
    eb_buf_append_str(&b, ") VALUES ");
    if (eb_buf_append(&b, "", 1) != 0) {
        eb_buf_free(&b);
        snprintf(err, errlen, "out of memory");
        goto failed;
    }
    ctx->head = (char *) b.data;

    if (ebd_secret_load(spec, "password", &ctx->password, &plen, err, errlen)
        != 0)
    {
        goto failed;
    }
    if (ctx->password != NULL) {
        ctx->s.password = ctx->password;
    }

    ctx->pending_tail = &ctx->pending;
    ctx->queue_tail = &ctx->queue;
    ctx->done_tail = &ctx->done;
    ctx->msgs_tail = &ctx->msgs;

    ctx->flush_ev = event_new(t->base, -1, 0, ebd_sql_flush_handler, ctx);
    ctx->done_ev = event_new(t->base, -1, 0, ebd_sql_done_handler, ctx);
    ctx->workers = calloc(ctx->pool, sizeof(ebd_sql_worker_t));
    if (ctx->flush_ev == NULL || ctx->done_ev == NULL || ctx->workers == NULL)
    {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    for (k = 0; k < ctx->pool; k++) {
        ctx->workers[k].ctx = ctx;
        ctx->workers[k].id = k + 1;
        eb_buf_init(&ctx->workers[k].sql);
        ctx->workers[k].rows = calloc(ctx->max_rows, sizeof(ebd_sql_row_t *));
        if (ctx->workers[k].rows == NULL) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
    }

    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        snprintf(err, errlen, "pthread_mutex_init failed");
        goto failed;
    }

    if (pthread_cond_init(&ctx->cond, NULL) != 0) {
        pthread_mutex_destroy(&ctx->lock);
        snprintf(err, errlen, "pthread_cond_init failed");
        goto failed;
    }

    t->data = ctx;

    /* signals are the loop's: the workers block them all (and a SIGPIPE
     * from a dead server's socket then only makes the write fail) */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    for (k = 0; k < ctx->pool; k++) {
        if (pthread_create(&ctx->workers[k].thread, NULL, ebd_sql_worker,
                           &ctx->workers[k]) != 0)
        {
            break;
        }
        ctx->nworkers++;
    }

    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (ctx->nworkers == 0) {
        snprintf(err, errlen, "cannot start a worker thread: %s",
                 strerror(errno));
        t->data = NULL;
        pthread_cond_destroy(&ctx->cond);
        pthread_mutex_destroy(&ctx->lock);
        goto failed;
    }

    if (ctx->nworkers < ctx->pool) {
        ebd_log(EBD_LOG_WARN, "target %s: only %u of %u %s worker threads "
                "started", ctx->name, ctx->nworkers, ctx->pool, ops->type);
    }

    ebd_log_debug("target %s: %s %s:%u, %u connection(s), batches of up to "
                  "%zu rows", ctx->name, ops->type, ctx->s.host, ctx->s.port,
                  ctx->nworkers, ctx->max_rows);

    return 0;

failed:

    ebd_sql_free(ctx);
    return -1;
}


static void
ebd_sql_free(ebd_sql_ctx_t *ctx)
{
    size_t          i;
    ebd_sql_row_t  *row, *next;
    ebd_sql_msg_t  *m, *mnext;

    for (row = ctx->pending; row; row = next) {
        next = row->next;
        free(row);
    }

    for (row = ctx->queue; row; row = next) {
        next = row->next;
        free(row);
    }

    for (row = ctx->done; row; row = next) {
        next = row->next;
        free(row);
    }

    for (m = ctx->msgs; m; m = mnext) {
        mnext = m->next;
        free(m);
    }

    if (ctx->workers) {
        for (i = 0; i < ctx->pool; i++) {
            free(ctx->workers[i].rows);
            eb_buf_free(&ctx->workers[i].sql);
        }
        free(ctx->workers);
    }

    if (ctx->flush_ev) {
        event_free(ctx->flush_ev);
    }

    if (ctx->done_ev) {
        event_free(ctx->done_ev);
    }

    if (ctx->paths) {
        for (i = 0; i < ctx->s.ncolumns; i++) {
            if (ctx->paths[i]) {
                eb_jsonpath_free(ctx->paths[i]);
            }
        }
        free(ctx->paths);
    }

    free(ctx->offs);
    free(ctx->head);
    ebd_secret_free(ctx->password);
    eb_buf_free(&ctx->vals);
    free(ctx);
}


void
ebd_sql_close(ebd_target_t *t)
{
    ebd_sql_ctx_t  *ctx = t->data;
    unsigned        k;

    if (ctx == NULL) {
        return;
    }

    t->scan_paths = NULL;       /* ctx->paths */
    t->nscan_paths = 0;

    pthread_mutex_lock(&ctx->lock);
    ctx->stopping = 1;
    pthread_cond_broadcast(&ctx->cond);
    pthread_mutex_unlock(&ctx->lock);

    for (k = 0; k < ctx->nworkers; k++) {
        pthread_join(ctx->workers[k].thread, NULL);
    }

    /* what the workers said last */
    {
        ebd_sql_msg_t  *m;

        for (m = ctx->msgs; m; m = m->next) {
            ebd_log(m->level, "%s", m->text);
        }
    }

    if (ctx->queue || ctx->done) {
        /* the core closes a target only when nothing is in flight */
        ebd_log(EBD_LOG_ERROR, "target %s: closed with deliveries in flight",
                ctx->name);
    }

    pthread_cond_destroy(&ctx->cond);
    pthread_mutex_destroy(&ctx->lock);

    ebd_sql_free(ctx);
    t->data = NULL;
}
