/*
 * ebd, the dispatcher: the core's shared definitions. A "route" is one
 * target stream, eb:{BUS}:target:TARGET, read through the consumer group
 * "ebd"; a target (ebd_target.h) may be fed by routes of several buses
 * and bounds its deliveries in flight across them.
 */

#ifndef EBD_H
#define EBD_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "eb_buf.h"
#include "eb_config.h"
#include "ebd_target.h"
#include "ebd_retry.h"


#define EBD_GROUP           "ebd"
#define EBD_ID_MAX          48          /* a stream entry id, NUL included */


/* The command line: what every subcommand shares. */
typedef struct {
    const char        *config_file;
    const char        *redis_addr;       /* "host:port" or "/path.sock" */
    const char        *redis_password;
    int                redis_db;
    const char        *consumer;
    uint64_t           claim_idle_ms;    /* XAUTOCLAIM entries idle longer */
    uint64_t           block_ms;         /* XREADGROUP BLOCK */
    long long          trace_maxlen;     /* approximate cap of eb:{BUS}:trace */
    uint64_t           grace_ms;         /* SIGTERM: wait this long at most */
    unsigned           workers;          /* -w: processes (1: no master) */

    /* ebd trace / ebd redrive */
    const char        *bus;
    const char        *event;
    const char        *since;
    const char        *until;
    const char        *target;
    long long          limit;
} ebd_opts_t;


/* A Redis address split up; unix when path is set. */
typedef struct {
    char               host[256];
    int                port;
    char               path[256];
} ebd_addr_t;

int ebd_addr_parse(const char *s, ebd_addr_t *a, char *err, size_t errlen);

/* A synchronous connection (the redrive and trace subcommands). */
redisContext *ebd_redis_connect_sync(const ebd_opts_t *o, char *err,
    size_t errlen);


/*
 * An asynchronous connection on the loop that reconnects by itself
 * (100 ms doubling to 2 s) and runs AUTH/SELECT first. Commands sent
 * while it is down fail at once (their callback gets a NULL reply).
 */
typedef struct ebd_conn_s  ebd_conn_t;

typedef void (*ebd_conn_ready_pt)(ebd_conn_t *c, void *data);

struct ebd_conn_s {
    const char              *name;       /* for the log */
    ebd_addr_t               addr;
    const char              *password;
    int                      db;
    struct event_base       *base;
    redisAsyncContext       *ac;
    int                      ready;      /* connected, AUTH/SELECT done */
    int                      closing;
    uint64_t                 backoff_ms;
    struct event            *retry_ev;
    unsigned                 pending;    /* commands without a reply yet */
    uint64_t                 oldest_ms;  /* when the oldest of them went out */
    ebd_conn_ready_pt        on_ready;   /* after every (re)connection */
    void                    *data;
};

ebd_conn_t *ebd_conn_new(struct event_base *base, const char *name,
    const ebd_opts_t *o, const ebd_addr_t *addr, ebd_conn_ready_pt on_ready,
    void *data);
/* Sends a command (argv form); cb may be NULL. Returns 0, or -1 when the
 * connection is down (cb is then not called). */
int ebd_conn_command(ebd_conn_t *c, redisCallbackFn *cb, void *privdata,
    int argc, const char **argv, const size_t *argvlen);
/* Drops the connection and reconnects (a reply that never came). */
void ebd_conn_reset(ebd_conn_t *c);
/* Whether replies have been awaited longer than limit_ms. */
int ebd_conn_stalled(ebd_conn_t *c, uint64_t limit_ms);
void ebd_conn_free(ebd_conn_t *c);


uint64_t ebd_now_ms(void);

/* Runs the dispatcher until SIGTERM/SIGINT; returns the exit code. */
int ebd_run(ebd_opts_t *o);
/* -w N: runs N dispatcher processes under a master (ebd_master.c). */
int ebd_master(ebd_opts_t *o);

/* The subcommands. */
int ebd_redrive_main(ebd_opts_t *o, int argc, char **argv);
int ebd_trace_main(ebd_opts_t *o, int argc, char **argv);

/* A time on the command line: ms since the epoch, RFC 3339
 * ("2026-11-23T10:00:00Z", offset or Z, optional fraction), or relative
 * to now ("-10m", "-2h", "now"). Returns 0, or -1. */
int ebd_parse_time(const char *s, uint64_t now_ms, uint64_t *ms);

#endif /* EBD_H */
