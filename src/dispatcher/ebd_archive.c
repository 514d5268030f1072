/*
 * ebd archive: a bus's events stream to a file and back.
 *
 *   export --bus BUS [--from T] [--to T] [--output FILE]
 *       the events of eb:{BUS}:events in the window, oldest first, as
 *       NDJSON: each entry's stored event, byte for byte, and "\n"
 *   import --bus BUS [--input FILE]
 *       each line checked as a CloudEvent (the PutEvents intake's
 *       parser), then appended to eb:{BUS}:events with a new entry id
 *
 * Both stream: export reads XRANGE pages of EBD_ARCHIVE_PAGE entries,
 * import sends at most EBD_ARCHIVE_PAGE appends (or EBD_ARCHIVE_SEND_MAX
 * bytes of them) at a time and holds one line (at most
 * EBD_ARCHIVE_LINE_MAX bytes), so memory does not grow with the archive. Import stops at the first bad line: the lines before
 * it are appended, nothing from it on. It restores the stream only: the
 * events are not matched against the bus's rules (no fan-out to targets).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "eb_cloudevent.h"
#include "ebd.h"


#define EBD_ARCHIVE_PAGE      1000
#define EBD_ARCHIVE_LINE_MAX  (16 * 1024 * 1024)
/* appends sent before their replies are read: hiredis keeps them in
 * its output buffer until then */
#define EBD_ARCHIVE_SEND_MAX  (4 * 1024 * 1024)
/* as deep as the matcher reads an event (a source's body is two levels
 * below the event) */
#define EBD_ARCHIVE_DEPTH     256


static const char  ebd_archive_usage[] =
"usage: ebd archive export [options] --bus BUS [--from TIME] [--to TIME]\n"
"                          [--output FILE]\n"
"       ebd archive import [options] --bus BUS [--input FILE]\n"
"TIME: ms since the epoch, RFC 3339 (2026-11-23T10:00:00Z), -10m, now.\n";


/* ---- export ------------------------------------------------------------ */

static int
ebd_archive_export(ebd_opts_t *o, const char *key)
{
    int            done, to_file, regular;
    FILE          *out;
    struct stat    st;
    char           err[512], start[EBD_ID_MAX + 1], end[32];
    size_t         i;
    uint64_t       now, from_ms, to_ms;
    long long      n, skipped;
    redisReply    *r, *e, *ev;
    redisContext  *c;

    now = ebd_now_ms();
    from_ms = 0;
    to_ms = UINT64_MAX;

    if (o->from && ebd_parse_time(o->from, now, &from_ms) != 0) {
        fprintf(stderr, "ebd archive: --from: invalid time \"%s\" (ms since "
                "the epoch, 2026-11-23T10:00:00Z, -10m, now)\n", o->from);
        return 2;
    }

    if (o->to && ebd_parse_time(o->to, now, &to_ms) != 0) {
        fprintf(stderr, "ebd archive: --to: invalid time \"%s\" (ms since "
                "the epoch, 2026-11-23T10:00:00Z, -10m, now)\n", o->to);
        return 2;
    }

    if (from_ms > to_ms) {
        fprintf(stderr, "ebd archive: the window is empty: --from \"%s\" is "
                "after --to \"%s\"\n", o->from, o->to);
        return 2;
    }

    /* both ends included: a ms bound covers every entry of that ms */
    snprintf(start, sizeof(start), "%llu", (unsigned long long) from_ms);
    if (o->to) {
        snprintf(end, sizeof(end), "%llu", (unsigned long long) to_ms);
    } else {
        strcpy(end, "+");
    }

    c = ebd_redis_connect_sync(o, o->bus, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "ebd archive: %s\n", err);
        return 1;
    }

    to_file = o->output && strcmp(o->output, "-") != 0;
    out = to_file ? fopen(o->output, "w") : stdout;
    if (out == NULL) {
        fprintf(stderr, "ebd archive: %s: %s\n", o->output, strerror(errno));
        redisFree(c);
        return 1;
    }

    /* a file is synced, and removed when the export fails; a pipe or a
     * device named by --output is neither */
    regular = to_file && fstat(fileno(out), &st) == 0 && S_ISREG(st.st_mode);

    n = 0;
    skipped = 0;
    done = 0;

    while (!done) {
        r = redisCommand(c, "XRANGE %s %s %s COUNT %d", key, start, end,
                         EBD_ARCHIVE_PAGE);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "ebd archive: XRANGE %s: %s\n", key,
                    r ? r->str : c->errstr);
            if (r) {
                freeReplyObject(r);
            }
            goto failed;
        }

        for (i = 0; i < r->elements; i++) {
            e = r->element[i];
            ev = ebd_reply_field(e->element[1], "event");

            /* an entry written by hand may hold anything; one that would
             * not be one line of NDJSON is left out, and said so */
            if (ev == NULL || ev->type != REDIS_REPLY_STRING || ev->len == 0
                || memchr(ev->str, '\n', ev->len) != NULL
                || memchr(ev->str, '\r', ev->len) != NULL)
            {
                fprintf(stderr, "ebd archive: entry %s left out: %s\n",
                        e->element[0]->str,
                        ev == NULL || ev->type != REDIS_REPLY_STRING
                        ? "no event field" : ev->len == 0 ? "empty event"
                        : "the event has a line end");
                skipped++;
                continue;
            }

            if (fwrite(ev->str, 1, ev->len, out) != ev->len
                || putc('\n', out) == EOF)
            {
                fprintf(stderr, "ebd archive: %s: %s\n",
                        to_file ? o->output : "stdout", strerror(errno));
                freeReplyObject(r);
                goto failed;
            }

            n++;
        }

        done = r->elements < EBD_ARCHIVE_PAGE;
        if (!done) {
            snprintf(start, sizeof(start), "(%s",
                     r->element[r->elements - 1]->element[0]->str);
        }

        freeReplyObject(r);
    }

    redisFree(c);
    c = NULL;

    if (fflush(out) != 0 || ferror(out)
        || (regular && fsync(fileno(out)) != 0))
    {
        fprintf(stderr, "ebd archive: %s: %s\n",
                to_file ? o->output : "stdout", strerror(errno));
        goto failed;
    }

    if (to_file && fclose(out) != 0) {
        fprintf(stderr, "ebd archive: %s: %s\n", o->output, strerror(errno));
        out = NULL;
        goto failed;
    }

    fprintf(stderr, "exported %lld event%s from %s", n, n == 1 ? "" : "s",
            key);
    if (skipped) {
        fprintf(stderr, ", %lld entr%s left out", skipped,
                skipped == 1 ? "y" : "ies");
    }
    fputc('\n', stderr);

    return skipped ? 1 : 0;

failed:

    if (c) {
        redisFree(c);
    }

    /* a half-written archive is not left to be taken for a whole one */
    if (to_file && out) {
        fclose(out);
    }

    if (regular) {
        unlink(o->output);
    }

    return 1;
}


/* ---- import ------------------------------------------------------------ */

/* One line into b, without its "\n" (and a "\r" before it). 1: a line,
 * 0: the end of the input, -1: longer than max (its rest unread), -2: a
 * read error. */
static int
ebd_archive_line(FILE *in, eb_buf_t *b, size_t max)
{
    int  ch;

    eb_buf_reset(b);

    while ((ch = getc_unlocked(in)) != EOF && ch != '\n') {
        if (b->len == max) {
            return -1;
        }

        if (b->len == b->cap) {
            unsigned char  c8 = (unsigned char) ch;

            if (eb_buf_append(b, &c8, 1) != 0) {
                return -2;
            }
            continue;
        }

        b->data[b->len++] = (unsigned char) ch;
    }

    if (ferror(in)) {
        return -2;
    }

    if (ch == EOF && b->len == 0) {
        return 0;
    }

    if (b->len && b->data[b->len - 1] == '\r') {
        b->len--;
    }

    return 1;
}


/* Reads the replies of the appends sent; 0, or -1 (said why). */
static int
ebd_archive_flush(redisContext *c, const char *key, unsigned *sent,
    long long *appended)
{
    int          rc;
    redisReply  *x;

    rc = 0;

    for ( /* void */ ; *sent; (*sent)--) {
        x = NULL;

        if (redisGetReply(c, (void **) &x) != REDIS_OK) {
            fprintf(stderr, "ebd archive: XADD %s: %s\n", key, c->errstr);
            return -1;
        }

        if (x->type == REDIS_REPLY_ERROR) {
            if (rc == 0) {
                fprintf(stderr, "ebd archive: XADD %s: %s\n", key, x->str);
            }
            rc = -1;

        } else {
            (*appended)++;
        }

        freeReplyObject(x);
    }

    return rc;
}


static int
ebd_archive_import(ebd_opts_t *o, const char *key)
{
    int             rc, got, from_file;
    FILE           *in;
    char            err[512];
    size_t          bytes;
    unsigned        sent;
    eb_buf_t        line, norm;
    long long       lineno, appended;
    eb_ce_ctx_t     ctx;
    eb_ce_entry_t   entry;
    redisContext   *c;

    from_file = o->input && strcmp(o->input, "-") != 0;
    in = from_file ? fopen(o->input, "r") : stdin;
    if (in == NULL) {
        fprintf(stderr, "ebd archive: %s: %s\n", o->input, strerror(errno));
        return 1;
    }

    c = ebd_redis_connect_sync(o, o->bus, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "ebd archive: %s\n", err);
        if (from_file) {
            fclose(in);
        }
        return 1;
    }

    /* the checks of a PutEvents event; the bus's own attributes and
     * trace context are left out, the line is stored as it is */
    memset(&ctx, 0, sizeof(ctx));
    ctx.max_depth = EBD_ARCHIVE_DEPTH;

    eb_buf_init(&line);
    eb_buf_init(&norm);
    lineno = 0;
    appended = 0;
    sent = 0;
    bytes = 0;
    rc = 0;

    for ( ;; ) {
        got = ebd_archive_line(in, &line, EBD_ARCHIVE_LINE_MAX);
        if (got == 0) {
            break;
        }

        lineno++;

        if (got == -2) {
            fprintf(stderr, "ebd archive: %s: %s\n",
                    from_file ? o->input : "stdin",
                    line.failed ? "out of memory" : strerror(errno));
            rc = 1;
            break;
        }

        if (got == -1) {
            fprintf(stderr, "ebd archive: line %lld: longer than %d bytes\n",
                    lineno, EBD_ARCHIVE_LINE_MAX);
            rc = 2;
            break;
        }

        eb_buf_reset(&norm);
        memset(&entry, 0, sizeof(entry));

        if (line.len == 0) {
            fprintf(stderr, "ebd archive: line %lld: empty (one event per "
                    "line)\n", lineno);
            rc = 2;
            break;
        }

        switch (eb_ce_structured(&ctx, line.data, line.len, &norm, &entry)) {
        case EB_CE_OK:
            break;
        case EB_CE_INVALID:
            fprintf(stderr, "ebd archive: line %lld: not a CloudEvent: %s: "
                    "%s\n", lineno, entry.error.code, entry.error.message);
            rc = 2;
            break;
        default:
            fprintf(stderr, "ebd archive: line %lld: out of memory\n",
                    lineno);
            rc = 1;
            break;
        }

        if (rc != 0) {
            break;
        }

        /* "rules" empty: an import matches nothing (no fan-out) */
        if (redisAppendCommand(c, "XADD %s * event %b rules %b from archive",
                               key, line.data, line.len, "", (size_t) 0)
            != REDIS_OK)
        {
            fprintf(stderr, "ebd archive: line %lld: out of memory\n",
                    lineno);
            rc = 1;
            break;
        }

        sent++;
        bytes += line.len;

        if (sent == EBD_ARCHIVE_PAGE || bytes >= EBD_ARCHIVE_SEND_MAX) {
            bytes = 0;
            if (ebd_archive_flush(c, key, &sent, &appended) != 0) {
                rc = 1;
                break;
            }
        }
    }

    /* the lines before a bad one are appended all the same */
    if (sent && ebd_archive_flush(c, key, &sent, &appended) != 0) {
        rc = 1;
    }

    fprintf(stderr, "imported %lld event%s into %s%s\n", appended,
            appended == 1 ? "" : "s", key,
            rc == 2 ? "; nothing from the bad line on" : "");

    eb_buf_free(&line);
    eb_buf_free(&norm);
    redisFree(c);
    if (from_file) {
        fclose(in);
    }

    return rc;
}


int
ebd_archive_main(ebd_opts_t *o, int argc, char **argv)
{
    int           export;
    char          err[EB_CONFIG_ERROR_MAX], key[600];
    eb_config_t  *cf;

    if (argc != 1
        || (strcmp(argv[0], "export") != 0 && strcmp(argv[0], "import") != 0)
        || o->bus == NULL)
    {
        fputs(ebd_archive_usage, stderr);
        return 2;
    }

    export = strcmp(argv[0], "export") == 0;

    if (o->event || o->since || o->until || o->target || o->limit
        || (export && o->input) || (!export && (o->from || o->to
                                                 || o->output)))
    {
        fprintf(stderr, "ebd archive %s: options --from, --to and --output "
                "are export's, --input is import's; --event, --since, "
                "--until, --target and --limit are not archive's\n%s",
                argv[0], ebd_archive_usage);
        return 2;
    }

    /* the bus must be one of the configuration's: an archive imported
     * into a mistyped name would be stored where nobody reads it */
    cf = eb_config_load(o->config_file, err, sizeof(err));
    if (cf == NULL) {
        fprintf(stderr, "ebd archive: %s\n", err);
        return 1;
    }

    if (eb_config_bus(cf, o->bus, strlen(o->bus)) == NULL) {
        fprintf(stderr, "ebd archive: %s has no bus \"%s\"\n",
                o->config_file, o->bus);
        eb_config_free(cf);
        return 2;
    }

    eb_config_free(cf);

    snprintf(key, sizeof(key), "eb:{%s}:events", o->bus);

    return export ? ebd_archive_export(o, key) : ebd_archive_import(o, key);
}
