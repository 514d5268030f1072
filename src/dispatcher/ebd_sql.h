/*
 * What the two SQL target drivers (mysql: ebd_mysql.c, postgresql:
 * ebd_pgsql.c) share: one row per event, a pool of worker threads with a
 * connection each, batching, error classes, identifier quoting.
 *
 * Database clients block, so a SQL target runs `pool` worker threads
 * (default 2). deliver() runs on the loop: it evaluates the column
 * JSONPaths against the event there (workers never touch the delivery)
 * and queues the row. A worker takes what waits, up to `batch` rows
 * (default 100; fewer when the statement would exceed 65535 parameters or
 * about 4 MiB of values) and inserts them with ONE multi-row INSERT whose
 * values are all bound parameters: no event content ever becomes SQL
 * text. Outcomes go back to the loop through a libevent event activated
 * from the worker (libevent runs with evthread_use_pthreads()), where
 * ebd_delivery_done() is called; workers never log themselves either,
 * they hand their messages to the loop too.
 *
 * Note the core's `concurrency` (default 16) caps the deliveries in
 * flight, hence the rows one batch can hold: batching needs a target
 * concurrency of at least batch x pool.
 *
 * Outcomes:
 *
 *  - inserted: EBD_DELIVERED for every row of the statement;
 *  - a data or constraint error (MySQL: SQLSTATE class 22 or 23 and the
 *    error numbers 1048, 1062, 1264, 1292, 1366, 1406, ...; PostgreSQL:
 *    SQLSTATE class 22 or 23): a single row is EBD_REJECTED (dead letter,
 *    no retry); a batch is retried row by row on the same connection, so
 *    only the offending events are rejected and the others inserted;
 *  - anything else (cannot connect, server gone or restarted, timeout,
 *    deadlock, a missing table or column, access denied): EBD_RETRY for
 *    every row of the statement, and the connection is closed: the next
 *    batch connects again, which also recovers from a server restart.
 *
 * A statement is atomic (InnoDB, PostgreSQL), so a failed batch leaves no
 * rows behind and the row-by-row pass inserts each good row once. (With
 * a non-transactional MySQL engine such as MyISAM a batch can fail after
 * inserting its first rows; the row-by-row pass then inserts those again.)
 *
 * Duplicate keys: delivery is at least once, so after a lost answer (a
 * timeout, a server restart between commit and reply, a crash of ebd
 * before XACK) the same event is inserted again. Without a unique key
 * that is a second row; with one it is a constraint error like any other
 * and the redelivered event goes to the dead-letter stream. It is not
 * taken as "delivered": the driver cannot tell a redelivery from a
 * different event that clashes, and a dead letter loses nothing silently
 * (there is no configuration key to choose otherwise).
 *
 * Names: `table` is one identifier, or SCHEMA.TABLE (database.table for
 * MySQL) when it holds a dot; each part and each column name is quoted
 * (MySQL `...` with ` doubled, PostgreSQL "..." with " doubled).
 *
 * Column values (eb_jsonpath_text()): a definite path gives the value as
 * text (a string's characters, other values as compact JSON: true, 12,
 * {"a":1}); a missing value and JSON null give SQL NULL; any other path
 * a JSON array of its matches. All are sent as text parameters and the
 * server converts them to the column's type.
 *
 * Timeouts (the target's `timeout`, per attempt): connect, and every
 * statement (MySQL: read/write timeouts of the connection; PostgreSQL:
 * statement_timeout, and a client-side deadline for a server that stops
 * answering). A row's wait in the queue is not counted.
 */

#ifndef EBD_SQL_H
#define EBD_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "ebd_target.h"


#define EBD_SQL_ERRLEN  256


typedef struct ebd_sql_s  ebd_sql_t;


/* One queued row: its delivery (only the loop thread touches it) and the
 * column values, NUL-terminated (yajl strings cannot contain NUL). */
typedef struct ebd_sql_row_s  ebd_sql_row_t;

struct ebd_sql_row_s {
    ebd_sql_row_t    *next;
    ebd_delivery_t   *delivery;
    size_t            bytes;          /* all values, for the batch cap */
    const char      **value;          /* [ncolumns], NULL for SQL NULL */
    unsigned long    *length;         /* [ncolumns] */

    ebd_result_t      result;         /* set by the worker */
};


typedef enum {
    EBD_SQL_OK = 0,
    EBD_SQL_DATA,          /* a row's data or a constraint: reject it */
    EBD_SQL_DUPLICATE,     /* a unique key already holds the row's value */
    EBD_SQL_FAIL           /* anything else: retry, drop the connection */
} ebd_sql_rc_t;


/* What a driver provides; all but the names run on worker threads. */
typedef struct {
    const char     *type;             /* "mysql" */
    unsigned        default_port;
    char            quote;            /* identifier quote: ` or " */
    unsigned        numbered;         /* placeholders $1, $2 (else ?) */

    /* process-wide setup, once, on the loop thread, before any worker
     * starts (mysql_library_init() is not thread-safe); may be NULL */
    int           (*global_init)(void);
    /* per worker thread (mysql_thread_init/end); may be NULL */
    void          (*thread_start)(void);
    void          (*thread_end)(void);

    /* Returns a connection, or NULL with a one-line reason in err. */
    void         *(*connect)(ebd_sql_t *s, char *err, size_t errlen);

    /* Inserts rows[0..n) with one statement (sql: its text, built for n
     * rows). On failure err gets a one-line reason and *status the
     * MySQL error number (0 when there is none). */
    ebd_sql_rc_t  (*insert)(ebd_sql_t *s, void *conn, ebd_sql_row_t **rows,
                            size_t n, const char *sql, int *status, char *err,
                            size_t errlen);

    void          (*disconnect)(void *conn);
} ebd_sql_ops_t;


/* The target's settings, read by open() from the configuration (the
 * first member of ebd_sql.c's own state, which is t->data). */
struct ebd_sql_s {
    ebd_target_t          *target;
    const ebd_sql_ops_t   *ops;

    const char            *host;
    unsigned               port;
    const char            *user;
    const char            *password;        /* "" when not set */
    const char            *database;
    /* "tls": mode NULL (the client library's default), "disable",
     * "require" or "verify-full"; the files NULL when not given */
    const char            *tls_mode;
    const char            *tls_ca;
    const char            *tls_cert;
    const char            *tls_key;
    uint64_t               timeout_ms;
    size_t                 ncolumns;
    int                    ignore_duplicates;  /* "on_duplicate": "ignore" */
};


/* The drivers' open/deliver/close, given their ops. */
int ebd_sql_open(ebd_target_t *t, const ebd_sql_ops_t *ops, char *err,
    size_t errlen);
void ebd_sql_deliver(ebd_target_t *t, ebd_delivery_t *d);
void ebd_sql_close(ebd_target_t *t);

/* For drivers: the timeout in whole seconds, rounded up, at least min. */
unsigned ebd_sql_timeout_s(const ebd_sql_t *s, unsigned min);

/* Copies the first line of msg into err (no trailing white space). */
void ebd_sql_errcpy(char *err, size_t errlen, const char *msg);

#endif /* EBD_SQL_H */
