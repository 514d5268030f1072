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

/* The console's index, eb:{BUS}:idx:H (ebd_index.c, ebd_trace.c) */
#define EBD_INDEX_ATTEMPTS  100         /* t: tokens an index value keeps */
#define EBD_INDEX_DEFAULT_S 604800      /* without retention: a week */
#define EBD_INDEX_TAIL      1000        /* events past the cursor a reader
                                         * scans for one not indexed yet */


/* The command line: what every subcommand shares. */
typedef struct {
    const char        *config_file;
    const char        *redis_addr;       /* ADDR[,ADDR...]: see -r */
    const char        *redis_user;       /* ACL user, with the password */
    const char        *redis_password;
    int                redis_db;
    int                cluster;          /* --cluster: ADDRs are seeds */
    const char        *sentinel_master;  /* --sentinel: ADDRs are sentinels */
    const char        *sentinel_password;
    uint64_t           redis_timeout_ms; /* the watchdog of connections */
    const char        *consumer;
    uint64_t           claim_idle_ms;    /* XAUTOCLAIM entries idle longer */
    uint64_t           block_ms;         /* XREADGROUP BLOCK */
    long long          trace_maxlen;     /* approximate cap of eb:{BUS}:trace */
    uint64_t           grace_ms;         /* SIGTERM: wait this long at most */
    unsigned           workers;          /* -w: processes (1: no master) */
    unsigned           worker;           /* this worker's index, from 0 */
    const char        *metrics;          /* --metrics ADDR, or NULL */
    int                test_config;      /* -t: check the file, exit */

    /* ebd trace / ebd redrive */
    const char        *bus;
    const char        *event;
    const char        *since;
    const char        *until;
    const char        *target;
    long long          limit;

    /* ebd archive */
    const char        *from;
    const char        *to;
    const char        *output;
    const char        *input;

    /* ebd replay (--bus, --from, --to, --target too) */
    const char        *rule;
    const char        *name;
    uint64_t           rate;             /* events/s, 0: unpaced */
    int                dry_run;
    const char        *reason;     /* ebd pause --reason */
    int                status;
} ebd_opts_t;


/* A Redis address split up; unix when path is set. */
typedef struct {
    char               host[256];
    int                port;
    char               path[256];
} ebd_addr_t;

int ebd_addr_parse(const char *s, ebd_addr_t *a, char *err, size_t errlen);
/* "ADDR[,ADDR...]": an array of addresses the caller frees; 0, or -1
 * with err set. */
int ebd_addr_list(const char *s, ebd_addr_t **addrs, size_t *n, char *err,
    size_t errlen);

/* --metrics ADDR: "host:port", "[v6]:port" or ":port" (every address:
 * host is then ""). 0, or -1 with err set. */
int ebd_listen_parse(const char *s, ebd_addr_t *a, char *err, size_t errlen);

/* The value of a stream entry's field (fields: XRANGE's [name, value,
 * ...]), NULL when it has none. */
redisReply *ebd_reply_field(redisReply *fields, const char *name);

/* A synchronous connection (the subcommands) to the
 * primary that holds BUS's keys. */
redisContext *ebd_redis_connect_sync(const ebd_opts_t *o, const char *bus,
    char *err, size_t errlen);


/*
 * An asynchronous connection on the loop that reconnects by itself
 * (100 ms doubling to 2 s) and runs AUTH/SELECT (and ROLE, behind a
 * Sentinel) before it counts as ready. Commands sent while it is down
 * fail at once (cb is then not called). A connection bound to a slot
 * (ebd_conn_new_slot) asks the topology (ebd_topology.h) for the
 * slot's primary at every (re)connection and follows MOVED.
 */
typedef struct ebd_conn_s  ebd_conn_t;
typedef struct ebd_topo_s  ebd_topo_t;

typedef void (*ebd_conn_ready_pt)(ebd_conn_t *c, void *data);

struct ebd_conn_s {
    const char              *name;       /* for the log */
    ebd_topo_t              *topo;       /* NULL: addr is fixed */
    int                      slot;       /* of the keys it serves */
    ebd_addr_t               addr;       /* where it connects now */
    const char              *user;
    const char              *password;
    int                      db;
    struct event_base       *base;
    redisAsyncContext       *ac;
    int                      ready;      /* connected, AUTH/SELECT done */
    int                      closing;
    int                      waiting;    /* for the topology */
    int                      errored;    /* dropped after an error reply */
    unsigned                 handshake;  /* AUTH/SELECT/ROLE unanswered */
    uint64_t                 backoff_ms;
    struct event            *retry_ev;
    unsigned                 pending;    /* commands without a reply yet */
    uint64_t                 oldest_ms;  /* when the oldest of them went out */
    uint64_t                 since_ms;   /* when the connection began */
    uint64_t                 extra_ms;   /* added to the watchdog's limit */
    ebd_conn_ready_pt        on_ready;   /* after every (re)connection */
    void                    *data;
    ebd_conn_t              *next;       /* the topology's connections */
    char                     state[64];  /* the trouble last logged */
};

/* A connection to a fixed address (the redis target's). */
ebd_conn_t *ebd_conn_new(struct event_base *base, const char *name,
    const ebd_opts_t *o, const ebd_addr_t *addr, ebd_conn_ready_pt on_ready,
    void *data);
/* A connection to whichever primary serves slot now; extra_ms: how much
 * longer than the topology's timeout a reply may take (a blocking read). */
ebd_conn_t *ebd_conn_new_slot(ebd_topo_t *topo, const char *name,
    unsigned slot, uint64_t extra_ms, ebd_conn_ready_pt on_ready,
    void *data);
/* Connects now if it waits for the topology (ebd_topology.c). */
void ebd_conn_wake(ebd_conn_t *c);
/* Logs a trouble once until the state changes ("" for none). */
void ebd_conn_state(ebd_conn_t *c, int level, const char *state,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sends a command (argv form); cb may be NULL. Returns 0, or -1 when the
 * connection is down (cb is then not called). */
int ebd_conn_command(ebd_conn_t *c, redisCallbackFn *cb, void *privdata,
    int argc, const char **argv, const size_t *argvlen);
/* The same with the command already in the protocol's form ("*N\r\n"
 * then each argument as ebd_resp_arg() makes it); name is for the log. */
int ebd_conn_formatted(ebd_conn_t *c, redisCallbackFn *cb, void *privdata,
    const char *name, const char *resp, size_t len);
/* Appends one argument in the protocol's form: "$LEN\r\n" p "\r\n";
 * type '*' with p NULL appends "*LEN\r\n", a command's head. */
void ebd_resp_arg(eb_buf_t *b, char type, const char *p, size_t len);
/* Drops the connection and reconnects (a reply that never came). */
void ebd_conn_reset(ebd_conn_t *c);
/* Whether the connection, its handshake or its oldest command has
 * waited longer than limit_ms (plus the connection's extra_ms). */
int ebd_conn_stalled(ebd_conn_t *c, uint64_t limit_ms);
void ebd_conn_free(ebd_conn_t *c);


uint64_t ebd_now_ms(void);
/* v in decimal, NUL-terminated, into buf (at least 21 bytes); returns its
 * length. snprintf costs about 900 instructions a number, on every
 * attempt's trace entry. */
size_t ebd_u64_text(char *buf, uint64_t v);

/* The configuration as ebd takes it: eb_config_load() and what only ebd
 * checks (the signing secrets, ebd_sign.c). NULL with err on failure. */
eb_config_t *ebd_config_load(const char *file, char *err, size_t errlen);

/* Runs the dispatcher until SIGTERM/SIGINT; returns the exit code. */
int ebd_run(ebd_opts_t *o);
/* -w N: runs N dispatcher processes under a master (ebd_master.c). */
int ebd_master(ebd_opts_t *o);

/* The subcommands. */
int ebd_redrive_main(ebd_opts_t *o, int argc, char **argv);
/* ebd pause / ebd resume (ebd_pause.c) */
int ebd_pause_main(ebd_opts_t *o, int argc, char **argv, int resume);
int ebd_trace_main(ebd_opts_t *o, int argc, char **argv);
int ebd_archive_main(ebd_opts_t *o, int argc, char **argv);
int ebd_replay_main(ebd_opts_t *o, int argc, char **argv);

/* A time as the subcommands print it: RFC 3339 UTC with milliseconds
 * (at least 25 bytes). */
void ebd_time_format(uint64_t ms, char *buf, size_t len);

/* A time on the command line: ms since the epoch, RFC 3339
 * ("2026-11-23T10:00:00Z", offset or Z, optional fraction), or relative
 * to now ("-10m", "-2h", "now"). Returns 0, or -1. */
int ebd_parse_time(const char *s, uint64_t now_ms, uint64_t *ms);

#endif /* EBD_H */
