/*
 * CloudEvents batched mode, and the PutEvents answer.
 */

#include <stdio.h>

#include "eb_ce_int.h"


eb_ce_rc_t
eb_ce_batch(const eb_ce_ctx_t *ctx, const unsigned char *json, size_t len,
    eb_buf_t *out, eb_ce_entry_pt handler, void *data, eb_ce_error_t *err)
{
    size_t         i, n, start, vs, ve, mark, index;
    eb_ce_rc_t     rc;
    eb_ce_event_t  ev;
    eb_ce_entry_t  entry;

    err->code = NULL;
    err->message[0] = '\0';

    if (ctx->max_batch_size && len > ctx->max_batch_size) {
        eb_ce_fail(err, EB_CE_BATCH_TOO_LARGE,
                   "batch is %zu bytes; at most %zu", len,
                   ctx->max_batch_size);
        return EB_CE_INVALID;
    }

    /* the array is one level more than its events */
    rc = eb_ce_validate(ctx, json, len, ctx->max_depth + 1, 2, "batch", err);
    if (rc != EB_CE_OK) {
        return rc;
    }

    i = eb_ce_ws(json, 0, len);

    if (i >= len || json[i] != '[') {
        eb_ce_fail(err, EB_CE_INVALID_BATCH, "a batch must be a JSON array");
        return EB_CE_INVALID;
    }

    /* count first: the callbacks run only for a batch within the limit */
    start = i + 1;

    for (n = 0, i = start; eb_ce_element(json, &i, len, &vs, &ve); n++) {
        /* void */
    }

    if (ctx->max_entries && n > ctx->max_entries) {
        eb_ce_fail(err, EB_CE_BATCH_TOO_LARGE,
                   "batch has %zu entries; at most %zu", n, ctx->max_entries);
        return EB_CE_INVALID;
    }

    eb_ce_event_init(&ev, ctx, out, err);

    mark = out->len;
    rc = EB_CE_OK;

    for (index = 0, i = start;
         eb_ce_element(json, &i, len, &vs, &ve);
         index++)
    {
        eb_ce_entry_init(&entry, index);

        if (json[vs] == '{') {
            rc = eb_ce_json_event(&ev, json, vs, ve, &entry);

        } else {
            eb_ce_fail(&entry.error, EB_CE_INVALID_EVENT,
                       "entry %zu is not a JSON object", index);
            rc = EB_CE_INVALID;
        }

        if (rc == EB_CE_NOMEM) {
            *err = entry.error;
            break;
        }

        rc = EB_CE_OK;

        if (handler(data, &entry) != 0) {
            out->len = mark;
            rc = EB_CE_ABORTED;
            break;
        }

        out->len = mark;
    }

    eb_ce_event_free(&ev);

    return rc;
}


/* the answer */

void
eb_ce_answer_init(eb_ce_answer_t *a)
{
    eb_buf_init(&a->entries);
    a->count = 0;
    a->failed = 0;
}


void
eb_ce_answer_free(eb_ce_answer_t *a)
{
    eb_buf_free(&a->entries);
    a->count = 0;
    a->failed = 0;
}


int
eb_ce_answer_add(eb_ce_answer_t *a, const eb_ce_entry_t *entry)
{
    eb_buf_t  *b;

    b = &a->entries;

    if (a->count) {
        (void) eb_buf_append(b, ",", 1);
    }

    if (entry->error.code == NULL) {
        eb_ce_put(b, "{\"eventId\":\"");
        (void) eb_buf_append(b, entry->id.data, entry->id.len);
        eb_ce_put(b, "\"}");

    } else {
        eb_ce_put(b, "{\"errorCode\":");
        eb_ce_put_string(b, (const unsigned char *) entry->error.code,
                         strlen(entry->error.code));
        eb_ce_put(b, ",\"errorMessage\":");
        eb_ce_put_string(b, (const unsigned char *) entry->error.message,
                         strlen(entry->error.message));
        eb_ce_put(b, "}");
        a->failed++;
    }

    a->count++;

    return b->failed ? -1 : 0;
}


int
eb_ce_answer_finish(eb_ce_answer_t *a, eb_buf_t *out)
{
    char  head[64];
    int   n;

    if (a->entries.failed) {
        return -1;
    }

    n = snprintf(head, sizeof(head), "{\"failedEntryCount\":%zu,"
                 "\"entries\":[", a->failed);

    (void) eb_buf_append(out, head, (size_t) n);
    (void) eb_buf_append(out, a->entries.data, a->entries.len);
    (void) eb_buf_append(out, "]}", 2);

    return out->failed ? -1 : 0;
}
