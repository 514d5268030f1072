/*
 * The `mysql` target (MySQL, MariaDB) with MariaDB Connector/C: one row
 * per event, prepared multi-row INSERTs with every value a bound string
 * parameter (ebd_sql.h: pool, batches, outcomes).
 *
 * Connections use utf8mb4, autocommit, STRICT_ALL_TABLES added to the
 * session's sql_mode (a value too long for its column, or otherwise
 * invalid, is an error, dead-lettered with the server's message, never
 * silently truncated or zeroed; the server's other modes kept), the
 * target's timeout as connect,
 * read and write timeout, no automatic reconnect (the library's would
 * silently drop the prepared statements; ebd_sql.c reconnects after any
 * error that is not about a row's data: CR_SERVER_GONE_ERROR,
 * CR_SERVER_LOST, a restarted server, ...) and no LOAD DATA LOCAL.
 * Each connection keeps its last few prepared statements (one per batch
 * size).
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>
#include <errmsg.h>

#include "ebd_sql.h"


#define EBD_MYSQL_STMTS  4

/* appended to the session's modes, whatever the server's default */
#define EBD_MYSQL_STRICT                                                      \
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM "                              \
    "CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'))"


typedef struct {
    MYSQL_STMT     *stmt;
    size_t          rows;
    uint64_t        used;
} ebd_mysql_stmt_t;


typedef struct {
    MYSQL              *mysql;
    ebd_mysql_stmt_t    stmts[EBD_MYSQL_STMTS];
    uint64_t            tick;
    MYSQL_BIND         *bind;
    size_t              nbind;
} ebd_mysql_conn_t;


static pthread_once_t  ebd_mysql_once = PTHREAD_ONCE_INIT;
static int             ebd_mysql_init_rc = -1;

static my_bool         ebd_mysql_null = 1;
static my_bool         ebd_mysql_not_null = 0;


static void
ebd_mysql_library_init(void)
{
    ebd_mysql_init_rc = mysql_library_init(0, NULL, NULL) == 0 ? 0 : -1;
}


static int
ebd_mysql_global_init(void)
{
    pthread_once(&ebd_mysql_once, ebd_mysql_library_init);
    return ebd_mysql_init_rc;
}


static void
ebd_mysql_thread_start(void)
{
    mysql_thread_init();
}


static void
ebd_mysql_thread_end(void)
{
    mysql_thread_end();
}


/* A row's data or a constraint (reject), or anything else (retry). */
static ebd_sql_rc_t
ebd_mysql_class(unsigned no, const char *sqlstate)
{
    if (no >= 2000 && no < 3000) {
        return EBD_SQL_FAIL;               /* the client's: connection */
    }

    switch (no) {
    case 1062:     /* ER_DUP_ENTRY */
    case 1169:     /* ER_DUP_UNIQUE */
    case 1586:     /* ER_DUP_ENTRY_WITH_KEY_NAME */
    case 1859:     /* ER_DUP_UNKNOWN_IN_INDEX */
        return EBD_SQL_DUPLICATE;
    }

    if (sqlstate
        && (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0))
    {
        return EBD_SQL_DATA;
    }

    switch (no) {
    case 1048:     /* ER_BAD_NULL_ERROR */
    case 1216:     /* ER_NO_REFERENCED_ROW */
    case 1217:     /* ER_ROW_IS_REFERENCED */
    case 1264:     /* ER_WARN_DATA_OUT_OF_RANGE */
    case 1265:     /* WARN_DATA_TRUNCATED */
    case 1292:     /* ER_TRUNCATED_WRONG_VALUE */
    case 1366:     /* ER_TRUNCATED_WRONG_VALUE_FOR_FIELD */
    case 1367:     /* ER_ILLEGAL_VALUE_FOR_TYPE */
    case 1406:     /* ER_DATA_TOO_LONG */
    case 1451:     /* ER_ROW_IS_REFERENCED_2 */
    case 1452:     /* ER_NO_REFERENCED_ROW_2 */
    case 1557:     /* ER_FOREIGN_DUPLICATE_KEY */
    case 1690:     /* ER_DATA_OUT_OF_RANGE */
    case 3819:     /* MySQL: ER_CHECK_CONSTRAINT_VIOLATED */
    case 4025:     /* MariaDB: ER_CONSTRAINT_FAILED */
        return EBD_SQL_DATA;
    }

    return EBD_SQL_FAIL;
}


static void
ebd_mysql_disconnect(void *conn)
{
    ebd_mysql_conn_t  *c = conn;
    size_t             i;

    for (i = 0; i < EBD_MYSQL_STMTS; i++) {
        if (c->stmts[i].stmt) {
            mysql_stmt_close(c->stmts[i].stmt);
        }
    }

    mysql_close(c->mysql);
    free(c->bind);
    free(c);
}


/* "tls": require encrypts (refusing a server without TLS); verify-full
 * also checks the server's certificate against "ca" and its name
 * against the host (Connector/C checks both under one option) */
static void
ebd_mysql_tls(MYSQL *mysql, const ebd_sql_t *s)
{
    my_bool  yes = 1, no = 0;

    if (s->tls_mode == NULL || strcmp(s->tls_mode, "disable") == 0) {
        return;
    }

    mysql_options(mysql, MYSQL_OPT_SSL_ENFORCE, &yes);
    mysql_options(mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT,
                  strcmp(s->tls_mode, "verify-full") == 0 ? &yes : &no);

    if (s->tls_ca) {
        mysql_options(mysql, MYSQL_OPT_SSL_CA, s->tls_ca);
    }
    if (s->tls_cert) {
        mysql_options(mysql, MYSQL_OPT_SSL_CERT, s->tls_cert);
        mysql_options(mysql, MYSQL_OPT_SSL_KEY, s->tls_key);
    }
}


static void *
ebd_mysql_connect(ebd_sql_t *s, char *err, size_t errlen)
{
    ebd_mysql_conn_t  *c;
    unsigned int       timeout, off = 0;
    my_bool            no = 0;
    char               msg[EBD_SQL_ERRLEN];

    c = calloc(1, sizeof(ebd_mysql_conn_t));
    if (c == NULL || (c->mysql = mysql_init(NULL)) == NULL) {
        free(c);
        ebd_sql_errcpy(err, errlen, "out of memory");
        return NULL;
    }

    timeout = ebd_sql_timeout_s(s, 1);
    mysql_options(c->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(c->mysql, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(c->mysql, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    mysql_options(c->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(c->mysql, MYSQL_OPT_RECONNECT, &no);
    mysql_options(c->mysql, MYSQL_OPT_LOCAL_INFILE, &off);
    ebd_mysql_tls(c->mysql, s);

    if (mysql_real_connect(c->mysql, s->host, s->user, s->password,
                           s->database, s->port, NULL, 0) == NULL
        || mysql_autocommit(c->mysql, 1) != 0
        || mysql_query(c->mysql, EBD_MYSQL_STRICT) != 0)
    {
        ebd_sql_errcpy(msg, sizeof(msg), mysql_error(c->mysql));
        snprintf(err, errlen, "cannot connect to %s:%u: mysql error %u: %s",
                 s->host, s->port, mysql_errno(c->mysql), msg);
        mysql_close(c->mysql);
        free(c);
        return NULL;
    }

    return c;
}


static void
ebd_mysql_error(MYSQL_STMT *stmt, int *status, char *err, size_t errlen)
{
    char  msg[EBD_SQL_ERRLEN];

    ebd_sql_errcpy(msg, sizeof(msg), mysql_stmt_error(stmt));
    *status = (int) mysql_stmt_errno(stmt);
    snprintf(err, errlen, "mysql error %u (%s): %s", mysql_stmt_errno(stmt),
             mysql_stmt_sqlstate(stmt), msg);
}


/* The prepared statement for n rows: cached, or prepared now. */
static MYSQL_STMT *
ebd_mysql_stmt(ebd_mysql_conn_t *c, size_t n, const char *sql,
    ebd_sql_rc_t *rc, int *status, char *err, size_t errlen)
{
    size_t         i, lru = 0;
    MYSQL_STMT    *stmt;

    for (i = 0; i < EBD_MYSQL_STMTS; i++) {
        if (c->stmts[i].stmt && c->stmts[i].rows == n) {
            c->stmts[i].used = ++c->tick;
            return c->stmts[i].stmt;
        }

        if (c->stmts[i].used < c->stmts[lru].used) {
            lru = i;
        }
    }

    if (c->stmts[lru].stmt) {
        mysql_stmt_close(c->stmts[lru].stmt);
        c->stmts[lru].stmt = NULL;
    }

    stmt = mysql_stmt_init(c->mysql);
    if (stmt == NULL) {
        *rc = EBD_SQL_FAIL;
        ebd_sql_errcpy(err, errlen, "out of memory");
        return NULL;
    }

    if (mysql_stmt_prepare(stmt, sql, strlen(sql)) != 0) {
        ebd_mysql_error(stmt, status, err, errlen);
        /* a missing table or column is not about a row: retried */
        *rc = EBD_SQL_FAIL;
        mysql_stmt_close(stmt);
        return NULL;
    }

    c->stmts[lru].stmt = stmt;
    c->stmts[lru].rows = n;
    c->stmts[lru].used = ++c->tick;

    return stmt;
}


static ebd_sql_rc_t
ebd_mysql_insert(ebd_sql_t *s, void *conn, ebd_sql_row_t **rows, size_t n,
    const char *sql, int *status, char *err, size_t errlen)
{
    ebd_mysql_conn_t  *c = conn;
    MYSQL_STMT        *stmt;
    MYSQL_BIND        *b;
    size_t             r, col, np;
    ebd_sql_rc_t       rc = EBD_SQL_FAIL;

    stmt = ebd_mysql_stmt(c, n, sql, &rc, status, err, errlen);
    if (stmt == NULL) {
        return rc;
    }

    np = n * s->ncolumns;
    if (mysql_stmt_param_count(stmt) != np) {
        snprintf(err, errlen, "the INSERT has %lu parameters, not %zu",
                 mysql_stmt_param_count(stmt), np);
        return EBD_SQL_FAIL;
    }

    if (c->nbind < np) {
        b = realloc(c->bind, np * sizeof(MYSQL_BIND));
        if (b == NULL) {
            ebd_sql_errcpy(err, errlen, "out of memory");
            return EBD_SQL_FAIL;
        }
        c->bind = b;
        c->nbind = np;
    }

    memset(c->bind, 0, np * sizeof(MYSQL_BIND));
    b = c->bind;

    /* every value a string parameter: the server converts it */
    for (r = 0; r < n; r++) {
        for (col = 0; col < s->ncolumns; col++, b++) {
            b->buffer_type = MYSQL_TYPE_STRING;
            if (rows[r]->value[col] == NULL) {
                b->is_null = &ebd_mysql_null;

            } else {
                b->buffer = (void *) rows[r]->value[col];
                b->buffer_length = rows[r]->length[col];
                b->length = &rows[r]->length[col];
                b->is_null = &ebd_mysql_not_null;
            }
        }
    }

    if (mysql_stmt_bind_param(stmt, c->bind) != 0) {
        ebd_mysql_error(stmt, status, err, errlen);
        return EBD_SQL_FAIL;
    }

    if (mysql_stmt_execute(stmt) != 0) {
        ebd_mysql_error(stmt, status, err, errlen);
        return ebd_mysql_class(mysql_stmt_errno(stmt),
                               mysql_stmt_sqlstate(stmt));
    }

    return EBD_SQL_OK;
}


static const ebd_sql_ops_t  ebd_mysql_ops = {
    "mysql",
    3306,
    '`',
    0,
    ebd_mysql_global_init,
    ebd_mysql_thread_start,
    ebd_mysql_thread_end,
    ebd_mysql_connect,
    ebd_mysql_insert,
    ebd_mysql_disconnect
};


static int
ebd_mysql_open(ebd_target_t *t, char *err, size_t errlen)
{
    return ebd_sql_open(t, &ebd_mysql_ops, err, errlen);
}


const ebd_driver_t  ebd_mysql_driver = {
    "mysql",
    ebd_mysql_open,
    ebd_sql_deliver,
    ebd_sql_close,
    0                           /* t->wants_tree: ebd_sql.c */
};
