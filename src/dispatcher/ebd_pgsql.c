/*
 * The `postgresql` target with libpq: one row per event, multi-row
 * INSERTs sent with PQsendQueryParams (every value a text parameter of
 * unspecified type, so the server converts it to the column's type; one
 * round trip, nothing to prepare). See ebd_sql.h for the pool, batches
 * and outcomes.
 *
 * Connections use client_encoding UTF8 and the target's timeout three
 * ways: connect_timeout (whole seconds, at least 2, libpq's minimum),
 * statement_timeout on the server, and a deadline while waiting for the
 * answer (timeout + 2 s) for a server that stops answering; TCP keepalives
 * and tcp_user_timeout bound a write to a vanished host. Notices are not
 * printed.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "ebd_sql.h"


typedef struct {
    PGconn        *pg;
    const char   **values;
    size_t         nvalues;
} ebd_pgsql_conn_t;


static void
ebd_pgsql_notice(void *arg, const char *message)
{
    /* not on stderr, which is ebd's log */
}


static void
ebd_pgsql_disconnect(void *conn)
{
    ebd_pgsql_conn_t  *c = conn;

    PQfinish(c->pg);
    free(c->values);
    free(c);
}


static void *
ebd_pgsql_connect(ebd_sql_t *s, char *err, size_t errlen)
{
    ebd_pgsql_conn_t  *c;
    const char        *kw[20], *val[20];
    char               port[16], cto[16], opts[64], uto[32];
    char               msg[EBD_SQL_ERRLEN];
    int                n = 0;
    unsigned           timeout;

    c = calloc(1, sizeof(ebd_pgsql_conn_t));
    if (c == NULL) {
        ebd_sql_errcpy(err, errlen, "out of memory");
        return NULL;
    }

    snprintf(port, sizeof(port), "%u", s->port);
    timeout = ebd_sql_timeout_s(s, 2);
    snprintf(cto, sizeof(cto), "%u", timeout);

    kw[n] = "host";              val[n++] = s->host;
    kw[n] = "port";              val[n++] = port;
    kw[n] = "user";              val[n++] = s->user;
    if (s->password[0]) {
        kw[n] = "password";      val[n++] = s->password;
    }
    kw[n] = "dbname";            val[n++] = s->database;
    kw[n] = "client_encoding";   val[n++] = "UTF8";
    kw[n] = "application_name";  val[n++] = "ebd";
    kw[n] = "keepalives";        val[n++] = "1";
    /* "tls": libpq's sslmode has the same names */
    if (s->tls_mode) {
        kw[n] = "sslmode";       val[n++] = s->tls_mode;
    }
    if (s->tls_ca) {
        kw[n] = "sslrootcert";   val[n++] = s->tls_ca;
    }
    if (s->tls_cert) {
        kw[n] = "sslcert";       val[n++] = s->tls_cert;
        kw[n] = "sslkey";        val[n++] = s->tls_key;
    }
    if (timeout) {
        snprintf(opts, sizeof(opts), "-c statement_timeout=%llu",
                 (unsigned long long) s->timeout_ms);
        snprintf(uto, sizeof(uto), "%llu",
                 (unsigned long long) s->timeout_ms + 2000);
        kw[n] = "connect_timeout";   val[n++] = cto;
        kw[n] = "options";           val[n++] = opts;
        kw[n] = "tcp_user_timeout";  val[n++] = uto;
    }
    kw[n] = NULL;                val[n] = NULL;

    c->pg = PQconnectdbParams(kw, val, 0);

    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        ebd_sql_errcpy(msg, sizeof(msg),
                       c->pg ? PQerrorMessage(c->pg) : "out of memory");
        snprintf(err, errlen, "cannot connect to %s:%u: %s", s->host,
                 s->port, msg);
        PQfinish(c->pg);
        free(c);
        return NULL;
    }

    PQsetNoticeProcessor(c->pg, ebd_pgsql_notice, NULL);

    return c;
}


/* Waits until a result can be read without blocking; 0, or -1 (err). */
static int
ebd_pgsql_wait(ebd_sql_t *s, PGconn *pg, int64_t deadline, char *err,
    size_t errlen)
{
    struct pollfd  pfd;
    int64_t        left;
    int            rc;

    while (PQisBusy(pg)) {
        pfd.fd = PQsocket(pg);
        pfd.events = POLLIN;
        pfd.revents = 0;

        if (pfd.fd < 0) {
            ebd_sql_errcpy(err, errlen, "connection lost");
            return -1;
        }

        left = deadline ? deadline - (int64_t) (ebd_mono_us() / 1000) : -1;
        if (deadline && left <= 0) {
            snprintf(err, errlen, "no answer within %llu ms",
                     (unsigned long long) s->timeout_ms + 2000);
            return -1;
        }

        rc = poll(&pfd, 1, left > 0 && left < 60000 ? (int) left
                            : deadline ? 60000 : -1);
        if (rc < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return -1;
        }

        if (rc > 0 && !PQconsumeInput(pg)) {
            ebd_sql_errcpy(err, errlen, PQerrorMessage(pg));
            return -1;
        }
    }

    return 0;
}


static ebd_sql_rc_t
ebd_pgsql_insert(ebd_sql_t *s, void *conn, ebd_sql_row_t **rows, size_t n,
    const char *sql, int *status, char *err, size_t errlen)
{
    ebd_pgsql_conn_t  *c = conn;
    PGresult          *res;
    const char       **v, *state, *msg;
    size_t             r, col, np;
    int64_t            deadline;
    ebd_sql_rc_t       rc = EBD_SQL_OK;
    char               line[EBD_SQL_ERRLEN];

    np = n * s->ncolumns;
    if (c->nvalues < np) {
        v = realloc(c->values, np * sizeof(char *));
        if (v == NULL) {
            ebd_sql_errcpy(err, errlen, "out of memory");
            return EBD_SQL_FAIL;
        }
        c->values = v;
        c->nvalues = np;
    }

    v = c->values;
    for (r = 0; r < n; r++) {
        for (col = 0; col < s->ncolumns; col++) {
            *v++ = rows[r]->value[col];          /* NULL is SQL NULL */
        }
    }

    if (!PQsendQueryParams(c->pg, sql, (int) np, NULL, c->values, NULL, NULL,
                           0))
    {
        ebd_sql_errcpy(err, errlen, PQerrorMessage(c->pg));
        return EBD_SQL_FAIL;
    }

    deadline = s->timeout_ms ? (int64_t) (ebd_mono_us() / 1000) + (int64_t) s->timeout_ms
                               + 2000
                             : 0;

    /* every result until NULL, the first error decides */
    for ( ;; ) {
        if (ebd_pgsql_wait(s, c->pg, deadline, err, errlen) != 0) {
            return EBD_SQL_FAIL;
        }

        res = PQgetResult(c->pg);
        if (res == NULL) {
            break;
        }

        switch (PQresultStatus(res)) {
        case PGRES_COMMAND_OK:
            break;

        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
            if (rc != EBD_SQL_OK) {
                break;
            }

            state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            ebd_sql_errcpy(line, sizeof(line),
                           msg ? msg : PQresultErrorMessage(res));
            snprintf(err, errlen, "postgresql error %s: %s",
                     state ? state : "?", line);

            /* 23505 unique_violation; class 22 data exception, 23
             * integrity constraint violation */
            rc = state && strcmp(state, "23505") == 0 ? EBD_SQL_DUPLICATE
                 : state && (strncmp(state, "22", 2) == 0
                             || strncmp(state, "23", 2) == 0)
                 ? EBD_SQL_DATA : EBD_SQL_FAIL;
            break;

        default:
            if (rc == EBD_SQL_OK) {
                snprintf(err, errlen, "unexpected result %s",
                         PQresStatus(PQresultStatus(res)));
                rc = EBD_SQL_FAIL;
            }
            break;
        }

        PQclear(res);
    }

    if (rc == EBD_SQL_OK && PQstatus(c->pg) != CONNECTION_OK) {
        ebd_sql_errcpy(err, errlen, PQerrorMessage(c->pg));
        rc = EBD_SQL_FAIL;
    }

    *status = 0;
    return rc;
}


static const ebd_sql_ops_t  ebd_pgsql_ops = {
    "postgresql",
    5432,
    '"',
    1,
    NULL,
    NULL,
    NULL,
    ebd_pgsql_connect,
    ebd_pgsql_insert,
    ebd_pgsql_disconnect
};


static int
ebd_pgsql_open(ebd_target_t *t, char *err, size_t errlen)
{
    return ebd_sql_open(t, &ebd_pgsql_ops, err, errlen);
}


const ebd_driver_t  ebd_postgresql_driver = {
    "postgresql",
    ebd_pgsql_open,
    ebd_sql_deliver,
    ebd_sql_close,
    0                           /* t->wants_tree: ebd_sql.c */
};
