/*
 * ebd replay: the command line of the replay engine (ebd_replay.h).
 *
 *   --bus BUS --from T --to T [--rule R[,R]] [--target T[,T]] [--rate N]
 *       [--name NAME] [--dry-run]
 *   --status [--bus BUS]
 *
 * Paced by --rate (events/s: a batch of at most a tenth of a second's
 * events, then a sleep until its time is used up); a progress line on
 * a terminal, one summary line otherwise. SIGINT/SIGTERM end it after
 * the batch in flight (exit 130); kill -9 anywhere is as safe, since a
 * batch is one transaction: the same command resumes.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ebd_replay.h"


#define EBD_REPLAY_BATCH  250       /* events per transaction, unpaced */


static const char  ebd_replay_usage[] =
"usage: ebd replay [options] --bus BUS --from TIME --to TIME\n"
"                  [--rule R[,R...]] [--target T[,T...]] [--rate N]\n"
"                  [--name NAME] [--dry-run]\n"
"       ebd replay [options] --status [--bus BUS]\n"
"TIME: ms since the epoch, RFC 3339 (2026-11-23T10:00:00Z), -10m, now.\n";


static volatile sig_atomic_t  ebd_replay_stop;


static void
ebd_replay_signal(int signo)
{
    (void) signo;
    ebd_replay_stop = 1;
}


static void
ebd_replay_sleep_us(uint64_t us)
{
    struct timespec  ts;

    ts.tv_sec = (time_t) (us / 1000000);
    ts.tv_nsec = (long) (us % 1000000) * 1000;

    /* a signal ends the sleep: the loop then stops */
    (void) nanosleep(&ts, NULL);
}


static void
ebd_replay_duration(uint64_t s, char *buf, size_t len)
{
    if (s >= 3600) {
        snprintf(buf, len, "%lluh%02llum", (unsigned long long) s / 3600,
                 (unsigned long long) s % 3600 / 60);
    } else {
        snprintf(buf, len, "%llum%02llus", (unsigned long long) s / 60,
                 (unsigned long long) s % 60);
    }
}


/* The progress line: done / estimated total, events/s, time left. The
 * total is estimated from the ids' times (ebd_replay_estimate()) and
 * corrected by what the cursor's time says is done. */
static void
ebd_replay_progress(ebd_replay_t *rp, uint64_t estimate, uint64_t t0_us)
{
    int       i, w;
    char      bar[41], eta[32];
    double    secs, rate, frac, total;
    uint64_t  cur, span;

    secs = (double) (ebd_mono_us() - t0_us) / 1e6;
    rate = secs > 0 ? (double) rp->events / secs : 0;

    total = (double) estimate;
    cur = strtoull(rp->cursor, NULL, 10);
    span = rp->to_ms - rp->from_ms;

    if (rp->cursor[0] && span && cur >= rp->from_ms) {
        frac = (double) (cur - rp->from_ms + 1) / (double) span;
        /* the events done so far, spread over the window's time */
        if (frac > 0.05 && frac <= 1 && rp->events_total / frac > total) {
            total = (double) rp->events_total / frac;
        }
    }

    if (total < (double) rp->events_total || rp->done) {
        total = (double) rp->events_total;
    }

    frac = total > 0 ? (double) rp->events_total / total : 0;
    w = (int) (frac * 40);

    for (i = 0; i < 40; i++) {
        bar[i] = i < w ? '#' : '.';
    }
    bar[40] = '\0';

    if (rate > 0) {
        ebd_replay_duration((uint64_t) ((total - (double) rp->events_total)
                                        / rate), eta, sizeof(eta));
    } else {
        strcpy(eta, "?");
    }

    fprintf(stderr, "\r[%s] %llu/~%llu events  %.0f events/s  %s left ",
            bar, (unsigned long long) rp->events_total,
            (unsigned long long) total, rate, eta);
}


static void
ebd_replay_summary(ebd_replay_t *rp, uint64_t t0_us, const char *how)
{
    int       first;
    size_t    t;
    double    secs;

    secs = (double) (ebd_mono_us() - t0_us) / 1e6;

    printf("replay %s of bus %s%s: %s; %llu events read, %llu matched, "
           "%llu deliveries %s (", rp->name, rp->bus->name,
           rp->dry_run ? " (dry run)" : "", how,
           (unsigned long long) rp->events, (unsigned long long) rp->matched,
           (unsigned long long) rp->deliveries,
           rp->dry_run ? "would be enqueued" : "enqueued");

    first = 1;
    for (t = 0; t < rp->cf->ntargets; t++) {
        if (rp->target_on[t]) {
            printf("%s%s %llu", first ? "" : ", ", rp->cf->targets[t].name,
                   (unsigned long long) rp->per_target[t]);
            first = 0;
        }
    }

    printf(") in %.2f s, %.0f events/s", secs,
           secs > 0 ? (double) rp->events / secs : 0.0);

    if (rp->unreadable) {
        printf("; %llu entries not JSON objects left out",
               (unsigned long long) rp->unreadable);
    }

    putchar('\n');
    fflush(stdout);
}


/* --dry-run: the counts per target, one line each, then the summary */
static void
ebd_replay_dry_counts(ebd_replay_t *rp)
{
    size_t  t;

    for (t = 0; t < rp->cf->ntargets; t++) {
        if (rp->target_on[t]) {
            printf("target %s: %llu\n", rp->cf->targets[t].name,
                   (unsigned long long) rp->per_target[t]);
        }
    }
}


static int
ebd_replay_run(ebd_opts_t *o, const eb_config_t *cf)
{
    int               rc, n, tty;
    char              err[1024];
    unsigned          batch;
    uint64_t          now, from_ms, to_ms, t0, last_draw, estimate, due;
    redisContext     *c;
    ebd_replay_t      rp;
    struct sigaction  sa;

    now = ebd_now_ms();

    if (o->from == NULL || o->to == NULL) {
        fprintf(stderr, "ebd replay: --from and --to are required\n%s",
                ebd_replay_usage);
        return 2;
    }

    if (ebd_parse_time(o->from, now, &from_ms) != 0
        || ebd_parse_time(o->to, now, &to_ms) != 0)
    {
        fprintf(stderr, "ebd replay: --%s: invalid time \"%s\" (ms since the "
                "epoch, 2026-11-23T10:00:00Z, -10m, now)\n",
                ebd_parse_time(o->from, now, &from_ms) != 0 ? "from" : "to",
                ebd_parse_time(o->from, now, &from_ms) != 0 ? o->from
                                                            : o->to);
        return 2;
    }

    /* what arrives from the start on is delivered live: a window ending
     * then or later is cut just before, so that nothing goes twice */
    if (to_ms >= now) {
        to_ms = now - 1;
        if (from_ms > to_ms) {
            fprintf(stderr, "ebd replay: the window begins in the future "
                    "(--from \"%s\")\n", o->from);
            return 2;
        }
    }

    if (from_ms > to_ms) {
        fprintf(stderr, "ebd replay: the window is empty: --from \"%s\" is "
                "after --to \"%s\"\n", o->from, o->to);
        return 2;
    }

    if (ebd_replay_init(&rp, cf, o->bus, o->name, from_ms, to_ms, o->rule,
                        o->target, o->dry_run, err, sizeof(err))
        != 0)
    {
        fprintf(stderr, "ebd replay: %s\n", err);
        ebd_replay_free(&rp);
        return 2;
    }

    rp.from_arg = o->from;
    rp.to_arg = o->to;

    c = ebd_redis_connect_sync(o, o->bus, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "ebd replay: %s\n", err);
        ebd_replay_free(&rp);
        return 1;
    }

    rc = ebd_replay_begin(&rp, c, err, sizeof(err));

    if (rc < 0) {
        fprintf(stderr, "ebd replay: %s\n", err);
        redisFree(c);
        ebd_replay_free(&rp);
        return rc == -2 ? 2 : 1;
    }

    if (rc == 1) {
        printf("replay %s of bus %s: done already (%llu events, %llu "
               "deliveries); see ebd replay --status\n", rp.name,
               rp.bus->name, (unsigned long long) rp.events_total,
               (unsigned long long) rp.deliveries_total);
        redisFree(c);
        ebd_replay_free(&rp);
        return 0;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ebd_replay_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    tty = isatty(STDERR_FILENO) && !o->dry_run;
    estimate = tty ? ebd_replay_estimate(&rp, c) : 0;

    /* --rate: a tenth of a second's events per batch, and each batch
     * waits for its start time */
    batch = EBD_REPLAY_BATCH;
    if (o->rate) {
        batch = o->rate / 10 < 1 ? 1
                : o->rate / 10 > EBD_REPLAY_BATCH ? EBD_REPLAY_BATCH
                : (unsigned) (o->rate / 10);
    }

    if (rp.cursor[0] && !o->dry_run) {
        fprintf(stderr, "ebd replay: resuming %s after entry %s (%llu "
                "events done)\n", rp.name, rp.cursor,
                (unsigned long long) rp.events_total);
    }

    t0 = ebd_mono_us();
    due = t0;
    last_draw = 0;
    n = 0;

    while (!ebd_replay_stop) {
        if (o->rate) {
            now = ebd_mono_us();
            if (due > now) {
                ebd_replay_sleep_us(due - now);
                if (ebd_replay_stop) {
                    break;
                }
            }
        }

        n = ebd_replay_batch(&rp, c, batch, err, sizeof(err));
        if (n <= 0) {
            break;
        }

        if (o->rate) {
            due += (uint64_t) n * 1000000 / o->rate;
        }

        if (tty && ebd_mono_us() - last_draw > 200000) {
            ebd_replay_progress(&rp, estimate, t0);
            last_draw = ebd_mono_us();
        }
    }

    if (tty) {
        ebd_replay_progress(&rp, estimate, t0);
        fputc('\n', stderr);
    }

    redisFree(c);

    if (n < 0) {
        fprintf(stderr, "ebd replay: %s\n", err);
        ebd_replay_summary(&rp, t0, "stopped by an error (the same command "
                           "resumes)");
        ebd_replay_free(&rp);
        return 1;
    }

    if (o->dry_run) {
        ebd_replay_dry_counts(&rp);
    }

    ebd_replay_summary(&rp, t0, ebd_replay_stop && !rp.done
                                ? "interrupted (the same command resumes)"
                                : "done");

    rc = ebd_replay_stop && !rp.done ? 130 : 0;
    ebd_replay_free(&rp);

    return rc;
}


static const char *
ebd_replay_field(redisReply *h, const char *name)
{
    size_t  i;

    for (i = 0; h && i + 1 < h->elements; i += 2) {
        if (strcmp(h->element[i]->str, name) == 0
            && h->element[i + 1]->type == REDIS_REPLY_STRING)
        {
            return h->element[i + 1]->str;
        }
    }

    return "";
}


/* one line per replay of a bus, oldest first */
static int
ebd_replay_status_bus(ebd_opts_t *o, const char *bus)
{
    char          err[512], from[40], to[40], upd[40];
    size_t        i, j;
    redisReply   *names, *h;
    redisContext *c;

    c = ebd_redis_connect_sync(o, bus, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "ebd replay: %s\n", err);
        return 1;
    }

    names = redisCommand(c, "ZRANGE eb:{%s}:replays 0 -1", bus);
    if (names == NULL || names->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "ebd replay: ZRANGE eb:{%s}:replays: %s\n", bus,
                names ? names->str : c->errstr);
        if (names) {
            freeReplyObject(names);
        }
        redisFree(c);
        return 1;
    }

    for (i = 0; i < names->elements; i++) {
        h = redisCommand(c, "HGETALL eb:{%s}:replay:%s", bus,
                         names->element[i]->str);
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
            if (h) {
                freeReplyObject(h);
            }
            continue;
        }

        ebd_time_format(strtoull(ebd_replay_field(h, "from"), NULL, 10),
                        from, sizeof(from));
        ebd_time_format(strtoull(ebd_replay_field(h, "to"), NULL, 10),
                        to, sizeof(to));
        ebd_time_format(strtoull(ebd_replay_field(h, "updated"), NULL, 10),
                        upd, sizeof(upd));

        printf("bus %s  replay %s  %s  window %s .. %s  events %s  "
               "deliveries %s", bus, names->element[i]->str,
               ebd_replay_field(h, "state"), from, to,
               ebd_replay_field(h, "events"),
               ebd_replay_field(h, "deliveries"));

        for (j = 0; j + 1 < h->elements; j += 2) {
            if (strncmp(h->element[j]->str, "t:", 2) == 0) {
                printf("  %s %s", h->element[j]->str + 2,
                       h->element[j + 1]->str);
            }
        }

        if (*ebd_replay_field(h, "rules")) {
            printf("  rules %s", ebd_replay_field(h, "rules"));
        }

        if (*ebd_replay_field(h, "targets")) {
            printf("  targets %s", ebd_replay_field(h, "targets"));
        }

        printf("  cursor %s  updated %s\n",
               *ebd_replay_field(h, "cursor") ? ebd_replay_field(h, "cursor")
                                              : "-", upd);
        freeReplyObject(h);
    }

    freeReplyObject(names);
    redisFree(c);

    return 0;
}


int
ebd_replay_main(ebd_opts_t *o, int argc, char **argv)
{
    int           rc;
    char          err[EB_CONFIG_ERROR_MAX];
    size_t        i;
    eb_config_t  *cf;

    (void) argv;

    if (argc != 0 || (!o->status && o->bus == NULL)) {
        fputs(ebd_replay_usage, stderr);
        return 2;
    }

    if (o->event || o->since || o->until || o->limit || o->output
        || o->input)
    {
        fprintf(stderr, "ebd replay: --event, --since, --until, --limit, "
                "--output and --input are not replay's\n%s",
                ebd_replay_usage);
        return 2;
    }

    if (o->status && (o->from || o->to || o->rule || o->target || o->rate
                      || o->name || o->dry_run))
    {
        fprintf(stderr, "ebd replay --status takes --bus only\n");
        return 2;
    }

    cf = eb_config_load(o->config_file, err, sizeof(err));
    if (cf == NULL) {
        fprintf(stderr, "ebd replay: %s\n", err);
        return 1;
    }

    if (o->bus && eb_config_bus(cf, o->bus, strlen(o->bus)) == NULL) {
        fprintf(stderr, "ebd replay: %s has no bus \"%s\"\n",
                o->config_file, o->bus);
        eb_config_free(cf);
        return 2;
    }

    if (!o->status) {
        rc = ebd_replay_run(o, cf);
        eb_config_free(cf);
        return rc;
    }

    rc = 0;

    for (i = 0; i < cf->nbuses; i++) {
        if (o->bus == NULL || strcmp(o->bus, cf->buses[i].name) == 0) {
            if (ebd_replay_status_bus(o, cf->buses[i].name) != 0) {
                rc = 1;
            }
        }
    }

    eb_config_free(cf);

    return rc;
}
