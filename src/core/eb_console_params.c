/*
 * The console's parameter and body checks. The bodies are read with
 * yajl's tree (at most EB_CONSOLE_BODY_MAX bytes), and what is kept of
 * them is copied into the caller's buffer: a request's memory stays
 * bounded by its body, and no tree outlives the call.
 */

#include <stdio.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "eb_config.h"
#include "eb_console_params.h"
#include "eb_str.h"


/* where the strings kept go: the caller's buffer */
typedef struct {
    char  *p;
    char  *end;
} eb_console_out_t;


static yajl_val eb_console_body(const unsigned char *body, size_t len,
    char *buf, size_t size, eb_console_out_t *out);
static int eb_console_copy(eb_console_out_t *out, const char *s,
    eb_console_str_t *str);
static int eb_console_member_name(yajl_val root, const char *key,
    eb_console_out_t *out, eb_console_str_t *str);
static int eb_console_ms(yajl_val v, int64_t *ms);
static int eb_console_list(yajl_val v, eb_console_out_t *out,
    eb_console_list_t *list);


int
eb_console_id(const unsigned char *p, size_t len, unsigned flags)
{
    size_t    i, digits;
    unsigned  dash, zero;

    if (len == 0 || len > EB_CONSOLE_ID_MAX) {
        return -1;
    }

    digits = 0;
    dash = 0;
    zero = 1;

    for (i = 0; i < len; i++) {
        if (p[i] == '-' && !dash && digits) {
            dash = 1;
            digits = 0;
            continue;
        }

        /* 19 digits: below 2^64, which Redis would refuse */
        if (p[i] < '0' || p[i] > '9' || ++digits > 19) {
            return -1;
        }

        zero &= p[i] == '0';
    }

    if (digits == 0
        || ((flags & EB_CONSOLE_ID_SEQ) && !dash)
        || ((flags & EB_CONSOLE_ID_CURSOR) && zero))
    {
        return -1;
    }

    return 0;
}


int
eb_console_limit(const unsigned char *p, size_t len, unsigned *limit)
{
    size_t    i;
    unsigned  n;

    if (len == 0) {
        return -1;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        /* more digits only add to it: past the cap, stop (no overflow) */
        n = n * 10 + (p[i] - '0');

        if (n > EB_CONSOLE_LIMIT_MAX) {
            return -1;
        }
    }

    if (n < 1) {
        return -1;
    }

    *limit = n;

    return 0;
}


const char *
eb_console_window(int64_t from, int64_t *to, int64_t now)
{
    if (*to >= now) {
        *to = now - 1;

        if (from > *to) {
            return "\"from\": the window begins in the future";
        }
    }

    if (from > *to) {
        return "\"from\": after \"to\": the window is empty";
    }

    return NULL;
}


/* --- the bodies ------------------------------------------------------ */


/* Both POSTs' bodies: a JSON object, or NULL. A NUL byte would end the
 * text yajl sees before the body does: refused rather than cut. */
static yajl_val
eb_console_body(const unsigned char *body, size_t len, char *buf,
    size_t size, eb_console_out_t *out)
{
    char      err[128];
    yajl_val  root;

    if (len > EB_CONSOLE_BODY_MAX || size < len + 1
        || (len && memchr(body, '\0', len) != NULL))
    {
        return NULL;
    }

    if (len) {
        memcpy(buf, body, len);
    }

    buf[len] = '\0';

    root = yajl_tree_parse(buf, err, sizeof(err));

    if (root == NULL) {
        return NULL;
    }

    if (!YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return NULL;
    }

    /* the tree has its own copies: the text's bytes are free again */
    out->p = buf;
    out->end = buf + size;

    return root;
}


static int
eb_console_copy(eb_console_out_t *out, const char *s, eb_console_str_t *str)
{
    size_t  len;

    /* yajl's strings end at their first NUL (a \u0000 escape) */
    len = strlen(s);

    if ((size_t) (out->end - out->p) < len + 1) {
        return -1;
    }

    memcpy(out->p, s, len + 1);
    str->data = out->p;
    str->len = len;
    out->p += len + 1;

    return 0;
}


/* the body's member as a name ("bus", "target") */
static int
eb_console_member_name(yajl_val root, const char *key, eb_console_out_t *out,
    eb_console_str_t *str)
{
    yajl_val  v;

    v = eb_config_get(root, key);

    if (!YAJL_IS_STRING(v) || eb_console_copy(out, v->u.string, str) != 0) {
        return -1;
    }

    return eb_name_valid((const unsigned char *) str->data, str->len);
}


/* a time: ms since the epoch, a JSON integer */
static int
eb_console_ms(yajl_val v, int64_t *ms)
{
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        return -1;
    }

    *ms = YAJL_GET_INTEGER(v);

    return 0;
}


/* an array of 1 to EB_CONSOLE_LIST_MAX names, absent (n 0), or -1 */
static int
eb_console_list(yajl_val v, eb_console_out_t *out, eb_console_list_t *list)
{
    char        *p;
    size_t       i, len;
    const char  *s;

    /* "" when not given: what the state hash holds then */
    list->n = 0;
    list->joined.data = "";
    list->joined.len = 0;

    if (v == NULL) {
        return 0;
    }

    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0
        || v->u.array.len > EB_CONSOLE_LIST_MAX)
    {
        return -1;
    }

    p = out->p;

    for (i = 0; i < v->u.array.len; i++) {
        if (!YAJL_IS_STRING(v->u.array.values[i])) {
            return -1;
        }

        s = v->u.array.values[i]->u.string;
        len = strlen(s);

        if (eb_name_valid((const unsigned char *) s, len) != 0
            || (size_t) (out->end - p) < len + 1)
        {
            return -1;
        }

        list->items[i].data = p;
        list->items[i].len = len;

        memcpy(p, s, len);
        p += len;
        *p++ = ',';
    }

    /* the last comma ends the text */
    p[-1] = '\0';

    list->n = v->u.array.len;
    list->joined.data = out->p;
    list->joined.len = p - 1 - out->p;
    out->p = p;

    return 0;
}


const char *
eb_console_redrive_parse(const unsigned char *body, size_t len, char *buf,
    size_t size, eb_console_redrive_t *rd)
{
    size_t            i;
    yajl_val          root, ids, all, v;
    const char       *msg;
    eb_console_out_t  out;

    rd->nids = 0;
    rd->all = 0;

    root = eb_console_body(body, len, buf, size, &out);

    if (root == NULL) {
        return "the body: a JSON object";
    }

    msg = NULL;

    if (eb_console_member_name(root, "bus", &out, &rd->bus) != 0) {
        msg = "\"bus\": a bus name";
        goto done;
    }

    if (eb_console_member_name(root, "target", &out, &rd->target) != 0) {
        msg = "\"target\": a target name";
        goto done;
    }

    ids = eb_config_get(root, "ids");
    all = eb_config_get(root, "all");

    /* one of the two, "ids": null included */
    if ((ids == NULL) == (all == NULL)
        || (all && !YAJL_IS_TRUE(all))
        || (ids && (!YAJL_IS_ARRAY(ids) || ids->u.array.len == 0
                    || ids->u.array.len > EB_CONSOLE_REDRIVE_MAX)))
    {
        msg = "\"ids\" (1 to 100 dead letter ids) or \"all\": true";
        goto done;
    }

    if (all) {
        rd->all = 1;
        goto done;
    }

    for (i = 0; i < ids->u.array.len; i++) {
        v = ids->u.array.values[i];

        /* an entry: a time alone would name none */
        if (!YAJL_IS_STRING(v)
            || eb_console_copy(&out, v->u.string, &rd->ids[i]) != 0
            || eb_console_id((const unsigned char *) rd->ids[i].data,
                             rd->ids[i].len, EB_CONSOLE_ID_SEQ) != 0)
        {
            msg = "\"ids\": stream ids (MS-SEQ)";
            goto done;
        }
    }

    rd->nids = i;

done:

    yajl_tree_free(root);

    return msg;
}


const char *
eb_console_replay_parse(const unsigned char *body, size_t len, int64_t now,
    char *buf, size_t size, eb_console_replay_t *rp)
{
    yajl_val          root, v;
    const char       *msg;
    eb_console_out_t  out;

    rp->rules.n = 0;
    rp->rules.joined.data = "";
    rp->rules.joined.len = 0;
    rp->targets.n = 0;
    rp->targets.joined = rp->rules.joined;
    rp->rate = 0;
    rp->name.data = NULL;
    rp->name.len = 0;
    rp->default_name[0] = '\0';

    root = eb_console_body(body, len, buf, size, &out);

    if (root == NULL) {
        return "\"body\": a JSON object";
    }

    msg = NULL;

    if (eb_console_member_name(root, "bus", &out, &rp->bus) != 0) {
        msg = "\"bus\": a bus name";
        goto done;
    }

    if (eb_console_ms(eb_config_get(root, "from"), &rp->from) != 0) {
        msg = "\"from\": ms since the epoch";
        goto done;
    }

    if (eb_console_ms(eb_config_get(root, "to"), &rp->to) != 0) {
        msg = "\"to\": ms since the epoch";
        goto done;
    }

    msg = eb_console_window(rp->from, &rp->to, now);
    if (msg) {
        goto done;
    }

    if (eb_console_list(eb_config_get(root, "rules"), &out, &rp->rules)
        != 0)
    {
        msg = "\"rules\": an array of 1 to 256 rule names";
        goto done;
    }

    if (eb_console_list(eb_config_get(root, "targets"), &out, &rp->targets)
        != 0)
    {
        msg = "\"targets\": an array of 1 to 256 target names";
        goto done;
    }

    /* null: as if not given, what a form's empty field sends */
    v = eb_config_get(root, "rate");

    if (v && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1
            || YAJL_GET_INTEGER(v) > EB_CONSOLE_RATE_MAX)
        {
            msg = "\"rate\": events per second, 1 to 1000000000";
            goto done;
        }

        rp->rate = YAJL_GET_INTEGER(v);
    }

    v = eb_config_get(root, "name");

    if (v && !YAJL_IS_NULL(v)
        && (!YAJL_IS_STRING(v)
            || eb_console_copy(&out, v->u.string, &rp->name) != 0
            || eb_name_valid((const unsigned char *) rp->name.data,
                               rp->name.len) != 0))
    {
        msg = "\"name\": 1 to 128 letters, digits, \"-\", \"_\" or \".\"";
        goto done;
    }

done:

    yajl_tree_free(root);

    return msg;
}


const char *
eb_console_replay_name(eb_console_replay_t *rp)
{
    int    n;
    char  *p;

    if (rp->name.data) {
        return NULL;
    }

    /* snprintf stops at the buffer; n says how long it would have been */
    n = snprintf(rp->default_name, sizeof(rp->default_name),
                 "%lld-%lld%s%.*s%s%.*s",
                 (long long) rp->from, (long long) rp->to,
                 rp->rules.n ? "-" : "", (int) rp->rules.joined.len,
                 rp->rules.joined.data,
                 rp->targets.n ? "-" : "", (int) rp->targets.joined.len,
                 rp->targets.joined.data);

    if (n < 0 || n > EB_CONSOLE_NAME_MAX) {
        rp->default_name[0] = '\0';
        return "\"name\": required: the default name would be over 128 "
               "characters";
    }

    for (p = rp->default_name; *p; p++) {
        if (*p == ',') {
            *p = '.';
        }
    }

    rp->name.data = rp->default_name;
    rp->name.len = n;

    return NULL;
}
