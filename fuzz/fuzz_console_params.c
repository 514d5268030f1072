/*
 * libFuzzer harness: the console's parameter and body checks
 * (eb_console_params.h). The input is a query parameter's value and
 * both POST bodies at once; what is accepted is checked again, each
 * string kept inside the buffer the caller gave (len + 1 bytes,
 * allocated exactly so that ASan sees a write past it).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_console_params.h"


#define EB_FUZZ_NOW  1796215200000LL


static void
eb_fuzz_in(const char *buf, size_t size, const eb_console_str_t *s)
{
    if (s->data < buf || s->data + s->len >= buf + size) {
        abort();
    }
}


static void
eb_fuzz_name(const char *buf, size_t size, const eb_console_str_t *s)
{
    eb_fuzz_in(buf, size, s);

    if (s->data[s->len] != '\0'
        || eb_name_valid((const unsigned char *) s->data, s->len) != 0)
    {
        abort();
    }
}


/* the items, joined with commas, are the joined text */
static void
eb_fuzz_list(const char *buf, size_t size, const eb_console_list_t *l)
{
    size_t       i;
    const char  *p;

    if (l->n == 0) {
        if (l->joined.len != 0 || l->joined.data[0] != '\0') {
            abort();
        }

        return;
    }

    eb_fuzz_in(buf, size, &l->joined);

    if (l->n > EB_CONSOLE_LIST_MAX) {
        abort();
    }

    p = l->joined.data;

    for (i = 0; i < l->n; i++) {
        if (l->items[i].data != p
            || eb_name_valid((const unsigned char *) p, l->items[i].len)
               != 0)
        {
            abort();
        }

        p += l->items[i].len;

        if (*p != (i + 1 < l->n ? ',' : '\0')) {
            abort();
        }

        p++;
    }
}


static void
eb_fuzz_scalars(const uint8_t *data, size_t size)
{
    int       plain, seq, cursor;
    unsigned  limit;

    plain = eb_console_id(data, size, 0);
    seq = eb_console_id(data, size, EB_CONSOLE_ID_SEQ);
    cursor = eb_console_id(data, size, EB_CONSOLE_ID_CURSOR);

    /* the flags only ever refuse more */
    if ((seq == 0 && plain != 0) || (cursor == 0 && plain != 0)
        || (seq == 0 && memchr(data, '-', size) == NULL))
    {
        abort();
    }

    limit = 0;

    if (eb_console_limit(data, size, &limit) == 0
        && (limit < 1 || limit > EB_CONSOLE_LIMIT_MAX))
    {
        abort();
    }

    (void) eb_name_valid(data, size);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                  *buf;
    size_t                 i;
    eb_console_redrive_t  *rd;
    eb_console_replay_t   *rp;

    eb_fuzz_scalars(data, size);

    buf = malloc(size + 1);
    rd = malloc(sizeof(eb_console_redrive_t));
    rp = malloc(sizeof(eb_console_replay_t));

    if (buf == NULL || rd == NULL || rp == NULL) {
        abort();
    }

    if (eb_console_redrive_parse(data, size, buf, size + 1, rd) == NULL) {
        eb_fuzz_name(buf, size + 1, &rd->bus);
        eb_fuzz_name(buf, size + 1, &rd->target);

        if (rd->all != (rd->nids == 0) || rd->nids > EB_CONSOLE_REDRIVE_MAX)
        {
            abort();
        }

        for (i = 0; i < rd->nids; i++) {
            eb_fuzz_in(buf, size + 1, &rd->ids[i]);

            if (rd->ids[i].data[rd->ids[i].len] != '\0'
                || eb_console_id((const unsigned char *) rd->ids[i].data,
                                 rd->ids[i].len, EB_CONSOLE_ID_SEQ) != 0)
            {
                abort();
            }
        }
    }

    if (eb_console_replay_parse(data, size, EB_FUZZ_NOW, buf, size + 1, rp)
        == NULL)
    {
        eb_fuzz_name(buf, size + 1, &rp->bus);
        eb_fuzz_list(buf, size + 1, &rp->rules);
        eb_fuzz_list(buf, size + 1, &rp->targets);

        if (rp->from < 0 || rp->from > rp->to || rp->to >= EB_FUZZ_NOW
            || rp->rate < 0 || rp->rate > EB_CONSOLE_RATE_MAX)
        {
            abort();
        }

        if (rp->name.data) {
            eb_fuzz_name(buf, size + 1, &rp->name);
        }

        if (eb_console_replay_name(rp) == NULL) {
            if (rp->name.data == NULL
                || eb_name_valid((const unsigned char *) rp->name.data,
                                   rp->name.len) != 0)
            {
                abort();
            }

        } else if (rp->name.data != NULL) {
            abort();
        }
    }

    free(rp);
    free(rd);
    free(buf);

    return 0;
}
