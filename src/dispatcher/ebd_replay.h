/*
 * A replay: the events of a window of eb:{BUS}:events matched again
 * against the bus's current rules, and the fan-out of the selected rules
 * and targets appended to the target streams, as nginx appends it, each
 * entry with a field "replay NAME" (ebd_replay.c).
 *
 * The state is a hash in the bus's slot, eb:{BUS}:replay:NAME (the
 * window, the selection, the cursor: the last events entry done, the
 * counts), and its name in the sorted set eb:{BUS}:replays. One batch's
 * appends and its cursor advance are one MULTI/EXEC under a WATCH of the
 * hash: a process killed anywhere neither repeats nor skips an event,
 * and two processes running the same replay cannot both advance it.
 *
 * The engine is synchronous (hiredis) and knows nothing of the command
 * line: ebd replay (ebd_replay_cli.c) drives it, and so can anything
 * that wants to start a replay (the console).
 */

#ifndef EBD_REPLAY_H
#define EBD_REPLAY_H

#include "ebd.h"


#define EBD_REPLAY_NAME_MAX   128       /* letters, digits, - _ . */
#define EBD_REPLAY_BATCH_MAX  500       /* events per transaction */


typedef struct {
    const eb_config_t      *cf;
    const eb_config_bus_t  *bus;
    char                    name[EBD_REPLAY_NAME_MAX + 1];
    uint64_t                from_ms;    /* both ends included */
    uint64_t                to_ms;
    const char             *from_arg;   /* as given: a resumed replay */
    const char             *to_arg;     /* keeps its first resolution */
    int                     dry_run;    /* count, write nothing */

    unsigned char          *rule_on;    /* per rule id: selected */
    unsigned char          *target_on;  /* per target index: selected */
    char                   *rules_text; /* the selections, "" for all */
    char                   *targets_text;

    char                    events_key[300];
    char                    state_key[300 + EBD_REPLAY_NAME_MAX];
    char                    index_key[300];
    char                  **target_keys;  /* eb:{BUS}:target:T, by index */

    char                    cursor[EBD_ID_MAX];  /* "" : nothing done */
    uint64_t                started_ms;
    int                     done;

    /* counted by this process (the hash has the whole replay's) */
    uint64_t                events;      /* read from the window */
    uint64_t                matched;     /* with a selected delivery */
    uint64_t                unreadable;  /* not a JSON object */
    uint64_t                deliveries;
    uint64_t               *per_target;  /* by target index */

    /* the whole replay's, from the hash when resumed, plus this run's */
    uint64_t                events_total;
    uint64_t                deliveries_total;

    void                   *scratch;     /* eb_match_scratch_t */
    uint32_t               *ids;
} ebd_replay_t;


/* Checks the selection and the window against the configuration and
 * resolves the name (the given one, or one made of the window and the
 * selection). rules, targets: comma-separated names, NULL for all.
 * Returns 0, or -1 with err (a usage error: exit 2). */
int ebd_replay_init(ebd_replay_t *rp, const eb_config_t *cf,
    const char *bus, const char *name, uint64_t from_ms, uint64_t to_ms,
    const char *rules, const char *targets, int dry_run, char *err,
    size_t errlen);

/* Creates the state, or resumes it (the cursor and the counts). Returns
 * 0, 1 when the replay is already done, -1 on a Redis error, -2 when
 * the name is taken by a replay of another window or selection (err
 * says which). Nothing is written with dry_run. */
int ebd_replay_begin(ebd_replay_t *rp, redisContext *c, char *err,
    size_t errlen);

/* Replays the next at most max events (1..EBD_REPLAY_BATCH_MAX) as one
 * transaction. Returns how many were done, 0 once the window is done
 * (the state then says so), -1 on an error (err says what; nothing of
 * the batch was applied unless err says "partly applied"): the caller
 * then drops the connection, which may hold commands never sent. */
int ebd_replay_batch(ebd_replay_t *rp, redisContext *c, unsigned max,
    char *err, size_t errlen);

/* An estimate of the window's events (XLEN and the ids' times, no
 * scan): for progress only. */
uint64_t ebd_replay_estimate(ebd_replay_t *rp, redisContext *c);

void ebd_replay_free(ebd_replay_t *rp);

#endif /* EBD_REPLAY_H */
